//! `canary status`: the canaries, their phase, weight, failed checks and
//! driver; once (exit 1 when one shown has failed, unless `--exit-zero`),
//! as a watch (until Ctrl-C or SIGTERM, exit 0), or until each has a
//! verdict (`--wait`, which exits with the verdict's code).

use std::collections::BTreeMap;
use std::time::Duration;

use super::Interrupts;
use crate::cli::StatusArgs;
use crate::cluster::connect::Connection;
use crate::cluster::error::ClusterError;
use crate::cluster::status::{CanaryStatus, RowKey};
use crate::cluster::workload::Object;
use crate::exit::Outcome;
use crate::ui;
use canary_core::engine::state::Phase;
use canary_core::spec;

/// `canary status`.
pub(super) async fn status(args: StatusArgs) -> Outcome {
    // A malformed template or column is a usage error, found before the
    // cluster is asked anything.
    if let Err(e) = ui::status::Printer::new(&args.output, args.no_headers, false) {
        ui::error(&e);
        return Outcome::Usage;
    }
    // -f FILE: the canaries of the file, by name and the namespace they
    // name, checked before the cluster is asked anything.
    let mut from_file: Option<Vec<(String, Option<String>)>> = None;
    if let Some(path) = &args.file {
        let (files, errors) = super::load_inputs(
            std::slice::from_ref(path),
            args.recursive,
            &spec::Limits::default(),
            true,
        );
        if !errors.is_empty() {
            ui::diagnostics(&errors);
            return Outcome::Usage;
        }
        from_file = Some(
            files
                .iter()
                .flat_map(|f| &f.canaries)
                .map(|d| {
                    let ns = d.value.explicit_namespace().map(str::to_string);
                    (d.value.name().to_string(), ns)
                })
                .collect(),
        );
    }
    let conn = match super::connect(&args.cluster).await {
        Ok(c) => c,
        Err(e) => {
            ui::error(&e.to_string());
            return Outcome::from(&e);
        }
    };
    let default_ns = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| conn.namespace.clone());
    let wanted: Option<Vec<(String, String)>> = from_file.map(|canaries| {
        canaries
            .into_iter()
            .map(|(name, ns)| (name, ns.unwrap_or_else(|| default_ns.clone())))
            .collect()
    });
    let namespace = match &wanted {
        Some(w) if w.iter().all(|(_, ns)| ns == &w[0].1) && !w.is_empty() => Some(w[0].1.clone()),
        Some(_) => None,
        None if args.all_namespaces => None,
        None => Some(default_ns.clone()),
    };
    let keep = |c: &CanaryStatus| match (&wanted, &args.name) {
        (Some(w), _) => w.iter().any(|(n, ns)| n == &c.name && ns == &c.namespace),
        (None, Some(name)) => &c.name == name || &c.target == name,
        (None, None) => true,
    };
    let labels = args.selector.as_deref();
    let mut all = match crate::cluster::status::list(&conn, namespace.as_deref(), labels).await {
        Ok(l) => l,
        Err(e) => {
            ui::error(&e.to_string());
            return Outcome::from(&e);
        }
    };
    all.retain(|c| keep(c));
    let detail = args.name.is_some();
    if let Some(name) = &args.name
        && all.is_empty()
    {
        let where_ = namespace
            .as_ref()
            .map(|n| format!("namespace {n}"))
            .unwrap_or_else(|| "any namespace".to_string());
        let with = labels
            .map(|l| format!(" with labels {l}"))
            .unwrap_or_default();
        ui::error(&format!(
            "no canary named `{name}`{with} in {where_}; `canary status` lists them"
        ));
        return Outcome::Usage;
    }
    if !detail {
        for c in &mut all {
            c.history.clear();
        }
    }
    let all_namespaces = namespace.is_none();
    let printer = match ui::status::Printer::new(&args.output, args.no_headers, all_namespaces) {
        Ok(p) => p,
        Err(e) => {
            ui::error(&e);
            return Outcome::Usage;
        }
    };
    // One object rather than a List: a canary asked for by name, or the
    // one canary of a file (as `kubectl get NAME`, `kubectl get -f`).
    let single = detail || wanted.as_ref().is_some_and(|w| w.len() == 1);
    if !args.watch && !args.wait {
        printer.list(&all, single, detail);
        let failed = all.iter().any(|c| c.phase == Some(Phase::Failed));
        return if failed && !args.exit_zero {
            Outcome::RolledBack
        } else {
            Outcome::Success
        };
    }
    let follow = Follow {
        conn: &conn,
        namespace: namespace.as_deref(),
        labels,
        keep: &keep,
        timeout: args.timeout,
    };
    if args.wait {
        let rows = args.watch.then(|| printer.rows(&all));
        return follow.wait(all, rows).await;
    }
    // `-w NAME` on a terminal: the live view the driver shows.
    let watched = if detail && live_view(&args) {
        let color = ui::output::color(
            ui::output::Mode::Live,
            true,
            std::env::var_os("NO_COLOR").as_deref(),
        );
        let mut view = ui::live::Follow::new(color);
        let show = move |c: &CanaryStatus| {
            view.show((&c.name, &c.namespace), &c.state, &c.history, run_of(c))
        };
        follow.watch(all, Box::new(show), true).await
    } else {
        let mut rows = printer.rows(&all);
        follow
            .watch(all, Box::new(move |c: &CanaryStatus| rows.print(c)), false)
            .await
    };
    match watched {
        Ok(()) => Outcome::Success,
        Err(e) => {
            ui::error(&e.to_string());
            Outcome::from(&e)
        }
    }
}

