//! Credentials kept out of every text `canary` shows or stores.
//!
//! Two kinds of masking, both replacing what they find with [`MASK`]:
//!
//! - **known values**: a [`Redactor`] is told every secret value of a run
//!   as it is read (the keys of a MetricTemplate's Secret, the bearer and
//!   basic-auth credentials made of them, URL passwords, sensitive query
//!   values, kubeconfig tokens) and masks each wherever it appears, also
//!   percent-encoded, JSON-escaped or, for a basic-auth pair, base64-encoded
//!   as an `Authorization` header carries it;
//! - **patterns** ([`mask_patterns`]), for secrets this process never
//!   read (a `canary status` showing what a run stored): the user and
//!   password of a URL (`https://***@host/`), the values of sensitive
//!   query parameters (`?token=***`, see [`is_sensitive_name`]), and
//!   `Authorization` values (`Bearer ***`, `Basic ***`).
//!
//! Values shorter than [`MIN_SECRET_LEN`] characters are not masked as
//! known values: masking every `ab` of every line would make the output
//! unreadable and point at the secret all the same.
//!
//! The binary holds one `Redactor` for the process and passes all of its
//! output, the state it writes and what `status` shows through it; the
//! stored spec is masked by [`mask_canary`] and [`mask_template`], so no
//! credential of a spec file lands on the cluster's objects.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{LazyLock, RwLock};

use regex::{Captures, Regex};

use crate::spec::types::{Canary, CanaryAnalysis, MetricTemplate};

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Shorter known values are not masked (see the module documentation).
pub const MIN_SECRET_LEN: usize = 4;

/// Whether a query parameter, header, Secret key or webhook metadata key
/// named `name` holds a credential: `token`, `access_token`, `sig`,
/// `key`, `apikey`, `password`, `secret`, `authorization` and the like,
/// in any case, with `-` and `_` ignored.
pub fn is_sensitive_name(name: &str) -> bool {
    let n: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    const EXACT: &[&str] = &[
        "sig", "key", "pass", "pwd", "auth", "code", "jwt", "session", "cookie",
    ];
    const PART: &[&str] = &[
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "signature",
        "credential",
        "authorization",
        "privatekey",
        "accesskey",
        "sessionkey",
        "clientkey",
        "webhookkey",
        "xapikey",
    ];
    EXACT.contains(&n.as_str()) || PART.iter().any(|p| n.contains(p))
}

static USERINFO: LazyLock<Regex> = LazyLock::new(|| {
    // scheme://userinfo@ : everything between `://` and the authority's
    // last `@`, which cannot hold `/`, `?`, `#` or white space.
    Regex::new(r#"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#"'`<>\[\]]*@"#).expect("valid regex")
});

static QUERY_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([?&;])([A-Za-z0-9_.\-]+)=([^&#\s"'`<>]*)"#).expect("valid regex")
});

static AUTH_SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    // `Bearer xxx`, `Basic xxx` (a token68), as in an echoed header.
    Regex::new(r"\b([Bb]earer|BEARER|Basic|BASIC)([ \t]+)[A-Za-z0-9\-._~+/]{6,}=*")
        .expect("valid regex")
});

static AUTH_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    // `Authorization: xxx`, `"x-api-key": "xxx"`, `Private-Token=xxx`: a
    // sensitive header name followed by its value (its scheme kept).
    Regex::new(
        r#"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|apikey|x-auth-token|private-token|x-access-token)(["']?[ \t]*[:=][ \t]*\[?["']?)((?:bearer|basic|token)[ \t]+)?([[:graph:]&&[^"'\],;]]+)"#,
    )
    .expect("valid regex")
});

