//! GPT-2's tokeniser: the 50,257-token byte-level BPE that OpenAI trained for GPT-2
//! (`r50k_base`), with ids equal to GPT-2's.
//!
//! It works like [`crate::data::bpe`]: text is cut into words by a regular expression
//! (`'s|'t|…| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`), and each word's bytes are
//! merged in the order of 50,000 learned merges. Ids: 0–255 the bytes (in GPT-2's own byte
//! order), 256–50255 the merges, 50256 the one special token `<|endoftext|>`.
//! ```text
//!   "Hello world, def f(x): return x"
//!   → Hello │ ␣world │ , │ ␣def │ ␣f │ ( │ x │ ): │ ␣return │ ␣x
//!   → 15496   995    11   825   277   7   87  2599   1441    2124
//! ```
//! The ranks come from the crate `tiktoken-rs`, which compiles them into the binary
//! (`include_str!`): nothing is downloaded at run time. The first use parses them (a few
//! hundredths of a second); later uses share that one table.
//!
//! Choices: the text `<|endoftext|>` is encoded as the special token 50256 (as Hugging Face's
//! GPT-2 tokeniser does), so documents can be joined with it; 50256 is also the padding id
//! (GPT-2 has none of its own). Either way `decode(encode(s)) == s` for every UTF-8 string.
//!
//! Reference: Radford et al., "Language Models are Unsupervised Multitask Learners" (2019),
//! §2.2; <https://github.com/openai/tiktoken>.

use crate::data::tokenizer::{show_bytes, Tokenizer};
use tiktoken_rs::{r50k_base_singleton, CoreBPE, Rank};

/// GPT-2's 50,257-token BPE.
#[derive(Clone, Copy)]
pub struct Gpt2 {
    bpe: &'static CoreBPE,
}

impl std::fmt::Debug for Gpt2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gpt2 (r50k_base, 50257 ids)")
    }
}

impl Gpt2 {
    /// The id of `<|endoftext|>`, GPT-2's only special token; also our padding id.
    pub const END_OF_TEXT: usize = 50256;
    /// 50,000 merges + 256 bytes + `<|endoftext|>`.
    pub const VOCAB_SIZE: usize = 50257;
    /// The id of `"\n"`. (GPT-2's byte ids are not the bytes: its id 10 is `+`.)
    pub const NEWLINE: usize = 198;

    /// The tokeniser (the first call parses the compiled-in ranks; later calls share them).
    pub fn new() -> Gpt2 {
        Gpt2 { bpe: r50k_base_singleton() }
    }

    /// The bytes of one id (a piece of a UTF-8 character for some ids), or None if the id is
    /// outside the vocabulary.
    pub fn piece(&self, id: usize) -> Option<Vec<u8>> {
        let id = Rank::try_from(id).ok()?;
        self.bpe.decode_bytes(&[id]).ok()
    }
}

impl Default for Gpt2 {
    fn default() -> Self {
        Gpt2::new()
    }
}

impl Tokenizer for Gpt2 {
    fn encode(&self, text: &str) -> Vec<usize> {
        self.bpe.encode_with_special_tokens(text).into_iter().map(|id| id as usize).collect()
    }

    /// An id outside the vocabulary decodes to U+FFFD.
    fn decode(&self, ids: &[usize]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            match self.piece(id) {
                Some(piece) => bytes.extend_from_slice(&piece),
                None => bytes.extend_from_slice("\u{FFFD}".as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn vocab_size(&self) -> usize {
        Gpt2::VOCAB_SIZE
    }

    fn pad_id(&self) -> Option<usize> {
        Some(Gpt2::END_OF_TEXT)
    }

    fn token_text(&self, id: usize) -> String {
        match self.piece(id) {
            Some(piece) => show_bytes(&piece),
            None => format!("<{id}?>"),
        }
    }

    fn newline_id(&self) -> Option<usize> {
        Some(Gpt2::NEWLINE)
    }
}
