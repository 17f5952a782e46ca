//! Splunk Observability Cloud's SignalFlow API (SignalFx), as Flagger's
//! Splunk provider uses it, under `BASE/splunk` (the template's
//! `address`):
//!
//! - `GET /v2/metric?limit=1` with the token in `X-SF-Token`, the check
//!   Flagger makes before each query: 200 with a page of metric metadata,
//!   401 `{"code":401,"message":"Unauthorized"}` for a missing or wrong
//!   token;
//! - the WebSocket at `/v2/signalflow/connect`. The first message must be
//!   `authenticate` with the token: a wrong one is answered with an
//!   `error` message (code 401) and the connection closed (4401); else
//!   `authenticated`. An `execute` message (its `channel`, `program`,
//!   `start`, `stop`, optional `resolution` and `compress`) is answered on
//!   its channel, as the service does for a window in the past: the
//!   `STREAM_START` and `JOB_START` control messages, the
//!   `JOB_RUNNING_RESOLUTION` info message, one `metadata` message per
//!   time series, the binary data messages ([`data_message`]) oldest
//!   first, one per logical timestamp that has a value, and
//!   `END_OF_CHANNEL`.
//!
//! The program is read enough to answer like the service: its
//! parentheses, brackets and quotes must balance (else a computation
//! error, code 400); each `publish()` without `enable=False` is an output
//! stream. The values come from the query table
//! ([`super::MetricProviders::map_query`], keyed by the whole program):
//! each series of its PromQL, for each output stream, is one time series
//! (so a program publishing two streams answers two); `$window` is the
//! resolution. A program with no table entry matches no time series: the
//! `FIND_MATCHED_NO_TIMESERIES` info message and the end of the channel,
//! without data. Without a `resolution`, the service's choice: the
//! smallest of 1 s, 10 s, 1 min, 5 min and 1 h giving at most 100
//! timestamps over the window.

use std::io::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use super::{Answer, Call, Kind, MetricProviders, ProviderRequest};

/// The path of the WebSocket, below the service's prefix.
pub const CONNECT_PATH: &str = "/v2/signalflow/connect";

/// The resolutions the service picks from, in milliseconds.
const RESOLUTIONS: [i64; 5] = [1_000, 10_000, 60_000, 300_000, 3_600_000];
/// At most this many timestamps over a window, when the service chooses.
const MAX_TIMESTAMPS: i64 = 100;

/// The REST API: the metric metadata page Flagger's `IsOnline` asks for.
pub(super) fn answer(_p: &MetricProviders, c: &Call) -> Answer {
    let unauthorized = || {
        Answer::refuse(
            StatusCode::UNAUTHORIZED,
            "wrong or missing X-SF-Token",
            "application/json",
            json!({"code": 401, "message": "Unauthorized"}).to_string(),
        )
    };
    if c.header("x-sf-token") != Some(c.credential("sf_token_key")) {
        return unauthorized();
    }
    match (c.method, c.path) {
        (&Method::GET, "/v2/metric") => Answer::json(json!({
            "count": 1,
            "results": [{
                "name": "response_total",
                "type": "CUMULATIVE_COUNTER",
                "description": null,
                "created": 0,
                "lastUpdated": 0,
            }],
        })),
        (_, CONNECT_PATH) => Answer::refuse(
            StatusCode::BAD_REQUEST,
            "not a WebSocket upgrade",
            "text/plain",
            "Can \"Upgrade\" only to \"WebSocket\".",
        ),
        _ => Answer::refuse(
            StatusCode::NOT_FOUND,
            "unknown path",
            "application/json",
            json!({"code": 404, "message": "Not Found"}).to_string(),
        ),
    }
}

/// `GET /splunk/v2/signalflow/connect`, upgraded.
pub(super) async fn upgrade(
    State(p): State<Arc<MetricProviders>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.on_upgrade(move |socket| session(p, socket))
}

fn log(p: &MetricProviders, what: &str, refused: Option<&str>) {
    p.tables().requests.push(ProviderRequest {
        kind: Kind::Splunk,
        method: "GET".to_string(),
        path: CONNECT_PATH.to_string(),
        query: what.to_string(),
        status: 101,
        refused: refused.map(str::to_string),
    });
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket.send(Message::text(v.to_string())).await.is_ok()
}

