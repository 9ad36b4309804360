//! Chapter 11 — checkpoints and reproducibility
//! (notebooks-md/11-checkpoints-reproducibility.md).
//!
//! Shows, in order:
//! 1. What a checkpoint holds: a small LM's run saved mid-training, taken apart byte by byte —
//!    magic, version, header length, the JSON header (tensor names, shapes, offsets), the
//!    bincode payload (weights, then the training state), the CRC-32.
//! 2. Atomic saves: the temp file + fsync + rename, what a killed save leaves behind, and that it
//!    is harmless.
//! 3. Exact resume: 2N steps straight through against N steps, save, load, N more — every
//!    loss bit-identical — and what goes wrong when one piece of the state is not restored.
//! 4. Partial loading: a block into another block, the embedding into a bigger model, and the
//!    errors for a prefix that selects nothing and for a model of another width.
//! 5. Seeds and threads: the same seed on 1 and 4 threads gives the same bits; another seed
//!    does not.
//! 6. Failure handling: a loss that overflows stops the run naming the step, before any weight
//!    changes, and the last checkpoint stays as it was; a NaN in a gradient is refused naming
//!    the step and the tensor.
//!
//! Exits 1 if a fact the chapter states does not hold. Needs no downloaded data.
//! Run: `cargo run --release --example ch11_checkpoints`

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tinymoe::checkpoint::{self, Trained};
use tinymoe::data::text::{self, Windows};
use tinymoe::data::tokenizer::{Bytes, Tokenizer};
use tinymoe::engine::init::{self, streams, RngState};
use tinymoe::engine::optim::{Kind, Optimizer, Schedule};
use tinymoe::engine::params::{self, Tensors};
use tinymoe::models::transformer_lm::{self as lm, Config};
use tinymoe::train::{self, fit_lm_resumable, Checkpoint, LmHistory, LmState};
use tinymoe::transplant;

/// Where the checkpoints go, relative to the current directory.
const OUT_DIR: &str = "target/examples-out/ch11";
const KIND: &str = "transformer_lm";
const SEQ: usize = 16;
const SEED: u64 = 5;

#[path = "common/facts.rs"]
mod facts;
use facts::Facts;

fn main() {
    let started = Instant::now();
    let mut facts = Facts::default();
    if let Err(e) = std::fs::create_dir_all(OUT_DIR) {
        eprintln!("{OUT_DIR}: {e}");
        std::process::exit(1);
    }
    let data = Data::new();
    let run = the_run(&data);
    what_a_checkpoint_holds(&run, &mut facts);
    atomic_saves(&run, &mut facts);
    exact_resume(&run, &data, &mut facts);
    partial_loading(&run, &data, &mut facts);
    seeds_and_threads(&data, &mut facts);
    failures(&data, &mut facts);
    facts.finish(Some(started.elapsed().as_secs_f64()));
}

/// The built-in text as bytes: 4,800 tokens to train on, 1,200 held out.
struct Data {
    tokens: Vec<usize>,
}

impl Data {
    fn new() -> Data {
        let mut tokens = Bytes.encode(&text::builtin());
        tokens.truncate(6_000);
        Data { tokens }
    }
    fn train(&self) -> &[usize] {
        text::split(&self.tokens, 0.2).0
    }
    fn val(&self) -> Windows {
        Windows::new(text::split(&self.tokens, 0.2).1, SEQ)
    }
}

fn model_config(d_model: usize, n_layers: usize) -> Config {
    Config {
        vocab: 256,
        max_seq: SEQ,
        d_model,
        n_heads: 2,
        d_ff: 2 * d_model,
        n_layers,
        dropout: 0.1,
        pad_id: None,
        tie_head: true,
    }
}

fn train_config(seed: u64, epochs: usize, total_steps: usize) -> train::Config {
    train::Config {
        epochs,
        batch_size: 8,
        lr: 3e-3,
        schedule: Schedule::WarmupCosine { warmup: 10, total: total_steps, min_lr: 0.0 },
        optimizer: Kind::adamw(0.01),
        clip: Some(1.0),
        seed,
        rules: vec![],
    }
}

/// Steps in one epoch of `data` (batches of 8 windows).
fn steps_per_epoch(data: &Data) -> usize {
    Windows::new(data.train(), SEQ).len().div_ceil(8)
}

fn fresh_model(seed: u64) -> lm::Params<f32> {
    lm::init(model_config(32, 2), &mut init::stream(seed, streams::INIT))
}

