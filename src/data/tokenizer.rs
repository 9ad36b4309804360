//! Tokenisers: text ↔ token ids, behind one small interface.
//!
//! Today: byte-level (every UTF-8 byte is a token; 256 ids, nothing is ever unknown).

use serde::{Deserialize, Serialize};

/// What every tokeniser offers.
pub trait Tokenizer {
    /// Text → ids.
    fn encode(&self, text: &str) -> Vec<usize>;
    /// Ids → text (bytes that do not form valid UTF-8 show as U+FFFD).
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

/// Byte-level: id = byte value. Round-trips any UTF-8 text exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bytes;

impl Tokenizer for Bytes {
    fn encode(&self, text: &str) -> Vec<usize> {
        text.bytes().map(usize::from).collect()
    }
    fn decode(&self, ids: &[usize]) -> String {
        let bytes: Vec<u8> = ids.iter().map(|&id| u8::try_from(id).unwrap_or(b'?')).collect();
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
            Ok(b' ') => "␣".into(),
            Ok(b'\n') => "⏎".into(),
            Ok(b) if b.is_ascii_graphic() => (b as char).to_string(),
            _ => format!("<{id:02x}>"),
        }
    }
}
