//! The matches of a rule: the plan's matches crossed with the route's own
//! (`service.match`), as Gateway API HTTPRoute matches.

use gateway_api::apis::experimental::httproutes::*;

use sluice_core::gateway::PATH_PSEUDO_HEADER;
use sluice_host::bindings::strategy::{HttpMatch, StringMatch};

/// The matches of a rule with the plan matches `plan` under the route's
/// own `base`: every pair of them, each merged (see [`render_match`]);
/// either list alone when the other is empty; every path when both are.
pub(super) fn rule_matches(plan: &[HttpMatch], base: &[HttpMatch]) -> Vec<HttpRouteRulesMatches> {
    match (plan.is_empty(), base.is_empty()) {
        (true, true) => vec![render_match(None, None)],
        (true, false) => base.iter().map(|b| render_match(None, Some(b))).collect(),
        (false, true) => plan.iter().map(|m| render_match(Some(m), None)).collect(),
        (false, false) => plan
            .iter()
            .flat_map(|m| base.iter().map(move |b| render_match(Some(m), Some(b))))
            .collect(),
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

/// A header condition as a Gateway API header match type and value.
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

/// A query parameter condition as a Gateway API query match type and value.
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

/// An HTTP method by name; `None` for one Gateway API does not know.
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

/// The path of a match without a path condition: every path.
fn default_path() -> HttpRouteRulesMatchesPath {
    HttpRouteRulesMatchesPath {
        r#type: Some(HttpRouteRulesMatchesPathType::PathPrefix),
        value: Some("/".into()),
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
