//! `canary abort`, `promote`, `pause` and `resume`: an operator's requests
//! to a rollout.
//!
//! The request is checked against the canary's phase first (a clear error,
//! nothing written). With a live driver (a `canary run` holding the lease),
//! it is written to the primary's request annotation; the driver watches
//! the primary, acts on it within a second and clears it, and this command
//! waits for that and says how long it took. With no live driver, `abort`
//! and `promote` do the work themselves, under the lease like any driver,
//! from the spec the last driver stored on the primary (or `-f FILE`);
//! `pause` and `resume` write the state, which the next driver honours.
//!
//! What they need of the stored spec: the target, Service, provider and
//! autoscaler (to route and scale), and of the webhooks only `post-rollout`
//! and `event`, which the end of an abort or a promotion calls: an abort
//! rolls back at once and a promotion skips the rest of the analysis and
//! its gates, so neither runs a check or asks a gate. The stored spec has
//! its credentials masked (see `canary_core::redact`): a reporting hook
//! that lost one is skipped with a warning, and `-f FILE` calls it.

use crate::router::detect::DetectError;
use std::time::Duration;

use crate::cli::ActArgs;
use crate::clock::now;
use crate::cluster::connect::Connection;
use crate::cluster::error::ClusterError;
use crate::cluster::state as statestore;
use crate::cluster::workload::{Kind, Workloads};
use crate::driver::{Driver, RunError, Settings};
use crate::exit::Outcome;
use crate::ui;
use canary_core::engine::decide::{self, RequestKind};
use canary_core::engine::state::{Paused, State};
use canary_core::spec;
use canary_core::spec::resolve::{self, Overrides, ResolvedCanary};
use canary_core::spec::types::MetricTemplate;

/// What an operator asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    Abort,
    Promote,
    Pause,
    Resume,
}

impl Request {
    fn kind(self) -> RequestKind {
        match self {
            Request::Abort => RequestKind::Abort,
            Request::Promote => RequestKind::Promote,
            Request::Pause => RequestKind::Pause,
            Request::Resume => RequestKind::Resume,
        }
    }

    fn verb(self) -> &'static str {
        self.kind().as_str()
    }

    fn done(self) -> &'static str {
        match self {
            Request::Abort => "aborted",
            Request::Promote => "promotion started",
            Request::Pause => "paused",
            Request::Resume => "resumed",
        }
    }
}

/// How long to wait for a live driver to act before saying so: past the
/// end of its lease, so that a driver that is gone is found out first.
const ACK_TIMEOUT: Duration = Duration::from_secs(crate::driver::lease::LEASE.as_secs() + 5);

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActError {
    /// The request makes no sense here; nothing was written.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Run(#[from] RunError),
}

pub(crate) async fn act(request: Request, args: ActArgs) -> Outcome {
    match act_inner(request, args).await {
        Ok(o) => o,
        Err(e) => {
            ui::error(&e.to_string());
            Outcome::from(&e)
        }
    }
}

/// The canary named on the command line: its name, namespace and target,
/// and the spec text from `-f FILE` when given.
pub(super) struct Named {
    pub(super) name: String,
    pub(super) namespace: String,
    pub(super) target: String,
    /// The target's kind, which is the primary's.
    pub(super) kind: Kind,
    pub(super) spec: Option<String>,
}

impl Named {
    /// The calls on the target and its primary.
    pub(super) fn workloads(&self, conn: &Connection) -> Workloads {
        Workloads::new(&conn.client, &self.namespace, self.kind)
    }
}

