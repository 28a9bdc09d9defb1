//! Alerts to Slack, Microsoft Teams, Discord and generic webhooks, against
//! a local server that records what it receives.

use crate::support;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice_api::{AlertSeverity, Canary, CanaryPhase, CanaryStatus, load};
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::notify::{
    Alert, Notifier, NotifyError, ProviderKind, ResolvedProvider, StaticAlertProviders,
};
use support::http::{Answer, Recorder};

/// A Canary with Flagger's `analysis.alerts`, exactly as Flagger's docs write them.
const CANARY: &str = "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    alerts:
      - name: \"on-call Slack\"
        severity: error
        providerRef:
          name: on-call
          namespace: flagger
      - name: \"qa Discord\"
        severity: warn
        providerRef:
          name: qa-discord
      - name: \"dev MS Teams\"
        severity: info
        providerRef:
          name: dev-msteams
      - name: \"audit\"
        providerRef:
          name: audit
";

fn providers(url: &str) -> String {
    format!(
        "apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
  namespace: flagger
spec:
  type: slack
  channel: on-call-alerts
  username: flagger
  secretRef:
    name: on-call-url
---
apiVersion: v1
kind: Secret
metadata:
  name: on-call-url
  namespace: flagger
data:
  address: aWdub3JlZA==
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: qa-discord
  namespace: test
spec:
  type: discord
  address: {url}/api/webhooks/1/abc
  channel: qa
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: dev-msteams
  namespace: test
spec:
  type: msteams
  address: {url}/teams
---
apiVersion: sluice.dev/v1beta1
kind: AlertProvider
metadata:
  name: audit
  namespace: test
spec:
  type: generic
  address: {url}/audit
"
    )
}

fn canary() -> Canary {
    let mut c = load::canary_from_yaml(CANARY).unwrap();
    c.status = Some(CanaryStatus {
        phase: Some(CanaryPhase::Progressing),
        canary_weight: 30,
        ..Default::default()
    });
    c
}

fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn notifier(url: &str) -> Notifier<MemoryCluster, StaticAlertProviders> {
    let cluster = MemoryCluster::new();
    // The Slack URL lives in a Secret, with a bearer token.
    cluster
        .put_secret(secret(
            "flagger",
            "on-call-url",
            &[("address", &format!("{url}/slack")), ("token", "xoxb-1")],
        ))
        .unwrap();
    let providers = load::alert_providers_from_yaml(&providers(url)).unwrap();
    assert_eq!(providers.len(), 4, "the Secret document is skipped");
    Notifier::new(cluster, StaticAlertProviders::new(providers)).unwrap()
}

