//! Amazon CloudWatch's `GetMetricData` in the AWS JSON 1.0 protocol
//! (`POST /` with `Content-Type: application/x-amz-json-1.0` and
//! `X-Amz-Target: GraniteServiceVersion20100801.GetMetricData`), and the
//! AWS Security Token Service's `AssumeRoleWithWebIdentity` under `/sts`
//! (awsQuery: a form-encoded `POST`, an XML answer).
//!
//! CloudWatch checks the request's Signature Version 4 as AWS does: the
//! access key must be known (the service's own, or temporary credentials
//! this STS issued), the signature is computed again over the signed
//! headers and the body with that key's secret and must be the same, and
//! the signing time must be within five minutes of the wall clock.
//! Refusals carry CloudWatch's JSON error shape (`__type`, `message`).
//!
//! STS checks the role ARN and the web identity token against the
//! service's `role_arn` and `web_identity_token` and answers temporary
//! credentials, valid for an hour, that CloudWatch then accepts.
//!
//! The query table's key is the `MetricDataQueries` array, compact JSON.
//! A mapped array answers one `MetricDataResult` for its first query that
//! returns data, the points one `Period` apart, newest first (CloudWatch's
//! default `TimestampDescending`), at most `MaxDatapoints`. An unmapped
//! one answers its results with no values, as CloudWatch does for a metric
//! with no data.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Answer, Call, Kind, MetricProviders};

/// The target of `GetMetricData` in the JSON protocol.
pub const TARGET: &str = "GraniteServiceVersion20100801.GetMetricData";
/// How far a signing time may be from the wall clock.
const SKEW: Duration = Duration::from_secs(5 * 60);
/// How long issued temporary credentials are valid.
const ISSUED_FOR: Duration = Duration::from_secs(3600);
/// The credential keys of temporary credentials issued by STS: the
/// access key id follows the prefix, the value is `secret token`.
const ISSUED: &str = "issued:";

fn error(status: StatusCode, kind: &str, message: &str) -> Answer {
    Answer::refuse(
        status,
        format!("{kind}: {message}"),
        "application/x-amz-json-1.0",
        json!({ "__type": kind, "message": message }).to_string(),
    )
}

/// The table key of a `MetricDataQueries` array: compact JSON, or the
/// text itself when it is not JSON.
pub fn key(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| text.to_string())
}

