//! Pre-tokenisation: cutting text into words before BPE, so that merges never cross a word.
//!
//! GPT-2 does this with a regular expression; [`split_words`] is the same rule written as a
//! loop over characters (letters, digits, whitespace, everything else), without GPT-2's
//! special cases for English contractions. Without it, BPE spends its vocabulary on "dog",
//! "dog.", "dog!" and on phrases like "of the " (Radford et al., 2019, §2.2).
//! ```text
//!   "Hello  world, x=42\n"  →  Hello │ ␣ │ ␣world │ , │ ␣x │ = │ 42 │ ⏎
//! ```

/// How the text is cut into chunks before merging; merges never cross a chunk boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The whole text is one chunk: tokens may span spaces ("e t", "of the").
    None,
    /// GPT-2-style words: see [`split_words`].
    Words,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::None => "none",
            Split::Words => "words",
        }
    }

    /// "none" or "words".
    pub fn parse(name: &str) -> Option<Split> {
        match name {
            "none" => Some(Split::None),
            "words" => Some(Split::Words),
            _ => None,
        }
    }

    /// The chunks of `text`, in order; they concatenate back to `text`.
    pub fn chunks(self, text: &str) -> Vec<&str> {
        match self {
            Split::None if text.is_empty() => vec![],
            Split::None => vec![text],
            Split::Words => split_words(text),
        }
    }
}

/// What kind of character, for [`split_words`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class_of(c: char) -> Class {
    if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Cuts text into GPT-2-like words: a chunk is a run of letters, a run of digits or a run of
/// other symbols, each optionally led by one space (" the", " 42", " (+"); or a run of
/// whitespace, whose last space, if a word follows, is left to lead that word. This is GPT-2's
/// pattern `` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`` without its special cases for
/// English contractions ('s, 't, 're, …).
/// ```
/// use tinymoe::data::pretokenize::split_words;
/// assert_eq!(split_words("Hello  world, x=42\n"), ["Hello", " ", " world", ",", " x", "=", "42", "\n"]);
/// ```
pub fn split_words(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let end_of = |j: usize| if j < n { chars[j].0 } else { text.len() };
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i;
        // One space followed by a non-space leads the word after it.
        if chars[j].1 == ' ' && j + 1 < n && class_of(chars[j + 1].1) != Class::Space {
            j += 1;
        }
        let class = class_of(chars[j].1);
        while j < n && class_of(chars[j].1) == class {
            j += 1;
        }
        // A whitespace run that a word follows leaves its last space to that word.
        if class == Class::Space && j < n && j - i > 1 && chars[j - 1].1 == ' ' {
            j -= 1;
        }
        chunks.push(&text[chars[i].0..end_of(j)]);
        i = j;
    }
    chunks
}
