//! Query templates, rendered as Flagger renders them: `{{ namespace }}`,
//! `{{ target }}`, `{{ interval }}`, `{{ service }}`, `{{ name }}`,
//! `{{ ingress }}`, `{{ route }}` and `{{ variables.NAME }}`.
//!
//! Flagger uses Go templates with `missingkey=error`; MiniJinja in strict
//! mode gives the same guarantee: a misspelt variable is an error naming
//! it, never an empty string that silently changes what the query selects.

use std::collections::BTreeMap;
use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::analysis::checks::MetricTarget;
use crate::analysis::workload;
use sluice_api::{Canary, MetricCheck};

/// The values a query template can use (Flagger's `MetricTemplateModel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryModel {
    /// The Canary's name.
    name: String,
    namespace: String,
    /// The workload measured: the target Deployment, or `<target>-primary`.
    target: String,
    /// The apex Service (`spec.service.name`, default the target).
    service: String,
    /// Flagger's ingress name; Sluice has no ingressRef, so the target.
    ingress: String,
    /// Flagger's route name; the HTTPRoute Sluice generates, named after the target.
    route: String,
    /// The metric's window as a Prometheus duration, e.g. "1m" or "30s".
    interval: String,
    variables: BTreeMap<String, String>,
}

impl QueryModel {
    /// The model of `check` for `canary`. For [`MetricTarget::Primary`] the
    /// target is `<target>-primary`, so the same query measures the primary.
    pub fn new(canary: &Canary, check: &MetricCheck, target: MetricTarget) -> Self {
        let spec = &canary.spec;
        let target_name = spec.target_ref.name.clone();
        let measured = match target {
            MetricTarget::Canary => target_name.clone(),
            MetricTarget::Primary => workload::primary_name(&target_name),
        };
        Self {
            name: canary.metadata.name.clone().unwrap_or_default(),
            namespace: canary
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            target: measured,
            service: spec
                .service
                .name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| target_name.clone()),
            ingress: target_name.clone(),
            route: target_name,
            interval: prometheus_duration(check.interval),
            variables: check.variables.clone(),
        }
    }

    fn context(&self) -> Value {
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::new();
        ctx.insert("name", Value::from(self.name.clone()));
        ctx.insert("namespace", Value::from(self.namespace.clone()));
        ctx.insert("target", Value::from(self.target.clone()));
        ctx.insert("service", Value::from(self.service.clone()));
        ctx.insert("ingress", Value::from(self.ingress.clone()));
        ctx.insert("route", Value::from(self.route.clone()));
        ctx.insert("interval", Value::from(self.interval.clone()));
        ctx.insert("variables", Value::from(self.variables.clone()));
        Value::from(ctx)
    }
}

/// A query template that could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query template: {message}")]
pub struct TemplateError {
    message: String,
}

/// Renders `template` with `model`. Undefined variables are errors.
pub fn render(template: &str, model: &QueryModel) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Queries are PromQL, not HTML: never escape quotes or angle brackets.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.render_str(template, model.context())
        .map_err(|e| TemplateError {
            message: describe(&e),
        })
}

fn describe(e: &minijinja::Error) -> String {
    let mut message = match e.kind() {
        minijinja::ErrorKind::UndefinedError => "undefined variable".to_string(),
        kind => kind.to_string(),
    };
    if let Some(detail) = e.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if let Some(line) = e.line() {
        message.push_str(&format!(" (line {line})"));
    }
    if e.kind() == minijinja::ErrorKind::UndefinedError {
        message.push_str(
            "; the template can use name, namespace, target, service, ingress, route, interval and variables.NAME (from the metric's templateVariables)",
        );
    }
    message
}

/// A duration as Prometheus writes it: "1m", "30s", "1h30m", "500ms".
fn prometheus_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> QueryModel {
        QueryModel {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo-svc".into(),
            ingress: "podinfo".into(),
            route: "podinfo".into(),
            interval: "1m".into(),
            variables: BTreeMap::from([("gateway".to_string(), "gw-\"a\"".to_string())]),
        }
    }

    #[test]
    fn renders_every_field_without_escaping() {
        let q = render(
            r#"sum(rate(x{ns="{{ namespace }}",t=~"{{ target }}",s="{{ service }}",n="{{ name }}",g='{{ variables.gateway }}'}[{{ interval }}])) > 0"#,
            &model(),
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum(rate(x{ns="test",t=~"podinfo",s="podinfo-svc",n="podinfo",g='gw-"a"'}[1m])) > 0"#
        );
    }

    #[test]
    fn undefined_variables_are_errors() {
        let e = render("x{a=\"{{ variables.missing }}\"}", &model()).unwrap_err();
        assert!(e.message.contains("undefined"), "{e}");
        assert!(e.message.contains("variables.NAME"), "{e}");
        let e = render("x{a=\"{{ nmespace }}\"}", &model()).unwrap_err();
        assert!(e.message.contains("undefined"), "{e}");
    }

    #[test]
    fn syntax_errors_are_errors() {
        let e = render("x{a=\"{{ namespace \"}", &model()).unwrap_err();
        assert!(e.message.contains("syntax"), "{e}");
    }

    #[test]
    fn durations_in_prometheus_syntax() {
        assert_eq!(prometheus_duration(Duration::from_secs(60)), "1m");
        assert_eq!(prometheus_duration(Duration::from_secs(30)), "30s");
        assert_eq!(prometheus_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(prometheus_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(prometheus_duration(Duration::from_millis(1500)), "1s500ms");
    }
}
