//! `sluice simulate`: the guide's rollouts end to end through the real
//! engine, the in-memory cluster and the built-in Wasm plugins.

use crate::common;

use sluice_api::CanaryPhase;

fn assert_in_order(messages: &[String], expected: &[&str]) {
    let mut rest = messages.iter();
    for want in expected {
        assert!(
            rest.any(|m| m == want),
            "missing (or out of order) {want:?} in:\n{}",
            messages.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn healthy_rollout_is_promoted_as_in_the_guide() {
    let sim = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(&common::read("examples/scenarios/healthy.yaml")),
    )
    .await;
    assert_in_order(
        &sim.messages(),
        &[
            "Initialization done! podinfo.test",
            "New revision detected podinfo.test",
            "Scaling up podinfo.test",
            "Waiting for podinfo.test rollout to finish: 1 of 2 updated replicas are available",
            "Advance podinfo.test canary weight 10",
            "Advance podinfo.test canary weight 20",
            "Advance podinfo.test canary weight 30",
            "Advance podinfo.test canary weight 40",
            "Advance podinfo.test canary weight 50",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Waiting for podinfo-primary.test rollout to finish: 1 of 2 updated replicas are available",
            "Promotion completed! Scaling down podinfo.test",
        ],
    );
    let last = sim.final_tick().unwrap();
    assert_eq!(last.phase, Some(CanaryPhase::Succeeded));
    assert_eq!((last.canary_weight, last.failed_checks), (0, 0));
    // The guide's generated objects.
    for object in [
        "deployment.apps/test/podinfo-primary",
        "horizontalpodautoscaler.autoscaling/test/podinfo-primary",
        "service/test/podinfo",
        "service/test/podinfo-canary",
        "service/test/podinfo-primary",
        "httproutes.gateway.networking.k8s.io/test/podinfo",
    ] {
        assert!(
            sim.inventory.iter().any(|o| o == object),
            "{object} missing: {:?}",
            sim.inventory
        );
    }
    // The route followed the weights, and ends all on the primary.
    let canary_weights: Vec<i32> = sim
        .ticks
        .iter()
        .map(|t| common::canary_exposure(t.http_route.as_ref().unwrap()).0)
        .collect();
    for w in [10, 20, 30, 40, 50] {
        assert!(canary_weights.contains(&w), "{canary_weights:?}");
    }
    assert_eq!(*canary_weights.last().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_metrics_roll_back_after_the_threshold() {
    let sim = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(&common::read("examples/scenarios/metric-failure.yaml")),
    )
    .await;
    let messages = sim.messages();
    assert_in_order(
        &messages,
        &[
            "Advance podinfo.test canary weight 10",
            "Halt podinfo.test advancement error rate 69.17% > 1%",
            "Halt podinfo.test advancement error rate 61.39% > 1%",
            "Halt podinfo.test advancement error rate 55.06% > 1%",
            "Halt podinfo.test advancement error rate 47.00% > 1%",
            "Halt podinfo.test advancement error rate 38.08% > 1%",
            "Rolling back podinfo.test failed checks threshold reached 5",
            "Canary failed! Scaling down podinfo.test",
        ],
    );
    let last = sim.final_tick().unwrap();
    assert_eq!(last.phase, Some(CanaryPhase::Failed));
    assert_eq!(last.canary_weight, 0);
    assert_eq!(
        common::canary_exposure(last.http_route.as_ref().unwrap()),
        (0, false)
    );
    // While halted, the weight never moved.
    let halted: Vec<u32> = sim
        .ticks
        .iter()
        .filter(|t| t.events.iter().any(|e| e.message.starts_with("Halt")))
        .map(|t| t.canary_weight)
        .collect();
    assert!(halted.windows(2).all(|w| w[0] == w[1]), "{halted:?}");
    let status = sim.canary.status.unwrap();
    let promoted = status
        .conditions
        .iter()
        .find(|c| c.condition_type == "Promoted")
        .unwrap();
    assert_eq!(
        (promoted.status.as_str(), promoted.reason.as_deref()),
        ("False", Some("Failed"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_that_never_gets_ready_is_rolled_back_at_the_deadline() {
    let sim = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(&common::read("examples/scenarios/progress-deadline.yaml")),
    )
    .await;
    let messages = sim.messages();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("Rolling back podinfo.test progress deadline exceeded")),
        "{messages:?}"
    );
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
    // Never any traffic to a canary that was never ready.
    assert!(
        sim.ticks
            .iter()
            .all(|t| common::canary_exposure(t.http_route.as_ref().unwrap()).0 == 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_revision_mid_rollout_restarts_the_analysis() {
    let sim = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(&common::read("examples/scenarios/restart-mid-rollout.yaml")),
    )
    .await;
    assert_in_order(
        &sim.messages(),
        &[
            "Advance podinfo.test canary weight 20",
            "New revision detected! Restarting analysis for podinfo.test",
            "Advance podinfo.test canary weight 10",
            "Advance podinfo.test canary weight 50",
            "Promotion completed! Scaling down podinfo.test",
        ],
    );
    let restart = sim
        .ticks
        .iter()
        .find(|t| {
            t.events
                .iter()
                .any(|e| e.message.contains("Restarting analysis"))
        })
        .unwrap();
    assert_eq!((restart.canary_weight, restart.failed_checks), (0, 0));
    assert_eq!(
        common::canary_exposure(restart.http_route.as_ref().unwrap()).0,
        0
    );
    // The promoted primary runs the newest image.
    let status = sim.canary.status.unwrap();
    assert_eq!(status.last_promoted_spec, status.last_applied_spec);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_engine_continues_from_the_status() {
    let scenario = common::scenario(&common::read("examples/scenarios/engine-restart.yaml"));
    let restart_tick = scenario
        .changes
        .iter()
        .find(|c| c.restart_engine)
        .unwrap()
        .tick as u64;
    let sim = common::simulate(common::canary("examples/podinfo-canary.yaml"), scenario).await;
    let before = &sim.ticks[restart_tick as usize - 2];
    let after = &sim.ticks[restart_tick as usize - 1];
    assert!(
        before.canary_weight > 0,
        "the restart must happen mid-rollout"
    );
    assert_eq!(
        after.canary_weight,
        before.canary_weight + 10,
        "continues, does not start over"
    );
    assert!(
        !after
            .events
            .iter()
            .any(|e| e.message.contains("New revision"))
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_without_data_fail_with_no_values_found() {
    let sim = common::simulate(
        common::canary("examples/podinfo-canary.yaml"),
        common::scenario(&common::read("examples/scenarios/no-metrics.yaml")),
    )
    .await;
    assert!(sim.messages().contains(
        &"Halt advancement no values found for custom metric: error-rate probably podinfo.test is not receiving traffic"
            .to_string()
    ));
    assert_eq!(sim.final_tick().unwrap().phase, Some(CanaryPhase::Failed));
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_webhooks_gate_the_rollout() {
    let scenario = common::scenario(
        "ticks: 12\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\nwebhooks:\n  smoke-test: [fail, fail, fail, fail, pass]\n  load-test: [pass]\nchanges:\n  - tick: 2\n    image: podinfo=podinfo:2\n",
    );
    let sim = common::simulate(common::canary("examples/podinfo-canary.yaml"), scenario).await;
    let messages = sim.messages();
    assert!(
        messages
            .iter()
            .any(|m| m
                .starts_with("Halt podinfo.test advancement pre-rollout check smoke-test failed")),
        "{messages:?}"
    );
    let first_advance = sim
        .ticks
        .iter()
        .find(|t| t.canary_weight > 0)
        .expect("advances once the hook passes");
    // Tick 2 detects the revision; ticks 3 and 4 fail the pre-rollout gate.
    assert_eq!(first_advance.tick, 5);
    assert_eq!(first_advance.failed_checks, 2);
}

use common::sluice;

#[test]
fn cli_default_run_prints_the_describe_view() {
    let out = sluice(&["simulate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Phase:          Succeeded"), "{text}");
    assert!(text.contains("Normal   Synced"), "{text}");
    assert!(
        text.contains("Promotion completed! Scaling down podinfo.test"),
        "{text}"
    );
}

#[test]
fn cli_json_output_has_one_object_per_tick() {
    let out = sluice(&[
        "simulate",
        "--canary",
        "tests/fixtures/seed/podinfo-canary.yaml",
        "--templates",
        "tests/fixtures/seed/metric-templates.yaml",
        "--scenario",
        "examples/scenarios/metric-failure.yaml",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 5);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["tick"], i as u64 + 1);
        for key in [
            "phase",
            "canaryWeight",
            "failedChecks",
            "iterations",
            "events",
            "httpRoute",
        ] {
            assert!(l.get(key).is_some(), "tick {i} lacks {key}: {l}");
        }
        for e in l["events"].as_array().unwrap() {
            assert!(e["type"].is_string() && e["reason"].is_string() && e["message"].is_string());
        }
        let route: sluice_rollout::router::HttpRoute =
            serde_json::from_value(l["httpRoute"].clone()).expect("an HTTPRoute");
        assert_eq!(route.metadata.name.as_deref(), Some("podinfo"));
    }
    assert_eq!(lines.last().unwrap()["phase"], "Failed");
}

#[test]
fn cli_bad_input_exits_non_zero_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad_canary = dir.path().join("bad.yaml");
    std::fs::write(
        &bad_canary,
        common::read("examples/podinfo-canary.yaml").replace("stepWeight: 10", "stepWeight: 0"),
    )
    .unwrap();
    let out = sluice(&["simulate", "--canary", bad_canary.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("spec.analysis.stepWeight: must be between 1 and 100 (got 0)"),
        "{err}"
    );

    let bad_scenario = dir.path().join("scenario.yaml");
    std::fs::write(
        &bad_scenario,
        "ticks: 3\nchanges:\n  - tick: 2\n    image: nonsense\n",
    )
    .unwrap();
    let out = sluice(&["simulate", "--scenario", bad_scenario.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("changes[0].image") && err.contains("container=image"),
        "{err}"
    );

    let out = sluice(&["simulate", "--scenario", "does/not/exist.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does/not/exist.yaml"));

    // A strategy that does not exist: said plainly, before any run.
    let unknown = dir.path().join("unknown-strategy.yaml");
    std::fs::write(
        &unknown,
        common::read("examples/podinfo-canary.yaml").replace(
            "    stepWeight: 10\n",
            "    stepWeight: 10\n    strategy: geometric\n",
        ),
    )
    .unwrap();
    let out = sluice(&[
        "simulate",
        "--canary",
        unknown.to_str().unwrap(),
        "--templates",
        "examples/metric-templates.yaml",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("strategy plugin \"geometric\" is not available; available strategies:"),
        "{err}"
    );
}

/// Builds the example custom plugin the way its README says, outside the
/// engine's build.
fn build_doubling_plugin() -> std::path::PathBuf {
    common::build_example_plugin("doubling", "sluice_doubling")
}

#[test]
fn a_custom_strategy_plugin_changes_the_rollout_without_rebuilding_sluice() {
    let wasm = build_doubling_plugin();
    let out = sluice(&[
        "simulate",
        "--output",
        "json",
        "--strategy-plugin",
        wasm.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let advances: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|m| m.starts_with("Advance"))
        .collect();
    let expected: Vec<String> = [5, 10, 20, 40, 50]
        .iter()
        .map(|w| format!("Advance podinfo.test canary weight {w}"))
        .collect();
    assert_eq!(advances, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn step_weights_and_gradual_promotion() {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "    maxWeight: 50\n",
        "    stepWeights: [1, 5, 25, 60]\n    stepWeightPromotion: 30\n",
    );
    let yaml = yaml.replace("    stepWeight: 10\n", "");
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    let sim = common::simulate(
        canary,
        common::scenario("ticks: 40\nmetrics:\n  error-rate: [0.1]\n  latency: [0.1]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n"),
    )
    .await;
    assert_in_order(
        &sim.messages(),
        &[
            "Advance podinfo.test canary weight 1",
            "Advance podinfo.test canary weight 5",
            "Advance podinfo.test canary weight 25",
            "Advance podinfo.test canary weight 60",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Advance podinfo.test primary weight 70",
            "Promotion completed! Scaling down podinfo.test",
        ],
    );
    // While promoting, the canary's share only ever goes down.
    let promoting: Vec<u32> = sim
        .ticks
        .iter()
        .filter(|t| t.phase == Some(CanaryPhase::Promoting))
        .map(|t| t.canary_weight)
        .collect();
    assert!(promoting.windows(2).all(|w| w[0] >= w[1]), "{promoting:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn skip_analysis_promotes_without_checks() {
    let yaml = common::read("examples/podinfo-canary.yaml").replace(
        "  progressDeadlineSeconds: 60\n",
        "  progressDeadlineSeconds: 60\n  skipAnalysis: true\n",
    );
    let canary = sluice_api::load::canary_from_yaml(&yaml).unwrap();
    // Metrics would fail every check: skipAnalysis ignores them.
    let sim = common::simulate(
        canary,
        common::scenario("ticks: 20\nmetrics:\n  error-rate: [99]\nchanges:\n  - tick: 2\n    image: podinfod=podinfo:2\n"),
    )
    .await;
    let messages = sim.messages();
    assert!(
        !messages
            .iter()
            .any(|m| m.starts_with("Halt") || m.starts_with("Advance")),
        "{messages:?}"
    );
    assert_in_order(
        &messages,
        &[
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Promotion completed! Scaling down podinfo.test",
        ],
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}
