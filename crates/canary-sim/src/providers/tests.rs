//! Each service through its HTTP face: the credentials it wants, the
//! shape of its answer for a mapped query, an unknown one, and a refusal.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use super::{Kind, MetricProviders};
use crate::series::{SeriesStore, StoreConfig};

fn providers() -> Arc<MetricProviders> {
    let p = MetricProviders::new(Arc::new(SeriesStore::new(StoreConfig::realtime())));
    p.map_query(Kind::Datadog, "avg:errors{app:podinfo}", "vector(42)");
    p.map_query(
        Kind::Newrelic,
        "SELECT average(errors) FROM Metric",
        "vector(42)",
    );
    p.map_query(Kind::Graphite, "sumSeries(errors.podinfo)", "vector(42)");
    p.map_query(Kind::Dynatrace, "builtin:service.errors", "vector(42)");
    p.map_query(
        Kind::Influxdb,
        "from(bucket: \"m\") |> range(start: -10s) |> mean()",
        "vector(42)",
    );
    p
}

async fn send(p: &Arc<MetricProviders>, req: Request<Body>) -> (StatusCode, String) {
    let r = p.router().oneshot(req).await.unwrap();
    let status = r.status();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::empty()).unwrap()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn now_s() -> i64 {
    crate::series::now_ms() / 1000
}

