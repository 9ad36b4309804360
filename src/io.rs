//! Files that are never half-written.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Creates a folder for results (and its parents). The error names the folder and, when a
/// file stands where a folder should be (the usual mistake: `--out model.ckpt`), that file.
pub fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| {
        let problem = match path.ancestors().find(|a| a.is_file()) {
            Some(file) => format!("cannot create this folder: {} is a file, not a folder", file.display()),
            None => format!("cannot create this folder: {e}"),
        };
        Error::BadFile { path: path.to_path_buf(), problem }
    })
}

/// Writes `bytes` to a temporary file `.NAME.<pid>.tmp` in the same folder, flushes it to
/// disk, then renames it over `path`: a crash or a full disk mid-write leaves the old file,
/// never half of the new one. (A rename within one folder is atomic on POSIX file systems.)
///
/// A failure (a full disk, a file-size limit, a folder that is not one) is an
/// [`Error::Save`] naming `path`, not the temporary file, and the temporary file is removed.
/// After a successful save, the temporary files of earlier saves of `path` whose process is
/// gone (killed mid-save) are removed too (Linux only, where `/proc` tells which processes live).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(temp_name(&name, std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Save { path: path.to_path_buf(), err, previous: path.is_file() });
    }
    // Make the rename itself durable (best effort: not every platform can open a folder).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    remove_stale_temps(path, &name);
    Ok(())
}

/// The temporary file a save of `name` by process `pid` writes first.
fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.{pid}.tmp")
}

/// The process id in a temporary file name of a save of `name` (`.NAME.<pid>.tmp`), if it is one.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn temp_pid(file_name: &str, name: &str) -> Option<u32> {
    let digits = file_name.strip_prefix('.')?.strip_prefix(name)?.strip_prefix('.')?.strip_suffix(".tmp")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Removes the siblings `.NAME.<pid>.tmp` of `path` left by saves of other processes that no
/// longer exist (a save killed between writing and renaming). Best effort: a file that cannot
/// be listed or removed is left. A process is taken to be gone when `/proc/<pid>` is not there,
/// so this runs only where `/proc` is mounted; a temp file of a live process (or of a dead one
/// whose id has been reused) is kept. (A process in another PID namespace saving into the same
/// folder is invisible here; its save would then fail cleanly at the rename, not corrupt.)
#[cfg(target_os = "linux")]
fn remove_stale_temps(path: &Path, name: &str) {
    let proc = Path::new("/proc");
    if name.is_empty() || !proc.join("self").exists() {
        return;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let me = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| temp_pid(n, name)) else { continue };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if pid != me && is_file && !proc.join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Elsewhere there is no cheap, reliable test that a process is gone: leftovers stay.
#[cfg(not(target_os = "linux"))]
fn remove_stale_temps(_path: &Path, _name: &str) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tinymoe-io-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn temp_names_parse_back_to_their_pid() {
        assert_eq!(temp_pid(&temp_name("model.ckpt", 1234), "model.ckpt"), Some(1234));
        assert_eq!(temp_pid(".model.ckpt.4294967295.tmp", "model.ckpt"), Some(u32::MAX));
        for other in [
            ".model.ckpt.tmp",
            ".model.ckpt..tmp",
            ".model.ckpt.+12.tmp",
            ".model.ckpt.12x.tmp",
            ".model.ckpt.99999999999.tmp",
            ".other.ckpt.12.tmp",
            "model.ckpt.12.tmp",
            ".model.ckpt.12.tmp.bak",
        ] {
            assert_eq!(temp_pid(other, "model.ckpt"), None, "{other}");
        }
    }

    #[test]
    fn a_save_writes_the_file_and_leaves_no_temp_file() {
        let dir = scratch("plain");
        let path = dir.join("a.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temp_files_of_dead_processes_are_removed_after_a_save() {
        let dir = scratch("stale");
        let path = dir.join("model.ckpt");
        // Above Linux's largest pid (2^22): no such process can exist.
        let dead: Vec<PathBuf> =
            [4_000_000_000, u32::MAX].iter().map(|&pid| dir.join(temp_name("model.ckpt", pid))).collect();
        // Not a temp file of this name: left alone whatever its number.
        let unrelated = [
            dir.join(temp_name("other.ckpt", 4_000_000_000)),
            dir.join(".model.ckpt.x4000000000.tmp"),
            dir.join("model.ckpt.4000000000.tmp"),
        ];
        for p in dead.iter().chain(&unrelated) {
            std::fs::write(p, b"half a checkpoint").unwrap();
        }
        write_atomic(&path, b"whole").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        for p in &dead {
            assert!(!p.exists(), "{} is left", p.display());
        }
        for p in &unrelated {
            assert!(p.exists(), "{} was removed", p.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temp_files_of_live_processes_are_kept() {
        let dir = scratch("live");
        let path = dir.join("model.ckpt");
        // pid 1 (init) and the process that started this test are alive while it runs.
        let mut live = vec![];
        for pid in [1, std::os::unix::process::parent_id()] {
            assert!(Path::new("/proc").join(pid.to_string()).exists(), "process {pid} is alive");
            let p = dir.join(temp_name("model.ckpt", pid));
            std::fs::write(&p, b"a save in progress").unwrap();
            live.push(p);
        }
        write_atomic(&path, b"whole").unwrap();
        for p in &live {
            assert_eq!(std::fs::read(p).unwrap(), b"a save in progress", "{}", p.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_names_the_target_and_leaves_the_old_file() {
        let dir = scratch("failed-write");
        let path = dir.join("model.ckpt");
        write_atomic(&path, b"the old checkpoint").unwrap();
        // A folder where the temp file goes: creating it fails.
        let tmp = dir.join(temp_name("model.ckpt", std::process::id()));
        std::fs::create_dir(&tmp).unwrap();
        let err = write_atomic(&path, b"the new checkpoint").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(&err, Error::Save { path: p, previous: true, .. } if p == &path), "{err:?}");
        assert!(msg.starts_with(&format!("could not save {}: ", path.display())), "{msg}");
        assert!(msg.ends_with("; the previous file is unchanged"), "{msg}");
        assert!(!msg.contains(".tmp"), "{msg}");
        assert_eq!(std::fs::read(&path).unwrap(), b"the old checkpoint");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_rename_names_the_target_and_removes_the_temp_file() {
        let dir = scratch("failed-rename");
        // The target is a folder: the temp file is written, but cannot be renamed over it.
        let path = dir.join("results");
        std::fs::create_dir(&path).unwrap();
        let err = write_atomic(&path, b"data").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("could not save {}: ", path.display())), "{msg}");
        assert!(msg.ends_with("; nothing was written"), "{msg}");
        assert!(path.is_dir());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("results")], "the temp file is removed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_save_into_a_missing_folder_says_nothing_was_written() {
        let dir = scratch("missing");
        let path = dir.join("no").join("such").join("file.csv");
        let msg = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(msg.starts_with(&format!("could not save {}: ", path.display())), "{msg}");
        assert!(msg.contains("No such file or directory") || cfg!(not(unix)), "{msg}");
        assert!(msg.ends_with("; nothing was written"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
