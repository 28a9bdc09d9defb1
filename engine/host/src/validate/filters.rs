//! Checks of the filters a 0.2 route rule may carry: Gateway API's header
//! modifiers, request redirects and `ExtensionRef`s, within Gateway API's
//! own limits, and never able to widen the canary's traffic (no cookie a
//! later request could be routed by, no redirect of every request).

use crate::bindings::strategy::{
    Backend, ExtensionRef, HeaderModifier, RequestRedirect, RouteFilter, RouteRule,
};
use sluice_core::gateway::is_header_name;

/// Gateway API: at most 16 filters per rule and 16 headers per list.
const MAX_FILTERS: usize = 16;
const MAX_HEADERS: usize = 16;
const MAX_VALUE: usize = 4096;

/// Headers a plugin may not set, add or remove: cookies (a `Set-Cookie`
/// on every response could pin every user to the canary through the
/// session-affinity rule; cookies go through the typed, checked
/// `set-cookie` instead), `Host` (URL rewrites are the Canary's), and
/// hop-by-hop and framing headers the proxy owns.
const RESERVED: [&str; 9] = [
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
];

/// Checks the filters of `rule`; `catch_all` is the plan's last rule.
pub(super) fn rule_filters(rule: &RouteRule, catch_all: bool) -> Result<(), String> {
    if rule.filters.len() > MAX_FILTERS {
        return Err(format!(
            "at most {MAX_FILTERS} filters per rule (got {})",
            rule.filters.len()
        ));
    }
    let mut seen = [false; 3];
    for (i, filter) in rule.filters.iter().enumerate() {
        let once = match filter {
            RouteFilter::RequestHeaderModifier(_) => Some((0, "request-header-modifier")),
            RouteFilter::ResponseHeaderModifier(_) => Some((1, "response-header-modifier")),
            RouteFilter::RequestRedirect(_) => Some((2, "request-redirect")),
            RouteFilter::ExtensionRef(_) => None,
        };
        if let Some((slot, kind)) = once {
            if seen[slot] {
                return Err(format!("filter {i}: a rule may carry one {kind} filter"));
            }
            seen[slot] = true;
        }
        filter_ok(filter, rule, catch_all).map_err(|why| format!("filter {i}: {why}"))?;
    }
    Ok(())
}

fn filter_ok(filter: &RouteFilter, rule: &RouteRule, catch_all: bool) -> Result<(), String> {
    match filter {
        RouteFilter::RequestHeaderModifier(m) => header_modifier(m, "request"),
        RouteFilter::ResponseHeaderModifier(m) => header_modifier(m, "response"),
        RouteFilter::RequestRedirect(r) => redirect(r, rule, catch_all),
        RouteFilter::ExtensionRef(e) => extension_ref(e),
    }
}

/// Whether `rule` answers requests with a redirect instead of a backend.
pub fn redirects(rule: &RouteRule) -> bool {
    rule.filters
        .iter()
        .any(|f| matches!(f, RouteFilter::RequestRedirect(_)))
}

fn header_modifier(m: &HeaderModifier, side: &str) -> Result<(), String> {
    let lists = [
        ("set", m.set.len()),
        ("add", m.add.len()),
        ("remove", m.remove.len()),
    ];
    for (list, n) in lists {
        if n > MAX_HEADERS {
            return Err(format!(
                "{side} header modifier: at most {MAX_HEADERS} headers to {list} (got {n})"
            ));
        }
    }
    if m.set.is_empty() && m.add.is_empty() && m.remove.is_empty() {
        return Err(format!(
            "{side} header modifier: sets, adds or removes nothing"
        ));
    }
    let names = m
        .set
        .iter()
        .map(|h| (&h.name, Some(&h.value)))
        .chain(m.add.iter().map(|h| (&h.name, Some(&h.value))))
        .chain(m.remove.iter().map(|n| (n, None)));
    let mut distinct = std::collections::BTreeSet::new();
    for (name, value) in names {
        header_name(name, side)?;
        if !distinct.insert(name.to_ascii_lowercase()) {
            return Err(format!(
                "{side} header modifier: header {name:?} appears more than once"
            ));
        }
        if let Some(value) = value {
            header_value(name, value, side)?;
        }
    }
    Ok(())
}

fn header_name(name: &str, side: &str) -> Result<(), String> {
    if !is_header_name(name) {
        return Err(format!(
            "{side} header modifier: {name:?} is not a valid header name"
        ));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "{side} header modifier: header {name:?} is reserved to the host (cookies go through set-cookie)"
        ));
    }
    Ok(())
}

fn header_value(name: &str, value: &str, side: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "{side} header modifier: the value of {name:?} must be at most {MAX_VALUE} bytes without control characters"
        ));
    }
    Ok(())
}

fn redirect(r: &RequestRedirect, rule: &RouteRule, catch_all: bool) -> Result<(), String> {
    if catch_all {
        return Err("request redirect: the catch-all rule may not redirect every request".into());
    }
    let to_canary = rule
        .backends
        .iter()
        .any(|b| b.weight > 0 && b.backend == Backend::Canary);
    if to_canary || rule.mirror.is_some() {
        return Err(
            "request redirect: a redirecting rule answers itself, so it sends no traffic to the canary and mirrors nothing".into(),
        );
    }
    if let Some(scheme) = &r.scheme
        && scheme != "http"
        && scheme != "https"
    {
        return Err(format!(
            "request redirect: scheme {scheme:?} is not \"http\" or \"https\""
        ));
    }
    if let Some(host) = &r.hostname
        && !is_dns_subdomain(host)
    {
        return Err(format!(
            "request redirect: hostname {host:?} is not a DNS name"
        ));
    }
    if let Some(path) = &r.path
        && (!path.starts_with('/') || path.len() > 1024 || path.chars().any(char::is_control))
    {
        return Err(format!(
            "request redirect: path {path:?} must start with '/' (at most 1024 bytes, no control characters)"
        ));
    }
    if r.port == Some(0) {
        return Err("request redirect: port 0 is not a port".into());
    }
    if let Some(code) = r.status_code
        && code != 301
        && code != 302
    {
        return Err(format!(
            "request redirect: status code {code} is not 301 or 302"
        ));
    }
    Ok(())
}

