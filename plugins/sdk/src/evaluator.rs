//! Evaluator plugins: judging one metric.
//!
//! Implement [`Evaluator`] and call
//! [`export_evaluator!`](crate::export_evaluator).

use std::marker::PhantomData;

use crate::bindings::evaluator::exports::sluice::plugin::judge;
pub use crate::bindings::evaluator::sluice::plugin::evaluator_types::{
    Metric, Samples, SeriesRequest, ThresholdRange, Verdict,
};
pub use crate::{Level, log};

/// A metric evaluator: the `judge` interface of the `evaluator` world.
pub trait Evaluator {
    /// Whether this evaluator wants the primary's value too. Defaults to no.
    fn wants_baseline(_metric: &Metric) -> bool {
        false
    }

    /// Whether this evaluator wants series of samples over a window
    /// (`samples.canary_series`, and `primary_series` when
    /// [`wants_baseline`](Evaluator::wants_baseline) says yes) on top of the
    /// instant values. Defaults to none: instant values only, so evaluators
    /// written before series existed keep compiling and behaving the same.
    fn wants_series(_metric: &Metric) -> Option<SeriesRequest> {
        None
    }

    /// Judges the samples of one metric.
    fn evaluate(metric: &Metric, samples: &Samples) -> Result<Verdict, String>;
}

/// Adapts an [`Evaluator`] to the generated `Guest` trait. Used by
/// [`export_evaluator!`](crate::export_evaluator); not meant to be named.
#[doc(hidden)]
pub struct __Adapter<T>(PhantomData<T>);

impl<T: Evaluator> judge::Guest for __Adapter<T> {
    fn wants_baseline(metric: Metric) -> bool {
        T::wants_baseline(&metric)
    }

    fn wants_series(metric: Metric) -> Option<SeriesRequest> {
        T::wants_series(&metric)
    }

    fn evaluate(metric: Metric, samples: Samples) -> Result<Verdict, String> {
        T::evaluate(&metric, &samples)
    }
}

/// Exports a type implementing [`Evaluator`] as the component's `judge`
/// interface. Call it once, at the top level of a `cdylib` crate.
#[macro_export]
macro_rules! export_evaluator {
    ($ty:ty) => {
        #[doc(hidden)]
        type __SluiceEvaluatorExport = $crate::evaluator::__Adapter<$ty>;
        $crate::bindings::evaluator::__export_evaluator_world!(
            __SluiceEvaluatorExport with_types_in $crate::bindings::evaluator
        );
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An evaluator that implements only `evaluate`.
    struct Minimal;

    impl Evaluator for Minimal {
        fn evaluate(_: &Metric, samples: &Samples) -> Result<Verdict, String> {
            Ok(if samples.canary_series.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Fail("unexpected series".into())
            })
        }
    }

    /// One that asks for a baseline series.
    struct Statistical;

    impl Evaluator for Statistical {
        fn wants_baseline(_: &Metric) -> bool {
            true
        }

        fn wants_series(metric: &Metric) -> Option<SeriesRequest> {
            (metric.name == "latency").then_some(SeriesRequest {
                window_seconds: 600,
                step_seconds: 30,
            })
        }

        fn evaluate(_: &Metric, samples: &Samples) -> Result<Verdict, String> {
            Ok(Verdict::Inconclusive(format!(
                "{} canary and {} primary samples",
                samples.canary_series.len(),
                samples.primary_series.len()
            )))
        }
    }

    fn metric(name: &str) -> Metric {
        Metric {
            name: name.into(),
            threshold_range: ThresholdRange {
                min: None,
                max: None,
            },
            config: String::new(),
        }
    }

    fn samples(canary_series: Vec<f64>, primary_series: Vec<f64>) -> Samples {
        Samples {
            canary: 1.0,
            primary: Some(1.0),
            canary_series,
            primary_series,
        }
    }

    #[test]
    fn defaults_ask_for_instant_values_only() {
        type A = __Adapter<Minimal>;
        assert!(!<A as judge::Guest>::wants_baseline(metric("x")));
        assert_eq!(<A as judge::Guest>::wants_series(metric("latency")), None);
        assert_eq!(
            <A as judge::Guest>::evaluate(metric("x"), samples(Vec::new(), Vec::new())),
            Ok(Verdict::Pass)
        );
    }

    #[test]
    fn the_adapter_forwards_series_requests_and_samples() {
        type A = __Adapter<Statistical>;
        assert!(<A as judge::Guest>::wants_baseline(metric("x")));
        assert_eq!(
            <A as judge::Guest>::wants_series(metric("latency")),
            Some(SeriesRequest {
                window_seconds: 600,
                step_seconds: 30
            })
        );
        assert_eq!(<A as judge::Guest>::wants_series(metric("errors")), None);
        assert_eq!(
            <A as judge::Guest>::evaluate(
                metric("latency"),
                samples(vec![1.0, 2.0, 3.0], vec![4.0, 5.0])
            ),
            Ok(Verdict::Inconclusive(
                "3 canary and 2 primary samples".into()
            ))
        );
    }
}
