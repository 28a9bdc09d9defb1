//! A real Envoy on loopback, configured from the HTTPRoute Sluice writes.
//!
//! [`translate`] turns a Gateway API `HTTPRoute` (Sluice's
//! [`sluice_rollout::router::HttpRoute`]) into an Envoy `RouteConfiguration`;
//! [`Envoy`] runs Envoy with a file-based dynamic configuration (a bootstrap
//! whose `dynamic_resources` read the listener and the clusters from files,
//! the listener reading its routes from a third file) and swaps the routes
//! file atomically (write, then rename) on each [`Envoy::apply`], waiting
//! until Envoy serves the new version. Each Service is a cluster of one
//! loopback endpoint, named as Contour names it (see [`Services`]); Envoy's
//! admin `/stats/prometheus` is what the playground's Prometheus scrapes.
//!
//! What the translator cannot express is an error, never dropped: CORS,
//! redirects, extension refs, external auth and session persistence
//! filters; backend filters other than header modifiers; backends that are
//! not the playground's Services; a mirror fraction Envoy's denominators
//! cannot hold; a prefix rewrite on a rule that does not match a path
//! prefix.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_api::apis::experimental::httproutes::*;
use serde_json::{Value, json};

use crate::load::{Request, Tally};

/// Why Envoy does not serve a route, or did not start.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// The translator refuses the route: Envoy cannot be made to do it.
    #[error("the route cannot be served by Envoy: {0}")]
    Refused(String),
    #[error("Envoy rejected the routes {config}; its log:\n{log}")]
    Rejected { config: String, log: String },
    #[error("Envoy did not load routes version {version} within 10 s; its log:\n{log}")]
    NotLoaded { version: u64, log: String },
    #[error("Envoy ({binary}) could not be started: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("Envoy {what} (exit status {status:?}); its log:\n{log}")]
    Failed {
        what: String,
        status: Option<std::process::ExitStatus>,
        log: String,
    },
    #[error("writing Envoy's configuration {path}: {source}")]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// The Services the playground serves, all in one namespace on one
/// Service port, each backed by one server on a loopback port. Envoy has a
/// cluster per Service, named as Contour names them in Envoy's statistics
/// (`<namespace>_<service>_<port>`), so Flagger's `contour` queries
/// (`envoy_cluster_name=~"test_podinfo-canary_[0-9a-zA-Z-]+"`) select them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    namespace: String,
    port: i32,
    upstreams: BTreeMap<String, u16>,
}

impl Services {
    /// No Service yet, in `namespace`, each on Service port `port`.
    pub fn new(namespace: &str, port: i32) -> Self {
        Self {
            namespace: namespace.to_string(),
            port,
            upstreams: BTreeMap::new(),
        }
    }

    /// Adds the Service `name`, served on `127.0.0.1:<loopback_port>`.
    pub fn with(mut self, name: &str, loopback_port: u16) -> Self {
        self.upstreams.insert(name.to_string(), loopback_port);
        self
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Service port every backendRef must name.
    pub fn port(&self) -> i32 {
        self.port
    }

    /// The Envoy cluster of Service `name`: `<namespace>_<name>_<port>`.
    pub fn cluster(&self, name: &str) -> String {
        format!("{}_{name}_{}", self.namespace, self.port)
    }

    /// Each Service's cluster name and loopback port.
    pub fn clusters(&self) -> impl Iterator<Item = (String, u16)> + '_ {
        self.upstreams.iter().map(|(n, p)| (self.cluster(n), *p))
    }
}

const ROUTE_CONFIG: &str = "playground";
const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

// ---------------------------------------------------------------------------
// Translation
// ---------------------------------------------------------------------------

/// The Envoy `RouteConfiguration` (named [`ROUTE_CONFIG`]) for `route`, or
/// what in it Envoy cannot be made to do.
pub fn translate(route: &HttpRoute, services: &Services) -> Result<Value, EnvoyError> {
    translate_route(route, services).map_err(EnvoyError::Refused)
}

