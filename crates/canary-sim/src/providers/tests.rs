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
