//! Sports: match reports — teams, scores, minutes, players and league tables. One of E5's two
//! added domains (beside sentiment): narration like story and history, but with its own
//! names, numbers and verbs.

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "{@team} beat {@rival} {1..5}-{0..3} on {weekday} in front of {2..80} thousand fans.",
        "{@player} scored {twice|a late winner|a hat-trick|from the spot} as {@team} {won|drew|lost} in {city}.",
        "{@rival} and {@team} drew {0..3}-{0..3} in a {tense|scrappy|thrilling|goalless|bad-tempered} {derby|final|league match|cup tie}.",
        "After {3..12} games without a win, {@team} finally {beat|outplayed|edged past} {@rival}.",
        "The {cup final|title race|league season|tournament} in {city} ended with {@team} on top.",
    ],
    body: &[
        "{@player} opened the scoring in the {2..44}th minute with a {header|volley|free kick|low shot|penalty}.",
        "{@rival} equalised just after half-time when {player} {finished|headed in|tapped in|curled in} a {cross|corner|rebound}.",
        "The {coach|manager|captain} of {@team} said the {players|squad|defence|midfield} had {worked hard|shown character|been unlucky|played their best}.",
        "{@team} {kept|lost} possession for {40..75} percent of the game and had {3..20} shots on target.",
        "A {red card|yellow card|penalty|disallowed goal} in the {46..89}th minute {changed|decided|ended} the {match|game|contest}.",
        "{@player} has now scored {5..30} goals in {10..38} {matches|games|appearances} this season.",
        "The win lifts {@team} to {first|second|third|fourth|fifth} in the {league|table|group}, {1..9} points {clear|behind}.",
        "{@rival}'s {goalkeeper|defender|striker|winger} {player} was {injured|sent off|substituted|booked} before the break.",
        "{Fans|Supporters|Crowds} in {city} {sang|cheered|booed|waited} long after the final whistle.",
        "The {coach|manager} made {1..5} changes to the side that {lost|won|drew} last {weekday}.",
        "{@team} have {won|lost|drawn} {2..9} of their last {5..12} {matches|games} at home.",
        "{Rain|Wind|Heat|Snow} made the {pitch|track|court} {heavy|slippery|fast|uneven} for both {teams|sides}.",
    ],
    closing: &[
        "{@team} play {@rival} again in {2..6} weeks.",
        "Next {weekday}, {@team} travel to {city} for the {semi-final|derby|return leg|last game of the season}.",
        "{@player} was named player of the match.",
        "The {coach|manager} of {@rival} said the {result|defeat|draw} was {deserved|unfair|a lesson|hard to take}.",
    ],
    lexicon: &[
        ("team", &["{city} United", "{city} City", "FC {city}", "{city} Rovers", "Real {city}", "the {colour} Lions"]),
        ("rival", &["{city} Athletic", "{city} Wanderers", "Sporting {city}", "{city} Town", "the {colour} Eagles"]),
        ("player", &["{first} {last}", "{last}", "captain {last}", "the young {last}"]),
    ],
};
