//! Chapter 05 — the transformer block and the language model
//! (notebooks-md/05-transformer-block-and-language-model.md).
//!
//! Shows, in order:
//! 1. The pre-LN block: gradient checks in f64 of the engine's block (causal + padding mask,
//!    dropout) and of a post-LN block written here from the same layers.
//! 2. Why pre-LN: the gradient norm that reaches each block of a 12-block stack at
//!    initialisation, pre-LN against post-LN, for two initial weight scales.
//! 3. The language model: ids and targets shifted by one, the loss at initialisation against
//!    ln(vocab), padding targets ignored, the tied head's two gradient paths, and gradient
//!    checks of a whole small LM (untied and tied, padding in the batch).
//! 4. Training a tiny byte-level LM with `train::fit_lm` on the built-in text: loss,
//!    perplexity and bits per byte, epoch by epoch, against a byte-frequency baseline.
//! 5. Sampling: softmax(z / T) for a few logits at T = 0.5, 1, 2 (and top-k), checked against
//!    `sample`'s frequencies; the trained model's next-byte distribution; greedy and sampled
//!    continuations.
//! 6. The KV cache: the same tokens as a full recompute, and the time per token of both at
//!    several context lengths.
//!
//! Exits 1 if a gradient check fails, padding targets change the loss, the tied-head identity
//! does not hold, or the KV cache and recompute disagree.
//! Run: `cargo run --release --example ch05_transformer_lm`

use ndarray::{array, Array1, Array2, ArrayView2, Axis};
use std::time::Instant;
use tinymoe::data::text::{self, Windows};
use tinymoe::data::tokenizer::{Bytes, Tokenizer};
use tinymoe::engine::gradcheck::{check_tensors, compare, numeric_grad, Options};
use tinymoe::engine::init;
use tinymoe::engine::layers::attention::{self, Mask};
use tinymoe::engine::layers::transformer_block as block;
use tinymoe::engine::layers::{layer_norm, linear, mlp, InputGrad, Mode};
use tinymoe::engine::optim::{Kind, Schedule};
use tinymoe::engine::params::{self, Tensors};
use tinymoe::models::generate::{generate, sample, Decode, Decoder, Sampling};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::train;

#[path = "common/tally.rs"]
mod tally;
use tally::Tally;

/// The allocator the `tinymoe` binary uses (src/main.rs says why): glibc's malloc hands every
/// large buffer back to the OS and maps it again on the next step.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Finite-difference step for inputs (dx); parameter checks use the checker's default, 1e-4.
const EPS: f64 = 1e-5;

fn main() {
    let started = Instant::now();
    let mut tally = Tally::default();
    block_checks(&mut tally);
    pre_ln_vs_post_ln();
    lm_basics(&mut tally);
    let model = training();
    sampling(&model);
    kv_cache(&model, &mut tally);
    println!();
    tally.finish(&format!("done in {:.1} s", started.elapsed().as_secs_f64()));
}

/// √(Σ v²) of an array.
fn norm<D: ndarray::Dimension>(a: &ndarray::Array<f64, D>) -> f64 {
    a.iter().map(|v| v * v).sum::<f64>().sqrt()
}

// ---------------------------------------------------------------------------------------
// 1. The block, and its gradient checks

const BATCH: usize = 2;
const SEQ: usize = 5;
const D_MODEL: usize = 8;
const HEADS: usize = 2;
const D_FF: usize = 16;

/// The post-LN block of the original Transformer (Vaswani et al. 2017), built from the same
/// parameters as the engine's pre-LN block; only where the LayerNorms sit differs:
/// ```text
///   pre-LN  (engine):  h = x + attn(ln1(x)),    y = h + mlp(ln2(h))
///   post-LN (here):    h = ln1(x + attn(x)),    y = ln2(h + mlp(h))
/// ```
struct PostLnCache {
    attn: attention::Cache<f64>,
    ln1: layer_norm::Cache<f64>,
    mlp: mlp::Cache<f64>,
    ln2: layer_norm::Cache<f64>,
}

