//! What the analysis modules' unit tests share.

use sluice_api::Canary;

/// A stored Canary `test/podinfo` (uid "u1", no `resourceVersion`).
pub(crate) fn canary() -> Canary {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "threshold": 5, "maxWeight": 50, "stepWeight": 10}
        }
    }))
    .expect("a Canary")
}
