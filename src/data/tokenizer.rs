//! Tokenisers: text ↔ token ids, behind one small interface.
//!
//! - [`Bytes`]: every UTF-8 byte is a token; 256 ids, nothing is ever unknown.
//! - [`crate::data::bpe::Bpe`]: a byte-level BPE trained from scratch on a corpus.
//! - [`crate::data::gpt2::Gpt2`]: GPT-2's 50,257-token BPE, ids equal to GPT-2's.
//! - [`crate::data::compact::Compact`]: any of these, restricted to the ids a corpus uses.
//!
//! [`from_spec`] builds one from a short name, for the command line and for files that
//! record which tokeniser a model was trained with.

use crate::data::{bpe::Bpe, compact::Compact, gpt2::Gpt2};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What every tokeniser offers.
pub trait Tokenizer {
    /// Text → ids.
    fn encode(&self, text: &str) -> Vec<usize>;
    /// Ids → text. Bytes that do not form valid UTF-8, and ids outside the vocabulary, show
    /// as U+FFFD (�): decoding is for reading, so it never fails.
    fn decode(&self, ids: &[usize]) -> String;
    /// How many ids there are: the LM head's width.
    fn vocab_size(&self) -> usize;
    /// The padding id, if the tokeniser reserves one.
    fn pad_id(&self) -> Option<usize>;
    /// One token as readable text, for axis labels and listings.
    fn token_text(&self, id: usize) -> String {
        self.decode(&[id])
    }
    /// The id of a line break (`"\n"` as a token of its own), if the vocabulary has one.
    /// Code that looks for the start of a line asks this instead of comparing ids with
    /// `b'\n'`: only byte-level vocabularies give "\n" the id 10.
    ///
    /// | tokeniser | newline id |
    /// |-----------|------------|
    /// | [`Bytes`], [`Bpe`] | 10 (ids 0–255 are the bytes) |
    /// | [`Gpt2`] | 198 (GPT-2 numbers its bytes in its own order: its id 10 is `+`) |
    /// | [`Compact`] | the compact id of its inner tokeniser's, or `None` if the corpus it was built from had no line break |
    ///
    /// A line break can also be part of a longer token (GPT-2's 628 is `"\n\n"`); this is
    /// the id of the line break alone. The default asks [`Tokenizer::encode`] for `"\n"`.
    /// ```
    /// use tinymoe::data::gpt2::Gpt2;
    /// use tinymoe::data::tokenizer::{Bytes, Tokenizer};
    /// assert_eq!(Bytes.newline_id(), Some(10));
    /// assert_eq!(Gpt2::new().newline_id(), Some(198));
    /// assert_eq!(Gpt2::new().decode(&[10]), "+");
    /// ```
    fn newline_id(&self) -> Option<usize> {
        match self.encode("\n")[..] {
            [id] => Some(id),
            _ => None,
        }
    }
}

/// The specs [`from_spec`] accepts, for error messages and `--help`.
pub const SPECS: &str = "bytes, gpt2, bpe:FILE (a BPE saved by `tinymoe tokenizer train`), \
                         compact:FILE (saved by `tinymoe tokenizer compact`)";

/// A tokeniser by name: `bytes`, `gpt2`, `bpe:FILE` or `compact:FILE`.
pub fn from_spec(spec: &str) -> Result<Box<dyn Tokenizer>> {
    let spec = spec.trim();
    let file = |prefix: &str| spec.strip_prefix(prefix).map(str::trim);
    match spec {
        "bytes" => return Ok(Box::new(Bytes)),
        "gpt2" => return Ok(Box::new(Gpt2::new())),
        _ => {}
    }
    match (file("bpe:"), file("compact:")) {
        (Some(""), _) | (_, Some("")) => {
            Err(Error::bad_value("tokenizer", spec, "needs a file after the colon, e.g. bpe:results/tok.bpe"))
        }
        (Some(path), _) => Ok(Box::new(Bpe::load(Path::new(path))?)),
        (_, Some(path)) => Ok(Box::new(Compact::load(Path::new(path))?)),
        _ => Err(Error::Unknown { what: "tokenizer".into(), name: spec.into(), expected: SPECS.into() }),
    }
}

/// The file a spec reads (`bpe:FILE`, `compact:FILE`), if any: an input a command must not
/// write over.
pub fn spec_file(spec: &str) -> Option<&Path> {
    let spec = spec.trim();
    let path = spec.strip_prefix("bpe:").or_else(|| spec.strip_prefix("compact:"))?.trim();
    (!path.is_empty()).then(|| Path::new(path))
}

/// Token bytes as readable text: a space shows as `␣`, a newline as `⏎`, other control
/// characters and bytes that are not (complete) UTF-8 as `<hex>`.
/// ```
/// use tinymoe::data::tokenizer::show_bytes;
/// assert_eq!(show_bytes(b" the\n"), "␣the⏎");
/// assert_eq!(show_bytes("é".as_bytes()), "é");
/// assert_eq!(show_bytes(&"é".as_bytes()[..1]), "<c3>"); // half a character
/// ```
pub fn show_bytes(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                ' ' => s.push('␣'),
                '\n' => s.push('⏎'),
                c if c.is_control() => s += &format!("<{:02x}>", c as u32),
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s += &format!("<{b:02x}>");
        }
    }
    s
}

