//! Contract `sluice:plugin@0.2.0` beside 0.1: the host runs plugins of
//! both versions, side by side in one registry and one Canary, through the
//! real analyzer on the in-memory cluster. 0.2's additions are each shown
//! working and bounded: route filters rendered into the HTTPRoute, the
//! optional settings check, one `requirements` call per metric, and
//! "needs more data" holding a rollout within the Canary's horizon.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;
use sluice_api::{Canary, CanaryPhase, CanaryStatus, MetricCheck};
use sluice_host::{Limits, PluginRegistry};
use sluice_rollout::BoxError;
use sluice_rollout::analysis::checks::{MetricTarget, MetricsProvider};
use sluice_rollout::analysis::{Analyzer, TickOutcome};
use sluice_rollout::cluster::EventType;
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::router::HttpRoute;

const CANARY: &str = "apiVersion: sluice.dev/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 60
  service:
    port: 9898
    hosts: [www.example.com]
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis:
    interval: 1m
    threshold: 2
    maxWeight: 30
    stepWeight: 10
";

/// Every metric's instant value is its healthy edge; series hold
/// `samples` values (changed by the test while it runs).
#[derive(Clone, Default)]
struct Samples {
    samples: Arc<AtomicUsize>,
}

impl MetricsProvider for Samples {
    async fn value(
        &self,
        _: &Canary,
        check: &MetricCheck,
        _: MetricTarget,
    ) -> Result<Option<f64>, BoxError> {
        Ok(Some(check.threshold_range.min.unwrap_or(0.0)))
    }

    async fn series(
        &self,
        _: &Canary,
        check: &MetricCheck,
        _: MetricTarget,
        _: std::time::Duration,
        _: std::time::Duration,
    ) -> Result<Vec<f64>, BoxError> {
        let n = self.samples.load(Ordering::SeqCst);
        Ok(vec![check.threshold_range.min.unwrap_or(0.0); n])
    }
}

struct Run {
    cluster: MemoryCluster,
    analyzer: Analyzer<MemoryCluster, Samples, common::Healthy>,
    samples: Arc<AtomicUsize>,
    now: Timestamp,
}

impl Run {
    fn new(yaml: &str, registry: PluginRegistry) -> Self {
        let cluster = MemoryCluster::new();
        cluster
            .put_deployment(common::podinfo_deployment("test"))
            .unwrap();
        cluster
            .put_canary(sluice_api::load::canary_from_yaml(yaml).unwrap())
            .unwrap();
        let provider = Samples::default();
        let samples = Arc::clone(&provider.samples);
        let analyzer = Analyzer::new(cluster.clone(), provider, common::Healthy, registry);
        Run {
            cluster,
            analyzer,
            samples,
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
        }
    }

    async fn tick(&mut self) -> TickOutcome {
        let canary: Canary = self.cluster.canary("test", "podinfo").unwrap();
        let out = self.analyzer.reconcile(&canary, self.now).await.unwrap();
        self.now += jiff::SignedDuration::from_secs(60);
        self.cluster.advance_tick();
        out
    }

    /// Initialises, starts a new revision, and ticks until the rollout
    /// ends (or `max` ticks): the canary weight after each tick.
    async fn rollout(&mut self, max: usize) -> (Vec<u32>, Vec<CanaryStatus>) {
        let out = self.tick().await;
        assert_eq!(out.status.phase, Some(CanaryPhase::Initialized), "{out:?}");
        common::new_image(&self.cluster, "test");
        let mut weights = Vec::new();
        let mut statuses = Vec::new();
        for _ in 0..max {
            let out = self.tick().await;
            weights.push(out.status.canary_weight);
            let phase = out.status.phase;
            statuses.push(out.status);
            if matches!(phase, Some(CanaryPhase::Succeeded | CanaryPhase::Failed)) {
                break;
            }
        }
        (weights, statuses)
    }

    fn route(&self) -> HttpRoute {
        self.cluster.route("test", "podinfo").expect("a route")
    }

    /// The messages of the events published on the Canary, oldest first.
    fn messages(&self) -> Vec<String> {
        self.cluster
            .events("test", "podinfo")
            .into_iter()
            .map(|e| e.message)
            .collect()
    }
}

fn v2_strategy(registry: &PluginRegistry) -> sluice_host::StrategyPlugin {
    registry
        .host()
        .load_strategy(
            "v2-strategy",
            common::test_plugin("v2_strategy"),
            Limits::default(),
        )
        .expect("the 0.2 strategy loads")
}

fn registry_with_v2_evaluator() -> PluginRegistry {
    let registry = common::registry();
    let evaluator = registry
        .host()
        .load_evaluator(
            "v2-evaluator",
            common::test_plugin("v2_evaluator"),
            Limits::default(),
        )
        .expect("the 0.2 evaluator loads");
    assert_eq!(evaluator.contract(), "0.2");
    registry.register_evaluator(evaluator);
    registry
}

