//! `canary`: parse the command line, dispatch, map the outcome to an exit
//! code; nothing else. Invoked as `kubectl_complete-canary`, or with
//! `COMPLETE` set, it completes a command line instead.

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next();
    if canary::is_kubectl_completer(argv0.as_deref()) {
        return canary::kubectl_plugin(std::env::args_os().skip(1).collect());
    }
    clap_complete::CompleteEnv::with_factory(|| canary::command_for(None))
        .var(canary::COMPLETE_VAR)
        .bin("canary")
        .complete();
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