/// A run's model and state, saved as `tinymoe train lm` saves them.
type Saved = Trained<lm::Params<f32>, LmState>;

fn save(path: &Path, model: &lm::Params<f32>, state: &LmState) -> tinymoe::Result<()> {
    let saved = Trained { model: model.clone(), state: Some(state.clone()) };
    let meta = serde_json::json!({ "seed": SEED, "step": state.step, "tokenizer": "bytes" });
    checkpoint::save(path, KIND, &model.config, &saved, meta)
}

/// Trains `model` (from `resume`, or from scratch), raising the stop flag after step `stop_at`
/// the way the Ctrl-C handler of `tinymoe train lm` does; the interrupted state is saved to
/// `path`. Returns the history, or the error that stopped the run.
fn fit(
    data: &Data,
    cfg: &train::Config,
    model: &mut lm::Params<f32>,
    resume: Option<LmState>,
    stop_at: Option<usize>,
    path: &Path,
) -> tinymoe::Result<LmHistory> {
    let stop = AtomicBool::new(false);
    fit_lm_resumable(
        model,
        data.train(),
        SEQ,
        &data.val(),
        cfg,
        resume,
        Some(&stop),
        &mut |p| stop.store(Some(p.step) == stop_at, Ordering::SeqCst),
        &mut |event, m, state| match event {
            Checkpoint::Interrupted => save(path, m, state),
            Checkpoint::Epoch(_) => Ok(()),
        },
    )
}

// ---------------------------------------------------------------------------------------
// The run that sections 1–3 look at

/// The run of sections 1–3: its checkpoint, saved after step N, and the run never stopped.
struct Run {
    path: PathBuf,
    stopped_at: usize,
    cfg: train::Config,
    /// Straight through: the history and the final model.
    all: LmHistory,
    straight: lm::Params<f32>,
    /// The first N steps.
    part: LmHistory,
}

/// The first step (1-based) whose loss differs between two histories, if any.
fn first_difference(a: &[f64], b: &[f64]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits()).map(|i| i + 1)
}

/// Sections 1–3 look at one run: 3 epochs straight through, and the same run stopped after
/// half its steps (N) and saved to `run.ckpt`.
fn the_run(data: &Data) -> Run {
    let epochs = 3;
    let cfg = train_config(SEED, epochs, steps_per_epoch(data) * epochs);
    let path = Path::new(OUT_DIR).join("run.ckpt");
    let mut straight = fresh_model(SEED);
    let all = fit(data, &cfg, &mut straight, None, None, &path).expect("the straight run trains");
    let n = all.step_losses.len() / 2;
    let mut first = fresh_model(SEED);
    let part = fit(data, &cfg, &mut first, None, Some(n), &path).expect("the first half trains");
    Run { path, stopped_at: n, cfg, all, straight, part }
}

