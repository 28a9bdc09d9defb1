//! The `Canary` resource: Flagger's `flagger.app/v1beta1` Canary, served as
//! `sluice.dev/v1beta1`. Field names and meanings follow Flagger so that
//! existing manifests work with only their `apiVersion` changed.
//!
//! Durations and enumerations are kept as strings here and checked by
//! [`super::validate`]: a Canary with a typo must still deserialize, so that
//! the operator can tell the user what is wrong in its status instead of
//! failing to read it at all.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired rollout of one workload.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1beta1",
    kind = "Canary",
    namespaced,
    status = "CanaryStatus",
    shortname = "canary",
    shortname = "canaries",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.canaryWeight"}"#,
    printcolumn = r#"{"name":"FailedChecks","type":"integer","jsonPath":".status.failedChecks","priority":1}"#,
    printcolumn = r#"{"name":"LastTransitionTime","type":"string","jsonPath":".status.lastTransitionTime"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require(&["targetRef", "service"]))]
pub struct CanarySpec {
    /// The Deployment whose new revisions are rolled out.
    #[serde(default)]
    pub target_ref: TargetRef,
    /// Optional HorizontalPodAutoscaler of the target; copied for the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler_ref: Option<AutoscalerRef>,
    /// Seconds the canary may take to become ready before a rollback (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub(crate) progress_deadline_seconds: Option<i64>,
    /// Promote every new revision at once, without analysis.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) skip_analysis: bool,
    /// Stop acting on this Canary (no new rollouts, no traffic changes).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// On deletion, give the target its replicas and traffic back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revert_on_deletion: bool,
    /// Metrics provider override (Flagger's `provider`); informative only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Prometheus address used by builtin metrics of this Canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<String>,
    /// The generated Services and HTTPRoute.
    #[serde(default)]
    pub service: CanaryService,
    /// How the rollout proceeds and what is checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<CanaryAnalysis>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require(&["name"]))]
pub struct TargetRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    /// Only Deployment is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Deployment"]))]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub name: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require(&["name"]))]
pub struct AutoscalerRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub name: String,
}

/// `spec.service`: ports, hosts, Gateway references and route customisation.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require(&["port"]))]
pub struct CanaryService {
    /// Name of the apex Service (default: the target's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Request timeout applied to every route rule ("15s").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Timeout of each request from the gateway to a backend (Gateway
    /// API's `timeouts.backendRequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Static request mirrors on every rule: copies of the requests go to
    /// these backends, their responses are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirror: Vec<ServiceMirror>,
    /// Gateway API HTTPRoute host names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Gateways the HTTPRoute attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_refs: Vec<GatewayRef>,
    /// Request matches of the route itself (default: every path).
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeaderManipulation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<CorsPolicy>,
    /// Extra metadata for the primary objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<CustomMetadata>,
    /// Extra metadata for the canary objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CustomMetadata>,
    /// Extra metadata for the apex Service and the HTTPRoute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apex: Option<CustomMetadata>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    #[serde(default)]
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// A Gateway API ParentReference.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require(&["name"]))]
pub struct GatewayRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

/// One of `spec.service.mirror`: Gateway API's RequestMirror filter.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMirror {
    pub backend_ref: MirrorBackendRef,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MirrorBackendRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// `spec.service.headers`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct HeaderManipulation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct HeaderOperations {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `spec.service.rewrite`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct HttpRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// "ReplaceFullPath" (default) or "ReplacePrefixMatch".
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["ReplaceFullPath", "ReplacePrefixMatch"]))]
    pub rewrite_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// `spec.service.corsPolicy`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

/// An Istio-style request match, as Flagger's `analysis.match`. Every
/// condition is rendered to the equivalent Gateway API match; the Istio
/// fields the Gateway API cannot express are accepted here only so that
/// validation can refuse them by name (a dropped condition would widen the
/// match).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("minProperties" = 1))]
pub struct HttpMatch {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// A name for the match (Istio's, for logs); it matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Istio's prefix for the match's statistics; it matches nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stat_prefix: Option<String>,
    /// Refused: the Gateway API has no scheme match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    scheme: Option<serde_json::Value>,
    /// Refused: the Gateway API matches hosts with the route's `hostnames`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    authority: Option<serde_json::Value>,
    /// Refused: the Gateway API has no port match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    port: Option<serde_json::Value>,
    /// Refused: the Gateway API has no source match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    source_labels: Option<serde_json::Value>,
    /// Refused: the Gateway API has no source match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    source_namespace: Option<serde_json::Value>,
    /// Refused: a route's gateways are its `parentRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    gateways: Option<serde_json::Value>,
    /// Refused: Gateway API path matches are case-sensitive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    ignore_uri_case: Option<serde_json::Value>,
    /// Refused: the Gateway API has no negative header match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    without_headers: Option<serde_json::Value>,
}

