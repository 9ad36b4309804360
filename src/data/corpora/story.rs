//! Story: short narratives with a hero (kept across the sample by `{@hero}`), a place, a
//! companion, a problem and a turn of events.

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "Once upon a time, {@hero} lived in a {small|quiet|crooked|tall} house near {@place}.",
        "{@hero} had never left {@place} before the {winter|summer|spring|autumn} of the {great|long|strange} {storm|drought|festival|flood}.",
        "Every morning, {@hero} walked {slowly|quickly|happily|nervously} to {@place} with a {colour} {object} in their bag.",
        "The {village|town|harbour|market} of {@place} was {asleep|silent|busy|flooded} when {@hero} arrived {at dawn|at midnight|late in the evening|before noon}.",
        "Nobody in {@place} believed {@hero} when they said the {animal} could {ability}.",
        "It was a {cold|warm|windy|rainy|bright} {weekday} when {@hero} first {saw|heard|found} the {colour} {object}.",
        "Long ago, in a {kingdom|valley|forest|city} beyond {@place}, there lived a {young|old|clever|lonely} {role} called {@hero}.",
    ],
    body: &[
        "{@hero} {feeling_verb} when the {animal} {animal_act} across the {landscape}.",
        "\"{We must|We should|Let us|I will} {quest} before {sunset|the rain comes|the bells ring|anyone notices},\" {@hero} whispered to {@friend}.",
        "{@friend}, a {role} from {city}, {offered|promised|refused} to help, but only if {@hero} could {quest}.",
        "{At first|Soon|Suddenly|Later that night|After a while}, the {object} began to {glow|hum|shake|vanish|sing}, and {@hero} {feeling_verb}.",
        "They {walked|ran|sailed|climbed} for {2..9} {days|hours|nights} through the {landscape} until they reached {a|an old|a hidden|a ruined} {building}.",
        "Inside the {building}, {@friend} found a {colour} {object} that {belonged to|was stolen from|was hidden by} {person}.",
        "{@hero} remembered what their {grandmother|father|teacher|neighbour} had said: never {trust|follow|wake|feed} a {animal} after dark.",
        "The {animal} {animal_act} again, and this time {@hero} was not {afraid|surprised|alone|ready}.",
        "{Because|Since|Although} the {landscape} was {dark|frozen|flooded|endless}, {@hero} and {@friend} {decided|agreed|refused} to {rest|turn back|split up|keep going}.",
        "A {stranger|merchant|soldier|child|old woman} {appeared|waited|stood} at the {gate|bridge|crossroads|door} and asked for {3..40} {coins|apples|stories|favours}.",
        "{@hero} {laughed|frowned|smiled|sighed} and {gave|showed|threw|offered} the {object} to the {stranger|guard|animal|crowd}.",
        "That {night|evening|morning}, {@friend} told a story about {person} and the {colour} {animal} of {city}.",
        "The {wind|rain|snow|fog} {grew stronger|stopped|returned|thickened} as they {crossed|left|entered|circled} the {landscape}.",
        "{@hero} counted {3..12} {stars|lanterns|footprints|birds} and knew that {@place} was {near|far|gone|waiting}.",
        "When the {clock|bell|drum|horn} struck {2..12}, {everyone|the guards|the children|the animals} {fell silent|ran outside|began to sing|hid}.",
        "{@friend} {drew|wrote|whispered} a {map|letter|name|warning} and {@hero} {memorised|burned|kept|ignored} it.",
        "For the first time in {2..20} years, {@hero} felt {feeling}.",
        "The {role} of {city} had {lost|hidden|found|broken} the {object}, and only {@hero} knew {why|where|how|when}.",
        "{@hero} {climbed|opened|searched|guarded} the {building} while {@friend} {waited outside|kept watch|slept|cooked dinner}.",
        "Without a word, the {animal} led them {past|under|around|over} the {building} and into the {landscape}.",
        "{@hero} asked, \"{Why|How|When|Where} did you {find|hide|lose|take} the {object}?\" and {@friend} did not answer.",
        "There were {3..30} {doors|steps|windows|bridges} in the {building}, and behind the last one {waited|slept|sat} a {colour} {animal}.",
    ],
    closing: &[
        "In the end, {@hero} returned to {@place} and {never spoke of|often told the story of|wrote a song about} the {object}.",
        "From that day on, the {animal} {followed|guarded|visited} {@hero} wherever they went.",
        "And so {@hero} and {@friend} {became friends|parted ways|opened a shop|built a home} in {@place}.",
        "{Years|Many winters|Decades} later, children in {@place} still {sing|tell|remember} the tale of {@hero}.",
        "The {object} was never seen again, but {@hero} {was happy|kept smiling|slept well|felt free} at last.",
        "{@hero} closed their eyes and {smiled|listened to the rain|dreamed of the sea|thanked the stars}.",
    ],
    lexicon: &[
        ("hero", &["{first}", "{first}", "little {first}", "old {first}", "{first} the {role}"]),
        ("friend", &["{first}", "the {role} {first}", "a {role} named {first}", "{first}'s cousin"]),
        ("place", &["{city}", "the {colour} {landscape}", "the {village|town|farm|castle} of {city}", "{landscape_proper}"]),
        ("landscape_proper", &["Misty Hollow", "Stone Bridge", "Greenfield", "Raven Hill", "Owl Creek", "Lantern Bay"]),
        (
            "role",
            &[
                "baker", "fisherman", "shepherd", "painter", "blacksmith", "sailor", "farmer", "tailor", "librarian",
                "gardener", "miller", "weaver", "potter", "lighthouse keeper", "carpenter", "healer",
            ],
        ),
        (
            "animal",
            &[
                "fox", "raven", "cat", "dog", "owl", "wolf", "goat", "horse", "rabbit", "bear", "crow", "deer",
                "heron", "badger", "dragon", "mouse",
            ],
        ),
        ("animal_act", &["ran", "leapt", "flew", "crept", "howled", "danced", "wandered", "darted"]),
        ("ability", &["talk", "fly", "sing", "count to ten", "find lost things", "see the future", "open any lock"]),
        (
            "object",
            &[
                "key", "lantern", "coin", "feather", "ring", "compass", "book", "stone", "box", "flute", "map",
                "umbrella", "mirror", "kettle", "scarf", "bell",
            ],
        ),
        (
            "landscape",
            &[
                "forest", "meadow", "desert", "marsh", "mountains", "river", "hills", "fields", "valley", "woods",
                "snowfield", "orchard",
            ],
        ),
        ("building", &["tower", "mill", "barn", "chapel", "library", "cottage", "lighthouse", "bakery", "inn", "cave"]),
        (
            "quest",
            &[
                "find the {object}", "cross the {landscape}", "wake the {animal}", "return the {object}",
                "climb the {building}", "warn the {role}", "reach {city}",
            ],
        ),
        ("feeling", &["brave", "homesick", "hopeful", "free", "afraid", "proud", "curious", "at peace"]),
        ("feeling_verb", &["gasped", "laughed", "froze", "shivered", "cheered", "wept", "smiled", "shouted"]),
    ],
};
