//! Real kube-rs clients against the double, over HTTP on loopback.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource};
use kube_leader_election::{LeaseLock, LeaseLockParams, LeaseLockResult};
use serde_json::{Value, json};
use sluice_kube_double::{ApiServer, Fault, FaultKind};

const TIMEOUT: Duration = Duration::from_secs(10);
const CRDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds");
const EXAMPLE_CANARY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/podinfo-canary.yaml"
);

async fn server() -> (ApiServer, Client) {
    let server = ApiServer::start().await.unwrap();
    let client = server.client().unwrap();
    (server, client)
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "data": data.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<String, Value>>(),
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "podinfo:1" }] }
            }
        }
    }))
    .unwrap()
}

fn api_code(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone(), status.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_create_get_list_replace_delete() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "ns1");
    let created = api
        .create(&PostParams::default(), &config_map("a", &[("k", "1")]))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("ns1"));
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    api.create(&PostParams::default(), &config_map("b", &[]))
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "ns2")
        .create(&PostParams::default(), &config_map("c", &[]))
        .await
        .unwrap();

    let (code, reason, _) = api_code(
        api.create(&PostParams::default(), &config_map("a", &[]))
            .await,
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["k"], "1");
    let (code, reason, message) = api_code(api.get("missing").await);
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert!(message.contains("\"missing\""), "{message}");
    assert!(api.get_opt("missing").await.unwrap().is_none());

    let names = |l: kube::api::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    assert_eq!(
        names(api.list(&ListParams::default()).await.unwrap()),
        ["a", "b"]
    );
    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        names(all.list(&ListParams::default()).await.unwrap()),
        ["a", "b", "c"]
    );
    let by_label = api
        .list(&ListParams::default().labels("app=b"))
        .await
        .unwrap();
    assert_eq!(names(by_label), ["b"]);
    let by_field = all
        .list(&ListParams::default().fields("metadata.namespace=ns2"))
        .await
        .unwrap();
    assert_eq!(names(by_field), ["c"]);
    let list = api.list(&ListParams::default()).await.unwrap();
    assert!(list.metadata.resource_version.is_some());

    let mut changed = got.clone();
    changed.data = Some([("k".to_string(), "2".to_string())].into());
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(replaced.data.unwrap()["k"], "2");
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&api.get("a").await.unwrap()) > rv(&got));

    let mut generated = config_map("", &[]);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let generated = api
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = generated.metadata.name.unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
    let (code, _, _) = api_code(api.delete("a", &DeleteParams::default()).await);
    assert_eq!(code, 404);
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_conflicts() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let original = api
        .create(&PostParams::default(), &config_map("a", &[("k", "1")]))
        .await
        .unwrap();
    let mut first = original.clone();
    first.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("a", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut second = original.clone();
    second.data = Some([("k".to_string(), "3".to_string())].into());
    let (code, reason, message) = api_code(api.replace("a", &PostParams::default(), &second).await);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );
    assert_eq!(api.get("a").await.unwrap().data.unwrap()["k"], "2");
}

#[tokio::test]
async fn a_metadata_only_get_answers_partial_object_metadata() {
    let (_server, client) = server().await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    let created = api
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    let meta = api.get_metadata("web").await.unwrap();
    let types = meta.types.expect("apiVersion and kind");
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    );
    assert_eq!(meta.metadata.name.as_deref(), Some("web"));
    assert_eq!(
        meta.metadata.resource_version,
        created.metadata.resource_version
    );
    // A write, a status one included, gives a new version.
    let status = json!({"status": {"replicas": 2, "availableReplicas": 2}});
    api.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let after = api.get_metadata("web").await.unwrap();
    assert_ne!(
        after.metadata.resource_version,
        created.metadata.resource_version
    );
    assert!(api.get_metadata_opt("absent").await.unwrap().is_none());
}

