//! The custom resources Sluice serves (`sluice.dev/v1beta1`).

mod alert_provider;
mod canary;
pub mod duration;
pub mod load;
mod metric_template;
pub mod rollout_plugin;
mod validate;

pub use alert_provider::{AlertProvider, AlertProviderSpec};
pub use canary::*;
pub use metric_template::{MetricProvider, MetricTemplate, MetricTemplateSpec, SecretRef};
pub use rollout_plugin::{PluginKind, RolloutPlugin, RolloutPluginSpec, RolloutPluginStatus};
pub use validate::{
    AlertSettings, AlertSeverity, FieldError, HookType, MetricCheck, MetricSource, RolloutSettings,
    SpecErrors, Webhook,
};