#[tokio::test]
async fn datadog_wants_both_keys_and_answers_pointlists() {
    let p = providers();
    let keys = p.credentials(Kind::Datadog);
    let (api, app) = (&keys["datadog_api_key"], &keys["datadog_application_key"]);
    let to = now_s();
    let uri = |q: &str| {
        format!(
            "/datadog/api/v1/query?from={}&query={}&to={to}",
            to - 100,
            enc(q)
        )
    };
    let (s, body) = send(
        &p,
        get(
            &uri("avg:errors{app:podinfo}"),
            &[("DD-API-KEY", api), ("DD-APPLICATION-KEY", app)],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let first = &v["series"][0]["pointlist"][0];
    assert_eq!(first[1], json!(42.0));
    assert!(first[0].as_f64().unwrap() >= ((to - 100) * 1000) as f64);

    let (s, body) = send(
        &p,
        get(
            &uri("avg:unknown{*}"),
            &[("DD-API-KEY", api), ("DD-APPLICATION-KEY", app)],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["series"],
        json!([])
    );

    let (s, body) = send(
        &p,
        get(&uri("avg:errors{app:podinfo}"), &[("DD-API-KEY", api)]),
    )
    .await;
    assert_eq!(
        (s, body.as_str()),
        (StatusCode::FORBIDDEN, r#"{"errors":["Forbidden"]}"#)
    );
    let (s, _) = send(&p, get("/datadog/api/v1/validate", &[("DD-API-KEY", api)])).await;
    assert_eq!(s, StatusCode::OK);
    let refused = p
        .requests()
        .into_iter()
        .filter(|r| r.refused.is_some())
        .count();
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn newrelic_wants_the_account_and_key_and_answers_results() {
    let p = providers();
    let keys = p.credentials(Kind::Newrelic);
    let (account, key) = (&keys["newrelic_account_id"], &keys["newrelic_query_key"]);
    let uri =
        |account: &str, q: &str| format!("/newrelic/v1/accounts/{account}/query?nrql={}", enc(q));
    let (s, body) = send(
        &p,
        get(
            &uri(
                account,
                "SELECT average(errors) FROM Metric SINCE 60 seconds ago",
            ),
            &[("X-Query-Key", key)],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["results"],
        json!([{"result": 42.0}])
    );
    let (_, body) = send(
        &p,
        get(
            &uri(account, "SELECT x FROM Metric"),
            &[("X-Query-Key", key)],
        ),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["results"],
        json!([{"result": null}])
    );
    let (s, _) = send(
        &p,
        get(&uri("1", "SELECT x FROM Metric"), &[("X-Query-Key", key)]),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = send(&p, get(&uri(account, "errors"), &[("X-Query-Key", key)])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn graphite_wants_basic_auth_and_answers_datapoints() {
    let p = providers();
    let keys = p.credentials(Kind::Graphite);
    let auth = format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!("{}:{}", keys["username"], keys["password"]))
    );
    let uri = |t: &str| format!("/graphite/render?format=json&from=-10s&target={}", enc(t));
    let (s, body) = send(
        &p,
        get(
            &uri("sumSeries(errors.podinfo)"),
            &[("Authorization", &auth)],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let points = v[0]["datapoints"].as_array().unwrap();
    assert_eq!(points.len(), 10);
    assert_eq!(points.last().unwrap()[0], json!(42.0));
    assert_eq!(v[0]["target"], "sumSeries(errors.podinfo)");
    let (_, body) = send(&p, get(&uri("nothing.here"), &[("Authorization", &auth)])).await;
    assert_eq!(body, "[]");
    let (s, _) = send(&p, get(&uri("sumSeries(errors.podinfo)"), &[])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn dynatrace_wants_an_api_token_and_answers_one_value_per_series() {
    let p = providers();
    let token = format!(
        "Api-Token {}",
        p.credentials(Kind::Dynatrace)["dynatrace_token"]
    );
    let to = now_s() * 1000;
    let uri = |sel: &str| {
        format!(
            "/dynatrace/api/v2/metrics/query?from={}&metricSelector={}&resolution=Inf&to={to}",
            to - 100_000,
            enc(sel)
        )
    };
    let (s, body) = send(
        &p,
        get(&uri("builtin:service.errors"), &[("Authorization", &token)]),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"][0]["data"][0]["values"], json!([42.0]));
    assert_eq!(v["result"][0]["data"][0]["timestamps"], json!([to]));
    let (_, body) = send(
        &p,
        get(&uri("builtin:nothing"), &[("Authorization", &token)]),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["result"][0]["data"],
        json!([])
    );
    let (s, body) = send(
        &p,
        get(
            &uri("builtin:service.errors"),
            &[("Authorization", "Bearer x")],
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("\"code\":401"), "{body}");
}

#[tokio::test]
async fn influxdb_wants_a_token_and_org_and_answers_annotated_csv() {
    let p = providers();
    let keys = p.credentials(Kind::Influxdb);
    let post = |org: &str, token: &str, q: &str| {
        Request::post(format!("/influxdb/api/v2/query?org={org}"))
            .header("Authorization", format!("Token {token}"))
            .header("Content-Type", "application/json")
            .body(Body::from(json!({"query": q, "type": "flux"}).to_string()))
            .unwrap()
    };
    let q = "from(bucket: \"m\")\n  |> range(start: -10s)\n  |> mean()";
    let (s, body) = send(&p, post(&keys["org"], &keys["token"], q)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body.starts_with("#datatype,"), "{body}");
    assert!(body.contains(",42,value,canary\r\n"), "{body}");
    let (_, body) = send(
        &p,
        post(&keys["org"], &keys["token"], "from(bucket: \"x\")"),
    )
    .await;
    assert_eq!(body, "\r\n");
    let (s, _) = send(&p, post("other", &keys["token"], q)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = send(&p, post(&keys["org"], "wrong", q)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        r#"{"code":"unauthorized","message":"unauthorized access"}"#
    );
}

/// A `GetMetricData` request for `queries`, signed as an AWS SDK signs
/// it with `secret` (and `token`) at `at`.
fn cloudwatch_request(
    access_key: &str,
    secret: &str,
    token: Option<&str>,
    at: std::time::SystemTime,
    queries: &str,
) -> Request<Body> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let to = now_s();
    let body = format!(
        r#"{{"MetricDataQueries": {queries}, "StartTime": {}, "EndTime": {to}, "MaxDatapoints": 20}}"#,
        to - 10
    );
    let identity = aws_credential_types::Credentials::new(
        access_key,
        secret,
        token.map(str::to_string),
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("monitoring")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [
        ("content-type", "application/x-amz-json-1.0"),
        ("x-amz-target", super::cloudwatch::TARGET),
        ("host", "sim.local"),
    ];
    let signable = SignableRequest::new(
        "POST",
        "http://sim.local/cloudwatch/",
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut b = Request::post("/cloudwatch/");
    for (k, v) in headers.into_iter().chain(instructions.headers()) {
        b = b.header(k, v);
    }
    b.body(Body::from(body)).unwrap()
}

const CW_QUERY: &str = r#"[{"Id": "e1", "Expression": "m1 / 2", "Label": "Half"},
  {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Errors"}, "Period": 1, "Stat": "Sum"}, "ReturnData": false}]"#;

#[tokio::test]
async fn cloudwatch_checks_the_signature_and_answers_newest_first() {
    let p = providers();
    p.map_query(Kind::Cloudwatch, CW_QUERY, "vector(42)");
    let keys = p.credentials(Kind::Cloudwatch);
    let (id, secret) = (&keys["aws_access_key_id"], &keys["aws_secret_access_key"]);
    let now = std::time::SystemTime::now();
    let (s, body) = send(&p, cloudwatch_request(id, secret, None, now, CW_QUERY)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let results = v["MetricDataResults"].as_array().unwrap();
    assert_eq!(results.len(), 1, "only the query returning data: {body}");
    assert_eq!(results[0]["Id"], "e1");
    assert_eq!(results[0]["Values"][0], 42.0);
    let t = results[0]["Timestamps"].as_array().unwrap();
    assert!(!t.is_empty(), "{body}");
    assert!(
        t.windows(2).all(|w| w[0].as_f64() > w[1].as_f64()),
        "newest first: {body}"
    );

    // An unknown metric: the result, without values.
    let other = CW_QUERY.replace("Errors", "Unknown");
    let (s, body) = send(&p, cloudwatch_request(id, secret, None, now, &other)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["MetricDataResults"][0]["Values"], json!([]));

    // A wrong secret, a stale date, an unknown key, no signature.
    let (s, body) = send(&p, cloudwatch_request(id, "wrong", None, now, CW_QUERY)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("InvalidSignatureException"), "{body}");
    assert!(body.contains("does not match the signature"), "{body}");
    let stale = now - std::time::Duration::from_secs(600);
    let (s, body) = send(&p, cloudwatch_request(id, secret, None, stale, CW_QUERY)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("Signature expired"), "{body}");
    let (s, body) = send(
        &p,
        cloudwatch_request("AKIAUNKNOWN000000000", secret, None, now, CW_QUERY),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("UnrecognizedClientException"), "{body}");
    let mut unsigned = cloudwatch_request(id, secret, None, now, CW_QUERY);
    unsigned.headers_mut().remove("authorization");
    let (s, body) = send(&p, unsigned).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body.contains("MissingAuthenticationTokenException"),
        "{body}"
    );
    // A body changed after signing.
    let (parts, _) = cloudwatch_request(id, secret, None, now, CW_QUERY).into_parts();
    let tampered = Request::from_parts(parts, Body::from("{}"));
    let (s, _) = send(&p, tampered).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sts_exchanges_a_web_identity_for_credentials_cloudwatch_accepts() {
    let p = providers();
    p.map_query(Kind::Cloudwatch, CW_QUERY, "vector(42)");
    let keys = p.credentials(Kind::Cloudwatch);
    let form = |token: &str, role: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", role)
            .append_pair("RoleSessionName", "test")
            .append_pair("WebIdentityToken", token)
            .finish()
    };
    let post = |body: String| {
        Request::post("/cloudwatch/sts/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let (s, body) = send(&p, post(form("forged", &keys["role_arn"]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("<Code>InvalidIdentityToken</Code>"), "{body}");
    let (s, body) = send(
        &p,
        post(form(
            &keys["web_identity_token"],
            "arn:aws:iam::1:role/other",
        )),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");

    let (s, body) = send(
        &p,
        post(form(&keys["web_identity_token"], &keys["role_arn"])),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let field = |tag: &str| {
        let start = body.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
        let end = start + body[start..].find('<').unwrap();
        body[start..end].to_string()
    };
    let (id, secret, token) = (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
    );
    assert!(id.starts_with("ASIA"), "{id}");
    let now = std::time::SystemTime::now();
    let (s, body) = send(
        &p,
        cloudwatch_request(&id, &secret, Some(&token), now, CW_QUERY),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The temporary key without its session token is refused.
    let (s, _) = send(&p, cloudwatch_request(&id, &secret, None, now, CW_QUERY)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// A JWT bearer assertion of the test service account, signed with its
/// key unless `forge`.
fn assertion(p: &MetricProviders, scope: &str, forge: bool) -> String {
    use base64::prelude::BASE64_URL_SAFE_NO_PAD;
    let pem: String = super::stackdriver::PRIVATE_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = BASE64_STANDARD.decode(pem).unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let now = now_s();
    let claims = json!({
        "iss": p.credentials(Kind::Stackdriver)["client_email"],
        "aud": "http://sim.local/stackdriver/token",
        "scope": scope,
        "iat": now,
        "exp": now + 3595,
    });
    let signed = format!(
        "{}.{}",
        BASE64_URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        BASE64_URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    if forge {
        sig[0] ^= 1;
    }
    format!("{signed}.{}", BASE64_URL_SAFE_NO_PAD.encode(sig))
}

#[tokio::test]
async fn stackdriver_issues_tokens_for_signed_assertions_and_requires_them() {
    let p = providers();
    let q = "fetch k8s_container | metric 'x' | every 1m";
    p.map_query(Kind::Stackdriver, q, "vector(42)");
    let project = p.credentials(Kind::Stackdriver)["project"].clone();
    let grant = |assertion: String| {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", &assertion)
            .finish();
        Request::post("/stackdriver/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let scope = "https://www.googleapis.com/auth/monitoring.read";
    let (s, body) = send(&p, grant(assertion(&p, scope, true))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("Invalid JWT Signature"), "{body}");
    let (s, body) = send(
        &p,
        grant(assertion(
            &p,
            "https://www.googleapis.com/auth/drive",
            false,
        )),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("invalid_scope"), "{body}");
    let (s, body) = send(&p, grant(assertion(&p, scope, false))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let query = |project: &str, bearer: Option<&str>, q: &str| {
        let mut b = Request::post(format!(
            "/stackdriver/v3/projects/{project}/timeSeries:query"
        ))
        .header("content-type", "application/json");
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::from(json!({ "query": q }).to_string()))
            .unwrap()
    };
    let (s, body) = send(&p, query(&project, Some(&token), q)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["timeSeriesData"][0]["pointData"][0]["values"][0]["doubleValue"],
        42.0
    );
    let (s, body) = send(&p, query(&project, Some(&token), "fetch other")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!body.contains("timeSeriesData"), "{body}");
    let (s, body) = send(&p, query(&project, Some("ya29.forged"), q)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("UNAUTHENTICATED"), "{body}");
    let (s, _) = send(&p, query(&project, None, q)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = send(&p, query("someone-else", Some(&token), q)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(body.contains("PERMISSION_DENIED"), "{body}");
    let (s, body) = send(&p, query(&project, Some(&token), "")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("INVALID_ARGUMENT"), "{body}");
}