/// `text` with URL userinfo, sensitive query values and `Authorization`
/// values masked.
pub fn mask_patterns(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    if text.contains("://") && text.contains('@') {
        out = replace(out, &USERINFO, |c| format!("{}{MASK}@", &c[1]));
    }
    if text.contains('=') {
        out = replace(out, &QUERY_PARAM, |c| {
            if is_sensitive_name(&c[2]) && &c[3] != MASK && !c[3].is_empty() {
                format!("{}{}={MASK}", &c[1], &c[2])
            } else {
                c[0].to_string()
            }
        });
    }
    out = replace(out, &AUTH_HEADER, |c| {
        let scheme = c.get(3).map_or("", |m| m.as_str());
        if &c[4] == MASK {
            c[0].to_string()
        } else {
            format!("{}{}{scheme}{MASK}", &c[1], &c[2])
        }
    });
    out = replace(out, &AUTH_SCHEME, |c| format!("{}{}{MASK}", &c[1], &c[2]));
    out
}

/// The values [`mask_patterns`] would mask in `text`, so a run masks
/// them also where they appear without their pattern.
pub fn pattern_secrets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in USERINFO.captures_iter(text) {
        let info = c[0][c[1].len()..].trim_end_matches('@');
        match info.split_once(':') {
            Some((_, password)) => out.push(password.to_string()),
            None => out.push(info.to_string()),
        }
    }
    for c in QUERY_PARAM.captures_iter(text) {
        if is_sensitive_name(&c[2]) {
            out.push(c[3].to_string());
        }
    }
    for c in AUTH_HEADER.captures_iter(text) {
        out.push(c[4].to_string());
    }
    for c in AUTH_SCHEME.captures_iter(text) {
        out.push(c[0][c[1].len() + c[2].len()..].to_string());
    }
    out.retain(|s| !s.is_empty() && s != MASK);
    out
}

fn replace<'a>(
    text: Cow<'a, str>,
    re: &Regex,
    with: impl Fn(&Captures<'_>) -> String,
) -> Cow<'a, str> {
    if !re.is_match(&text) {
        return text;
    }
    let replaced = re
        .replace_all(&text, |c: &Captures<'_>| with(c))
        .into_owned();
    if replaced == *text {
        text
    } else {
        Cow::Owned(replaced)
    }
}

/// `url` for messages and for the stored spec: its user and password
/// replaced by one [`MASK`] (`http://***@host/`) and the value of every
/// sensitive query parameter masked (`?token=***`), also when the URL
/// does not parse.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut u) = url::Url::parse(url) {
        let mut changed = false;
        if !u.username().is_empty() || u.password().is_some() {
            let _ = u.set_username(MASK);
            let _ = u.set_password(None);
            changed = true;
        }
        if let Some(q) = u.query()
            && q.split('&').any(|kv| sensitive_pair(kv).is_some())
        {
            let masked: Vec<String> = q
                .split('&')
                .map(|kv| match sensitive_pair(kv) {
                    Some(name) => format!("{name}={MASK}"),
                    None => kv.to_string(),
                })
                .collect();
            u.set_query(Some(&masked.join("&")));
            changed = true;
        }
        return if changed {
            u.to_string()
        } else {
            url.to_string()
        };
    }
    mask_patterns(url).into_owned()
}

/// The name of a `name=value` query pair whose value is a credential.
fn sensitive_pair(kv: &str) -> Option<&str> {
    let (name, value) = kv.split_once('=')?;
    let decoded = url::form_urlencoded::parse(name.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default();
    (is_sensitive_name(&decoded) && !value.is_empty() && value != MASK).then_some(name)
}

/// Whether `url` was stored masked by [`redact_url`]: its password, user
/// or a sensitive query value is [`MASK`]. Such a URL cannot be called.
pub fn url_is_masked(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(u) => {
            u.username() == MASK
                || u.password() == Some(MASK)
                || u.query_pairs()
                    .any(|(k, v)| is_sensitive_name(&k) && v == MASK)
        }
        Err(_) => url.contains(MASK),
    }
}

