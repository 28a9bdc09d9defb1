//! The HTTP surface: parses Kubernetes API URLs and dispatches each verb
//! to the store, watch and discovery modules.
//!
//! URL forms: `/api/v1[/namespaces/{ns}]/{plural}[/{name}[/status]]` and
//! `/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/status]]`;
//! a list without a namespace spans all namespaces. Verbs: GET (get, list,
//! watch), POST (create), PUT (replace), PATCH (merge, strategic merge,
//! JSON patch, apply), DELETE (one object, or a collection). A GET of one
//! object whose `Accept` asks for `as=PartialObjectMetadata` (kube's
//! `Api::get_metadata`) gets its metadata alone.
//!
//! Simplified: no subresources but `status` (no `scale`, `log`, `exec`),
//! metadata-only answers for single GETs only (not lists or watches),
//! no `limit`/`continue` paging (a list returns everything), no
//! `resourceVersionMatch` (lists are always served from the latest state),
//! no protobuf, no authentication or authorization; `dryRun` is refused
//! with 400 (never persisted).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::Shared;
use crate::apply::Apply;
use crate::discovery;
use crate::error::ApiError;
use crate::faults::{Injected, RecordedRequest, lock};
use crate::patch::{self, PatchKind};
use crate::resource::ResourceType;
use crate::select::Selector;
use crate::store::{self, DeleteOptions, Write, now};
use crate::watch::{self, WatchRequest};

/// kube-rs' default watch timeout, when a watch names none.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(290);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = receive(&shared, method, &uri, &headers, body);
    match serve(&shared, &request, Faulty::Yes) {
        Ok(response) => response,
        Err(Stop::Error(error)) => error_response(&request, &error),
        Err(Stop::Hold(hold)) => serve_held(shared, request, hold).await,
    }
}

