//! `canary status`: the canaries, their phase, weight, failed checks and
//! driver, once or as a watch (until Ctrl-C or SIGTERM, exit 0).

use super::Interrupts;
use crate::cli::StatusArgs;
use crate::exit::Outcome;
use crate::ui;
use canary_core::spec;

/// `canary status`.
pub(super) async fn status(args: StatusArgs) -> Outcome {
    // -f FILE: the canaries of the file, by name and the namespace they
    // name, checked before the cluster is asked anything.
    let mut from_file: Option<Vec<(String, Option<String>)>> = None;
    if let Some(path) = &args.file {
        let file = match spec::load_file(path) {
            Ok(f) => f,
            Err(errors) => {
                ui::diagnostics(&errors);
                return Outcome::Usage;
            }
        };
        from_file = Some(
            file.canaries
                .iter()
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
    let keep = |c: &crate::cluster::status::CanaryStatus| match (&wanted, &args.name) {
        (Some(w), _) => w.iter().any(|(n, ns)| n == &c.name && ns == &c.namespace),
        (None, Some(name)) => &c.name == name || &c.target == name,
        (None, None) => true,
    };
    let mut all = match crate::cluster::status::list(&conn, namespace.as_deref()).await {
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
            .map(|n| format!("namespace {n}"))
            .unwrap_or_else(|| "any namespace".to_string());
        ui::error(&format!(
            "no canary named `{name}` in {where_}; `canary status` lists them"
        ));
        return Outcome::Usage;
    }
    if !detail {
        for c in &mut all {
            c.history.clear();
        }
    }
    let all_namespaces = namespace.is_none();
    if !args.watch {
        ui::status(&all, args.output, detail, all_namespaces);
        return Outcome::Success;
    }
    match watch_status(
        &conn,
        namespace.as_deref(),
        all,
        &keep,
        &args,
        all_namespaces,
    )
    .await
    {
        Ok(()) => Outcome::Success,
        Err(e) => {
            ui::error(&e.to_string());
            Outcome::from(&e)
        }
    }
}

/// `canary status -w`: the table, then one row per change, from a watch
/// of the primaries. A driver whose lease runs out shows as lost when it
/// does, without an API call: the lease is in the objects already seen.
async fn watch_status(
    conn: &crate::cluster::connect::Connection,
    namespace: Option<&str>,
    first: Vec<crate::cluster::status::CanaryStatus>,
    keep: &dyn Fn(&crate::cluster::status::CanaryStatus) -> bool,
    args: &StatusArgs,
    all_namespaces: bool,
) -> Result<(), crate::cluster::error::ClusterError> {
    use futures::StreamExt;
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::runtime::watcher;
    let api: kube::Api<Deployment> = match namespace {
        Some(ns) => kube::Api::namespaced(conn.client.clone(), ns),
        None => kube::Api::all(conn.client.clone()),
    };
    let mut rows = ui::StatusRows::new(args.output, all_namespaces, &first);
    let mut seen: std::collections::BTreeMap<(String, String), Deployment> = Default::default();
    for c in &first {
        rows.print(c);
    }
    let mut shown: std::collections::BTreeMap<(String, String), crate::cluster::status::RowKey> =
        first
            .iter()
            .map(|c| ((c.namespace.clone(), c.name.clone()), c.row_key()))
            .collect();
    let config = watcher::Config::default().labels(&crate::cluster::status::selector());
    let mut events = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(
        watcher::watcher(api, config)
    ));
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut interrupts = Interrupts::new();
    loop {
        let changed: Vec<Deployment> = tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d))) => vec![d],
                Some(Ok(_)) => Vec::new(),
                Some(Err(e)) => {
                    return Err(crate::cluster::error::ClusterError::Refused(format!(
                        "the watch of the canaries failed: {e}"
                    )));
                }
                None => return Ok(()),
            },
            _ = tick.tick() => seen.values().cloned().collect(),
            _ = interrupts.next() => return Ok(()),
        };
        let now = crate::clock::now();
        for d in changed {
            let Some(c) = crate::cluster::status::of_primary(&d, now) else {
                continue;
            };
            if !keep(&c) {
                continue;
            }
            let key = (c.namespace.clone(), c.name.clone());
            let row = c.row_key();
            seen.insert(key.clone(), d);
            if shown.get(&key) != Some(&row) {
                rows.print(&c);
                shown.insert(key, row);
            }
        }
    }
}