/// x [batch·seq, d_model] → y [batch·seq, d_model], post-LN, eval mode.
fn post_ln_forward(
    p: &block::Params<f64>,
    x: ArrayView2<f64>,
    batch: usize,
    seq: usize,
    mask: Mask,
) -> (Array2<f64>, PostLnCache) {
    let (a, attn) = attention::forward(&p.attn, x, batch, seq, mask);
    let (h, ln1) = layer_norm::forward(&p.ln1, (&x + &a).view());
    let (m, mlp_cache) = mlp::forward(&p.mlp, h.view(), &mut Mode::Eval);
    let (y, ln2) = layer_norm::forward(&p.ln2, (&h + &m).view());
    (y, PostLnCache { attn, ln1, mlp: mlp_cache, ln2 })
}

/// dy → dx through the post-LN block. Every path, the residual one included, first goes
/// through a LayerNorm's backward.
fn post_ln_backward(p: &block::Params<f64>, c: &PostLnCache, dy: ArrayView2<f64>) -> (Array2<f64>, block::Grads<f64>) {
    // y = ln2(z), z = h + mlp(h): dz = ln2'(dy), then dh = dz + mlp'(dz).
    let (dz, ln2) = layer_norm::backward(&p.ln2, &c.ln2, dy);
    let (dm, mlp_grads) = mlp::backward(&p.mlp, &c.mlp, dz.view(), InputGrad::Need);
    let dh = dz + &dm.expect("asked for dx");
    // h = ln1(z), z = x + attn(x): the same again.
    let (dz, ln1) = layer_norm::backward(&p.ln1, &c.ln1, dh.view());
    let (da, attn) = attention::backward(&p.attn, &c.attn, dz.view());
    (dz + &da, block::Grads { ln1, attn, ln2, mlp: mlp_grads })
}

fn block_checks(t: &mut Tally) {
    println!("== 1. The pre-LN block: h = x + attn(ln1(x)), y = h + mlp(ln2(h))");
    println!("gradient checks in f64 ([{BATCH}·{SEQ}, {D_MODEL}], {HEADS} heads, d_ff {D_FF}, causal + padding mask, dropout 0.1):");
    let mut g = init::rng(41);
    let mut p: block::Params<f64> = block::init(D_MODEL, HEADS, D_FF, 0.1, 0.3, &mut g);
    // Non-trivial LayerNorm gains and biases, so their gradients are tested too.
    p.ln1.gamma = init::uniform(D_MODEL, 0.5, &mut g) + 1.0;
    p.ln1.beta = init::uniform(D_MODEL, 0.5, &mut g);
    p.ln2.gamma = init::uniform(D_MODEL, 0.5, &mut g) + 1.0;
    p.ln2.beta = init::uniform(D_MODEL, 0.5, &mut g);
    let x: Array2<f64> = init::uniform((BATCH * SEQ, D_MODEL), 1.0, &mut g);
    let r: Array2<f64> = init::uniform((BATCH * SEQ, D_MODEL), 1.0, &mut g); // L = Σ y ⊙ r
    let pad = array![[1u8, 1, 1, 1, 1], [1, 1, 1, 0, 0]];
    let mask = Mask { causal: true, key_padding: Some(pad.view()) };
    // A fresh generator with a fixed seed on every call: the same dropout mask each time.
    let run = |p: &block::Params<f64>, x: &Array2<f64>| {
        block::forward(p, x.view(), BATCH, SEQ, mask, &mut Mode::Train(&mut init::rng(5))).0
    };
    let (_, cache) = block::forward(&p, x.view(), BATCH, SEQ, mask, &mut Mode::Train(&mut init::rng(5)));
    let (dx, grads) = block::backward(&p, &cache, r.view());
    t.expect_pass("block", compare("dx", &dx, &numeric_grad(|x| (run(&p, x) * &r).sum(), &x, EPS)));
    let mut params = p.clone();
    t.expect_pass_all(
        "block",
        check_tensors(&mut params, &grads, |p| (run(p, &x) * &r).sum(), &Options { eps: EPS, ..Options::default() }),
    );

    println!("the post-LN block written in this example (h = ln1(x + attn(x)), y = ln2(h + mlp(h))):");
    let (_, cache) = post_ln_forward(&p, x.view(), BATCH, SEQ, mask);
    let post = |p: &block::Params<f64>, x: &Array2<f64>| post_ln_forward(p, x.view(), BATCH, SEQ, mask).0;
    let (dx, grads) = post_ln_backward(&p, &cache, r.view());
    t.expect_pass("postln", compare("dx", &dx, &numeric_grad(|x| (post(&p, x) * &r).sum(), &x, EPS)));
    let mut params = p.clone();
    t.expect_pass_all(
        "postln",
        check_tensors(&mut params, &grads, |p| (post(p, &x) * &r).sum(), &Options { eps: EPS, ..Options::default() }),
    );
}

