//! Alerts: the few messages of a rollout that Flagger posts to a chat
//! service, and the JSON each service is sent.
//!
//! Flagger alerts on far fewer things than it records as events: a new
//! revision (with the canary's settings attached), a promotion, a
//! rollback, a gate waiting for approval. [`alerts_for`] picks them out of
//! a round's [`Message`]s, with Flagger's text and severity;
//! [`AlertSeverity::receives`] says which `analysis.alerts` entry gets
//! which; [`payload`] builds the body for a provider type. Sending them is
//! the binary's business.
//!
//! | message | alert | severity |
//! |---|---|---|
//! | a new revision starts an analysis | `New revision detected, progressing canary analysis.` (with the canary's settings) | info |
//! | promotion finished | `Canary analysis completed successfully, promotion finished.` | info |
//! | promotion finished, analysis skipped | `Canary analysis was skipped, promotion finished.` | info |
//! | confirm-rollout gate closed | `Canary is waiting for approval.` | warn |
//! | confirm-traffic-increase gate closed | `Canary traffic increase is waiting for approval.` | warn |
//! | confirm-promotion gate closed | `Canary promotion is waiting for approval.` | warn |
//! | a rollback webhook asked for a rollback | `Rolling back manual webhook invoked` | warn |
//! | failed checks reached the threshold | `Failed checks threshold reached N` | error |
//! | the canary missed its progress deadline | `Progress deadline exceeded …` | error |
//!
//! A gate whose webhooks all set `muteAlert` sends no alert. A new
//! revision that restarts an analysis under way is not alerted again, as
//! in Flagger. The new revision's `Traffic routing` field names the
//! maximum weight the rollout will reach (Flagger prints
//! `analysis.maxWeight` as written, `0` when it is unset).

use serde::Serialize;

use crate::engine::message::{Message, RollbackCause};
use crate::engine::state::Phase;
use crate::spec::resolve::{HookType, ResolvedCanary};

/// The AlertProvider types alerts are sent to.
pub const SENT_TYPES: &[&str] = &["slack", "msteams", "discord", "rocket", "gchat"];

/// Every alert, as [`alert_for`] words it (`N` and `…` stand for what
/// the rollout fills in), with its severity.
pub const ALERTS: &[(&str, AlertSeverity)] = &[
    (
        "New revision detected, progressing canary analysis.",
        AlertSeverity::Info,
    ),
    (
        "Canary analysis completed successfully, promotion finished.",
        AlertSeverity::Info,
    ),
    (
        "Canary analysis was skipped, promotion finished.",
        AlertSeverity::Info,
    ),
    ("Canary is waiting for approval.", AlertSeverity::Warn),
    (
        "Canary traffic increase is waiting for approval.",
        AlertSeverity::Warn,
    ),
    (
        "Canary promotion is waiting for approval.",
        AlertSeverity::Warn,
    ),
    ("Rolling back manual webhook invoked", AlertSeverity::Warn),
    ("Failed checks threshold reached N", AlertSeverity::Error),
    ("Progress deadline exceeded …", AlertSeverity::Error),
];

/// How bad an alert is, and the least an `analysis.alerts` entry wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    #[default]
    Info,
    Warn,
    Error,
}

impl AlertSeverity {
    /// `info`, `warn` or `error`; a missing or empty severity is `info`,
    /// as Flagger's default. `None` for any other word.
    pub fn parse(s: Option<&str>) -> Option<AlertSeverity> {
        match s.unwrap_or("") {
            "" | "info" => Some(AlertSeverity::Info),
            "warn" => Some(AlertSeverity::Warn),
            "error" => Some(AlertSeverity::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Info => "info",
            AlertSeverity::Warn => "warn",
            AlertSeverity::Error => "error",
        }
    }

    /// Whether an entry of severity `self` is sent an alert of `sent`:
    /// `info` gets every alert, `warn` warnings and errors, `error` only
    /// errors.
    pub fn receives(self, sent: AlertSeverity) -> bool {
        sent >= self
    }
}

/// One name and value attached to an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// An alert to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub message: String,
    pub severity: AlertSeverity,
    pub fields: Vec<Field>,
}

