//! RolloutPlugins through the registration code path the operator runs:
//! register from a ConfigMap, an HTTP URL or an OCI registry, select by
//! name from a Canary, swap live, and refuse what must be refused (bad
//! digest, wrong world, wrong version, over its limits, a built-in's name)
//! without ever leaving a Canary half-served. Sources are fetched with pull
//! secrets, timeouts and the size cap, and the last good version survives a
//! restart of the operator through the plugin cache.

use crate::common;

use common::Healthy;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha2::{Digest, Sha256};
use sluice_api::{CanaryPhase, RolloutPlugin, RolloutPluginStatus};
use sluice_host::builtin::wasm;
use sluice_host::{ArtifactCache, PluginHost, PluginRegistry};
use sluice_rollout::analysis::Analyzer;
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::registration::source::MAX_PLUGIN_BYTES;
use sluice_rollout::registration::{FetchError, Fetcher, Registrar, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
            "it targets sluice:plugin@0.3.0; this host supports sluice:plugin@0.1.x and 0.2.x",
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
    /// The `Authorization` the registry requires, if any (Basic).
    required_auth: Arc<Mutex<Option<String>>>,
    /// The `Authorization` of every registry request.
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    /// Layer sizes the manifest declares instead of the true one, by repository.
    declared_sizes: Arc<Mutex<BTreeMap<String, i64>>>,
    /// Bytes a layer's blob sends instead of its content, by repository.
    blob_bodies: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

impl Served {
    /// Whether a registry request may go on: records its authorization,
    /// and answers 401 with a Basic challenge when it lacks the required one.
    fn admit(&self, headers: &HeaderMap) -> Option<axum::response::Response> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.authorizations.lock().unwrap().push(given.clone());
        let required = self.required_auth.lock().unwrap().clone();
        match required {
            Some(r) if given.as_deref() != Some(r.as_str()) => Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"test registry\"")],
                )
                    .into_response(),
            ),
            _ => None,
        }
    }
}

async fn file(State(s): State<Served>, Path(name): Path<String>) -> impl IntoResponse {
    s.requests.lock().unwrap().push(format!("file {name}"));
    match s.files.lock().unwrap().get(&name) {
        Some(b) => (StatusCode::OK, b.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn artifact(wasm: &[u8], declared: Option<i64>) -> (String, Vec<u8>) {
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
            "size": declared.unwrap_or(wasm.len() as i64),
        }],
    });
    let body = serde_json::to_vec(&manifest).unwrap();
    (format!("sha256:{}", sha(&body)), body)
}

async fn oci(
    State(s): State<Served>,
    Path((repo, kind, reference)): Path<(String, String, String)>,
    request_headers: HeaderMap,
) -> impl IntoResponse {
    if let Some(denied) = s.admit(&request_headers) {
        return denied;
    }
    s.requests
        .lock()
        .unwrap()
        .push(format!("oci {repo} {kind} {reference}"));
    let files = s.files.lock().unwrap();
    let Some(wasm) = files.get(&repo) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let declared = s.declared_sizes.lock().unwrap().get(&repo).copied();
    let (manifest_digest, manifest) = artifact(wasm, declared);
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
            let body = s.blob_bodies.lock().unwrap().get(&repo).cloned();
            (StatusCode::OK, body.unwrap_or_else(|| wasm.clone())).into_response()
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
        .route(
            "/v2/",
            get(|State(s): State<Served>, headers: HeaderMap| async move {
                s.admit(&headers).unwrap_or_else(|| "{}".into_response())
            }),
        )
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
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: team-blue-green}}\nspec:\n  kind: strategy\n  source: {{oci: {{reference: '{addr}/blue-green:1.0'}}}}\n  sha256: '{}'\n",
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
async fn a_new_version_of_a_plugin_that_follows_updates_takes_over_at_the_next_tick_and_a_bad_one_never_does()
 {
    // Without followUpdates a rollout in progress keeps its version (see
    // a_rollout_in_progress_keeps_its_version_unless_the_plugin_follows_updates).
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    put_wasm(&cluster, "team-canary", wasm::WEIGHTED);
    register(
        &r,
        &cluster,
        strategy_plugin_with("team-canary", "  followUpdates: true\n"),
    )
    .await;

    cluster
        .put_deployment(common::podinfo_deployment("test"))
        .unwrap();
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
    common::new_image(&cluster, "test");
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

fn oci_plugin(
    name: &str,
    reference: &str,
    pull_secret: Option<&str>,
    wasm: &[u8],
) -> RolloutPlugin {
    let secret = pull_secret
        .map(|s| format!(", pullSecret: {{name: {s}, namespace: sluice-system}}"))
        .unwrap_or_default();
    plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: {name}}}\nspec:\n  kind: strategy\n  source: {{oci: {{reference: '{reference}'{secret}}}}}\n  sha256: '{}'\n",
        sha(wasm)
    ))
}

