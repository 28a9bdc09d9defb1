//! RolloutPlugins through the registration code path the operator runs:
//! register from a ConfigMap, an HTTP URL or an OCI registry, select by
//! name from a Canary, swap live, and refuse what must be refused (bad
//! digest, wrong world, wrong version, over its limits, a built-in's name)
//! without ever leaving a Canary half-served.

use crate::common;

use common::Healthy;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};
use sluice_api::{CanaryPhase, RolloutPlugin, RolloutPluginStatus};
use sluice_host::builtin::wasm;
use sluice_rollout::analysis::Analyzer;
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::registration::{Fetcher, Registrar};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn plugin(yaml: &str) -> RolloutPlugin {
    yaml_serde::from_str(yaml).expect("RolloutPlugin parses")
}

fn config_map_plugin(name: &str, kind: &str) -> RolloutPlugin {
    plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: {name}}}\nspec:\n  kind: {kind}\n  source:\n    configMap: {{name: {name}-wasm, namespace: sluice-system}}\n"
    ))
}

fn put_wasm(cluster: &MemoryCluster, name: &str, wasm: &[u8]) {
    cluster
        .put_config_map(ConfigMap {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(format!("{name}-wasm")),
                namespace: Some("sluice-system".into()),
                ..Default::default()
            },
            binary_data: Some(BTreeMap::from([(
                "plugin.wasm".to_string(),
                ByteString(wasm.to_vec()),
            )])),
            ..Default::default()
        })
        .unwrap();
}

fn registrar(cluster: &MemoryCluster) -> Registrar<MemoryCluster> {
    Registrar::new(
        cluster.clone(),
        common::registry(),
        Fetcher::new(Duration::from_secs(10), vec![]).unwrap(),
    )
}

