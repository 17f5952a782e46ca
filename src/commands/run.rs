//! `canary run`: every canary of every file driven concurrently to a
//! verdict, with `--timeout`, Ctrl-C and SIGTERM, and `--max-parallel`;
//! the exit code is the worst verdict.

use super::{Interrupts, Signal, block_on, mesh_provider, refusals};
use crate::cli::RunArgs;
use crate::exit::Outcome;
use crate::ui;
use canary_core::provider::Provider;
use canary_core::spec::resolve::{self, Overrides};
use canary_core::spec::{self, SpecFile};

/// `canary run`: every canary of every file, concurrently.
pub(super) fn run(args: RunArgs) -> Outcome {
    let limits = super::spec_limits(args.max_input_size);
    let (files, mut errors) = super::load_inputs(&args.files, args.recursive, &limits, true);
    // Canaries in the same namespace as written are the same wherever the
    // cluster puts the others: refused before connecting.
    let files_ref: Vec<&SpecFile> = files.iter().collect();
    errors.extend(spec::validate::duplicates(&files_ref, None, true));
    if !errors.is_empty() {
        ui::diagnostics(&errors);
        return Outcome::Usage;
    }
    let Ok(mesh_provider) = mesh_provider(args.mesh_provider.as_deref()) else {
        return Outcome::Usage;
    };
    block_on(run_files(args, files, mesh_provider))
}