fn url_plugin(name: &str, url: &str, wasm: &[u8]) -> RolloutPlugin {
    plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: {name}}}\nspec:\n  kind: strategy\n  source: {{url: '{url}'}}\n  sha256: '{}'\n",
        sha(wasm)
    ))
}

fn put_secret(
    cluster: &MemoryCluster,
    name: &str,
    type_: &str,
    key: &str,
    json: serde_json::Value,
) {
    cluster
        .put_secret(Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                namespace: Some("sluice-system".into()),
                ..Default::default()
            },
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(json.to_string().into_bytes()),
            )])),
            ..Default::default()
        })
        .unwrap();
}

/// `sluice:s3cret`, as HTTP Basic and docker config `auth` carry it.
const CREDENTIALS: &str = "c2x1aWNlOnMzY3JldA==";

#[tokio::test(flavor = "multi_thread")]
async fn oci_pull_secrets_give_the_registry_its_credentials() {
    let (addr, served) = serve().await;
    served
        .files
        .lock()
        .unwrap()
        .insert("private".into(), wasm::BLUE_GREEN.to_vec());
    *served.required_auth.lock().unwrap() = Some(format!("Basic {CREDENTIALS}"));
    let cluster = MemoryCluster::new();
    let fetcher = Fetcher::new(Duration::from_secs(10), vec![addr.clone()]).unwrap();
    let reference = format!("{addr}/private:1.0");
    let fetch = async |secret: Option<&str>| {
        let p = oci_plugin("private", &reference, secret, wasm::BLUE_GREEN);
        fetcher.fetch(&cluster, &p.spec.source).await
    };

    // Anonymous, the registry refuses; the message says what to set.
    let err = fetch(None).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "spec.source.oci: {addr} refused to serve {reference}"
        )),
        "{err}"
    );
    assert!(
        err.contains("set spec.source.oci.pullSecret to a kubernetes.io/dockerconfigjson Secret"),
        "{err}"
    );

    // A Secret that is missing is refused before the registry is asked.
    let asked = served.authorizations.lock().unwrap().len();
    let err = fetch(Some("registry-creds")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::PullSecretNotFound { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "spec.source.oci.pullSecret: Secret sluice-system/registry-creds not found; create it with kubectl -n sluice-system create secret docker-registry registry-creds"
        ),
        "{err}"
    );
    assert_eq!(served.authorizations.lock().unwrap().len(), asked);

    // Of the wrong type, or without this registry: refused, saying which.
    put_secret(&cluster, "opaque", "Opaque", "token", serde_json::json!({}));
    let err = fetch(Some("opaque")).await.unwrap_err().to_string();
    assert!(
        err.starts_with("spec.source.oci.pullSecret: Secret sluice-system/opaque is of type \"Opaque\", not kubernetes.io/dockerconfigjson"),
        "{err}"
    );
    put_secret(
        &cluster,
        "ghcr-creds",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        serde_json::json!({"auths": {"ghcr.io": {"auth": CREDENTIALS}}}),
    );
    let err = fetch(Some("ghcr-creds")).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "spec.source.oci.pullSecret: Secret sluice-system/ghcr-creds has no credentials for registry {addr} (it has: ghcr.io); add them, or name a Secret that has them"
        )
    );

    // With the registry's credentials, the registry sees them (HTTP Basic)
    // and the plugin registers.
    put_secret(
        &cluster,
        "registry-creds",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        serde_json::json!({"auths": {format!("http://{addr}"): {"auth": CREDENTIALS}}}),
    );
    served.authorizations.lock().unwrap().clear();
    let r = Registrar::new(cluster.clone(), common::registry(), fetcher.clone());
    let p = oci_plugin(
        "private",
        &reference,
        Some("registry-creds"),
        wasm::BLUE_GREEN,
    );
    let status = register(&r, &cluster, p).await;
    assert!(status.loaded, "{status:?}");
    assert_eq!(
        status.digest.as_deref(),
        Some(sha(wasm::BLUE_GREEN).as_str())
    );
    let basic = Some(format!("Basic {CREDENTIALS}"));
    let authorizations = served.authorizations.lock().unwrap().clone();
    assert!(
        authorizations.iter().filter(|a| **a == basic).count() >= 2,
        "the manifest and the layer are pulled with the credentials: {authorizations:?}"
    );
}

