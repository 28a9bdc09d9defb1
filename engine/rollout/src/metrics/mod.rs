//! Metric values from Prometheus: [`PrometheusMetrics`] implements the
//! analysis's [`MetricsProvider`] by rendering a check's query (from its
//! MetricTemplate, inline `query`, or Flagger's built-ins) and running it
//! as an instant query, or as a range query for evaluators that ask for
//! series.

mod builtin;
pub mod prometheus;
mod template;

use crate::BoxError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;

use crate::analysis::checks::{MetricTarget, MetricsProvider};
use crate::cluster::Cluster;
use crate::http_client;
pub(crate) use builtin::{Builtin, Flavor};
pub use prometheus::{Credentials, PrometheusClient, PrometheusError};
use sluice_api::{Canary, MetricCheck, MetricProvider, MetricSource, MetricTemplate};
pub(crate) use template::{QueryModel, TemplateError};

/// Operator-wide Prometheus settings.
#[derive(Debug, Clone)]
pub struct PrometheusSettings {
    /// Prometheus for built-in metrics, inline queries and templates that
    /// give no address (Flagger's `-metrics-server`).
    pub default_address: Option<String>,
    /// Send every query here, whatever the templates say: the simulator's
    /// `--prometheus`. Template credentials are then not used, since they
    /// belong to another server.
    pub override_address: Option<String>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// Provider whose built-in queries apply when a Canary sets no
    /// `spec.provider` (Flagger's `-mesh-provider`).
    pub mesh_provider: String,
}

impl Default for PrometheusSettings {
    fn default() -> Self {
        Self {
            default_address: None,
            override_address: None,
            timeout: prometheus::DEFAULT_TIMEOUT,
            mesh_provider: "gatewayapi".into(),
        }
    }
}

/// The evaluation time of queries, shared with whoever drives the clock:
/// unset means Prometheus's now; the simulator and tests set it so that
/// queries read backfilled data at a known instant.
#[derive(Debug, Clone, Default)]
pub struct EvaluationTime(Arc<Mutex<Option<Timestamp>>>);

impl EvaluationTime {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fixed(t: Timestamp) -> Self {
        let e = Self::default();
        e.set(Some(t));
        e
    }

    pub fn set(&self, t: Option<Timestamp>) {
        match self.0.lock() {
            Ok(mut g) => *g = t,
            Err(poisoned) => *poisoned.into_inner() = t,
        }
    }

    fn get(&self) -> Option<Timestamp> {
        match self.0.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

/// Why a metric has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    #[error("MetricTemplate {namespace}/{name} not found")]
    TemplateNotFound { namespace: String, name: String },
    #[error("reading {what}: {reason}")]
    Cluster { what: String, reason: String },
    #[error("MetricTemplate {namespace}/{template}: secret {namespace}/{secret} not found")]
    SecretNotFound {
        namespace: String,
        template: String,
        secret: String,
    },
    #[error(
        "MetricTemplate {namespace}/{template}: secret {namespace}/{secret} has no {missing:?}; give a \"token\", or \"username\" and \"password\""
    )]
    SecretIncomplete {
        namespace: String,
        template: String,
        secret: String,
        missing: String,
    },
    #[error(
        "MetricTemplate {namespace}/{template}: provider type {provider:?} is not supported; use prometheus"
    )]
    UnsupportedProvider {
        namespace: String,
        template: String,
        provider: String,
    },
    #[error("no Prometheus address for {what}: {hint}")]
    NoAddress { what: String, hint: String },
    #[error("{0}")]
    NotBuiltin(String),
    #[error(transparent)]
    Provider(#[from] builtin::UnknownProvider),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Prometheus(#[from] PrometheusError),
}

/// A check's query, ready to run: what, where and how.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedQuery {
    address: String,
    pub query: String,
    credentials: Credentials,
    insecure_skip_verify: bool,
    headers: Vec<(String, String)>,
    /// Set for the built-in metrics, whose value is converted to Flagger's units.
    builtin: Option<(Builtin, Flavor)>,
}

/// [`MetricsProvider`] over Prometheus, reading MetricTemplates and their
/// Secrets through a [`Cluster`].
#[derive(Clone)]
pub struct PrometheusMetrics<C> {
    cluster: C,
    settings: PrometheusSettings,
    time: EvaluationTime,
    http: reqwest::Client,
    http_insecure: reqwest::Client,
}