fn translate_route(route: &HttpRoute, services: &Services) -> Result<Value, String> {
    let ns = route.metadata.namespace.as_deref();
    let mut entries = Vec::new();
    for (ri, rule) in route.spec.rules.iter().flatten().enumerate() {
        let rule_routes =
            translate_rule(rule, ns, services).map_err(|e| format!("rule {ri}: {e}"))?;
        for (mi, (key, value)) in rule_routes.into_iter().enumerate() {
            entries.push((key, ri, mi, value));
        }
    }
    // Gateway API's precedence among the matches of one route; ties keep
    // the order of the rules and of their matches.
    entries.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    let domains: Vec<String> = match &route.spec.hostnames {
        Some(h) if !h.is_empty() => h.clone(),
        _ => vec!["*".into()],
    };
    Ok(json!({
        "@type": ROUTE_TYPE,
        "name": ROUTE_CONFIG,
        "virtual_hosts": [{
            "name": route.metadata.name.clone().unwrap_or_default(),
            "domains": domains,
            "routes": entries.into_iter().map(|e| e.3).collect::<Vec<_>>(),
        }],
    }))
}

/// How a match ranks (smaller first): exact paths, then regular
/// expressions, then prefixes, the longer first; then a method match; then
/// the most header matches; then the most query parameter matches.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Precedence {
    path_kind: u8,
    path_len: std::cmp::Reverse<usize>,
    no_method: bool,
    headers: std::cmp::Reverse<usize>,
    query: std::cmp::Reverse<usize>,
}

impl Precedence {
    /// The precedence of match `m`, whose path is `path`.
    fn of(path: &PathMatch, m: &HttpRouteRulesMatches) -> Self {
        Precedence {
            path_kind: match path.kind {
                PathKind::Exact => 0,
                PathKind::Regex => 1,
                PathKind::Prefix => 2,
            },
            path_len: std::cmp::Reverse(path.value.len()),
            no_method: m.method.is_none(),
            headers: std::cmp::Reverse(m.headers.as_ref().map_or(0, Vec::len)),
            query: std::cmp::Reverse(m.query_params.as_ref().map_or(0, Vec::len)),
        }
    }
}

/// One Envoy route per match of `rule`, each with its precedence.
fn translate_rule(
    rule: &HttpRouteRules,
    ns: Option<&str>,
    services: &Services,
) -> Result<Vec<(Precedence, Value)>, String> {
    if rule.session_persistence.is_some() {
        return Err("sessionPersistence is not supported".into());
    }
    let filters = RuleFilters::new(rule.filters.as_deref().unwrap_or_default(), ns, services)?;
    let backends = weighted_clusters(rule, ns, services)?;
    let default_match = [HttpRouteRulesMatches {
        headers: None,
        method: None,
        path: None,
        query_params: None,
    }];
    let matches = match rule.matches.as_deref() {
        Some(m) if !m.is_empty() => m,
        _ => &default_match,
    };
    let mut out = Vec::new();
    for (mi, m) in matches.iter().enumerate() {
        let (path, envoy_match) = translate_match(m).map_err(|e| format!("match {mi}: {e}"))?;
        let precedence = Precedence::of(&path, m);
        let mut entry = json!({ "match": envoy_match });
        filters.header_modifiers(&mut entry);
        match &backends {
            None => {
                if !filters.mirrors.is_empty() || filters.rewrite.is_some() {
                    return Err(
                        "a rule without a backend of non-zero weight answers 500 and cannot mirror or rewrite".into(),
                    );
                }
                entry["direct_response"] = json!({ "status": 500 });
            }
            Some(clusters) => {
                entry["route"] = route_action(rule, &filters, clusters, &path, mi)?;
            }
        }
        out.push((precedence, entry));
    }
    Ok(out)
}

/// The Envoy route action of match `mi` of `rule` (whose path is `path`)
/// to its weighted `clusters`: mirrors, rewrite, timeouts and retry policy.
fn route_action(
    rule: &HttpRouteRules,
    filters: &RuleFilters,
    clusters: &[Value],
    path: &PathMatch,
    mi: usize,
) -> Result<Value, String> {
    let mut action = json!({ "weighted_clusters": { "clusters": clusters } });
    if !filters.mirrors.is_empty() {
        action["request_mirror_policies"] = json!(filters.mirrors);
    }
    if let Some(rw) = filters.rewrite {
        rewrite(rw, path, &mut action).map_err(|e| format!("match {mi}: {e}"))?;
    }
    timeouts_and_retry(rule.timeouts.as_ref(), rule.retry.as_ref(), &mut action)?;
    Ok(action)
}

#[derive(Clone, Copy, PartialEq)]
enum PathKind {
    Exact,
    Prefix,
    Regex,
}

struct PathMatch {
    kind: PathKind,
    value: String,
}

/// A Gateway API match as an Envoy `RouteMatch`, with its path.
fn translate_match(m: &HttpRouteRulesMatches) -> Result<(PathMatch, Value), String> {
    let path = PathMatch::of(m);
    let mut out = path.envoy_match()?;
    let headers = header_matches(m)?;
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
    let query = query_matches(m);
    if !query.is_empty() {
        out["query_parameters"] = json!(query);
    }
    Ok((path, out))
}

