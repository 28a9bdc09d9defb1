//! Webhooks over HTTP, as Flagger calls them: a JSON POST with the Canary's
//! name, namespace, phase and checksum plus the hook's metadata; 2xx passes.
//! [`HttpWebhooks`] implements the analysis's [`WebhookCaller`]; the
//! `event` hook gets Flagger's event payload through
//! [`HttpWebhooks::post_event`].

use crate::BoxError;
use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::analysis::checks::WebhookCaller;
use crate::cluster::EventType;
use crate::http_client;
use sluice_api::{Canary, CanaryPhase, Webhook};

/// What a hook receives (Flagger's `CanaryWebhookPayload`, plus `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct WebhookPayload {
    name: String,
    namespace: String,
    /// A phase name, or "" before the first status.
    phase: String,
    /// The revision under analysis: the Canary's `status.lastAppliedSpec`.
    checksum: String,
    /// The hook's type, e.g. "pre-rollout" (Flagger does not send it).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    hook_type: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
}

fn identity(canary: &Canary) -> (String, String, String) {
    (
        canary.metadata.name.clone().unwrap_or_default(),
        canary
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        canary
            .status
            .as_ref()
            .and_then(|s| s.last_applied_spec.clone())
            .unwrap_or_default(),
    )
}

/// The payload of a rollout hook (pre-rollout, rollout, confirm-*, …).
fn hook_payload(canary: &Canary, hook: &Webhook, phase: CanaryPhase) -> WebhookPayload {
    let (name, namespace, checksum) = identity(canary);
    WebhookPayload {
        name,
        namespace,
        phase: phase.as_str().to_string(),
        checksum,
        hook_type: Some(hook.hook_type.as_str().to_string()),
        metadata: hook.metadata.clone(),
    }
}

/// Flagger's event payload: the Canary's current phase, and metadata with
/// `eventMessage`, `eventType` ("Normal"/"Warning") and `timestamp` (Unix
/// milliseconds); the hook's own metadata is added without overriding them.
fn event_payload(
    canary: &Canary,
    hook: &Webhook,
    message: &str,
    event_type: EventType,
    at: Timestamp,
) -> WebhookPayload {
    let (name, namespace, checksum) = identity(canary);
    let phase = canary
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let mut metadata = BTreeMap::from([
        ("eventMessage".to_string(), message.to_string()),
        (
            "eventType".to_string(),
            match event_type {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_string(),
        ),
        ("timestamp".to_string(), at.as_millisecond().to_string()),
    ]);
    for (k, v) in &hook.metadata {
        metadata.entry(k.clone()).or_insert_with(|| v.clone());
    }
    WebhookPayload {
        name,
        namespace,
        phase,
        checksum,
        hook_type: Some(hook.hook_type.as_str().to_string()),
        metadata,
    }
}

/// Why a webhook did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Client(String),
    #[error("POST {url} failed after {attempts} attempt(s): {reason}")]
    Unreachable {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("POST {url} timed out after {timeout:?} ({attempts} attempt(s))")]
    Timeout {
        url: String,
        timeout: Duration,
        attempts: u32,
    },
    #[error("POST {url} returned {status}: {body}")]
    Status {
        url: String,
        status: String,
        body: String,
    },
}

/// Calls webhooks over HTTP.
#[derive(Clone, Debug)]
pub struct HttpWebhooks {
    /// Wait before the first retry; doubled each time, capped at 30 s
    /// (go-retryablehttp's policy, which Flagger uses).
    backoff: Duration,
    /// Client without TLS verification, for `disableTLS` hooks.
    insecure: reqwest::Client,
    secure: reqwest::Client,
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl HttpWebhooks {
    pub fn new() -> Result<Self, WebhookError> {
        // Timeouts are per hook and set per request.
        let build = |insecure: bool| {
            http_client::builder()
                .tls_danger_accept_invalid_certs(insecure)
                .build()
                .map_err(|e| {
                    WebhookError::Client(format!(
                        "building the HTTP client: {}",
                        http_client::chain(&e)
                    ))
                })
        };
        Ok(Self {
            backoff: Duration::from_secs(1),
            insecure: build(true)?,
            secure: build(false)?,
        })
    }

    /// Sets the first retry's wait (tests use milliseconds).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// POSTs `payload` to `hook.url` with the hook's timeout (per attempt)
    /// and retries. Connection errors, timeouts, 429 and 5xx are retried,
    /// as go-retryablehttp does; other answers are final.
    async fn post<T: Serialize + ?Sized>(
        &self,
        hook: &Webhook,
        payload: &T,
    ) -> Result<(), WebhookError> {
        let client = self.client_for(hook);
        let attempts = hook.retries.saturating_add(1);
        let mut wait = self.backoff;
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_BACKOFF);
            }
            let error = match post_once(client, hook, payload, attempt).await {
                Ok(()) => return Ok(()),
                Err(Failure {
                    error,
                    retry: false,
                }) => return Err(error),
                Err(Failure { error, retry: true }) => error,
            };
            tracing::debug!(hook = %hook.name, attempt, error = %error, "webhook attempt failed");
            last = Some(error);
        }
        Err(last.unwrap_or_else(|| WebhookError::Client("no attempt was made".into())))
    }

    /// The client for `hook`: without TLS verification for `disableTLS`.
    fn client_for(&self, hook: &Webhook) -> &reqwest::Client {
        if hook.disable_tls {
            &self.insecure
        } else {
            &self.secure
        }
    }

    /// Calls a rollout hook.
    pub async fn call_hook(
        &self,
        canary: &Canary,
        hook: &Webhook,
        phase: CanaryPhase,
    ) -> Result<(), WebhookError> {
        self.post(hook, &hook_payload(canary, hook, phase)).await
    }

    /// Sends one Kubernetes event to an `event` hook.
    pub async fn post_event(
        &self,
        canary: &Canary,
        hook: &Webhook,
        message: &str,
        event_type: EventType,
        at: Timestamp,
    ) -> Result<(), WebhookError> {
        self.post(hook, &event_payload(canary, hook, message, event_type, at))
            .await
    }
}

