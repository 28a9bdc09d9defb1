//! An example custom strategy for Sluice: a weighted canary (Flagger's
//! `stepWeight` steps up to `maxWeight`, then promotion) that only moves
//! inside a time window, e.g. office hours, so that nobody is paged at night
//! for a rollout nobody watches.
//!
//! Settings, from the Canary's `analysis.strategyConfig` (passed as JSON):
//!
//! ```json
//! {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
//! ```
//!
//! Times are `HH:MM` in UTC; `end` may be `24:00`, and a window whose end is
//! before its start runs overnight (`22:00` to `06:00`), belonging to the
//! day it starts. `days` defaults to every day.
//!
//! Outside the window the strategy holds, saying when the window opens
//! next; the rollout resumes where it stopped. Advancing and starting the
//! promotion happen only inside; a promotion already under way finishes
//! (moving traffic back to the primary is always safe). Plugins have no
//! clock: the time is the host's, `observation.now_unix_seconds`.
//!
//! Routing is the built-in weighted strategy's: with the Canary's
//! `analysis.match`, only the matching requests are split between primary
//! and canary, and every other request stays on the primary.

use sluice_plugin_sdk::config::{Config, Value};
use sluice_plugin_sdk::progression;
use sluice_plugin_sdk::strategy::{
    Action, AnalysisSpec, Level, Observation, Phase, RolloutState, RoutePlan, Strategy,
    canary_active, log, phase_name, weighted_route,
};

pub struct TimeWindow;

impl Strategy for TimeWindow {
    fn decide(
        spec: &AnalysisSpec,
        state: &RolloutState,
        observation: &Observation,
    ) -> Result<Action, String> {
        let action = decide(spec, state, observation.now_unix_seconds)?;
        if let Action::Hold(reason) = &action {
            log(Level::Debug, &format!("time-window: {reason}"));
        }
        Ok(action)
    }

    fn route(spec: &AnalysisSpec, state: &RolloutState) -> Result<RoutePlan, String> {
        Ok(route(spec, state))
    }
}

sluice_plugin_sdk::export_strategy!(TimeWindow);

/// The routes of `state`, as the built-in weighted strategy makes them: one
/// rule splitting traffic between primary and canary at the state's weight
/// (none on the canary before the first step or at rest). With the
/// Canary's `analysis.match`, that split applies to the matching requests
/// only, and a last rule sends every other request to the primary. The
/// window does not change the routes: holding keeps the weight where it is.
pub fn route(spec: &AnalysisSpec, state: &RolloutState) -> RoutePlan {
    let weight = if canary_active(state) {
        state.canary_weight
    } else {
        0
    };
    let mut plan = weighted_route(weight);
    if !spec.matches.is_empty() {
        plan.rules[0].matches = spec.matches.clone();
        plan.rules.extend(weighted_route(0).rules);
    }
    plan
}

const STRATEGY: &str = "time-window";
const MINUTES_PER_DAY: u32 = 24 * 60;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The next step of the rollout at `now` (Unix seconds).
pub fn decide(spec: &AnalysisSpec, state: &RolloutState, now: u64) -> Result<Action, String> {
    match state.phase {
        Phase::Progressing => {
            let window = Window::parse(&spec.config)?;
            if window.contains(now) {
                progression::weighted(STRATEGY, spec, state)
            } else {
                Ok(Action::Hold(window.closed_reason(now)))
            }
        }
        // Finishing a promotion only takes traffic off the canary.
        Phase::Promoting => progression::weighted(STRATEGY, spec, state),
        other => Err(format!(
            "{STRATEGY} strategy: decide called in phase {}",
            phase_name(other)
        )),
    }
}

/// When rollouts may move: minutes of the day in UTC, on some days of the
/// week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Minutes since midnight, 0..1440.
    pub start: u32,
    /// Minutes since midnight, 1..=1440; before `start` for an overnight window.
    pub end: u32,
    /// Monday first.
    pub days: [bool; 7],
}

