//! Message bodies, shaped as each service expects (the Slack and Teams
//! shapes are Flagger's notifier payloads).

use serde::Serialize;
use serde_json::{Value, json};

use super::{Alert, ProviderKind, ResolvedProvider};
use sluice_api::AlertSeverity;

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

/// Slack's incoming-webhook body: one attachment, green or red.
fn slack(provider: &ResolvedProvider, alert: &Alert) -> Value {
    let fields = alert.all_fields();
    let payload = SlackPayload {
        channel: &provider.channel,
        username: &provider.username,
        icon_url: "",
        icon_emoji: ":rocket:",
        attachments: vec![SlackAttachment {
            color: if alert.severity == AlertSeverity::Error {
                "danger"
            } else {
                "good"
            },
            author_name: alert.subject(),
            text: &alert.message,
            mrkdwn_in: ["text"],
            fields: fields
                .iter()
                .map(|f| SlackField {
                    title: &f.name,
                    value: &f.value,
                    short: false,
                })
                .collect(),
        }],
    };
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

/// A Microsoft Teams MessageCard.
fn msteams(alert: &Alert) -> Value {
    let facts: Vec<Value> = alert
        .all_fields()
        .iter()
        .map(|f| json!({"name": f.name, "value": f.value}))
        .collect();
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": if alert.severity == AlertSeverity::Error { "FF0000" } else { "0076D7" },
        "summary": alert.subject(),
        "sections": [{
            "activityTitle": alert.message,
            "activitySubtitle": alert.subject(),
            "facts": facts,
        }],
    })
}

/// Sluice's own JSON for any receiver: every field by name.
fn generic(alert: &Alert) -> Value {
    let fields: serde_json::Map<String, Value> = alert
        .fields
        .iter()
        .map(|f| (f.name.clone(), Value::String(f.value.clone())))
        .collect();
    json!({
        "name": alert.canary,
        "namespace": alert.namespace,
        "phase": alert.phase.map(|p| p.as_str()).unwrap_or(""),
        "weight": alert.weight,
        "severity": alert.severity.as_str(),
        "message": alert.message,
        "fields": fields,
    })
}

/// Where to POST and what.
pub(crate) fn request(provider: &ResolvedProvider, alert: &Alert) -> (String, Value) {
    match provider.kind {
        ProviderKind::Slack => (provider.url.clone(), slack(provider, alert)),
        // Discord accepts Slack's format at the webhook URL + "/slack".
        ProviderKind::Discord => (discord_url(&provider.url), slack(provider, alert)),
        ProviderKind::MsTeams => (provider.url.clone(), msteams(alert)),
        ProviderKind::Generic => (provider.url.clone(), generic(alert)),
    }
}

fn discord_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.path().ends_with("/slack") => {
            let path = format!("{}/slack", u.path().trim_end_matches('/'));
            u.set_path(&path);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Field;
    use sluice_api::CanaryPhase;

    fn alert(severity: AlertSeverity) -> Alert {
        Alert {
            canary: "podinfo".into(),
            namespace: "test".into(),
            phase: Some(CanaryPhase::Failed),
            weight: 20,
            severity,
            message: "Canary analysis failed: Halt podinfo.test advancement error rate 69.17 > 1"
                .into(),
            fields: vec![Field::new("Target", "Deployment/podinfo.test")],
        }
    }

    fn provider(kind: ProviderKind, url: &str) -> ResolvedProvider {
        ResolvedProvider {
            kind,
            url: url.into(),
            token: None,
            channel: "alerts".into(),
            username: "sluice".into(),
            proxy: None,
        }
    }

    #[test]
    fn slack_shape() {
        let (url, v) = request(
            &provider(ProviderKind::Slack, "https://hooks.slack.test/x"),
            &alert(AlertSeverity::Error),
        );
        assert_eq!(url, "https://hooks.slack.test/x");
        assert_eq!(v["channel"], "alerts");
        assert_eq!(v["username"], "sluice");
        let a = &v["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert_eq!(a["author_name"], "podinfo.test");
        assert!(a["text"].as_str().unwrap().contains("error rate 69.17"));
        let titles: Vec<&str> = a["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["Phase", "Canary weight", "Target"]);
        assert_eq!(a["fields"][1]["value"], "20");
    }

    #[test]
    fn discord_uses_the_slack_endpoint() {
        let (url, v) = request(
            &provider(
                ProviderKind::Discord,
                "https://discord.test/api/webhooks/1/abc",
            ),
            &alert(AlertSeverity::Info),
        );
        assert_eq!(url, "https://discord.test/api/webhooks/1/abc/slack");
        assert_eq!(v["attachments"][0]["color"], "good");
        let (url, _) = request(
            &provider(ProviderKind::Discord, "https://discord.test/w/slack"),
            &alert(AlertSeverity::Info),
        );
        assert_eq!(url, "https://discord.test/w/slack");
    }

    #[test]
    fn teams_shape() {
        let (_, v) = request(
            &provider(ProviderKind::MsTeams, "https://teams.test/x"),
            &alert(AlertSeverity::Error),
        );
        assert_eq!(v["@type"], "MessageCard");
        assert_eq!(v["themeColor"], "FF0000");
        assert_eq!(v["sections"][0]["activitySubtitle"], "podinfo.test");
        assert_eq!(v["sections"][0]["facts"][0]["name"], "Phase");
        assert_eq!(v["sections"][0]["facts"][0]["value"], "Failed");
    }

    #[test]
    fn generic_shape() {
        let (_, v) = request(
            &provider(ProviderKind::Generic, "http://x/"),
            &alert(AlertSeverity::Warn),
        );
        assert_eq!(
            v,
            json!({
                "name": "podinfo", "namespace": "test", "phase": "Failed", "weight": 20,
                "severity": "warn",
                "message": "Canary analysis failed: Halt podinfo.test advancement error rate 69.17 > 1",
                "fields": {"Target": "Deployment/podinfo.test"}
            })
        );
    }
}