/// The spec file of `-f`, checked before anything else happens: its
/// text and what it holds.
pub(super) fn load(
    path: &std::path::Path,
    recursive: bool,
) -> Result<(spec::SpecFile, String), ActError> {
    let (mut files, errors) = super::load_inputs(
        &[path.to_path_buf()],
        recursive,
        &spec::Limits::default(),
        true,
    );
    if !errors.is_empty() {
        ui::diagnostics(&errors);
        return Err(ActError::Usage(format!(
            "{}: not a valid spec",
            path.display()
        )));
    }
    // The file of a directory that holds the canaries; several such files
    // are several canaries, refused as one file of several is.
    let with_canaries = files.iter().filter(|f| !f.canaries.is_empty()).count();
    if with_canaries > 1 {
        return Err(ActError::Usage(format!(
            "{}: holds several canaries; name one instead of -f",
            path.display()
        )));
    }
    let at = files
        .iter()
        .position(|f| !f.canaries.is_empty())
        .unwrap_or(0);
    let file = files.swap_remove(at);
    // The text as read and checked, not the file read a second time
    // (which could have changed, or grown past the size limit).
    let text = file.text.clone();
    Ok((file, text))
}

pub(super) async fn find(
    conn: &Connection,
    args: &ActArgs,
    from_file: Option<(spec::SpecFile, String)>,
) -> Result<Named, ActError> {
    let default_ns = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| conn.namespace.clone());
    if let (Some(path), Some((file, text))) = (&args.file, from_file) {
        let doc = match file.canaries.as_slice() {
            [one] => one,
            [] => {
                return Err(ActError::Usage(format!(
                    "{}: holds no Canary document",
                    path.display()
                )));
            }
            _ => {
                return Err(ActError::Usage(format!(
                    "{}: holds several canaries; name one instead of -f",
                    path.display()
                )));
            }
        };
        let overrides = Overrides {
            namespace: Some(default_ns),
            ..Overrides::default()
        };
        let c = resolve::resolve(&file, doc, &overrides);
        let kind = Kind::of(&c.target.kind).ok_or_else(|| {
            ActError::Usage(format!(
                "{}: canary drives Deployments and DaemonSets; {} is a {}",
                path.display(),
                c.target.name,
                c.target.kind
            ))
        })?;
        return Ok(Named {
            name: c.name,
            namespace: c.namespace,
            target: c.target.name,
            kind,
            spec: Some(text),
        });
    }
    let name = args.name.clone().unwrap_or_default();
    let all = crate::cluster::status::list(conn, Some(&default_ns), None).await?;
    let found = all
        .into_iter()
        .find(|c| c.name == name || c.target == name)
        .ok_or_else(|| {
            ActError::Usage(format!(
                "no canary named `{name}` in namespace {default_ns}; `canary status` lists them"
            ))
        })?;
    Ok(Named {
        name: found.name,
        namespace: found.namespace,
        target: found.target,
        kind: found.kind,
        spec: None,
    })
}

async fn act_inner(request: Request, args: ActArgs) -> Result<Outcome, ActError> {
    let from_file = args
        .file
        .as_deref()
        .map(|p| load(p, args.recursive))
        .transpose()?;
    let conn = super::connect(&args.cluster).await?;
    let named = find(&conn, &args, from_file).await?;
    let id = format!("{}.{}", named.name, named.namespace);
    let api = named.workloads(&conn);
    let primary_name = named.kind.primary_name(&named.target);
    let Some(primary) = api.get_primary(&named.target).await? else {
        return Err(ActError::Usage(format!(
            "{id} is not initialised (no {}); `canary run` initialises it",
            api.object(&primary_name)
        )));
    };
    let state = statestore::read(&primary)?.ok_or_else(|| {
        ActError::Usage(format!(
            "{} carries no canary state; `canary run` initialises it",
            api.object(&primary_name)
        ))
    })?;
    request
        .kind()
        .applies(state.phase, state.paused.is_some())
        .map_err(|why| ActError::Usage(format!("cannot {} {id}: {why}", request.verb())))?;

    let me = super::holder();
    let started = std::time::Instant::now();
    if let Some(lease) = state.lease.as_ref().filter(|l| l.is_live(now())) {
        let stored = statestore::StoredRequest {
            action: request.verb().to_string(),
            by: me.clone(),
            at: now(),
        };
        api.write_request(&primary_name, &stored).await?;
        match wait_for_ack(&api, &primary_name, &stored).await? {
            Ack::Acted(state) => {
                ui::result(&format!(
                    "{id}: {} by the running driver ({}) after {} ms; phase {}, canary weight {}%",
                    request.done(),
                    lease.holder,
                    started.elapsed().as_millis(),
                    state.phase.as_str(),
                    state.canary_weight
                ));
                return Ok(Outcome::Success);
            }
            Ack::DriverLost => {
                ui::error(&format!(
                    "{id}: the driver ({}) stopped without acting; acting directly",
                    lease.holder
                ));
                // Done here instead: no later driver should act on it too.
                api.clear_request(&primary_name).await?;
            }
            Ack::Pending => {
                return Err(ActError::Usage(format!(
                    "{id}: the running driver ({}) has not acted on the request within {}s; \
                     it stays on the primary and is acted on when the driver next wakes",
                    lease.holder,
                    ACK_TIMEOUT.as_secs()
                )));
            }
        }
    }
    direct(request, &conn, &named, &id, &me, &args.route).await
}

