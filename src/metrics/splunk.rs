//! Splunk Observability Cloud (SignalFx), as Flagger's `splunk.go` queries
//! it through the SignalFlow client of `signalflow-client-go`.
//!
//! The template's `address` is required (there is no default realm) and
//! names the REST API, `https://api.REALM.signalfx.com`; the Secret's
//! `sf_token_key` is the access token. Two endpoints are derived from the
//! address by Flagger's plain text substitutions:
//!
//! - the SignalFlow stream, `address + /v2/signalflow` with its first
//!   `http` turned into `ws` and its first `api` into `stream`
//!   (`wss://stream.REALM.signalfx.com/v2/signalflow`); the client opens
//!   the WebSocket at its `/connect` path;
//! - the check Flagger's `IsOnline` makes before each query: `GET` the
//!   address plus `/v2/metric?limit=1` (first `ws` back to `http`, first
//!   `stream` to `api`) with the token in `X-SF-Token`; any status but
//!   200 fails the check, quoting the body.
//!
//! On the WebSocket the client sends an `authenticate` message with the
//! token, then an `execute` message on channel `ch-1`: the rendered query
//! as the SignalFlow program, `start` ten metric intervals before now,
//! `stop` now (Unix milliseconds), `resolution` and `maxDelay` 0 (the
//! service chooses) and `immediate: true` (compute the past window at
//! once). The service answers JSON text messages (`authenticated`,
//! `control-message` events, `message` info, `metadata` per time series,
//! `error`) and binary data messages, [`decode_binary`]: a 20-byte header
//! (version, message type 5 for data, flags, a reserved byte, the channel
//! name NUL-padded to 16 bytes), then, gzip-compressed when flag bit 0 is
//! set, the logical timestamp (8 bytes; versions 2 and 3 add an 8-byte max
//! delay), the element count (4 bytes) and that many 17-byte elements
//! (value type, 8-byte time series id, 8-byte value), all big-endian.
//!
//! The value is read from the **first** data message of the channel (the
//! oldest timestamp of the window the service has data for), as Flagger
//! does: elements without a value are dropped; none left is "no values
//! found"; elements of more than one time series is an error naming how
//! many (publish one stream); else the last element's value. A `NaN` is
//! "no values found". A computation `error` message fails the check with
//! the service's code, type and message (a wrong token is refused so);
//! the channel ending before any data is "no values found" (Flagger's
//! client would read a closed channel there). Flagger's five-second
//! timeout applies to connecting and again to waiting for the data.
//!
//! The WebSocket goes to the stream host directly or through the HTTP
//! proxy of the environment ([`proxy_for`], a `CONNECT` tunnel), as
//! Flagger's dialer does; never through the API server's service proxy.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::prometheus::MetricError;
use super::provider::{Outgoing, Source, several};
use crate::cluster::proxy::{EXCERPT_LEN, EdgeError, HttpEdge, Route, display_url_str, excerpt};

/// Below the address: the SignalFlow stream and the `IsOnline` check.
pub(crate) const STREAM_PATH: &str = "/v2/signalflow";
pub(crate) const VALIDATION_PATH: &str = "/v2/metric?limit=1";
pub(crate) const TOKEN_KEY: &str = "sf_token_key";
/// The window is this many metric intervals.
const FROM_DELTA_INTERVALS: u128 = 10;
/// Flagger's timeout, for connecting and for the data.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// The channel of the one computation a query runs (the client's first
/// channel name).
pub(crate) const CHANNEL: &str = "ch-1";

/// The binary message type of a data batch.
const DATA_MESSAGE: u8 = 5;
const FLAG_COMPRESSED: u8 = 1 << 0;
const FLAG_JSON: u8 = 1 << 1;
const HEADER_LEN: usize = 20;
const ELEMENT_LEN: usize = 17;

/// `s` with the first `from` replaced by `to` (Go's `strings.Replace(s,
/// from, to, 1)`).
fn replace_first(s: &str, from: &str, to: &str) -> String {
    s.replacen(from, to, 1)
}

/// The SignalFlow stream URL for a template's address.
pub(crate) fn stream_url(address: &str) -> String {
    replace_first(
        &replace_first(&format!("{address}{STREAM_PATH}"), "http", "ws"),
        "api",
        "stream",
    )
}

