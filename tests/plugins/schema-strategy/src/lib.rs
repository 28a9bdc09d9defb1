//! A weighted strategy whose settings must carry a `factor` of at least 1:
//! its schema says so, so the host refuses other settings before this
//! plugin is ever called. Each step is `stepWeight * factor`.

use sluice_plugin_sdk::config::Config;
use sluice_plugin_sdk::strategy::*;

sluice_plugin_sdk::config_schema!(
    r#"{"type":"object","properties":{"factor":{"type":"number","minimum":1}},"required":["factor"]}"#
);

struct SchemaStrategy;

/// The `factor` setting; the schema guarantees it, this is belt and braces.
fn factor(spec: &AnalysisSpec) -> Result<f64, String> {
    let config = Config::parse(&spec.config)?;
    match config.get_f64("factor")? {
        Some(f) if f >= 1.0 => Ok(f),
        other => Err(format!(
            "schema-strategy: factor must be at least 1, got {other:?}"
        )),
    }
}

impl Strategy for SchemaStrategy {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        _: &Observation,
    ) -> Result<Action, String> {
        let factor = factor(spec)?;
        match state.phase {
            Phase::Progressing => {
                let step = (f64::from(spec.step_weight.unwrap_or(10)) * factor) as u32;
                if state.canary_weight >= spec.max_weight {
                    Ok(Action::Promote)
                } else {
                    Ok(Action::Advance(Advance {
                        canary_weight: (state.canary_weight + step.max(1)).min(spec.max_weight),
                        iterations: state.iterations,
                    }))
                }
            }
            Phase::Promoting => Ok(promotion_step(spec, state)),
            other => Err(format!(
                "schema-strategy: decide called in phase {}",
                phase_name(other)
            )),
        }
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        factor(spec)?;
        Ok(weighted_route(if canary_active(state) {
            state.canary_weight
        } else {
            0
        }))
    }
}

sluice_plugin_sdk::export_strategy!(SchemaStrategy);
