//! `KubeCluster` against a scripted API server: a kube-rs `Client` over a
//! `tower_test` mock service, and a verifier that checks every request the
//! client sends (method, path, query, exact JSON body) and answers it, as
//! kube-rs/controller-rs does in its fixtures.

use crate::common;

use std::collections::BTreeMap;
use std::pin::pin;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};
use sluice_api::{Canary, CanaryPhase, CanaryStatus};
use sluice_operator::kube_cluster::{self as kube_cluster, KubeCluster};
use sluice_rollout::analysis::configs::TrackedConfigs;
use sluice_rollout::analysis::workload;
use sluice_rollout::cluster::{Cluster, Event};
use sluice_rollout::router;
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

const UID: &str = "6d1b7a2c-0000-4000-8000-000000000001";

/// One request the API server expects, and its answer.
struct Step {
    method: Method,
    path: String,
    /// The whole query, as name/value pairs in any order.
    query: Vec<(&'static str, &'static str)>,
    /// The exact JSON body, or `None` for a request without one.
    body: Option<Value>,
    status: StatusCode,
    /// The answer; `None` echoes the request body, as an apply would.
    response: Option<Value>,
    /// Whether the request asks for the object's metadata alone
    /// (`Accept: …;as=PartialObjectMetadata;…`).
    metadata_only: bool,
}

impl Step {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: vec![],
            body: None,
            status: StatusCode::OK,
            response: None,
            metadata_only: false,
        }
    }

    /// A server-side apply as field manager "sluice", forced.
    fn apply(path: impl Into<String>, body: Value) -> Self {
        Self {
            query: vec![("fieldManager", "sluice"), ("force", "true")],
            body: Some(body),
            ..Self::new(Method::PATCH, path)
        }
    }

    fn get(path: impl Into<String>, status: StatusCode, response: Value) -> Self {
        Self {
            status,
            response: Some(response),
            ..Self::new(Method::GET, path)
        }
    }

    /// A metadata-only GET, answered as the API server answers one.
    fn metadata(path: impl Into<String>, status: StatusCode, response: Value) -> Self {
        Self {
            metadata_only: true,
            ..Self::get(path, status, response)
        }
    }

    fn answer(mut self, status: StatusCode, response: Value) -> Self {
        self.status = status;
        self.response = Some(response);
        self
    }
}

/// Answers the client's requests from a script, asserting each one.
struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

impl ApiServerVerifier {
    /// Serves `steps` in order, then checks that the client sent nothing
    /// more (the handle ends when the last client is dropped). Returns the
    /// JSON bodies the client sent, for checks beyond equality.
    fn run(self, steps: Vec<Step>) -> JoinHandle<Vec<Value>> {
        tokio::spawn(async move {
            let mut handle = pin!(self.0);
            let mut bodies = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                let (request, send) = handle
                    .next_request()
                    .await
                    .unwrap_or_else(|| panic!("step {i}: expected {} {}", step.method, step.path));
                assert_eq!(request.method(), step.method, "step {i}: method");
                assert_eq!(request.uri().path(), step.path, "step {i}: path");
                let mut query: Vec<(String, String)> =
                    url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect();
                query.sort();
                let mut want: Vec<(String, String)> = step
                    .query
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                want.sort();
                assert_eq!(query, want, "step {i}: query of {}", request.uri());
                let accept = request
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                assert_eq!(
                    accept.contains("as=PartialObjectMetadata"),
                    step.metadata_only,
                    "step {i}: metadata only? Accept: {accept}"
                );
                if step.method == Method::PATCH {
                    let content_type = request
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let want_type = if step.query.contains(&("force", "true")) {
                        "application/apply-patch+yaml"
                    } else {
                        "application/merge-patch+json"
                    };
                    assert_eq!(content_type, want_type, "step {i}: patch type");
                }
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .expect("request body");
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("request body is JSON")
                };
                if let Some(want) = &step.body {
                    assert_eq!(
                        &body,
                        want,
                        "step {i}: body of {} {}\n got: {}\nwant: {}",
                        step.method,
                        step.path,
                        serde_json::to_string_pretty(&body).unwrap_or_default(),
                        serde_json::to_string_pretty(want).unwrap_or_default()
                    );
                }
                let response = step.response.clone().unwrap_or_else(|| body.clone());
                bodies.push(body);
                send.send_response(
                    Response::builder()
                        .status(step.status)
                        .header(http::header::CONTENT_TYPE, "application/json")
                        .body(Body::from(serde_json::to_vec(&response).expect("json")))
                        .expect("response"),
                );
            }
            if let Some((request, _)) = handle.next_request().await {
                panic!("unexpected request {} {}", request.method(), request.uri());
            }
            bodies
        })
    }
}