impl PathMatch {
    /// The path match of `m`; a prefix of "/" when it has none.
    fn of(m: &HttpRouteRulesMatches) -> Self {
        let (kind, value) = match &m.path {
            None => (PathKind::Prefix, "/".to_string()),
            Some(p) => {
                let value = p.value.clone().unwrap_or_else(|| "/".into());
                let kind = match p.r#type {
                    None | Some(HttpRouteRulesMatchesPathType::PathPrefix) => PathKind::Prefix,
                    Some(HttpRouteRulesMatchesPathType::Exact) => PathKind::Exact,
                    Some(HttpRouteRulesMatchesPathType::RegularExpression) => PathKind::Regex,
                };
                (kind, value)
            }
        };
        PathMatch { kind, value }
    }

    /// An Envoy `RouteMatch` of this path alone.
    fn envoy_match(&self) -> Result<Value, String> {
        let value = &self.value;
        let mut out = json!({});
        match self.kind {
            PathKind::Exact => out["path"] = json!(value),
            PathKind::Regex => out["safe_regex"] = json!({ "regex": value }),
            PathKind::Prefix => {
                if !value.starts_with('/') || value.contains(['?', '#']) {
                    return Err(format!("path prefix {value:?} is not a path"));
                }
                let trimmed = value.trim_end_matches('/');
                if trimmed.is_empty() {
                    out["prefix"] = json!("/");
                } else {
                    // Gateway API prefixes match whole path segments.
                    out["path_separated_prefix"] = json!(trimmed);
                }
            }
        }
        Ok(out)
    }
}

/// The Envoy header matchers of `m`'s header matches, then of its method.
fn header_matches(m: &HttpRouteRulesMatches) -> Result<Vec<Value>, String> {
    let mut headers = Vec::new();
    for h in m.headers.iter().flatten() {
        let string_match = match h.r#type {
            None | Some(HttpRouteRulesMatchesHeadersType::Exact) => json!({ "exact": h.value }),
            Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => {
                json!({ "safe_regex": { "regex": h.value } })
            }
        };
        headers.push(json!({ "name": h.name.to_ascii_lowercase(), "string_match": string_match }));
    }
    if let Some(method) = &m.method {
        let name = serde_json::to_value(method).map_err(|e| e.to_string())?;
        headers.push(json!({ "name": ":method", "string_match": { "exact": name } }));
    }
    Ok(headers)
}

/// The Envoy query parameter matchers of `m`'s query parameter matches.
fn query_matches(m: &HttpRouteRulesMatches) -> Vec<Value> {
    let mut query = Vec::new();
    for q in m.query_params.iter().flatten() {
        let string_match = match q.r#type {
            None | Some(HttpRouteRulesMatchesQueryParamsType::Exact) => json!({ "exact": q.value }),
            Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) => {
                json!({ "safe_regex": { "regex": q.value } })
            }
        };
        query.push(json!({ "name": q.name, "string_match": string_match }));
    }
    query
}

/// A reference to a Service, as backends and mirrors make them.
struct ServiceRef<'a> {
    group: Option<&'a str>,
    kind: Option<&'a str>,
    name: &'a str,
    namespace: Option<&'a str>,
    port: Option<i32>,
}

/// The cluster a Service reference names, checked against the playground's
/// Services.
fn service_cluster(
    what: &str,
    r: ServiceRef,
    ns: Option<&str>,
    services: &Services,
) -> Result<String, String> {
    let ServiceRef {
        group,
        kind,
        name,
        namespace,
        port,
    } = r;
    if !matches!(group, None | Some("")) || !matches!(kind, None | Some("Service")) {
        return Err(format!(
            "{what} {name}: only core Services are supported, not group {group:?} kind {kind:?}"
        ));
    }
    if namespace.is_some() && namespace != ns {
        return Err(format!(
            "{what} {name}: namespace {namespace:?} is not the route's ({ns:?})"
        ));
    }
    let namespace = namespace.or(ns).unwrap_or("default");
    if namespace != services.namespace {
        return Err(format!(
            "{what} {name}: namespace {namespace:?} is not the playground's ({:?})",
            services.namespace
        ));
    }
    let Some(port) = port else {
        return Err(format!("{what} {name}: a Service reference needs a port"));
    };
    if port != services.port {
        return Err(format!(
            "{what} {name}: port {port} is not the playground Services' port {}",
            services.port
        ));
    }
    if !services.upstreams.contains_key(name) {
        return Err(format!(
            "{what} {name}: no such Service in the playground (it has {:?})",
            services.upstreams.keys().collect::<Vec<_>>()
        ));
    }
    Ok(services.cluster(name))
}

