//! `raptor-loadtest`: parse the command line, run one scenario, print the report.
//!
//! Exit status: 0 clean run, 1 the run could not be carried out, 2 the run finished but
//! lost, reordered or failed something (the figures are printed either way).

use std::io::IsTerminal;
use std::process::ExitCode;

use raptor_loadtest::cli::{args_from_env, write_quietly, Cli};

fn main() -> ExitCode {
    let cli: Cli = args_from_env();
    let report = match cli.run(std::io::stderr().is_terminal()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    if cli.json {
        match serde_json::to_string(&report) {
            Ok(s) => _ = write_quietly(&mut std::io::stdout(), &s),
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        write_quietly(&mut std::io::stdout(), report.to_table().trim_end());
    }
    let problems = report.problems();
    if problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!();
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! warning: this run is not clean; do not trust its figures");
    for p in &problems {
        eprintln!("!!!   {p}");
    }
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    ExitCode::from(2)
}
