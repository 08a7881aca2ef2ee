//! `raptor config check FILE` and `raptor config default`: configuration files, without a
//! server.

use super::output::print;
use crate::config::{Config, Overrides};
use argh::FromArgs;
use std::path::{Path, PathBuf};

/// Work with configuration files.
#[derive(FromArgs)]
#[argh(subcommand, name = "config")]
pub struct ConfigCmd {
    #[argh(subcommand)]
    cmd: ConfigSub,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum ConfigSub {
    Check(ConfigCheck),
    Default(ConfigDefault),
}

/// Check a configuration file as a start would (TLS files included), without binding
/// anything: prints "FILE: ok" and exits 0, or the first error and exits 2.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct ConfigCheck {
    /// the TOML file
    #[argh(positional)]
    file: PathBuf,
}

/// Print a configuration file with every setting at its default, commented out, for
/// editing (raptor config default > raptor.toml).
#[derive(FromArgs)]
#[argh(subcommand, name = "default")]
struct ConfigDefault {}

impl ConfigCmd {
    /// Returns the exit code.
    pub fn run(self) -> i32 {
        match self.cmd {
            ConfigSub::Check(c) => check(&c.file),
            ConfigSub::Default(_) => {
                print(&super::config_default::render());
                0
            }
        }
    }
}

/// Everything a start checks before binding. The error keeps toml's lines (the position,
/// the line with a caret under the field): this command exists to show them.
fn check(file: &Path) -> i32 {
    if let Err(e) = crate::logging::init() {
        return super::fail(&e.to_string(), 2);
    }
    let checked = Config::load(Some(file), &Overrides::default())
        .and_then(|cfg| crate::live::read_files(&cfg).map(|_| ()));
    match checked {
        Ok(()) => {
            print(&format!("{}: ok\n", file.display()));
            0
        }
        Err(e) => {
            eprintln!("raptor: {e}");
            2
        }
    }
}
