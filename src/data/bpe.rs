//! Byte-pair encoding (BPE) trained from scratch, byte-level like GPT-2's.
//!
//! Training starts from the 256 byte values (ids 0–255) and repeats one step: count every
//! pair of adjacent tokens in the corpus, and give the most frequent pair a new id
//! (256, 257, …) that stands for its two halves glued together. Ties go to the pair with the
//! smallest ids, `(left, right)` compared as a tuple, so training is deterministic. It stops at
//! the requested vocabulary size, or earlier when no pair occurs twice.
//! ```text
//!   "aaabdaaabac"   pairs: aa ×4, ab ×2, bd, da, ba, ac ×1
//!   merge 256 = a + a   → [256] a b d [256] a b a c        (left to right, no overlaps)
//!   merge 257 = a + b   → [256][257] d [256][257] a c      (a+b ×2 ties 256+a ×2; (97,98) < (256,97))
//!   merge 258 = 256 + 257 → [258] d [258] a c              (then every pair occurs once: stop)
//! ```
//! Encoding replays the merges in the order they were learned: in a chunk of text, find the
//! adjacent pair that was learned first, merge all its occurrences, repeat until no adjacent
//! pair is a merge. Decoding glues the ids' bytes back together. Because every byte is a
//! token, nothing is ever unknown and `decode(encode(s)) == s` for every UTF-8 string.
//!
//! Pre-tokenisation ([`Split::Words`], the default, as in GPT-2): the text is first cut into
//! words (see [`split_words`], in `pretokenize.rs`) and merges never cross a word, so tokens
//! are words and pieces of words, each space leading the word after it (" the", not "the ").
//! [`Split::None`] merges across everything, which is cheaper to explain and slower to train
//! on a big text (each merge rescans the whole text: time ∝ text × merges).
//!
//! Ids: 0–255 the bytes, 256 … 255 + n_merges the merges, and one padding id after them:
//! `pad_id = 256 + n_merges`, `vocab_size = 257 + n_merges` (the padding id is never produced
//! by `encode`, and decodes to nothing).
//!
//! The file format (`save`/`load`), one merge per line in the order learned:
//! ```text
//! tinymoe-bpe v1
//! split words
//! # new id = left id + right id    # the new token's bytes
//! 256 = 97 + 97    # "aa"
//! 257 = 97 + 98    # "ab"
//! 258 = 256 + 257    # "aaab"
//! ```
//! Everything after `#` is a comment; blank lines are skipped.
//!
//! References: P. Gage, "A New Algorithm for Data Compression" (1994); Sennrich, Haddow and
//! Birch, "Neural Machine Translation of Rare Words with Subword Units" (2016); Radford et al.,
//! "Language Models are Unsupervised Multitask Learners" (2019, byte-level BPE);
//! karpathy/minbpe.

pub use crate::data::pretokenize::{split_words, Split};
use crate::data::tokenizer::{show_bytes, Tokenizer};
use crate::error::{Error, Result};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::Path;

/// Two adjacent token ids, `(left, right)`.
pub type Pair = (usize, usize);

/// The first line of a saved BPE.
pub const HEADER: &str = "tinymoe-bpe v1";

/// The longest piece (the bytes one id stands for) a BPE may have: 1 MiB. Each merge glues
/// two pieces, so a file of n merges could otherwise describe a piece of 2ⁿ bytes (46 merges
/// that double one piece ask for 64 TiB); a real tokeniser's longest is a few dozen bytes.
pub const MAX_PIECE_BYTES: usize = 1 << 20;
/// The most bytes all pieces together may have: 256 MiB.
pub const MAX_TOTAL_PIECE_BYTES: usize = 1 << 28;

/// One learned merge: `left + right → id`, and how often the pair occurred when it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    pub pair: Pair,
    pub id: usize,
    pub count: usize,
}

/// Replaces every occurrence of `pair` in `ids` by `new`, left to right, without overlaps
/// ("aaa" with a + a → [aa, a]).
pub fn merge(ids: &[usize], pair: Pair, new: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(ids.len());
    let mut i = 0;
    while i < ids.len() {
        if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
            out.push(new);
            i += 2;
        } else {
            out.push(ids[i]);
            i += 1;
        }
    }
    out
}