impl HttpMatch {
    /// The Istio fields that are set and that the Gateway API cannot
    /// express, with why.
    pub(crate) fn unsupported_fields(&self) -> Vec<(&'static str, &'static str)> {
        [
            (
                "scheme",
                self.scheme.is_some(),
                "HTTPRoute matches have no scheme condition",
            ),
            (
                "authority",
                self.authority.is_some(),
                "set the route's hosts with spec.service.hosts instead",
            ),
            (
                "port",
                self.port.is_some(),
                "HTTPRoute matches have no port condition",
            ),
            (
                "sourceLabels",
                self.source_labels.is_some(),
                "HTTPRoute matches have no source condition",
            ),
            (
                "sourceNamespace",
                self.source_namespace.is_some(),
                "HTTPRoute matches have no source condition",
            ),
            (
                "gateways",
                self.gateways.is_some(),
                "set the route's gateways with spec.service.gatewayRefs instead",
            ),
            (
                "ignoreUriCase",
                self.ignore_uri_case.is_some(),
                "Gateway API path matches are case-sensitive; use a uri regex such as (?i)^/beta",
            ),
            (
                "withoutHeaders",
                self.without_headers.is_some(),
                "HTTPRoute matches have no negative header condition",
            ),
        ]
        .into_iter()
        .filter(|(_, set, _)| *set)
        .map(|(field, _, why)| (field, why))
        .collect()
    }
}

/// Exactly one of the fields is set.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct StringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// `spec.analysis`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryAnalysis {
    /// Time between two analysis steps (default "1m").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<String>,
    /// Failed checks before a rollback (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub(crate) threshold: Option<i64>,
    /// Highest canary weight before promotion (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub(crate) max_weight: Option<i64>,
    /// Canary weight increment per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub(crate) step_weight: Option<i64>,
    /// Explicit list of canary weights, instead of stepWeight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1, max = 100)))]
    pub(crate) step_weights: Vec<i64>,
    /// Primary weight increment per step during promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub(crate) step_weight_promotion: Option<i64>,
    /// Number of iterations (A/B testing, blue/green, mirroring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub(crate) iterations: Option<i64>,
    /// Requests that go to the canary (A/B testing).
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub(crate) matches: Vec<HttpMatch>,
    /// Mirror traffic to the canary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) mirror: bool,
    /// Percentage of requests mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub(crate) mirror_weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    /// Analysis rounds in a row a check may answer "needs more data"
    /// (an evaluator of contract 0.2) and hold the rollout without a
    /// failed check; past this horizon the answer counts as a failed check
    /// (default 5, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub(crate) max_data_waits: Option<i64>,
    /// Strategy plugin by name; default: chosen from the fields above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub(crate) strategy: Option<String>,
    /// Free-form settings for the strategy plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub(crate) strategy_config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) metrics: Vec<CanaryMetric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) webhooks: Vec<CanaryWebhook>,
    /// Where to send alerts (Flagger's `analysis.alerts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) alerts: Vec<CanaryAlert>,
}

/// One alert destination of the analysis.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CanaryAlert {
    #[serde(default)]
    pub(crate) name: String,
    /// info (default: every alert), warn (warnings and errors) or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) severity: Option<String>,
    /// The AlertProvider; its namespace defaults to the Canary's.
    #[serde(default)]
    pub(crate) provider_ref: CrossNamespaceObjectReference,
}

/// A reference to an object in any namespace (Flagger's type of the same name).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CrossNamespaceObjectReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require(&["cookieName"]))]
pub struct SessionAffinity {
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub(crate) cookie_name: String,
    /// Cookie lifetime in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub(crate) max_age: Option<i64>,
    /// Cookie that keeps users on the primary (Flagger's primary stickiness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) primary_cookie_name: Option<String>,
    /// The cookies' `Path` (default "/", so that a browser sends them with
    /// every request to the host, whatever page set them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    /// The cookies' `Domain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) domain: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    http_only: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    secure: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    partitioned: bool,
    /// `Strict`, `Lax` or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Strict", "Lax", "None"]))]
    pub(crate) same_site: Option<String>,
}

