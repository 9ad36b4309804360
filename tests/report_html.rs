//! report.html in a real browser: headless Chromium (Debian's `chromium`) opens the page an MoE
//! LM run wrote, and a page built from a hand-made explorer. Each must render with no console
//! message and an empty error box, its script must finish (`data-ready="yes"`), its screenshot
//! must not be blank (and shows expert 0's colour), and the dumped DOM must hold exactly one
//! token element per token of the samples.
//!
//! Without Chromium the tests say so loudly on stderr and pass, unless
//! `TINYMOE_REQUIRE_CHROMIUM` is set (CI sets it once it has installed Chromium), when they fail.

mod common;

use common::cli::{s, stderr, tinymoe, tmp_dir};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tinymoe::data::tokenizer::Bytes;
use tinymoe::run::html::{write_report_html, ExplorerSample, ExplorerToken, TokenExplorer};
use tinymoe::run::moe_explorer::moe_lm_explorer;
use tinymoe::run::moe_lm;

/// The browser's name on PATH, or None after a loud notice (a failure when it is required).
fn chromium() -> Option<&'static str> {
    for name in ["chromium", "chromium-browser"] {
        let found = Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if found.is_ok_and(|s| s.success()) {
            return Some(name);
        }
    }
    let msg = "chromium is NOT installed: report.html was NOT opened in a browser (install it with \
               `apt-get install -y chromium`; .ci/run does)";
    assert!(std::env::var_os("TINYMOE_REQUIRE_CHROMIUM").is_none(), "{msg}");
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let bang = "!".repeat(100);
    let _ = writeln!(std::io::stderr(), "\n{bang}\n!!! SKIPPED: {msg}\n{bang}\n");
    None
}

/// Runs the headless browser on `page` with `extra` flags in a fresh profile; (stdout, stderr).
/// Its output goes to files: a pipe would fill with the DOM while we wait, and block it.
fn browse(browser: &str, page: &Path, profile: &Path, extra: &[String]) -> (String, String) {
    browse_url(browser, &format!("file://{}", page.display()), profile, extra)
}

fn browse_url(browser: &str, url: &str, profile: &Path, extra: &[String]) -> (String, String) {
    let (out_path, err_path) = (profile.with_extension("stdout"), profile.with_extension("stderr"));
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(std::fs::File::create(&out_path).expect("a file for chromium's stdout"))
        .stderr(std::fs::File::create(&err_path).expect("a file for chromium's stderr"))
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().expect("waiting for chromium").is_none() {
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish {url} within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().expect("chromium's exit status");
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).expect("chromium's output")).into_owned();
    let (out, err) = (read(&out_path), read(&err_path));
    assert!(status.success(), "chromium failed on {url}: {err}");
    (out, err)
}

