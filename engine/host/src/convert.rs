//! Translation between the host's vocabulary (`bindings::strategy`,
//! `bindings::evaluator`) and each contract version's types, at the call.
//! 0.1 plugins behave exactly as before: their inputs are the host's own,
//! and their route plans and verdicts are subsets of the host's.

use serde::Serialize;

use super::bindings::evaluator::{Metric, Samples, SeriesRequest, Verdict};
use super::bindings::strategy::{
    Action, Advance, AnalysisSpec, Backend, HeaderMatch, HttpMatch, Mirror, Phase, QueryParamMatch,
    ResponseCookie, RolloutState, RoutePlan, RouteRule, SessionAffinity, SpecMatch,
    SpecStringMatch, StringMatch, WeightedBackend,
};
use super::bindings::{evaluator_v1 as ev1, evaluator_v2 as ev2};
use super::bindings::{strategy_v1 as sv1, strategy_v2 as sv2};

type V1Plan = sv1::sluice::plugin::types::RoutePlan;
type V2Strategy = sv2::sluice::plugin::strategy_types::RolloutSpec;

/// A Canary match condition as a route plan's match.
pub fn plan_match(m: &SpecMatch) -> HttpMatch {
    let value = |v: &SpecStringMatch| match v {
        SpecStringMatch::Exact(s) => StringMatch::Exact(s.clone()),
        SpecStringMatch::Prefix(s) => StringMatch::Prefix(s.clone()),
        SpecStringMatch::Regex(s) => StringMatch::Regex(s.clone()),
    };
    HttpMatch {
        path_prefix: m.path_prefix.clone(),
        headers: m
            .headers
            .iter()
            .map(|h| HeaderMatch {
                name: h.name.clone(),
                value: value(&h.value),
            })
            .collect(),
        query_params: m
            .query_params
            .iter()
            .map(|q| QueryParamMatch {
                name: q.name.clone(),
                value: value(&q.value),
            })
            .collect(),
        method: m.method.clone(),
    }
}

/// A route plan's match as a Canary match condition (the reverse of
/// [`plan_match`]).
pub fn spec_match(m: &HttpMatch) -> SpecMatch {
    use super::bindings::strategy::{SpecHeaderMatch, SpecQueryParamMatch};
    let value = |v: &StringMatch| match v {
        StringMatch::Exact(s) => SpecStringMatch::Exact(s.clone()),
        StringMatch::Prefix(s) => SpecStringMatch::Prefix(s.clone()),
        StringMatch::Regex(s) => SpecStringMatch::Regex(s.clone()),
    };
    SpecMatch {
        path_prefix: m.path_prefix.clone(),
        headers: m
            .headers
            .iter()
            .map(|h| SpecHeaderMatch {
                name: h.name.clone(),
                value: value(&h.value),
            })
            .collect(),
        query_params: m
            .query_params
            .iter()
            .map(|q| SpecQueryParamMatch {
                name: q.name.clone(),
                value: value(&q.value),
            })
            .collect(),
        method: m.method.clone(),
    }
}

/// A 0.1 route plan in the host's vocabulary: the same rules, no filters.
pub(crate) fn plan_from_v1(plan: V1Plan) -> RoutePlan {
    use sv1::sluice::plugin::types as v1;
    let backend = |b: v1::Backend| match b {
        v1::Backend::Primary => Backend::Primary,
        v1::Backend::Canary => Backend::Canary,
    };
    let cookie = |c: v1::ResponseCookie| ResponseCookie {
        name: c.name,
        value: c.value,
        max_age_seconds: c.max_age_seconds,
    };
    let rule = |r: v1::RouteRule| RouteRule {
        matches: r.matches.iter().map(plan_match).collect(),
        backends: r
            .backends
            .into_iter()
            .map(|b| WeightedBackend {
                backend: backend(b.backend),
                weight: b.weight,
                set_cookie: b.set_cookie.map(cookie),
            })
            .collect(),
        mirror: r.mirror.map(|m| Mirror {
            backend: backend(m.backend),
            percent: m.percent,
        }),
        set_cookie: r.set_cookie.map(cookie),
        filters: Vec::new(),
    };
    RoutePlan {
        rules: plan.rules.into_iter().map(rule).collect(),
    }
}

