//! Config files: every run's settings as TOML, the presets they start from, and the range
//! checks that settings from a file and from flags both go through.
//!
//! A run's settings come in three layers, each overriding the one before:
//!
//! ```text
//!   preset (named defaults)  <  --config FILE (TOML)  <  command-line flags
//! ```
//!
//! A config file is flat `key = value` lines; the keys are the fields of the run's spec
//! (`run::classifier::Spec` for `tinymoe train`, `run::lm::LmSpec` for `tinymoe train lm`, `run::moe_lm::MoeLmSpec` for `tinymoe train moe`), and
//! `tinymoe config show PRESET` prints every one with its meaning, range and default. Every key
//! is optional: a missing key keeps the preset's value. `preset = "NAME"` picks the preset
//! (a `--preset` flag beats it; without either, `train` starts from spirals-mlp and `train lm`
//! from lm). Relative paths in a file (`data`, `text`) are relative to the working directory,
//! as on the command line. Every run saves what it used as `config.toml` in its results
//! folder ([`render`]), and `--config that/config.toml` runs it again.
//!
//! A file meets four checks, in this order, and an error names the file, line and column:
//! 1. TOML syntax (toml's parser; its byte span becomes line and column);
//! 2. every key is a key of the spec, else the error lists the allowed keys;
//! 3. every value has its key's type: the preset is deserialised with only that key changed,
//!    so the error names the key (serde loses it inside a `#[serde(flatten)]` struct);
//! 4. every value is in range: the spec's `validate`, the same one the flags go through.
//!
//! Why step 2 is ours and not `#[serde(deny_unknown_fields)]`: serde does not support that
//! attribute together with `#[serde(flatten)]`, which both specs use for their shared
//! `TrainingSpec` (so config.json and checkpoint headers stay flat). The field tables (each
//! spec's `FIELDS`) are the allowed keys, and a test checks they match the structs exactly.
//!
//! **Adding a preset** is one entry in [`PRESETS`]: a name, a one-line description, and a
//! function building its spec, e.g.
//! `Preset { name: "lm-wide", about: "…", make: || Settings::Lm(LmSpec { d_model: 256, ..lm::preset_lm() }) }`
//! (the spec's `preset` field is set to the entry's name for you).
//! It is then accepted by `--preset`, by `preset = "…"` in a file, and listed and printed by
//! `tinymoe config list|show`. **Adding a kind of run** with its own spec (say an MoE language
//! model): a [`Settings`] variant, a [`Command`] variant, the spec's `FIELDS` table and
//! `validate`, and one arm in each `match` below; the compiler points at every one.

use crate::error::Error;
use crate::run::classifier::{self as train, Spec};
use crate::run::lm::{self, LmSpec};
use crate::run::moe_lm::{self as moe, MoeLmSpec};
use crate::run::settings::TRAINING_FIELDS;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One key of a config file and the comment `config show` writes above it: what it means,
/// its unit and allowed range (the default is added from the preset).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub key: &'static str,
    pub doc: &'static str,
    /// For a key that may be unset (an `Option`): an example value, printed commented out.
    pub unset_example: Option<&'static str>,
}

impl Field {
    pub const fn new(key: &'static str, doc: &'static str) -> Field {
        Field { key, doc, unset_example: None }
    }
    pub const fn optional(key: &'static str, doc: &'static str, example: &'static str) -> Field {
        Field { key, doc, unset_example: Some(example) }
    }
}

/// The command a preset's settings are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `tinymoe train`: a classifier.
    Train,
    /// `tinymoe train lm`: a language model.
    TrainLm,
    /// `tinymoe train moe`: an MoE language model on labelled domains.
    TrainMoe,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Train => "train",
            Command::TrainLm => "train lm",
            Command::TrainMoe => "train moe",
        }
    }
    /// The preset used when neither `--preset` nor the file names one.
    pub fn default_preset(self) -> &'static str {
        match self {
            Command::Train => "spirals-mlp",
            Command::TrainLm => "lm",
            Command::TrainMoe => "moe-lm",
        }
    }
}