/// The rule's backends as Envoy weighted clusters, without those of weight
/// 0; `None` when no weight is left (Gateway API: answer 500).
fn weighted_clusters(
    rule: &HttpRouteRules,
    ns: Option<&str>,
    services: &Services,
) -> Result<Option<Vec<Value>>, String> {
    let mut clusters = Vec::new();
    for b in rule.backend_refs.iter().flatten() {
        let r = ServiceRef {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            name: &b.name,
            namespace: b.namespace.as_deref(),
            port: b.port,
        };
        let name = service_cluster("backendRef", r, ns, services)?;
        let weight = b.weight.unwrap_or(1);
        if weight < 0 {
            return Err(format!("backendRef {name}: negative weight {weight}"));
        }
        let mut cluster = json!({ "name": name, "weight": weight });
        for f in b.filters.iter().flatten() {
            backend_filter(f, &mut cluster).map_err(|e| format!("backendRef {}: {e}", b.name))?;
        }
        if weight > 0 {
            clusters.push(cluster);
        }
    }
    Ok((!clusters.is_empty()).then_some(clusters))
}

/// A backend's filter on its Envoy `ClusterWeight`: only header modifiers.
fn backend_filter(f: &HttpRouteRulesBackendRefsFilters, cluster: &mut Value) -> Result<(), String> {
    use HttpRouteRulesBackendRefsFiltersType as T;
    match f.r#type {
        T::RequestHeaderModifier => {
            let m = f
                .request_header_modifier
                .as_ref()
                .ok_or("RequestHeaderModifier without its settings")?;
            let set = pairs(m.set.iter().flatten().map(|h| (&h.name, &h.value)));
            let add = pairs(m.add.iter().flatten().map(|h| (&h.name, &h.value)));
            modify(
                cluster,
                "request",
                &set,
                &add,
                m.remove.as_deref().unwrap_or_default(),
            );
            Ok(())
        }
        T::ResponseHeaderModifier => {
            let m = f
                .response_header_modifier
                .as_ref()
                .ok_or("ResponseHeaderModifier without its settings")?;
            let set = pairs(m.set.iter().flatten().map(|h| (&h.name, &h.value)));
            let add = pairs(m.add.iter().flatten().map(|h| (&h.name, &h.value)));
            modify(
                cluster,
                "response",
                &set,
                &add,
                m.remove.as_deref().unwrap_or_default(),
            );
            Ok(())
        }
        ref other => Err(format!("backend filter {other:?} is not supported")),
    }
}

fn pairs<'a>(it: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<(String, String)> {
    it.map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Adds `<dir>_headers_to_add` (set overwrites, add appends) and
/// `<dir>_headers_to_remove` to an Envoy route or cluster weight.
fn modify(
    target: &mut Value,
    dir: &str,
    set: &[(String, String)],
    add: &[(String, String)],
    remove: &[String],
) {
    let mut to_add: Vec<Value> = target[format!("{dir}_headers_to_add")]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (action, list) in [
        ("OVERWRITE_IF_EXISTS_OR_ADD", set),
        ("APPEND_IF_EXISTS_OR_ADD", add),
    ] {
        for (k, v) in list {
            to_add.push(json!({ "header": { "key": k, "value": v }, "append_action": action }));
        }
    }
    if !to_add.is_empty() {
        target[format!("{dir}_headers_to_add")] = json!(to_add);
    }
    if !remove.is_empty() {
        let mut to_remove: Vec<Value> = target[format!("{dir}_headers_to_remove")]
            .as_array()
            .cloned()
            .unwrap_or_default();
        to_remove.extend(remove.iter().map(|r| json!(r)));
        target[format!("{dir}_headers_to_remove")] = json!(to_remove);
    }
}

/// A rule's filters as Envoy sees them.
struct RuleFilters<'a> {
    request_set: Vec<(String, String)>,
    request_add: Vec<(String, String)>,
    request_remove: Vec<String>,
    response_set: Vec<(String, String)>,
    response_add: Vec<(String, String)>,
    response_remove: Vec<String>,
    mirrors: Vec<Value>,
    rewrite: Option<&'a HttpRouteRulesFiltersUrlRewrite>,
}

