//! What each command's long help (`--help`) and man page say after the
//! options: the exit codes it can return, the environment variables it
//! reads, and examples. One source for both: `cli.rs` renders these as
//! text, `generate.rs` as roff.

use crate::exit::Outcome;

/// An environment variable the program reads, and what for.
pub(crate) struct EnvVar {
    pub name: &'static str,
    pub what: &'static str,
}

/// Every environment variable the program reads.
const KUBECONFIG: EnvVar = EnvVar {
    name: "KUBECONFIG",
    what: "The kubeconfig files to merge, as kubectl does (`:`-separated; files that do not \
           exist are skipped), when --kubeconfig is not given. Unset: ~/.kube/config (under \
           HOME), then, inside a Pod, its service account.",
};
const IN_CLUSTER: EnvVar = EnvVar {
    name: "KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT",
    what: "The API server, with no kubeconfig at all: how a Pod reaches it (Kubernetes sets \
           both in every container).",
};
const LEASE_HOLDER: EnvVar = EnvVar {
    name: "CANARY_LEASE_HOLDER",
    what: "The identity this process drives and acts on canaries as. A CI job retried with the \
           same identity takes its own lease back at once. Unset: inside a Pod its name \
           (POD_NAME, else HOSTNAME); else USER@HOST pid N, or with no USER (USERNAME on \
           Windows) the Pod name in POD_NAME, else HOST pid N.",
};
const MESH_PROVIDER: EnvVar = EnvVar {
    name: "CANARY_MESH_PROVIDER",
    what: "Default of --mesh-provider.",
};
const METRICS_SERVER: EnvVar = EnvVar {
    name: "CANARY_METRICS_SERVER",
    what: "Default of --metrics-server.",
};
const ROUTE_VIA: EnvVar = EnvVar {
    name: "CANARY_ROUTE_VIA",
    what: "Default of --route-via (proxy or direct).",
};
const MAX_INPUT_SIZE: EnvVar = EnvVar {
    name: "CANARY_MAX_INPUT_SIZE",
    what: "Default of --max-input-size.",
};
const PROXY: EnvVar = EnvVar {
    name: "HTTPS_PROXY, HTTP_PROXY, NO_PROXY",
    what: "HTTPS_PROXY: the proxy to the API server when the kubeconfig sets no proxy-url, as \
           with kubectl. HTTPS_PROXY and HTTP_PROXY: the proxies to webhooks and metrics servers \
           reached directly (--route-via direct). NO_PROXY names the hosts reached without one.",
};
const API_PROXY: EnvVar = EnvVar {
    name: "HTTPS_PROXY, NO_PROXY",
    what: "The proxy to the API server when the kubeconfig sets no proxy-url, as with kubectl, \
           unless NO_PROXY names the server.",
};
const PROXY_ALLOW: EnvVar = EnvVar {
    name: "CANARY_PROXY_ALLOW",
    what: "Default of --proxy-allow: the namespaces whose Services webhooks and metrics servers \
           may be reached in, besides the canary's own.",
};
const SLACK: EnvVar = EnvVar {
    name: "CANARY_SLACK_URL, CANARY_SLACK_PROXY_URL, CANARY_SLACK_CHANNEL, CANARY_SLACK_USER",
    what: "Defaults of --slack-url, --slack-proxy-url, --slack-channel and --slack-user: the \
           global notifier, which gets the alerts of every canary without analysis.alerts. The \
           URLs are secrets: never shown.",
};
const MSTEAMS: EnvVar = EnvVar {
    name: "CANARY_MSTEAMS_URL, CANARY_MSTEAMS_PROXY_URL",
    what: "Defaults of --msteams-url and --msteams-proxy-url: a Microsoft Teams global notifier \
           instead of the Slack one.",
};
const NO_COLOR: EnvVar = EnvVar {
    name: "NO_COLOR",
    what: "Set and not empty: no colours on a terminal.",
};
const STEP_SUMMARY: EnvVar = EnvVar {
    name: "GITHUB_STEP_SUMMARY",
    what: "A file to which the summary table is appended in Markdown (GitHub Actions sets it).",
};
const COLUMNS: EnvVar = EnvVar {
    name: "COLUMNS",
    what: "The width of the summary table when standard output is not a terminal (default 120).",
};
const COMPLETE: EnvVar = EnvVar {
    name: "COMPLETE",
    what: "Set to a shell (bash, zsh, fish, elvish, powershell): print that shell's completion \
           script, or, from that script, complete a command line; nothing else runs.",
};

