//! Amazon CloudWatch, as Flagger's `cloudwatch.go` queries it: the query
//! is a JSON array of `MetricDataQueries`, sent in `GetMetricData` with
//! `EndTime` now, `StartTime` ten metric intervals before it and
//! `MaxDatapoints` 20; the value is the first value of the first result
//! (CloudWatch answers newest first). A template needs the `region`
//! (Flagger refuses one without), and reads no Secret: the credentials are
//! the AWS default chain's ([`super::aws`]).
//!
//! The request uses CloudWatch's AWS JSON 1.0 protocol (`POST /` with
//! `X-Amz-Target: GraniteServiceVersion20100801.GetMetricData`), whose
//! member names are the query's own, signed with Signature Version 4
//! (`aws-sigv4`) for the service `monitoring`. It goes to the template's
//! `address` when set (Flagger's SDK ignores it), else to
//! `https://monitoring.REGION.amazonaws.com`.
//!
//! Where Flagger takes the first of several results, a check here is an
//! error naming how many (see [`super::provider`]): give the queries that
//! only feed an expression `"ReturnData": false`.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use http::Method;
use serde_json::{Value, json};

use super::aws::{self, AwsCredentials, Env};
use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, several, undecodable};
use crate::cluster::proxy::HttpEdge;

/// The window is this many metric intervals.
const START_DELTA_INTERVALS: u32 = 10;
/// Flagger's `MaxDatapoints`.
const MAX_DATAPOINTS: u32 = 20;
/// The `X-Amz-Target` of `GetMetricData`.
pub(crate) const TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";
const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// The signing name of CloudWatch.
const SERVICE: &str = "monitoring";

/// The region: the template's `region`, else the one in an
/// `address` of the form `monitoring.REGION.amazonaws.com`, else the
/// AWS environment's or profile's.
pub(crate) fn region(src: &Source, env: Env) -> Result<String, MetricError> {
    if let Some(r) = src.provider.region.as_deref().filter(|r| !r.is_empty()) {
        return Ok(r.to_string());
    }
    let from_address = src.address().and_then(|a| {
        let rest = a.split_once("://").map_or(a, |(_, r)| r);
        let host = rest.split(['/', ':']).next()?;
        let r = host
            .strip_prefix("monitoring.")?
            .strip_suffix(".amazonaws.com")?;
        (!r.is_empty() && !r.contains('.')).then(|| r.to_string())
    });
    from_address
        .or_else(|| aws::default_region(env))
        .ok_or_else(|| MetricError::Query("region not specified".into()))
}

/// The URL queries are posted to.
fn endpoint(src: &Source, region: &str) -> String {
    match src.address() {
        Some(a) if a.ends_with('/') => a.to_string(),
        Some(a) => format!("{a}/"),
        None => format!("https://monitoring.{region}.amazonaws.com/"),
    }
}

/// The `GetMetricData` body of `query`.
pub(crate) fn body(src: &Source, query: &str) -> Result<Vec<u8>, MetricError> {
    let queries: Vec<Value> = serde_json::from_str(query)
        .map_err(|e| MetricError::Query(format!("error unmarshaling query: {e}")))?;
    let end = src.now_ms.div_euclid(1000);
    let start = end - (START_DELTA_INTERVALS as f64 * src.interval.as_secs_f64()) as i64;
    Ok(json!({
        "EndTime": end,
        "MaxDatapoints": MAX_DATAPOINTS,
        "MetricDataQueries": queries,
        "StartTime": start,
    })
    .to_string()
    .into_bytes())
}

