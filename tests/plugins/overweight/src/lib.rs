//! Test plugin: returns well-formed but invalid results, weights over 100.
//! The host must validate what plugins return. It also logs through the
//! host's `log` import, so that import is exercised too.

use sluice_plugin_sdk::strategy::{
    Action, Advance, AnalysisSpec, Backend, Level, Observation, RolloutState, RoutePlan, RouteRule,
    Strategy, WeightedBackend, log,
};

pub struct Overweight;

impl Strategy for Overweight {
    fn decide(_: &AnalysisSpec, state: &RolloutState, _: &Observation) -> Result<Action, String> {
        log(
            Level::Warn,
            "sluice-test-overweight: advancing to weight 150",
        );
        Ok(Action::Advance(Advance {
            canary_weight: 150,
            iterations: state.iterations,
        }))
    }

    fn route(_: &AnalysisSpec, _: &RolloutState) -> Result<RoutePlan, String> {
        Ok(RoutePlan {
            rules: vec![RouteRule {
                matches: Vec::new(),
                backends: vec![
                    WeightedBackend {
                        backend: Backend::Primary,
                        weight: 0,
                        set_cookie: None,
                    },
                    WeightedBackend {
                        backend: Backend::Canary,
                        weight: 150,
                        set_cookie: None,
                    },
                ],
                mirror: None,
                set_cookie: None,
            }],
        })
    }
}

sluice_plugin_sdk::export_strategy!(Overweight);
