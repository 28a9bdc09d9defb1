//! A weighted strategy on the SDK's 0.2 API, for the contract-0.2 tests.
//!
//! It steps the canary weight by the Canary's `stepWeight` up to its
//! `maxWeight`, both read from `spec.analysis` as Flagger names them, then
//! promotes (stepping back by `stepWeightPromotion` when set). Its route
//! shows 0.2's filters: the catch-all rule tells every response the canary's
//! weight (`x-sluice-weight`), and with `{"redirectLegacy": true}` a first
//! rule redirects `/legacy…` to `/` (301). Its settings check refuses any
//! other key.

use sluice_plugin_sdk::v2::progression::next_weight;
use sluice_plugin_sdk::v2::strategy::*;

struct V2Strategy;

/// The settings this strategy knows.
const KNOWN_KEYS: [&str; 1] = ["redirectLegacy"];

/// Whether the settings ask for the `/legacy` redirect.
fn redirect_legacy(config: &str) -> Result<bool, String> {
    match Config::parse(config)?.get("redirectLegacy") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "v2-strategy: redirectLegacy must be true or false, got {}",
            other.type_name()
        )),
    }
}

/// The weight at which the canary is promoted: the Canary's `maxWeight`,
/// never above what the host accepts.
fn max_weight(spec: &RolloutSpec, analysis: &Analysis) -> u32 {
    analysis
        .max_weight
        .unwrap_or(spec.max_weight)
        .min(spec.max_weight)
}

impl Strategy for V2Strategy {
    fn decide(spec: &RolloutSpec, state: &RolloutState, _: &Observation) -> Result<Action, String> {
        let analysis = analysis(spec)?;
        let max = max_weight(spec, &analysis);
        match state.phase {
            Phase::Progressing if state.canary_weight < max => {
                let weight = next_weight(&analysis, max, state.canary_weight);
                log(Level::Debug, &format!("v2-strategy: advance to {weight}"));
                Ok(Action::Advance(Advance {
                    canary_weight: weight,
                    iterations: state.iterations,
                }))
            }
            Phase::Progressing => Ok(Action::Promote),
            Phase::Promoting => Ok(promotion_step(&analysis, state)),
            other => Err(format!(
                "v2-strategy: decide called in phase {}",
                phase_name(other)
            )),
        }
    }

    fn route(spec: &RolloutSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        let weight = if canary_active(state) {
            state.canary_weight
        } else {
            0
        };
        let mut plan = weighted_route(weight);
        for rule in plan.rules.iter_mut() {
            rule.filters.push(set_response_headers(&[(
                "x-sluice-weight",
                &weight.to_string(),
            )]));
        }
        if redirect_legacy(&spec.config)? {
            let mut legacy = rule(
                vec![path_prefix_match("/legacy")],
                vec![backend(Backend::Primary, 100), backend(Backend::Canary, 0)],
            );
            legacy.filters.push(redirect_to_path("/", 301));
            plan.rules.insert(0, legacy);
        }
        Ok(plan)
    }

    fn validate_config(config: &str) -> Result<(), String> {
        let parsed = Config::parse(config)?;
        if let Some(key) = parsed.keys().into_iter().find(|k| !KNOWN_KEYS.contains(k)) {
            return Err(format!(
                "v2-strategy: unknown setting \"{key}\" (known: {})",
                KNOWN_KEYS.join(", ")
            ));
        }
        redirect_legacy(config).map(|_| ())
    }
}

sluice_plugin_sdk::v2::export_strategy!(V2Strategy);

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(config: &str) -> RolloutSpec {
        RolloutSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight: 50,
            matches: Vec::new(),
            session_affinity: None,
            analysis:
                r#"{"interval":"60s","threshold":5,"maxWeight":30,"stepWeight":20,"mirror":false}"#
                    .into(),
            config: config.into(),
        }
    }

    fn state(phase: Phase, canary_weight: u32) -> RolloutState {
        RolloutState {
            phase,
            canary_weight,
            iterations: 0,
            failed_checks: 0,
        }
    }

    const NOW: Observation = Observation {
        now_unix_seconds: 0,
        phase_started_unix_seconds: 0,
    };

    #[test]
    fn steps_by_step_weight_to_max_weight_of_the_analysis() {
        let s = spec("");
        let advance = |w| V2Strategy::decide(&s, &state(Phase::Progressing, w), &NOW).unwrap();
        assert_eq!(
            advance(0),
            Action::Advance(Advance {
                canary_weight: 20,
                iterations: 0
            })
        );
        assert_eq!(
            advance(20),
            Action::Advance(Advance {
                canary_weight: 30,
                iterations: 0
            })
        );
        assert_eq!(advance(30), Action::Promote);
        assert_eq!(
            V2Strategy::decide(&s, &state(Phase::Promoting, 30), &NOW),
            Ok(Action::Finalise)
        );
    }

    #[test]
    fn routes_carry_the_weight_header_and_the_legacy_redirect() {
        let plan = V2Strategy::route(&spec(""), &state(Phase::Progressing, 20)).unwrap();
        assert_eq!(plan.rules.len(), 1);
        assert_eq!(
            plan.rules[0].filters,
            vec![set_response_headers(&[("x-sluice-weight", "20")])]
        );
        let plan = V2Strategy::route(
            &spec(r#"{"redirectLegacy": true}"#),
            &state(Phase::Waiting, 0),
        )
        .unwrap();
        assert_eq!(plan.rules.len(), 2);
        assert_eq!(plan.rules[0].matches, vec![path_prefix_match("/legacy")]);
        assert_eq!(plan.rules[0].filters, vec![redirect_to_path("/", 301)]);
        assert_eq!(
            plan.rules[1].filters,
            vec![set_response_headers(&[("x-sluice-weight", "0")])]
        );
    }

    #[test]
    fn settings_check_names_an_unknown_key() {
        assert_eq!(V2Strategy::validate_config(""), Ok(()));
        assert_eq!(
            V2Strategy::validate_config(r#"{"redirectLegacy": false}"#),
            Ok(())
        );
        assert_eq!(
            V2Strategy::validate_config(r#"{"redirectLegacy": true, "factor": 2}"#),
            Err("v2-strategy: unknown setting \"factor\" (known: redirectLegacy)".into())
        );
        assert!(
            V2Strategy::validate_config(r#"{"redirectLegacy": "yes"}"#)
                .unwrap_err()
                .contains("must be true or false")
        );
        assert!(V2Strategy::validate_config("[]").is_err());
    }
}