pub(super) fn answer(p: &MetricProviders, c: &Call) -> Answer {
    if c.path == "/sts" || c.path.starts_with("/sts/") {
        return sts(p, c);
    }
    if c.method != Method::POST || !(c.path.is_empty() || c.path == "/") {
        return error(
            StatusCode::NOT_FOUND,
            "com.amazon.coral.service#UnknownOperationException",
            "",
        );
    }
    if let Err(refused) = verify(c) {
        return refused;
    }
    if !c
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-amz-json-1.0"))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.service#SerializationException",
            "the content type is not application/x-amz-json-1.0",
        );
    }
    if c.header("x-amz-target") != Some(TARGET) {
        return error(
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.service#UnknownOperationException",
            "",
        );
    }
    let invalid = |message: &str| {
        error(
            StatusCode::BAD_REQUEST,
            "com.amazonaws.cloudwatch#InvalidParameterValueException",
            message,
        )
    };
    let Ok(body) = serde_json::from_slice::<Value>(c.body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.service#SerializationException",
            "the body is not JSON",
        );
    };
    let Some(queries) = body["MetricDataQueries"]
        .as_array()
        .filter(|q| !q.is_empty())
    else {
        return invalid("The parameter MetricDataQueries is required.");
    };
    let (Some(start), Some(end)) = (body["StartTime"].as_f64(), body["EndTime"].as_f64()) else {
        return invalid("The parameters StartTime and EndTime are required.");
    };
    if start >= end {
        return invalid("The parameter StartTime must be less than the parameter EndTime.");
    }
    if queries.iter().any(|q| q["Id"].as_str().is_none()) {
        return invalid("Every query needs an Id.");
    }
    let max = body["MaxDatapoints"].as_u64().unwrap_or(100_800) as usize;
    let returned: Vec<&Value> = queries
        .iter()
        .filter(|q| q["ReturnData"].as_bool() != Some(false))
        .collect();
    let (start_ms, end_ms) = ((start * 1000.0) as i64, (end * 1000.0) as i64);
    let text = Value::Array(queries.clone()).to_string();
    let mapped = p.promql(Kind::Cloudwatch, &text, end_ms - start_ms);
    let results: Vec<Value> = returned
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let period = q["MetricStat"]["Period"]
                .as_i64()
                .or(q["Period"].as_i64())
                .unwrap_or(60)
                .max(1);
            let mut points = match (&mapped, i) {
                (Some(promql), 0) => p
                    .values_over(promql, start_ms, end_ms, period * 1000)
                    .into_iter()
                    .next()
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            points.reverse();
            points.truncate(max);
            json!({
                "Id": q["Id"],
                "Label": q["Label"].as_str().or(q["MetricStat"]["Metric"]["MetricName"].as_str()).unwrap_or(""),
                "Timestamps": points.iter().map(|(t, _)| *t as f64 / 1000.0).collect::<Vec<_>>(),
                "Values": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
                "StatusCode": "Complete",
            })
        })
        .collect();
    Answer {
        status: StatusCode::OK,
        content_type: "application/x-amz-json-1.0",
        body: json!({ "MetricDataResults": results, "Messages": [] }).to_string(),
        refused: None,
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn authorization(value: &str) -> Option<Authorization<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let (access_key, date, region, service, terminal) = (
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
        scope.next()?,
    );
    if terminal != "aws4_request" || scope.next().is_some() {
        return None;
    }
    Some(Authorization {
        access_key,
        date,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

fn denied(kind: &str, message: &str) -> Answer {
    error(
        StatusCode::FORBIDDEN,
        &format!("com.amazon.coral.service#{kind}"),
        message,
    )
}

/// Checks the request's signature as AWS does.
fn verify(c: &Call) -> Result<(), Answer> {
    let Some(value) = c.header("authorization") else {
        return Err(denied(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let Some(auth) = authorization(value) else {
        return Err(denied(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' \
             parameters.",
        ));
    };
    let token = c.header("x-amz-security-token");
    let (secret, session) = if auth.access_key == c.credential("aws_access_key_id") {
        (c.credential("aws_secret_access_key").to_string(), None)
    } else if let Some((secret, issued)) = c
        .credentials
        .get(&format!("{ISSUED}{}", auth.access_key))
        .and_then(|v| v.split_once(' '))
    {
        if token != Some(issued) {
            return Err(denied(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        (secret.to_string(), Some(issued.to_string()))
    } else {
        return Err(denied(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    };
    let Some(amz_date) = c.header("x-amz-date") else {
        return Err(denied(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    let Ok(at) = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ") else {
        return Err(denied(
            "IncompleteSignatureException",
            "Date must be in ISO-8601 'basic format'.",
        ));
    };
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(at.and_utc().timestamp().max(0) as u64);
    let now = SystemTime::now();
    let skew = now
        .duration_since(at)
        .or_else(|_| at.duration_since(now).map_err(|_| ()))
        .unwrap_or_default();
    if skew > SKEW {
        return Err(denied(
            "InvalidSignatureException",
            &format!("Signature expired: {amz_date} is now earlier than the last five minutes."),
        ));
    }
    if !amz_date.starts_with(auth.date) || auth.service != "monitoring" {
        return Err(denied(
            "InvalidSignatureException",
            "Credential should be scoped to a valid date and the monitoring service.",
        ));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(denied(
            "InvalidSignatureException",
            "Signature must sign the host header.",
        ));
    }
    let host = c.header("host").unwrap_or("");
    let uri = format!("http://{host}/{}{}", Kind::Cloudwatch.name(), c.path);
    let headers: Vec<(&str, &str)> = auth
        .signed_headers
        .iter()
        .filter(|h| !matches!(**h, "x-amz-date" | "x-amz-security-token"))
        .map(|h| (*h, c.header(h).unwrap_or("")))
        .collect();
    let identity = Credentials::new(auth.access_key, secret, session, None, "sim").into();
    let expected = v4::SigningParams::builder()
        .identity(&identity)
        .region(auth.region)
        .name(auth.service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .ok()
        .and_then(|params| {
            let params = params.into();
            let req = SignableRequest::new(
                "POST",
                uri,
                headers.into_iter(),
                SignableBody::Bytes(c.body),
            )
            .ok()?;
            Some(sign(req, &params).ok()?.signature().to_string())
        });
    if expected.as_deref() != Some(auth.signature) {
        return Err(denied(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    Ok(())
}

fn sts_error(status: StatusCode, code: &str, message: &str) -> Answer {
    Answer::refuse(
        status,
        format!("{code}: {message}"),
        "text/xml",
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
             <Error>\n    <Type>Sender</Type>\n    <Code>{code}</Code>\n    \
             <Message>{message}</Message>\n  </Error>\n  \
             <RequestId>5b8f1c2e-0000-4000-8000-000000000000</RequestId>\n</ErrorResponse>\n"
        ),
    )
}

/// `AssumeRoleWithWebIdentity`, unsigned as AWS takes it.
fn sts(p: &MetricProviders, c: &Call) -> Answer {
    let mut params: Vec<(String, String)> = c.query.clone();
    if c.method == Method::POST {
        params
            .extend(form_urlencoded::parse(c.body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("Action") != Some("AssumeRoleWithWebIdentity")
        || param("Version") != Some("2011-06-15")
    {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "Could not find operation for this version.",
        );
    }
    let (Some(role), Some(session), Some(token)) = (
        param("RoleArn"),
        param("RoleSessionName"),
        param("WebIdentityToken"),
    ) else {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "RoleArn, RoleSessionName and WebIdentityToken are required.",
        );
    };
    if token != c.credential("web_identity_token") {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidIdentityToken",
            "Couldn't retrieve verification key from your identity provider.",
        );
    }
    if role != c.credential("role_arn") {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        );
    }
    let n = fastrand::u64(..);
    let access_key = format!("ASIASIM{:013X}", n & 0xF_FFFF_FFFF_FFFF);
    let secret = format!("simTemp/{n:016x}/{:08x}", fastrand::u32(..));
    let session_token = format!("IQoJsim{:016x}{:016x}", fastrand::u64(..), n);
    let mut credentials = p.credentials(Kind::Cloudwatch);
    credentials.insert(
        format!("{ISSUED}{access_key}"),
        format!("{secret} {session_token}"),
    );
    p.set_credentials(Kind::Cloudwatch, credentials);
    let expiration = chrono::DateTime::<chrono::Utc>::from(SystemTime::now() + ISSUED_FOR)
        .format("%Y-%m-%dT%H:%M:%SZ");
    Answer {
        status: StatusCode::OK,
        content_type: "text/xml",
        body: format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  \
             <AssumeRoleWithWebIdentityResult>\n    \
             <SubjectFromWebIdentityToken>system:serviceaccount:canary:canary</SubjectFromWebIdentityToken>\n    \
             <AssumedRoleUser>\n      <Arn>{role}/{session}</Arn>\n      \
             <AssumedRoleId>AROASIM:{session}</AssumedRoleId>\n    </AssumedRoleUser>\n    \
             <Credentials>\n      <AccessKeyId>{access_key}</AccessKeyId>\n      \
             <SecretAccessKey>{secret}</SecretAccessKey>\n      \
             <SessionToken>{session_token}</SessionToken>\n      \
             <Expiration>{expiration}</Expiration>\n    </Credentials>\n  \
             </AssumeRoleWithWebIdentityResult>\n  <ResponseMetadata>\n    \
             <RequestId>5b8f1c2e-0000-4000-8000-000000000001</RequestId>\n  \
             </ResponseMetadata>\n</AssumeRoleWithWebIdentityResponse>\n"
        ),
        refused: None,
    }
}
