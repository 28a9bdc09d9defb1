//! Metric analysis against a real Prometheus (Debian's `prometheus`
//! package) serving backfilled data, and against a recording HTTP server
//! where the request itself is what is checked.

use crate::common;
use crate::support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice::simulate::{self, PrometheusSource, RunOptions};
use sluice_api::{Canary, CanaryPhase, MetricCheck, MetricTemplate, load};
use sluice_rollout::analysis::checks::{MetricTarget, MetricsProvider};
use sluice_rollout::cluster::memory::MemoryCluster;
use sluice_rollout::metrics::{
    Credentials, EvaluationTime, MetricError, PrometheusClient, PrometheusError, PrometheusMetrics,
    PrometheusSettings,
};
use support::http::{Answer, Recorder};
use support::prometheus::{OpenMetrics, TestPrometheus};

/// 2026-01-01T00:00:00Z, the simulator's first tick.
const T0: i64 = 1_767_225_600;

fn at(unix: i64) -> Timestamp {
    Timestamp::from_second(unix).unwrap()
}

fn client(url: &str) -> PrometheusClient {
    PrometheusClient::new(url, Credentials::None, Duration::from_secs(5), false).unwrap()
}

fn canary(extra_analysis: &str, provider: Option<&str>) -> Canary {
    let provider = provider
        .map(|p| format!("  provider: {p}\n"))
        .unwrap_or_default();
    load::canary_from_yaml(&format!(
        "apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
{provider}  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
    gatewayRefs: [{{name: gateway, namespace: istio-ingress}}]
  analysis:
    interval: 1m
    threshold: 2
    maxWeight: 50
    stepWeight: 10
    metrics:
{extra_analysis}"
    ))
    .unwrap()
}

fn checks(canary: &Canary) -> Vec<MetricCheck> {
    canary.settings().unwrap().metrics
}

fn provider(
    cluster: MemoryCluster,
    address: Option<&str>,
    time: i64,
) -> PrometheusMetrics<MemoryCluster> {
    PrometheusMetrics::new(
        cluster,
        PrometheusSettings {
            default_address: address.map(str::to_string),
            ..Default::default()
        },
    )
    .unwrap()
    .with_evaluation_time(EvaluationTime::fixed(at(time)))
}

fn template(yaml_spec: &str) -> MetricTemplate {
    load::metric_templates_from_yaml(&format!(
        "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n  name: t\n  namespace: flagger-system\nspec:\n{yaml_spec}"
    ))
    .unwrap()
    .remove(0)
}

fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instant_queries_and_their_errors() {
    let mut data = OpenMetrics::new();
    for t in (T0 - 600..=T0 + 3600).step_by(10) {
        data.sample("test_metric", &[("job", "a"), ("ns", "test")], t, 5.0);
        data.sample("multi", &[("i", "1")], t, 1.0);
        data.sample("multi", &[("i", "2")], t, 2.0);
        if t >= T0 + 1800 {
            data.sample("late_metric", &[], t, 7.0);
        }
    }
    let prom = TestPrometheus::start(&data);
    let c = client(&prom.url);
    let now = Some(at(T0 + 300));

    assert_eq!(c.query("sum(test_metric)", now).await, Ok(Some(5.0)));
    // Scalars are accepted.
    assert_eq!(
        c.query("scalar(sum(test_metric)) * 2", now).await,
        Ok(Some(10.0))
    );
    // No series: no data, not an error.
    assert_eq!(c.query("no_such_metric", now).await, Ok(None));
    // The evaluation time is sent: the series only exists later.
    assert_eq!(c.query("late_metric", now).await, Ok(None));
    assert_eq!(
        c.query("late_metric", Some(at(T0 + 1900))).await,
        Ok(Some(7.0))
    );
    c.check_online().await.unwrap();

    let e = c.query("multi", now).await.unwrap_err();
    assert!(
        matches!(e, PrometheusError::SeveralSeries { count: 2, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(r#"multi{i="1"}"#) && text.contains("query: multi"),
        "{text}"
    );

    let e = c
        .query("sum(test_metric) / 0", now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("+Inf") && e.contains("not a number"), "{e}");
    let e = c
        .query("(sum(test_metric) - sum(test_metric)) / 0", now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("NaN"), "{e}");

    // Prometheus's own parse error, and the query.
    let e = c.query("sum(rate(test_metric[1m])", now).await.unwrap_err();
    assert!(matches!(e, PrometheusError::BadQuery { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("bad_data") && text.contains("parse error"),
        "{text}"
    );
    assert!(text.contains("sum(rate(test_metric[1m])"), "{text}");

    // A range vector is not a value.
    let e = c
        .query("test_metric[1m]", now)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("range vector"), "{e}");

    // Through PrometheusMetrics: a MetricTemplate with variables, an
    // inline query, and the errors that stop before Prometheus.
    let cluster = MemoryCluster::new();
    cluster
        .put_metric_template(template(
            "  provider:\n    type: prometheus\n  query: sum(test_metric{ns=\"{{ namespace }}\", job=\"{{ variables.job }}\"})\n",
        ))
        .unwrap();
    let canary = canary(
        r#"      - name: from-template
        templateRef: {name: t, namespace: flagger-system}
        templateVariables: {job: a}
        thresholdRange: {max: 10}
      - name: inline
        query: sum(test_metric{ns="{{ namespace }}"}) * 3
        thresholdRange: {max: 100}
      - name: typo
        templateRef: {name: t, namespace: flagger-system}
        templateVariables: {jb: a}
        thresholdRange: {max: 10}
      - name: missing
        templateRef: {name: nope, namespace: flagger-system}
        thresholdRange: {max: 10}
"#,
        None,
    );
    let checks = checks(&canary);
    let metrics = provider(cluster, Some(&prom.url), T0 + 300);
    assert_eq!(
        metrics
            .value(&canary, &checks[0], MetricTarget::Canary)
            .await
            .unwrap(),
        Some(5.0)
    );
    assert_eq!(
        metrics
            .value(&canary, &checks[1], MetricTarget::Canary)
            .await
            .unwrap(),
        Some(15.0)
    );
    let e = metrics
        .measure(&canary, &checks[2], MetricTarget::Canary)
        .await
        .unwrap_err();
    assert!(matches!(e, MetricError::Template(_)), "{e:?}");
    assert!(e.to_string().contains("undefined"), "{e}");
    let e = metrics
        .value(&canary, &checks[3], MetricTarget::Canary)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(e, "MetricTemplate flagger-system/nope not found");

    drop(prom);
    // The same address, now with nothing listening.
    let e = c.query("sum(test_metric)", now).await.unwrap_err();
    assert!(matches!(e, PrometheusError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains(c.address()), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn range_queries_and_their_errors() {
    let mut data = OpenMetrics::new();
    for t in (T0 - 900..=T0 + 3600).step_by(10) {
        data.sample("test_metric", &[("job", "a")], t, 5.0);
        data.sample("multi", &[("i", "1")], t, 1.0);
        data.sample("multi", &[("i", "2")], t, 2.0);
        if t >= T0 + 1800 {
            data.sample("late_metric", &[], t, 7.0);
        }
        // No value (0/0) for two minutes.
        let gap = (T0..T0 + 120).contains(&t);
        data.sample("gappy", &[], t, if gap { f64::NAN } else { 3.0 });
    }
    let prom = TestPrometheus::start(&data);
    let c = client(&prom.url);
    let end = Some(at(T0 + 300));
    let (ten_minutes, minute) = (Duration::from_secs(600), Duration::from_secs(60));

    // [end - 10m, end] every minute: 11 samples.
    assert_eq!(
        c.query_range("sum(test_metric)", end, ten_minutes, minute)
            .await,
        Ok(vec![5.0; 11])
    );
    // Steps before the series existed are absent, not zero.
    assert_eq!(
        c.query_range(
            "late_metric",
            Some(at(T0 + 1860)),
            Duration::from_secs(300),
            Duration::from_secs(30)
        )
        .await,
        Ok(vec![7.0; 3])
    );
    // NaN steps (T0 and T0+60) are left out.
    assert_eq!(
        c.query_range("gappy", end, ten_minutes, minute).await,
        Ok(vec![3.0; 9])
    );
    assert_eq!(
        c.query_range("no_such_metric", end, ten_minutes, minute)
            .await,
        Ok(Vec::new())
    );
    let e = c
        .query_range("multi", end, ten_minutes, minute)
        .await
        .unwrap_err();
    assert!(
        matches!(e, PrometheusError::SeveralSeries { count: 2, .. }),
        "{e:?}"
    );
    assert!(e.to_string().ends_with("query: multi"), "{e}");
    let e = c
        .query_range("sum(test_metric) / 0", end, ten_minutes, minute)
        .await
        .unwrap_err();
    assert!(matches!(e, PrometheusError::NotFinite { .. }), "{e:?}");
    // Prometheus's own limit on points per series, with the query.
    let e = c
        .query_range(
            "sum(test_metric)",
            end,
            Duration::from_secs(20_000),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, PrometheusError::BadQuery { .. }), "{e:?}");
    assert!(e.to_string().contains("11,000"), "{e}");

    // Through PrometheusMetrics: a built-in metric, in Flagger's units.
    drop(prom);
    let prom = TestPrometheus::start(&traffic_data());
    let canary = canary(BUILTINS, None);
    let checks = checks(&canary);
    let metrics = provider(MemoryCluster::new(), Some(&prom.url), T0 + 300);
    let window = Duration::from_secs(300);
    assert_eq!(
        metrics
            .series(&canary, &checks[1], MetricTarget::Canary, window, minute)
            .await
            .unwrap(),
        vec![99.0; 6]
    );
    assert_eq!(
        metrics
            .series(&canary, &checks[1], MetricTarget::Primary, window, minute)
            .await
            .unwrap(),
        vec![49.0; 6]
    );
    // Before any traffic: an empty series.
    let early = provider(MemoryCluster::new(), Some(&prom.url), T0 - 3600);
    assert_eq!(
        early
            .series(&canary, &checks[0], MetricTarget::Canary, window, minute)
            .await
            .unwrap(),
        Vec::<f64>::new()
    );
}

const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1767225540,"1"],[1767225570,"2"],[1767225600,"3"]]}]}}"#;