/// The URL of Flagger's `IsOnline` check for a template's address.
pub(crate) fn validation_url(address: &str) -> String {
    replace_first(
        &replace_first(&format!("{address}{VALIDATION_PATH}"), "ws", "http"),
        "stream",
        "api",
    )
}

/// The URL the WebSocket is opened at: the stream URL's path joined with
/// `connect` (Go's `path.Join`, which also drops empty segments).
pub(crate) fn connect_url(stream: &str) -> Result<url::Url, MetricError> {
    let mut url = url::Url::parse(stream).map_err(|e| {
        MetricError::Transport(EdgeError::InvalidUrl {
            url: display_url_str(stream),
            reason: e.to_string(),
        })
    })?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(MetricError::Transport(EdgeError::InvalidUrl {
            url: display_url_str(stream),
            reason: "the SignalFlow stream needs an http or https address".to_string(),
        }));
    }
    let segments: Vec<&str> = url
        .path()
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let path = format!("/{}/connect", segments.join("/")).replace("//", "/");
    url.set_path(&path);
    Ok(url)
}

/// The `authenticate` message.
pub(crate) fn authenticate(token: &str) -> String {
    json!({ "type": "authenticate", "token": token }).to_string()
}

/// The `execute` message of `program` over the ten metric intervals
/// before `now_ms`.
pub(crate) fn execute(program: &str, interval: Duration, now_ms: i64) -> String {
    let from_delta = (FROM_DELTA_INTERVALS * interval.as_millis()) as i64;
    json!({
        "type": "execute",
        "program": program,
        "channel": CHANNEL,
        "start": now_ms - from_delta,
        "stop": now_ms,
        "resolution": 0,
        "maxDelay": 0,
        "immediate": true,
        "timezone": "",
    })
    .to_string()
}

/// One element of a data message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Element {
    pub tsid: [u8; 8],
    /// `None` for a value type the protocol does not define.
    pub value: Option<f64>,
}

/// A binary data message: the values of one logical timestamp.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DataMessage {
    pub channel: String,
    pub timestamp_ms: i64,
    pub elements: Vec<Element>,
}

/// A binary message, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Binary {
    Data(DataMessage),
    /// A JSON message sent in a binary frame (flag bit 1).
    Json(Value),
    /// Another binary message type, which a query does not read.
    Other {
        kind: u8,
    },
}

fn be<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], String> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("SignalFlow data message truncated at byte {at}"))
}

/// Decodes a binary WebSocket message of the SignalFlow stream.
pub(crate) fn decode_binary(msg: &[u8]) -> Result<Binary, String> {
    if msg.len() <= HEADER_LEN {
        return Err(format!(
            "expected SignalFlow message of at least {} bytes, got {} bytes",
            HEADER_LEN + 1,
            msg.len()
        ));
    }
    let (version, kind, flags) = (msg[0], msg[1], msg[2]);
    let name = &msg[4..HEADER_LEN];
    let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
    let channel = String::from_utf8_lossy(name).into_owned();
    let mut body = msg[HEADER_LEN..].to_vec();
    if flags & FLAG_COMPRESSED != 0 {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("SignalFlow message not valid gzip: {e}"))?;
        body = out;
    }
    if flags & FLAG_JSON != 0 {
        return serde_json::from_slice(&body)
            .map(Binary::Json)
            .map_err(|e| format!("SignalFlow JSON message not valid: {e}"));
    }
    if kind != DATA_MESSAGE {
        return Ok(Binary::Other { kind });
    }
    let timestamp_ms = i64::from_be_bytes(be(&body, 0)?);
    let count_at = match version {
        1 => 8,
        // Versions 2 and 3 add the max delay after the timestamp.
        2 | 3 => 16,
        v => {
            return Err(format!(
                "SignalFlow data message version {v} is not supported"
            ));
        }
    };
    let count = u32::from_be_bytes(be(&body, count_at)?) as usize;
    let mut elements = Vec::with_capacity(count.min(4096));
    for i in 0..count {
        let at = count_at + 4 + ELEMENT_LEN * i;
        let e: [u8; ELEMENT_LEN] = be(&body, at)?;
        let tsid: [u8; 8] = e[1..9].try_into().expect("8 bytes");
        let val: [u8; 8] = e[9..17].try_into().expect("8 bytes");
        let value = match e[0] {
            1 => Some(i64::from_be_bytes(val) as f64),
            2 => Some(f64::from_be_bytes(val)),
            // A 32-bit integer, in the first four bytes.
            3 => Some(i32::from_be_bytes(val[..4].try_into().expect("4 bytes")) as f64),
            _ => None,
        };
        elements.push(Element { tsid, value });
    }
    Ok(Binary::Data(DataMessage {
        channel,
        timestamp_ms,
        elements,
    }))
}