/// [`merge`], and the adjacent pairs that changed: the pairs of `old` that touch a merged
/// position (removed) and the pairs of the result that touch a new token (added). Every other
/// pair is the same before and after, so training updates its counts only for these.
/// ```text
///   old  x a b y   merge a + b → N   new  x N y   removed (x,a) (a,b) (b,y)   added (x,N) (N,y)
/// ```
pub fn merge_with_diff(old: &[usize], pair: Pair, new: usize) -> (Vec<usize>, Vec<Pair>, Vec<Pair>) {
    let mut out = Vec::with_capacity(old.len());
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    // Old pair j is (old[j], old[j + 1]); pairs j < next_unrecorded are already in `removed`
    // (two merges side by side, "a b a b", share the pair (b, a) between them).
    let mut next_unrecorded = 0;
    let mut after_merge = false;
    let mut i = 0;
    while i < old.len() {
        if i + 1 < old.len() && (old[i], old[i + 1]) == pair {
            let last_pair = (i + 1).min(old.len() - 2);
            for j in i.saturating_sub(1).max(next_unrecorded)..=last_pair {
                removed.push((old[j], old[j + 1]));
            }
            next_unrecorded = last_pair + 1;
            if let Some(&left) = out.last() {
                added.push((left, new)); // also (N, N) when the previous merge is right beside
            }
            out.push(new);
            after_merge = true;
            i += 2;
        } else {
            if after_merge {
                added.push((new, old[i]));
            }
            out.push(old[i]);
            after_merge = false;
            i += 1;
        }
    }
    (out, removed, added)
}

/// Learns up to `n_merges` merges from `text` (fewer if no pair occurs twice any more).
///
/// Incremental counting, so that a merge costs only the words that contain its pair, not the
/// whole corpus: the distinct chunks are kept once each with their count, `counts[pair]` is
/// the number of occurrences of each pair over the corpus, `where_[pair]` the chunks it may
/// occur in, and a max-heap of `(count, smallest pair first)` finds the best pair. A merge
/// rewrites only the chunks in `where_[pair]`, and in each only the pairs that touch a merged
/// position change ([`merge_with_diff`]). Heap entries whose count has changed since they
/// were pushed are stale and skipped. (tests/tokenizer.rs checks this against a full recount.)
pub fn learn_merges(text: &str, n_merges: usize, split: Split) -> Vec<Merge> {
    // The distinct chunks as byte ids, in order of first appearance, each with its count.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut words: Vec<Vec<usize>> = Vec::new();
    let mut word_count: Vec<usize> = Vec::new();
    for chunk in split.chunks(text) {
        let w = *index.entry(chunk).or_insert_with(|| {
            words.push(chunk.bytes().map(usize::from).collect());
            word_count.push(0);
            words.len() - 1
        });
        word_count[w] += 1;
    }

    let mut counts: HashMap<Pair, usize> = HashMap::new();
    let mut where_: HashMap<Pair, HashSet<usize>> = HashMap::new();
    for (w, ids) in words.iter().enumerate() {
        for p in ids.windows(2) {
            *counts.entry((p[0], p[1])).or_insert(0) += word_count[w];
            where_.entry((p[0], p[1])).or_default().insert(w);
        }
    }
    let mut heap: BinaryHeap<(usize, Reverse<Pair>)> = counts.iter().map(|(&p, &c)| (c, Reverse(p))).collect();

    let mut merges = Vec::new(); // not with_capacity(n_merges): n_merges may be a huge user value
    while merges.len() < n_merges {
        let Some((count, Reverse(pair))) = heap.pop() else { break };
        if counts.get(&pair).copied().unwrap_or(0) != count {
            continue; // stale: this pair's count changed after this entry was pushed
        }
        if count < 2 {
            break; // merging a pair seen once would only memorise the corpus
        }
        let new = 256 + merges.len();
        merges.push(Merge { pair, id: new, count });

        let mut touched: Vec<usize> = where_.remove(&pair).unwrap_or_default().into_iter().collect();
        touched.sort_unstable(); // the set's order is random; keep every step reproducible
        let mut changed: HashSet<Pair> = HashSet::new();
        for w in touched {
            let (merged, removed, added) = merge_with_diff(&words[w], pair, new);
            if removed.is_empty() {
                continue; // the pair left this chunk in an earlier merge
            }
            let c = word_count[w];
            for p in removed {
                *counts.get_mut(&p).expect("every pair of a chunk is counted") -= c;
                changed.insert(p);
            }
            for p in added {
                *counts.entry(p).or_insert(0) += c;
                where_.entry(p).or_default().insert(w);
                changed.insert(p);
            }
            words[w] = merged;
        }
        for p in changed {
            match counts[&p] {
                0 => {
                    counts.remove(&p);
                }
                c => heap.push((c, Reverse(p))),
            }
        }
    }
    merges
}