/// A run's full settings, of whichever kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Settings {
    Classifier(Spec),
    Lm(LmSpec),
    Moe(MoeLmSpec),
}

/// A named starting point: one row of [`PRESETS`].
pub struct Preset {
    pub name: &'static str,
    /// One line for `tinymoe config list`.
    pub about: &'static str,
    pub make: fn() -> Settings,
}

impl Preset {
    /// The preset's settings, their `preset` field set to its name.
    pub fn build(&self) -> Settings {
        let mut settings = (self.make)();
        match &mut settings {
            Settings::Classifier(s) => s.preset = self.name.into(),
            Settings::Lm(s) => s.preset = self.name.into(),
            Settings::Moe(s) => s.preset = self.name.into(),
        }
        settings
    }
}

/// Every preset. A new one is one more entry (see the module doc).
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "spirals-mlp",
        about: "an MLP (hidden 128, 128) learns five interleaved spirals, 60 epochs of Adam",
        make: || Settings::Classifier(train::preset_spirals_mlp()),
    },
    Preset {
        name: "spirals-moe",
        about: "a dense mixture of 4 MLP experts (hidden 64, 64) and a gate, on the same spirals",
        make: || Settings::Classifier(train::preset_spirals_moe()),
    },
    Preset {
        name: "lm",
        about: "a 2-block byte-level transformer LM (d_model 128, context 128) on the built-in text, 12 epochs",
        make: || Settings::Lm(lm::preset_lm()),
    },
    Preset {
        name: "lm-quick",
        about: "a tiny 1-block LM for one epoch: seconds (what `train lm --quick` runs)",
        make: || Settings::Lm(lm::preset_lm_quick()),
    },
    Preset {
        name: "moe-lm",
        about: "a byte-level MoE LM, 4 MLP experts top-2, token routing, on code/math/story/science (the demo's)",
        make: || Settings::Moe(moe::preset_moe_lm()),
    },
    Preset {
        name: "moe-lm-quick",
        about: "the same MoE LM on 24 samples per domain for 2 epochs: seconds (`train moe --quick`)",
        make: || Settings::Moe(moe::preset_moe_lm_quick()),
    },
];

/// The preset called `name`, for `command` (None: any command); the error lists the choices.
pub fn preset(name: &str, command: Option<Command>) -> Result<Settings, Error> {
    let names = |c: Option<Command>| -> String {
        let fits = |p: &&Preset| c.is_none_or(|c| p.build().command() == c);
        PRESETS.iter().filter(fits).map(|p| p.name).collect::<Vec<_>>().join(", ")
    };
    let Some(p) = PRESETS.iter().find(|p| p.name == name) else {
        return Err(Error::Unknown { what: "preset".into(), name: name.into(), expected: names(command) });
    };
    let settings = p.build();
    match command {
        Some(c) if settings.command() != c => Err(Error::bad_value(
            "preset",
            format!("{name:?}"),
            &format!(
                "is a preset of `tinymoe {}`; `tinymoe {}` takes one of: {}",
                settings.command().as_str(),
                c.as_str(),
                names(Some(c))
            ),
        )),
        _ => Ok(settings),
    }
}