/// The response headers the catch-all rule sets.
fn catch_all_response_headers(route: &HttpRoute) -> Vec<(String, String)> {
    let rules = route.spec.rules.as_ref().unwrap();
    rules
        .last()
        .unwrap()
        .filters
        .iter()
        .flatten()
        .filter_map(|f| f.response_header_modifier.as_ref())
        .flat_map(|m| m.set.iter().flatten())
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect()
}

#[tokio::test]
async fn a_0_1_and_a_0_2_strategy_roll_out_to_the_same_weights_and_0_2_s_filters_reach_the_route() {
    let mut v1 = Run::new(CANARY, common::registry());
    let (v1_weights, _) = v1.rollout(12).await;
    assert!(catch_all_response_headers(&v1.route()).is_empty());

    let mut registry = common::registry();
    let plugin = v2_strategy(&registry);
    assert_eq!(plugin.contract(), "0.2");
    assert!(plugin.validates_config());
    registry.override_strategy(plugin);
    let mut v2 = Run::new(CANARY, registry);
    let out = v2.tick().await;
    assert_eq!(out.status.phase, Some(CanaryPhase::Initialized));
    common::new_image(&v2.cluster, "test");
    let mut v2_weights = Vec::new();
    for _ in 0..12 {
        let out = v2.tick().await;
        let w = out.status.canary_weight;
        v2_weights.push(w);
        if out.status.phase == Some(CanaryPhase::Progressing) {
            // The route of every step carries the plugin's header.
            assert_eq!(
                catch_all_response_headers(&v2.route()),
                vec![("x-sluice-weight".to_string(), w.to_string())],
                "at weight {w}"
            );
        }
        if out.status.phase == Some(CanaryPhase::Succeeded) {
            break;
        }
    }
    assert_eq!(v2_weights, v1_weights, "0.1 and 0.2 step alike");
    assert!(v2_weights.contains(&30), "{v2_weights:?}");
    assert_eq!(
        v2.cluster
            .canary("test", "podinfo")
            .unwrap()
            .status
            .unwrap()
            .phase,
        Some(CanaryPhase::Succeeded)
    );
}

#[tokio::test]
async fn a_0_2_redirect_rule_answers_itself_and_never_reaches_the_canary() {
    let yaml = format!("{CANARY}    strategyConfig: {{redirectLegacy: true}}\n");
    let mut registry = common::registry();
    registry.override_strategy(v2_strategy(&registry));
    let mut run = Run::new(&yaml, registry);
    run.tick().await;
    common::new_image(&run.cluster, "test");
    let mut seen = 0;
    for _ in 0..4 {
        let out = run.tick().await;
        if out.status.canary_weight == 0 {
            continue;
        }
        seen += 1;
        let route = run.route();
        let rules = route.spec.rules.as_ref().unwrap();
        assert_eq!(rules.len(), 2, "{rules:#?}");
        let legacy = &rules[0];
        assert!(legacy.backend_refs.is_none(), "a redirect has no backends");
        let redirect = legacy
            .filters
            .iter()
            .flatten()
            .find_map(|f| f.request_redirect.as_ref())
            .expect("a RequestRedirect filter");
        assert_eq!(redirect.status_code, Some(301));
        assert_eq!(
            redirect.path.as_ref().unwrap().replace_full_path.as_deref(),
            Some("/")
        );
        let prefix = legacy.matches.as_ref().unwrap()[0].path.as_ref().unwrap();
        assert_eq!(prefix.value.as_deref(), Some("/legacy"));
        // The catch-all still carries the rollout's weight.
        let canary = rules[1]
            .backend_refs
            .iter()
            .flatten()
            .find(|b| b.name == "podinfo-canary")
            .and_then(|b| b.weight);
        assert_eq!(canary, Some(out.status.canary_weight as i32));
    }
    assert!(seen > 0, "the rollout moved traffic");
}