/// What a command's help and man page say beyond its options.
pub(crate) struct Page {
    /// The codes it can return, each with what it means for this command
    /// (`None`: the general meaning, from `exit.rs`).
    pub exit: &'static [(Outcome, Option<&'static str>)],
    pub env: &'static [EnvVar],
    /// A command line and what it does.
    pub examples: &'static [(&'static str, &'static str)],
}

const RUN: Page = Page {
    exit: &[
        (
            Outcome::Success,
            Some("promoted, initialised, or nothing to analyse"),
        ),
        (Outcome::RolledBack, None),
        (Outcome::Usage, None),
        (Outcome::Cluster, None),
        (Outcome::Aborted, None),
        (Outcome::TimedOut, Some("--timeout ended the run first")),
        (Outcome::Interrupted, None),
        (Outcome::Terminated, None),
    ],
    env: &[
        KUBECONFIG,
        IN_CLUSTER,
        LEASE_HOLDER,
        MESH_PROVIDER,
        METRICS_SERVER,
        ROUTE_VIA,
        PROXY_ALLOW,
        SLACK,
        MSTEAMS,
        MAX_INPUT_SIZE,
        PROXY,
        NO_COLOR,
        STEP_SUMMARY,
        COLUMNS,
        COMPLETE,
    ],
    examples: &[
        (
            "canary run examples/podinfo.yaml",
            "Initialise podinfo the first time; later, analyse each new revision to a verdict.",
        ),
        (
            "canary run examples/podinfo.yaml --set-image podinfod=ghcr.io/stefanprodan/podinfo:3.1.1 --timeout 30m",
            "Release a new image and analyse it, rolling back if no verdict comes within 30 minutes.",
        ),
        (
            "canary run -R deploy/ --wait-for-change 15m -o json",
            "Wait up to 15 minutes for a GitOps tool to change the targets, then analyse them, \
             one JSON event a line.",
        ),
    ],
};

const STATUS: Page = Page {
    exit: &[
        (
            Outcome::Success,
            Some(
                "shown (--watch ends so at Ctrl-C or SIGTERM); with --wait, promoted or nothing \
                 under way",
            ),
        ),
        (
            Outcome::RolledBack,
            Some("a canary shown is Failed (rolled back), unless --exit-zero"),
        ),
        (Outcome::Usage, None),
        (Outcome::Cluster, None),
        (
            Outcome::Aborted,
            Some("with --wait: the rollout was aborted"),
        ),
        (
            Outcome::TimedOut,
            Some("with --wait: --timeout ended first"),
        ),
        (
            Outcome::Interrupted,
            Some("with --wait: interrupted before the verdict"),
        ),
        (
            Outcome::Terminated,
            Some("with --wait: terminated by SIGTERM before the verdict"),
        ),
    ],
    env: &[KUBECONFIG, IN_CLUSTER, API_PROXY, COMPLETE],
    examples: &[
        ("canary status -A", "The canaries of every namespace."),
        (
            "canary status podinfo -n prod",
            "One canary, with its step history and metric values.",
        ),
        (
            "canary status podinfo -n prod --wait --timeout 15m",
            "Follow the rollout, whoever drives it, and exit with its verdict.",
        ),
        (
            "canary status -o jsonpath='{.items[*].status.phase}'",
            "The phases alone, as kubectl's JSONPath prints them.",
        ),
    ],
};

const ACT_EXIT: &[(Outcome, Option<&str>)] = &[
    (
        Outcome::Success,
        Some("done, or requested of the running driver"),
    ),
    (Outcome::Usage, None),
    (Outcome::Cluster, None),
];

const ACT_ENV: &[EnvVar] = &[
    KUBECONFIG,
    IN_CLUSTER,
    LEASE_HOLDER,
    ROUTE_VIA,
    PROXY_ALLOW,
    PROXY,
    COMPLETE,
];

/// `abort` and `promote` may drive the canary themselves, and print what
/// they do as `run` does.
const ACT_DRIVING_ENV: &[EnvVar] = &[
    KUBECONFIG,
    IN_CLUSTER,
    LEASE_HOLDER,
    ROUTE_VIA,
    PROXY_ALLOW,
    PROXY,
    NO_COLOR,
    STEP_SUMMARY,
    COLUMNS,
    COMPLETE,
];

const ABORT: Page = Page {
    exit: ACT_EXIT,
    env: ACT_DRIVING_ENV,
    examples: &[
        ("canary abort podinfo -n prod", "Stop podinfo's rollout."),
        (
            "canary abort -f examples/podinfo.yaml",
            "The same, naming the canary by its spec file.",
        ),
    ],
};