#[tokio::test]
async fn merge_and_json_patches() {
    let (_server, client) = server().await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &deployment("d", 1))
        .await
        .unwrap();
    let patched = api
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "replicas": 3 }, "metadata": { "labels": { "x": "y" } } }),
            ),
        )
        .await
        .unwrap();
    let spec = patched.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(
        spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("podinfo:1")
    );
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "a spec change bumps generation"
    );
    // null deletes (RFC 7386).
    let unlabelled = api
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "x": null, "z": "1" } } })),
        )
        .await
        .unwrap();
    assert_eq!(
        unlabelled.metadata.labels.unwrap(),
        [("z".to_string(), "1".to_string())].into()
    );
    api.patch(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "labels": { "x": "y", "z": null } } })),
    )
    .await
    .unwrap();

    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/metadata/labels/x", "value": "y" },
        { "op": "add", "path": "/metadata/annotations", "value": { "a": "b" } },
        { "op": "remove", "path": "/metadata/labels/x" }
    ]))
    .unwrap();
    let patched = api
        .patch("d", &PatchParams::default(), &Patch::<()>::Json(json_patch))
        .await
        .unwrap();
    assert_eq!(patched.metadata.annotations.unwrap()["a"], "b");
    assert!(patched.metadata.labels.unwrap_or_default().is_empty());
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "metadata changes keep generation"
    );

    let failing: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/spec/replicas", "value": 99 }
    ]))
    .unwrap();
    let (code, _, _) = api_code(
        api.patch("d", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await,
    );
    assert_eq!(code, 422);
    let (code, _, _) = api_code(
        api.patch("missing", &PatchParams::default(), &Patch::Merge(json!({})))
            .await,
    );
    assert_eq!(code, 404);
}

#[tokio::test]
async fn server_side_apply_create_update_conflict_force() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let apply = |data: Value| json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cm" }, "data": data });
    // Create.
    let created = api
        .patch(
            "cm",
            &PatchParams::apply("alpha"),
            &Patch::Apply(apply(json!({ "a": "1", "b": "1" }))),
        )
        .await
        .unwrap();
    assert_eq!(created.data.as_ref().unwrap().len(), 2);
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, [("alpha".to_string(), "Apply".to_string())]);

    // Update: alpha stops applying b, which no one else owns: removed.
    let updated = api
        .patch(
            "cm",
            &PatchParams::apply("alpha"),
            &Patch::Apply(apply(json!({ "a": "2" }))),
        )
        .await
        .unwrap();
    assert_eq!(
        updated.data.unwrap(),
        [("a".to_string(), "2".to_string())].into()
    );

    // Another manager setting alpha's field to another value: conflict.
    let (code, reason, message) = api_code(
        api.patch(
            "cm",
            &PatchParams::apply("beta"),
            &Patch::Apply(apply(json!({ "a": "3" }))),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("\"alpha\"") && message.contains(".data.a"),
        "{message}"
    );
    // The same value is shared, not a conflict.
    api.patch(
        "cm",
        &PatchParams::apply("beta"),
        &Patch::Apply(apply(json!({ "a": "2", "c": "1" }))),
    )
    .await
    .unwrap();
    // Force takes it over.
    let forced = api
        .patch(
            "cm",
            &PatchParams::apply("beta").force(),
            &Patch::Apply(apply(json!({ "a": "3", "c": "1" }))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["a"], "3");

    // A stale resourceVersion in the applied object is a precondition.
    let mut stale = apply(json!({ "a": "3" }));
    stale["metadata"]["resourceVersion"] = json!(created.metadata.resource_version.unwrap());
    let (code, _, _) = api_code(
        api.patch("cm", &PatchParams::apply("beta"), &Patch::Apply(stale))
            .await,
    );
    assert_eq!(code, 409);
}

#[tokio::test]
async fn status_subresource_is_isolated() {
    let (_server, client) = server().await;
    let api: Api<Deployment> = Api::default_namespaced(client);
    let mut with_status = deployment("d", 1);
    with_status.status = Some(serde_json::from_value(json!({ "readyReplicas": 5 })).unwrap());
    let created = api
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(created.status.is_none(), "status is not written on create");

    let status = api
        .patch_status(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "readyReplicas": 1 }, "spec": { "replicas": 7 } })),
        )
        .await
        .unwrap();
    assert_eq!(status.status.unwrap().ready_replicas, Some(1));
    assert_eq!(
        status.spec.unwrap().replicas,
        Some(1),
        "a status write leaves spec"
    );
    assert_eq!(status.metadata.generation, Some(1));

    let mut main = api.get("d").await.unwrap();
    main.status = Some(serde_json::from_value(json!({ "readyReplicas": 9 })).unwrap());
    main.spec.as_mut().unwrap().replicas = Some(2);
    let replaced = api
        .replace("d", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(
        replaced.status.unwrap().ready_replicas,
        Some(1),
        "main writes keep status"
    );
    assert_eq!(replaced.spec.unwrap().replicas, Some(2));

    // Apply to /status.
    let applied = api
        .patch_status(
            "d",
            &PatchParams::apply("ctl").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "d" },
                "status": { "replicas": 2, "readyReplicas": 2 }
            })),
        )
        .await
        .unwrap();
    assert_eq!(applied.status.unwrap().ready_replicas, Some(2));
}

