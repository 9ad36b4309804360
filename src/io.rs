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

/// Refuses to write `output` when it is one of `inputs`: the same file by canonical path (links
/// and `..` resolved) or, where both exist, the same file on disk (a hard link). A command
/// calls this before it writes anything, so an output can never replace the file it read.
/// The error names both files.
/// ```
/// # let dir = std::env::temp_dir().join(format!("tinymoe-refuse-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let input = dir.join("x.npy");
/// std::fs::write(&input, b"data").unwrap();
/// assert!(tinymoe::io::refuse_overwrite(&[&input], &dir.join("y.npy")).is_ok());
/// let err = tinymoe::io::refuse_overwrite(&[&input], &dir.join(".").join("x.npy")).unwrap_err();
/// assert!(err.to_string().contains("would overwrite the input"), "{err}");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn refuse_overwrite(inputs: &[&Path], output: &Path) -> Result<()> {
    let Some(out) = resolved(output) else { return Ok(()) };
    for &input in inputs {
        let same = resolved(input).is_some_and(|i| i == out) || same_inode(input, output);
        if same {
            return Err(Error::BadFile {
                path: output.to_path_buf(),
                problem: format!(
                    "would overwrite the input {}: refusing to write a command's output over one of its inputs \
                     (choose another output path)",
                    input.display()
                ),
            });
        }
    }
    Ok(())
}

/// [`refuse_overwrite`] for each file `names` that a command will write into the folder `dir`
/// (`--out D` writing `D/y.npy`, `D/dx.npy`, …).
pub fn refuse_overwrite_in(inputs: &[&Path], dir: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        refuse_overwrite(inputs, &dir.join(name))?;
    }
    Ok(())
}

/// `path` made absolute with every link resolved; for a path that does not exist yet, its
/// longest existing prefix resolved and the rest applied by name (`..` goes up), as a later
/// `create_dir_all` and write would. None if not even the root can be resolved.
fn resolved(path: &Path) -> Option<std::path::PathBuf> {
    use std::path::Component;
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let abs = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().ok()?.join(path) };
    let parts: Vec<Component> = abs.components().collect();
    for k in (1..parts.len()).rev() {
        let prefix: std::path::PathBuf = parts[..k].iter().collect();
        if let Ok(mut p) = prefix.canonicalize() {
            for part in &parts[k..] {
                match part {
                    Component::ParentDir => {
                        p.pop();
                    }
                    Component::CurDir => {}
                    other => p.push(other),
                }
            }
            return Some(p);
        }
    }
    None
}

/// Whether two existing paths are one file on disk (Unix: same device and inode).
#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_a: &Path, _b: &Path) -> bool {
    false
}

/// Fallback for [`machine_memory`] where `/proc/meminfo` cannot be read: 8 GiB, a small laptop.
pub const FALLBACK_MEMORY: u64 = 8 << 30;

/// This machine's memory in bytes: `MemTotal` of `/proc/meminfo` (Linux), else
/// [`FALLBACK_MEMORY`]. The bound that model sizes are checked against.
pub fn machine_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| mem_total(&t)).unwrap_or(FALLBACK_MEMORY)
}

/// `MemTotal:  24576000 kB` → bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut fields = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = fields.next()?.parse().ok()?;
    let unit = match fields.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        None => 1,
        Some(_) => return None,
    };
    n.checked_mul(unit).filter(|&b| b > 0)
}

/// The cores this process may use (1 if unknown).
pub fn cpu_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A thread count for `flag` (`--threads`): 1 up to this machine's cores. More threads than
/// cores only take turns on them (and a huge count spends minutes starting threads), so it is
/// refused with the allowed range rather than silently capped.
pub fn check_threads(flag: &str, threads: usize) -> Result<()> {
    check_threads_on(flag, threads, cpu_cores())
}

/// [`check_threads`] against a given number of cores.
pub fn check_threads_on(flag: &str, threads: usize, cores: usize) -> Result<()> {
    if threads == 0 || threads > cores {
        return Err(Error::bad_value(
            flag,
            threads,
            &format!("must be 1..={cores} (this machine has {cores} core(s))"),
        ));
    }
    Ok(())
}