async fn session(p: Arc<MetricProviders>, mut socket: WebSocket) {
    let mut authenticated = false;
    while let Some(Ok(msg)) = socket.recv().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => return,
            _ => continue,
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            let _ = send(
                &mut socket,
                json!({"type": "error", "error": 400, "message": "Malformed JSON request"}),
            )
            .await;
            continue;
        };
        match (v["type"].as_str().unwrap_or_default(), authenticated) {
            ("authenticate", false) => {
                let expected = p.credentials(Kind::Splunk);
                let expected = expected.get("sf_token_key").map(String::as_str);
                if v["token"].as_str().is_some() && v["token"].as_str() == expected {
                    authenticated = true;
                    log(&p, "authenticate", None);
                    let ok = json!({
                        "type": "authenticated",
                        "orgId": "SIMORG0AAAA",
                        "userId": "SIMUSER0AAA",
                    });
                    if !send(&mut socket, ok).await {
                        return;
                    }
                } else {
                    log(&p, "authenticate", Some("wrong or missing token"));
                    refuse(&mut socket, "Invalid auth token").await;
                    return;
                }
            }
            (_, false) => {
                log(&p, "before authenticate", Some("not authenticated"));
                refuse(&mut socket, "Not authenticated").await;
                return;
            }
            ("execute", true) => {
                let program = v["program"].as_str().unwrap_or_default();
                log(&p, program, None);
                for m in execute(&p, &v) {
                    if socket.send(m).await.is_err() {
                        return;
                    }
                }
            }
            // The computation of a window in the past has ended already.
            ("stop" | "detach" | "keepalive", true) => {}
            (other, true) => {
                let _ = send(
                    &mut socket,
                    json!({"type": "error", "error": 400,
                           "message": format!("Unknown request type: {other}")}),
                )
                .await;
            }
        }
    }
}

async fn refuse(socket: &mut WebSocket, message: &str) {
    let _ = send(
        socket,
        json!({"type": "error", "error": 401, "message": message}),
    )
    .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 4401,
            reason: "Unauthorized".into(),
        })))
        .await;
}

/// Why a program does not parse: unbalanced brackets or quotes.
pub fn program_error(program: &str) -> Option<String> {
    let mut open: Vec<char> = Vec::new();
    let mut quote: Option<char> = None;
    for (line, text) in program.lines().enumerate() {
        // `#` starts a comment outside a string.
        for c in text.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '#') => break,
                (None, '\'' | '"') => quote = Some(c),
                (None, '(' | '[' | '{') => open.push(c),
                (None, ')' | ']' | '}') => {
                    let want = match c {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    if open.pop() != Some(want) {
                        return Some(format!("line {}: unexpected '{c}'", line + 1));
                    }
                }
                _ => {}
            }
        }
        if let Some(q) = quote {
            return Some(format!("line {}: unterminated string {q}", line + 1));
        }
    }
    open.last().map(|c| format!("'{c}' was never closed"))
}

/// The output streams of a program: each `publish(...)` call without
/// `enable=False`, by its label (the first argument or `label=`), or `""`.
pub fn published_streams(program: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = program;
    while let Some(i) = rest.find("publish(") {
        rest = &rest[i + "publish(".len()..];
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(j, _)| j)
            .unwrap_or(rest.len());
        let args: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
        if args.contains("enable=False") {
            continue;
        }
        let label = args
            .split(',')
            .find_map(|a| {
                let a = a.strip_prefix("label=").unwrap_or(a);
                (a.starts_with('\'') || a.starts_with('"'))
                    .then(|| a.trim_matches(['\'', '"']).to_string())
            })
            .unwrap_or_default();
        out.push(label);
    }
    out
}

/// The resolution the service picks for a window.
pub fn resolution_for(window_ms: i64) -> i64 {
    RESOLUTIONS
        .into_iter()
        .find(|r| window_ms / r <= MAX_TIMESTAMPS)
        .unwrap_or(RESOLUTIONS[RESOLUTIONS.len() - 1])
}