/// A server that answers every request with `head`, then zeros without end;
/// how many bytes it got to send.
async fn endless(head: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![0u8; 64 * 1024];
                while socket.write_all(&chunk).await.is_ok() {
                    counter.fetch_add(chunk.len(), Ordering::Relaxed);
                }
            });
        }
    });
    (addr, sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_body_over_the_cap_is_refused_without_reading_it_to_the_end() {
    let cluster = MemoryCluster::new();
    let fetcher = Fetcher::new(Duration::from_secs(60), vec![]).unwrap();
    let fetch = async |url: &str| {
        let p = url_plugin("huge", url, b"");
        tokio::time::timeout(
            Duration::from_secs(60),
            fetcher.fetch(&cluster, &p.spec.source),
        )
        .await
        .expect("the fetch ends")
    };

    // No length announced: reading stops past the cap.
    let (addr, sent) =
        endless("HTTP/1.1 200 OK\r\nContent-Type: application/wasm\r\nConnection: close\r\n\r\n")
            .await;
    let url = format!("http://{addr}/huge.wasm");
    let err = fetch(&url).await.unwrap_err();
    let FetchError::TooLarge { size, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        err.to_string().starts_with(&format!(
            "spec.source.url: {url} sent more than {MAX_PLUGIN_BYTES} bytes (reading stopped at "
        )),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("a plugin may be at most 33554432 bytes (32 MiB)"),
        "{err}"
    );
    assert!(
        matches!(size, sluice_rollout::registration::source::Oversize::Read(n) if *n > MAX_PLUGIN_BYTES)
    );
    // The connection is closed: the server stops getting rid of bytes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = sent.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sent.load(Ordering::Relaxed),
        after,
        "nothing is read any more"
    );

    // A length over the cap is refused before the body is read.
    let (addr, _) = endless("HTTP/1.1 200 OK\r\nContent-Length: 41943040\r\n\r\n").await;
    let url = format!("http://{addr}/huge.wasm");
    let err = fetch(&url).await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "spec.source.url: {url} declares 41943040 bytes (not pulled); a plugin may be at most 33554432 bytes"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_never_answers_hits_the_read_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let cluster = MemoryCluster::new();
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_millis(300),
        total: Duration::from_secs(60),
    };
    let fetcher = Fetcher::with_timeouts(timeouts, vec![addr.clone()]).unwrap();

    let url = format!("http://{addr}/plugin.wasm");
    let started = std::time::Instant::now();
    let p = url_plugin("silent", &url, b"");
    let err = fetcher.fetch(&cluster, &p.spec.source).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        format!(
            "spec.source.url: {url} did not answer in time (the operator waits 2s to connect, 300ms for each read and 60s in all); check that it is up and reachable from the operator"
        )
    );

    // The same for a registry.
    let started = std::time::Instant::now();
    let p = oci_plugin("silent", &format!("{addr}/silent:1.0"), None, b"");
    let err = fetcher.fetch(&cluster, &p.spec.source).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "spec.source.oci: the registry of {addr}/silent:1.0 did not answer in time"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oci_layer_over_the_cap_is_refused_before_the_pull() {
    let (addr, served) = serve().await;
    let cluster = MemoryCluster::new();
    let fetcher = Fetcher::new(Duration::from_secs(10), vec![addr.clone()]).unwrap();
    let layer = wasm::WEIGHTED;
    let over = MAX_PLUGIN_BYTES as i64 + 1;
    served
        .files
        .lock()
        .unwrap()
        .insert("huge".into(), layer.to_vec());
    served
        .declared_sizes
        .lock()
        .unwrap()
        .insert("huge".into(), over);

    let p = oci_plugin("huge", &format!("{addr}/huge:1.0"), None, layer);
    let err = fetcher.fetch(&cluster, &p.spec.source).await.unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "spec.source.oci: {addr}/huge:1.0: its Wasm layer declares {over} bytes (not pulled); a plugin may be at most {MAX_PLUGIN_BYTES} bytes"
        )),
        "{err}"
    );
    let requests = served.requests.lock().unwrap().clone();
    assert!(
        requests.contains(&"oci huge manifests 1.0".to_string()),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.starts_with("oci huge blobs")),
        "the layer is not pulled: {requests:?}"
    );

    // A layer that sends more than its manifest declares is cut off.
    served
        .files
        .lock()
        .unwrap()
        .insert("liar".into(), layer.to_vec());
    served
        .blob_bodies
        .lock()
        .unwrap()
        .insert("liar".into(), [layer, layer].concat());
    let p = oci_plugin("liar", &format!("{addr}/liar:1.0"), None, layer);
    let err = fetcher.fetch(&cluster, &p.spec.source).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "spec.source.oci: {addr}/liar:1.0: its Wasm layer sent more than the {} bytes its manifest declares; refusing it",
            layer.len()
        )
    );
}

