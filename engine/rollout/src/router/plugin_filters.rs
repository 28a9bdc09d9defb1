//! The filters a plugin's rule carries (contract 0.2: header modifiers,
//! request redirects, `ExtensionRef`s), already checked by the host
//! (`sluice_host::validate`), merged into the rule's own filters.
//!
//! Gateway API allows one header modifier of each direction per rule and
//! one entry per header name in it, so a plugin's headers join the
//! Canary's modifier, and the Canary's own `service.headers` win on a
//! name both set. A redirecting rule answers the request itself: it
//! carries no backends, and no URL rewrite or mirror (Gateway API refuses
//! a rewrite beside a redirect).

use gateway_api::apis::experimental::httproutes::*;
use sluice_host::bindings::strategy::{
    ExtensionRef, HeaderModifier, HttpHeader, RequestRedirect, RouteFilter,
};

use super::filters::filter_default;

/// Adds a plan rule's filters to `filters`, the rule's rendered ones.
pub(super) fn add_plugin_filters(filters: &mut Vec<HttpRouteRulesFilters>, plan: &[RouteFilter]) {
    for filter in plan {
        match filter {
            RouteFilter::RequestHeaderModifier(m) => merge_request_headers(filters, m),
            RouteFilter::ResponseHeaderModifier(m) => merge_response_headers(filters, m),
            RouteFilter::RequestRedirect(r) => redirect(filters, r),
            RouteFilter::ExtensionRef(e) => filters.push(extension_ref(e)),
        }
    }
}

/// Names already in a modifier, lower-cased.
fn taken(names: impl Iterator<Item = String>) -> std::collections::BTreeSet<String> {
    names.map(|n| n.to_ascii_lowercase()).collect()
}

/// Headers of `list` whose names are not `taken`.
fn free<'a>(
    list: &'a [HttpHeader],
    taken: &'a std::collections::BTreeSet<String>,
) -> impl Iterator<Item = &'a HttpHeader> {
    list.iter()
        .filter(|h| !taken.contains(&h.name.to_ascii_lowercase()))
}

/// Merges a plugin's header modifier into the rule's modifier of one
/// direction (created when the rule has none). Gateway API generates a
/// type per direction and list, hence one body for both directions.
macro_rules! merge_headers {
    ($name:ident, $field:ident, $kind:ident, $modifier:ident, $set:ident, $add:ident) => {
        fn $name(filters: &mut Vec<HttpRouteRulesFilters>, m: &HeaderModifier) {
            let index = match filters.iter().position(|f| f.$field.is_some()) {
                Some(i) => i,
                None => {
                    filters.push(HttpRouteRulesFilters {
                        r#type: HttpRouteRulesFiltersType::$kind,
                        $field: Some($modifier {
                            add: None,
                            remove: None,
                            set: None,
                        }),
                        ..filter_default()
                    });
                    filters.len() - 1
                }
            };
            let Some(own) = filters[index].$field.as_mut() else {
                return;
            };
            let names = taken(
                own.set
                    .iter()
                    .flatten()
                    .map(|h| h.name.clone())
                    .chain(own.add.iter().flatten().map(|h| h.name.clone()))
                    .chain(own.remove.iter().flatten().cloned()),
            );
            let set = own.set.get_or_insert_with(Vec::new);
            set.extend(free(&m.set, &names).map(|h| $set {
                name: h.name.clone(),
                value: h.value.clone(),
            }));
            let add = own.add.get_or_insert_with(Vec::new);
            add.extend(free(&m.add, &names).map(|h| $add {
                name: h.name.clone(),
                value: h.value.clone(),
            }));
            let remove = own.remove.get_or_insert_with(Vec::new);
            remove.extend(
                m.remove
                    .iter()
                    .filter(|n| !names.contains(&n.to_ascii_lowercase()))
                    .cloned(),
            );
            tidy(&mut own.set);
            tidy(&mut own.add);
            tidy(&mut own.remove);
        }
    };
}

merge_headers!(
    merge_request_headers,
    request_header_modifier,
    RequestHeaderModifier,
    HttpRouteRulesFiltersRequestHeaderModifier,
    HttpRouteRulesFiltersRequestHeaderModifierSet,
    HttpRouteRulesFiltersRequestHeaderModifierAdd
);
merge_headers!(
    merge_response_headers,
    response_header_modifier,
    ResponseHeaderModifier,
    HttpRouteRulesFiltersResponseHeaderModifier,
    HttpRouteRulesFiltersResponseHeaderModifierSet,
    HttpRouteRulesFiltersResponseHeaderModifierAdd
);