/// What `-w` and `--wait` follow: the primaries in a namespace (all when
/// `None`) that match the selection.
struct Follow<'a> {
    conn: &'a Connection,
    namespace: Option<&'a str>,
    labels: Option<&'a str>,
    keep: &'a dyn Fn(&CanaryStatus) -> bool,
    timeout: Option<Duration>,
}

/// What the follower hears: a canary changed, one went away (its primary
/// was deleted: reverted), or a second passed.
enum Heard {
    Changed(Box<CanaryStatus>),
    Gone((String, String)),
    Tick,
}

/// Where one canary stands for `--wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// An analysis (or an initialisation, or a revert) under way, or a
    /// change to the target that no driver has picked up yet.
    Pending,
    /// Its verdict, with the line that says it.
    Done(Outcome, String),
}

impl Follow<'_> {
    /// The primaries' changes: a watch of the managed Deployments, and of
    /// the managed DaemonSets (none when the role may not watch them).
    fn events(&self) -> impl futures::Stream<Item = Result<Seen, String>> + Send + use<> {
        use futures::StreamExt;
        use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
        use kube::runtime::watcher;
        let config =
            watcher::Config::default().labels(&crate::cluster::status::selector(self.labels));
        let (deployments, daemonsets): (kube::Api<Deployment>, kube::Api<DaemonSet>) =
            match self.namespace {
                Some(ns) => (
                    kube::Api::namespaced(self.conn.client.clone(), ns),
                    kube::Api::namespaced(self.conn.client.clone(), ns),
                ),
                None => (
                    kube::Api::all(self.conn.client.clone()),
                    kube::Api::all(self.conn.client.clone()),
                ),
            };
        let deployments = kube::runtime::WatchStreamExt::default_backoff(watcher::watcher(
            deployments,
            config.clone(),
        ))
        .map(|e| seen(e, Object::Deployment));
        let daemonsets =
            kube::runtime::WatchStreamExt::default_backoff(watcher::watcher(daemonsets, config))
                .map(|e| seen(e, Object::DaemonSet))
                // A role that may not watch DaemonSets has no DaemonSet canaries
                // to show: that watch is left out, the Deployments' goes on.
                .take_while(|e| {
                    let forbidden =
                        matches!(e, Err(m) if m.contains("403") || m.contains("forbidden"));
                    std::future::ready(!forbidden)
                });
        futures::stream::select(deployments, daemonsets)
    }

    /// `canary status -w`: the table, then one row per change, from a
    /// watch of the primaries. A driver whose lease runs out shows as lost
    /// when it does, without an API call: the lease is in the objects
    /// already seen.
    async fn watch(
        &self,
        first: Vec<CanaryStatus>,
        mut show: Box<dyn FnMut(&CanaryStatus) + Send + '_>,
        every_change: bool,
    ) -> Result<(), ClusterError> {
        for c in &first {
            show(c);
        }
        let mut shown: BTreeMap<(String, String), RowKey> =
            first.iter().map(|c| (key(c), c.row_key())).collect();
        let mut listen = Listener::new(self);
        loop {
            let heard = match listen.next(self).await? {
                Next::Heard(h) => h,
                Next::Ended | Next::Signal(_) => return Ok(()),
            };
            for c in heard.into_iter().filter_map(|h| match h {
                Heard::Changed(c) => Some(*c),
                _ => None,
            }) {
                let row = c.row_key();
                if every_change || shown.get(&key(&c)) != Some(&row) {
                    show(&c);
                    shown.insert(key(&c), row);
                }
            }
        }
    }

    /// `canary status --wait`: follows the canaries until each has a
    /// verdict and exits with the worst; 5 when `--timeout` ends first.
    async fn wait(
        &self,
        first: Vec<CanaryStatus>,
        mut rows: Option<ui::status::StatusRows>,
    ) -> Outcome {
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut latest: BTreeMap<(String, String), CanaryStatus> = BTreeMap::new();
        let mut shown: BTreeMap<(String, String), RowKey> = BTreeMap::new();
        let mut done: BTreeMap<(String, String), (Outcome, String)> = BTreeMap::new();
        // Whether an analysis was seen under way, to tell "promoted" from
        // "nothing was under way".
        let mut saw_active: BTreeMap<(String, String), bool> = BTreeMap::new();
        let mut heard: Vec<Heard> = first
            .into_iter()
            .map(|c| Heard::Changed(Box::new(c)))
            .collect();
        let mut listen = Listener::new(self);
        loop {
            for h in heard.drain(..) {
                match h {
                    Heard::Changed(c) => {
                        let c = *c;
                        let k = key(&c);
                        if c.phase.is_some_and(|p| p.is_active()) {
                            saw_active.insert(k.clone(), true);
                        }
                        if shown.get(&k) != Some(&c.row_key()) {
                            match &mut rows {
                                Some(r) => r.print(&c),
                                None => ui::status::wait_progress(&c),
                            }
                            shown.insert(k.clone(), c.row_key());
                            done.remove(&k);
                        }
                        latest.insert(k.clone(), c);
                    }
                    Heard::Gone(k) => {
                        if latest.remove(&k).is_some() {
                            done.insert(
                                k.clone(),
                                (
                                    Outcome::Success,
                                    format!(
                                        "{}.{}: reverted; canary no longer manages it",
                                        k.1, k.0
                                    ),
                                ),
                            );
                        }
                    }
                    Heard::Tick => {}
                }
            }
            for (k, c) in &latest {
                if done.contains_key(k) {
                    continue;
                }
                match self.standing(c, saw_active.get(k) == Some(&true)).await {
                    Ok(Standing::Done(o, line)) => {
                        done.insert(k.clone(), (o, line));
                    }
                    Ok(Standing::Pending) => {}
                    Err(e) => {
                        ui::error(&e.to_string());
                        return Outcome::from(&e);
                    }
                }
            }
            if latest.keys().all(|k| done.contains_key(k)) {
                let mut outcome = Outcome::Success;
                for (o, line) in done.values() {
                    // With -w the rows are on stdout; the verdict is not one.
                    if rows.is_some() {
                        ui::progress(line);
                    } else {
                        ui::result(line);
                    }
                    outcome = super::run::worst(outcome, *o);
                }
                return outcome;
            }
            let next = match deadline {
                Some(d) => tokio::time::timeout_at(d, listen.next(self)).await.ok(),
                None => Some(listen.next(self).await),
            };
            match next {
                None => {
                    let waiting: Vec<String> = latest
                        .iter()
                        .filter(|(k, _)| !done.contains_key(*k))
                        .map(|(_, c)| {
                            format!(
                                "{}.{} ({}, canary weight {}%)",
                                c.name,
                                c.namespace,
                                c.phase_text(),
                                c.weight
                            )
                        })
                        .collect();
                    ui::error(&format!(
                        "timed out after {} waiting for the verdict of {}; the rollout goes on",
                        humantime::format_duration(self.timeout.unwrap_or_default()),
                        waiting.join(", ")
                    ));
                    return Outcome::TimedOut;
                }
                Some(Ok(Next::Heard(h))) => heard = h,
                Some(Ok(Next::Ended)) => {
                    ui::error("the watch of the canaries ended before a verdict");
                    return Outcome::Cluster;
                }
                Some(Ok(Next::Signal(s))) => {
                    ui::error(&format!(
                        "{} before a verdict; the rollout goes on",
                        s.said()
                    ));
                    return s.outcome();
                }
                Some(Err(e)) => {
                    ui::error(&e.to_string());
                    return Outcome::from(&e);
                }
            }
        }
    }

    /// Where `c` stands. At rest, the target is read: a target changed
    /// since the state's revision is an analysis still to come.
    async fn standing(&self, c: &CanaryStatus, saw_active: bool) -> Result<Standing, ClusterError> {
        let id = format!("{}.{}", c.name, c.namespace);
        let Some(phase) = c.phase else {
            return Err(ClusterError::Refused(format!(
                "the state of {id} cannot be read by this version of canary"
            )));
        };
        let reason = c
            .failure
            .as_ref()
            .map(|f| f.reason.clone())
            .unwrap_or_default();
        let (verdict, line, revision) = match phase {
            Phase::Initialized => (
                Outcome::Success,
                format!("{id}: initialised"),
                &c.promoted_revision,
            ),
            Phase::Succeeded if saw_active => (
                Outcome::Success,
                format!("{id}: promoted"),
                &c.promoted_revision,
            ),
            Phase::Succeeded => (
                Outcome::Success,
                format!("{id}: nothing under way; the target runs the promoted revision"),
                &c.promoted_revision,
            ),
            Phase::Failed => (
                Outcome::RolledBack,
                format!("{id}: rolled back ({reason})"),
                &c.revision,
            ),
            Phase::Aborted => (Outcome::Aborted, format!("{id}: {reason}"), &c.revision),
            Phase::Initializing
            | Phase::Waiting
            | Phase::Progressing
            | Phase::WaitingPromotion
            | Phase::Promoting
            | Phase::Finalising
            | Phase::Terminating => return Ok(Standing::Pending),
        };
        let now =
            crate::cluster::status::target_revision(self.conn, &c.namespace, (c.kind, &c.target))
                .await?;
        Ok(match now {
            // No target: nothing more will happen to it.
            None => Standing::Done(verdict, line),
            Some(r) if Some(&r) == revision.as_ref() => Standing::Done(verdict, line),
            // Back on the promoted revision after a failure: nothing to do.
            Some(r) if Some(&r) == c.promoted_revision.as_ref() => Standing::Done(
                Outcome::Success,
                format!("{id}: nothing under way; the target runs the promoted revision"),
            ),
            Some(_) => Standing::Pending,
        })
    }
}

