//! A circuit breaker per plugin digest, shared by every Canary of a host.
//!
//! One Canary's plugin fault is that Canary's failed check. When the same
//! build of a plugin (its digest) faults again and again, on more than one
//! Canary, with no successful call in between, the breaker opens: the
//! registry then hands the plugin to no one ([`super::RegistryError::CircuitOpen`]),
//! so every Canary using it counts failed checks and rolls back to the
//! primary by its threshold, which needs no plugin. After a cool-down one
//! trial call is let through: a success closes the breaker, a fault opens
//! it again. A new version of the plugin is a new digest, with a closed
//! breaker.
//!
//! Faults are counted per export (`decide`, `route`, `evaluate`, …): a
//! plugin whose `route` works but whose every `decide` faults is broken.
//! A plugin that works for most Canaries and faults for one (its config)
//! never trips it: every success of that export resets its count.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When a breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Faults in a row (no successful call between them) that open it.
    pub faults: u32,
    /// Distinct Canaries those faults must come from.
    pub canaries: usize,
    /// How long it stays open before a trial call.
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            faults: 5,
            canaries: 2,
            cool_down: Duration::from_secs(600),
        }
    }
}

/// Why a plugin is not handed out: its breaker is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// Faults in a row, and on how many Canaries, when it opened.
    pub faults: u32,
    pub canaries: usize,
    /// The last fault's reason.
    pub last_fault: String,
    /// Time left until the trial call.
    pub retry_in: Duration,
}

impl std::fmt::Display for Open {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "marked failed on every Canary after {} faults in a row on {} Canaries (last: {}); \
             tried again in {}s or as soon as a new version is registered",
            self.faults,
            self.canaries,
            self.last_fault,
            self.retry_in.as_secs()
        )
    }
}

/// Faults in a row of one export, and the Canaries they came from.
#[derive(Debug, Default)]
struct Streak {
    faults: u32,
    canaries: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct State {
    streaks: HashMap<&'static str, Streak>,
    last_fault: String,
    /// Set while open: until when, and the counts it opened with.
    open: Option<(Instant, u32, usize)>,
    /// A trial call is under way (the cool-down has passed).
    trial: bool,
}

/// The breakers of one host, by digest. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Breakers {
    policy: BreakerPolicy,
    states: Arc<Mutex<HashMap<String, State>>>,
}

impl Breakers {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            states: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err` while the breaker of `digest` is open. Once the cool-down has
    /// passed, one call is let through as a trial.
    pub fn check(&self, digest: &str) -> Result<(), Open> {
        let mut states = self.lock();
        let Some(state) = states.get_mut(digest) else {
            return Ok(());
        };
        let Some((until, faults, canaries)) = state.open else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= until && !state.trial {
            state.trial = true;
            return Ok(());
        }
        Err(Open {
            faults,
            canaries,
            last_fault: state.last_fault.clone(),
            retry_in: until.saturating_duration_since(now),
        })
    }

    /// A call of `export` of `digest` that worked: its streak ends, and
    /// an open breaker (a trial call) closes.
    pub fn record_success(&self, digest: &str, export: &'static str) {
        let mut states = self.lock();
        let Some(state) = states.get_mut(digest) else {
            return;
        };
        if state.open.is_some() {
            if state.trial {
                states.remove(digest);
            }
            return;
        }
        state.streaks.remove(export);
        if state.streaks.is_empty() {
            states.remove(digest);
        }
    }

    /// A fault of `export` of `digest` on `canary`; `Some` when this fault
    /// opens the breaker (say so once, in an event).
    pub fn record_fault(
        &self,
        digest: &str,
        export: &'static str,
        canary: &str,
        fault: &str,
    ) -> Option<Open> {
        let mut states = self.lock();
        let state = states.entry(digest.to_string()).or_default();
        let streak = state.streaks.entry(export).or_default();
        streak.faults = streak.faults.saturating_add(1);
        streak.canaries.insert(canary.to_string());
        let (faults, canaries) = (streak.faults, streak.canaries.len());
        state.last_fault = fault.chars().take(512).collect();
        let trial_failed = state.trial;
        let tripped = state.open.is_none()
            && faults >= self.policy.faults
            && canaries >= self.policy.canaries;
        if !(tripped || trial_failed) {
            return None;
        }
        let (faults, canaries) = match state.open {
            Some((_, faults, canaries)) => (faults, canaries),
            None => (faults, canaries),
        };
        state.open = Some((Instant::now() + self.policy.cool_down, faults, canaries));
        state.trial = false;
        Some(Open {
            faults,
            canaries,
            last_fault: state.last_fault.clone(),
            retry_in: self.policy.cool_down,
        })
    }

    /// Whether the breaker of `digest` is open (its cool-down not over).
    pub fn is_open(&self, digest: &str) -> bool {
        self.lock()
            .get(digest)
            .and_then(|s| s.open)
            .is_some_and(|(until, _, _)| Instant::now() < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(cool_down: Duration) -> Breakers {
        Breakers::new(BreakerPolicy {
            faults: 3,
            canaries: 2,
            cool_down,
        })
    }

    #[test]
    fn faults_in_a_row_on_several_canaries_open_it() {
        let b = breakers(Duration::from_secs(60));
        assert_eq!(b.record_fault("d", "decide", "a", "trap"), None);
        assert_eq!(b.record_fault("d", "decide", "a", "trap"), None);
        let open = b
            .record_fault("d", "decide", "b", "timeout")
            .expect("opens");
        assert_eq!((open.faults, open.canaries), (3, 2));
        assert_eq!(open.last_fault, "timeout");
        let err = b.check("d").unwrap_err();
        assert!(
            err.to_string()
                .contains("after 3 faults in a row on 2 Canaries (last: timeout)")
        );
        assert!(b.check("other").is_ok(), "another digest is not affected");
        // Already open: not reported again.
        assert_eq!(b.record_fault("d", "decide", "c", "trap"), None);
    }

    #[test]
    fn one_canarys_faults_never_open_it() {
        let b = breakers(Duration::from_secs(60));
        for _ in 0..10 {
            assert_eq!(b.record_fault("d", "decide", "a", "trap"), None);
        }
        assert!(b.check("d").is_ok());
    }

    #[test]
    fn a_success_between_faults_resets_the_count() {
        let b = breakers(Duration::from_secs(60));
        for _ in 0..10 {
            b.record_fault("d", "decide", "a", "trap");
            b.record_fault("d", "decide", "b", "trap");
            b.record_success("d", "decide");
        }
        assert!(b.check("d").is_ok());
    }

    #[test]
    fn another_exports_success_does_not_end_a_streak() {
        let b = breakers(Duration::from_secs(60));
        b.record_fault("d", "decide", "a", "invalid");
        b.record_success("d", "route");
        b.record_fault("d", "decide", "b", "invalid");
        b.record_success("d", "route");
        assert!(b.record_fault("d", "decide", "a", "invalid").is_some());
    }

    #[test]
    fn after_the_cool_down_one_trial_decides() {
        let b = breakers(Duration::ZERO);
        b.record_fault("d", "decide", "a", "trap");
        b.record_fault("d", "decide", "b", "trap");
        b.record_fault("d", "decide", "b", "trap");
        assert!(b.check("d").is_ok(), "the trial call");
        assert!(b.check("d").is_err(), "only one trial at a time");
        assert!(
            b.record_fault("d", "decide", "a", "trap").is_some(),
            "a failed trial opens it again"
        );
        assert!(b.check("d").is_ok(), "next trial");
        b.record_success("d", "decide");
        assert!(b.check("d").is_ok());
        assert!(b.check("d").is_ok(), "closed");
    }
}