/// The value of the first data message, read as Flagger reads it.
pub(crate) fn value(msg: &DataMessage) -> Result<f64, MetricError> {
    let valued: Vec<(&[u8; 8], f64)> = msg
        .elements
        .iter()
        .filter_map(|e| e.value.map(|v| (&e.tsid, v)))
        .collect();
    let Some(&(_, last)) = valued.last() else {
        return Err(MetricError::NoValues);
    };
    let mut series: Vec<&[u8; 8]> = valued.iter().map(|(t, _)| *t).collect();
    series.sort();
    series.dedup();
    if series.len() > 1 {
        return Err(several(series.len(), "time series"));
    }
    if last.is_nan() {
        return Err(MetricError::NoValues);
    }
    Ok(last)
}

/// The words of a computation `error` message: its code, type and
/// message, as the SignalFlow client words them.
fn computation_error(v: &Value) -> String {
    let mut out = match &v["error"] {
        Value::Null => "error".to_string(),
        code => code.to_string(),
    };
    if let Some(t) = v["errorType"].as_str().filter(|t| !t.is_empty()) {
        out = format!("{out} ({t})");
    }
    if let Some(m) = v["message"].as_str().filter(|m| !m.is_empty()) {
        out = format!("{out}: {m}");
    }
    out
}

/// Flagger's `IsOnline` request.
pub(crate) fn online_request(src: &Source) -> Result<Outgoing, MetricError> {
    let address = address(src)?;
    let token = src.key("splunk", TOKEN_KEY)?;
    Ok(Outgoing::get(validation_url(address)).header("x-sf-token", token, true))
}

fn address<'a>(src: &'a Source) -> Result<&'a str, MetricError> {
    src.address()
        .ok_or_else(|| MetricError::Query("splunk endpoint is not set".to_string()))
}

/// Runs `program` on the SignalFlow stream and returns its value; the
/// `IsOnline` check ([`online_request`]) is made first by the caller.
pub(crate) async fn run(
    edge: &HttpEdge,
    src: &Source<'_>,
    program: &str,
) -> Result<f64, MetricError> {
    let address = address(src)?;
    let token = src.key("splunk", TOKEN_KEY)?;
    let stream = stream_url(address);
    let url = connect_url(&stream)?;
    let target = display_url_str(url.as_str());
    // Reached as the other metric services are: a public address
    // directly. A WebSocket does not pass the API server's service proxy.
    let as_http = url
        .as_str()
        .replacen("wss://", "https://", 1)
        .replacen("ws://", "http://", 1);
    if let Route::Proxy(p) = edge.route(&as_http, None)? {
        return Err(MetricError::Query(format!(
            "the SignalFlow stream {target} names Service {}/{}, and a WebSocket does not pass \
             the API server's service proxy: give the address the stream is reached at directly",
            p.namespace, p.service
        )));
    }
    let insecure = src.provider.insecure_skip_verify.unwrap_or(false);
    let mut ws = connect(url, &target, insecure).await?;
    let sent = async {
        ws.send(Message::text(authenticate(&token))).await?;
        ws.send(Message::text(execute(program, src.interval, src.now_ms)))
            .await
    };
    let dropped = |e: tungstenite::Error| {
        MetricError::Transport(EdgeError::Dropped {
            target: target.clone(),
            reason: e.to_string(),
        })
    };
    match tokio::time::timeout(TIMEOUT, sent).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(dropped(e)),
        Err(_) => {
            return Err(MetricError::Transport(EdgeError::Timeout {
                target,
                timeout: TIMEOUT,
            }));
        }
    }
    let result = match tokio::time::timeout(TIMEOUT, first_data(&mut ws, &target)).await {
        Ok(r) => r,
        Err(_) => Err(MetricError::Query(
            "timeout waiting for query result".to_string(),
        )),
    };
    // The computation ends with the connection.
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    result
}

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket, within [`TIMEOUT`].
async fn connect(url: url::Url, target: &str, insecure: bool) -> Result<Stream, MetricError> {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| EdgeError::InvalidUrl {
            url: target.to_string(),
            reason: e.to_string(),
        })?;
    req.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("canary/", env!("CARGO_PKG_VERSION"))),
    );
    let connector = insecure.then(|| tokio_tungstenite::Connector::Rustls(Arc::new(no_verify())));
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let proxy = proxy_for(url.scheme(), &host, |k| std::env::var(k).ok());
    let connecting = async {
        let tcp = match &proxy {
            Some(p) => tunnel(p, &host, port).await?,
            None => tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(tungstenite::Error::Io)?,
        };
        tokio_tungstenite::client_async_tls_with_config(req, tcp, None, connector).await
    };
    match tokio::time::timeout(TIMEOUT, connecting).await {
        Err(_) => Err(EdgeError::Timeout {
            target: target.to_string(),
            timeout: TIMEOUT,
        }
        .into()),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let body = resp
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err(EdgeError::Status {
                target: target.to_string(),
                status: resp.status().as_u16(),
                excerpt: excerpt(&body, EXCERPT_LEN),
            }
            .into())
        }
        Ok(Err(e)) => Err(EdgeError::Connect {
            target: target.to_string(),
            reason: e.to_string(),
        }
        .into()),
    }
}

