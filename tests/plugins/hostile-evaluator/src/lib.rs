//! A hostile evaluator plugin, written straight against `wit/plugin.wit`
//! with wit-bindgen (no SDK). What it does is chosen by the metric's
//! `config`: `sleep-in-wants-baseline`, `sleep-in-wants-series`,
//! `sleep-in-evaluate`, `loop-in-evaluate`, `empty-reason`; anything else
//! passes every sample (NaN included), so the host must keep values that
//! are not numbers from ever reaching it.

wit_bindgen::generate!({
    world: "evaluator",
    path: "../../../wit",
});

use exports::sluice::plugin::judge::Guest;
use sluice::plugin::evaluator_types::{Metric, Samples, SeriesRequest, Verdict};

struct Hostile;

fn sleep_if(metric: &Metric, export: &str) {
    if metric.config == format!("sleep-in-{export}") {
        std::thread::sleep(std::time::Duration::from_secs(10));
    }
}

impl Guest for Hostile {
    fn wants_baseline(metric: Metric) -> bool {
        sleep_if(&metric, "wants-baseline");
        false
    }

    fn wants_series(metric: Metric) -> Option<SeriesRequest> {
        sleep_if(&metric, "wants-series");
        None
    }

    fn evaluate(metric: Metric, _samples: Samples) -> Result<Verdict, String> {
        sleep_if(&metric, "evaluate");
        match metric.config.as_str() {
            "loop-in-evaluate" => loop {
                std::hint::black_box(0u64);
            },
            "empty-reason" => Ok(Verdict::Fail(String::new())),
            _ => Ok(Verdict::Pass),
        }
    }
}

export!(Hostile);
