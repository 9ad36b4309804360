//! `tinymoe config list|show|check`: the presets and config files of `run::config`, printed.

use crate::run::config::{guess_command, preset, render, start, File, PRESETS};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub what: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// List the presets, with the command each is for and what it trains.
    List,
    /// Print a preset as a config file, every key documented (meaning, range, default):
    /// `tinymoe config show spirals-moe > my.toml`, edit, `tinymoe train --config my.toml`.
    Show {
        /// A preset name (see `tinymoe config list`).
        preset: String,
    },
    /// Check a config file (syntax, keys, types, ranges) and print the settings it resolves
    /// to, as TOML.
    Check { file: PathBuf },
}

/// `tinymoe config`.
pub fn config(a: ConfigArgs) -> anyhow::Result<()> {
    match a.what {
        ConfigCommand::List => {
            println!("{:<13} {:<10} description", "preset", "command");
            for p in PRESETS {
                println!("{:<13} {:<10} {}", p.name, p.build().command().as_str(), p.about);
            }
            println!("\nshow one as an editable config file: tinymoe config show NAME > my.toml");
        }
        ConfigCommand::Show { preset: name } => {
            let settings = preset(&name, None)?;
            let about = PRESETS.iter().find(|p| p.name == name).map_or("", |p| p.about);
            let header = format!(
                "tinymoe settings: preset {name}: {about}.\n\
                 Use: tinymoe {} --config FILE [flags]. Every key is optional (a missing key keeps\n\
                 the preset's value) and a flag overrides the file.",
                settings.command().as_str()
            );
            print!("{}", render(&settings, &header)?);
        }
        ConfigCommand::Check { file } => {
            let f = File::read(&file)?;
            let command = guess_command(&f)?;
            let settings = start(Some(&f), None, command)?;
            let header = format!(
                "{}: valid settings for `tinymoe {}` (preset {}). Resolved, every key:",
                file.display(),
                command.as_str(),
                settings.preset_name()
            );
            print!("{}", render(&settings, &header)?);
        }
    }
    Ok(())
}
