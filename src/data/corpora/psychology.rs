//! Psychology: findings, therapy and cognitive biases. Draws on the shared `clinical`,
//! `treatment`, `participants`, `trial` and `outcome` pools, so it overlaps with medicine
//! (patients, symptoms, anxiety, treatment, trial …) as the real fields do.

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "A {trial} of {60..900} {participants} examined whether {@therapy} reduces {@condition}.",
        "Psychologists at {person}'s lab in {city} studied how {bias} shapes {decisions|memory|judgement|attention}.",
        "{@condition} is one of the most common reasons {participants} seek {therapy|counselling|psychological help}.",
        "In a classic experiment, {person} showed that {bias} appears even when people are {warned|paid|tired|distracted}.",
        "A new study of {participants} in {city} asked how {stressor} affects {@condition} and {cognition}.",
        "{Therapists|Clinical psychologists|Counsellors|Researchers} often treat {@condition} with {@therapy}.",
        "The patient, a {20..70}-year-old {teacher|student|nurse|engineer|driver|manager}, reported {@condition} and {clinical} for {2..18} months.",
    ],
    body: &[
        "{Participants|Patients|Volunteers} who received {@therapy} reported {less|fewer|milder|reduced} {clinical} after {4..16} weeks.",
        "The {control group|comparison group|waiting-list group} received {treatment} instead.",
        "{Scores on|Ratings of|Measures of} {@condition} {fell|dropped|decreased|changed} by {5..60} percent over the {trial|study|programme}.",
        "{Cognitive|Working} {load|memory|flexibility|control} was measured with a {task} before and after the {sessions|treatment|intervention}.",
        "{bias_cap} leads people to {bias_effect}.",
        "{When|If|Because} people feel {emotion}, they {tend to|often|rarely} {behaviour}.",
        "The {therapist|clinician|researcher} used {technique} to help the patient {goal}.",
        "{stressor_cap} was linked to {higher|lower|more variable} {outcome} in {participants}.",
        "{About|Nearly|Roughly|Almost} {10..70} percent of {participants} showed signs of {clinical} at the start of the study.",
        "Signs of {bias} were {stronger|weaker|absent|reversed} when {participants} were {tired|rewarded|observed|anonymous}.",
        "{Symptoms|Complaints|Episodes} of {@condition} were {assessed|rated|recorded|tracked} every {week|month|session|day} with a {questionnaire|interview|diary|scale}.",
        "{Sleep|Exercise|Social support|Routine|Mindfulness} {predicted|buffered|moderated|explained} the link between {stressor} and {clinical}.",
        "{Over|During|Across} {6..24} sessions, the patient learned to {goal} and to notice {automatic thoughts|early warning signs|bodily tension|avoidance}.",
        "{person} argued that {@condition} is maintained by {avoidance|rumination|worry|negative beliefs|poor sleep}.",
        "{Children|Adolescents|Adults|Older adults} {with|without} {@condition} {remembered|recognised|rated|recalled} {fewer|more} {words|faces|events|details} in the {task}.",
        "The {trial|study} found that {outcome} {change} in the group given {@therapy}.",
        "Self-reported {stress|anxiety|mood|confidence|motivation} {rose|fell|stayed stable} during {exam periods|the pandemic|night shifts|the treatment}.",
        "{Cognitive|Behavioural|Emotional} {avoidance|bias|regulation|reappraisal} {explained|predicted|mediated} {12..64} percent of the {change|variance|improvement}.",
        "A follow-up after {3..24} months showed that the {gains|benefits|effects} {lasted|faded|grew|partly remained}.",
        "{Participants|Patients} with {clinical} {were more likely to|were less likely to|did not} {behaviour}.",
    ],
    closing: &[
        "The authors conclude that {@therapy} is {a promising|an effective|a modest|an uncertain} treatment for {@condition}.",
        "{Larger|Longer|Replication} studies are needed before {@therapy} can be recommended for {participants}.",
        "The findings suggest that {bias} {matters|plays a role|is central} in {@condition}.",
        "{These results|Such findings|The data} {support|challenge|refine} {theory} of {@condition}.",
        "{Clinicians|Therapists|Practitioners} may use these findings to {{goal}|adapt treatment|screen for {clinical}}.",
    ],
    lexicon: &[
        ("condition", &["{clinical}", "social anxiety", "generalised anxiety", "mild depression", "obsessive thinking", "phobia"]),
        (
            "therapy",
            &[
                "{treatment}", "cognitive behavioural therapy", "exposure therapy", "acceptance and commitment therapy",
                "interpersonal therapy", "behavioural activation",
            ],
        ),
        (
            "bias",
            &[
                "confirmation bias", "the anchoring effect", "loss aversion", "the availability heuristic",
                "the sunk cost fallacy", "hindsight bias", "the halo effect", "negativity bias",
                "overconfidence", "the framing effect", "the bystander effect",
            ],
        ),
        (
            "bias_cap",
            &[
                "Confirmation bias", "The anchoring effect", "Loss aversion", "The availability heuristic",
                "The sunk cost fallacy", "Hindsight bias", "The halo effect", "Negativity bias",
            ],
        ),
        (
            "bias_effect",
            &[
                "seek evidence that fits their beliefs", "rely too much on the first number they see",
                "fear losses more than they value gains", "judge risks by how easily examples come to mind",
                "keep investing in failing plans", "believe they knew the outcome all along",
                "rate attractive people as more competent", "remember criticism longer than praise",
            ],
        ),
        ("emotion", &["anxious", "sad", "angry", "calm", "lonely", "confident", "overwhelmed", "ashamed"]),
        (
            "behaviour",
            &[
                "avoid social situations", "sleep badly", "ruminate", "ask for help", "overestimate risks",
                "remember negative events", "procrastinate", "withdraw from friends", "make riskier choices",
            ],
        ),
        (
            "technique",
            &[
                "cognitive restructuring", "graded exposure", "a thought diary", "breathing exercises",
                "behavioural experiments", "relaxation training", "motivational interviewing", "role play",
            ],
        ),
        (
            "goal",
            &[
                "challenge negative thoughts", "face feared situations", "regulate emotions", "improve sleep",
                "set realistic goals", "reduce avoidance", "cope with stress",
            ],
        ),
        (
            "stressor",
            &["work stress", "social isolation", "lack of sleep", "financial pressure", "exam stress", "shift work", "screen time"],
        ),
        (
            "stressor_cap",
            &["Work stress", "Social isolation", "Lack of sleep", "Financial pressure", "Exam stress", "Shift work"],
        ),
        ("cognition", &["attention", "working memory", "decision making", "self-control", "cognitive flexibility"]),
        (
            "task",
            &["Stroop task", "memory test", "reaction-time task", "n-back task", "card-sorting task", "attention test"],
        ),
        ("theory", &["cognitive models", "learning theories", "attachment theories", "stress models"]),
    ],
};