/// A cluster over a mock API server; events are reported by
/// "sluice"/"sluice-test" so that their bodies are predictable.
fn cluster() -> (KubeCluster, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let cluster = KubeCluster::new(client).with_reporter(Reporter {
        controller: "sluice".into(),
        instance: Some("sluice-test".into()),
    });
    (cluster, ApiServerVerifier(handle))
}

/// Drops the cluster (ending the mock service) and waits for the verifier.
async fn finish(cluster: KubeCluster, verifier: JoinHandle<Vec<Value>>) -> Vec<Value> {
    drop(cluster);
    tokio::time::timeout(Duration::from_secs(10), verifier)
        .await
        .expect("the verifier finished")
        .expect("every request matched the script")
}

/// The guide's Canary, as the API server would return it.
fn canary() -> Canary {
    let mut c = common::canary("tests/fixtures/seed/podinfo-canary.yaml");
    c.metadata.uid = Some(UID.into());
    c.metadata.resource_version = Some("4711".into());
    c
}

fn owner_references() -> Value {
    json!([{
        "apiVersion": "sluice.dev/v1beta1",
        "kind": "Canary",
        "name": "podinfo",
        "uid": UID,
        "controller": true,
        "blockOwnerDeletion": true
    }])
}

/// The guide's podinfo Deployment, as read from the API server.
fn target() -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "podinfo",
            "namespace": "test",
            "labels": { "app": "podinfo" },
            "uid": "target-uid",
            "resourceVersion": "1200",
            "generation": 3
        },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "podinfo" } },
            "template": {
                "metadata": { "labels": { "app": "podinfo" } },
                "spec": {
                    "containers": [{
                        "name": "podinfod",
                        "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                        "ports": [{ "name": "http", "containerPort": 9898, "protocol": "TCP" }]
                    }]
                }
            }
        },
        "status": { "replicas": 2, "availableReplicas": 2 }
    }))
    .expect("deployment")
}

fn target_autoscaler() -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": "podinfo", "namespace": "test" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo" },
            "minReplicas": 2,
            "maxReplicas": 4,
            "metrics": [{
                "type": "Resource",
                "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 99 } }
            }]
        }
    }))
    .expect("hpa")
}

fn service_body(name: &str, selector: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": "test", "ownerReferences": owner_references() },
        "spec": {
            "type": "ClusterIP",
            "selector": { "app": selector },
            "ports": [{ "name": "http", "port": 9898, "targetPort": 9898, "protocol": "TCP" }]
        }
    })
}