impl SessionAffinity {
    /// The attributes after `name=value; Max-Age=N` of every cookie the
    /// route sets, as Flagger's `BuildCookie` orders them, with `Path`
    /// defaulting to "/" (Flagger's issue #1527).
    pub fn cookie_attributes(&self) -> String {
        let mut out = String::new();
        if let Some(d) = &self.domain {
            out += &format!("; Domain={d}");
        }
        if self.http_only {
            out += "; HttpOnly";
        }
        if self.partitioned {
            out += "; Partitioned";
        }
        out += &format!("; Path={}", self.path.as_deref().unwrap_or("/"));
        if let Some(s) = &self.same_site {
            out += &format!("; SameSite={s}");
        }
        if self.secure {
            out += "; Secure";
        }
        out
    }
}

/// One metric check of the analysis.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CanaryMetric {
    #[schemars(length(min = 1))]
    pub(crate) name: String,
    /// Query window, substituted for `{{ interval }}` (default "1m").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<String>,
    /// Deprecated single bound, read as thresholdRange.min for success
    /// rates and thresholdRange.max otherwise, as in Flagger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) threshold_range: Option<ThresholdRange>,
    /// Inline PromQL (deprecated in Flagger; prefer templateRef).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) template_ref: Option<TemplateRef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) template_variables: BTreeMap<String, String>,
    /// Evaluator plugin by name (default "threshold").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) evaluator: Option<String>,
    /// Free-form settings for the evaluator plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub(crate) evaluator_config: Option<serde_json::Value>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
pub struct ThresholdRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub(crate) struct TemplateRef {
    #[schemars(length(min = 1))]
    pub(crate) name: String,
    /// Default: the Canary's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
}

/// A webhook of the analysis.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = require(&["url"]))]
pub(crate) struct CanaryWebhook {
    #[schemars(length(min = 1))]
    pub(crate) name: String,
    /// confirm-rollout, pre-rollout, rollout (default), confirm-traffic-increase,
    /// confirm-promotion, post-rollout, rollback or event.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = [
        "confirm-rollout", "pre-rollout", "rollout", "confirm-traffic-increase",
        "confirm-promotion", "post-rollout", "rollback", "event"
    ]))]
    pub(crate) hook_type: Option<String>,
    #[serde(default)]
    #[schemars(regex(pattern = r"^https?://"))]
    pub(crate) url: String,
    /// Default "10s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub(crate) retries: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) mute_alert: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) metadata: BTreeMap<String, String>,
    /// Skip TLS certificate verification for this webhook.
    #[serde(
        default,
        rename = "disableTLS",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub(crate) disable_tls: bool,
}

/// The state of a rollout. It is the only state Sluice keeps: an engine
/// restarted mid-rollout continues from here.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<CanaryPhase>,
    #[serde(default)]
    pub failed_checks: u32,
    /// Analysis rounds in a row in which a check needed more data (held
    /// without a failed check); bounded by `analysis.maxDataWaits`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub data_waits: u32,
    #[serde(default)]
    pub canary_weight: u32,
    #[serde(default)]
    pub iterations: u32,
    /// Checksums of the ConfigMaps and Secrets the target uses.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracked_configs: BTreeMap<String, String>,
    /// Checksum of the target revision under analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_spec: Option<String>,
    /// Checksum of the revision last promoted to the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_promoted_spec: Option<String>,
    /// When the phase last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_cookie: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_session_affinity_cookie: Option<String>,
    /// sha256 of the strategy plugin the current rollout runs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CanaryCondition>,
    /// The events of the last tick that changed this status, written with
    /// it, so that an operator killed before publishing them publishes them
    /// on its next tick. Each has a fixed name: publishing twice is a no-op.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_events: Vec<PendingEvent>,
}

