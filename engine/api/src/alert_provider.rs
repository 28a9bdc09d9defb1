//! The `AlertProvider` resource: where alerts go (Slack, Microsoft Teams,
//! Discord or any JSON webhook), as Flagger's `AlertProvider`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretRef;

#[derive(
    CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "sluice.dev",
    version = "v1beta1",
    kind = "AlertProvider",
    namespaced,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertProviderSpec {
    /// slack, msteams, discord or generic.
    #[serde(default, rename = "type")]
    pub provider_type: String,
    /// Channel to post in (Slack, Discord; default "general").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Name the messages are posted as (Slack, Discord; default "sluice").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The webhook URL; or give it in a Secret with secretRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP(S) proxy for the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Secret in the provider's namespace with the URL under `address`
    /// (and an optional bearer `token`); it takes precedence over `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}