#[tokio::test]
async fn generated_objects_are_server_side_applied_with_exact_bodies() {
    let canary = canary();
    let target = target();
    let route = router::render(&canary, &router::safe_plan());
    let services = workload::services(&canary, &target).expect("services");
    let primary = workload::primary_deployment(&canary, &target, None, &TrackedConfigs::default())
        .expect("primary");
    let hpa = workload::primary_autoscaler(&canary, &target_autoscaler()).expect("hpa");

    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        route_absent(),
        Step::apply(
            "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": { "name": "podinfo", "namespace": "test", "ownerReferences": owner_references() },
                "spec": {
                    "hostnames": ["www.example.com"],
                    "parentRefs": [{ "name": "gateway", "namespace": "istio-ingress" }],
                    "rules": [{
                        "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                        "backendRefs": [
                            { "group": "", "kind": "Service", "name": "podinfo-primary", "port": 9898, "weight": 100 },
                            { "group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898, "weight": 0 }
                        ]
                    }]
                }
            }),
        ),
        Step::apply(
            "/api/v1/namespaces/test/services/podinfo",
            service_body("podinfo", "podinfo-primary"),
        ),
        Step::apply(
            "/api/v1/namespaces/test/services/podinfo-primary",
            service_body("podinfo-primary", "podinfo-primary"),
        ),
        Step::apply(
            "/api/v1/namespaces/test/services/podinfo-canary",
            service_body("podinfo-canary", "podinfo"),
        ),
        Step::apply(
            "/apis/apps/v1/namespaces/test/deployments/podinfo-primary",
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "podinfo-primary",
                    "namespace": "test",
                    "labels": { "app": "podinfo-primary" },
                    "ownerReferences": owner_references()
                },
                "spec": {
                    "replicas": 2,
                    "selector": { "matchLabels": { "app": "podinfo-primary" } },
                    "template": {
                        "metadata": { "labels": { "app": "podinfo-primary" } },
                        "spec": {
                            "containers": [{
                                "name": "podinfod",
                                "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                                "ports": [{ "name": "http", "containerPort": 9898, "protocol": "TCP" }]
                            }]
                        }
                    }
                }
            }),
        ),
        Step::apply(
            "/apis/autoscaling/v2/namespaces/test/horizontalpodautoscalers/podinfo-primary",
            json!({
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": { "name": "podinfo-primary", "namespace": "test", "ownerReferences": owner_references() },
                "spec": {
                    "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo-primary" },
                    "minReplicas": 2,
                    "maxReplicas": 4,
                    "metrics": [{
                        "type": "Resource",
                        "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 99 } }
                    }]
                }
            }),
        ),
    ]);

    cluster
        .apply_http_route(&route)
        .await
        .expect("route applied");
    for svc in &services {
        cluster.apply_service(svc).await.expect("service applied");
    }
    cluster
        .apply_deployment(&primary)
        .await
        .expect("primary applied");
    cluster.apply_autoscaler(&hpa).await.expect("hpa applied");
    finish(cluster, verifier).await;
}

#[tokio::test]
async fn apply_leaves_out_what_the_server_owns() {
    // An object the engine read and hands back: uid, resourceVersion,
    // managedFields and status must not be part of the apply configuration.
    let mut cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "podinfo-config-primary",
            "namespace": "test",
            "uid": "cm-uid",
            "resourceVersion": "99",
            "creationTimestamp": "2026-11-24T10:00:00Z",
            "managedFields": [{ "manager": "kubectl", "operation": "Apply", "apiVersion": "v1" }],
            "annotations": { "team": "a" }
        },
        "data": { "color": "blue" }
    }))
    .expect("configmap");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": "podinfo-token-primary", "namespace": "test" },
        "type": "Opaque",
        "data": { "token": "c2VjcmV0" }
    }))
    .expect("secret");
    let mut read_deployment = target();
    read_deployment.metadata.name = Some("podinfo-primary".into());

    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        Step::apply(
            "/api/v1/namespaces/test/configmaps/podinfo-config-primary",
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": "podinfo-config-primary",
                    "namespace": "test",
                    "annotations": { "team": "a" }
                },
                "data": { "color": "blue" }
            }),
        ),
        Step::apply(
            "/api/v1/namespaces/test/secrets/podinfo-token-primary",
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": { "name": "podinfo-token-primary", "namespace": "test" },
                "type": "Opaque",
                "data": { "token": "c2VjcmV0" }
            }),
        ),
        // A Deployment without a namespace goes to "default", as in memory.
        Step::apply(
            "/apis/apps/v1/namespaces/default/deployments/podinfo-primary",
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": { "name": "podinfo-primary", "namespace": "default", "labels": { "app": "podinfo" } },
                "spec": {
                    "replicas": 2,
                    "selector": { "matchLabels": { "app": "podinfo" } },
                    "template": {
                        "metadata": { "labels": { "app": "podinfo" } },
                        "spec": {
                            "containers": [{
                                "name": "podinfod",
                                "image": "ghcr.io/stefanprodan/podinfo:6.0.0",
                                "ports": [{ "name": "http", "containerPort": 9898, "protocol": "TCP" }]
                            }]
                        }
                    }
                }
            }),
        ),
    ]);
    cluster.apply_config_map(&cm).await.expect("configmap");
    cluster.apply_secret(&secret).await.expect("secret");
    read_deployment.metadata.namespace = None;
    cluster
        .apply_deployment(&read_deployment)
        .await
        .expect("deployment");
    cm.metadata.name = None;
    let err = cluster
        .apply_config_map(&cm)
        .await
        .expect_err("a nameless object cannot be applied");
    assert!(
        sluice_rollout::cluster::chain(&err).contains("has no metadata.name"),
        "{err:#}"
    );
    finish(cluster, verifier).await;
}