impl Alert {
    fn new(message: impl Into<String>, severity: AlertSeverity) -> Alert {
        Alert {
            message: message.into(),
            severity,
            fields: Vec::new(),
        }
    }
}

/// The alerts of a round that started in phase `before` and whose
/// messages were `messages`, in order. As in Flagger, the promotion gate
/// is alerted when the rollout starts waiting at it, not again at every
/// check while it waits (the traffic-increase gate is, every time).
pub fn alerts_for(c: &ResolvedCanary, before: Phase, messages: &[Message]) -> Vec<Alert> {
    let restarted = messages
        .iter()
        .any(|m| matches!(m, Message::Restarting { .. }));
    messages
        .iter()
        .filter_map(|m| match m {
            Message::NewRevision { .. } if restarted => None,
            Message::WaitingForApproval {
                gate: HookType::ConfirmPromotion,
                ..
            } if before == Phase::WaitingPromotion => None,
            m => alert_for(c, m),
        })
        .collect()
}

/// The alert Flagger sends for message `m` of canary `c`, if any.
pub fn alert_for(c: &ResolvedCanary, m: &Message) -> Option<Alert> {
    use AlertSeverity::{Error, Info, Warn};
    Some(match m {
        Message::NewRevision { .. } => Alert {
            fields: metadata(c),
            ..Alert::new("New revision detected, progressing canary analysis.", Info)
        },
        Message::Completed { .. } if c.skip_analysis => {
            Alert::new("Canary analysis was skipped, promotion finished.", Info)
        }
        Message::Completed { .. } => Alert::new(
            "Canary analysis completed successfully, promotion finished.",
            Info,
        ),
        Message::WaitingForApproval { gate, .. } => {
            let mut hooks = c.hooks(*gate).peekable();
            if hooks.peek().is_some() && hooks.all(|h| h.mute_alert) {
                return None;
            }
            let text = match gate {
                HookType::ConfirmPromotion => "Canary promotion is waiting for approval.",
                HookType::ConfirmTrafficIncrease => {
                    "Canary traffic increase is waiting for approval."
                }
                _ => "Canary is waiting for approval.",
            };
            Alert::new(text, Warn)
        }
        Message::RollingBack { cause, .. } => match cause {
            RollbackCause::Threshold(n) => {
                Alert::new(format!("Failed checks threshold reached {n}"), Error)
            }
            RollbackCause::ProgressDeadline => Alert::new(
                format!(
                    "Progress deadline exceeded {} \"{}\" exceeded its progress deadline",
                    c.target.kind.to_ascii_lowercase(),
                    c.target.name
                ),
                Error,
            ),
            RollbackCause::Webhook => Alert::new("Rolling back manual webhook invoked", Warn),
            RollbackCause::Requested => return None,
        },
        _ => return None,
    })
}

/// `alert` with the cluster's name as its first field, as Flagger's
/// `-cluster-name` attaches it to every alert.
pub fn with_cluster(alert: &Alert, cluster: &str) -> Alert {
    let mut fields = vec![Field {
        name: "Cluster".to_string(),
        value: cluster.to_string(),
    }];
    fields.extend(alert.fields.iter().cloned());
    Alert {
        fields,
        ..alert.clone()
    }
}