// ---------------------------------------------------------------------------------------
// 2. Pre-LN vs post-LN in a deep stack

fn pre_ln_vs_post_ln() {
    let (layers, batch, seq, d_model, heads, d_ff) = (12, 4, 16, 64, 4, 256);
    println!(
        "\n== 2. The gradient reaching each block of a {layers}-block stack at initialisation \
         (d_model {d_model}, {heads} heads, d_ff {d_ff}, causal)"
    );
    println!("L = Σ y ⊙ r on the stack's output y; x, r ~ N(0, 1). Each entry is ‖∂L/∂x_l‖ / ‖∂L/∂y‖, x_l the input of block l.");
    println!(
        "\"residual only\" follows the residual connections alone, skipping every branch: for pre-LN that path is"
    );
    println!("the identity (1 at every block, by construction); for post-LN it crosses two LayerNorms per block.");
    let mask = Mask { causal: true, key_padding: None };
    let stds = [0.02, 0.1];
    // columns[s][l] = (pre-LN total, post-LN total, post-LN residual only, pre-LN rms of x_l)
    let mut columns = Vec::new();
    for &std in &stds {
        let mut g = init::rng(7);
        let blocks: Vec<block::Params<f64>> =
            (0..layers).map(|_| block::init(d_model, heads, d_ff, 0.0, std, &mut g)).collect();
        let x: Array2<f64> = init::normal((batch * seq, d_model), 1.0, &mut g);
        let r: Array2<f64> = init::normal((batch * seq, d_model), 1.0, &mut g);
        let top = norm(&r);
        let mut rows = vec![(0.0, 0.0, 0.0, 0.0); layers];

        // Pre-LN: the engine's block, one at a time so the gradient at every input is visible.
        let mut h = x.clone();
        let mut caches = Vec::new();
        for (l, b) in blocks.iter().enumerate() {
            rows[l].3 = norm(&h) / (h.len() as f64).sqrt();
            let (y, c) = block::forward(b, h.view(), batch, seq, mask, &mut Mode::Eval);
            caches.push(c);
            h = y;
        }
        let mut dh = r.clone();
        for l in (0..layers).rev() {
            dh = block::backward(&blocks[l], &caches[l], dh.view()).0;
            rows[l].0 = norm(&dh) / top;
        }

        // Post-LN: the same weights, a LayerNorm after each residual sum.
        let mut h = x.clone();
        let mut caches = Vec::new();
        for b in &blocks {
            let (y, c) = post_ln_forward(b, h.view(), batch, seq, mask);
            caches.push(c);
            h = y;
        }
        let (mut dh, mut d_residual) = (r.clone(), r.clone());
        for l in (0..layers).rev() {
            dh = post_ln_backward(&blocks[l], &caches[l], dh.view()).0;
            // The residual path alone: through ln2's and ln1's backward, no branch added.
            let (d, _) = layer_norm::backward(&blocks[l].ln2, &caches[l].ln2, d_residual.view());
            d_residual = layer_norm::backward(&blocks[l].ln1, &caches[l].ln1, d.view()).0;
            rows[l].1 = norm(&dh) / top;
            rows[l].2 = norm(&d_residual) / top;
        }
        columns.push(rows);
    }
    println!("        ------- weights N(0, {}²) -------    ------- weights N(0, {}²) -------", stds[0], stds[1]);
    println!("          pre-LN   post-LN       post-LN      pre-LN   post-LN       post-LN");
    println!("block l    total     total  residual only      total     total  residual only");
    for l in (0..layers).rev() {
        let (a, b) = (columns[0][l], columns[1][l]);
        println!("{l:>7} {:>8.3} {:>9.3} {:>14.3} {:>11.3} {:>9.3} {:>14.3}", a.0, a.1, a.2, b.0, b.1, b.2);
    }
    let rms: Vec<String> = columns[1].iter().map(|row| format!("{:.2}", row.3)).collect();
    println!(
        "pre-LN, weights N(0, {}²): rms of the residual stream x_l, blocks 0..{}: {}",
        stds[1],
        layers - 1,
        rms.join(" ")
    );
}

