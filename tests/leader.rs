//! Leader election against a fake Lease API that behaves like the API
//! server for one Lease (get, create, merge patch): of two replicas only one
//! leads; when the leader stops renewing, the other takes over after the
//! lease runs out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use sluice_operator::leader::{self, Election};
use tokio::sync::watch;
use tower_test::mock;

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/sluice-system/leases/sluice-leader";

/// Merges `patch` into `target` (JSON merge patch, RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A client whose requests are answered from the shared `lease`.
fn client(lease: Arc<Mutex<Option<Value>>>) -> Client {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (method, path) = (request.method().clone(), request.uri().path().to_string());
            let body = request.into_body().collect_bytes().await.unwrap();
            let mut stored = lease.lock().unwrap();
            let (status, answer) = match method {
                Method::GET if path == PATH => match stored.as_ref() {
                    Some(l) => (StatusCode::OK, l.clone()),
                    None => (
                        StatusCode::NOT_FOUND,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404, "message": "not found"}),
                    ),
                },
                Method::POST => {
                    let mut created: Value = serde_json::from_slice(&body).unwrap();
                    created["metadata"]["namespace"] = json!("sluice-system");
                    *stored = Some(created.clone());
                    (StatusCode::CREATED, created)
                }
                Method::PATCH if path == PATH => {
                    let patch: Value = serde_json::from_slice(&body).unwrap();
                    let current = stored.get_or_insert_with(|| json!({}));
                    merge(current, &patch);
                    (StatusCode::OK, current.clone())
                }
                _ => (StatusCode::METHOD_NOT_ALLOWED, json!({})),
            };
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap();
            send.send_response(response);
        }
    });
    Client::new(service, "default")
}

fn replica(lease: &Arc<Mutex<Option<Value>>>, id: &str) -> watch::Receiver<bool> {
    leader::spawn(
        client(Arc::clone(lease)),
        Election {
            namespace: "sluice-system".into(),
            lease_name: "sluice-leader".into(),
            holder_id: id.into(),
            lease_ttl: Duration::from_secs(3),
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn only_one_replica_leads_and_the_other_takes_over_when_it_stops() {
    let lease = Arc::new(Mutex::new(None));
    let mut a = replica(&lease, "sluice-a");
    leader::acquired(&mut a).await.unwrap();
    let b = replica(&lease, "sluice-b");

    // While a renews, b never leads.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(*a.borrow(), "a keeps the lease");
        assert!(!*b.borrow(), "b must not lead while a does");
    }
    assert_eq!(
        lease.lock().unwrap().as_ref().unwrap()["spec"]["holderIdentity"],
        "sluice-a"
    );

    // a stops (its receiver goes, its task stops renewing): b takes over
    // once the lease has run out, and not before.
    drop(a);
    let mut b = b;
    tokio::time::timeout(Duration::from_secs(10), leader::acquired(&mut b))
        .await
        .expect("b takes over")
        .unwrap();
    let held = lease.lock().unwrap().clone().unwrap();
    assert_eq!(held["spec"]["holderIdentity"], "sluice-b");
    assert_eq!(held["spec"]["leaseTransitions"], 1);
}
