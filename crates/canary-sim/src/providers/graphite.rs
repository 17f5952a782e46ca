//! Graphite's render API: `GET /render?target=...&from=-10min&format=json`,
//! behind HTTP basic auth (as a Graphite that needs credentials is
//! deployed). Each target is answered as
//! `{"target": T, "tags": {"name": T}, "datapoints": [[VALUE, SECONDS], ...]}`,
//! one point per second of the window (`from`, relative, to now), `null`
//! where the metric has no value; a target with no data is left out, as
//! Graphite leaves out a series that does not exist. Refusals: 401 without
//! the credentials, 400 for a `format` other than `json` or a `from` it
//! cannot read.

use axum::http::{Method, StatusCode};
use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde_json::json;

use super::{Answer, Call, Kind, MetricProviders};

/// Graphite's default window: the last day.
const DEFAULT_WINDOW_MS: i64 = 86_400_000;

fn refuse(status: StatusCode, why: &str, text: &str) -> Answer {
    Answer::refuse(status, why, "text/plain; charset=utf-8", text.to_string())
}

/// A relative time such as `-10s`, `-5min`, `-1h` or `-2d`, as
/// milliseconds before now.
fn relative_ms(text: &str) -> Option<i64> {
    let rest = text.trim().strip_prefix('-')?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = rest.split_at(digits);
    let n: i64 = n.parse().ok()?;
    let scale = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    Some(n * scale)
}

pub(super) fn answer(p: &MetricProviders, c: &Call) -> Answer {
    if c.method != Method::GET && c.method != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "not a GET",
            "Method Not Allowed",
        );
    }
    let wanted = format!(
        "Basic {}",
        BASE64_STANDARD.encode(format!(
            "{}:{}",
            c.credential("username"),
            c.credential("password")
        ))
    );
    if c.header("authorization") != Some(wanted.as_str()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "wrong or missing basic auth",
            "401 Unauthorized",
        );
    }
    if c.path != "/render" && c.path != "/render/" {
        return refuse(StatusCode::NOT_FOUND, "unknown path", "Not Found");
    }
    if c.param("format") != Some("json") {
        return refuse(
            StatusCode::BAD_REQUEST,
            "format is not json",
            "the simulated Graphite answers format=json only",
        );
    }
    let window = match c.param("from") {
        None => DEFAULT_WINDOW_MS,
        Some(from) => match relative_ms(from) {
            Some(ms) => ms,
            None => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "from is not a relative time",
                    &format!("Invalid from time: {from}"),
                );
            }
        },
    };
    let now = p.now_ms();
    let step = (window / 300).max(1000);
    let end = now - now.rem_euclid(step);
    let start = end - window + step;
    let mut out = Vec::new();
    for (_, target) in c.query.iter().filter(|(k, _)| k == "target") {
        let Some(promql) = p.promql(Kind::Graphite, target, step) else {
            continue;
        };
        for points in p.values_over(&promql, start, end, step) {
            let mut t = start;
            let mut datapoints = Vec::new();
            let mut known = points.iter().peekable();
            while t <= end {
                let v = match known.peek() {
                    Some((pt, v)) if *pt == t => {
                        known.next();
                        json!(v)
                    }
                    _ => serde_json::Value::Null,
                };
                datapoints.push(json!([v, t / 1000]));
                t += step;
            }
            out.push(json!({
                "target": target,
                "tags": { "name": target },
                "datapoints": datapoints,
            }));
        }
    }
    Answer::json(serde_json::Value::Array(out))
}

#[cfg(test)]
mod tests {
    #[test]
    fn relative_times_are_read() {
        assert_eq!(super::relative_ms("-10s"), Some(10_000));
        assert_eq!(super::relative_ms("-5min"), Some(300_000));
        assert_eq!(super::relative_ms("-1h"), Some(3_600_000));
        assert_eq!(super::relative_ms("10s"), None);
        assert_eq!(super::relative_ms("-10parsecs"), None);
    }
}
