//! Completion of the command line by the binary itself.
//!
//! The shell's registration script (`COMPLETE=bash canary`, also committed
//! under `completions/`) calls `canary` back with the words typed so far,
//! and clap's completion engine answers from the command's definition; the
//! values clap cannot know come from here: canary names and namespaces
//! read from the cluster, contexts from the kubeconfig, and providers from
//! the provider table. kubectl (1.26 and later) asks an executable
//! `kubectl_complete-canary` on `PATH` the same question for `kubectl
//! canary`: this binary answers it when it is invoked under that name.
//!
//! A completion must never hold up the shell, nor print anything it did
//! not mean as a candidate: every cluster lookup ends within
//! [`LOOKUP_LIMIT`], exec credential plugins run without a terminal, and
//! any failure completes nothing.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap_complete::engine::CompletionCandidate;
use clap_complete::env::EnvCompleter;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;

use crate::cli::ClusterArgs;
use crate::cluster::connect::Connection;
use canary_core::provider::Provider;

/// The longest a completion waits for the cluster, connecting included.
pub(crate) const LOOKUP_LIMIT: Duration = Duration::from_secs(2);

/// The name kubectl looks for on `PATH` to complete `kubectl canary`.
pub const KUBECTL_COMPLETER: &str = "kubectl_complete-canary";

/// The environment variable that asks the binary for completions.
pub const VAR: &str = "COMPLETE";

/// The cluster settings typed so far on the line being completed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Typed {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    all_namespaces: bool,
}

impl Typed {
    /// From this process's arguments: the words of the line, the last of
    /// which is the one being completed and is left out.
    fn from_args() -> Typed {
        let words: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Typed::from_words(&words[..words.len().saturating_sub(1)])
    }

    fn from_words(words: &[String]) -> Typed {
        let mut t = Typed::default();
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let value = |long: &str, short: Option<&str>| -> Option<String> {
                if w == long || short.is_some_and(|s| w == s) {
                    return it.clone().next().cloned();
                }
                if let Some(v) = w.strip_prefix(long).and_then(|r| r.strip_prefix('=')) {
                    return Some(v.to_string());
                }
                short
                    .and_then(|s| w.strip_prefix(s))
                    .filter(|v| !v.is_empty() && !w.starts_with("--"))
                    .map(|v| v.trim_start_matches('=').to_string())
            };
            if let Some(v) = value("--kubeconfig", None) {
                t.kubeconfig = Some(v.into());
            } else if let Some(v) = value("--context", None) {
                t.context = Some(v);
            } else if let Some(v) = value("--namespace", Some("-n")) {
                t.namespace = Some(v);
            } else if w == "-A" || w == "--all-namespaces" {
                t.all_namespaces = true;
            }
        }
        t
    }

    fn cluster_args(&self) -> ClusterArgs {
        ClusterArgs {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            request_timeout: Some(LOOKUP_LIMIT),
        }
    }
}

/// Runs `work` against the cluster the line names, on a thread of its
/// own, and gives up after [`LOOKUP_LIMIT`]: an exec plugin or a server
/// that hangs costs the shell two seconds and completes nothing.
fn from_cluster<F, Fut>(work: F) -> Vec<CompletionCandidate>
where
    F: FnOnce(Connection, Typed) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<Vec<CompletionCandidate>>>,
{
    crate::cluster::connect::set_non_interactive();
    let typed = Typed::from_args();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let found = runtime.block_on(async move {
            let lookup = async {
                let conn = crate::commands::connect(&typed.cluster_args()).await.ok()?;
                work(conn, typed).await
            };
            tokio::time::timeout(LOOKUP_LIMIT, lookup)
                .await
                .ok()
                .flatten()
        });
        let _ = tx.send(found);
    });
    rx.recv_timeout(LOOKUP_LIMIT + Duration::from_millis(200))
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn starts_with(current: &OsStr) -> impl Fn(&str) -> bool + '_ {
    move |s: &str| s.starts_with(&*current.to_string_lossy())
}

/// The canaries `canary status` lists, in the namespace of the line (`-n`,
/// else the context's; every namespace with `-A`).
pub(crate) fn canary_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy().into_owned();
    from_cluster(move |conn, typed| async move {
        let namespace = match (typed.all_namespaces, typed.namespace) {
            (true, _) => None,
            (false, Some(ns)) => Some(ns),
            (false, None) => Some(conn.namespace.clone()),
        };
        let all = crate::cluster::status::list(&conn, namespace.as_deref(), None)
            .await
            .ok()?;
        let mut seen = std::collections::BTreeSet::new();
        Some(
            all.into_iter()
                .filter(|c| c.name.starts_with(&prefix))
                .filter(|c| seen.insert(c.name.clone()))
                .map(|c| {
                    let help = format!("{} in {}", c.phase_text(), c.namespace);
                    CompletionCandidate::new(c.name).help(Some(help.into()))
                })
                .collect(),
        )
    })
}