impl<C: Cluster> PrometheusMetrics<C> {
    /// Builds the provider and its two HTTP clients (verifying TLS and,
    /// for `insecureSkipVerify` templates, not).
    pub fn new(cluster: C, settings: PrometheusSettings) -> Result<Self, MetricError> {
        let http = http_client::client(settings.timeout, false)
            .map_err(|e| PrometheusError::Client(http_client::chain(&e)))?;
        let http_insecure = http_client::client(settings.timeout, true)
            .map_err(|e| PrometheusError::Client(http_client::chain(&e)))?;
        Ok(Self {
            cluster,
            settings,
            time: EvaluationTime::new(),
            http,
            http_insecure,
        })
    }

    /// Queries at the time `time` holds (see [`EvaluationTime`]).
    pub fn with_evaluation_time(mut self, time: EvaluationTime) -> Self {
        self.time = time;
        self
    }

    fn address(
        &self,
        configured: Option<&str>,
        what: &str,
        hint: &str,
    ) -> Result<String, MetricError> {
        self.settings
            .override_address
            .as_deref()
            .or(configured.filter(|a| !a.trim().is_empty()))
            .or(self.settings.default_address.as_deref())
            .map(str::to_string)
            .ok_or_else(|| MetricError::NoAddress {
                what: what.to_string(),
                hint: hint.to_string(),
            })
    }

