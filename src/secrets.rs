//! The process's one [`Redactor`]: every secret value `canary` reads is
//! taught to it where it is read, and every text that leaves the process
//! goes through it at one of three choke points:
//!
//! - the output sinks: [`crate::ui`]'s standard output and error writers
//!   ([`Redacting`]), the events of [`crate::ui::RunOutput`] (the live
//!   view, plain lines, JSON events, the summaries and the
//!   `GITHUB_STEP_SUMMARY` file);
//! - the state writer ([`crate::cluster::state::write`]): the history and
//!   messages stored in the state annotation; the stored spec is masked
//!   when it is made ([`canary_core::redact::mask_canary`]);
//! - the `status` renderer ([`crate::ui::status`]), which also masks by
//!   pattern what another process stored.
//!
//! What is taught: the keys of a MetricTemplate's Secret and the bearer or
//! basic-auth credentials made of them, the credentials in webhook and
//! metrics URLs, sensitive webhook metadata and provider header values,
//! AlertProvider addresses and proxies (whole, and their paths, where a
//! chat webhook keeps its secret), every value of a Secret kept in a spec
//! file, the global notifier's URLs, the kubeconfig's token, password and
//! client key, and every credential the client sends that exists only at
//! run time (an exec plugin's or an auth provider's token, a rotated
//! service-account token), taught as it is sent
//! ([`crate::cluster::credentials`]).

use std::io::{self, Write};
use std::sync::LazyLock;

pub(crate) use canary_core::redact::Redactor;

static REDACTOR: LazyLock<Redactor> = LazyLock::new(Redactor::new);

/// The process's redactor.
pub(crate) fn redactor() -> &'static Redactor {
    &REDACTOR
}

/// `text` with every known secret and credential pattern masked.
pub(crate) fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    REDACTOR.redact(text)
}

/// Teaches the redactor the credentials of the kubeconfig user: they
/// never reach the output through `canary`, but a server error could echo
/// the request's `Authorization` header.
pub(crate) fn learn_kube(config: &kube::Config) {
    let Ok(serde_json::Value::Object(user)) = serde_json::to_value(&config.auth_info) else {
        return;
    };
    for key in ["token", "password", "client-key-data"] {
        if let Some(v) = user.get(key).and_then(|v| v.as_str()) {
            REDACTOR.learn(v);
        }
    }
}

/// Teaches the redactor the credentials a spec file carries: webhook and
/// metrics URLs, sensitive webhook metadata, MetricTemplate addresses and
/// headers, AlertProvider addresses.
pub(crate) fn learn_file(file: &canary_core::spec::SpecFile) {
    for c in &file.canaries {
        REDACTOR.learn_canary(&c.value);
    }
    for t in &file.metric_templates {
        REDACTOR.learn_template(&t.value);
    }
    for a in &file.alert_providers {
        if let Some(spec) = &a.value.spec {
            for u in [&spec.address, &spec.proxy].into_iter().flatten() {
                crate::alerts::learn_address(u);
            }
        }
    }
    // A Secret kept next to the Canary (an AlertProvider's): every value.
    for o in file.others.iter().filter(|o| o.kind == "Secret") {
        if let Ok(secret) =
            serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(o.value.clone())
        {
            for (_, v) in crate::alerts::secret_strings(&secret) {
                crate::alerts::learn_address(&v);
            }
        }
    }
}

/// A writer that masks secrets line by line: it holds a line until its
/// end (or a flush), so a secret is never cut between two writes.
pub(crate) struct Redacting<W: Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    pub(crate) fn new(inner: W) -> Redacting<W> {
        Redacting {
            inner,
            line: Vec::new(),
        }
    }

    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let rest = self.line.split_off(upto);
        let text = String::from_utf8_lossy(&self.line);
        let masked = redact(&text);
        self.inner.write_all(masked.as_bytes())?;
        self.line = rest;
        Ok(())
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        if let Some(last) = self.line.iter().rposition(|b| *b == b'\n') {
            self.emit(last + 1)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            let len = self.line.len();
            self.emit(len)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_written_in_pieces_is_masked_whole() {
        redactor().learn("pieces-s3cret");
        let mut out = Vec::new();
        {
            let mut w = Redacting::new(&mut out);
            write!(w, "a pieces-").unwrap();
            write!(w, "s3cret b\nnext Bearer abcdefgh").unwrap();
        }
        assert_eq!(String::from_utf8(out).unwrap(), "a *** b\nnext Bearer ***");
    }
}
