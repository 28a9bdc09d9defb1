//! The filters of a rule: the Canary's route customisation (headers,
//! rewrite, static mirrors, CORS), shared by every rule, and what a plan's
//! rule adds to it (a session cookie, a mirror to one of Sluice's backends).

use gateway_api::apis::experimental::httproutes::*;

use super::{RouteParts, non_empty};
use sluice_api::{Canary, CorsPolicy, HeaderOperations, HttpRewrite, ServiceMirror, duration};
use sluice_host::bindings::strategy::{ResponseCookie, RouteRule};

/// The filters every rule carries, from `spec.service`: request and
/// response header modifiers, the URL rewrite, the static mirrors and the
/// CORS policy, in that order.
pub(super) fn rule_filters(canary: &Canary) -> Vec<HttpRouteRulesFilters> {
    let svc = &canary.spec.service;
    let mut filters = Vec::new();
    if let Some(h) = &svc.headers {
        filters.extend(h.request.as_ref().map(request_header_filter));
        filters.extend(h.response.as_ref().map(response_header_filter));
    }
    filters.extend(svc.rewrite.as_ref().map(rewrite_filter));
    filters.extend(svc.mirror.iter().map(service_mirror_filter));
    filters.extend(svc.cors_policy.as_ref().map(cors_filter));
    filters
}

/// `headers.request` as a RequestHeaderModifier filter.
fn request_header_filter(ops: &HeaderOperations) -> HttpRouteRulesFilters {
    let m = HttpRouteRulesFiltersRequestHeaderModifier {
        add: non_empty(
            ops.add
                .iter()
                .map(|(k, v)| HttpRouteRulesFiltersRequestHeaderModifierAdd {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        ),
        set: non_empty(
            ops.set
                .iter()
                .map(|(k, v)| HttpRouteRulesFiltersRequestHeaderModifierSet {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        ),
        remove: non_empty(ops.remove.clone()),
    };
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::RequestHeaderModifier,
        request_header_modifier: Some(m),
        ..filter_default()
    }
}

/// `headers.response` as a ResponseHeaderModifier filter.
fn response_header_filter(ops: &HeaderOperations) -> HttpRouteRulesFilters {
    let m = HttpRouteRulesFiltersResponseHeaderModifier {
        add: non_empty(
            ops.add
                .iter()
                .map(|(k, v)| HttpRouteRulesFiltersResponseHeaderModifierAdd {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        ),
        set: non_empty(
            ops.set
                .iter()
                .map(|(k, v)| HttpRouteRulesFiltersResponseHeaderModifierSet {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        ),
        remove: non_empty(ops.remove.clone()),
    };
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::ResponseHeaderModifier,
        response_header_modifier: Some(m),
        ..filter_default()
    }
}

/// `service.rewrite` as a URLRewrite filter: host name and path.
fn rewrite_filter(rw: &HttpRewrite) -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::UrlRewrite,
        url_rewrite: Some(HttpRouteRulesFiltersUrlRewrite {
            hostname: rw.authority.clone(),
            path: rw.uri.as_ref().map(|uri| rewrite_path(rw, uri)),
        }),
        ..filter_default()
    }
}

/// The path of a rewrite to `uri`: the matched prefix replaced when the
/// type is "ReplacePrefixMatch", the full path otherwise.
fn rewrite_path(rw: &HttpRewrite, uri: &str) -> HttpRouteRulesFiltersUrlRewritePath {
    if rw.rewrite_type.as_deref() == Some("ReplacePrefixMatch") {
        HttpRouteRulesFiltersUrlRewritePath {
            r#type: HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch,
            replace_prefix_match: Some(uri.to_string()),
            replace_full_path: None,
        }
    } else {
        HttpRouteRulesFiltersUrlRewritePath {
            r#type: HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath,
            replace_full_path: Some(uri.to_string()),
            replace_prefix_match: None,
        }
    }
}

/// One of `service.mirror` as a RequestMirror filter to its backend.
fn service_mirror_filter(m: &ServiceMirror) -> HttpRouteRulesFilters {
    let r = &m.backend_ref;
    mirror_filter(
        HttpRouteRulesFiltersRequestMirrorBackendRef {
            group: r.group.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            port: r.port,
        },
        None,
    )
}

/// `service.corsPolicy` as a CORS filter; `maxAge` in whole seconds.
fn cors_filter(cors: &CorsPolicy) -> HttpRouteRulesFilters {
    let max_age = cors
        .max_age
        .as_deref()
        .and_then(|m| duration::parse(m).ok())
        .map(|d| d.as_secs().min(i32::MAX as u64) as i32);
    HttpRouteRulesFilters {
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
    }
}

/// The filters of one plan rule: the shared ones, then the rule's session
/// cookie (merged into the response header modifier) and its mirror to one
/// of Sluice's backends.
pub(super) fn plan_rule_filters(
    route: &RouteParts,
    rule: &RouteRule,
) -> Vec<HttpRouteRulesFilters> {
    let mut filters = route.filters.clone();
    if let Some(cookie) = &rule.set_cookie {
        let value = set_cookie_value(route.canary, cookie);
        add_response_header(&mut filters, "Set-Cookie", value);
    }
    if let Some(mirror) = &rule.mirror {
        let backend_ref = HttpRouteRulesFiltersRequestMirrorBackendRef {
            group: Some(String::new()),
            kind: Some("Service".into()),
            name: route.backend_name(mirror.backend),
            namespace: None,
            port: Some(route.canary.spec.service.port),
        };
        filters.push(mirror_filter(backend_ref, mirror.percent.map(|p| p as i32)));
    }
    filters
}

/// A RequestMirror filter to `backend_ref`, of `percent` of the requests
/// (all when unset).
fn mirror_filter(
    backend_ref: HttpRouteRulesFiltersRequestMirrorBackendRef,
    percent: Option<i32>,
) -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::RequestMirror,
        request_mirror: Some(HttpRouteRulesFiltersRequestMirror {
            backend_ref,
            fraction: None,
            percent,
        }),
        ..filter_default()
    }
}

/// A `Set-Cookie` value as Flagger writes it ("name=value; Max-Age=N", -1
/// to delete): the plugin's name, value and lifetime, with the Canary's
/// cookie attributes (`sessionAffinity.path`, `domain`, …).
pub(super) fn set_cookie_value(canary: &Canary, c: &ResponseCookie) -> String {
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

/// A filter with every part unset, to fill in with `..filter_default()`.
pub(super) fn filter_default() -> HttpRouteRulesFilters {
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