#[tokio::test]
async fn finalizers_delay_deletion() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("f", &[]))
        .await
        .unwrap();
    // kube's finalizer helper: adds the finalizer (JSON patch testing
    // /metadata/finalizers for null), then cleans up on deletion.
    let cleanups = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let run = |obj: ConfigMap| {
        let api = api.clone();
        let cleanups = Arc::clone(&cleanups);
        async move {
            finalizer(&api, "test/fin", Arc::new(obj), |event| async move {
                if let FinalizerEvent::Cleanup(_) = event {
                    cleanups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                Ok::<_, std::convert::Infallible>(kube::runtime::controller::Action::await_change())
            })
            .await
        }
    };
    run(api.get("f").await.unwrap()).await.unwrap();
    assert_eq!(
        api.get("f").await.unwrap().metadata.finalizers.unwrap(),
        ["test/fin"]
    );

    api.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = api.get("f").await.expect("kept while it has finalizers");
    assert!(marked.metadata.deletion_timestamp.is_some());
    // Deleting again changes nothing.
    api.delete("f", &DeleteParams::default()).await.unwrap();

    run(marked).await.unwrap();
    assert_eq!(cleanups.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(
        api.get_opt("f").await.unwrap().is_none(),
        "gone once the finalizers are"
    );
}

#[tokio::test]
async fn owner_references_are_garbage_collected() {
    let (server, client) = server().await;
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let maps: Api<ConfigMap> = Api::default_namespaced(client);
    let owner = deployments
        .create(&PostParams::default(), &deployment("owner", 1))
        .await
        .unwrap();
    let reference = owner.controller_owner_ref(&()).unwrap();
    for name in ["dep1", "dep2"] {
        let mut cm = config_map(name, &[]);
        cm.metadata.owner_references = Some(vec![reference.clone()]);
        maps.create(&PostParams::default(), &cm).await.unwrap();
    }
    maps.create(&PostParams::default(), &config_map("unrelated", &[]))
        .await
        .unwrap();
    deployments
        .delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    server
        .wait_for::<ConfigMap>("default", "dep1", |c| c.is_none(), TIMEOUT)
        .await
        .unwrap();
    assert!(maps.get_opt("dep2").await.unwrap().is_none());
    assert!(maps.get_opt("unrelated").await.unwrap().is_some());

    // Orphan: the dependent stays, unlinked.
    let owner = deployments
        .create(&PostParams::default(), &deployment("owner2", 1))
        .await
        .unwrap();
    let mut cm = config_map("orphan", &[]);
    cm.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    maps.create(&PostParams::default(), &cm).await.unwrap();
    deployments
        .delete("owner2", &DeleteParams::orphan())
        .await
        .unwrap();
    let orphan = maps.get("orphan").await.unwrap();
    assert!(
        orphan
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

/// The next watcher event that is not a bookmark-driven no-op.
async fn next_event(
    stream: &mut (
             impl futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin
         ),
) -> Result<watcher::Event<ConfigMap>, watcher::Error> {
    tokio::time::timeout(TIMEOUT, stream.next())
        .await
        .expect("a watcher event in time")
        .expect("the watcher stream goes on")
}

fn describe(event: &watcher::Event<ConfigMap>) -> String {
    let name = |c: &ConfigMap| c.metadata.name.clone().unwrap_or_default();
    let data = |c: &ConfigMap| {
        c.data
            .as_ref()
            .and_then(|d| d.get("k").cloned())
            .unwrap_or_default()
    };
    match event {
        watcher::Event::Apply(c) => format!("apply {} {}", name(c), data(c)),
        watcher::Event::Delete(c) => format!("delete {}", name(c)),
        watcher::Event::Init => "init".into(),
        watcher::Event::InitApply(c) => format!("init-apply {}", name(c)),
        watcher::Event::InitDone => "init-done".into(),
    }
}

#[tokio::test]
async fn watcher_sees_changes_and_recovers_from_closed_watches_and_410() {
    // Bookmarks would tell the watcher the latest version: none here.
    let server = ApiServer::builder()
        .bookmark_interval(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    let client = server.client().unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.create(&PostParams::default(), &config_map("before", &[]))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next_event(&mut stream).await.unwrap()));
    }
    assert_eq!(seen, ["init", "init-apply before", "init-done"]);

    api.create(&PostParams::default(), &config_map("w", &[("k", "1")]))
        .await
        .unwrap();
    assert_eq!(
        describe(&next_event(&mut stream).await.unwrap()),
        "apply w 1"
    );
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "2" } })),
    )
    .await
    .unwrap();
    assert_eq!(
        describe(&next_event(&mut stream).await.unwrap()),
        "apply w 2"
    );
    api.delete("w", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        describe(&next_event(&mut stream).await.unwrap()),
        "delete w"
    );

    // Closed watches: the watcher watches again from where it was, and
    // misses nothing written meanwhile.
    server.close_watches();
    api.create(&PostParams::default(), &config_map("after-close", &[]))
        .await
        .unwrap();
    assert_eq!(
        describe(&next_event(&mut stream).await.unwrap()),
        "apply after-close "
    );

    // Compacted history: the re-watch gets 410 and the watcher relists.
    server.clear_requests();
    api.create(&PostParams::default(), &config_map("lost", &[]))
        .await
        .unwrap();
    assert_eq!(
        describe(&next_event(&mut stream).await.unwrap()),
        "apply lost "
    );
    // A change the watcher does not see (another namespace), then a
    // compaction: the watcher's version is now older than the history.
    Api::<ConfigMap>::namespaced(api.clone().into_client(), "elsewhere")
        .create(&PostParams::default(), &config_map("unseen", &[]))
        .await
        .unwrap();
    server.compact();
    server.close_watches();
    let mut after = Vec::new();
    loop {
        match next_event(&mut stream).await {
            Ok(event) => {
                let d = describe(&event);
                let done = d == "init-done";
                after.push(d);
                if done {
                    break;
                }
            }
            Err(e) => after.push(format!("error {e}")),
        }
    }
    assert!(
        after
            .iter()
            .any(|e| e.starts_with("error") && e.contains("too old resource version")),
        "{after:?}"
    );
    assert!(after.contains(&"init".to_string()), "{after:?}");
    assert!(after.contains(&"init-apply lost".to_string()), "{after:?}");
    let relisted = server.requests().iter().any(|r| {
        r.method == "GET" && r.uri.contains("/configmaps") && !r.uri.contains("watch=true")
    });
    assert!(relisted, "the watcher listed again");
}

