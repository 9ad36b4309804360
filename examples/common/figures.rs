//! Where the chapter examples write their figures (included with `#[path]`; not an example
//! itself): `notebooks-md/figures/`, the folder the chapters embed them from, so running an
//! example refreshes its chapter's pictures. The environment variable `TINYMOE_FIGURES_DIR`
//! names another folder instead; tests/examples.rs points it at a scratch folder and compares
//! what the examples draw there with the committed figures.
//!
//! Only figures go here. Scratch files (a BPE, checkpoints, `.npy`) stay in
//! `target/examples-out/`, which is not part of the repository.

// Each example uses the functions it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The variable that overrides the folder.
pub const ENV: &str = "TINYMOE_FIGURES_DIR";

/// The folder figures go to: `$TINYMOE_FIGURES_DIR` if set (and not empty), else
/// `notebooks-md/figures/` of this repository (wherever the example is run from).
pub fn dir() -> PathBuf {
    match std::env::var_os(ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks-md").join("figures"),
    }
}

/// The path of figure `name` (e.g. `ch09_load_switch.png`), with its folder created.
pub fn path(name: &str) -> tinymoe::Result<PathBuf> {
    let dir = dir();
    std::fs::create_dir_all(&dir).map_err(|e| tinymoe::Error::io(&dir, e))?;
    Ok(dir.join(name))
}

/// `path` as the "wrote …" line shows it: relative to the working directory when it lies
/// under it (`notebooks-md/figures/ch09_heatmaps.png` from the repository root).
pub fn shown(path: &Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    relative.unwrap_or_else(|| path.to_path_buf()).display().to_string()
}