enum Ack {
    Acted(Box<State>),
    /// The lease ran out with the request still there.
    DriverLost,
    Pending,
}

/// Waits for the driver to clear `stored` from the primary.
async fn wait_for_ack(
    api: &Workloads,
    primary: &str,
    stored: &statestore::StoredRequest,
) -> Result<Ack, ActError> {
    use futures::StreamExt;
    let mut events = api.watch_objects(primary);
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    loop {
        let ev = tokio::select! {
            ev = events.next() => ev,
            _ = tokio::time::sleep_until(deadline) => return Ok(Ack::Pending),
            // The watch only reports changes: look at the lease now and then.
            _ = tokio::time::sleep(Duration::from_secs(2)) => None,
        };
        let p = match ev {
            Some(Some(p)) => p,
            _ => match api.get(primary).await {
                Ok(Some(p)) => p,
                _ => continue,
            },
        };
        let pending = statestore::read_request(&p).as_ref() == Some(stored);
        let state = statestore::read(&p)?;
        if !pending {
            return Ok(Ack::Acted(Box::new(
                state.unwrap_or_else(|| State::new(now())),
            )));
        }
        if state
            .as_ref()
            .and_then(|s| s.lease.as_ref())
            .is_none_or(|l| !l.is_live(now()))
        {
            return Ok(Ack::DriverLost);
        }
    }
}

/// No live driver: do it here.
async fn direct(
    request: Request,
    conn: &Connection,
    named: &Named,
    id: &str,
    me: &str,
    route: &crate::cli::RouteArgs,
) -> Result<Outcome, ActError> {
    let api = named.workloads(conn);
    let primary_name = named.kind.primary_name(&named.target);
    match request {
        Request::Pause | Request::Resume => {
            set_paused(&api, &primary_name, request, me).await?;
            let next = if request == Request::Pause {
                "`canary run` holds the weight until `canary resume`"
            } else {
                "`canary run` continues the analysis"
            };
            ui::result(&format!(
                "{id}: {} (no driver is running: {next})",
                request.done()
            ));
            Ok(Outcome::Success)
        }
        Request::Abort | Request::Promote => {
            let (mut canary, templates) =
                stored_canary(conn, named, id, "no driver is running").await?;
            if named.spec.is_none() {
                skip_masked_hooks(&mut canary, id);
            }
            let settings = Settings {
                holder: me.to_string(),
                route_via: super::route_via(route),
                proxy_allow: super::proxy_allow(&route.proxy_allow),
                ..Settings::default()
            };
            let output = ui::RunOutput::new(ui::output::choose(
                false,
                false,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ));
            let mut driver = Driver::new(conn, canary, templates, &settings, &output)?
                .with_request(decide::Request {
                    kind: request.kind(),
                    by: me.to_string(),
                    at: now(),
                })
                .with_events();
            let verdict = driver.drive().await?;
            let what = match verdict {
                decide::Verdict::Aborted { .. } => {
                    "aborted: all traffic is on the primary and the canary is scaled down"
                }
                decide::Verdict::Promoted => "promoted",
                _ => "nothing was under way",
            };
            ui::result(&format!(
                "{id}: {what} (no driver was running, so this command drove it)"
            ));
            Ok(Outcome::Success)
        }
    }
}