#[tokio::test]
async fn the_field_manager_can_be_changed() {
    let canary = canary();
    let route = router::render(&canary, &router::safe_plan());
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let cluster =
        KubeCluster::new(Client::new(service, "default")).with_field_manager("sluice-staging");
    assert_eq!(cluster.field_manager(), "sluice-staging");
    let verifier = ApiServerVerifier(handle).run(vec![
        route_absent(),
        Step {
            query: vec![("fieldManager", "sluice-staging"), ("force", "true")],
            ..Step::new(
                Method::PATCH,
                "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            )
        },
    ]);
    cluster.apply_http_route(&route).await.expect("applied");
    finish(cluster, verifier).await;
}

#[tokio::test]
async fn reads_map_not_found_to_none_and_name_the_object_in_errors() {
    let canary = canary();
    let route = router::render(&canary, &router::safe_plan());
    let route_json = serde_json::to_value(&route).expect("route json");
    let not_found = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "deployments.apps \"podinfo-primary\" not found",
        "reason": "NotFound", "code": 404
    });
    let forbidden = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "secrets \"db\" is forbidden: User \"system:serviceaccount:sluice-system:sluice\" cannot get resource \"secrets\"",
        "reason": "Forbidden", "code": 403
    });
    let template = json!({
        "apiVersion": "sluice.dev/v1beta1", "kind": "MetricTemplate",
        "metadata": { "name": "error-rate", "namespace": "flagger-system" },
        "spec": { "provider": { "type": "prometheus", "address": "http://prometheus.istio-system:9090" }, "query": "up" }
    });

    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        Step::get(
            "/apis/apps/v1/namespaces/test/deployments/podinfo-primary",
            StatusCode::NOT_FOUND,
            not_found,
        ),
        Step::get(
            "/apis/apps/v1/namespaces/test/deployments/podinfo",
            StatusCode::OK,
            serde_json::to_value(target()).expect("json"),
        ),
        Step::get(
            "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            StatusCode::OK,
            route_json,
        ),
        Step::get(
            "/apis/autoscaling/v2/namespaces/test/horizontalpodautoscalers/podinfo",
            StatusCode::OK,
            serde_json::to_value(target_autoscaler()).expect("json"),
        ),
        Step::get(
            "/apis/sluice.dev/v1beta1/namespaces/flagger-system/metrictemplates/error-rate",
            StatusCode::OK,
            template,
        ),
        Step::get(
            "/api/v1/namespaces/test/configmaps/podinfo-config",
            StatusCode::OK,
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "podinfo-config", "namespace": "test" }, "data": { "a": "1" } }),
        ),
        Step::get(
            "/api/v1/namespaces/test/secrets/db",
            StatusCode::FORBIDDEN,
            forbidden,
        ),
        Step::get(
            "/apis/sluice.dev/v1beta1/namespaces/test/alertproviders/on-call",
            StatusCode::OK,
            json!({
                "apiVersion": "sluice.dev/v1beta1", "kind": "AlertProvider",
                "metadata": { "name": "on-call", "namespace": "test" },
                "spec": { "type": "slack", "channel": "on-call", "secretRef": { "name": "slack-url" } }
            }),
        ),
    ]);

    assert!(
        cluster
            .deployment("test", "podinfo-primary")
            .await
            .expect("404 is not an error")
            .is_none()
    );
    let d = cluster
        .deployment("test", "podinfo")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(d.metadata.resource_version.as_deref(), Some("1200"));
    let r = cluster
        .http_route("test", "podinfo")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(*r, route);
    let h = cluster
        .autoscaler("test", "podinfo")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(h.spec.expect("spec").max_replicas, 4);
    let t = cluster
        .metric_template("flagger-system", "error-rate")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(t.spec.query, "up");
    let cm = cluster
        .config_map("test", "podinfo-config")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(cm.data.expect("data")["a"], "1");
    let err = cluster
        .secret("test", "db")
        .await
        .expect_err("403 is an error");
    let text = sluice_rollout::cluster::chain(&err);
    assert!(text.contains("reading Secret test/db"), "{text}");
    assert!(text.contains("forbidden"), "{text}");
    assert!(!kube_cluster::is_retryable(&err), "403 is not retryable");
    let provider = cluster
        .alert_provider("test", "on-call")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(provider.spec.provider_type, "slack");
    finish(cluster, verifier).await;
}