/// The canary's settings, attached to the new-revision alert: its
/// target, threshold, progress deadline and how traffic is routed.
pub fn metadata(c: &ResolvedCanary) -> Vec<Field> {
    let field = |name: &str, value: String| Field {
        name: name.to_string(),
        value,
    };
    let mut out = vec![
        field(
            "Target",
            format!("{}/{}.{}", c.target.kind, c.target.name, c.namespace),
        ),
        field("Failed checks threshold", c.threshold.to_string()),
        field(
            "Progress deadline",
            format!("{}s", c.progress_deadline_seconds),
        ),
    ];
    let routing = if c.step_weight > 0 {
        Some(format!(
            "Weight step: {} max: {}",
            c.step_weight, c.max_weight
        ))
    } else if !c.step_weights.is_empty() {
        let steps: Vec<String> = c.step_weights.iter().map(u32::to_string).collect();
        Some(format!(
            "Weight steps: {} max: {}",
            steps.join(","),
            c.max_weight
        ))
    } else if !c.matches.is_empty() {
        Some("A/B Testing".to_string())
    } else if c.iterations > 0 {
        Some("Blue/Green".to_string())
    } else {
        None
    };
    if let Some(r) = routing {
        out.push(field("Traffic routing", r));
    }
    out
}

/// Where a provider of type `kind` posts, given its address: Discord's
/// Slack-compatible endpoint is the address with `/slack` appended.
pub fn endpoint(kind: &str, address: &str) -> String {
    if kind == "discord" && !address.ends_with("/slack") {
        match address.split_once('?') {
            Some((path, query)) => format!("{}/slack?{query}", path.trim_end_matches('/')),
            None => format!("{}/slack", address.trim_end_matches('/')),
        }
    } else {
        address.to_string()
    }
}

#[derive(Serialize)]
struct SlackPayload<'a> {
    channel: &'a str,
    username: &'a str,
    icon_url: &'a str,
    icon_emoji: &'a str,
    attachments: Vec<SlackAttachment<'a>>,
}

#[derive(Serialize)]
struct SlackAttachment<'a> {
    color: &'a str,
    author_name: String,
    text: &'a str,
    mrkdwn_in: [&'a str; 1],
    fields: Vec<SlackField<'a>>,
}

#[derive(Serialize)]
struct SlackField<'a> {
    title: &'a str,
    value: &'a str,
    short: bool,
}

#[derive(Serialize)]
struct TeamsPayload<'a> {
    #[serde(rename = "@type")]
    kind: &'a str,
    #[serde(rename = "@context")]
    context: &'a str,
    #[serde(rename = "themeColor")]
    theme_color: &'a str,
    summary: String,
    sections: Vec<TeamsSection<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TeamsSection<'a> {
    activity_title: &'a str,
    activity_subtitle: String,
    facts: Vec<TeamsFact<'a>>,
}

#[derive(Serialize)]
struct TeamsFact<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct GChatPayload {
    cards: Vec<GChatCard>,
}

