//! Tokenisers: exact round trips on any UTF-8 (property tests), GPT-2's ids, BPE training
//! checked by hand and against a slow full-recount twin, deterministic training and files,
//! clear errors for malformed files, and the compact vocabulary.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tinymoe::data::bpe::{learn_merges, merge, merge_with_diff, split_words, Bpe, Pair, Split};
use tinymoe::data::compact::Compact;
use tinymoe::data::gpt2::Gpt2;
use tinymoe::data::text::builtin;
use tinymoe::data::tokenizer::{from_spec, Bytes, Tokenizer};
use tinymoe::Error;

/// One BPE per split mode, trained once on a slice of the built-in text.
fn trained(split: Split) -> &'static Bpe {
    static WORDS: OnceLock<Bpe> = OnceLock::new();
    static NONE: OnceLock<Bpe> = OnceLock::new();
    let cell = if split == Split::Words { &WORDS } else { &NONE };
    cell.get_or_init(|| {
        let text = builtin();
        Bpe::train(head(&text, 20_000), 600, split).expect("600 ≥ 257")
    })
}

/// The first `n` bytes of `text`, or a little fewer to end on a character boundary.
fn head(text: &str, n: usize) -> &str {
    let mut n = n.min(text.len());
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    &text[..n]
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinymoe-tok-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The slow twin of `learn_merges`: recount every pair of the whole corpus before each merge.
fn learn_merges_slow(text: &str, n_merges: usize, split: Split) -> Vec<(Pair, usize)> {
    let mut chunks: Vec<Vec<usize>> = split.chunks(text).iter().map(|c| c.bytes().map(usize::from).collect()).collect();
    let mut merges = Vec::new();
    while merges.len() < n_merges {
        let mut counts = std::collections::BTreeMap::<Pair, usize>::new();
        for ids in &chunks {
            for p in ids.windows(2) {
                *counts.entry((p[0], p[1])).or_insert(0) += 1;
            }
        }
        // Most frequent; among equals the smallest pair (BTreeMap iterates pairs ascending).
        let Some((&pair, &count)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) else { break };
        if count < 2 {
            break;
        }
        let new = 256 + merges.len();
        chunks = chunks.iter().map(|ids| merge(ids, pair, new)).collect();
        merges.push((pair, count));
    }
    merges
}

/// The slow twin of `Bpe::encode`: apply every merge in the order learned, each over the
/// whole chunk.
fn encode_slow(bpe: &Bpe, text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for chunk in bpe.split().chunks(text) {
        let mut ids: Vec<usize> = chunk.bytes().map(usize::from).collect();
        for (k, &pair) in bpe.merges().iter().enumerate() {
            ids = merge(&ids, pair, 256 + k);
        }
        out.extend(ids);
    }
    out
}

/// Asserts `result` is a Malformed error naming `path` and `line`, with `needle` in it.
fn assert_malformed<T: std::fmt::Debug>(result: tinymoe::Result<T>, path: &Path, line: usize, needle: &str) {
    let err = result.expect_err("a malformed file must be rejected");
    let msg = err.to_string();
    match &err {
        Error::Malformed { path: p, line: l, .. } => {
            assert_eq!((p.as_path(), *l), (path, line), "{msg}");
        }
        other => panic!("expected Error::Malformed, got {other:?}"),
    }
    assert!(msg.starts_with(&format!("{}:{line}: ", path.display())), "{msg}");
    assert!(msg.contains(needle), "expected {needle:?} in {msg:?}");
}

// ---- hand-checkable BPE ---------------------------------------------------------------

#[test]
fn bpe_on_aaabdaaabac_merges_aa_then_ab_then_both() {
    // Pairs of "aaabdaaabac": aa ×4 (overlapping), ab ×2, bd, da, ba, ac ×1. So 256 = a+a.
    // Then "Z a b d Z a b a c" (Z = 256): Za ×2 and ab ×2 tie; (97, 98) < (256, 97), so
    // 257 = a+b. Then "Z Y d Z Y a c": ZY ×2, so 258 = 256+257; then every pair occurs once.
    let merges = learn_merges("aaabdaaabac", 10, Split::Words);
    let got: Vec<(Pair, usize, usize)> = merges.iter().map(|m| (m.pair, m.id, m.count)).collect();
    assert_eq!(got, [((97, 97), 256, 4), ((97, 98), 257, 2), ((256, 257), 258, 2)]);

    let bpe = Bpe::train("aaabdaaabac", 1000, Split::Words).unwrap();
    assert_eq!(bpe.vocab_size(), 256 + 3 + 1, "3 merges, then training stops: no pair occurs twice");
    assert_eq!(bpe.pad_id(), Some(259));
    assert_eq!(bpe.encode("aaabdaaabac"), [258, 100, 258, 97, 99]);
    assert_eq!(bpe.piece(258), b"aaab");
    assert_eq!(bpe.token_text(258), "aaab");
    assert_eq!(bpe.decode(&[258, 100, 259]), "aaabd", "padding decodes to nothing");
    // "aaa" can merge only once: left to right, no overlap.
    assert_eq!(bpe.encode("aaa"), [256, 97]);
}

#[test]
fn vocab_size_below_bytes_plus_padding_is_rejected() {
    let err = Bpe::train("abc", 256, Split::Words).unwrap_err().to_string();
    assert!(err.contains("vocab_size = 256") && err.contains("257"), "{err}");
}

#[test]
fn split_words_keeps_spaces_with_the_next_word() {
    assert_eq!(split_words("Hello world"), ["Hello", " world"]);
    assert_eq!(split_words("a  b"), ["a", " ", " b"]);
    assert_eq!(split_words("x = f(42);\n\ty"), ["x", " =", " f", "(", "42", ");", "\n\t", "y"]);
    assert_eq!(split_words("héllo wörld"), ["héllo", " wörld"]);
    assert_eq!(split_words(""), Vec::<&str>::new());
}

// ---- training: incremental counts = full recount; determinism; files -----------------

#[test]
fn incremental_training_equals_full_recount_on_the_builtin_text() {
    let text = builtin();
    let text = head(&text, 6_000);
    for split in [Split::Words, Split::None] {
        let fast: Vec<(Pair, usize)> = learn_merges(text, 200, split).iter().map(|m| (m.pair, m.count)).collect();
        assert_eq!(fast, learn_merges_slow(text, 200, split), "split {split:?}");
    }
}

#[test]
fn encoding_a_whole_text_as_one_chunk_equals_replaying_every_merge() {
    // Split::None makes the whole text one chunk: the heap-based encoder's hardest case.
    let text = builtin();
    let bpe = trained(Split::None);
    assert_eq!(bpe.encode(head(&text, 8_000)), encode_slow(bpe, head(&text, 8_000)));
}

/// The pairs of `ids` with their multiplicities.
fn pair_counts(ids: &[usize]) -> std::collections::BTreeMap<Pair, i64> {
    let mut counts = std::collections::BTreeMap::new();
    for p in ids.windows(2) {
        *counts.entry((p[0], p[1])).or_insert(0) += 1;
    }
    counts
}

#[test]
fn merge_with_diff_on_neighbouring_merges() {
    // a b a b a → N N a: the shared pair (b, a) is removed once, (N, N) added once.
    let (out, removed, added) = merge_with_diff(&[0, 1, 0, 1, 0], (0, 1), 9);
    assert_eq!(out, [9, 9, 0]);
    assert_eq!(removed, [(0, 1), (1, 0), (0, 1), (1, 0)]);
    assert_eq!(added, [(9, 9), (9, 0)]);
}

#[test]
fn training_is_deterministic_and_survives_save_and_load() {
    let text = builtin();
    let a = Bpe::train(&text, 700, Split::Words).unwrap();
    let b = Bpe::train(&text, 700, Split::Words).unwrap();
    assert_eq!(a.merges(), b.merges());
    assert_eq!(a.vocab_size(), 700);
    assert_eq!(a.to_text(), b.to_text(), "the same text and size give the same file, byte for byte");

    let dir = tmp_dir("roundtrip");
    let path = dir.join("tok.bpe");
    a.save(&path).unwrap();
    let loaded = Bpe::load(&path).unwrap();
    assert_eq!(loaded, a);
    let sample = head(&text, 5000);
    assert_eq!(loaded.encode(sample), a.encode(sample));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), a.to_text());
    let spec = format!("bpe:{}", path.display());
    assert_eq!(from_spec(&spec).unwrap().encode(sample), a.encode(sample));
    // Compression: the trained vocabulary needs far fewer tokens than bytes.
    assert!(a.encode(&text).len() * 2 < text.len(), "BPE-700 should at least halve the token count");
}

