//! The simulator's scenario file: what the world does, tick by tick.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use serde::Deserialize;

/// One scripted run. Values listed per tick start at tick 1; the last one
/// repeats.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Analysis intervals to run at most.
    pub ticks: u32,
    /// Ticks until the canary Deployment is available after a change.
    #[serde(default)]
    pub canary_ready_after: u64,
    /// Ticks until the primary Deployment is available after a change.
    #[serde(default)]
    pub primary_ready_after: u64,
    /// Replicas of the simulated target (default 2).
    #[serde(default)]
    pub replicas: Option<i32>,
    /// Initial image, `container=image` (default `<target>=<target>:1.0.0`).
    #[serde(default)]
    pub initial_image: Option<String>,
    /// ConfigMaps in the target's namespace, name -> data; the generated
    /// target reads each of them with `envFrom`.
    #[serde(default)]
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// A full target Deployment instead of the generated one.
    #[serde(default)]
    pub deployment: Option<Deployment>,
    /// Canary metric values per metric name; `null` is "no data".
    #[serde(default)]
    pub metrics: BTreeMap<String, Vec<Option<f64>>>,
    /// Primary (baseline) metric values, for evaluators that compare.
    #[serde(default)]
    pub primary_metrics: BTreeMap<String, Vec<Option<f64>>>,
    /// Canary series per metric name, for evaluators that ask for series
    /// (`wants-series`): one list of samples per tick, oldest first, as a
    /// range query over the evaluator's window would return them; the last
    /// list repeats, `[]` is a window without data. The host keeps the
    /// newest `window / step + 1` samples. A metric listed here but not in
    /// `metrics` has the newest sample of its series as its instant value,
    /// which is what an instant query at the end of the window returns.
    #[serde(default)]
    pub series: BTreeMap<String, Vec<Vec<f64>>>,
    /// Primary (baseline) series, the same way, for evaluators that compare
    /// the canary with the primary over a window.
    #[serde(default)]
    pub primary_series: BTreeMap<String, Vec<Vec<f64>>>,
    /// When the simulated clock starts (RFC 3339, UTC), default
    /// 2026-01-01T00:00:00Z; each tick adds the analysis interval. Plugins
    /// see it as `observation.now-unix-seconds`, so a strategy that depends
    /// on the time of day can be tried at any hour.
    #[serde(default)]
    pub start_time: Option<jiff::Timestamp>,
    /// Webhook outcomes per webhook name; a webhook not listed passes.
    #[serde(default)]
    pub webhooks: BTreeMap<String, Vec<HookOutcome>>,
    /// Changes to the world at given ticks.
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookOutcome {
    Pass,
    Fail,
}

/// Something that happens at the start of a tick.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    pub tick: u32,
    /// `container=image`, as `kubectl set image`.
    #[serde(default)]
    pub image: Option<String>,
    /// Environment variables to set on every container (a new revision).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Replace the data of ConfigMaps, name -> data, as `kubectl apply`
    /// would (a new revision when the target reads them).
    #[serde(default)]
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Stop the engine and start a new one: it knows only the Canary status.
    #[serde(default)]
    pub restart_engine: bool,
    /// The Gateways accept routes (true, the default) or refuse them from
    /// this tick on.
    #[serde(default)]
    pub route_accepted: Option<bool>,
}

/// Splits `container=image`.
pub fn parse_image(spec: &str) -> Result<(String, String)> {
    match spec.split_once('=') {
        Some((c, i)) if !c.trim().is_empty() && !i.trim().is_empty() => {
            Ok((c.trim().into(), i.trim().into()))
        }
        _ => bail!(
            "{spec:?} is not container=image (e.g. podinfod=ghcr.io/stefanprodan/podinfo:6.0.1)"
        ),
    }
}

