//! Settings schemas: a plugin may embed a JSON Schema for its settings in
//! a `sluice:config-schema` custom section (the SDK's `config_schema!`).
//! The host reads it at load, `sluice plugin check` prints it, and a
//! Canary whose settings do not fit never reaches the plugin: its `Ready`
//! condition says why, once, and nothing moves until the settings are fixed.

use crate::common;

use common::Healthy;

use jiff::Timestamp;
use sluice_api::{Canary, CanaryPhase, CanaryStatus};
use sluice_host::{Limits, PluginRegistry};
use sluice_rollout::analysis::{Analyzer, TickOutcome};
use sluice_rollout::cluster::EventType;
use sluice_rollout::cluster::memory::MemoryCluster;

const SECTION: &str = "sluice:config-schema";

/// `wasm` with one more custom section, `name`, at the component's own
/// level (appended: a custom section may come anywhere).
fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = wasm.to_vec();
    out.push(0);
    leb(&mut out, body.len());
    out.extend(body);
    out
}

/// Writes `wasm` to a file of the test target for `sluice plugin check`.
fn plugin_file(name: &str, wasm: &[u8]) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-config");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wasm).unwrap();
    path
}

fn check(path: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["plugin", "check", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = common::sluice(&args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn plugin_check_prints_the_schema_and_checks_the_config_against_it() {
    let path = plugin_file("schema_strategy", common::test_plugin("schema_strategy"));
    let (ok, out) = check(&path, &["--config", r#"{"factor": 2}"#]);
    assert!(ok, "{out}");
    assert!(
        out.contains("schema:   {\n            \"properties\": {\n              \"factor\": {\n                \"minimum\": 1,\n                \"type\": \"number\"\n              }\n            },\n            \"required\": [\n              \"factor\"\n            ],\n            \"type\": \"object\"\n          }\n"),
        "{out}"
    );
    assert!(
        out.contains("config:   matches the settings schema"),
        "{out}"
    );
    assert!(out.contains("result:   OK"), "{out}");

    let (ok, out) = check(&path, &["--config", r#"{"factor": 0}"#]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "result:   REFUSED: the settings (--config) does not match the plugin's settings schema: at \"/factor\": 0 is less than the minimum of 1"
        ),
        "{out}"
    );
    assert!(
        !out.contains("call:"),
        "no plugin call with refused settings: {out}"
    );

    let (ok, out) = check(&path, &["--config", "not json"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("result:   REFUSED: the settings (--config) is not JSON: expected"),
        "{out}"
    );

    // A plugin without a schema says so, and is checked as before.
    let weighted = sluice_host::builtin::strategy("weighted").unwrap();
    let (ok, out) = check(&plugin_file("weighted", weighted), &[]);
    assert!(ok, "{out}");
    assert!(out.contains("schema:   no settings schema\n"), "{out}");
    assert!(out.contains("call:     decide"), "{out}");
}

#[test]
fn a_plugin_whose_schema_is_not_json_schema_is_refused_at_load_naming_the_section() {
    let host = common::host();
    let weighted = sluice_host::builtin::strategy("weighted").unwrap();
    let bad = with_custom_section(weighted, SECTION, br#"{"type": 12}"#);
    let e = host
        .load_strategy("bad-schema", &bad, Limits::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.starts_with(
            "plugin bad-schema could not be loaded: its sluice:config-schema custom section is not a valid JSON Schema:"
        ),
        "{e}"
    );
    let not_json = with_custom_section(weighted, SECTION, b"{type: object");
    let e = host
        .load_strategy("not-json", &not_json, Limits::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("its sluice:config-schema custom section is not JSON"),
        "{e}"
    );
    // `plugin check` refuses it with the same words.
    let (ok, out) = check(&plugin_file("bad_schema", &bad), &[]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "REFUSED: plugin bad_schema could not be loaded: its sluice:config-schema custom section is not a valid JSON Schema"
        ),
        "{out}"
    );
}

#[tokio::test]
async fn the_sdk_macro_s_section_survives_into_the_component_and_plugins_without_one_check_nothing()
{
    let host = common::host();
    let plugin = host
        .load_strategy(
            "schema-strategy",
            common::test_plugin("schema_strategy"),
            Limits::default(),
        )
        .unwrap();
    let schema = plugin.config_schema().expect("the SDK's section is read");
    assert_eq!(schema.json()["required"][0], "factor");
    assert!(plugin.check_config(r#"{"factor": 1.5}"#).await.is_ok());
    // An empty config is the plugin's own default: checked only when a
    // RolloutPlugin gives one.
    assert!(plugin.check_config("").await.is_ok());
    let with_default = plugin.with_default_config(r#"{"factor": 0}"#.into());
    assert!(with_default.check_config("").await.is_err());
    assert!(with_default.check_config(r#"{"factor": 3}"#).await.is_ok());

    for name in [
        "weighted",
        "ab-testing",
        "blue-green",
        "mirroring",
        "session-affinity",
    ] {
        let p = host
            .load_strategy(
                name,
                sluice_host::builtin::strategy(name).unwrap(),
                Limits::default(),
            )
            .unwrap();
        assert!(p.config_schema().is_none(), "{name}");
        assert!(p.check_config("not json").await.is_ok(), "{name}");
    }
    let threshold = host
        .load_evaluator(
            "threshold",
            sluice_host::builtin::evaluator("threshold").unwrap(),
            Limits::default(),
        )
        .unwrap();
    assert!(threshold.config_schema().is_none());
}

/// The guide's Canary without the autoscaler, with `analysis` lines added.
fn canary_yaml(analysis: &str) -> String {
    common::read("examples/podinfo-canary.yaml")
        .replace(
            "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: podinfo\n",
            "",
        )
        .replace("    stepWeight: 10\n", &format!("    stepWeight: 10\n{analysis}"))
}

fn put_canary(cluster: &MemoryCluster, yaml: &str) {
    cluster
        .put_canary(sluice_api::load::canary_from_yaml(yaml).unwrap())
        .unwrap();
}

fn world(yaml: &str) -> MemoryCluster {
    let cluster = MemoryCluster::new();
    let deployment: k8s_openapi::api::apps::v1::Deployment = yaml_serde::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec: {containers: [{name: podinfod, image: 'podinfo:1'}]}\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    put_canary(&cluster, yaml);
    cluster
}

/// A new revision of the target (a new image tag).
fn new_revision(cluster: &MemoryCluster) {
    let mut d = cluster.get_deployment("test", "podinfo").unwrap();
    let container = &mut d
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    let image = container.image.clone().unwrap_or_default();
    container.image = Some(format!("{image}.1"));
    cluster.put_deployment(d).unwrap();
}

fn ready(status: &CanaryStatus) -> (String, String, String) {
    let c = status.condition("Ready").expect("a Ready condition");
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

struct Run {
    cluster: MemoryCluster,
    analyzer: Analyzer<MemoryCluster, Healthy, Healthy>,
    now: Timestamp,
}

impl Run {
    fn new(yaml: &str, registry: PluginRegistry) -> Self {
        let cluster = world(yaml);
        let analyzer = Analyzer::new(cluster.clone(), Healthy, Healthy, registry);
        Run {
            cluster,
            analyzer,
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

    /// Ticks while the settings are refused: `Ready` stays False with
    /// `InvalidPluginConfig` and a message holding every one of `wanted`;
    /// one warning event in all; no route, no primary, no plugin call.
    async fn refused(&mut self, plugin: &str, wanted: &[&str]) {
        let events_before = self.cluster.events("test", "podinfo").len();
        let mut warnings = Vec::new();
        for i in 0..4 {
            if i == 1 {
                new_revision(&self.cluster);
            }
            let out = self.tick().await;
            eprintln!(
                "DEBUG {:?} {} {:?} {:?}",
                out.status.phase, out.status.canary_weight, out.events, out.status.conditions
            );
            let (status, reason, message) = ready(&out.status);
            assert_eq!(status, "False");
            assert_eq!(reason, "InvalidPluginConfig", "{message}");
            for w in wanted {
                assert!(message.contains(w), "{message:?} lacks {w:?}");
            }
            warnings.extend(
                out.events
                    .iter()
                    .filter(|e| e.event_type == EventType::Warning)
                    .map(|e| e.message.clone()),
            );
            assert_ne!(out.status.phase, Some(CanaryPhase::Progressing));
            assert_eq!(out.status.canary_weight, 0);
        }
        assert_eq!(warnings.len(), 1, "one warning event in all: {warnings:?}");
        let events = self.cluster.events("test", "podinfo");
        assert_eq!(events.len(), events_before + 1, "{events:?}");
        let event = events.last().unwrap();
        assert_eq!(event.event_type, EventType::Warning);
        assert!(
            wanted.iter().all(|w| event.message.contains(w)),
            "{event:?}"
        );
        assert!(
            self.cluster.route("test", "podinfo").is_none(),
            "no route: no traffic can reach the canary"
        );
        assert!(
            self.cluster
                .get_deployment("test", "podinfo-primary")
                .is_none()
        );
        let host = self.analyzer.plugins.host();
        assert_eq!(host.metrics().calls(plugin), 0, "{plugin} was called");
    }

    /// One tick after the settings were fixed: the Canary is ready again.
    async fn ready_again(&mut self) {
        let out = self.tick().await;
        assert_eq!(
            ready(&out.status),
            (
                "True".into(),
                "Valid".into(),
                "The Canary spec is valid".into()
            )
        );
    }

    /// Ticks until the rollout is promoted; the canary weights it went
    /// through.
    async fn rolls_out(&mut self) -> Vec<u32> {
        let mut weights = Vec::new();
        let mut revised = false;
        for _ in 0..30 {
            let out = self.tick().await;
            eprintln!(
                "DEBUG {:?} {} {:?} {:?}",
                out.status.phase, out.status.canary_weight, out.events, out.status.conditions
            );
            if let Some(c) = out.status.condition("Ready") {
                assert_eq!(c.status, "True", "{c:?}");
            }
            if out.status.phase == Some(CanaryPhase::Initialized) && !revised {
                new_revision(&self.cluster);
                revised = true;
            }
            if out.status.canary_weight > 0 {
                weights.push(out.status.canary_weight);
            }
            if out.status.phase == Some(CanaryPhase::Succeeded) {
                return weights;
            }
        }
        panic!("not promoted; weights {weights:?}");
    }
}

fn registry_with_schema_strategy() -> PluginRegistry {
    common::registry_with_strategy("schema-strategy", common::test_plugin("schema_strategy"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_strategy_config_that_fits_the_schema_rolls_out() {
    let yaml = canary_yaml("    strategyConfig: {factor: 2}\n");
    let mut run = Run::new(&yaml, registry_with_schema_strategy());
    let weights = run.rolls_out().await;
    // stepWeight 10 times factor 2, up to maxWeight 50.
    assert_eq!(&weights[..3], &[20, 40, 50], "{weights:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_strategy_config_that_does_not_fit_is_refused_before_any_call_until_fixed() {
    let bad = [
        (
            "{factor: 0}",
            "at \"/factor\": 0 is less than the minimum of 1",
        ),
        ("'not json'", "is not JSON: expected"),
        ("{other: 1}", "at \"\": \"factor\" is a required property"),
    ];
    for (config, why) in bad {
        let yaml = canary_yaml(&format!("    strategyConfig: {config}\n"));
        let mut run = Run::new(&yaml, registry_with_schema_strategy());
        run.refused(
            "schema-strategy",
            &[
                "spec.analysis.strategyConfig for strategy plugin schema-strategy",
                why,
            ],
        )
        .await;
        // Fixing the settings makes the Canary ready, and it rolls out.
        put_canary(
            &run.cluster,
            &canary_yaml("    strategyConfig: {factor: 2}\n"),
        );
        let weights = run.rolls_out().await;
        assert_eq!(weights.first(), Some(&20), "{config}: {weights:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_strategy_config_is_checked_only_when_the_rollout_plugin_gives_a_default() {
    let mut registry = common::registry();
    let plugin = registry
        .host()
        .load_strategy(
            "schema-strategy",
            common::test_plugin("schema_strategy"),
            Limits::default(),
        )
        .unwrap()
        .with_default_config(r#"{"factor": 0}"#.into());
    registry.override_strategy(plugin);
    let mut run = Run::new(&canary_yaml(""), registry);
    run.refused(
        "schema-strategy",
        &[
            "the RolloutPlugin's config (used as spec.analysis.strategyConfig is empty) for strategy plugin schema-strategy",
            "at \"/factor\": 0 is less than the minimum of 1",
        ],
    )
    .await;
}

/// The built-in threshold evaluator with a schema for its `unit` setting.
fn registry_with_strict_threshold() -> PluginRegistry {
    let schema = br#"{"type":"object","properties":{"unit":{"enum":["s","ms"]}},"additionalProperties":false}"#;
    let wasm = with_custom_section(
        sluice_host::builtin::evaluator("threshold").unwrap(),
        SECTION,
        schema,
    );
    let mut registry = common::registry();
    let plugin = registry
        .host()
        .load_evaluator("strict-threshold", &wasm, Limits::default())
        .unwrap();
    assert!(plugin.config_schema().is_some());
    registry.add_evaluator(plugin);
    registry
}

/// The guide's Canary whose latency metric uses `strict-threshold` with
/// `config`.
fn canary_with_evaluator_config(config: &str) -> String {
    canary_yaml("").replace(
        "          name: latency\n          namespace: flagger-system\n",
        &format!(
            "          name: latency\n          namespace: flagger-system\n        evaluator: strict-threshold\n        evaluatorConfig: {config}\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metric_config_that_does_not_fit_its_evaluator_is_refused_until_fixed() {
    let yaml = canary_with_evaluator_config("{unit: hours}");
    assert!(yaml.contains("evaluator: strict-threshold"));
    let mut run = Run::new(&yaml, registry_with_strict_threshold());
    run.refused(
        "strict-threshold",
        &[
            "spec.analysis.metrics[1].evaluatorConfig for evaluator plugin strict-threshold",
            "at \"/unit\":",
        ],
    )
    .await;
    put_canary(&run.cluster, &canary_with_evaluator_config("{unit: s}"));
    run.ready_again().await;
    run.rolls_out().await;
    assert!(
        run.analyzer
            .plugins
            .host()
            .metrics()
            .calls("strict-threshold")
            > 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metric_check_holds_its_evaluator_to_the_schema_just_before_the_call() {
    use sluice_rollout::analysis::checks::{Fault, run_metrics};
    let registry = registry_with_strict_threshold();
    let canary =
        sluice_api::load::canary_from_yaml(&canary_with_evaluator_config("{unit: hours}")).unwrap();
    let settings = canary.settings().unwrap();
    let failures = run_metrics(
        &Healthy,
        &registry,
        &canary,
        &settings.metrics,
        ("podinfo.test", "2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].fault, Some(Fault::InvalidPluginConfig));
    assert_eq!(Fault::InvalidPluginConfig.reason(), "InvalidPluginConfig");
    assert!(
        failures[0].message.starts_with(
            "Halt podinfo.test advancement metric latency: evaluatorConfig for evaluator plugin strict-threshold does not match the plugin's settings schema: at \"/unit\""
        ),
        "{failures:?}"
    );
    assert_eq!(registry.host().metrics().calls("strict-threshold"), 0);
}
