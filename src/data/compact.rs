//! A compact vocabulary: only the ids a corpus uses, renumbered 0..n.
//!
//! GPT-2 has 50,257 tokens, but a synthetic corpus may use only a few thousand of them. An LM
//! head is one row of weights per id, so mapping the ids that occur onto a dense range makes
//! the head (and the embedding) thousands of rows instead of 50,257, with the same text.
//! ```text
//!   inner ids of the corpus    {11, 262, 290, 995, 15496, …}   (sorted)
//!   compact ids                 0 = padding, 1 = unknown, 2 → 11, 3 → 262, 4 → 290, …
//! ```
//! Encoding: inner tokeniser, then inner id → compact id; an inner id the corpus never used
//! becomes `UNKNOWN` (1) and decodes to U+FFFD. Decoding: compact id → inner id → the inner
//! tokeniser's text. The padding id 0 stands for the inner tokeniser's padding id, if it has
//! one (so GPT-2's `<|endoftext|>` in a text becomes 0 and decodes back to it).
//!
//! The file format (`save`/`load`), one seen id per line, inner ids ascending:
//! ```text
//! tinymoe-compact v1
//! inner gpt2
//! # compact id = inner id    # the token; 0 is padding, 1 is unknown
//! 2 = 11    # ","
//! 3 = 262    # "␣the"
//! ```
//! `inner` is a tokeniser spec as accepted by [`crate::data::tokenizer::from_spec`]; everything
//! after `#` is a comment.

use crate::data::tokenizer::{from_spec, Tokenizer};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The first line of a saved compact vocabulary.
pub const HEADER: &str = "tinymoe-compact v1";

/// A tokeniser restricted to the ids a corpus uses, renumbered densely.
pub struct Compact {
    inner: Box<dyn Tokenizer>,
    /// How to rebuild `inner`: a spec for `from_spec`, written to the file.
    inner_spec: String,
    /// compact id `2 + k` ↔ inner id `inner_ids[k]`; ascending.
    inner_ids: Vec<usize>,
    /// The inverse: inner id → compact id.
    compact_ids: HashMap<usize, usize>,
}

impl std::fmt::Debug for Compact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Compact ({} of {}'s ids + padding + unknown)", self.inner_ids.len(), self.inner_spec)
    }
}

impl Compact {
    /// Compact id of padding (the inner tokeniser's padding id, if any, maps here).
    pub const PAD: usize = 0;
    /// Compact id of every inner id the corpus did not use.
    pub const UNKNOWN: usize = 1;

    /// Keeps the ids that `inner` produces on `corpus`.
    pub fn build(inner: Box<dyn Tokenizer>, inner_spec: &str, corpus: &str) -> Compact {
        let ids = inner.encode(corpus);
        Compact::from_ids(inner, inner_spec, &ids)
    }

    /// Keeps the ids in `seen` (any order, repeats allowed).
    pub fn from_ids(inner: Box<dyn Tokenizer>, inner_spec: &str, seen: &[usize]) -> Compact {
        let mut inner_ids: Vec<usize> = seen.iter().copied().filter(|&id| Some(id) != inner.pad_id()).collect();
        inner_ids.sort_unstable();
        inner_ids.dedup();
        let compact_ids = inner_ids.iter().enumerate().map(|(k, &id)| (id, 2 + k)).collect();
        Compact { inner, inner_spec: inner_spec.to_string(), inner_ids, compact_ids }
    }

    /// The tokeniser underneath, and its spec.
    pub fn inner(&self) -> (&dyn Tokenizer, &str) {
        (self.inner.as_ref(), &self.inner_spec)
    }

    /// compact id → inner id (None for padding without an inner padding id, unknown, or out of range).
    pub fn to_inner(&self, id: usize) -> Option<usize> {
        match id {
            Compact::PAD => self.inner.pad_id(),
            Compact::UNKNOWN => None,
            _ => self.inner_ids.get(id - 2).copied(),
        }
    }

    /// inner id → compact id (`UNKNOWN` if the corpus never used it).
    pub fn from_inner(&self, inner_id: usize) -> usize {
        if Some(inner_id) == self.inner.pad_id() {
            return Compact::PAD;
        }
        self.compact_ids.get(&inner_id).copied().unwrap_or(Compact::UNKNOWN)
    }

    /// The readable file described at the top of this module.
    pub fn to_text(&self) -> String {
        let mut s = format!("{HEADER}\ninner {}\n", self.inner_spec);
        s += "# compact id = inner id    # the token; 0 is padding, 1 is unknown\n";
        for (k, &id) in self.inner_ids.iter().enumerate() {
            s += &format!("{} = {id}    # {:?}\n", 2 + k, self.inner.token_text(id));
        }
        s
    }