/// Opens `page` twice (DOM, screenshot) and checks everything the module doc lists.
fn check_in_browser(browser: &str, page: &Path, dir: &Path, want_tokens: usize) {
    let (dom, log) = browse(browser, page, &dir.join("profile-dom"), &["--dump-dom".to_string()]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages from {}:\n{}", page.display(), console.join("\n"));
    let errors = dom.split("<pre id=\"errors\"").nth(1).and_then(|r| r.split("</pre>").next()).expect("the error box");
    assert_eq!(errors, " hidden=\"\">", "the error box stays empty and hidden");
    assert!(dom.contains("data-ready=\"yes\""), "the page's script ran to its end");
    assert_eq!(dom.matches("class=\"tok ").count(), want_tokens, "one token element per token");
    assert!(dom.contains("<select id=\"domain-filter\">"), "a domain filter");

    let shot = dir.join("shot.png");
    let flags = ["--window-size=1200,900".to_string(), format!("--screenshot={}", shot.display())];
    browse(browser, page, &dir.join("profile-shot"), &flags);
    let img = image::open(&shot).expect("the screenshot is a PNG").to_rgb8();
    let mut colours = std::collections::HashSet::new();
    let mut ink = 0usize;
    let mut expert0 = 0usize;
    for p in img.pixels() {
        colours.insert(p.0);
        ink += usize::from(p.0 != [255, 255, 255]);
        // Expert 0's background, hsl(0, 75%, 80%) = rgb(242, 166, 166).
        expert0 += usize::from(p.0.iter().zip([242u8, 166, 166]).all(|(&a, b)| a.abs_diff(b) <= 3));
    }
    let share = ink as f64 / (img.width() * img.height()) as f64;
    assert!(colours.len() > 50 && share > 0.02, "not blank: {} colours, {:.1} % ink", colours.len(), 100.0 * share);
    assert!(expert0 > 100, "tokens of expert 0 are painted in its colour ({expert0} pixels)");
}

#[test]
fn an_moe_lm_runs_report_renders_in_chromium_with_one_element_per_token() {
    let Some(browser) = chromium() else { return };
    let dir = tmp_dir("run");
    let out = dir.join("out");
    let o = tinymoe(&["train", "moe", "--quick", "--routing", "domain", "--threads", "1", "--out", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = out.join("report.html");
    assert!(page.is_file());
    // The tokens of the samples, recomputed from the checkpoint and the run's own settings.
    let spec = moe_lm::preset_moe_lm_quick();
    let moe_lm::Loaded { model, domains, .. } = moe_lm::load_model(&out.join("model.ckpt")).unwrap();
    let (seqs, labels) = spec.val_samples(spec.val_per_domain).unwrap();
    let explorer = moe_lm_explorer(&model, &seqs, &labels, &domains, &Bytes, spec.max_len, 2).unwrap();
    assert_eq!(explorer.samples.len(), 8, "two samples per domain");
    check_in_browser(browser, &page, &dir, explorer.n_tokens());
}

#[test]
fn a_hand_made_explorer_renders_every_token_even_markup_and_empty_ones() {
    let Some(browser) = chromium() else { return };
    let dir = tmp_dir("hand");
    // A figure: any PNG (a 40×30 red-and-blue picture).
    let png: PathBuf = dir.join("fig.png");
    image::RgbImage::from_fn(40, 30, |x, _| image::Rgb(if x < 20 { [200, 0, 0] } else { [0, 0, 200] }))
        .save(&png)
        .unwrap();
    let token = |text: &str, expert: usize| ExplorerToken { text: text.into(), expert, weights: vec![0.7, 0.3] };
    let mut long: Vec<ExplorerToken> = (0..400).map(|i| token("█", i % 2)).collect();
    long.extend(["<", "b", ">", "&", "\"", "'", "\n", "", "</span>"].iter().map(|t| token(t, 0)));
    let explorer = TokenExplorer {
        experts: vec!["expert 0".into(), "expert 1".into()],
        weights_label: "gates".into(),
        weight_names: vec!["expert 0".into(), "expert 1".into()],
        domains: vec!["code".into(), "<math>".into()],
        samples: vec![
            ExplorerSample { domain: 0, predicted: Some((1, 0.6)), tokens: long },
            ExplorerSample { domain: 1, predicted: None, tokens: vec![token("x", 1); 5] },
            ExplorerSample { domain: 1, predicted: None, tokens: vec![] },
        ],
    };
    let page = dir.join("report.html");
    write_report_html(&page, "A <test> & page", "Intro.\n\nSecond paragraph.", &[("a figure".into(), png)], &explorer)
        .unwrap();
    check_in_browser(browser, &page, &dir, 414);
    // The script's filter and hover, driven through the page's #domain= and #hover= links:
    // domain 1 only, the pointer on token 409 (sample 1's first: "x", expert 1).
    let url = format!("file://{}#domain=1&hover=409", page.display());
    let (dom, _) = browse_url(browser, &url, &dir.join("profile-hover"), &["--dump-dom".to_string()]);
    let info = dom.split("<div id=\"info\">").nth(1).and_then(|r| r.split("</div>").next()).unwrap();
    assert!(info.contains("expert 1") && info.contains("gates: expert 0 0.700  expert 1 0.300"), "{info}");
    assert!(dom.contains("<div class=\"sample\" data-domain=\"0\" style=\"display: none;\">"), "code hidden");
    assert_eq!(dom.matches("<div class=\"sample\" data-domain=\"1\"").count(), 2);
    assert!(!dom.contains("data-domain=\"1\" style=\"display: none;\""), "the <math> samples shown");
}

#[test]
fn a_bad_explorer_or_a_missing_figure_is_an_error_naming_it() {
    let dir = tmp_dir("bad");
    let page = dir.join("report.html");
    let bad = TokenExplorer {
        experts: vec!["expert 0".into()],
        weight_names: vec!["expert 0".into()],
        domains: vec!["code".into()],
        samples: vec![ExplorerSample {
            domain: 0,
            predicted: None,
            tokens: vec![ExplorerToken { text: "a".into(), expert: 3, weights: vec![1.0] }],
        }],
        ..TokenExplorer::default()
    };
    let e = write_report_html(&page, "t", "", &[], &bad).unwrap_err().to_string();
    assert!(e.contains("sample 0, token 0") && e.contains("expert 3"), "{e}");
    let missing = dir.join("nope.png");
    let e = write_report_html(&page, "t", "", &[("c".into(), missing)], &TokenExplorer::default()).unwrap_err();
    assert!(e.to_string().contains("nope.png"), "{e}");
    assert!(!page.exists(), "nothing written on an error");
}
