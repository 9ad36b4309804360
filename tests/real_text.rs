//! The labelled-text loaders on tiny folders and CSVs each test writes itself (stray bytes that
//! are not UTF-8 included), and on the real BBC News and tweets in data/ when
//! `bash scripts/fetch-data.sh` has put them there (otherwise those tests print a note and pass).

use std::path::{Path, PathBuf};
use tinymoe::data::real_text::{self, LabelledText};
use tinymoe::Error;

/// A fresh folder under the system temp dir, unique to this test.
fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tinymoe-text-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Asserts `result` is a Malformed error about `path` at `line` whose message contains `needle`.
fn check_malformed(result: tinymoe::Result<LabelledText>, path: &Path, line: usize, needle: &str) {
    let err = result.expect_err("a bad file must not load");
    let msg = err.to_string();
    assert!(
        matches!(&err, Error::Malformed { path: p, line: l, .. } if p == path && *l == line),
        "expected line {line} of {}: {err:?}",
        path.display()
    );
    assert!(msg.contains(needle), "expected {needle:?} in: {msg}");
    println!("ok: {msg}");
}

#[test]
fn topic_folders_load_sorted_with_latin1_decoded_lossily() {
    let dir = tmp_dir("topics");
    write(&dir.join("tech/002.txt"), b"Chips get faster.\n");
    write(&dir.join("tech/001.txt"), b"A new phone.\n");
    // "café" in Latin-1: é is the single byte 0xE9, which is not UTF-8.
    write(&dir.join("business/001.txt"), b"Caf\xe9 profits rise.\n");
    write(&dir.join("business/.DS_Store"), b"\x00\x01");
    write(&dir.join("README"), b"not a topic");

    let text = real_text::load_topic_folders(&dir).unwrap();
    assert_eq!(text.labels, ["business", "tech"]);
    assert_eq!(
        text.samples,
        [
            ("Caf\u{fffd} profits rise.\n".to_string(), 0),
            ("A new phone.\n".to_string(), 1),
            ("Chips get faster.\n".to_string(), 1),
        ]
    );
    assert_eq!(text.counts(), [1, 2]);

    // A topic folder with no documents is an error, not an empty class.
    std::fs::create_dir_all(dir.join("sports")).unwrap();
    let err = real_text::load_topic_folders(&dir).unwrap_err();
    assert!(matches!(&err, Error::BadFile { path, .. } if path == &dir.join("sports")), "{err:?}");
    assert!(err.to_string().ends_with("sports: no .txt documents in this topic"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sentiment_csv_handles_quotes_multiline_fields_crlf_and_stray_bytes() {
    let dir = tmp_dir("csv");
    let path = dir.join("tweets.csv");
    let csv: &[u8] = b"sentiment,confidence,text\r\n\
        negative,0.75,I just don't trust it\r\n\
        positive,,\"Works \"\"wonders\"\", really\"\r\n\
        neutral,1,\"two\rlines, one tweet\"\r\n\
        \r\n\
        negative,0.5,stray \xff byte\r\n\
        positive,0.9,no newline at the end";
    write(&path, csv);
    let text = real_text::load_tweets(&path).unwrap();
    assert_eq!(text.labels, ["negative", "neutral", "positive"]);
    assert_eq!(
        text.samples,
        [
            ("I just don't trust it".to_string(), 0),
            ("Works \"wonders\", really".to_string(), 2),
            ("two\rlines, one tweet".to_string(), 1),
            ("stray \u{fffd} byte".to_string(), 0),
            ("no newline at the end".to_string(), 2),
        ]
    );
    assert_eq!(text.counts(), [2, 1, 2]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_sentiment_rows_are_errors_naming_the_line() {
    let dir = tmp_dir("bad-csv");
    let path = dir.join("bad.csv");
    let load = |body: &str| {
        write(&path, body.as_bytes());
        real_text::load_sentiment_csv(&path)
    };
    check_malformed(load("label,text\npositive,great\n"), &path, 1, "header");
    check_malformed(load(""), &path, 1, "empty");
    check_malformed(load("sentiment,confidence,text\npositive,0.5,ok\nhappy,0.5,hm\n"), &path, 3, "\"happy\"");
    check_malformed(load("sentiment,confidence,text\npositive,0.5\n"), &path, 2, "2 field(s)");
    check_malformed(load("sentiment,confidence,text\npositive,high,ok\n"), &path, 2, "confidence");
    check_malformed(load("sentiment,confidence,text\npositive,1.5,ok\n"), &path, 2, "confidence");
    // Line numbers count the lines inside a quoted field.
    check_malformed(load("sentiment,confidence,text\npositive,1,\"a\nb\"\nmeh,1,c\n"), &path, 4, "\"meh\"");
    check_malformed(
        load("sentiment,confidence,text\npositive,1,ok\nneutral,1,\"never closed\n"),
        &path,
        3,
        "never closed",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_data_says_how_to_fetch_it() {
    let nowhere = std::env::temp_dir().join(format!("tinymoe-text-nowhere-{}", std::process::id()));
    for err in [
        real_text::load_bbc_news(&nowhere).unwrap_err(),
        real_text::load_tweets(&nowhere.join("tweets.csv")).unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(matches!(err, Error::MissingData { .. }), "{err:?}");
        assert!(msg.starts_with(&nowhere.display().to_string()), "{msg}");
        assert!(msg.contains("bash scripts/fetch-data.sh") && !msg.contains('\n'), "{msg}");
        println!("ok: {msg}");
    }
}

#[test]
fn real_bbc_news_has_2225_articles_in_5_topics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(real_text::BBC_DIR);
    if !dir.is_dir() {
        println!("note: {} is absent, skipping the real BBC News checks (bash scripts/fetch-data.sh)", dir.display());
        return;
    }
    let text = real_text::load_bbc_news(&dir).unwrap();
    assert_eq!(text.len(), 2225);
    assert_eq!(text.labels, ["business", "entertainment", "politics", "sports", "tech"]);
    assert_eq!(text.counts(), [510, 386, 417, 511, 401]);
    // The first business article, and the one file that is Latin-1 (decoded with one U+FFFD).
    assert!(text.samples[0].0.starts_with("Ad sales boost Time Warner profit"), "{:?}", &text.samples[0].0[..40]);
    let lossy = text.samples.iter().filter(|(t, _)| t.contains('\u{fffd}')).count();
    assert_eq!(lossy, 1, "articles that were not valid UTF-8");
}

#[test]
fn real_tweets_have_38158_rows_in_3_sentiments() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(real_text::TWEETS_CSV);
    if !path.is_file() {
        println!("note: {} is absent, skipping the real tweet checks (bash scripts/fetch-data.sh)", path.display());
        return;
    }
    let text = real_text::load_tweets(&path).unwrap();
    assert_eq!(text.len(), 38_158);
    assert_eq!(text.labels, ["negative", "neutral", "positive"]);
    assert_eq!(text.counts(), [16_186, 15_018, 6_954]);
    assert_eq!(
        text.samples[0],
        ("I just don't trust my life in google's hands #driverless cars_\u{fffd}_.no thank you".into(), 0)
    );
}
