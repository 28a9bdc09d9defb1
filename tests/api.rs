//! The Canary and MetricTemplate resources: parsing the guide's manifests,
//! Flagger's defaults, and refusing invalid specs with the field named.

use crate::common;

use std::time::Duration;

use sluice_api::{MetricSource, load};

const SEED: [&str; 7] = [
    "podinfo-canary.yaml",
    "podinfo-ab-canary.yaml",
    "podinfo-canary-session-affinity.yaml",
    "podinfo-canary-mirror.yaml",
    "service-headers.yaml",
    "service-cors.yaml",
    "service-rewrite.yaml",
];

#[test]
fn every_seed_example_parses_under_both_groups() {
    for file in SEED {
        let flagger = common::read(&format!("tests/fixtures/seed/{file}"));
        assert!(flagger.contains("flagger.app/v1beta1"));
        let sluice = flagger.replace("flagger.app/v1beta1", "sluice.dev/v1beta1");
        for text in [&flagger, &sluice] {
            for doc in load::documents(text).unwrap() {
                let one = yaml_serde::to_string(&doc).unwrap();
                let c = load::canary_from_yaml(&one).unwrap_or_else(|e| panic!("{file}: {e:#}"));
                assert_eq!(c.metadata.name.as_deref(), Some("podinfo"), "{file}");
                assert_eq!(c.metadata.namespace.as_deref(), Some("test"), "{file}");
            }
        }
    }
    let templates = load::metric_templates_from_yaml(&common::read(
        "tests/fixtures/seed/metric-templates.yaml",
    ))
    .unwrap();
    let names: Vec<_> = templates
        .iter()
        .map(|t| t.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["latency", "error-rate"]);
    assert!(templates[1].spec.query.contains("{{ target }}"));
    assert_eq!(
        templates[0].spec.provider.address.as_deref(),
        Some("http://prometheus.istio-system:9090")
    );
}

#[test]
fn the_full_seed_canaries_are_valid_and_get_flaggers_defaults() {
    let c = common::canary("examples/podinfo-canary.yaml");
    let s = c.settings().expect("valid");
    assert_eq!(s.interval, Duration::from_secs(60));
    assert_eq!(s.threshold, 5);
    assert_eq!(s.max_weight, 50);
    assert_eq!(s.step_weight, Some(10));
    assert_eq!(s.progress_deadline, Duration::from_secs(60));
    assert_eq!(s.strategy.name, "weighted");
    assert_eq!(s.metrics.len(), 2);
    assert_eq!(s.metrics[1].interval, Duration::from_secs(30));
    assert_eq!(
        s.metrics[0].source,
        MetricSource::Template {
            name: "error-rate".into(),
            namespace: "flagger-system".into()
        }
    );
    assert_eq!(s.webhooks[0].timeout, Duration::from_secs(15));
    assert_eq!(s.webhooks[1].hook_type.as_str(), "rollout");

    let ab = common::canary("examples/podinfo-ab-canary.yaml")
        .settings()
        .unwrap();
    assert_eq!(ab.strategy.name, "ab-testing");
    assert_eq!(ab.iterations, Some(10));
    let mirror = common::canary("examples/podinfo-canary-mirror.yaml")
        .settings()
        .unwrap();
    assert_eq!(mirror.strategy.name, "mirroring");
    assert_eq!(
        mirror.metrics[0].source,
        MetricSource::Builtin("request-success-rate".into())
    );
    assert_eq!(
        mirror.progress_deadline,
        Duration::from_secs(600),
        "Flagger's default"
    );
    let sticky = common::canary("examples/podinfo-canary-session-affinity.yaml")
        .settings()
        .unwrap();
    assert_eq!(sticky.strategy.name, "session-affinity");
    assert_eq!(sticky.session_affinity.unwrap().max_age, 21600);
}

/// The seed canary with one line replaced.
fn variant(from: &str, to: &str) -> String {
    let text = common::read("examples/podinfo-canary.yaml");
    assert!(text.contains(from), "fixture lacks {from:?}");
    text.replacen(from, to, 1)
}

fn errors_of(yaml: &str) -> String {
    match load::canary_from_yaml(yaml) {
        Err(e) => format!("{e:#}"),
        Ok(c) => c.settings().expect_err("spec must be refused").to_string(),
    }
}

