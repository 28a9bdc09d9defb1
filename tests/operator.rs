//! The real `sluice run` binary against the API server double: a rollout
//! end to end over the Kubernetes HTTP API, and the operator's fault paths
//! (a status write lost to a 409, a SIGKILL mid-rollout, a killed leader, a
//! Lease taken over). Throughout, no request may reach a canary that is not
//! ready, the weight never exceeds `maxWeight`, and the weights seen are
//! exactly the strategy's steps, never one skipped or applied twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::http::{Answer, Recorder};
use crate::support::operator::{Operator, canary, canary_weight, cluster_controllers};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use sluice_api::{Canary, CanaryPhase, MetricTemplate};
use sluice_kube_double::{ApiServer, Fault, FaultKind};

const NS: &str = "test";

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: test}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec: {containers: [{name: podinfod, image: 'podinfo:1'}]}
"#;

const CANARY: &str = r#"
apiVersion: sluice.dev/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service:
    port: 9898
    gatewayRefs: [{name: gateway, namespace: istio-ingress}]
  analysis:
    interval: 1s
    threshold: 2
    maxWeight: 30
    stepWeight: 10
"#;

/// At most two operator tests at a time: each runs `sluice run` processes
/// that mostly wait (on their intervals, leases and injected timeouts), and
/// two keep their timings well inside the tests' bounds on two cores.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

struct World {
    _running: tokio::sync::SemaphorePermit<'static>,
    server: Arc<ApiServer>,
    dir: tempfile::TempDir,
    client: kube::Client,
    _controllers: tokio::task::JoinHandle<()>,
}

impl World {
    async fn new() -> Self {
        Self::with_canary(CANARY).await
    }