// ---------------------------------------------------------------------------------------
// 1. What a checkpoint holds

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn what_a_checkpoint_holds(run: &Run, facts: &mut Facts) {
    println!("\n== 1. What a checkpoint holds: {} (saved after step {})", run.path.display(), run.stopped_at);
    let bytes = std::fs::read(&run.path).expect("the checkpoint is there");
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    let payload_start = 20 + header_len;
    let crc_start = bytes.len() - 4;
    let stored = u32::from_le_bytes(bytes[crc_start..].try_into().expect("4 bytes"));
    let (header, saved): (_, Saved) = checkpoint::load(&run.path, KIND).expect("it loads");
    let state = saved.state.as_ref().expect("a state");
    println!("{} bytes in all:", bytes.len());
    println!("  bytes {:>6} ..{:>6}  {}  magic {:?}", 0, 8, hex(&bytes[..8]), String::from_utf8_lossy(&bytes[..8]));
    println!(
        "  bytes {:>6} ..{:>6}  {}              format version {} (u32, little-endian)",
        8,
        12,
        hex(&bytes[8..12]),
        checkpoint::VERSION
    );
    println!("  bytes {:>6} ..{:>6}  {}  header length {header_len} (u64, little-endian)", 12, 20, hex(&bytes[12..20]));
    println!("  bytes {:>6} ..{:>6}  the header, JSON", 20, payload_start);
    println!(
        "  bytes {:>6} ..{:>6}  the payload, bincode: the model, then the training state",
        payload_start, crc_start
    );
    println!(
        "  bytes {:>6} ..{:>6}  {}              CRC-32 of every byte before it: {stored:#010x}",
        crc_start,
        bytes.len(),
        hex(&bytes[crc_start..])
    );
    facts.check(
        "the CRC-32 recomputed over the file equals the stored one",
        crc32fast::hash(&bytes[..crc_start]) == stored,
    );

    println!("\nthe header:");
    println!("  kind    {:?}", header.kind);
    println!("  config  {}", serde_json::to_string(&header.config).expect("JSON"));
    println!("  meta    {}", serde_json::to_string(&header.meta).expect("JSON"));
    println!("  payload_bytes {}", header.payload_bytes);
    println!("  tensors ({}):", header.tensors.len());
    for t in header.tensors.iter().take(4) {
        println!("    {:<22} shape {:<10} offset {}", t.name, format!("{:?}", t.shape), t.offset.unwrap_or(0));
    }
    println!("    …");
    for t in header.tensors.iter().rev().take(2).rev() {
        println!("    {:<22} shape {:<10} offset {}", t.name, format!("{:?}", t.shape), t.offset.unwrap_or(0));
    }

    // The payload: bincode of Trained { model, state: Some(state) }, fields in order.
    let model_bytes = bincode::serialized_size(&saved.model).expect("sized") as usize;
    let state_bytes = bincode::serialized_size(&saved.state).expect("sized") as usize;
    let weights = params::count(&saved.model);
    let moments = bincode::serialized_size(&state.optimizer).expect("sized") as usize;
    let history = 8 * state.history.step_losses.len();
    println!("\nthe payload, {} bytes:", header.payload_bytes);
    println!(
        "  the model            {model_bytes:>7} bytes: {weights} weights × 4 bytes = {}, plus each array's shape and the config",
        4 * weights
    );
    println!(
        "  the training state   {state_bytes:>7} bytes: the optimiser {moments} (Adam's m and v, 2 × {} = {}, names, step {}),",
        4 * weights,
        8 * weights,
        state.optimizer.t
    );
    println!(
        "                                     {history} for the {} step losses so far, the two generators' states, epoch {}, batch {}",
        state.history.step_losses.len(),
        state.epoch,
        state.batches_done
    );
    facts.check(
        "model + training state = the payload, byte for byte",
        (model_bytes + state_bytes) as u64 == header.payload_bytes,
    );
    let (_, by_name) = checkpoint::read_tensors(&run.path, |_| true).expect("read by name");
    let same = by_name.tensors().iter().zip(saved.model.tensors()).all(|((a, x), (b, y))| a == &b && x == y);
    facts.check("every tensor read by its offset equals the decoded model's", same);
}

// ---------------------------------------------------------------------------------------
// 2. Atomic saves

fn atomic_saves(run: &Run, facts: &mut Facts) {
    println!("\n== 2. Atomic saves: write a temp file, flush it to disk, rename it over the old one");
    let (_, saved): (_, Saved) = checkpoint::load(&run.path, KIND).expect("it loads");
    let state = saved.state.expect("a state");
    let path = Path::new(OUT_DIR).join("atomic.ckpt");
    let timer = Instant::now();
    save(&path, &saved.model, &state).expect("it saves");
    let seconds = timer.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!("one save of {size} bytes (encode, CRC, write, fsync, rename, fsync the folder): {:.1} ms", seconds * 1e3);
    let good = std::fs::read(&path).expect("it is there");

    // What a save killed mid-write leaves: its temp file, half written, named for its process.
    // (First clear any left by an earlier run of this example that was itself killed.)
    for entry in std::fs::read_dir(OUT_DIR).into_iter().flatten().filter_map(|e| e.ok()) {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    // Its process is gone: pid 4000000000 is above any Linux pid_max, so it cannot be alive.
    let leftover = Path::new(OUT_DIR).join(".atomic.ckpt.4000000000.tmp");
    std::fs::write(&leftover, &good[..good.len() / 2]).expect("writable");
    println!("a killed save left {} ({} of {} bytes)", leftover.display(), good.len() / 2, good.len());
    let still: Result<(_, Saved), _> = checkpoint::load(&path, KIND);
    facts.check("the checkpoint beside it still loads", still.is_ok());
    let half = Path::new(OUT_DIR).join("half.ckpt");
    std::fs::write(&half, &good[..good.len() / 2]).expect("writable");
    match checkpoint::load::<Saved>(&half, KIND) {
        Ok(_) => facts.check("a half-written file is refused", false),
        Err(e) => println!("had it been renamed into place, loading would say: {e}"),
    }
    save(&path, &saved.model, &state).expect("it saves again");
    facts.check(
        "the next save works and writes the same bytes",
        std::fs::read(&path).ok().as_deref() == Some(&good[..]),
    );
    let tmp_files = std::fs::read_dir(OUT_DIR)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).count())
        .unwrap_or(0);
    if cfg!(target_os = "linux") {
        facts.check("the next save also removed the dead process's leftover (saves leave none)", tmp_files == 0);
    } else {
        facts.check("only the planted leftover is a temp file (saves leave none)", tmp_files == 1);
    }
    let _ = std::fs::remove_file(&leftover);
    let _ = std::fs::remove_file(&half);
}

