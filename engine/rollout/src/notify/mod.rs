//! Alerts to chat services and JSON webhooks, with Flagger's semantics: a
//! Canary's `analysis.alerts` name AlertProviders and a severity; an alert
//! of a given severity goes to every entry that subscribes to it
//! ([`should_send`]). With no `alerts`, the operator-wide provider (if any)
//! gets everything, as Flagger's global notifier does.

mod payload;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::http_client;
use crate::metrics::secret_data;
use sluice_api::{
    AlertProvider, AlertSettings, AlertSeverity, Canary, CanaryPhase, RolloutSettings,
};

/// Flagger's timeout for one notification.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A name/value line of an alert (Flagger's `notifier.Field`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    value: String,
}

impl Field {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// One alert about one Canary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub canary: String,
    pub namespace: String,
    phase: Option<CanaryPhase>,
    /// The canary's traffic weight when the alert was raised.
    weight: u32,
    pub severity: AlertSeverity,
    /// What happened and why, e.g. "Canary analysis failed: …".
    pub message: String,
    /// Extra lines: the cluster name, the rollout's settings.
    fields: Vec<Field>,
}

impl Alert {
    /// An alert about `canary` in its current state (phase and weight from
    /// its status).
    pub fn new(canary: &Canary, severity: AlertSeverity, message: impl Into<String>) -> Self {
        let status = canary.status.clone().unwrap_or_default();
        Self {
            canary: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            phase: status.phase,
            weight: status.canary_weight,
            severity,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// Overrides phase and weight, for alerts raised before the status is written.
    pub fn at(mut self, phase: CanaryPhase, weight: u32) -> Self {
        self.phase = Some(phase);
        self.weight = weight;
        self
    }

    /// Adds Flagger's "Cluster" field.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "Flagger's cluster name has no setting yet; the tests pin the field's place"
        )
    )]
    fn with_cluster(mut self, cluster: &str) -> Self {
        if !cluster.is_empty() {
            self.fields.insert(0, Field::new("Cluster", cluster));
        }
        self
    }

    /// Adds Flagger's rollout metadata fields (target, threshold, deadline,
    /// traffic routing), which it sends with "New revision detected" and the
    /// final verdicts.
    pub fn with_rollout_metadata(mut self, settings: &RolloutSettings) -> Self {
        self.fields.push(Field::new(
            "Target",
            format!("Deployment/{}.{}", settings.target, self.namespace),
        ));
        self.fields.push(Field::new(
            "Failed checks threshold",
            settings.threshold.to_string(),
        ));
        self.fields.push(Field::new(
            "Progress deadline",
            format!("{}s", settings.progress_deadline.as_secs()),
        ));
        let routing = match settings.strategy.name.as_str() {
            "ab-testing" => Some("A/B Testing".to_string()),
            "blue-green" => Some("Blue/Green".to_string()),
            _ => match (settings.step_weight, settings.step_weights.as_slice()) {
                (Some(step), _) => {
                    Some(format!("Weight step: {step} max: {}", settings.max_weight))
                }
                (None, steps) if !steps.is_empty() => Some(format!(
                    "Weight steps: {} max: {}",
                    steps
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    settings.max_weight
                )),
                _ => None,
            },
        };
        if let Some(r) = routing {
            self.fields.push(Field::new("Traffic routing", r));
        }
        self
    }

    /// "podinfo.test", as Flagger titles its messages.
    fn subject(&self) -> String {
        format!("{}.{}", self.canary, self.namespace)
    }

    /// Phase and weight first, then the extra fields.
    fn all_fields(&self) -> Vec<Field> {
        let mut out = vec![
            Field::new("Phase", self.phase.map(|p| p.as_str()).unwrap_or("Unknown")),
            Field::new("Canary weight", self.weight.to_string()),
        ];
        out.extend(self.fields.iter().cloned());
        out
    }
}

/// Flagger's filter: `info` subscribers get everything, `warn` ones
/// warnings and errors, `error` ones errors only.
fn should_send(subscribed: AlertSeverity, alert: AlertSeverity) -> bool {
    match subscribed {
        AlertSeverity::Info => true,
        AlertSeverity::Warn => matches!(alert, AlertSeverity::Warn | AlertSeverity::Error),
        AlertSeverity::Error => alert == AlertSeverity::Error,
    }
}

/// The services Sluice can post to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Slack,
    MsTeams,
    Discord,
    Generic,
}

impl ProviderKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "slack" => Some(Self::Slack),
            "msteams" => Some(Self::MsTeams),
            "discord" => Some(Self::Discord),
            "generic" => Some(Self::Generic),
            _ => None,
        }
    }
}

/// An AlertProvider with its Secret read and defaults applied.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedProvider {
    pub kind: ProviderKind,
    pub url: String,
    /// Sent as `Authorization: Bearer …` (from the Secret's `token`).
    pub token: Option<String>,
    pub channel: String,
    pub username: String,
    pub proxy: Option<String>,
}

