//! An evaluator on the SDK's 0.2 API, for the contract-0.2 tests.
//!
//! It asks for a baseline and a series (`{"window": 300, "step": 60,
//! "minSamples": 3}`, those are the defaults), answers `needs-more-data`
//! while the canary's series is shorter than `minSamples`, and otherwise
//! judges the canary's value by the metric's threshold range. Its settings
//! check refuses `minSamples` of 0.

use sluice_plugin_sdk::v2::evaluator::*;

struct V2Evaluator;

/// The evaluator's settings, defaults filled in.
struct Settings {
    window: u32,
    step: u32,
    min_samples: u32,
}

impl Settings {
    fn parse(config: &str) -> Result<Settings, String> {
        let c = Config::parse(config)?;
        Ok(Settings {
            window: c.get_u32("window")?.unwrap_or(300),
            step: c.get_u32("step")?.unwrap_or(60),
            min_samples: c.get_u32("minSamples")?.unwrap_or(3),
        })
    }
}

impl Evaluator for V2Evaluator {
    fn requirements(metric: &Metric) -> Result<Requirements, String> {
        let s = Settings::parse(&metric.config)?;
        Ok(Requirements {
            baseline: true,
            series: Some(SeriesRequest {
                window_seconds: s.window,
                step_seconds: s.step,
            }),
        })
    }

    fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String> {
        let s = Settings::parse(&metric.config)?;
        let n = samples.canary_series.len();
        log(
            Level::Debug,
            &format!(
                "{}: canary {} ({n} samples), primary {:?}",
                metric.name, samples.canary, samples.primary
            ),
        );
        if n < s.min_samples as usize {
            return Ok(Verdict::NeedsMoreData(format!(
                "only {n} samples, need {}",
                s.min_samples
            )));
        }
        Ok(threshold_verdict(metric, samples.canary))
    }

    fn validate_config(config: &str) -> Result<(), String> {
        let s = Settings::parse(config)?;
        if s.min_samples == 0 {
            return Err("v2-evaluator: minSamples must be at least 1".into());
        }
        Ok(())
    }
}

sluice_plugin_sdk::v2::export_evaluator!(V2Evaluator);

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(config: &str) -> Metric {
        Metric {
            name: "error-rate".into(),
            threshold_range: ThresholdRange {
                min: None,
                max: Some(1.0),
            },
            config: config.into(),
        }
    }

    fn samples(canary: f64, n: usize) -> Samples {
        Samples {
            canary,
            primary: Some(0.5),
            canary_series: vec![canary; n],
            primary_series: vec![0.5; n],
        }
    }

    #[test]
    fn asks_for_a_baseline_and_the_configured_series() {
        assert_eq!(
            V2Evaluator::requirements(&metric("")),
            Ok(Requirements {
                baseline: true,
                series: Some(SeriesRequest {
                    window_seconds: 300,
                    step_seconds: 60
                })
            })
        );
        assert_eq!(
            V2Evaluator::requirements(&metric(r#"{"window": 600, "step": 30}"#)).map(|r| r.series),
            Ok(Some(SeriesRequest {
                window_seconds: 600,
                step_seconds: 30
            }))
        );
    }

    #[test]
    fn needs_more_data_until_min_samples_then_judges_the_threshold() {
        assert_eq!(
            V2Evaluator::evaluate(&metric(""), &samples(0.5, 2)),
            Ok(Verdict::NeedsMoreData("only 2 samples, need 3".into()))
        );
        assert_eq!(
            V2Evaluator::evaluate(&metric(""), &samples(0.5, 3)),
            Ok(Verdict::Pass)
        );
        assert_eq!(
            V2Evaluator::evaluate(&metric(""), &samples(7.0, 3)),
            Ok(Verdict::Fail("error-rate 7 > 1".into()))
        );
        assert_eq!(
            V2Evaluator::evaluate(&metric(r#"{"minSamples": 5}"#), &samples(0.5, 4)),
            Ok(Verdict::NeedsMoreData("only 4 samples, need 5".into()))
        );
    }

    #[test]
    fn refuses_min_samples_of_zero() {
        assert_eq!(
            V2Evaluator::validate_config(r#"{"minSamples": 0}"#),
            Err("v2-evaluator: minSamples must be at least 1".into())
        );
        assert_eq!(V2Evaluator::validate_config(r#"{"minSamples": 1}"#), Ok(()));
        assert_eq!(V2Evaluator::validate_config(""), Ok(()));
        assert!(V2Evaluator::validate_config(r#"{"window": "5m"}"#).is_err());
    }
}