// ---------------------------------------------------------------------------------------
// 3. Exact resume

fn exact_resume(run: &Run, data: &Data, facts: &mut Facts) {
    let (path, n, cfg, all, part) = (&run.path, run.stopped_at, &run.cfg, &run.all, &run.part);
    let (epochs, steps) = (cfg.epochs, all.step_losses.len());
    let (_, saved): (_, Saved) = checkpoint::load(path, KIND).expect("the checkpoint loads");
    let state = saved.state.expect("a run's checkpoint holds its state");
    let (epoch, batches_done) = (state.epoch, state.batches_done);
    let mut resumed = saved.model;
    let rest = fit(data, cfg, &mut resumed, Some(state), None, path).expect("the second half trains");

    println!("\n== 3. Exact resume: {steps} steps straight through, or {n} + save + load + {}", steps - n);
    println!(
        "({epochs} epochs of {} steps; the checkpoint was saved in epoch {epoch} after {batches_done} of its batches)",
        steps_per_epoch(data)
    );
    println!(" step   straight through   stopped, saved, loaded, resumed   same bits");
    for s in [1, n - 1, n, n + 1, n + 2, steps] {
        let (a, b) = (all.step_losses[s - 1], rest.step_losses[s - 1]);
        let mark = if s == n { "   ← saved after this step" } else { "" };
        println!(" {s:>4}   {a:<17.9}  {b:<32.9}  {}{mark}", a.to_bits() == b.to_bits());
    }
    let val = |h: &LmHistory| h.epochs.iter().map(|e| e.val_loss).collect::<Vec<_>>();
    println!(
        "validation loss per epoch: straight {:?}\n                           resumed  {:?}",
        val(all).iter().map(|v| format!("{v:.6}")).collect::<Vec<_>>(),
        val(&rest).iter().map(|v| format!("{v:.6}")).collect::<Vec<_>>()
    );
    facts.check("the first run stopped after exactly N steps", part.interrupted && part.step_losses.len() == n);
    facts.check(
        &format!("all {steps} step losses bit-identical"),
        rest.step_losses.len() == steps && first_difference(&all.step_losses, &rest.step_losses).is_none(),
    );
    facts.check("every validation loss bit-identical", val(all) == val(&rest));
    facts.check("the final weights bit-identical", resumed == run.straight);

    // What each saved piece is for: restore all of it but one.
    println!("\nresumed at step {n} with everything restored except …   first step that differs   final val loss");
    let ablate = |what: &str, change: &dyn Fn(&mut LmState, &lm::Params<f32>)| {
        let (_, saved): (_, Saved) = checkpoint::load(path, KIND).expect("the checkpoint loads");
        let mut state = saved.state.expect("a state");
        let mut model = saved.model;
        change(&mut state, &model);
        let h = fit(data, cfg, &mut model, Some(state), None, path).expect("it trains");
        let differs = first_difference(&all.step_losses, &h.step_losses);
        let last_val = h.epochs.last().map_or(f64::NAN, |e| e.val_loss);
        let at = differs.map_or("none".to_string(), |s| format!("step {s}"));
        println!("  {what:<52} {at:<25} {last_val:.6}");
        differs
    };
    let nothing = ablate("(nothing: the full state)", &|_, _| {});
    let adam = ablate("the optimiser (fresh Adam moments, step count 0)", &|s, m| {
        s.optimizer = Optimizer::new(Kind::adamw(0.01), &[], m);
    });
    let dropout = ablate("the dropout generator (re-seeded)", &|s, _| {
        s.dropout_rng = RngState::of(&init::stream(SEED, streams::DROPOUT));
    });
    let order = ablate("the data order (epoch generator re-seeded)", &|s, _| {
        s.epoch_rng = RngState::of(&init::stream(SEED, streams::SHUFFLE));
    });
    let position = ablate("the position in the epoch (batches done = 0)", &|s, _| {
        s.batches_done = 0;
    });
    println!("  (straight through: final val loss {:.6})", all.epochs.last().map_or(f64::NAN, |e| e.val_loss));
    facts.check("with the full state, no step differs", nothing.is_none());
    facts.check(
        "a fresh optimiser changes the second step after the resume (the first uses the saved weights)",
        adam == Some(n + 2),
    );
    facts.check("a re-seeded dropout generator changes the first step after the resume", dropout == Some(n + 1));
    facts.check("a re-drawn data order changes the first step after the resume", order == Some(n + 1));
    facts
        .check("forgetting the position in the epoch changes the first step after the resume", position == Some(n + 1));
}