/// Records the request for the test, and parses it.
fn receive(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Request {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let content_type = text(header::CONTENT_TYPE);
    let accept = text(header::ACCEPT);
    shared.faults.record(RecordedRequest {
        method: method.to_string(),
        uri: uri
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_default(),
        content_type: content_type.clone(),
        accept: accept.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    Request {
        method,
        path: uri.path().to_string(),
        query: parse_query(uri.query().unwrap_or_default()),
        content_type: content_type.unwrap_or_default(),
        metadata_only: accept.as_deref().is_some_and(asks_for_metadata_only),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body,
    }
}

/// Serves a request an armed fault holds, once the fault lets it go.
async fn serve_held(shared: Arc<Shared>, request: Request, hold: Injected) -> Response {
    // Served by a task of its own: a client that gives up waiting
    // does not cancel it, so the write still lands.
    let task = tokio::spawn(async move {
        hold.wait().await;
        let response = match serve(&shared, &request, Faulty::No) {
            Ok(response) => response,
            Err(Stop::Error(error)) => error_response(&request, &error),
            Err(Stop::Hold(_)) => error_response(
                &request,
                &ApiError::internal("a held request was held again"),
            ),
        };
        shared.faults.served();
        response
    });
    task.await.unwrap_or_else(|e| {
        json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &ApiError::internal(format!("serving a held request: {e}")).to_status(),
        )
    })
}

fn error_response(request: &Request, error: &ApiError) -> Response {
    tracing::debug!(%error, method = %request.method, path = %request.path, "kube-double error");
    json_response(
        StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &error.to_status(),
    )
}

/// Why a request was not served at once.
enum Stop {
    Error(ApiError),
    /// An armed fault holds it first.
    Hold(Injected),
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Self {
        Self::Error(error)
    }
}

/// Whether armed faults apply (not to a held request served later).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faulty {
    Yes,
    No,
}

struct Request {
    method: Method,
    path: String,
    query: HashMap<String, String>,
    content_type: String,
    /// Whether the client asked for the object's metadata alone.
    metadata_only: bool,
    user_agent: String,
    body: Bytes,
}

impl Request {
    fn flag(&self, key: &str) -> bool {
        matches!(self.query.get(key).map(String::as_str), Some("true" | "1"))
    }

    /// The `fieldManager`, or the one the API server derives from the
    /// user agent ("kube-rs/4.2" → "kube-rs").
    fn manager(&self) -> String {
        self.query.get("fieldManager").cloned().unwrap_or_else(|| {
            let agent = self.user_agent.split('/').next().unwrap_or_default();
            if agent.is_empty() {
                "unknown".into()
            } else {
                agent.into()
            }
        })
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok(value: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, value))
}

/// A resource URL, parsed.
struct Target {
    resource: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

enum Route {
    Version,
    CoreVersions,
    Groups,
    Resources(String, String),
    Object(Target),
}

fn parse_route(shared: &Shared, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (group, version, rest) = match s.as_slice() {
        ["version"] => return Ok(Route::Version),
        ["api"] => return Ok(Route::CoreVersions),
        ["apis"] => return Ok(Route::Groups),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::no_such_resource()),
    };
    let (namespace, rest) = match rest {
        [] => return Ok(Route::Resources(group.into(), version.into())),
        ["namespaces", ns, plural, tail @ ..]
            if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            (Some(ns.to_string()), {
                let mut r = vec![*plural];
                r.extend_from_slice(tail);
                r
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, status) = match rest.as_slice() {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(name.to_string()), false),
        [plural, name, "status"] => (*plural, Some(name.to_string()), true),
        _ => return Err(ApiError::no_such_resource()),
    };
    let state = lock(&shared.state);
    let resource = state
        .registry
        .resolve(group, version, plural, namespace.is_some());
    drop(state);
    if (resource.namespaced && namespace.is_none() && name.is_some())
        || (!resource.namespaced && namespace.is_some())
        || (status && !resource.status)
    {
        return Err(ApiError::no_such_resource());
    }
    Ok(Route::Object(Target {
        resource,
        namespace,
        name,
        status,
    }))
}

fn serve(shared: &Arc<Shared>, request: &Request, faulty: Faulty) -> Result<Response, Stop> {
    let target = match parse_route(shared, &request.path)? {
        Route::Version => return Ok(json_response(StatusCode::OK, &discovery::version())),
        Route::CoreVersions => {
            return Ok(json_response(StatusCode::OK, &discovery::core_versions()));
        }
        Route::Groups => {
            let groups = discovery::groups(&lock(&shared.state).registry);
            return Ok(json_response(StatusCode::OK, &groups));
        }
        Route::Resources(group, version) => {
            let state = lock(&shared.state);
            return discovery::resources(&state.registry, &group, &version)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(|| ApiError::no_such_resource().into());
        }
        Route::Object(target) => target,
    };
    let is_write = !matches!(request.method, Method::GET | Method::HEAD);
    if is_write && request.query.contains_key("dryRun") {
        // Refused rather than ignored: a dry run must never persist.
        return Err(
            ApiError::bad_request("dryRun is not supported by the API server double").into(),
        );
    }
    let body_name = is_write
        .then(|| request.json_body().ok())
        .flatten()
        .and_then(|b| {
            b.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(String::from)
        });
    let name = target.name.clone().or(body_name);
    let injected = match faulty {
        Faulty::Yes => shared.faults.check(
            &target.resource.plural,
            &target.resource.qualified_plural(),
            name.as_deref(),
            target.status,
            is_write,
        ),
        Faulty::No => None,
    };
    match injected {
        Some(Injected::Fail(error)) => return Err(Stop::Error(error)),
        Some(hold @ Injected::Hold { .. }) => return Err(Stop::Hold(hold)),
        None => {}
    }
    dispatch(shared, request, target).map_err(Stop::Error)
}

/// Serves a request of an object or a collection.
fn dispatch(shared: &Arc<Shared>, request: &Request, target: Target) -> Result<Response, ApiError> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let resource = &target.resource;
    match (&request.method, &target.name) {
        (&Method::GET, Some(name)) => {
            let state = lock(&shared.state);
            let object = state
                .get(resource, &namespace, name)
                .ok_or_else(|| ApiError::not_found(&resource.qualified_plural(), name))?;
            if request.metadata_only {
                return ok(&partial_object_metadata(object));
            }
            ok(object)
        }
        (&Method::GET, None) => list_or_watch(shared, request, target),
        (&Method::POST, None) => create(shared, request, resource, &namespace),
        (&Method::PUT, Some(name)) => update(shared, request, &target, &namespace, name),
        (&Method::PATCH, Some(name)) => patch(shared, request, &target, name),
        (&Method::DELETE, Some(name)) => {
            let options = delete_options(request)?;
            ok(&lock(&shared.state).delete(resource, &namespace, name, &options)?)
        }
        (&Method::DELETE, None) => delete_collection(shared, request, &target),
        _ => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on {}",
            request.method, request.path
        ))),
    }
}

/// Whether an `Accept` header asks for `PartialObjectMetadata` (as kube's
/// `Api::get_metadata` does: `application/json;as=PartialObjectMetadata;
/// g=meta.k8s.io;v=v1`).
fn asks_for_metadata_only(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let mut params = media.split(';').map(str::trim);
        params.next() == Some("application/json") && params.any(|p| p == "as=PartialObjectMetadata")
    })
}

/// The object's metadata alone, as the API server answers a metadata-only
/// GET.
fn partial_object_metadata(object: &Value) -> Value {
    serde_json::json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
    })
}

/// POST: creates the object in the body.
fn create(
    shared: &Shared,
    request: &Request,
    resource: &ResourceType,
    namespace: &str,
) -> Result<Response, ApiError> {
    let body = request.json_body()?;
    let manager = request.manager();
    let write = Write {
        manager: Some(&manager),
        ..Write::default()
    };
    let created = lock(&shared.state).create(resource, namespace, body, write)?;
    Ok(json_response(StatusCode::CREATED, &created))
}