impl Settings {
    pub fn command(&self) -> Command {
        match self {
            Settings::Classifier(_) => Command::Train,
            Settings::Lm(_) => Command::TrainLm,
            Settings::Moe(_) => Command::TrainMoe,
        }
    }
    /// The name of the preset these settings started from.
    pub fn preset_name(&self) -> &str {
        match self {
            Settings::Classifier(s) => &s.preset,
            Settings::Lm(s) => &s.preset,
            Settings::Moe(s) => &s.preset,
        }
    }
    /// The documented keys, in the order `config show` prints them (`preset` comes first, apart).
    pub fn fields(&self) -> [&'static [Field]; 2] {
        match self {
            Settings::Classifier(_) => [train::FIELDS, TRAINING_FIELDS],
            Settings::Lm(_) => [lm::FIELDS, TRAINING_FIELDS],
            Settings::Moe(_) => [moe::FIELDS, TRAINING_FIELDS],
        }
    }
    /// Every value against its allowed range (the same checks as for flags).
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Settings::Classifier(s) => s.validate(),
            Settings::Lm(s) => s.validate(),
            Settings::Moe(s) => s.validate(),
        }
    }
    fn to_table(&self) -> Result<toml::Table, Error> {
        match self {
            Settings::Classifier(s) => to_table(s),
            Settings::Lm(s) => to_table(s),
            Settings::Moe(s) => to_table(s),
        }
    }
    /// These settings with a file's keys on top, checked (steps 2 to 4 of the module doc).
    fn overlay(self, file: &File) -> Result<Settings, Error> {
        let fields = self.fields();
        let settings = match self {
            Settings::Classifier(s) => Settings::Classifier(file.apply(&s, &fields)?),
            Settings::Lm(s) => Settings::Lm(file.apply(&s, &fields)?),
            Settings::Moe(s) => Settings::Moe(file.apply(&s, &fields)?),
        };
        settings.validate().map_err(|e| file.locate(e))?;
        Ok(settings)
    }
}

fn to_table<S: Serialize>(spec: &S) -> Result<toml::Table, Error> {
    // Only a non-UTF-8 path can fail to serialise.
    toml::Table::try_from(spec).map_err(|e| Error::bad_value("settings", e, "cannot be written as TOML"))
}

/// The settings a run starts from before its flags: a preset (`--preset`, else the file's
/// `preset`, else the command's default) with the file's keys on top, every value checked.
pub fn start(file: Option<&File>, flag_preset: Option<&str>, command: Command) -> Result<Settings, Error> {
    let from_file = file.map(File::preset).transpose()?.flatten();
    let base = match (flag_preset, &from_file, file) {
        (Some(name), _, _) => preset(name, Some(command))?,
        (None, Some(name), Some(f)) => preset(name, Some(command)).map_err(|e| f.locate(e))?,
        _ => preset(command.default_preset(), Some(command))?,
    };
    match file {
        Some(f) => base.overlay(f),
        None => Ok(base),
    }
}

/// A parsed config file: its top-level keys, in file order, with where each value starts.
pub struct File {
    path: PathBuf,
    text: String,
    entries: Vec<(String, Spanned<toml::Value>)>,
}