/// The metadata-only answer for the object `name` at `version`.
fn partial_metadata(name: &str, version: &str) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": { "name": name, "namespace": "test", "resourceVersion": version }
    })
}

#[tokio::test]
async fn versions_are_read_metadata_only_and_a_missing_object_has_none() {
    use sluice_rollout::cluster::Kind;
    let not_found = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "secrets \"db\" not found", "reason": "NotFound", "code": 404
    });
    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        Step::metadata(
            "/apis/apps/v1/namespaces/test/deployments/podinfo",
            StatusCode::OK,
            partial_metadata("podinfo", "1200"),
        ),
        Step::metadata(
            "/api/v1/namespaces/test/configmaps/podinfo-config",
            StatusCode::OK,
            partial_metadata("podinfo-config", "7"),
        ),
        Step::metadata(
            "/api/v1/namespaces/test/secrets/db",
            StatusCode::NOT_FOUND,
            not_found,
        ),
        Step::metadata(
            "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            StatusCode::OK,
            partial_metadata("podinfo", "88"),
        ),
    ]);
    let version = async |kind, name| cluster.version(kind, "test", name).await.expect("read");
    assert_eq!(
        version(Kind::Deployment, "podinfo").await.as_deref(),
        Some("1200")
    );
    assert_eq!(
        version(Kind::ConfigMap, "podinfo-config").await.as_deref(),
        Some("7")
    );
    assert_eq!(version(Kind::Secret, "db").await, None);
    assert_eq!(
        version(Kind::HttpRoute, "podinfo").await.as_deref(),
        Some("88")
    );
    finish(cluster, verifier).await;
}

#[tokio::test]
async fn scaling_is_a_merge_patch_of_replicas_only() {
    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        Step {
            query: vec![("fieldManager", "sluice")],
            body: Some(json!({ "spec": { "replicas": 0 } })),
            response: Some(serde_json::to_value(target()).expect("json")),
            ..Step::new(Method::PATCH, "/apis/apps/v1/namespaces/test/deployments/podinfo")
        },
        Step {
            query: vec![("fieldManager", "sluice")],
            body: Some(json!({ "spec": { "replicas": 2 } })),
            ..Step::new(Method::PATCH, "/apis/apps/v1/namespaces/test/deployments/gone")
        }
        .answer(
            StatusCode::NOT_FOUND,
            json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                    "message": "deployments.apps \"gone\" not found" }),
        ),
    ]);
    let scaled = cluster
        .scale_deployment("test", "podinfo", 0)
        .await
        .expect("scaled");
    assert_eq!(scaled.as_deref(), Some(&target()), "the answer is returned");
    let err = cluster
        .scale_deployment("test", "gone", 2)
        .await
        .expect_err("a missing target cannot be scaled");
    assert!(
        sluice_rollout::cluster::chain(&err).contains("scaling Deployment test/gone to 2"),
        "{err:#}"
    );
    finish(cluster, verifier).await;
}

