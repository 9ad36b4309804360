//! Three-class sentiment text: short reviews of products, meals, films, trips and services,
//! labelled negative, neutral or positive.
//!
//! Not a keyword task: a positive review may name a flaw ("the wait was long, but …"), a
//! negative one may grant a strength, and both use negation ("not bad at all", "not worth
//! it"). The label is the review's overall verdict, which its closing usually states.
//! Neutral reviews report facts and lukewarm verdicts ("it does what it says").
//! Labels are balanced (±1 in any prefix) and in a seeded random order.

use super::lexicon::SHARED;
use super::templates::{compose, Lexicon, Templates};
use rand::seq::SliceRandom;
use rand::Rng;

/// The three classes, in label order: 0 negative, 1 neutral, 2 positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sentiment {
    Negative,
    Neutral,
    Positive,
}

impl Sentiment {
    pub const ALL: [Sentiment; 3] = [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive];

    /// The class label: 0 negative, 1 neutral, 2 positive.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Sentiment::Negative => "negative",
            Sentiment::Neutral => "neutral",
            Sentiment::Positive => "positive",
        }
    }
}

/// A review and its sentiment label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub text: String,
    pub label: Sentiment,
}

/// `n` reviews from `rng`. Labels come in blocks of three, one of each class in a random
/// order, so any prefix is balanced (±1) and the first n reviews do not depend on how many
/// more are asked for.
pub fn texts(n: usize, rng: &mut impl Rng) -> Vec<Review> {
    let mut out = Vec::with_capacity(n);
    let mut block = Sentiment::ALL;
    while out.len() < n {
        block.shuffle(rng);
        for &label in block.iter().take(n - out.len()) {
            let t = match label {
                Sentiment::Negative => &NEGATIVE,
                Sentiment::Neutral => &NEUTRAL,
                Sentiment::Positive => &POSITIVE,
            };
            let target = rng.gen_range(140..=300);
            out.push(Review { text: compose(t, SHARED, target, 400, rng), label });
        }
    }
    out
}

/// Openings say what was reviewed, not what the reviewer thought.
const OPENINGS: &[&str] = &[
    "I {bought|ordered|tried|booked} the {@thing} from {shop} last {weekday}.",
    "We {visited|tried|went to} {shop} in {city} {last week|on {weekday}|for a birthday|after work}.",
    "{My|Our} {@thing} arrived {2..9} days after I ordered it.",
    "I have been using the {@thing} for {2..11} {weeks|months}.",
    "{Watched|Saw|Finally watched} {film} {at the cinema|at home|on a long flight} {yesterday|last night|this weekend}.",
    "Review of the {@thing} from {shop}.",
    "{Stayed|Spent} {2..7} nights at {hotel} in {city}.",
];

static POSITIVE: Templates = Templates {
    opening: OPENINGS,
    body: &[
        "The {aspect} was {pos_adj}, {and|and honestly} the {aspect} was {pos_adj} too.",
        "{Really|Genuinely|Truly} {pos_adj}: {it|the {@thing}} {pos_act}.",
        "The {aspect} was {a bit|slightly|somewhat} {neg_adj}, but {the rest|everything else|the {aspect}} {more than made up for it|was {pos_adj}}.",
        "{Not bad at all|Not disappointing in the slightest|Nothing to complain about}, {to be honest|if I am honest|really}.",
        "{The staff|The seller|Customer service|The host} {was|were} {pos_adj} and {answered every question|fixed a problem quickly|went out of their way}.",
        "I {was worried|had doubts} about the {aspect}, but it turned out {pos_adj}.",
        "{It|The {@thing}} {pos_act}, {which|and that} {made my day|surprised me|is rare at this price}.",
        "{Five|Five out of five|Ten out of ten|Full} stars for the {aspect}.",
    ],
    closing: &[
        "{Highly recommended|I would buy it again|Would definitely go back|Worth every penny}{!|.}",
        "{Overall|All in all|In short}, {a great|an excellent|a lovely|a brilliant} {experience|purchase|evening|stay}.",
        "I {love|really like|am delighted with} {it|the {@thing}} and {will|would} {recommend it to friends|order again|come back}.",
        "Best {@thing} I have {had|tried|owned} in {years|a long time|ages}.",
    ],
    lexicon: SENTIMENT_WORDS,
};