    /// Resolves and renders the query `check` runs for `target`.
    pub async fn prepare(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> Result<PreparedQuery, MetricError> {
        let model = QueryModel::new(canary, check, target);
        match &check.source {
            MetricSource::Builtin(name) => self.prepare_builtin(canary, name, target, &model),
            MetricSource::Query(q) => self.prepare_inline(canary, check, q, &model),
            MetricSource::Template { name, namespace } => {
                self.prepare_template(namespace, name, &model).await
            }
        }
    }

    /// One of Flagger's built-in metrics, in the flavour of the Canary's
    /// provider (or the operator's mesh provider), on the Canary's server.
    fn prepare_builtin(
        &self,
        canary: &Canary,
        name: &str,
        target: MetricTarget,
        model: &QueryModel,
    ) -> Result<PreparedQuery, MetricError> {
        let builtin = Builtin::from_name(name)
            .ok_or_else(|| MetricError::NotBuiltin(format!("{name:?} is not a builtin metric")))?;
        let provider = canary
            .spec
            .provider
            .as_deref()
            .unwrap_or(&self.settings.mesh_provider);
        let flavor = Flavor::for_provider(provider)?;
        let query = template::render(&builtin.template_for(flavor, target), model)?;
        Ok(PreparedQuery {
            address: self.canary_address(canary, &format!("builtin metric {name}"))?,
            query,
            credentials: Credentials::None,
            insecure_skip_verify: false,
            headers: Vec::new(),
            builtin: Some((builtin, flavor)),
        })
    }

    /// A check's inline `query`, on the Canary's server.
    fn prepare_inline(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        query: &str,
        model: &QueryModel,
    ) -> Result<PreparedQuery, MetricError> {
        Ok(PreparedQuery {
            address: self.canary_address(canary, &format!("metric {}", check.name))?,
            query: template::render(query, model)?,
            credentials: Credentials::None,
            insecure_skip_verify: false,
            headers: Vec::new(),
            builtin: None,
        })
    }

    /// The server of queries that name none: the Canary's
    /// `spec.metricsServer`, or the operator's (see [`Self::address`]).
    fn canary_address(&self, canary: &Canary, what: &str) -> Result<String, MetricError> {
        self.address(
            canary.spec.metrics_server.as_deref(),
            what,
            "set the Canary's spec.metricsServer or the operator's Prometheus address",
        )
    }

    /// MetricTemplate `namespace/name`'s query, on its server with its
    /// credentials, TLS setting and headers; with an override address,
    /// neither credentials nor `insecureSkipVerify` apply.
    async fn prepare_template(
        &self,
        namespace: &str,
        name: &str,
        model: &QueryModel,
    ) -> Result<PreparedQuery, MetricError> {
        let template = self.metric_template(namespace, name).await?;
        let provider = &template.spec.provider;
        check_provider_type(namespace, name, provider)?;
        let address = self.address(
            provider.address.as_deref(),
            &format!("MetricTemplate {namespace}/{name}"),
            "set spec.provider.address or the operator's Prometheus address",
        )?;
        let overridden = self.settings.override_address.is_some();
        let credentials = match (&provider.secret_ref, overridden) {
            (Some(secret), false) => self.credentials(namespace, name, &secret.name).await?,
            _ => Credentials::None,
        };
        Ok(PreparedQuery {
            address,
            query: template::render(&template.spec.query, model)?,
            credentials,
            insecure_skip_verify: provider.insecure_skip_verify && !overridden,
            headers: header_pairs(provider),
            builtin: None,
        })
    }

    /// MetricTemplate `namespace/name`, which must exist.
    async fn metric_template(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<MetricTemplate, MetricError> {
        self.cluster
            .metric_template(namespace, name)
            .await
            .map_err(|e| MetricError::Cluster {
                what: format!("MetricTemplate {namespace}/{name}"),
                reason: format!("{e:#}"),
            })?
            .ok_or_else(|| MetricError::TemplateNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
    }

    /// Flagger's rule: a `token` means bearer auth, otherwise `username`
    /// and `password` are both required.
    async fn credentials(
        &self,
        namespace: &str,
        template: &str,
        secret: &str,
    ) -> Result<Credentials, MetricError> {
        let s = self
            .cluster
            .secret(namespace, secret)
            .await
            .map_err(|e| MetricError::Cluster {
                what: format!("secret {namespace}/{secret}"),
                reason: format!("{e:#}"),
            })?
            .ok_or_else(|| MetricError::SecretNotFound {
                namespace: namespace.into(),
                template: template.into(),
                secret: secret.into(),
            })?;
        let data = secret_data(&s);
        if let Some(token) = data.get("token") {
            return Ok(Credentials::Bearer(token.clone()));
        }
        let missing = |key: &str| MetricError::SecretIncomplete {
            namespace: namespace.into(),
            template: template.into(),
            secret: secret.into(),
            missing: key.into(),
        };
        let username = data.get("username").ok_or_else(|| missing("username"))?;
        let password = data.get("password").ok_or_else(|| missing("password"))?;
        Ok(Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        })
    }

    /// A client for where `prepared` goes, with its credentials and headers.
    fn client_for(&self, prepared: &PreparedQuery) -> Result<PrometheusClient, MetricError> {
        let http = if prepared.insecure_skip_verify {
            self.http_insecure.clone()
        } else {
            self.http.clone()
        };
        Ok(PrometheusClient::with_http(
            http,
            &prepared.address,
            prepared.credentials.clone(),
            self.settings.timeout,
        )?
        .with_headers(prepared.headers.clone()))
    }

    /// Runs `check` for `target`: `Ok(None)` when the query found no series.
    pub async fn measure(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> Result<Option<f64>, MetricError> {
        let prepared = self.prepare(canary, check, target).await?;
        let client = self.client_for(&prepared)?;
        let value = client.query(&prepared.query, self.time.get()).await?;
        Ok(match (value, prepared.builtin) {
            (Some(v), Some((b, flavor))) => Some(b.normalise(flavor, v)),
            (v, _) => v,
        })
    }

    /// Runs `check` for `target` as a range query over the `window` ending
    /// at the evaluation time, one value every `step`: the same rendered
    /// query, server and credentials as [`measure`](Self::measure), and
    /// built-in values in the same units. Empty when it found no series.
    async fn measure_series(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, MetricError> {
        let prepared = self.prepare(canary, check, target).await?;
        let client = self.client_for(&prepared)?;
        let values = client
            .query_range(&prepared.query, self.time.get(), window, step)
            .await?;
        Ok(match prepared.builtin {
            Some((b, flavor)) => values.into_iter().map(|v| b.normalise(flavor, v)).collect(),
            None => values,
        })
    }
}

/// Refuses a MetricTemplate whose provider type is set to anything but
/// "prometheus".
fn check_provider_type(
    namespace: &str,
    template: &str,
    provider: &MetricProvider,
) -> Result<(), MetricError> {
    match provider.provider_type.as_deref() {
        Some(t) if !t.is_empty() && t != "prometheus" => Err(MetricError::UnsupportedProvider {
            namespace: namespace.into(),
            template: template.into(),
            provider: t.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A template's `headers` as name/value pairs, one per value.
fn header_pairs(provider: &MetricProvider) -> Vec<(String, String)> {
    provider
        .headers
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
        .collect()
}

/// A Secret's values as text: `stringData` (as written) over `data`.
pub(crate) fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.clone(),
                String::from_utf8_lossy(&v.0)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            )
        })
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.trim_end_matches(['\n', '\r']).to_string());
    }
    out
}

impl<C: Cluster> MetricsProvider for PrometheusMetrics<C> {
    async fn value(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
    ) -> Result<Option<f64>, BoxError> {
        self.measure(canary, check, target)
            .await
            .map_err(Into::into)
    }

    async fn series(
        &self,
        canary: &Canary,
        check: &MetricCheck,
        target: MetricTarget,
        window: Duration,
        step: Duration,
    ) -> Result<Vec<f64>, BoxError> {
        self.measure_series(canary, check, target, window, step)
            .await
            .map_err(Into::into)
    }
}
