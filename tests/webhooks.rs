//! Webhooks over real HTTP, against a local server that records what it
//! receives.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use sluice_api::{Canary, CanaryPhase, CanaryStatus, HookType, Webhook, load};
use sluice_rollout::analysis::checks::WebhookCaller;
use sluice_rollout::cluster::EventType;
use sluice_rollout::webhooks::{HttpWebhooks, WebhookError};
use support::http::{Answer, Recorder};

fn canary() -> Canary {
    let mut c = load::canary_from_yaml(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898, gatewayRefs: [{name: gateway}]}
  analysis:
    stepWeight: 10
    webhooks:
      - name: load-test
        url: http://flagger-loadtester.test/
        timeout: 5s
        retries: 2
        metadata: {type: cmd, cmd: hey -z 1m http://podinfo-canary.test:9898/}
",
    )
    .unwrap();
    c.status = Some(CanaryStatus {
        phase: Some(CanaryPhase::Progressing),
        last_applied_spec: Some("5d8f7c6b9".into()),
        canary_weight: 10,
        ..Default::default()
    });
    c
}

/// The Canary's own webhook, pointed at `url`.
fn hook(url: &str, retries: u32, timeout: Duration) -> Webhook {
    let mut h = canary().settings().unwrap().webhooks.remove(0);
    h.url = format!("{url}/hook");
    h.retries = retries;
    h.timeout = timeout;
    h
}

fn webhooks() -> HttpWebhooks {
    HttpWebhooks::new()
        .unwrap()
        .with_backoff(Duration::from_millis(20))
}

#[tokio::test]
async fn a_passing_hook_receives_flaggers_payload() {
    let server = Recorder::start(vec![Answer::new(200, "ok")]).await;
    let h = hook(&server.url, 0, Duration::from_secs(5));
    // Through the analysis's trait, as the engine calls it.
    WebhookCaller::call(&webhooks(), &canary(), &h, CanaryPhase::Progressing)
        .await
        .unwrap();
    let r = &server.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({
            "name": "podinfo",
            "namespace": "test",
            "phase": "Progressing",
            "checksum": "5d8f7c6b9",
            "type": "rollout",
            "metadata": {"type": "cmd", "cmd": "hey -z 1m http://podinfo-canary.test:9898/"}
        })
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = Recorder::start(vec![
        Answer::new(503, "warming up"),
        Answer::new(500, "still"),
        Answer::new(202, ""),
    ])
    .await;
    let h = hook(&server.url, 2, Duration::from_secs(5));
    webhooks()
        .call_hook(&canary(), &h, CanaryPhase::Progressing)
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn failures_name_the_status_and_body() {
    let server = Recorder::start(vec![Answer::new(500, "load test failed: 42% errors")]).await;
    let h = hook(&server.url, 1, Duration::from_secs(5));
    let e = webhooks()
        .call_hook(&canary(), &h, CanaryPhase::Progressing)
        .await
        .unwrap_err();
    assert_eq!(server.requests().len(), 2, "one retry");
    let text = e.to_string();
    assert!(text.contains(&h.url), "{text}");
    assert!(text.contains("500 Internal Server Error"), "{text}");
    assert!(text.contains("load test failed: 42% errors"), "{text}");

    // A client error is final: not retried.
    let server = Recorder::start(vec![Answer::new(403, "{\"error\":\"denied\"}")]).await;
    let h = hook(&server.url, 3, Duration::from_secs(5));
    let e = webhooks()
        .call_hook(&canary(), &h, CanaryPhase::Progressing)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, WebhookError::Status { status, .. } if status.starts_with("403")),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn slow_hooks_time_out() {
    let server = Recorder::start(vec![Answer::new(200, "").delayed(Duration::from_secs(3))]).await;
    let h = hook(&server.url, 0, Duration::from_millis(300));
    let e = webhooks()
        .call_hook(&canary(), &h, CanaryPhase::Progressing)
        .await
        .unwrap_err();
    assert!(matches!(e, WebhookError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains(&h.url), "{e}");
}

#[tokio::test]
async fn unreachable_hooks_name_the_url() {
    let h = hook("http://127.0.0.1:9", 0, Duration::from_secs(2));
    let e = webhooks()
        .call_hook(&canary(), &h, CanaryPhase::Progressing)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("http://127.0.0.1:9/hook"), "{e}");
}

#[tokio::test]
async fn event_hooks_receive_flaggers_event_payload() {
    let server = Recorder::start(vec![Answer::new(200, "")]).await;
    let h = Webhook {
        name: "events".into(),
        hook_type: HookType::Event,
        url: format!("{}/events", server.url),
        timeout: Duration::from_secs(5),
        retries: 0,
        metadata: BTreeMap::from([
            ("env".into(), "prod".into()),
            ("eventType".into(), "ignored".into()),
        ]),
        mute_alert: false,
        disable_tls: false,
    };
    let at: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    webhooks()
        .post_event(
            &canary(),
            &h,
            "Advance podinfo.test canary weight 10",
            EventType::Normal,
            at,
        )
        .await
        .unwrap();
    let body = server.requests()[0].json();
    assert_eq!(body["name"], "podinfo");
    assert_eq!(body["phase"], "Progressing");
    assert_eq!(body["checksum"], "5d8f7c6b9");
    assert_eq!(
        body["metadata"],
        serde_json::json!({
            "eventMessage": "Advance podinfo.test canary weight 10",
            "eventType": "Normal",
            "timestamp": "1767225660000",
            "env": "prod"
        })
    );
}
