//! The custom resources Sluice serves (`sluice.dev/v1beta1`).

pub mod canary;
pub mod duration;
pub mod load;
pub mod metric_template;
pub mod validate;

pub use canary::*;
pub use metric_template::{MetricProvider, MetricTemplate, MetricTemplateSpec, SecretRef};
pub use validate::{
    FieldError, HookType, MetricCheck, MetricSource, RolloutSettings, SpecErrors, Webhook,
};