impl Window {
    /// Reads the settings; `start` and `end` are required.
    pub fn parse(config: &str) -> Result<Window, String> {
        let err = |e: String| format!("{STRATEGY} strategy: {e}");
        let config = Config::parse(config).map_err(err)?;
        let time = |key: &str, allow_24: bool| -> Result<u32, String> {
            let text = config.get_str(key).map_err(err)?.ok_or_else(|| {
                err(format!(
                    "needs \"start\" and \"end\" in strategyConfig, e.g. {{\"start\": \"09:00\", \"end\": \"17:00\"}} (UTC); \"{key}\" is missing"
                ))
            })?;
            parse_time(text, allow_24).map_err(|e| err(format!("\"{key}\": {e}")))
        };
        let start = time("start", false)?;
        let end = time("end", true)?;
        if start == end {
            return Err(err(format!(
                "\"start\" and \"end\" are both {}: the window is empty (for a whole day use \"00:00\" to \"24:00\")",
                format_time(start)
            )));
        }
        let days = match config.get("days") {
            None => [true; 7],
            Some(Value::Array(items)) => {
                let mut days = [false; 7];
                for item in items {
                    let Value::String(name) = item else {
                        return Err(err(format!(
                            "\"days\" must be a list of day names, got {}",
                            item.type_name()
                        )));
                    };
                    let lower = name.to_ascii_lowercase();
                    let index = DAY_NAMES.iter().position(|d| *d == lower).ok_or_else(|| {
                        err(format!(
                            "\"days\": unknown day {name:?}; use {}",
                            DAY_NAMES.join(", ")
                        ))
                    })?;
                    days[index] = true;
                }
                if !days.contains(&true) {
                    return Err(err(
                        "\"days\" is empty: the window would never open".to_string()
                    ));
                }
                days
            }
            Some(other) => {
                return Err(err(format!(
                    "\"days\" must be a list of day names, got {}",
                    other.type_name()
                )));
            }
        };
        Ok(Window { start, end, days })
    }

    /// Whether the window is open at `now` (Unix seconds, UTC).
    pub fn contains(&self, now: u64) -> bool {
        let day = weekday(now / 86_400);
        let minute = minute_of_day(now);
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            // Overnight: the evening of a listed day, or the morning after one.
            (self.days[day] && minute >= self.start)
                || (self.days[(day + 6) % 7] && minute < self.end)
        }
    }

    /// When the window opens next after `now`, in Unix seconds.
    pub fn next_opening(&self, now: u64) -> Option<u64> {
        let today = now / 86_400;
        (0..=7)
            .map(|d| today + d)
            .filter(|&day| self.days[weekday(day)])
            .map(|day| day * 86_400 + u64::from(self.start) * 60)
            .find(|&open| open > now)
    }

    /// `mon,tue,wed,thu,fri 09:00-17:00 UTC`.
    pub fn describe(&self) -> String {
        let days = if self.days.iter().all(|d| *d) {
            "every day".to_string()
        } else {
            DAY_NAMES
                .iter()
                .zip(self.days)
                .filter(|(_, on)| *on)
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{days} {}-{} UTC",
            format_time(self.start),
            format_time(self.end)
        )
    }

    /// Why the rollout holds at `now`, and until when.
    pub fn closed_reason(&self, now: u64) -> String {
        let mut reason = format!(
            "outside the time window ({}): it is {}",
            self.describe(),
            format_instant(now)
        );
        if let Some(open) = self.next_opening(now) {
            reason.push_str(&format!("; the window opens {}", format_instant(open)));
        }
        reason
    }
}