/// The signed request of `query`, with `credentials`, at `at`.
pub(crate) fn signed(
    src: &Source,
    query: &str,
    region: &str,
    credentials: &AwsCredentials,
    at: SystemTime,
) -> Result<Outgoing, MetricError> {
    let body = body(src, query)?;
    let url = endpoint(src, region);
    let identity = Credentials::new(
        &credentials.access_key_id,
        &credentials.secret_access_key,
        credentials.session_token.clone(),
        None,
        "canary",
    )
    .into();
    let signing_error = |e: &dyn std::fmt::Display| {
        MetricError::Query(format!("signing the CloudWatch request: {e}"))
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(&e))?
        .into();
    let headers = [("content-type", CONTENT_TYPE), ("x-amz-target", TARGET)];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| signing_error(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| signing_error(&e))?
        .into_parts();
    let mut out = Outgoing {
        method: Method::POST,
        url,
        headers: Vec::new(),
        body: Some(body),
        timeout: super::prometheus::DEFAULT_TIMEOUT,
    };
    out = out
        .header("content-type", CONTENT_TYPE.into(), false)
        .header("x-amz-target", TARGET.into(), false);
    for (name, value) in instructions.headers() {
        let (name, secret): (&'static str, bool) = match name.to_ascii_lowercase().as_str() {
            "authorization" => ("authorization", true),
            "x-amz-date" => ("x-amz-date", false),
            "x-amz-security-token" => ("x-amz-security-token", true),
            "x-amz-content-sha256" => ("x-amz-content-sha256", false),
            other => {
                return Err(MetricError::Query(format!(
                    "signing the CloudWatch request: unexpected header {other}"
                )));
            }
        };
        out = out.header(name, value.to_string(), secret);
    }
    Ok(out)
}

/// The request of `query`, signed with the chain's credentials.
pub(crate) async fn request(
    edge: &HttpEdge,
    src: &Source<'_>,
    query: &str,
) -> Result<Outgoing, MetricError> {
    let env: Env = &aws::process_env;
    let region = region(src, env)?;
    // A bad query is refused before credentials are looked for.
    body(src, query)?;
    let credentials = aws::credentials(edge, env, &region).await?;
    signed(src, query, &region, &credentials, SystemTime::now())
}

