//! History: events, rulers, treaties, trade and archaeology. Shares the `agreement`, `goods`,
//! `dealers` and `expand` pools with business (treaty/contract, empire/market, merchants),
//! as the real fields share words.

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "In {@year}, {@ruler} {signed|broke|negotiated|rejected} a {agreement} with {@rival}.",
        "The {@empire} {expand} under {@ruler}, who {ruled|reigned|governed} for {5..50} years.",
        "{Archaeologists|Historians|Excavators} working near {city} {found|uncovered|dated|studied} {artefact}.",
        "The {war|siege|rebellion|famine|plague|revolution} of {@year} changed {region} for {decades|generations|centuries}.",
        "{By|Around|Before|After} {@year}, {dealers} from {city} controlled the trade in {goods} across {region}.",
        "Few {events|rulers|treaties|cities} shaped {region} as much as {@ruler} and the {@empire}.",
    ],
    body: &[
        "The {agreement} gave {@rival} control of {region} in exchange for {goods} and {silver|gold|soldiers|hostages}.",
        "{Troops|Armies|Fleets|Rebels} {marched on|besieged|captured|abandoned} {city} in {month} {@year}.",
        "{Taxes|Tolls|Tributes|Duties} on {goods} paid for {roads|fortresses|the army|the palace|new harbours}.",
        "{dealers_cap} from {city} {sailed|travelled|marched} {2..90} days to sell {goods} in {city}.",
        "The {@empire} {expand} when {its rulers|the court|the council} {lowered taxes|opened new ports|built roads|raised armies}.",
        "{@ruler} {married|exiled|defeated|allied with} {person} to {secure|weaken|protect|claim} the {throne|border|harbour|succession}.",
        "An inscription on {artefact} {names|mentions|honours|curses} {@ruler} and {dates to|was carved in} {100..1800}.",
        "{Excavations|Surveys|Digs} at the site uncovered {artefact}, {artefact} and the remains of {building}.",
        "{Historians|Chroniclers|Scholars} {disagree|argue|believe|doubt} that the {agreement} was {fair|honoured|forced|secret}.",
        "{Drought|Plague|Civil war|Famine|Piracy} {weakened|ruined|divided|emptied} {region} {within|for} {2..40} years.",
        "The {council|senate|assembly|court} of {city} {voted|refused|decided|met} to {ratify|cancel|renew|renegotiate} the {agreement}.",
        "{Around|By|In} {@year}, the population of {city} had {expand} to {5..400} thousand.",
        "{Letters|Records|Chronicles|Ledgers} from the period describe {@ruler} as {cruel|generous|cautious|ambitious|pious}.",
        "The {battle|siege|uprising|crossing} at {city} {cost|saved|ended} {thousands of|hundreds of|many} lives.",
        "{Coins|Pottery|Weapons|Seals} found in {region} show that {dealers} traded {goods} with the {@empire}.",
        "{@rival} {demanded|offered|refused} {goods} and a {share|port|tribute|marriage} before signing the {agreement}.",
        "{New|Old|Rival} {dynasties|families|guilds|factions} {rose|fell|fought} as the {@empire} {expand}.",
        "{Monks|Scribes|Officials|Travellers} {recorded|copied|described|mapped} the {agreement} in {Latin|Greek|Arabic|Persian|Chinese}.",
        "The {@empire} lost {region} after {@rival} {won|broke|ignored|rewrote} the {agreement}.",
    ],
    closing: &[
        "The {agreement} {lasted|held|survived} for {5..200} years, until {@rival} {broke|ended|renounced} it.",
        "{Today|Now|Even now}, {artefact} from this period {is|can be} seen in the museum of {city}.",
        "The fall of the {@empire} in {1000..1900} {ended|closed|marked the end of} an era of {trade|conquest|peace|expansion}.",
        "{Historians|Scholars} still {debate|study|question} why {@ruler} {signed|broke|trusted} the {agreement}.",
        "The {@empire} is remembered for its {roads|laws|markets|temples|armies} and its {goods} trade.",
    ],
    lexicon: &[
        ("year", &["{300..1900}", "{1000..1900}", "{100..900} BC"]),
        ("ruler", &["King {first}", "Queen {first}", "Emperor {first}", "Sultan {first}", "the Duke of {city}", "Empress {first}", "Chancellor {last}"]),
        ("rival", &["the {empire}", "the city of {city}", "the Duke of {city}", "King {first}", "the merchants of {city}", "the Republic of {city}"]),
        (
            "empire",
            &[
                "{Eastern|Western|Northern|Southern} Empire", "Kingdom of {city}", "Empire of {city}", "Republic of {city}",
                "Sultanate of {city}", "{colour} Dynasty", "League of {city}",
            ],
        ),
        (
            "artefact",
            &[
                "a bronze helmet", "a hoard of silver coins", "clay tablets", "a carved stone", "a shipwreck",
                "a royal seal", "a mosaic floor", "burial urns", "a merchant's ledger", "an iron sword", "painted pottery",
            ],
        ),
        ("building", &["a temple", "a granary", "a fortress", "city walls", "a palace", "a harbour", "a market hall", "an aqueduct"]),
        ("dealers_cap", &["Merchants", "Traders", "Bankers", "Guild members", "Caravans"]),
    ],
};