/// Registers `p` as the operator would: stored, then reconciled.
async fn register(
    r: &Registrar<MemoryCluster>,
    cluster: &MemoryCluster,
    p: RolloutPlugin,
) -> RolloutPluginStatus {
    let name = p.metadata.name.clone().unwrap();
    cluster.put_rollout_plugin(p).unwrap();
    let stored = cluster.rollout_plugin(&name).unwrap();
    let status = r.reconcile(&stored).await.unwrap();
    assert_eq!(
        cluster.rollout_plugin(&name).unwrap().status.as_ref(),
        Some(&status),
        "the status is written"
    );
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_from_a_config_map_is_registered_and_selected_by_name() {
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    put_wasm(&cluster, "team-canary", wasm::WEIGHTED);
    let status = register(&r, &cluster, config_map_plugin("team-canary", "strategy")).await;
    assert!(status.loaded, "{status:?}");
    assert_eq!(status.digest.as_deref(), Some(sha(wasm::WEIGHTED).as_str()));
    assert_eq!(status.wit_version.as_deref(), Some("0.1.0"));
    assert_eq!(status.error, None);
    assert_eq!(status.observed_generation, Some(1));

    // A Canary selects it by name and rolls out with it.
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    strategy: team-canary\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate_with(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
        r.registry.clone(),
    )
    .await;
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
    assert!(
        sim.messages()
            .contains(&"Advance podinfo.test canary weight 30".to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_the_field_and_the_fault() {
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    let cases: [(&str, &str, &[u8], &str); 5] = [
        (
            "wrong-world",
            "strategy",
            wasm::THRESHOLD,
            "spec.kind: the component is an evaluator plugin, not a strategy",
        ),
        (
            "wrong-version",
            "strategy",
            common::test_plugin("future"),
            "it targets sluice:plugin@0.2.0; this host supports sluice:plugin@0.1.x",
        ),
        (
            "endless",
            "strategy",
            common::test_plugin("loop"),
            "plugin endless timed out: no answer within 100 ms",
        ),
        (
            "greedy",
            "strategy",
            common::test_plugin("alloc"),
            "plugin greedy exhausted its memory",
        ),
        (
            "overweight",
            "strategy",
            common::test_plugin("overweight"),
            "advance to canary weight 150 exceeds the Canary's maximum of 50",
        ),
    ];
    for (name, kind, bytes, expected) in cases {
        put_wasm(&cluster, name, bytes);
        let status = register(&r, &cluster, config_map_plugin(name, kind)).await;
        assert!(!status.loaded, "{name}: {status:?}");
        let error = status.error.unwrap();
        assert!(error.contains(expected), "{name}: {error}");
        // A Canary that selects it waits, with the reason.
        let why = r.registry.strategy(name).err().unwrap().to_string();
        assert!(
            why.starts_with(&format!("strategy plugin {name:?} failed to load: ")),
            "{why}"
        );
    }

    // A built-in's name cannot be taken.
    put_wasm(&cluster, "weighted", wasm::WEIGHTED);
    let status = register(&r, &cluster, config_map_plugin("weighted", "strategy")).await;
    assert_eq!(
        status.error.as_deref(),
        Some("metadata.name: \"weighted\" is a built-in plugin; register yours under another name")
    );
    assert!(
        r.registry.strategy("weighted").is_ok(),
        "the built-in stays"
    );

    // A missing key says how to create it.
    let status = register(&r, &cluster, config_map_plugin("absent", "strategy")).await;
    assert!(
        status
            .error
            .unwrap()
            .starts_with("spec.source.configMap: ConfigMap sluice-system/absent-wasm not found")
    );
}

/// A local server for the URL and OCI sources: `/files/NAME` serves a
/// component; `/v2/…` speaks enough of the OCI distribution API to pull an
/// artifact with one Wasm layer.
#[derive(Clone, Default)]
struct Served {
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn file(State(s): State<Served>, Path(name): Path<String>) -> impl IntoResponse {
    s.requests.lock().unwrap().push(format!("file {name}"));
    match s.files.lock().unwrap().get(&name) {
        Some(b) => (StatusCode::OK, b.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn artifact(wasm: &[u8]) -> (String, Vec<u8>) {
    let config = b"{}".to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.wasm.config.v0+json",
            "digest": format!("sha256:{}", sha(&config)),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/wasm",
            "digest": format!("sha256:{}", sha(wasm)),
            "size": wasm.len(),
        }],
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    (format!("sha256:{}", sha(&body)), body)
}

async fn oci(
    State(s): State<Served>,
    Path((repo, kind, reference)): Path<(String, String, String)>,
) -> impl IntoResponse {
    s.requests
        .lock()
        .unwrap()
        .push(format!("oci {repo} {kind} {reference}"));
    let files = s.files.lock().unwrap();
    let Some(wasm) = files.get(&repo) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (manifest_digest, manifest) = artifact(wasm);
    match kind.as_str() {
        "manifests" => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                "application/vnd.oci.image.manifest.v1+json"
                    .parse()
                    .unwrap(),
            );
            headers.insert("docker-content-digest", manifest_digest.parse().unwrap());
            (StatusCode::OK, headers, manifest).into_response()
        }
        "blobs" if reference == format!("sha256:{}", sha(wasm)) => {
            (StatusCode::OK, wasm.clone()).into_response()
        }
        "blobs" if reference == format!("sha256:{}", sha(b"{}")) => {
            (StatusCode::OK, b"{}".to_vec()).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve() -> (String, Served) {
    let served = Served::default();
    let app = Router::new()
        .route("/files/{name}", get(file))
        .route("/v2/", get(|| async { "{}" }))
        .route("/v2/{repo}/{kind}/{reference}", get(oci))
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, served)
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_sources_need_and_check_the_digest() {
    let (addr, served) = serve().await;
    served
        .files
        .lock()
        .unwrap()
        .insert("geometric.wasm".into(), wasm::WEIGHTED.to_vec());
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    let url = format!("http://{addr}/files/geometric.wasm");

    let no_digest = plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: geometric}}\nspec:\n  kind: strategy\n  source: {{url: '{url}'}}\n"
    ));
    let status = register(&r, &cluster, no_digest).await;
    assert_eq!(
        status.error.as_deref(),
        Some("spec.sha256: required for url and oci sources (sha256sum plugin.wasm)")
    );

    let wrong = "0".repeat(64);
    let bad_digest = plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: geometric}}\nspec:\n  kind: strategy\n  source: {{url: '{url}'}}\n  sha256: '{wrong}'\n"
    ));
    let status = register(&r, &cluster, bad_digest).await;
    assert_eq!(
        status.error.unwrap(),
        format!(
            "spec.sha256: mismatch: expected {wrong}, the component's is {}; refusing it",
            sha(wasm::WEIGHTED)
        )
    );
    assert!(r.registry.strategy("geometric").is_err());

    let good = plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: geometric}}\nspec:\n  kind: strategy\n  source: {{url: '{url}'}}\n  sha256: 'sha256:{}'\n  limits: {{timeout: 50ms, memoryMiB: 32}}\n  config: {{factor: 2}}\n",
        sha(wasm::WEIGHTED)
    ));
    let status = register(&r, &cluster, good).await;
    assert!(status.loaded, "{status:?}");
    let loaded = r.registry.strategy("geometric").unwrap();
    assert_eq!(loaded.limits().time_budget, Duration::from_millis(50));
    assert_eq!(loaded.limits().memory_bytes, 32 * 1024 * 1024);
    assert_eq!(loaded.config_or_default(""), "{\"factor\":2}");
    assert_eq!(
        loaded.config_or_default("{}"),
        "{}",
        "a Canary's config wins"
    );

    // The same component as an OCI artifact.
    served
        .files
        .lock()
        .unwrap()
        .insert("blue-green".into(), wasm::BLUE_GREEN.to_vec());
    let r = Registrar::new(
        cluster.clone(),
        r.registry.clone(),
        Fetcher::new(Duration::from_secs(10), vec![addr.clone()]).unwrap(),
    );
    let from_oci = plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: team-blue-green}}\nspec:\n  kind: strategy\n  source: {{oci: '{addr}/blue-green:1.0'}}\n  sha256: '{}'\n",
        sha(wasm::BLUE_GREEN)
    ));
    let status = register(&r, &cluster, from_oci).await;
    assert!(status.loaded, "{status:?}");
    assert_eq!(
        r.registry.strategy("team-blue-green").unwrap().digest(),
        sha(wasm::BLUE_GREEN)
    );
    let requests = served.requests.lock().unwrap().clone();
    assert!(
        requests.contains(&"oci blue-green manifests 1.0".to_string()),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_takes_over_at_the_next_tick_and_a_bad_one_never_does() {
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    put_wasm(&cluster, "team-canary", wasm::WEIGHTED);
    register(&r, &cluster, config_map_plugin("team-canary", "strategy")).await;

    let deployment: k8s_openapi::api::apps::v1::Deployment = yaml_serde::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec: {containers: [{name: podinfod, image: 'podinfo:1'}]}\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("    stepWeight: 10\n", "    stepWeight: 10\n    strategy: team-canary\n")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    cluster
        .put_canary(sluice_api::load::canary_from_yaml(&yaml).unwrap())
        .unwrap();
    for t in common::templates() {
        cluster.put_metric_template(t).unwrap();
    }
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, r.registry.clone());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let tick = async |now: Timestamp| {
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await.unwrap();
        cluster.advance_tick();
        out
    };
    for _ in 0..3 {
        tick(now).await;
        now += jiff::SignedDuration::from_secs(60);
    }
    let mut d = cluster.get_deployment("test", "podinfo").unwrap();
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("podinfo:2".into());
    cluster.put_deployment(d).unwrap();
    for _ in 0..4 {
        tick(now).await;
        now += jiff::SignedDuration::from_secs(60);
    }
    let status = cluster.canary("test", "podinfo").unwrap().status.unwrap();
    assert_eq!(status.phase, Some(CanaryPhase::Progressing));
    assert_eq!(
        status.strategy_digest.as_deref(),
        Some(sha(wasm::WEIGHTED).as_str())
    );
    let weight_before = status.canary_weight;
    assert!(weight_before > 0);

    // A broken update is refused; the good version keeps serving.
    put_wasm(&cluster, "team-canary", common::test_plugin("loop"));
    let stored = cluster.rollout_plugin("team-canary").unwrap();
    let refused = r.reconcile(&stored).await.unwrap();
    assert!(refused.loaded, "the previous version still serves");
    assert_eq!(
        refused.digest.as_deref(),
        Some(sha(wasm::WEIGHTED).as_str())
    );
    assert!(refused.error.unwrap().contains("timed out"));
    let out = tick(now).await;
    now += jiff::SignedDuration::from_secs(60);
    assert_eq!(out.status.canary_weight, weight_before + 10);

    // A good update takes over at the next tick, with an event.
    put_wasm(&cluster, "team-canary", wasm::SESSION_AFFINITY);
    let stored = cluster.rollout_plugin("team-canary").unwrap();
    let swapped = r.reconcile(&stored).await.unwrap();
    assert_eq!(
        swapped.digest.as_deref(),
        Some(sha(wasm::SESSION_AFFINITY).as_str())
    );
    assert_eq!(swapped.error, None);
    let out = tick(now).await;
    let swap_event = out
        .events
        .iter()
        .find(|e| {
            e.message
                .starts_with("Strategy plugin team-canary changed from sha256:")
        })
        .expect("an event tells the swap");
    assert!(
        swap_event
            .message
            .ends_with("for podinfo.test; the rollout continues with the new one"),
        "{}",
        swap_event.message
    );
    assert_eq!(
        out.status.strategy_digest.as_deref(),
        Some(sha(wasm::SESSION_AFFINITY).as_str())
    );

    // Deleting the RolloutPlugin leaves the Canary waiting, not half-served.
    r.remove(&cluster.rollout_plugin("team-canary").unwrap());
    let out = tick(now).await;
    let ready = out
        .status
        .conditions
        .iter()
        .find(|c| c.condition_type == "Ready")
        .unwrap();
    assert_eq!(ready.reason.as_deref(), Some("PluginUnavailable"));
    assert_eq!(
        out.status.canary_weight,
        weight_before + 10,
        "nothing moved"
    );
}
