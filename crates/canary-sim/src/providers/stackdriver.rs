//! Google Cloud Monitoring (Stackdriver): `POST
//! /v3/projects/PROJECT/timeSeries:query` with a Monitoring Query Language
//! query (`{"query": ...}`) and `Authorization: Bearer TOKEN`, and the
//! OAuth 2.0 token endpoint a service account key's `token_uri` names
//! (`POST /token`, the JWT bearer grant).
//!
//! The token endpoint checks the assertion as Google does: an RS256 JWT
//! whose signature verifies with the service account's public key (a
//! fixed test key, `testdata/gcp-service-account.key`), issued by the
//! account's `client_email`, for this endpoint, unexpired, asking for a
//! monitoring scope. It answers an access token that the query endpoint
//! then requires; the query endpoint also checks the project is the
//! account's. Refusals carry Google's shapes (`invalid_grant`; a
//! `google.rpc.Status` with `UNAUTHENTICATED`, `PERMISSION_DENIED`,
//! `INVALID_ARGUMENT`).
//!
//! A mapped query answers one series whose points are the last ten
//! seconds, one a second, newest first, as `doubleValue`s; an unmapped one
//! answers the descriptor without `timeSeriesData`, as the API does when
//! nothing matches.

use axum::http::{Method, StatusCode};
use base64::prelude::{BASE64_STANDARD, BASE64_URL_SAFE_NO_PAD, Engine as _};
use serde_json::{Value, json};

use super::{Answer, Call, Kind, MetricProviders};

/// The test service account's private key (PKCS#8), for key files.
pub(crate) const PRIVATE_KEY: &str = include_str!("../../testdata/gcp-service-account.key");
/// Its public key (PKCS#1), which the token endpoint verifies with.
const PUBLIC_KEY: &str = include_str!("../../testdata/gcp-service-account.pub");
/// The credential keys of issued access tokens.
const ISSUED: &str = "issued:";
const SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/monitoring.read",
    "https://www.googleapis.com/auth/monitoring",
    "https://www.googleapis.com/auth/cloud-platform",
];

/// A service account key file of the test account whose `token_uri` is
/// `token_uri` (this service's `/token`).
pub fn service_account_key(p: &MetricProviders, token_uri: &str) -> String {
    let c = p.credentials(Kind::Stackdriver);
    json!({
        "type": "service_account",
        "project_id": c.get("project"),
        "private_key_id": "5e1f0c2b9a7d4e3f8a6b",
        "private_key": PRIVATE_KEY,
        "client_email": c.get("client_email"),
        "client_id": "104729000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
}

/// The lines of the test private key's body, none of which may appear
/// in any output.
pub fn stackdriver_private_key_lines() -> Vec<&'static str> {
    PRIVATE_KEY
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .collect()
}

fn status(code: StatusCode, name: &str, message: &str) -> Answer {
    Answer::refuse(
        code,
        format!("{name}: {message}"),
        "application/json; charset=UTF-8",
        json!({"error": {"code": code.as_u16(), "message": message, "status": name}}).to_string(),
    )
}

fn oauth_error(error: &str, description: &str) -> Answer {
    Answer::refuse(
        StatusCode::BAD_REQUEST,
        format!("{error}: {description}"),
        "application/json; charset=utf-8",
        json!({"error": error, "error_description": description}).to_string(),
    )
}

pub(super) fn answer(p: &MetricProviders, c: &Call) -> Answer {
    if c.path == "/token" {
        return token(p, c);
    }
    let Some(project) = c
        .path
        .strip_prefix("/v3/projects/")
        .and_then(|r| r.strip_suffix("/timeSeries:query"))
    else {
        return status(StatusCode::NOT_FOUND, "NOT_FOUND", "Not Found");
    };
    if c.method != Method::POST {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Method Not Allowed",
        );
    }
    let bearer = c
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| c.credentials.contains_key(&format!("{ISSUED}{t}"))) {
        return status(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        );
    }
    if project != c.credential("project") {
        return status(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!(
                "Permission monitoring.timeSeries.list denied (or the resource may not exist) on projects/{project}."
            ),
        );
    }
    let query = serde_json::from_slice::<Value>(c.body)
        .ok()
        .and_then(|v| v["query"].as_str().map(str::to_string))
        .filter(|q| !q.trim().is_empty());
    let Some(query) = query else {
        return status(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Field query had an invalid value: the query is empty.",
        );
    };
    let descriptor = json!({
        "pointDescriptors": [{"key": "value", "valueType": "DOUBLE", "metricKind": "GAUGE"}]
    });
    let now = p.now_ms();
    let points = p
        .promql(Kind::Stackdriver, &query, 1000)
        .map(|promql| p.values_over(&promql, now - 10_000, now, 1000))
        .and_then(|series| series.into_iter().next());
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let body = match points {
        Some(mut points) => {
            points.reverse();
            let data: Vec<Value> = points
                .iter()
                .map(|(t, v)| {
                    json!({
                        "values": [{"doubleValue": v}],
                        "timeInterval": {"startTime": time(*t), "endTime": time(*t)},
                    })
                })
                .collect();
            json!({
                "timeSeriesDescriptor": descriptor,
                "timeSeriesData": [{"labelValues": [], "pointData": data}],
            })
        }
        None => json!({ "timeSeriesDescriptor": descriptor }),
    };
    Answer::json(body)
}