impl CanaryStatus {
    /// Sets the condition `condition_type` at `now` (RFC 3339), keeping its
    /// transition time unless its status changes.
    pub fn set_condition(
        &mut self,
        condition_type: &str,
        status: &str,
        reason: &str,
        message: String,
        now: &str,
    ) {
        match self
            .conditions
            .iter_mut()
            .find(|c| c.condition_type == condition_type)
        {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = Some(now.to_string());
                }
                c.status = status.to_string();
                c.reason = Some(reason.to_string());
                c.message = Some(message);
                c.last_update_time = Some(now.to_string());
            }
            None => self.conditions.push(CanaryCondition {
                condition_type: condition_type.to_string(),
                status: status.to_string(),
                last_update_time: Some(now.to_string()),
                last_transition_time: Some(now.to_string()),
                reason: Some(reason.to_string()),
                message: Some(message),
            }),
        }
    }

    /// A copy without the pending events: what a tick starts from (they are
    /// published from the stored status, and replaced only by a tick that
    /// changes the rest).
    pub fn without_pending_events(&self) -> CanaryStatus {
        let CanaryStatus {
            phase,
            failed_checks,
            data_waits,
            canary_weight,
            iterations,
            tracked_configs,
            last_applied_spec,
            last_promoted_spec,
            last_transition_time,
            session_affinity_cookie,
            previous_session_affinity_cookie,
            strategy_digest,
            conditions,
            pending_events: _,
        } = self;
        CanaryStatus {
            phase: *phase,
            failed_checks: *failed_checks,
            data_waits: *data_waits,
            canary_weight: *canary_weight,
            iterations: *iterations,
            tracked_configs: tracked_configs.clone(),
            last_applied_spec: last_applied_spec.clone(),
            last_promoted_spec: last_promoted_spec.clone(),
            last_transition_time: last_transition_time.clone(),
            session_affinity_cookie: session_affinity_cookie.clone(),
            previous_session_affinity_cookie: previous_session_affinity_cookie.clone(),
            strategy_digest: strategy_digest.clone(),
            conditions: conditions.clone(),
            pending_events: Vec::new(),
        }
    }

    /// Whether `self` and `other` hold the same state, pending events aside.
    pub fn same_state(&self, other: &CanaryStatus) -> bool {
        let CanaryStatus {
            phase,
            failed_checks,
            data_waits,
            canary_weight,
            iterations,
            tracked_configs,
            last_applied_spec,
            last_promoted_spec,
            last_transition_time,
            session_affinity_cookie,
            previous_session_affinity_cookie,
            strategy_digest,
            conditions,
            pending_events: _,
        } = self;
        *phase == other.phase
            && *failed_checks == other.failed_checks
            && *data_waits == other.data_waits
            && *canary_weight == other.canary_weight
            && *iterations == other.iterations
            && *tracked_configs == other.tracked_configs
            && *last_applied_spec == other.last_applied_spec
            && *last_promoted_spec == other.last_promoted_spec
            && *last_transition_time == other.last_transition_time
            && *session_affinity_cookie == other.session_affinity_cookie
            && *previous_session_affinity_cookie == other.previous_session_affinity_cookie
            && *strategy_digest == other.strategy_digest
            && *conditions == other.conditions
    }

    /// The condition `condition_type`, if set.
    pub fn condition(&self, condition_type: &str) -> Option<&CanaryCondition> {
        self.conditions
            .iter()
            .find(|c| c.condition_type == condition_type)
    }
}

/// An event written in the status before it is published (see
/// [`CanaryStatus::pending_events`]).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingEvent {
    /// The Event object's name, derived from the tick that raised it.
    pub name: String,
    /// "Normal" or "Warning".
    #[serde(rename = "type")]
    pub event_type: String,
    pub reason: String,
    pub message: String,
}

/// Flagger's canary phases.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CanaryPhase {
    Initializing,
    Initialized,
    Waiting,
    Progressing,
    WaitingPromotion,
    Promoting,
    Finalising,
    Succeeded,
    Failed,
    Terminating,
    Terminated,
}

impl CanaryPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "Initializing",
            Self::Initialized => "Initialized",
            Self::Waiting => "Waiting",
            Self::Progressing => "Progressing",
            Self::WaitingPromotion => "WaitingPromotion",
            Self::Promoting => "Promoting",
            Self::Finalising => "Finalising",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Terminating => "Terminating",
            Self::Terminated => "Terminated",
        }
    }
}

impl std::fmt::Display for CanaryPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status condition, as Flagger's `Promoted` condition.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryCondition {
    #[serde(rename = "type")]
    pub condition_type: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Schema transform for the CRD: `fields` are required and carry no
/// `default`. Serde still defaults them, so that the engine can explain a
/// missing field in the status; but the API server applies a schema default
/// before it validates (which would satisfy `required`), and refuses a CRD
/// whose default breaks the field's own bounds (an empty name, port 0).
fn require(fields: &'static [&'static str]) -> impl FnMut(&mut schemars::Schema) {
    move |schema| {
        if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
            for field in fields {
                if let Some(p) = properties.get_mut(*field).and_then(|p| p.as_object_mut()) {
                    p.remove("default");
                }
            }
        }
        let required = schema
            .ensure_object()
            .entry("required")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(list) = required.as_array_mut() {
            for field in fields {
                if !list.iter().any(|v| v == field) {
                    list.push((*field).into());
                }
            }
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