async fn run_files(
    args: RunArgs,
    files: Vec<SpecFile>,
    mesh_provider: Option<Provider>,
) -> Outcome {
    use crate::cli::OnStop;
    use crate::driver::{Driver, RunError, Settings, Stop};
    use canary_core::engine::decide::Verdict;
    let conn = match super::connect(&args.cluster).await {
        Ok(c) => c,
        Err(e) => {
            ui::error(&e.to_string());
            return Outcome::from(&e);
        }
    };
    let global = match crate::alerts::Global::from_args(&args.alerts) {
        Ok(g) => g,
        Err(e) => {
            ui::error(&e);
            return Outcome::Usage;
        }
    };
    let settings = Settings {
        wait_for_change: args.wait_for_change,
        set_image: args.set_image.clone(),
        retry: args.retry,
        api_retry_window: args.api_retry_window,
        holder: super::holder(),
        route_via: super::route_via(&args.route),
        proxy_allow: super::proxy_allow(&args.route.proxy_allow),
        events: !args.no_events,
    };
    let overrides = Overrides {
        mesh_provider,
        metrics_server: args.metrics_server.clone().filter(|s| !s.is_empty()),
        namespace: Some(
            args.cluster
                .namespace
                .clone()
                .unwrap_or_else(|| conn.namespace.clone()),
        ),
    };
    let mode = ui::output::choose(
        args.output == crate::cli::RunFormat::Json,
        args.quiet,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    let mut options = ui::output::Options::from_env(mode);
    options.full_summary = args.summary == crate::cli::SummaryFormat::Full;
    options.traffic = args.traffic;
    let output = ui::RunOutput::with_options(mode, options);
    // Everything is checked before the first canary is driven: a spec
    // that cannot be carried out changes nothing, not even for the other
    // canaries of the run.
    let mut drives = Vec::new();
    // The watch of each namespace's Deployments, started before the
    // preflight reads the target and the primary from it, and kept for
    // the drivers, which read from it too (`cluster::cache`).
    let mut watching = Vec::new();
    // Canaries that name no namespace land in the context's: only now is
    // it known whether one of them is another of the run.
    let mut refused = spec::validate::duplicates(
        &files.iter().collect::<Vec<_>>(),
        overrides.namespace.as_deref(),
        true,
    );
    for file in &files {
        let templates: Vec<_> = file
            .metric_templates
            .iter()
            .map(|d| d.value.clone())
            .collect();
        // The file's Secrets, which its MetricTemplates' `secretRef` may
        // name.
        let secrets: Vec<k8s_openapi::api::core::v1::Secret> =
            crate::alerts::file_secrets(file).collect();
        for doc in &file.canaries {
            let mut c = resolve::resolve(file, doc, &overrides);
            let mut note = None;
            if c.provider.is_none() {
                match crate::router::detect::detect(&conn.client).await {
                    Ok(found) => {
                        note = Some(format!("Using provider {}: {}", found.provider, found.why));
                        c.provider = Some(found.provider);
                        c.provider_source = resolve::ProviderSource::Detected;
                    }
                    Err(e) => {
                        output.error(&e.to_string());
                        return Outcome::from(&e);
                    }
                }
            }
            refused.extend(refusals(file, doc, &c));
            refused.extend(super::reach_refusals(
                file,
                doc,
                &c,
                settings.proxy_allow.as_deref(),
            ));
            if !c.suspended
                && crate::cluster::workload::Kind::of(&c.target.kind)
                    == Some(crate::cluster::workload::Kind::Deployment)
            {
                watching.push(crate::cluster::cache::Watching::start(&kube::Api::<
                    k8s_openapi::api::apps::v1::Deployment,
                >::namespaced(
                    conn.client.clone(),
                    &c.namespace,
                )));
            }
            // What the cluster holds: read only, every problem collected.
            match crate::cluster::preflight::check(&conn, file, doc, &c, settings.route_via).await {
                Ok(found) => refused.extend(found.problems),
                Err(e) => {
                    output.error(&e.to_string());
                    return Outcome::from(&e);
                }
            }
            let alerts = match crate::alerts::Targets::resolve(&conn, file, &c, &global).await {
                Ok(t) => t,
                Err(e) => {
                    output.error(&e.to_string());
                    return Outcome::from(&e);
                }
            };
            let stored = stored_spec(&doc.value, &c, &templates);
            drives.push((
                c,
                (templates.clone(), secrets.clone()),
                stored,
                note,
                alerts,
            ));
        }
    }

    if !refused.is_empty() {
        ui::diagnostics(&refused);
        return Outcome::Usage;
    }

    crate::driver::release_on_panic();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None::<Stop>);
    let limit = args
        .max_parallel
        .map(|n| n as usize)
        .unwrap_or(drives.len())
        .max(1);
    let slots = tokio::sync::Semaphore::new(limit);
    // Why the run was told to stop, set before the drivers are told: each
    // canary's verdict is reported as soon as that canary is done.
    let stop_cause = std::sync::Mutex::new(None::<Outcome>);
    let file_list = args
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let all = futures::future::join_all(drives.into_iter().map(
        |(c, (templates, secrets), stored, note, alerts)| {
            let (conn, settings, output, slots) = (&conn, &settings, &output, &slots);
            let (stop_cause, file_list) = (&stop_cause, &file_list);
            let stop = stop_rx.clone();
            async move {
                let id = format!("{}.{}", c.name, c.namespace);
                let target = format!("{}/{}", c.target.kind.to_ascii_lowercase(), c.target.name);
                let (namespace, target_name, target_kind) = (
                    c.namespace.clone(),
                    c.target.name.clone(),
                    c.target.kind.clone(),
                );
                let _slot = slots.acquire().await;
                let hint = format!("{} -n {}", c.name, c.namespace);
                let watched = stop.clone();
                crate::driver::hold(
                    conn,
                    &namespace,
                    (&target_kind, &target_name),
                    &settings.holder,
                );
                let (result, state) = if stop.borrow().is_some() {
                    // Stopped before its turn: never started.
                    (Err(RunError::Stopped), None)
                } else {
                    match Driver::new(
                        conn,
                        c,
                        templates,
                        settings,
                        output as &dyn canary_core::event::Reporter,
                    ) {
                        Ok(d) => {
                            let mut d = d
                                .with_secrets(secrets)
                                .with_spec(stored)
                                .with_stop(stop)
                                .with_note(note)
                                .with_alerts(alerts)
                                .with_events();
                            let r = d.drive().await;
                            (r, Some(d.last_shown().0))
                        }
                        Err(e) => (Err(e), None),
                    }
                };
                // Whatever stopped the run short of a verdict (a stop, an API
                // error, a refusal), a lease it holds is given up, so that
                // another run may continue at once; a lease held by another
                // process is left alone.
                if result.is_err()
                    && state.is_some()
                    && let Err(e) = crate::driver::release_lease(
                        conn,
                        &namespace,
                        (&target_kind, &target_name),
                        &settings.holder,
                    )
                    .await
                {
                    output.error(&format!("{id}: could not give up the lease: {e}"));
                }
                crate::driver::unhold(&namespace, &target_name);
                // Whether the stop made this verdict: its own rollback, or the
                // end of a wait for a change. A verdict the analysis reached
                // on its own stands.
                let by_stop = match (&result, watched.borrow().as_ref()) {
                    (Ok(Verdict::RolledBack { reason }), Some(Stop::RollBack(why))) => {
                        reason == why
                    }
                    (Ok(Verdict::NoChange), Some(_)) => settings.wait_for_change.is_some(),
                    _ => false,
                };
                let cause = *stop_cause.lock().expect("not poisoned");
                let (o, result_name, reason) = match (&result, cause) {
                    (Err(RunError::Stopped), Some(c)) => {
                        let why = match c {
                            Outcome::Terminated => "terminated by SIGTERM",
                            _ => "stopped",
                        };
                        let reason = format!(
                            "{why} with the rollout as it was: `canary run {file_list}` resumes \
                         it, `canary abort {hint}` rolls it back"
                        );
                        (c, stop_name(c), Some(reason))
                    }
                    (Ok(v), Some(c)) if by_stop => {
                        let reason = match v {
                            Verdict::RolledBack { reason } => reason.clone(),
                            _ => "stopped before a change came".to_string(),
                        };
                        (c, stop_name(c), Some(reason))
                    }
                    (Ok(v), _) => verdict_outcome(v),
                    (Err(e), _) => {
                        output.error(&format!("{id}: {e}"));
                        (Outcome::from(e), "error", Some(e.to_string()))
                    }
                };
                emit_verdict(output, &id, target, state, o, result_name, reason);
                o
            }
        },
    ));
    tokio::pin!(all);

    // --timeout, Ctrl-C and SIGTERM tell the drivers to stop; they stop between two
    // effects (every round is idempotent, so what is left resumes).
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut cause: Option<Outcome> = None;
    let mut interrupts = Interrupts::new();
    let outcomes = loop {
        tokio::select! {
            outcomes = &mut all => break outcomes,
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            }, if cause.is_none() => {
                let t = humantime::format_duration(args.timeout.unwrap_or_default());
                cause = Some(Outcome::TimedOut);
                *stop_cause.lock().expect("not poisoned") = cause;
                let stop = match args.on_timeout {
                    OnStop::Rollback => Stop::RollBack(format!("timed out after {t}")),
                    OnStop::Leave => Stop::Leave,
                };
                output.error(&format!("timed out after {t}; {}", match stop {
                    Stop::Leave => "leaving rollouts under way as they are",
                    Stop::RollBack(_) => "rolling back rollouts under analysis",
                }));
                let _ = stop_tx.send(Some(stop));
            }
            signal = interrupts.next() => {
                if matches!(cause, Some(Outcome::Interrupted | Outcome::Terminated)) {
                    output.notice(&format!("{} again: exiting now", signal.said()));
                    crate::driver::release_all_held(std::time::Duration::from_millis(500));
                    return signal.outcome();
                }
                cause = Some(signal.outcome());
                *stop_cause.lock().expect("not poisoned") = cause;
                let stop = match args.on_interrupt {
                    OnStop::Rollback => Stop::RollBack(signal.said().to_string()),
                    OnStop::Leave => Stop::Leave,
                };
                let again = match signal {
                    Signal::Interrupt => "Ctrl-C again to exit at once",
                    Signal::Terminate => "a second signal exits at once",
                };
                output.stopping(&match stop {
                    Stop::Leave => format!("{}: stopping, the state is kept ({again})", signal.said()),
                    Stop::RollBack(_) => format!("{}: rolling back ({again})", signal.said()),
                });
                let _ = stop_tx.send(Some(stop));
            }
        }
    };

    let outcome = outcomes.into_iter().fold(Outcome::Success, worst);
    output.finish();
    outcome
}

