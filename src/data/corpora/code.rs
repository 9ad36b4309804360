//! Code: Python-like functions and classes, built by small generators rather than fixed
//! templates, because code has structure (indentation, matching names) that slot filling
//! would break. Each generator picks its identifiers (verb_noun function names, plural
//! collections, singular loop variables), constants and operators from the generator, so two
//! samples of the same shape still differ in most lines.
//!
//! Shapes: accumulate in a loop, filter, running maximum, counting dict, class with methods,
//! while loop, string building, recursion, comprehension, try/except, if/elif/else ladder,
//! default arguments, dict lookup, enumerate, zip, sort with a key, early-return guard,
//! running average, nested loops. A sample joins one to three of them, often with a call.

use rand::seq::SliceRandom;
use rand::Rng;

/// One Python-like sample: snippets separated by a blank line, until `target` bytes.
pub fn sample(rng: &mut impl Rng, target: usize, max_bytes: usize) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut len = 0;
    for _ in 0..4 {
        let snippet = snippet(rng);
        if !parts.is_empty() && len + 2 + snippet.len() > max_bytes {
            break;
        }
        len += snippet.len() + if parts.is_empty() { 0 } else { 2 };
        parts.push(snippet);
        if len >= target {
            break;
        }
    }
    parts.join("\n\n")
}

const VERBS: &[&str] = &[
    "compute",
    "count",
    "find",
    "load",
    "parse",
    "update",
    "merge",
    "filter",
    "build",
    "collect",
    "score",
    "clean",
    "check",
    "sum",
    "scale",
    "group",
    "rank",
    "split",
    "normalize",
    "encode",
    "read",
    "format",
    "validate",
    "sort",
];
const NOUNS: &[&str] = &[
    "price", "score", "order", "record", "item", "user", "value", "weight", "token", "line", "row", "sample",
    "reading", "event", "payment", "word", "node", "file", "grade", "step", "batch", "request", "packet", "sensor",
];
const CLASSES: &[&str] = &[
    "Account",
    "Inventory",
    "Counter",
    "Queue",
    "Matrix",
    "Parser",
    "Cache",
    "Sensor",
    "Order",
    "Player",
    "Graph",
    "Budget",
    "Timer",
    "Library",
    "Robot",
    "Stack",
    "Basket",
    "Ledger",
];
const OPS: &[&str] = &["+", "-", "*", "//", "%"];
const CMP: &[&str] = &["<", ">", "<=", ">=", "==", "!="];

/// A plural collection name ("prices"), its singular loop variable ("price") and a verb.
struct Names {
    verb: &'static str,
    noun: &'static str,
    other: &'static str,
}

fn names(rng: &mut impl Rng) -> Names {
    let noun = *NOUNS.choose(rng).expect("non-empty");
    let mut other = *NOUNS.choose(rng).expect("non-empty");
    while other == noun {
        other = NOUNS.choose(rng).expect("non-empty");
    }
    Names { verb: VERBS.choose(rng).expect("non-empty"), noun, other }
}

fn pick<'a>(rng: &mut impl Rng, xs: &[&'a str]) -> &'a str {
    xs.choose(rng).expect("non-empty")
}

/// A small literal list: `[3, 14, 15]`.
fn int_list(rng: &mut impl Rng) -> String {
    let n = rng.gen_range(2..=6);
    let xs: Vec<String> = (0..n).map(|_| rng.gen_range(0..100).to_string()).collect();
    format!("[{}]", xs.join(", "))
}