/// The 8-byte id of output stream `stream`'s series `series`.
fn tsid(stream: usize, series: usize) -> [u8; 8] {
    let mut id = [0x5f, 0x1c, 0xa7, 0x00, 0, 0, 0, 0];
    id[3] = stream as u8;
    id[4..].copy_from_slice(&(series as u32).to_be_bytes());
    id
}

/// A time series id as the JSON messages write it: URL-safe base64,
/// unpadded.
pub fn tsid_text(id: &[u8; 8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// A binary data message (version 1, type 5) of `channel`: the values of
/// `elements` (time series id, double) at `timestamp_ms`, the body
/// gzip-compressed (flag bit 0) when `compress`.
pub fn data_message(
    channel: &str,
    timestamp_ms: i64,
    elements: &[([u8; 8], f64)],
    compress: bool,
) -> Vec<u8> {
    let mut out = vec![1u8, 5, u8::from(compress), 0];
    let mut name = [0u8; 16];
    let n = channel.len().min(16);
    name[..n].copy_from_slice(&channel.as_bytes()[..n]);
    out.extend_from_slice(&name);
    let mut body = Vec::with_capacity(12 + 17 * elements.len());
    body.extend_from_slice(&timestamp_ms.to_be_bytes());
    body.extend_from_slice(&(elements.len() as u32).to_be_bytes());
    for (id, v) in elements {
        body.push(2);
        body.extend_from_slice(id);
        body.extend_from_slice(&v.to_be_bytes());
    }
    if compress {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).expect("writing to memory");
        body = gz.finish().expect("writing to memory");
    }
    out.extend_from_slice(&body);
    out
}

/// A timestamp in milliseconds and its value.
type Point = (i64, f64);

/// The messages answering one `execute` request.
fn execute(p: &MetricProviders, v: &Value) -> Vec<Message> {
    let channel = v["channel"].as_str().unwrap_or_default().to_string();
    let program = v["program"].as_str().unwrap_or_default();
    let error = |code: u16, message: String| {
        vec![Message::text(
            json!({"type": "error", "channel": channel, "error": code, "message": message})
                .to_string(),
        )]
    };
    if channel.is_empty() {
        return error(400, "channel is required".to_string());
    }
    if program.trim().is_empty() {
        return error(400, "program is required".to_string());
    }
    if let Some(why) = program_error(program) {
        return error(400, format!("Syntax error: {why}"));
    }
    let now = p.now_ms();
    let ms = |k: &str| v[k].as_i64().filter(|t| *t > 0);
    let stop = ms("stop").unwrap_or(now).min(now);
    let start = ms("start").unwrap_or(now);
    if start >= stop {
        return error(400, "start must be before stop".to_string());
    }
    let resolution = ms("resolution")
        .map(|r| r.max(RESOLUTIONS[0]))
        .unwrap_or_else(|| resolution_for(stop - start));
    let compress = v["compress"].as_bool().unwrap_or(false);
    let control = |event: &str| {
        Message::text(
            json!({"type": "control-message", "channel": channel, "event": event,
                   "timestampMs": now})
            .to_string(),
        )
    };
    let info = |code: &str, contents: Value| {
        Message::text(
            json!({"type": "message", "channel": channel, "logicalTimestampMs": start,
                   "message": {"messageCode": code, "messageLevel": "INFO",
                               "timestampMs": now, "contents": contents}})
            .to_string(),
        )
    };
    let mut out = vec![
        control("STREAM_START"),
        Message::text(
            json!({"type": "control-message", "channel": channel, "event": "JOB_START",
                   "handle": format!("SIMJOB{now:x}"), "timestampMs": now})
            .to_string(),
        ),
        info(
            "JOB_RUNNING_RESOLUTION",
            json!({"resolutionMs": resolution}),
        ),
    ];
    let streams = published_streams(program);
    // The service's timestamps are multiples of the resolution, each the
    // end of the interval it summarises.
    let first = (start / resolution + 1) * resolution;
    let series = match p.promql(Kind::Splunk, program, resolution) {
        Some(promql) if !streams.is_empty() && first <= stop => {
            p.values_over(&promql, first, stop, resolution)
        }
        _ => Vec::new(),
    };
    if series.is_empty() {
        out.push(info(
            "FIND_MATCHED_NO_TIMESERIES",
            json!({"query": program}),
        ));
        out.push(control("END_OF_CHANNEL"));
        return out;
    }
    let mut all: Vec<([u8; 8], &[Point])> = Vec::new();
    for (s, label) in streams.iter().enumerate() {
        for (i, points) in series.iter().enumerate() {
            let id = tsid(s, i);
            all.push((id, points));
            out.push(Message::text(
                json!({"type": "metadata", "channel": channel, "tsId": tsid_text(&id),
                "properties": {
                    "sf_key": ["sf_originatingMetric", "sf_metric"],
                    "sf_metric": format!("_SF_COMP_{}_{s}", channel),
                    "sf_originatingMetric": "response_total",
                    "sf_resolutionMs": resolution,
                    "sf_streamLabel": label,
                    "sf_type": "MetricTimeSeries",
                    "sf_isPreQuantized": true,
                }})
                .to_string(),
            ));
        }
    }
    let mut times: Vec<i64> = all
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(t, _)| *t))
        .collect();
    times.sort_unstable();
    times.dedup();
    for t in times {
        let elements: Vec<([u8; 8], f64)> = all
            .iter()
            .filter_map(|(id, points)| {
                points
                    .iter()
                    .find(|(pt, _)| *pt == t)
                    .map(|(_, v)| (*id, *v))
            })
            .collect();
        out.push(Message::binary(data_message(
            &channel, t, &elements, compress,
        )));
    }
    out.push(control("END_OF_CHANNEL"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_parses_when_its_brackets_and_quotes_balance() {
        assert_eq!(
            program_error("data('x', filter=filter('a', 'b')).sum().publish()"),
            None
        );
        assert_eq!(
            program_error("A = data('x').sum(\n  by=['a'])  # ) in a comment\nA.publish()"),
            None
        );
        assert!(program_error("data('x'.publish()").is_some());
        assert!(program_error("data('x).publish()").is_some());
        assert!(program_error("data('x')).publish()").is_some());
    }

    #[test]
    fn only_enabled_publish_calls_are_output_streams() {
        let p = "total = data('t').sum().publish(enable=False)\n\
                 ok = data('s').sum().publish(label='ok', enable = False)\n\
                 ((ok/total) * 100).publish('rate')";
        assert_eq!(published_streams(p), ["rate"]);
        assert_eq!(
            published_streams("data('a').publish(); data('b').publish(label=\"b\")"),
            ["", "b"]
        );
        assert!(published_streams("data('a').sum()").is_empty());
    }

    #[test]
    fn the_resolution_keeps_a_window_within_a_hundred_timestamps() {
        assert_eq!(resolution_for(10_000), 1_000);
        assert_eq!(resolution_for(100_000), 1_000);
        assert_eq!(resolution_for(600_000), 10_000);
        assert_eq!(resolution_for(6 * 3_600_000), 300_000);
    }

    #[test]
    fn a_data_message_has_the_header_then_the_elements() {
        let id = [1, 2, 3, 4, 5, 6, 7, 8];
        let m = data_message("ch-1", 1_700_000_000_000, &[(id, 2.5)], false);
        assert_eq!(&m[..4], &[1, 5, 0, 0]);
        assert_eq!(&m[4..8], b"ch-1");
        assert!(m[8..20].iter().all(|b| *b == 0));
        assert_eq!(&m[20..28], &1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&m[28..32], &1u32.to_be_bytes());
        assert_eq!(m[32], 2);
        assert_eq!(&m[33..41], &id);
        assert_eq!(&m[41..49], &2.5f64.to_be_bytes());
        assert_eq!(m.len(), 49);
        let z = data_message("ch-1", 1, &[(id, 2.5)], true);
        assert_eq!(z[2], 1, "the compressed flag");
        assert_eq!(&z[20..22], &[0x1f, 0x8b], "a gzip body");
        assert_eq!(tsid_text(&[0; 8]), "AAAAAAAAAAA");
    }
}
