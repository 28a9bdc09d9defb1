//! The operator's code path (`controller::reconcile`) against the in-memory
//! cluster: every seed example rolls out through it, extra wake-ups never
//! run extra analysis ticks, a restarted operator continues from the status,
//! and deleting a Canary with `revertOnDeletion` gives the traffic back to
//! the target.

use crate::common;

use common::Healthy;

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use sluice_api::{Canary, CanaryPhase};
use sluice_operator::reconcile::{Cleanup, Context, finalize, reconcile_canary};
use sluice_rollout::analysis::Analyzer;
use sluice_rollout::cluster::memory::MemoryCluster;

fn world(example: &str) -> MemoryCluster {
    let cluster = MemoryCluster::new();
    let deployment: k8s_openapi::api::apps::v1::Deployment = yaml_serde::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec: {containers: [{name: podinfod, image: 'podinfo:1'}]}\n",
    )
    .unwrap();
    cluster.put_deployment(deployment).unwrap();
    let hpa: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler = yaml_serde::from_str(
        "metadata: {name: podinfo, namespace: test}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  minReplicas: 2\n  maxReplicas: 4\n",
    )
    .unwrap();
    cluster.put_autoscaler(hpa).unwrap();
    for t in common::templates() {
        cluster.put_metric_template(t).unwrap();
    }
    cluster.put_canary(common::canary(example)).unwrap();
    cluster
}

fn context(cluster: &MemoryCluster) -> Context<MemoryCluster, Healthy, Healthy> {
    let host = common::host().with_journal(sluice_host::journal::Journal::new(1_000));
    let registry = sluice_host::PluginRegistry::with_builtins(host).unwrap();
    Context::new(Analyzer::new(cluster.clone(), Healthy, Healthy, registry))
}

/// The operator's clocks: wall time for the engine, a monotonic instant
/// for the schedule.
struct Clock {
    now: Timestamp,
    instant: Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
            instant: Instant::now(),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += SignedDuration::try_from(by).unwrap();
        self.instant += by;
    }
}

/// Reconciles like the controller does: wake up when asked to, one step
/// of the simulated cluster per analysis interval.
async fn run_until(
    ctx: &Context<MemoryCluster, Healthy, Healthy>,
    cluster: &MemoryCluster,
    clock: &mut Clock,
    done: impl Fn(&Canary) -> bool,
) -> Canary {
    for _ in 0..200 {
        let canary = cluster.canary("test", "podinfo").unwrap();
        if done(&canary) {
            return canary;
        }
        let wait = reconcile_canary(ctx, &canary, clock.now, clock.instant)
            .await
            .unwrap();
        clock.advance(wait);
        cluster.advance_tick();
    }
    panic!(
        "never reached the expected state: {:?}",
        cluster.canary("test", "podinfo").unwrap().status
    );
}