/// PUT: replaces the object (or its status) with the body.
fn update(
    shared: &Shared,
    request: &Request,
    target: &Target,
    namespace: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let body = request.json_body()?;
    let manager = request.manager();
    let write = Write {
        manager: Some(&manager),
        status_only: target.status,
        admin: false,
    };
    ok(&lock(&shared.state).update(&target.resource, namespace, name, body, write)?)
}

/// DELETE of a collection: deletes the selected objects, and answers the
/// list of them.
fn delete_collection(
    shared: &Shared,
    request: &Request,
    target: &Target,
) -> Result<Response, ApiError> {
    let resource = &target.resource;
    let options = delete_options(request)?;
    let labels = Selector::labels(request.query.get("labelSelector").map_or("", |s| s))?;
    let fields = Selector::fields(request.query.get("fieldSelector").map_or("", |s| s))?;
    let mut state = lock(&shared.state);
    let items = state.list(resource, target.namespace.as_deref(), &labels, &fields);
    let mut deleted = Vec::new();
    for item in items {
        let ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Ok(object) = state.delete(resource, &ns, &name, &options) {
            deleted.push(object);
        }
    }
    ok(&state.list_object(resource, deleted))
}

fn list_or_watch(
    shared: &Arc<Shared>,
    request: &Request,
    target: Target,
) -> Result<Response, ApiError> {
    let labels = Selector::labels(request.query.get("labelSelector").map_or("", |s| s))?;
    let fields = Selector::fields(request.query.get("fieldSelector").map_or("", |s| s))?;
    if request.flag("watch") {
        let from =
            match request.query.get("resourceVersion").map(String::as_str) {
                None | Some("" | "0") => None,
                Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?),
            };
        let timeout = request
            .query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
        let body: Body = watch::start(
            shared,
            WatchRequest {
                resource: target.resource,
                namespace: target.namespace,
                from,
                labels,
                fields,
                bookmarks: request.flag("allowWatchBookmarks"),
                send_initial_events: request.flag("sendInitialEvents"),
                timeout,
            },
        );
        return Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::TRANSFER_ENCODING, "chunked"),
            ],
            body,
        )
            .into_response());
    }
    let state = lock(&shared.state);
    let items = state.list(
        &target.resource,
        target.namespace.as_deref(),
        &labels,
        &fields,
    );
    ok(&state.list_object(&target.resource, items))
}

/// PATCH: a merge, strategic merge or JSON patch, or a server-side apply.
fn patch(
    shared: &Arc<Shared>,
    request: &Request,
    target: &Target,
    name: &str,
) -> Result<Response, ApiError> {
    let kind = PatchKind::from_content_type(&request.content_type)?;
    let namespace = target.namespace.clone().unwrap_or_default();
    let manager = request.manager();
    let write = Write {
        manager: Some(&manager),
        status_only: target.status,
        admin: false,
    };
    let mut state = lock(&shared.state);
    let result = match kind {
        PatchKind::Merge | PatchKind::StrategicMerge => {
            let body = request.json_body()?;
            state.patch(
                &target.resource,
                &namespace,
                name,
                |object| {
                    patch::merge(object, &body);
                    Ok(())
                },
                write,
            )?
        }
        PatchKind::Json => {
            let body = request.json_body()?;
            state.patch(
                &target.resource,
                &namespace,
                name,
                |object| patch::json_patch(object, &body),
                write,
            )?
        }
        PatchKind::Apply => apply(&mut state, request, target, &namespace, name)?,
    };
    ok(&result)
}

/// Server-side apply of the body (JSON or YAML), as its `fieldManager`.
fn apply(
    state: &mut store::State,
    request: &Request,
    target: &Target,
    namespace: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let Some(manager) = request.query.get("fieldManager") else {
        return Err(ApiError::bad_request(
            "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
        ));
    };
    let applied: Value = match serde_json::from_slice(&request.body) {
        Ok(v) => v,
        Err(_) => yaml_serde::from_slice(&request.body).map_err(|e| {
            ApiError::bad_request(format!("the applied object is not valid YAML: {e}"))
        })?,
    };
    let now = now();
    let apply = Apply {
        manager,
        force: request.flag("force"),
        status_only: target.status,
        has_status_subresource: target.resource.status,
        now: &now,
    };
    state.apply(&target.resource, namespace, name, &applied, apply)
}

fn delete_options(request: &Request) -> Result<DeleteOptions, ApiError> {
    let body: Value = if request.body.is_empty() {
        Value::Null
    } else {
        request.json_body()?
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(String::from);
    Ok(DeleteOptions {
        propagation: text(body.get("propagationPolicy"))
            .or_else(|| request.query.get("propagationPolicy").cloned()),
        precondition_rv: text(body.pointer("/preconditions/resourceVersion")),
        precondition_uid: text(body.pointer("/preconditions/uid")),
    })
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%3D` → `=`, `+` → space.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        let q = parse_query("labelSelector=app%3Dx%2Ctier%21%3Dweb&watch=true&a=%zz&b=%4");
        assert_eq!(q["labelSelector"], "app=x,tier!=web");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["a"], "%zz");
        assert_eq!(q["b"], "%4");
    }
}