impl File {
    /// Reads and parses a TOML file (step 1 of the module doc).
    pub fn read(path: &Path) -> Result<File, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        File::parse(path, text)
    }

    /// Parses `text` as the contents of `path`.
    pub fn parse(path: &Path, text: String) -> Result<File, Error> {
        let parsed: Result<BTreeMap<String, Spanned<toml::Value>>, _> = toml::from_str(&text);
        let mut file = File { path: path.to_path_buf(), text, entries: vec![] };
        match parsed {
            Ok(map) => {
                file.entries = map.into_iter().collect();
                file.entries.sort_by_key(|(_, v)| v.span().start);
                Ok(file)
            }
            Err(e) => Err(match e.span() {
                Some(span) => file.at(span.start, e.message().to_string()),
                None => Error::BadFile { path: file.path, problem: e.message().to_string() },
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error at a byte offset: `path:line: column c: problem` (lines and columns from 1).
    fn at(&self, offset: usize, problem: String) -> Error {
        let before = &self.text[..char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Error::Malformed { path: self.path.clone(), line, problem: format!("column {column}: {problem}") }
    }

    /// Where `key`'s line starts (its first non-blank character): the key of `key = value`,
    /// or the header of a `[key]` table.
    fn key_offset(&self, key: &str) -> Option<usize> {
        let (_, value) = self.entries.iter().find(|(k, _)| k == key)?;
        let start = char_boundary(&self.text, value.span().start);
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let blank = self.text[line_start..].len() - self.text[line_start..].trim_start_matches([' ', '\t']).len();
        Some(line_start + blank)
    }

    /// The file's `preset = "NAME"`, if it has one.
    pub fn preset(&self) -> Result<Option<String>, Error> {
        let Some((_, value)) = self.entries.iter().find(|(k, _)| k == "preset") else {
            return Ok(None);
        };
        match value.get_ref() {
            toml::Value::String(name) => Ok(Some(name.clone())),
            other => Err(self.at(
                self.key_offset("preset").unwrap_or(value.span().start),
                format!("preset: expected a string (a preset name), found {} {other}", other.type_str()),
            )),
        }
    }

    /// `base` with every key of the file set on it (steps 2 and 3 of the module doc). The
    /// `preset` key is left to [`start`].
    fn apply<S: Serialize + DeserializeOwned>(&self, base: &S, fields: &[&[Field]]) -> Result<S, Error> {
        let allowed: Vec<&str> =
            std::iter::once("preset").chain(fields.iter().flat_map(|f| f.iter().map(|f| f.key))).collect();
        let base_table = to_table(base)?;
        let mut merged = base_table.clone();
        for (key, value) in &self.entries {
            let at = self.key_offset(key).unwrap_or(value.span().start);
            if !allowed.contains(&key.as_str()) {
                return Err(self.at(at, format!("unknown key `{key}` (allowed keys: {})", allowed.join(", "))));
            }
            if key == "preset" {
                continue;
            }
            // Only this key changed: a failure is this key's, whatever serde's message says.
            let mut one = base_table.clone();
            one.insert(key.clone(), value.get_ref().clone());
            if let Err(e) = one.try_into::<S>() {
                return Err(self.at(value.span().start, key_error(key, e.message())));
            }
            merged.insert(key.clone(), value.get_ref().clone());
        }
        merged.try_into::<S>().map_err(|e| Error::BadFile { path: self.path.clone(), problem: e.message().into() })
    }

    /// A range error about a key, pointed at the key's line if the file sets it, else at the
    /// file (a preset value that clashes with one from the file).
    pub fn locate(&self, e: Error) -> Error {
        let key = match &e {
            Error::BadValue { name, .. } => name.clone(),
            Error::Unknown { what, .. } => what.clone(),
            _ => return e,
        };
        match self.key_offset(&key) {
            Some(at) => self.at(at, e.to_string()),
            None => Error::BadFile { path: self.path.clone(), problem: e.to_string() },
        }
    }
}

/// The largest char boundary of `text` at or before `offset` (a span from the parser should
/// be one already; this keeps a slice from panicking if it is not).
fn char_boundary(text: &str, offset: usize) -> usize {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// serde's message about `key`'s value in plain words; an unknown choice reads as the CLI's
/// does: `unknown optimizer "lion" (expected one of: sgd, adam, adamw)`.
fn key_error(key: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((word, expected)) = rest.split_once("`, expected one of ") {
            return format!("unknown {key} \"{word}\" (expected one of: {})", expected.replace('`', ""));
        }
    }
    format!("{key}: {}", plain_types(message))
}

/// serde's Rust type names in plain words: "expected usize" → "expected an integer ≥ 0".
fn plain_types(message: &str) -> String {
    message
        .replace("expected usize", "expected an integer ≥ 0")
        .replace("expected u64", "expected an integer ≥ 0")
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected an array, e.g. [64, 64]")
        // A choice (an enum) given a number or a bool: toml's words for it are about Rust.
        .replace("invalid type: unit variant, expected string only", "invalid type: expected a string")
}

/// The settings as a TOML file that [`File::read`] loads back to the same settings: a header
/// of comment lines, then every key with its documentation above it (`# …`). Keys left unset
/// (an `Option` that is None) are written commented out, with an example value.
pub fn render(settings: &Settings, header: &str) -> Result<String, Error> {
    let values = settings.to_table()?;
    // The preset's own values, for each key's "Default:".
    let defaults = PRESETS
        .iter()
        .find(|p| p.name == settings.preset_name())
        .map(|p| p.build().to_table())
        .transpose()?
        .unwrap_or_default();
    let command = settings.command();
    let mut out = String::new();
    for line in header.lines() {
        out += &format!("# {line}\n");
    }
    let same_command: Vec<&str> = PRESETS.iter().filter(|p| p.build().command() == command).map(|p| p.name).collect();
    out += &format!(
        "\n# The preset this file starts from: its values fill every key the file leaves out.\n\
         # `tinymoe {}` takes one of: {}.\n",
        command.as_str(),
        same_command.join(", ")
    );
    out += &entry("preset", &toml::Value::String(settings.preset_name().into()));
    for field in settings.fields().iter().flat_map(|f| f.iter()) {
        out += "\n";
        for line in field.doc.lines() {
            out += &format!("# {line}\n");
        }
        let default = match defaults.get(field.key) {
            Some(v) => v.to_string(),
            None => "unset".into(),
        };
        out += &format!("# Default: {default}.\n");
        match (values.get(field.key), field.unset_example) {
            (Some(v), _) => out += &entry(field.key, v),
            (None, Some(example)) => out += &format!("# {} = {example}\n", field.key),
            (None, None) => {
                return Err(Error::bad_value(field.key, "unset", "has no value and no example to show"));
            }
        }
    }
    Ok(out)
}

/// `key = value` as TOML writes it (strings quoted and escaped, arrays inline).
fn entry(key: &str, value: &toml::Value) -> String {
    format!("{key} = {value}\n")
}

/// Which command a file is for: its preset's, else the one whose keys it uses.
pub fn guess_command(f: &File) -> Result<Command, Error> {
    if let Some(name) = f.preset()? {
        return preset(&name, None).map(|s| s.command()).map_err(|e| f.locate(e));
    }
    let has = |fields: &[Field], key: &str| fields.iter().any(|g| g.key == key);
    let only = |own: &[Field], others: [&[Field]; 2], key: &str| has(own, key) && !others.iter().any(|o| has(o, key));
    let keys = || f.entries.iter().map(|(k, _)| k.as_str());
    Ok(if keys().any(|k| only(moe::FIELDS, [lm::FIELDS, train::FIELDS], k)) {
        Command::TrainMoe
    } else if keys().any(|k| only(lm::FIELDS, [moe::FIELDS, train::FIELDS], k)) {
        Command::TrainLm
    } else {
        Command::Train
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented keys are exactly the serialised fields (so none is undocumented, and
    /// no documented key is silently ignored).
    #[test]
    fn field_tables_match_the_specs() {
        for p in PRESETS {
            let settings = p.build();
            let table = settings.to_table().expect("a preset serialises");
            let documented: Vec<&str> = settings.fields().iter().flat_map(|f| f.iter().map(|f| f.key)).collect();
            for key in table.keys().filter(|k| *k != "preset") {
                assert!(documented.contains(&key.as_str()), "{}: `{key}` has no doc", p.name);
            }
            for f in settings.fields().iter().flat_map(|f| f.iter()) {
                assert!(table.contains_key(f.key) || f.unset_example.is_some(), "{}: `{}` not in spec", p.name, f.key);
            }
        }
    }

    #[test]
    fn rendered_presets_load_back_unchanged() {
        for p in PRESETS {
            let settings = p.build();
            let text = render(&settings, "test").expect("a preset renders");
            let file = File::parse(Path::new("t.toml"), text).expect("a rendered preset parses");
            assert_eq!(
                start(Some(&file), None, settings.command()).expect("a rendered preset loads"),
                settings,
                "{}",
                p.name
            );
        }
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = File::parse(Path::new("x.toml"), "a = 1\nb = \"open\n".into())
            .err()
            .expect("an unclosed string is an error");
        assert!(e.to_string().starts_with("x.toml:2: column "), "{e}");
    }
}