impl Scenario {
    pub fn from_yaml(text: &str) -> Result<Self> {
        let de = yaml_serde::Deserializer::from_str(text);
        let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            anyhow::anyhow!("scenario: {path}: {}", e.into_inner())
        })?;
        scenario.check()?;
        Ok(scenario)
    }

    fn check(&self) -> Result<()> {
        if self.ticks == 0 {
            bail!("scenario: ticks: must be at least 1");
        }
        if let Some(i) = &self.initial_image {
            parse_image(i).context("scenario: initialImage")?;
        }
        for (i, c) in self.changes.iter().enumerate() {
            if c.tick == 0 {
                bail!("scenario: changes[{i}].tick: ticks start at 1");
            }
            if let Some(img) = &c.image {
                parse_image(img).with_context(|| format!("scenario: changes[{i}].image"))?;
            }
            if c.image.is_none()
                && c.env.is_empty()
                && c.config_maps.is_empty()
                && !c.restart_engine
                && c.route_accepted.is_none()
            {
                bail!(
                    "scenario: changes[{i}]: give image, env, configMaps, restartEngine or routeAccepted"
                );
            }
        }
        for (name, values) in self.metrics.iter().chain(&self.primary_metrics) {
            if values.is_empty() {
                bail!("scenario: metrics.{name}: give at least one value (null means no data)");
            }
        }
        for (name, values) in self.series.iter().chain(&self.primary_series) {
            if values.is_empty() {
                bail!(
                    "scenario: series.{name}: give at least one list of samples ([] means no data)"
                );
            }
            if let Some(v) = values.iter().flatten().find(|v| !v.is_finite()) {
                bail!("scenario: series.{name}: {v} is not a finite number");
            }
        }
        for (name, values) in &self.webhooks {
            if values.is_empty() {
                bail!("scenario: webhooks.{name}: give at least one of pass or fail");
            }
        }
        Ok(())
    }

    /// The value listed for `tick` (1-based), the last one repeating.
    pub fn at<T: Copy>(values: &[T], tick: u64) -> Option<T> {
        Self::at_ref(values, tick).copied()
    }

    /// [`at`](Self::at), by reference (for lists such as series).
    pub fn at_ref<T>(values: &[T], tick: u64) -> Option<&T> {
        let i = usize::try_from(tick.max(1) - 1).unwrap_or(usize::MAX);
        values.get(i.min(values.len().saturating_sub(1)))
    }

    /// The container name image changes refer to by default.
    pub fn container_name(&self, target: &str) -> String {
        self.initial_image
            .iter()
            .chain(self.changes.iter().filter_map(|c| c.image.as_ref()))
            .find_map(|s| parse_image(s).ok().map(|(c, _)| c))
            .unwrap_or_else(|| target.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_start_time() {
        let s = Scenario::from_yaml(
            "ticks: 3\nstartTime: 2026-01-05T08:52:00Z\nseries:\n  latency:\n    - [1, 2.5]\n    - []\nprimarySeries:\n  latency: [[3]]\n",
        )
        .unwrap();
        assert_eq!(
            s.start_time,
            Some("2026-01-05T08:52:00Z".parse::<jiff::Timestamp>().unwrap())
        );
        let latency = &s.series["latency"];
        assert_eq!(Scenario::at_ref(latency, 1), Some(&vec![1.0, 2.5]));
        // The last list repeats; `[]` is a window without data.
        assert_eq!(Scenario::at_ref(latency, 9), Some(&Vec::new()));
        assert_eq!(
            Scenario::at_ref(&s.primary_series["latency"], 2),
            Some(&vec![3.0])
        );
    }

    #[test]
    fn bad_series_and_start_times_name_the_field() {
        let e = Scenario::from_yaml("ticks: 3\nseries:\n  latency: []\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("series.latency: give at least one list of samples"),
            "{e}"
        );
        let e =
            Scenario::from_yaml("ticks: 3\nprimarySeries:\n  latency: [[1, .nan]]\n").unwrap_err();
        assert!(e.to_string().contains("NaN is not a finite number"), "{e}");
        let e = Scenario::from_yaml("ticks: 3\nseries:\n  latency: [1, 2]\n").unwrap_err();
        assert!(e.to_string().starts_with("scenario: series.latency"), "{e}");
        let e = Scenario::from_yaml("ticks: 3\nstartTime: monday\n").unwrap_err();
        assert!(e.to_string().starts_with("scenario: startTime"), "{e}");
    }
}
