//! A crash mid-save loses nothing (SPEC §5: "Saves are atomic").
//!
//! This test runs its own binary again as a child process that saves a checkpoint over and
//! over — save i writes a model whose every weight is i — and kills it with SIGKILL
//! (`Child::kill`) after a random, seeded delay: before its first save, between two saves, in
//! the middle of encoding, writing, flushing or renaming. After every kill the checkpoint on
//! disk must load (magic, lengths, CRC-32 and all), be byte for byte one of the states that
//! were saved, be no older than the last save the child reported finished, and the next run
//! must save over it as if nothing had happened — whatever temp files the killed saves left.
//!
//! The child is the `child_saves_until_killed` test below, which does nothing unless the
//! parent sets `TINYMOE_CRASH_CHILD`: no extra binary and no hidden CLI command are needed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tinymoe::checkpoint;
use tinymoe::engine::init;
use tinymoe::engine::params::Tensors;
use tinymoe::models::transformer_lm::{self as lm, Config};

/// Set (to the folder to save in) when this binary runs as the child.
const CHILD_DIR: &str = "TINYMOE_CRASH_CHILD";
/// The first save index the child writes.
const CHILD_START: &str = "TINYMOE_CRASH_START";
const KIND: &str = "transformer_lm";
const KILLS: usize = 100;
/// Delays are drawn uniformly below this: the child needs a few milliseconds to start and a
/// few per save, so kills land before, between and (mostly) inside saves.
const MAX_DELAY_MS: u64 = 60;

/// A model big enough (437,632 weights, 1.75 MB) that a save takes a while to write and flush.
fn base_model() -> lm::Params<f32> {
    let cfg = Config {
        vocab: 256,
        max_seq: 64,
        d_model: 128,
        n_heads: 4,
        d_ff: 512,
        n_layers: 2,
        dropout: 0.0,
        pad_id: None,
        tie_head: true,
    };
    lm::init(cfg, &mut init::rng(1))
}

/// State i: every weight equals i (exact in f32 for i < 2²⁴).
fn set_state(model: &mut lm::Params<f32>, i: u64) {
    for (_, mut t) in model.tensors_mut() {
        t.fill(i as f32);
    }
}

fn save_state(path: &Path, model: &mut lm::Params<f32>, i: u64) {
    set_state(model, i);
    checkpoint::save(path, KIND, &model.config, model, serde_json::json!({ "save": i })).unwrap();
}

/// The child: saves states start, start + 1, … until it is killed, telling stderr before and
/// after each save (stderr is unbuffered, so every line written before the kill arrives).
#[test]
fn child_saves_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let start: u64 = std::env::var(CHILD_START).ok().and_then(|s| s.parse().ok()).expect("the parent sets the start");
    let path = PathBuf::from(dir).join("model.ckpt");
    let mut model = base_model();
    let mut err = std::io::stderr();
    for i in start.. {
        writeln!(err, "begin {i}").unwrap();
        save_state(&path, &mut model, i);
        writeln!(err, "saved {i}").unwrap();
    }
}

/// The last index on a line `"{word} i"`.
fn last(lines: &[String], word: &str) -> Option<u64> {
    lines.iter().rev().find_map(|l| l.strip_prefix(word)?.trim().parse().ok())
}

#[test]
fn a_save_killed_at_any_moment_leaves_a_whole_checkpoint() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("tinymoe-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.ckpt");
    let reference = std::env::temp_dir().join(format!("tinymoe-crash-ref-{}.ckpt", std::process::id()));
    let mut model = base_model();
    save_state(&path, &mut model, 0);

    let mut g = ChaCha8Rng::seed_from_u64(2024);
    let (mut before_first, mut between, mut mid_save, mut mid_save_landed) = (0, 0, 0, 0);
    let mut saves = 0u64;
    let mut on_disk = 0u64;
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_saves_until_killed", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .env(CHILD_START, (on_disk + 1).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the test binary runs as the child");
        let stderr = child.stderr.take().expect("piped");
        let reader = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect());
        std::thread::sleep(Duration::from_micros(g.gen_range(0..MAX_DELAY_MS * 1000)));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let lines: Vec<String> = reader.join().unwrap();
        let (begun, finished) = (last(&lines, "begin "), last(&lines, "saved "));
        saves += lines.iter().filter(|l| l.starts_with("saved ")).count() as u64;

        // The checkpoint is there, whole, and one of the saved states, byte for byte.
        let (header, loaded): (_, lm::Params<f32>) = checkpoint::load(&path, KIND)
            .unwrap_or_else(|e| panic!("kill {kill}: the checkpoint does not load after the kill: {e}"));
        let i = loaded.embed.tok[[0, 0]] as u64;
        assert!(loaded.tensors().iter().all(|(_, t)| t.iter().all(|&x| x == i as f32)), "kill {kill}: mixed states");
        assert_eq!(header.meta["save"], i, "kill {kill}: the header and the weights come from different saves");
        save_state(&reference, &mut model, i);
        assert!(
            std::fs::read(&path).unwrap() == std::fs::read(&reference).unwrap(),
            "kill {kill}: the file is not byte for byte what save {i} wrote"
        );
        // Not older than the last save reported done, not newer than the last one begun.
        let done = finished.unwrap_or(on_disk);
        assert!(i >= done, "kill {kill}: save {done} had finished, but the file holds the older {i}");
        assert!(i <= begun.unwrap_or(on_disk), "kill {kill}: the file holds {i}, a save never begun");

        match (begun, finished) {
            (None, _) => before_first += 1,
            (Some(b), Some(f)) if b == f => between += 1,
            (Some(b), _) => {
                mid_save += 1;
                mid_save_landed += usize::from(i == b);
            }
        }
        on_disk = i;
    }

    // What the killed saves left behind: their temp files, each named for its process, never
    // the checkpoint's own name. They do not stop the next save.
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "model.ckpt")
        .collect();
    for name in &leftovers {
        assert!(name.starts_with(".model.ckpt.") && name.ends_with(".tmp"), "unexpected file {name}");
    }
    save_state(&path, &mut model, on_disk + 1);
    let (_, back): (_, lm::Params<f32>) = checkpoint::load(&path, KIND).unwrap();
    assert_eq!(back.embed.tok[[0, 0]], (on_disk + 1) as f32);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&reference);

    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{KILLS} kills with SIGKILL ({saves} saves completed in all): {before_first} before the child's first save, \
         {between} between two saves, {mid_save} in the middle of a save ({mid_save_landed} after its rename, \
         {} before); {KILLS} of {KILLS} checkpoints loaded whole, each one of the saved states, never older than \
         the last finished save; {} temp files left by killed saves, none in the way ({seconds:.1} s)",
        mid_save - mid_save_landed,
        leftovers.len()
    );
    assert!(mid_save >= KILLS / 4, "too few kills landed inside a save ({mid_save}) for the test to mean much");
    assert!(seconds < 30.0, "the crash test took {seconds:.1} s");
}
