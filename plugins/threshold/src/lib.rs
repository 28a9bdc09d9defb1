//! The built-in `threshold` evaluator: Flagger's `thresholdRange`.
//!
//! The canary's value passes when it is within `[min, max]` (either bound
//! optional). Failure reasons use Flagger's wording, e.g.
//! `success rate 98.00% < 99%`, `request duration 1.5s > 500ms`,
//! `error rate 69.17% > 1%`.
//!
//! The metric's `config` may set the unit: `{"unit": "ms"}` or
//! `{"unit": "s"}` format values as Go durations, any other string (`"%"`,
//! `""`, `"rps"`, …) is appended to the numbers.

use sluice_plugin_sdk::config::Config;
use sluice_plugin_sdk::evaluator::{Evaluator, Metric, Samples, Verdict};

pub struct Threshold;

impl Evaluator for Threshold {
    fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String> {
        evaluate(metric, samples.canary)
    }
}

sluice_plugin_sdk::export_evaluator!(Threshold);

/// How a metric's numbers are written.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// A duration; the value is this many milliseconds per unit.
    Duration { millis_per_unit: f64 },
    /// A plain number followed by this suffix (`%`, or nothing).
    Suffix(String),
}

impl Unit {
    fn from_name(name: &str) -> Unit {
        match name {
            "ms" => Unit::Duration {
                millis_per_unit: 1.0,
            },
            "s" => Unit::Duration {
                millis_per_unit: 1000.0,
            },
            "" | "%" => Unit::Suffix(name.to_string()),
            // A word reads better after a space: "12.00 rps".
            other if other.starts_with(|c: char| c.is_alphanumeric()) => {
                Unit::Suffix(format!(" {other}"))
            }
            other => Unit::Suffix(other.to_string()),
        }
    }

    /// The canary's value: two decimals (Flagger's `%.2f`).
    fn value(&self, v: f64) -> String {
        match self {
            Unit::Duration { millis_per_unit } => go_duration_ms(v * millis_per_unit),
            Unit::Suffix(s) => format!("{v:.2}{s}"),
        }
    }

    /// A threshold: shortest form (Go's `%v`).
    fn threshold(&self, t: f64) -> String {
        match self {
            Unit::Duration { millis_per_unit } => go_duration_ms(t * millis_per_unit),
            Unit::Suffix(s) => format!("{t}{s}"),
        }
    }
}

/// The name and unit used in messages about `metric`.
pub fn describe(metric: &Metric) -> Result<(String, Unit), String> {
    let (display, unit) = match metric.name.as_str() {
        "request-success-rate" => ("success rate".to_string(), Unit::from_name("%")),
        "request-duration" => ("request duration".to_string(), Unit::from_name("ms")),
        name => {
            // Flagger reports rates as percentages.
            let unit = if name.ends_with("rate") || name.ends_with("percent") {
                "%"
            } else {
                ""
            };
            (name.replace('-', " "), Unit::from_name(unit))
        }
    };
    let config =
        Config::parse(&metric.config).map_err(|e| format!("metric {}: {e}", metric.name))?;
    let unit = match config
        .get_str("unit")
        .map_err(|e| format!("metric {}: {e}", metric.name))?
    {
        Some(name) => Unit::from_name(name),
        None => unit,
    };
    Ok((display, unit))
}

/// Judges the canary's value against the metric's threshold range.
pub fn evaluate(metric: &Metric, canary: f64) -> Result<Verdict, String> {
    let (display, unit) = describe(metric)?;
    if canary.is_nan() {
        return Ok(Verdict::Inconclusive(format!("{display} is NaN")));
    }
    if canary.is_infinite() {
        let sign = if canary > 0.0 { '+' } else { '-' };
        return Ok(Verdict::Inconclusive(format!("{display} is {sign}Inf")));
    }
    let range = &metric.threshold_range;
    if let Some(min) = range.min
        && canary < min
    {
        return Ok(Verdict::Fail(format!(
            "{display} {} < {}",
            unit.value(canary),
            unit.threshold(min)
        )));
    }
    if let Some(max) = range.max
        && canary > max
    {
        return Ok(Verdict::Fail(format!(
            "{display} {} > {}",
            unit.value(canary),
            unit.threshold(max)
        )));
    }
    Ok(Verdict::Pass)
}