/// The canary as the last driver ran it, from the spec of `-f` or the one
/// stored on the primary, in `named`'s namespace, with its provider
/// detected when the spec names none; and the spec's MetricTemplates.
/// `why` says why the spec is needed, for the error when there is none.
pub(super) async fn stored_canary(
    conn: &Connection,
    named: &Named,
    id: &str,
    why: &str,
) -> Result<(ResolvedCanary, Vec<MetricTemplate>), ActError> {
    let primary_name = named.kind.primary_name(&named.target);
    let text = match &named.spec {
        Some(t) => t.clone(),
        None => {
            let api = named.workloads(conn);
            let p = api.get(&primary_name).await?;
            p.as_ref().and_then(statestore::read_spec).ok_or_else(|| {
                ActError::Usage(format!(
                    "{id}: {why} and {} holds no spec; pass the Canary file with -f FILE",
                    api.object(&primary_name)
                ))
            })?
        }
    };
    let source = format!(
        "{}/{primary_name} annotation {}",
        named.kind.noun(),
        statestore::SPEC_ANNOTATION
    );
    let file = spec::load_str(&source, &text).map_err(|errors| {
        ui::diagnostics(&errors);
        ActError::Usage(format!("{id}: the stored spec is not valid"))
    })?;
    let doc = file
        .canaries
        .first()
        .ok_or_else(|| ActError::Usage(format!("{id}: the spec holds no Canary")))?;
    let mut canary = resolve::resolve(&file, doc, &Overrides::default());
    canary.namespace = named.namespace.clone();
    if canary.provider.is_none() {
        let found = crate::router::detect::detect(&conn.client)
            .await
            .map_err(|e| match e {
                DetectError::Ambiguous(why) => ActError::Usage(why),
                DetectError::Cluster(e) => ActError::Cluster(e),
            })?;
        canary.provider = Some(found.provider);
        canary.provider_source = resolve::ProviderSource::Detected;
    }
    let templates = file
        .metric_templates
        .iter()
        .map(|d| d.value.clone())
        .collect();
    Ok((canary, templates))
}

/// Leaves out the hooks of a stored spec that lost a credential to
/// masking and only report (`post-rollout`, `event`), with a warning
/// each; `-f FILE` calls them. The hooks that decide (gates,
/// `pre-rollout`, `rollout`, `rollback`) are kept: an abort or a promotion
/// calls none of them, and one called anyway fails closed
/// ([`crate::hooks::MASKED_HOOK`]).
fn skip_masked_hooks(canary: &mut ResolvedCanary, id: &str) {
    use canary_core::spec::resolve::HookType;
    canary.webhooks.retain(|h| {
        let skip = matches!(h.kind, HookType::PostRollout | HookType::Event)
            && canary_core::redact::webhook_is_masked(h);
        if skip {
            ui::warning(&format!(
                "{id}: webhook `{}` ({}) is skipped: {}",
                h.name,
                h.kind.as_str(),
                crate::hooks::MASKED_HOOK
            ));
        }
        !skip
    });
}

/// Pauses or resumes by writing the state, guarded by its resourceVersion.
async fn set_paused(
    api: &Workloads,
    primary: &str,
    request: Request,
    me: &str,
) -> Result<(), ActError> {
    api.update_state(primary, 10, |state| {
        let now = now();
        state.paused = match request {
            Request::Pause => Some(Paused {
                by: me.to_string(),
                since: now,
            }),
            _ => None,
        };
        let verb = if request == Request::Pause {
            "Paused"
        } else {
            "Resumed"
        };
        state.record(now, format!("{verb} as requested by {me}"), Vec::new());
        true
    })
    .await?;
    Ok(())
}