fn progressing_status() -> CanaryStatus {
    CanaryStatus {
        phase: Some(CanaryPhase::Progressing),
        canary_weight: 10,
        failed_checks: 1,
        iterations: 0,
        last_applied_spec: Some("5d8b9f7c6a".into()),
        last_transition_time: Some("2026-11-25T09:00:00Z".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn status_is_applied_to_the_subresource_with_the_read_resource_version() {
    let canary = canary();
    let status = progressing_status();
    let (cluster, server) = cluster();
    let mut answer = serde_json::to_value(&canary).expect("json");
    answer["status"] = serde_json::to_value(&status).expect("json");
    answer["metadata"]["resourceVersion"] = json!("4712");
    let verifier = server.run(vec![
        Step::apply(
            "/apis/sluice.dev/v1beta1/namespaces/test/canaries/podinfo/status",
            json!({
                "apiVersion": "sluice.dev/v1beta1",
                "kind": "Canary",
                "metadata": { "name": "podinfo", "namespace": "test", "resourceVersion": "4711" },
                "status": {
                    "phase": "Progressing",
                    "failedChecks": 1,
                    "canaryWeight": 10,
                    "iterations": 0,
                    "lastAppliedSpec": "5d8b9f7c6a",
                    "lastTransitionTime": "2026-11-25T09:00:00Z"
                }
            }),
        )
        .answer(StatusCode::OK, answer),
    ]);
    cluster
        .update_canary_status(&canary, &status)
        .await
        .expect("status written");
    finish(cluster, verifier).await;
}

#[tokio::test]
async fn a_conflicting_status_write_is_a_retryable_error() {
    let canary = canary();
    let (cluster, server) = cluster();
    let verifier = server.run(vec![Step {
        query: vec![("fieldManager", "sluice"), ("force", "true")],
        ..Step::new(
            Method::PATCH,
            "/apis/sluice.dev/v1beta1/namespaces/test/canaries/podinfo/status",
        )
    }
    .answer(
        StatusCode::CONFLICT,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Operation cannot be fulfilled on canaries.sluice.dev \"podinfo\": the object has been modified; please apply your changes to the latest version and try again",
            "reason": "Conflict",
            "details": { "name": "podinfo", "group": "sluice.dev", "kind": "canaries" },
            "code": 409
        }),
    )]);
    let err = cluster
        .update_canary_status(&canary, &progressing_status())
        .await
        .expect_err("409 is an error");
    assert!(err.is_conflict(), "{err:#}");
    assert!(kube_cluster::is_retryable(&err), "{err:#}");
    let sluice_rollout::cluster::ClusterError::Conflict { action, source } = &err else {
        panic!("a Conflict: {err:?}");
    };
    assert_eq!(action, "writing the status of Canary test/podinfo");
    assert!(
        source
            .as_ref()
            .is_some_and(|s| s.to_string().contains("has been modified")),
        "the API server's answer is kept: {err:?}"
    );
    let text = sluice_rollout::cluster::chain(&err);
    assert!(
        text.contains("Canary test/podinfo") && text.contains("409"),
        "{text}"
    );
    finish(cluster, verifier).await;
}

/// Checks an events.k8s.io/v1 Event the Recorder created: everything but
/// its generated name and time, which are checked for shape.
fn assert_event(body: &Value, event_type: &str, note: &str) {
    let name = body["metadata"]["name"].as_str().expect("event name");
    assert!(name.starts_with("podinfo."), "{name}");
    assert!(body["eventTime"].as_str().is_some(), "{body}");
    let action = body["action"].as_str().expect("action");
    assert!(
        action.starts_with("Analysis-") && action.len() <= 128,
        "{action}"
    );
    let mut stable = body.clone();
    let map = stable.as_object_mut().expect("object");
    for k in ["eventTime", "action"] {
        map.remove(k);
    }
    map["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("name");
    assert_eq!(
        stable,
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": { "namespace": "test" },
            "regarding": {
                "apiVersion": "sluice.dev/v1beta1",
                "kind": "Canary",
                "name": "podinfo",
                "namespace": "test",
                "uid": UID
            },
            "reason": "Synced",
            "note": note,
            "type": event_type,
            "reportingController": "sluice",
            "reportingInstance": "sluice-test"
        })
    );
}