/// The messages of every event the Canary got so far.
fn messages(cluster: &MemoryCluster) -> Vec<String> {
    cluster
        .events("test", "podinfo")
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn phase(c: &Canary) -> Option<CanaryPhase> {
    c.status.as_ref().and_then(|s| s.phase)
}

fn set_image(cluster: &MemoryCluster, image: &str) {
    let mut d = cluster.get_deployment("test", "podinfo").unwrap();
    d.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some(image.into());
    cluster.put_deployment(d).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_seed_example_rolls_out_through_the_controller_path() {
    for example in [
        "examples/podinfo-canary.yaml",
        "examples/podinfo-ab-canary.yaml",
        "examples/podinfo-canary-mirror.yaml",
        "examples/podinfo-canary-session-affinity.yaml",
        "examples/podinfo-blue-green.yaml",
    ] {
        let cluster = world(example);
        let ctx = context(&cluster);
        let mut clock = Clock::new();
        run_until(&ctx, &cluster, &mut clock, |c| {
            phase(c) == Some(CanaryPhase::Initialized)
        })
        .await;
        for object in [
            "deployment.apps/test/podinfo-primary",
            "service/test/podinfo",
            "service/test/podinfo-canary",
            "service/test/podinfo-primary",
            "httproutes.gateway.networking.k8s.io/test/podinfo",
        ] {
            assert!(
                cluster.inventory().iter().any(|o| o == object),
                "{example}: {object} missing"
            );
        }
        set_image(&cluster, "podinfo:2");
        let canary = run_until(&ctx, &cluster, &mut clock, |c| {
            matches!(phase(c), Some(CanaryPhase::Succeeded | CanaryPhase::Failed))
        })
        .await;
        assert_eq!(phase(&canary), Some(CanaryPhase::Succeeded), "{example}");
        let primary = cluster.get_deployment("test", "podinfo-primary").unwrap();
        assert_eq!(
            primary.spec.unwrap().template.spec.unwrap().containers[0]
                .image
                .as_deref(),
            Some("podinfo:2"),
            "{example}: the primary runs the new revision"
        );
        let messages = messages(&cluster);
        assert!(
            messages.contains(&"Promotion completed! Scaling down podinfo.test".to_string()),
            "{example}: {messages:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wake_ups_between_intervals_run_no_extra_tick_but_a_new_revision_runs_at_once() {
    let cluster = world("examples/podinfo-canary.yaml");
    let ctx = context(&cluster);
    let mut clock = Clock::new();
    run_until(&ctx, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Initialized)
    })
    .await;
    // Right after a tick: the watch fires (our own status write), nothing runs.
    let canary = cluster.canary("test", "podinfo").unwrap();
    let before = cluster.events("test", "podinfo").len();
    let wait = reconcile_canary(&ctx, &canary, clock.now, clock.instant)
        .await
        .unwrap();
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(60));
    assert_eq!(cluster.events("test", "podinfo").len(), before);
    assert_eq!(
        cluster.canary("test", "podinfo").unwrap().status,
        canary.status
    );

    // A new revision does not wait for the interval.
    set_image(&cluster, "podinfo:2");
    reconcile_canary(&ctx, &canary, clock.now, clock.instant)
        .await
        .unwrap();
    let messages = messages(&cluster);
    assert!(
        messages.contains(&"New revision detected podinfo.test".to_string()),
        "{messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_operator_continues_from_the_status() {
    let cluster = world("examples/podinfo-canary.yaml");
    let first = context(&cluster);
    let mut clock = Clock::new();
    run_until(&first, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Initialized)
    })
    .await;
    set_image(&cluster, "podinfo:2");
    run_until(&first, &cluster, &mut clock, |c| {
        c.status.as_ref().is_some_and(|s| s.canary_weight == 30)
    })
    .await;
    drop(first);

    // A new operator: nothing in memory, only the Canary status.
    let second = context(&cluster);
    let canary = cluster.canary("test", "podinfo").unwrap();
    reconcile_canary(&second, &canary, clock.now, clock.instant)
        .await
        .unwrap();
    let after = cluster.canary("test", "podinfo").unwrap();
    assert_eq!(after.status.as_ref().unwrap().canary_weight, 40);
    let canary = run_until(&second, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    assert_eq!(canary.status.unwrap().canary_weight, 0);
    let messages = messages(&cluster);
    assert_eq!(
        messages
            .iter()
            .filter(|m| *m == "Advance podinfo.test canary weight 10")
            .count(),
        1,
        "the rollout did not start over: {messages:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_canary_with_revert_on_deletion_gives_the_traffic_back_to_the_target() {
    let cluster = world("examples/podinfo-canary.yaml");
    let ctx = context(&cluster);
    let mut clock = Clock::new();
    run_until(&ctx, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Initialized)
    })
    .await;
    let target = cluster.get_deployment("test", "podinfo").unwrap();
    assert_eq!(
        target.spec.unwrap().replicas,
        Some(0),
        "scaled down after bootstrap"
    );

    // Without revertOnDeletion: nothing to do, the owned objects go with it.
    let canary = cluster.canary("test", "podinfo").unwrap();
    assert_eq!(finalize(&cluster, &canary).await.unwrap(), Cleanup::Done);
    assert_eq!(
        cluster
            .get_deployment("test", "podinfo")
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(0)
    );

    let mut canary = canary;
    canary.spec.revert_on_deletion = true;
    cluster.set_ready_after("test", "podinfo", 1);
    let first = finalize(&cluster, &canary).await.unwrap();
    assert!(
        matches!(&first, Cleanup::Waiting(why) if why.starts_with("waiting for podinfo.test to serve")),
        "{first:?}"
    );
    assert_eq!(
        cluster
            .get_deployment("test", "podinfo")
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(2),
        "scaled back to the primary's replicas"
    );
    // The route still sends everything to the primary meanwhile.
    let route = cluster.route("test", "podinfo").unwrap();
    assert_eq!(common::canary_exposure(&route), (0, false));

    cluster.advance_tick();
    let canary = cluster.canary("test", "podinfo").map(|mut c| {
        c.spec.revert_on_deletion = true;
        c
    });
    assert_eq!(
        finalize(&cluster, &canary.unwrap()).await.unwrap(),
        Cleanup::Done
    );
    let apex = cluster.service("test", "podinfo").unwrap();
    assert_eq!(
        apex.spec
            .unwrap()
            .selector
            .unwrap()
            .get("app")
            .map(String::as_str),
        Some("podinfo"),
        "the apex Service selects the target's pods"
    );
    assert!(apex.metadata.owner_references.is_none());
    let route = cluster.route("test", "podinfo").unwrap();
    assert!(route.metadata.owner_references.is_none());
    let backends: Vec<(String, Option<i32>)> = route.spec.rules.unwrap()[0]
        .backend_refs
        .clone()
        .unwrap()
        .into_iter()
        .map(|b| (b.name, b.weight))
        .collect();
    assert_eq!(backends, [("podinfo".to_string(), Some(100))]);
    let status = cluster.canary("test", "podinfo").unwrap().status.unwrap();
    assert_eq!(status.phase, Some(CanaryPhase::Terminated));
    let messages = messages(&cluster);
    assert!(messages.contains(&"Terminating canary podinfo.test".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_metrics_are_named_like_flaggers() {
    let cluster = world("examples/podinfo-canary.yaml");
    let ctx = context(&cluster);
    let mut clock = Clock::new();
    run_until(&ctx, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Initialized)
    })
    .await;
    set_image(&cluster, "podinfo:2");
    run_until(&ctx, &cluster, &mut clock, |c| {
        c.status.as_ref().is_some_and(|s| s.canary_weight == 20)
    })
    .await;
    // One more tick records the state just reached.
    clock.advance(Duration::from_secs(60));
    let canary = cluster.canary("test", "podinfo").unwrap();
    reconcile_canary(&ctx, &canary, clock.now, clock.instant)
        .await
        .unwrap();
    let text = ctx.telemetry.encode().unwrap();
    for line in [
        "sluice_canary_status{name=\"podinfo\",namespace=\"test\"} 0",
        "sluice_canary_weight{workload=\"podinfo-primary\",namespace=\"test\"} 70",
        "sluice_canary_weight{workload=\"podinfo\",namespace=\"test\"} 30",
        "sluice_canary_total{namespace=\"test\"} 1",
        "sluice_info_info{version=\"0.1.0\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        text.contains("sluice_canary_duration_seconds_count{name=\"podinfo\",namespace=\"test\"}")
    );
    let calls = ctx.analyzer.plugins.host().metrics().calls("weighted");
    assert!(calls > 0);
    assert!(
        text.contains(&format!(
            "sluice_plugin_calls_total{{plugin=\"weighted\"}} {calls}"
        )),
        "{text}"
    );
    assert!(text.contains("sluice_plugin_call_duration_seconds_bucket{le="));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_endpoints() {
    use sluice_operator::server::{Endpoints, router};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let cluster = world("examples/podinfo-canary.yaml");
    let ctx = context(&cluster);
    let ready = Arc::new(AtomicBool::new(false));
    let endpoints = Endpoints {
        telemetry: Arc::clone(&ctx.telemetry),
        ready: Arc::clone(&ready),
        api: Arc::new(sluice_operator::server::ApiHealth::new(
            Duration::from_secs(30),
        )),
        journal: ctx.analyzer.plugins.host().journal().clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(endpoints)).await });
    let http = sluice_rollout::http_client::client(Duration::from_secs(5), false).unwrap();
    let get = async |path: &str| {
        let r = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(get("/healthz").await, (200, "ok".to_string()));
    assert_eq!(
        get("/readyz").await.0,
        503,
        "not ready before the controller starts"
    );
    ready.store(true, Ordering::Relaxed);
    assert_eq!(get("/readyz").await.0, 200);

    let mut clock = Clock::new();
    run_until(&ctx, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Initialized)
    })
    .await;
    let canary = cluster.canary("test", "podinfo").unwrap();
    clock.advance(Duration::from_secs(60));
    reconcile_canary(&ctx, &canary, clock.now, clock.instant)
        .await
        .unwrap();
    let (status, body) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("sluice_canary_status{name=\"podinfo\",namespace=\"test\"} 3"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"));

    // The decision journal of a rollout, served on /journal and exported
    // by `sluice journal export`, replays exactly.
    set_image(&cluster, "podinfo:2");
    run_until(&ctx, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    let (status, body) = get("/journal?canary=test/podinfo").await;
    assert_eq!(status, 200);
    let entries = sluice_host::journal::Journal::from_json_lines(&body).unwrap();
    assert!(
        entries.iter().any(|e| e.call.export() == "decide"),
        "{body}"
    );
    assert!(entries.iter().all(|e| e.canary == "test/podinfo"));
    assert_eq!(get("/journal?canary=other/x").await, (200, String::new()));
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("journal-export");
    std::fs::create_dir_all(&dir).unwrap();
    let (file, weighted) = (dir.join("journal.jsonl"), dir.join("weighted.wasm"));
    std::fs::write(&weighted, sluice_host::builtin::wasm::WEIGHTED).unwrap();
    let sluice = |args: Vec<String>| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let export: Vec<String> = ["journal", "export", "--operator", &format!("http://{addr}")]
        .into_iter()
        .map(String::from)
        .chain(["--canary", "test/podinfo", "-o", file.to_str().unwrap()].map(String::from))
        .collect();
    let (ok, text) = tokio::task::spawn_blocking(move || sluice(export))
        .await
        .unwrap();
    assert!(ok, "{text}");
    assert_eq!(
        text,
        format!("{} calls written to {}\n", entries.len(), file.display())
    );
    let replay = [
        "replay",
        "--journal",
        file.to_str().unwrap(),
        "--strategy-plugin",
    ]
    .into_iter()
    .chain([weighted.to_str().unwrap()])
    .map(String::from)
    .collect();
    let (ok, text) = tokio::task::spawn_blocking(move || sluice(replay))
        .await
        .unwrap();
    assert!(ok && text.contains(": 0 differ"), "{text}");
}

/// Records what the operator would send to Slack and co.
#[derive(Default)]
struct RecordingSink(std::sync::Mutex<Vec<(String, String)>>);

impl sluice_operator::reconcile::AlertSink for RecordingSink {
    fn deliver<'a>(
        &'a self,
        _: &'a [sluice_api::AlertSettings],
        alert: &'a sluice_rollout::notify::Alert,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Vec<sluice_rollout::notify::Delivery>> + Send + 'a>,
    > {
        self.0.lock().unwrap().push((
            format!("{:?}", alert.severity),
            format!("{} {}: {}", alert.namespace, alert.canary, alert.message),
        ));
        Box::pin(async { Vec::new() })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_delivers_the_alerts_of_each_tick() {
    let cluster = world("examples/podinfo-canary.yaml");
    let sink = std::sync::Arc::new(RecordingSink::default());
    let ctx = context(&cluster).with_alerts(sink.clone());
    let mut clock = Clock::new();
    run_until(&ctx, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Initialized)
    })
    .await;
    assert!(sink.0.lock().unwrap().is_empty(), "no alert at bootstrap");
    set_image(&cluster, "podinfo:2");
    run_until(&ctx, &cluster, &mut clock, |c| {
        phase(c) == Some(CanaryPhase::Succeeded)
    })
    .await;
    let sent = sink.0.lock().unwrap().clone();
    assert_eq!(
        sent,
        [
            (
                "Info".to_string(),
                "test podinfo: New revision detected, progressing canary analysis.".to_string()
            ),
            (
                "Info".to_string(),
                "test podinfo: Canary analysis completed successfully, promotion finished."
                    .to_string()
            ),
        ]
    );
}
