//! Medicine: symptoms, diagnoses, treatments and trials. Shares the `clinical`, `treatment`,
//! `participants`, `trial` and `outcome` pools with psychology, as the real fields share
//! words (patient, symptoms, anxiety, treatment, trial, cognitive …).

use super::templates::Templates;

pub static TEMPLATES: Templates = Templates {
    opening: &[
        "A {25..85}-year-old {man|woman|patient} presented to the {department} with {symptom} and {clinical}.",
        "A {trial} of {80..2000} {participants} compared {@drug} with {treatment} for {@disease}.",
        "{@disease} affects about {1..30} in every {100|1000|10000} adults and often begins with {symptom}.",
        "Doctors at {city} {General|University|Children's|Regional} Hospital reviewed {40..600} cases of {@disease}.",
        "The patient had a history of {@disease} and was admitted after {3..14} days of {symptom}.",
        "{Guidelines|Clinicians|Specialists} recommend {@drug} as a first treatment for {@disease}.",
        "In a {trial}, patients with {@disease} and {clinical} received {@drug} or a placebo.",
    ],
    body: &[
        "On examination, {the|her|his} {vital} was {40..190} and the {organ} was {tender|enlarged|normal|inflamed}.",
        "Blood tests showed {raised|low|normal} {lab} and a {mildly|markedly|slightly} {raised|reduced} {lab}.",
        "The patient was started on {@drug} at {5..500} milligrams {once|twice|three times} daily.",
        "{symptom_cap} {improved|resolved|persisted|worsened} within {2..21} days of treatment.",
        "{Side effects|Adverse events|Complications} included {side_effect} and {side_effect} in {2..30} percent of patients.",
        "A {scan} of the {organ} {showed|ruled out|suggested|confirmed} {finding}.",
        "The {trial|study} found that {outcome} {change} in the {@drug} group compared with {treatment}.",
        "Patients with {clinical} {needed|received|were offered} {treatment} alongside {@drug}.",
        "{Anxiety|Depression|Insomnia|Fatigue|Cognitive decline} is common in {@disease} and {worsens|complicates|delays} recovery.",
        "The {dose|treatment|therapy} was {reduced|stopped|increased|changed} because of {side_effect}.",
        "{Risk factors|Known causes|Triggers} for {@disease} include {risk}, {risk} and {risk}.",
        "After {2..12} weeks, {30..90} percent of patients in the treatment group had {fewer|milder|no} {symptoms|relapses|attacks}.",
        "The {nurse|physician|surgeon|pharmacist|general practitioner} {checked|adjusted|reviewed|explained} the {dose|diagnosis|treatment plan|test results}.",
        "A {biopsy|culture|blood test|urine test|lumbar puncture} {confirmed|excluded|suggested} {@disease}.",
        "{Early|Prompt|Delayed|Accurate} diagnosis of {@disease} {reduces|increases} the risk of {complication}.",
        "The {vital} {fell|rose|settled} to {50..180} after {fluids|rest|oxygen|the first dose}.",
        "The patient was discharged after {2..20} days with {@drug} and a follow-up {appointment|scan|blood test} in {2..12} weeks.",
        "{Symptoms|Scores|Measurements} were recorded {daily|weekly|at every visit} and compared with {baseline|the placebo group|earlier trials}.",
        "The {department} team noted {symptom} and {finding} on the {second|third|fourth} day.",
        "{Patients|Participants} over {50..80} years {responded|did not respond|responded less} to {@drug}.",
    ],
    closing: &[
        "{@drug} {appears|seems|proved} {safe and effective|modestly effective|no better than placebo} for {@disease}.",
        "The authors recommend {larger trials|longer follow-up|earlier screening|closer monitoring} for patients with {@disease}.",
        "The patient {made a full recovery|recovered slowly|remains under review|returned to work} after {2..16} weeks.",
        "{Clinicians|Doctors|Nurses} should watch for {complication} in patients treated for {@disease}.",
        "This case shows why {symptom} and {clinical} should not be ignored.",
    ],
    lexicon: &[
        (
            "disease",
            &[
                "pneumonia", "type 2 diabetes", "asthma", "hypertension", "migraine", "heart failure", "anaemia",
                "rheumatoid arthritis", "epilepsy", "hepatitis", "kidney disease", "sepsis", "tuberculosis",
                "multiple sclerosis", "{clinical}",
            ],
        ),
        (
            "drug",
            &[
                "metformin", "amoxicillin", "ibuprofen", "insulin", "prednisolone", "sertraline", "aspirin",
                "salbutamol", "lisinopril", "paracetamol", "a beta blocker", "an antibiotic", "a statin",
            ],
        ),
        (
            "symptom",
            &[
                "fever", "chest pain", "shortness of breath", "a persistent cough", "abdominal pain", "dizziness",
                "headaches", "nausea", "swollen joints", "weight loss", "fatigue", "a rash", "palpitations",
            ],
        ),
        (
            "symptom_cap",
            &["Fever", "Chest pain", "Shortness of breath", "The cough", "Abdominal pain", "Dizziness", "Nausea", "The rash"],
        ),
        ("department", &["emergency department", "outpatient clinic", "cardiology ward", "general practice", "intensive care unit"]),
        ("vital", &["heart rate", "blood pressure", "respiratory rate", "oxygen saturation", "pulse"]),
        ("organ", &["liver", "lungs", "heart", "kidneys", "abdomen", "spleen", "brain", "thyroid"]),
        ("lab", &["white cell count", "haemoglobin", "blood glucose", "creatinine", "C-reactive protein", "sodium"]),
        ("scan", &["chest X-ray", "CT scan", "MRI scan", "ultrasound", "ECG"]),
        (
            "finding",
            &["inflammation", "a small clot", "fluid", "a shadow", "no abnormality", "a fracture", "scarring", "a cyst"],
        ),
        (
            "side_effect",
            &["nausea", "headache", "dizziness", "insomnia", "a rash", "fatigue", "diarrhoea", "anxiety", "weight gain"],
        ),
        ("risk", &["smoking", "obesity", "age", "family history", "inactivity", "stress", "poor diet", "alcohol"]),
        ("complication", &["infection", "kidney failure", "stroke", "relapse", "readmission", "falls", "depression"]),
    ],
};