static NEGATIVE: Templates = Templates {
    opening: OPENINGS,
    body: &[
        "The {aspect} was {neg_adj}, and the {aspect} was {neg_adj} as well.",
        "{Really|Honestly|Frankly} {neg_adj}: {it|the {@thing}} {neg_act}.",
        "The {aspect} was {pos_adj}, but {the rest|everything else|the {aspect}} was {neg_adj}.",
        "{Not worth it|Not what I expected|Not good at all|Not great}, {to be honest|if I am honest|sadly}.",
        "{The staff|The seller|Customer service|The host} {was|were} {neg_adj} and {ignored my emails|never fixed the problem|blamed me}.",
        "I {hoped|expected} the {aspect} would be {pos_adj}, but it was {neg_adj}.",
        "{It|The {@thing}} {neg_act}, {which|and that} {ruined the evening|wasted my money|is unacceptable}.",
        "{One star|Zero stars if I could|Two out of ten} for the {aspect}.",
    ],
    closing: &[
        "{Avoid|I would not recommend it|Never again|Save your money}{!|.}",
        "{Overall|All in all|In short}, {a poor|a terrible|a disappointing|a frustrating} {experience|purchase|evening|stay}.",
        "I {returned|regret buying|am sending back|will not use} {it|the {@thing}} and {want a refund|will shop elsewhere|will not come back}.",
        "Worst {@thing} I have {had|tried|owned} in {years|a long time|ages}.",
    ],
    lexicon: SENTIMENT_WORDS,
};

static NEUTRAL: Templates = Templates {
    opening: OPENINGS,
    body: &[
        "The {aspect} was {neu_adj}, and the {aspect} was {neu_adj}.",
        "It {costs|cost} {5..300} {dollars|euros|pounds} and {comes|came} in a {colour} {box|bag|case}.",
        "{It|The {@thing}} {does what it says|works as described|is fine for everyday use|matches the photos}.",
        "The {aspect} was {pos_adj} and the {aspect} was {neg_adj}, so it {evens out|balances out}.",
        "{Delivery|The trip|The wait|Setup} took {2..9} {days|hours|minutes}, {as|roughly as} {expected|advertised|stated}.",
        "{Not good|Not bad}, {not great|not terrible} either; {it is|it was} {okay|fine|acceptable|average}.",
        "{There are|I saw} {2..9} {colours|sizes|versions|options} to choose from.",
        "I {have no strong feelings|have mixed feelings|have not decided yet} about the {aspect}.",
    ],
    closing: &[
        "{Overall|All in all|In short}, {an average|an ordinary|a standard|a so-so} {experience|purchase|evening|stay}.",
        "{It is|It was} {okay|fine|acceptable|what I expected} for the price.",
        "I {might|may or may not} {use|buy|visit} {it|the {@thing}} again.",
        "{Three stars|Three out of five|Middle of the road|Nothing special either way}.",
    ],
    lexicon: SENTIMENT_WORDS,
};

const SENTIMENT_WORDS: &Lexicon = &[
    (
        "thing",
        &[
            "headphones",
            "blender",
            "backpack",
            "phone case",
            "desk lamp",
            "coffee grinder",
            "jacket",
            "keyboard",
            "tent",
            "pizza",
            "pasta",
            "burger",
            "room",
            "tour",
            "novel",
            "charger",
            "bike",
            "kettle",
            "sofa",
        ],
    ),
    (
        "shop",
        &[
            "{last}'s",
            "the market in {city}",
            "an online shop",
            "the {colour} {Cafe|Store|Bistro|Shop}",
            "{city} Outlet",
        ],
    ),
    ("hotel", &["the {colour} Hotel", "a guesthouse", "the {last} Inn", "a hostel near the station"]),
    (
        "film",
        &[
            "the new {colour} {Knight|River|Planet|Garden}",
            "{first}'s {Journey|Secret|Return}",
            "the sequel",
            "a documentary about {city}",
        ],
    ),
    (
        "aspect",
        &[
            "price",
            "quality",
            "service",
            "delivery",
            "packaging",
            "battery life",
            "sound",
            "food",
            "staff",
            "location",
            "design",
            "ending",
            "plot",
            "acting",
            "size",
            "screen",
            "wait",
            "room",
            "music",
            "portion",
        ],
    ),
    (
        "pos_adj",
        &[
            "excellent",
            "great",
            "superb",
            "fantastic",
            "wonderful",
            "delightful",
            "solid",
            "impressive",
            "lovely",
            "perfect",
            "friendly",
            "fast",
            "comfortable",
            "brilliant",
        ],
    ),
    (
        "neg_adj",
        &[
            "terrible",
            "awful",
            "poor",
            "disappointing",
            "slow",
            "rude",
            "broken",
            "cheap-feeling",
            "noisy",
            "bland",
            "overpriced",
            "flimsy",
            "boring",
            "dirty",
        ],
    ),
    ("neu_adj", &["average", "standard", "ordinary", "as described", "normal", "typical", "fine", "acceptable"]),
    (
        "pos_act",
        &[
            "works perfectly",
            "exceeded my expectations",
            "arrived early",
            "feels sturdy",
            "is easy to use",
            "kept me hooked",
            "tasted amazing",
            "lasts all day",
        ],
    ),
    (
        "neg_act",
        &[
            "broke after a week",
            "stopped working",
            "arrived damaged",
            "feels cheap",
            "is hard to use",
            "bored me to tears",
            "tasted stale",
            "drains in an hour",
        ],
    ),
];