/// Adds a header modifier's `set`, `add` and `remove` to the rule's lists.
macro_rules! add_headers {
    ($modifier:expr, $kind:literal, $set:expr, $add:expr, $remove:expr) => {{
        let m = $modifier
            .as_ref()
            .ok_or(concat!($kind, " without its settings"))?;
        $set.extend(pairs(m.set.iter().flatten().map(|h| (&h.name, &h.value))));
        $add.extend(pairs(m.add.iter().flatten().map(|h| (&h.name, &h.value))));
        $remove.extend(m.remove.iter().flatten().cloned());
    }};
}

impl<'a> RuleFilters<'a> {
    fn new(
        filters: &'a [HttpRouteRulesFilters],
        ns: Option<&str>,
        services: &Services,
    ) -> Result<Self, String> {
        let mut out = Self {
            request_set: vec![],
            request_add: vec![],
            request_remove: vec![],
            response_set: vec![],
            response_add: vec![],
            response_remove: vec![],
            mirrors: vec![],
            rewrite: None,
        };
        for f in filters {
            out.add(f, ns, services)?;
        }
        Ok(out)
    }

    /// Adds the filter `f`.
    fn add(
        &mut self,
        f: &'a HttpRouteRulesFilters,
        ns: Option<&str>,
        services: &Services,
    ) -> Result<(), String> {
        use HttpRouteRulesFiltersType as T;
        match f.r#type {
            // Gateway API generates one type per direction, with the same
            // fields: one body for both.
            T::RequestHeaderModifier => add_headers!(
                f.request_header_modifier,
                "RequestHeaderModifier",
                self.request_set,
                self.request_add,
                self.request_remove
            ),
            T::ResponseHeaderModifier => add_headers!(
                f.response_header_modifier,
                "ResponseHeaderModifier",
                self.response_set,
                self.response_add,
                self.response_remove
            ),
            T::RequestMirror => {
                let m = f
                    .request_mirror
                    .as_ref()
                    .ok_or("RequestMirror without its settings")?;
                self.mirrors.push(mirror_policy(m, ns, services)?);
            }
            T::UrlRewrite => {
                if self.rewrite.is_some() {
                    return Err("more than one URLRewrite filter".into());
                }
                self.rewrite = Some(
                    f.url_rewrite
                        .as_ref()
                        .ok_or("URLRewrite without its settings")?,
                );
            }
            ref other => return Err(format!("filter {other:?} is not supported")),
        }
        Ok(())
    }

    /// The header modifiers on an Envoy route.
    fn header_modifiers(&self, entry: &mut Value) {
        modify(
            entry,
            "request",
            &self.request_set,
            &self.request_add,
            &self.request_remove,
        );
        modify(
            entry,
            "response",
            &self.response_set,
            &self.response_add,
            &self.response_remove,
        );
    }
}

/// A RequestMirror filter as an Envoy `RequestMirrorPolicy`.
fn mirror_policy(
    m: &HttpRouteRulesFiltersRequestMirror,
    ns: Option<&str>,
    services: &Services,
) -> Result<Value, String> {
    let r = &m.backend_ref;
    let r = ServiceRef {
        group: r.group.as_deref(),
        kind: r.kind.as_deref(),
        name: &r.name,
        namespace: r.namespace.as_deref(),
        port: r.port,
    };
    let cluster = service_cluster("RequestMirror", r, ns, services)?;
    let mut policy = json!({ "cluster": cluster });
    if let Some(fraction) = mirror_fraction(m)? {
        policy["runtime_fraction"] = json!({ "default_value": fraction });
    }
    Ok(policy)
}

/// A mirror's share as an Envoy `FractionalPercent`; `None` for all.
fn mirror_fraction(m: &HttpRouteRulesFiltersRequestMirror) -> Result<Option<Value>, String> {
    match (m.percent, &m.fraction) {
        (Some(_), Some(_)) => Err("RequestMirror with both percent and fraction".into()),
        (None, None) => Ok(None),
        (Some(p), None) => {
            if !(0..=100).contains(&p) {
                return Err(format!("RequestMirror percent {p} is out of 0..=100"));
            }
            Ok(Some(json!({ "numerator": p, "denominator": "HUNDRED" })))
        }
        (None, Some(f)) => {
            let den = f.denominator.unwrap_or(100);
            if den <= 0 || f.numerator < 0 || f.numerator > den || 1_000_000 % den != 0 {
                return Err(format!(
                    "RequestMirror fraction {}/{den} is not a fraction of a million",
                    f.numerator
                ));
            }
            Ok(Some(json!({
                "numerator": f.numerator * (1_000_000 / den),
                "denominator": "MILLION",
            })))
        }
    }
}

