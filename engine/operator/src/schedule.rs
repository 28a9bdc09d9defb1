//! Paces the analysis: one tick per Canary per `analysis.interval`, however
//! often the watches wake the reconciler (its own status writes, Deployment
//! and ConfigMap changes). Kept in memory: after a restart each Canary ticks
//! once straight away, which is safe because the rollout state is in its
//! status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(crate) struct Schedule {
    last: Mutex<HashMap<String, Instant>>,
}

impl Schedule {
    /// `None` when a tick of `key` is due at `now`, else how long to wait.
    pub(crate) fn wait(&self, key: &str, interval: Duration, now: Instant) -> Option<Duration> {
        let last = self.last.lock().ok()?.get(key).copied()?;
        let next = last + interval;
        (next > now).then(|| next - now)
    }

    /// Notes that `key` ticked at `now`.
    pub(crate) fn ran(&self, key: &str, now: Instant) {
        if let Ok(mut last) = self.last.lock() {
            last.insert(key.to_string(), now);
        }
    }

    pub(crate) fn forget(&self, key: &str) {
        if let Ok(mut last) = self.last.lock() {
            last.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tick_per_interval() {
        let s = Schedule::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        assert_eq!(
            s.wait("test/podinfo", minute, t0),
            None,
            "first tick at once"
        );
        s.ran("test/podinfo", t0);
        assert_eq!(
            s.wait("test/podinfo", minute, t0 + Duration::from_secs(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(s.wait("test/podinfo", minute, t0 + minute), None);
        assert_eq!(s.wait("test/other", minute, t0), None, "per Canary");
        s.forget("test/podinfo");
        assert_eq!(s.wait("test/podinfo", minute, t0), None);
    }
}