#[tokio::test]
async fn settings_a_0_2_plugin_refuses_stop_the_canary_with_the_plugin_s_message() {
    let bad = format!("{CANARY}    strategyConfig: {{redirectLegacy: true, bogus: 1}}\n");
    let mut registry = common::registry();
    registry.override_strategy(v2_strategy(&registry));
    let mut run = Run::new(&bad, registry);
    let mut warnings = Vec::new();
    for i in 0..3 {
        if i == 1 {
            common::new_image(&run.cluster, "test");
        }
        let out = run.tick().await;
        let ready = out.status.condition("Ready").expect("Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("InvalidPluginConfig"));
        let message = ready.message.clone().unwrap_or_default();
        assert!(
            message.contains(
                "spec.analysis.strategyConfig for strategy plugin v2-strategy is refused by the plugin: v2-strategy: unknown setting \"bogus\""
            ),
            "{message}"
        );
        assert_eq!(out.status.canary_weight, 0);
        warnings.extend(
            out.events
                .into_iter()
                .filter(|e| e.event_type == EventType::Warning),
        );
    }
    assert_eq!(warnings.len(), 1, "one event: {warnings:?}");
    assert!(warnings[0].message.contains("unknown setting \"bogus\""));
    assert!(run.cluster.route("test", "podinfo").is_none(), "no traffic");

    // Fixed settings: ready again, and the rollout proceeds.
    let mut canary = run.cluster.canary("test", "podinfo").unwrap();
    let fixed = sluice_api::load::canary_from_yaml(&format!(
        "{CANARY}    strategyConfig: {{redirectLegacy: false}}\n"
    ))
    .unwrap();
    canary.spec = fixed.spec;
    run.cluster.put_canary(canary).unwrap();
    let out = run.tick().await;
    let ready = out.status.condition("Ready").expect("Ready");
    assert_eq!(ready.status, "True", "{ready:?}");
}

/// The Canary with two metrics: one judged by the built-in 0.1 threshold
/// evaluator, one by the 0.2 evaluator that needs `minSamples` samples.
fn canary_with_metrics(extra: &str) -> String {
    format!(
        "{CANARY}{extra}    metrics:
      - name: request-success-rate
        thresholdRange: {{min: 99}}
        interval: 1m
      - name: latency-trend
        templateRef: {{name: latency, namespace: flagger-system}}
        thresholdRange: {{max: 500}}
        interval: 1m
        evaluator: v2-evaluator
        evaluatorConfig: {{window: 300, step: 60, minSamples: 5}}
"
    )
}

#[tokio::test]
async fn needs_more_data_holds_without_a_failed_check_until_the_data_comes() {
    let mut run = Run::new(&canary_with_metrics(""), registry_with_v2_evaluator());
    run.samples.store(2, Ordering::SeqCst);
    run.tick().await;
    common::new_image(&run.cluster, "test");
    // The rollout starts at 0, takes its first step (no metrics run
    // before it), then holds at 10.
    let mut held = Vec::new();
    for _ in 0..5 {
        let out = run.tick().await;
        held.push((
            out.status.canary_weight,
            out.status.failed_checks,
            out.status.data_waits,
        ));
    }
    assert_eq!(
        held,
        vec![(0, 0, 0), (10, 0, 0), (10, 0, 1), (10, 0, 2), (10, 0, 3)],
        "held at 10 with no failed check"
    );
    let events = run.messages();
    assert!(
        events.iter().any(|e| e.contains(
            "Halt podinfo.test advancement metric latency-trend needs more data: only 2 samples, need 5 (waiting for data, round 1 of 5)"
        )),
        "{events:#?}"
    );
    // The data comes: the check passes and the rollout goes on to the end.
    run.samples.store(6, Ordering::SeqCst);
    let mut weights = Vec::new();
    for _ in 0..10 {
        let out = run.tick().await;
        assert_eq!(out.status.data_waits, 0);
        weights.push(out.status.canary_weight);
        if out.status.phase == Some(CanaryPhase::Succeeded) {
            break;
        }
    }
    assert_eq!(&weights[..2], &[20, 30], "{weights:?}");
    assert_eq!(
        run.cluster
            .canary("test", "podinfo")
            .unwrap()
            .status
            .unwrap()
            .phase,
        Some(CanaryPhase::Succeeded)
    );
    // One `requirements` call for the metric, one settings check, and one
    // `evaluate` per analysis round that reached the metric.
    let calls = run.analyzer.plugins.host().metrics().calls("v2-evaluator");
    let rounds = 3 + 2 + 1; // held rounds after the first, then 20, 30, promote
    assert!(
        calls <= 2 + rounds + 1,
        "{calls} calls for {rounds} rounds: requirements is asked once"
    );
}

#[tokio::test]
async fn needs_more_data_past_the_horizon_counts_as_failed_checks_and_rolls_back() {
    let yaml = canary_with_metrics("    maxDataWaits: 2\n");
    let mut run = Run::new(&yaml, registry_with_v2_evaluator());
    run.samples.store(1, Ordering::SeqCst);
    let (weights, statuses) = run.rollout(12).await;
    let trail: Vec<(u32, u32, u32)> = statuses
        .iter()
        .map(|s| (s.canary_weight, s.failed_checks, s.data_waits))
        .collect();
    // 0, 10, then two rounds waiting, then each round past the horizon is
    // a failed check: threshold 2 rolls back.
    assert_eq!(
        trail,
        vec![
            (0, 0, 0),
            (10, 0, 0),
            (10, 0, 1),
            (10, 0, 2),
            (10, 1, 3),
            (10, 2, 4),
            (0, 2, 4)
        ],
    );
    assert_eq!(weights.last(), Some(&0), "{weights:?}");
    assert_eq!(
        statuses.last().unwrap().phase,
        Some(CanaryPhase::Failed),
        "{trail:?}"
    );
    let events = run.messages();
    assert!(
        events
            .iter()
            .any(|e| e.contains("(still no data after 2 rounds: counted as a failed check)")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Rolling back podinfo.test failed checks threshold reached 2")),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_metric_setting_a_0_2_evaluator_refuses_stops_the_canary() {
    let yaml = canary_with_metrics("").replace("minSamples: 5", "minSamples: 0");
    let mut run = Run::new(&yaml, registry_with_v2_evaluator());
    let out = run.tick().await;
    let ready = out.status.condition("Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("InvalidPluginConfig"));
    let message = ready.message.clone().unwrap_or_default();
    assert!(
        message.starts_with(
            "spec.analysis.metrics[1].evaluatorConfig for evaluator plugin v2-evaluator is refused by the plugin:"
        ),
        "{message}"
    );
    assert!(message.contains("minSamples"), "{message}");
}

#[test]
fn max_data_waits_is_bounded_with_a_clear_error() {
    let yaml = canary_with_metrics("    maxDataWaits: 1000\n");
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let e = canary.settings().unwrap_err().to_string();
    assert!(
        e.contains("spec.analysis.maxDataWaits: must be at most 100 rounds (got 1000)"),
        "{e}"
    );
}

fn hostile_v2(registry: &mut PluginRegistry) {
    let plugin = registry
        .host()
        .load_strategy(
            "hostile-v2",
            common::test_plugin("hostile_v2"),
            Limits::default(),
        )
        .expect("the hostile 0.2 strategy loads");
    registry.override_strategy(plugin);
}

/// Every filter of every rule of the stored route, as JSON text.
fn route_filters(cluster: &MemoryCluster) -> String {
    cluster
        .route("test", "podinfo")
        .and_then(|r| r.spec.rules.clone())
        .map(|rules| {
            rules
                .iter()
                .flat_map(|r| r.filters.iter().flatten())
                .map(|f| serde_json::to_string(f).unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_0_2_plugin_s_filters_can_never_widen_traffic_or_reach_the_route() {
    for (attack, why) in [
        (
            "set-cookie",
            "header \"Set-Cookie\" is reserved to the host",
        ),
        (
            "redirect-all",
            "the catch-all rule may not redirect every request",
        ),
        ("redirect-to-canary", "sends no traffic to the canary"),
        ("many-filters", "at most 16 filters per rule (got 1000)"),
        ("crlf", "without control characters"),
    ] {
        let yaml = format!("{CANARY}    strategyConfig: {attack}\n");
        let mut registry = common::registry();
        hostile_v2(&mut registry);
        let mut run = Run::new(&yaml, registry);
        let (weights, statuses) = run.rollout(12).await;
        // No step is ever taken, every route keeps everyone on the
        // primary and none of the plugin's filters is written, and the
        // rollout fails by its threshold.
        assert!(weights.iter().all(|w| *w == 0), "{attack}: {weights:?}");
        let (weight, _) = common::canary_exposure(&run.route());
        assert_eq!(weight, 0, "{attack}");
        let filters = route_filters(&run.cluster);
        for smuggled in ["Set-Cookie", "requestRedirect", "x-flood", "x-ok"] {
            assert!(!filters.contains(smuggled), "{attack}: {filters}");
        }
        assert_eq!(
            statuses.last().unwrap().phase,
            Some(CanaryPhase::Failed),
            "{attack}"
        );
        let events = run.messages();
        assert!(
            events.iter().any(
                |e| e.contains("plugin hostile-v2 returned an invalid answer") && e.contains(why)
            ),
            "{attack}: {events:#?}"
        );
    }
}

#[tokio::test]
async fn a_settings_check_that_never_returns_is_cut_off_and_refuses_the_canary() {
    let yaml = format!("{CANARY}    strategyConfig: validate-loops\n");
    let mut registry = common::registry();
    hostile_v2(&mut registry);
    let mut run = Run::new(&yaml, registry);
    for i in 0..3 {
        if i == 1 {
            common::new_image(&run.cluster, "test");
        }
        let out = run.tick().await;
        let ready = out.status.condition("Ready").expect("Ready");
        assert_eq!(ready.reason.as_deref(), Some("InvalidPluginConfig"));
        let message = ready.message.clone().unwrap_or_default();
        assert!(
            message.contains(
                "spec.analysis.strategyConfig for strategy plugin hostile-v2 could not be checked: validate-config failed: plugin hostile-v2 timed out: no answer within 100 ms"
            ),
            "{message}"
        );
        assert_eq!(out.status.canary_weight, 0);
    }
    assert!(run.cluster.route("test", "podinfo").is_none(), "no traffic");
}
