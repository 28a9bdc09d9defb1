//! The real `sluice run` binary against the API server double: a child
//! process with a kubeconfig pointing at the double, plus the controllers a
//! cluster would run beside it (the Deployment controller making pods ready,
//! a Gateway controller accepting routes), played by the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use sluice_api::Canary;
use sluice_kube_double::ApiServer;
use sluice_rollout::router::HttpRoute;
use tokio::task::JoinHandle;

/// A running `sluice run`, killed (SIGKILL) when dropped.
pub struct Operator {
    child: Child,
    pub health: String,
    pub log: PathBuf,
}

impl Operator {
    /// Starts `sluice run` against `server` with `extra` arguments; its log
    /// goes to `dir/<name>.log`.
    pub fn start(server: &ApiServer, dir: &Path, name: &str, extra: &[&str]) -> Self {
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        // No metrics server unless the test gives one.
        let prometheus: &[&str] = if extra.contains(&"--prometheus") {
            &[]
        } else {
            &["--prometheus", "http://127.0.0.1:9"]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(prometheus)
            .args(["--holder-id", name])
            .args(extra)
            .env("KUBECONFIG", &kubeconfig)
            .env("SLUICE_LOG", "info")
            .env_remove("SLUICE_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("sluice run starts");
        Self {
            child,
            health: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// SIGKILL: no cleanup, no Lease release.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The status code of `/readyz`, or `None` when nothing answers.
    pub async fn readyz(&self) -> Option<u16> {
        let client = reqwest::Client::new();
        client
            .get(format!("{}/readyz", self.health))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// `/metrics`, or an empty string when nothing answers.
    pub async fn metrics(&self) -> String {
        let client = reqwest::Client::new();
        match client
            .get(format!("{}/metrics", self.health))
            .timeout(Duration::from_millis(500))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Deployment and Gateway controllers of the pretend cluster, every
/// 50 ms: a Deployment's pods become ready at once (as envtest users write
/// the status); every HTTPRoute is accepted by its Gateways. Both write
/// only the status subresource, through the API, as real controllers do:
/// they never overwrite what the operator wrote meanwhile.
pub fn cluster_controllers(server: &Arc<ApiServer>) -> JoinHandle<()> {
    let client = server.client().expect("client");
    tokio::spawn(async move {
        let deployments: Api<Deployment> = Api::all(client.clone());
        let routes: Api<HttpRoute> = Api::all(client.clone());
        loop {
            if let Ok(list) = deployments.list(&ListParams::default()).await {
                for d in list {
                    make_ready(&client, d).await;
                }
            }
            if let Ok(list) = routes.list(&ListParams::default()).await {
                for r in list {
                    accept(&client, r).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

async fn make_ready(client: &kube::Client, d: Deployment) {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(replicas),
        ready_replicas: Some(replicas),
        available_replicas: Some(replicas),
        ..Default::default()
    };
    if d.status.as_ref() == Some(&status) {
        return;
    }
    let api: Api<Deployment> = Api::namespaced(client.clone(), &d.namespace().unwrap_or_default());
    let patch = json!({ "status": status });
    let _ = api
        .patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
}

async fn accept(client: &kube::Client, r: HttpRoute) {
    let generation = r.metadata.generation;
    let accepted = r.status.as_ref().is_some_and(|s| {
        !s.parents.is_empty()
            && s.parents.iter().all(|p| {
                p.conditions
                    .iter()
                    .any(|c| c.type_ == "Accepted" && c.observed_generation == generation)
            })
    });
    if accepted {
        return;
    }
    let now = jiff::Timestamp::now().to_string();
    let parents: Vec<_> = r
        .spec
        .parent_refs
        .iter()
        .flatten()
        .map(|p| {
            json!({
                "parentRef": p,
                "controllerName": "example.net/gateway",
                "conditions": [
                    {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                     "observedGeneration": generation, "lastTransitionTime": now},
                    {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "",
                     "observedGeneration": generation, "lastTransitionTime": now},
                ]
            })
        })
        .collect();
    let api: Api<HttpRoute> = Api::namespaced(client.clone(), &r.namespace().unwrap_or_default());
    let patch = json!({ "status": { "parents": parents } });
    let _ = api
        .patch_status(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
}

/// The canary weight the route sends to `<name>-canary`, if the route
/// exists (the weight of its last, catch-all rule).
pub fn canary_weight(server: &ApiServer, namespace: &str, name: &str) -> Option<i64> {
    let route: HttpRoute = server.get(namespace, name).ok()??;
    let rule = route.spec.rules.as_ref()?.last()?;
    let canary = format!("{name}-canary");
    Some(
        rule.backend_refs
            .iter()
            .flatten()
            .filter(|b| b.name == canary)
            .map(|b| i64::from(b.weight.unwrap_or(1)))
            .sum(),
    )
}

/// The Canary as stored.
pub fn canary(server: &ApiServer, namespace: &str, name: &str) -> Option<Canary> {
    server.get(namespace, name).ok().flatten()
}