#[tokio::test]
async fn range_queries_send_the_window_and_the_credentials() {
    let server = Recorder::start(vec![Answer::new(200, MATRIX)]).await;
    let cluster = MemoryCluster::new();
    let mut t = template(&format!(
        "  provider:\n    type: prometheus\n    address: {}/prom\n    secretRef: {{name: bearer}}\n    headers:\n      X-Scope-OrgID: [tenant-1]\n  query: |\n    sum(\n      up{{ns=\"{{{{ namespace }}}}\"}}\n    )\n",
        server.url
    ));
    t.metadata.name = Some("ranged".into());
    cluster.put_metric_template(t).unwrap();
    cluster
        .put_secret(secret("flagger-system", "bearer", &[("token", "s3cr3t")]))
        .unwrap();
    let canary = canary(
        "      - {name: ranged, templateRef: {name: ranged, namespace: flagger-system}, evaluator: custom}\n",
        None,
    );
    let checks = checks(&canary);
    let metrics = provider(cluster, None, T0);
    assert_eq!(
        metrics
            .series(
                &canary,
                &checks[0],
                MetricTarget::Canary,
                Duration::from_secs(60),
                Duration::from_secs(30)
            )
            .await
            .unwrap(),
        vec![1.0, 2.0, 3.0]
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert!(
        r.path.starts_with("/prom/api/v1/query_range?"),
        "{}",
        r.path
    );
    assert_eq!(r.header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(r.header("x-scope-orgid"), Some("tenant-1"));
    let q: BTreeMap<String, String> = r.query().into_iter().collect();
    assert_eq!(q["query"], r#"sum( up{ns="test"} )"#);
    assert_eq!(q["start"], (T0 - 60).to_string());
    assert_eq!(q["end"], T0.to_string());
    assert_eq!(q["step"], "30");
}

/// Podinfo-style pod metrics and Envoy cluster statistics, for the
/// canary and for the primary.
fn traffic_data() -> OpenMetrics {
    let mut d = OpenMetrics::new();
    let (from, to) = (T0 - 600, T0 + 1200);
    let pod = |name: &'static str, status: &'static str| {
        [
            ("kubernetes_namespace", "test"),
            ("kubernetes_pod_name", name),
            ("status", status),
        ]
    };
    // Canary pods: 10 req/s OK, 0.1 req/s 5xx, all between 50 and 100 ms.
    let canary_pod = "podinfo-7d9f8b6c5-x2kq4";
    d.counter(
        "http_request_duration_seconds_count",
        &pod(canary_pod, "200"),
        from,
        to,
        10,
        |_| 10.0,
    );
    d.counter(
        "http_request_duration_seconds_count",
        &pod(canary_pod, "500"),
        from,
        to,
        10,
        |_| 0.1,
    );
    // Primary pods: 20 req/s, no errors, under 50 ms.
    let primary_pod = "podinfo-primary-5f6d7c8b9-abcde";
    d.counter(
        "http_request_duration_seconds_count",
        &pod(primary_pod, "200"),
        from,
        to,
        10,
        |_| 20.0,
    );
    let bucket = |name: &'static str, le: &'static str| {
        [
            ("kubernetes_namespace", "test"),
            ("kubernetes_pod_name", name),
            ("le", le),
        ]
    };
    for (le, canary_rate, primary_rate) in [
        ("0.05", 0.0, 20.0),
        ("0.1", 10.1, 20.0),
        ("0.25", 10.1, 20.0),
        ("+Inf", 10.1, 20.0),
    ] {
        d.counter(
            "http_request_duration_seconds_bucket",
            &bucket(canary_pod, le),
            from,
            to,
            10,
            move |_| canary_rate,
        );
        d.counter(
            "http_request_duration_seconds_bucket",
            &bucket(primary_pod, le),
            from,
            to,
            10,
            move |_| primary_rate,
        );
    }
    // Envoy: the canary cluster answers 10% 503s, between 50 and 100 ms.
    let rq = |cluster: &'static str, code: &'static str| {
        [
            ("envoy_cluster_name", cluster),
            ("envoy_response_code", code),
        ]
    };
    d.counter(
        "envoy_cluster_upstream_rq",
        &rq("test_podinfo-canary_9898", "200"),
        from,
        to,
        10,
        |_| 9.0,
    );
    d.counter(
        "envoy_cluster_upstream_rq",
        &rq("test_podinfo-canary_9898", "503"),
        from,
        to,
        10,
        |_| 1.0,
    );
    d.counter(
        "envoy_cluster_upstream_rq",
        &rq("test_podinfo-primary_9898", "200"),
        from,
        to,
        10,
        |_| 10.0,
    );
    // Another namespace's canary must not count.
    d.counter(
        "envoy_cluster_upstream_rq",
        &rq("other_podinfo-canary_9898", "503"),
        from,
        to,
        10,
        |_| 50.0,
    );
    for (le, canary_rate, primary_rate) in
        [("50", 0.0, 10.0), ("100", 10.0, 10.0), ("+Inf", 10.0, 10.0)]
    {
        d.counter(
            "envoy_cluster_upstream_rq_time_bucket",
            &[
                ("envoy_cluster_name", "test_podinfo-canary_9898"),
                ("le", le),
            ],
            from,
            to,
            10,
            move |_| canary_rate,
        );
        d.counter(
            "envoy_cluster_upstream_rq_time_bucket",
            &[
                ("envoy_cluster_name", "test_podinfo-primary_9898"),
                ("le", le),
            ],
            from,
            to,
            10,
            move |_| primary_rate,
        );
    }
    d
}

const BUILTINS: &str = "      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 1m
      - name: request-duration
        thresholdRange: {max: 500}
        interval: 1m
";

fn close(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|v| (v - expected).abs() < 1e-6)
}

#[tokio::test(flavor = "multi_thread")]
async fn builtin_metrics_run_flaggers_queries() {
    let prom = TestPrometheus::start(&traffic_data());
    let t = T0 + 300;

    // gatewayapi (the default): Flagger's HTTP observer over pod metrics.
    let canary = canary(BUILTINS, None);
    let checks = checks(&canary);
    let metrics = provider(MemoryCluster::new(), Some(&prom.url), t);
    let rate = metrics
        .value(&canary, &checks[0], MetricTarget::Canary)
        .await
        .unwrap();
    assert!(close(rate, 10.0 / 10.1 * 100.0), "{rate:?}");
    let rate = metrics
        .value(&canary, &checks[0], MetricTarget::Primary)
        .await
        .unwrap();
    assert!(close(rate, 100.0), "{rate:?}");
    // P99 in whole milliseconds, as Flagger compares it.
    let p99 = metrics
        .value(&canary, &checks[1], MetricTarget::Canary)
        .await
        .unwrap();
    assert_eq!(p99, Some(99.0));
    let p99 = metrics
        .value(&canary, &checks[1], MetricTarget::Primary)
        .await
        .unwrap();
    assert_eq!(p99, Some(49.0));
    let prepared = metrics
        .prepare(&canary, &checks[0], MetricTarget::Canary)
        .await
        .unwrap();
    assert!(
        prepared
            .query
            .contains(r#"kubernetes_pod_name=~"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)""#)
            && prepared.query.contains("[1m]"),
        "{}",
        prepared.query
    );

    // contour: Flagger's Envoy queries over cluster statistics.
    let canary = self::canary(BUILTINS, Some("contour"));
    let rate = metrics
        .value(&canary, &checks[0], MetricTarget::Canary)
        .await
        .unwrap();
    assert!(close(rate, 90.0), "{rate:?}");
    let rate = metrics
        .value(&canary, &checks[0], MetricTarget::Primary)
        .await
        .unwrap();
    assert!(close(rate, 100.0), "{rate:?}");
    let p99 = metrics
        .value(&canary, &checks[1], MetricTarget::Canary)
        .await
        .unwrap();
    assert_eq!(p99, Some(99.0));
    let p99 = metrics
        .value(&canary, &checks[1], MetricTarget::Primary)
        .await
        .unwrap();
    assert_eq!(p99, Some(49.0));

    // A provider without builtins says so.
    let canary = self::canary(BUILTINS, Some("istio"));
    let e = metrics
        .value(&canary, &checks[0], MetricTarget::Canary)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("istio") && e.contains("MetricTemplate"), "{e}");

    // Before any traffic: no data.
    let early = provider(MemoryCluster::new(), Some(&prom.url), T0 - 3600);
    let canary = self::canary(BUILTINS, None);
    assert_eq!(
        early
            .value(&canary, &checks[0], MetricTarget::Canary)
            .await
            .unwrap(),
        None
    );
}

const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1767225600,"42"]}]}}"#;

