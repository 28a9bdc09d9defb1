//! Checks a Canary and turns it into [`RolloutSettings`]: typed, with
//! Flagger's defaults filled in. Every error names the field and the fix.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::canary::{
    Canary, CanaryAlert, CanaryAnalysis, CanaryMetric, CanaryService, CanarySpec, CanaryWebhook,
    GatewayRef, HttpMatch, HttpRetry, HttpRewrite, MirrorBackendRef, SessionAffinity, StringMatch,
    ThresholdRange,
};
use super::duration;
use sluice_core::gateway::{HTTP_METHODS, bounded_regex, is_header_name};

/// Flagger's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_COOKIE_MAX_AGE: u32 = 86400;

/// Metrics Sluice knows without a MetricTemplate.
const BUILTIN_METRICS: [&str; 2] = ["request-success-rate", "request-duration"];

/// One problem in a spec, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    field: String,
    message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecErrors(pub(crate) Vec<FieldError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid Canary spec: {}", parts.join("; "))
    }
}

/// Which traffic strategy a Canary runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyChoice {
    /// Plugin name, e.g. "weighted".
    pub name: String,
    /// Whether the user named it (`analysis.strategy`) or Sluice chose it.
    explicit: bool,
}

/// Where a metric's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricSource {
    /// `request-success-rate` or `request-duration`.
    Builtin(String),
    /// A MetricTemplate.
    Template { name: String, namespace: String },
    /// Inline PromQL.
    Query(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricCheck {
    pub name: String,
    pub interval: Duration,
    pub threshold_range: ThresholdRange,
    pub source: MetricSource,
    pub variables: BTreeMap<String, String>,
    pub evaluator: String,
    pub evaluator_config: String,
}

/// Flagger's webhook types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookType {
    ConfirmRollout,
    PreRollout,
    Rollout,
    ConfirmTrafficIncrease,
    ConfirmPromotion,
    PostRollout,
    Rollback,
    Event,
}

impl HookType {
    const ALL: [(&'static str, HookType); 8] = [
        ("confirm-rollout", HookType::ConfirmRollout),
        ("pre-rollout", HookType::PreRollout),
        ("rollout", HookType::Rollout),
        ("confirm-traffic-increase", HookType::ConfirmTrafficIncrease),
        ("confirm-promotion", HookType::ConfirmPromotion),
        ("post-rollout", HookType::PostRollout),
        ("rollback", HookType::Rollback),
        ("event", HookType::Event),
    ];

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(s, _)| *s)
            .unwrap_or("rollout")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub hook_type: HookType,
    pub url: String,
    pub timeout: Duration,
    pub retries: u32,
    pub metadata: BTreeMap<String, String>,
    /// Alerts caused by this hook (e.g. "waiting for approval") are not sent.
    pub mute_alert: bool,
    /// Skip TLS certificate verification.
    pub disable_tls: bool,
}

/// Flagger's alert severities, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertSeverity {
    Info,
    Warn,
    Error,
}

impl AlertSeverity {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warn" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One checked `analysis.alerts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    pub name: String,
    pub severity: AlertSeverity,
    pub provider_name: String,
    /// Defaults to the Canary's namespace.
    pub provider_namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAffinitySettings {
    pub cookie_name: String,
    pub max_age: u32,
    pub primary_cookie_name: Option<String>,
}

/// Rounds in a row a check may need more data before it counts as failed.
pub const DEFAULT_MAX_DATA_WAITS: u32 = 5;

/// A checked Canary: typed values, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSettings {
    pub target: String,
    pub progress_deadline: Duration,
    pub skip_analysis: bool,
    pub interval: Duration,
    pub threshold: u32,
    pub max_weight: u32,
    pub step_weight: Option<u32>,
    pub step_weights: Vec<u32>,
    pub step_weight_promotion: Option<u32>,
    pub iterations: Option<u32>,
    pub matches: Vec<HttpMatch>,
    pub mirror: bool,
    pub mirror_weight: Option<u32>,
    pub session_affinity: Option<SessionAffinitySettings>,
    pub strategy: StrategyChoice,
    pub strategy_config: String,
    /// Rounds in a row a check may need more data (`analysis.maxDataWaits`).
    pub max_data_waits: u32,
    pub metrics: Vec<MetricCheck>,
    pub webhooks: Vec<Webhook>,
    pub alerts: Vec<AlertSettings>,
}

