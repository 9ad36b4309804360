//! Chapter 07 — data, padding and masks (notebooks-md/07-data-padding-masks.md).
//!
//! Shows, in order:
//! 1. Templates with random slots: one toy template filled five times, and a sample of each of
//!    the nine synthetic domains; the same seed gives the same samples.
//! 2. Diversity, computed here: per domain, the share of duplicate samples among 1,000 and the
//!    share of a fresh seed's 8-grams never seen under the first seed; next to the toy template,
//!    with its slots random and frozen.
//! 3. Vocabulary overlap (Jaccard) between the domains, drawn as a PNG, and the words psychology and
//!    medicine share. (PNGs go to notebooks-md/figures/, or `$TINYMOE_FIGURES_DIR`.)
//! 4. A batch: one sequence of each domain, tokenised with a BPE trained on the corpus, padded to
//!    128 positions, targets shifted by one, the 1/0 mask; drawn as PNGs (ids, mask, and the
//!    attention masks of a short sequence).
//! 5. Padding must not count: the LM's loss and gradient on the padded batch equal those of the
//!    sequences one by one, unpadded; what goes wrong when padding is forgotten (loss,
//!    bidirectional attention, a metric).
//! 6. Shuffled and balanced sampling on an imbalanced corpus: the labels in each batch.
//! 7. The IDX format: a tiny MNIST-format file pair written here, read back, checked for errors;
//!    MNIST's normalisation; the real MNIST too if `data/mnist` is there.
//! 8. `.npy` files: the batch and the images written for NumPy and read back.
//!
//! Exits 1 if a fact the chapter states does not hold. Needs no downloaded data.
//! Run: `cargo run --release --example ch07_data`

use ndarray::{s, Array2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tinymoe::data::batch::{Batch, Batches, Sampling};
use tinymoe::data::bpe::{Bpe, Split};
use tinymoe::data::corpora::stats::{self, duplicate_share, unseen_ngram_share, vocabulary, vocabulary_overlap};
use tinymoe::data::corpora::templates::{Filler, Lexicon};
use tinymoe::data::corpora::{self, Domain};
use tinymoe::data::mnist::{self, Split as MnistSplit};
use tinymoe::data::npy::{read_npy, write_npy};
use tinymoe::data::tokenizer::{show_bytes, Bytes, Tokenizer};
use tinymoe::engine::init;
use tinymoe::engine::layers::attention::{self, Mask};
use tinymoe::engine::layers::Mode;
use tinymoe::engine::losses::cross_entropy;
use tinymoe::engine::params::Tensors;
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::plot::heatmap::{heatmap, heatmap_grid, Annotate, Heatmap};

/// Where the scratch files (IDX, `.npy`) go, relative to the current directory; the pictures
/// go to notebooks-md/figures/ (see `common/figures.rs`).
const OUT_DIR: &str = "target/examples-out";
/// The batch's padded length (SPEC §3's default).
const MAX_LEN: usize = 128;

#[path = "common/facts.rs"]
mod facts;
use facts::Facts;
#[path = "common/figures.rs"]
mod figures;

/// The nine domains this chapter describes (`Domain::ALL` has two more, cooking and sports,
/// added for E5 in chapter 17).
const NINE: &[Domain] = Domain::ALL.split_at(9).0;

/// The path of figure `name`, its folder created; exits 1 naming the folder if it cannot be.
fn figure(name: &str) -> PathBuf {
    figures::path(name).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1);
    })
}

fn main() {
    let started = Instant::now();
    let mut facts = Facts::default();
    if let Err(e) = std::fs::create_dir_all(OUT_DIR) {
        eprintln!("{OUT_DIR}: {e}");
        std::process::exit(1);
    }
    templates(&mut facts);
    diversity();
    overlap(&mut facts);
    let (bpe, batch) = a_batch(&mut facts);
    padding_must_not_count(&bpe, &batch, &mut facts);
    sampling(&bpe, &mut facts);
    idx(&mut facts);
    npy(&batch, &mut facts);
    facts.finish(Some(started.elapsed().as_secs_f64()));
}

// ---------------------------------------------------------------------------------------
// 1. Templates with random slots

/// The toy template's word lists.
static TOY_LEXICON: &Lexicon = &[
    ("name", &["Ada", "Ben", "Chen", "Dana"]),
    ("drug", &["sertraline", "ibuprofen", "metformin"]),
    ("symptom", &["headaches", "insomnia", "nausea", "fatigue"]),
];
/// 4 names × 2 verbs × 3 drugs × 13 day counts × 4 symptoms = 1,248 different sentences.
const TOY_TEMPLATE: &str = "{@name} {took|was given} {drug} for {2..14} days and {@name} reported {symptom}.";

