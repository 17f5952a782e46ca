//! `canary`: parse the command line, dispatch, map the outcome to an exit
//! code; nothing else.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next();
    let matches = canary::command_for(argv0.as_deref()).get_matches();
    let cli = match <canary::Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    canary::run(cli).into()
}
