//! Chat services' incoming webhooks, for alerts: Slack, Microsoft Teams,
//! Discord (its Slack-compatible endpoint), Rocket.Chat and Google Chat.
//!
//! `POST /alerts/TYPE/ANYTHING` answers as the service of `TYPE` would:
//! it wants a JSON body (`Content-Type: application/json`) and refuses
//! with a 400 one the service would refuse (Slack and Rocket.Chat: no
//! `text` and no `attachments`; Teams: not a `MessageCard`, or a card
//! with neither `text` nor `summary` nor `sections`; Discord: a path not
//! ending in `/slack` and no `content` or `embeds`, or a Slack-shaped body
//! without text or attachments; Google Chat: no `text` and no `cards`).
//! What it accepts is recorded, for tests to read with
//! [`AlertReceiver::received`]. A path ending in `/status-503` answers
//! 503, one ending in `/slow` answers after 30 s: an unavailable service.
//!
//! It is served on a loopback port of its own
//! ([`crate::world::World::alerts_url`]), as a public service is reached.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::Value;

/// One alert a service accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedAlert {
    /// `slack`, `msteams`, `discord`, `rocket` or `gchat`.
    pub kind: String,
    /// The request path, from `/alerts/` on.
    pub path: String,
    pub body: Value,
}

/// The alert receiver.
#[derive(Default)]
pub struct AlertReceiver {
    received: Mutex<Vec<ReceivedAlert>>,
    refused: Mutex<Vec<(String, String)>>,
}

impl AlertReceiver {
    pub fn new() -> Arc<AlertReceiver> {
        Arc::new(AlertReceiver::default())
    }

    /// The HTTP face.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// Every alert accepted so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedAlert> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every request refused so far: its path and why.
    pub fn refused(&self) -> Vec<(String, String)> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn handle(
    State(rx): State<Arc<AlertReceiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let path = uri.path().to_string();
    let result = check(&path, &headers, &body).await;
    match result {
        Ok((kind, body)) => {
            rx.received
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ReceivedAlert {
                    kind,
                    path: path.clone(),
                    body,
                });
            (StatusCode::OK, "ok".to_string())
        }
        Err((status, why)) => {
            rx.refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((path, why.clone()));
            (status, why)
        }
    }
}

type Refusal = (StatusCode, String);

/// What the service of the path's type says of the request.
async fn check(path: &str, headers: &HeaderMap, body: &[u8]) -> Result<(String, Value), Refusal> {
    let bad = |why: &str| Err((StatusCode::BAD_REQUEST, why.to_string()));
    let Some(rest) = path.strip_prefix("/alerts/") else {
        return Err((StatusCode::NOT_FOUND, "not found".into()));
    };
    let kind = rest.split('/').next().unwrap_or_default().to_string();
    if path.ends_with("/status-503") {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "unavailable".into()));
    }
    if path.ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return Err((StatusCode::GATEWAY_TIMEOUT, "too slow".into()));
    }
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return bad("invalid_content_type");
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return bad("invalid_payload");
    };
    if !v.is_object() {
        return bad("invalid_payload");
    }
    let nonempty_str = |k: &str| v[k].as_str().is_some_and(|s| !s.is_empty());
    let nonempty_arr = |k: &str| v[k].as_array().is_some_and(|a| !a.is_empty());
    let slack_like = || -> Result<(), Refusal> {
        if nonempty_str("text") {
            return Ok(());
        }
        if !nonempty_arr("attachments") {
            return Err((StatusCode::BAD_REQUEST, "no_text".into()));
        }
        let all_have_text = v["attachments"].as_array().into_iter().flatten().all(|a| {
            ["text", "fallback", "pretext"]
                .iter()
                .any(|k| a[*k].as_str().is_some_and(|s| !s.is_empty()))
        });
        if all_have_text {
            Ok(())
        } else {
            Err((StatusCode::BAD_REQUEST, "no_text".into()))
        }
    };
    match kind.as_str() {
        "slack" | "rocket" => slack_like()?,
        "discord" => {
            if path.ends_with("/slack") {
                slack_like()?;
            } else if !nonempty_str("content") && !nonempty_arr("embeds") {
                return bad("Cannot send an empty message");
            }
        }
        "msteams" => {
            if v["@type"] != "MessageCard" {
                return bad("Invalid webhook request - @type must be MessageCard");
            }
            if !nonempty_str("text") && !nonempty_str("summary") && !nonempty_arr("sections") {
                return bad("Summary or Text is required.");
            }
        }
        "gchat" => {
            if !nonempty_str("text") && !nonempty_arr("cards") && !nonempty_arr("cardsV2") {
                return bad("Message cannot be empty.");
            }
        }
        _ => return Err((StatusCode::NOT_FOUND, "no such service".into())),
    }
    Ok((kind, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn json() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h
    }

    async fn status(path: &str, headers: &HeaderMap, body: &str) -> u16 {
        match check(path, headers, body.as_bytes()).await {
            Ok(_) => 200,
            Err((s, _)) => s.as_u16(),
        }
    }

    #[tokio::test]
    async fn each_service_refuses_what_it_would() {
        let h = json();
        let att = r#"{"attachments":[{"text":"hi"}]}"#;
        assert_eq!(status("/alerts/slack/T/B/x", &h, att).await, 200);
        assert_eq!(
            status("/alerts/slack/T/B/x", &h, r#"{"channel":"c"}"#).await,
            400
        );
        assert_eq!(
            status(
                "/alerts/slack/T/B/x",
                &h,
                r#"{"attachments":[{"color":"good"}]}"#
            )
            .await,
            400
        );
        assert_eq!(
            status("/alerts/slack/T/B/x", &HeaderMap::new(), att).await,
            400
        );
        assert_eq!(status("/alerts/rocket/hooks/x", &h, att).await, 200);
        assert_eq!(status("/alerts/discord/1/tok/slack", &h, att).await, 200);
        assert_eq!(status("/alerts/discord/1/tok", &h, att).await, 400);
        let card = r#"{"@type":"MessageCard","summary":"s","sections":[]}"#;
        assert_eq!(status("/alerts/msteams/x", &h, card).await, 200);
        assert_eq!(
            status("/alerts/msteams/x", &h, r#"{"summary":"s"}"#).await,
            400
        );
        assert_eq!(
            status("/alerts/gchat/x", &h, r#"{"cards":[{}]}"#).await,
            200
        );
        assert_eq!(status("/alerts/gchat/x", &h, r#"{"cards":[]}"#).await, 400);
        assert_eq!(status("/alerts/slack/status-503", &h, att).await, 503);
        assert_eq!(status("/alerts/pager/x", &h, att).await, 404);
    }
}
