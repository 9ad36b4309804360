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
}