// ---------------------------------------------------------------------------------------
// 4. Partial loading

fn val_loss(model: &lm::Params<f32>, data: &Data) -> f64 {
    let val = data.val();
    lm::evaluate(model, val.ids.view(), val.targets.view(), 64)
}

fn partial_loading(run: &Run, data: &Data, facts: &mut Facts) {
    println!("\n== 4. Partial loading, by name: transplant::load_part(path, src_prefix, &mut model, dst_prefix)");
    let (_, saved): (_, Saved) = checkpoint::load(&run.path, KIND).expect("it loads");
    let src = saved.model;

    let mut other = fresh_model(77);
    let written = transplant::load_part(&run.path, "blocks.0", &mut other, "blocks.1").expect("it fits");
    println!(
        "load_part(run.ckpt, \"blocks.0\", model, \"blocks.1\") wrote {} tensors: {} … {}",
        written.len(),
        written[0],
        written[written.len() - 1]
    );
    facts.check("block 1 now equals the checkpoint's block 0, bit for bit", other.blocks[1] == src.blocks[0]);
    facts.check(
        "block 0 and the embedding kept their own values",
        other.blocks[0] == fresh_model(77).blocks[0] && other.embed == fresh_model(77).embed,
    );

    let mut bigger = lm::init::<f32>(model_config(32, 4), &mut init::rng(3));
    let written = transplant::load_part(&run.path, "embed", &mut bigger, "embed").expect("it fits");
    println!("load_part(run.ckpt, \"embed\", 4-block model, \"embed\") wrote {written:?}");
    facts.check("the 4-block model's embedding equals the checkpoint's", bigger.embed == src.embed);

    let mut whole = fresh_model(99);
    let before = val_loss(&whole, data);
    let written = transplant::load_part(&run.path, "", &mut whole, "").expect("it fits");
    println!(
        "load_part(run.ckpt, \"\", fresh model, \"\") wrote all {} tensors: validation loss {before:.4} → {:.4} (the saved model's: {:.4})",
        written.len(),
        val_loss(&whole, data),
        val_loss(&src, data)
    );
    facts.check("a whole model loaded by name equals the saved one", whole == src);

    let mut wide = lm::init::<f32>(model_config(64, 2), &mut init::rng(4));
    let untouched = wide.clone();
    let err = transplant::load_part(&run.path, "blocks.0", &mut wide, "blocks.1").expect_err("d_model 32 is not 64");
    let msg = err.to_string();
    // One problem per line: "…: nothing was copied; 16 problem(s): a; b; c; …".
    let (head, list) = msg.split_once(" problem(s): ").unwrap_or((&msg, ""));
    let problems: Vec<&str> = list.split("; ").collect();
    println!("into a model with d_model 64:\n  {head} problem(s):");
    for p in problems.iter().take(3) {
        println!("    {p};");
    }
    println!("    … ({} more)", problems.len().saturating_sub(3));
    facts.check(
        "the error names the file, each tensor and both shapes",
        msg.contains("run.ckpt")
            && msg.contains("tensor blocks.0.attn.q.w has shape [32, 32], the model's blocks.1.attn.q.w is [64, 64]")
            && msg.contains("16 problem(s)"),
    );
    facts.check("the model that did not fit is unchanged", wide == untouched);
    let err = transplant::load_part(&run.path, "experts.0", &mut wide, "experts.0").expect_err("an LM has no experts");
    println!("a prefix that selects nothing:\n  {err}");
    facts.check(
        "the error lists the parts the file has",
        err.to_string().contains("(it has: embed, blocks.0, blocks.1, ln_f)"),
    );
}

// ---------------------------------------------------------------------------------------
// 5. Seeds and threads