#[test]
fn saved_file_is_readable() {
    let bpe = Bpe::train("aaabdaaabac", 1000, Split::Words).unwrap();
    let text = bpe.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "tinymoe-bpe v1");
    assert_eq!(lines[1], "split words");
    assert!(text.contains("256 = 97 + 97    # \"aa\"\n"), "{text}");
    assert!(text.contains("258 = 256 + 257    # \"aaab\"\n"), "{text}");
    assert!(text.contains("259 the padding id"), "{text}");
}

#[test]
fn malformed_bpe_files_name_the_file_and_line() {
    let dir = tmp_dir("malformed");
    let cases: [(&str, &str, usize, &str); 9] = [
        ("empty", "", 1, "empty"),
        ("header", "tinymoe-bpe v9\nsplit words\n", 1, "expected the header"),
        ("split", "tinymoe-bpe v1\nsplit sentences\n", 2, "split words"),
        ("line", "tinymoe-bpe v1\nsplit words\n256 = 97 + 97\n257 = 97 +\n", 4, "NEW = LEFT + RIGHT"),
        ("number", "tinymoe-bpe v1\nsplit words\n256 = 97 + x\n", 3, "\"x\" is not a token id"),
        ("unknown-id", "tinymoe-bpe v1\n# comment\nsplit words\n256 = 97 + 97\n257 = 300 + 97\n", 5, "unknown id 300"),
        ("self", "tinymoe-bpe v1\nsplit words\n256 = 256 + 97\n", 3, "unknown id 256"),
        ("order", "tinymoe-bpe v1\nsplit words\n256 = 97 + 97\n\n258 = 97 + 98\n", 5, "next new id is 257"),
        ("repeat", "tinymoe-bpe v1\nsplit none\n256 = 97 + 97\n257 = 97 + 97\n", 4, "repeats 97 + 97"),
    ];
    for (name, text, line, needle) in cases {
        let path = dir.join(format!("{name}.bpe"));
        std::fs::write(&path, text).unwrap();
        assert_malformed(Bpe::load(&path), &path, line, needle);
    }
    let missing = dir.join("missing.bpe");
    let err = Bpe::load(&missing).unwrap_err().to_string();
    assert!(err.starts_with(&missing.display().to_string()), "{err}");
}

