//! The analysis state machine through the cluster trait: invalid specs,
//! missing plugins and misbehaving plugins never move traffic, and the
//! engine keeps serving.

use crate::common;

use common::Healthy;

use jiff::Timestamp;
use sluice_api::{Canary, CanaryPhase};
use sluice_rollout::analysis::Analyzer;
use sluice_rollout::cluster::EventType;
use sluice_rollout::cluster::memory::MemoryCluster;

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
    let sim = run_with_bad_strategy("loop", common::test_plugin("loop")).await;
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
    let sim = run_with_bad_strategy("alloc", common::test_plugin("alloc")).await;
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
    let sim = run_with_bad_strategy("trap", common::test_plugin("trap")).await;
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
    let sim = run_with_bad_strategy("overweight", common::test_plugin("overweight")).await;
    assert_no_canary_traffic(&sim);
    let messages = sim.messages();
    assert!(
        messages.iter().any(|m| m.contains(
            "plugin overweight returned an invalid answer: advance to canary weight 150 exceeds the Canary's maximum of 50 (from 0)"
        )),
        "{messages:?}"
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

/// A new revision of the target (image podinfo:2).
fn new_revision(cluster: &MemoryCluster) {
    common::new_image(cluster, "test");
}

fn world(canary_yaml: &str) -> (MemoryCluster, Canary) {
    let cluster = MemoryCluster::new();
    let canary = sluice_api::load::canary_from_yaml(canary_yaml).unwrap();
    cluster
        .put_deployment(common::podinfo_deployment("test"))
        .unwrap();
    let canary = cluster.put_canary(canary).unwrap();
    (cluster, canary)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_spec_gets_a_condition_and_one_event_and_touches_nothing() {
    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("stepWeight: 10", "stepWeight: 0")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let (cluster, canary) = world(&yaml);
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
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
        sluice_api::load::canary_from_yaml(&yaml.replace("stepWeight: 0", "stepWeight: 10"))
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
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
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
    let sim_bad = run_with_bad_strategy("loop", common::test_plugin("loop"));
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
    use sluice_rollout::cluster::Cluster;

    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let cluster = MemoryCluster::new();
    let config = |color: &str| -> ConfigMap {
        yaml_serde::from_str(&format!(
            "metadata: {{name: podinfo-config, namespace: test}}\ndata: {{color: {color}}}\n"
        ))
        .unwrap()
    };
    cluster.put_config_map(config("blue")).unwrap();
    let deployment: k8s_openapi::api::apps::v1::Deployment = yaml_serde::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec:\n      containers: [{name: podinfod, image: 'podinfo:1', envFrom: [{configMapRef: {name: podinfo-config}}]}]\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    cluster
        .put_canary(sluice_api::load::canary_from_yaml(&yaml).unwrap())
        .unwrap();
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut tick = async || {
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await.unwrap();
        now += jiff::SignedDuration::from_secs(60);
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
    assert_eq!(stored_phase(&cluster), Some(CanaryPhase::Initialized));
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
    let deployment: k8s_openapi::api::apps::v1::Deployment = yaml_serde::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec:\n      containers: [{name: podinfod, image: 'podinfo:1', envFrom: [{configMapRef: {name: absent}}]}]\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    let canary = cluster
        .put_canary(sluice_api::load::canary_from_yaml(&yaml).unwrap())
        .unwrap();
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
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

/// The seed canary with every gate Flagger has.
fn gated_canary() -> Canary {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    webhooks:\n",
        "    webhooks:\n      - name: approve-rollout\n        type: confirm-rollout\n        url: http://gate.test/rollout\n      - name: approve-traffic\n        type: confirm-traffic-increase\n        url: http://gate.test/traffic\n      - name: approve-promotion\n        type: confirm-promotion\n        url: http://gate.test/promotion\n      - name: manual-rollback\n        type: rollback\n        url: http://gate.test/rollback\n",
    );
    sluice_api::load::canary_from_yaml(&yaml).unwrap()
}

fn messages_at(sim: &sluice::simulate::Simulation, tick: u64) -> Vec<String> {
    sim.ticks
        .iter()
        .filter(|t| t.tick == tick)
        .flat_map(|t| t.events.iter().map(|e| e.message.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn confirm_gates_hold_the_rollout_until_approved() {
    // Rollout approved at tick 5, the first traffic increase waits one tick
    // more, and the promotion is approved at tick 14.
    let scenario = "ticks: 30\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\nwebhooks:\n  approve-rollout: [fail, fail, fail, fail, pass]\n  approve-traffic: [fail, fail, fail, fail, fail, fail, pass]\n  approve-promotion: [fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, fail, pass]\n  manual-rollback: [fail]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n";
    let sim = common::simulate(gated_canary(), common::scenario(scenario)).await;
    let messages = sim.messages();
    let waiting = "Halt podinfo.test advancement waiting for approval approve-rollout".to_string();
    assert_eq!(
        messages.iter().filter(|m| **m == waiting).count(),
        1,
        "said once: {messages:?}"
    );
    let waiting_tick = sim
        .ticks
        .iter()
        .find(|t| t.phase == Some(CanaryPhase::Waiting))
        .expect("a tick in Waiting");
    assert_eq!(waiting_tick.canary_weight, 0);
    assert_eq!(
        waiting_tick.failed_checks, 0,
        "waiting is not a failed check"
    );
    assert!(
        messages_at(&sim, 5).contains(&"Confirm-rollout check approve-rollout passed".to_string())
    );
    assert!(
        messages.contains(
            &"Halt podinfo.test advancement waiting for traffic increase approval approve-traffic"
                .to_string()
        )
    );
    // No weight before the traffic increase is approved (tick 7).
    for t in sim.ticks.iter().filter(|t| t.tick < 7) {
        assert_eq!(t.canary_weight, 0, "tick {}", t.tick);
    }
    assert!(messages_at(&sim, 7).contains(&"Advance podinfo.test canary weight 10".to_string()));
    // At max weight the promotion waits, the analysis goes on.
    let waiting_promotion: Vec<_> = sim
        .ticks
        .iter()
        .filter(|t| t.phase == Some(CanaryPhase::WaitingPromotion))
        .collect();
    assert!(!waiting_promotion.is_empty());
    assert!(waiting_promotion.iter().all(|t| t.canary_weight == 50));
    assert!(
        messages.contains(
            &"Halt podinfo.test advancement waiting for promotion approval approve-promotion"
                .to_string()
        )
    );
    assert!(
        messages_at(&sim, 14)
            .contains(&"Confirm-promotion check approve-promotion passed".to_string())
    );
    assert!(
        messages_at(&sim, 14)
            .contains(&"Copying podinfo.test template spec to podinfo-primary.test".to_string())
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollback_hook_that_says_yes_aborts_the_rollout() {
    let scenario = "ticks: 20\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\nwebhooks:\n  manual-rollback: [fail, fail, fail, fail, fail, pass]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n";
    let sim = common::simulate(gated_canary(), common::scenario(scenario)).await;
    assert!(
        messages_at(&sim, 6)
            .contains(&"Rolling back podinfo.test manual webhook invoked".to_string()),
        "{:?}",
        sim.messages()
    );
    let last = sim.final_tick().unwrap();
    assert_eq!(last.phase, Some(CanaryPhase::Failed));
    assert_eq!(
        common::canary_exposure(last.http_route.as_ref().unwrap()),
        (0, false)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_tell_when_a_rollout_starts_halts_fails_or_is_promoted() {
    let alerts = |sim: &sluice::simulate::Simulation| -> Vec<(String, String)> {
        sim.ticks
            .iter()
            .flat_map(|t| {
                t.alerts
                    .iter()
                    .map(|a| (a.severity.clone(), a.message.clone()))
            })
            .collect()
    };
    let healthy = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
    )
    .await;
    let got = alerts(&healthy);
    assert_eq!(
        got.first(),
        Some(&(
            "info".to_string(),
            "New revision detected, progressing canary analysis.".to_string()
        ))
    );
    assert_eq!(
        got.last(),
        Some(&(
            "info".to_string(),
            "Canary analysis completed successfully, promotion finished.".to_string()
        ))
    );
    let failing = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(&common::read("examples/scenarios/metric-failure.yaml")),
    )
    .await;
    let got = alerts(&failing);
    assert!(
        got.contains(&(
            "warn".to_string(),
            "Halt podinfo.test advancement error rate 69.17% > 1%".to_string()
        )),
        "{got:?}"
    );
    assert_eq!(
        got.last(),
        Some(&(
            "error".to_string(),
            "Rolling back podinfo.test failed checks threshold reached 5".to_string()
        ))
    );
}

/// The seed Canary with a strategy config, its autoscaler left out.
fn canary_with_strategy_config(config: &str) -> Canary {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    stepWeight: 10\n",
        &format!("    stepWeight: 10\n    strategyConfig: {config}\n"),
    );
    sluice_api::load::canary_from_yaml(&yaml).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
#[expect(
    clippy::await_holding_lock,
    reason = "the guard keeps the CPU-heavy tests (cargo builds, on other threads with their own runtimes) from starving the cores this schedule is judged on; nothing in this runtime waits for it"
)]
async fn canaries_keep_their_schedule_while_others_run_hostile_plugins() {
    // The hostile plugins burn cores themselves: no cargo build beside them.
    let _heavy = common::cpu_heavy();
    // One engine's plugin host shared by every Canary: eight use a
    // well-behaved plugin, four the hostile one that sleeps, loops,
    // exhausts its memory or panics on every call.
    let registry =
        common::registry_with_strategy("hostile", common::test_plugin("hostile_strategy"));
    let run = |config: &str| {
        common::simulate_with(
            canary_with_strategy_config(config),
            common::scenario(HEALTHY),
            registry.clone(),
        )
    };
    let hostile = ["sleep", "loop", "memory-bomb", "panic"];
    let healthy_runs = futures::future::join_all((0..8).map(|_| run("healthy")));
    let hostile_runs = futures::future::join_all(hostile.iter().map(|c| run(c)));
    let (healthy, bad) = tokio::join!(healthy_runs, hostile_runs);
    // Every healthy Canary is promoted at the same tick as it is alone.
    let alone = run("healthy").await;
    let promoted_at = |sim: &sluice::simulate::Simulation| {
        sim.ticks
            .iter()
            .find(|t| t.phase == Some(CanaryPhase::Succeeded))
            .map(|t| t.tick)
    };
    assert!(promoted_at(&alone).is_some());
    for sim in &healthy {
        assert_eq!(promoted_at(sim), promoted_at(&alone));
    }
    // Every hostile one fails with the cause, never moving traffic.
    for (sim, config) in bad.iter().zip(hostile) {
        assert_no_canary_traffic(sim);
        assert_eq!(
            sim.final_tick().unwrap().phase,
            Some(CanaryPhase::Failed),
            "{config}"
        );
        assert!(
            sim.messages()
                .iter()
                .any(|m| m.starts_with("Halt podinfo.test advancement plugin hostile")),
            "{config}: {:?}",
            sim.messages()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn values_that_are_not_numbers_never_reach_an_evaluator() {
    // An evaluator that passes everything, NaN included: the host refuses
    // NaN and infinities before it runs, so the rollout cannot promote.
    let mut registry = common::registry();
    let evaluator = registry
        .host()
        .load_evaluator(
            "hostile-eval",
            common::test_plugin("hostile_evaluator"),
            sluice_host::Limits::default(),
        )
        .unwrap();
    registry.override_evaluator(evaluator);
    for value in [".nan", ".inf", "-.inf"] {
        let scenario = format!(
            "ticks: 40\nmetrics:\n  error-rate: [{value}]\n  latency: [0.1]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n"
        );
        let sim = common::simulate_with(
            common::canary("examples/podinfo-canary.yaml"),
            common::scenario(&scenario),
            registry.clone(),
        )
        .await;
        // The first step is taken before any metric is checked (Flagger's
        // order); no check passes after it, so the weight never grows.
        assert!(sim.ticks.iter().all(|t| t.canary_weight <= 10), "{value}");
        assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
        let messages = sim.messages();
        assert!(
            messages.iter().any(|m| m
                .starts_with("Halt podinfo.test advancement metric error-rate value")
                && m.ends_with("is not a finite number")),
            "{value}: {messages:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_fault_in_the_ticks_route_sync_is_an_event() {
    // The plugin decides fine but every route it gives is refused: the
    // route sync falls back to the primary and says why in an event.
    let registry =
        common::registry_with_strategy("hostile", common::test_plugin("hostile_strategy"));
    let sim = common::simulate_with(
        canary_with_strategy_config("huge-regex"),
        common::scenario(HEALTHY),
        registry,
    )
    .await;
    assert_no_canary_traffic(&sim);
    let messages = sim.messages();
    assert!(
        messages.iter().any(|m| m.starts_with(
            "Route of podinfo.test set to the primary only: plugin hostile returned an invalid answer: rule 0, match 0: regex of 100000 bytes is longer than 1024"
        )),
        "{messages:?}"
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_strategy_that_goes_missing_mid_rollout_fails_checks_and_rolls_back_by_the_threshold() {
    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace(
            "    stepWeight: 10\n",
            "    stepWeight: 10\n    strategy: team-canary\n",
        )
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let (cluster, _) = world(&yaml);
    let registry = common::registry();
    let plugin = registry
        .host()
        .load_strategy(
            "team-canary",
            sluice_host::builtin::wasm::WEIGHTED,
            sluice_host::Limits::default(),
        )
        .unwrap();
    registry.register_strategy(plugin);
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, registry.clone());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut tick = async || {
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await.unwrap();
        now += jiff::SignedDuration::from_secs(60);
        cluster.advance_tick();
        out
    };
    let route_weight = |c: &MemoryCluster| -> i32 {
        let route = c.route("test", "podinfo").unwrap();
        route
            .spec
            .rules
            .unwrap()
            .last()
            .unwrap()
            .backend_refs
            .clone()
            .unwrap()
            .iter()
            .filter(|b| b.name == "podinfo-canary")
            .map(|b| b.weight.unwrap_or(1))
            .sum()
    };
    for _ in 0..3 {
        tick().await;
    }
    new_revision(&cluster);
    let mut out = tick().await;
    for _ in 0..4 {
        if out.status.canary_weight >= 20 {
            break;
        }
        out = tick().await;
    }
    assert_eq!(out.status.phase, Some(CanaryPhase::Progressing));
    let weight = out.status.canary_weight;
    assert!(weight >= 10, "progressing at {weight}");

    // The plugin is deleted mid-rollout.
    registry.unregister("team-canary");
    let mut events = Vec::new();
    for n in 1..=5 {
        out = tick().await;
        events.extend(out.events.iter().map(|e| e.message.clone()));
        let ready = out
            .status
            .conditions
            .iter()
            .find(|c| c.condition_type == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PluginUnavailable"));
        if n < 5 {
            assert_eq!(out.status.phase, Some(CanaryPhase::Progressing));
            assert_eq!(out.status.failed_checks, n);
            assert_eq!(
                route_weight(&cluster) as u32,
                weight,
                "nothing moves meanwhile"
            );
        }
    }
    assert_eq!(out.status.phase, Some(CanaryPhase::Failed), "{events:#?}");
    assert_eq!(
        route_weight(&cluster),
        0,
        "every request back on the primary"
    );
    assert!(
        events
            .iter()
            .any(|e| e == "Rolling back podinfo.test failed checks threshold reached 5"),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.contains("strategy plugin \"team-canary\" is not available")),
        "{events:#?}"
    );
    let target = cluster.get_deployment("test", "podinfo").unwrap();
    assert_eq!(
        target.spec.unwrap().replicas,
        Some(0),
        "the canary is scaled down"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_progress_deadline_counts_from_the_deployments_last_progress_as_flagger_does() {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    // progressDeadlineSeconds: 60, one tick a minute.
    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let (cluster, _) = world(&yaml);
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut tick = async || {
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await.unwrap();
        now += jiff::SignedDuration::from_secs(60);
        cluster.advance_tick();
        (out, now - jiff::SignedDuration::from_secs(60))
    };
    for _ in 0..3 {
        tick().await;
    }
    new_revision(&cluster);
    let (mut out, mut last_at);
    loop {
        (out, last_at) = tick().await;
        if out.status.canary_weight >= 20 {
            break;
        }
    }
    assert_eq!(out.status.phase, Some(CanaryPhase::Progressing));
    // Several minutes into the phase, the canary loses a pod: the
    // Deployment controller reports it unavailable since 10 s ago.
    let unavailable_since = |at: Timestamp| DeploymentStatus {
        observed_generation: cluster
            .get_deployment("test", "podinfo")
            .unwrap()
            .metadata
            .generation,
        replicas: Some(1),
        updated_replicas: Some(1),
        ready_replicas: Some(0),
        available_replicas: Some(0),
        conditions: Some(vec![
            DeploymentCondition {
                type_: "Progressing".into(),
                status: "True".into(),
                reason: Some("NewReplicaSetAvailable".into()),
                ..Default::default()
            },
            DeploymentCondition {
                type_: "Available".into(),
                status: "False".into(),
                reason: Some("MinimumReplicasUnavailable".into()),
                last_update_time: Some(Time(at)),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    // The next tick runs a minute after the last one.
    let lost_at = last_at + jiff::SignedDuration::from_secs(50);
    cluster.pin_deployment_status("test", "podinfo", Some(unavailable_since(lost_at)));
    let (out, _) = tick().await;
    assert_eq!(
        out.status.phase,
        Some(CanaryPhase::Progressing),
        "10 s of unavailability is within the 60 s deadline: {:?}",
        out.events
    );
    assert!(
        out.events.iter().any(|e| e
            .message
            .starts_with("Waiting for podinfo.test rollout to finish")),
        "{:?}",
        out.events
    );
    // A minute later it is still unavailable: 70 s since its last change.
    let (out, _) = tick().await;
    assert_eq!(out.status.phase, Some(CanaryPhase::Failed));
    assert!(
        out.events.iter().any(|e| e
            .message
            .starts_with("Rolling back podinfo.test progress deadline exceeded")),
        "{:?}",
        out.events
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_that_fails_during_promotion_holds_the_promotion_as_flagger_does() {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};

    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n", "");
    let (cluster, _) = world(&yaml);
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
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
    new_revision(&cluster);
    let mut out = tick().await;
    for _ in 0..20 {
        if out.status.phase == Some(CanaryPhase::Promoting) {
            break;
        }
        out = tick().await;
    }
    assert_eq!(out.status.phase, Some(CanaryPhase::Promoting));
    let weight = out.status.canary_weight;
    // The primary's new pods never come up: the Deployment controller
    // gives up on it.
    let stuck = DeploymentStatus {
        observed_generation: cluster
            .get_deployment("test", "podinfo-primary")
            .unwrap()
            .metadata
            .generation,
        replicas: Some(2),
        updated_replicas: Some(1),
        available_replicas: Some(1),
        conditions: Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    cluster.pin_deployment_status("test", "podinfo-primary", Some(stuck));
    for _ in 0..5 {
        let out = tick().await;
        assert_eq!(
            out.status.phase,
            Some(CanaryPhase::Promoting),
            "held, not rolled back"
        );
        assert_eq!(
            out.status.canary_weight, weight,
            "traffic stays where it was"
        );
        assert!(
            out.events.iter().any(|e| e.message
                == "Waiting for podinfo-primary.test rollout to finish: deployment \"podinfo-primary\" exceeded its progress deadline"),
            "{:?}",
            out.events
        );
        let target = cluster.get_deployment("test", "podinfo").unwrap();
        assert_ne!(
            target.spec.unwrap().replicas,
            Some(0),
            "the canary keeps serving its share"
        );
    }
    // The primary recovers: the promotion finishes.
    cluster.pin_deployment_status("test", "podinfo-primary", None);
    let mut out = tick().await;
    for _ in 0..10 {
        if out.status.phase == Some(CanaryPhase::Succeeded) {
            break;
        }
        out = tick().await;
    }
    assert_eq!(out.status.phase, Some(CanaryPhase::Succeeded));
}

/// Metrics and webhooks that fail while told to, and pass otherwise.
#[derive(Clone, Default)]
struct Switch {
    metrics_down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    webhooks_down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl sluice_rollout::analysis::checks::MetricsProvider for Switch {
    async fn value(
        &self,
        canary: &Canary,
        check: &sluice_api::MetricCheck,
        target: sluice_rollout::analysis::checks::MetricTarget,
    ) -> Result<Option<f64>, sluice_rollout::BoxError> {
        if self.metrics_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("Prometheus at http://prometheus:9090 did not answer within 5s".into());
        }
        Healthy.value(canary, check, target).await
    }
}

impl sluice_rollout::analysis::checks::WebhookCaller for Switch {
    async fn call(
        &self,
        canary: &Canary,
        hook: &sluice_api::Webhook,
        phase: CanaryPhase,
    ) -> Result<(), sluice_rollout::BoxError> {
        if self.webhooks_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        Healthy.call(canary, hook, phase).await
    }

    async fn send_event(
        &self,
        canary: &Canary,
        hook: &sluice_api::Webhook,
        event: &sluice_rollout::cluster::Event,
        at: Timestamp,
    ) -> Result<(), sluice_rollout::BoxError> {
        Healthy.send_event(canary, hook, event, at).await
    }
}

fn ready(status: &sluice_api::CanaryStatus) -> (String, String, String) {
    let c = status.condition("Ready").expect("a Ready condition");
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

/// The guide's Canary without the autoscaler (the memory cluster has none).
fn podinfo_yaml() -> String {
    common::read("examples/podinfo-canary.yaml").replace(
        "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n",
        "",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fault_sets_the_ready_reason_while_it_lasts_and_a_clean_tick_clears_it() {
    let (cluster, _) = world(&podinfo_yaml());
    let switch = Switch::default();
    let analyzer = Analyzer::new(
        cluster.clone(),
        switch.clone(),
        switch.clone(),
        common::registry(),
    );
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
    new_revision(&cluster);
    let mut out = tick().await;
    while out.status.canary_weight < 10 {
        out = tick().await;
    }
    assert_eq!(out.status.phase, Some(CanaryPhase::Progressing));
    let weight = out.status.canary_weight;

    // Prometheus stops answering: each tick is a failed check, and Ready
    // says why (the metric and the cause) while nothing moves.
    let set = |flag: &std::sync::atomic::AtomicBool, on| {
        flag.store(on, std::sync::atomic::Ordering::SeqCst)
    };
    set(&switch.metrics_down, true);
    let out = tick().await;
    let (status, reason, message) = ready(&out.status);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "MetricUnavailable")
    );
    assert!(
        message.contains("metric error-rate query failed")
            && message.contains("did not answer within 5s"),
        "{message}"
    );
    assert_eq!(out.fault.map(|f| f.reason()), Some("MetricUnavailable"));
    assert_eq!(out.status.failed_checks, 1);
    assert_eq!(out.status.canary_weight, weight, "nothing moves");
    assert!(
        out.events
            .iter()
            .any(|e| e.message.contains("query failed")),
        "the fault is in an event: {:?}",
        out.events
    );

    // Then the load-test webhook refuses connections instead.
    set(&switch.metrics_down, false);
    set(&switch.webhooks_down, true);
    let out = tick().await;
    let (status, reason, message) = ready(&out.status);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "WebhookFailed")
    );
    assert!(
        message.contains("external check load-test failed connection refused"),
        "{message}"
    );
    assert_eq!(out.status.canary_weight, weight, "nothing moves");

    // The first clean tick makes the Canary ready again and it advances.
    set(&switch.webhooks_down, false);
    let out = tick().await;
    let (status, reason, _) = ready(&out.status);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Valid"));
    assert_eq!(out.fault, None);
    assert!(out.status.canary_weight > weight);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_events_of_a_tick_cut_off_after_its_status_write_are_published_once_later() {
    let (cluster, _) = world(&podinfo_yaml());
    let registry = common::registry();
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    // A new analyzer for each tick: an operator restarted between ticks,
    // which knows nothing of what the last one published.
    let mut tick = async || {
        let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, registry.clone());
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await;
        now += jiff::SignedDuration::from_secs(60);
        cluster.advance_tick();
        out
    };
    for _ in 0..3 {
        tick().await.unwrap();
    }
    new_revision(&cluster);
    let mut cut = 0;
    for n in 0..40 {
        // Every third tick loses its events after the status write, as an
        // operator killed there (or an API server refusing events) would.
        if n % 3 == 1 {
            cluster.fail_event_publishing(1);
        }
        match tick().await {
            Ok(out) if out.status.phase == Some(CanaryPhase::Succeeded) => break,
            Ok(_) => {}
            Err(e) => {
                assert!(e.to_string().starts_with("publishing event"), "{e}");
                cut += 1;
            }
        }
    }
    let canary = cluster.canary("test", "podinfo").unwrap();
    assert_eq!(
        canary.status.as_ref().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
    assert!(cut >= 3, "ticks were cut off: {cut}");
    let events: Vec<String> = cluster
        .events("test", "podinfo")
        .into_iter()
        .map(|e| e.message)
        .collect();
    let count = |m: &str| events.iter().filter(|e| *e == m).count();
    for weight in (10..=50).step_by(10) {
        let m = format!("Advance podinfo.test canary weight {weight}");
        assert_eq!(count(&m), 1, "{m}: {events:#?}");
    }
    for m in [
        "New revision detected podinfo.test",
        "Scaling up podinfo.test",
        "Starting canary analysis for podinfo.test",
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Promotion completed! Scaling down podinfo.test",
    ] {
        assert_eq!(count(m), 1, "{m}: {events:#?}");
    }
}

/// A Canary of `yaml` and its Deployment in namespace `ns` of `cluster`.
/// The phase of the stored Canary test/podinfo.
fn stored_phase(cluster: &MemoryCluster) -> Option<CanaryPhase> {
    cluster.canary("test", "podinfo")?.status?.phase
}

fn put_in_namespace(cluster: &MemoryCluster, yaml: &str, ns: &str) {
    let canary = sluice_api::load::canary_from_yaml(
        &yaml.replace("namespace: test", &format!("namespace: {ns}")),
    )
    .unwrap();
    cluster
        .put_deployment(common::podinfo_deployment(ns))
        .unwrap();
    cluster.put_canary(canary).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_build_that_faults_on_every_canary_is_failed_fleet_wide_and_they_roll_back() {
    // Three Canaries use a registered strategy whose every decision breaks
    // the rules (an advance past maxWeight); a fourth uses the built-in one.
    let registry = common::registry();
    let plugin = registry
        .host()
        .load_strategy(
            "team-canary",
            common::test_plugin("hostile_strategy"),
            sluice_host::Limits::default(),
        )
        .unwrap();
    registry.register_strategy(plugin);
    let hostile = podinfo_yaml().replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    strategy: team-canary\n    strategyConfig: advance-100\n",
    );
    let cluster = MemoryCluster::new();
    let teams = ["team-a", "team-b", "team-c"];
    for ns in teams {
        put_in_namespace(&cluster, &hostile, ns);
    }
    put_in_namespace(&cluster, &podinfo_yaml(), "team-d");
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, registry.clone());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let all = ["team-a", "team-b", "team-c", "team-d"];
    for n in 0..30 {
        for ns in all {
            let canary = cluster.canary(ns, "podinfo").unwrap();
            analyzer.reconcile(&canary, now).await.unwrap();
            if n == 3 {
                common::new_image(&cluster, ns);
            }
            let route = cluster.route(ns, "podinfo");
            if teams.contains(&ns) {
                let canary_weight: i32 = route.iter().map(canary_weight).sum();
                assert_eq!(canary_weight, 0, "{ns}: no request reaches its canary");
            }
        }
        now += jiff::SignedDuration::from_secs(60);
        cluster.advance_tick();
    }
    let phase = |ns| cluster.canary(ns, "podinfo").unwrap().status.unwrap().phase;
    for ns in teams {
        assert_eq!(phase(ns), Some(CanaryPhase::Failed), "{ns}");
    }
    assert_eq!(
        phase("team-d"),
        Some(CanaryPhase::Succeeded),
        "another build is not affected"
    );
    // The breaker opened once, said so in one event, and the Canaries that
    // ticked after it saw the plugin as unavailable, with the reason.
    let messages: Vec<String> = teams
        .iter()
        .flat_map(|ns| cluster.events(ns, "podinfo"))
        .map(|e| e.message)
        .collect();
    let opened: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("Plugin team-canary (sha256:"))
        .collect();
    assert_eq!(opened.len(), 1, "{messages:#?}");
    assert!(
        opened[0].contains("marked failed on every Canary after 5 faults in a row on 3 Canaries"),
        "{}",
        opened[0]
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("strategy plugin \"team-canary\" (sha256:")
                && m.contains("is marked failed on every Canary")),
        "{messages:#?}"
    );
    assert_eq!(registry.host().metrics().circuit_openings("team-canary"), 1);
    assert!(matches!(
        registry.strategy("team-canary"),
        Err(sluice_host::registry::RegistryError::CircuitOpen { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gate_that_cannot_be_asked_holds_with_the_ready_reason_and_one_event() {
    let yaml = podinfo_yaml().replace(
        "    webhooks:\n",
        "    webhooks:\n      - name: approve-rollout\n        type: confirm-rollout\n        url: http://gate.test/rollout\n",
    );
    let (cluster, _) = world(&yaml);
    let switch = Switch::default();
    let analyzer = Analyzer::new(
        cluster.clone(),
        switch.clone(),
        switch.clone(),
        common::registry(),
    );
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
    switch
        .webhooks_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    new_revision(&cluster);
    let mut messages = Vec::new();
    let mut out = tick().await;
    for _ in 0..4 {
        out = tick().await;
        messages.extend(out.events.iter().map(|e| e.message.clone()));
        assert_eq!(out.status.canary_weight, 0, "the gate stays closed");
    }
    assert_eq!(out.status.phase, Some(CanaryPhase::Waiting));
    let (status, reason, message) = ready(&out.status);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "WebhookFailed")
    );
    assert_eq!(
        message,
        "Gate approve-rollout of podinfo.test could not be asked: connection refused"
    );
    let all: Vec<String> = cluster
        .events("test", "podinfo")
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(all.iter().filter(|m| **m == message).count(), 1, "{all:#?}");

    // The gate answers again: the rollout goes on and Ready clears.
    switch
        .webhooks_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let out = tick().await;
    assert_eq!(out.status.phase, Some(CanaryPhase::Progressing));
    let out = tick().await;
    assert_eq!(ready(&out.status).0, "True");
    assert!(out.status.canary_weight > 0);
}

/// The weight `route` sends to `podinfo-canary`, over all its rules.
fn canary_weight(route: &sluice_rollout::router::HttpRoute) -> i32 {
    route
        .spec
        .rules
        .iter()
        .flatten()
        .flat_map(|rule| rule.backend_refs.iter().flatten())
        .filter(|b| b.name == "podinfo-canary")
        .map(|b| b.weight.unwrap_or(1))
        .sum()
}

/// The guide's Canary, without its HPA reference.
fn plain_canary() -> String {
    common::read("examples/podinfo-canary.yaml").replace(
        "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n",
        "",
    )
}

#[tokio::test]
async fn idle_ticks_apply_no_service_yet_a_hand_edit_is_undone_within_the_resync_bound() {
    use sluice_rollout::analysis::service_sync::RESYNC;
    use sluice_rollout::cluster::Cluster;
    let (cluster, _) = world(&plain_canary());
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let tick = async |now: Timestamp| {
        let canary = cluster.canary("test", "podinfo").unwrap();
        analyzer.reconcile(&canary, now).await.unwrap()
    };
    for _ in 0..3 {
        tick(now).await;
        now += jiff::SignedDuration::from_secs(60);
    }
    let selector = |name: &str| {
        cluster
            .service("test", name)
            .and_then(|s| s.spec?.selector)
            .and_then(|s| s.get("app").cloned())
    };
    assert_eq!(selector("podinfo-canary").as_deref(), Some("podinfo"));

    // Someone points the canary Service at the primary's pods.
    let mut edited = cluster.service("test", "podinfo-canary").unwrap();
    edited
        .spec
        .as_mut()
        .unwrap()
        .selector
        .as_mut()
        .unwrap()
        .insert("app".into(), "podinfo-primary".into());
    cluster.apply_service(&edited).await.unwrap();
    // The next idle tick does not render or apply the Services again…
    let edited_at = now;
    tick(now).await;
    assert_eq!(
        selector("podinfo-canary").as_deref(),
        Some("podinfo-primary")
    );
    // …but within RESYNC of the edit they are applied again.
    let mut restored = None;
    while now < edited_at + RESYNC {
        now += jiff::SignedDuration::from_secs(60);
        tick(now).await;
        if selector("podinfo-canary").as_deref() == Some("podinfo") {
            restored = Some(now);
            break;
        }
    }
    assert!(restored.is_some(), "not restored by {now}");

    // A change to what they are rendered from applies at the next tick.
    let mut canary = cluster.canary("test", "podinfo").unwrap();
    canary.spec.service.port = 9999;
    cluster.put_canary(canary).unwrap();
    now += jiff::SignedDuration::from_secs(60);
    tick(now).await;
    let port = cluster
        .service("test", "podinfo-canary")
        .and_then(|s| s.spec?.ports)
        .map(|p| p[0].port);
    assert_eq!(port, Some(9999));
}

#[tokio::test]
async fn a_route_at_rest_is_not_rewritten_yet_a_hand_edit_or_a_canary_change_reaches_it_at_the_next_tick()
 {
    use sluice_rollout::cluster::Cluster;
    let (cluster, _) = world(&plain_canary());
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut tick = async || {
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await.unwrap();
        now += jiff::SignedDuration::from_secs(60);
        out
    };
    let route = || cluster.route("test", "podinfo").expect("the route");
    for _ in 0..3 {
        tick().await;
    }
    assert_eq!(stored_phase(&cluster), Some(CanaryPhase::Initialized));
    // At rest the route is found as rendered, and not written again.
    let at_rest = route();
    for _ in 0..3 {
        tick().await;
        assert_eq!(route(), at_rest);
    }

    // Someone sends half the traffic to the canary by hand: the next tick
    // puts every request back on the primary.
    let mut edited = at_rest.clone();
    for rule in edited.spec.rules.iter_mut().flatten() {
        for backend in rule.backend_refs.iter_mut().flatten() {
            backend.weight = Some(50);
        }
    }
    cluster.apply_http_route(&edited).await.unwrap();
    assert_eq!(canary_weight(&route()), 50);
    tick().await;
    assert_eq!(canary_weight(&route()), 0);
    assert_eq!(route().spec, at_rest.spec);

    // A Gateway controller rewriting the route's status changes nothing.
    cluster.set_route_rejection(Some(("NotAllowedByListeners".into(), "no".into())));
    cluster.set_route_rejection(None);
    tick().await;
    assert_eq!(route().spec, at_rest.spec);

    // A change to the Canary reaches the route at the next tick.
    let mut canary = cluster.canary("test", "podinfo").unwrap();
    canary.spec.service.timeout = Some("7s".into());
    cluster.put_canary(canary).unwrap();
    tick().await;
    let timeouts: Vec<Option<String>> = route()
        .spec
        .rules
        .iter()
        .flatten()
        .map(|rule| rule.timeouts.as_ref().and_then(|t| t.request.clone()))
        .collect();
    assert!(
        !timeouts.is_empty() && timeouts.iter().all(|t| t.as_deref() == Some("7s")),
        "{timeouts:?}"
    );
}

/// Ticks the Canary of `cluster` once a minute from 2026-01-01, advancing
/// the simulated Deployment controller after each; each tick gives its
/// events' messages.
fn ticker(cluster: &MemoryCluster) -> impl AsyncFnMut() -> Vec<String> {
    let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, common::registry());
    let mut now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let cluster = cluster.clone();
    async move || {
        let canary = cluster.canary("test", "podinfo").unwrap();
        let out = analyzer.reconcile(&canary, now).await.unwrap();
        now += jiff::SignedDuration::from_secs(60);
        cluster.advance_tick();
        out.events.into_iter().map(|e| e.message).collect()
    }
}

#[tokio::test]
async fn a_canary_at_rest_sees_at_its_next_tick_its_primary_becoming_unavailable_or_a_new_revision()
{
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    let (cluster, _) = world(&plain_canary());
    let mut tick = ticker(&cluster);
    while stored_phase(&cluster) != Some(CanaryPhase::Initialized) {
        tick().await;
    }
    // From the first tick after the bootstrap, ticks at rest read no
    // Deployment whole: their versions stand for them.
    let reads = cluster.deployment_reads();
    assert_eq!(tick().await, Vec::<String>::new());
    assert_eq!(tick().await, Vec::<String>::new());
    assert_eq!(cluster.deployment_reads(), reads);

    // A write to the target that is no new revision: still at rest.
    let mut annotated = cluster.get_deployment("test", "podinfo").unwrap();
    annotated
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("team".into(), "web".into());
    cluster.put_deployment(annotated).unwrap();
    assert_eq!(tick().await, Vec::<String>::new());
    assert_eq!(tick().await, Vec::<String>::new());

    // The primary stops being available: the next tick waits for it.
    let unavailable = DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(1),
        updated_replicas: Some(1),
        available_replicas: Some(0),
        ..Default::default()
    };
    cluster.pin_deployment_status("test", "podinfo-primary", Some(unavailable));
    let events = tick().await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Waiting for podinfo-primary.test rollout to finish")),
        "{events:?}"
    );
    cluster.pin_deployment_status("test", "podinfo-primary", None);
    assert_eq!(tick().await, Vec::<String>::new());
    assert_eq!(tick().await, Vec::<String>::new());

    new_revision(&cluster);
    let events = tick().await;
    assert!(
        events.contains(&"New revision detected podinfo.test".to_string()),
        "{events:?}"
    );
    assert_eq!(stored_phase(&cluster), Some(CanaryPhase::Progressing));
}

#[tokio::test]
async fn an_optional_config_map_that_appears_while_the_canary_rests_is_a_new_revision_at_the_next_tick()
 {
    use k8s_openapi::api::core::v1::ConfigMap;
    // The target's pods read an optional ConfigMap that does not exist yet.
    let (cluster, _) = world(&plain_canary());
    let mut target = common::podinfo_deployment("test");
    let pod = target
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap();
    pod.containers[0].env_from = Some(vec![
        serde_json::from_value(
            serde_json::json!({"configMapRef": {"name": "extra", "optional": true}}),
        )
        .unwrap(),
    ]);
    cluster.put_deployment(target).unwrap();
    let mut tick = ticker(&cluster);
    // Well inside the Services' resync period, which reads the target.
    for _ in 0..3 {
        tick().await;
    }
    assert_eq!(stored_phase(&cluster), Some(CanaryPhase::Initialized));

    // It appears, with no write to the target.
    let extra: ConfigMap =
        yaml_serde::from_str("metadata: {name: extra, namespace: test}\ndata: {k: v}\n").unwrap();
    cluster.put_config_map(extra).unwrap();
    let events = tick().await;
    assert!(
        events.contains(&"New revision detected podinfo.test".to_string()),
        "{events:?}"
    );
    assert_eq!(stored_phase(&cluster), Some(CanaryPhase::Progressing));
}
