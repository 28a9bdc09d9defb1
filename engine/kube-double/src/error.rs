//! Errors: [`ApiError`] is what the double answers over HTTP (a
//! `meta/v1` `Status`, which kube-rs turns into `kube::Error::Api`);
//! [`Error`] is what the Rust API of the crate returns.

use serde_json::{Value, json};

/// A failed request, as the API server reports it: an HTTP code and a
/// `Status` object with a machine-readable `reason`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`,
    /// `MethodNotAllowed`, `UnsupportedMediaType`, `Expired`,
    /// `InternalError`.
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (name, group, kind, causes), if any.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// `canaries.sluice.dev "x" not found`.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
            .with_details(json!({ "name": name, "kind": short_kind(resource) }))
    }

    /// A URL naming no known resource.
    pub fn no_such_resource() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        )
        .with_details(json!({ "name": name, "kind": short_kind(resource) }))
    }

    /// The optimistic-concurrency failure of a write with a stale
    /// `resourceVersion`, worded as the API server words it.
    pub fn conflict(resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
        .with_details(json!({ "name": name, "kind": short_kind(resource) }))
    }

    /// A server-side apply conflict: `field` is owned by `manager` with
    /// another value.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let lines: Vec<String> = conflicts
            .iter()
            .map(|(manager, field)| format!("conflict with \"{manager}\": .{field}"))
            .collect();
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": format!(".{field}"),
                })
            })
            .collect();
        let message = if lines.len() == 1 {
            format!("Apply failed with 1 conflict: {}", lines[0])
        } else {
            format!(
                "Apply failed with {} conflicts: {}",
                lines.len(),
                lines.join("\n")
            )
        };
        Self::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
    }

    /// 422: the object is invalid; `field` names the offending field.
    pub fn invalid(kind_group: &str, name: &str, field: &str, detail: &str) -> Self {
        Self::new(
            422,
            "Invalid",
            format!("{kind_group} \"{name}\" is invalid: {field}: {detail}"),
        )
        .with_details(json!({
            "name": name,
            "kind": kind_group.split('.').next().unwrap_or(kind_group),
            "causes": [{ "reason": "FieldValueInvalid", "message": detail, "field": field }],
        }))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }

    /// 410, for a watch from a `resourceVersion` older than the history.
    pub fn gone(rv: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {rv}"))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let (Some(details), Some(map)) = (&self.details, status.as_object_mut()) {
            map.insert("details".into(), details.clone());
        }
        status
    }
}

/// "deployments.apps" → "deployments".
fn short_kind(resource: &str) -> &str {
    resource.split('.').next().unwrap_or(resource)
}

/// Errors of the crate's Rust API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the API server double: {0}")]
    Bind(#[source] std::io::Error),
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing CRD file {path}: {message}")]
    Crd { path: String, message: String },
    #[error("building the kube client: {0}")]
    Client(String),
    #[error("(de)serializing an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, String),
}