impl RolloutSettings {
    pub fn webhooks_of(&self, hook_type: HookType) -> impl Iterator<Item = &Webhook> {
        self.webhooks
            .iter()
            .filter(move |w| w.hook_type == hook_type)
    }
}

/// `spec.analysis`'s schedule, checked: how often to analyse, how many
/// failed checks to tolerate, and the weights or iterations to go through.
struct Schedule {
    interval: Duration,
    threshold: u32,
    /// The last of `stepWeights` when given, else `maxWeight` (100 unset).
    max_weight: u32,
    step_weight: Option<u32>,
    step_weights: Vec<u32>,
    step_weight_promotion: Option<u32>,
    iterations: Option<u32>,
    mirror_weight: Option<u32>,
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn percent(&mut self, field: &str, value: Option<i64>) -> Option<u32> {
        let v = value?;
        if !(1..=100).contains(&v) {
            self.fail(field, format!("must be between 1 and 100 (got {v})"));
            return None;
        }
        Some(v as u32)
    }

    fn duration(&mut self, field: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(s) => match duration::parse(s) {
                Ok(d) if d.is_zero() => {
                    self.fail(field, format!("must be longer than zero (got {s:?})"));
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.fail(field, e.to_string());
                    default
                }
            },
        }
    }

    fn string_match(&mut self, field: &str, m: &StringMatch) {
        let set = [&m.exact, &m.prefix, &m.suffix, &m.regex]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if set != 1 {
            self.fail(field, "set exactly one of exact, prefix, suffix or regex");
        }
        // An empty value is Go's "unset" in Flagger, and an empty regex or
        // prefix would match every request: refused, never widened.
        for (kind, v) in [
            ("exact", &m.exact),
            ("prefix", &m.prefix),
            ("suffix", &m.suffix),
            ("regex", &m.regex),
        ] {
            if v.as_deref().is_some_and(str::is_empty) {
                self.fail(format!("{field}.{kind}"), "must not be empty");
            }
        }
        if let Some(re) = &m.regex
            && let Err(e) = bounded_regex(re)
        {
            self.fail(format!("{field}.regex"), e.to_string());
        }
    }

    /// A count of at least one (`threshold`, `iterations`), if given.
    fn at_least_one(&mut self, field: &str, value: Option<i64>) -> Option<u32> {
        match value {
            None => None,
            Some(n) if n >= 1 && n <= u32::MAX as i64 => Some(n as u32),
            Some(n) => {
                self.fail(field, format!("must be at least 1 (got {n})"));
                None
            }
        }
    }

    /// `spec.analysis.maxDataWaits`: 1 to 100 rounds, default
    /// [`DEFAULT_MAX_DATA_WAITS`].
    fn max_data_waits(&mut self, a: &CanaryAnalysis) -> u32 {
        const FIELD: &str = "spec.analysis.maxDataWaits";
        match self.at_least_one(FIELD, a.max_data_waits) {
            Some(n) if n > 100 => {
                self.fail(
                    FIELD,
                    format!("must be at most 100 rounds (got {n}): set a smaller horizon"),
                );
                DEFAULT_MAX_DATA_WAITS
            }
            Some(n) => n,
            None => DEFAULT_MAX_DATA_WAITS,
        }
    }

    /// `spec.analysis.stepWeights`: percentages, strictly increasing.
    fn step_weights(&mut self, weights: &[i64]) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        for (i, w) in weights.iter().enumerate() {
            let field = format!("spec.analysis.stepWeights[{i}]");
            if let Some(w) = self.percent(&field, Some(*w)) {
                if out.last().is_some_and(|last| *last >= w) {
                    self.fail(field, "weights must increase");
                }
                out.push(w);
            }
        }
        out
    }

    /// The strategy plugin: `spec.analysis.strategy`, else Flagger's choice.
    fn strategy(&mut self, a: &CanaryAnalysis) -> StrategyChoice {
        let derived = StrategyChoice {
            name: derive_strategy(a).into(),
            explicit: false,
        };
        match &a.strategy {
            Some(name) if name.trim().is_empty() => {
                self.fail(
                    "spec.analysis.strategy",
                    "empty; name a strategy plugin or remove the field",
                );
                derived
            }
            Some(name) => StrategyChoice {
                name: name.clone(),
                explicit: true,
            },
            None => derived,
        }
    }

    /// `spec.analysis`'s schedule, with Flagger's defaults: interval,
    /// threshold, weights, iterations and the mirror weight.
    fn schedule(&mut self, a: &CanaryAnalysis) -> Schedule {
        let interval = self.duration(
            "spec.analysis.interval",
            a.interval.as_deref(),
            DEFAULT_INTERVAL,
        );
        let threshold = self
            .at_least_one("spec.analysis.threshold", a.threshold)
            .unwrap_or(1);
        let step_weight = self.percent("spec.analysis.stepWeight", a.step_weight);
        let step_weights = self.step_weights(&a.step_weights);
        let max_weight = self
            .percent("spec.analysis.maxWeight", a.max_weight)
            .unwrap_or(100);
        let step_weight_promotion =
            self.percent("spec.analysis.stepWeightPromotion", a.step_weight_promotion);
        let iterations = self.at_least_one("spec.analysis.iterations", a.iterations);
        let mirror_weight = self.percent("spec.analysis.mirrorWeight", a.mirror_weight);
        if mirror_weight.is_some() && !a.mirror {
            self.fail(
                "spec.analysis.mirrorWeight",
                "only meaningful with mirror: true",
            );
        }
        Schedule {
            interval,
            threshold,
            max_weight: step_weights.last().copied().unwrap_or(max_weight),
            step_weight,
            step_weights,
            step_weight_promotion,
            iterations,
            mirror_weight,
        }
    }

    /// `mirror: true` needs iterations (blue/green) or step weights
    /// (weighted mirroring).
    fn mirror_steps(&mut self, a: &CanaryAnalysis, schedule: &Schedule) {
        if a.mirror
            && schedule.iterations.is_none()
            && schedule.step_weight.is_none()
            && schedule.step_weights.is_empty()
        {
            self.fail(
                "spec.analysis.iterations",
                "required with mirror: true (or give stepWeight for weighted mirroring)",
            );
        }
    }

    /// The weights `strategy` steps through: a weighted canary Sluice chose
    /// needs them (unless analysis is skipped), given as `stepWeight` or
    /// `stepWeights` but not both, and a step no larger than `maxWeight`.
    fn strategy_steps(
        &mut self,
        a: &CanaryAnalysis,
        schedule: &Schedule,
        strategy: &StrategyChoice,
        skip_analysis: bool,
    ) {
        let (step_weight, step_weights) = (schedule.step_weight, &schedule.step_weights);
        if strategy.name == "weighted"
            && !strategy.explicit
            && step_weight.is_none()
            && step_weights.is_empty()
            && !skip_analysis
        {
            self.fail(
                "spec.analysis.stepWeight",
                "required for a weighted canary: set stepWeight (e.g. 10) or stepWeights, or iterations for blue/green",
            );
        }
        if step_weight.is_some() && !step_weights.is_empty() {
            self.fail(
                "spec.analysis.stepWeights",
                "set either stepWeight or stepWeights, not both",
            );
        }
        if let (Some(s), Some(max)) = (step_weight, a.max_weight)
            && s as i64 > max
        {
            self.fail(
                "spec.analysis.stepWeight",
                format!("{s} is larger than maxWeight {max}"),
            );
        }
    }

    /// `spec.analysis.metrics`, leaving out those that cannot be checked.
    fn metrics(&mut self, a: &CanaryAnalysis, namespace: &str) -> Vec<MetricCheck> {
        a.metrics
            .iter()
            .enumerate()
            .filter_map(|(i, m)| self.metric(i, m, namespace))
            .collect()
    }

    /// `spec.analysis.webhooks`.
    fn webhooks(&mut self, a: &CanaryAnalysis) -> Vec<Webhook> {
        a.webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| self.webhook(i, w))
            .collect()
    }

    /// `spec.analysis.alerts`; providers default to `namespace`.
    fn alerts(&mut self, a: &CanaryAnalysis, namespace: &str) -> Vec<AlertSettings> {
        a.alerts
            .iter()
            .enumerate()
            .map(|(i, alert)| self.alert(i, alert, namespace))
            .collect()
    }

    /// `spec.targetRef`, `spec.autoscalerRef` and the progress deadline.
    fn target(&mut self, spec: &CanarySpec) -> Duration {
        if spec.target_ref.name.trim().is_empty() {
            self.fail(
                "spec.targetRef.name",
                "required: name the Deployment to roll out",
            );
        }
        if let Some(kind) = &spec.target_ref.kind
            && kind != "Deployment"
        {
            self.fail(
                "spec.targetRef.kind",
                format!("{kind:?} is not supported; use Deployment"),
            );
        }
        if let Some(a) = &spec.autoscaler_ref
            && a.name.trim().is_empty()
        {
            self.fail(
                "spec.autoscalerRef.name",
                "required when autoscalerRef is set",
            );
        }
        match spec.progress_deadline_seconds {
            None => DEFAULT_PROGRESS_DEADLINE,
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            Some(s) => {
                self.fail(
                    "spec.progressDeadlineSeconds",
                    format!("must be positive (got {s})"),
                );
                DEFAULT_PROGRESS_DEADLINE
            }
        }
    }

    /// `spec.service`: port, gateways, timeouts, retries, mirrors, rewrite,
    /// CORS and matches.
    fn service(&mut self, svc: &CanaryService) {
        self.service_port(svc.port);
        self.gateway_refs(&svc.gateway_refs);
        if let Some(t) = &svc.backend_timeout {
            self.backend_timeout(t, svc.retries.as_ref());
        }
        for (i, m) in svc.mirror.iter().enumerate() {
            self.mirror_backend(i, &m.backend_ref);
        }
        if let Some(t) = &svc.timeout {
            self.duration("spec.service.timeout", Some(t), Duration::ZERO);
        }
        if let Some(r) = &svc.retries {
            self.retries(r);
        }
        if let Some(rw) = &svc.rewrite {
            self.rewrite(rw);
        }
        if let Some(cors) = &svc.cors_policy
            && let Some(m) = &cors.max_age
        {
            self.duration("spec.service.corsPolicy.maxAge", Some(m), Duration::ZERO);
        }
        self.matches("spec.service.match", &svc.matches);
    }

    /// `spec.service.port`: required, 1 to 65535.
    fn service_port(&mut self, port: i32) {
        if !(0..=65535).contains(&port) || port == 0 {
            self.fail(
                "spec.service.port",
                format!("required: a port between 1 and 65535 (got {port})"),
            );
        }
    }

    /// `spec.service.gatewayRefs`: at least one, each named.
    fn gateway_refs(&mut self, refs: &[GatewayRef]) {
        for (i, g) in refs.iter().enumerate() {
            if g.name.trim().is_empty() {
                self.fail(format!("spec.service.gatewayRefs[{i}].name"), "required");
            }
        }
        if refs.is_empty() {
            self.fail(
                "spec.service.gatewayRefs",
                "required for the Gateway API router: name the Gateway the HTTPRoute attaches to (e.g. [{name: gateway, namespace: istio-ingress}])",
            );
        }
    }

    /// `spec.service.backendTimeout`: a duration, and not a second value
    /// for what `retries.perTryTimeout` sets.
    fn backend_timeout(&mut self, timeout: &str, retries: Option<&HttpRetry>) {
        self.duration("spec.service.backendTimeout", Some(timeout), Duration::ZERO);
        if let Some(p) = retries.and_then(|r| r.per_try_timeout.as_ref())
            && p != timeout
        {
            self.fail(
                "spec.service.backendTimeout",
                format!("conflicts with spec.service.retries.perTryTimeout ({p}): both are the Gateway API's backendRequest timeout; give one"),
            );
        }
    }

    /// One of `spec.service.mirror`: a named backend, with a port when it
    /// is a Service.
    fn mirror_backend(&mut self, i: usize, r: &MirrorBackendRef) {
        let f = format!("spec.service.mirror[{i}].backendRef");
        if r.name.trim().is_empty() {
            self.fail(format!("{f}.name"), "required");
        }
        let service = r.kind.as_deref().is_none_or(|k| k == "Service")
            && r.group.as_deref().is_none_or(str::is_empty);
        match r.port {
            None if service => self.fail(format!("{f}.port"), "required for a Service"),
            Some(p) if !(1..=65535).contains(&p) => {
                self.fail(format!("{f}.port"), format!("must be 1-65535 (got {p})"))
            }
            _ => {}
        }
    }

    /// `spec.service.retries`: attempts, per-try timeout and the
    /// conditions to retry on.
    fn retries(&mut self, r: &HttpRetry) {
        if r.attempts < 0 {
            self.fail(
                "spec.service.retries.attempts",
                format!("must be 0 or more (got {})", r.attempts),
            );
        }
        if let Some(t) = &r.per_try_timeout {
            self.duration(
                "spec.service.retries.perTryTimeout",
                Some(t),
                Duration::ZERO,
            );
        }
        if let Some(on) = &r.retry_on
            && !is_retry_condition(on)
        {
            self.fail(
                "spec.service.retries.retryOn",
                format!(
                    "{on:?} names no condition Sluice knows: use 5xx, gateway-error, retriable-4xx, connect-failure, reset, refused-stream or status codes"
                ),
            );
        }
    }

    /// `spec.service.rewrite.type`: one of the Gateway API's two.
    fn rewrite(&mut self, rw: &HttpRewrite) {
        if let Some(t) = &rw.rewrite_type
            && t != "ReplaceFullPath"
            && t != "ReplacePrefixMatch"
        {
            self.fail(
                "spec.service.rewrite.type",
                format!("{t:?} is not valid; use ReplaceFullPath or ReplacePrefixMatch"),
            );
        }
    }

    /// `spec.analysis.sessionAffinity`: the cookie and its attributes.
    fn session_affinity(&mut self, s: &SessionAffinity) -> SessionAffinitySettings {
        if s.cookie_name.trim().is_empty() {
            self.fail("spec.analysis.sessionAffinity.cookieName", "required");
        }
        let max_age = match s.max_age {
            None => DEFAULT_COOKIE_MAX_AGE,
            Some(m) if m > 0 && m <= u32::MAX as i64 => m as u32,
            Some(m) => {
                self.fail(
                    "spec.analysis.sessionAffinity.maxAge",
                    format!("must be a positive number of seconds (got {m})"),
                );
                DEFAULT_COOKIE_MAX_AGE
            }
        };
        let f = "spec.analysis.sessionAffinity";
        for (field, name) in [
            ("cookieName", Some(&s.cookie_name)),
            ("primaryCookieName", s.primary_cookie_name.as_ref()),
        ] {
            if let Some(n) = name.filter(|n| !n.trim().is_empty() && !is_header_name(n)) {
                self.fail(
                    format!("{f}.{field}"),
                    format!(
                        "{n:?} is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)"
                    ),
                );
            }
        }
        if let Some(p) = &s.path
            && (!p.starts_with('/') || !is_cookie_attribute(p))
        {
            self.fail(
                format!("{f}.path"),
                "a path starting with '/', without ';', ',' or spaces",
            );
        }
        if let Some(d) = &s.domain
            && (d.is_empty() || !is_cookie_attribute(d))
        {
            self.fail(format!("{f}.domain"), "a domain without ';', ',' or spaces");
        }
        if let Some(ss) = &s.same_site
            && !["Strict", "Lax", "None"].contains(&ss.as_str())
        {
            self.fail(format!("{f}.sameSite"), "one of Strict, Lax, None");
        }
        SessionAffinitySettings {
            cookie_name: s.cookie_name.clone(),
            max_age,
            primary_cookie_name: s.primary_cookie_name.clone(),
        }
    }

    /// One of `spec.analysis.metrics`; `None` when it cannot be checked at all.
    fn metric(&mut self, i: usize, m: &CanaryMetric, namespace: &str) -> Option<MetricCheck> {
        let f = format!("spec.analysis.metrics[{i}]");
        if m.name.trim().is_empty() {
            self.fail(format!("{f}.name"), "required");
            return None;
        }
        let source = self.metric_source(&f, m, namespace)?;
        let interval = self.duration(
            &format!("{f}.interval"),
            m.interval.as_deref(),
            DEFAULT_METRIC_INTERVAL,
        );
        let range = self.threshold_range(&f, m);
        let evaluator = m.evaluator.clone().unwrap_or_else(|| "threshold".into());
        if evaluator == "threshold" && range.min.is_none() && range.max.is_none() {
            self.fail(
                format!("{f}.thresholdRange"),
                "required: set min and/or max",
            );
        }
        Some(MetricCheck {
            name: m.name.clone(),
            interval,
            threshold_range: range,
            source,
            variables: m.template_variables.clone(),
            evaluator,
            evaluator_config: m
                .evaluator_config
                .as_ref()
                .map(config_string)
                .unwrap_or_default(),
        })
    }

    /// Where metric `f` reads from: its MetricTemplate (in the Canary's
    /// namespace unless named), its inline query, or a builtin; `None` when
    /// it names none of them.
    fn metric_source(
        &mut self,
        f: &str,
        m: &CanaryMetric,
        namespace: &str,
    ) -> Option<MetricSource> {
        if let Some(t) = &m.template_ref {
            if t.name.trim().is_empty() {
                self.fail(format!("{f}.templateRef.name"), "required");
            }
            Some(MetricSource::Template {
                name: t.name.clone(),
                namespace: t.namespace.clone().unwrap_or_else(|| namespace.to_string()),
            })
        } else if let Some(q) = &m.query {
            Some(MetricSource::Query(q.clone()))
        } else if BUILTIN_METRICS.contains(&m.name.as_str()) {
            Some(MetricSource::Builtin(m.name.clone()))
        } else {
            self.fail(
                f,
                format!(
                    "unknown metric {:?}: add a templateRef to a MetricTemplate, or use a builtin metric ({})",
                    m.name,
                    BUILTIN_METRICS.join(", ")
                ),
            );
            None
        }
    }

    /// Metric `f`'s `thresholdRange`, or its deprecated `threshold`, with
    /// finite bounds in order.
    fn threshold_range(&mut self, f: &str, m: &CanaryMetric) -> ThresholdRange {
        let mut range = m.threshold_range.unwrap_or_default();
        if let Some(t) = m.threshold
            && range.min.is_none()
            && range.max.is_none()
        {
            // Flagger's deprecated `threshold`: a floor for success rates, a ceiling otherwise.
            if m.name == "request-success-rate" {
                range.min = Some(t);
            } else {
                range.max = Some(t);
            }
        }
        if let (Some(min), Some(max)) = (range.min, range.max)
            && min > max
        {
            self.fail(
                format!("{f}.thresholdRange"),
                format!("min {min} is larger than max {max}"),
            );
        }
        for (k, v) in [("min", range.min), ("max", range.max)] {
            if v.is_some_and(|v| !v.is_finite()) {
                self.fail(format!("{f}.thresholdRange.{k}"), "must be a finite number");
            }
        }
        range
    }

    /// One of `spec.analysis.webhooks`.
    fn webhook(&mut self, i: usize, w: &CanaryWebhook) -> Webhook {
        let f = format!("spec.analysis.webhooks[{i}]");
        if w.name.trim().is_empty() {
            self.fail(format!("{f}.name"), "required");
        }
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            self.fail(
                format!("{f}.url"),
                format!("must be an http:// or https:// URL (got {:?})", w.url),
            );
        }
        let hook_type = match w.hook_type.as_deref() {
            None => HookType::Rollout,
            Some(t) => match HookType::ALL.iter().find(|(s, _)| *s == t) {
                Some((_, ht)) => *ht,
                None => {
                    let valid: Vec<&str> = HookType::ALL.iter().map(|(s, _)| *s).collect();
                    self.fail(
                        format!("{f}.type"),
                        format!(
                            "{t:?} is not a webhook type; use one of {}",
                            valid.join(", ")
                        ),
                    );
                    HookType::Rollout
                }
            },
        };
        let timeout = self.duration(
            &format!("{f}.timeout"),
            w.timeout.as_deref(),
            DEFAULT_WEBHOOK_TIMEOUT,
        );
        let retries = match w.retries {
            None => 0,
            Some(r) if (0..=100).contains(&r) => r as u32,
            Some(r) => {
                self.fail(
                    format!("{f}.retries"),
                    format!("must be between 0 and 100 (got {r})"),
                );
                0
            }
        };
        Webhook {
            name: w.name.clone(),
            hook_type,
            url: w.url.clone(),
            timeout,
            retries,
            metadata: w.metadata.clone(),
            mute_alert: w.mute_alert,
            disable_tls: w.disable_tls,
        }
    }

    /// One of `spec.analysis.alerts`.
    fn alert(&mut self, i: usize, alert: &CanaryAlert, namespace: &str) -> AlertSettings {
        let f = format!("spec.analysis.alerts[{i}]");
        if alert.name.trim().is_empty() {
            self.fail(format!("{f}.name"), "required");
        }
        if alert.provider_ref.name.trim().is_empty() {
            self.fail(
                format!("{f}.providerRef.name"),
                "required: name an AlertProvider",
            );
        }
        let severity = match alert.severity.as_deref() {
            None | Some("") => AlertSeverity::Info,
            Some(s) => AlertSeverity::parse(s).unwrap_or_else(|| {
                self.fail(
                    format!("{f}.severity"),
                    format!("{s:?} is not a severity; use info, warn or error"),
                );
                AlertSeverity::Info
            }),
        };
        AlertSettings {
            name: alert.name.clone(),
            severity,
            provider_name: alert.provider_ref.name.clone(),
            provider_namespace: alert
                .provider_ref
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| namespace.to_string()),
        }
    }

    /// The matches at `field`: each one valid and supported.
    fn matches(&mut self, field: &str, matches: &[HttpMatch]) {
        for (i, m) in matches.iter().enumerate() {
            self.http_match(&format!("{field}[{i}]"), m);
        }
    }

    /// One HTTP match at `f`: not empty, only fields the Gateway API router
    /// supports, and valid headers, query parameters, path and method.
    fn http_match(&mut self, f: &str, m: &HttpMatch) {
        if m.headers.is_empty()
            && m.query_params.is_empty()
            && m.uri.is_none()
            && m.method.is_none()
        {
            self.fail(f, "empty match; give headers, queryParams, uri or method");
        }
        for (name, why) in m.unsupported_fields() {
            self.fail(
                format!("{f}.{name}"),
                format!("not supported by the Gateway API router ({why}); remove it"),
            );
        }
        for (name, sm) in &m.headers {
            if !is_header_name(name) {
                self.fail(
                    format!("{f}.headers.{name}"),
                    "not a valid HTTP header name",
                );
            }
            self.string_match(&format!("{f}.headers.{name}"), sm);
        }
        for (name, sm) in &m.query_params {
            if name.is_empty() || name.len() > 256 {
                self.fail(
                    format!("{f}.queryParams"),
                    "a query parameter name of 1 to 256 bytes",
                );
            }
            self.string_match(&format!("{f}.queryParams.{name}"), sm);
        }
        if let Some(uri) = &m.uri {
            self.match_uri(f, uri);
        }
        if let Some(method) = &m.method {
            self.match_method(f, method);
        }
    }

    /// The `uri` of match `f`: a valid string match; an exact or prefix
    /// path starts with '/'.
    fn match_uri(&mut self, f: &str, uri: &StringMatch) {
        self.string_match(&format!("{f}.uri"), uri);
        for (kind, v) in [("exact", &uri.exact), ("prefix", &uri.prefix)] {
            if v.as_ref().is_some_and(|p| !p.starts_with('/')) {
                self.fail(format!("{f}.uri.{kind}"), "a path must start with '/'");
            }
        }
    }

    /// The `method` of match `f`: exactly one of the methods the Gateway API
    /// knows.
    fn match_method(&mut self, f: &str, method: &StringMatch) {
        self.string_match(&format!("{f}.method"), method);
        match &method.exact {
            Some(name) if HTTP_METHODS.contains(&name.as_str()) => {}
            Some(name) => self.fail(
                format!("{f}.method.exact"),
                format!(
                    "{name:?} is not a method the Gateway API matches ({})",
                    HTTP_METHODS.join(", ")
                ),
            ),
            None => self.fail(
                format!("{f}.method"),
                "the Gateway API matches methods exactly: use method.exact",
            ),
        }
    }

    /// A/B conditions are added to each of the route's own matches: a path
    /// or method on both sides cannot be combined in one Gateway API match.
    fn mergeable(&mut self, analysis: &[HttpMatch], service: &[HttpMatch]) {
        for (i, a) in analysis.iter().enumerate() {
            for (j, s) in service.iter().enumerate() {
                if a.uri.is_some() && s.uri.is_some() && a.uri != s.uri {
                    self.fail(
                        format!("spec.analysis.match[{i}].uri"),
                        format!("conflicts with spec.service.match[{j}].uri: a Gateway API match has one path condition; move the path into one of them"),
                    );
                }
                if a.method.is_some() && s.method.is_some() && a.method != s.method {
                    self.fail(
                        format!("spec.analysis.match[{i}].method"),
                        format!("conflicts with spec.service.match[{j}].method: a Gateway API match has one method"),
                    );
                }
            }
        }
    }
}