/// Reports how a run ended for canary `id` (`name.namespace`), with the
/// state its driver last showed.
pub(crate) fn emit_verdict(
    output: &dyn canary_core::event::Reporter,
    id: &str,
    target: String,
    state: Option<canary_core::engine::state::State>,
    o: Outcome,
    result: &str,
    reason: Option<String>,
) {
    let (name, namespace) = id.split_once('.').unwrap_or((id, ""));
    let state =
        state.unwrap_or_else(|| canary_core::engine::state::State::new(crate::clock::now()));
    let mut e = canary_core::event::Event::new(
        canary_core::event::Kind::Verdict,
        crate::clock::now(),
        name,
        namespace,
        &state,
    );
    e.message = Some(target);
    e.outcome = Some(canary_core::event::OutcomeInfo {
        result: result.to_string(),
        exit_code: o.code(),
        reason,
    });
    output.emit(&e);
}

/// The outcome, its name in events, and its reason, for a verdict.
pub(crate) fn verdict_outcome(
    v: &canary_core::engine::decide::Verdict,
) -> (Outcome, &'static str, Option<String>) {
    use canary_core::engine::decide::Verdict;
    let (name, reason) = match v {
        Verdict::Initialized => ("initialized", None),
        Verdict::NoChange => ("noChange", None),
        Verdict::Promoted => ("promoted", None),
        Verdict::RolledBack { reason } => ("rolledBack", Some(reason.clone())),
        Verdict::AlreadyFailed(f) => (
            "alreadyFailed",
            Some(format!("at {}: {}", f.time.to_rfc3339(), f.reason)),
        ),
        Verdict::Aborted { by } => ("aborted", Some(format!("aborted by {by}"))),
        Verdict::Suspended => (
            "suspended",
            Some("spec.suspend is set: nothing was initialised or analysed".to_string()),
        ),
    };
    (Outcome::from(v), name, reason)
}