impl WebhookCaller for HttpWebhooks {
    async fn call(
        &self,
        canary: &Canary,
        hook: &Webhook,
        phase: CanaryPhase,
    ) -> Result<(), BoxError> {
        self.call_hook(canary, hook, phase)
            .await
            .map_err(Into::into)
    }

    async fn send_event(
        &self,
        canary: &Canary,
        hook: &Webhook,
        event: &crate::cluster::Event,
        at: Timestamp,
    ) -> Result<(), BoxError> {
        self.post_event(canary, hook, &event.message, event.event_type, at)
            .await
            .map_err(Into::into)
    }
}

/// A failed attempt at a webhook: why, and whether to try again.
struct Failure {
    error: WebhookError,
    retry: bool,
}

/// One POST of `payload` to `hook.url` within the hook's timeout: `Ok` on
/// a 2xx answer. Connection errors and timeouts are worth retrying;
/// answers are as [`retryable`] says.
async fn post_once<T: Serialize + ?Sized>(
    client: &reqwest::Client,
    hook: &Webhook,
    payload: &T,
    attempt: u32,
) -> Result<(), Failure> {
    let result = client
        .post(&hook.url)
        .timeout(hook.timeout)
        .json(payload)
        .send()
        .await;
    match result {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(status_failure(hook, response).await),
        Err(e) => Err(Failure {
            error: send_error(hook, e, attempt),
            retry: true,
        }),
    }
}

/// A non-2xx answer as an error with (an excerpt of) its body.
async fn status_failure(hook: &Webhook, response: reqwest::Response) -> Failure {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Failure {
        error: WebhookError::Status {
            url: hook.url.clone(),
            status: status.to_string(),
            body: if body.trim().is_empty() {
                "(empty body)".into()
            } else {
                http_client::excerpt(&body, 200)
            },
        },
        retry: retryable(status),
    }
}

/// go-retryablehttp's rule: 429 and 5xx but 501 (Not Implemented) are
/// worth retrying.
fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error() && status.as_u16() != 501 || status.as_u16() == 429
}

/// A request that got no answer: timed out, or did not reach the hook.
fn send_error(hook: &Webhook, e: reqwest::Error, attempt: u32) -> WebhookError {
    if e.is_timeout() {
        WebhookError::Timeout {
            url: hook.url.clone(),
            timeout: hook.timeout,
            attempts: attempt,
        }
    } else {
        WebhookError::Unreachable {
            url: hook.url.clone(),
            attempts: attempt,
            reason: http_client::chain(&e.without_url()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_api::{CanaryStatus, HookType};

    fn canary() -> Canary {
        let mut c = sluice_api::load::canary_from_yaml(
            "apiVersion: sluice.dev/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec: {targetRef: {name: podinfo}, service: {port: 9898}}\n",
        )
        .unwrap();
        c.status = Some(CanaryStatus {
            phase: Some(CanaryPhase::Progressing),
            last_applied_spec: Some("abc123".into()),
            ..Default::default()
        });
        c
    }

    fn hook(hook_type: HookType) -> Webhook {
        Webhook {
            name: "load-test".into(),
            hook_type,
            url: "http://127.0.0.1:1/".into(),
            timeout: Duration::from_secs(1),
            retries: 0,
            metadata: BTreeMap::from([
                ("cmd".to_string(), "hey".to_string()),
                ("eventType".to_string(), "mine".to_string()),
            ]),
            mute_alert: false,
            disable_tls: false,
        }
    }

    #[test]
    fn hook_payload_is_flaggers() {
        let p = hook_payload(
            &canary(),
            &hook(HookType::PreRollout),
            CanaryPhase::Progressing,
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "name": "podinfo", "namespace": "test", "phase": "Progressing",
                "checksum": "abc123", "type": "pre-rollout",
                "metadata": {"cmd": "hey", "eventType": "mine"}
            })
        );
    }

    #[test]
    fn event_payload_keeps_event_fields() {
        let at: Timestamp = "2026-01-01T00:00:00.5Z".parse().unwrap();
        let p = event_payload(
            &canary(),
            &hook(HookType::Event),
            "Advance podinfo.test canary weight 10",
            EventType::Normal,
            at,
        );
        assert_eq!(p.phase, "Progressing");
        assert_eq!(
            p.metadata["eventMessage"],
            "Advance podinfo.test canary weight 10"
        );
        assert_eq!(p.metadata["eventType"], "Normal");
        assert_eq!(p.metadata["timestamp"], "1767225600500");
        assert_eq!(p.metadata["cmd"], "hey");
    }

    #[tokio::test]
    async fn connection_errors_name_the_url() {
        let w = HttpWebhooks::new()
            .unwrap()
            .with_backoff(Duration::from_millis(1));
        let mut h = hook(HookType::Rollout);
        h.retries = 1;
        let e = w
            .call_hook(&canary(), &h, CanaryPhase::Progressing)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("http://127.0.0.1:1/"), "{e}");
        assert!(e.contains("2 attempt(s)"), "{e}");
    }
}
