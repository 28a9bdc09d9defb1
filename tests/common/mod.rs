//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use sluice::simulate::{self, Simulation, scenario::Scenario};
use sluice_api::{Canary, MetricTemplate, load};
use sluice_host::{ArtifactCache, Limits, PluginHost, PluginRegistry};

/// Held by the tests that use every core for seconds (cargo builds of
/// plugins, compiling componentize-py and componentize-js components,
/// fuzzing): one of them at a time, so that the tests running beside it,
/// whose plugin calls have 100 ms budgets, keep their timings.
pub fn cpu_heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the repository, e.g. "examples/podinfo-canary.yaml".
pub fn read(path: &str) -> String {
    let p = repo_root().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// A plugin host whose compiled plugins are cached across tests.
pub fn host() -> PluginHost {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    PluginHost::new(Some(ArtifactCache::new(dir).expect("cache dir"))).expect("plugin host")
}

pub fn registry() -> PluginRegistry {
    PluginRegistry::with_builtins(host()).expect("built-in plugins load")
}

/// The registry with `wasm` as the strategy of every Canary.
pub fn registry_with_strategy(name: &str, wasm: &[u8]) -> PluginRegistry {
    let mut r = registry();
    let plugin = r
        .host()
        .load_strategy(name, wasm, Limits::default())
        .expect("strategy loads");
    r.override_strategy(plugin);
    r
}

pub fn canary(path: &str) -> Canary {
    load::canary_from_yaml(&read(path)).expect("canary parses")
}

pub fn templates() -> Vec<MetricTemplate> {
    load::metric_templates_from_yaml(&read("examples/metric-templates.yaml"))
        .expect("templates parse")
}

pub fn scenario(yaml: &str) -> Scenario {
    Scenario::from_yaml(yaml).expect("scenario parses")
}

/// Runs a simulation with the given registry.
pub async fn simulate_with(
    canary: Canary,
    scenario: Scenario,
    registry: PluginRegistry,
) -> Simulation {
    let factory = move || Ok(registry.clone());
    simulate::run(canary, templates(), scenario, &factory)
        .await
        .expect("simulation runs")
}

pub async fn simulate(canary: Canary, scenario: Scenario) -> Simulation {
    simulate_with(canary, scenario, registry()).await
}

/// The canary's share of traffic in an HTTPRoute: the largest weight any
/// rule gives the canary backend, plus whether anything mirrors to it.
pub fn canary_exposure(route: &sluice_rollout::router::HttpRoute) -> (i32, bool) {
    let mut weight = 0;
    let mut mirrored = false;
    for rule in route.spec.rules.iter().flatten() {
        for b in rule.backend_refs.iter().flatten() {
            if b.name.ends_with("-canary") {
                weight = weight.max(b.weight.unwrap_or(1));
            }
        }
        for f in rule.filters.iter().flatten() {
            if let Some(m) = &f.request_mirror
                && m.backend_ref.name.ends_with("-canary")
            {
                mirrored = true;
            }
        }
    }
    (weight, mirrored)
}

/// A deliberately misbehaving plugin of `tests/plugins/` (`loop`, `alloc`,
/// `trap`, `overweight`, `future`, `hostile_strategy`, `hostile_evaluator`,
/// `schema_strategy`):
/// the workspace is built for wasm32-wasip2 once per test run, and never
/// ships in the `sluice` binary.
pub fn test_plugin(name: &str) -> &'static [u8] {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static BUILT: OnceLock<HashMap<String, &'static [u8]>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-plugins");
        build_wasm_workspace(&repo_root().join("tests/plugins/Cargo.toml"), &target_dir);
        let dir = target_dir.join("wasm32-wasip2/release");
        [
            "loop",
            "alloc",
            "trap",
            "overweight",
            "future",
            "hostile_strategy",
            "hostile_evaluator",
            "schema_strategy",
            "v2_strategy",
            "v2_evaluator",
            "hostile_v2",
        ]
        .into_iter()
        .map(|n| {
            // Contract-0.1 plugins are `sluice-test-*` crates; the 0.2 ones
            // are named after their contract.
            let file = if n.starts_with("v2_") {
                format!("{n}.wasm")
            } else {
                format!("sluice_test_{n}.wasm")
            };
            let bytes =
                std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("test plugin {n}: {e}"));
            (n.to_string(), &*Vec::leak(bytes))
        })
        .collect()
    });
    built
        .get(name)
        .copied()
        .unwrap_or_else(|| panic!("no test plugin {name}"))
}

