//! Whether the Gateways accepted the route Sluice wrote: every parent must
//! report `Accepted=True` and `ResolvedRefs=True` for the route's current
//! generation before the rollout takes its next step.

use gateway_api::apis::experimental::httproutes::{HttpRoute, HttpRouteStatusParents};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

/// What the route's parents say about its current generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteAcceptance {
    /// Every parent accepted it and resolved its backends.
    Accepted,
    /// A parent has not reported on this generation yet.
    Pending(String),
    /// A parent refused it, or cannot resolve its backends.
    Rejected(String),
}

/// Reads the route's status.
pub(crate) fn acceptance(route: &HttpRoute) -> RouteAcceptance {
    let namespace = route.metadata.namespace.as_deref().unwrap_or("default");
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    if parents.is_empty() {
        return RouteAcceptance::Rejected("the route has no parent Gateway".into());
    }
    let generation = route.metadata.generation;
    let reported: &[HttpRouteStatusParents] = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    for parent in parents {
        let parent_ns = parent.namespace.as_deref().unwrap_or(namespace);
        let who = format!("Gateway {parent_ns}/{}", parent.name);
        let status = reported.iter().find(|s| {
            s.parent_ref.name == parent.name
                && s.parent_ref.namespace.as_deref().unwrap_or(namespace) == parent_ns
                && s.parent_ref.section_name == parent.section_name
        });
        let Some(status) = status else {
            return RouteAcceptance::Pending(format!("{who} has not reported on the route yet"));
        };
        for kind in ["Accepted", "ResolvedRefs"] {
            match condition(&status.conditions, kind) {
                None => {
                    return RouteAcceptance::Pending(format!("{who} has not set {kind} yet"));
                }
                Some(c)
                    if c.observed_generation.is_some() && c.observed_generation != generation =>
                {
                    return RouteAcceptance::Pending(format!(
                        "{who} has not seen the route's generation {} yet",
                        generation.unwrap_or_default()
                    ));
                }
                Some(c) if c.status != "True" => {
                    return RouteAcceptance::Rejected(format!(
                        "{who} reports {kind}={} {}: {}",
                        c.status, c.reason, c.message
                    ));
                }
                Some(_) => {}
            }
        }
    }
    RouteAcceptance::Accepted
}

fn condition<'a>(conditions: &'a [Condition], kind: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(status: &str) -> HttpRoute {
        yaml_serde::from_str(&format!(
            "metadata: {{name: podinfo, namespace: test, generation: 2}}\nspec:\n  parentRefs: [{{name: gateway, namespace: istio-ingress}}]\n{status}"
        ))
        .unwrap()
    }

    fn parents(conditions: &str) -> String {
        format!(
            "status:\n  parents:\n    - parentRef: {{name: gateway, namespace: istio-ingress}}\n      controllerName: example.com/gw\n      conditions:\n{conditions}"
        )
    }

    fn cond(kind: &str, status: &str, reason: &str, generation: i64) -> String {
        format!(
            "        - {{type: {kind}, status: \"{status}\", reason: {reason}, message: m, lastTransitionTime: \"2026-01-01T00:00:00Z\", observedGeneration: {generation}}}\n"
        )
    }

    #[test]
    fn every_parent_must_accept_the_current_generation() {
        let ok = cond("Accepted", "True", "Accepted", 2)
            + &cond("ResolvedRefs", "True", "ResolvedRefs", 2);
        assert_eq!(acceptance(&route(&parents(&ok))), RouteAcceptance::Accepted);
        assert!(matches!(
            acceptance(&route("")),
            RouteAcceptance::Pending(_)
        ));
        let stale = cond("Accepted", "True", "Accepted", 1)
            + &cond("ResolvedRefs", "True", "ResolvedRefs", 1);
        assert_eq!(
            acceptance(&route(&parents(&stale))),
            RouteAcceptance::Pending(
                "Gateway istio-ingress/gateway has not seen the route's generation 2 yet".into()
            )
        );
        let refused = cond("Accepted", "False", "NotAllowedByListeners", 2)
            + &cond("ResolvedRefs", "True", "ResolvedRefs", 2);
        assert_eq!(
            acceptance(&route(&parents(&refused))),
            RouteAcceptance::Rejected(
                "Gateway istio-ingress/gateway reports Accepted=False NotAllowedByListeners: m"
                    .into()
            )
        );
        let unresolved = cond("Accepted", "True", "Accepted", 2)
            + &cond("ResolvedRefs", "False", "BackendNotFound", 2);
        assert!(matches!(
            acceptance(&route(&parents(&unresolved))),
            RouteAcceptance::Rejected(r) if r.contains("ResolvedRefs=False BackendNotFound")
        ));
        let mut orphan = route(&parents(&ok));
        orphan.spec.parent_refs = None;
        assert!(matches!(acceptance(&orphan), RouteAcceptance::Rejected(_)));
    }
}