/// `HH:MM` as minutes since midnight; `24:00` only when `allow_24`.
fn parse_time(text: &str, allow_24: bool) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time of day as HH:MM (UTC), e.g. \"09:00\"");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    match (h, m) {
        (24, 0) if allow_24 => Ok(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

fn format_time(minutes: u32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Monday = 0, for a count of days since 1970-01-01 (a Thursday).
fn weekday(days_since_epoch: u64) -> usize {
    ((days_since_epoch + 3) % 7) as usize
}

fn minute_of_day(unix: u64) -> u32 {
    ((unix % 86_400) / 60) as u32
}

/// The proleptic Gregorian date of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: u64) -> (u64, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// `thu 2026-01-01 00:00 UTC`.
pub fn format_instant(unix: u64) -> String {
    let days = unix / 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {y:04}-{m:02}-{d:02} {} UTC",
        DAY_NAMES[weekday(days)],
        format_time(minute_of_day(unix))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_plugin_sdk::strategy::{Advance, HeaderMatch, HttpMatch, StringMatch};

    /// 2026-01-01T00:00:00Z, a Thursday: the simulator's default start.
    const NEW_YEAR_2026: u64 = 1_767_225_600;
    /// 2026-01-05T00:00:00Z, the Monday after.
    const MONDAY: u64 = NEW_YEAR_2026 + 4 * 86_400;

    fn at(day_offset: u64, hh: u64, mm: u64) -> u64 {
        MONDAY + day_offset * 86_400 + hh * 3_600 + mm * 60
    }

    const OFFICE: &str =
        r#"{"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}"#;

    fn spec(config: &str) -> AnalysisSpec {
        AnalysisSpec {
            interval_seconds: 60,
            threshold: 5,
            max_weight: 30,
            step_weight: Some(10),
            step_weights: Vec::new(),
            step_weight_promotion: None,
            iterations: None,
            matches: Vec::new(),
            mirror: false,
            mirror_weight: None,
            session_affinity: None,
            config: config.to_string(),
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

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(NEW_YEAR_2026 / 86_400), (2026, 1, 1));
        // 2024 is a leap year.
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(19_783), (2024, 3, 1));
        assert_eq!(format_instant(NEW_YEAR_2026), "thu 2026-01-01 00:00 UTC");
        assert_eq!(format_instant(at(0, 9, 5)), "mon 2026-01-05 09:05 UTC");
        assert_eq!(format_instant(at(6, 23, 59)), "sun 2026-01-11 23:59 UTC");
    }

    #[test]
    fn office_hours() {
        let w = Window::parse(OFFICE).unwrap();
        assert_eq!(w.describe(), "mon,tue,wed,thu,fri 09:00-17:00 UTC");
        assert!(!w.contains(at(0, 8, 59)));
        assert!(w.contains(at(0, 9, 0)));
        assert!(w.contains(at(0, 16, 59)));
        assert!(!w.contains(at(0, 17, 0)));
        assert!(w.contains(at(4, 12, 0)), "friday");
        assert!(!w.contains(at(5, 12, 0)), "saturday");
        assert!(!w.contains(at(6, 12, 0)), "sunday");
        // 2026-01-01 is a Thursday.
        assert!(w.contains(NEW_YEAR_2026 + 10 * 3_600));
    }

    #[test]
    fn next_opening() {
        let w = Window::parse(OFFICE).unwrap();
        assert_eq!(w.next_opening(at(0, 8, 0)), Some(at(0, 9, 0)));
        assert_eq!(w.next_opening(at(0, 17, 0)), Some(at(1, 9, 0)));
        // Friday evening: Monday morning.
        assert_eq!(w.next_opening(at(4, 18, 0)), Some(at(7, 9, 0)));
        assert_eq!(
            w.closed_reason(at(4, 18, 0)),
            "outside the time window (mon,tue,wed,thu,fri 09:00-17:00 UTC): it is fri 2026-01-09 18:00 UTC; the window opens mon 2026-01-12 09:00 UTC"
        );
        let sunday_only =
            Window::parse(r#"{"start": "10:00", "end": "11:00", "days": ["Sun"]}"#).unwrap();
        // Sunday 10:30 is open; just after it, a week to wait.
        assert!(sunday_only.contains(at(6, 10, 30)));
        assert_eq!(sunday_only.next_opening(at(6, 11, 0)), Some(at(13, 10, 0)));
    }

    #[test]
    fn overnight_and_whole_day_windows() {
        let w = Window::parse(r#"{"start": "22:00", "end": "06:00", "days": ["mon"]}"#).unwrap();
        assert!(!w.contains(at(0, 21, 59)));
        assert!(w.contains(at(0, 22, 0)));
        assert!(
            w.contains(at(1, 5, 59)),
            "tuesday morning belongs to monday"
        );
        assert!(!w.contains(at(1, 6, 0)));
        assert!(!w.contains(at(1, 22, 30)), "tuesday evening is not listed");
        assert!(!w.contains(at(0, 3, 0)), "monday morning belongs to sunday");

        let w =
            Window::parse(r#"{"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}"#).unwrap();
        assert_eq!(w.describe(), "sat,sun 00:00-24:00 UTC");
        assert!(w.contains(at(5, 0, 0)) && w.contains(at(6, 23, 59)));
        assert!(!w.contains(at(7, 0, 0)));
        let every = Window::parse(r#"{"start": "08:30", "end": "09:15"}"#).unwrap();
        assert_eq!(every.describe(), "every day 08:30-09:15 UTC");
        assert!(every.contains(at(5, 9, 14)));
    }

    #[test]
    fn bad_settings_are_errors() {
        for (config, says) in [
            ("", "needs \"start\" and \"end\""),
            (r#"{"start": "09:00"}"#, "\"end\" is missing"),
            (
                r#"{"start": "9:00", "end": "17:00"}"#,
                "not a time of day as HH:MM",
            ),
            (r#"{"start": "09:60", "end": "17:00"}"#, "not a time of day"),
            (r#"{"start": "24:00", "end": "17:00"}"#, "not a time of day"),
            (r#"{"start": "09:00", "end": "24:01"}"#, "not a time of day"),
            (r#"{"start": 9, "end": "17:00"}"#, "must be a string"),
            (
                r#"{"start": "09:00", "end": "09:00"}"#,
                "the window is empty",
            ),
            (
                r#"{"start": "00:00", "end": "00:00"}"#,
                "the window is empty",
            ),
            (
                r#"{"start": "09:00", "end": "17:00", "days": []}"#,
                "never open",
            ),
            (
                r#"{"start": "09:00", "end": "17:00", "days": ["monday"]}"#,
                "unknown day \"monday\"",
            ),
            (
                r#"{"start": "09:00", "end": "17:00", "days": "mon"}"#,
                "must be a list",
            ),
            (
                r#"{"start": "09:00", "end": "17:00", "days": [1]}"#,
                "must be a list of day names, got a number",
            ),
            ("{oops", "invalid JSON"),
        ] {
            let e = Window::parse(config).unwrap_err();
            assert!(e.starts_with("time-window strategy: "), "{e}");
            assert!(e.contains(says), "{config}: {e}");
        }
    }

    #[test]
    fn advances_inside_and_holds_outside() {
        let s = spec(OFFICE);
        let progressing = |w| state(Phase::Progressing, w);
        assert_eq!(
            decide(&s, &progressing(0), at(0, 10, 0)),
            Ok(Action::Advance(Advance {
                canary_weight: 10,
                iterations: 0
            }))
        );
        match decide(&s, &progressing(20), at(0, 17, 30)) {
            Ok(Action::Hold(reason)) => assert_eq!(
                reason,
                "outside the time window (mon,tue,wed,thu,fri 09:00-17:00 UTC): it is mon 2026-01-05 17:30 UTC; the window opens tue 2026-01-06 09:00 UTC"
            ),
            other => panic!("{other:?}"),
        }
        // At the maximum: promotion, but only inside.
        assert_eq!(
            decide(&s, &progressing(30), at(1, 9, 0)),
            Ok(Action::Promote)
        );
        assert!(matches!(
            decide(&s, &progressing(30), at(5, 9, 0)),
            Ok(Action::Hold(_))
        ));
    }

    #[test]
    fn a_promotion_under_way_finishes_outside_the_window() {
        let s = AnalysisSpec {
            step_weight_promotion: Some(20),
            ..spec(OFFICE)
        };
        let saturday = at(5, 3, 0);
        assert_eq!(
            decide(&s, &state(Phase::Promoting, 30), saturday),
            Ok(Action::Advance(Advance {
                canary_weight: 10,
                iterations: 0
            }))
        );
        assert_eq!(
            decide(&s, &state(Phase::Promoting, 10), saturday),
            Ok(Action::Finalise)
        );
        assert!(decide(&s, &state(Phase::Waiting, 0), saturday).is_err());
    }

    #[test]
    fn the_trait_reads_the_hosts_clock_and_routes_like_weighted() {
        let s = spec(OFFICE);
        let obs = |now| Observation {
            now_unix_seconds: now,
            phase_started_unix_seconds: now - 60,
        };
        assert!(matches!(
            TimeWindow::decide(&s, &state(Phase::Progressing, 0), &obs(NEW_YEAR_2026)),
            Ok(Action::Hold(_))
        ));
        assert!(matches!(
            TimeWindow::decide(&s, &state(Phase::Progressing, 0), &obs(at(0, 9, 0))),
            Ok(Action::Advance(_))
        ));
        assert!(
            TimeWindow::decide(&spec(""), &state(Phase::Progressing, 0), &obs(at(0, 9, 0)))
                .is_err()
        );
        let plan = TimeWindow::route(&s, &state(Phase::Progressing, 20)).unwrap();
        let weights: Vec<u32> = plan.rules[0].backends.iter().map(|b| b.weight).collect();
        assert_eq!(weights, vec![80, 20]);
    }

    #[test]
    fn with_match_only_matching_requests_reach_the_canary() {
        let insider = HttpMatch {
            path_prefix: None,
            headers: vec![HeaderMatch {
                name: "x-canary".to_string(),
                value: StringMatch::Exact("insider".to_string()),
            }],
            query_params: Vec::new(),
            method: None,
        };
        let s = AnalysisSpec {
            matches: vec![insider.clone()],
            ..spec(OFFICE)
        };
        // (matches, primary weight, canary weight) of each rule.
        let rules = |plan: RoutePlan| -> Vec<(usize, u32, u32)> {
            plan.rules
                .iter()
                .map(|r| (r.matches.len(), r.backends[0].weight, r.backends[1].weight))
                .collect()
        };
        let plan = route(&s, &state(Phase::Progressing, 20));
        assert_eq!(plan.rules[0].matches, vec![insider]);
        assert_eq!(rules(plan), vec![(1, 80, 20), (0, 100, 0)]);
        // At rest, everything on the primary.
        assert_eq!(
            rules(route(&s, &state(Phase::Succeeded, 0))),
            vec![(1, 100, 0), (0, 100, 0)]
        );
    }
}
