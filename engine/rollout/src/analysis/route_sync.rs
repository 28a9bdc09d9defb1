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
//! stored, or wrote it. A tick records the inputs after its writes, with
//! the `resourceVersion`s the cluster gave its status and route writes, so
//! the tick after a write skips too. Any other write to the route (a hand
//! edit, a Gateway controller's status) gives it a new `resourceVersion`,
//! so the next tick renders and compares again. Only Canaries at rest are
//! skipped: during a rollout every route call is made (and journalled).
//! A tick at rest reads the route's `resourceVersion` alone (a
//! metadata-only read) and reads the route whole only when it is not
//! current.

use sluice_api::{Canary, CanaryStatus};
use sluice_host::bindings::strategy as wit;

use super::per_canary::PerCanary;

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
    /// with a route of `route_version` stored; `None` when the Canary has
    /// no uid or `resourceVersion` (never stored), or no route is stored.
    pub(crate) fn of(
        canary: &'a Canary,
        status: &'a CanaryStatus,
        state: wit::RolloutState,
        strategy_digest: &'a str,
        route_version: Option<&'a str>,
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
            route_version: route_version?,
        })
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

/// What a tick at rest rendered its route from (or found it current for),
/// kept until its writes are done.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    state: wit::RolloutState,
    strategy_digest: String,
    /// The stored route's `resourceVersion` when the tick read it.
    route_version: Option<String>,
}

impl Rendered {
    pub(crate) fn new(
        state: wit::RolloutState,
        strategy_digest: &str,
        route_version: Option<&str>,
    ) -> Self {
        Rendered {
            state,
            strategy_digest: strategy_digest.to_string(),
            route_version: route_version.map(str::to_string),
        }
    }
}

/// The `resourceVersion`s a tick's writes gave: `None` when it did not
/// write that object, `Some(version)` when it did.
pub(crate) struct Written {
    pub(crate) status: Option<Option<String>>,
    pub(crate) route: Option<Option<String>>,
}

/// The inputs each Canary's route (by the Canary's uid) was last found
/// stored for.
#[derive(Default)]
pub(crate) struct ConfirmedRoutes {
    confirmed: PerCanary<Inputs>,
}

impl ConfirmedRoutes {
    /// Whether the stored route was found to be what `seen` renders.
    pub(crate) fn current(&self, seen: &Seen<'_>) -> bool {
        self.confirmed
            .get(seen.uid, |inputs| inputs.matches(seen))
            .unwrap_or(false)
    }

    /// Forgets `canary` (deleted).
    pub(crate) fn forget(&self, canary: &Canary) {
        self.confirmed.forget(canary);
    }

    /// Records, once a tick's writes are done, that the stored route is
    /// what `rendered` (with the tick's final `status`) renders: the
    /// versions are those the writes gave, else those the tick read.
    pub(crate) fn record(
        &self,
        canary: &Canary,
        status: &CanaryStatus,
        rendered: &Rendered,
        written: Written,
    ) {
        let canary_version = match &written.status {
            Some(version) => version.as_deref(),
            None => canary.metadata.resource_version.as_deref(),
        };
        let route_version = match &written.route {
            Some(version) => version.as_deref(),
            None => rendered.route_version.as_deref(),
        };
        let (Some(uid), Some(canary_version), Some(route_version)) = (
            canary.metadata.uid.as_deref(),
            canary_version,
            route_version,
        ) else {
            return;
        };
        let seen = Seen {
            uid,
            canary_version,
            strategy_digest: &rendered.strategy_digest,
            state: rendered.state,
            cookies: (
                status.session_affinity_cookie.as_deref(),
                status.previous_session_affinity_cookie.as_deref(),
            ),
            route_version,
        };
        // At rest nothing changes from tick to tick: no new copy then.
        if self.current(&seen) {
            return;
        }
        let inputs = Inputs {
            canary_version: canary_version.to_string(),
            strategy_digest: rendered.strategy_digest.clone(),
            state: rendered.state,
            cookies: (
                seen.cookies.0.map(str::to_string),
                seen.cookies.1.map(str::to_string),
            ),
            route_version: route_version.to_string(),
        };
        self.confirmed.insert(uid, inputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::HttpRoute;

    fn canary(version: &str) -> Canary {
        let mut c = crate::analysis::fixtures::canary();
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

    fn version(route: &HttpRoute) -> Option<&str> {
        route.metadata.resource_version.as_deref()
    }

    const STATE: wit::RolloutState = wit::RolloutState {
        phase: wit::Phase::Succeeded,
        canary_weight: 0,
        iterations: 0,
        failed_checks: 0,
    };

    /// Records `canary` at rest with `route` found stored (no write).
    fn found(routes: &ConfirmedRoutes, canary: &Canary, route: &HttpRoute) {
        let rendered = Rendered::new(STATE, "d1", version(route));
        let written = Written {
            status: None,
            route: None,
        };
        routes.record(canary, &CanaryStatus::default(), &rendered, written);
    }

    #[test]
    fn only_the_same_canary_plugin_state_cookies_and_stored_route_are_current() {
        let routes = ConfirmedRoutes::default();
        let status = CanaryStatus::default();
        let (c1, r1) = (canary("1"), route(Some("7")));
        let seen = Seen::of(&c1, &status, STATE, "d1", version(&r1)).expect("inputs");
        assert!(!routes.current(&seen), "nothing recorded yet");
        found(&routes, &c1, &r1);
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
            Seen::of(&c2, &status, STATE, "d1", version(&r1)),
            Seen::of(&c1, &status, STATE, "d2", version(&r1)),
            Seen::of(&c1, &status, progressing, "d1", version(&r1)),
            Seen::of(&c1, &cookie, STATE, "d1", version(&r1)),
            Seen::of(&c1, &status, STATE, "d1", version(&r2)),
        ];
        for seen in changed {
            assert!(!routes.current(&seen.expect("inputs")));
        }
        routes.forget(&c1);
        assert!(!routes.current(&seen), "a deleted Canary is forgotten");
    }

    #[test]
    fn the_versions_a_tick_s_writes_gave_are_recorded() {
        let routes = ConfirmedRoutes::default();
        let status = CanaryStatus::default();
        let (c1, r1) = (canary("1"), route(Some("7")));
        // The tick wrote its status (version 2) and its route (version 9).
        let rendered = Rendered::new(STATE, "d1", version(&r1));
        let written = Written {
            status: Some(Some("2".into())),
            route: Some(Some("9".into())),
        };
        routes.record(&c1, &status, &rendered, written);
        let (c2, r9) = (canary("2"), route(Some("9")));
        let next = Seen::of(&c2, &status, STATE, "d1", version(&r9)).expect("inputs");
        assert!(routes.current(&next));
        let before = Seen::of(&c1, &status, STATE, "d1", version(&r1)).expect("inputs");
        assert!(!routes.current(&before));
        // A write that gave no version records nothing.
        let routes = ConfirmedRoutes::default();
        let written = Written {
            status: None,
            route: Some(None),
        };
        routes.record(&c1, &status, &rendered, written);
        assert!(!routes.current(&before));
    }

    #[test]
    fn a_route_or_canary_never_stored_has_no_inputs() {
        let status = CanaryStatus::default();
        let c = canary("1");
        assert!(Seen::of(&c, &status, STATE, "d", None).is_none());
        assert!(Seen::of(&c, &status, STATE, "d", version(&route(None))).is_none());
        let mut unversioned = canary("1");
        unversioned.metadata.resource_version = None;
        assert!(Seen::of(&unversioned, &status, STATE, "d", Some("1")).is_none());
    }
}
