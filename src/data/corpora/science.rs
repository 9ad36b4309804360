//! Science: facts, measurements and experiments across physics, chemistry, biology,
//! astronomy and geology, in the register of a textbook or a lab report.

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "{Researchers|Scientists|A team|Students} at the {institute} of {city} {measured|studied|tested|observed} {@subject}.",
        "In {physics|chemistry|biology|geology|astronomy}, {@subject} is {a classic|an important|a useful|a puzzling} example of {principle}.",
        "{@subject} has been studied since the {18|19|20}th century, when {person} first described {principle}.",
        "A simple {experiment|model|observation} shows how {@subject} {responds to|depends on|changes with} {variable}.",
        "The {properties|structure|behaviour|origin} of {@subject} {can be|is best|was first} explained by {principle}.",
        "{In the lab|In the field|At the observatory|In a recent experiment}, {@subject} was {heated|cooled|compressed|observed|sampled} under controlled conditions.",
    ],
    body: &[
        "{The sample|Each sample|The probe|The specimen} was {heated|cooled|held} at {20..900} degrees Celsius for {2..60} minutes.",
        "Measured with a {instrument}, its {measure}.",
        "{Water|Ethanol|Mercury|Liquid nitrogen|Seawater} {boils|freezes|condenses|evaporates} at a {different|lower|higher|fixed} temperature when the pressure {rises|falls|changes}.",
        "According to {principle}, the {quantity} {increases|decreases|stays constant} as the {variable} {increases|decreases|doubles}.",
        "{Plants|Bacteria|Fungi|Algae|Coral|Insects} {convert|absorb|release|store} {substance} {through|during|by} {process}.",
        "The {planet} {orbits|rotates|spins} {once every|in about} {2..400} {days|hours|years} and has {0..80} known moons.",
        "Light from {the star|the galaxy|the nebula|the comet} takes about {2..900} {years|minutes|days} to reach {the Earth|our telescopes|the probe}.",
        "{Granite|Basalt|Limestone|Sandstone|Marble} forms when {rock|magma|sediment|shells} {cools|is compressed|settles|is heated} over {thousands|millions|hundreds} of years.",
        "{Each|A single|Every} {particle} carries {a positive|a negative|no} charge and {attracts|repels|ignores} {particle}s.",
        "The {variable} was {varied|kept fixed|recorded} while {the|a second} {instrument} tracked the {quantity}.",
        "{Repeating|Extending|Reversing} the experiment {3..12} times gave an average {measure}, with an error of {0.1..4.9} percent.",
        "{Cells|Neurons|Leaves|Muscles|Roots} need {substance} to {grow|divide|produce energy|repair themselves}.",
        "{person} proposed that {@subject} {is made of|depends on|is caused by|is limited by} {particle}s, and later {experiments|measurements|observations} confirmed {it|this|the idea}.",
        "The {energy|momentum|mass|charge} of a closed system is conserved, so the {quantity} before and after the {collision|reaction|decay} is the same.",
        "{Sound|Light|Heat|A wave} travels {faster|slower} in {water|air|steel|glass|a vacuum} than in {water|air|steel|glass}.",
        "The {substance} {reacts|dissolves|burns|crystallises} {quickly|slowly|violently|completely} when mixed with {substance}.",
        "{Earthquakes|Volcanoes|Tides|Glaciers|Rivers} {shape|reshape|erode|build} the {landscape|coastline|valleys|crust} over {long|short|geological} periods.",
        "Under the {microscope|telescope|spectrometer}, {@subject} showed {clear|faint|regular|unexpected} {patterns|lines|layers|structures}.",
        "A {measure_noun} is {typical|unusual|expected|rare} for {@subject}.",
        "{The data|These results|The measurements} {support|contradict|refine|extend} the {theory|model|hypothesis} of {principle}.",
        "{DNA|Proteins|Enzymes|Hormones} {control|speed up|regulate|carry} {process} in {living cells|most organisms|the body|bacteria}.",
        "At a pressure of {1..200} {atmospheres|kilopascals|bar}, the {substance} {becomes|turns into|stays} a {solid|liquid|gas|plasma}.",
    ],
    closing: &[
        "These findings {help explain|clarify|raise new questions about} {principle}.",
        "Further {experiments|measurements|observations} will {test|refine|challenge} this {model|result|explanation}.",
        "{This is why|For this reason|That is how} {@subject} {matters|is useful|appears} in {engineering|medicine|climate science|everyday life}.",
        "The {result|experiment|observation} was {repeated|published|confirmed|presented} by {person} in {1850..2023}.",
        "{Scientists|Students|Engineers} still use {principle} to {predict|measure|explain} the {quantity} of {@subject}.",
    ],
    lexicon: &[
        (
            "subject",
            &[
                "the {planet}", "{substance}", "the {particle}", "{process}", "the behaviour of {substance}",
                "the {quantity} of {substance}", "the orbit of {planet}", "the {colour} {mineral}",
            ],
        ),
        ("planet", &["Mercury", "Venus", "Mars", "Jupiter", "Saturn", "Neptune", "Uranus", "the Moon", "Titan", "Europa"]),
        (
            "substance",
            &[
                "oxygen", "carbon dioxide", "nitrogen", "glucose", "sodium chloride", "iron oxide", "water vapour",
                "hydrogen", "calcium", "copper sulphate", "ammonia", "methane", "silicon", "helium",
            ],
        ),
        ("mineral", &["quartz", "feldspar", "mica", "calcite", "garnet", "olivine", "pyrite", "gypsum"]),
        ("particle", &["electron", "proton", "neutron", "ion", "photon", "molecule", "atom", "quark"]),
        (
            "process",
            &[
                "photosynthesis", "respiration", "evaporation", "diffusion", "oxidation", "fermentation",
                "erosion", "nuclear fusion", "osmosis", "condensation", "cell division", "digestion",
            ],
        ),
        (
            "principle",
            &[
                "Newton's laws of motion", "the conservation of energy", "the ideal gas law", "natural selection",
                "plate tectonics", "thermodynamics", "the theory of relativity", "Ohm's law", "Boyle's law",
                "the law of gravitation", "quantum mechanics", "chemical equilibrium", "the Doppler effect",
            ],
        ),
        (
            "quantity",
            &[
                "temperature", "pressure", "density", "mass", "velocity", "wavelength", "frequency", "acidity",
                "concentration", "voltage", "resistance", "volume", "energy", "brightness",
            ],
        ),
        ("variable", &["temperature", "pressure", "distance", "time", "altitude", "light intensity", "salinity", "depth"]),
        (
            "instrument",
            &[
                "thermometer", "spectrometer", "barometer", "microscope", "voltmeter", "balance", "telescope",
                "seismometer", "pH meter", "centrifuge", "laser",
            ],
        ),
        (
            "measure",
            &[
                "temperature was {20..900} kelvin", "mass was {0.1..99.9} grams", "velocity was {0.1..99.9} metres per second",
                "wavelength was {380..750} nanometres", "voltage was {0.1..24.9} volts", "pressure was {1..900} kilopascals",
                "frequency was {2..900} hertz", "volume was {0.1..9.9} litres", "energy was {1..500} joules",
                "density was {0.1..19.9} grams per cubic centimetre", "acidity was pH {1.0..13.9}",
            ],
        ),
        (
            "measure_noun",
            &[
                "temperature of {20..900} kelvin", "mass of {0.1..99.9} grams", "speed of {0.1..99.9} metres per second",
                "wavelength of {380..750} nanometres", "voltage of {0.1..24.9} volts", "pressure of {1..900} kilopascals",
                "frequency of {2..900} hertz", "density of {0.1..19.9} grams per cubic centimetre",
            ],
        ),
        ("institute", &["University", "Institute of Technology", "National Laboratory", "Observatory", "Academy"]),
    ],
};