#[tokio::test]
async fn events_are_published_with_the_guides_wording() {
    let canary = canary();
    let events_path = "/apis/events.k8s.io/v1/namespaces/test/events";
    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        Step::new(Method::POST, events_path),
        Step::new(Method::POST, events_path),
        Step::new(Method::POST, events_path),
        Step::new(Method::POST, events_path),
    ]);
    let revision = Event::normal("New revision detected podinfo.test");
    let waiting = Event::warning(
        "Waiting for podinfo.test rollout to finish: 0 of 1 updated replicas are available",
    );
    let advance_5 = Event::normal("Advance podinfo.test canary weight 5");
    let advance_10 = Event::normal("Advance podinfo.test canary weight 10");
    for e in [&revision, &waiting, &advance_5, &advance_10] {
        cluster.publish_event(&canary, e).await.expect("published");
    }
    let bodies = finish(cluster, verifier).await;
    assert_event(&bodies[0], "Normal", "New revision detected podinfo.test");
    assert_event(
        &bodies[1],
        "Warning",
        "Waiting for podinfo.test rollout to finish: 0 of 1 updated replicas are available",
    );
    // Same reason and type, another message: a new event, not a repeat.
    assert_event(&bodies[2], "Normal", "Advance podinfo.test canary weight 5");
    assert_event(
        &bodies[3],
        "Normal",
        "Advance podinfo.test canary weight 10",
    );
    assert_ne!(bodies[2]["action"], bodies[3]["action"]);
}

#[tokio::test]
async fn a_repeated_event_becomes_a_series() {
    let canary = canary();
    // The first event's name is generated, so the PATCH's path is known
    // only once the POST has arrived: this server is written out by hand.
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let cluster = KubeCluster::new(Client::new(service, "default")).with_reporter(Reporter {
        controller: "sluice".into(),
        instance: Some("sluice-test".into()),
    });
    let server = tokio::spawn(async move {
        let mut handle = pin!(handle);
        let (request, send) = handle.next_request().await.expect("POST");
        assert_eq!(request.method(), Method::POST);
        let body: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body"))
                .expect("json");
        let name = body["metadata"]["name"].as_str().expect("name").to_string();
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&body).expect("json"),
        )));
        let (request, send) = handle.next_request().await.expect("PATCH");
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(
            request.uri().path(),
            format!("/apis/events.k8s.io/v1/namespaces/test/events/{name}")
        );
        let patch: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.expect("body"))
                .expect("json");
        assert_eq!(patch["series"]["count"], 2, "{patch}");
        assert_eq!(patch["note"], body["note"]);
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&patch).expect("json"),
        )));
        assert!(handle.next_request().await.is_none(), "no third request");
    });
    let halt = Event::normal("Halt podinfo.test advancement error rate 69.17% > 1%");
    cluster.publish_event(&canary, &halt).await.expect("first");
    cluster.publish_event(&canary, &halt).await.expect("repeat");
    drop(cluster);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server finished")
        .expect("requests as expected");
}

#[tokio::test]
async fn long_event_messages_are_cut_to_the_api_limit() {
    let canary = canary();
    let (cluster, server) = cluster();
    let verifier = server.run(vec![Step::new(
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/test/events",
    )]);
    let long = format!(
        "invalid Canary spec: {}",
        "spec.analysis.stepWeight: x; ".repeat(80)
    );
    cluster
        .publish_event(&canary, &Event::warning(long.clone()))
        .await
        .expect("published");
    let bodies = finish(cluster, verifier).await;
    let note = bodies[0]["note"].as_str().expect("note");
    assert!(note.len() <= 1024, "{}", note.len());
    assert!(note.ends_with('…'));
    assert!(long.starts_with(note.trim_end_matches('…')));
}