impl std::fmt::Debug for ResolvedProvider {
    // Webhook URLs of chat services are secrets: never log them whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedProvider")
            .field("kind", &self.kind)
            .field("host", &redact(&self.url))
            .field("channel", &self.channel)
            .field("username", &self.username)
            .finish()
    }
}

/// Scheme and host of a URL: enough to tell where, without the secret path.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "<invalid URL>".into(),
    }
}

/// Why an alert was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("AlertProvider {namespace}/{name} not found")]
    ProviderNotFound { namespace: String, name: String },
    #[error("AlertProvider {namespace}/{name}: {reason}")]
    InvalidProvider {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("reading {what}: {reason}")]
    Cluster { what: String, reason: String },
    #[error("{0}")]
    Client(String),
    #[error("sending the alert to {target} failed: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("{target} answered {status}: {body}")]
    Status {
        target: String,
        status: String,
        body: String,
    },
}

/// Looks AlertProviders up (the cluster, or a fixed list in the simulator).
pub trait AlertProviderSource: Send + Sync {
    fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = crate::cluster::Result<Option<AlertProvider>>> + Send;
}

/// A fixed set of AlertProviders.
#[derive(Debug, Clone, Default)]
pub struct StaticAlertProviders(pub(crate) Arc<Vec<AlertProvider>>);

impl StaticAlertProviders {
    pub fn new(providers: Vec<AlertProvider>) -> Self {
        Self(Arc::new(providers))
    }
}

impl AlertProviderSource for StaticAlertProviders {
    async fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> crate::cluster::Result<Option<AlertProvider>> {
        Ok(self
            .0
            .iter()
            .find(|p| {
                p.metadata.name.as_deref() == Some(name)
                    && p.metadata.namespace.as_deref().unwrap_or("default") == namespace
            })
            .cloned())
    }
}

/// What happened to one destination of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The `analysis.alerts` entry's name, or "default".
    pub alert: String,
    pub result: Result<(), NotifyError>,
}

/// Sends alerts. Failures are returned, never raised: an alert that cannot
/// be delivered must not stop a rollout.
#[derive(Clone)]
pub struct Notifier<C, P> {
    cluster: C,
    providers: P,
    http: reqwest::Client,
    default_provider: Option<ResolvedProvider>,
}

impl<C: Cluster, P: AlertProviderSource> Notifier<C, P> {
    pub fn new(cluster: C, providers: P) -> Result<Self, NotifyError> {
        let http = http_client::client(TIMEOUT, false)
            .map_err(|e| NotifyError::Client(http_client::chain(&e)))?;
        Ok(Self {
            cluster,
            providers,
            http,
            default_provider: None,
        })
    }

    /// The operator-wide destination for Canaries without `alerts`.
    pub fn with_default_provider(mut self, provider: ResolvedProvider) -> Self {
        self.default_provider = Some(provider);
        self
    }

    /// Reads AlertProvider `namespace/name` and its Secret (in the same
    /// namespace): the Secret's `address` overrides `spec.address`, its
    /// `token` becomes a bearer token.
    async fn resolve(&self, namespace: &str, name: &str) -> Result<ResolvedProvider, NotifyError> {
        let invalid = |reason: String| invalid_provider(namespace, name, reason);
        let p = self.alert_provider(namespace, name).await?;
        let kind = ProviderKind::parse(&p.spec.provider_type).ok_or_else(|| {
            invalid(format!(
                "type {:?} is not supported; use slack, msteams, discord or generic",
                p.spec.provider_type
            ))
        })?;
        let (url, token) = match &p.spec.secret_ref {
            Some(secret_ref) => {
                self.secret_address(namespace, name, &secret_ref.name)
                    .await?
            }
            None => (p.spec.address.clone().unwrap_or_default(), None),
        };
        if !is_http_url(&url) {
            return Err(invalid(
                "no valid http(s) address: set spec.address or an \"address\" key in the secretRef's Secret".into(),
            ));
        }
        Ok(ResolvedProvider {
            kind,
            url,
            token,
            channel: setting_or(&p.spec.channel, "general"),
            username: setting_or(&p.spec.username, "sluice"),
            proxy: p.spec.proxy.clone().filter(|p| !p.is_empty()),
        })
    }