#[tokio::test]
async fn credentials_and_headers_reach_prometheus() {
    let server = Recorder::start(vec![Answer::new(200, VECTOR)]).await;
    let cluster = MemoryCluster::new();
    let with_provider = |name: &str, provider: &str| {
        let mut t = template(&format!(
            "  provider:\n    type: prometheus\n    address: {}\n{provider}  query: |\n    sum(\n      up{{ns=\"{{{{ namespace }}}}\"}}\n    )\n",
            server.url
        ));
        t.metadata.name = Some(name.into());
        t
    };
    cluster
        .put_metric_template(with_provider("basic", "    secretRef: {name: basic}\n"))
        .unwrap();
    cluster
        .put_metric_template(with_provider("bearer", "    secretRef: {name: bearer}\n"))
        .unwrap();
    cluster
        .put_metric_template(with_provider(
            "headers",
            "    headers:\n      X-Scope-OrgID: [tenant-1]\n",
        ))
        .unwrap();
    cluster
        .put_metric_template(with_provider("broken", "    secretRef: {name: broken}\n"))
        .unwrap();
    cluster
        .put_secret(secret(
            "flagger-system",
            "basic",
            &[("username", "user"), ("password", "pass")],
        ))
        .unwrap();
    cluster
        .put_secret(secret("flagger-system", "bearer", &[("token", "s3cr3t\n")]))
        .unwrap();
    cluster
        .put_secret(secret("flagger-system", "broken", &[("username", "user")]))
        .unwrap();
    let canary = canary(
        "      - {name: basic, templateRef: {name: basic, namespace: flagger-system}, thresholdRange: {max: 1}}
      - {name: bearer, templateRef: {name: bearer, namespace: flagger-system}, thresholdRange: {max: 1}}
      - {name: headers, templateRef: {name: headers, namespace: flagger-system}, thresholdRange: {max: 1}}
      - {name: broken, templateRef: {name: broken, namespace: flagger-system}, thresholdRange: {max: 1}}
",
        None,
    );
    let checks = checks(&canary);
    let metrics = provider(cluster, None, T0 + 90);
    for check in &checks[..3] {
        assert_eq!(
            metrics
                .value(&canary, check, MetricTarget::Canary)
                .await
                .unwrap(),
            Some(42.0)
        );
    }
    let e = metrics
        .value(&canary, &checks[3], MetricTarget::Canary)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("flagger-system/broken") && e.contains("\"password\""),
        "{e}"
    );

    let requests = server.requests();
    assert_eq!(requests.len(), 3, "the broken one never leaves");
    // base64("user:pass")
    assert_eq!(
        requests[0].header("authorization"),
        Some("Basic dXNlcjpwYXNz")
    );
    assert_eq!(requests[1].header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(requests[2].header("authorization"), None);
    assert_eq!(requests[2].header("x-scope-orgid"), Some("tenant-1"));
    for r in &requests {
        assert_eq!(r.method, "GET");
        assert!(r.path.starts_with("/api/v1/query?"), "{}", r.path);
        let q: BTreeMap<String, String> = r.query().into_iter().collect();
        // Rendered, whitespace collapsed, at the fixed time.
        assert_eq!(q["query"], r#"sum( up{ns="test"} )"#);
        assert_eq!(q["time"], (T0 + 90).to_string());
    }
}

#[tokio::test]
async fn http_failures_are_clear() {
    let server = Recorder::start(vec![
        Answer::new(502, "upstream connect error"),
        Answer::new(200, VECTOR).delayed(Duration::from_secs(3)),
    ])
    .await;
    let c = PrometheusClient::new(
        &server.url,
        Credentials::None,
        Duration::from_millis(500),
        false,
    )
    .unwrap();
    let e = c.query("up", None).await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 502") && e.contains("upstream connect error") && e.contains(&server.url),
        "{e}"
    );
    let e = c.query("up", None).await.unwrap_err();
    assert!(matches!(e, PrometheusError::Timeout { .. }), "{e:?}");
}