/// One snippet of one of the shapes above.
fn snippet(rng: &mut impl Rng) -> String {
    let Names { verb, noun, other } = names(rng);
    let (a, b) = (rng.gen_range(1..50), rng.gen_range(2..20));
    let op = pick(rng, OPS);
    let cmp = pick(rng, CMP);
    let f = format!("{verb}_{noun}s");
    let body = match rng.gen_range(0..19) {
        0 => format!(
            "def {f}({noun}s):\n    total = {a}\n    for {noun} in {noun}s:\n        total = total {op} {noun} * {b}\n    return total"
        ),
        1 => format!(
            "def {f}({noun}s, limit={a}):\n    result = []\n    for {noun} in {noun}s:\n        if {noun} {cmp} limit:\n            result.append({noun})\n    return result"
        ),
        2 => format!(
            "def max_{noun}({noun}s):\n    best = {noun}s[0]\n    for {noun} in {noun}s[1:]:\n        if {noun} > best:\n            best = {noun}\n    return best"
        ),
        3 => format!(
            "def count_{noun}s({noun}s):\n    counts = {{}}\n    for {noun} in {noun}s:\n        key = {noun} % {b}\n        counts[key] = counts.get(key, 0) + 1\n    return counts"
        ),
        4 => {
            let class = pick(rng, CLASSES);
            format!(
                "class {class}:\n    def __init__(self, {noun}s=None):\n        self.{noun}s = {noun}s or []\n        self.{other} = {a}\n\n    def add(self, {noun}):\n        self.{noun}s.append({noun})\n        self.{other} {op}= {b}\n\n    def size(self):\n        return len(self.{noun}s)"
            )
        }
        5 => format!(
            "def {verb}_{other}(n):\n    steps = 0\n    while n > {b}:\n        n = n // 2 if n % 2 == 0 else n * 3 + 1\n        steps += 1\n    return steps"
        ),
        6 => format!(
            "def format_{noun}s({noun}s, sep=\"{}\"):\n    text = \"\"\n    for i, {noun} in enumerate({noun}s):\n        if i > 0:\n            text += sep\n        text += str({noun})\n    return text",
            pick(rng, &[", ", "; ", " | ", "-", " "])
        ),
        7 => format!(
            "def {verb}_{other}(n):\n    if n <= {}:\n        return {}\n    return n {} {verb}_{other}(n - 1)",
            rng.gen_range(0..3),
            rng.gen_range(1..3),
            pick(rng, &["*", "+"])
        ),
        8 => format!(
            "def {f}({noun}s):\n    return [{noun} {op} {b} for {noun} in {noun}s if {noun} {cmp} {a}]"
        ),
        9 => format!(
            "def {verb}_{other}(text):\n    try:\n        value = int(text)\n    except ValueError:\n        return {}\n    return value {op} {b}",
            pick(rng, &["None", "0", "-1", "text"])
        ),
        10 => format!(
            "def grade_{noun}({noun}):\n    if {noun} >= {}:\n        return \"high\"\n    elif {noun} >= {}:\n        return \"medium\"\n    else:\n        return \"low\"",
            50 + a,
            a
        ),
        11 => format!(
            "def {verb}_{other}({noun}, rate={}.{}, bonus={b}):\n    {other} = {noun} * rate + bonus\n    return round({other}, {})",
            rng.gen_range(0..3),
            rng.gen_range(1..10),
            rng.gen_range(0..4)
        ),
        12 => format!(
            "{}S = {{\"{noun}\": {a}, \"{other}\": {b}, \"default\": {}}}\n\ndef lookup_{noun}(name):\n    return {}S.get(name, {}S[\"default\"])",
            noun.to_uppercase(),
            rng.gen_range(0..10),
            noun.to_uppercase(),
            noun.to_uppercase()
        ),
        13 => format!(
            "def index_of_{noun}({noun}s, target):\n    for i, {noun} in enumerate({noun}s):\n        if {noun} == target:\n            return i\n    return -1"
        ),
        14 => format!(
            "def {verb}_pairs({noun}s, {other}s):\n    out = []\n    for {noun}, {other} in zip({noun}s, {other}s):\n        out.append({noun} {op} {other})\n    return out"
        ),
        15 => format!(
            "def sort_{noun}s({noun}s):\n    return sorted({noun}s, key=lambda {noun}: {noun}[{}], reverse={})",
            rng.gen_range(0..3),
            pick(rng, &["True", "False"])
        ),
        16 => format!(
            "def {verb}_{noun}({noun}, {other}):\n    if not {noun}:\n        raise ValueError(\"empty {noun}\")\n    if {other} {cmp} {a}:\n        return {noun}\n    return {noun}[:{other}]"
        ),
        17 => format!(
            "def mean_{noun}({noun}s):\n    if len({noun}s) == 0:\n        return 0.0\n    total = sum({noun}s)\n    return total / len({noun}s)"
        ),
        _ => format!(
            "def {verb}_grid(rows, cols):\n    grid = []\n    for r in range(rows):\n        row = []\n        for c in range(cols):\n            row.append(r {op} c + {a})\n        grid.append(row)\n    return grid"
        ),
    };
    // A comment line now and then, as real code has.
    let comment = if rng.gen_bool(0.3) {
        format!(
            "# {} the {noun}s {}\n",
            pick(rng, &["Return", "Compute", "Collect", "Check", "Build"]),
            pick(rng, &["quickly", "from the input", "for the report", "in one pass", "before saving"])
        )
    } else {
        String::new()
    };
    let call = if rng.gen_bool(0.5) { call_of(&body, rng) } else { String::new() };
    format!("{comment}{body}{call}")
}

/// A line that calls the snippet's first function with arguments that fit its parameters
/// (a list for a plural name, a number otherwise); empty if the snippet defines none.
fn call_of(body: &str, rng: &mut impl Rng) -> String {
    let Some(start) = body.find("def ") else { return String::new() };
    let signature = &body[start + 4..];
    let (name, rest) = signature.split_once('(').expect("a def has a parameter list");
    let params = rest.split_once(')').expect("a parameter list closes").0;
    let args: Vec<String> = params
        .split(", ")
        .filter(|p| !p.is_empty() && !p.contains('='))
        .map(|p| {
            if p.ends_with('s') && p != "rows" && p != "cols" {
                int_list(rng)
            } else {
                rng.gen_range(1..60).to_string()
            }
        })
        .collect();
    let target = pick(rng, &["print(", "result = ", "assert ", "value = "]);
    let close = if target == "print(" { ")" } else { "" };
    format!("\n\n{target}{name}({}){close}", args.join(", "))
}