/// The proxy the WebSocket to `host` goes through, as Go's
/// `http.ProxyFromEnvironment` (which Flagger's WebSocket dialer uses)
/// picks it: `HTTPS_PROXY` for `wss`, `HTTP_PROXY` for `ws` (or their
/// lower-case forms), unless `NO_PROXY` names the host (a domain also
/// covers its subdomains; `*` covers all) or the host is a loopback one.
pub(crate) fn proxy_for(
    scheme: &str,
    host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let var = |k: &str| {
        env(k)
            .or_else(|| env(&k.to_ascii_lowercase()))
            .filter(|v| !v.is_empty())
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return None;
    }
    let no_proxy = var("NO_PROXY").unwrap_or_default();
    let excluded = no_proxy.split(',').map(str::trim).any(|n| {
        let n = n.trim_start_matches('.');
        n == "*"
            || (!n.is_empty()
                && (host.eq_ignore_ascii_case(n)
                    || host
                        .to_ascii_lowercase()
                        .ends_with(&format!(".{}", n.to_ascii_lowercase()))))
    });
    if excluded {
        return None;
    }
    var(if scheme == "wss" {
        "HTTPS_PROXY"
    } else {
        "HTTP_PROXY"
    })
}

/// A TCP connection to `host:port` through the HTTP proxy `proxy`
/// (`CONNECT`), with its user and password as basic credentials.
pub(crate) async fn tunnel(
    proxy: &str,
    host: &str,
    port: u16,
) -> Result<tokio::net::TcpStream, tungstenite::Error> {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let refused = |why: String| {
        tungstenite::Error::Io(std::io::Error::other(format!(
            "proxy {}: {why}",
            display_url_str(proxy)
        )))
    };
    let with_scheme = if proxy.contains("://") {
        proxy.to_string()
    } else {
        format!("http://{proxy}")
    };
    let p = url::Url::parse(&with_scheme).map_err(|e| refused(e.to_string()))?;
    if p.scheme() != "http" {
        return Err(refused(format!(
            "a {} proxy does not carry the SignalFlow stream; give an http:// proxy",
            p.scheme()
        )));
    }
    let (phost, pport) = (
        p.host_str().unwrap_or_default().to_string(),
        p.port_or_known_default().unwrap_or(80),
    );
    let mut tcp = tokio::net::TcpStream::connect((phost.as_str(), pport)).await?;
    let mut ask = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    if !p.username().is_empty() {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let pair = format!(
            "{}:{}",
            decode(p.username()),
            decode(p.password().unwrap_or_default())
        );
        ask.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ));
    }
    ask.push_str("\r\n");
    tcp.write_all(ask.as_bytes()).await?;
    // The proxy's answer, up to the blank line; the tunnel starts after it.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || tcp.read(&mut byte).await? == 0 {
            return Err(refused(
                "closed the connection before answering CONNECT".into(),
            ));
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(refused(format!("refused CONNECT: {status}")));
    }
    Ok(tcp)
}

