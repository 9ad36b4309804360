//! A tiny template language for the prose domains, and the composer that turns sentence
//! templates into one multi-sentence sample.
//!
//! A template is text with slots in braces; filling it draws every slot from the generator:
//! ```text
//!   {slot}        a fresh uniform draw from the word list named `slot`
//!   {@slot}       this sample's own value of `slot`: drawn at first use, then reused, so a
//!                 story keeps its hero and a trial keeps its drug across sentences
//!   {a|b|c}       one of the literal alternatives (each may hold slots: {a {x}|b})
//!   {12..90}      an integer, uniform in [12, 90]
//!   {0.5..9.5}    a number with as many decimals as the bounds, uniform in the range
//! ```
//! A chosen word is filled again, so word lists may hold slots too (`"{first} {last}"`).
//! Slot names are looked up in the domain's lexicon first, then in the shared one
//! ([`super::lexicon::SHARED`]): that is how psychology and medicine come to share words.
//!
//! A sample is one opening sentence, a few body sentences in random order and, usually, a
//! closing sentence, stopped once it reaches a length drawn from the domain's range, so
//! samples differ in length and in sentence order as well as in their words.

use rand::seq::SliceRandom;
use rand::Rng;

/// Named word lists: `("city", &["Lyon", "Porto", …])`.
pub type Lexicon = [(&'static str, &'static [&'static str])];

/// The sentence templates of one prose domain, by position in a sample.
pub struct Templates {
    /// One of these opens every sample.
    pub opening: &'static [&'static str],
    /// A random subset of these, in random order, makes the middle.
    pub body: &'static [&'static str],
    /// One of these usually closes the sample.
    pub closing: &'static [&'static str],
    /// Where the slots come from (then the shared lexicon).
    pub lexicon: &'static Lexicon,
}

/// Fills templates for one sample, remembering its `{@slot}` values.
pub struct Filler<'a> {
    lexicons: [&'a Lexicon; 2],
    sticky: Vec<(String, String)>,
}

impl<'a> Filler<'a> {
    /// A filler that looks slots up in `domain` first, then in `shared`.
    pub fn new(domain: &'a Lexicon, shared: &'a Lexicon) -> Filler<'a> {
        Filler { lexicons: [domain, shared], sticky: Vec::new() }
    }

    /// `template` with every slot drawn from `rng`. Panics on an unknown slot or unbalanced
    /// braces: templates are static data, so that is a bug in this crate, not bad input.
    pub fn fill(&mut self, template: &str, rng: &mut impl Rng) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close =
                open + matching_brace(&rest[open..]).unwrap_or_else(|| panic!("unbalanced braces in {template:?}"));
            let inner = &rest[open + 1..close];
            let value = self.expand(inner, rng);
            out.push_str(&value);
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// One slot's content (without its braces) → its text.
    fn expand(&mut self, inner: &str, rng: &mut impl Rng) -> String {
        let alternatives = split_top_level(inner);
        if alternatives.len() > 1 {
            let pick = alternatives[rng.gen_range(0..alternatives.len())];
            return self.fill(pick, rng);
        }
        if let Some(name) = inner.strip_prefix('@') {
            if let Some((_, v)) = self.sticky.iter().find(|(k, _)| k == name) {
                return v.clone();
            }
            let v = self.draw(name, rng);
            self.sticky.push((name.to_string(), v.clone()));
            return v;
        }
        if let Some(v) = number_in_range(inner, rng) {
            return v;
        }
        self.draw(inner, rng)
    }

    /// A fresh draw from the word list `name`, itself filled.
    fn draw(&mut self, name: &str, rng: &mut impl Rng) -> String {
        let list = self
            .lexicons
            .iter()
            .find_map(|lex| lex.iter().find(|(k, _)| *k == name).map(|(_, words)| *words))
            .unwrap_or_else(|| panic!("template slot {{{name}}} is in no lexicon"));
        let word = list.choose(rng).expect("word lists are non-empty");
        self.fill(word, rng)
    }
}

/// Index of the `}` that closes the `{` at `s[0]`, counting nested braces.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at the `|`s that are not inside nested braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            '|' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// `"12..90"` → an integer in [12, 90]; `"0.5..9.5"` → a number with one decimal. None if
/// `inner` is not a range.
fn number_in_range(inner: &str, rng: &mut impl Rng) -> Option<String> {
    let (lo, hi) = inner.split_once("..")?;
    let decimals = lo.split_once('.').map_or(0, |(_, frac)| frac.len());
    let scale = 10i64.pow(decimals as u32);
    let parse = |s: &str| s.parse::<f64>().ok().map(|v| (v * scale as f64).round() as i64);
    let (lo, hi) = (parse(lo)?, parse(hi)?);
    let v = rng.gen_range(lo..=hi);
    if decimals == 0 {
        Some(v.to_string())
    } else {
        Some(format!("{}.{:0width$}", v / scale, v % scale, width = decimals))
    }
}

/// The first letter in upper case (templates may open with a slot that is lower case).
pub fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One sample: an opening, body sentences in random order, usually a closing, joined by
/// spaces; stops adding body sentences once the text reaches `target` bytes, and never goes
/// past `max_bytes` unless a single sentence does.
pub fn compose(t: &Templates, shared: &'static Lexicon, target: usize, max_bytes: usize, rng: &mut impl Rng) -> String {
    let mut filler = Filler::new(t.lexicon, shared);
    let mut sentences = vec![capitalise(&filler.fill(t.opening.choose(rng).expect("non-empty"), rng))];
    let mut len = sentences[0].len();
    // A random order of distinct body templates: sentence order varies, nothing repeats.
    let mut order: Vec<usize> = (0..t.body.len()).collect();
    order.shuffle(rng);
    let closing = if rng.gen_bool(0.7) { Some(t.closing.choose(rng).expect("non-empty")) } else { None };
    let closing = closing.map(|c| capitalise(&filler.fill(c, rng)));
    let reserve = closing.as_ref().map_or(0, |c| c.len() + 1);
    for i in order {
        if len + reserve >= target {
            break;
        }
        let s = capitalise(&filler.fill(t.body[i], rng));
        if len + 1 + s.len() + reserve > max_bytes {
            continue;
        }
        len += 1 + s.len();
        sentences.push(s);
    }
    if let Some(c) = closing {
        if len + 1 + c.len() <= max_bytes {
            sentences.push(c);
        }
    }
    sentences.join(" ")
}