// ---- GPT-2 ----------------------------------------------------------------------------

#[test]
fn gpt2_ids_equal_gpt2s() {
    let gpt2 = Gpt2::new();
    assert_eq!(gpt2.encode("Hello world"), [15496, 995]);
    assert_eq!(gpt2.encode("Hello world, def f(x): return x"), [15496, 995, 11, 825, 277, 7, 87, 2599, 1441, 2124]);
    assert_eq!(gpt2.encode("<|endoftext|>"), [50256]);
    assert_eq!(gpt2.encode("a<|endoftext|>b"), [64, 50256, 65]);
    assert_eq!(gpt2.vocab_size(), 50257);
    assert_eq!(gpt2.pad_id(), Some(50256));
    assert_eq!(gpt2.token_text(995), "␣world");
    assert_eq!(gpt2.token_text(50256), "<|endoftext|>");
    assert_eq!(gpt2.decode(&[15496, 995, 50257]), "Hello world\u{FFFD}", "an unknown id decodes to U+FFFD");
    // The same through the spec the CLI uses.
    assert_eq!(from_spec("gpt2").unwrap().encode("Hello world"), [15496, 995]);
}

// ---- compact vocabulary ---------------------------------------------------------------

#[test]
fn compact_vocab_keeps_seen_ids_and_maps_the_rest_to_unknown() {
    let corpus = "the cat sat on the mat. the dog sat on the log.";
    let compact = Compact::build(Box::new(Gpt2::new()), "gpt2", corpus);
    let seen = Gpt2::new().encode(corpus);
    let mut distinct = seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(compact.vocab_size(), 2 + distinct.len(), "padding, unknown, and each distinct id once");

    // Seen text round-trips; ids are dense and ascend with the inner ids.
    let ids = compact.encode("the dog sat on the mat.");
    assert!(ids.iter().all(|&id| (2..compact.vocab_size()).contains(&id)), "{ids:?}");
    assert_eq!(compact.decode(&ids), "the dog sat on the mat.");
    for (k, &inner) in distinct.iter().enumerate() {
        assert_eq!((compact.from_inner(inner), compact.to_inner(2 + k)), (2 + k, Some(inner)));
    }
    // An unseen word becomes unknown (GPT-2 cuts " zebra" into two ids, " zeb" + "ra"), and
    // each unknown id decodes to U+FFFD.
    let ids = compact.encode("the zebra sat");
    let n_unknown = ids.iter().filter(|&&id| id == Compact::UNKNOWN).count();
    assert_eq!(n_unknown, 2, "{ids:?}");
    assert_eq!(compact.decode(&ids), "the\u{FFFD}\u{FFFD} sat");
    assert_eq!(compact.token_text(Compact::UNKNOWN), "<unk>");
    // GPT-2's <|endoftext|> is the padding id, on both sides.
    assert_eq!(compact.encode("<|endoftext|>"), [Compact::PAD]);
    assert_eq!(compact.decode(&[Compact::PAD]), "<|endoftext|>");

    // Save → load (through the spec) → identical encodings.
    let dir = tmp_dir("compact");
    let path = dir.join("vocab.compact");
    compact.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("tinymoe-compact v1\ninner gpt2\n"), "{text}");
    let loaded = from_spec(&format!("compact:{}", path.display())).unwrap();
    assert_eq!(loaded.vocab_size(), compact.vocab_size());
    assert_eq!(loaded.encode("the zebra sat on the log"), compact.encode("the zebra sat on the log"));
}