/// Byte-level: id = byte value. Round-trips any UTF-8 text exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bytes;

impl Tokenizer for Bytes {
    fn encode(&self, text: &str) -> Vec<usize> {
        text.bytes().map(usize::from).collect()
    }
    fn decode(&self, ids: &[usize]) -> String {
        let mut bytes = Vec::with_capacity(ids.len());
        for &id in ids {
            match u8::try_from(id) {
                Ok(b) => bytes.push(b),
                Err(_) => bytes.extend_from_slice("\u{FFFD}".as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn vocab_size(&self) -> usize {
        256
    }
    fn pad_id(&self) -> Option<usize> {
        None
    }
    fn token_text(&self, id: usize) -> String {
        match u8::try_from(id) {
            Ok(b) => show_bytes(&[b]),
            Err(_) => format!("<{id}?>"),
        }
    }
    fn newline_id(&self) -> Option<usize> {
        Some(usize::from(b'\n'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::bpe::Split;

    /// Where a prompt that starts a line would start: after the first line break.
    fn line_start(tok: &dyn Tokenizer, ids: &[usize]) -> Option<usize> {
        let newline = tok.newline_id()?;
        ids.iter().position(|&t| t == newline).map(|i| i + 1)
    }

    #[test]
    fn each_tokeniser_names_the_id_that_encodes_a_line_break() {
        let bpe = Bpe::train("one line\nand another line\nand a third\n", 300, Split::Words).expect("a small BPE");
        let gpt2 = Gpt2::new();
        for (name, tok, expected) in [("bytes", &Bytes as &dyn Tokenizer, 10), ("bpe", &bpe, 10), ("gpt2", &gpt2, 198)]
        {
            assert_eq!(tok.newline_id(), Some(expected), "{name}");
            assert_eq!(tok.encode("\n"), [expected], "{name}: \"\\n\" encodes to the newline id");
            assert_eq!(tok.decode(&[expected]), "\n", "{name}");
        }
        // The bug this replaces: under GPT-2, id 10 is not a line break.
        assert_eq!(gpt2.decode(&[10]), "+");
    }

    #[test]
    fn a_prompt_starts_after_the_line_break_not_after_a_plus() {
        let gpt2 = Gpt2::new();
        let ids = gpt2.encode("x = 1+2\nprint(x)");
        assert!(ids.contains(&10), "the text holds a \"+\" (GPT-2 id 10): {ids:?}");
        let start = line_start(&gpt2, &ids).expect("the text has a line break");
        assert_eq!(gpt2.decode(&ids[start..]), "print(x)");
        // Comparing with b'\n' would have started the prompt in the middle of the first line.
        let wrong = ids.iter().position(|&t| t == usize::from(b'\n')).expect("id 10 occurs") + 1;
        assert_eq!(gpt2.decode(&ids[wrong..]), "2\nprint(x)");
    }

    #[test]
    fn a_compact_vocabulary_renumbers_the_newline_or_has_none() {
        let with = Compact::build(Box::new(Gpt2::new()), "gpt2", "first line\nsecond line");
        let id = with.newline_id().expect("the corpus has a line break");
        assert_ne!(id, Gpt2::NEWLINE, "compact ids are renumbered");
        assert_eq!(with.encode("\n"), [id]);
        assert_eq!(with.decode(&[id]), "\n");
        let ids = with.encode("second line\nfirst line");
        assert_eq!(with.decode(&ids[line_start(&with, &ids).expect("a line break")..]), "first line");

        let without = Compact::build(Box::new(Bytes), "bytes", "no line break here");
        assert_eq!(without.newline_id(), None, "\"\\n\" would be unknown");
        assert_eq!(without.encode("\n"), [Compact::UNKNOWN]);
    }

    /// A tokeniser that keeps the trait's default `newline_id`.
    struct Plain<T>(T);
    impl<T: Tokenizer> Tokenizer for Plain<T> {
        fn encode(&self, text: &str) -> Vec<usize> {
            self.0.encode(text)
        }
        fn decode(&self, ids: &[usize]) -> String {
            self.0.decode(ids)
        }
        fn vocab_size(&self) -> usize {
            self.0.vocab_size()
        }
        fn pad_id(&self) -> Option<usize> {
            self.0.pad_id()
        }
    }

    /// Every character as two ids, so no single id is a line break.
    struct TwoPerChar;
    impl Tokenizer for TwoPerChar {
        fn encode(&self, text: &str) -> Vec<usize> {
            text.chars().flat_map(|c| [0, c as usize + 1]).collect()
        }
        fn decode(&self, _: &[usize]) -> String {
            String::new()
        }
        fn vocab_size(&self) -> usize {
            0x11_0001
        }
        fn pad_id(&self) -> Option<usize> {
            None
        }
    }

    #[test]
    fn the_default_asks_encode() {
        assert_eq!(Plain(Gpt2::new()).newline_id(), Some(198));
        assert_eq!(Plain(Bytes).newline_id(), Some(10));
        assert_eq!(TwoPerChar.newline_id(), None);
    }
}