    async fn with_canary(canary_yaml: &str) -> Self {
        let running = RUNNING
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let server = ApiServer::with_crds(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds"))
            .await
            .expect("API server double");
        let server = Arc::new(server);
        let client = server.client().expect("client");
        let controllers = cluster_controllers(&server);
        let deployment: Deployment = yaml_serde::from_str(DEPLOYMENT).unwrap();
        Api::<Deployment>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &deployment)
            .await
            .expect("create the target");
        let canary: Canary = yaml_serde::from_str(canary_yaml).unwrap();
        Api::<Canary>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &canary)
            .await
            .expect("create the Canary (the CRD schema accepts it)");
        Self {
            _running: running,
            server,
            dir: tempfile::tempdir().unwrap(),
            client,
            _controllers: controllers,
        }
    }

    fn operator(&self, name: &str, extra: &[&str]) -> Operator {
        Operator::start(&self.server, self.dir.path(), name, extra)
    }

    fn phase(&self) -> Option<CanaryPhase> {
        canary(&self.server, NS, "podinfo")?.status?.phase
    }

    async fn wait_phase(&self, phase: CanaryPhase, timeout: Duration, op: &Operator) {
        let end = Instant::now() + timeout;
        while self.phase() != Some(phase) {
            assert!(
                Instant::now() < end,
                "no {phase:?} within {timeout:?} (phase {:?}); operator log:\n{}",
                self.phase(),
                op.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new revision of the target.
    async fn new_revision(&self) {
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "podinfod", "image": "podinfo:2"}]}}}});
        Api::<Deployment>::namespaced(self.client.clone(), NS)
            .patch(
                "podinfo",
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
            .expect("new revision");
    }

    /// The canary weight of the route now, after checking the invariants:
    /// never over `maxWeight` (30), never to a canary without ready pods.
    fn safe_weight(&self) -> i64 {
        self.safe_weight_of("podinfo")
    }

    /// [`Self::safe_weight`] of the Canary `name` (its target has its name).
    fn safe_weight_of(&self, name: &str) -> i64 {
        let weight = canary_weight(&self.server, NS, name).unwrap_or(0);
        assert!(weight <= 30, "{name}: weight {weight} over maxWeight 30");
        if weight > 0 {
            let target: Deployment = self.server.get(NS, name).unwrap().unwrap();
            let available = target
                .status
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            assert!(
                available > 0,
                "{name}: {weight}% routed to a canary with no ready pods"
            );
        }
        weight
    }

    /// Checks the invariants every 10 ms until the rollout ends; the
    /// distinct canary weights seen, in order, and the final phase.
    /// `at_weight` runs once when the weight first reaches a given value.
    async fn watch_rollout(
        &self,
        timeout: Duration,
        mut at_weight: impl FnMut(i64),
        op_log: impl Fn() -> String,
    ) -> (Vec<i64>, CanaryPhase) {
        let end = Instant::now() + timeout;
        let mut seen: Vec<i64> = Vec::new();
        loop {
            let weight = self.safe_weight();
            if seen.last() != Some(&weight) {
                seen.push(weight);
                at_weight(weight);
            }
            if let Some(p @ (CanaryPhase::Succeeded | CanaryPhase::Failed)) = self.phase() {
                return (seen, p);
            }
            assert!(
                Instant::now() < end,
                "the rollout did not end within {timeout:?}; weights {seen:?}, phase {:?}; log:\n{}",
                self.phase(),
                op_log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The route's weight once the rollout has ended: the status is
    /// written before the route in a tick, so the last route write may
    /// follow the final phase by a moment (waits up to 10 s for 0).
    async fn final_weight(&self) -> i64 {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let weight = self.safe_weight();
            if weight == 0 || Instant::now() > end {
                return weight;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn primary_image(&self) -> Option<String> {
        let d: Deployment = self.server.get(NS, "podinfo-primary").ok()??;
        d.spec?.template.spec?.containers.first()?.image.clone()
    }
}

const STEPS: [i64; 5] = [0, 10, 20, 30, 0];

#[tokio::test(flavor = "multi_thread")]
async fn sluice_run_rolls_out_a_new_revision_through_the_kubernetes_api() {
    let world = World::new().await;
    let op = world.operator("sluice-a", &[]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    assert_eq!(world.primary_image().as_deref(), Some("podinfo:1"));
    for svc in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        let s: Option<k8s_openapi::api::core::v1::Service> = world.server.get(NS, svc).unwrap();
        assert!(s.is_some(), "service {svc} created");
    }
    let stored = canary(&world.server, NS, "podinfo").unwrap();
    assert!(
        stored
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"sluice.dev/finalizer".to_string()),
        "the finalizer is set"
    );

    world.new_revision().await;
    let (weights, phase) = world
        .watch_rollout(Duration::from_secs(120), |_| {}, || op.log_text())
        .await;
    assert_eq!(phase, CanaryPhase::Succeeded, "log:\n{}", op.log_text());
    assert_eq!(weights, STEPS);
    assert_eq!(world.primary_image().as_deref(), Some("podinfo:2"));
    let target: Deployment = world.server.get(NS, "podinfo").unwrap().unwrap();
    assert_eq!(
        target.spec.unwrap().replicas,
        Some(0),
        "the canary is scaled down"
    );
    // Events go out after the status: wait for the last one.
    let end = Instant::now() + Duration::from_secs(5);
    let published = || {
        world
            .server
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.uri.contains("/events"))
            .map(|r| r.body)
            .collect::<Vec<String>>()
    };
    while !published()
        .iter()
        .any(|e| e.contains("Promotion completed"))
    {
        assert!(
            Instant::now() < end,
            "events are published: {:?}",
            published()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The GETs of the object at `path` (not lists or watches), each with
/// whether it asked for the metadata alone.
fn reads(server: &ApiServer, path: &str) -> Vec<bool> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.uri.split('?').next() == Some(path))
        .map(|r| {
            r.accept
                .is_some_and(|a| a.contains("as=PartialObjectMetadata"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn at_rest_the_operator_reads_metadata_only_retries_a_failed_read_and_still_sees_a_new_revision()
 {
    let world = World::new().await;
    let op = world.operator("sluice-a", &[]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    // Past the tick that reads the scaled-down target once more (the
    // Deployment controller rewrote its status), ticks at rest (1 s
    // interval) read the target, the primary and the route metadata-only.
    tokio::time::sleep(Duration::from_secs(3)).await;
    world.server.clear_requests();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deployment = |name| format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}");
    let route = format!("/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes/podinfo");
    for path in [deployment("podinfo"), deployment("podinfo-primary"), route] {
        let reads = reads(&world.server, &path);
        assert!(reads.len() >= 2, "{path} read at each tick: {reads:?}");
        assert!(
            reads.iter().all(|metadata_only| *metadata_only),
            "{path} is read metadata-only at rest: {reads:?}"
        );
    }
    // The metadata read of the primary fails (503) for a few ticks: those
    // ticks fail and are retried; nothing moves meanwhile.
    world.server.inject(
        Fault::unavailable("deployments")
            .named("podinfo-primary")
            .times(3),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while world
        .server
        .faults_met()
        .iter()
        .filter(|m| m.plural == "deployments")
        .count()
        < 3
    {
        assert!(Instant::now() < end, "log:\n{}", op.log_text());
        assert_eq!(world.safe_weight(), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(world.phase(), Some(CanaryPhase::Initialized));
    assert_eq!(world.safe_weight(), 0);
    // A new revision gives the target a new version: the next tick reads
    // it whole and starts the rollout.
    world.new_revision().await;
    world
        .wait_phase(CanaryPhase::Progressing, Duration::from_secs(10), &op)
        .await;
    assert!(reads(&world.server, &deployment("podinfo")).contains(&false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_status_write_lost_to_a_409_is_redone_at_once_and_never_advances_twice() {
    let world = World::new().await;
    let op = world.operator("sluice-a", &[]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    world.new_revision().await;
    let server = Arc::clone(&world.server);
    let mut armed = Instant::now();
    let (weights, phase) = world
        .watch_rollout(
            Duration::from_secs(120),
            |w| {
                if w == 10 {
                    // The next tick's status write (the step to 20) loses
                    // a race with another writer.
                    server.inject(Fault::conflict("canaries").on_status());
                    armed = Instant::now();
                }
            },
            || op.log_text(),
        )
        .await;
    assert_eq!(phase, CanaryPhase::Succeeded, "log:\n{}", op.log_text());
    assert_eq!(weights, STEPS, "no step skipped or applied twice");
    let log = op.log_text();
    assert!(
        log.contains("conflict, retrying at once"),
        "the conflict was seen and retried: {log}"
    );
    let metrics = op.metrics().await;
    assert!(
        metrics.contains("sluice_reconcile_errors_total{kind=\"conflict\"} 1"),
        "the conflict is counted: {metrics}"
    );
    let _ = armed;
    let advances = |w: i64| {
        world
            .server
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.uri.contains("/events")
                    && r.body.contains(&format!("canary weight {w}"))
            })
            .count()
    };
    assert_eq!(advances(20), 1, "one 'Advance … weight 20' event");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_operator_restarted_mid_rollout_finishes_it_from_the_stored_status() {
    let world = World::new().await;
    let op = world.operator("sluice-a", &[]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    world.new_revision().await;
    // Watch until the weight reaches 20, then SIGKILL and restart.
    let end = Instant::now() + Duration::from_secs(60);
    while canary_weight(&world.server, NS, "podinfo") != Some(20) {
        assert!(Instant::now() < end, "log:\n{}", op.log_text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    op.kill();
    let op = world.operator("sluice-b", &[]);
    let (weights, phase) = world
        .watch_rollout(Duration::from_secs(120), |_| {}, || op.log_text())
        .await;
    assert_eq!(phase, CanaryPhase::Succeeded, "log:\n{}", op.log_text());
    assert_eq!(weights, [20, 30, 0], "continues where it stopped");
    assert_eq!(world.primary_image().as_deref(), Some("podinfo:2"));
}

const ELECTION: [&str; 9] = [
    "--leader-election",
    "--lease-namespace",
    "sluice-system",
    "--lease-duration-seconds",
    "3",
    "--renew-deadline-seconds",
    "2",
    "--retry-period-seconds",
    "1",
];

fn lease_holder(server: &ApiServer) -> Option<String> {
    let lease: Lease = server.get("sluice-system", "sluice-leader").ok()??;
    lease.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_leader_is_killed_mid_rollout_the_standby_finishes_it() {
    let world = World::new().await;
    let a = world.operator("sluice-a", &ELECTION);
    let b = world.operator("sluice-b", &ELECTION);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &a)
        .await;
    let leader = lease_holder(&world.server).expect("a leader");
    let (leader, standby) = if leader == "sluice-a" { (a, b) } else { (b, a) };
    // The standby may still be loading its plugins when the leader has
    // initialised the Canary: it turns ready once it waits for the Lease.
    let end = Instant::now() + Duration::from_secs(30);
    while standby.readyz().await != Some(200) {
        assert!(
            Instant::now() < end,
            "a standby is ready: {}",
            standby.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(standby.metrics().await.contains("sluice_leader 0"));
    assert!(leader.metrics().await.contains("sluice_leader 1"));
    world.new_revision().await;
    let end = Instant::now() + Duration::from_secs(60);
    while canary_weight(&world.server, NS, "podinfo") != Some(10) {
        assert!(Instant::now() < end, "log:\n{}", leader.log_text());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    leader.kill();
    let (weights, phase) = world
        .watch_rollout(Duration::from_secs(120), |_| {}, || standby.log_text())
        .await;
    assert_eq!(
        phase,
        CanaryPhase::Succeeded,
        "log:\n{}",
        standby.log_text()
    );
    assert_eq!(weights, [10, 20, 30, 0]);
    assert!(standby.log_text().contains("leading"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_whose_lease_is_taken_over_stops_and_exits_non_zero() {
    let world = World::new().await;
    let mut op = world.operator("sluice-a", &ELECTION);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    assert_eq!(op.readyz().await, Some(200));
    let mut lease: Lease = world
        .server
        .get("sluice-system", "sluice-leader")
        .unwrap()
        .unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("another-replica".into());
    world.server.put(&lease).unwrap();
    let code = op.wait_exit(Duration::from_secs(10));
    assert!(
        matches!(code, Some(c) if c != 0),
        "exits non-zero, got {code:?}; log:\n{}",
        op.log_text()
    );
    assert!(op.log_text().contains("lost the leader election lease"));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_errors_and_dropped_watches_mid_rollout_neither_break_it_nor_skip_a_step() {
    let world = World::new().await;
    let op = world.operator("sluice-a", &[]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    world.new_revision().await;
    let server = Arc::clone(&world.server);
    let (weights, phase) = world
        .watch_rollout(
            Duration::from_secs(120),
            |w| match w {
                10 => {
                    // The API server fails the next route write, then the
                    // next status write; every watch drops and the watch
                    // history is gone (410 Gone, the watchers relist).
                    server.inject(Fault::internal("httproutes").on_main());
                    server.inject(Fault::internal("canaries").on_status());
                    server.close_watches();
                    server.compact();
                }
                20 => server.close_watches(),
                _ => {}
            },
            || op.log_text(),
        )
        .await;
    assert_eq!(phase, CanaryPhase::Succeeded, "log:\n{}", op.log_text());
    assert_eq!(weights, STEPS, "no step skipped or applied twice");
    let metrics = op.metrics().await;
    assert!(
        metrics.contains("sluice_reconcile_errors_total{kind=\"api\"} 2"),
        "both failures are counted: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sluice_run_killed_at_every_step_and_phase_still_finishes_the_rollout_exactly_once() {
    let world = World::new().await;
    let mut op = world.operator("sluice-0", &[]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    world.new_revision().await;
    // SIGKILL and restart whenever the weight or the phase changes: at each
    // weight, on Promoting and on Finalising.
    let end = Instant::now() + Duration::from_secs(120);
    let mut seen: Vec<(i64, Option<CanaryPhase>)> = Vec::new();
    let mut restarts = 0;
    loop {
        let weight = world.safe_weight();
        let phase = world.phase();
        if matches!(phase, Some(CanaryPhase::Succeeded | CanaryPhase::Failed)) {
            break;
        }
        if seen.last() != Some(&(weight, phase)) {
            seen.push((weight, phase));
            op.kill();
            restarts += 1;
            op = world.operator(&format!("sluice-{restarts}"), &[]);
        }
        assert!(
            Instant::now() < end,
            "not finished: {seen:?}; log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(world.phase(), Some(CanaryPhase::Succeeded), "{seen:?}");
    let phases: Vec<_> = seen.iter().filter_map(|(_, p)| *p).collect();
    for p in [
        CanaryPhase::Progressing,
        CanaryPhase::Promoting,
        CanaryPhase::Finalising,
    ] {
        assert!(phases.contains(&p), "killed during {p:?}: {seen:?}");
    }
    let mut distinct: Vec<i64> = seen.iter().map(|(w, _)| *w).collect();
    distinct.push(world.final_weight().await);
    distinct.dedup();
    assert_eq!(distinct, STEPS, "each step once, in order: {seen:?}");
    assert_eq!(world.primary_image().as_deref(), Some("podinfo:2"));
    // Each step's event exactly once, whatever the restarts: events ride
    // in the status write under fixed names, and a process killed before
    // publishing them leaves them to the next one.
    let end = Instant::now() + Duration::from_secs(10);
    for w in [10, 20, 30] {
        let note = format!("Advance podinfo.test canary weight {w}");
        while events_with(&world.client, &note).await == 0 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let n = events_with(&world.client, &note).await;
        assert_eq!(n, 1, "{note:?}: {:#?}", stored_events(&world.client).await);
    }
}

/// Prometheus answers for `request-success-rate`: healthy once, then a 500,
/// then an answer that is not Prometheus JSON, for ever.
fn failing_prometheus() -> Vec<Answer> {
    let vector = |v: &str| {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1767225600,"{v}"]}}]}}}}"#
        )
    };
    vec![
        Answer::new(200, vector("100")),
        Answer::new(500, "internal error"),
        Answer::new(200, "<html>not prometheus</html>"),
    ]
}

fn events(server: &ApiServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.uri.contains("/events"))
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
        .filter_map(|e| e["note"].as_str().map(String::from))
        .collect()
}

/// The events posted so far, once `done` holds for them or 10 s have
/// passed. A tick's events ride in its status write and are published
/// just after it, so they can trail the phase a watcher sees.
async fn events_once(server: &ApiServer, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let notes = events(server);
        if done(&notes) || Instant::now() >= end {
            return notes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_that_fails_mid_rollout_rolls_the_canary_back_through_sluice_run() {
    let prometheus = Recorder::start(failing_prometheus()).await;
    let canary = CANARY.replace(
        "    stepWeight: 10\n",
        "    stepWeight: 10\n    metrics:\n      - name: request-success-rate\n        thresholdRange: {min: 99}\n        interval: 1m\n",
    );
    let world = World::with_canary(&canary).await;
    let op = world.operator("sluice-a", &["--prometheus", &prometheus.url]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    world.new_revision().await;
    let (weights, phase) = world
        .watch_rollout(Duration::from_secs(120), |_| {}, || op.log_text())
        .await;
    assert_eq!(phase, CanaryPhase::Failed, "log:\n{}", op.log_text());
    assert_eq!(weights.last(), Some(&0), "all traffic back on the primary");
    assert!(
        weights.iter().all(|w| *w <= 20),
        "never past the last healthy step: {weights:?}"
    );
    let rolled_back =
        |n: &String| n.starts_with("Rolling back podinfo.test failed checks threshold reached 2");
    let notes = events_once(&world.server, |notes| notes.iter().any(rolled_back)).await;
    assert!(notes.iter().any(rolled_back), "{notes:#?}");
    assert!(
        notes
            .iter()
            .filter(|n| n.starts_with("Halt advancement")
                || n.contains("Halt podinfo.test advancement"))
            .count()
            >= 2,
        "each failed query is a failed check with its reason: {notes:#?}"
    );
    assert!(prometheus.requests().len() >= 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_webhook_answering_5xx_then_200_halts_then_lets_the_rollout_finish() {
    let hook = Recorder::start(vec![
        Answer::new(500, "not yet"),
        Answer::new(503, "still not"),
        Answer::new(200, "ok"),
    ])
    .await;
    let canary = CANARY.replace("threshold: 2", "threshold: 5").replace(
        "    stepWeight: 10\n",
        &format!(
            "    stepWeight: 10\n    webhooks:\n      - name: gate\n        type: rollout\n        url: {}/\n        timeout: 2s\n",
            hook.url
        ),
    );
    let world = World::with_canary(&canary).await;
    let op = world.operator("sluice-a", &[]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    world.new_revision().await;
    let (weights, phase) = world
        .watch_rollout(Duration::from_secs(120), |_| {}, || op.log_text())
        .await;
    assert_eq!(phase, CanaryPhase::Succeeded, "log:\n{}", op.log_text());
    assert_eq!(weights, STEPS);
    let halted = |n: &String| {
        n.contains("Halt podinfo.test advancement") || n.starts_with("Halt advancement")
    };
    let notes = events_once(&world.server, |notes| notes.iter().any(halted)).await;
    assert!(
        notes.iter().any(halted),
        "the failing hook halted the rollout: {notes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_turns_503_while_the_api_server_is_unreachable_and_back_when_it_answers() {
    let world = World::new().await;
    let op = world.operator("sluice-a", &["--unready-after-seconds", "2"]);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    assert_eq!(op.readyz().await, Some(200));
    // Every request for Canaries answers 503 from now on.
    world
        .server
        .inject(Fault::unavailable("canaries").times(usize::MAX));
    let wait_for = async |code: u16, within: Duration| {
        let end = Instant::now() + within;
        while op.readyz().await != Some(code) {
            assert!(
                Instant::now() < end,
                "no {code} within {within:?}: {:?}",
                world
                    .server
                    .requests()
                    .iter()
                    .rev()
                    .filter(|r| r.uri.contains("limit"))
                    .take(2)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait_for(503, Duration::from_secs(8)).await;
    world.server.clear_faults();
    wait_for(200, Duration::from_secs(4)).await;
}

// ---- API errors and timeouts at every step; metric and webhook faults ----

/// The operator's bound on one API call in these tests.
const API_TIMEOUT: [&str; 2] = ["--api-timeout-seconds", "1"];
/// How long a held write waits: longer than `API_TIMEOUT`, so the call
/// fails, and longer than the retry (one interval after the timeout), so
/// the write lands after newer ones (a late route write is refused by its
/// resourceVersion precondition).
const HOLD: Duration = Duration::from_millis(2500);

/// A fault on the next write of `plural`: a 500 when `fails`, else a
/// hold past the operator's API timeout.
fn write_fault(plural: &str, fails: bool) -> Fault {
    if fails {
        Fault::internal(plural)
    } else {
        Fault::delayed(plural, HOLD)
    }
}

/// The value of the sample of `name` whose labels include `labels`, in
/// Prometheus' text format; 0 when there is none.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The notes of the Events stored in the namespace (an event created
/// twice under its fixed name is stored once).
async fn stored_events(client: &kube::Client) -> Vec<String> {
    Api::<K8sEvent>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}

/// How many stored events have a note containing `text`.
async fn events_with(client: &kube::Client, text: &str) -> usize {
    stored_events(client)
        .await
        .iter()
        .filter(|n| n.contains(text))
        .count()
}

/// The status and reason of the Canary `name`'s `Ready` condition.
fn ready(server: &ApiServer, name: &str) -> Option<(String, String)> {
    let status = canary(server, NS, name)?.status?;
    let c = status.condition("Ready")?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_write_that_fails_at_bootstrap_is_retried_until_initialized() {
    let world = World::new().await;
    // The first Service write answers 500, the next one is held past the
    // client's timeout (and lands late); then writes go through. Faults
    // are met in the order they were armed.
    world.server.inject(Fault::internal("services").times(1));
    world
        .server
        .inject(Fault::delayed("services", HOLD).times(1));
    let op = world.operator("sluice-a", &API_TIMEOUT);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    let met: Vec<FaultKind> = world
        .server
        .faults_met()
        .into_iter()
        .filter(|m| m.plural == "services")
        .map(|m| m.kind)
        .collect();
    assert!(met.contains(&FaultKind::Internal), "{met:?}");
    assert!(met.contains(&FaultKind::Delay(HOLD)), "{met:?}");
    for name in ["podinfo", "podinfo-primary", "podinfo-canary"] {
        let svc: Option<k8s_openapi::api::core::v1::Service> = world.server.get(NS, name).unwrap();
        assert!(svc.is_some(), "{name} exists");
    }
    assert_eq!(
        ready(&world.server, "podinfo"),
        Some(("True".into(), "Valid".into()))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn api_500s_and_timeouts_at_every_step_and_phase_neither_wedge_skip_nor_double_a_step() {
    let world = World::new().await;
    let op = world.operator("sluice-a", &API_TIMEOUT);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    let before_rollout = world.server.requests().len();
    world.new_revision().await;
    // Whenever the weight or the phase changes (the new revision, each
    // weight, Promoting, Finalising), every fault is disarmed and new ones
    // are armed for the ticks that leave that step: on the status write a
    // 500 or a hold past the client's timeout, in turn; and on the route
    // and the Deployments whichever of the two has not been met on it yet
    // (the other kind than the status's first). The Services are not
    // written during a rollout (nothing they are rendered from changes):
    // their faults are met at bootstrap, in
    // `a_service_write_that_fails_at_bootstrap_is_retried_until_initialized`.
    let end = Instant::now() + Duration::from_secs(120);
    // Steps as the status records them (the status is written first in a
    // tick); the route's weights as they are seen.
    let mut steps: Vec<((i64, Option<CanaryPhase>), usize)> = Vec::new();
    let mut weights: Vec<i64> = Vec::new();
    let mut reasons: Vec<(String, String)> = Vec::new();
    let others = [
        ("httproutes", Fault::on_main as fn(Fault) -> Fault),
        ("deployments", Fault::on_main),
    ];
    loop {
        let route_weight = world.safe_weight();
        if weights.last() != Some(&route_weight) {
            weights.push(route_weight);
        }
        if let Some(r) = ready(&world.server, "podinfo")
            && reasons.last() != Some(&r)
        {
            reasons.push(r);
        }
        let status = canary(&world.server, NS, "podinfo")
            .and_then(|c| c.status)
            .unwrap_or_default();
        let (weight, phase) = (i64::from(status.canary_weight), status.phase);
        if matches!(phase, Some(CanaryPhase::Succeeded | CanaryPhase::Failed)) {
            break;
        }
        if steps.last().map(|(s, _)| *s) != Some((weight, phase)) {
            let status_fails = steps.len().is_multiple_of(2);
            world.server.clear_faults();
            let met = world.server.faults_met();
            world
                .server
                .inject(write_fault("canaries", status_fails).on_status());
            for (plural, scope) in others {
                let unmet = |fails: bool| {
                    let kind = write_fault(plural, fails).kind;
                    !met.iter().any(|m| m.plural == plural && m.kind == kind)
                };
                if let Some(fails) = [!status_fails, status_fails]
                    .into_iter()
                    .find(|f| unmet(*f))
                {
                    world.server.inject(scope(write_fault(plural, fails)));
                }
            }
            steps.push(((weight, phase), met.len()));
        }
        assert!(
            Instant::now() < end,
            "wedged or not finished: {steps:?}; log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    world.server.clear_faults();
    let met = world.server.faults_met();
    let seen: Vec<_> = steps.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        world.phase(),
        Some(CanaryPhase::Succeeded),
        "{seen:?}; log:\n{}",
        op.log_text()
    );
    weights.push(world.final_weight().await);
    weights.dedup();
    assert_eq!(weights, STEPS, "each step once, in order: {seen:?}");
    for p in [
        CanaryPhase::Progressing,
        CanaryPhase::Promoting,
        CanaryPhase::Finalising,
    ] {
        assert!(
            seen.iter().any(|(_, q)| *q == Some(p)),
            "faults armed during {p:?}: {seen:?}"
        );
    }
    // Every step met a fault: the ticks that left it failed at least once.
    let per_step: Vec<_> = steps
        .iter()
        .enumerate()
        .map(|(i, (step, from))| {
            let to = steps.get(i + 1).map_or(met.len(), |(_, n)| *n);
            let met: Vec<String> = met[*from..to]
                .iter()
                .map(|m| {
                    format!(
                        "{:?} {}{}",
                        m.kind,
                        m.plural,
                        if m.status { "/status" } else { "" }
                    )
                })
                .collect();
            (*step, met)
        })
        .collect();
    for (step, met) in &per_step {
        assert!(!met.is_empty(), "no fault met at {step:?}: {per_step:#?}");
    }
    let service_writes = world.server.requests()[before_rollout..]
        .iter()
        .filter(|r| r.method != "GET" && r.uri.contains("/services"))
        .count();
    assert_eq!(service_writes, 0, "no Service is written during a rollout");
    for plural in ["canaries", "httproutes", "deployments"] {
        for kind in [FaultKind::Internal, FaultKind::Delay(HOLD)] {
            assert!(
                met.iter().any(|m| m.plural == plural && m.kind == kind),
                "a {kind:?} on a write of {plural} was met: {per_step:#?}"
            );
        }
    }
    assert_eq!(world.primary_image().as_deref(), Some("podinfo:2"));
    // Failed calls are counted by kind: a 500 as "api", a call that got
    // no answer within the timeout as "timeout" (at most once per fault
    // met: a fault may also meet a write that reports the failure).
    let metrics = op.metrics().await;
    for (kind, fault) in [
        ("api", FaultKind::Internal),
        ("timeout", FaultKind::Delay(HOLD)),
    ] {
        let counted = sample(&metrics, "sluice_reconcile_errors_total", &[("kind", kind)]);
        let met = met.iter().filter(|m| m.kind == fault).count() as f64;
        assert!(
            counted >= 1.0 && counted <= met,
            "{counted} {kind} errors counted for {met} faults met: {metrics}"
        );
    }
    // A failed tick is reported: Ready False with reason ApiError, until
    // a clean tick.
    assert!(
        reasons.iter().any(|(s, r)| s == "False" && r == "ApiError"),
        "Ready reasons seen: {reasons:?}"
    );
    assert_eq!(
        ready(&world.server, "podinfo").map(|(s, _)| s).as_deref(),
        Some("True"),
        "Ready again after the last clean tick: {reasons:?}"
    );
    // Each step's event exactly once, whatever failed around it (events
    // ride in the status write and are published after it; the last one
    // may follow the final status).
    let end = Instant::now() + Duration::from_secs(10);
    for once in [
        "New revision detected podinfo.test",
        "Advance podinfo.test canary weight 10",
        "Advance podinfo.test canary weight 20",
        "Advance podinfo.test canary weight 30",
        "Copying podinfo.test template spec to podinfo-primary.test",
        "Promotion completed! Scaling down podinfo.test",
    ] {
        while events_with(&world.client, once).await == 0 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let n = events_with(&world.client, once).await;
        assert_eq!(n, 1, "{once:?}: {:#?}", stored_events(&world.client).await);
    }
}

/// A URL on 127.0.0.1 where nothing listens: connections are refused.
fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// The Prometheus timeout of `sluice run` (Flagger's, 5 s), and a delay
/// past it.
const PAST_PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(8);
/// A webhook's timeout in these Canaries, and a delay past it.
const HOOK_TIMEOUT: &str = "1s";
const PAST_HOOK_TIMEOUT: Duration = Duration::from_secs(3);

/// A Deployment and its Canary, both named `name`, with `analysis`
/// (indented YAML) added to the Canary's analysis.
async fn add_target(client: &kube::Client, name: &str, analysis: &str) {
    let deployment = DEPLOYMENT
        .replace("name: podinfo,", &format!("name: {name},"))
        .replace("app: podinfo", &format!("app: {name}"));
    let deployment: Deployment = yaml_serde::from_str(&deployment).unwrap();
    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the target");
    let canary = format!(
        "{}{analysis}",
        CANARY.replace("name: podinfo", &format!("name: {name}"))
    );
    let canary: Canary = yaml_serde::from_str(&canary)
        .unwrap_or_else(|e| panic!("Canary {name} parses ({e}): {canary}"));
    Api::<Canary>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &canary)
        .await
        .expect("create the Canary (the CRD schema accepts it)");
}

async fn add_template(client: &kube::Client, name: &str, address: &str) {
    let template = format!(
        "apiVersion: sluice.dev/v1beta1\nkind: MetricTemplate\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  provider: {{type: prometheus, address: '{address}'}}\n  query: sum(up)\n"
    );
    let template: MetricTemplate = yaml_serde::from_str(&template).unwrap();
    Api::<MetricTemplate>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &template)
        .await
        .expect("create the MetricTemplate");
}

fn metric_analysis(template: &str) -> String {
    format!(
        "    metrics:\n      - name: {template}-metric\n        templateRef: {{name: {template}, namespace: test}}\n        thresholdRange: {{min: 99}}\n        interval: 1m\n"
    )
}

fn hook_analysis(hook_type: &str, url: &str) -> String {
    format!(
        "    webhooks:\n      - name: {hook_type}-hook\n        type: {hook_type}\n        url: {url}/\n        timeout: {HOOK_TIMEOUT}\n"
    )
}

/// A new revision of the target `name`.
async fn new_revision_of(client: &kube::Client, name: &str) {
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
        {"name": "podinfod", "image": "podinfo:2"}]}}}});
    Api::<Deployment>::namespaced(client.clone(), NS)
        .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("new revision");
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_and_webhooks_slow_or_refusing_roll_back_by_the_threshold_or_halt_a_gate() {
    let slow_prometheus = Recorder::start(vec![
        Answer::new(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .delayed(PAST_PROMETHEUS_TIMEOUT),
    ])
    .await;
    let slow_hook = Recorder::start(vec![Answer::new(200, "ok").delayed(PAST_HOOK_TIMEOUT)]).await;
    // One operator, five Canaries side by side, each with one fault from
    // the start of its rollout.
    let world = World::new().await;
    let client = world.client.clone();
    add_template(&client, "slow", &slow_prometheus.url).await;
    add_template(&client, "down", &refusing_url()).await;
    let refused_hook = refusing_url();
    let cases = [
        ("slow-prometheus", metric_analysis("slow")),
        ("down-prometheus", metric_analysis("down")),
        ("slow-hook", hook_analysis("rollout", &slow_hook.url)),
        ("down-hook", hook_analysis("rollout", &refused_hook)),
        ("down-gate", hook_analysis("confirm-rollout", &refused_hook)),
    ];
    for (name, analysis) in &cases {
        add_target(&client, name, analysis).await;
    }
    let op = world.operator("sluice-a", &API_TIMEOUT);
    let end = Instant::now() + Duration::from_secs(90);
    let phase_of = |name: &str| canary(&world.server, NS, name)?.status?.phase;
    for (name, _) in &cases {
        while phase_of(name) != Some(CanaryPhase::Initialized) {
            assert!(
                Instant::now() < end,
                "{name} not initialized; log:\n{}",
                op.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for (name, _) in &cases {
        new_revision_of(&client, name).await;
    }
    let rolled_back = [
        "slow-prometheus",
        "down-prometheus",
        "slow-hook",
        "down-hook",
    ];
    let mut weights: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    let mut reasons: std::collections::BTreeMap<&str, Vec<(String, String)>> = Default::default();
    loop {
        for (name, _) in &cases {
            let w = world.safe_weight_of(name);
            let seen = weights.entry(name).or_default();
            if seen.last() != Some(&w) {
                seen.push(w);
            }
            let seen = reasons.entry(name).or_default();
            if let Some(r) = ready(&world.server, name)
                && seen.last() != Some(&r)
            {
                seen.push(r);
            }
        }
        if rolled_back.iter().all(|n| {
            matches!(
                phase_of(n),
                Some(CanaryPhase::Failed | CanaryPhase::Succeeded)
            )
        }) {
            break;
        }
        assert!(
            Instant::now() < end,
            "not rolled back: {weights:?}; log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Events are published after the status write that ends a tick: wait
    // for the rollbacks' own.
    let end = Instant::now() + Duration::from_secs(10);
    for name in rolled_back {
        let rolling_back = format!("Rolling back {name}.test");
        while events_with(&world.client, &rolling_back).await == 0 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let notes = stored_events(&world.client).await;
    let metrics = op.metrics().await;
    let causes = [
        (
            "slow-prometheus",
            "slow-metric",
            "timeout",
            "did not answer within 5s",
        ),
        (
            "down-prometheus",
            "down-metric",
            "unreachable",
            "is unreachable",
        ),
        ("slow-hook", "rollout-hook", "timeout", "timed out after 1s"),
        (
            "down-hook",
            "rollout-hook",
            "unreachable",
            "failed after 1 attempt(s)",
        ),
    ];
    for (name, check, cause, says) in causes {
        assert_eq!(
            phase_of(name),
            Some(CanaryPhase::Failed),
            "{name}: {notes:#?}"
        );
        // While the check cannot be judged, Ready is False with the fault.
        let fault = if check.ends_with("-hook") {
            "WebhookFailed"
        } else {
            "MetricUnavailable"
        };
        assert!(
            reasons[name].contains(&("False".to_string(), fault.to_string())),
            "{name}: Ready reasons seen {:?}",
            reasons[name]
        );
        // The first step needs no check; then the weight holds while the
        // checks fail, and all of it goes back to the primary.
        assert_eq!(
            weights[name],
            [0, 10, 0],
            "{name}: no traffic moved toward the canary"
        );
        let halts: Vec<&String> = notes
            .iter()
            .filter(|n| n.starts_with(&format!("Halt {name}.test advancement")))
            .collect();
        // (The same note again is a patch of the event's series, not a
        // new event: the threshold event shows the count.)
        assert!(
            !halts.is_empty() && halts.iter().all(|n| n.contains(check) && n.contains(says)),
            "{name}: the failed check names {check} and why ({says}): {notes:#?}"
        );
        assert_eq!(
            notes
                .iter()
                .filter(|n| n.starts_with(&format!(
                    "Rolling back {name}.test failed checks threshold reached 2"
                )))
                .count(),
            1,
            "{name}: {notes:#?}"
        );
        let family = if check.ends_with("-hook") {
            "sluice_webhook_failures_total"
        } else {
            "sluice_metric_query_failures_total"
        };
        let counted = sample(
            &metrics,
            family,
            &[("name", name), ("check", check), ("cause", cause)],
        );
        assert!(
            counted >= 2.0,
            "{name}: {cause} counted {counted} times: {metrics}"
        );
    }
    // The gate halts the rollout as Flagger does: it waits, at weight 0,
    // and never rolls back.
    assert_eq!(
        phase_of("down-gate"),
        Some(CanaryPhase::Waiting),
        "{notes:#?}"
    );
    assert_eq!(
        weights["down-gate"],
        [0],
        "no traffic to a canary whose gate is shut"
    );
    assert_eq!(
        events_with(
            &world.client,
            "Halt down-gate.test advancement waiting for approval confirm-rollout-hook"
        )
        .await,
        1,
        "{notes:#?}"
    );
    assert!(
        sample(
            &metrics,
            "sluice_webhook_failures_total",
            &[("name", "down-gate"), ("cause", "unreachable")]
        ) >= 2.0,
        "{metrics}"
    );
    assert!(slow_prometheus.requests().len() >= 2);
    assert!(slow_hook.requests().len() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_write_that_timed_out_and_lands_after_the_rollout_cannot_move_traffic_back() {
    let world = World::new().await;
    let op = world.operator("sluice-a", &API_TIMEOUT);
    world
        .wait_phase(CanaryPhase::Initialized, Duration::from_secs(60), &op)
        .await;
    world.new_revision().await;
    // The route write of the step to 30 is held: its call times out, the
    // step is redone and the rollout finishes; only then does the held
    // write reach the API server.
    let server = Arc::clone(&world.server);
    let (weights, phase) = world
        .watch_rollout(
            Duration::from_secs(120),
            |w| {
                if w == 20 {
                    server.inject(Fault::held("httproutes").on_main());
                }
            },
            || op.log_text(),
        )
        .await;
    assert_eq!(phase, CanaryPhase::Succeeded, "log:\n{}", op.log_text());
    assert_eq!(weights, STEPS);
    assert_eq!(
        world
            .server
            .faults_met()
            .iter()
            .filter(|m| m.kind == FaultKind::Held)
            .count(),
        1,
        "the route write to 30 was held"
    );
    world.server.release_held();
    let end = Instant::now() + Duration::from_secs(10);
    while world.server.held_requests() > 0 {
        assert!(Instant::now() < end, "the held write is served");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The stale write is refused: the traffic stays on the primary (the
    // canary is scaled down).
    assert_eq!(world.safe_weight(), 0);
}