/// A registry as a restarted operator has it: the built-ins only, over the
/// plugin cache in `dir`. The built-ins' compiled forms are linked from the
/// tests' shared cache, so that only registration's entries differ.
fn registry_in(dir: &std::path::Path) -> PluginRegistry {
    let shared = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    for entry in std::fs::read_dir(shared).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let to = dir.join(entry.file_name());
            if std::fs::hard_link(&path, &to).is_err() {
                let _ = std::fs::copy(&path, &to);
            }
        }
    }
    let host = PluginHost::new(Some(ArtifactCache::new(dir).unwrap())).unwrap();
    PluginRegistry::with_builtins(host).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_good_version_survives_a_restart_when_its_source_fails() {
    let (addr, served) = serve().await;
    served
        .files
        .lock()
        .unwrap()
        .insert("geometric.wasm".into(), wasm::WEIGHTED.to_vec());
    let url = format!("http://{addr}/files/geometric.wasm");
    let good = sha(wasm::WEIGHTED);
    let cache = tempfile::tempdir().unwrap();
    let cluster = MemoryCluster::new();
    let fetcher = Fetcher::new(Duration::from_secs(10), vec![]).unwrap();

    let first = Registrar::new(cluster.clone(), registry_in(cache.path()), fetcher.clone());
    let status = register(
        &first,
        &cluster,
        url_plugin("geometric", &url, wasm::WEIGHTED),
    )
    .await;
    assert!(status.loaded, "{status:?}");
    assert!(
        cache.path().join(format!("{good}.wasm")).exists(),
        "the component is kept by digest"
    );

    // The source goes away and the operator restarts: a new registry over
    // the same cache. The last good version serves again, the status says so.
    served.files.lock().unwrap().clear();
    let restarted = Registrar::new(cluster.clone(), registry_in(cache.path()), fetcher.clone());
    assert!(restarted.registry.strategy("geometric").is_err());
    let stored = cluster.rollout_plugin("geometric").unwrap();
    let status = restarted.reconcile(&stored).await.unwrap();
    assert!(status.loaded, "{status:?}");
    assert_eq!(status.digest.as_deref(), Some(good.as_str()));
    assert_eq!(status.wit_version.as_deref(), Some("0.1.0"));
    assert_eq!(
        status.error.as_deref(),
        Some(
            format!(
                "spec.source.url: {url} answered HTTP 404; still serving the last good version, sha256 {good}"
            )
            .as_str()
        )
    );
    assert_eq!(
        cluster.rollout_plugin("geometric").unwrap().status.as_ref(),
        Some(&status)
    );
    assert_eq!(
        restarted.registry.strategy("geometric").unwrap().digest(),
        good
    );

    // An update to an unreachable source is refused; so after another
    // restart, the last good version still serves.
    let update = url_plugin(
        "geometric",
        "http://127.0.0.1:1/geometric.wasm",
        wasm::SESSION_AFFINITY,
    );
    let stored = cluster.put_rollout_plugin(update).unwrap();
    let status = restarted.reconcile(&stored).await.unwrap();
    assert!(
        status.loaded && status.digest.as_deref() == Some(good.as_str()),
        "{status:?}"
    );
    let again = Registrar::new(cluster.clone(), registry_in(cache.path()), fetcher.clone());
    let stored = cluster.rollout_plugin("geometric").unwrap();
    let status = again.reconcile(&stored).await.unwrap();
    assert!(status.loaded, "{status:?}");
    let error = status.error.unwrap();
    assert!(
        error.starts_with("spec.source.url: fetching http://127.0.0.1:1/geometric.wasm: ")
            && error.ends_with(&format!(
                "; still serving the last good version, sha256 {good}"
            )),
        "{error}"
    );
    assert_eq!(again.registry.strategy("geometric").unwrap().digest(), good);

    // A restart without that cache cannot keep it: refused, saying why.
    let empty = tempfile::tempdir().unwrap();
    let amnesiac = Registrar::new(cluster.clone(), registry_in(empty.path()), fetcher);
    let stored = cluster.rollout_plugin("geometric").unwrap();
    let status = amnesiac.reconcile(&stored).await.unwrap();
    assert!(!status.loaded, "{status:?}");
    assert_eq!(status.digest, None);
    assert!(status.error.unwrap().ends_with(&format!(
        "; the last good version (sha256 {good}) is not in the plugin cache"
    )),);
    assert!(amnesiac.registry.strategy("geometric").is_err());
}