fn toy_samples(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A fresh filler per sample: {@name} is drawn once per sample, then reused.
    (0..n).map(|_| Filler::new(TOY_LEXICON, &[]).fill(TOY_TEMPLATE, &mut rng)).collect()
}

/// The first `n` characters of `s` on one line (a newline shows as ⏎), with "…" if it was longer.
fn clip(s: &str, n: usize) -> String {
    let one_line: String = s.chars().map(|c| if c == '\n' { '⏎' } else { c }).collect();
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

fn templates(facts: &mut Facts) {
    println!("== 1. Templates with random slots");
    println!("template: {TOY_TEMPLATE}");
    for s in toy_samples(5, 1) {
        println!("  {s}");
    }
    println!("\nthe first sample of each domain under seed 1 (cut at 110 characters):");
    for &d in NINE {
        let s = &corpora::generate(d, 1, 1)[0];
        println!("  {:<10} {:>3} bytes  {}", d.name(), s.len(), clip(s, 110));
    }
    let a = corpora::generate(Domain::Medicine, 5, 42);
    facts.check("generate(medicine, 5, 42) twice: the same samples", a == corpora::generate(Domain::Medicine, 5, 42));
    facts.check(
        "generate(medicine, 2, 42) is the first 2 of generate(medicine, 5, 42)",
        corpora::generate(Domain::Medicine, 2, 42) == a[..2],
    );
    facts.check("seed 43 gives other samples", corpora::generate(Domain::Medicine, 5, 43) != a);
}

// ---------------------------------------------------------------------------------------
// 2. Diversity

fn diversity() {
    let n = 1000;
    println!("\n== 2. Diversity: {n} samples under seed 1 (A) and {n} under seed 2 (B)");
    println!("duplicates = share of A's samples that repeat an earlier one; unseen 8-grams = share of B's");
    println!("whitespace 8-grams found nowhere in A");
    println!("{:<28} {:>7} {:>7} {:>11} {:>15}", "corpus", "bytes", "words", "duplicates", "unseen 8-grams");
    let t0 = Instant::now();
    for &d in NINE {
        let div = stats::diversity(d, n, 1, 2);
        println!(
            "{:<28} {:>7.1} {:>7.1} {:>10.2}% {:>14.1}%",
            d.name(),
            div.mean_bytes,
            div.mean_words,
            100.0 * div.duplicate_share,
            100.0 * div.unseen_8gram_share
        );
    }
    let elapsed = t0.elapsed().as_secs_f64();
    // The toy template, with its slots random, and with every slot frozen to one value.
    let (a, b) = (toy_samples(n, 1), toy_samples(n, 2));
    let frozen = vec!["Ada took sertraline for 2 days and Ada reported headaches.".to_string(); n];
    for (name, a, b) in [("toy template, random slots", &a, &b), ("toy template, slots frozen", &frozen, &frozen)] {
        let bytes = a.iter().map(String::len).sum::<usize>() as f64 / n as f64;
        let words = a.iter().map(|s| s.split_whitespace().count()).sum::<usize>() as f64 / n as f64;
        println!(
            "{name:<28} {bytes:>7.1} {words:>7.1} {:>10.2}% {:>14.1}%",
            100.0 * duplicate_share(a),
            100.0 * unseen_ngram_share(a, b, 8)
        );
    }
    println!("(the nine domains' figures took {elapsed:.2} s; `tinymoe data stats` prints the same table)");
}

// ---------------------------------------------------------------------------------------
// 3. Vocabulary overlap

fn overlap(facts: &mut Facts) {
    println!("\n== 3. Vocabulary overlap: Jaccard |A ∩ B| / |A ∪ B| of the content words of 1,000 samples each");
    let vocabs: Vec<BTreeSet<String>> = NINE.iter().map(|&d| vocabulary(&corpora::generate(d, 1000, 1))).collect();
    let k = NINE.len();
    let jaccard = Array2::from_shape_fn((k, k), |(i, j)| vocabulary_overlap(&vocabs[i], &vocabs[j]));
    let short: Vec<&str> = NINE.iter().map(|d| &d.name()[..4]).collect();
    println!("{:<11} {}", "", short.iter().map(|s| format!("{s:>6}")).collect::<String>());
    for (i, d) in NINE.iter().enumerate() {
        let row: String = (0..k).map(|j| format!("{:>6.3}", jaccard[[i, j]])).collect();
        println!("{:<11} {row}", d.name());
    }
    let at = |a: Domain, b: Domain| jaccard[[a.index(), b.index()]];
    let (psy, med) = (Domain::Psychology, Domain::Medicine);
    let others = [Domain::History, Domain::Business];
    let shared: Vec<&String> = vocabs[psy.index()]
        .intersection(&vocabs[med.index()])
        .filter(|w| others.iter().all(|o| !vocabs[o.index()].contains(*w)))
        .collect();
    let shown: Vec<&str> = shared.iter().take(24).map(|w| w.as_str()).collect();
    println!(
        "psychology ∩ medicine: {} words, {} of them in neither history nor business, e.g.:",
        vocabs[psy.index()].intersection(&vocabs[med.index()]).count(),
        shared.len()
    );
    println!("  {}", shown.join(" "));
    let e3 = Domain::E3;
    let mut best_other = 0.0f64;
    for (i, &a) in e3.iter().enumerate() {
        for &b in &e3[i + 1..] {
            if (a, b) != (psy, med) {
                best_other = best_other.max(at(a, b));
            }
        }
    }
    facts.check(
        &format!(
            "among E3's domains, psychology–medicine overlap most: {:.3} > {best_other:.3} (the next pair)",
            at(psy, med)
        ),
        at(psy, med) > best_other,
    );
    let names: Vec<String> = NINE.iter().map(|d| d.name().to_string()).collect();
    let path = figure("ch07_vocab_overlap.png");
    // The diagonal is 1 by definition: off the scale (drawn darkest), so the scale spreads
    // over the pairs.
    draw(
        &path,
        &Heatmap {
            x_desc: "domain",
            y_desc: "domain",
            range: Some((0.0, 0.25)),
            ..Heatmap::new("vocabulary overlap (Jaccard) between the domains", jaccard.view(), &names, &names)
        },
    );
}

fn draw(path: &Path, h: &Heatmap) {
    match heatmap(path, h) {
        Ok(()) => println!("wrote {}", figures::shown(path)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. A batch

fn a_batch(facts: &mut Facts) -> (Bpe, Batch) {
    println!("\n== 4. A batch: tokenise, pad to {MAX_LEN}, shift the targets, mask the padding");
    // The tokeniser: a BPE (chapter 06) trained on 100 samples of every domain (seed 3).
    let t0 = Instant::now();
    let training: String = corpora::corpus(NINE, 100, 3).iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n");
    let bpe = Bpe::train(&training, 4096, Split::Words).expect("1024 ≥ 257");
    let pad = bpe.pad_id().expect("a BPE reserves a padding id");
    println!(
        "BPE trained on {} bytes in {:.2} s: vocab {} (256 bytes, {} merges, padding id {pad})",
        training.len(),
        t0.elapsed().as_secs_f64(),
        bpe.vocab_size(),
        bpe.merges().len()
    );

    // The data set: 40 samples of every domain (seed 7), tokenised, each labelled with its domain.
    let samples = corpora::corpus(NINE, 40, 7);
    let seqs: Vec<Vec<usize>> = samples.iter().map(|s| bpe.encode(&s.text)).collect();
    let labels: Vec<usize> = samples.iter().map(|s| s.domain.index()).collect();
    let bytes: usize = samples.iter().map(|s| s.text.len()).sum();
    let tokens: usize = seqs.iter().map(Vec::len).sum();
    let batches = Batches::new(&seqs, &labels, MAX_LEN, pad, 9).expect("valid sequences");
    println!(
        "{} sequences, {:.2} bytes per token, {:.1} tokens per sequence (min {}, max {}); {} longer than {} + 1 are cut",
        seqs.len(),
        bytes as f64 / tokens as f64,
        tokens as f64 / seqs.len() as f64,
        seqs.iter().map(Vec::len).min().unwrap_or(0),
        seqs.iter().map(Vec::len).max().unwrap_or(0),
        batches.truncated,
        MAX_LEN
    );
    // A balanced epoch deals one sequence of each domain in turn: batch 0 is one of each.
    let order = batches.order(Sampling::Balanced, &mut ChaCha8Rng::seed_from_u64(11));
    let batch = batches.iter(&order).next().expect("at least one batch");
    println!("batch 0 of a balanced epoch: ids, targets, mask [{}, {MAX_LEN}]", batch.labels.len());
    println!("row  domain      tokens  real positions  padding");
    for (r, &i) in batch.rows.iter().enumerate() {
        let real = batch.mask.row(r).iter().filter(|&&m| m == 1).count();
        println!("{r:>3}  {:<10} {:>7} {:>15} {:>8}", samples[i].domain.name(), seqs[i].len(), real, MAX_LEN - real);
    }
    let n_real = batch.n_tokens();
    let total = batch.mask.len();
    println!(
        "{n_real} real positions of {total}: {:.1} % of the batch is padding",
        100.0 * (total - n_real) as f64 / total as f64
    );

    // The shortest row: where its text ends and the padding starts.
    let r = (0..batch.labels.len()).min_by_key(|&r| batch.mask.row(r).sum()).expect("rows");
    let n = batch.mask.row(r).iter().filter(|&&m| m == 1).count();
    let show = |id: usize| if id == pad { "·".to_string() } else { show_bytes(bpe.piece(id)) };
    println!("row {r} ({}), positions 0–5 and {}–{}:", NINE[batch.labels[r]].name(), n - 3, n + 2);
    println!("pos      ids              targets          mask");
    for p in (0..6).chain(n - 3..n + 3) {
        let (i, t) = (batch.ids[[r, p]], batch.targets[[r, p]]);
        println!("{p:>3}  {i:>5} {:<10} {t:>5} {:<10} {}", show(i), show(t), batch.mask[[r, p]]);
        if p == 5 {
            println!("  …");
        }
    }
    let shifted = (0..batch.labels.len())
        .all(|r| (1..MAX_LEN).all(|p| batch.mask[[r, p]] == 0 || batch.ids[[r, p]] == batch.targets[[r, p - 1]]));
    facts.check("targets are the ids shifted by one (ids[p] = targets[p − 1] wherever mask[p] = 1)", shifted);
    let padded_together =
        batch.mask.iter().zip(&batch.ids).zip(&batch.targets).all(|((&m, &i), &t)| m == 1 || (i == pad && t == pad));
    facts.check("wherever the mask is 0, both the id and the target are the padding id", padded_together);
    facts.check(
        "the mask is lm::padding_mask(ids)",
        lm::padding_mask(batch.ids.view(), Some(pad)).as_ref() == Some(&batch.mask),
    );

    // Pictures: the ids (padding grey) and the mask, one row per sequence, labelled by domain.
    let rows: Vec<String> =
        batch.rows.iter().enumerate().map(|(r, &i)| format!("{r} {}", samples[i].domain.name())).collect();
    let cols: Vec<String> = (0..MAX_LEN).map(|p| p.to_string()).collect();
    let ids = Array2::from_shape_fn(batch.ids.dim(), |(r, p)| {
        if batch.mask[[r, p]] == 1 {
            batch.ids[[r, p]] as f64
        } else {
            f64::NAN
        }
    });
    let mask = batch.mask.mapv(f64::from);
    let title = format!("batch 0: token ids (BPE, vocab {}), grey = padding", bpe.vocab_size());
    draw(
        &figure("ch07_batch_ids.png"),
        &Heatmap { x_desc: "position", y_desc: "sequence", ..Heatmap::new(&title, ids.view(), &rows, &cols) },
    );
    draw(
        &figure("ch07_batch_mask.png"),
        &Heatmap {
            x_desc: "position",
            y_desc: "sequence",
            range: Some((0.0, 1.0)),
            ..Heatmap::new("batch 0: mask (1 = real token, 0 = padding)", mask.view(), &rows, &cols)
        },
    );
    attention_masks();
    (bpe, batch)
}

/// The keys each query may see in one short padded sequence: causal, key padding, both.
fn attention_masks() {
    let text = "to be or";
    let (real, seq) = (text.len(), 12);
    let mut labels: Vec<String> = Bytes.encode(text).iter().map(|&id| Bytes.token_text(id)).collect();
    labels.resize(seq, "pad".to_string());
    // allowed[i, j] = 1 if query i may attend to key j.
    let causal = Array2::from_shape_fn((seq, seq), |(i, j)| f64::from(u8::from(j <= i)));
    let keys = Array2::from_shape_fn((seq, seq), |(_, j)| f64::from(u8::from(j < real)));
    let both = &causal * &keys;
    let panel = |title, values| Heatmap {
        x_desc: "key",
        y_desc: "query",
        annotate: Annotate::Never,
        ..Heatmap::new(title, values, &labels, &labels)
    };
    let panels = [
        panel("causal: j ≤ i", causal.view()),
        panel("key padding: key j is real", keys.view()),
        panel("both (the LM's mask)", both.view()),
    ];
    let path = figure("ch07_attention_masks.png");
    match heatmap_grid(
        &path,
        "which keys each query may see (dark = 1) in \"to be or\" padded to 12 positions",
        &panels,
        3,
    ) {
        Ok(()) => println!("wrote {}", figures::shown(&path)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 5. Padding must not count

fn padding_must_not_count(bpe: &Bpe, batch: &Batch, facts: &mut Facts) {
    println!("\n== 5. Padding must not count: in the loss, in attention, in every metric");
    let pad = bpe.pad_id().expect("a BPE reserves a padding id");
    let cfg = Config {
        vocab: bpe.vocab_size(),
        max_seq: MAX_LEN,
        d_model: 32,
        n_heads: 4,
        d_ff: 64,
        n_layers: 2,
        dropout: 0.0,
        pad_id: Some(pad),
        tie_head: true,
    };
    let mut model: lm::Params<f64> = lm::init(cfg, &mut init::rng(5));
    // Larger weights than GPT-2's 0.02, so that logits (and losses) differ from token to token.
    for (_, mut w) in model.tensors_mut() {
        if w.ndim() == 2 {
            w.mapv_inplace(|v| v * 8.0);
        }
    }

    // The padded batch in one forward: the mean over its real targets.
    let (padded, cache) = lm::forward(&model, batch.ids.view(), batch.targets.view(), &mut Mode::Eval);
    let g_padded = lm::backward(&model, &cache);
    // Each sequence alone, cut to its real length: no padding at all. The batch's loss is the
    // mean over all real targets, so the per-sequence means are weighted by their lengths.
    let n_total = batch.n_tokens() as f64;
    let mut unpadded = 0.0;
    let mut g_sum: Option<lm::Grads<f64>> = None;
    for r in 0..batch.labels.len() {
        let n = batch.mask.row(r).iter().filter(|&&m| m == 1).count();
        let ids = batch.ids.slice(s![r..r + 1, ..n]);
        let targets = batch.targets.slice(s![r..r + 1, ..n]);
        let (loss, c) = lm::forward(&model, ids, targets, &mut Mode::Eval);
        let weight = n as f64 / n_total;
        unpadded += weight * loss;
        let mut g = lm::backward(&model, &c);
        for (_, mut t) in g.tensors_mut() {
            t.mapv_inplace(|v| v * weight);
        }
        match &mut g_sum {
            None => g_sum = Some(g),
            Some(sum) => tinymoe::engine::params::add_into(sum, &g),
        }
    }
    let g_sum = g_sum.expect("at least one row");
    let worst_grad = g_padded
        .tensors()
        .iter()
        .zip(g_sum.tensors())
        .map(|((_, a), (_, b))| (a - &b).iter().fold(0.0f64, |m, v| m.max(v.abs())))
        .fold(0.0f64, f64::max);
    println!(
        "LM (vocab {}, d_model 32, 2 blocks, f64), batch 0 [{}, {MAX_LEN}] with {} real targets:",
        cfg.vocab,
        batch.labels.len(),
        batch.n_tokens()
    );
    println!("  loss of the padded batch, one forward            {padded:.12}");
    println!("  Σ_r (n_r / N)·loss of sequence r alone, unpadded  {unpadded:.12}");
    println!("  |Δ loss| = {:.1e}   max |Δ| over every gradient entry = {worst_grad:.1e}", (padded - unpadded).abs());
    facts.check(
        "the padded batch has the loss and gradient of its sequences unpadded (|Δ| < 1e-12)",
        (padded - unpadded).abs() < 1e-12 && worst_grad < 1e-12,
    );
    let mut forgetful = model.clone();
    forgetful.config.pad_id = None;
    let (counted, _) = lm::forward(&forgetful, batch.ids.view(), batch.targets.view(), &mut Mode::Eval);
    let n_all = batch.mask.len() as f64;
    println!("  the same weights with pad_id forgotten (all {n_all} targets counted, padding too): loss {counted:.6}");
    // Padding always follows padding: the easiest thing a model can learn. Once it has, those
    // targets cost nothing, and the forgotten loss drops by the padding share.
    println!(
        "  once a model has learnt that padding follows padding (loss 0 there), that loss would read {:.4}: {:.1} % lower, the text predicted no better",
        padded * n_total / n_all,
        100.0 * (1.0 - n_total / n_all)
    );

    // Attention: real positions must not read padding keys.
    println!(
        "attention (d_model 16, 2 heads, f64) on 8 real tokens; y at the real positions vs the unpadded sequence:"
    );
    let mut rng = init::rng(9);
    let p: attention::Params<f64> = attention::init(16, 2, 0.5, &mut rng);
    let x_real: Array2<f64> = init::normal((8, 16), 1.0, &mut rng);
    let mut x_padded = Array2::<f64>::zeros((12, 16));
    x_padded.slice_mut(s![..8, ..]).assign(&x_real);
    // The padding rows hold the padding token's input: whatever it is, it must not matter.
    x_padded.slice_mut(s![8.., ..]).assign(&init::normal((4, 16), 1.0, &mut rng));
    let key_mask = Array2::from_shape_fn((1, 12), |(_, j)| u8::from(j < 8));
    println!("  {:<14} {:<22} max |Δy| at real positions", "attention", "mask on padded keys");
    let mut results = Vec::new();
    for causal in [false, true] {
        let (alone, _) = attention::forward(&p, x_real.view(), 1, 8, Mask { causal, key_padding: None });
        for with_mask in [true, false] {
            let mask = Mask { causal, key_padding: with_mask.then(|| key_mask.view()) };
            let (y, _) = attention::forward(&p, x_padded.view(), 1, 12, mask);
            let d = (&y.slice(s![..8, ..]) - &alone).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let name = if causal { "causal" } else { "bidirectional" };
            println!("  {name:<14} {:<22} {d:.1e}", if with_mask { "yes" } else { "no" });
            results.push((causal, with_mask, d));
        }
    }
    let same = |c: bool, m: bool| results.iter().any(|&(rc, rm, d)| rc == c && rm == m && d < 1e-12);
    facts.check(
        "with the key mask, real outputs equal the unpadded ones (both kinds)",
        same(false, true) && same(true, true),
    );
    facts.check("bidirectional attention without the key mask reads the padding", !same(false, false));
    facts.check(
        "causal attention with padding on the right never reads it anyway (padding comes after every real query)",
        same(true, false),
    );

    // A metric: a "model" that always predicts the padding id.
    let targets: Vec<usize> = batch.targets.iter().copied().collect();
    let mut always_pad = Array2::<f64>::zeros((targets.len(), cfg.vocab));
    always_pad.column_mut(pad).fill(1.0);
    let counted = cross_entropy::accuracy(always_pad.view(), &targets, None);
    let masked = cross_entropy::accuracy(always_pad.view(), &targets, Some(pad));
    println!("a model that always predicts the padding id, token accuracy on batch 0:");
    println!("  padding counted {:.1} %   padding ignored {:.1} %", 100.0 * counted, 100.0 * masked);
    facts.check("ignoring padding, always predicting it scores 0 %", masked == 0.0 && counted > 0.0);
}

// ---------------------------------------------------------------------------------------
// 6. Shuffled and balanced sampling

fn sampling(bpe: &Bpe, facts: &mut Facts) {
    println!("\n== 6. Shuffled and balanced sampling");
    let sizes = [(Domain::Psychology, 96), (Domain::History, 48), (Domain::Medicine, 24), (Domain::Business, 12)];
    let mut seqs = Vec::new();
    let mut labels = Vec::new();
    for (d, n) in sizes {
        for text in corpora::generate(d, n, 5) {
            seqs.push(bpe.encode(&text));
            labels.push(d.index());
        }
    }
    let batch_size = 8;
    let batches =
        Batches::new(&seqs, &labels, MAX_LEN, bpe.pad_id().expect("padding id"), batch_size).expect("valid sequences");
    let sizes_text: Vec<String> = sizes.iter().map(|(d, n)| format!("{d} {n}")).collect();
    println!("an imbalanced corpus: {} ({} sequences), batches of {batch_size}", sizes_text.join(", "), seqs.len());
    for (name, sampling) in [("shuffled", Sampling::Shuffled), ("balanced", Sampling::Balanced)] {
        let order = batches.order(sampling, &mut ChaCha8Rng::seed_from_u64(3));
        println!("{name}: {} sequences drawn, {} batches", order.len(), order.len().div_ceil(batch_size));
        println!("  batch   psychology  history  medicine  business");
        let mut per_batch = Vec::new();
        for (k, b) in batches.iter(&order).enumerate() {
            let count = |d: Domain| b.labels.iter().filter(|&&l| l == d.index()).count();
            let c = sizes.map(|(d, _)| count(d));
            if k < 5 {
                println!("  {k:>5}   {:>10} {:>8} {:>9} {:>9}", c[0], c[1], c[2], c[3]);
            }
            per_batch.push(c);
        }
        println!("  …");
        let drawn = sizes.map(|(d, _)| order.iter().filter(|&&i| labels[i] == d.index()).count());
        let distinct =
            sizes.map(|(d, _)| order.iter().filter(|&&i| labels[i] == d.index()).collect::<BTreeSet<_>>().len());
        let without_business = per_batch.iter().filter(|c| c[3] == 0).count();
        println!(
            "  per domain, drawn (distinct): {}",
            sizes
                .iter()
                .zip(drawn.iter().zip(distinct))
                .map(|((d, _), (n, u))| format!("{d} {n} ({u})"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("  batches with no business sequence: {without_business} of {}", per_batch.len());
        match sampling {
            Sampling::Shuffled => facts.check(
                "shuffled: every sequence exactly once per epoch",
                order.len() == seqs.len() && order.iter().collect::<BTreeSet<_>>().len() == seqs.len(),
            ),
            _ => facts.check(
                "balanced: every batch holds 2 sequences of each domain",
                per_batch.iter().all(|c| c.iter().all(|&n| n == 2)),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// 7. The IDX format

/// An IDX file: magic 0x0000_08_nd (unsigned bytes, nd dimensions), one big-endian u32 per
/// dimension, then the bytes.
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Three 28×28 digits drawn with straight strokes: a 1, a 0 and a 7.
fn toy_digits() -> (Vec<u8>, Vec<u8>) {
    let side = mnist::SIDE;
    let mut pixels = vec![0u8; 3 * side * side];
    let mut ink = |img: usize, r: usize, c: usize| pixels[img * side * side + r * side + c] = 255;
    for r in 5..23 {
        for c in 13..16 {
            ink(0, r, c); // the 1: a vertical bar
        }
    }
    for r in 0..side {
        for c in 0..side {
            // the 0: a ring, ellipse radii 6 and 9 around the centre
            let (y, x) = ((r as f64 - 13.5) / 9.0, (c as f64 - 13.5) / 6.0);
            let d = (x * x + y * y).sqrt();
            if (0.75..=1.0).contains(&d) {
                ink(1, r, c);
            }
        }
    }
    for c in 7..22 {
        ink(2, 5, c); // the 7: a top bar …
        ink(2, 6, c);
    }
    for r in 7..24 {
        let c = 21 - (r - 7) / 2; // … and a stroke down to the left
        ink(2, r, c);
        ink(2, r, c - 1);
    }
    (pixels, vec![1, 0, 7])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn write_file(path: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(path, bytes) {
        eprintln!("{}: {e}", path.display());
        std::process::exit(1);
    }
}

fn idx(facts: &mut Facts) {
    println!("\n== 7. The IDX format, and MNIST's normalisation");
    let dir = Path::new(OUT_DIR).join("ch07-idx");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {e}", dir.display());
        std::process::exit(1);
    }
    let side = mnist::SIDE as u32;
    let (pixels, labels) = toy_digits();
    let images_file = idx_bytes(&[3, side, side], &pixels);
    let labels_file = idx_bytes(&[3], &labels);
    let images_path = dir.join("train-images-idx3-ubyte");
    let labels_path = dir.join("train-labels-idx1-ubyte");
    write_file(&images_path, &images_file);
    write_file(&labels_path, &labels_file);
    println!("{}: {} bytes", images_path.display(), images_file.len());
    println!("  header {}   (magic 0x00000803, dims 3 × 28 × 28)", hex(&images_file[..16]));
    println!("{}: {} bytes", labels_path.display(), labels_file.len());
    println!("  header {}   (magic 0x00000801, dim 3), data {}", hex(&labels_file[..8]), hex(&labels_file[8..]));

    let data = match mnist::load_split(&dir, MnistSplit::Train) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("read back with mnist::load_split: x {:?}, labels {:?}", data.x.dim(), data.y);
    let raw = mnist::read_images(&images_path).expect("just written");
    facts.check("the pixels read back are the pixels written", raw.pixels.as_slice() == Some(&pixels[..]));
    println!("image 2 read back (label {}), every other row and column:", data.y[2]);
    for r in (0..mnist::SIDE).step_by(2) {
        let line: String = (0..mnist::SIDE)
            .step_by(2)
            .map(|c| if raw.pixels[[2, r * mnist::SIDE + c]] > 0 { '#' } else { '.' })
            .collect();
        println!("  {line}");
    }
    println!("x = (pixel / 255 − {}) / {}:", mnist::MEAN, mnist::STD);
    let probe = Array2::from_shape_vec((1, 3), vec![0u8, 33, 255]).expect("1×3");
    let x = mnist::normalise(probe.view());
    println!("  pixel 0 → {:.4}   pixel 33 → {:.4}   pixel 255 → {:.4}", x[[0, 0]], x[[0, 1]], x[[0, 2]]);
    let ink_x = data.x.iter().copied().fold(f32::MIN, f32::max);
    facts.check("an inked pixel (255) of the file becomes 2.8215", (ink_x - 2.8215).abs() < 1e-4);

    // Broken files: each is an error naming the file.
    println!("broken files:");
    let wrong = dir.join("wrong-magic-idx3-ubyte");
    write_file(&wrong, &labels_file);
    let truncated = dir.join("truncated-idx3-ubyte");
    write_file(&truncated, &images_file[..images_file.len() - 100]);
    let two_labels = dir.join("two-labels");
    if let Err(e) = std::fs::create_dir_all(&two_labels) {
        eprintln!("{}: {e}", two_labels.display());
        std::process::exit(1);
    }
    write_file(&two_labels.join("train-images-idx3-ubyte"), &images_file);
    write_file(&two_labels.join("train-labels-idx1-ubyte"), &idx_bytes(&[2], &labels[..2]));
    let errors = [
        mnist::read_images(&wrong).err(),
        mnist::read_images(&truncated).err(),
        mnist::load_split(&two_labels, MnistSplit::Train).err(),
    ];
    for e in &errors {
        println!("  {}", e.as_ref().map_or("no error!".to_string(), |e| e.to_string()));
    }
    facts.check("each broken file is an error", errors.iter().all(Option::is_some));
    // gzip: the same bytes, compressed, read the same.
    let gz_path = dir.join("gz-images-idx3-ubyte.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&images_file).expect("writing to a Vec");
    write_file(&gz_path, &gz.finish().expect("writing to a Vec"));
    let from_gz = mnist::read_images(&gz_path).map(|i| i.pixels == raw.pixels).unwrap_or(false);
    facts.check("the gzipped file reads as the same pixels", from_gz);

    real_mnist(facts);
}

/// The real digits, when `scripts/fetch-data.sh` has put them in data/mnist.
fn real_mnist(facts: &mut Facts) {
    let dir = Path::new(mnist::DEFAULT_DIR);
    if !dir.is_dir() {
        println!("(no {}: `{}` fetches the real MNIST; everything above needed none)", dir.display(), mnist::FETCH);
        return;
    }
    let t0 = Instant::now();
    let m = match mnist::load(dir) {
        Ok(m) => m,
        Err(e) => {
            println!("real MNIST in {} does not load: {e}", dir.display());
            facts.check("data/mnist loads", false);
            return;
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let counts = |y: &[usize]| {
        let mut c = [0usize; 10];
        for &l in y {
            c[l] += 1;
        }
        c
    };
    println!(
        "the real MNIST from {} ({} + {} images, loaded and normalised in {seconds:.2} s):",
        dir.display(),
        m.train.len(),
        m.test.len()
    );
    println!("  train digits 0–9: {:?}", counts(&m.train.y));
    println!("  test  digits 0–9: {:?}", counts(&m.test.y));
    let n = m.train.x.len() as f64;
    let mean = m.train.x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = m.train.x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let raw_mean = (mean * mnist::STD as f64 + mnist::MEAN as f64) * 255.0;
    println!("  train pixels: raw mean {raw_mean:.2} (of 255); normalised mean {mean:.4}, std {:.4}", var.sqrt());
    facts.check("MNIST has 60,000 + 10,000 images", m.train.len() == 60_000 && m.test.len() == 10_000);
    facts.check(
        "normalised training pixels have mean ≈ 0 and std ≈ 1",
        mean.abs() < 1e-3 && (var.sqrt() - 1.0).abs() < 1e-3,
    );
}

// ---------------------------------------------------------------------------------------
// 8. .npy

fn npy(batch: &Batch, facts: &mut Facts) {
    println!("\n== 8. .npy files, to compare with NumPy");
    let dir = PathBuf::from(OUT_DIR);
    let ids = batch.ids.mapv(|v| v as i64);
    let mask = batch.mask.clone();
    let (pixels, _) = toy_digits();
    let images = mnist::normalise(Array2::from_shape_vec((3, 784), pixels).expect("3·784 pixels").view());
    let written = [("ch07_batch_ids.npy", "ids"), ("ch07_batch_mask.npy", "mask"), ("ch07_digits.npy", "images")];
    let result = (|| -> tinymoe::Result<bool> {
        write_npy(&dir.join(written[0].0), &ids)?;
        write_npy(&dir.join(written[1].0), &mask)?;
        write_npy(&dir.join(written[2].0), &images)?;
        let ids_back: Array2<i64> = read_npy(&dir.join(written[0].0))?;
        let mask_back: Array2<u8> = read_npy(&dir.join(written[1].0))?;
        let images_back: Array2<f32> = read_npy(&dir.join(written[2].0))?;
        Ok(ids_back == ids && mask_back == mask && images_back == images)
    })();
    let same = match result {
        Ok(same) => same,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    for (file, what) in written {
        let path = dir.join(file);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1);
            }
        };
        // The header: magic (6 bytes), version (2), header length (2, little-endian), then a Python dict.
        let header_len = bytes.get(8..10).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize);
        let header = bytes.get(10..10 + header_len).map(|h| String::from_utf8_lossy(h).trim_end().to_string());
        println!("wrote {} ({what}, {} bytes): {}", path.display(), bytes.len(), header.unwrap_or_default());
    }
    facts.check("ids, mask and images read back from .npy exactly", same);
    println!("in Python: np.load(\"{OUT_DIR}/ch07_batch_mask.npy\").sum() == {}", batch.n_tokens());
}
