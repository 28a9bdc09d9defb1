//! Golden tests of the generated HTTPRoute: for every seed example, the
//! route Sluice renders at every distinct step of a healthy rollout and
//! after a failed one is compared with a checked-in YAML file under
//! `tests/golden/<example>/` that a reviewer can read.
//!
//! To accept new output after an intended change:
//! `SLUICE_BLESS=1 cargo test --test golden`, then review the diff.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use gateway_api::apis::standard::httproutes::HttpRoute as StandardHttpRoute;
use sluice::api::{Canary, load};
use sluice::router::HttpRoute;

/// Merges a `spec.service` fragment of the guide into the weighted canary.
fn with_service_fragment(fragment: &str) -> Canary {
    let base = load::documents(&common::read("examples/podinfo-canary.yaml"))
        .unwrap()
        .remove(0);
    let frag = load::documents(fragment).unwrap().remove(0);
    let mut merged = base;
    let service = merged
        .pointer_mut("/spec/service")
        .unwrap()
        .as_object_mut()
        .unwrap();
    for (k, v) in frag["spec"]["service"].as_object().unwrap() {
        service.insert(k.clone(), v.clone());
    }
    load::canary_from_yaml(&serde_yaml::to_string(&merged).unwrap()).unwrap()
}

/// Each example: a Canary and the metric names its scenarios feed.
fn examples() -> Vec<(String, Canary)> {
    let mut out = vec![
        (
            "weighted".to_string(),
            common::canary("examples/podinfo-canary.yaml"),
        ),
        (
            "ab-testing".to_string(),
            common::canary("examples/podinfo-ab-canary.yaml"),
        ),
        (
            "session-affinity".to_string(),
            common::canary("examples/podinfo-canary-session-affinity.yaml"),
        ),
        (
            "mirroring".to_string(),
            common::canary("examples/podinfo-canary-mirror.yaml"),
        ),
        (
            "blue-green".to_string(),
            common::canary("examples/podinfo-blue-green.yaml"),
        ),
        (
            "service-headers".to_string(),
            with_service_fragment(&common::read("examples/service-headers.yaml")),
        ),
        (
            "service-cors".to_string(),
            with_service_fragment(&common::read("examples/service-cors.yaml")),
        ),
    ];
    let rewrites = load::documents(&common::read("examples/service-rewrite.yaml")).unwrap();
    for (i, doc) in rewrites.iter().enumerate() {
        out.push((
            format!("service-rewrite-{}", i + 1),
            with_service_fragment(&serde_yaml::to_string(doc).unwrap()),
        ));
    }
    out
}

const HEALTHY: &str = "ticks: 40\nprimaryReadyAfter: 1\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\n  request-success-rate: [100]\n  request-duration: [100]\nchanges:\n  - tick: 3\n    image: podinfod=podinfo:2\n";
const FAILING: &str = "ticks: 40\nmetrics:\n  error-rate: [0.1, 0.1, 0.1, 0.1, 50]\n  latency: [0.1]\n  request-success-rate: [100, 100, 100, 100, 10]\n  request-duration: [100]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n";

/// The distinct routes of a run, named by the state that produced them.
async fn routes_of(canary: &Canary, scenario: &str, tag: &str) -> Vec<(String, HttpRoute)> {
    let sim = common::simulate(canary.clone(), common::scenario(scenario)).await;
    let mut out: Vec<(String, HttpRoute)> = Vec::new();
    for t in &sim.ticks {
        let mut route = t.http_route.clone().expect("a route at every tick");
        // What Sluice writes: the generation and the status are the API
        // server's and the Gateway's.
        route.metadata.generation = None;
        route.status = None;
        if out.last().is_some_and(|(_, r)| *r == route) {
            continue;
        }
        let phase = t
            .phase
            .map(|p| p.to_string().to_lowercase())
            .unwrap_or_default();
        let name = format!(
            "{tag}-{:02}-{phase}-w{}-i{}",
            t.tick, t.canary_weight, t.iterations
        );
        out.push((name, route));
    }
    out
}