const PROMOTE: Page = Page {
    exit: ACT_EXIT,
    env: ACT_DRIVING_ENV,
    examples: &[(
        "canary promote podinfo -n prod",
        "Promote podinfo's canary now, or open its confirm-promotion gate.",
    )],
};

const PAUSE: Page = Page {
    exit: ACT_EXIT,
    env: ACT_ENV,
    examples: &[("canary pause podinfo -n prod", "Hold podinfo's rollout.")],
};

const RESUME: Page = Page {
    exit: ACT_EXIT,
    env: ACT_ENV,
    examples: &[(
        "canary resume podinfo -n prod",
        "Continue podinfo's rollout.",
    )],
};

const REVERT: Page = Page {
    exit: &[
        (Outcome::Success, Some("reverted, or nothing to revert")),
        (Outcome::Usage, None),
        (Outcome::Cluster, None),
        (
            Outcome::Interrupted,
            Some("interrupted; running it again finishes the revert"),
        ),
        (
            Outcome::Terminated,
            Some("terminated by SIGTERM; running it again finishes the revert"),
        ),
    ],
    env: &[KUBECONFIG, IN_CLUSTER, LEASE_HOLDER, API_PROXY, COMPLETE],
    examples: &[(
        "canary revert podinfo -n prod",
        "Give podinfo back and delete what canary made for it.",
    )],
};

const VALIDATE: Page = Page {
    exit: &[
        (Outcome::Success, Some("every file is valid")),
        (
            Outcome::Usage,
            Some(
                "a file has a problem (with --cluster: or the cluster lacks what it needs); each is listed",
            ),
        ),
        (
            Outcome::Cluster,
            Some("with --cluster: the cluster could not be reached or read"),
        ),
    ],
    env: &[
        MAX_INPUT_SIZE,
        KUBECONFIG,
        IN_CLUSTER,
        MESH_PROVIDER,
        METRICS_SERVER,
        ROUTE_VIA,
        PROXY_ALLOW,
        API_PROXY,
        COMPLETE,
    ],
    examples: &[
        ("canary validate examples/podinfo.yaml", "Check one spec."),
        (
            "canary validate --cluster examples/podinfo.yaml",
            "Also make the read-only checks `canary run` makes before any write: the target, \
             its port, templates and Secrets, webhook Services, permissions.",
        ),
        (
            "kubectl kustomize overlays/prod | canary validate -",
            "Check what kustomize renders, from standard input.",
        ),
        (
            "canary validate -R deploy/ -o json",
            "Check a tree, for a machine.",
        ),
    ],
};

const PLAN: Page = Page {
    exit: &[
        (Outcome::Success, None),
        (
            Outcome::Usage,
            Some("the spec has a problem; nothing is shown"),
        ),
    ],
    env: &[MAX_INPUT_SIZE, MESH_PROVIDER, METRICS_SERVER, COMPLETE],
    examples: &[
        (
            "canary plan examples/podinfo.yaml",
            "What podinfo's rollout will do.",
        ),
        (
            "canary plan examples/ab-testing.yaml -o json",
            "An A/B test's plan, as JSON.",
        ),
    ],
};

const DEMO: Page = Page {
    exit: &[
        (
            Outcome::Success,
            Some("the story played; with --serve, stopped by Ctrl-C"),
        ),
        (Outcome::Usage, Some("the --scenario file has a problem")),
        (
            Outcome::Cluster,
            Some("the simulated cluster did not start or did not do what the story needs"),
        ),
    ],
    env: &[NO_COLOR, COLUMNS, COMPLETE],
    examples: &[
        (
            "canary demo",
            "Play a release that is promoted and one that is rolled back.",
        ),
        (
            "canary demo --serve --kubeconfig demo.kubeconfig",
            "Keep the simulated cluster up for other terminals; there, `KUBECONFIG=demo.kubeconfig \
             canary status -n prod` and `kubectl --kubeconfig demo.kubeconfig get pods -n prod`.",
        ),
    ],
};

const COMPLETIONS: Page = Page {
    exit: &[
        (Outcome::Success, None),
        (Outcome::Usage, Some("unknown shell")),
    ],
    env: &[COMPLETE],
    examples: &[
        (
            "source <(COMPLETE=bash canary)",
            "Complete canary in this bash (put it in ~/.bashrc).",
        ),
        (
            "canary completions zsh > \"${fpath[1]}/_canary\"",
            "Install the zsh script once.",
        ),
    ],
};

