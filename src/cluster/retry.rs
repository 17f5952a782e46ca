//! Per-request retries of the API server's transient failures, as a
//! layer of the Kubernetes client every command uses.
//!
//! kube's own retry layer retries 429, 503 and 504 only. Outside the
//! cluster, through load balancers and during control-plane upgrades, an
//! API server also answers 500 and 502 for a moment, and connections break
//! after the request was sent. Requests without side effects (reads, and
//! the access reviews of the preflight) are tried again on any of those;
//! writes only on 429, 503 and 504, which the server sends before doing
//! anything, so a write is never applied twice behind the driver's back (a
//! write that failed otherwise is re-decided by the driver's next round
//! from a fresh read). The wait doubles from 200 ms, or is the server's
//! `Retry-After`, within five tries. A connection that cannot be made at
//! all is not retried: the connection check reports it at once.

use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use tower::BoxError;
use tower::retry::Policy;

/// Tries after the first.
const RETRIES: u32 = 5;
/// The first wait; doubled after each try.
const FIRST_WAIT: Duration = Duration::from_millis(200);
/// The longest a `Retry-After` is waited for.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// The retry policy of one request (tower clones it for each).
#[derive(Debug, Clone)]
pub(crate) struct Transient {
    tries: u32,
    wait: Duration,
}

impl Transient {
    pub(crate) fn layer() -> tower::retry::RetryLayer<Transient> {
        tower::retry::RetryLayer::new(Transient {
            tries: 0,
            wait: FIRST_WAIT,
        })
    }
}

/// A request that changes nothing: a read, or a question (an access
/// review is created and answered, never stored).
fn without_side_effects<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET
        || req.method() == Method::HEAD
        || (req.method() == Method::POST
            && req.uri().path().starts_with("/apis/authorization.k8s.io/"))
}

/// Whether a status is worth another try for this request.
fn retryable(status: u16, safe: bool) -> bool {
    matches!(status, 429 | 503 | 504) || (safe && matches!(status, 500 | 502))
}

/// Whether a transport error happened before a connection was made.
fn is_connect(e: &BoxError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper_util::client::legacy::Error>()
            && h.is_connect()
        {
            return true;
        }
        source = err.source();
    }
    false
}

fn retry_after<B>(resp: &Response<B>) -> Option<Duration> {
    resp.headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(LONGEST_WAIT))
}

impl<B> Policy<Request<Body>, Response<B>, BoxError> for Transient {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        if self.tries >= RETRIES {
            return None;
        }
        let safe = without_side_effects(req);
        let asked = match result {
            Ok(resp) if retryable(resp.status().as_u16(), safe) => retry_after(resp),
            Ok(_) => return None,
            Err(e) if safe && !is_connect(e) => None,
            Err(_) => return None,
        };
        self.tries += 1;
        let wait = asked.unwrap_or(self.wait);
        self.wait = (self.wait * 2).min(LONGEST_WAIT);
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // A streamed body cannot be sent twice; such a request is not retried.
        let body = req.body().try_clone()?;
        let mut copy = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = req.headers().clone();
        *copy.extensions_mut() = req.extensions().clone();
        Some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reviews_are_retried_on_500_writes_only_when_nothing_was_done() {
        let get = Request::get("/api/v1/namespaces/prod/services/x")
            .body(())
            .unwrap();
        let patch = Request::patch("/apis/apps/v1/namespaces/prod/deployments/x")
            .body(())
            .unwrap();
        let review = Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
            .body(())
            .unwrap();
        assert!(without_side_effects(&get));
        assert!(without_side_effects(&review));
        assert!(!without_side_effects(&patch));
        assert!(retryable(500, true) && retryable(502, true));
        assert!(!retryable(500, false) && !retryable(502, false));
        for status in [429, 503, 504] {
            assert!(retryable(status, false), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 422, 501] {
            assert!(!retryable(status, true), "{status}");
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_a_limit() {
        let resp = |v: &str| {
            Response::builder()
                .status(429)
                .header("Retry-After", v)
                .body(())
                .unwrap()
        };
        assert_eq!(retry_after(&resp("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&resp("3600")), Some(LONGEST_WAIT));
        assert_eq!(retry_after(&resp("soon")), None);
    }
}
