//! Renders a strategy's abstract route plan into the Gateway API HTTPRoute
//! Sluice owns: parent refs, hosts, backends on the service port, and the
//! Canary's route customisation (headers, rewrite, CORS, timeouts) on every
//! rule.

use std::collections::BTreeMap;

use gateway_api::apis::experimental::httproutes::*;
/// HTTPRoute `gateway.networking.k8s.io/v1` as the Gateway API's
/// experimental channel types it: a superset of the standard channel's. A
/// route carries an experimental field (`retry`) only when the Canary asks
/// for it, so every other route is a standard-channel object.
pub use gateway_api::apis::experimental::httproutes::{HttpRoute, HttpRouteRules};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::analysis::workload::{apex_name, canary_service_name, owner_reference, primary_name};
use sluice_api::{Canary, HttpMatch as SpecMatch, StringMatch as SpecStringMatch};
use sluice_core::gateway::{PATH_PSEUDO_HEADER, retry_codes};
use sluice_host::bindings::strategy::{
    Backend, HeaderMatch, HttpMatch, QueryParamMatch, RoutePlan, RouteRule, StringMatch,
    WeightedBackend,
};

mod filters;
mod matches;
mod plugin_filters;

/// The route plan that keeps every request on the primary. The host uses it
/// whenever it cannot trust a plugin's plan.
pub fn safe_plan() -> RoutePlan {
    sluice_host::primary_only()
}

/// Converts Flagger's Istio-style matches to the plan's matches.
pub(crate) fn plan_matches(matches: &[SpecMatch]) -> Vec<HttpMatch> {
    matches
        .iter()
        .map(|m| {
            let uri = m.uri.as_ref();
            let mut headers: Vec<HeaderMatch> = m
                .headers
                .iter()
                .map(|(name, v)| HeaderMatch {
                    name: name.clone(),
                    value: string_match(v),
                })
                .collect();
            // A path condition other than a prefix travels as a condition
            // on the `:path` pseudo-header (contract 0.1 has only
            // `path-prefix`); the host renders it as a path match.
            if let Some(u) = uri.filter(|u| u.prefix.is_none()) {
                headers.insert(
                    0,
                    HeaderMatch {
                        name: PATH_PSEUDO_HEADER.into(),
                        value: string_match(u),
                    },
                );
            }
            HttpMatch {
                path_prefix: uri.and_then(|u| u.prefix.clone()),
                headers,
                query_params: m
                    .query_params
                    .iter()
                    .map(|(name, v)| QueryParamMatch {
                        name: name.clone(),
                        value: string_match(v),
                    })
                    .collect(),
                method: m.method.as_ref().and_then(|v| v.exact.clone()),
            }
        })
        .collect()
}

/// A Flagger string condition as the plan's: a suffix becomes a regex.
fn string_match(m: &SpecStringMatch) -> StringMatch {
    if let Some(v) = &m.exact {
        StringMatch::Exact(v.clone())
    } else if let Some(v) = &m.prefix {
        StringMatch::Prefix(v.clone())
    } else if let Some(v) = &m.suffix {
        StringMatch::Regex(format!(".*{}$", regex::escape(v)))
    } else {
        StringMatch::Regex(m.regex.clone().unwrap_or_default())
    }
}

/// Renders the HTTPRoute for `plan`.
pub fn render(canary: &Canary, plan: &RoutePlan) -> HttpRoute {
    let svc = &canary.spec.service;
    let apex = apex_name(canary);
    let route = RouteParts::new(canary, &apex);
    let rules = plan.rules.iter().map(|rule| route.rule(rule)).collect();
    HttpRoute {
        metadata: route_metadata(canary, apex),
        spec: HttpRouteSpec {
            use_default_gateways: None,
            hostnames: non_empty(svc.hosts.clone()),
            parent_refs: parent_refs(canary),
            rules: Some(rules),
        },
        status: None,
    }
}

/// What the rules of one route share: the Canary's own matches, filters,
/// timeouts and retry policy, and the names of its backends.
struct RouteParts<'a> {
    canary: &'a Canary,
    apex: &'a str,
    base_matches: Vec<HttpMatch>,
    filters: Vec<HttpRouteRulesFilters>,
    timeouts: Option<HttpRouteRulesTimeouts>,
    retry: Option<HttpRouteRulesRetry>,
}

impl<'a> RouteParts<'a> {
    /// The shared parts of the route `apex` of `canary`.
    fn new(canary: &'a Canary, apex: &'a str) -> Self {
        Self {
            canary,
            apex,
            base_matches: plan_matches(&canary.spec.service.matches),
            filters: filters::rule_filters(canary),
            timeouts: timeouts(canary),
            retry: retry(canary),
        }
    }

    /// The Service behind a plan backend.
    fn backend_name(&self, b: Backend) -> String {
        match b {
            Backend::Primary => primary_name(self.apex),
            Backend::Canary => canary_service_name(self.apex),
        }
    }

