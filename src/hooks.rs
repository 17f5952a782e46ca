//! Flagger's webhooks, called from outside the cluster.
//!
//! Semantics are Flagger's (fluxcd/flagger `pkg/controller/webhook.go`,
//! `scheduler_hooks.go`, `events.go`, the `runAnalysis` part of
//! `scheduler.go`, and `CanaryWebhookPayload` in
//! `pkg/apis/flagger/v1beta1/canary.go`):
//!
//! * Every hook is an HTTP `POST` of `Content-Type: application/json` with
//!   the payload `{"name", "namespace", "phase", "checksum", "metadata"}`;
//!   `metadata` is the hook's own map and is left out when empty. `checksum`
//!   identifies the revision under analysis (Flagger hashes
//!   `lastAppliedSpec` and the tracked configs).
//! * Success is a final status of at most 202 (`r.StatusCode > 202` fails,
//!   so 203 and 204 count as failures). Anything else, or no answer, is a
//!   failure whose text is the answer's body in Flagger; here it is
//!   `HTTP <status>: <body excerpt>` or the transport error.
//! * `timeout` bounds each attempt, 10s by default. `retries` is
//!   go-retryablehttp's `RetryMax`: that many more attempts after the first,
//!   only when the attempt failed to connect or timed out, or answered 429
//!   or 5xx other than 501; the wait before retry `n` (from 0) is
//!   `1s * 2^n`, at most 30s, or the `Retry-After` seconds of a 429/503.
//!   A refusal (403, 400...) is never retried.
//! * `disableTLS` skips certificate verification of an `https` hook.
//! * `muteAlert` only silences the alert Flagger sends while a gate is
//!   closed; it is carried in [`HookFailure`] for the alerting code.
//!
//! Per type (hooks of one type are called in spec order, one at a time):
//!
//! | type | phase Flagger sends | outcome |
//! |------|--------------------|---------|
//! | `confirm-rollout` | the canary's current phase | gate: open when every hook succeeds; the first failure closes it and later hooks are not called |
//! | `confirm-traffic-increase`, `confirm-promotion` | `Progressing` | gate, as above |
//! | `pre-rollout` | `Progressing` | the first failure fails the check (later hooks not called) |
//! | `rollout` (or no type) | `Progressing` | as pre-rollout, run before the metrics at every check |
//! | `rollback` | the current phase (`Progressing`, `Waiting`, `WaitingPromotion`) | roll back when any hook succeeds; the first success stops the loop |
//! | `post-rollout` | `Succeeded` or `Failed` | reported only; Flagger stops at the first failure |
//! | `event` | the current phase | reported only; every hook gets every event, with `eventMessage`, `eventType` (`Normal`/`Warning`) and `timestamp` (Unix ms) added to `metadata` (the hook's own keys never override them) |
//!
//! A hook of a spec read back from the cluster whose URL or metadata had
//! credentials masked when it was stored
//! ([`canary_core::redact::webhook_is_masked`]) is never called: the call
//! fails at once with [`MASKED_HOOK`], so a gate stays closed and a check
//! fails rather than a webhook getting `***` for its token.
//!
//! The caller passes the canary's current phase; for the types Flagger
//! always calls with `Progressing`, [`Hooks`] sends `Progressing`
//! ([`flagger_phase`]).

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use http::header::{CONTENT_TYPE, HeaderValue};
use serde::Serialize;

use crate::cluster::proxy::{
    EXCERPT_LEN, HttpEdge, HttpReply, HttpRequest, excerpt, status_is_retryable,
};
use canary_core::engine::decide::HookOutcome;
use canary_core::spec::resolve::{HookType, ResolvedCanary, ResolvedWebhook};

/// Why a hook whose credentials were masked in the stored spec is not
/// called.
pub(crate) const MASKED_HOOK: &str = "its URL or metadata was stored with the credentials masked; \
     pass the Canary file with -f FILE to call it";

/// The body Flagger posts to a webhook (`CanaryWebhookPayload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    pub checksum: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Waits between retries: go-retryablehttp's exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryWait {
    pub min: Duration,
    pub max: Duration,
}

