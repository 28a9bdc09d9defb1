//! The decision journal: every plugin call of a rollout, with its inputs
//! and its answer (or fault), in a bounded ring shared by every Canary of a
//! host. A plugin has no clock, no randomness and no I/O, so the same
//! digest given the same inputs answers the same: a journal can be
//! replayed exactly, and a candidate plugin replayed on it shows where and
//! why it would have decided otherwise (`sluice replay`).
//!
//! The journal is off (capacity 0) unless the host is built with one; it
//! then keeps the newest `capacity` calls. Calls are recorded while a
//! rollout runs (the analysis, the promotion), not at rest.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::bindings::evaluator::{Metric, Samples, SeriesRequest, Verdict};
use crate::bindings::strategy::{Action, AnalysisSpec, Observation, RolloutState, RoutePlan};

/// One plugin call: what it was given and what it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "export", rename_all = "kebab-case")]
pub enum Call {
    Decide {
        spec: AnalysisSpec,
        state: RolloutState,
        observation: Observation,
        answer: Answer<Action>,
    },
    Route {
        spec: AnalysisSpec,
        state: RolloutState,
        answer: Answer<RoutePlan>,
    },
    Requirements {
        metric: Metric,
        answer: Answer<RecordedRequirements>,
    },
    Evaluate {
        metric: Metric,
        samples: Samples,
        answer: Answer<Verdict>,
    },
}

impl Call {
    /// The export called: "decide", "route", "requirements", "evaluate".
    pub fn export(&self) -> &'static str {
        match self {
            Call::Decide { .. } => "decide",
            Call::Route { .. } => "route",
            Call::Requirements { .. } => "requirements",
            Call::Evaluate { .. } => "evaluate",
        }
    }

    /// Whether a strategy (else an evaluator) answered it.
    pub fn is_strategy(&self) -> bool {
        matches!(self, Call::Decide { .. } | Call::Route { .. })
    }
}

/// An answer as the host took it: the plugin's value once checked, or the
/// fault (trap, budget, invalid answer) with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer<T> {
    Ok(T),
    Fault(String),
}

impl<T: Clone, E: std::fmt::Display> From<&Result<T, E>> for Answer<T> {
    fn from(r: &Result<T, E>) -> Self {
        match r {
            Ok(v) => Answer::Ok(v.clone()),
            Err(e) => Answer::Fault(e.to_string()),
        }
    }
}

/// [`crate::evaluator::Requirements`], as journalled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequirements {
    pub baseline: bool,
    pub series: Option<SeriesRequest>,
}

impl From<crate::evaluator::Requirements> for RecordedRequirements {
    fn from(r: crate::evaluator::Requirements) -> Self {
        Self {
            baseline: r.baseline,
            series: r.series,
        }
    }
}

/// A journalled call, with where and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its place in the journal (increasing).
    pub seq: u64,
    /// The tick's time (RFC 3339).
    pub at: String,
    /// "namespace/name" of the Canary.
    pub canary: String,
    /// The plugin's name and build.
    pub plugin: String,
    pub digest: String,
    #[serde(flatten)]
    pub call: Call,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    entries: VecDeque<Entry>,
}

/// The journal of a host. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Journal {
    capacity: usize,
    ring: Arc<Mutex<Ring>>,
}

impl Journal {
    /// A journal keeping the newest `capacity` calls (0: off).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ring: Arc::default(),
        }
    }

    /// Whether calls are recorded at all: callers skip building an entry
    /// when not.
    pub fn is_on(&self) -> bool {
        self.capacity > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a call; the oldest one goes when the journal is full.
    pub fn record(&self, at: String, canary: String, plugin: &str, digest: &str, call: Call) {
        if !self.is_on() {
            return;
        }
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.entries.len() == self.capacity {
            ring.entries.pop_front();
        }
        ring.entries.push_back(Entry {
            seq,
            at,
            canary,
            plugin: plugin.to_string(),
            digest: digest.to_string(),
            call,
        });
    }

    /// The recorded calls, oldest first; only `canary`'s when given.
    pub fn entries(&self, canary: Option<&str>) -> Vec<Entry> {
        self.lock()
            .entries
            .iter()
            .filter(|e| canary.is_none_or(|c| e.canary == c))
            .cloned()
            .collect()
    }

    /// The entries as JSON lines, the file format of `sluice replay`.
    pub fn to_json_lines(entries: &[Entry]) -> Result<String, serde_json::Error> {
        let mut out = String::new();
        for e in entries {
            out.push_str(&serde_json::to_string(e)?);
            out.push('\n');
        }
        Ok(out)
    }

    /// Entries from JSON lines; the error names the line.
    pub fn from_json_lines(text: &str) -> Result<Vec<Entry>, JournalError> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                let line = |source| JournalError::Line {
                    line: i + 1,
                    source,
                };
                let mut value: serde_json::Value = serde_json::from_str(l).map_err(line)?;
                rules_have_filters(&mut value);
                serde_json::from_value(value).map_err(line)
            })
            .collect()
    }
}