// ---------------------------------------------------------------------------------------
// 3. The language model

/// The small LM of the gradient checks: 11 ids, id 0 is padding.
fn small_config(tie_head: bool) -> Config {
    Config {
        vocab: 11,
        max_seq: 6,
        d_model: 8,
        n_heads: 2,
        d_ff: 12,
        n_layers: 2,
        dropout: 0.1,
        pad_id: Some(0),
        tie_head,
    }
}

fn lm_basics(t: &mut Tally) {
    println!("\n== 3. The language model: embed → blocks → ln_f → head → cross-entropy");
    let tok = Bytes;
    let w = Windows::new(&tok.encode("to be or not to be"), 8);
    println!("\"to be or not to be\" cut into windows of seq = 8 (targets = ids shifted by one):");
    for row in 0..w.len() {
        let show =
            |ids: ndarray::ArrayView1<usize>| ids.iter().map(|&i| tok.token_text(i)).collect::<Vec<_>>().join(" ");
        println!("  window {row}: ids     {}", show(w.ids.row(row)));
        println!("            targets {}", show(w.targets.row(row)));
    }

    // The loss at initialisation, on real text, with GPT-2's N(0, 0.02²) weights.
    let cfg = Config {
        vocab: 256,
        max_seq: 64,
        d_model: 64,
        n_heads: 4,
        d_ff: 256,
        n_layers: 2,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    let model: lm::Params<f32> = lm::init(cfg, &mut init::rng(1));
    let tokens = tok.encode(&text::builtin());
    let w = Windows::new(&tokens[..64 * 32 + 1], 64);
    let loss_init = lm::evaluate(&model, w.ids.view(), w.targets.view(), 32);
    let logits = lm::predict(&model, w.ids.view()).mapv(f64::from);
    let rows = logits.to_shape((w.ids.len(), 256)).expect("[batch·seq, vocab]");
    let n = rows.len() as f64;
    let mean = rows.sum() / n;
    let var = rows.mapv(|v| (v - mean).powi(2)).sum() / n;
    // L = mean over positions of logsumexp(z) − z[target]: the two terms apart.
    let lse = rows.rows().into_iter().map(logsumexp).sum::<f64>() / rows.nrows() as f64;
    let z_target = rows.rows().into_iter().zip(w.targets.iter()).map(|(z, &t)| z[t]).sum::<f64>() / rows.nrows() as f64;
    println!("a byte-level LM at initialisation (vocab 256, d_model 64, 2 blocks, tied, weights N(0, 0.02²)), 2048 positions:");
    println!("  logits: mean {mean:+.4}, std {:.4}", var.sqrt());
    println!(
        "  loss {loss_init:.4} = mean logsumexp(z) {lse:.4} − mean z[target] {z_target:+.4};   ln 256 = {:.4},  ln 256 + var/2 = {:.4}",
        256f64.ln(),
        256f64.ln() + var / 2.0
    );

    // Padding targets are ignored: a padded row has the loss of the unpadded one.
    let p: lm::Params<f64> = lm::init(small_config(false), &mut init::rng(52));
    let padded = lm::forward(&p, array![[3, 5, 7, 0, 0]].view(), array![[5, 7, 2, 0, 0]].view(), &mut Mode::Eval).0;
    let short = lm::forward(&p, array![[3, 5, 7]].view(), array![[5, 7, 2]].view(), &mut Mode::Eval).0;
    println!(
        "padding (id 0): loss of ids [3 5 7 0 0] → targets [5 7 2 0 0] = {padded:.12}, of [3 5 7] → [5 7 2] = {short:.12}"
    );
    let same = (padded - short).abs() < 1e-12;
    println!("  padding targets are ignored: {same}");
    t.require("padding targets change the loss", same);

    // Larger weights than GPT-2's 0.02, so every path carries a visible gradient.
    let scaled = |tie_head: bool| {
        let mut p: lm::Params<f64> = lm::init(small_config(tie_head), &mut init::rng(51));
        for (_, mut w) in p.tensors_mut() {
            if w.ndim() == 2 {
                w.mapv_inplace(|v| v * 8.0);
            }
        }
        p
    };
    // Row 1 ends in padding, and so do its targets.
    let ids = array![[3, 5, 7, 2, 9], [4, 4, 8, 0, 0]];
    let targets = array![[5, 7, 2, 9, 1], [4, 8, 0, 0, 0]];
    let loss_of =
        |p: &lm::Params<f64>| lm::forward(p, ids.view(), targets.view(), &mut Mode::Train(&mut init::rng(3))).0;
    let grads_of = |p: &lm::Params<f64>| {
        let (_, cache) = lm::forward(p, ids.view(), targets.view(), &mut Mode::Train(&mut init::rng(3)));
        lm::backward(p, &cache)
    };

    // The tied head: the same function as an untied model whose head is W = tokᵀ, b = 0.
    let tied = scaled(true);
    let mut untied = tied.clone();
    untied.config.tie_head = false;
    untied.head = Some(linear::Params { w: tied.embed.tok.t().to_owned(), b: Array1::zeros(11) });
    let (g_tied, g_untied) = (grads_of(&tied), grads_of(&untied));
    let head_w = &g_untied.head.as_ref().expect("untied").dw;
    let sum = &g_untied.embed.dtok + &head_w.t();
    let worst = (&g_tied.embed.dtok - &sum).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    println!("tied head: logits = ln_f(h)·tokᵀ, and tok is also the lookup table");
    println!(
        "  ‖dtok from the lookup‖ = {:.4}   ‖dtok from the head‖ = {:.4}   ‖tied dtok‖ = {:.4}",
        norm(&g_untied.embed.dtok),
        norm(head_w),
        norm(&g_tied.embed.dtok)
    );
    println!("  tied dtok = lookup dtok + (head dW)ᵀ: max difference {worst:.1e}: {}", worst < 1e-12);
    t.require("tied dtok is not the sum of its two paths", worst < 1e-12);

    println!("gradient checks in f64 of the whole LM (vocab 11, 2 blocks, dropout 0.1, padding in the batch):");
    // ε = 3e-5: the weights ×8 make the loss curved enough that ε = 1e-4's truncation error
    // (∝ ε²) reaches 8e-7 on a small gradient, while 1e-5's roundoff (∝ 1/ε) reaches 6e-7.
    let opts = Options { max_coords: 40, eps: 3e-5, ..Options::default() };
    for (prefix, tie_head) in [("lm", false), ("lm_tied", true)] {
        let mut p = scaled(tie_head);
        let grads = grads_of(&p);
        t.expect_pass_all(prefix, check_tensors(&mut p, &grads, loss_of, &opts));
    }
}

// ---------------------------------------------------------------------------------------
// 4. Training

fn training() -> lm::Params<f32> {
    let seq = 64;
    let cfg = Config {
        vocab: 256,
        max_seq: seq,
        d_model: 64,
        n_heads: 4,
        d_ff: 256,
        n_layers: 2,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    let tok = Bytes;
    let tokens = tok.encode(&text::builtin());
    let (train_tokens, val_tokens) = text::split(&tokens, 0.1);
    let val = Windows::new(val_tokens, seq);
    let (epochs, batch_size, lr) = (3, 8, 2e-3);
    let steps = Windows::new(train_tokens, seq).len().div_ceil(batch_size) * epochs;
    let cfg_train = train::Config {
        epochs,
        batch_size,
        lr,
        schedule: Schedule::WarmupCosine { warmup: 20, total: steps, min_lr: 3e-4 },
        optimizer: Kind::adamw(0.01),
        clip: Some(1.0),
        seed: 42,
        rules: vec![],
    };
    let mut model: lm::Params<f32> = lm::init(cfg, &mut init::rng(42));
    println!(
        "\n== 4. Training a byte-level LM ({} parameters: d_model 64, 4 heads, 2 blocks, tied head, seq {seq})",
        params::count(&model)
    );
    println!(
        "on the built-in text: {} training bytes, {} held out; AdamW lr {lr:e}, warm-up + cosine, batch {batch_size}, {steps} steps",
        train_tokens.len(),
        val_tokens.len()
    );
    let before = lm::evaluate(&model, val.ids.view(), val.targets.view(), 64);
    // A baseline that knows only how common each byte is: p(b) = (count(b) + 1) / (n + 256).
    let mut counts = [1.0f64; 256];
    for &b in train_tokens {
        counts[b] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let unigram = -val.targets.iter().map(|&b| (counts[b] / total).ln()).sum::<f64>() / val.targets.len() as f64;
    let ln2 = std::f64::consts::LN_2;
    println!("epoch   train loss   val loss   val perplexity   bits/byte   tokens/s");
    println!("{:>5}   {:>10}   {before:>8.3}   {:>14.1}   {:>9.2}", 0, "-", before.exp(), before / ln2);
    let started = Instant::now();
    let history = train::fit_lm(&mut model, train_tokens, seq, &val, &cfg_train, &mut |_| {}, &mut |e, _| {
        println!(
            "{:>5}   {:>10.3}   {:>8.3}   {:>14.1}   {:>9.2}   {:>8.0}",
            e.epoch,
            e.train_loss,
            e.val_loss,
            e.val_perplexity(),
            e.val_loss / ln2,
            e.tokens_per_s
        );
        Ok(())
    })
    .expect("the built-in text and this config are valid");
    let last = history.epochs.last().expect("at least one epoch");
    println!(
        "baseline: byte frequencies alone (counted on the training bytes) score {unigram:.3} nats ({:.2} bits/byte) on the held-out text",
        unigram / ln2
    );
    let first_steps = history.step_losses[..10].iter().sum::<f64>() / 10.0;
    let last_steps = history.step_losses[history.step_losses.len() - 10..].iter().sum::<f64>() / 10.0;
    println!(
        "trained in {:.1} s; mean loss of the first 10 steps {first_steps:.3}, of the last 10 {last_steps:.3}",
        started.elapsed().as_secs_f64()
    );
    println!(
        "validation loss fell: {} ({before:.3} → {:.3}); a uniform guess over 256 bytes is 8 bits/byte",
        last.val_loss < before,
        last.val_loss
    );
    model
}

// ---------------------------------------------------------------------------------------
// 5. Sampling

/// softmax(z / T) over the ids kept by top-k (all when None); 0 for the others.
fn tempered(logits: &[f64], temperature: f64, top_k: Option<usize>) -> Vec<f64> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let kept = &order[..top_k.unwrap_or(logits.len()).min(logits.len())];
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut p = vec![0.0; logits.len()];
    for &i in kept {
        p[i] = ((logits[i] - max) / temperature).exp();
    }
    let total: f64 = p.iter().sum();
    p.iter().map(|v| v / total).collect()
}

/// log Σ exp(z), stable.
fn logsumexp(z: ndarray::ArrayView1<f64>) -> f64 {
    let max = z.fold(f64::NEG_INFINITY, |m, &v| m.max(v));
    max + z.iter().map(|&v| (v - max).exp()).sum::<f64>().ln()
}

fn entropy(p: &[f64]) -> f64 {
    -p.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>()
}

fn sampling(model: &lm::Params<f32>) {
    println!("\n== 5. Sampling: p = softmax(z / T), optionally over the top k only");
    let z = [2.0, 1.0, 0.5, 0.0, -1.0];
    println!("logits z = {z:?}");
    let settings = [(0.5, None), (1.0, None), (2.0, None), (1.0, Some(2))];
    println!(
        "setting            p(id 0)  p(id 1)  p(id 2)  p(id 3)  p(id 4)   entropy   drawn by `sample`, 20000 draws"
    );
    let z_array = Array1::from(z.to_vec());
    for (temperature, top_k) in settings {
        let p = tempered(&z, temperature, top_k);
        let mut counts = [0usize; 5];
        let mut g = init::rng(11);
        for _ in 0..20_000 {
            counts[sample(z_array.view(), Sampling { temperature, top_k }, &mut g)] += 1;
        }
        let name = match top_k {
            Some(k) => format!("T = {temperature}, top-k {k}"),
            None => format!("T = {temperature}"),
        };
        let cells: String = p.iter().map(|v| format!("{v:>9.3}")).collect();
        let freqs: Vec<String> = counts.iter().map(|&c| format!("{:.3}", c as f64 / 20_000.0)).collect();
        println!("{name:<17}{cells}   {:>7.3}   [{}]", entropy(&p), freqs.join(", "));
    }
    println!("greedy (T → 0) always takes id 0; uniform (T → ∞) has entropy ln 5 = {:.3}", 5f64.ln());

    let tok = Bytes;
    let prompt = "The gradient of the los";
    let ids = Array2::from_shape_vec((1, prompt.len()), tok.encode(prompt)).expect("one row");
    let logits = lm::predict(model, ids.view());
    let last: Vec<f64> = logits.index_axis(Axis(0), 0).row(prompt.len() - 1).iter().map(|&v| v as f64).collect();
    let mut order: Vec<usize> = (0..256).collect();
    order.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
    println!("\nthe trained model's next byte after {prompt:?}: the five most likely, at three temperatures");
    println!("byte       logit   T = 0.5   T = 1   T = 2");
    let (p05, p1, p2) = (tempered(&last, 0.5, None), tempered(&last, 1.0, None), tempered(&last, 2.0, None));
    for &i in &order[..5] {
        println!("{:<6} {:>9.3} {:>9.3} {:>7.3} {:>7.3}", tok.token_text(i), last[i], p05[i], p1[i], p2[i]);
    }
    println!(
        "entropy (nats)       {:>9.3} {:>7.3} {:>7.3}   (uniform over 256 bytes: {:.3})",
        entropy(&p05),
        entropy(&p1),
        entropy(&p2),
        256f64.ln()
    );

    let prompt = "The loss ";
    println!("\ncontinuations of {prompt:?} (120 bytes each):");
    for (name, how, seed) in [
        ("greedy", Sampling::GREEDY, 0),
        ("T = 0.8, top-k 20", Sampling { temperature: 0.8, top_k: Some(20) }, 1),
        ("T = 1.0", Sampling { temperature: 1.0, top_k: None }, 1),
        ("T = 2.0", Sampling { temperature: 2.0, top_k: None }, 1),
    ] {
        let new = generate(model, &tok.encode(prompt), 120, how, Decode::KvCache, &mut init::rng(seed));
        println!("  {name:<18} {:?}", format!("{prompt}{}", tok.decode(&new)));
    }
}

// ---------------------------------------------------------------------------------------
// 6. The KV cache

fn kv_cache(model: &lm::Params<f32>, t: &mut Tally) {
    println!("\n== 6. The KV cache: keep every layer's keys and values instead of recomputing them");
    let tok = Bytes;
    let prompt = tok.encode("Every layer ");
    let max_seq = model.config.max_seq;

    // The decoder's logits against a full forward, at every position of one context.
    let context = tok.encode(&text::builtin()[..max_seq]);
    let full = lm::predict(model, Array2::from_shape_vec((1, max_seq), context.clone()).expect("one row").view());
    let mut decoder = Decoder::new(model);
    let mut worst = 0.0f32;
    for (pos, &id) in context.iter().enumerate() {
        let step = decoder.push(model, id);
        let want = full.index_axis(Axis(0), 0);
        let d = step.iter().zip(want.row(pos)).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        worst = worst.max(d);
    }
    println!("logits, decoder (one token at a time) vs one full forward, all {max_seq} positions: max |Δ| = {worst:.1e} (f32)");

    let n = 150;
    println!(
        "generating {n} tokens from {:?} (max_seq {max_seq}, so the context slides), both ways:",
        tok.decode(&prompt)
    );
    let mut all_same = true;
    for (name, how) in
        [("greedy", Sampling::GREEDY), ("T = 0.8, top-k 20", Sampling { temperature: 0.8, top_k: Some(20) })]
    {
        let t0 = Instant::now();
        let kv = generate(model, &prompt, n, how, Decode::KvCache, &mut init::rng(7));
        let t_kv = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let re = generate(model, &prompt, n, how, Decode::Recompute, &mut init::rng(7));
        let t_re = t0.elapsed().as_secs_f64();
        let same = kv == re;
        all_same &= same;
        println!(
            "  {name:<18} identical tokens: {same}   KV cache {:.1} ms, recompute {:.1} ms",
            t_kv * 1e3,
            t_re * 1e3
        );
    }
    println!("KV cache and recompute gave identical tokens: {all_same}");
    t.require("the KV cache and recompute generated different tokens", all_same);

    // Time per token at several context lengths, on a model with a long context.
    let cfg = Config { max_seq: 512, ..model.config };
    let long: lm::Params<f32> = lm::init(cfg, &mut init::rng(3));
    let stream = tok.encode(&text::builtin());
    println!("\ntime per new token at context length t (d_model 64, 2 blocks, max_seq 512; mean of 8 tokens):");
    println!("    t   KV cache (ms)   recompute (ms)   recompute / KV");
    let reps = 8;
    for &ctx in &[32, 128, 512] {
        // KV cache: read the first ctx − reps tokens (not timed), then time the last `reps` pushes.
        let mut decoder = Decoder::new(&long);
        for &id in &stream[..ctx - reps] {
            decoder.push(&long, id);
        }
        let t0 = Instant::now();
        for &id in &stream[ctx - reps..ctx] {
            std::hint::black_box(decoder.push(&long, id));
        }
        let kv = t0.elapsed().as_secs_f64() / reps as f64;
        // Recompute: a full forward over the whole context for each of those tokens.
        let t0 = Instant::now();
        for end in ctx - reps + 1..=ctx {
            let ids = Array2::from_shape_vec((1, end), stream[..end].to_vec()).expect("one row");
            std::hint::black_box(lm::predict(&long, ids.view()));
        }
        let re = t0.elapsed().as_secs_f64() / reps as f64;
        println!("{ctx:>5}   {:>13.3}   {:>14.3}   {:>14.1}", kv * 1e3, re * 1e3, re / kv);
    }
}