fn extension_ref(e: &ExtensionRef) -> Result<(), String> {
    if !(e.group.is_empty() || is_dns_subdomain(&e.group)) {
        return Err(format!(
            "extension ref: group {:?} is not a DNS subdomain",
            e.group
        ));
    }
    let kind_ok = !e.kind.is_empty()
        && e.kind.len() <= 63
        && e.kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && e.kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !e.kind.ends_with('-');
    if !kind_ok {
        return Err(format!(
            "extension ref: kind {:?} is not a Kubernetes kind",
            e.kind
        ));
    }
    if !is_dns_subdomain(&e.name) {
        return Err(format!(
            "extension ref: name {:?} is not a Kubernetes object name",
            e.name
        ));
    }
    Ok(())
}

/// RFC 1123 subdomain, as Kubernetes names and Gateway API hostnames are.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::strategy::{HttpHeader, WeightedBackend};

    fn rule(filters: Vec<RouteFilter>, canary: u32) -> RouteRule {
        RouteRule {
            matches: vec![],
            backends: vec![
                WeightedBackend {
                    backend: Backend::Primary,
                    weight: 100 - canary,
                    set_cookie: None,
                },
                WeightedBackend {
                    backend: Backend::Canary,
                    weight: canary,
                    set_cookie: None,
                },
            ],
            mirror: None,
            set_cookie: None,
            filters,
        }
    }

    fn set(name: &str, value: &str) -> HeaderModifier {
        HeaderModifier {
            set: vec![HttpHeader {
                name: name.into(),
                value: value.into(),
            }],
            add: vec![],
            remove: vec![],
        }
    }

    fn redirect_to(path: &str) -> RouteFilter {
        RouteFilter::RequestRedirect(RequestRedirect {
            scheme: None,
            hostname: None,
            path: Some(path.into()),
            port: None,
            status_code: Some(301),
        })
    }

    #[test]
    fn header_modifiers_within_gateway_api_limits_pass() {
        let ok = rule(
            vec![
                RouteFilter::RequestHeaderModifier(set("x-canary", "yes")),
                RouteFilter::ResponseHeaderModifier(set("x-weight", "10")),
            ],
            10,
        );
        assert_eq!(rule_filters(&ok, true), Ok(()));
    }

    #[test]
    fn a_plugin_cannot_set_cookies_or_forge_headers() {
        for (name, value, why) in [
            ("Set-Cookie", "sticky=canary", "reserved"),
            ("cookie", "a=b", "reserved"),
            ("x-ok", "a\r\nInjected: yes", "control characters"),
            ("bad name", "v", "not a valid header name"),
        ] {
            let r = rule(
                vec![RouteFilter::ResponseHeaderModifier(set(name, value))],
                0,
            );
            let e = rule_filters(&r, true).unwrap_err();
            assert!(e.contains(why), "{name}: {e}");
        }
        let twice = rule(
            vec![
                RouteFilter::RequestHeaderModifier(set("a", "1")),
                RouteFilter::RequestHeaderModifier(set("b", "2")),
            ],
            0,
        );
        assert!(
            rule_filters(&twice, true)
                .unwrap_err()
                .contains("one request-header-modifier")
        );
    }

    #[test]
    fn redirects_only_on_conditional_rules_that_send_nothing_to_the_canary() {
        let r = rule(vec![redirect_to("/")], 0);
        assert_eq!(rule_filters(&r, false), Ok(()));
        assert!(rule_filters(&r, true).unwrap_err().contains("catch-all"));
        let to_canary = rule(vec![redirect_to("/")], 10);
        assert!(
            rule_filters(&to_canary, false)
                .unwrap_err()
                .contains("no traffic to the canary")
        );
        let relative = rule(vec![redirect_to("elsewhere")], 0);
        assert!(
            rule_filters(&relative, false)
                .unwrap_err()
                .contains("start with '/'")
        );
        let odd = RouteFilter::RequestRedirect(RequestRedirect {
            scheme: Some("ftp".into()),
            hostname: None,
            path: None,
            port: None,
            status_code: None,
        });
        assert!(
            rule_filters(&rule(vec![odd], 0), false)
                .unwrap_err()
                .contains("ftp")
        );
    }

    #[test]
    fn extension_refs_name_a_kubernetes_object() {
        let ext = |group: &str, kind: &str, name: &str| {
            rule(
                vec![RouteFilter::ExtensionRef(ExtensionRef {
                    group: group.into(),
                    kind: kind.into(),
                    name: name.into(),
                })],
                0,
            )
        };
        assert_eq!(
            rule_filters(&ext("networking.example.net", "RateLimit", "slow"), true),
            Ok(())
        );
        assert!(rule_filters(&ext("", "Bad Kind", "x"), true).is_err());
        assert!(rule_filters(&ext("UPPER.case", "Kind", "x"), true).is_err());
        assert!(rule_filters(&ext("", "Kind", ""), true).is_err());
    }
}