#[test]
fn ids_outside_the_vocabulary_decode_to_the_replacement_character() {
    let bpe = Bpe::train("aaabdaaabac", 1000, Split::Words).unwrap();
    assert_eq!(Bytes.decode(&[104, 256, 105]), "h\u{FFFD}i");
    assert_eq!(bpe.decode(&[104, 260, 105]), "h\u{FFFD}i");
    assert_eq!((Bytes.token_text(300), bpe.token_text(260)), ("<300?>".to_string(), "<260?>".to_string()));
}

#[test]
fn compact_over_bytes_has_no_padding_inside() {
    let compact = Compact::build(Box::new(Bytes), "bytes", "abba");
    assert_eq!(compact.vocab_size(), 4); // pad, unknown, a, b
    assert_eq!(compact.encode("abc"), [2, 3, Compact::UNKNOWN]);
    assert_eq!(compact.decode(&[2, Compact::PAD, 3]), "ab", "padding is not text");
}

#[test]
fn malformed_compact_files_name_the_file_and_line() {
    let dir = tmp_dir("compact-bad");
    let cases: [(&str, &str, usize, &str); 6] = [
        ("header", "tinymoe-vocab v1\n", 1, "expected the header"),
        ("inner", "tinymoe-compact v1\ninner nope\n", 2, "unknown tokenizer \"nope\""),
        ("line", "tinymoe-compact v1\ninner gpt2\n2 = 11\n3 : 13\n", 4, "COMPACT = INNER"),
        ("range", "tinymoe-compact v1\ninner bytes\n2 = 256\n", 3, "outside bytes's vocabulary of 256"),
        ("order", "tinymoe-compact v1\ninner bytes\n2 = 98\n3 = 97\n", 4, "must ascend"),
        ("pad", "tinymoe-compact v1\ninner gpt2\n2 = 50256\n", 3, "padding id"),
    ];
    for (name, text, line, needle) in cases {
        let path = dir.join(format!("{name}.compact"));
        std::fs::write(&path, text).unwrap();
        assert_malformed(Compact::load(&path), &path, line, needle);
    }
}