/// Route rules recorded before contract 0.2 have no `filters`: they had
/// none, so a journal written then reads as it was.
fn rules_have_filters(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let is_rule = map.contains_key("backends") && map.contains_key("matches");
            if is_rule && !map.contains_key("filters") {
                map.insert("filters".into(), serde_json::Value::Array(Vec::new()));
            }
            map.values_mut().for_each(rules_have_filters);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rules_have_filters),
        _ => {}
    }
}

/// A journal file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "line {line} is not a journal entry (one JSON object per line, as `sluice simulate --journal` writes)"
    )]
    Line {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_route_recorded_before_0_2_reads_with_no_filters() {
        let old = r#"{"seq":0,"at":"2026-01-01T00:03:00Z","canary":"test/podinfo","plugin":"weighted","digest":"b01f","export":"route","spec":{"interval_seconds":60,"threshold":5,"max_weight":50,"step_weight":10,"step_weights":[],"step_weight_promotion":null,"iterations":null,"matches":[],"mirror":false,"mirror_weight":null,"session_affinity":null,"config":""},"state":{"phase":"Progressing","canary_weight":0,"iterations":0,"failed_checks":0},"answer":{"ok":{"rules":[{"matches":[],"backends":[{"backend":"Primary","weight":100,"set_cookie":null},{"backend":"Canary","weight":0,"set_cookie":null}],"mirror":null,"set_cookie":null}]}}}"#;
        let entries = Journal::from_json_lines(old).unwrap();
        let Call::Route {
            answer: Answer::Ok(plan),
            ..
        } = &entries[0].call
        else {
            panic!("{:?}", entries[0].call);
        };
        assert!(plan.rules[0].filters.is_empty());
    }

    use super::*;

    fn verdict(pass: bool) -> Call {
        Call::Evaluate {
            metric: Metric {
                name: "error-rate".into(),
                threshold_range: crate::bindings::evaluator::ThresholdRange {
                    min: None,
                    max: Some(1.0),
                },
                config: String::new(),
            },
            samples: Samples {
                canary: 0.5,
                primary: None,
                canary_series: vec![],
                primary_series: vec![],
            },
            answer: if pass {
                Answer::Ok(Verdict::Pass)
            } else {
                Answer::Fault("trap".into())
            },
        }
    }

    #[test]
    fn off_by_default_and_bounded_when_on() {
        let off = Journal::default();
        off.record("t".into(), "a/b".into(), "p", "d", verdict(true));
        assert!(off.entries(None).is_empty());

        let j = Journal::new(2);
        for canary in ["x/a", "x/b", "x/a"] {
            j.record("t".into(), canary.into(), "p", "d", verdict(true));
        }
        let all = j.entries(None);
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(j.entries(Some("x/a")).len(), 1);
    }

    #[test]
    fn entries_round_trip_through_json_lines() {
        let j = Journal::new(10);
        j.record("t".into(), "x/a".into(), "p", "d", verdict(true));
        j.record("t".into(), "x/a".into(), "p", "d", verdict(false));
        let text = Journal::to_json_lines(&j.entries(None)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"export\":\"evaluate\""), "{text}");
        assert_eq!(Journal::from_json_lines(&text).unwrap(), j.entries(None));
        let err = Journal::from_json_lines("{}\n").unwrap_err();
        assert!(err.to_string().starts_with("line 1 is not a journal entry"));
    }
}