/// The running total of piece bytes after merge `new` adds a piece of `len` bytes, or why
/// that piece is refused (too long alone, or too much with the others).
fn check_piece(new: usize, len: usize, total: usize) -> std::result::Result<usize, String> {
    if len > MAX_PIECE_BYTES {
        return Err(format!(
            "merge {new} makes a piece of {len} bytes; a BPE piece may be at most {MAX_PIECE_BYTES} bytes"
        ));
    }
    let total = total + len;
    if total > MAX_TOTAL_PIECE_BYTES {
        return Err(format!(
            "merge {new} brings the pieces to {total} bytes in all; a BPE may have at most {MAX_TOTAL_PIECE_BYTES}"
        ));
    }
    Ok(total)
}

/// A trained byte-level BPE. Ids: bytes 0–255, merges 256.., then the padding id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bpe {
    split: Split,
    /// `merges[k]` is the pair that became id `256 + k`.
    merges: Vec<Pair>,
    /// The inverse of `merges`: pair → the id it became (= its rank, the order it was learned).
    ids: HashMap<Pair, usize>,
    /// The bytes each id stands for (256 single bytes, then one entry per merge).
    pieces: Vec<Vec<u8>>,
}

impl Bpe {
    /// Trains on `text` until the vocabulary (bytes + merges + padding) has `vocab_size` ids,
    /// or until no pair occurs twice (then the vocabulary is smaller: check `vocab_size()`).
    /// Errors if `vocab_size < 257` (the 256 bytes and the padding id).
    pub fn train(text: &str, vocab_size: usize, split: Split) -> Result<Bpe> {
        if vocab_size < 257 {
            return Err(Error::bad_value(
                "vocab_size",
                vocab_size,
                "must be at least 257 (the 256 byte values and a padding id)",
            ));
        }
        let merges = learn_merges(text, vocab_size - 257, split);
        // Learned merges are valid; only a huge, repetitive text with split "none" could make
        // a piece longer than MAX_PIECE_BYTES.
        Bpe::from_merges(merges.iter().map(|m| m.pair).collect(), split)
            .map_err(|problem| Error::bad_value("vocab_size", vocab_size, &problem))
    }

    /// A BPE from its merges in the order learned: merge k makes id 256 + k out of two ids
    /// that already exist (< 256 + k). Errors name the first bad merge.
    pub fn from_merges(merges: Vec<Pair>, split: Split) -> std::result::Result<Bpe, String> {
        let mut pieces: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        let mut ids = HashMap::new();
        let mut total = 256usize;
        for (k, &(left, right)) in merges.iter().enumerate() {
            let new = 256 + k;
            for side in [left, right] {
                if side >= new {
                    return Err(format!("merge {new} uses id {side}, which does not exist yet (ids so far: 0..{new})"));
                }
            }
            if let Some(earlier) = ids.insert((left, right), new) {
                return Err(format!("merge {new} repeats the pair {left} + {right}, already merged as {earlier}"));
            }
            total = check_piece(new, pieces[left].len() + pieces[right].len(), total)?;
            let piece = [pieces[left].as_slice(), pieces[right].as_slice()].concat();
            pieces.push(piece);
        }
        Ok(Bpe { split, merges, ids, pieces })
    }

