//! Cooking: recipes, techniques and kitchen notes — quantities, temperatures, times and the
//! verbs of a method. One of E5's two added domains (beside sentiment): its numbers and
//! imperatives sit between math's arithmetic and the prose domains' narration.

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "This {@dish} serves {2..8} and takes about {15..90} minutes from start to finish.",
        "{@cook}'s {@dish} starts with {ingredient} and a {hot|warm|heavy|wide} pan.",
        "Preheat the oven to {160..240} degrees and line a tray with {baking paper|foil|a little oil}.",
        "A good {@dish} needs {ripe|fresh|dried|toasted|cold} {ingredient} and patience.",
        "For the {@dish}, weigh out {100..900} grams of {ingredient} and {1..4} {spoons|cups|handfuls} of {ingredient}.",
        "{@cook} learned this {@dish} in {city}, where it is eaten on {weekday}s.",
    ],
    body: &[
        "Chop {1..4} {onions|carrots|cloves of garlic|peppers|shallots} and {fry|soften|brown|sweat} them in {butter|olive oil|ghee} for {3..12} minutes.",
        "Stir in {ingredient} and {ingredient}, then season with {salt|pepper|cumin|paprika|nutmeg|thyme}.",
        "{Simmer|Bake|Roast|Poach|Steam} for {5..60} minutes, until the {sauce|crust|vegetables|rice|meat} is {tender|golden|thick|crisp|cooked through}.",
        "Whisk {2..6} eggs with {50..300} millilitres of {milk|cream|stock|water} and a pinch of {salt|sugar}.",
        "Knead the dough for {5..15} minutes and leave it to rise for {1..3} hours in a {warm|dry|covered} bowl.",
        "{Add|Fold in|Sprinkle over|Grate in} {20..200} grams of {ingredient} and {taste|stir|check the seasoning} again.",
        "Do not {rush|skip|stir} the {resting|browning|reducing|chilling}: it is what gives the {@dish} its {flavour|texture|colour}.",
        "If the {sauce|batter|soup|dough} is too {thick|thin|dry|wet}, add a {spoon|splash|little} of {water|stock|flour|milk}.",
        "Bring {1..3} litres of {salted water|stock|milk} to the boil and cook the {pasta|rice|lentils|potatoes} for {8..25} minutes.",
        "Cut the {butter|chicken|tofu|fish|aubergine} into {1..4} centimetre pieces and {marinate|toss|coat} them in {ingredient}.",
        "Turn the heat down to {low|medium|a gentle simmer} and cover the pan for {5..20} minutes.",
        "Serve the {@dish} {hot|warm|cold|at room temperature} with {bread|rice|a green salad|yoghurt|lemon wedges}.",
        "Leftovers keep for {2..5} days in the fridge or {1..3} months in the freezer.",
        "{@cook} adds {a squeeze of lemon|fresh herbs|toasted seeds|a knob of butter} just before serving.",
    ],
    closing: &[
        "Serve at once and enjoy the {@dish}.",
        "The {@dish} tastes even better the next day.",
        "Garnish with {parsley|coriander|chives|basil|mint} and serve with {bread|rice|salad}.",
        "{@cook} says the secret is {patience|good butter|a hot pan|fresh spices|enough salt}.",
    ],
    lexicon: &[
        ("cook", &["Chef {last}", "{first}", "Grandma {first}", "{first} {last}"]),
        (
            "dish",
            &[
                "risotto", "lentil soup", "apple tart", "curry", "omelette", "bread", "stew", "pancakes",
                "roast chicken", "tomato sauce", "dumplings", "flatbread", "chocolate cake", "fish pie",
            ],
        ),
        (
            "ingredient",
            &[
                "flour", "butter", "sugar", "rice", "tomatoes", "garlic", "onions", "cheese", "lemon juice",
                "chickpeas", "spinach", "mushrooms", "cream", "honey", "ginger", "coconut milk", "yoghurt",
            ],
        ),
    ],
};