impl Default for RetryWait {
    /// go-retryablehttp's `RetryWaitMin` and `RetryWaitMax`, which Flagger
    /// keeps.
    fn default() -> Self {
        RetryWait {
            min: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl RetryWait {
    /// The wait before retry `attempt` (0 for the first retry).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.checked_pow(attempt).unwrap_or(u32::MAX);
        self.min
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// A hook that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFailure {
    pub hook: String,
    pub reason: String,
    /// The hook's `muteAlert`: no alert for this failure.
    pub mute_alert: bool,
    /// The hook could not be reached (the service proxy or the connection
    /// failed, see [`crate::cluster::proxy::EdgeError::is_unreachable`]):
    /// no verdict of the hook's.
    pub unreachable: bool,
}

/// Why one hook call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    pub reason: String,
    /// Whether the way to the hook failed rather than the hook.
    pub unreachable: bool,
}

/// The webhooks of one canary.
pub struct Hooks<'a> {
    edge: &'a HttpEdge,
    canary: &'a ResolvedCanary,
    wait: RetryWait,
}

impl<'a> Hooks<'a> {
    pub fn new(edge: &'a HttpEdge, canary: &'a ResolvedCanary) -> Self {
        Hooks {
            edge,
            canary,
            wait: RetryWait::default(),
        }
    }

    pub fn with_retry_wait(mut self, wait: RetryWait) -> Self {
        self.wait = wait;
        self
    }