/// Reads the stream until the channel's first data message and returns
/// its value.
async fn first_data(ws: &mut Stream, target: &str) -> Result<f64, MetricError> {
    while let Some(msg) = ws.next().await {
        let msg = msg.map_err(|e| EdgeError::Dropped {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
        let json = match msg {
            Message::Text(t) => serde_json::from_str::<Value>(t.as_str()).map_err(|e| {
                MetricError::Query(format!("couldn't unmarshal JSON websocket message: {e}"))
            })?,
            Message::Binary(b) => match decode_binary(&b).map_err(MetricError::Query)? {
                Binary::Data(d) if d.channel == CHANNEL => return value(&d),
                Binary::Json(v) => v,
                Binary::Data(_) | Binary::Other { .. } => continue,
            },
            Message::Close(frame) => return Err(closed(frame)),
            _ => continue,
        };
        match json["type"].as_str().unwrap_or_default() {
            "error" => {
                return Err(MetricError::Query(format!(
                    "error executing query: {}",
                    computation_error(&json)
                )));
            }
            "control-message"
                if matches!(
                    json["event"].as_str(),
                    Some("END_OF_CHANNEL" | "ABORT_CHANNEL")
                ) && json["channel"].as_str() == Some(CHANNEL) =>
            {
                return Err(MetricError::NoValues);
            }
            _ => {}
        }
    }
    Err(MetricError::Query(
        "the SignalFlow service closed the stream before any data".to_string(),
    ))
}

fn closed(frame: Option<CloseFrame>) -> MetricError {
    MetricError::Query(match frame {
        Some(f) if !f.reason.is_empty() => format!(
            "the SignalFlow service closed the stream: {} ({})",
            f.reason,
            u16::from(f.code)
        ),
        Some(f) => format!(
            "the SignalFlow service closed the stream ({})",
            u16::from(f.code)
        ),
        None => "the SignalFlow service closed the stream".to_string(),
    })
}

/// A TLS configuration that accepts any certificate
/// (`insecureSkipVerify`).
fn no_verify() -> tokio_rustls::rustls::ClientConfig {
    use tokio_rustls::rustls;
    #[derive(Debug)]
    struct AnyCert(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use canary_core::spec::types::MetricTemplateProvider;

    use super::*;

    #[test]
    fn the_endpoints_are_derived_from_the_address_as_flagger_does() {
        let a = "https://api.us1.signalfx.com";
        assert_eq!(stream_url(a), "wss://stream.us1.signalfx.com/v2/signalflow");
        assert_eq!(
            connect_url(&stream_url(a)).unwrap().as_str(),
            "wss://stream.us1.signalfx.com/v2/signalflow/connect"
        );
        assert_eq!(
            validation_url(a),
            "https://api.us1.signalfx.com/v2/metric?limit=1"
        );
        // The stream host given as the address works both ways too.
        let s = "https://stream.eu0.signalfx.com";
        assert_eq!(stream_url(s), "wss://stream.eu0.signalfx.com/v2/signalflow");
        assert_eq!(
            validation_url(s),
            "https://api.eu0.signalfx.com/v2/metric?limit=1"
        );
        let local = "http://127.0.0.1:8080/splunk/";
        assert_eq!(
            connect_url(&stream_url(local)).unwrap().as_str(),
            "ws://127.0.0.1:8080/splunk/v2/signalflow/connect"
        );
        assert!(connect_url("stream.example.com/v2/signalflow").is_err());
    }

    #[test]
    fn the_messages_are_the_signalflow_clients() {
        assert_eq!(
            authenticate("t0k"),
            r#"{"type":"authenticate","token":"t0k"}"#
        );
        let e: Value = serde_json::from_str(&execute(
            "data('x').publish()",
            Duration::from_secs(60),
            1_000_000,
        ))
        .unwrap();
        assert_eq!(
            e,
            json!({"type": "execute", "program": "data('x').publish()", "channel": "ch-1",
                   "start": 400_000, "stop": 1_000_000, "resolution": 0, "maxDelay": 0,
                   "immediate": true, "timezone": ""})
        );
    }

    #[test]
    fn the_online_check_carries_the_token_and_needs_an_address() {
        let provider = MetricTemplateProvider {
            address: Some("https://api.us1.signalfx.com".into()),
            ..Default::default()
        };
        let c: BTreeMap<String, Vec<u8>> = [("sf_token_key".to_string(), b"tok".to_vec())].into();
        let src = Source {
            provider: &provider,
            credentials: Some(&c),
            interval: Duration::from_secs(60),
            now_ms: 0,
        };
        let r = online_request(&src).unwrap();
        assert_eq!(r.url, "https://api.us1.signalfx.com/v2/metric?limit=1");
        assert_eq!(r.headers, [("x-sf-token", "tok".to_string(), true)]);
        let none = Source {
            credentials: None,
            ..src
        };
        assert_eq!(
            online_request(&none).unwrap_err().to_string(),
            "splunk credentials does not contain sf_token_key"
        );
        let bare = MetricTemplateProvider::default();
        let src = Source {
            provider: &bare,
            ..none
        };
        assert_eq!(
            online_request(&src).unwrap_err().to_string(),
            "splunk endpoint is not set"
        );
    }

    /// A data message built byte by byte: header, then the body.
    fn message(version: u8, flags: u8, channel: &str, body: &[u8]) -> Vec<u8> {
        let mut m = vec![version, 5, flags, 0];
        let mut name = [0u8; 16];
        name[..channel.len()].copy_from_slice(channel.as_bytes());
        m.extend_from_slice(&name);
        m.extend_from_slice(body);
        m
    }

    fn element(kind: u8, tsid: u8, val: [u8; 8]) -> Vec<u8> {
        let mut e = vec![kind];
        e.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, tsid]);
        e.extend_from_slice(&val);
        e
    }

    #[test]
    fn a_version_1_data_message_decodes_every_value_type() {
        let mut body = 1_700_000_000_000i64.to_be_bytes().to_vec();
        body.extend_from_slice(&4u32.to_be_bytes());
        body.extend(element(2, 1, 2.5f64.to_be_bytes()));
        body.extend(element(1, 1, (-7i64).to_be_bytes()));
        let mut int = [0u8; 8];
        int[..4].copy_from_slice(&42i32.to_be_bytes());
        body.extend(element(3, 1, int));
        body.extend(element(9, 1, [0; 8]));
        let Binary::Data(d) = decode_binary(&message(1, 0, "ch-1", &body)).unwrap() else {
            panic!("a data message");
        };
        assert_eq!(d.channel, "ch-1");
        assert_eq!(d.timestamp_ms, 1_700_000_000_000);
        let values: Vec<Option<f64>> = d.elements.iter().map(|e| e.value).collect();
        assert_eq!(values, [Some(2.5), Some(-7.0), Some(42.0), None]);
        assert_eq!(d.elements[0].tsid, [0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn versions_2_and_3_carry_a_max_delay_and_bodies_may_be_gzipped() {
        let mut body = 5i64.to_be_bytes().to_vec();
        body.extend_from_slice(&1000i64.to_be_bytes());
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend(element(2, 3, 99.5f64.to_be_bytes()));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &body).unwrap();
        let zipped = gz.finish().unwrap();
        for m in [message(2, 0, "ch-1", &body), message(3, 1, "ch-1", &zipped)] {
            let Binary::Data(d) = decode_binary(&m).unwrap() else {
                panic!("a data message");
            };
            assert_eq!((d.timestamp_ms, d.elements.len()), (5, 1));
            assert_eq!(value(&d).unwrap(), 99.5);
        }
    }

    #[test]
    fn the_simulated_services_messages_decode() {
        let id = [9, 8, 7, 6, 5, 4, 3, 2];
        for compress in [false, true] {
            let m =
                canary_sim::providers::splunk::data_message("ch-1", 77, &[(id, 0.25)], compress);
            assert_eq!(
                decode_binary(&m).unwrap(),
                Binary::Data(DataMessage {
                    channel: "ch-1".into(),
                    timestamp_ms: 77,
                    elements: vec![Element {
                        tsid: id,
                        value: Some(0.25)
                    }],
                })
            );
        }
    }

    #[test]
    fn short_truncated_and_unknown_messages_are_told_apart() {
        assert_eq!(
            decode_binary(&[1; 20]).unwrap_err(),
            "expected SignalFlow message of at least 21 bytes, got 20 bytes"
        );
        let mut body = 0i64.to_be_bytes().to_vec();
        body.extend_from_slice(&2u32.to_be_bytes());
        body.extend(element(2, 1, 1f64.to_be_bytes()));
        assert!(
            decode_binary(&message(1, 0, "ch-1", &body))
                .unwrap_err()
                .contains("truncated")
        );
        assert!(decode_binary(&message(4, 0, "ch-1", &body)).is_err());
        let mut other = message(1, 0, "ch-1", &body);
        other[1] = 10;
        assert_eq!(decode_binary(&other).unwrap(), Binary::Other { kind: 10 });
        let json = message(1, 2, "ch-1", br#"{"type":"data"}"#);
        assert_eq!(
            decode_binary(&json).unwrap(),
            Binary::Json(json!({"type": "data"}))
        );
        // A channel name fills all sixteen bytes.
        let mut long = message(1, 0, "", &body);
        long[4..20].copy_from_slice(b"channel-sixteen!");
        assert!(decode_binary(&long).unwrap_err().contains("truncated"));
    }

    fn data(elements: &[(u8, Option<f64>)]) -> DataMessage {
        DataMessage {
            channel: CHANNEL.into(),
            timestamp_ms: 0,
            elements: elements
                .iter()
                .map(|(t, v)| Element {
                    tsid: [*t; 8],
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn the_value_is_the_last_of_one_time_series() {
        assert_eq!(
            value(&data(&[(1, Some(1.0)), (1, Some(2.0))])).unwrap(),
            2.0
        );
        assert_eq!(value(&data(&[(1, Some(3.0)), (2, None)])).unwrap(), 3.0);
        for empty in [data(&[]), data(&[(1, None)]), data(&[(1, Some(f64::NAN))])] {
            assert!(
                matches!(value(&empty), Err(MetricError::NoValues)),
                "{empty:?}"
            );
        }
        let e = value(&data(&[(1, Some(1.0)), (2, Some(2.0)), (1, Some(3.0))])).unwrap_err();
        assert!(e.to_string().contains("returned 2 time series"), "{e}");
    }

    #[test]
    fn a_computation_error_is_worded_as_the_client_words_it() {
        assert_eq!(
            computation_error(
                &json!({"type": "error", "error": 401, "message": "Invalid auth token"})
            ),
            "401: Invalid auth token"
        );
        assert_eq!(
            computation_error(&json!({"error": 400, "errorType": "ANALYTICS_PROGRAM_ERROR"})),
            "400 (ANALYTICS_PROGRAM_ERROR)"
        );
    }

    #[test]
    fn the_proxy_is_gos_choice_from_the_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let both = env(&[
            ("HTTPS_PROXY", "http://p:3128"),
            ("http_proxy", "http://q:8080"),
        ]);
        let host = "stream.us1.signalfx.com";
        assert_eq!(
            proxy_for("wss", host, both).as_deref(),
            Some("http://p:3128")
        );
        assert_eq!(
            proxy_for("ws", host, both).as_deref(),
            Some("http://q:8080")
        );
        assert_eq!(proxy_for("wss", "127.0.0.1", both), None);
        assert_eq!(proxy_for("wss", "localhost", both), None);
        for no in [
            "signalfx.com",
            ".signalfx.com",
            "*",
            "x.org, stream.us1.signalfx.com",
        ] {
            let vars: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
                ("HTTPS_PROXY", "http://p:3128"),
                ("NO_PROXY", no),
            ]));
            assert_eq!(proxy_for("wss", host, env(vars)), None, "{no}");
        }
        assert_eq!(proxy_for("wss", host, env(&[("NO_PROXY", "x")])), None);
    }

    /// The stream through a `CONNECT` proxy that checks its credentials.
    #[tokio::test]
    async fn the_stream_passes_an_http_proxy_with_credentials() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (services, address, token, store) = simulated().await;
        services.map_query(
            canary_sim::providers::Kind::Splunk,
            "data('x').publish()",
            "vector(7)",
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let proxy = format!("http://us%40er:p%3Ass@{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                c.read_exact(&mut b).await.unwrap();
                head.push(b[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let target = head.split_whitespace().nth(1).unwrap().to_string();
            // "us@er:p:ss", base64.
            if !head.contains("Proxy-Authorization: Basic dXNAZXI6cDpzcw==") {
                c.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
                    .await
                    .unwrap();
                return;
            }
            let mut up = tokio::net::TcpStream::connect(target).await.unwrap();
            c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .unwrap();
            let _ = tokio::io::copy_bidirectional(&mut c, &mut up).await;
        });
        let url = connect_url(&stream_url(&address)).unwrap();
        let tcp = tunnel(&proxy, url.host_str().unwrap(), url.port().unwrap())
            .await
            .unwrap();
        let (mut ws, _) =
            tokio_tungstenite::client_async_tls_with_config(url.as_str(), tcp, None, None)
                .await
                .unwrap();
        ws.send(Message::text(authenticate(&token))).await.unwrap();
        ws.send(Message::text(execute(
            "data('x').publish()",
            Duration::from_secs(10),
            store.now(),
        )))
        .await
        .unwrap();
        assert_eq!(first_data(&mut ws, "sim").await.unwrap(), 7.0);
        let e = tunnel("http://nobody@127.0.0.1:9", "h", 1)
            .await
            .unwrap_err();
        assert!(!e.to_string().contains("nobody"), "{e}");
    }

    /// The simulated Splunk on a loopback port, answering from a store
    /// of its own; its token.
    async fn simulated() -> (
        Arc<canary_sim::providers::MetricProviders>,
        String,
        String,
        Arc<canary_sim::series::SeriesStore>,
    ) {
        use canary_sim::providers::{Kind, MetricProviders};
        use canary_sim::series::{SeriesStore, StoreConfig};
        let store = Arc::new(SeriesStore::new(StoreConfig::realtime()));
        let services = MetricProviders::new(store.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let address = format!("http://{}/splunk", listener.local_addr().unwrap());
        let app = services.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let token = services.credentials(Kind::Splunk)["sf_token_key"].clone();
        (services, address, token, store)
    }

    async fn ask(
        address: &str,
        token: &str,
        program: &str,
        now_ms: i64,
    ) -> Result<f64, MetricError> {
        let provider = MetricTemplateProvider {
            address: Some(address.to_string()),
            ..Default::default()
        };
        let c: BTreeMap<String, Vec<u8>> =
            [("sf_token_key".to_string(), token.as_bytes().to_vec())].into();
        let src = Source {
            provider: &provider,
            credentials: Some(&c),
            interval: Duration::from_secs(10),
            now_ms,
        };
        let edge = HttpEdge::direct_only("prod").unwrap();
        super::super::provider::query(
            &edge,
            canary_core::provider::MetricProvider::Splunk,
            &src,
            program,
        )
        .await
    }

    #[tokio::test]
    async fn the_stream_answers_one_value_none_or_too_many() {
        use canary_sim::providers::Kind;
        let (services, address, token, store) = simulated().await;
        let one = "data('x').sum().publish()";
        let two = "data('x').sum().publish(); data('y').sum().publish()";
        let hidden = "data('x').sum().publish(enable=False)";
        for p in [one, two, hidden] {
            services.map_query(Kind::Splunk, p, "vector(42)");
        }
        let now = store.now();
        assert_eq!(ask(&address, &token, one, now).await.unwrap(), 42.0);
        let e = ask(&address, &token, two, now).await.unwrap_err();
        assert!(e.to_string().contains("2 time series"), "{e}");
        for p in [hidden, "data('unmapped').publish()"] {
            let e = ask(&address, &token, p, now).await.unwrap_err();
            assert!(matches!(e, MetricError::NoValues), "{p}: {e}");
        }
        let e = ask(&address, &token, "data('x'.publish()", now)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("error executing query: 400: Syntax error"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_wrong_token_is_refused_by_the_api_and_the_stream() {
        let (_services, address, _token, store) = simulated().await;
        let e = ask(&address, "wrong-token", "data('x').publish()", store.now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("HTTP 401"), "{e}");
        assert!(!e.to_string().contains("wrong-token"), "{e}");
        // The stream alone, as if the API had let it pass.
        let provider = MetricTemplateProvider {
            address: Some(address.clone()),
            ..Default::default()
        };
        let c: BTreeMap<String, Vec<u8>> =
            [("sf_token_key".to_string(), b"wrong-token".to_vec())].into();
        let src = Source {
            provider: &provider,
            credentials: Some(&c),
            interval: Duration::from_secs(10),
            now_ms: store.now(),
        };
        let edge = HttpEdge::direct_only("prod").unwrap();
        let e = run(&edge, &src, "data('x').publish()").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "error executing query: 401: Invalid auth token"
        );
    }
}
