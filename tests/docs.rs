//! The documentation's pictures are files in the repository.
//!
//! Every image in the chapters (`notebooks-md/**/*.md`) and in the top-level Markdown files
//! (README.md, ARCHITECTURE.md), written as `![alt](path)` or `<img src="path">`, must be a
//! relative path, resolved from the file that names it, to a file that exists inside the
//! repository and is not in a folder that git ignores (`target/`, `results/`: what a fresh
//! checkout lacks). A URL is refused too: the chapters must show their figures offline and on
//! any code host, from this checkout. Images inside code blocks and code spans are text, not
//! images, and are skipped.
//!
//! And every file in `notebooks-md/figures/` is shown by some chapter, so no stale picture
//! lingers after an example stops drawing it.

use std::path::{Component, Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose images must resolve: the chapters and the top-level docs.
fn documents() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut docs = Vec::new();
    walk(&repo().join("notebooks-md"), &mut docs);
    for entry in std::fs::read_dir(repo()).expect("the repository root") {
        let path = entry.expect("a directory entry").path();
        if path.is_file() && path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.sort();
    docs
}

/// `line` with its code spans (`` `…` ``, ``` ``…`` ```) blanked out.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let fence = "`".repeat(ticks);
        let after = &rest[start + ticks..];
        match after.find(&fence) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                // An unclosed run of backticks is literal text.
                out.push_str(&rest[start..start + ticks]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every image a Markdown text shows, as (line number, target as written), outside code.
fn images(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_fence: Option<&str> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if let Some(fence) = in_fence {
            if trimmed.starts_with(fence) {
                in_fence = None;
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = Some(&trimmed[..3]);
            continue;
        }
        let line = without_code_spans(raw);
        // ![alt](target "optional title")
        let mut rest = line.as_str();
        while let Some(at) = rest.find("![") {
            rest = &rest[at + 2..];
            let Some(close) = rest.find("](") else { break };
            let after = &rest[close + 2..];
            let Some(end) = after.find(')') else { break };
            let inside = after[..end].trim();
            let target = match inside.strip_prefix('<') {
                Some(angled) => angled.split('>').next().unwrap_or(""),
                None => inside.split_whitespace().next().unwrap_or(""),
            };
            found.push((i + 1, target.to_string()));
            rest = &after[end..];
        }
        // <img … src="target" …>
        let lower = line.to_ascii_lowercase();
        let mut from = 0;
        while let Some(at) = lower[from..].find("<img") {
            let tag_start = from + at;
            let tag_end = lower[tag_start..].find('>').map_or(lower.len(), |e| tag_start + e);
            let tag = &line[tag_start..tag_end];
            if let Some(src) = tag.to_ascii_lowercase().find("src=") {
                let value = &tag[src + 4..];
                let target = match value.chars().next() {
                    Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
                    _ => value.split_whitespace().next().unwrap_or("").trim_end_matches('/'),
                };
                found.push((i + 1, target.to_string()));
            } else {
                found.push((i + 1, String::new()));
            }
            from = tag_end;
        }
    }
    found
}

/// `%20`-style escapes decoded (a Markdown path may be written with them).
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The top-level folders and the file endings that `.gitignore` keeps out of the repository
/// (its `/name` and `/name/` lines, and `*.ext` lines).
fn ignored(root: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(root.join(".gitignore")).unwrap_or_default();
    let (mut dirs, mut endings) = (Vec::new(), Vec::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if let Some(ext) = line.strip_prefix('*') {
            endings.push(ext.to_string());
        } else if let Some(dir) = line.strip_prefix('/') {
            dirs.push(dir.trim_end_matches('/').to_string());
        }
    }
    (dirs, endings)
}

/// Why `target`, named by `doc`, does not resolve to a file of the repository at `root`.
fn problem(root: &Path, doc: &Path, target: &str) -> Option<String> {
    let target = target.split(['#', '?']).next().unwrap_or("");
    if target.is_empty() {
        return Some("the image names no file".into());
    }
    if target.contains("://") || target.starts_with("//") || target.starts_with("data:") {
        return Some("a URL: figures must be files in the repository, named by a relative path".into());
    }
    if target.starts_with('/') {
        return Some("an absolute path: name the file relative to the document".into());
    }
    let doc_dir = doc.parent().expect("a document lives in a folder");
    let mut inside = doc_dir.strip_prefix(root).expect("documents are in the repository").to_path_buf();
    for part in Path::new(&percent_decoded(target)).components() {
        match part {
            Component::Normal(p) => inside.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !inside.pop() {
                    return Some("points outside the repository".into());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Some("an absolute path".into()),
        }
    }
    let (dirs, endings) = ignored(root);
    let top = inside.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("");
    if dirs.iter().any(|d| d == top) || endings.iter().any(|e| inside.to_string_lossy().ends_with(e.as_str())) {
        return Some(format!("{} is ignored by git (.gitignore), so a checkout does not have it", inside.display()));
    }
    let path = root.join(&inside);
    if !path.is_file() {
        return Some(format!("{} does not exist", inside.display()));
    }
    None
}

#[test]
fn every_image_in_the_chapters_and_the_readme_is_a_file_in_the_repository() {
    let mut bad = Vec::new();
    let mut shown = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        for (line, target) in images(&text) {
            shown += 1;
            if let Some(why) = problem(repo(), &doc, &target) {
                let rel = doc.strip_prefix(repo()).unwrap_or(&doc);
                bad.push(format!("{}:{line}: image {target:?}: {why}", rel.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{} broken image link(s):\n{}", bad.len(), bad.join("\n"));
    assert!(shown >= 13, "the chapters show at least the 13 figures of chapters 04, 07–10; found {shown} images");
}

#[test]
fn every_committed_figure_is_shown_by_a_chapter() {
    let figures = repo().join("notebooks-md").join("figures");
    let mut linked = std::collections::BTreeSet::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("a readable document");
        for (_, target) in images(&text) {
            let resolved = doc.parent().expect("a folder").join(percent_decoded(&target));
            if let Some(name) = resolved.file_name() {
                if resolved.parent().is_some_and(|p| p.ends_with("figures")) {
                    linked.insert(name.to_os_string());
                }
            }
        }
    }
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(&figures).unwrap_or_else(|e| panic!("{}: {e}", figures.display())) {
        let name = entry.expect("a directory entry").file_name();
        if !linked.contains(&name) {
            orphans.push(name.to_string_lossy().into_owned());
        }
    }
    orphans.sort();
    assert!(
        orphans.is_empty(),
        "notebooks-md/figures/ holds pictures no chapter shows (delete them, or show them): {orphans:?}"
    );
}

#[test]
fn the_link_checker_finds_images_and_catches_each_kind_of_broken_link() {
    let text = "\
intro ![a figure](figures/a.png) and <img alt=\"b\" src=\"figures/b.png\" width=\"300\">
`![not an image](code.png)` and ``![nor this](x.png)``
```rust
let v = vec![1, 2]; ![in a fence](fenced.png)
```
  ```
  ![indented fence](also_fenced.png)
  ```
![title](<figures/c d.png> \"a title\") ![escaped](figures/c%20d.png)
<IMG SRC='https://example.com/x.png'>
![up](../../outside.png) ![abs](/etc/x.png) ![ignored](../target/examples-out/x.png) ![none]()
";
    let found: Vec<String> = images(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        found,
        [
            "figures/a.png",
            "figures/b.png",
            "figures/c d.png",
            "figures/c%20d.png",
            "https://example.com/x.png",
            "../../outside.png",
            "/etc/x.png",
            "../target/examples-out/x.png",
            ""
        ]
    );

    // A scratch repository: one chapter, one figure.
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("docs-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("notebooks-md/figures")).expect("a scratch folder");
    std::fs::write(root.join(".gitignore"), "/target\n*.tmp\n").expect("a .gitignore");
    std::fs::write(root.join("notebooks-md/figures/c d.png"), b"png").expect("a figure");
    std::fs::write(root.join("notebooks-md/figures/half.tmp"), b"png").expect("a temp file");
    std::fs::create_dir_all(root.join("target/examples-out")).expect("an ignored folder");
    std::fs::write(root.join("target/examples-out/x.png"), b"png").expect("an ignored figure");
    let doc = root.join("notebooks-md/01.md");
    let check = |target: &str| problem(&root, &doc, target);
    assert_eq!(check("figures/c d.png"), None);
    assert_eq!(check("figures/c%20d.png"), None);
    assert_eq!(check("./figures/../figures/c d.png#top"), None);
    for (target, says) in [
        ("figures/a.png", "does not exist"),
        ("figures", "does not exist"),
        ("https://example.com/x.png", "a URL"),
        ("../../outside.png", "outside the repository"),
        ("/etc/x.png", "an absolute path"),
        ("../target/examples-out/x.png", "ignored by git"),
        ("figures/half.tmp", "ignored by git"),
        ("", "names no file"),
    ] {
        let why = check(target).unwrap_or_else(|| panic!("{target:?} should be refused"));
        assert!(why.contains(says), "{target:?}: {why:?} should say {says:?}");
    }
    let _ = std::fs::remove_dir_all(&root);
}
