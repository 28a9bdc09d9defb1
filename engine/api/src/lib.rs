//! The custom resources Sluice serves (`sluice.dev/v1beta1`).

mod alert_provider;
mod canary;
pub mod duration;
pub mod load;
mod metric_template;
pub mod rollout_plugin;
mod validate;

pub use alert_provider::AlertProvider;
pub use canary::*;
use metric_template::SecretRef;
pub use metric_template::{MetricProvider, MetricTemplate};
pub use rollout_plugin::{PluginKind, RolloutPlugin, RolloutPluginStatus};
pub use validate::{
    AlertSettings, AlertSeverity, HookType, MetricCheck, MetricSource, RolloutSettings, SpecErrors,
    Webhook,
};