/// Istio-style series for the example Canary's templates: 10 req/s, an
/// error ratio per time, latencies between 100 and 250 ms.
fn rollout_data(error_ratio: impl Fn(i64) -> f64 + Copy) -> OpenMetrics {
    let mut d = OpenMetrics::new();
    let (from, to) = (T0 - 600, T0 + 3600);
    let labels = |code: &'static str| {
        [
            ("reporter", "source"),
            ("destination_workload_namespace", "test"),
            ("destination_workload", "podinfo"),
            ("response_code", code),
        ]
    };
    d.counter(
        "istio_requests_total",
        &labels("200"),
        from,
        to,
        10,
        move |t| 10.0 * (1.0 - error_ratio(t)),
    );
    d.counter(
        "istio_requests_total",
        &labels("500"),
        from,
        to,
        10,
        move |t| 10.0 * error_ratio(t),
    );
    for (le, rate) in [("100", 0.0), ("250", 10.0), ("+Inf", 10.0)] {
        d.counter(
            "istio_request_duration_milliseconds_bucket",
            &[
                ("reporter", "source"),
                ("destination_workload_namespace", "test"),
                ("destination_workload", "podinfo"),
                ("le", le),
            ],
            from,
            to,
            10,
            move |_| rate,
        );
    }
    d
}