    pub fn split(&self) -> Split {
        self.split
    }

    /// The merges in the order learned: `merges()[k]` became id `256 + k`.
    pub fn merges(&self) -> &[Pair] {
        &self.merges
    }

    /// The bytes that id stands for (empty for the padding id). Panics if id ≥ vocab_size.
    pub fn piece(&self, id: usize) -> &[u8] {
        assert!(id < self.vocab_size(), "bpe: id {id} is outside the vocabulary of {}", self.vocab_size());
        self.pieces.get(id).map_or(&[], Vec::as_slice)
    }

    /// One chunk's bytes → ids, replaying the merges in the order they were learned.
    ///
    /// The readable way is a loop: find the adjacent pair that was learned first, merge all its
    /// occurrences with [`merge`], repeat (tests/tokenizer.rs has it, as `encode_slow`). That
    /// rescans the chunk once per merge, too slow for a whole text with [`Split::None`]. So
    /// the tokens sit in a linked list, and a min-heap holds every adjacent pair that is a
    /// merge, keyed by (its new id, its position): popping gives the earliest-learned pair,
    /// leftmost first, as the loop would. After a merge only its two neighbours form new
    /// pairs; heap entries whose pair has since changed are stale and skipped. (A merge never
    /// creates a pair learned before it: its new id is younger than every merge it joins.)
    fn encode_chunk(&self, chunk: &str, out: &mut Vec<usize>) {
        const NONE: usize = usize::MAX;
        let mut ids: Vec<usize> = chunk.bytes().map(usize::from).collect();
        let n = ids.len();
        let mut prev: Vec<usize> = (0..n).map(|i| if i == 0 { NONE } else { i - 1 }).collect();
        let mut next: Vec<usize> = (0..n).map(|i| if i + 1 == n { NONE } else { i + 1 }).collect();
        let mut alive = vec![true; n];
        let mut heap: BinaryHeap<Reverse<(usize, usize)>> = BinaryHeap::new();
        let rank = |ids: &[usize], i: usize, j: usize| self.ids.get(&(ids[i], ids[j])).copied();
        for i in 0..n.saturating_sub(1) {
            if let Some(new) = rank(&ids, i, i + 1) {
                heap.push(Reverse((new, i)));
            }
        }
        while let Some(Reverse((new, i))) = heap.pop() {
            let j = next[i];
            if !alive[i] || j == NONE || rank(&ids, i, j) != Some(new) {
                continue; // stale: this pair was changed by an earlier merge
            }
            ids[i] = new;
            alive[j] = false;
            next[i] = next[j];
            if next[j] != NONE {
                prev[next[j]] = i;
            }
            for (left, right) in [(prev[i], i), (i, next[i])] {
                if left != NONE && right != NONE {
                    if let Some(new) = rank(&ids, left, right) {
                        heap.push(Reverse((new, left)));
                    }
                }
            }
        }
        out.extend((0..n).filter(|&i| alive[i]).map(|i| ids[i]));
    }

    /// The readable file described at the top of this module.
    pub fn to_text(&self) -> String {
        let mut s = format!("{HEADER}\nsplit {}\n", self.split.name());
        s += &format!(
            "# ids 0-255 are the bytes, {}-{} the merges below, {} the padding id (vocab {})\n",
            256,
            255 + self.merges.len(),
            self.pad(),
            self.vocab_size()
        );
        s += "# new id = left id + right id    # the new token's bytes\n";
        for (k, &(left, right)) in self.merges.iter().enumerate() {
            s += &format!("{} = {left} + {right}    # \"{}\"\n", 256 + k, self.pieces[256 + k].escape_ascii());
        }
        s
    }