    /// One plan rule as an HTTPRoute rule; a redirecting rule answers
    /// requests itself and has no backends.
    fn rule(&self, rule: &RouteRule) -> HttpRouteRules {
        let backends = if sluice_host::validate::redirects(rule) {
            None
        } else {
            Some(rule.backends.iter().map(|b| self.backend_ref(b)).collect())
        };
        let mut filters = filters::plan_rule_filters(self, rule);
        plugin_filters::add_plugin_filters(&mut filters, &rule.filters);
        HttpRouteRules {
            backend_refs: backends,
            filters: non_empty(filters),
            matches: Some(matches::rule_matches(&rule.matches, &self.base_matches)),
            name: None,
            retry: self.retry.clone(),
            session_persistence: None,
            timeouts: self.timeouts.clone(),
        }
    }

    /// A weighted backend as a reference to its Service on the service
    /// port, with the backend's session cookie, if any.
    fn backend_ref(&self, b: &WeightedBackend) -> HttpRouteRulesBackendRefs {
        let cookie = b
            .set_cookie
            .as_ref()
            .map(|c| filters::set_cookie_value(self.canary, c));
        HttpRouteRulesBackendRefs {
            filters: cookie.map(|c| vec![backend_cookie_filter(c)]),
            group: Some(String::new()),
            kind: Some("Service".into()),
            name: self.backend_name(b.backend),
            namespace: None,
            port: Some(self.canary.spec.service.port),
            weight: Some(b.weight as i32),
        }
    }
}

/// A backend filter that adds `Set-Cookie: cookie` to the backend's
/// responses.
fn backend_cookie_filter(cookie: String) -> HttpRouteRulesBackendRefsFilters {
    HttpRouteRulesBackendRefsFilters {
        r#type: HttpRouteRulesBackendRefsFiltersType::ResponseHeaderModifier,
        response_header_modifier: Some(HttpRouteRulesBackendRefsFiltersResponseHeaderModifier {
            add: Some(vec![
                HttpRouteRulesBackendRefsFiltersResponseHeaderModifierAdd {
                    name: "Set-Cookie".into(),
                    value: cookie,
                },
            ]),
            remove: None,
            set: None,
        }),
        cors: None,
        extension_ref: None,
        external_auth: None,
        request_header_modifier: None,
        request_mirror: None,
        request_redirect: None,
        url_rewrite: None,
    }
}

/// `service.timeout` as the request timeout, and the per-try timeout of a
/// retry as Gateway API's backend request timeout (the limit of each
/// attempt); `service.backendTimeout` wins over `retries.perTryTimeout`.
fn timeouts(canary: &Canary) -> Option<HttpRouteRulesTimeouts> {
    let svc = &canary.spec.service;
    let per_try = svc
        .backend_timeout
        .clone()
        .or_else(|| svc.retries.as_ref().and_then(|r| r.per_try_timeout.clone()));
    (svc.timeout.is_some() || per_try.is_some()).then(|| HttpRouteRulesTimeouts {
        request: svc.timeout.clone(),
        backend_request: per_try,
    })
}

/// `service.retries` as HTTPRoute's (experimental) retry policy.
fn retry(canary: &Canary) -> Option<HttpRouteRulesRetry> {
    let r = canary.spec.service.retries.as_ref()?;
    let codes = r.retry_on.as_deref().map(retry_codes).unwrap_or_default();
    Some(HttpRouteRulesRetry {
        attempts: Some(i64::from(r.attempts)),
        backoff: None,
        codes: non_empty(codes),
    })
}

/// The route's metadata: named after the apex, owned by the Canary, with
/// the labels and annotations of `service.apex`.
fn route_metadata(canary: &Canary, apex: String) -> ObjectMeta {
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(extra) = &canary.spec.service.apex {
        labels.extend(extra.labels.clone());
        annotations.extend(extra.annotations.clone());
    }
    ObjectMeta {
        name: Some(apex),
        namespace: canary.namespace(),
        labels: (!labels.is_empty()).then_some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        owner_references: owner_reference(canary).map(|o| vec![o]),
        ..Default::default()
    }
}

/// `service.gatewayRefs` as the route's parent references.
fn parent_refs(canary: &Canary) -> Option<Vec<HttpRouteParentRefs>> {
    non_empty(
        canary
            .spec
            .service
            .gateway_refs
            .iter()
            .map(|g| HttpRouteParentRefs {
                group: g.group.clone(),
                kind: g.kind.clone(),
                name: g.name.clone(),
                namespace: g.namespace.clone(),
                port: g.port,
                section_name: g.section_name.clone(),
            })
            .collect(),
    )
}

/// `Some(v)`, or `None` for an empty list: Sluice leaves empty lists out.
fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}
