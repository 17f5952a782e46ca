//! Graphite, as Flagger's `graphite.go` queries it: the query is the
//! render API's query string (`target=...&from=-5min`), its whitespace
//! runs made one space; `format=json` is set, the parameters re-encoded
//! sorted by name, and the request is `GET <address path>/render?...`,
//! with basic auth from the Secret's `username` and `password` when the
//! template has a `secretRef` (both keys are then required). The address
//! is required. The value is the **last** non-null datapoint.

use serde_json::Value;

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, encode, several, undecodable};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use canary_core::queries::template::collapse_whitespace;

pub(crate) fn request(src: &Source, query: &str) -> Result<Outgoing, MetricError> {
    let invalid = || {
        MetricError::Query(format!(
            "graphite address {} is not a valid URL",
            src.address().unwrap_or_default()
        ))
    };
    let address = src.address().ok_or_else(invalid)?;
    let mut url = reqwest::Url::parse(address).map_err(|_| invalid())?;
    let query = collapse_whitespace(query);
    // Go's url.ParseQuery, then Set("format", "json") and Encode().
    let mut params: Vec<(String, String)> = form_urlencoded_pairs(&query)
        .into_iter()
        .filter(|(k, _)| k != "format")
        .collect();
    params.push(("format".into(), "json".into()));
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let path = format!("{}/render", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    let url = format!("{url}?{}", encode(&pairs));
    let mut out = Outgoing::get(url);
    if src.provider.secret_ref.is_some() {
        let username = src.key("graphite", "username").map_err(|_| {
            MetricError::Query("graphite credentials does not contain a username".into())
        })?;
        let password = src.key("graphite", "password").map_err(|_| {
            MetricError::Query("graphite credentials does not contain a password".into())
        })?;
        if !username.is_empty() && !password.is_empty() {
            let basic = BASE64_STANDARD.encode(format!("{username}:{password}"));
            crate::secrets::redactor().learn_basic(&username, &password, &basic);
            out = out.header("authorization", format!("Basic {basic}"), true);
        }
    }
    Ok(out)
}

/// The name/value pairs of a query string, `+` read as a space.
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| undecodable(e, body))?;
    let Some(targets) = v.as_array() else {
        return Err(undecodable("not a list of targets", body));
    };
    let mut found = Vec::new();
    for t in targets {
        let mut last = None;
        for point in t["datapoints"].as_array().into_iter().flatten() {
            let value = match point.get(0) {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => Some(s.parse::<f64>().map_err(|_| {
                    MetricError::Query(format!("the datapoint value `{s}` is not a number"))
                })?),
                _ => None,
            };
            if value.is_some() {
                last = value;
            }
        }
        if let Some(v) = last {
            found.push(v);
        }
    }
    match found.as_slice() {
        [] => Err(MetricError::NoValues),
        [v] => Ok(*v),
        many => Err(several(many.len(), "targets with values")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use canary_core::spec::types::{MetricTemplateProvider, SecretReference};

    use super::*;

    fn provider(address: &str, secret: bool) -> MetricTemplateProvider {
        MetricTemplateProvider {
            address: Some(address.into()),
            secret_ref: secret.then(|| SecretReference {
                name: Some("graphite".into()),
            }),
            ..Default::default()
        }
    }

    fn src<'a>(
        p: &'a MetricTemplateProvider,
        c: Option<&'a BTreeMap<String, Vec<u8>>>,
    ) -> Source<'a> {
        Source {
            provider: p,
            credentials: c,
            interval: Duration::from_secs(60),
            now_ms: 0,
        }
    }

    #[test]
    fn the_request_is_flaggers() {
        let p = provider("http://graphite.example/prefix/", false);
        // The line break becomes a space that stays in `from`, as in
        // Flagger, and is sent encoded.
        let q = "target=sumSeries(app.http.*.requests.count)&from=-2min\n    &until=now";
        let r = request(&src(&p, None), q).unwrap();
        assert_eq!(
            r.url,
            "http://graphite.example/prefix/render?format=json&from=-2min+&target=sumSeries%28app.http.%2A.requests.count%29&until=now"
        );
        assert!(r.headers.is_empty());
        let c: BTreeMap<String, Vec<u8>> = [("username", "u"), ("password", "p")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let p = provider("http://graphite.example", true);
        let r = request(&src(&p, Some(&c)), "target=x").unwrap();
        assert_eq!(r.url, "http://graphite.example/render?format=json&target=x");
        assert_eq!(
            r.headers,
            [("authorization", "Basic dTpw".to_string(), true)]
        );
        let e = request(&src(&p, Some(&BTreeMap::new())), "target=x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "graphite credentials does not contain a username"
        );
        let none = MetricTemplateProvider::default();
        let e = request(&src(&none, None), "target=x").unwrap_err();
        assert_eq!(e.to_string(), "graphite address  is not a valid URL");
    }

    #[test]
    fn the_last_non_null_datapoint_is_the_value() {
        // The shape of Flagger's test fixtures: numbers or strings, nulls.
        let body = r#"[{"target": "sumSeries(app.http.*.requests.count)", "datapoints": [[3, 1621348400], [null, 1621348410], ["7.5", 1621348420], [null, 1621348430]]}]"#;
        assert_eq!(parse(body).unwrap(), 7.5);
        for body in ["[]", r#"[{"target": "x", "datapoints": [[null, 1]]}]"#] {
            assert!(matches!(parse(body), Err(MetricError::NoValues)), "{body}");
        }
        let two =
            r#"[{"target": "a", "datapoints": [[1, 1]]}, {"target": "b", "datapoints": [[2, 1]]}]"#;
        assert!(parse(two).unwrap_err().to_string().contains("2 targets"));
    }
}