pub(crate) fn parse(body: &str) -> Result<f64, MetricError> {
    let v: Value = serde_json::from_str(body).map_err(|e| undecodable(e, body))?;
    let results = v["MetricDataResults"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    match results {
        [] => Err(MetricError::NoValues),
        [one] => one["Values"]
            .as_array()
            .and_then(|v| v.first())
            .and_then(Value::as_f64)
            .ok_or(MetricError::NoValues),
        many => Err(several(many.len(), "results")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use canary_core::spec::types::MetricTemplateProvider;

    use super::*;

    /// The query of Flagger's test: an error rate from two metrics.
    const QUERY: &str = r#"
[
    {"Id": "e1", "Expression": "m1 / m2", "Label": "ErrorRate"},
    {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "MyApplication", "MetricName": "Errors",
        "Dimensions": [{"Name": "FunctionName", "Value": "MyFunc"}]}, "Period": 300, "Stat": "Sum",
        "Unit": "Count"}, "ReturnData": false},
    {"Id": "m2", "MetricStat": {"Metric": {"Namespace": "MyApplication", "MetricName": "Invocations",
        "Dimensions": [{"Name": "FunctionName", "Value": "MyFunc"}]}, "Period": 300, "Stat": "Sum",
        "Unit": "Count"}, "ReturnData": false}
]"#;

    fn creds(token: Option<&str>) -> AwsCredentials {
        AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
            source: "test".into(),
        }
    }

    #[test]
    fn the_request_is_flaggers_signed() {
        let p = MetricTemplateProvider {
            region: Some("ap-east-1".into()),
            ..Default::default()
        };
        let src = Source {
            provider: &p,
            credentials: None,
            interval: Duration::from_secs(300),
            now_ms: 1_700_000_000_900,
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let r = signed(&src, QUERY, "ap-east-1", &creds(None), at).unwrap();
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.url, "https://monitoring.ap-east-1.amazonaws.com/");
        let body: Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        // Ten intervals of five minutes.
        assert_eq!(body["EndTime"], 1_700_000_000);
        assert_eq!(body["StartTime"], 1_700_000_000 - 3000);
        assert_eq!(body["MaxDatapoints"], 20);
        assert_eq!(body["MetricDataQueries"][0]["Expression"], "m1 / m2");
        assert_eq!(body["MetricDataQueries"][2]["ReturnData"], false);
        let header = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _, _)| *k == n)
                .map(|(_, v, s)| (v.as_str(), *s))
        };
        assert_eq!(
            header("x-amz-target"),
            Some(("GraniteServiceVersion20100801.GetMetricData", false))
        );
        assert_eq!(
            header("content-type"),
            Some(("application/x-amz-json-1.0", false))
        );
        assert_eq!(header("x-amz-date"), Some(("20231114T221320Z", false)));
        let (auth, secret) = header("authorization").unwrap();
        assert!(secret);
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/ap-east-1/monitoring/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
            ),
            "{auth}"
        );
        assert_eq!(header("x-amz-security-token"), None);

        let r = signed(&src, QUERY, "ap-east-1", &creds(Some("FwoG-session")), at).unwrap();
        let token = r
            .headers
            .iter()
            .find(|(k, _, _)| *k == "x-amz-security-token")
            .unwrap();
        assert_eq!((token.1.as_str(), token.2), ("FwoG-session", true));

        let e = signed(&src, "{not json", "ap-east-1", &creds(None), at).unwrap_err();
        assert!(
            e.to_string().starts_with("error unmarshaling query: "),
            "{e}"
        );
    }

    #[test]
    fn the_region_is_the_templates_or_the_addresses_or_the_environments() {
        let none = |_: &str| None;
        let with = |region: Option<&str>, address: Option<&str>| MetricTemplateProvider {
            region: region.map(str::to_string),
            address: address.map(str::to_string),
            ..Default::default()
        };
        let src = |p| Source {
            provider: p,
            credentials: None,
            interval: Duration::from_secs(60),
            now_ms: 0,
        };
        let p = with(Some("eu-west-1"), None);
        assert_eq!(region(&src(&p), &none).unwrap(), "eu-west-1");
        let p = with(None, Some("https://monitoring.us-east-2.amazonaws.com"));
        assert_eq!(region(&src(&p), &none).unwrap(), "us-east-2");
        assert_eq!(
            endpoint(&src(&p), "us-east-2"),
            "https://monitoring.us-east-2.amazonaws.com/"
        );
        let p = with(None, Some("http://127.0.0.1:9/cloudwatch"));
        let env = |k: &str| (k == "AWS_REGION").then(|| "sa-east-1".to_string());
        assert_eq!(region(&src(&p), &env).unwrap(), "sa-east-1");
        let p = with(None, None);
        let dir = tempfile::tempdir().unwrap();
        let files = |k: &str| match k {
            "AWS_CONFIG_FILE" | "AWS_SHARED_CREDENTIALS_FILE" => {
                Some(dir.path().join("none").display().to_string())
            }
            _ => None,
        };
        assert_eq!(
            region(&src(&p), &files).unwrap_err().to_string(),
            "region not specified"
        );
    }

    #[test]
    fn the_first_value_of_the_result_is_the_value() {
        // Flagger's fixtures: one result with 100; results without values.
        let ok = r#"{"MetricDataResults": [{"Id": "e1", "Label": "ErrorRate", "StatusCode": "Complete", "Timestamps": [1700000000, 1699999700], "Values": [100.0, 3.5]}], "Messages": []}"#;
        assert_eq!(parse(ok).unwrap(), 100.0);
        for body in [
            r#"{"MetricDataResults": [{"Id": "e1", "Values": []}]}"#,
            r#"{"MetricDataResults": []}"#,
            r#"{}"#,
        ] {
            assert!(matches!(parse(body), Err(MetricError::NoValues)), "{body}");
        }
        let two = r#"{"MetricDataResults": [{"Values": [1]}, {"Values": [2]}]}"#;
        assert!(parse(two).unwrap_err().to_string().contains("2 results"));
    }
}