/// The plan that keeps every request on the primary.
pub fn primary_only() -> RoutePlan {
    let backend = |backend, weight| WeightedBackend {
        backend,
        weight,
        set_cookie: None,
    };
    RoutePlan {
        rules: vec![RouteRule {
            matches: vec![],
            backends: vec![backend(Backend::Primary, 100), backend(Backend::Canary, 0)],
            mirror: None,
            set_cookie: None,
            filters: vec![],
        }],
    }
}

/// The Canary's Flagger settings as 0.2 hands them to a strategy
/// (`rollout-spec.analysis`), camelCase as in the Canary, unset ones left
/// out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FlaggerAnalysis<'a> {
    interval: String,
    threshold: u32,
    max_weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    step_weight: Option<u32>,
    #[serde(skip_serializing_if = "<[u32]>::is_empty")]
    step_weights: &'a [u32],
    #[serde(skip_serializing_if = "Option::is_none")]
    step_weight_promotion: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iterations: Option<u32>,
    mirror: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror_weight: Option<u32>,
}

/// The highest canary weight the host accepts in an `advance`.
pub(crate) fn max_weight(spec: &AnalysisSpec) -> u32 {
    spec.step_weights
        .last()
        .copied()
        .unwrap_or(spec.max_weight)
        .min(100)
}

/// The host's spec as 0.2's stable `rollout-spec`.
pub(crate) fn spec_to_v2(spec: &AnalysisSpec) -> V2Strategy {
    use sv2::sluice::plugin::types as v2;
    let analysis = FlaggerAnalysis {
        interval: format!("{}s", spec.interval_seconds),
        threshold: spec.threshold,
        max_weight: spec.max_weight,
        step_weight: spec.step_weight,
        step_weights: &spec.step_weights,
        step_weight_promotion: spec.step_weight_promotion,
        iterations: spec.iterations,
        mirror: spec.mirror,
        mirror_weight: spec.mirror_weight,
    };
    let matches: Vec<v2::HttpMatch> = spec.matches.iter().map(plan_match).collect();
    V2Strategy {
        interval_seconds: spec.interval_seconds,
        threshold: spec.threshold,
        max_weight: max_weight(spec),
        matches,
        session_affinity: spec.session_affinity.as_ref().map(affinity_to_v2),
        analysis: serde_json::to_string(&analysis).unwrap_or_default(),
        config: spec.config.clone(),
    }
}

fn affinity_to_v2(a: &SessionAffinity) -> sv2::sluice::plugin::strategy_types::SessionAffinity {
    sv2::sluice::plugin::strategy_types::SessionAffinity {
        cookie_name: a.cookie_name.clone(),
        max_age_seconds: a.max_age_seconds,
        cookie_value: a.cookie_value.clone(),
        previous_cookie_value: a.previous_cookie_value.clone(),
        primary_cookie_name: a.primary_cookie_name.clone(),
    }
}

/// The state as 0.2 sees it; `None` in a phase a 0.2 plugin is never
/// called in (the host's answer checks refuse any plan or action there).
pub(crate) fn state_to_v2(
    state: &RolloutState,
) -> Option<sv2::sluice::plugin::strategy_types::RolloutState> {
    use sv2::sluice::plugin::strategy_types::Phase as P2;
    let phase = match state.phase {
        Phase::Waiting => P2::Waiting,
        Phase::Progressing => P2::Progressing,
        Phase::WaitingPromotion => P2::WaitingPromotion,
        Phase::Promoting => P2::Promoting,
        _ => return None,
    };
    Some(sv2::sluice::plugin::strategy_types::RolloutState {
        phase,
        canary_weight: state.canary_weight,
        iterations: state.iterations,
        failed_checks: state.failed_checks,
    })
}

