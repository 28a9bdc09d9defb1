//! The `RolloutPlugin` resource: a strategy or evaluator plugin registered
//! in the cluster, which Canaries select by name (`analysis.strategy`, or
//! `evaluator` on a metric). Cluster-scoped: a platform team registers a
//! plugin once for every namespace.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1beta1",
    kind = "RolloutPlugin",
    status = "RolloutPluginStatus",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.kind"}"#,
    printcolumn = r#"{"name":"Loaded","type":"boolean","jsonPath":".status.loaded"}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".status.digest"}"#,
    printcolumn = r#"{"name":"Error","type":"string","priority":1,"jsonPath":".status.error"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPluginSpec {
    pub kind: PluginKind,
    pub source: PluginSource,
    /// The component's sha256 (hex). Mandatory for `url` and `oci`
    /// sources: a mismatch is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PluginLimits>,
    /// Settings passed to the plugin when a Canary gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
    pub config: Option<serde_json::Value>,
    /// How a new version takes over: `immediate` (the default: from the
    /// next call on) or `shadow` (strategies: it decides alongside the
    /// current version on live Canaries, recorded but not applied, and
    /// takes over after `shadowTicks` decisions in a row the same as the
    /// current one's, or when promoted with the annotation
    /// `sluice.dev/promote-shadow: <its sha256>`).
    #[serde(default, skip_serializing_if = "is_immediate")]
    pub rollout_policy: RolloutPolicy,
    /// Decisions in a row a shadowed version must agree on; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub shadow_ticks: Option<u32>,
    /// Rollouts in progress move to a new version at once. By default a
    /// rollout keeps the version it started with (its status'
    /// `strategyDigest`) while the operator still has it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_updates: bool,
}

/// The annotation that promotes a shadowed version (its sha256).
pub const PROMOTE_SHADOW_ANNOTATION: &str = "sluice.dev/promote-shadow";
/// Decisions in a row a shadowed version must agree on by default.
pub const DEFAULT_SHADOW_TICKS: u32 = 10;

/// See [`RolloutPluginSpec::rollout_policy`].
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RolloutPolicy {
    #[default]
    Immediate,
    Shadow,
}

fn is_immediate(p: &RolloutPolicy) -> bool {
    *p == RolloutPolicy::Immediate
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Strategy,
    Evaluator,
}

/// Where the component comes from: exactly one of the three.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSource {
    /// A key of a ConfigMap's `binaryData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapPluginSource>,
    /// An HTTP(S) URL serving the `.wasm` file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// An OCI artifact whose one Wasm layer is the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciPluginSource>,
}

/// An OCI artifact, pulled anonymously or with a pull secret.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OciPluginSource {
    /// The artifact reference, e.g. `ghcr.io/acme/geometric:1.0`.
    #[schemars(length(min = 1))]
    pub reference: String,
    /// A Secret of type `kubernetes.io/dockerconfigjson` (as made by
    /// `kubectl create secret docker-registry`) holding credentials for the
    /// reference's registry, like a Pod's `imagePullSecrets`; the namespace
    /// is needed since RolloutPlugins are cluster-scoped. Without it the
    /// pull is anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<PullSecretReference>,
}

/// A Secret by name and namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullSecretReference {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub namespace: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapPluginSource {
    pub name: String,
    pub namespace: String,
    /// Default "plugin.wasm".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginLimits {
    /// Time budget of one call, a duration ("100ms"); default 100ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Memory cap of one call in MiB; default 64.
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPluginStatus {
    #[serde(default)]
    pub loaded: bool,
    /// sha256 of the loaded component: the last good version, which the
    /// operator reloads from its plugin cache after a restart when the
    /// source fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The `sluice:plugin` version the component targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit_version: Option<String>,
    /// Why the plugin is not loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// A new version under shadow (`rolloutPolicy: shadow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowStatus>,
}

/// How a shadowed version is doing.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStatus {
    /// sha256 of the shadowed version.
    pub digest: String,
    /// Decisions in a row it made as the current version did, of the
    /// `required` it needs to take over.
    pub clean_ticks: u32,
    pub required_ticks: u32,
    /// Decisions where it differed, and the last difference.
    pub divergences: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_divergence: Option<String>,
}
