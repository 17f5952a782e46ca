//! Generated files: shell completions and man pages, rendered from the clap
//! definition in `cli.rs` and the pages of `help.rs`.
//!
//! The completion scripts are what `COMPLETE=SHELL canary` prints: they
//! call the `canary` on `PATH` back, which completes from its own
//! definition, the cluster and the kubeconfig (see `complete.rs`).
//! They are committed under `completions/` and `man/` so packagers need no
//! build step; a test renders them again and fails when the committed copies
//! differ (regenerate with `CANARY_REGENERATE=1 cargo test generated`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Every generated file: its path relative to the crate root, and contents.
pub fn all() -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::PowerShell,
        Shell::Elvish,
    ] {
        let buf = crate::complete::registration(shell);
        let name = match shell {
            Shell::Bash => "canary.bash".to_string(),
            Shell::Zsh => "_canary".to_string(),
            Shell::Fish => "canary.fish".to_string(),
            Shell::PowerShell => "_canary.ps1".to_string(),
            Shell::Elvish => "canary.elv".to_string(),
            _ => continue,
        };
        out.push((Path::new("completions").join(name), buf));
    }
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    man_pages(&cmd, &mut out);
    out
}

fn man_pages(cmd: &clap::Command, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, out);
    }
    let man = clap_mangen::Man::new(cmd.clone()).date("");
    let mut buf = Vec::new();
    // The standard sections, then EXIT STATUS in place of clap_mangen's
    // generic "EXTRA" rendering of the after-help text.
    man.render_title(&mut buf).expect("rendering to memory");
    man.render_name_section(&mut buf)
        .expect("rendering to memory");
    man.render_synopsis_section(&mut buf)
        .expect("rendering to memory");
    man.render_description_section(&mut buf)
        .expect("rendering to memory");
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut buf)
            .expect("rendering to memory");
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf)
            .expect("rendering to memory");
    }
    let page = crate::help::page(cmd.get_name());
    let _ = writeln!(buf, ".SH \"EXIT STATUS\"");
    for (code, what) in page.exit_codes() {
        let _ = writeln!(buf, ".TP\n{code}\n{}", roff(what));
    }
    let _ = writeln!(buf, ".SH ENVIRONMENT");
    for v in page.env {
        let _ = writeln!(buf, ".TP\n\\fB{}\\fR\n{}", roff(v.name), roff(v.what));
    }
    let _ = writeln!(buf, ".SH EXAMPLES");
    for (line, what) in page.examples {
        let _ = writeln!(buf, ".TP\n\\fB{}\\fR\n{}", roff(line), roff(what));
    }
    if cmd.get_version().is_some() {
        man.render_version_section(&mut buf)
            .expect("rendering to memory");
    }
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    out.push((Path::new("man").join(format!("{name}.1")), buf));
}

/// Text as roff shows it: backslashes and hyphens escaped, and a line
/// that would start with a control character guarded.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}