    /// Reads the text written by [`Bpe::to_text`]; errors name `path` and the line.
    pub fn from_text(text: &str, path: &Path) -> Result<Bpe> {
        let malformed = |line: usize, problem: String| Error::Malformed { path: path.to_path_buf(), line, problem };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("").trim()));
        match lines.next() {
            Some((_, h)) if h == HEADER => {}
            Some((_, h)) => return Err(malformed(1, format!("expected the header {HEADER:?}, found {h:?}"))),
            None => return Err(malformed(1, format!("the file is empty; expected the header {HEADER:?}"))),
        }
        let mut lines = lines.filter(|(_, l)| !l.is_empty());
        let split = match lines.next() {
            Some((n, l)) => match l.strip_prefix("split ").and_then(|name| Split::parse(name.trim())) {
                Some(s) => s,
                None => return Err(malformed(n, format!("expected \"split words\" or \"split none\", found {l:?}"))),
            },
            None => return Err(malformed(2, "the file ends before the \"split ...\" line".into())),
        };
        let mut merges: Vec<Pair> = Vec::new();
        let mut made: HashMap<Pair, usize> = HashMap::new();
        // Each id's piece length, to refuse a runaway piece at its line (see MAX_PIECE_BYTES).
        let mut lengths: Vec<usize> = vec![1; 256];
        let mut total = 256usize;
        for (n, line) in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pair = match fields.as_slice() {
                [new, "=", left, "+", right] => {
                    let id = |f: &str| f.parse::<usize>().map_err(|_| malformed(n, format!("{f:?} is not a token id")));
                    let (new, left, right) = (id(new)?, id(left)?, id(right)?);
                    let expected = 256 + merges.len();
                    if new != expected {
                        return Err(malformed(n, format!("merge makes id {new}, but the next new id is {expected}")));
                    }
                    for side in [left, right] {
                        if side >= new {
                            return Err(malformed(
                                n,
                                format!("merge {new} uses unknown id {side} (ids so far: 0..{new})"),
                            ));
                        }
                    }
                    if let Some(earlier) = made.insert((left, right), new) {
                        return Err(malformed(
                            n,
                            format!("merge {new} repeats {left} + {right}, already merged as {earlier}"),
                        ));
                    }
                    let len = lengths[left] + lengths[right];
                    total = check_piece(new, len, total).map_err(|problem| malformed(n, problem))?;
                    lengths.push(len);
                    (left, right)
                }
                _ => return Err(malformed(n, format!("expected \"NEW = LEFT + RIGHT\", found {line:?}"))),
            };
            merges.push(pair);
        }
        Ok(Bpe::from_merges(merges, split).expect("each merge was checked as it was read"))
    }

    /// Writes the readable file (atomically: a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, self.to_text().as_bytes())
    }

    /// Reads a file written by [`Bpe::save`]; errors name the file and the line.
    pub fn load(path: &Path) -> Result<Bpe> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Bpe::from_text(&text, path)
    }

    fn pad(&self) -> usize {
        256 + self.merges.len()
    }
}

impl Tokenizer for Bpe {
    fn encode(&self, text: &str) -> Vec<usize> {
        // Words repeat, so each distinct chunk is encoded once per call.
        let mut seen: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut out = Vec::new();
        for chunk in self.split.chunks(text) {
            let ids = seen.entry(chunk).or_insert_with(|| {
                let mut ids = Vec::new();
                self.encode_chunk(chunk, &mut ids);
                ids
            });
            out.extend_from_slice(ids);
        }
        out
    }

    /// The padding id decodes to nothing; an id outside the vocabulary to U+FFFD.
    fn decode(&self, ids: &[usize]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            match self.pieces.get(id) {
                Some(piece) => bytes.extend_from_slice(piece),
                None if id == self.pad() => {}
                None => bytes.extend_from_slice("\u{FFFD}".as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn vocab_size(&self) -> usize {
        257 + self.merges.len()
    }

    fn pad_id(&self) -> Option<usize> {
        Some(self.pad())
    }

    fn token_text(&self, id: usize) -> String {
        match self.pieces.get(id) {
            Some(piece) => show_bytes(piece),
            None if id == self.pad() => "<pad>".into(),
            None => format!("<{id}?>"),
        }
    }

    /// 10: ids 0–255 are the bytes, and a byte alone is never merged. (With `Split::None` a
    /// line break inside the text may be merged with its neighbours; this is the id of `"\n"`
    /// alone.)
    fn newline_id(&self) -> Option<usize> {
        Some(usize::from(b'\n'))
    }
}