    /// Reads the text written by [`Compact::to_text`], loading the inner tokeniser from its
    /// spec; errors name `path` and the line.
    pub fn from_text(text: &str, path: &Path) -> Result<Compact> {
        let malformed = |line: usize, problem: String| Error::Malformed { path: path.to_path_buf(), line, problem };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()));
        match lines.next() {
            Some((_, h)) if h == HEADER => {}
            Some((_, h)) => return Err(malformed(1, format!("expected the header {HEADER:?}, found {h:?}"))),
            None => return Err(malformed(1, format!("the file is empty; expected the header {HEADER:?}"))),
        }
        let mut lines = lines.filter(|(_, l)| !l.is_empty());
        let (spec_line, spec) = match lines.next() {
            Some((n, l)) => match l.strip_prefix("inner ") {
                Some(spec) => (n, spec.trim().to_string()),
                None => {
                    return Err(malformed(n, format!("expected \"inner SPEC\" (e.g. \"inner gpt2\"), found {l:?}")))
                }
            },
            None => return Err(malformed(2, "the file ends before the \"inner SPEC\" line".into())),
        };
        if spec.starts_with("compact:") {
            return Err(malformed(spec_line, "the inner tokeniser cannot itself be compact".into()));
        }
        let inner =
            from_spec(&spec).map_err(|e| malformed(spec_line, format!("cannot load the inner tokeniser: {e}")))?;
        let mut inner_ids: Vec<usize> = Vec::new();
        for (n, line) in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [compact, "=", id] = fields.as_slice() else {
                return Err(malformed(n, format!("expected \"COMPACT = INNER\", found {line:?}")));
            };
            let number = |f: &str| f.parse::<usize>().map_err(|_| malformed(n, format!("{f:?} is not a token id")));
            let (compact, id) = (number(compact)?, number(id)?);
            let expected = 2 + inner_ids.len();
            if compact != expected {
                return Err(malformed(n, format!("compact id {compact}, but the next one is {expected}")));
            }
            if id >= inner.vocab_size() {
                return Err(malformed(
                    n,
                    format!("inner id {id} is outside {spec}'s vocabulary of {}", inner.vocab_size()),
                ));
            }
            if Some(id) == inner.pad_id() {
                return Err(malformed(n, format!("inner id {id} is the padding id, which is always compact id 0")));
            }
            if let Some(&last) = inner_ids.last() {
                if id <= last {
                    return Err(malformed(n, format!("inner ids must ascend, but {id} follows {last}")));
                }
            }
            inner_ids.push(id);
        }
        Ok(Compact::from_ids(inner, &spec, &inner_ids))
    }

    /// Writes the readable file (atomically: a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.to_text().as_bytes())
    }

    /// Reads a file written by [`Compact::save`]; errors name the file and the line.
    pub fn load(path: &Path) -> Result<Compact> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Compact::from_text(&text, path)
    }
}

impl Tokenizer for Compact {
    fn encode(&self, text: &str) -> Vec<usize> {
        self.inner.encode(text).into_iter().map(|id| self.from_inner(id)).collect()
    }

    /// Runs of known ids decode through the inner tokeniser (so a character split across two
    /// tokens comes back whole); unknown and out-of-range ids decode to U+FFFD.
    fn decode(&self, ids: &[usize]) -> String {
        let mut text = String::new();
        let mut run: Vec<usize> = Vec::new();
        for &id in ids {
            match self.to_inner(id) {
                Some(inner_id) => run.push(inner_id),
                None if id == Compact::PAD => {} // no inner padding id: padding is not text
                None => {
                    text += &self.inner.decode(&run);
                    run.clear();
                    text.push('\u{FFFD}');
                }
            }
        }
        text + &self.inner.decode(&run)
    }

    fn vocab_size(&self) -> usize {
        2 + self.inner_ids.len()
    }

    fn pad_id(&self) -> Option<usize> {
        Some(Compact::PAD)
    }

    /// The inner tokeniser's newline id, renumbered; `None` if the corpus had no line break
    /// (it would encode as `UNKNOWN`).
    fn newline_id(&self) -> Option<usize> {
        self.inner.newline_id().map(|id| self.from_inner(id)).filter(|&id| id != Compact::UNKNOWN)
    }

    fn token_text(&self, id: usize) -> String {
        match (id, self.to_inner(id)) {
            (Compact::UNKNOWN, _) => "<unk>".into(),
            (Compact::PAD, None) => "<pad>".into(),
            (_, Some(inner_id)) => self.inner.token_text(inner_id),
            (_, None) => format!("<{id}?>"),
        }
    }
}