/// A URLRewrite on an Envoy route action matching `path`.
fn rewrite(
    rw: &HttpRouteRulesFiltersUrlRewrite,
    path: &PathMatch,
    action: &mut Value,
) -> Result<(), String> {
    if let Some(host) = &rw.hostname {
        action["host_rewrite_literal"] = json!(host);
    }
    let Some(p) = &rw.path else { return Ok(()) };
    match p.r#type {
        HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath => {
            let full = p
                .replace_full_path
                .as_ref()
                .ok_or("ReplaceFullPath without replaceFullPath")?;
            action["regex_rewrite"] = json!({
                "pattern": { "regex": "^/.*$" },
                "substitution": full,
            });
        }
        HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch => {
            let with = p
                .replace_prefix_match
                .as_ref()
                .ok_or("ReplacePrefixMatch without replacePrefixMatch")?;
            if path.kind != PathKind::Prefix {
                return Err("ReplacePrefixMatch needs a PathPrefix match".into());
            }
            // The matched segments give way to the replacement; what
            // follows them stays, one slash between the two.
            let prefix = regex::escape(path.value.trim_end_matches('/'));
            let with = with.trim_end_matches('/');
            let (pattern, substitution) = if with.is_empty() {
                (format!("^{prefix}/?(.*)$"), "/\\1".to_string())
            } else {
                (format!("^{prefix}(/.*)?$"), format!("{with}\\1"))
            };
            action["regex_rewrite"] = json!({
                "pattern": { "regex": pattern },
                "substitution": substitution,
            });
        }
    }
    Ok(())
}

/// Timeouts and the retry policy on an Envoy route action: the request
/// timeout as the route's, the backend request timeout as the per-try one.
fn timeouts_and_retry(
    timeouts: Option<&HttpRouteRulesTimeouts>,
    retry: Option<&HttpRouteRulesRetry>,
    action: &mut Value,
) -> Result<(), String> {
    if let Some(t) = timeouts.and_then(|t| t.request.as_deref()) {
        action["timeout"] = json!(duration(t)?);
    }
    let per_try = timeouts
        .and_then(|t| t.backend_request.as_deref())
        .map(duration)
        .transpose()?;
    if retry.is_none() && per_try.is_none() {
        return Ok(());
    }
    let attempts = retry.and_then(|r| r.attempts).unwrap_or(0);
    let codes: Vec<i64> = retry.and_then(|r| r.codes.clone()).unwrap_or_default();
    let mut retry_on = "connect-failure,refused-stream,reset".to_string();
    if !codes.is_empty() {
        retry_on.push_str(",retriable-status-codes");
    }
    let mut policy = json!({ "retry_on": retry_on, "num_retries": attempts });
    if !codes.is_empty() {
        policy["retriable_status_codes"] = json!(codes);
    }
    if let Some(t) = per_try {
        policy["per_try_timeout"] = json!(t);
    }
    if let Some(b) = retry.and_then(|r| r.backoff.as_deref()) {
        policy["retry_back_off"] = json!({ "base_interval": duration(b)? });
    }
    action["retry_policy"] = policy;
    Ok(())
}

/// A Gateway API duration ("1h", "10s", "500ms", "1m30s": one to four
/// parts of up to five digits and a unit) as a protobuf JSON duration
/// ("90.000s").
fn duration(d: &str) -> Result<String, String> {
    let refuse = || format!("{d:?} is not a Gateway API duration");
    let mut ms: u64 = 0;
    let mut parts = 0;
    let mut rest = d;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(refuse());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| refuse())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return Err(refuse());
        };
        rest = &rest[len..];
        ms += n * unit;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(refuse());
    }
    Ok(format!("{}.{:03}s", ms / 1000, ms % 1000))
}

// ---------------------------------------------------------------------------
// The process
// ---------------------------------------------------------------------------

/// A running Envoy; killed when dropped.
pub struct Envoy {
    child: Child,
    dir: tempfile::TempDir,
    admin: String,
    /// The listener's port on 127.0.0.1.
    pub port: u16,
    services: Services,
    version: u64,
    /// The routes Envoy serves.
    applied: Option<Value>,
    client: reqwest::Client,
}

/// The file-based resources Envoy watches: a `DiscoveryResponse`.
fn discovery(version: u64, resources: Vec<Value>) -> Value {
    json!({ "version_info": version.to_string(), "resources": resources })
}