/// `name`'s plugin as a RolloutPlugin of a ConfigMap, with more spec lines.
fn strategy_plugin_with(name: &str, spec_lines: &str) -> RolloutPlugin {
    plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: {name}}}\nspec:\n  kind: strategy\n  source:\n    configMap: {{name: {name}-wasm, namespace: sluice-system}}\n{spec_lines}"
    ))
}

/// Runs the guide's Canary with strategy `team-canary` through a new
/// revision until it settles; its events.
async fn roll_out(registry: &PluginRegistry) -> (CanaryPhase, Vec<String>) {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    strategy: team-canary\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate_with(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
        registry.clone(),
    )
    .await;
    (sim.final_tick().unwrap().phase.unwrap(), sim.messages())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadowed_update_decides_alongside_never_applied_and_takes_over_only_when_clean() {
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    put_wasm(&cluster, "team-canary", wasm::WEIGHTED);
    register(&r, &cluster, strategy_plugin_with("team-canary", "")).await;
    let current = sha(wasm::WEIGHTED);

    // An update that would hold every rollout forever, under shadow.
    let hostile = common::test_plugin("hostile_strategy");
    put_wasm(&cluster, "team-canary", hostile);
    let shadowed = strategy_plugin_with(
        "team-canary",
        "  rolloutPolicy: shadow\n  shadowTicks: 3\n  config: random\n",
    );
    let status = register(&r, &cluster, shadowed.clone()).await;
    assert_eq!(
        status.digest.as_deref(),
        Some(current.as_str()),
        "the current version serves"
    );
    let shadow = status.shadow.clone().expect("a shadow");
    assert_eq!(
        (
            shadow.digest.as_str(),
            shadow.clean_ticks,
            shadow.required_ticks
        ),
        (sha(hostile).as_str(), 0, 3)
    );

    // A rollout runs on the current version and is promoted; the shadow's
    // answers are recorded, never applied, and each divergence is said.
    let (phase, messages) = roll_out(&r.registry).await;
    assert_eq!(phase, CanaryPhase::Succeeded, "{messages:#?}");
    for weight in [10, 20, 30, 40, 50] {
        assert!(messages.contains(&format!("Advance podinfo.test canary weight {weight}")));
    }
    let diverged: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("Shadow strategy team-canary of podinfo.test diverged at weight"))
        .collect();
    assert!(diverged.len() >= 5, "{messages:#?}");
    assert!(
        diverged[0].contains(&format!(
            "sha256:{} decided advance to weight 10 (iterations 0)",
            &current[..12]
        )) && diverged[0].contains(&format!(
            "sha256:{} would have decided hold (random ",
            &sha(hostile)[..12]
        )),
        "{}",
        diverged[0]
    );
    let divergences = r
        .registry
        .host()
        .metrics()
        .shadow_divergences("team-canary");
    assert_eq!(divergences, diverged.len() as u64);
    assert_eq!(
        r.registry.strategy("team-canary").unwrap().digest(),
        current
    );
    // The RolloutPlugin's status says so at its next reconcile.
    let stored = cluster.rollout_plugin("team-canary").unwrap();
    let status = r.reconcile(&stored).await.unwrap();
    let shadow = status.shadow.expect("still under shadow");
    assert_eq!(shadow.clean_ticks, 0);
    assert_eq!(u64::from(shadow.divergences), divergences);
    assert!(
        shadow
            .last_divergence
            .unwrap()
            .contains("would have decided hold (random ")
    );

    // The same build without the breaking setting decides as the current
    // version does: after 3 clean decisions it takes over.
    let clean = strategy_plugin_with(
        "team-canary",
        "  rolloutPolicy: shadow\n  shadowTicks: 3\n  config: clean\n",
    );
    let status = register(&r, &cluster, clean).await;
    assert_eq!(
        status
            .shadow
            .as_ref()
            .map(|s| (s.clean_ticks, s.divergences)),
        Some((0, 0))
    );
    let (phase, messages) = roll_out(&r.registry).await;
    assert_eq!(phase, CanaryPhase::Succeeded, "{messages:#?}");
    let took_over: Vec<&String> = messages
        .iter()
        .filter(|m| m.contains("took over"))
        .collect();
    assert_eq!(
        took_over,
        [&format!(
            "Shadow strategy team-canary sha256:{} took over after 3 decisions the same as sha256:{}",
            &sha(hostile)[..12],
            &current[..12]
        )],
        "{messages:#?}"
    );
    assert_eq!(
        r.registry.strategy("team-canary").unwrap().digest(),
        sha(hostile)
    );
    let stored = cluster.rollout_plugin("team-canary").unwrap();
    let status = r.reconcile(&stored).await.unwrap();
    assert_eq!(status.digest.as_deref(), Some(sha(hostile).as_str()));
    assert_eq!(status.shadow, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_promotes_a_shadowed_version_by_its_digest() {
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    put_wasm(&cluster, "team-canary", wasm::WEIGHTED);
    register(&r, &cluster, strategy_plugin_with("team-canary", "")).await;
    let hostile = common::test_plugin("hostile_strategy");
    put_wasm(&cluster, "team-canary", hostile);
    let mut p = strategy_plugin_with("team-canary", "  rolloutPolicy: shadow\n");
    let status = register(&r, &cluster, p.clone()).await;
    assert_eq!(
        status.shadow.map(|s| s.required_ticks),
        Some(10),
        "the default"
    );
    // Another digest in the annotation promotes nothing.
    p.metadata.annotations = Some(BTreeMap::from([(
        "sluice.dev/promote-shadow".to_string(),
        sha(wasm::WEIGHTED),
    )]));
    let status = register(&r, &cluster, p.clone()).await;
    assert_eq!(status.digest, Some(sha(wasm::WEIGHTED)));
    assert!(status.shadow.is_some());
    p.metadata.annotations = Some(BTreeMap::from([(
        "sluice.dev/promote-shadow".to_string(),
        format!("sha256:{}", sha(hostile)),
    )]));
    let status = register(&r, &cluster, p).await;
    assert_eq!(status.digest, Some(sha(hostile)));
    assert_eq!(status.shadow, None);
    assert_eq!(
        r.registry.strategy("team-canary").unwrap().digest(),
        sha(hostile)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_in_progress_keeps_its_version_unless_the_plugin_follows_updates() {
    for follow in [false, true] {
        let cluster = MemoryCluster::new();
        let r = registrar(&cluster);
        put_wasm(&cluster, "team-canary", wasm::WEIGHTED);
        let extra = if follow {
            "  followUpdates: true\n"
        } else {
            ""
        };
        register(&r, &cluster, strategy_plugin_with("team-canary", extra)).await;
        let yaml = common::read("examples/podinfo-canary.yaml")
            .replace("    stepWeight: 10\n", "    stepWeight: 10\n    strategy: team-canary\n")
            .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
        cluster
            .put_deployment(common::podinfo_deployment("test"))
            .unwrap();
        cluster
            .put_canary(sluice_api::load::canary_from_yaml(&yaml).unwrap())
            .unwrap();
        let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, r.registry.clone());
        let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut tick = async || {
            let canary = cluster.canary("test", "podinfo").unwrap();
            let out = analyzer.reconcile(&canary, now).await.unwrap();
            now += jiff::SignedDuration::from_secs(60);
            cluster.advance_tick();
            out
        };
        for _ in 0..3 {
            tick().await;
        }
        common::new_image(&cluster, "test");
        let mut out = tick().await;
        while out.status.canary_weight < 20 {
            out = tick().await;
        }
        assert_eq!(out.status.strategy_digest, Some(sha(wasm::WEIGHTED)));
        // An update mid-rollout that would hold it forever.
        put_wasm(
            &cluster,
            "team-canary",
            common::test_plugin("hostile_strategy"),
        );
        let update = strategy_plugin_with("team-canary", &format!("{extra}  config: random\n"));
        register(&r, &cluster, update).await;
        let mut messages = Vec::new();
        for _ in 0..12 {
            let out = tick().await;
            messages.extend(out.events.into_iter().map(|e| e.message));
        }
        let phase = cluster
            .canary("test", "podinfo")
            .unwrap()
            .status
            .unwrap()
            .phase;
        if follow {
            // It moved to the update at once, which holds it.
            assert_eq!(phase, Some(CanaryPhase::Progressing), "{messages:#?}");
            assert!(
                messages
                    .iter()
                    .any(|m| m.starts_with("Holding podinfo.test advancement: random ")),
                "{messages:#?}"
            );
            assert!(
                messages
                    .iter()
                    .any(|m| m.starts_with("Strategy plugin team-canary changed from sha256:")),
                "{messages:#?}"
            );
        } else {
            // It finished with the version it started with.
            assert_eq!(phase, Some(CanaryPhase::Succeeded), "{messages:#?}");
            assert!(
                !messages.iter().any(|m| m.contains("invalid answer")),
                "{messages:#?}"
            );
        }
    }
}

/// `name`'s evaluator as a RolloutPlugin of a ConfigMap, with more spec
/// lines.
fn evaluator_plugin_with(name: &str, spec_lines: &str) -> RolloutPlugin {
    plugin(&format!(
        "apiVersion: sluice.dev/v1beta1\nkind: RolloutPlugin\nmetadata: {{name: {name}}}\nspec:\n  kind: evaluator\n  source:\n    configMap: {{name: {name}-wasm, namespace: sluice-system}}\n{spec_lines}"
    ))
}

/// Runs the guide's Canary, its error-rate judged by the evaluator
/// `team-judge`, through a new revision until it settles; its events.
async fn roll_out_judged(registry: &PluginRegistry) -> (CanaryPhase, Vec<String>) {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "        thresholdRange:\n          max: 1\n",
        "        thresholdRange:\n          max: 1\n        evaluator: team-judge\n",
    );
    assert!(yaml.contains("evaluator: team-judge"));
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate_with(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
        registry.clone(),
    )
    .await;
    (sim.final_tick().unwrap().phase.unwrap(), sim.messages())
}

/// `wasm` with one more (empty) custom section: the same behaviour, a
/// new digest — an update that judges exactly as the current version.
fn rebuilt(wasm: &[u8]) -> Vec<u8> {
    let name = b"sluice-test-rebuild";
    let mut out = wasm.to_vec();
    out.push(0);
    out.push((name.len() + 1) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadowed_evaluator_judges_alongside_never_applied_and_takes_over_only_when_clean() {
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    put_wasm(&cluster, "team-judge", wasm::THRESHOLD);
    register(&r, &cluster, evaluator_plugin_with("team-judge", "")).await;
    let current = sha(wasm::THRESHOLD);

    // A 0.2 evaluator that needs 50 samples before it judges: under
    // shadow it would hold every rollout, so every verdict diverges.
    let waiting = common::test_plugin("v2_evaluator");
    put_wasm(&cluster, "team-judge", waiting);
    let status = register(
        &r,
        &cluster,
        evaluator_plugin_with(
            "team-judge",
            "  rolloutPolicy: shadow\n  shadowTicks: 3\n  config: {minSamples: 50}\n",
        ),
    )
    .await;
    assert_eq!(status.digest.as_deref(), Some(current.as_str()));
    let shadow = status.shadow.expect("a shadow");
    assert_eq!((shadow.digest, shadow.required_ticks), (sha(waiting), 3));

    let (phase, messages) = roll_out_judged(&r.registry).await;
    assert_eq!(phase, CanaryPhase::Succeeded, "the current version judges");
    let diverged: Vec<&String> = messages
        .iter()
        .filter(|m| {
            m.starts_with(
                "Shadow evaluator team-judge of podinfo.test diverged on metric error-rate",
            )
        })
        .collect();
    assert!(diverged.len() >= 5, "{messages:#?}");
    assert!(
        diverged[0].contains(&format!("sha256:{} judged pass", &current[..12]))
            && diverged[0].contains(&format!("sha256:{} would have judged", &sha(waiting)[..12])),
        "{}",
        diverged[0]
    );
    assert_eq!(
        r.registry.host().metrics().shadow_divergences("team-judge"),
        diverged.len() as u64
    );
    assert_eq!(
        r.registry.evaluator("team-judge").unwrap().digest(),
        current
    );
    let stored = cluster.rollout_plugin("team-judge").unwrap();
    let status = r.reconcile(&stored).await.unwrap();
    let shadow = status.shadow.expect("still under shadow");
    assert_eq!(shadow.clean_ticks, 0);
    assert!(shadow.divergences >= 5);

    // A rebuild that judges as the current version does takes over after
    // 3 clean verdicts.
    let same = rebuilt(wasm::THRESHOLD);
    put_wasm(&cluster, "team-judge", &same);
    let status = register(
        &r,
        &cluster,
        evaluator_plugin_with("team-judge", "  rolloutPolicy: shadow\n  shadowTicks: 3\n"),
    )
    .await;
    assert_eq!(status.shadow.map(|s| s.digest), Some(sha(&same)));
    let (phase, messages) = roll_out_judged(&r.registry).await;
    assert_eq!(phase, CanaryPhase::Succeeded, "{messages:#?}");
    let took_over: Vec<&String> = messages
        .iter()
        .filter(|m| m.contains("took over"))
        .collect();
    assert_eq!(
        took_over,
        [&format!(
            "Shadow evaluator team-judge sha256:{} took over after 3 verdicts the same as sha256:{}",
            &sha(&same)[..12],
            &current[..12]
        )],
        "{messages:#?}"
    );
    assert_eq!(
        r.registry.evaluator("team-judge").unwrap().digest(),
        sha(&same)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadowed_strategy_that_refuses_a_live_canary_s_settings_diverges() {
    let cluster = MemoryCluster::new();
    let r = registrar(&cluster);
    put_wasm(&cluster, "team-canary", wasm::WEIGHTED);
    register(&r, &cluster, strategy_plugin_with("team-canary", "")).await;
    // A 0.2 build whose settings check refuses the Canary's `bogus` key.
    let strict = common::test_plugin("v2_strategy");
    put_wasm(&cluster, "team-canary", strict);
    let shadowed =
        strategy_plugin_with("team-canary", "  rolloutPolicy: shadow\n  shadowTicks: 1\n");
    register(&r, &cluster, shadowed).await;
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    strategy: team-canary\n    strategyConfig: {bogus: 1}\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate_with(
        canary,
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
        r.registry.clone(),
    )
    .await;
    let messages = sim.messages();
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
    assert!(
        messages.iter().any(|m| m.contains("diverged")
            && m.contains(
                "strategyConfig is refused by the plugin: v2-strategy: unknown setting \"bogus\""
            )),
        "{messages:#?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("took over")),
        "{messages:#?}"
    );
    assert_eq!(
        r.registry.strategy("team-canary").unwrap().digest(),
        sha(wasm::WEIGHTED)
    );
}