/// Builds an example plugin of `examples/plugins/<dir>` the way its README
/// says, outside the engine's build, into a shared target directory;
/// returns the component's path. `stem` is the crate's library name.
pub fn build_example_plugin(dir: &str, stem: &str) -> PathBuf {
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("example-plugins");
    build_wasm_workspace(
        &repo_root()
            .join("examples/plugins")
            .join(dir)
            .join("Cargo.toml"),
        &target_dir,
    );
    target_dir.join(format!("wasm32-wasip2/release/{stem}.wasm"))
}

/// `cargo build --release --target wasm32-wasip2` of a plugin manifest,
/// with none of the outer build's flags or target dir.
fn build_wasm_workspace(manifest: &std::path::Path, target_dir: &std::path::Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building {} failed (is the wasm32-wasip2 target installed? tests/run installs it):\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every metric sits at the healthy edge of its threshold range (its
/// minimum, else 0) and every webhook passes.
pub struct Healthy;

impl sluice_rollout::analysis::checks::MetricsProvider for Healthy {
    async fn value(
        &self,
        _: &sluice_api::Canary,
        check: &sluice_api::MetricCheck,
        _: sluice_rollout::analysis::checks::MetricTarget,
    ) -> Result<Option<f64>, sluice_rollout::BoxError> {
        Ok(Some(check.threshold_range.min.unwrap_or(0.0)))
    }

    async fn series(
        &self,
        _: &sluice_api::Canary,
        check: &sluice_api::MetricCheck,
        _: sluice_rollout::analysis::checks::MetricTarget,
        _: std::time::Duration,
        _: std::time::Duration,
    ) -> Result<Vec<f64>, sluice_rollout::BoxError> {
        Ok(vec![check.threshold_range.min.unwrap_or(0.0); 10])
    }
}

impl sluice_rollout::analysis::checks::WebhookCaller for Healthy {
    async fn call(
        &self,
        _: &sluice_api::Canary,
        _: &sluice_api::Webhook,
        _: sluice_api::CanaryPhase,
    ) -> Result<(), sluice_rollout::BoxError> {
        Ok(())
    }

    async fn send_event(
        &self,
        _: &sluice_api::Canary,
        _: &sluice_api::Webhook,
        _: &sluice_rollout::cluster::Event,
        _: jiff::Timestamp,
    ) -> Result<(), sluice_rollout::BoxError> {
        Ok(())
    }
}

/// Runs the `sluice` binary from the repository root, with the test
/// target's plugin cache.
pub fn sluice(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(repo_root())
        .env(
            "SLUICE_PLUGIN_CACHE",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
        )
        .output()
        .expect("run sluice")
}

/// The target Deployment `podinfo` of namespace `ns` (one replica,
/// `podinfo:1`), as the in-memory tests create it.
pub fn podinfo_deployment(ns: &str) -> k8s_openapi::api::apps::v1::Deployment {
    yaml_serde::from_str(&format!(
        "metadata: {{name: podinfo, namespace: {ns}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: podinfo}}}}\n  template:\n    metadata: {{labels: {{app: podinfo}}}}\n    spec: {{containers: [{{name: podinfod, image: 'podinfo:1'}}]}}\n",
    ))
    .expect("deployment parses")
}

/// A new image for `podinfo` of namespace `ns`: a new revision to roll out.
pub fn new_image(cluster: &sluice_rollout::cluster::memory::MemoryCluster, ns: &str) {
    let mut d = cluster.get_deployment(ns, "podinfo").expect("the target");
    let spec = d.spec.as_mut().and_then(|s| s.template.spec.as_mut());
    spec.expect("a pod spec").containers[0].image = Some("podinfo:2".into());
    cluster.put_deployment(d).expect("stored");
}