/// Whether `-w` draws the live view: the table asked for, on a terminal.
fn live_view(args: &StatusArgs) -> bool {
    use std::io::IsTerminal;
    matches!(args.output, crate::cli::StatusFormat::Table)
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
}

/// The rollout of `c` as its `started` event would say it, from the spec
/// its driver stored.
fn run_of(c: &CanaryStatus) -> Option<canary_core::event::RunInfo> {
    let text = serde_json::to_string(c.document.as_ref()?).ok()?;
    let file = spec::load_str("the stored spec", &text).ok()?;
    let canary = file.canaries.first()?;
    let resolved = spec::resolve::resolve(&file, canary, &spec::resolve::Overrides::default());
    Some(crate::driver::run_info(&resolved))
}

fn key(c: &CanaryStatus) -> (String, String) {
    (c.namespace.clone(), c.name.clone())
}

/// The watch of the primaries, with a tick every second (a lease runs out
/// without an event) and Ctrl-C / SIGTERM.
struct Listener {
    events: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Seen, String>> + Send>>,
    seen: BTreeMap<(String, String), Object>,
    tick: tokio::time::Interval,
    interrupts: Interrupts,
}

impl Listener {
    fn new(follow: &Follow<'_>) -> Listener {
        Listener {
            events: Box::pin(follow.events()),
            seen: BTreeMap::new(),
            tick: tokio::time::interval(Duration::from_secs(1)),
            interrupts: Interrupts::new(),
        }
    }