    /// AlertProvider `namespace/name`, which must exist.
    async fn alert_provider(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<AlertProvider, NotifyError> {
        self.providers
            .alert_provider(namespace, name)
            .await
            .map_err(|e| NotifyError::Cluster {
                what: format!("AlertProvider {namespace}/{name}"),
                reason: format!("{e:#}"),
            })?
            .ok_or_else(|| NotifyError::ProviderNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
    }

    /// The `address` (required) and `token` (optional) of Secret
    /// `namespace/secret`, which AlertProvider `name` refers to.
    async fn secret_address(
        &self,
        namespace: &str,
        name: &str,
        secret: &str,
    ) -> Result<(String, Option<String>), NotifyError> {
        let invalid = |reason: String| invalid_provider(namespace, name, reason);
        let s = self
            .cluster
            .secret(namespace, secret)
            .await
            .map_err(|e| NotifyError::Cluster {
                what: format!("secret {namespace}/{secret}"),
                reason: format!("{e:#}"),
            })?
            .ok_or_else(|| invalid(format!("secret {namespace}/{secret} not found")))?;
        let data = secret_data(&s);
        let url = data.get("address").cloned().ok_or_else(|| {
            invalid(format!(
                "secret {namespace}/{secret} has no \"address\" key"
            ))
        })?;
        Ok((url, data.get("token").cloned()))
    }

    /// Posts `alert` to one provider.
    async fn send(&self, provider: &ResolvedProvider, alert: &Alert) -> Result<(), NotifyError> {
        let (url, body) = payload::request(provider, alert);
        let target = redact(&url);
        let http = match &provider.proxy {
            None => self.http.clone(),
            Some(proxy) => {
                let proxy = reqwest::Proxy::all(proxy)
                    .map_err(|e| NotifyError::Client(format!("invalid proxy {proxy:?}: {e}")))?;
                http_client::builder()
                    .timeout(TIMEOUT)
                    .proxy(proxy)
                    .build()
                    .map_err(|e| NotifyError::Client(http_client::chain(&e)))?
            }
        };
        let mut request = http.post(&url).json(&body);
        if let Some(token) = &provider.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| NotifyError::Unreachable {
            target: target.clone(),
            reason: http_client::chain(&e.without_url()),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(NotifyError::Status {
            target,
            status: status.to_string(),
            body: http_client::excerpt(&body, 200),
        })
    }

    /// Sends `alert` to every destination of the Canary that subscribes to
    /// its severity (or to the default provider when there are none), and
    /// reports each delivery.
    pub async fn notify(&self, alerts: &[AlertSettings], alert: &Alert) -> Vec<Delivery> {
        let mut out = Vec::new();
        if alerts.is_empty() {
            if let Some(p) = &self.default_provider {
                out.push(Delivery {
                    alert: "default".into(),
                    result: self.send(p, alert).await,
                });
            }
            return out;
        }
        for a in alerts
            .iter()
            .filter(|a| should_send(a.severity, alert.severity))
        {
            let result = match self.resolve(&a.provider_namespace, &a.provider_name).await {
                Ok(p) => self.send(&p, alert).await,
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::warn!(canary = %alert.subject(), alert = %a.name, error = %e, "alert not delivered");
            }
            out.push(Delivery {
                alert: a.name.clone(),
                result,
            });
        }
        out
    }
}

/// AlertProvider `namespace/name` is unusable, for `reason`.
fn invalid_provider(namespace: &str, name: &str, reason: String) -> NotifyError {
    NotifyError::InvalidProvider {
        namespace: namespace.into(),
        name: name.into(),
        reason,
    }
}

/// Whether `url` parses as an http or https URL.
fn is_http_url(url: &str) -> bool {
    matches!(url::Url::parse(url), Ok(u) if u.scheme() == "http" || u.scheme() == "https")
}

/// An optional provider setting, or `default` when unset or empty.
fn setting_or(value: &Option<String>, default: &str) -> String {
    value
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertSeverity::*;

    #[test]
    fn severity_filter_is_flaggers() {
        let table = [
            (Info, Info, true),
            (Info, Warn, true),
            (Info, Error, true),
            (Warn, Info, false),
            (Warn, Warn, true),
            (Warn, Error, true),
            (Error, Info, false),
            (Error, Warn, false),
            (Error, Error, true),
        ];
        for (subscribed, alert, expected) in table {
            assert_eq!(
                should_send(subscribed, alert),
                expected,
                "{subscribed:?} {alert:?}"
            );
        }
    }

    #[test]
    fn redaction_hides_the_path() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/…"
        );
    }

    #[test]
    fn rollout_metadata_fields() {
        let canary = sluice_api::load::canary_from_yaml(include_str!(
            "../../../../examples/podinfo-canary.yaml"
        ))
        .unwrap();
        let settings = canary.settings().unwrap();
        let a = Alert::new(&canary, Error, "Canary analysis failed")
            .with_cluster("prod")
            .with_rollout_metadata(&settings);
        let names: Vec<String> = a
            .all_fields()
            .into_iter()
            .map(|f| format!("{}={}", f.name, f.value))
            .collect();
        assert_eq!(
            names,
            [
                "Phase=Unknown",
                "Canary weight=0",
                "Cluster=prod",
                "Target=Deployment/podinfo.test",
                "Failed checks threshold=5",
                "Progress deadline=60s",
                "Traffic routing=Weight step: 10 max: 50",
            ]
        );
    }
}
