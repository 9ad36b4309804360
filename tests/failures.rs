//! Training runs that fail as a user meets them: a full disk, a results folder that cannot
//! be one, a loss that turns NaN mid-run. Each is a one-line error naming the file or the
//! step (never a panic), and the checkpoint on disk stays the last good one.
//!
//! The full disk is a file-size limit (`ulimit -f`) set by `sh` before it execs the binary,
//! with SIGXFSZ ignored (ignored signals stay ignored across exec), so a write past the limit
//! fails with EFBIG, "File too large", the way a full disk fails with ENOSPC.

#![cfg(unix)]

mod common;

use common::cli::{assert_clean_error, s, stderr, stdout, tinymoe, tmp_dir, BIN};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use tinymoe::checkpoint;

/// The binary under a file-size limit of `blocks` (whatever unit `sh`'s `ulimit -f` counts
/// in: 512 bytes for dash, 1024 for bash; see [`limit_blocks`]).
fn tinymoe_limited(blocks: u64, args: &[&str]) -> Output {
    let script = format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\"");
    Command::new("sh").arg("-c").arg(script).arg(BIN).args(args).output().expect("sh runs")
}

/// The files of a folder other than `keep`: what a failed save must not leave.
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

/// A `ulimit -f` below the checkpoint but above everything `train lm` writes before it
/// (config.json, config.toml), whether `sh` counts in 512- or 1024-byte blocks.
fn limit_blocks(ckpt_bytes: u64, dir: &Path) -> u64 {
    let blocks = ckpt_bytes / 4096;
    for small in ["config.json", "config.toml"] {
        let len = std::fs::metadata(dir.join(small)).unwrap().len();
        assert!(blocks * 512 > 2 * len, "{small} ({len} bytes) would hit the limit of {blocks} blocks");
    }
    assert!(blocks * 1024 < ckpt_bytes / 2);
    blocks
}

fn epochs_done(ckpt: &Path) -> u64 {
    let (header, _) = checkpoint::read_tensors(ckpt, |_| false).expect("the checkpoint reads");
    header.meta["epochs_done"].as_u64().expect("epochs_done")
}

fn assert_loads(ckpt: &Path) {
    let o = tinymoe(&["inspect", s(ckpt)]);
    assert!(o.status.success(), "inspect {}: {}", ckpt.display(), stderr(&o));
}

