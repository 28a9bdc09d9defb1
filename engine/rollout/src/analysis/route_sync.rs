//! Which routes this engine last found exactly as a resting Canary renders
//! them, so that an idle tick does not ask the strategy for its plan,
//! render the HTTPRoute and compare it again: that is a fifth of an idle
//! tick's CPU.
//!
//! Exact, with no resync period: the route of a Canary is a function of
//! the Canary (its spec, and its status through the rollout state and the
//! session-affinity cookies the strategy is given), of the strategy plugin
//! (its digest; a plugin has no clock or randomness) and of nothing else.
//! A tick skips the render only when the Canary object (its
//! `resourceVersion`), the strategy's digest, the state and cookies this
//! tick gives the plugin, and the stored route (its `resourceVersion`)
//! are all as they were when a tick last rendered the route and found it
//! already stored. Any write to the route (this engine's, a hand edit, a
//! Gateway controller's status) gives it a new `resourceVersion`, so the
//! next tick renders and compares again. Only Canaries at rest are
//! skipped: during a rollout every route call is made (and journalled).

use std::collections::HashMap;
use std::sync::Mutex;

use sluice_api::{Canary, CanaryStatus};
use sluice_host::bindings::strategy as wit;

use crate::router::HttpRoute;

/// What one Canary's route was last rendered from and found stored as.
#[derive(Debug, Clone, PartialEq)]
struct Inputs {
    canary_version: String,
    strategy_digest: String,
    state: wit::RolloutState,
    cookies: (Option<String>, Option<String>),
    route_version: String,
}

/// The same inputs as a tick sees them, borrowed.
pub(crate) struct Seen<'a> {
    uid: &'a str,
    canary_version: &'a str,
    strategy_digest: &'a str,
    state: wit::RolloutState,
    cookies: (Option<&'a str>, Option<&'a str>),
    route_version: &'a str,
}

impl<'a> Seen<'a> {
    /// The inputs of `canary`'s route in a tick whose status is `status`,
    /// with `route` stored; `None` when the Canary or the route has no
    /// uid or `resourceVersion` (never stored), or no route is stored.
    pub(crate) fn of(
        canary: &'a Canary,
        status: &'a CanaryStatus,
        state: wit::RolloutState,
        strategy_digest: &'a str,
        route: Option<&'a HttpRoute>,
    ) -> Option<Self> {
        Some(Seen {
            uid: canary.metadata.uid.as_deref()?,
            canary_version: canary.metadata.resource_version.as_deref()?,
            strategy_digest,
            state,
            cookies: (
                status.session_affinity_cookie.as_deref(),
                status.previous_session_affinity_cookie.as_deref(),
            ),
            route_version: route?.metadata.resource_version.as_deref()?,
        })
    }

    fn owned(&self) -> Inputs {
        Inputs {
            canary_version: self.canary_version.to_string(),
            strategy_digest: self.strategy_digest.to_string(),
            state: self.state,
            cookies: (
                self.cookies.0.map(str::to_string),
                self.cookies.1.map(str::to_string),
            ),
            route_version: self.route_version.to_string(),
        }
    }
}

impl Inputs {
    /// Whether `seen` gives these inputs (no allocation).
    fn matches(&self, seen: &Seen<'_>) -> bool {
        self.route_version == seen.route_version
            && self.canary_version == seen.canary_version
            && self.state == seen.state
            && self.strategy_digest == seen.strategy_digest
            && self.cookies.0.as_deref() == seen.cookies.0
            && self.cookies.1.as_deref() == seen.cookies.1
    }
}

/// The inputs each Canary's route (by the Canary's uid) was last found
/// stored for.
#[derive(Default)]
pub(crate) struct ConfirmedRoutes {
    confirmed: Mutex<HashMap<String, Inputs>>,
}

impl ConfirmedRoutes {
    /// Whether the stored route was found to be what `seen` renders.
    pub(crate) fn current(&self, seen: &Seen<'_>) -> bool {
        let Ok(confirmed) = self.confirmed.lock() else {
            return false;
        };
        confirmed
            .get(seen.uid)
            .is_some_and(|inputs| inputs.matches(seen))
    }

    /// Records that the stored route is what `seen` renders.
    pub(crate) fn record(&self, seen: &Seen<'_>) {
        if let Ok(mut confirmed) = self.confirmed.lock() {
            confirmed.insert(seen.uid.to_string(), seen.owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(version: &str) -> Canary {
        let mut c: Canary = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                "service": {"port": 9898},
                "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10}
            }
        }))
        .expect("a Canary");
        c.metadata.resource_version = Some(version.into());
        c
    }

    fn route(version: Option<&str>) -> HttpRoute {
        let mut r: HttpRoute = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {}
        }))
        .expect("a route");
        r.metadata.resource_version = version.map(str::to_string);
        r
    }

    const STATE: wit::RolloutState = wit::RolloutState {
        phase: wit::Phase::Succeeded,
        canary_weight: 0,
        iterations: 0,
        failed_checks: 0,
    };

    #[test]
    fn only_the_same_canary_plugin_state_cookies_and_stored_route_are_current() {
        let routes = ConfirmedRoutes::default();
        let status = CanaryStatus::default();
        let (c1, r1) = (canary("1"), route(Some("7")));
        let seen = Seen::of(&c1, &status, STATE, "d1", Some(&r1)).expect("inputs");
        assert!(!routes.current(&seen), "nothing recorded yet");
        routes.record(&seen);
        assert!(routes.current(&seen));

        let c2 = canary("2");
        let r2 = route(Some("8"));
        let cookie = CanaryStatus {
            session_affinity_cookie: Some("c=1".into()),
            ..CanaryStatus::default()
        };
        let progressing = wit::RolloutState {
            phase: wit::Phase::Progressing,
            ..STATE
        };
        let changed = [
            Seen::of(&c2, &status, STATE, "d1", Some(&r1)),
            Seen::of(&c1, &status, STATE, "d2", Some(&r1)),
            Seen::of(&c1, &status, progressing, "d1", Some(&r1)),
            Seen::of(&c1, &cookie, STATE, "d1", Some(&r1)),
            Seen::of(&c1, &status, STATE, "d1", Some(&r2)),
        ];
        for seen in changed {
            assert!(!routes.current(&seen.expect("inputs")));
        }
    }

    #[test]
    fn a_route_or_canary_never_stored_has_no_inputs() {
        let status = CanaryStatus::default();
        let c = canary("1");
        assert!(Seen::of(&c, &status, STATE, "d", None).is_none());
        assert!(Seen::of(&c, &status, STATE, "d", Some(&route(None))).is_none());
        let mut unversioned = canary("1");
        unversioned.metadata.resource_version = None;
        assert!(Seen::of(&unversioned, &status, STATE, "d", Some(&route(Some("1")))).is_none());
    }
}