fn golden_dir(example: &str) -> PathBuf {
    common::repo_root().join("tests/golden").join(example)
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_routes_match_the_golden_files() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut mismatches = Vec::new();
    for (example, canary) in examples() {
        let mut routes = routes_of(&canary, HEALTHY, "healthy").await;
        routes.extend(routes_of(&canary, FAILING, "failing").await);
        let dir = golden_dir(&example);
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let p = e.unwrap().path();
                let name = p.file_stem().unwrap().to_string_lossy().to_string();
                expected.insert(name, std::fs::read_to_string(&p).unwrap());
            }
        }
        if bless {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut seen = Vec::new();
        for (name, route) in routes {
            let yaml = serde_yaml::to_string(&route).unwrap();
            seen.push(name.clone());
            if bless {
                std::fs::write(dir.join(format!("{name}.yaml")), &yaml).unwrap();
            } else if expected.get(&name) != Some(&yaml) {
                mismatches.push(format!(
                    "{example}/{name}.yaml differs or is missing:\n{yaml}"
                ));
            }
        }
        if !bless {
            for name in expected.keys().filter(|n| !seen.contains(n)) {
                mismatches.push(format!("{example}/{name}.yaml is no longer generated"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(run SLUICE_BLESS=1 cargo test --test golden to accept)",
        mismatches.join("\n")
    );
}

/// Every golden file is an HTTPRoute of the Gateway API v1 schema: it
/// deserializes into the typed v1 object and serializes back unchanged
/// (no field outside the schema), and obeys the rules the API server
/// enforces on weights, filters and matches.
#[test]
fn golden_files_are_valid_gateway_api_v1_httproutes() {
    let root = common::repo_root().join("tests/golden");
    let mut count = 0;
    for example in std::fs::read_dir(&root).expect("golden files exist") {
        for file in std::fs::read_dir(example.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let value: serde_json::Value = serde_yaml::from_str(&text).unwrap();
            let route: StandardHttpRoute = serde_path_to_error::deserialize(value.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                serde_json::to_value(&route).unwrap(),
                value,
                "{}: fields outside the v1 schema",
                path.display()
            );
            assert_eq!(route.metadata.name.as_deref(), Some("podinfo"));
            assert_eq!(value["apiVersion"], "gateway.networking.k8s.io/v1");
            let rules = route.spec.rules.as_ref().unwrap();
            assert!(!rules.is_empty() && rules.len() <= 16, "{}", path.display());
            for rule in rules {
                let backends = rule.backend_refs.as_ref().unwrap();
                let total: i32 = backends.iter().map(|b| b.weight.unwrap()).sum();
                assert_eq!(total, 100, "{}", path.display());
                for b in backends {
                    assert_eq!(b.kind.as_deref(), Some("Service"));
                    assert_eq!(b.port, Some(9898));
                    assert!(b.name == "podinfo-primary" || b.name == "podinfo-canary");
                }
                let mut kinds: Vec<String> = rule
                    .filters
                    .iter()
                    .flatten()
                    .map(|f| format!("{:?}", f.r#type))
                    .filter(|k| k != "RequestMirror")
                    .collect();
                let n = kinds.len();
                kinds.dedup();
                assert_eq!(
                    n,
                    kinds.len(),
                    "{}: a filter type appears twice in a rule",
                    path.display()
                );
                for m in rule.matches.iter().flatten() {
                    for h in m.headers.iter().flatten() {
                        if format!("{:?}", h.r#type) == "Some(RegularExpression)" {
                            regex::Regex::new(&h.value).unwrap();
                        }
                    }
                }
            }
            count += 1;
        }
    }
    assert!(
        count >= 20,
        "expected golden files for every example, found {count}"
    );
}
