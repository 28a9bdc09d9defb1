//! Objects the in-memory cluster keeps serialized, as an API server keeps
//! them in etcd: the kinds the engine does not read whole on every tick
//! (Services, which it writes and does not read back, and Deployments,
//! which a tick at rest knows by their `resourceVersion`). A typed
//! `k8s-openapi` object is mostly inline `Option`s of nested structs (a
//! `Service` is 824 bytes before any of its strings, a `Deployment` 2,400
//! and each of its containers 2,120); its JSON is what it holds, a few
//! hundred bytes in one allocation. Reads decode.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cluster::{ClusterError, Result};

/// One object's JSON, shared: a reader takes a reference and decodes
/// outside the cluster's lock.
#[derive(Clone)]
pub(super) struct Encoded(Arc<[u8]>);

impl Encoded {
    /// `object` serialized; `what` names it in the error.
    pub(super) fn new<T: Serialize>(object: &T, what: &str) -> Result<Self> {
        serde_json::to_vec(object)
            .map(|bytes| Self(bytes.into()))
            .map_err(|e| ClusterError::invalid(format!("storing {what}"), e.to_string()))
    }

    /// The object again; `what` names it in the error.
    pub(super) fn decode<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.0)
            .map_err(|e| ClusterError::invalid(format!("reading {what}"), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;

    #[test]
    fn a_service_decodes_to_what_was_stored_in_a_fraction_of_its_typed_size() {
        let service: Service = serde_json::from_str(
            r#"{"metadata":{"name":"podinfo","namespace":"test","labels":{"app":"podinfo"}},
                "spec":{"type":"ClusterIP","selector":{"app":"podinfo-primary"},
                        "ports":[{"name":"http","port":9898,"targetPort":9898,"protocol":"TCP"}]}}"#,
        )
        .expect("service");
        let stored = Encoded::new(&service, "service test/podinfo").expect("encode");
        assert!(stored.0.len() < std::mem::size_of::<Service>() / 2);
        let back: Service = stored.decode("service test/podinfo").expect("decode");
        assert_eq!(back, service);
    }

    #[test]
    fn bytes_of_another_kind_are_an_error_naming_the_object() {
        let stored = Encoded::new(&"not a service", "service test/x").expect("encode");
        let err = stored
            .decode::<Service>("service test/x")
            .expect_err("a string is no Service");
        assert!(err.to_string().contains("reading service test/x"), "{err}");
    }
}