/// A cookie attribute value: visible ASCII without ';' or ','.
fn is_cookie_attribute(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
}

/// Chooses the strategy from Flagger's fields, as Flagger does.
/// Flagger's `Canary.DeploymentStrategy()`: A/B testing with `match` and
/// `iterations`; blue/green with `iterations` and no `match` (mirrored with
/// `mirror`); otherwise a weighted canary, whose session affinity is the
/// `session-affinity` plugin and whose `mirror` is one mirror step at
/// weight 0 before the first shift (the `weighted` plugin).
fn derive_strategy(analysis: &CanaryAnalysis) -> &'static str {
    let iterations = analysis.iterations.is_some_and(|n| n > 0);
    if iterations && !analysis.matches.is_empty() {
        "ab-testing"
    } else if iterations && analysis.mirror {
        "mirroring"
    } else if iterations {
        "blue-green"
    } else if analysis.session_affinity.is_some() {
        "session-affinity"
    } else {
        "weighted"
    }
}

impl Canary {
    /// Checks the spec and resolves it into settings.
    pub fn settings(&self) -> Result<RolloutSettings, SpecErrors> {
        let spec = &self.spec;
        let namespace = self
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let default_analysis = CanaryAnalysis::default();
        let a = spec.analysis.as_ref().unwrap_or(&default_analysis);
        // Each check records its errors in order: the report lists them as
        // they appear in the spec.
        let mut c = Checker { errors: vec![] };
        let progress_deadline = c.target(spec);
        c.service(&spec.service);
        let schedule = c.schedule(a);
        c.matches("spec.analysis.match", &a.matches);
        c.mergeable(&a.matches, &spec.service.matches);
        c.mirror_steps(a, &schedule);
        let session_affinity = a.session_affinity.as_ref().map(|s| c.session_affinity(s));
        let strategy = c.strategy(a);
        let max_data_waits = c.max_data_waits(a);
        c.strategy_steps(a, &schedule, &strategy, spec.skip_analysis);
        let metrics = c.metrics(a, &namespace);
        let webhooks = c.webhooks(a);
        let alerts = c.alerts(a, &namespace);
        if !c.errors.is_empty() {
            return Err(SpecErrors(c.errors));
        }
        Ok(RolloutSettings {
            target: spec.target_ref.name.clone(),
            progress_deadline,
            skip_analysis: spec.skip_analysis,
            interval: schedule.interval,
            threshold: schedule.threshold,
            max_weight: schedule.max_weight,
            step_weight: schedule.step_weight,
            step_weights: schedule.step_weights,
            step_weight_promotion: schedule.step_weight_promotion,
            iterations: schedule.iterations,
            matches: a.matches.clone(),
            mirror: a.mirror,
            mirror_weight: schedule.mirror_weight,
            session_affinity,
            strategy,
            strategy_config: a
                .strategy_config
                .as_ref()
                .map(config_string)
                .unwrap_or_default(),
            max_data_waits,
            metrics,
            webhooks,
            alerts,
        })
    }
}

/// Whether `retryOn` names a condition Sluice can express: status codes or
/// connection failures.
fn is_retry_condition(on: &str) -> bool {
    !sluice_core::gateway::retry_codes(on).is_empty()
        || on
            .split(',')
            .any(|t| matches!(t.trim(), "connect-failure" | "reset" | "refused-stream"))
}

fn config_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