    /// What was heard next.
    async fn next(&mut self, follow: &Follow<'_>) -> Result<Next, ClusterError> {
        use futures::StreamExt;
        let changed = tokio::select! {
                    ev = self.events.next() => match ev {
                        Some(Ok(Seen::Changed(d))) => vec![d],
                        Some(Ok(Seen::Deleted(d))) => {
                            let now = crate::clock::now();
                            return Ok(Next::Heard(
                                crate::cluster::status::of_primary(&d, now)
                                    .filter(|c| (follow.keep)(c))
                                    .map(|c| {
                                        self.seen.remove(&key(&c));
                                        vec![Heard::Gone(key(&c))]
                                    })
                                    .unwrap_or_default(),
                            ));
                        }
                        Some(Ok(Seen::Nothing)) => Vec::new(),
                        Some(Err(e)) => {
                            return Err(ClusterError::Refused(format!(
                                "the watch of the canaries failed: {e}"
                            )));
                        }
                        None => return Ok(Next::Ended),
                    },
                    _ = self.tick.tick() => {
        self.seen.values().cloned().collect()
                    }
                    s = self.interrupts.next() => return Ok(Next::Signal(s)),
                };
        let now = crate::clock::now();
        let mut heard = vec![Heard::Tick];
        for d in changed {
            let Some(c) = crate::cluster::status::of_primary(&d, now) else {
                continue;
            };
            if !(follow.keep)(&c) {
                continue;
            }
            self.seen.insert(key(&c), d);
            heard.push(Heard::Changed(Box::new(c)));
        }
        Ok(Next::Heard(heard))
    }
}

/// One event of the watch of the primaries.
enum Seen {
    Changed(Object),
    Deleted(Object),
    Nothing,
}

fn seen<K>(
    e: Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
    object: fn(K) -> Object,
) -> Result<Seen, String> {
    use kube::runtime::watcher::Event;
    match e {
        Ok(Event::Apply(d) | Event::InitApply(d)) => Ok(Seen::Changed(object(d))),
        Ok(Event::Delete(d)) => Ok(Seen::Deleted(object(d))),
        Ok(_) => Ok(Seen::Nothing),
        Err(e) => Err(e.to_string()),
    }
}

/// What [`Listener::next`] returns.
enum Next {
    Heard(Vec<Heard>),
    /// The watch ended.
    Ended,
    Signal(super::Signal),
}