/// Writes `value` to `path` atomically: a temporary file, then a rename,
/// which is what Envoy's file watch picks up.
fn write_atomically(path: &Path, value: &Value) -> Result<(), EnvoyError> {
    let config = |source| EnvoyError::Config {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| config(e.into()))?;
    let mut f = std::fs::File::create(&tmp).map_err(config)?;
    f.write_all(text.as_bytes()).map_err(config)?;
    f.sync_all().ok();
    std::fs::rename(&tmp, path).map_err(config)
}

/// An HTTP client for loopback traffic: no proxy, keep-alive, 10 s timeout.
pub(crate) fn client() -> Result<reqwest::Client, EnvoyError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| EnvoyError::Client(e.to_string()))
}

/// The cluster of one Service: one static loopback endpoint.
fn cluster(name: &str, port: u16) -> Value {
    json!({
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                "socket_address": { "address": "127.0.0.1", "port_value": port }
            }}}]}],
        },
    })
}

/// The listener: HTTP on a free loopback port, routes from `routes_path`.
fn listener(routes_path: &Path) -> Value {
    json!({
        "@type": LISTENER_TYPE,
        "name": "playground",
        "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
        "filter_chains": [{ "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "playground",
                "strip_any_host_port": true,
                "rds": {
                    "route_config_name": ROUTE_CONFIG,
                    "config_source": {
                        "path_config_source": { "path": routes_path },
                        "resource_api_version": "V3",
                    },
                },
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                }],
            },
        }]}],
    })
}

/// Writes Envoy's configuration into `dir`: no routes yet, a cluster per
/// Service of `services`, the listener, and the bootstrap reading them.
fn write_config(dir: &Path, services: &Services) -> Result<(), EnvoyError> {
    let p = |name: &str| dir.join(name);
    let routes_path = p("routes.json");
    write_atomically(
        &routes_path,
        &discovery(
            0,
            vec![json!({ "@type": ROUTE_TYPE, "name": ROUTE_CONFIG, "virtual_hosts": [] })],
        ),
    )?;
    let clusters = services.clusters().map(|(n, p)| cluster(&n, p)).collect();
    write_atomically(&p("cds.json"), &discovery(0, clusters))?;
    write_atomically(&p("lds.json"), &discovery(0, vec![listener(&routes_path)]))?;
    write_atomically(&p("bootstrap.json"), &bootstrap(dir))
}

/// The bootstrap: the admin on a free loopback port, the listener and the
/// clusters from the files in `dir`.
fn bootstrap(dir: &Path) -> Value {
    let p = |name: &str| dir.join(name);
    json!({
        "node": { "id": "sluice-playground", "cluster": "sluice-playground" },
        // Histograms reach /stats/prometheus at each flush (5 s by
        // default): every second, as often as Prometheus scrapes.
        "stats_flush_interval": "1s",
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "dynamic_resources": {
            "lds_config": { "path_config_source": { "path": p("lds.json") }, "resource_api_version": "V3" },
            "cds_config": { "path_config_source": { "path": p("cds.json") }, "resource_api_version": "V3" },
        },
    })
}

/// Runs `binary` on the bootstrap in `dir`, its output to `envoy.log`
/// there, its admin address written to `admin.txt`.
fn spawn(binary: &Path, dir: &Path) -> Result<Child, EnvoyError> {
    let p = |name: &str| dir.join(name);
    let log_path = p("envoy.log");
    let log = std::fs::File::create(&log_path).map_err(|source| EnvoyError::Config {
        path: log_path.clone(),
        source,
    })?;
    let log2 = log.try_clone().map_err(|source| EnvoyError::Config {
        path: log_path,
        source,
    })?;
    Command::new(binary)
        .arg("-c")
        .arg(p("bootstrap.json"))
        .arg("--admin-address-path")
        .arg(p("admin.txt"))
        .args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--log-level",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|source| EnvoyError::Spawn {
            binary: binary.to_path_buf(),
            source,
        })
}

impl Envoy {
    /// Starts `binary` with one cluster per Service of `services`, every
    /// request answered 404 until the first [`apply`](Self::apply).
    pub async fn start(binary: &Path, services: &Services) -> Result<Envoy, EnvoyError> {
        let dir = tempfile::tempdir().map_err(|source| EnvoyError::Config {
            path: std::env::temp_dir(),
            source,
        })?;
        write_config(dir.path(), services)?;
        let child = spawn(binary, dir.path())?;
        let mut envoy = Envoy {
            child,
            dir,
            admin: String::new(),
            port: 0,
            services: services.clone(),
            version: 0,
            applied: None,
            client: client()?,
        };
        envoy.wait_ready().await?;
        Ok(envoy)
    }