/// An empty list is left out of the rendered route.
fn tidy<T>(list: &mut Option<Vec<T>>) {
    if list.as_ref().is_some_and(Vec::is_empty) {
        *list = None;
    }
}

/// Replaces a rule's URL rewrite and mirrors with the redirect.
fn redirect(filters: &mut Vec<HttpRouteRulesFilters>, r: &RequestRedirect) {
    filters.retain(|f| f.url_rewrite.is_none() && f.request_mirror.is_none());
    filters.push(HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::RequestRedirect,
        request_redirect: Some(HttpRouteRulesFiltersRequestRedirect {
            hostname: r.hostname.clone(),
            path: r
                .path
                .as_ref()
                .map(|p| HttpRouteRulesFiltersRequestRedirectPath {
                    r#type: HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath,
                    replace_full_path: Some(p.clone()),
                    replace_prefix_match: None,
                }),
            port: r.port.map(i32::from),
            scheme: r.scheme.as_deref().map(|s| match s {
                "https" => HttpRouteRulesFiltersRequestRedirectScheme::Https,
                _ => HttpRouteRulesFiltersRequestRedirectScheme::Http,
            }),
            status_code: Some(i64::from(r.status_code.unwrap_or(302))),
        }),
        ..filter_default()
    });
}

fn extension_ref(e: &ExtensionRef) -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::ExtensionRef,
        extension_ref: Some(HttpRouteRulesFiltersExtensionRef {
            group: e.group.clone(),
            kind: e.kind.clone(),
            name: e.name.clone(),
        }),
        ..filter_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> HttpHeader {
        HttpHeader {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn the_canary_s_own_headers_win_and_a_missing_modifier_is_created() {
        let mut filters = vec![HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::RequestHeaderModifier,
            request_header_modifier: Some(HttpRouteRulesFiltersRequestHeaderModifier {
                add: None,
                remove: Some(vec!["X-Gone".into()]),
                set: Some(vec![HttpRouteRulesFiltersRequestHeaderModifierSet {
                    name: "x-a".into(),
                    value: "canary".into(),
                }]),
            }),
            ..filter_default()
        }];
        let plugin = HeaderModifier {
            set: vec![header("X-A", "plugin"), header("x-b", "plugin")],
            add: vec![header("x-gone", "plugin")],
            remove: vec![],
        };
        add_plugin_filters(
            &mut filters,
            &[
                RouteFilter::RequestHeaderModifier(plugin.clone()),
                RouteFilter::ResponseHeaderModifier(plugin),
            ],
        );
        assert_eq!(filters.len(), 2, "one modifier per direction");
        let request = filters[0].request_header_modifier.as_ref().unwrap();
        let set: Vec<(&str, &str)> = request
            .set
            .iter()
            .flatten()
            .map(|h| (h.name.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(set, [("x-a", "canary"), ("x-b", "plugin")]);
        assert_eq!(request.add, None, "x-gone is the Canary's to remove");
        let response = filters[1].response_header_modifier.as_ref().unwrap();
        assert_eq!(response.set.as_ref().map(Vec::len), Some(2));
        assert_eq!(response.add.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn a_redirect_replaces_the_rule_s_rewrite_and_mirrors() {
        let mut filters = vec![
            HttpRouteRulesFilters {
                r#type: HttpRouteRulesFiltersType::UrlRewrite,
                url_rewrite: Some(HttpRouteRulesFiltersUrlRewrite {
                    hostname: Some("internal".into()),
                    path: None,
                }),
                ..filter_default()
            },
            HttpRouteRulesFilters {
                r#type: HttpRouteRulesFiltersType::RequestMirror,
                request_mirror: Some(HttpRouteRulesFiltersRequestMirror {
                    backend_ref: HttpRouteRulesFiltersRequestMirrorBackendRef {
                        group: None,
                        kind: None,
                        name: "mirror".into(),
                        namespace: None,
                        port: None,
                    },
                    fraction: None,
                    percent: None,
                }),
                ..filter_default()
            },
        ];
        let redirect = RequestRedirect {
            scheme: Some("https".into()),
            hostname: None,
            path: Some("/".into()),
            port: None,
            status_code: None,
        };
        add_plugin_filters(&mut filters, &[RouteFilter::RequestRedirect(redirect)]);
        assert_eq!(filters.len(), 1);
        let r = filters[0].request_redirect.as_ref().unwrap();
        assert_eq!(r.status_code, Some(302), "Gateway API's default");
        assert_eq!(
            r.scheme,
            Some(HttpRouteRulesFiltersRequestRedirectScheme::Https)
        );
    }
}
