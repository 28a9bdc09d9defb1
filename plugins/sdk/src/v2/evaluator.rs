//! 0.2 evaluator plugins: judging one metric.
//!
//! Implement [`Evaluator`] and call
//! [`v2::export_evaluator!`](crate::v2::export_evaluator).

use std::marker::PhantomData;

use crate::bindings::v2::evaluator::exports::sluice::plugin::judge;
pub use crate::bindings::v2::evaluator::sluice::plugin::evaluator_types::{
    Metric, MetricRequirements, Samples, SeriesRequest, ThresholdRange, Verdict,
};
use crate::bindings::v2::settings::exports::sluice::plugin::settings;

/// What an evaluator needs to judge a metric (the contract's
/// `metric-requirements`).
pub type Requirements = MetricRequirements;
pub use crate::v2::{Config, Level, Value, log};

/// A metric evaluator: the `judge` (and `settings`) interfaces of the
/// `validated-evaluator` world.
pub trait Evaluator {
    /// What the evaluator needs to judge `metric`: the primary's value as a
    /// baseline, and series over a window. The host asks once per metric
    /// and settings. Defaults to neither: the canary's instant value only.
    fn requirements(_metric: &Metric) -> Result<Requirements, String> {
        Ok(Requirements {
            baseline: false,
            series: None,
        })
    }

    /// Judges the samples of one metric.
    fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String>;

