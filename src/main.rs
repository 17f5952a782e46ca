//! `canary`: parse the command line, dispatch, map the outcome to an exit
//! code; nothing else.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next();
    let matches = match canary::command_for(argv0.as_deref()).try_get_matches() {
        Ok(m) => m,
        Err(e) => canary::exit_on_error(e),
    };
    let cli = match <canary::Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => canary::exit_on_error(e),
    };
    canary::run(cli).into()
}