/// Formats milliseconds as Go's `time.Duration.String()` does: `500ms`,
/// `1.5s`, `2s`, `1m30s`, `1h0m0s`, `250µs`, `0s` (to the nanosecond).
pub fn go_duration_ms(millis: f64) -> String {
    // `as` saturates, and NaN becomes 0.
    let nanos = (millis * 1e6).round() as i64;
    go_duration(nanos)
}

/// Go's `time.Duration.String()` of a count of nanoseconds.
pub fn go_duration(nanos: i64) -> String {
    fn frac(u: u64, prec: u32) -> (u64, String) {
        let p = 10u64.pow(prec);
        let f = u % p;
        let digits = if f == 0 {
            String::new()
        } else {
            let s = format!(".{f:0width$}", width = prec as usize);
            s.trim_end_matches('0').to_string()
        };
        (u / p, digits)
    }

    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    let body = if u == 0 {
        "0s".to_string()
    } else if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        let (i, f) = frac(u, 3);
        format!("{i}{f}µs")
    } else if u < SECOND {
        let (i, f) = frac(u, 6);
        format!("{i}{f}ms")
    } else {
        let (secs, f) = frac(u, 9);
        let (mins, secs) = (secs / 60, secs % 60);
        let (hours, mins) = (mins / 60, mins % 60);
        if hours > 0 {
            format!("{hours}h{mins}m{secs}{f}s")
        } else if mins > 0 {
            format!("{mins}m{secs}{f}s")
        } else {
            format!("{secs}{f}s")
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::evaluator::ThresholdRange;

    fn metric(name: &str, min: Option<f64>, max: Option<f64>, config: &str) -> Metric {
        Metric {
            name: name.to_string(),
            threshold_range: ThresholdRange { min, max },
            config: config.to_string(),
        }
    }

    fn check(m: &Metric, value: f64) -> Verdict {
        evaluate(m, value).unwrap()
    }

    fn fail(m: &Metric, value: f64) -> String {
        match check(m, value) {
            Verdict::Fail(reason) => reason,
            other => panic!("expected fail, got {other:?}"),
        }
    }

    #[test]
    fn success_rate() {
        let m = metric("request-success-rate", Some(99.0), None, "");
        assert_eq!(fail(&m, 98.0), "success rate 98.00% < 99%");
        assert_eq!(check(&m, 99.0), Verdict::Pass);
        assert_eq!(check(&m, 100.0), Verdict::Pass);
    }

    #[test]
    fn request_duration() {
        let m = metric("request-duration", None, Some(500.0), "");
        assert_eq!(fail(&m, 1500.0), "request duration 1.5s > 500ms");
        assert_eq!(fail(&m, 2000.0), "request duration 2s > 500ms");
        assert_eq!(fail(&m, 501.0), "request duration 501ms > 500ms");
        assert_eq!(fail(&m, 500.5), "request duration 500.5ms > 500ms");
        assert_eq!(check(&m, 500.0), Verdict::Pass);
        let m = metric("request-duration", Some(10.0), Some(1000.0), "");
        assert_eq!(fail(&m, 0.25), "request duration 250µs < 10ms");
        assert_eq!(fail(&m, 90_000.0), "request duration 1m30s > 1s");
    }

    #[test]
    fn other_metrics() {
        let m = metric("error-rate", None, Some(1.0), "");
        assert_eq!(fail(&m, 69.17), "error rate 69.17% > 1%");
        assert_eq!(check(&m, 0.5), Verdict::Pass);

        let m = metric("latency", None, Some(0.5), "");
        assert_eq!(fail(&m, 0.62), "latency 0.62 > 0.5");

        let m = metric("cpu-usage-percent", Some(0.5), None, "");
        assert_eq!(fail(&m, 0.25), "cpu usage percent 0.25% < 0.5%");

        let m = metric("queue-depth", Some(1.0), Some(10.0), "");
        assert_eq!(fail(&m, 0.0), "queue depth 0.00 < 1");
        assert_eq!(fail(&m, 12.345), "queue depth 12.35 > 10");
        assert_eq!(check(&m, 1.0), Verdict::Pass);
        assert_eq!(check(&m, 10.0), Verdict::Pass);
    }

    #[test]
    fn no_bounds_passes() {
        let m = metric("anything", None, None, "");
        assert_eq!(check(&m, -1e300), Verdict::Pass);
    }

    #[test]
    fn not_a_number_is_inconclusive() {
        let m = metric("error-rate", None, Some(1.0), "");
        assert_eq!(
            check(&m, f64::NAN),
            Verdict::Inconclusive("error rate is NaN".into())
        );
        assert_eq!(
            check(&m, f64::INFINITY),
            Verdict::Inconclusive("error rate is +Inf".into())
        );
        let m = metric("request-success-rate", Some(99.0), None, "");
        assert_eq!(
            check(&m, f64::NEG_INFINITY),
            Verdict::Inconclusive("success rate is -Inf".into())
        );
    }

    #[test]
    fn unit_from_config() {
        let m = metric("p99-latency", None, Some(250.0), r#"{"unit":"ms"}"#);
        assert_eq!(fail(&m, 1234.0), "p99 latency 1.234s > 250ms");
        let m = metric("p99-latency", None, Some(0.25), r#"{"unit": "s"}"#);
        assert_eq!(fail(&m, 1.5), "p99 latency 1.5s > 250ms");
        let m = metric("errors", None, Some(5.0), r#" { "unit" : "%" } "#);
        assert_eq!(fail(&m, 7.0), "errors 7.00% > 5%");
        let m = metric("error-rate", None, Some(5.0), r#"{"unit": ""}"#);
        assert_eq!(fail(&m, 7.0), "error rate 7.00 > 5");
        let m = metric("throughput", Some(100.0), None, r#"{"unit": "rps"}"#);
        assert_eq!(fail(&m, 7.0), "throughput 7.00 rps < 100 rps");
        // Other keys are ignored.
        let m = metric("error-rate", None, Some(5.0), r#"{"query": "x"}"#);
        assert_eq!(fail(&m, 7.0), "error rate 7.00% > 5%");
    }

    #[test]
    fn bad_config_is_an_error() {
        let m = metric("error-rate", None, Some(1.0), "{unit: ms}");
        let e = evaluate(&m, 2.0).unwrap_err();
        assert!(
            e.starts_with("metric error-rate: invalid plugin config: invalid JSON"),
            "{e}"
        );
        let m = metric("error-rate", None, Some(1.0), r#"{"unit": 1}"#);
        let e = evaluate(&m, 2.0).unwrap_err();
        assert_eq!(
            e,
            "metric error-rate: invalid plugin config: \"unit\" must be a string, got a number"
        );
    }

    #[test]
    fn wants_no_baseline_and_no_series() {
        let m = metric("request-duration", None, Some(500.0), "");
        assert!(!Threshold::wants_baseline(&m));
        // Flagger's thresholdRange judges the instant value only.
        assert_eq!(Threshold::wants_series(&m), None);
    }

    #[test]
    fn judges_the_instant_value_whatever_the_series() {
        let m = metric("error-rate", None, Some(1.0), "");
        let samples = Samples {
            canary: 0.5,
            primary: None,
            canary_series: vec![50.0, 60.0],
            primary_series: Vec::new(),
        };
        assert_eq!(Threshold::evaluate(&m, &samples), Ok(Verdict::Pass));
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_100), "1.1µs");
        assert_eq!(go_duration(2_200_000), "2.2ms");
        assert_eq!(go_duration(3_300_000_000), "3.3s");
        assert_eq!(go_duration(4 * 60 * 1_000_000_000 + 5_000_000_000), "4m5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(-1_500_000_000), "-1.5s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
        assert_eq!(go_duration_ms(500.0), "500ms");
        assert_eq!(go_duration_ms(1000.0), "1s");
        assert_eq!(go_duration_ms(1500.0), "1.5s");
        assert_eq!(go_duration_ms(2000.0), "2s");
    }
}