#[derive(Serialize)]
struct GChatCard {
    header: GChatHeader,
    sections: Vec<GChatSection>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GChatHeader {
    title: &'static str,
    subtitle: String,
    image_url: &'static str,
}

#[derive(Serialize)]
struct GChatSection {
    widgets: Vec<GChatWidget>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GChatWidget {
    text_paragraph: GChatText,
}

#[derive(Serialize)]
struct GChatText {
    text: String,
}

/// Who an alert is posted as, where a provider type has the notion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// `spec.channel`, `general` when unset.
    pub channel: String,
    /// `spec.username`, `flagger` when unset.
    pub username: String,
}

impl Sender {
    /// Flagger's defaults for an unset (or empty) channel and username.
    pub fn new(channel: Option<&str>, username: Option<&str>) -> Sender {
        let or = |v: Option<&str>, d: &str| v.filter(|s| !s.is_empty()).unwrap_or(d).to_string();
        Sender {
            channel: or(channel, "general"),
            username: or(username, "flagger"),
        }
    }
}

/// The JSON body of `alert` about canary `name` in `namespace`, as
/// provider type `kind` is sent it; `None` for a type not in
/// [`SENT_TYPES`].
pub fn payload(
    kind: &str,
    sender: &Sender,
    name: &str,
    namespace: &str,
    alert: &Alert,
) -> Option<serde_json::Value> {
    let subject = format!("{name}.{namespace}");
    let error = alert.severity == AlertSeverity::Error;
    let value = match kind {
        "slack" | "discord" | "rocket" => {
            let color = match (kind, error) {
                ("rocket", false) => "#0076D7",
                ("rocket", true) => "#FF0000",
                (_, false) => "good",
                (_, true) => "danger",
            };
            serde_json::to_value(SlackPayload {
                channel: &sender.channel,
                username: &sender.username,
                icon_url: "",
                icon_emoji: ":rocket:",
                attachments: vec![SlackAttachment {
                    color,
                    author_name: subject,
                    text: &alert.message,
                    mrkdwn_in: ["text"],
                    fields: alert
                        .fields
                        .iter()
                        .map(|f| SlackField {
                            title: &f.name,
                            value: &f.value,
                            short: false,
                        })
                        .collect(),
                }],
            })
        }
        "msteams" => serde_json::to_value(TeamsPayload {
            kind: "MessageCard",
            context: "http://schema.org/extensions",
            theme_color: if error { "FF0000" } else { "0076D7" },
            summary: subject.clone(),
            sections: vec![TeamsSection {
                activity_title: &alert.message,
                activity_subtitle: subject,
                facts: alert
                    .fields
                    .iter()
                    .map(|f| TeamsFact {
                        name: &f.name,
                        value: &f.value,
                    })
                    .collect(),
            }],
        }),
        "gchat" => {
            let paragraph = |text: String| GChatSection {
                widgets: vec![GChatWidget {
                    text_paragraph: GChatText { text },
                }],
            };
            let mut sections = vec![paragraph(format!(
                "<font color=#848484><strong>{}</strong></font>",
                alert.message
            ))];
            sections.extend(alert.fields.iter().map(|f| {
                paragraph(format!(
                    "{}<br><font color=#848484><strong>{}</strong></font>",
                    f.name, f.value
                ))
            }));
            serde_json::to_value(GChatPayload {
                cards: vec![GChatCard {
                    header: GChatHeader {
                        title: "Flagger",
                        subtitle: subject,
                        image_url: "https://flagger.app/favicon.png",
                    },
                    sections,
                }],
            })
        }
        _ => return None,
    };
    value.ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schedule::Advance;
    use serde_json::json;

    fn canary(analysis: &str) -> ResolvedCanary {
        let yaml = format!(
            "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: prod}}\n\
             spec:\n  provider: kubernetes\n  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}\n  \
             service: {{port: 9898}}\n  analysis: {analysis}\n"
        );
        let file = crate::spec::load_str("c.yaml", &yaml).unwrap();
        crate::spec::resolve::resolve(&file, &file.canaries[0], &Default::default())
    }

    fn rolling_back(cause: RollbackCause) -> Message {
        Message::RollingBack {
            canary: "podinfo.prod".into(),
            reason: "x".into(),
            cause,
        }
    }

    #[test]
    fn severities_parse_with_info_as_the_default() {
        assert_eq!(AlertSeverity::parse(None), Some(AlertSeverity::Info));
        assert_eq!(AlertSeverity::parse(Some("")), Some(AlertSeverity::Info));
        assert_eq!(
            AlertSeverity::parse(Some("warn")),
            Some(AlertSeverity::Warn)
        );
        assert_eq!(
            AlertSeverity::parse(Some("error")),
            Some(AlertSeverity::Error)
        );
        assert_eq!(AlertSeverity::parse(Some("critical")), None);
    }

    #[test]
    fn info_gets_everything_warn_warnings_and_errors_error_only_errors() {
        use AlertSeverity::*;
        let got = |s: AlertSeverity| -> Vec<AlertSeverity> {
            [Info, Warn, Error]
                .into_iter()
                .filter(|a| s.receives(*a))
                .collect()
        };
        assert_eq!(got(Info), [Info, Warn, Error]);
        assert_eq!(got(Warn), [Warn, Error]);
        assert_eq!(got(Error), [Error]);
    }

    #[test]
    fn flaggers_alert_texts_and_severities() {
        let c = canary(
            "{interval: 1m, threshold: 5, stepWeight: 10, maxWeight: 50, \
             webhooks: [{name: gate, type: confirm-promotion, url: 'http://g/'}]}",
        );
        let cases = [
            (
                Message::NewRevision {
                    target: "podinfo.prod".into(),
                },
                "New revision detected, progressing canary analysis.",
                AlertSeverity::Info,
            ),
            (
                Message::Completed {
                    target: "podinfo.prod".into(),
                },
                "Canary analysis completed successfully, promotion finished.",
                AlertSeverity::Info,
            ),
            (
                Message::WaitingForApproval {
                    canary: "podinfo.prod".into(),
                    gate: HookType::ConfirmPromotion,
                    hooks: "gate".into(),
                },
                "Canary promotion is waiting for approval.",
                AlertSeverity::Warn,
            ),
            (
                rolling_back(RollbackCause::Threshold(5)),
                "Failed checks threshold reached 5",
                AlertSeverity::Error,
            ),
            (
                rolling_back(RollbackCause::ProgressDeadline),
                "Progress deadline exceeded deployment \"podinfo\" exceeded its progress deadline",
                AlertSeverity::Error,
            ),
            (
                rolling_back(RollbackCause::Webhook),
                "Rolling back manual webhook invoked",
                AlertSeverity::Warn,
            ),
        ];
        for (m, text, sev) in cases {
            let a = alert_for(&c, &m).unwrap_or_else(|| panic!("no alert for {m}"));
            assert_eq!((a.message.as_str(), a.severity), (text, sev));
        }
        assert_eq!(alert_for(&c, &rolling_back(RollbackCause::Requested)), None);
        let advanced = Message::Advanced {
            canary: "podinfo.prod".into(),
            advance: Advance::Weight(10),
        };
        assert_eq!(alert_for(&c, &advanced), None);
    }

    #[test]
    fn the_new_revision_alert_carries_the_canary_settings() {
        let c = canary("{interval: 1m, threshold: 5, stepWeight: 10, maxWeight: 50}");
        let a = alert_for(
            &c,
            &Message::NewRevision {
                target: "podinfo.prod".into(),
            },
        )
        .unwrap();
        let fields: Vec<(&str, &str)> = a
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("Target", "Deployment/podinfo.prod"),
                ("Failed checks threshold", "5"),
                ("Progress deadline", "600s"),
                ("Traffic routing", "Weight step: 10 max: 50"),
            ]
        );
        let steps = canary("{interval: 1m, threshold: 2, stepWeights: [5, 25, 60], maxWeight: 60}");
        assert_eq!(
            metadata(&steps).last().unwrap().value,
            "Weight steps: 5,25,60 max: 60"
        );
        let bg = canary("{interval: 1m, threshold: 2, iterations: 3}");
        assert_eq!(metadata(&bg).last().unwrap().value, "Blue/Green");
    }

    #[test]
    fn muted_gates_and_restarts_send_nothing_and_skipped_analyses_say_so() {
        let c = canary(
            "{interval: 1m, threshold: 5, stepWeight: 10, maxWeight: 50, \
             webhooks: [{name: gate, type: confirm-rollout, url: 'http://g/', muteAlert: true}]}",
        );
        let waiting = Message::WaitingForApproval {
            canary: "podinfo.prod".into(),
            gate: HookType::ConfirmRollout,
            hooks: "gate".into(),
        };
        assert_eq!(alert_for(&c, &waiting), None);
        let restart = [
            Message::Restarting {
                target: "podinfo.prod".into(),
            },
            Message::NewRevision {
                target: "podinfo.prod".into(),
            },
        ];
        assert!(alerts_for(&c, Phase::Progressing, &restart).is_empty());
        let promotion_gate = [Message::WaitingForApproval {
            canary: "podinfo.prod".into(),
            gate: HookType::ConfirmPromotion,
            hooks: "approve".into(),
        }];
        assert_eq!(
            alerts_for(&c, Phase::Progressing, &promotion_gate).len(),
            1,
            "the gate closes"
        );
        assert!(
            alerts_for(&c, Phase::WaitingPromotion, &promotion_gate).is_empty(),
            "still closed"
        );
        let mut skipped = c.clone();
        skipped.skip_analysis = true;
        let done = Message::Completed {
            target: "podinfo.prod".into(),
        };
        assert_eq!(
            alert_for(&skipped, &done).unwrap().message,
            "Canary analysis was skipped, promotion finished."
        );
    }

    fn sample(severity: AlertSeverity) -> Alert {
        Alert {
            message: "Failed checks threshold reached 5".into(),
            severity,
            fields: vec![Field {
                name: "Target".into(),
                value: "Deployment/podinfo.prod".into(),
            }],
        }
    }

    #[test]
    fn slack_discord_and_rocket_get_slack_attachments() {
        let s = Sender::new(Some("ops"), None);
        let slack = payload(
            "slack",
            &s,
            "podinfo",
            "prod",
            &sample(AlertSeverity::Error),
        );
        assert_eq!(
            slack.unwrap(),
            json!({
                "channel": "ops", "username": "flagger", "icon_url": "", "icon_emoji": ":rocket:",
                "attachments": [{
                    "color": "danger", "author_name": "podinfo.prod",
                    "text": "Failed checks threshold reached 5", "mrkdwn_in": ["text"],
                    "fields": [{"title": "Target", "value": "Deployment/podinfo.prod", "short": false}]
                }]
            })
        );
        let info = payload(
            "discord",
            &s,
            "podinfo",
            "prod",
            &sample(AlertSeverity::Info),
        )
        .unwrap();
        assert_eq!(info["attachments"][0]["color"], "good");
        let rocket = payload(
            "rocket",
            &s,
            "podinfo",
            "prod",
            &sample(AlertSeverity::Info),
        )
        .unwrap();
        assert_eq!(rocket["attachments"][0]["color"], "#0076D7");
        let rocket = payload(
            "rocket",
            &s,
            "podinfo",
            "prod",
            &sample(AlertSeverity::Error),
        )
        .unwrap();
        assert_eq!(rocket["attachments"][0]["color"], "#FF0000");
    }

    #[test]
    fn teams_gets_a_message_card_and_google_chat_a_card() {
        let s = Sender::new(None, None);
        assert_eq!(s.channel, "general");
        let teams = payload(
            "msteams",
            &s,
            "podinfo",
            "prod",
            &sample(AlertSeverity::Error),
        );
        assert_eq!(
            teams.unwrap(),
            json!({
                "@type": "MessageCard", "@context": "http://schema.org/extensions",
                "themeColor": "FF0000", "summary": "podinfo.prod",
                "sections": [{
                    "activityTitle": "Failed checks threshold reached 5",
                    "activitySubtitle": "podinfo.prod",
                    "facts": [{"name": "Target", "value": "Deployment/podinfo.prod"}]
                }]
            })
        );
        let gchat = payload("gchat", &s, "podinfo", "prod", &sample(AlertSeverity::Info));
        assert_eq!(
            gchat.unwrap(),
            json!({"cards": [{
                "header": {"title": "Flagger", "subtitle": "podinfo.prod",
                           "imageUrl": "https://flagger.app/favicon.png"},
                "sections": [
                    {"widgets": [{"textParagraph": {"text":
                        "<font color=#848484><strong>Failed checks threshold reached 5</strong></font>"}}]},
                    {"widgets": [{"textParagraph": {"text":
                        "Target<br><font color=#848484><strong>Deployment/podinfo.prod</strong></font>"}}]}
                ]
            }]})
        );
        assert_eq!(
            payload("opsgenie", &s, "p", "n", &sample(AlertSeverity::Info)),
            None
        );
    }

    #[test]
    fn discord_posts_to_its_slack_compatible_endpoint() {
        assert_eq!(
            endpoint("discord", "https://discord.com/api/webhooks/1/abc"),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        assert_eq!(
            endpoint("discord", "https://discord.com/api/webhooks/1/abc/slack"),
            "https://discord.com/api/webhooks/1/abc/slack"
        );
        assert_eq!(endpoint("slack", "https://hooks/x"), "https://hooks/x");
    }
}