#[tokio::test]
async fn failed_applies_name_the_object() {
    let canary = canary();
    let route = router::render(&canary, &router::safe_plan());
    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        route_absent(),
        Step {
            query: vec![("fieldManager", "sluice"), ("force", "true")],
            ..Step::new(
                Method::PATCH,
                "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            )
        }
        .answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
                    "message": "HTTPRoute.gateway.networking.k8s.io \"podinfo\" is invalid: spec.rules[0].backendRefs[0].weight: Invalid value: 1000" }),
        ),
        route_absent(),
        Step {
            query: vec![("fieldManager", "sluice"), ("force", "true")],
            ..Step::new(
                Method::PATCH,
                "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            )
        }
        .answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "ServiceUnavailable", "code": 503,
                    "message": "the server is currently unable to handle the request" }),
        ),
    ]);
    let err = cluster
        .apply_http_route(&route)
        .await
        .expect_err("422 is an error");
    let text = sluice_rollout::cluster::chain(&err);
    assert!(text.contains("applying HTTPRoute test/podinfo"), "{text}");
    assert!(text.contains("is invalid"), "{text}");
    assert!(!kube_cluster::is_retryable(&err));
    let err = cluster
        .apply_http_route(&route)
        .await
        .expect_err("503 is an error");
    assert!(kube_cluster::is_retryable(&err), "{err:#}");
    assert!(!err.is_conflict(), "{err:#}");
    finish(cluster, verifier).await;
}

/// The route read before a route write: not there yet.
fn route_absent() -> Step {
    Step::get(
        "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
        StatusCode::NOT_FOUND,
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "httproutes.gateway.networking.k8s.io \"podinfo\" not found" }),
    )
}

#[tokio::test]
async fn a_route_write_carries_the_resource_version_read_just_before_it() {
    // A route write that times out may still land later; with the version
    // it was based on, the API server refuses it (409) once a newer write
    // has landed, so it can never move traffic back.
    let canary = canary();
    let route = router::render(&canary, &router::safe_plan());
    let mut stored = serde_json::to_value(&route).unwrap();
    stored["metadata"]["resourceVersion"] = json!("4711");
    let (cluster, server) = cluster();
    let verifier = server.run(vec![
        Step::get(
            "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            StatusCode::OK,
            stored,
        ),
        Step {
            query: vec![("fieldManager", "sluice"), ("force", "true")],
            ..Step::new(
                Method::PATCH,
                "/apis/gateway.networking.k8s.io/v1/namespaces/test/httproutes/podinfo",
            )
        },
    ]);
    cluster.apply_http_route(&route).await.expect("applied");
    let bodies = finish(cluster, verifier).await;
    let applied = bodies
        .iter()
        .find(|b| b["kind"] == "HTTPRoute")
        .expect("the apply's body");
    assert_eq!(
        applied["metadata"]["resourceVersion"],
        json!("4711"),
        "{applied:#}"
    );
}

#[test]
fn rbac_rules_cover_what_the_cluster_writes() {
    let granted = |group: &str, resource: &str, verb: &str| {
        kube_cluster::RBAC_RULES
            .iter()
            .any(|r| r.api_group == group && r.resource == resource && r.verbs.contains(&verb))
    };
    let mut missing = BTreeMap::new();
    // Every object KubeCluster applies needs create (first apply) and patch.
    for (group, resource) in [
        ("apps", "deployments"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("", "services"),
        ("", "configmaps"),
        ("", "secrets"),
        ("gateway.networking.k8s.io", "httproutes"),
    ] {
        for verb in ["create", "patch"] {
            if !granted(group, resource, verb) {
                missing.insert(format!("{group}/{resource}"), verb);
            }
        }
    }
    for (group, resource, verb) in [
        ("apps", "deployments", "get"),
        ("autoscaling", "horizontalpodautoscalers", "get"),
        ("gateway.networking.k8s.io", "httproutes", "get"),
        ("", "configmaps", "get"),
        ("", "secrets", "get"),
        ("sluice.dev", "metrictemplates", "get"),
        ("sluice.dev", "canaries/status", "patch"),
        ("sluice.dev", "canaries/finalizers", "update"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    ] {
        if !granted(group, resource, verb) {
            missing.insert(format!("{group}/{resource}"), verb);
        }
    }
    assert!(missing.is_empty(), "RBAC_RULES lacks {missing:?}");
}
