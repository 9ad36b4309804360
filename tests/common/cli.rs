//! Running the `tinymoe` binary as a user does, for the command-line tests: run it, read what
//! it printed, check that a failure is a clean one-line error, and make a fresh temporary
//! folder for its files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary Cargo built for this crate (set for every integration test).
pub const BIN: &str = env!("CARGO_BIN_EXE_tinymoe");

/// Runs `tinymoe ARGS` to completion and returns its exit status and output. Panics only if
/// the binary cannot be started; whether it succeeded is for the caller to check.
pub fn tinymoe(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("the binary runs")
}

/// What the run wrote to stderr (lossy UTF-8).
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// What the run wrote to stdout (lossy UTF-8).
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Asserts a clean failure, as every bad input must give:
/// - exit code 1 (not 0, not a signal, not a panic's 101);
/// - stderr is exactly one line, starting with `tinymoe: error: `;
/// - that line contains every one of `needles`;
/// - no `panicked` and no `backtrace` anywhere in stderr.
///
/// On failure it shows stderr (and stdout too when the exit code is wrong).
pub fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stdout: {}\nstderr: {err}", stdout(o));
    assert!(err.starts_with("tinymoe: error: "), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for needle in needles {
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

/// A fresh, empty folder `tinymoe-TESTFILE-NAME-PID` in the system's temp folder (anything
/// left there by an earlier run is removed first). The test file's crate name and the process
/// id keep it apart from every other test binary's, including ones running at the same time
/// with the same `name`; within one binary, each test must use its own `name`.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinymoe-{}-{name}-{}", env!("CARGO_CRATE_NAME"), std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A path as a command-line argument (temporary paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// A results CSV as (header, rows), every row as wide as the header (the file is named when it
/// is missing or a row is not).
pub fn read_csv(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().expect("a header").split(',').map(String::from).collect::<Vec<_>>();
    let rows = lines.map(|l| l.split(',').map(String::from).collect::<Vec<_>>()).collect::<Vec<_>>();
    for r in &rows {
        assert_eq!(r.len(), header.len(), "{}: {r:?}", path.display());
    }
    (header, rows)
}