#[tokio::test]
async fn alerts_go_where_their_severity_is_subscribed() {
    let server = Recorder::start(vec![Answer::new(200, "ok")]).await;
    let n = notifier(&server.url);
    let canary = canary();
    let settings = canary.settings().unwrap();
    assert_eq!(
        settings
            .alerts
            .iter()
            .map(|a| (a.severity, a.provider_namespace.as_str()))
            .collect::<Vec<_>>(),
        [
            (AlertSeverity::Error, "flagger"),
            (AlertSeverity::Warn, "test"),
            (AlertSeverity::Info, "test"),
            (AlertSeverity::Info, "test"),
        ]
    );

    // An info alert: only the info subscribers.
    let info = Alert::new(
        &canary,
        AlertSeverity::Info,
        "New revision detected, progressing canary analysis.",
    )
    .with_rollout_metadata(&settings);
    let deliveries = n.notify(&settings.alerts, &info).await;
    assert!(
        deliveries.iter().all(|d| d.result.is_ok()),
        "{deliveries:?}"
    );
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/teams", "/audit"]);

    // An error: everyone.
    let error = Alert::new(
        &canary,
        AlertSeverity::Error,
        "Canary analysis failed: Halt podinfo.test advancement error rate 69.17% > 1%",
    )
    .at(CanaryPhase::Failed, 0);
    let deliveries = n.notify(&settings.alerts, &error).await;
    assert_eq!(deliveries.len(), 4);
    assert!(
        deliveries.iter().all(|d| d.result.is_ok()),
        "{deliveries:?}"
    );
    let requests = server.requests();
    let by_path = |p: &str| {
        requests
            .iter()
            .rev()
            .find(|r| r.path == p)
            .unwrap_or_else(|| panic!("no request to {p}"))
    };

    let slack = by_path("/slack");
    assert_eq!(slack.header("authorization"), Some("Bearer xoxb-1"));
    let body = slack.json();
    assert_eq!(body["channel"], "on-call-alerts");
    assert_eq!(body["username"], "flagger");
    assert_eq!(body["attachments"][0]["color"], "danger");
    assert_eq!(body["attachments"][0]["author_name"], "podinfo.test");
    assert_eq!(
        body["attachments"][0]["text"],
        "Canary analysis failed: Halt podinfo.test advancement error rate 69.17% > 1%"
    );
    assert_eq!(
        body["attachments"][0]["fields"][0],
        serde_json::json!({"title": "Phase", "value": "Failed", "short": false})
    );

    let discord = by_path("/api/webhooks/1/abc/slack");
    assert_eq!(discord.json()["channel"], "qa");
    assert_eq!(discord.json()["username"], "sluice", "the default username");

    let teams = by_path("/teams").json();
    assert_eq!(teams["@type"], "MessageCard");
    assert_eq!(teams["themeColor"], "FF0000");
    assert_eq!(teams["sections"][0]["activityTitle"], error.message);

    let audit = by_path("/audit").json();
    assert_eq!(
        (
            audit["name"].as_str(),
            audit["namespace"].as_str(),
            audit["phase"].as_str(),
            audit["weight"].as_u64(),
            audit["severity"].as_str()
        ),
        (
            Some("podinfo"),
            Some("test"),
            Some("Failed"),
            Some(0),
            Some("error")
        )
    );
    // The earlier info alert carried Flagger's rollout metadata and the live weight.
    let first_audit = requests.iter().find(|r| r.path == "/audit").unwrap().json();
    assert_eq!(first_audit["weight"], 30);
    assert_eq!(
        first_audit["fields"]["Traffic routing"],
        "Weight step: 10 max: 50"
    );
}

#[tokio::test]
async fn delivery_problems_are_reported_not_raised() {
    let server = Recorder::start(vec![Answer::new(500, "channel_not_found")]).await;
    let n = notifier(&server.url);
    let canary = canary();
    let mut settings = canary.settings().unwrap();
    settings.alerts[3].provider_name = "nope".into();
    let alert = Alert::new(
        &canary,
        AlertSeverity::Info,
        "Canary is waiting for approval.",
    );
    let deliveries = n.notify(&settings.alerts, &alert).await;
    assert_eq!(deliveries.len(), 2);
    let e = deliveries[0].result.clone().unwrap_err();
    assert!(
        matches!(&e, NotifyError::Status { status, .. } if status.starts_with("500")),
        "{e:?}"
    );
    assert!(e.to_string().contains("channel_not_found"), "{e}");
    // The URL's path (the secret part of chat webhooks) is never shown.
    assert!(!e.to_string().contains("/teams"), "{e}");
    assert_eq!(
        deliveries[1].result.clone().unwrap_err().to_string(),
        "AlertProvider test/nope not found"
    );
}

#[tokio::test]
async fn without_alerts_the_default_provider_gets_everything() {
    let server = Recorder::start(vec![Answer::new(200, "")]).await;
    let n = notifier(&server.url).with_default_provider(ResolvedProvider {
        kind: ProviderKind::Generic,
        url: format!("{}/global", server.url),
        token: None,
        channel: "general".into(),
        username: "sluice".into(),
        proxy: None,
    });
    let alert = Alert::new(
        &canary(),
        AlertSeverity::Info,
        "Canary analysis completed successfully, promotion finished.",
    );
    let deliveries = n.notify(&[], &alert).await;
    assert_eq!(deliveries.len(), 1);
    assert!(deliveries[0].result.is_ok());
    assert_eq!(server.requests()[0].path, "/global");
}

#[test]
fn bad_alert_specs_are_refused_naming_the_field() {
    let bad = CANARY.replace("severity: warn", "severity: critical");
    let e = load::canary_from_yaml(&bad)
        .unwrap()
        .settings()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("spec.analysis.alerts[1].severity: \"critical\" is not a severity"),
        "{e}"
    );
    let e = load::alert_providers_from_yaml(
        "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: x}\nspec: {type: pagerduty, address: http://x}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("spec.type") && e.contains("pagerduty"), "{e}");
}
