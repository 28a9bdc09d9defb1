//! The Canary's Flagger settings, as 0.2 hands them to a strategy: the JSON
//! string `RolloutSpec.analysis`, camelCase as in the Canary, with Flagger's
//! defaults filled in.

use serde_json::{Map, Value};

/// Flagger's default `stepWeight`.
pub const DEFAULT_STEP_WEIGHT: u32 = 10;

/// The Flagger settings of a Canary's `analysis` that strategies use.
///
/// Parsed from `RolloutSpec.analysis` with [`Analysis::parse`] (by
/// `serde_json`); fields this struct does not know are ignored, and a
/// missing (or `null`) field is `None`, empty or `false`. For a field the
/// host adds later, read the string with
/// [`Config::parse`](crate::config::Config::parse) instead.
///
/// [`Analysis::to_json`] writes it back the way the host does, e.g. to
/// build a `RolloutSpec` in a plugin's unit tests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analysis {
    /// `interval`: the schedule interval as the Canary gives it, e.g.
    /// `"60s"` (the typed value is `RolloutSpec.interval_seconds`).
    pub interval: Option<String>,
    /// `threshold`: failed checks before a rollback.
    pub threshold: Option<u32>,
    /// `maxWeight`: the Canary's maximum canary weight. The highest weight
    /// the host accepts is `RolloutSpec.max_weight`, which also accounts
    /// for `stepWeights`.
    pub max_weight: Option<u32>,
    /// `stepWeight`: the canary increment of a weighted rollout.
    pub step_weight: Option<u32>,
    /// `stepWeights`: explicit canary weights, in order (instead of
    /// `stepWeight`).
    pub step_weights: Vec<u32>,
    /// `stepWeightPromotion`: the decrement of the canary weight while
    /// promoting.
    pub step_weight_promotion: Option<u32>,
    /// `iterations`: the number of iterations (A/B testing, blue/green).
    pub iterations: Option<u32>,
    /// `mirror`: Flagger's traffic mirroring before the first weight step.
    pub mirror: bool,
    /// `mirrorWeight`: the percentage of requests mirrored; none means all.
    pub mirror_weight: Option<u32>,
    /// `maxDataWaits`: rounds of `needs-more-data` the host waits for
    /// before they count as failed checks.
    pub max_data_waits: Option<u32>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn invalid(key: &str, what: &str, got: &Value) -> String {
    format!(
        "invalid analysis settings: \"{key}\" must be {what}, got {}",
        type_name(got)
    )
}

/// A member, `null` reading as missing.
fn member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn whole(key: &str, v: &Value) -> Result<u32, String> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| match v {
            Value::Number(n) => format!(
                "invalid analysis settings: \"{key}\" must be a whole number from 0 to {}, got {n}",
                u32::MAX
            ),
            other => invalid(key, "a number", other),
        })
}

fn u32_member(object: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    member(object, key).map(|v| whole(key, v)).transpose()
}