#[tokio::test]
async fn watch_from_an_old_version_gets_a_410_error_event() {
    let (server, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &config_map(name, &[]))
            .await
            .unwrap();
    }
    server.compact();
    // Version 1 is older than the history (which starts after 2).
    let mut events = api
        .watch(&kube::api::WatchParams::default().timeout(5), "1")
        .await
        .unwrap()
        .boxed();
    match events.try_next().await {
        Ok(Some(kube::api::WatchEvent::Error(status))) => assert_eq!(status.code, 410),
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410),
        other => panic!("expected a 410, got {other:?}"),
    }
}

fn canary_resource() -> ApiResource {
    ApiResource {
        group: "sluice.dev".into(),
        version: "v1beta1".into(),
        api_version: "sluice.dev/v1beta1".into(),
        kind: "Canary".into(),
        plural: "canaries".into(),
    }
}

fn example_canary() -> DynamicObject {
    let text = std::fs::read_to_string(EXAMPLE_CANARY).unwrap();
    let mut canary: DynamicObject = yaml_serde::from_str(&text).unwrap();
    canary.metadata.namespace = None;
    canary
}

#[tokio::test]
async fn crd_validation_refuses_a_bad_canary_naming_the_field() {
    let server = ApiServer::with_crds(CRDS).await.unwrap();
    let client = server.client().unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client, "test", &canary_resource());

    let mut bad = example_canary();
    bad.data["spec"]["analysis"]["iterations"] = json!(0);
    let (code, reason, message) = api_code(api.create(&PostParams::default(), &bad).await);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(message.contains("spec.analysis.iterations"), "{message}");
    assert!(
        message.contains("Canary.sluice.dev \"podinfo\" is invalid"),
        "{message}"
    );

    let mut wrong_type = example_canary();
    wrong_type.data["spec"]["progressDeadlineSeconds"] = json!("soon");
    let (code, _, message) = api_code(api.create(&PostParams::default(), &wrong_type).await);
    assert_eq!(code, 422);
    assert!(
        message.contains("spec.progressDeadlineSeconds"),
        "{message}"
    );

    // The example is valid; unknown fields are pruned.
    let mut good = example_canary();
    good.data["spec"]["notAField"] = json!(true);
    let created = api.create(&PostParams::default(), &good).await.unwrap();
    assert!(created.data["spec"].get("notAField").is_none());
    assert_eq!(created.data["spec"]["targetRef"]["name"], "podinfo");

    // Validation applies to patches too, and to the status subresource.
    let (code, _, message) = api_code(
        api.patch(
            "podinfo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "analysis": { "iterations": -1 } } })),
        )
        .await,
    );
    assert_eq!(code, 422, "{message}");
    let (code, _, message) = api_code(
        api.patch_status(
            "podinfo",
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(json!({
                "apiVersion": "sluice.dev/v1beta1", "kind": "Canary",
                "metadata": { "name": "podinfo" },
                "status": { "phase": "Dancing" }
            })),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(message.contains("status.phase"), "{message}");
    let ok = api
        .patch_status(
            "podinfo",
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(json!({
                "apiVersion": "sluice.dev/v1beta1", "kind": "Canary",
                "metadata": { "name": "podinfo" },
                "status": { "phase": "Progressing" }
            })),
        )
        .await
        .unwrap();
    assert_eq!(ok.data["status"]["phase"], "Progressing");
    assert_eq!(ok.data["spec"]["analysis"]["iterations"], Value::Null);

    // RolloutPlugins are cluster-scoped.
    let plugins = ApiResource {
        kind: "RolloutPlugin".into(),
        plural: "rolloutplugins".into(),
        ..canary_resource()
    };
    let all: Api<DynamicObject> = Api::all_with(server.client().unwrap(), &plugins);
    assert!(
        all.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn lease_lock_acquires_and_only_one_of_two_racing_holds_it() {
    let (_server, client) = server().await;
    let lock = |holder: &str| {
        LeaseLock::new(
            client.clone(),
            "sluice-system",
            LeaseLockParams {
                lease_name: "leader".into(),
                holder_id: holder.into(),
                lease_ttl: Duration::from_secs(30),
            },
        )
    };
    let (a, b) = (lock("a"), lock("b"));
    let (ra, rb) = tokio::join!(a.try_acquire_or_renew(), b.try_acquire_or_renew());
    let acquired = |r: &Result<LeaseLockResult, kube_leader_election::Error>| {
        matches!(r, Ok(LeaseLockResult::Acquired(_)))
    };
    assert!(
        acquired(&ra) != acquired(&rb),
        "exactly one acquires: {ra:?} / {rb:?}"
    );
    let (winner, loser) = if acquired(&ra) { (&a, &b) } else { (&b, &a) };
    assert!(matches!(
        winner.try_acquire_or_renew().await,
        Ok(LeaseLockResult::Acquired(_))
    ));
    assert!(matches!(
        loser.try_acquire_or_renew().await,
        Ok(LeaseLockResult::NotAcquired(_))
    ));

    let leases: Api<Lease> = Api::namespaced(client.clone(), "sluice-system");
    let lease = leases.get("leader").await.unwrap();
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    assert!(holder == "a" || holder == "b");

    // Stepping down lets the other take it.
    winner.step_down().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        loser.try_acquire_or_renew().await,
        Ok(LeaseLockResult::Acquired(_))
    ));
}

#[tokio::test]
async fn recorder_publishes_events() {
    let (_server, client) = server().await;
    let maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm = maps
        .create(&PostParams::default(), &config_map("subject", &[]))
        .await
        .unwrap();
    let reference: ObjectReference = cm.object_ref(&());
    let recorder = Recorder::new(client.clone(), Reporter::from("sluice"));
    let event = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("hello".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let events: Api<K8sEvent> = Api::default_namespaced(client);
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        list.items.len(),
        1,
        "the repeat is a series of the same event"
    );
    let e = &list.items[0];
    assert_eq!(e.note.as_deref(), Some("hello"));
    assert_eq!(
        e.regarding.as_ref().unwrap().name.as_deref(),
        Some("subject")
    );
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
}

#[tokio::test]
async fn faults_request_log_direct_access_and_wait_for() {
    let (server, client) = server().await;
    let api: Api<Deployment> = Api::default_namespaced(client.clone());
    server.inject(Fault::conflict("deployments").named("d"));
    let (code, reason, _) = api_code(
        api.create(&PostParams::default(), &deployment("d", 1))
            .await,
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    api.create(&PostParams::default(), &deployment("d", 1))
        .await
        .unwrap();

    server.inject(Fault::internal("deployments").on_status().times(2));
    for _ in 0..2 {
        let (code, _, _) = api_code(
            api.patch_status(
                "d",
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": {} })),
            )
            .await,
        );
        assert_eq!(code, 500);
    }
    // Main-resource writes were not affected; the fault is used up.
    api.patch(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "replicas": 2 } })),
    )
    .await
    .unwrap();
    api.patch_status(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": {} })),
    )
    .await
    .unwrap();

    let log = server.requests();
    let patch = log
        .iter()
        .find(|r| r.method == "PATCH" && !r.uri.contains("/status"))
        .unwrap();
    assert_eq!(patch.uri, "/apis/apps/v1/namespaces/default/deployments/d?");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert!(patch.body.contains("\"replicas\":2"), "{}", patch.body);
    server.clear_requests();
    assert!(server.requests().is_empty());

    // Play the Deployment controller: make it ready, as envtest users do.
    let waiter = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut d: Deployment = api.get("d").await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            d.status =
                Some(serde_json::from_value(json!({ "readyReplicas": 2, "replicas": 2 })).unwrap());
            d
        })
    };
    let ready = waiter.await.unwrap();
    server.put(&ready).unwrap();
    let seen = server
        .wait_for::<Deployment>(
            "default",
            "d",
            |d| d.and_then(|d| d.status.as_ref()?.ready_replicas) == Some(2),
            TIMEOUT,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.spec.unwrap().replicas, Some(2));
    // Clients see it too.
    assert_eq!(
        api.get("d").await.unwrap().status.unwrap().ready_replicas,
        Some(2)
    );
    assert!(server.get::<Deployment>("default", "d").unwrap().is_some());
    server.delete::<Deployment>("default", "d").unwrap();
    assert!(api.get_opt("d").await.unwrap().is_none());
    let timeout = server
        .wait_for::<Deployment>("default", "d", |d| d.is_some(), Duration::from_millis(100))
        .await;
    assert!(timeout.is_err());
}

