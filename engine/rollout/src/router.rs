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
pub use gateway_api::apis::experimental::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesFilters,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::analysis::workload::{apex_name, canary_service_name, owner_reference, primary_name};
use sluice_api::{Canary, HttpMatch as SpecMatch, StringMatch as SpecStringMatch, duration};
use sluice_core::gateway::{PATH_PSEUDO_HEADER, retry_codes};
use sluice_host::bindings::strategy::{
    Backend, HeaderMatch, HttpMatch, QueryParamMatch, ResponseCookie, RoutePlan, RouteRule,
    StringMatch, WeightedBackend,
};

/// The route plan that keeps every request on the primary. The host uses it
/// whenever it cannot trust a plugin's plan.
pub fn safe_plan() -> RoutePlan {
    RoutePlan {
        rules: vec![RouteRule {
            matches: vec![],
            backends: vec![
                WeightedBackend {
                    backend: Backend::Primary,
                    weight: 100,
                    set_cookie: None,
                },
                WeightedBackend {
                    backend: Backend::Canary,
                    weight: 0,
                    set_cookie: None,
                },
            ],
            mirror: None,
            set_cookie: None,
        }],
    }
}

/// Converts Flagger's Istio-style matches to the plan's matches.
pub fn plan_matches(matches: &[SpecMatch]) -> Vec<HttpMatch> {
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

fn header_value(m: &StringMatch) -> (HttpRouteRulesMatchesHeadersType, String) {
    match m {
        StringMatch::Exact(v) => (HttpRouteRulesMatchesHeadersType::Exact, v.clone()),
        StringMatch::Prefix(v) => (
            HttpRouteRulesMatchesHeadersType::RegularExpression,
            format!("^{}.*", regex::escape(v)),
        ),
        StringMatch::Regex(v) => (
            HttpRouteRulesMatchesHeadersType::RegularExpression,
            v.clone(),
        ),
    }
}

fn query_value(m: &StringMatch) -> (HttpRouteRulesMatchesQueryParamsType, String) {
    match m {
        StringMatch::Exact(v) => (HttpRouteRulesMatchesQueryParamsType::Exact, v.clone()),
        StringMatch::Prefix(v) => (
            HttpRouteRulesMatchesQueryParamsType::RegularExpression,
            format!("^{}.*", regex::escape(v)),
        ),
        StringMatch::Regex(v) => (
            HttpRouteRulesMatchesQueryParamsType::RegularExpression,
            v.clone(),
        ),
    }
}

fn method(m: &str) -> Option<HttpRouteRulesMatchesMethod> {
    use HttpRouteRulesMatchesMethod::*;
    Some(match m {
        "GET" => Get,
        "HEAD" => Head,
        "POST" => Post,
        "PUT" => Put,
        "DELETE" => Delete,
        "CONNECT" => Connect,
        "OPTIONS" => Options,
        "TRACE" => Trace,
        "PATCH" => Patch,
        _ => return None,
    })
}

fn default_path() -> HttpRouteRulesMatchesPath {
    HttpRouteRulesMatchesPath {
        r#type: Some(HttpRouteRulesMatchesPathType::PathPrefix),
        value: Some("/".into()),
    }
}

/// A plan match, merged with one of the route's own matches
/// (`service.match`): every condition of both holds. Validation refuses a
/// Canary whose A/B and route matches both set a path or a method; for a
/// plugin's own rule the plan's path wins.
fn render_match(plan: Option<&HttpMatch>, base: Option<&HttpMatch>) -> HttpRouteRulesMatches {
    let mut headers = Vec::new();
    let mut query = Vec::new();
    let mut path = None;
    let mut meth = None;
    for m in [base, plan].into_iter().flatten() {
        for h in &m.headers {
            if h.name == PATH_PSEUDO_HEADER {
                path = Some(path_value(&h.value));
                continue;
            }
            let (t, v) = header_value(&h.value);
            headers.push(HttpRouteRulesMatchesHeaders {
                name: h.name.clone(),
                r#type: Some(t),
                value: v,
            });
        }
        for q in &m.query_params {
            let (t, v) = query_value(&q.value);
            query.push(HttpRouteRulesMatchesQueryParams {
                name: q.name.clone(),
                r#type: Some(t),
                value: v,
            });
        }
        if let Some(p) = &m.path_prefix {
            path = Some(HttpRouteRulesMatchesPath {
                r#type: Some(HttpRouteRulesMatchesPathType::PathPrefix),
                value: Some(p.clone()),
            });
        }
        if let Some(x) = m.method.as_deref().and_then(method) {
            meth = Some(x);
        }
    }
    HttpRouteRulesMatches {
        headers: (!headers.is_empty()).then_some(headers),
        method: meth,
        path: Some(path.unwrap_or_else(default_path)),
        query_params: (!query.is_empty()).then_some(query),
    }
}

/// A `:path` condition as a Gateway API path match.
fn path_value(m: &StringMatch) -> HttpRouteRulesMatchesPath {
    let (t, v) = match m {
        StringMatch::Exact(v) => (HttpRouteRulesMatchesPathType::Exact, v.clone()),
        StringMatch::Prefix(v) => (HttpRouteRulesMatchesPathType::PathPrefix, v.clone()),
        StringMatch::Regex(v) => (HttpRouteRulesMatchesPathType::RegularExpression, v.clone()),
    };
    HttpRouteRulesMatchesPath {
        r#type: Some(t),
        value: Some(v),
    }
}

fn rule_filters(canary: &Canary) -> Vec<HttpRouteRulesFilters> {
    let svc = &canary.spec.service;
    let mut filters = Vec::new();
    if let Some(h) = &svc.headers {
        if let Some(req) = &h.request {
            let m = HttpRouteRulesFiltersRequestHeaderModifier {
                add: non_empty(
                    req.add
                        .iter()
                        .map(|(k, v)| HttpRouteRulesFiltersRequestHeaderModifierAdd {
                            name: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                ),
                set: non_empty(
                    req.set
                        .iter()
                        .map(|(k, v)| HttpRouteRulesFiltersRequestHeaderModifierSet {
                            name: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                ),
                remove: non_empty(req.remove.clone()),
            };
            filters.push(HttpRouteRulesFilters {
                r#type: HttpRouteRulesFiltersType::RequestHeaderModifier,
                request_header_modifier: Some(m),
                ..filter_default()
            });
        }
        if let Some(resp) = &h.response {
            let m = HttpRouteRulesFiltersResponseHeaderModifier {
                add: non_empty(
                    resp.add
                        .iter()
                        .map(|(k, v)| HttpRouteRulesFiltersResponseHeaderModifierAdd {
                            name: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                ),
                set: non_empty(
                    resp.set
                        .iter()
                        .map(|(k, v)| HttpRouteRulesFiltersResponseHeaderModifierSet {
                            name: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                ),
                remove: non_empty(resp.remove.clone()),
            };
            filters.push(HttpRouteRulesFilters {
                r#type: HttpRouteRulesFiltersType::ResponseHeaderModifier,
                response_header_modifier: Some(m),
                ..filter_default()
            });
        }
    }
    if let Some(rw) = &svc.rewrite {
        let path = rw.uri.as_ref().map(|uri| {
            if rw.rewrite_type.as_deref() == Some("ReplacePrefixMatch") {
                HttpRouteRulesFiltersUrlRewritePath {
                    r#type: HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch,
                    replace_prefix_match: Some(uri.clone()),
                    replace_full_path: None,
                }
            } else {
                HttpRouteRulesFiltersUrlRewritePath {
                    r#type: HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath,
                    replace_full_path: Some(uri.clone()),
                    replace_prefix_match: None,
                }
            }
        });
        filters.push(HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::UrlRewrite,
            url_rewrite: Some(HttpRouteRulesFiltersUrlRewrite {
                hostname: rw.authority.clone(),
                path,
            }),
            ..filter_default()
        });
    }
    for m in &svc.mirror {
        let r = &m.backend_ref;
        filters.push(HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::RequestMirror,
            request_mirror: Some(HttpRouteRulesFiltersRequestMirror {
                backend_ref: HttpRouteRulesFiltersRequestMirrorBackendRef {
                    group: r.group.clone(),
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    namespace: r.namespace.clone(),
                    port: r.port,
                },
                fraction: None,
                percent: None,
            }),
            ..filter_default()
        });
    }
    if let Some(cors) = &svc.cors_policy {
        let max_age = cors
            .max_age
            .as_deref()
            .and_then(|m| duration::parse(m).ok())
            .map(|d| d.as_secs().min(i32::MAX as u64) as i32);
        filters.push(HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::Cors,
            cors: Some(HttpRouteRulesFiltersCors {
                allow_origins: non_empty(cors.allow_origin.clone()),
                allow_methods: non_empty(cors.allow_methods.clone()),
                allow_headers: non_empty(cors.allow_headers.clone()),
                expose_headers: non_empty(cors.expose_headers.clone()),
                allow_credentials: cors.allow_credentials,
                max_age,
            }),
            ..filter_default()
        });
    }
    filters
}

/// `Set-Cookie` as Flagger writes it: "name=value; Max-Age=N", -1 to delete.
/// A `Set-Cookie` value: the plugin's name, value and lifetime, with the
/// Canary's cookie attributes (`sessionAffinity.path`, `domain`, …).
fn set_cookie_value(canary: &Canary, c: &ResponseCookie) -> String {
    let attributes = canary
        .spec
        .analysis
        .as_ref()
        .and_then(|a| a.session_affinity.as_ref())
        .map(|s| s.cookie_attributes())
        .unwrap_or_else(|| "; Path=/".into());
    format!(
        "{}={}; Max-Age={}{attributes}",
        c.name,
        c.value,
        c.max_age_seconds.max(-1)
    )
}

/// Adds a response header to the rule's ResponseHeaderModifier, creating it
/// if needed: Gateway API allows one filter of each type per rule.
fn add_response_header(filters: &mut Vec<HttpRouteRulesFilters>, name: &str, value: String) {
    let header = HttpRouteRulesFiltersResponseHeaderModifierAdd {
        name: name.to_string(),
        value,
    };
    if let Some(m) = filters
        .iter_mut()
        .find_map(|f| f.response_header_modifier.as_mut())
    {
        m.add.get_or_insert_with(Vec::new).push(header);
        return;
    }
    filters.push(HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::ResponseHeaderModifier,
        response_header_modifier: Some(HttpRouteRulesFiltersResponseHeaderModifier {
            add: Some(vec![header]),
            remove: None,
            set: None,
        }),
        ..filter_default()
    });
}

fn filter_default() -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        cors: None,
        extension_ref: None,
        external_auth: None,
        request_header_modifier: None,
        request_mirror: None,
        request_redirect: None,
        response_header_modifier: None,
        r#type: HttpRouteRulesFiltersType::RequestHeaderModifier,
        url_rewrite: None,
    }
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

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Renders the HTTPRoute for `plan`.
pub fn render(canary: &Canary, plan: &RoutePlan) -> HttpRoute {
    let svc = &canary.spec.service;
    let apex = apex_name(canary);
    let backend_name = |b: Backend| match b {
        Backend::Primary => primary_name(&apex),
        Backend::Canary => canary_service_name(&apex),
    };
    let base_matches = plan_matches(&svc.matches);
    let shared_filters = rule_filters(canary);
    // The per-try timeout of a retry is Gateway API's backend request
    // timeout: the limit of each attempt.
    let per_try = svc
        .backend_timeout
        .clone()
        .or_else(|| svc.retries.as_ref().and_then(|r| r.per_try_timeout.clone()));
    let timeouts = (svc.timeout.is_some() || per_try.is_some()).then(|| HttpRouteRulesTimeouts {
        request: svc.timeout.clone(),
        backend_request: per_try,
    });
    let retry = retry(canary);
    let rules = plan
        .rules
        .iter()
        .map(|rule| {
            let matches: Vec<HttpRouteRulesMatches> =
                match (rule.matches.is_empty(), base_matches.is_empty()) {
                    (true, true) => vec![render_match(None, None)],
                    (true, false) => base_matches
                        .iter()
                        .map(|b| render_match(None, Some(b)))
                        .collect(),
                    (false, true) => rule
                        .matches
                        .iter()
                        .map(|m| render_match(Some(m), None))
                        .collect(),
                    (false, false) => rule
                        .matches
                        .iter()
                        .flat_map(|m| {
                            base_matches
                                .iter()
                                .map(move |b| render_match(Some(m), Some(b)))
                        })
                        .collect(),
                };
            let mut filters = shared_filters.clone();
            if let Some(cookie) = &rule.set_cookie {
                add_response_header(&mut filters, "Set-Cookie", set_cookie_value(canary, cookie));
            }
            if let Some(mirror) = &rule.mirror {
                filters.push(HttpRouteRulesFilters {
                    r#type: HttpRouteRulesFiltersType::RequestMirror,
                    request_mirror: Some(HttpRouteRulesFiltersRequestMirror {
                        backend_ref: HttpRouteRulesFiltersRequestMirrorBackendRef {
                            group: Some(String::new()),
                            kind: Some("Service".into()),
                            name: backend_name(mirror.backend),
                            namespace: None,
                            port: Some(svc.port),
                        },
                        fraction: None,
                        percent: mirror.percent.map(|p| p as i32),
                    }),
                    ..filter_default()
                });
            }
            let backend_refs = rule
                .backends
                .iter()
                .map(|b| HttpRouteRulesBackendRefs {
                    filters: b.set_cookie.as_ref().map(|c| {
                        vec![HttpRouteRulesBackendRefsFilters {
                            r#type: HttpRouteRulesBackendRefsFiltersType::ResponseHeaderModifier,
                            response_header_modifier: Some(
                                HttpRouteRulesBackendRefsFiltersResponseHeaderModifier {
                                    add: Some(vec![
                                        HttpRouteRulesBackendRefsFiltersResponseHeaderModifierAdd {
                                            name: "Set-Cookie".into(),
                                            value: set_cookie_value(canary, c),
                                        },
                                    ]),
                                    remove: None,
                                    set: None,
                                },
                            ),
                            cors: None,
                            extension_ref: None,
                            external_auth: None,
                            request_header_modifier: None,
                            request_mirror: None,
                            request_redirect: None,
                            url_rewrite: None,
                        }]
                    }),
                    group: Some(String::new()),
                    kind: Some("Service".into()),
                    name: backend_name(b.backend),
                    namespace: None,
                    port: Some(svc.port),
                    weight: Some(b.weight as i32),
                })
                .collect();
            HttpRouteRules {
                backend_refs: Some(backend_refs),
                filters: non_empty(filters),
                matches: Some(matches),
                name: None,
                retry: retry.clone(),
                session_persistence: None,
                timeouts: timeouts.clone(),
            }
        })
        .collect();

    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(extra) = &svc.apex {
        labels.extend(extra.labels.clone());
        annotations.extend(extra.annotations.clone());
    }
    HttpRoute {
        metadata: ObjectMeta {
            name: Some(apex),
            namespace: canary.namespace(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: owner_reference(canary).map(|o| vec![o]),
            ..Default::default()
        },
        spec: HttpRouteSpec {
            use_default_gateways: None,
            hostnames: non_empty(svc.hosts.clone()),
            parent_refs: non_empty(
                svc.gateway_refs
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
            ),
            rules: Some(rules),
        },
        status: None,
    }
}