#[test]
fn a_full_disk_keeps_the_previous_checkpoint() {
    let dir = tmp_dir("full");
    let ckpt = dir.join("model.ckpt");
    let o = tinymoe(&["train", "lm", "--quick", "--epochs", "1", "--out", s(&dir)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(&ckpt).unwrap();
    let blocks = limit_blocks(before.len() as u64, &dir);

    // The same run again, over the same folder, with no room for the checkpoint.
    let o = tinymoe_limited(blocks, &["train", "lm", "--quick", "--epochs", "1", "--out", s(&dir)]);
    assert_clean_error(
        &o,
        &[&format!("could not save {}: ", ckpt.display()), "File too large", "the previous file is unchanged"],
    );
    assert!(std::fs::read(&ckpt).unwrap() == before, "the checkpoint changed");
    assert_loads(&ckpt);
    let left = others(&dir, &[]);
    assert!(left.iter().all(|n| !n.ends_with(".tmp")), "temp files left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_while_resuming_names_the_last_good_checkpoint() {
    // A run of 6 epochs, stopped with Ctrl-C (SIGINT) once its first epoch is saved: it saves
    // where it stands and exits. (`--resume` continues a run with its own settings, so a run
    // that finished its epochs has nothing left to train.)
    let dir = tmp_dir("resume");
    let ckpt = dir.join("model.ckpt");
    let mut child = Command::new(BIN)
        .args(["train", "lm", "--quick", "--epochs", "6", "--out", s(&dir)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    assert!(lines.any(|l| l.starts_with("epoch   1")), "the first epoch finishes");
    let kill = Command::new("sh").arg("-c").arg(format!("kill -INT {}", child.id())).status().expect("sh runs");
    assert!(kill.success());
    let rest: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("interrupted: saved the run")), "{rest:?}");
    let done = epochs_done(&ckpt);
    assert!((1..6).contains(&done), "{done} epochs saved");
    let before = std::fs::read(&ckpt).unwrap();
    let blocks = limit_blocks(before.len() as u64, &dir);

    let o = tinymoe_limited(blocks, &["train", "lm", "--resume", s(&ckpt), "--out", s(&dir)]);
    assert_clean_error(
        &o,
        &[
            &format!("could not save {}: File too large", ckpt.display()),
            "the previous file is unchanged",
            &format!("the last good checkpoint is {} (epoch {done} of 6, step ", ckpt.display()),
            &format!("resume with `tinymoe train lm --resume {} --out {}`", ckpt.display(), dir.display()),
        ],
    );
    assert!(std::fs::read(&ckpt).unwrap() == before, "the checkpoint changed");
    assert_loads(&ckpt);
    let left = others(&dir, &[]);
    assert!(left.iter().all(|n| !n.ends_with(".tmp")), "temp files left: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_results_folder_beneath_a_file_is_a_clean_error() {
    let dir = tmp_dir("beneath");
    let file = dir.join("afile");
    std::fs::write(&file, b"a file, not a folder").unwrap();
    let out = file.join("sub");
    for args in [
        &["train", "lm", "--quick", "--out", s(&out)][..],
        &["train", "--epochs", "1", "--out", s(&out)][..],
        &["train", "lm", "--quick", "--out", s(&file)][..],
        &["train", "--epochs", "1", "--out", s(&file)][..],
    ] {
        let o = tinymoe(args);
        let named = args.last().unwrap();
        assert_clean_error(&o, &[named]);
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"a file, not a folder");
    assert_eq!(others(&dir, &[]), vec!["afile".to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// 60 lines of 9 words, 2,786 bytes: a few SGD steps per epoch.
fn small_text() -> String {
    let words: Vec<&str> =
        "the quick brown fox jumps over a lazy dog while seven small experts route every token to a gate"
            .split(' ')
            .collect();
    let mut text = String::new();
    for i in 0..60 {
        let line: Vec<&str> = (0..9).map(|j| words[(i * 7 + j * 3) % words.len()]).collect();
        text += &line.join(" ");
        text += ".\n";
    }
    text
}

/// SGD at a learning rate that warms up linearly (100 × step / 1000, no effective clipping):
/// the first epochs (5 steps each) learn, then the steps outgrow the loss surface and the
/// weights blow up within a few epochs. With these settings (seed 6, 2 blocks) the gradient of
/// embed.tok turns NaN at step 23, in epoch 5 of 40.
const DIVERGING: &str = r#"
preset = "lm-quick"
text = "text.txt"
n_layers = 2
dropout = 0.0
optimizer = "sgd"
momentum = 0.9
lr = 100.0
schedule = "cosine"
warmup_steps = 1000
clip = 1e30
epochs = 40
seed = 6
"#;

#[test]
fn a_loss_that_turns_nan_stops_with_the_last_good_checkpoint() {
    let dir = tmp_dir("nan");
    std::fs::write(dir.join("text.txt"), small_text()).unwrap();
    std::fs::write(dir.join("diverge.toml"), DIVERGING).unwrap();
    let out = dir.join("out");
    let ckpt = out.join("model.ckpt");
    let o = Command::new(BIN)
        .current_dir(&dir)
        .args(["train", "lm", "--config", "diverge.toml", "--threads", "1", "--out", s(&out)])
        .output()
        .expect("the binary runs");
    let err = stderr(&o);
    let done = epochs_done(&ckpt);
    assert!((1..40).contains(&done), "{done} epochs saved; {err}");
    assert_clean_error(
        &o,
        &[
            " at step ",
            "training stopped",
            &format!("the last good checkpoint is {} (epoch {done} of 40, step ", ckpt.display()),
            &format!("resume with `tinymoe train lm --resume {} --out {}`", ckpt.display(), out.display()),
            "with the same settings it diverges again",
        ],
    );
    // The step is after the saved epochs (5 steps each), and past the first epoch.
    let step: usize = err.split(" at step ").nth(1).and_then(|r| r.split(';').next()).unwrap().parse().unwrap();
    assert!(step >= 5 * done as usize, "step {step} after {done} epochs: {err}");

    let (header, weights) = checkpoint::read_tensors(&ckpt, |_| true).expect("the checkpoint reads");
    let names: Vec<&str> = header.tensors.iter().map(|t| t.name.as_str()).collect();
    if let Some(rest) = err.split("the gradient of ").nth(1) {
        let tensor = rest.split(" became ").next().unwrap();
        assert!(names.contains(&tensor), "{tensor} is not one of the model's tensors {names:?}");
    } else {
        assert!(err.contains("the loss became "), "{err}");
    }
    assert!(!weights.0.is_empty());
    for (name, t) in &weights.0 {
        assert!(t.iter().all(|x| x.is_finite()), "{name} holds a non-finite weight");
    }
    assert_eq!(header.meta["interrupted"], false);
    assert_loads(&ckpt);
    let o = tinymoe(&["inspect", s(&ckpt)]);
    assert!(stdout(&o).contains(&format!("\"epochs_done\": {done}")), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