pub(crate) fn observation_to_v2(
    o: super::bindings::strategy::Observation,
) -> sv2::sluice::plugin::strategy_types::Observation {
    sv2::sluice::plugin::strategy_types::Observation {
        now_unix_seconds: o.now_unix_seconds,
        phase_started_unix_seconds: o.phase_started_unix_seconds,
    }
}

pub(crate) fn action_from_v2(a: sv2::sluice::plugin::strategy_types::Action) -> Action {
    use sv2::sluice::plugin::strategy_types::Action as A2;
    match a {
        A2::Advance(a) => Action::Advance(Advance {
            canary_weight: a.canary_weight,
            iterations: a.iterations,
        }),
        A2::Hold(why) => Action::Hold(why),
        A2::Promote => Action::Promote,
        A2::Finalise => Action::Finalise,
        A2::Rollback(why) => Action::Rollback(why),
    }
}

pub(crate) fn metric_to_v2(m: &Metric) -> ev2::sluice::plugin::evaluator_types::Metric {
    use ev2::sluice::plugin::evaluator_types as v2;
    v2::Metric {
        name: m.name.clone(),
        threshold_range: v2::ThresholdRange {
            min: m.threshold_range.min,
            max: m.threshold_range.max,
        },
        config: m.config.clone(),
    }
}

pub(crate) fn samples_to_v2(s: &Samples) -> ev2::sluice::plugin::evaluator_types::Samples {
    ev2::sluice::plugin::evaluator_types::Samples {
        canary: s.canary,
        primary: s.primary,
        canary_series: s.canary_series.clone(),
        primary_series: s.primary_series.clone(),
    }
}

pub(crate) fn series_from_v2(
    r: ev2::sluice::plugin::evaluator_types::SeriesRequest,
) -> SeriesRequest {
    SeriesRequest {
        window_seconds: r.window_seconds,
        step_seconds: r.step_seconds,
    }
}

/// A 0.1 verdict in the host's vocabulary (0.1 has no `needs-more-data`).
pub(crate) fn verdict_from_v1(v: ev1::sluice::plugin::evaluator_types::Verdict) -> Verdict {
    use ev1::sluice::plugin::evaluator_types::Verdict as V1;
    match v {
        V1::Pass => Verdict::Pass,
        V1::Fail(why) => Verdict::Fail(why),
        V1::Inconclusive(why) => Verdict::Inconclusive(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> AnalysisSpec {
        AnalysisSpec {
            interval_seconds: 60,
            threshold: 2,
            max_weight: 50,
            step_weight: Some(10),
            step_weights: vec![],
            step_weight_promotion: None,
            iterations: None,
            matches: vec![],
            mirror: false,
            mirror_weight: None,
            session_affinity: None,
            config: r#"{"x":1}"#.into(),
        }
    }

    #[test]
    fn a_spec_reaches_0_2_with_flagger_fields_as_json() {
        let v2 = spec_to_v2(&spec());
        assert_eq!(v2.max_weight, 50);
        assert_eq!(v2.config, r#"{"x":1}"#);
        let analysis: serde_json::Value = serde_json::from_str(&v2.analysis).unwrap();
        assert_eq!(
            analysis,
            serde_json::json!({"interval": "60s", "threshold": 2, "maxWeight": 50,
                "stepWeight": 10, "mirror": false})
        );
        let steps = AnalysisSpec {
            step_weights: vec![5, 25],
            ..spec()
        };
        assert_eq!(spec_to_v2(&steps).max_weight, 25);
    }

    #[test]
    fn only_the_phases_a_plugin_sees_reach_0_2() {
        let state = |phase| RolloutState {
            phase,
            canary_weight: 10,
            iterations: 0,
            failed_checks: 0,
        };
        assert!(state_to_v2(&state(Phase::Progressing)).is_some());
        assert!(state_to_v2(&state(Phase::WaitingPromotion)).is_some());
        assert!(state_to_v2(&state(Phase::Succeeded)).is_none());
        assert!(state_to_v2(&state(Phase::Initialized)).is_none());
    }
}