    /// The payload for `hook`; `event` is `(eventType, eventMessage)` for
    /// `event` hooks.
    pub fn payload(
        &self,
        hook: &ResolvedWebhook,
        phase: &str,
        checksum: &str,
        event: Option<(&str, &str)>,
    ) -> Payload {
        let mut metadata = BTreeMap::new();
        if let Some((kind, message)) = event {
            metadata.insert("eventMessage".to_string(), message.to_string());
            metadata.insert("eventType".to_string(), kind.to_string());
            metadata.insert("timestamp".to_string(), crate::clock::now().0.to_string());
        }
        for (k, v) in &hook.metadata {
            metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Payload {
            name: self.canary.name.clone(),
            namespace: self.canary.namespace.clone(),
            phase: flagger_phase(hook.kind, phase).to_string(),
            checksum: checksum.to_string(),
            metadata,
        }
    }

    /// Calls one hook with its timeout and retries; `Err` is the reason it
    /// failed.
    pub async fn call(&self, hook: &ResolvedWebhook, payload: &Payload) -> Result<(), String> {
        self.call_hook(hook, payload).await.map_err(|f| f.reason)
    }

    /// [`Self::call`], telling a hook that failed from one that could not
    /// be reached.
    pub async fn call_hook(
        &self,
        hook: &ResolvedWebhook,
        payload: &Payload,
    ) -> Result<(), CallFailure> {
        if canary_core::redact::webhook_is_masked(hook) {
            // From a stored spec, whose credentials were masked: calling
            // it would send `***`. Fails closed: a gate stays closed.
            return Err(CallFailure {
                reason: MASKED_HOOK.to_string(),
                unreachable: false,
            });
        }
        let body = serde_json::to_vec(payload).map_err(|e| CallFailure {
            reason: format!("failed to encode the payload: {e}"),
            unreachable: false,
        })?;
        let mut attempt: u32 = 0;
        loop {
            let mut req = HttpRequest::new(Method::POST, &hook.url, hook.timeout);
            req.namespace = Some(&self.canary.namespace);
            req.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            req.body = Some(body.clone());
            req.insecure_skip_verify = hook.disable_tls;
            req.long = true;
            let (reason, retryable, retry_after, unreachable) = match self.edge.send(req).await {
                Ok(reply) if reply.status <= 202 => return Ok(()),
                Ok(reply) => {
                    let (reason, retryable, after) = refusal(&reply);
                    (reason, retryable, after, false)
                }
                Err(e) => (e.to_string(), e.is_retryable(), None, e.is_unreachable()),
            };
            if !retryable || attempt >= hook.retries {
                let reason = if attempt > 0 {
                    format!("{reason} (after {} attempts)", attempt + 1)
                } else {
                    reason
                };
                return Err(CallFailure {
                    reason,
                    unreachable,
                });
            }
            tokio::time::sleep(retry_after.unwrap_or_else(|| self.wait.backoff(attempt))).await;
            attempt += 1;
        }
    }

    /// Whether every gate of type `kind` is open (Flagger's
    /// `runConfirm*Hooks`); no hooks of the type is an open gate.
    pub async fn gate(&self, kind: HookType, phase: &str, checksum: &str) -> bool {
        self.check_gate(kind, phase, checksum).await.is_ok()
    }

    /// [`Self::gate`] with the first closed gate and why.
    pub async fn check_gate(
        &self,
        kind: HookType,
        phase: &str,
        checksum: &str,
    ) -> Result<(), HookFailure> {
        self.run_until_failure(kind, phase, checksum).await
    }

    /// Whether a rollback hook asks to roll back: the first one that
    /// succeeds does (Flagger's `runRollbackHooks`).
    pub async fn rollback_requested(&self, phase: &str, checksum: &str) -> bool {
        for hook in self.canary.hooks(HookType::Rollback) {
            let payload = self.payload(hook, phase, checksum, None);
            if self.call(hook, &payload).await.is_ok() {
                return true;
            }
        }
        false
    }

    /// Runs the hooks of `kind` (pre-rollout, rollout) in order; the first
    /// failure fails the step.
    pub async fn run(&self, kind: HookType, phase: &str, checksum: &str) -> HookOutcome {
        match self.run_until_failure(kind, phase, checksum).await {
            Ok(()) => HookOutcome::Passed,
            Err(f) if f.unreachable => HookOutcome::Unreachable {
                hook: f.hook,
                reason: f.reason,
            },
            Err(f) => HookOutcome::Failed {
                hook: f.hook,
                reason: f.reason,
            },
        }
    }

    /// Fires `post-rollout` or `event` hooks and returns warnings for those
    /// that failed; never fails the run. Post-rollout hooks stop at the
    /// first failure, as in Flagger; every event hook is called.
    pub async fn notify(
        &self,
        kind: HookType,
        phase: &str,
        checksum: &str,
        event: Option<(&str, &str)>,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        for hook in self.canary.hooks(kind) {
            let event = if kind == HookType::Event { event } else { None };
            let payload = self.payload(hook, phase, checksum, event);
            if let Err(reason) = self.call(hook, &payload).await {
                if kind == HookType::Event {
                    warnings.push(format!(
                        "failed to send the event to webhook {}: {reason}",
                        hook.name
                    ));
                    continue;
                }
                warnings.push(format!(
                    "{} hook {} failed {reason}",
                    capitalised(kind.as_str()),
                    hook.name
                ));
                if kind == HookType::PostRollout {
                    break;
                }
            }
        }
        warnings
    }

    async fn run_until_failure(
        &self,
        kind: HookType,
        phase: &str,
        checksum: &str,
    ) -> Result<(), HookFailure> {
        for hook in self.canary.hooks(kind) {
            let payload = self.payload(hook, phase, checksum, None);
            if let Err(f) = self.call_hook(hook, &payload).await {
                return Err(HookFailure {
                    hook: hook.name.clone(),
                    reason: f.reason,
                    mute_alert: hook.mute_alert,
                    unreachable: f.unreachable,
                });
            }
        }
        Ok(())
    }
}

/// The phase Flagger puts in the payload of a `kind` hook when the
/// canary is in `current`: `Progressing` for pre-rollout, rollout,
/// confirm-traffic-increase and confirm-promotion hooks, `current` for the
/// others (confirm-rollout, rollback, post-rollout, event).
pub(crate) fn flagger_phase(kind: HookType, current: &str) -> &str {
    match kind {
        HookType::PreRollout
        | HookType::Rollout
        | HookType::ConfirmTrafficIncrease
        | HookType::ConfirmPromotion => "Progressing",
        HookType::ConfirmRollout | HookType::Rollback | HookType::PostRollout | HookType::Event => {
            current
        }
    }
}

/// Why an answer is a failure, whether to retry it, and when.
fn refusal(reply: &HttpReply) -> (String, bool, Option<Duration>) {
    let body = excerpt(&reply.body, EXCERPT_LEN);
    let reason = if body.is_empty() {
        format!("HTTP {}", reply.status)
    } else {
        format!("HTTP {}: {body}", reply.status)
    };
    let retry_after = match reply.status {
        429 | 503 => reply.retry_after,
        _ => None,
    };
    (reason, status_is_retryable(reply.status), retry_after)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::State;
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use super::*;
    use canary_core::spec::resolve::{Overrides, resolve};

    /// What the test server received, and what it answers next.
    #[derive(Default)]
    struct Receiver {
        calls: Mutex<Vec<(String, Value)>>,
        /// Per path: statuses to answer in turn (the last one repeats).
        script: Mutex<BTreeMap<String, Vec<u16>>>,
        /// Paths that hang for this long before answering.
        delay: Mutex<BTreeMap<String, Duration>>,
    }

    impl Receiver {
        fn answer(&self, path: &str, statuses: &[u16]) {
            self.script
                .lock()
                .unwrap()
                .insert(path.to_string(), statuses.to_vec());
        }

        fn calls_to(&self, path: &str) -> usize {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, _)| p == path)
                .count()
        }

