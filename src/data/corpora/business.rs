//! Business: revenue, markets, deals and management. Shares the `agreement`, `goods`,
//! `dealers` and `expand` pools with history (contract/treaty, market/empire, merchants).

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "{@company} reported revenue of {2..900} million {currency} for the {quarter}.",
        "{@company}, the {city}-based {industry} firm, {signed|announced|cancelled|renewed} a {agreement} with {@partner}.",
        "Shares of {@company} {rose|fell|jumped|slipped} {1..25} percent after {news}.",
        "{@exec}, chief executive of {@company}, {said|told investors|warned|confirmed} that {outlook}.",
        "The market for {product} in {region} {expand} by {2..40} percent last year.",
        "{@company} {plans|agreed|hopes|decided} to {deal} {@partner} for {20..900} million {currency}.",
    ],
    body: &[
        "Operating {profit|margin|costs|income} {rose|fell|grew|shrank} to {2..60} percent of {sales|revenue}.",
        "The {agreement|contract|deal} {covers|includes|excludes} {goods|product} and runs for {2..10} years.",
        "{Analysts|Investors|Shareholders|Creditors} {expected|feared|welcomed|questioned} {news}.",
        "{@exec} {plans to|promised to|was asked to|refused to} {action} by the end of {month|the year|the quarter}.",
        "{Sales|Orders|Bookings|Subscriptions} in {city} {expand} while demand in {region} {expand}.",
        "The company {employs|hired|laid off|retrained} {50..9000} {staff|workers|engineers|people} in {city}.",
        "{Costs|Prices} of {goods} {rose|fell|doubled|stabilised} because of {cause}.",
        "{@partner} will supply {goods} and {product} under a {2..10}-year {agreement}.",
        "The board {approved|rejected|delayed|reviewed} a plan to {action}.",
        "{dealers} {pushed|voted|pressed|lobbied} for a {higher dividend|new chief executive|share buyback|merger}.",
        "Competition from {@partner} {squeezed|hurt|lifted|reshaped} margins in the {industry} market.",
        "{Revenue|Profit|Cash flow|Turnover} in the {quarter} was {2..900} million {currency}, {up|down} {1..40} percent from a year earlier.",
        "{Management|The leadership team|The new manager|The finance director} {cut|raised|froze|reviewed} the budget for {department}.",
        "The {contract|deal|merger|tender} {requires|needs|awaits} approval from {regulators|the board|shareholders|the courts}.",
        "{Customers|Clients|Retailers|Suppliers} in {region} {complained about|praised|switched away from|asked for} {product}.",
        "{@company} {opened|closed|moved|sold} its {factory|office|warehouse|store} in {city}.",
        "The {market|sector|industry} is {crowded|growing|consolidating|shrinking}, with {2..12} firms holding {30..90} percent of sales.",
        "{Negotiations|Talks|Discussions} with {@partner} over the {agreement} {stalled|resumed|ended|continued} in {month}.",
        "{Marketing|Research|Logistics|Hiring} spending {rose|fell} by {1..30} percent as the firm {action_ing}.",
    ],
    closing: &[
        "{@company} expects revenue to {grow|fall|rise|shrink} by {1..20} percent next year.",
        "{@exec} said the {agreement} would {strengthen|protect|expand} the company's position in {region}.",
        "The results will be {presented|discussed|published} at the {annual meeting|investor day|next board meeting} in {month}.",
        "{Investors|Analysts|Markets} will watch whether {@company} can {action}.",
        "{Shares|The stock} closed at {2..400} {currency} on {weekday}.",
    ],
    lexicon: &[
        (
            "company",
            &[
                "{last} {Holdings|Group|Industries|Partners|Logistics|Foods|Systems}",
                "{colour_cap} {Peak|River|Harbor|Stone|Leaf|Arrow} {Ltd|Inc|plc|Group}",
                "{city} {Bank|Motors|Textiles|Energy|Software|Retail|Shipping}",
            ],
        ),
        ("partner", &["{company}", "a rival in {city}", "a {industry} start-up", "the government of {city}", "a consortium of {dealers}"]),
        ("exec", &["{person}", "{first} {last}"]),
        ("colour_cap", &["Red", "Blue", "Green", "Grey", "Golden", "Silver", "White", "Black"]),
        ("currency", &["euros", "dollars", "pounds", "yen", "francs"]),
        ("quarter", &["first quarter", "second quarter", "third quarter", "fourth quarter", "full year", "first half"]),
        (
            "industry",
            &[
                "retail", "logistics", "software", "banking", "insurance", "shipping", "energy", "food",
                "pharmaceutical", "textile", "telecom", "construction",
            ],
        ),
        (
            "product",
            &[
                "electric vans", "cloud storage", "frozen meals", "office furniture", "solar panels", "running shoes",
                "payment services", "coffee machines", "insurance policies", "smartphones", "building materials",
            ],
        ),
        (
            "news",
            &[
                "a profit warning", "better-than-expected results", "a takeover bid", "a product recall",
                "a new {agreement}", "the loss of a major contract", "a dividend cut", "a management shake-up",
            ],
        ),
        (
            "outlook",
            &[
                "demand will recover next year", "costs will keep rising", "the market is saturated",
                "margins will improve", "growth will slow", "the {agreement} will add revenue",
            ],
        ),
        ("deal", &["acquire", "merge with", "invest in", "partner with", "sell a stake to", "buy out"]),
        (
            "action",
            &[
                "cut costs", "enter new markets", "reduce debt", "raise prices", "launch {product}",
                "restructure the sales team", "close unprofitable stores", "double production",
            ],
        ),
        (
            "action_ing",
            &["cut costs", "entered new markets", "reduced debt", "launched {product}", "restructured", "expanded abroad"],
        ),
        ("cause", &["higher energy prices", "supply shortages", "weak demand", "new tariffs", "a strong currency", "strikes"]),
        ("department", &["marketing", "research", "customer service", "logistics", "sales", "human resources"]),
    ],
};
