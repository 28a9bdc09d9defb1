//! Evaluator plugins: judging one metric.
//!
//! Implement [`Evaluator`] and call
//! [`export_evaluator!`](crate::export_evaluator).

use std::marker::PhantomData;

use crate::bindings::evaluator::exports::sluice::plugin::judge;
pub use crate::bindings::evaluator::sluice::plugin::evaluator_types::{
    Metric, Samples, ThresholdRange, Verdict,
};
pub use crate::{Level, log};

/// A metric evaluator: the `judge` interface of the `evaluator` world.
pub trait Evaluator {
    /// Whether this evaluator wants the primary's value too. Defaults to no.
    fn wants_baseline(_metric: &Metric) -> bool {
        false
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
