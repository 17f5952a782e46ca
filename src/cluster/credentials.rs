//! The credentials the client sends, taught to the redactor as they are
//! sent.
//!
//! A kubeconfig's static token and password are taught when it is read
//! ([`crate::secrets::learn_kube`]), but an exec plugin's token, an OIDC
//! or auth-provider token and a rotated service-account token exist only
//! inside the client, fetched and refreshed while it runs. So the client
//! is built with kube's authentication as a layer of our own stack
//! ([`without_header_auth`], [`auth_layer`]), and a layer below it reads
//! each request's `Authorization` header after it was added: a value not
//! seen before is taught to the redactor before the request leaves, so a
//! server or proxy that echoes it in an error cannot bring it to the
//! output.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::Request;
use http::header::{AUTHORIZATION, HeaderValue};
use kube::client::ConfigExt;
use tower::{Layer, Service};

/// `config` without the credentials kube's authentication layer adds
/// (token, password, exec plugin, auth provider): the client is built
/// from it, and the layer of `config` ([`ConfigExt::auth_layer`]) is
/// added above [`Learn`]. Client certificates stay: they are the TLS
/// connection's, not a header.
pub(crate) fn without_header_auth(config: &kube::Config) -> kube::Config {
    let mut plain = config.clone();
    let info = &mut plain.auth_info;
    info.token = None;
    info.token_file = None;
    info.username = None;
    info.password = None;
    info.exec = None;
    info.auth_provider = None;
    plain
}

/// kube's authentication layer for `config`, if it authenticates by a
/// header.
pub(crate) fn auth_layer(
    config: &kube::Config,
) -> Result<Option<kube::client::middleware::AuthLayer>, kube::Error> {
    config.auth_layer()
}

/// The layer that teaches the redactor each new `Authorization` value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Learn {
    last: Arc<Mutex<Option<HeaderValue>>>,
}

impl<S> Layer<S> for Learn {
    type Service = Learning<S>;

    fn layer(&self, inner: S) -> Learning<S> {
        Learning {
            inner,
            last: self.last.clone(),
        }
    }
}

/// [`Learn`]'s service.
#[derive(Debug, Clone)]
pub(crate) struct Learning<S> {
    inner: S,
    last: Arc<Mutex<Option<HeaderValue>>>,
}

impl<S, B> Service<Request<B>> for Learning<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> S::Future {
        if let Some(value) = req.headers().get(AUTHORIZATION) {
            learn(&self.last, value);
        }
        self.inner.call(req)
    }
}

/// Teaches `value` (and the credential after its scheme) unless it was
/// the last one taught: a token changes when it is refreshed, not per
/// request.
fn learn(last: &Mutex<Option<HeaderValue>>, value: &HeaderValue) {
    let Ok(mut last) = last.lock() else {
        return;
    };
    if last.as_ref() == Some(value) {
        return;
    }
    *last = Some(value.clone());
    let Ok(text) = value.to_str() else {
        return;
    };
    let redactor = crate::secrets::redactor();
    match text.split_once(' ') {
        Some((_scheme, credential)) => redactor.learn(credential.trim()),
        None => redactor.learn(text),
    }
}