/// The `result` of a stopped run's verdict event; SIGTERM is an
/// interruption too (its exit code tells it apart).
fn stop_name(o: Outcome) -> &'static str {
    match o {
        Outcome::TimedOut => "timedOut",
        _ => "interrupted",
    }
}

/// The Canary document as a driver ran it, with its namespace, provider
/// and metrics server resolved, followed by the file's MetricTemplates:
/// what `abort` and `promote` need to act with no spec file at hand. It
/// is stored on the primary, where whoever reads Deployments reads it, so
/// its credentials are masked ([`canary_core::redact::mask_canary`]).
fn stored_spec(
    doc: &spec::types::Canary,
    c: &resolve::ResolvedCanary,
    templates: &[spec::types::MetricTemplate],
) -> String {
    let mut doc = doc.clone();
    doc.status = None;
    let meta = doc.metadata.get_or_insert_with(Default::default);
    meta.namespace = Some(c.namespace.clone());
    let spec = doc.spec.get_or_insert_with(Default::default);
    spec.provider = c.provider.map(|p| p.name().to_string());
    if c.metrics_server.is_some() {
        spec.metrics_server = c.metrics_server.clone();
    }
    canary_core::redact::mask_canary(&mut doc);
    let mut parts = vec![serde_json::to_string(&doc).expect("specs serialize")];
    for t in templates {
        let mut t = t.clone();
        canary_core::redact::mask_template(&mut t);
        parts.push(serde_json::to_string(&t).expect("specs serialize"));
    }
    parts.join("\n---\n")
}

/// The outcome that matters most when several canaries ran.
pub(super) fn worst(a: Outcome, b: Outcome) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Success => 0,
        Outcome::RolledBack => 3,
        Outcome::Usage => 2,
        Outcome::Cluster => 4,
        Outcome::Aborted => 1,
        Outcome::TimedOut => 1,
        Outcome::Interrupted | Outcome::Terminated => 5,
    };
    if rank(b) > rank(a) { b } else { a }
}