#[test]
fn invalid_specs_are_refused_naming_the_field() {
    let cases = [
        (
            variant("stepWeight: 10", "stepWeight: 0"),
            "spec.analysis.stepWeight: must be between 1 and 100 (got 0)",
        ),
        (
            variant(
                "    port: 9898\n",
                "    port: 9898\n    retries:\n      attempts: 3\n      retryOn: sometimes\n",
            ),
            "spec.service.retries.retryOn: \"sometimes\" names no condition Sluice knows",
        ),
        (
            variant(
                "    port: 9898\n",
                "    port: 9898\n    retries:\n      attempts: 3\n      perTryTimeout: 5 seconds\n",
            ),
            "spec.service.retries.perTryTimeout: invalid duration \"5 seconds\"",
        ),
        (
            variant("stepWeight: 10", "stepWeight: 150"),
            "spec.analysis.stepWeight: must be between 1 and 100 (got 150)",
        ),
        (
            variant("maxWeight: 50", "maxWeight: 101"),
            "spec.analysis.maxWeight: must be between 1 and 100 (got 101)",
        ),
        (
            variant("interval: 1m\n", "interval: 1minute\n"),
            "spec.analysis.interval: invalid duration \"1minute\"",
        ),
        (
            variant("interval: 30s", "interval: soon"),
            "spec.analysis.metrics[1].interval: invalid duration \"soon\"",
        ),
        (
            variant("timeout: 5s", "timeout: 5sec"),
            "spec.analysis.webhooks[1].timeout: invalid duration \"5sec\"",
        ),
        (
            variant("timeout: 5s", "timeout: 5"),
            "spec.analysis.webhooks[1].timeout: invalid type: integer",
        ),
        (
            variant(
                "        templateRef:\n          name: latency\n          namespace: flagger-system\n",
                "",
            ),
            "spec.analysis.metrics[1]: unknown metric \"latency\": add a templateRef",
        ),
        (
            variant(
                "  targetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: podinfo\n",
                "",
            ),
            "spec.targetRef.name: required",
        ),
        (
            variant("type: pre-rollout", "type: pre-flight"),
            "spec.analysis.webhooks[0].type: \"pre-flight\" is not a webhook type",
        ),
        (
            variant("max: 1\n", "max: 1\n          min: 5\n"),
            "spec.analysis.metrics[0].thresholdRange: min 5 is larger than max 1",
        ),
        (
            variant("threshold: 5", "threshold: 0"),
            "spec.analysis.threshold: must be at least 1",
        ),
        (
            variant("stepWeight: 10", "stepWeight: ten"),
            "spec.analysis.stepWeight: invalid type",
        ),
    ];
    for (yaml, expected) in cases {
        let got = errors_of(&yaml);
        assert!(got.contains(expected), "expected {expected:?} in {got:?}");
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml =
        variant("stepWeight: 10", "stepWeight: 0").replacen("maxWeight: 50", "maxWeight: 200", 1);
    let got = errors_of(&yaml);
    assert!(got.contains("spec.analysis.stepWeight"), "{got}");
    assert!(got.contains("spec.analysis.maxWeight"), "{got}");
}

#[test]
fn unknown_api_groups_and_kinds_are_refused() {
    let yaml = common::read("examples/podinfo-canary.yaml")
        .replace("sluice.dev/v1beta1", "example.com/v1");
    let e = format!("{:#}", load::canary_from_yaml(&yaml).unwrap_err());
    assert!(
        e.contains("apiVersion \"example.com/v1\" is not supported"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        load::canary_from_yaml(&common::read("examples/gateway.yaml")).unwrap_err()
    );
    assert!(e.contains("no Canary found"), "{e}");
}

#[test]
fn crds_carry_the_group_kinds_and_printer_columns() {
    let crds = sluice::cli::crds().unwrap();
    assert!(crds.contains("name: canaries.sluice.dev"));
    assert!(crds.contains("name: metrictemplates.sluice.dev"));
    for column in ["Status", "Weight", "FailedChecks", "LastTransitionTime"] {
        assert!(
            crds.contains(&format!("name: {column}")),
            "missing column {column}"
        );
    }
}
