//! The analysis state machine through the cluster trait: invalid specs,
//! missing plugins and misbehaving plugins never move traffic, and the
//! engine keeps serving.

mod common;

use jiff::Timestamp;
use sluice::analysis::Analyzer;
use sluice::analysis::checks::{MetricTarget, MetricsProvider, WebhookCaller};
use sluice::api::{Canary, CanaryPhase, MetricCheck, Webhook};
use sluice::cluster::EventType;
use sluice::cluster::memory::MemoryCluster;
use sluice::host::builtin::wasm;

const HEALTHY: &str = "ticks: 40\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n";

/// Every route of the run keeps all traffic on the primary.
fn assert_no_canary_traffic(sim: &sluice::simulate::Simulation) {
    for t in &sim.ticks {
        let route = t.http_route.as_ref().expect("route exists");
        assert_eq!(
            common::canary_exposure(route),
            (0, false),
            "tick {} moved traffic",
            t.tick
        );
        assert_eq!(t.canary_weight, 0, "tick {}", t.tick);
    }
}

async fn run_with_bad_strategy(name: &str, wasm: &[u8]) -> sluice::simulate::Simulation {
    let registry = common::registry_with_strategy(name, wasm);
    common::simulate_with(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(HEALTHY),
        registry,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_plugin_never_moves_traffic_and_the_rollout_fails() {
    let sim = run_with_bad_strategy("loop", wasm::TEST_LOOP).await;
    assert_no_canary_traffic(&sim);
    let messages = sim.messages();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Halt podinfo.test advancement plugin loop timed out")),
        "{messages:?}"
    );
    assert!(
        messages
            .contains(&"Rolling back podinfo.test failed checks threshold reached 5".to_string())
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allocating_plugin_never_moves_traffic() {
    let sim = run_with_bad_strategy("alloc", wasm::TEST_ALLOC).await;
    assert_no_canary_traffic(&sim);
    assert!(
        sim.messages()
            .iter()
            .any(|m| m.contains("plugin alloc exhausted its memory"))
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trapping_plugin_never_moves_traffic() {
    let sim = run_with_bad_strategy("trap", wasm::TEST_TRAP).await;
    assert_no_canary_traffic(&sim);
    assert!(
        sim.messages()
            .iter()
            .any(|m| m.contains("plugin trap trapped"))
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_answering_weight_150_never_moves_traffic() {
    let sim = run_with_bad_strategy("overweight", wasm::TEST_OVERWEIGHT).await;
    assert_no_canary_traffic(&sim);
    let messages = sim.messages();
    assert!(
        messages.iter().any(|m| m.contains(
            "plugin overweight returned an invalid answer: canary weight 150 is outside 0-100"
        )),
        "{messages:?}"
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

/// Metrics and webhooks that always pass.
struct Passing;

impl MetricsProvider for Passing {
    async fn value(
        &self,
        _: &Canary,
        _: &MetricCheck,
        _: MetricTarget,
    ) -> Result<Option<f64>, String> {
        Ok(Some(0.0))
    }
}

impl WebhookCaller for Passing {
    async fn call(&self, _: &Canary, _: &Webhook, _: CanaryPhase) -> Result<(), String> {
        Ok(())
    }
}

fn world(canary_yaml: &str) -> (MemoryCluster, Canary) {
    let cluster = MemoryCluster::new();
    let canary = sluice::api::load::canary_from_yaml(canary_yaml).unwrap();
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_yaml::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec: {containers: [{name: podinfod, image: 'podinfo:1'}]}\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    let canary = cluster.put_canary(canary).unwrap();
    (cluster, canary)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_spec_gets_a_condition_and_one_event_and_touches_nothing() {
    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("stepWeight: 10", "stepWeight: 0")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let (cluster, canary) = world(&yaml);
    let analyzer = Analyzer::new(cluster.clone(), Passing, Passing, common::registry());
    let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let out = analyzer.reconcile(&canary, now).await.unwrap();
    let cond = out
        .status
        .conditions
        .iter()
        .find(|c| c.condition_type == "Ready")
        .unwrap();
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("InvalidSpec"));
    assert!(
        cond.message
            .as_deref()
            .unwrap()
            .contains("spec.analysis.stepWeight")
    );
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].event_type, EventType::Warning);
    assert!(
        cluster.route("test", "podinfo").is_none(),
        "no route may be created"
    );
    assert!(cluster.get_deployment("test", "podinfo-primary").is_none());
    // Not repeated every tick.
    let canary = cluster.canary("test", "podinfo").unwrap();
    let again = analyzer.reconcile(&canary, now).await.unwrap();
    assert!(again.events.is_empty());
    assert_eq!(cluster.events("test", "podinfo").len(), 1);

    // Fixing the spec clears the condition and bootstraps.
    let fixed =
        sluice::api::load::canary_from_yaml(&yaml.replace("stepWeight: 0", "stepWeight: 10"))
            .unwrap();
    let fixed = cluster.put_canary(fixed).unwrap();
    let out = analyzer.reconcile(&fixed, now).await.unwrap();
    assert_eq!(out.status.phase, Some(CanaryPhase::Initialized));
    assert_eq!(
        out.status
            .conditions
            .iter()
            .find(|c| c.condition_type == "Ready")
            .unwrap()
            .status,
        "True"
    );
    assert!(cluster.route("test", "podinfo").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unavailable_strategy_leaves_the_canary_waiting_with_a_condition() {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    strategy: geometric\n",
    );
    let yaml = yaml.replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let (cluster, canary) = world(&yaml);
    let analyzer = Analyzer::new(cluster.clone(), Passing, Passing, common::registry());
    let out = analyzer
        .reconcile(&canary, Timestamp::UNIX_EPOCH)
        .await
        .unwrap();
    let cond = out
        .status
        .conditions
        .iter()
        .find(|c| c.condition_type == "Ready")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("PluginUnavailable"));
    assert!(
        cond.message
            .as_deref()
            .unwrap()
            .contains("strategy plugin \"geometric\" is not available")
    );
    assert!(cluster.route("test", "podinfo").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_canary_with_a_bad_plugin_does_not_stop_another() {
    // Two Canaries in one cluster and one engine: the healthy one is
    // promoted while the other's plugin loops on every call.
    let sim_bad = run_with_bad_strategy("loop", wasm::TEST_LOOP);
    let sim_good = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(HEALTHY),
    );
    let (bad, good) = tokio::join!(sim_bad, sim_good);
    assert_eq!(bad.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
    assert_eq!(
        good.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

/// Config tracking: a ConfigMap the target reads is part of its revision,
/// and the primary reads its own copy, updated only on promotion.
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_config_map_is_a_new_revision_and_reaches_the_primary_on_promotion() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use sluice::cluster::Cluster;

    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let cluster = MemoryCluster::new();
    let config = |color: &str| -> ConfigMap {
        serde_yaml::from_str(&format!(
            "metadata: {{name: podinfo-config, namespace: test}}\ndata: {{color: {color}}}\n"
        ))
        .unwrap()
    };
    cluster.put_config_map(config("blue")).unwrap();
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_yaml::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec:\n      containers: [{name: podinfod, image: 'podinfo:1', envFrom: [{configMapRef: {name: podinfo-config}}]}]\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    cluster
        .put_canary(sluice::api::load::canary_from_yaml(&yaml).unwrap())
        .unwrap();
    let analyzer = Analyzer::new(cluster.clone(), Passing, Passing, common::registry());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut tick = async || {
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await.unwrap();
        now = now + jiff::SignedDuration::from_secs(60);
        cluster.advance_tick();
        out
    };
    let primary_color = async |c: &MemoryCluster| {
        c.config_map("test", "podinfo-config-primary")
            .await
            .unwrap()
            .expect("the primary's copy exists")
            .data
            .unwrap()["color"]
            .clone()
    };

    for _ in 0..3 {
        tick().await;
    }
    assert_eq!(
        cluster
            .canary("test", "podinfo")
            .unwrap()
            .status
            .unwrap()
            .phase,
        Some(CanaryPhase::Initialized)
    );
    assert_eq!(primary_color(&cluster).await, "blue");
    let primary = cluster.get_deployment("test", "podinfo-primary").unwrap();
    let env_from = &primary.spec.unwrap().template.spec.unwrap().containers[0]
        .env_from
        .clone()
        .unwrap()[0];
    assert_eq!(
        env_from.config_map_ref.as_ref().unwrap().name,
        "podinfo-config-primary"
    );
    // The target itself still reads the original.
    let target = cluster.get_deployment("test", "podinfo").unwrap();
    assert_eq!(
        target.spec.unwrap().template.spec.unwrap().containers[0]
            .env_from
            .clone()
            .unwrap()[0]
            .config_map_ref
            .as_ref()
            .unwrap()
            .name,
        "podinfo-config"
    );

    // Only the ConfigMap's data changes: a new revision.
    cluster.put_config_map(config("green")).unwrap();
    let out = tick().await;
    assert!(
        out.events
            .iter()
            .any(|e| e.message == "New revision detected podinfo.test"),
        "{:?}",
        out.events
    );
    assert_eq!(
        primary_color(&cluster).await,
        "blue",
        "not before promotion"
    );
    let mut promoted = false;
    for _ in 0..20 {
        let out = tick().await;
        if out.status.phase == Some(CanaryPhase::Succeeded) {
            promoted = true;
            break;
        }
    }
    assert!(promoted, "the rollout is promoted");
    assert_eq!(primary_color(&cluster).await, "green");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_config_map_is_a_condition_not_a_crash() {
    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let cluster = MemoryCluster::new();
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_yaml::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec:\n      containers: [{name: podinfod, image: 'podinfo:1', envFrom: [{configMapRef: {name: absent}}]}]\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    let canary = cluster
        .put_canary(sluice::api::load::canary_from_yaml(&yaml).unwrap())
        .unwrap();
    let analyzer = Analyzer::new(cluster.clone(), Passing, Passing, common::registry());
    let out = analyzer
        .reconcile(&canary, Timestamp::UNIX_EPOCH)
        .await
        .unwrap();
    let cond = out
        .status
        .conditions
        .iter()
        .find(|c| c.condition_type == "Ready")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("ConfigNotFound"));
    assert_eq!(
        cond.message.as_deref(),
        Some(
            "ConfigMap absent.test used by podinfo.test not found; create it or mark the reference optional"
        )
    );
    assert!(cluster.get_deployment("test", "podinfo-primary").is_none());
}