/// The cluster's namespaces.
pub(crate) fn namespaces(current: &OsStr) -> Vec<CompletionCandidate> {
    let prefix = current.to_string_lossy().into_owned();
    from_cluster(move |conn, _| async move {
        let api: Api<Namespace> = Api::all(conn.client.clone());
        let list = api.list(&ListParams::default()).await.ok()?;
        Some(
            list.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .filter(|n| n.starts_with(&prefix))
                .map(CompletionCandidate::new)
                .collect(),
        )
    })
}

/// The contexts of the kubeconfig the line names (`--kubeconfig`, else
/// `KUBECONFIG`, else `~/.kube/config`), with their cluster and
/// namespace. Read from the file alone: no request is made.
pub(crate) fn contexts(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = Typed::from_args();
    let source = crate::commands::config_source(&typed.cluster_args());
    let Some(Ok(kc)) = crate::cluster::connect::read_kubeconfig(&source) else {
        return Vec::new();
    };
    let wanted = starts_with(current);
    kc.contexts
        .iter()
        .filter(|c| wanted(&c.name))
        .map(|c| {
            let help = c.context.as_ref().map(|ctx| {
                let ns = ctx.namespace.as_deref().unwrap_or("default");
                format!("cluster {}, namespace {ns}", ctx.cluster)
            });
            CompletionCandidate::new(&c.name).help(help.map(Into::into))
        })
        .collect()
}

/// The providers `--mesh-provider` takes.
pub(crate) fn providers() -> Vec<CompletionCandidate> {
    Provider::ALL
        .iter()
        .map(|p| {
            let help = if p.capabilities().is_driven() {
                "driven by canary run"
            } else {
                "planned and validated; canary run refuses it"
            };
            CompletionCandidate::new(p.name()).help(Some(help.into()))
        })
        .collect()
}

/// The registration script of `shell`: what `COMPLETE=SHELL canary`
/// prints, calling the binary `canary` on `PATH` back.
pub(crate) fn registration(shell: clap_complete::Shell) -> Vec<u8> {
    use clap_complete::env;
    let completer: &dyn EnvCompleter = match shell {
        clap_complete::Shell::Bash => &env::Bash,
        clap_complete::Shell::Zsh => &env::Zsh,
        clap_complete::Shell::Fish => &env::Fish,
        clap_complete::Shell::PowerShell => &env::Powershell,
        clap_complete::Shell::Elvish => &env::Elvish,
        _ => return Vec::new(),
    };
    let mut buf = Vec::new();
    completer
        .write_registration(VAR, "canary", "canary", "canary", &mut buf)
        .expect("writing to memory");
    buf
}

/// Whether the binary was invoked as kubectl's completer for the plugin.
pub fn is_kubectl_completer(argv0: Option<&OsStr>) -> bool {
    argv0
        .and_then(|a| std::path::Path::new(a).file_stem())
        .is_some_and(|s| s == KUBECTL_COMPLETER)
}

/// Answers kubectl as a Cobra program's `__complete` does: one candidate a
/// line (a tab, then its description), then `:` and the directive (4: no
/// file completion, as the candidates already hold the files; 2 added:
/// no space after a directory). The arguments are the words after
/// `kubectl canary`, the last one being completed.
pub fn kubectl_plugin(args: Vec<OsString>) -> std::process::ExitCode {
    crate::cluster::connect::set_non_interactive();
    let mut line = vec![OsString::from("canary")];
    line.extend(args);
    if line.len() == 1 {
        line.push(OsString::new());
    }
    let index = line.len() - 1;
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let cwd = std::env::current_dir().ok();
    let candidates =
        clap_complete::engine::complete(&mut cmd, line, index, cwd.as_deref()).unwrap_or_default();
    let mut out = String::new();
    let mut directive = 4;
    for c in &candidates {
        let value = c.get_value().to_string_lossy();
        if value.ends_with('/') {
            directive |= 2;
        }
        out.push_str(&value);
        if let Some(help) = c.get_help() {
            let help = help.to_string();
            out.push('\t');
            out.push_str(help.lines().next().unwrap_or_default());
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    let _ = std::io::stdout().write_all(out.as_bytes());
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::Typed;

    fn typed(line: &str) -> Typed {
        let words: Vec<String> = line.split(' ').map(str::to_string).collect();
        Typed::from_words(&words)
    }

    #[test]
    fn the_cluster_flags_typed_so_far_are_read_in_every_spelling() {
        let t = typed("canary status --kubeconfig kc.yaml --context=dev -n prod");
        assert_eq!(
            t.kubeconfig.as_deref(),
            Some(std::path::Path::new("kc.yaml"))
        );
        assert_eq!(t.context.as_deref(), Some("dev"));
        assert_eq!(t.namespace.as_deref(), Some("prod"));
        assert!(!t.all_namespaces);
        let t = typed("canary -- canary abort --kubeconfig=a --namespace staging");
        assert_eq!(t.kubeconfig.as_deref(), Some(std::path::Path::new("a")));
        assert_eq!(t.namespace.as_deref(), Some("staging"));
        assert_eq!(
            typed("canary status -nprod").namespace.as_deref(),
            Some("prod")
        );
        assert!(typed("canary status -A").all_namespaces);
        // A flag given last has no value yet.
        assert_eq!(typed("canary status -n").namespace, None);
        assert_eq!(typed("canary status --no-headers").namespace, None);
    }
}