#[tokio::test]
async fn kubeconfig_and_discovery() {
    let server = ApiServer::with_crds(CRDS).await.unwrap();
    let path = std::env::temp_dir().join(format!("kube-double-{}.yaml", server.addr().port()));
    server.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.minor, "33");
    Api::<ConfigMap>::default_namespaced(client.clone())
        .create(&PostParams::default(), &config_map("via-kubeconfig", &[]))
        .await
        .unwrap();

    let discovery = kube::discovery::Discovery::new(client).run().await.unwrap();
    let (canaries, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(r, _)| r.kind == "Canary")
        .expect("Canary discovered");
    assert_eq!(canaries.plural, "canaries");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(discovery.has_group("apps"));
}

/// The operator's pattern: a `Controller` over Canaries with kube's
/// finalizer helper and status written by server-side apply with the
/// `resourceVersion` it read as a precondition.
#[tokio::test]
async fn controller_with_finalizer_and_status_apply() {
    use kube::runtime::controller::{Action, Controller};

    let server = ApiServer::with_crds(CRDS).await.unwrap();
    let client = server.client().unwrap();
    let resource = canary_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "test", &resource);
    api.create(&PostParams::default(), &example_canary())
        .await
        .unwrap();

    let reconcile = |canary: Arc<DynamicObject>, api: Arc<Api<DynamicObject>>| async move {
        finalizer(&api, "sluice.dev/finalizer", canary, |event| async {
            if let FinalizerEvent::Apply(canary) = event {
                let status = json!({
                    "apiVersion": "sluice.dev/v1beta1", "kind": "Canary",
                    "metadata": {
                        "name": canary.metadata.name,
                        "resourceVersion": canary.metadata.resource_version,
                    },
                    "status": { "phase": "Initialized" }
                });
                api.patch_status(
                    canary.metadata.name.as_deref().unwrap_or_default(),
                    &PatchParams::apply("sluice").force(),
                    &Patch::Apply(status),
                )
                .await?;
            }
            Ok::<_, kube::Error>(Action::await_change())
        })
        .await
    };
    let controller = Controller::new_with(api.clone(), watcher::Config::default(), resource)
        .run(
            reconcile,
            |_, _, _| Action::requeue(Duration::from_millis(50)),
            Arc::new(api.clone()),
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    let canaries = server
        .resource("sluice.dev", "v1beta1", "canaries")
        .unwrap();
    let wait = |predicate: fn(Option<&Value>) -> bool| {
        server.wait_for_json(&canaries, "test", "podinfo", predicate, TIMEOUT)
    };
    let reconciled = wait(|o| {
        o.is_some_and(|o| {
            o.pointer("/status/phase") == Some(&json!("Initialized"))
                && o.pointer("/metadata/finalizers/0") == Some(&json!("sluice.dev/finalizer"))
        })
    })
    .await
    .unwrap()
    .unwrap();

    // A status apply from a stale read loses the race: 409.
    let stale = json!({
        "apiVersion": "sluice.dev/v1beta1", "kind": "Canary",
        "metadata": { "name": "podinfo", "resourceVersion": "1" },
        "status": { "phase": "Failed" }
    });
    let (code, _, _) = api_code(
        api.patch_status(
            "podinfo",
            &PatchParams::apply("sluice").force(),
            &Patch::Apply(stale),
        )
        .await,
    );
    assert_eq!(code, 409);
    assert_eq!(
        reconciled.pointer("/metadata/generation"),
        Some(&json!(1)),
        "finalizer and status writes keep the generation"
    );

    // Deletion: the controller cleans up and removes its finalizer.
    api.delete("podinfo", &DeleteParams::default())
        .await
        .unwrap();
    wait(|o| o.is_none()).await.unwrap();
    handle.abort();
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let (first, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    api.list(&ListParams::default()).await.unwrap();
    first.shutdown().await;
    assert!(api.list(&ListParams::default()).await.is_err());

    let (second, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let mut watch = watcher(api.clone(), watcher::Config::default()).boxed();
    assert!(matches!(
        next_event(&mut watch).await,
        Ok(watcher::Event::Init)
    ));
    drop(second);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(api.list(&ListParams::default()).await.is_err());
}

#[tokio::test]
async fn raw_watch_event_types_and_selectors() {
    let (_server, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let start = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = kube::api::WatchParams::default().labels("app=w").timeout(5);
    let mut events = api.watch(&params, &start).await.unwrap().boxed();
    api.create(&PostParams::default(), &config_map("w", &[]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("other", &[]))
        .await
        .unwrap();
    let patch = |labels: Value| Patch::Merge(json!({ "metadata": { "labels": labels } }));
    api.patch(
        "w",
        &PatchParams::default(),
        &patch(json!({ "extra": "1" })),
    )
    .await
    .unwrap();
    // Leaving the selection is a DELETED, entering it an ADDED.
    api.patch("w", &PatchParams::default(), &patch(json!({ "app": "x" })))
        .await
        .unwrap();
    api.patch("w", &PatchParams::default(), &patch(json!({ "app": "w" })))
        .await
        .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let event = tokio::time::timeout(TIMEOUT, events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(match event {
            kube::api::WatchEvent::Added(c) => format!("ADDED {}", c.metadata.name.unwrap()),
            kube::api::WatchEvent::Modified(c) => format!("MODIFIED {}", c.metadata.name.unwrap()),
            kube::api::WatchEvent::Deleted(c) => format!("DELETED {}", c.metadata.name.unwrap()),
            kube::api::WatchEvent::Bookmark(_) => continue,
            kube::api::WatchEvent::Error(e) => panic!("{e:?}"),
        });
    }
    assert_eq!(
        seen,
        ["ADDED w", "MODIFIED w", "DELETED w", "ADDED w", "DELETED w"]
    );
}

#[tokio::test]
async fn an_unavailable_resource_answers_503_to_reads_and_writes() {
    use kube::api::ListParams;
    let server = ApiServer::with_crds(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds"))
        .await
        .unwrap();
    // kube-rs retries 503 for minutes by default: see the answer itself.
    let mut config = server.config().unwrap();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::all(client.clone());
    assert!(cms.list(&ListParams::default().limit(1)).await.is_ok());
    server.inject(Fault::unavailable("configmaps").times(usize::MAX));
    let err = cms.list(&ListParams::default().limit(1)).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 503),
        "{err:?}"
    );
    server.clear_faults();
    assert!(cms.list(&ListParams::default().limit(1)).await.is_ok());
}

#[tokio::test]
async fn a_delayed_write_outlives_a_client_that_gave_up_and_still_lands() {
    let (server, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("c", &[("k", "1")]))
        .await
        .unwrap();
    server.inject(Fault::delayed("configmaps", Duration::from_secs(2)).named("c"));
    // Reads are never held.
    assert!(api.get("c").await.is_ok());
    // A client whose timeout (200 ms) is shorter than the hold gives up...
    let patch = Patch::Merge(json!({ "data": { "k": "2" } }));
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        api.patch("c", &PatchParams::default(), &patch),
    )
    .await;
    assert!(gave_up.is_err(), "the answer is held: {gave_up:?}");
    assert_eq!(
        api.get("c").await.unwrap().data.unwrap()["k"],
        "1",
        "not written while held"
    );
    // ...and the write still lands once the hold is over.
    let landed = server
        .wait_for::<ConfigMap>(
            "default",
            "c",
            |cm| {
                cm.and_then(|c| c.data.as_ref())
                    .is_some_and(|d| d["k"] == "2")
            },
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(landed.is_some());
    // The fault counted down: the next write is served at once, and a
    // patient client gets the answer of a held one.
    server.inject(Fault::delayed("configmaps", Duration::from_millis(300)));
    let held = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "k": "3" } })),
        )
        .await
        .unwrap();
    assert_eq!(held.data.unwrap()["k"], "3");
    let at_once = tokio::time::timeout(
        TIMEOUT,
        api.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "k": "4" } })),
        ),
    )
    .await
    .expect("not held")
    .unwrap();
    assert_eq!(at_once.data.unwrap()["k"], "4");
    let patches = server
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.uri.contains("/configmaps/c"))
        .count();
    assert_eq!(patches, 3, "each write is served once");
    let met: Vec<_> = server.faults_met().into_iter().map(|m| m.kind).collect();
    assert_eq!(
        met,
        [
            FaultKind::Delay(Duration::from_secs(2)),
            FaultKind::Delay(Duration::from_millis(300))
        ],
        "both holds are recorded"
    );
}

#[tokio::test]
async fn a_held_write_lands_only_when_the_test_releases_it() {
    let (server, client) = server().await;
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    api.create(&PostParams::default(), &config_map("c", &[("k", "1")]))
        .await
        .unwrap();
    server.inject(Fault::held("configmaps"));
    let patch = Patch::Merge(json!({ "data": { "k": "2" } }));
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        api.patch("c", &PatchParams::default(), &patch),
    )
    .await;
    assert!(gave_up.is_err(), "held: {gave_up:?}");
    assert_eq!(server.held_requests(), 1);
    // A later write overtakes it.
    api.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "k": "3" } })),
    )
    .await
    .unwrap();
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["k"], "3");
    server.release_held();
    let landed = server
        .wait_for::<ConfigMap>(
            "default",
            "c",
            |cm| {
                cm.and_then(|c| c.data.as_ref())
                    .is_some_and(|d| d["k"] == "2")
            },
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(landed.is_some(), "the held write lands once released");
    assert_eq!(server.held_requests(), 0);
}