        fn bodies(&self) -> Vec<(String, Value)> {
            self.calls.lock().unwrap().clone()
        }
    }

    async fn handler(
        State(r): State<Arc<Receiver>>,
        uri: axum::http::Uri,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> (StatusCode, [(&'static str, &'static str); 1], String) {
        let path = uri.path().to_string();
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert_eq!(ct, "application/json");
        let v: Value = serde_json::from_str(&body).expect("payload is JSON");
        r.calls.lock().unwrap().push((path.clone(), v));
        let delay = r.delay.lock().unwrap().get(&path).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let status = {
            let mut script = r.script.lock().unwrap();
            match script.get_mut(&path) {
                Some(s) if s.len() > 1 => s.remove(0),
                Some(s) => s[0],
                None => 200,
            }
        };
        let text = match status {
            200..=299 => "ok".to_string(),
            403 => "Forbidden: gate closed\n".to_string(),
            _ => format!("status {status}"),
        };
        (
            StatusCode::from_u16(status).unwrap(),
            [("retry-after", "0")],
            text,
        )
    }

    async fn serve() -> (String, Arc<Receiver>) {
        let r = Arc::new(Receiver::default());
        let app = Router::new().fallback(handler).with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, r)
    }

    fn hook(name: &str, kind: HookType, url: String) -> ResolvedWebhook {
        ResolvedWebhook {
            name: name.to_string(),
            kind,
            url,
            timeout: Duration::from_secs(5),
            retries: 0,
            mute_alert: false,
            disable_tls: false,
            metadata: BTreeMap::new(),
        }
    }

    /// The seed example (podinfo, moved to namespace test) with `webhooks` instead of its own.
    fn canary(webhooks: Vec<ResolvedWebhook>) -> ResolvedCanary {
        let file =
            canary_core::spec::load_str("podinfo.yaml", include_str!("../examples/podinfo.yaml"))
                .expect("the example is valid");
        let mut c = resolve(&file, &file.canaries[0], &Overrides::default());
        c.namespace = "test".to_string();
        c.webhooks = webhooks;
        c
    }

    const FAST: RetryWait = RetryWait {
        min: Duration::from_millis(10),
        max: Duration::from_millis(40),
    };