    /// Checks a metric's settings (its `config`) when the Canary changes,
    /// before they are used; an error refuses the Canary with its message.
    /// Defaults to accepting everything.
    fn validate_config(_config: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Adapts an [`Evaluator`] to the generated `Guest` traits. Used by
/// [`v2::export_evaluator!`](crate::v2::export_evaluator); not meant to be
/// named.
#[doc(hidden)]
pub struct __Adapter<T>(PhantomData<T>);

impl<T: Evaluator> judge::Guest for __Adapter<T> {
    fn requirements(metric: Metric) -> Result<Requirements, String> {
        T::requirements(&metric)
    }

    fn evaluate(metric: Metric, samples: Samples) -> Result<Verdict, String> {
        T::evaluate(&metric, &samples)
    }
}

impl<T: Evaluator> settings::Guest for __Adapter<T> {
    fn validate_config(config: String) -> Result<(), String> {
        T::validate_config(&config)
    }
}

/// Exports a type implementing [`v2::evaluator::Evaluator`](Evaluator) as
/// the component's `judge` and `settings` interfaces (the
/// `validated-evaluator` world of `sluice:plugin@0.2.0`). Call it once, at
/// the top level of a `cdylib` crate; also reachable as
/// `sluice_plugin_sdk::v2::export_evaluator!`.
#[macro_export]
macro_rules! export_evaluator_v2 {
    ($ty:ty) => {
        #[doc(hidden)]
        type __SluiceEvaluatorExportV2 = $crate::v2::evaluator::__Adapter<$ty>;
        $crate::bindings::v2::evaluator::__export_evaluator_v2_world!(
            __SluiceEvaluatorExportV2 with_types_in $crate::bindings::v2::evaluator
        );
        $crate::bindings::v2::settings::__export_settings_v2_world!(
            __SluiceEvaluatorExportV2 with_types_in $crate::bindings::v2::settings
        );
    };
}

/// Parses a metric's settings, `metric.config` (empty means none, else a
/// JSON object).
pub fn config(metric: &Metric) -> Result<Config, String> {
    Config::parse(&metric.config)
}

/// Flagger's threshold check of `value` against the metric's
/// `thresholdRange`: `None` when it is inside, else the failure reason in
/// Flagger's words, e.g. `"error-rate 7 > 1"`.
pub fn outside_threshold(metric: &Metric, value: f64) -> Option<String> {
    let range = &metric.threshold_range;
    match (range.min, range.max) {
        (_, Some(max)) if value > max => Some(format!("{} {value} > {max}", metric.name)),
        (Some(min), _) if value < min => Some(format!("{} {value} < {min}", metric.name)),
        _ => None,
    }
}

/// [`Verdict::Pass`] when `value` is inside the metric's `thresholdRange`,
/// else [`Verdict::Fail`] with Flagger's reason.
pub fn threshold_verdict(metric: &Metric, value: f64) -> Verdict {
    outside_threshold(metric, value).map_or(Verdict::Pass, Verdict::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An evaluator that implements only `evaluate`.
    struct Minimal;

    impl Evaluator for Minimal {
        fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String> {
            Ok(threshold_verdict(metric, samples.canary))
        }
    }

    /// One that asks for a baseline series and checks its settings.
    struct Statistical;

    impl Evaluator for Statistical {
        fn requirements(metric: &Metric) -> Result<Requirements, String> {
            let window = config(metric)?.get_u32("window")?.unwrap_or(600);
            Ok(Requirements {
                baseline: true,
                series: Some(SeriesRequest {
                    window_seconds: window,
                    step_seconds: 30,
                }),
            })
        }

        fn evaluate(_: &Metric, samples: &Samples) -> Result<Verdict, String> {
            Ok(if samples.canary_series.len() < 3 {
                Verdict::NeedsMoreData(format!("only {} samples", samples.canary_series.len()))
            } else {
                Verdict::Pass
            })
        }

        fn validate_config(text: &str) -> Result<(), String> {
            match Config::parse(text)?.get_u32("window")? {
                Some(0) => Err("window must be more than 0".into()),
                _ => Ok(()),
            }
        }
    }

    fn metric(name: &str, min: Option<f64>, max: Option<f64>, config: &str) -> Metric {
        Metric {
            name: name.into(),
            threshold_range: ThresholdRange { min, max },
            config: config.into(),
        }
    }

    fn samples(canary: f64, canary_series: Vec<f64>) -> Samples {
        Samples {
            canary,
            primary: None,
            canary_series,
            primary_series: Vec::new(),
        }
    }

    #[test]
    fn defaults_ask_for_the_instant_value_only_and_accept_any_settings() {
        type A = __Adapter<Minimal>;
        assert_eq!(
            <A as judge::Guest>::requirements(metric("x", None, None, "")),
            Ok(Requirements {
                baseline: false,
                series: None
            })
        );
        assert_eq!(
            <A as settings::Guest>::validate_config("not json".into()),
            Ok(())
        );
        assert_eq!(
            <A as judge::Guest>::evaluate(
                metric("error-rate", None, Some(1.0), ""),
                samples(7.0, Vec::new())
            ),
            Ok(Verdict::Fail("error-rate 7 > 1".into()))
        );
    }

    #[test]
    fn the_adapter_forwards_requirements_verdicts_and_settings_checks() {
        type A = __Adapter<Statistical>;
        assert_eq!(
            <A as judge::Guest>::requirements(metric("latency", None, None, r#"{"window": 300}"#)),
            Ok(Requirements {
                baseline: true,
                series: Some(SeriesRequest {
                    window_seconds: 300,
                    step_seconds: 30
                })
            })
        );
        assert!(<A as judge::Guest>::requirements(metric("l", None, None, "[]")).is_err());
        assert_eq!(
            <A as judge::Guest>::evaluate(metric("l", None, None, ""), samples(1.0, vec![1.0])),
            Ok(Verdict::NeedsMoreData("only 1 samples".into()))
        );
        assert_eq!(
            <A as settings::Guest>::validate_config(r#"{"window": 0}"#.into()),
            Err("window must be more than 0".into())
        );
        assert_eq!(
            <A as settings::Guest>::validate_config(r#"{"window": 60}"#.into()),
            Ok(())
        );
    }

    #[test]
    fn threshold_checks_in_flaggers_words() {
        let m = metric("success-rate", Some(99.0), Some(100.0), "");
        assert_eq!(outside_threshold(&m, 99.5), None);
        assert_eq!(
            outside_threshold(&m, 98.5),
            Some("success-rate 98.5 < 99".into())
        );
        assert_eq!(
            threshold_verdict(&m, 101.0),
            Verdict::Fail("success-rate 101 > 100".into())
        );
        assert_eq!(
            threshold_verdict(&metric("x", None, None, ""), 1e9),
            Verdict::Pass
        );
    }
}