impl Analysis {
    /// Parses `RolloutSpec.analysis`. An empty (or all whitespace) string is
    /// an analysis with nothing set; otherwise it must be a JSON object.
    /// Errors name the field.
    pub fn parse(analysis: &str) -> Result<Analysis, String> {
        if analysis.trim().is_empty() {
            return Ok(Analysis::default());
        }
        let value: Value = serde_json::from_str(analysis)
            .map_err(|e| format!("invalid analysis settings: invalid JSON: {e}"))?;
        let Value::Object(o) = value else {
            return Err(format!(
                "invalid analysis settings: expected a JSON object, got {}",
                type_name(&value)
            ));
        };
        let interval = match member(&o, "interval") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(invalid("interval", "a string", other)),
        };
        let step_weights = match member(&o, "stepWeights") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|w| whole("stepWeights", w))
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(invalid("stepWeights", "an array", other)),
        };
        let mirror = match member(&o, "mirror") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(invalid("mirror", "true or false", other)),
        };
        Ok(Analysis {
            interval,
            threshold: u32_member(&o, "threshold")?,
            max_weight: u32_member(&o, "maxWeight")?,
            step_weight: u32_member(&o, "stepWeight")?,
            step_weights,
            step_weight_promotion: u32_member(&o, "stepWeightPromotion")?,
            iterations: u32_member(&o, "iterations")?,
            mirror,
            mirror_weight: u32_member(&o, "mirrorWeight")?,
            max_data_waits: u32_member(&o, "maxDataWaits")?,
        })
    }

    /// The canary increment: `stepWeight` when set and not 0 (Go's zero
    /// value, i.e. unset, in Flagger), else [`DEFAULT_STEP_WEIGHT`].
    pub fn step(&self) -> u32 {
        match self.step_weight {
            Some(step) if step > 0 => step,
            _ => DEFAULT_STEP_WEIGHT,
        }
    }

    /// The JSON the host would send for these settings: camelCase, in the
    /// Canary's order, unset fields left out.
    pub fn to_json(&self) -> String {
        let mut members: Vec<(&str, Value)> = Vec::new();
        let number = |key: &'static str, n: Option<u32>| n.map(|n| (key, Value::from(n)));
        let fields = [
            self.interval
                .as_ref()
                .map(|s| ("interval", Value::from(s.as_str()))),
            number("threshold", self.threshold),
            number("maxWeight", self.max_weight),
            number("stepWeight", self.step_weight),
            (!self.step_weights.is_empty())
                .then(|| ("stepWeights", Value::from(self.step_weights.clone()))),
            number("stepWeightPromotion", self.step_weight_promotion),
            number("iterations", self.iterations),
            Some(("mirror", Value::from(self.mirror))),
            number("mirrorWeight", self.mirror_weight),
            number("maxDataWaits", self.max_data_waits),
        ];
        members.extend(fields.into_iter().flatten());
        let body: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_hosts_json_ignoring_unknown_fields() {
        let a = Analysis::parse(
            r#"{"interval": "60s", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
                "stepWeights": [5, 25], "stepWeightPromotion": 20, "iterations": 3,
                "mirror": true, "mirrorWeight": 40, "maxDataWaits": 4,
                "metrics": [{"name": "x"}], "somethingNew": {"a": 1}}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            Analysis {
                interval: Some("60s".into()),
                threshold: Some(2),
                max_weight: Some(50),
                step_weight: Some(10),
                step_weights: vec![5, 25],
                step_weight_promotion: Some(20),
                iterations: Some(3),
                mirror: true,
                mirror_weight: Some(40),
                max_data_waits: Some(4),
            }
        );
    }

    #[test]
    fn missing_and_null_fields_are_unset() {
        assert_eq!(Analysis::parse("").unwrap(), Analysis::default());
        assert_eq!(Analysis::parse(" {} ").unwrap(), Analysis::default());
        let a = Analysis::parse(r#"{"stepWeights": null, "mirror": null, "stepWeight": null}"#)
            .unwrap();
        assert_eq!(a, Analysis::default());
        assert_eq!(a.step(), DEFAULT_STEP_WEIGHT);
        assert_eq!(
            Analysis::parse(r#"{"stepWeight": 0}"#).unwrap().step(),
            DEFAULT_STEP_WEIGHT
        );
        assert_eq!(Analysis::parse(r#"{"stepWeight": 7}"#).unwrap().step(), 7);
    }

    #[test]
    fn wrong_types_are_errors_naming_the_field() {
        assert_eq!(
            Analysis::parse(r#"{"stepWeight": "10"}"#).unwrap_err(),
            "invalid analysis settings: \"stepWeight\" must be a number, got a string"
        );
        assert_eq!(
            Analysis::parse(r#"{"maxWeight": -1}"#).unwrap_err(),
            format!(
                "invalid analysis settings: \"maxWeight\" must be a whole number from 0 to {}, got -1",
                u32::MAX
            )
        );
        assert_eq!(
            Analysis::parse(r#"{"stepWeights": [5, 2.5]}"#).unwrap_err(),
            format!(
                "invalid analysis settings: \"stepWeights\" must be a whole number from 0 to {}, got 2.5",
                u32::MAX
            )
        );
        assert_eq!(
            Analysis::parse(r#"{"mirror": "yes"}"#).unwrap_err(),
            "invalid analysis settings: \"mirror\" must be true or false, got a string"
        );
        assert_eq!(
            Analysis::parse("[1]").unwrap_err(),
            "invalid analysis settings: expected a JSON object, got an array"
        );
        assert!(
            Analysis::parse("{")
                .unwrap_err()
                .starts_with("invalid analysis settings: invalid JSON: ")
        );
    }

    #[test]
    fn to_json_round_trips_like_the_host_writes_it() {
        let a = Analysis {
            interval: Some("60s".into()),
            max_weight: Some(50),
            step_weight: Some(10),
            ..Analysis::default()
        };
        assert_eq!(
            a.to_json(),
            r#"{"interval":"60s","maxWeight":50,"stepWeight":10,"mirror":false}"#
        );
        assert_eq!(Analysis::parse(&a.to_json()).unwrap(), a);
        let all = Analysis::parse(
            r#"{"interval": "1m", "threshold": 2, "maxWeight": 50, "stepWeight": 10,
                "stepWeights": [5, 25], "stepWeightPromotion": 20, "iterations": 3,
                "mirror": true, "mirrorWeight": 40, "maxDataWaits": 4}"#,
        )
        .unwrap();
        assert_eq!(Analysis::parse(&all.to_json()).unwrap(), all);
    }
}