    /// The Services Envoy has clusters for.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Envoy's admin address, `127.0.0.1:<port>`: `/stats/prometheus` is
    /// served there.
    pub fn admin_address(&self) -> &str {
        &self.admin
    }

    /// The last lines of Envoy's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn failed(&mut self, what: &str) -> EnvoyError {
        EnvoyError::Failed {
            what: what.to_string(),
            status: self.child.try_wait().ok().flatten(),
            log: self.log_tail(),
        }
    }

    async fn wait_ready(&mut self) -> Result<(), EnvoyError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if Instant::now() > deadline {
                return Err(self.failed("was not ready after 30 s"));
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.failed("exited at start"));
            }
            if self.admin.is_empty() {
                if let Ok(a) = std::fs::read_to_string(self.dir.path().join("admin.txt"))
                    && !a.trim().is_empty()
                {
                    self.admin = a.trim().to_string();
                }
            } else if let Ok(listeners) = self.admin_json("listeners?format=json").await
                && let Some(port) =
                    listeners["listener_statuses"][0]["local_address"]["socket_address"]
                        ["port_value"]
                        .as_u64()
                && let Ok(port) = u16::try_from(port)
                && port != 0
            {
                self.port = port;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GETs an admin path (e.g. `stats/prometheus`).
    pub async fn admin_get(&self, path: &str) -> Result<String, reqwest::Error> {
        self.client
            .get(format!("http://{}/{path}", self.admin))
            .send()
            .await?
            .text()
            .await
    }

    async fn admin_json(&self, path: &str) -> Result<Value, String> {
        let body = self.admin_get(path).await.map_err(|e| e.to_string())?;
        serde_json::from_str(&body).map_err(|e| e.to_string())
    }

    /// How many route updates Envoy has rejected.
    async fn rejected(&self) -> u64 {
        let stats = self
            .admin_get("stats?filter=update_rejected")
            .await
            .unwrap_or_default();
        stats
            .lines()
            .filter(|l| l.starts_with(&format!("http.playground.rds.{ROUTE_CONFIG}.")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Translates `route`, writes it as Envoy's routes and waits until
    /// Envoy serves them; an error when the translator refuses the route or
    /// Envoy rejects it.
    pub async fn apply(&mut self, route: &HttpRoute) -> Result<Value, EnvoyError> {
        let config = translate(route, &self.services)?;
        // Envoy ignores an update that changes nothing, version included.
        if self.applied.as_ref() == Some(&config) {
            return Ok(config);
        }
        let rejected = self.rejected().await;
        self.version += 1;
        let version = self.version.to_string();
        write_atomically(
            &self.dir.path().join("routes.json"),
            &discovery(self.version, vec![config.clone()]),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dump = self
                .admin_json("config_dump?resource=dynamic_route_configs")
                .await
                .unwrap_or_default();
            let applied = dump["configs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["version_info"] == json!(version));
            if applied {
                self.applied = Some(config.clone());
                return Ok(config);
            }
            if self.rejected().await > rejected {
                return Err(EnvoyError::Rejected {
                    config: serde_json::to_string_pretty(&config).unwrap_or_default(),
                    log: self.log_tail(),
                });
            }
            if Instant::now() > deadline {
                return Err(EnvoyError::NotLoaded {
                    version: self.version,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends one request through Envoy.
    pub async fn get(&self, r: &Request) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = self.client.get(self.url(&r.path));
        for (k, v) in &r.headers {
            req = req.header(k, v);
        }
        req.send().await
    }

    /// Sends `n` requests through Envoy as fast as it answers, 8 at a time;
    /// `request(i)` gives the i-th one's path and headers.
    pub async fn send(
        &self,
        n: usize,
        request: impl Fn(usize) -> Request + Send + Sync + 'static,
    ) -> Tally {
        let request = std::sync::Arc::new(request);
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (request, next, client) = (request.clone(), next.clone(), self.client.clone());
            let base = self.url("");
            tasks.spawn(async move {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return tally;
                    }
                    let r = request(i);
                    tally.record(r.send(&client, &base).await).await;
                }
            });
        }
        let mut total = Tally::default();
        while let Some(t) = tasks.join_next().await {
            if let Ok(t) = t {
                total.merge(t);
            }
        }
        total
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