fn seeds_and_threads(data: &Data, facts: &mut Facts) {
    println!("\n== 5. Seeds and threads: one epoch, seed {SEED} on 1 and 4 threads, and seed {} on 4", SEED + 1);
    let run = |seed: u64, threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        pool.install(|| {
            let cfg = train_config(seed, 1, steps_per_epoch(data));
            let mut model = fresh_model(seed);
            let path = Path::new(OUT_DIR).join("unused.ckpt");
            fit(data, &cfg, &mut model, None, None, &path).expect("it trains").step_losses
        })
    };
    let (one, four, other) = (run(SEED, 1), run(SEED, 4), run(SEED + 1, 4));
    let show = |l: &[f64]| l.iter().take(4).map(|v| format!("{v:.9}")).collect::<Vec<_>>().join(", ");
    println!("  seed {SEED}, 1 thread:  {} … ({} steps)", show(&one), one.len());
    println!("  seed {SEED}, 4 threads: {} …", show(&four));
    println!("  seed {}, 4 threads: {} …", SEED + 1, show(&other));
    facts.check("the same seed on 1 and 4 threads gives bit-identical losses", first_difference(&one, &four).is_none());
    facts.check("another seed gives other losses from the first step", first_difference(&four, &other) == Some(1));
}

// ---------------------------------------------------------------------------------------
// 6. Failure handling

fn failures(data: &Data, facts: &mut Facts) {
    println!("\n== 6. When training fails");
    // A good epoch, saved the way `tinymoe train lm` saves after every epoch.
    let path = Path::new(OUT_DIR).join("last_good.ckpt");
    let cfg = train_config(SEED, 2, 2 * steps_per_epoch(data));
    let mut model = fresh_model(SEED);
    let stop = AtomicBool::new(false);
    fit_lm_resumable(
        &mut model,
        data.train(),
        SEQ,
        &data.val(),
        &cfg,
        None,
        Some(&stop),
        &mut |_| {},
        &mut |event, m, state| {
            match event {
                Checkpoint::Epoch(e) if e.epoch == 1 => {
                    save(&path, m, state)?;
                    stop.store(true, Ordering::SeqCst); // end the demo run after epoch 1's save
                    Ok(())
                }
                _ => Ok(()),
            }
        },
    )
    .expect("epoch 1 trains");
    let good = std::fs::read(&path).expect("saved");
    let (_, saved): (_, Saved) = checkpoint::load(&path, KIND).expect("it loads");
    let state = saved.state.expect("a state");

    // One weight pushed to the largest f32: the next forward pass overflows.
    let mut poisoned = saved.model.clone();
    poisoned.embed.tok[[usize::from(b' '), 0]] = f32::MAX;
    let before = poisoned.clone();
    let resumed_at = state.step;
    let result = fit_lm_resumable(
        &mut poisoned,
        data.train(),
        SEQ,
        &data.val(),
        &cfg,
        Some(state),
        None,
        &mut |_| {},
        &mut |_, m, s| save(&path, m, s),
    );
    let message = result.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
    println!("resumed from last_good.ckpt (step {resumed_at}) with embed.tok[32, 0] = f32::MAX (the byte ' '):");
    println!("  tinymoe: error: {message}");
    facts.check("the run stops with an error naming the step", message.contains(&format!("at step {resumed_at}")));
    facts.check("no weight changed in the failing step", poisoned == before);
    facts.check("the last good checkpoint is untouched", std::fs::read(&path).ok().as_deref() == Some(&good[..]));

    // The gradient is checked the same way, before the optimiser sees it: a finite loss can
    // still backpropagate into an overflow. Here one entry of a real gradient is set to NaN,
    // as such an overflow would, and handed to the check every training step runs.
    let val = data.val();
    let rows: Vec<usize> = (0..8).collect();
    let batch = val.select(&rows);
    let (_, cache) =
        lm::forward(&saved.model, batch.ids.view(), batch.targets.view(), &mut tinymoe::engine::layers::Mode::Eval);
    let mut grads = lm::backward(&saved.model, &cache);
    facts.check("the real gradient passes the check", train::check_grads(&grads, resumed_at).is_ok());
    grads.blocks[1].attn.v.dw[[3, 5]] = f32::NAN;
    let message = train::check_grads(&grads, resumed_at).map_err(|e| e.to_string()).err().unwrap_or_default();
    println!("a gradient with one NaN entry:\n  tinymoe: error: {message}");
    facts.check(
        "the error names the step and the tensor",
        message.contains(&format!("at step {resumed_at}")) && message.contains("blocks.1.attn.v.w"),
    );
}