const CANARY: Page = Page {
    exit: &[
        (Outcome::Success, None),
        (Outcome::RolledBack, None),
        (Outcome::Usage, None),
        (Outcome::Cluster, None),
        (Outcome::Aborted, None),
        (Outcome::TimedOut, None),
        (Outcome::Interrupted, None),
        (Outcome::Terminated, None),
    ],
    env: &[
        KUBECONFIG,
        IN_CLUSTER,
        LEASE_HOLDER,
        MESH_PROVIDER,
        METRICS_SERVER,
        ROUTE_VIA,
        MAX_INPUT_SIZE,
        PROXY,
        NO_COLOR,
        STEP_SUMMARY,
        COLUMNS,
        COMPLETE,
    ],
    examples: &[
        (
            "canary validate examples/podinfo.yaml",
            "Check a spec offline.",
        ),
        (
            "canary plan examples/podinfo.yaml",
            "Show what its rollout will do.",
        ),
        ("canary run examples/podinfo.yaml", "Drive it to a verdict."),
        ("canary status -A", "What every canary is doing."),
    ],
};

/// The page of the command named `name` (`canary` for the program itself).
pub(crate) fn page(name: &str) -> &'static Page {
    match name {
        "run" => &RUN,
        "status" => &STATUS,
        "abort" => &ABORT,
        "promote" => &PROMOTE,
        "pause" => &PAUSE,
        "resume" => &RESUME,
        "revert" => &REVERT,
        "validate" => &VALIDATE,
        "plan" => &PLAN,
        "demo" => &DEMO,
        "completions" => &COMPLETIONS,
        _ => &CANARY,
    }
}

impl Page {
    /// The exit codes with their meaning for this command.
    pub(crate) fn exit_codes(&self) -> impl Iterator<Item = (u8, &'static str)> + '_ {
        self.exit.iter().map(|(o, what)| {
            let general = Outcome::TABLE
                .iter()
                .find(|(t, _)| t == o)
                .map(|(_, w)| *w)
                .unwrap_or_default();
            (o.code(), what.unwrap_or(general))
        })
    }

    /// The page as plain text, after the options of `--help`.
    pub(crate) fn text(&self) -> String {
        let mut out = String::from("Exit status:\n");
        for (code, what) in self.exit_codes() {
            out.push_str(&format!("  {code:<4}{what}\n"));
        }
        out.push_str("\nEnvironment:\n");
        for v in self.env {
            out.push_str(&format!("  {}\n          {}\n", v.name, v.what));
        }
        out.push_str("\nExamples:\n");
        for (line, what) in self.examples {
            out.push_str(&format!("  $ {line}\n          {what}\n"));
        }
        out
    }
}

/// The long help's closing text of the command `name`.
pub(crate) fn after_long_help(name: &str) -> String {
    page(name).text()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example parses as the command line it claims to be.
    #[test]
    fn every_example_is_a_valid_command_line() {
        use clap::Parser as _;
        for name in [
            "canary",
            "run",
            "status",
            "abort",
            "promote",
            "pause",
            "resume",
            "revert",
            "validate",
            "plan",
            "demo",
            "completions",
        ] {
            for (line, _) in page(name).examples {
                // What a pipe feeds or a shell sources is not canary's.
                let line = line.rsplit("| ").next().unwrap();
                if line.starts_with("source ") {
                    continue;
                }
                let line = line.split(" > ").next().unwrap();
                let words = shlex::split(line).expect("an example splits as a shell splits it");
                assert_eq!(words[0], "canary", "{line}");
                if let Err(e) = crate::cli::Cli::try_parse_from(&words) {
                    panic!("{line}: {e}");
                }
                if name != "canary" {
                    assert_eq!(words[1], name, "an example of {name}: {line}");
                }
            }
        }
    }

    #[test]
    fn each_command_lists_only_its_own_exit_codes() {
        let codes = |name: &str| page(name).exit_codes().map(|(c, _)| c).collect::<Vec<_>>();
        assert_eq!(codes("validate"), [0, 2, 3]);
        assert_eq!(codes("plan"), [0, 2]);
        assert_eq!(codes("pause"), [0, 2, 3]);
        assert_eq!(codes("status"), [0, 1, 2, 3, 4, 5, 130, 143]);
        assert!(!codes("revert").contains(&1));
        assert_eq!(codes("canary").len(), Outcome::TABLE.len());
    }
}