async fn simulate_against(prom: &TestPrometheus, scenario: &str) -> simulate::Simulation {
    let registry = common::registry();
    let factory = move || Ok(registry.clone());
    simulate::run_with(
        common::canary("examples/podinfo-canary.yaml"),
        common::templates(),
        common::scenario(&common::read(scenario)),
        &factory,
        &RunOptions {
            prometheus: Some(PrometheusSource::new(prom.url.clone()).starting_at(at(T0))),
        },
    )
    .await
    .expect("simulation runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_canary_is_promoted_on_real_metrics() {
    let prom = TestPrometheus::start(&rollout_data(|_| 0.001));
    let sim = simulate_against(&prom, "examples/scenarios/healthy.yaml").await;
    let messages = sim.messages();
    for m in [
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 50",
        "Promotion completed! Scaling down podinfo.test",
    ] {
        assert!(
            messages.iter().any(|x| x == m),
            "{m} missing: {messages:#?}"
        );
    }
    assert!(
        !messages.iter().any(|m| m.starts_with("Halt")),
        "{messages:#?}"
    );
    assert_eq!(
        sim.final_tick().unwrap().phase,
        Some(CanaryPhase::Succeeded)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_canary_is_rolled_back_on_real_metrics() {
    // From the 7th minute (tick 7's window) on, 69.17% of requests fail.
    let prom = TestPrometheus::start(&rollout_data(|t| if t > T0 + 300 { 0.6917 } else { 0.001 }));
    let sim = simulate_against(&prom, "examples/scenarios/metric-failure.yaml").await;
    let halts: Vec<String> = sim
        .messages()
        .into_iter()
        .filter(|m| m.starts_with("Halt"))
        .collect();
    assert_eq!(
        halts,
        vec!["Halt podinfo.test advancement error rate 69.17% > 1%"; 5],
        "{:#?}",
        sim.messages()
    );
    assert_eq!(
        sim.ticks
            .iter()
            .find(|t| t.events.iter().any(|e| e.message.starts_with("Halt")))
            .unwrap()
            .tick,
        7
    );
    assert!(
        sim.messages()
            .iter()
            .any(|m| m.starts_with("Rolling back podinfo.test failed checks threshold reached 5")),
        "{:#?}",
        sim.messages()
    );
    let last = sim.final_tick().unwrap();
    assert_eq!(
        (last.phase, last.canary_weight),
        (Some(CanaryPhase::Failed), 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_simulates_against_prometheus() {
    let prom = TestPrometheus::start(&rollout_data(|_| 0.001));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .current_dir(common::repo_root())
            .env(
                "SLUICE_PLUGIN_CACHE",
                concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache"),
            )
            .output()
            .expect("run sluice")
    };
    let out = run(&[
        "simulate",
        "--prometheus",
        &prom.url,
        "--prometheus-time",
        "2026-01-01T00:00:00Z",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Promotion completed! Scaling down podinfo.test"),
        "{text}"
    );

    // An evaluation time before the data: no values, Flagger's wording.
    let out = run(&[
        "simulate",
        "--prometheus",
        &prom.url,
        "--prometheus-time",
        "2025-06-01T00:00:00Z",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Halt advancement no values found for custom metric: error-rate"),
        "{text}"
    );

    // A wrong address fails before the run, naming it.
    drop(prom);
    let out = run(&[
        "simulate",
        "--prometheus",
        "http://127.0.0.1:9",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http://127.0.0.1:9") && err.contains("unreachable"),
        "{err}"
    );
    let out = run(&[
        "simulate",
        "--prometheus",
        "http://127.0.0.1:9",
        "--prometheus-time",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}
