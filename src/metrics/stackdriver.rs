//! Google Cloud Monitoring (Stackdriver), as Flagger's `stackdriver.go`
//! queries it: the query is Monitoring Query Language, run by
//! `timeSeries:query` on `projects/<project>`, the project being the
//! `project` key of the template's Secret (required when the template has
//! a `secretRef`). The value is the first value of the first point (the
//! newest) of the first series.
//!
//! Credentials: the Secret's `serviceAccountKey` (a service account key
//! file's JSON) when it has one, as in Flagger; else Google's application
//! default credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user
//! credentials, the metadata server), by the `gcp_auth` crate, which also
//! gives the project when the template has no Secret. The access token,
//! for the `monitoring.read` scope, goes in `Authorization: Bearer`.
//!
//! The request is the REST form of the API, `POST
//! <address>/v3/projects/<project>/timeSeries:query` with `{"query": ...}`,
//! to the template's `address` when set (Flagger's gRPC client ignores
//! it), else `https://monitoring.googleapis.com`. Unlike Flagger, several
//! series are an error naming how many, and an `int64Value` is read
//! (Flagger reads only a `doubleValue`, 0 for any other).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use gcp_auth::{CustomServiceAccount, TokenProvider};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, several, undecodable};

pub(crate) const DEFAULT_ADDRESS: &str = "https://monitoring.googleapis.com";
/// The scope asked for, the narrowest that reads time series.
const SCOPE: &str = "https://www.googleapis.com/auth/monitoring.read";

/// The project's resource name: from the Secret's `project` when the
/// template has a Secret (Flagger's words when it lacks it).
pub(crate) fn project(src: &Source) -> Result<Option<String>, MetricError> {
    match src.credentials {
        Some(c) => c
            .get("project")
            .map(|p| Some(String::from_utf8_lossy(p).trim().to_string()))
            .ok_or_else(|| {
                MetricError::Query("stackdriver credentials does not contain a project id".into())
            }),
        None => Ok(None),
    }
}

/// The request of `query` on `project` with the access token `token`.
pub(crate) fn request_with(
    src: &Source,
    query: &str,
    project: &str,
    token: &str,
) -> Result<Outgoing, MetricError> {
    let address = src
        .address()
        .unwrap_or(DEFAULT_ADDRESS)
        .trim_end_matches('/');
    let mut out = Outgoing::get(format!("{address}/v3/projects/{project}/timeSeries:query"));
    out.method = http::Method::POST;
    out.body = Some(json!({ "query": query }).to_string().into_bytes());
    Ok(out
        .header("content-type", "application/json".into(), false)
        .header("authorization", format!("Bearer {token}"), true))
}

/// Service account key providers by the key's digest: each keeps its
/// token until it is about to expire.
static ACCOUNTS: Mutex<Option<HashMap<Vec<u8>, Arc<CustomServiceAccount>>>> = Mutex::new(None);

fn auth_error(e: gcp_auth::Error) -> MetricError {
    MetricError::Query(format!("Google credentials: {e}"))
}

/// The token provider: the Secret's service account key, else the
/// application default credentials.
async fn provider(src: &Source<'_>) -> Result<Arc<dyn TokenProvider>, MetricError> {
    if let Some(key) = src.credentials.and_then(|c| c.get("serviceAccountKey")) {
        let digest = Sha256::digest(key).to_vec();
        let mut accounts = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let accounts = accounts.get_or_insert_with(HashMap::new);
        if let Some(a) = accounts.get(&digest) {
            return Ok(a.clone());
        }
        let account = CustomServiceAccount::from_json(&String::from_utf8_lossy(key))
            .map_err(|e| MetricError::Query(format!("serviceAccountKey: {e}")))?;
        let account = Arc::new(account);
        accounts.insert(digest, account.clone());
        return Ok(account);
    }
    gcp_auth::provider().await.map_err(auth_error)
}

/// The request of `query`, with an access token of the credentials.
pub(crate) async fn request(src: &Source<'_>, query: &str) -> Result<Outgoing, MetricError> {
    let project = project(src)?;
    let provider = provider(src).await?;
    let project = match project {
        Some(p) => p,
        None => provider.project_id().await.map_err(auth_error)?.to_string(),
    };
    let token = provider.token(&[SCOPE]).await.map_err(auth_error)?;
    request_with(src, query, &project, token.as_str())
}

pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| undecodable(e, body))?;
    let series = v["timeSeriesData"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let one = match series {
        [] => return Err(MetricError::NoValues),
        [one] => one,
        many => return Err(several(many.len(), "series")),
    };
    let value = &one["pointData"][0]["values"][0];
    value["doubleValue"]
        .as_f64()
        .or_else(|| {
            value["int64Value"]
                .as_str()?
                .parse::<i64>()
                .ok()
                .map(|i| i as f64)
        })
        .or_else(|| value["int64Value"].as_i64().map(|i| i as f64))
        .ok_or(MetricError::NoValues)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use canary_core::spec::types::MetricTemplateProvider;

    use super::*;

    /// The query of Flagger's test.
    const QUERY: &str = "fetch k8s_container | metric 'istio.io/service/server/response_latencies' | align delta(1m) | every 1m | group_by [], [p99: percentile(value.response_latencies, 99)]";

    #[test]
    fn the_request_is_the_rest_form_of_flaggers() {
        let p = MetricTemplateProvider::default();
        let c: BTreeMap<String, Vec<u8>> = [("project".to_string(), b"my-project".to_vec())].into();
        let src = Source {
            provider: &p,
            credentials: Some(&c),
            interval: Duration::from_secs(60),
            now_ms: 0,
        };
        assert_eq!(project(&src).unwrap().as_deref(), Some("my-project"));
        let r = request_with(&src, QUERY, "my-project", "ya29.token").unwrap();
        assert_eq!(r.method, http::Method::POST);
        assert_eq!(
            r.url,
            "https://monitoring.googleapis.com/v3/projects/my-project/timeSeries:query"
        );
        let body: Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!(body, json!({ "query": QUERY }));
        assert!(
            r.headers
                .contains(&("authorization", "Bearer ya29.token".into(), true))
        );
        // Flagger's test: a Secret without a project.
        let empty = BTreeMap::new();
        let src = Source {
            credentials: Some(&empty),
            ..src
        };
        assert_eq!(
            project(&src).unwrap_err().to_string(),
            "stackdriver credentials does not contain a project id"
        );
    }

    #[test]
    fn the_first_value_of_the_first_point_is_the_value() {
        // Flagger's fixture: one series, one point, 100.
        let ok = r#"{"timeSeriesData": [{"pointData": [{"values": [{"doubleValue": 100}]}, {"values": [{"doubleValue": 7}]}]}]}"#;
        assert_eq!(parse(ok).unwrap(), 100.0);
        let int = r#"{"timeSeriesData": [{"pointData": [{"values": [{"int64Value": "12"}]}]}]}"#;
        assert_eq!(parse(int).unwrap(), 12.0);
        for body in [
            r#"{"timeSeriesData": []}"#,
            r#"{"timeSeriesDescriptor": {}}"#,
            r#"{"timeSeriesData": [{"pointData": []}]}"#,
            r#"{"timeSeriesData": [{"pointData": [{"values": []}]}]}"#,
        ] {
            assert!(matches!(parse(body), Err(MetricError::NoValues)), "{body}");
        }
        let two = r#"{"timeSeriesData": [{"pointData": []}, {"pointData": []}]}"#;
        assert!(parse(two).unwrap_err().to_string().contains("2 series"));
    }
}