/// Whether a webhook of a stored spec lost a credential to masking: its
/// URL ([`url_is_masked`]) or a metadata value holds [`MASK`]. Calling it
/// would send the mask instead of the credential.
pub fn webhook_is_masked(h: &crate::spec::resolve::ResolvedWebhook) -> bool {
    url_is_masked(&h.url) || h.metadata.values().any(|v| v.contains(MASK))
}

/// The credentials a URL carries: its user and password (as written and
/// percent-decoded) and its sensitive query values.
pub fn url_secrets(url: &str) -> Vec<String> {
    let Ok(u) = url::Url::parse(url) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    if let Some(p) = u.password() {
        // With a password, the user is a name, not a secret.
        out.push(p.to_string());
        out.push(decode(p));
    } else if !u.username().is_empty() {
        // A user alone is usually a token (`https://TOKEN@host`).
        out.push(u.username().to_string());
        out.push(decode(u.username()));
    }
    for (k, v) in u.query_pairs() {
        if is_sensitive_name(&k) {
            out.push(v.into_owned());
        }
    }
    if let Some(q) = u.query() {
        for kv in q.split('&') {
            if let (Some(_), Some((_, v))) = (sensitive_pair(kv), kv.split_once('=')) {
                out.push(v.to_string());
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out.sort();
    out.dedup();
    out
}

/// The Canary as it may be stored on the cluster's objects: webhook URLs
/// and the metrics server through [`redact_url`], the values of webhook
/// metadata keys that name a credential ([`is_sensitive_name`]) masked,
/// and every other metadata value through [`mask_patterns`].
pub fn mask_canary(doc: &mut Canary) {
    let Some(spec) = doc.spec.as_mut() else {
        return;
    };
    if let Some(m) = spec.metrics_server.as_mut() {
        *m = redact_url(m);
    }
    for analysis in [spec.analysis.as_mut(), spec.canary_analysis.as_mut()]
        .into_iter()
        .flatten()
    {
        mask_analysis(analysis);
    }
}

fn mask_analysis(a: &mut CanaryAnalysis) {
    for h in &mut a.webhooks {
        if let Some(u) = h.url.as_mut() {
            *u = redact_url(u);
        }
        for (k, v) in h.metadata.iter_mut() {
            if is_sensitive_name(k) {
                *v = MASK.to_string();
            } else if let Cow::Owned(m) = mask_patterns(v) {
                *v = m;
            }
        }
    }
}

/// A MetricTemplate as it may be stored: its address through
/// [`redact_url`], the values of sensitive headers masked.
pub fn mask_template(t: &mut MetricTemplate) {
    let Some(p) = t.spec.as_mut().and_then(|s| s.provider.as_mut()) else {
        return;
    };
    if let Some(a) = p.address.as_mut() {
        *a = redact_url(a);
    }
    for (name, values) in p.headers.iter_mut() {
        for v in values.iter_mut() {
            if is_sensitive_name(name) {
                *v = MASK.to_string();
            } else if let Cow::Owned(m) = mask_patterns(v) {
                *v = m;
            }
        }
    }
}

/// The secret values of one run, masked in any text given to
/// [`Redactor::redact`]. Shared by every task of the run: learning takes
/// a write lock, masking a read lock.
#[derive(Debug, Default)]
pub struct Redactor {
    /// Every form to mask, longest first so a value containing another is
    /// masked whole.
    values: RwLock<Vec<String>>,
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Masks `secret` from now on, as written, percent-encoded and
    /// JSON-escaped.
    pub fn learn(&self, secret: &str) {
        let secret = secret.trim_end_matches(['\n', '\r']);
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let mut forms = BTreeSet::new();
        forms.insert(secret.to_string());
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        forms.insert(encoded.clone());
        forms.insert(encoded.replace('+', "%20"));
        if let Ok(json) = serde_json::to_string(secret) {
            forms.insert(json[1..json.len() - 1].to_string());
        }
        let Ok(mut values) = self.values.write() else {
            return;
        };
        for f in forms {
            if f.chars().count() >= MIN_SECRET_LEN && !values.contains(&f) {
                values.push(f);
            }
        }
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// Masks the user and password of a basic-auth pair, and the base64
    /// `user:password` that an `Authorization: Basic` header carries
    /// (`encoded`, computed by the caller that builds the header).
    pub fn learn_basic(&self, user: &str, password: &str, encoded: &str) {
        self.learn(user);
        self.learn(password);
        self.learn(encoded);
    }

    /// Masks the credentials of `url` ([`url_secrets`]).
    pub fn learn_url(&self, url: &str) {
        for s in url_secrets(url) {
            self.learn(&s);
        }
    }

    /// Masks the webhook URLs' credentials and the values of sensitive
    /// metadata keys of a Canary; and its metrics server's.
    pub fn learn_canary(&self, doc: &Canary) {
        let Some(spec) = doc.spec.as_ref() else {
            return;
        };
        if let Some(m) = &spec.metrics_server {
            self.learn_url(m);
        }
        for a in [spec.analysis.as_ref(), spec.canary_analysis.as_ref()]
            .into_iter()
            .flatten()
        {
            for h in &a.webhooks {
                if let Some(u) = &h.url {
                    self.learn_url(u);
                }
                for (k, v) in &h.metadata {
                    if is_sensitive_name(k) {
                        self.learn(v);
                    }
                    for p in pattern_secrets(v) {
                        self.learn(&p);
                    }
                }
            }
        }
    }

    /// Masks a MetricTemplate's address credentials and sensitive header
    /// values.
    pub fn learn_template(&self, t: &MetricTemplate) {
        let Some(p) = t.spec.as_ref().and_then(|s| s.provider.as_ref()) else {
            return;
        };
        if let Some(a) = &p.address {
            self.learn_url(a);
        }
        for (name, values) in &p.headers {
            if is_sensitive_name(name) {
                for v in values {
                    self.learn(v);
                    // `Bearer xxx`: the token alone too.
                    if let Some((_, token)) = v.split_once(' ') {
                        self.learn(token.trim());
                    }
                }
            }
        }
    }

    /// How many forms of secrets it masks.
    pub fn len(&self) -> usize {
        self.values.read().map(|v| v.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `text` with every known secret and every pattern masked.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        if let Ok(values) = self.values.read() {
            for v in values.iter() {
                if out.contains(v.as_str()) {
                    out = Cow::Owned(out.replace(v.as_str(), MASK));
                }
            }
        }
        match mask_patterns(&out) {
            Cow::Borrowed(_) => out,
            Cow::Owned(o) => Cow::Owned(o),
        }
    }

    /// Every string of a JSON value redacted, keys included.
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            Value::Object(o) => {
                let entries = std::mem::take(o);
                for (k, mut x) in entries {
                    self.redact_json(&mut x);
                    o.insert(self.redact(&k).into_owned(), x);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A serializable value with every string redacted, through JSON:
    /// for events and states, whose every message may quote a server.
    /// A value that does not come back as itself is returned unchanged.
    pub fn redact_value<T>(&self, value: &T) -> T
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone,
    {
        let Ok(mut v) = serde_json::to_value(value) else {
            return value.clone();
        };
        self.redact_json(&mut v);
        serde_json::from_value(v).unwrap_or_else(|_| value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_credentials_are_recognised() {
        for n in [
            "token",
            "access_token",
            "X-Api-Key",
            "apiKey",
            "sig",
            "key",
            "password",
            "client_secret",
            "Authorization",
            "refresh-token",
        ] {
            assert!(is_sensitive_name(n), "{n}");
        }
        for n in [
            "cmd",
            "type",
            "query",
            "time",
            "monkey",
            "keyword",
            "logCmdOutput",
        ] {
            assert!(!is_sensitive_name(n), "{n}");
        }
    }

    #[test]
    fn patterns_mask_userinfo_query_values_and_authorization() {
        let text = "failed: http://u:p4ss@h/x?token=abc123&q=up and https://tok@h2 \
                    Authorization: Bearer eyJhbGciOi.x; authorization: Basic dXNlcjpwYXNz";
        let m = mask_patterns(text);
        for s in ["p4ss", "abc123", "tok@", "eyJhbGciOi", "dXNlcjpwYXNz"] {
            assert!(!m.contains(s), "{s} in {m}");
        }
        assert!(m.contains("http://***@h/x?token=***&q=up"), "{m}");
        assert!(m.contains("Authorization: Bearer ***"), "{m}");
        assert!(m.contains("Basic ***"), "{m}");
        // Plain prose and harmless text stay as they are, a table border
        // after a header name too.
        for plain in [
            "│ authorization:       │",
            "a@b http://h/x@y",
            "request duration 1.985s > 500ms",
            "basic auth is not supported",
            "http://h/api/v1/query?query=up&time=1",
        ] {
            assert!(matches!(mask_patterns(plain), Cow::Borrowed(_)), "{plain}");
        }
    }

    #[test]
    fn urls_lose_their_credentials_and_say_so() {
        assert_eq!(redact_url("http://u:p@h:1/x?q"), "http://***@h:1/x?q");
        assert_eq!(redact_url("http://u:p@[::1/x"), "http://***@[::1/x");
        assert_eq!(redact_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(
            redact_url("https://hooks.example.com/x?sig=abc&v=1&access_token=t0k"),
            "https://hooks.example.com/x?sig=***&v=1&access_token=***"
        );
        assert!(url_is_masked("https://***@h/"));
        assert!(url_is_masked("https://h/?token=***"));
        assert!(!url_is_masked("https://h/?q=***"));
        assert!(!url_is_masked("https://h/?token=abc"));
        let mut s = url_secrets("https://bob:s%40cret@h/?token=t0k3n&q=1");
        s.sort();
        assert_eq!(s, vec!["s%40cret", "s@cret", "t0k3n"]);
    }

    #[test]
    fn known_values_are_masked_in_every_form() {
        let r = Redactor::new();
        r.learn("s3cr3t-t0ken");
        r.learn("abc"); // too short to mask
        r.learn("p@ss word\"x");
        let text = "got s3cr3t-t0ken, p%40ss+word%22x, p@ss word\\\"x and abc";
        let m = r.redact(text);
        assert_eq!(m, "got ***, ***, *** and abc");
        let mut v = serde_json::json!({"m": ["Bearer s3cr3t-t0ken"], "s3cr3t-t0ken": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"m": ["Bearer ***"], "***": 1}));
    }

    #[test]
    fn stored_specs_keep_no_credential() {
        let yaml = r#"
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: a}
spec:
  metricsServer: http://admin:pw1234@prom:9090
  analysis:
    webhooks:
      - name: load
        url: http://hooks.prod/?token=t0k3n-value
        metadata:
          cmd: "curl -H 'Authorization: Bearer zzzzzzzz' http://x/"
          apiKey: k3y-value
          type: bash
"#;
        let mut c: Canary = serde_yaml::from_str(yaml).unwrap();
        let r = Redactor::new();
        r.learn_canary(&c);
        mask_canary(&mut c);
        let text = serde_json::to_string(&c).unwrap();
        for s in ["pw1234", "t0k3n-value", "zzzzzzzz", "k3y-value"] {
            assert!(!text.contains(s), "{s} in {text}");
            assert_eq!(r.redact(s), MASK, "{s}");
        }
        assert!(text.contains("\"type\":\"bash\""), "{text}");
        let hooks = &c.spec.unwrap().analysis.unwrap().webhooks;
        assert!(url_is_masked(hooks[0].url.as_deref().unwrap()));
    }
}