    #[tokio::test]
    async fn a_hook_stored_with_masked_credentials_is_never_called_and_closes_its_gate() {
        let (base, r) = serve().await;
        let port = base.rsplit(':').next().unwrap();
        let masked = [
            format!("http://***@127.0.0.1:{port}/open"),
            format!("{base}/open?token=***"),
        ];
        for url in masked {
            let c = canary(vec![hook("gate", HookType::ConfirmPromotion, url.clone())]);
            let edge = HttpEdge::direct_only("test").unwrap();
            let hooks = Hooks::new(&edge, &c);
            let e = hooks
                .call(
                    &c.webhooks[0],
                    &hooks.payload(&c.webhooks[0], "Progressing", "x", None),
                )
                .await
                .unwrap_err();
            assert_eq!(e, MASKED_HOOK, "{url}");
            assert!(
                !hooks
                    .gate(HookType::ConfirmPromotion, "Progressing", "x")
                    .await
            );
        }
        let mut h = hook("event", HookType::Event, format!("{base}/open"));
        h.metadata.insert("token".to_string(), "***".to_string());
        let c = canary(vec![h]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let hooks = Hooks::new(&edge, &c);
        assert!(
            hooks
                .call(
                    &c.webhooks[0],
                    &hooks.payload(&c.webhooks[0], "Progressing", "x", None)
                )
                .await
                .is_err()
        );
        assert_eq!(r.calls_to("/open"), 0, "no request was sent");
    }

    #[tokio::test]
    async fn the_payload_is_flaggers_with_metadata_and_checksum() {
        let (base, r) = serve().await;
        let mut h = hook("load test", HookType::Rollout, format!("{base}/"));
        h.metadata.insert("type".to_string(), "cmd".to_string());
        h.metadata.insert(
            "cmd".to_string(),
            "hey -z 1m http://podinfo-canary.test:9898/".to_string(),
        );
        let plain = hook("plain", HookType::Rollout, format!("{base}/plain"));
        let c = canary(vec![h, plain]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let out = Hooks::new(&edge, &c)
            .run(HookType::Rollout, "Progressing", "abc123")
            .await;
        assert_eq!(out, HookOutcome::Passed);
        let bodies = r.bodies();
        assert_eq!(
            bodies[0].1,
            json!({
                "name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc123",
                "metadata": {"cmd": "hey -z 1m http://podinfo-canary.test:9898/", "type": "cmd"}
            })
        );
        // Field order as Go marshals the struct; no metadata key when empty.
        let raw = serde_json::to_string(&Hooks::new(&edge, &c).payload(
            &c.webhooks[1],
            "Progressing",
            "abc123",
            None,
        ))
        .unwrap();
        assert_eq!(
            raw,
            r#"{"name":"podinfo","namespace":"test","phase":"Progressing","checksum":"abc123"}"#
        );
        assert_eq!(
            bodies[1].1,
            json!({"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "abc123"})
        );
    }

    #[test]
    fn the_payload_phase_is_the_one_flagger_sends_for_the_type() {
        let edge = HttpEdge::direct_only("test").unwrap();
        let c = canary(Vec::new());
        let hooks = Hooks::new(&edge, &c);
        for (kind, current, sent) in [
            (HookType::PreRollout, "Waiting", "Progressing"),
            (HookType::Rollout, "WaitingPromotion", "Progressing"),
            (
                HookType::ConfirmPromotion,
                "WaitingPromotion",
                "Progressing",
            ),
            (
                HookType::ConfirmTrafficIncrease,
                "Progressing",
                "Progressing",
            ),
            (HookType::ConfirmRollout, "Waiting", "Waiting"),
            (HookType::Rollback, "WaitingPromotion", "WaitingPromotion"),
            (HookType::PostRollout, "Failed", "Failed"),
            (HookType::Event, "Promoting", "Promoting"),
        ] {
            let h = hook("h", kind, "http://x/".to_string());
            assert_eq!(
                hooks.payload(&h, current, "c", None).phase,
                sent,
                "{kind:?}"
            );
        }
    }

    #[tokio::test]
    async fn statuses_up_to_202_succeed_and_203_or_204_fail() {
        let (base, r) = serve().await;
        let edge = HttpEdge::direct_only("test").unwrap();
        for (status, ok) in [
            (200, true),
            (201, true),
            (202, true),
            (203, false),
            (204, false),
            (400, false),
        ] {
            r.answer("/s", &[status]);
            let c = canary(vec![hook("h", HookType::PreRollout, format!("{base}/s"))]);
            let out = Hooks::new(&edge, &c)
                .run(HookType::PreRollout, "Progressing", "x")
                .await;
            assert_eq!(out == HookOutcome::Passed, ok, "status {status}: {out:?}");
        }
    }

    #[tokio::test]
    async fn the_first_failing_pre_rollout_hook_fails_the_step_with_its_reason() {
        let (base, r) = serve().await;
        r.answer("/bad", &[403]);
        let c = canary(vec![
            hook("ok", HookType::PreRollout, format!("{base}/ok")),
            hook("acceptance", HookType::PreRollout, format!("{base}/bad")),
            hook("never", HookType::PreRollout, format!("{base}/never")),
        ]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let out = Hooks::new(&edge, &c)
            .run(HookType::PreRollout, "Progressing", "x")
            .await;
        assert_eq!(
            out,
            HookOutcome::Failed {
                hook: "acceptance".to_string(),
                reason: "HTTP 403: Forbidden: gate closed".to_string()
            }
        );
        assert_eq!(r.calls_to("/never"), 0);
    }

    #[tokio::test]
    async fn gates_are_closed_by_a_refusal_an_error_or_a_timeout() {
        let (base, r) = serve().await;
        r.answer("/refuse", &[403]);
        r.answer("/broken", &[500]);
        r.delay
            .lock()
            .unwrap()
            .insert("/slow".to_string(), Duration::from_secs(5));
        let edge = HttpEdge::direct_only("test").unwrap();
        for path in ["/refuse", "/broken", "/slow"] {
            let mut h = hook("gate", HookType::ConfirmPromotion, format!("{base}{path}"));
            h.timeout = Duration::from_millis(200);
            h.mute_alert = true;
            let c = canary(vec![
                hook("open", HookType::ConfirmPromotion, format!("{base}/open")),
                h,
            ]);
            let hooks = Hooks::new(&edge, &c);
            assert!(
                !hooks
                    .gate(HookType::ConfirmPromotion, "Progressing", "x")
                    .await,
                "{path}"
            );
            let f = hooks
                .check_gate(HookType::ConfirmPromotion, "Progressing", "x")
                .await
                .unwrap_err();
            assert_eq!(f.hook, "gate");
            assert!(f.mute_alert);
            if path == "/slow" {
                assert!(f.reason.contains("no answer within 200ms"), "{}", f.reason);
            }
        }
        let c = canary(vec![hook(
            "open",
            HookType::ConfirmRollout,
            format!("{base}/open"),
        )]);
        assert!(
            Hooks::new(&edge, &c)
                .gate(HookType::ConfirmRollout, "Initialized", "x")
                .await
        );
        // No gate of the type: open.
        assert!(
            Hooks::new(&edge, &c)
                .gate(HookType::ConfirmTrafficIncrease, "Progressing", "x")
                .await
        );
    }

    #[tokio::test]
    async fn a_gate_stops_at_the_first_closed_hook() {
        let (base, r) = serve().await;
        r.answer("/closed", &[403]);
        let c = canary(vec![
            hook("a", HookType::ConfirmRollout, format!("{base}/closed")),
            hook("b", HookType::ConfirmRollout, format!("{base}/b")),
        ]);
        let edge = HttpEdge::direct_only("test").unwrap();
        assert!(
            !Hooks::new(&edge, &c)
                .gate(HookType::ConfirmRollout, "Waiting", "x")
                .await
        );
        assert_eq!(r.calls_to("/b"), 0);
        assert_eq!(r.bodies()[0].1["phase"], "Waiting");
    }

    #[tokio::test]
    async fn retries_follow_server_errors_but_not_refusals() {
        let (base, r) = serve().await;
        r.answer("/flaky", &[500, 502, 200]);
        r.answer("/refuse", &[403, 200]);
        r.answer("/down", &[503]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let mut flaky = hook("flaky", HookType::Rollout, format!("{base}/flaky"));
        flaky.retries = 2;
        let mut refuse = hook("refuse", HookType::PreRollout, format!("{base}/refuse"));
        refuse.retries = 3;
        let mut down = hook("down", HookType::PostRollout, format!("{base}/down"));
        down.retries = 1;
        let c = canary(vec![flaky, refuse, down]);
        let hooks = Hooks::new(&edge, &c).with_retry_wait(FAST);
        assert_eq!(
            hooks.run(HookType::Rollout, "Progressing", "x").await,
            HookOutcome::Passed
        );
        assert_eq!(r.calls_to("/flaky"), 3);
        assert!(matches!(
            hooks.run(HookType::PreRollout, "Progressing", "x").await,
            HookOutcome::Failed { .. }
        ));
        assert_eq!(
            r.calls_to("/refuse"),
            1,
            "a 403 is an answer, not a transient error"
        );
        let warnings = hooks
            .notify(HookType::PostRollout, "Failed", "x", None)
            .await;
        assert_eq!(r.calls_to("/down"), 2);
        assert_eq!(
            warnings,
            vec![
                "Post-rollout hook down failed HTTP 503: status 503 (after 2 attempts)".to_string()
            ]
        );
    }

    #[tokio::test]
    async fn retries_also_cover_timeouts_and_connection_failures() {
        let (base, r) = serve().await;
        r.delay
            .lock()
            .unwrap()
            .insert("/slow".to_string(), Duration::from_secs(5));
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/", free.local_addr().unwrap());
        drop(free);
        let mut slow = hook("slow", HookType::Rollout, format!("{base}/slow"));
        slow.timeout = Duration::from_millis(100);
        slow.retries = 1;
        let mut gone = hook("gone", HookType::PreRollout, dead);
        gone.retries = 2;
        let c = canary(vec![slow, gone]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let hooks = Hooks::new(&edge, &c).with_retry_wait(FAST);
        let out = hooks.run(HookType::Rollout, "Progressing", "x").await;
        assert_eq!(r.calls_to("/slow"), 2);
        let HookOutcome::Failed { reason, .. } = out else {
            panic!("{out:?}")
        };
        assert!(
            reason.contains("no answer within 100ms") && reason.ends_with("(after 2 attempts)"),
            "{reason}"
        );
        let HookOutcome::Failed { reason, .. } =
            hooks.run(HookType::PreRollout, "Progressing", "x").await
        else {
            panic!("connection refused must fail")
        };
        assert!(
            reason.starts_with("failed to connect to http://127.0.0.1:"),
            "{reason}"
        );
        assert!(reason.ends_with("(after 3 attempts)"), "{reason}");
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_thirty() {
        let w = RetryWait::default();
        let secs: Vec<u64> = (0..7).map(|a| w.backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(w.backoff(64), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn rollback_is_requested_by_the_first_hook_that_succeeds() {
        let (base, r) = serve().await;
        r.answer("/no", &[400]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let c = canary(vec![
            hook("no", HookType::Rollback, format!("{base}/no")),
            hook("yes", HookType::Rollback, format!("{base}/yes")),
            hook("after", HookType::Rollback, format!("{base}/after")),
        ]);
        assert!(
            Hooks::new(&edge, &c)
                .rollback_requested("Progressing", "x")
                .await
        );
        assert_eq!(r.calls_to("/after"), 0);
        let c = canary(vec![hook("no", HookType::Rollback, format!("{base}/no"))]);
        assert!(
            !Hooks::new(&edge, &c)
                .rollback_requested("WaitingPromotion", "x")
                .await
        );
        let c = canary(Vec::new());
        assert!(
            !Hooks::new(&edge, &c)
                .rollback_requested("Progressing", "x")
                .await
        );
    }

    #[tokio::test]
    async fn event_hooks_get_the_event_in_their_metadata_and_never_fail() {
        let (base, r) = serve().await;
        r.answer("/broken", &[500]);
        let mut e = hook("events", HookType::Event, format!("{base}/events"));
        e.metadata
            .insert("eventType".to_string(), "mine".to_string());
        e.metadata.insert("team".to_string(), "web".to_string());
        let c = canary(vec![
            hook("broken", HookType::Event, format!("{base}/broken")),
            e,
        ]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let warnings = Hooks::new(&edge, &c)
            .notify(
                HookType::Event,
                "Progressing",
                "x",
                Some(("Normal", "Advance podinfo.test canary weight 10")),
            )
            .await;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("failed to send the event to webhook broken: HTTP 500"),
            "{warnings:?}"
        );
        let (_, body) = r
            .bodies()
            .into_iter()
            .find(|(p, _)| p == "/events")
            .unwrap();
        let m = &body["metadata"];
        assert_eq!(m["eventMessage"], "Advance podinfo.test canary weight 10");
        assert_eq!(
            m["eventType"], "Normal",
            "the hook's metadata does not override the event's"
        );
        assert_eq!(m["team"], "web");
        assert!(m["timestamp"].as_str().unwrap().parse::<u64>().unwrap() > 1_600_000_000_000);
        assert_eq!(body["phase"], "Progressing");
    }

    #[tokio::test]
    async fn post_rollout_hooks_stop_at_the_first_failure_as_in_flagger() {
        let (base, r) = serve().await;
        r.answer("/a", &[400]);
        let c = canary(vec![
            hook("a", HookType::PostRollout, format!("{base}/a")),
            hook("b", HookType::PostRollout, format!("{base}/b")),
        ]);
        let edge = HttpEdge::direct_only("test").unwrap();
        let w = Hooks::new(&edge, &c)
            .notify(HookType::PostRollout, "Succeeded", "x", None)
            .await;
        assert_eq!(
            w,
            vec!["Post-rollout hook a failed HTTP 400: status 400".to_string()]
        );
        assert_eq!(r.calls_to("/b"), 0);
    }
}