#[test]
fn unknown_specs_list_the_choices() {
    let err = from_spec("sentencepiece").err().expect("not a tokeniser").to_string();
    assert!(err.contains("\"sentencepiece\"") && err.contains("gpt2") && err.contains("bpe:FILE"), "{err}");
    let err = from_spec("bpe:").err().expect("no file").to_string();
    assert!(err.contains("needs a file"), "{err}");
    let err = from_spec("bpe:/no/such/tok.bpe").err().expect("missing file").to_string();
    assert!(err.starts_with("/no/such/tok.bpe: "), "{err}");
}

// ---- property tests: round trips on any UTF-8 ------------------------------------------

/// Random strings biased towards text that shares pieces with the training text, plus any
/// Unicode scalar (accents, CJK, emoji, control characters).
fn texty() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![" the", " model", "ing", " x", "=", "\n", "  ", "é", "😀", "表", "\t", "0"]);
    prop::collection::vec(prop_oneof![word.prop_map(String::from), any::<char>().prop_map(String::from)], 0..40)
        .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bytes_round_trip(s in any::<String>()) {
        prop_assert_eq!(Bytes.decode(&Bytes.encode(&s)), s);
    }

    #[test]
    fn trained_bpe_round_trips(s in texty(), t in any::<String>()) {
        for split in [Split::Words, Split::None] {
            let bpe = trained(split);
            for text in [&s, &t] {
                let ids = bpe.encode(text);
                prop_assert!(ids.iter().all(|&id| id < bpe.vocab_size() && Some(id) != bpe.pad_id()));
                prop_assert_eq!(&bpe.decode(&ids), text);
            }
        }
    }

    #[test]
    fn bpe_encode_equals_replaying_every_merge(s in texty()) {
        for split in [Split::Words, Split::None] {
            prop_assert_eq!(trained(split).encode(&s), encode_slow(trained(split), &s));
        }
    }

    #[test]
    fn gpt2_round_trips(s in texty(), t in any::<String>()) {
        let gpt2 = Gpt2::new();
        prop_assert_eq!(gpt2.decode(&gpt2.encode(&s)), s);
        prop_assert_eq!(gpt2.decode(&gpt2.encode(&t)), t);
    }

    #[test]
    fn split_words_cuts_text_into_nonempty_pieces_that_join_back(s in texty()) {
        let chunks = split_words(&s);
        prop_assert!(chunks.iter().all(|c| !c.is_empty()));
        prop_assert_eq!(chunks.concat(), s);
    }

    #[test]
    fn merge_with_diff_lists_exactly_the_pairs_that_change(
        ids in prop::collection::vec(0usize..3, 0..30), left in 0usize..3, right in 0usize..3,
    ) {
        let (out, removed, added) = merge_with_diff(&ids, (left, right), 7);
        prop_assert_eq!(&out, &merge(&ids, (left, right), 7));
        let mut counts = pair_counts(&ids);
        for p in removed {
            *counts.entry(p).or_insert(0) -= 1;
        }
        for p in added {
            *counts.entry(p).or_insert(0) += 1;
        }
        counts.retain(|_, c| *c != 0);
        prop_assert_eq!(counts, pair_counts(&out));
    }

    #[test]
    fn incremental_training_equals_full_recount(s in "[ab ]{0,60}", n in 0usize..20) {
        let fast: Vec<(Pair, usize)> = learn_merges(&s, n, Split::Words).iter().map(|m| (m.pair, m.count)).collect();
        prop_assert_eq!(fast, learn_merges_slow(&s, n, Split::Words));
    }
}