/// The largest `epochs` a run (fresh or resumed from a checkpoint's saved settings) may ask for.
pub const MAX_EPOCHS: usize = 100_000;
/// The largest count of examples, sequences or tokens a settings file may ask a generator or a
/// reader to make (`train_per_domain`, `val_per_domain`, `max_len`, …): 2^28.
pub const MAX_COUNT: usize = 1 << 28;

/// `value` for `name` is in `min..=max`, or an error naming both and where the value came from
/// (`source`: a file, or "" for a flag).
pub fn check_range(name: &str, value: usize, min: usize, max: usize, source: &str) -> Result<()> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    let from = if source.is_empty() { String::new() } else { format!(" (in {source})") };
    Err(Error::bad_value(name, value, &format!("must be {min}..={max}{from}")))
}

/// A resumed (or fresh) run's `epochs`: 1..=[`MAX_EPOCHS`]. `source` names the checkpoint or
/// settings file it was read from.
pub fn check_epochs(epochs: usize, source: &str) -> Result<()> {
    check_range("epochs", epochs, 1, MAX_EPOCHS, source)
}

/// A count of examples or tokens: 1..=[`MAX_COUNT`] (see [`check_range`]).
pub fn check_count(name: &str, value: usize, source: &str) -> Result<()> {
    check_range(name, value, 1, MAX_COUNT, source)
}

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

    #[test]
    fn meminfo_parses_mem_total() {
        assert_eq!(mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total("MemTotal: 0 kB\n"), None);
        assert_eq!(mem_total("MemTotal: 99999999999999999 kB\n"), None, "overflow is refused, not wrapped");
        assert!(machine_memory() > 0);
    }

    #[test]
    fn thread_counts_above_the_cores_are_refused_with_the_range() {
        assert!(check_threads_on("--threads", 1, 2).is_ok());
        assert!(check_threads_on("--threads", 2, 2).is_ok());
        for bad in [0, 3, 10_000] {
            let msg = check_threads_on("--threads", bad, 2).unwrap_err().to_string();
            assert_eq!(msg, format!("--threads = {bad}: must be 1..=2 (this machine has 2 core(s))"));
        }
        assert!(check_threads("--threads", cpu_cores()).is_ok());
        assert!(check_threads("--threads", cpu_cores() + 1).is_err());
    }

    #[test]
    fn epochs_and_counts_are_bounded() {
        assert!(check_epochs(10, "run/model.ckpt").is_ok());
        let msg = check_epochs(1_000_000_000, "run/model.ckpt").unwrap_err().to_string();
        assert_eq!(msg, format!("epochs = 1000000000: must be 1..={MAX_EPOCHS} (in run/model.ckpt)"));
        assert!(check_count("train_per_domain", 1_000_000_000, "").is_err());
        assert!(check_count("train_per_domain", 0, "").is_err());
        assert!(check_count("train_per_domain", 1000, "").is_ok());
    }

    #[test]
    fn an_output_that_is_an_input_is_refused() {
        let dir = scratch("refuse");
        let input = dir.join("dx.npy");
        std::fs::write(&input, b"input").unwrap();
        // The same file by another spelling, a file inside a folder output, a hard link.
        let msg = refuse_overwrite(&[&input], &dir.join("sub").join("..").join("dx.npy"));
        assert!(msg.is_err(), "a path through .. is the same file");
        std::fs::create_dir(dir.join("sub")).unwrap();
        let msg = refuse_overwrite(&[&input], &dir.join("sub").join("..").join("dx.npy")).unwrap_err().to_string();
        assert!(msg.contains("would overwrite the input") && msg.contains("dx.npy"), "{msg}");
        assert!(refuse_overwrite_in(&[&input], &dir, &["y.npy", "dx.npy"]).is_err());
        assert!(refuse_overwrite_in(&[&input], &dir, &["y.npy", "dw.npy"]).is_ok());
        assert!(refuse_overwrite(&[&input], &dir.join("no").join("such").join("dx.npy")).is_ok());
        #[cfg(unix)]
        {
            let link = dir.join("hard.npy");
            std::fs::hard_link(&input, &link).unwrap();
            assert!(refuse_overwrite(&[&input], &link).is_err(), "a hard link is the same file");
            let soft = dir.join("soft.npy");
            std::os::unix::fs::symlink(&input, &soft).unwrap();
            assert!(refuse_overwrite(&[&input], &soft).is_err(), "a symbolic link is the same file");
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"input");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