/// The JWT bearer grant of a service account.
fn token(p: &MetricProviders, c: &Call) -> Answer {
    let form: Vec<(String, String)> = form_urlencoded::parse(c.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if c.method != Method::POST
        || param("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error("unsupported_grant_type", "Invalid grant_type: ");
    }
    let Some(assertion) = param("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let decode = |s: &str| BASE64_URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok();
    let [head, claims, signature] = parts[..] else {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token",
        );
    };
    let header: Option<Value> = decode(head).and_then(|b| serde_json::from_slice(&b).ok());
    let claims: Option<Value> = decode(claims).and_then(|b| serde_json::from_slice(&b).ok());
    let (Some(header), Some(claims), Some(signature)) = (header, claims, decode(signature)) else {
        return oauth_error("invalid_grant", "Invalid JWT: the token is not a JWT.");
    };
    if header["alg"] != "RS256" {
        return oauth_error("invalid_grant", "Invalid JWT: the algorithm must be RS256.");
    }
    let signed = &assertion[..head.len() + 1 + parts[1].len()];
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key_der(),
    );
    if public.verify(signed.as_bytes(), &signature).is_err() {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    if claims["iss"].as_str() != Some(c.credential("client_email")) {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: the issuer is not the account.",
        );
    }
    if !claims["aud"]
        .as_str()
        .is_some_and(|a| a.ends_with("/stackdriver/token"))
    {
        return oauth_error("invalid_grant", "Invalid JWT audience.");
    }
    let now = chrono::Utc::now().timestamp();
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    if !matches!((iat, exp), (Some(i), Some(e)) if i <= now + 300 && e > now && e - i <= 3600) {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    let scopes = claims["scope"].as_str().unwrap_or("");
    if !scopes.split(' ').any(|s| SCOPES.contains(&s)) {
        return oauth_error("invalid_scope", "No monitoring scope was asked for.");
    }
    let access = format!(
        "ya29.sim{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let mut credentials = p.credentials(Kind::Stackdriver);
    credentials.insert(format!("{ISSUED}{access}"), String::new());
    p.set_credentials(Kind::Stackdriver, credentials);
    Answer::json(json!({
        "access_token": access,
        "expires_in": 3599,
        "token_type": "Bearer",
    }))
}

/// The public key's DER, from its PEM.
fn public_key_der() -> Vec<u8> {
    let b64: String = PUBLIC_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    BASE64_STANDARD.decode(b64).unwrap_or_default()
}
