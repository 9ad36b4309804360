//! Config files as a user meets them: `tinymoe config list|show|check`, `train --config` and
//! `train lm --config` with the precedence preset < file < flags, the config.toml saved beside
//! every result, and one-line errors naming the file, line, key and allowed range.

mod common;

use common::cli::{assert_clean_error, stderr, stdout, tinymoe, tmp_dir};
use std::path::Path;
use tinymoe::run::config::{self, Settings, PRESETS};

/// Writes `text` to `dir/name` and returns its path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// What a TOML text resolves to for `command` (in-process, through the library's loader).
fn resolve(text: &str, command: config::Command) -> Settings {
    let file = config::File::parse(Path::new("t.toml"), text.to_string()).expect("valid TOML");
    config::start(Some(&file), None, command).expect("valid settings")
}

#[test]
fn list_names_every_preset_with_its_command() {
    let o = tinymoe(&["config", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for p in PRESETS {
        let line = out.lines().find(|l| l.starts_with(p.name)).unwrap_or_else(|| panic!("{} listed: {out}", p.name));
        assert!(line.contains(p.about), "{line}");
    }
    for name in ["spirals-mlp", "spirals-moe", "lm", "lm-quick"] {
        assert!(PRESETS.iter().any(|p| p.name == name), "preset {name} exists");
    }
}

/// `config show P > f.toml` is a valid config that loads back to exactly preset P, and every
/// key in it has a `#` comment right above it.
#[test]
fn show_prints_every_preset_as_a_documented_file_that_loads_back_unchanged() {
    let dir = tmp_dir("show");
    for p in PRESETS {
        let o = tinymoe(&["config", "show", p.name]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = stdout(&o);
        let preset = p.build();
        assert_eq!(resolve(&text, preset.command()), preset, "{}: show → parse → same settings", p.name);
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.is_empty() && !line.starts_with('#') {
                assert!(i > 0 && lines[i - 1].starts_with("# "), "{}: `{line}` has a comment above it", p.name);
            }
        }
        // Documented: meaning, range and default, and the unset keys as commented examples.
        assert!(text.contains("# Default: "), "{text}");
        assert!(text.contains("lr = ") && text.contains("number > 0"), "{text}");
        // And the binary accepts it too.
        let path = write(&dir, &format!("{}.toml", p.name), &text);
        let check = tinymoe(&["config", "check", &path]);
        assert!(check.status.success(), "{}", stderr(&check));
        assert_eq!(resolve(&stdout(&check), preset.command()), preset, "{}: check prints the same", p.name);
    }
    assert!(stdout(&tinymoe(&["config", "show", "lm"])).contains("# text = "), "unset text shown commented out");
    assert_clean_error(&tinymoe(&["config", "show", "nope"]), &["unknown preset \"nope\"", "spirals-moe", "lm-quick"]);
}

#[test]
fn an_empty_file_is_the_preset() {
    let dir = tmp_dir("empty");
    assert_eq!(resolve("", config::Command::Train), config::preset("spirals-mlp", None).unwrap());
    assert_eq!(resolve("", config::Command::TrainLm), config::preset("lm", None).unwrap());
    let path = write(&dir, "empty.toml", "");
    let o = tinymoe(&["config", "check", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(resolve(&stdout(&o), config::Command::Train), config::preset("spirals-mlp", None).unwrap());
}

/// Preset < file < flags, and the run saves what it used as config.toml (and config.json).
#[test]
fn a_file_overrides_the_preset_and_a_flag_overrides_the_file() {
    let dir = tmp_dir("roundtrip");
    let file = write(
        &dir,
        "run.toml",
        "preset = \"spirals-moe\"\nepochs = 2\nspiral_points_per_class = 40\nexperts = 3\nlr = 0.01\n",
    );
    let out = dir.join("out");
    let o = tinymoe(&["train", "--config", &file, "--lr", "0.02", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let Settings::Classifier(spec) = resolve(&saved, config::Command::Train) else { panic!("{saved}") };
    assert_eq!(spec.preset, "spirals-moe");
    assert_eq!(spec.model.as_str(), "moe", "from the preset the file names");
    assert_eq!((spec.training.epochs, spec.spiral_points_per_class, spec.experts), (2, 40, 3), "from the file");
    assert_eq!(spec.training.lr, 0.02, "the flag beats the file");
    assert_eq!(spec.hidden, vec![64, 64], "untouched keys keep the preset's value");
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 2, "two epochs, as the file says");
    assert!(std::fs::read_to_string(out.join("config.json")).unwrap().contains("\"epochs\": 2"));
    // The saved config.toml reruns the same settings.
    let again = dir.join("again");
    let o =
        tinymoe(&["train", "--config", out.join("config.toml").to_str().unwrap(), "--out", again.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(again.join("config.toml")).unwrap(), saved);
    // --preset beats the file's preset.
    let o = tinymoe(&[
        "train",
        "--config",
        &file,
        "--preset",
        "spirals-mlp",
        "--epochs",
        "1",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = std::fs::read_to_string(again.join("config.toml")).unwrap();
    let Settings::Classifier(spec) = resolve(&saved, config::Command::Train) else { panic!("{saved}") };
    assert_eq!((spec.model.as_str(), spec.training.epochs, spec.experts), ("mlp", 1, 3));
}

#[test]
fn train_lm_reads_a_config_file_too() {
    let dir = tmp_dir("lm");
    let file = write(&dir, "lm.toml", "preset = \"lm-quick\"\nseq = 16\nd_model = 16\ndropout = 0.0\n");
    let out = dir.join("out");
    let o = tinymoe(&["train", "lm", "--config", &file, "--seed", "7", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    let Settings::Lm(spec) = resolve(&saved, config::Command::TrainLm) else { panic!("LM settings: {saved}") };
    assert_eq!((spec.preset.as_str(), spec.seq, spec.d_model, spec.n_layers), ("lm-quick", 16, 16, 1));
    assert_eq!((spec.dropout, spec.training.seed, spec.training.epochs), (0.0, 7, 1));
    assert!(out.join("model.ckpt").is_file() && out.join("config.json").is_file());
    // A classifier preset is not an LM preset, and --config does not mix with --resume.
    let bad = write(&dir, "cls.toml", "preset = \"spirals-moe\"\n");
    assert_clean_error(
        &tinymoe(&["train", "lm", "--config", &bad, "--out", out.to_str().unwrap()]),
        &["cls.toml:1", "spirals-moe", "lm, lm-quick"],
    );
    let o = tinymoe(&["train", "lm", "--config", &file, "--resume", "x.ckpt"]);
    assert!(!o.status.success() && stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

#[test]
fn malformed_toml_names_the_file_line_and_column() {
    let dir = tmp_dir("syntax");
    let unclosed = write(&dir, "unclosed.toml", "epochs = 2\nmodel = \"moe\n");
    assert_clean_error(&tinymoe(&["config", "check", &unclosed]), &["unclosed.toml:2: column "]);
    let table = write(&dir, "table.toml", "epochs = 2\n\n[model\nx = 1\n");
    assert_clean_error(&tinymoe(&["train", "--config", &table]), &["table.toml:3: column ", "]"]);
    let twice = write(&dir, "twice.toml", "epochs = 2\nepochs = 3\n");
    assert_clean_error(&tinymoe(&["config", "check", &twice]), &["twice.toml:2: column "]);
}

#[test]
fn unknown_keys_are_named_with_the_allowed_ones() {
    let dir = tmp_dir("unknown");
    let path = write(&dir, "typo.toml", "epochs = 2\nepoch = 3\n");
    assert_clean_error(
        &tinymoe(&["train", "--config", &path]),
        &["typo.toml:2: column 1: unknown key `epoch`", "allowed keys:", "epochs", "spiral_noise"],
    );
    // An LM key in a classifier file, and a nested table.
    let path = write(&dir, "lmkey.toml", "preset = \"spirals-mlp\"\nseq = 3\n");
    assert_clean_error(&tinymoe(&["config", "check", &path]), &["lmkey.toml:2", "unknown key `seq`"]);
    let path = write(&dir, "nested.toml", "[training]\nepochs = 3\n");
    assert_clean_error(
        &tinymoe(&["train", "lm", "--config", &path]),
        &["nested.toml:1", "unknown key `training`", "n_heads"],
    );
}

#[test]
fn wrong_types_name_the_key_and_the_expected_type() {
    let dir = tmp_dir("types");
    for (text, needles) in [
        ("epochs = \"ten\"\n", &["epochs: invalid type: string \"ten\"", "expected an integer"][..]),
        ("lr = \"fast\"\n", &["lr: invalid type", "expected a number"]),
        ("hidden = 64\n", &["hidden: invalid type", "expected an array"]),
        ("model = 2\n", &["model: invalid type", "expected a string"]),
        ("epochs = -3\n", &["epochs: invalid value", "expected an integer ≥ 0"]),
        ("preset = 1\n", &["preset: expected a string"]),
    ] {
        let path = write(&dir, "t.toml", text);
        let o = tinymoe(&["config", "check", &path]);
        assert_clean_error(&o, &[&["t.toml:1: column "][..], needles].concat());
    }
}

/// Every range check, from a file (with the line) and the same check from a flag.
#[test]
fn out_of_range_values_name_the_key_and_the_range() {
    let dir = tmp_dir("range");
    let classifier_cases = [
        ("lr = -0.1", "lr = -0.1", "must be a finite number > 0"),
        ("lr = 0", "lr = 0", "must be a finite number > 0"),
        ("dropout = 1.0", "dropout = 1", "must be in [0, 1)"),
        ("dropout = -0.5", "dropout = -0.5", "must be in [0, 1)"),
        ("batch_size = 0", "batch_size = 0", "must be 1..="),
        ("epochs = 0", "epochs = 0", "must be 1..="),
        ("experts = 0", "experts = 0", "must be at least 1"),
        ("val_fraction = 0", "val_fraction = 0", "must be in (0, 1)"),
        ("val_fraction = 1.5", "val_fraction = 1.5", "must be in (0, 1)"),
        ("hidden = [64, 0]", "hidden = [64, 0]", "every layer width must be at least 1"),
        ("spiral_noise = -1", "spiral_noise = -1", "must be a finite number ≥ 0"),
        ("momentum = 1", "momentum = 1", "must be in [0, 1)"),
        ("clip = 0", "clip = 0", "must be a finite number > 0"),
        ("optimizer = \"lion\"", "unknown optimizer \"lion\"", "sgd, adam, adamw"),
    ];
    for (line, key, range) in classifier_cases {
        let path = write(&dir, "bad.toml", &format!("seed = 1\n{line}\n"));
        // The error points at the value: column 1 for a range, the value's column for a choice.
        let at = if line.contains('"') { "bad.toml:2: column 13: " } else { "bad.toml:2: column 1: " };
        assert_clean_error(&tinymoe(&["config", "check", &path]), &[at, key, range]);
    }
    let lm_cases = [
        ("seq = 0", "seq = 0", "must be at least 1"),
        ("n_heads = 5", "n_heads = 5", "must divide d_model = 128"),
        ("n_layers = 0", "n_layers = 0", "must be at least 1"),
        ("dropout = 1", "dropout = 1", "must be in [0, 1)"),
        ("val_fraction = 1", "val_fraction = 1", "must be in (0, 1)"),
        ("samples = 0", "samples = 0", "must be at least 1"),
        ("corpus = [\"poetry\"]", "corpus = \"poetry\"", "unknown domain"),
    ];
    for (line, key, range) in lm_cases {
        let path = write(&dir, "bad.toml", &format!("preset = \"lm\"\n{line}\n"));
        assert_clean_error(&tinymoe(&["train", "lm", "--config", &path]), &["bad.toml:2: column 1: ", key, range]);
    }
    // A clash between a file's value and the preset's names the file (no line to point at).
    let path = write(&dir, "clash.toml", "preset = \"lm\"\nd_model = 30\n");
    assert_clean_error(&tinymoe(&["config", "check", &path]), &["clash.toml: n_heads = 4", "must divide d_model = 30"]);
    // The same checks on flags, with a valid file underneath.
    let ok = write(&dir, "ok.toml", "epochs = 1\n");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    for (flags, needles) in [
        (&["--lr", "0"][..], &["lr = 0", "> 0"][..]),
        (&["--batch-size", "0"], &["batch_size = 0", "must be 1..="]),
        (&["--epochs", "0"], &["epochs = 0", "must be 1..="]),
        (&["--experts", "0"], &["experts = 0", "at least 1"]),
        (&["--dropout", "1"], &["dropout = 1", "[0, 1)"]),
    ] {
        assert_clean_error(&tinymoe(&[&["train", "--config", &ok, "--out", out][..], flags].concat()), needles);
    }
    assert_clean_error(&tinymoe(&["train", "lm", "--config", &ok, "--seq", "0", "--out", out]), &["seq = 0"]);
    // Sparse routing's k, for the first spec that gets one.
    let e = tinymoe::run::settings::top_k("top_k", 3, 2).unwrap_err().to_string();
    assert!(e.contains("top_k = 3") && e.contains("1..=2"), "{e}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let dir = tmp_dir("missing");
    let path = dir.join("nowhere.toml");
    let path = path.to_str().unwrap();
    assert_clean_error(&tinymoe(&["train", "--config", path]), &[path, "No such file"]);
    assert_clean_error(&tinymoe(&["train", "lm", "--config", path]), &[path]);
    assert_clean_error(&tinymoe(&["config", "check", path]), &[path]);
}
