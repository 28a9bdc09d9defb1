//! Watches (`?watch=true`): a streaming response of newline-delimited JSON
//! events, `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":…}`.
//!
//! Models the API server's watch cache:
//!
//! - from `resourceVersion=N`: every change after N, then live changes;
//! - without a `resourceVersion` (or "0"): a synthetic ADDED for each
//!   current object, then live changes;
//! - from a `resourceVersion` older than the history (bounded, or
//!   compacted by the test): one ERROR event carrying a 410 Expired Status,
//!   and the end of the stream, so that clients relist;
//! - selectors apply to the object before and after a change: an object
//!   entering the selection is ADDED, one leaving it is DELETED;
//! - `allowWatchBookmarks=true`: a BOOKMARK with the latest version every
//!   bookmark interval; `sendInitialEvents=true`: the ADDED events of the
//!   current objects end with a BOOKMARK annotated
//!   `k8s.io/initial-events-end` (the streaming list);
//! - the stream ends at `timeoutSeconds`, when the test closes all watches,
//!   or when the watch falls too far behind.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::Shared;
use crate::error::ApiError;
use crate::faults::lock;
use crate::resource::ResourceType;
use crate::select::Selector;
use crate::store::{Change, EventType, State};

/// What a watch asked for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub resource: ResourceType,
    /// `None`: all namespaces (or a cluster-scoped resource).
    pub namespace: Option<String>,
    /// `None`: from the current state (no version, or "0").
    pub from: Option<u64>,
    pub labels: Selector,
    pub fields: Selector,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Duration,
}

impl WatchRequest {
    fn selects(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// The event this watch sees for `change`, if any.
    fn event_for(&self, change: &Change) -> Option<(&'static str, Value)> {
        if change.group != self.resource.group || change.plural != self.resource.plural {
            return None;
        }
        if let Some(ns) = &self.namespace
            && self.resource.namespaced
            && *ns != change.namespace
        {
            return None;
        }
        let now = self.selects(&change.object);
        let before = change.old.as_ref().is_some_and(|o| self.selects(o));
        let event = match change.event {
            EventType::Added if now => EventType::Added,
            EventType::Modified if now && before => EventType::Modified,
            EventType::Modified if now => EventType::Added,
            EventType::Modified if before => EventType::Deleted,
            EventType::Deleted if now || before => EventType::Deleted,
            _ => return None,
        };
        Some((event.as_str(), change.object.clone()))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut metadata = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            metadata["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        json!({
            "type": "BOOKMARK",
            "object": {
                "kind": self.resource.kind,
                "apiVersion": self.resource.api_version(),
                "metadata": metadata,
            }
        })
    }
}

fn line(event: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(event).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Where a watch starts: its first events, then the changes to follow
/// (`None`: the stream ends after the first events).
struct Opening {
    initial: Vec<Value>,
    changes: Option<broadcast::Receiver<Arc<Change>>>,
    start_rv: u64,
}

/// Starts a watch; the body streams its events.
pub(crate) fn start(shared: &Arc<Shared>, request: WatchRequest) -> Body {
    let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
    let opening = open(&lock(&shared.state), &request);
    let closed = shared.closer.subscribe();
    let bookmark_every = shared.bookmark_interval;
    tokio::spawn(async move {
        for event in &opening.initial {
            if tx.send(line(event)).await.is_err() {
                return;
            }
        }
        let Some(changes) = opening.changes else {
            return;
        };
        follow(
            &tx,
            &request,
            changes,
            closed,
            bookmark_every,
            opening.start_rv,
        )
        .await;
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::io::Error>(bytes), rx))
    });
    Body::from_stream(stream)
}

/// The opening of a watch on the current `state`.
fn open(state: &State, request: &WatchRequest) -> Opening {
    let start_rv = state.resource_version();
    match request.from {
        Some(from) => match state.changes_since(from) {
            Some(changes) => Opening {
                initial: changes
                    .iter()
                    .filter_map(|c| {
                        request
                            .event_for(c)
                            .map(|(t, o)| json!({ "type": t, "object": o }))
                    })
                    .collect(),
                changes: Some(state.subscribe()),
                start_rv,
            },
            None => {
                let gone = ApiError::gone(from).to_status();
                Opening {
                    initial: vec![json!({ "type": "ERROR", "object": gone })],
                    changes: None,
                    start_rv,
                }
            }
        },
        None => Opening {
            initial: current_objects(state, request, start_rv),
            changes: Some(state.subscribe()),
            start_rv,
        },
    }
}

/// A synthetic ADDED for each current object, then the initial-events-end
/// bookmark when asked for.
fn current_objects(state: &State, request: &WatchRequest, start_rv: u64) -> Vec<Value> {
    let objects = state.list(
        &request.resource,
        request.namespace.as_deref(),
        &request.labels,
        &request.fields,
    );
    let mut initial: Vec<Value> = objects
        .into_iter()
        .map(|o| json!({ "type": "ADDED", "object": o }))
        .collect();
    if request.send_initial_events {
        initial.push(request.bookmark(start_rv, true));
    }
    initial
}

/// Sends the watch's events for live `changes`, and bookmarks, until the
/// timeout, the test closes all watches, the watch falls behind or the
/// client goes.
async fn follow(
    tx: &mpsc::Sender<Vec<u8>>,
    request: &WatchRequest,
    mut changes: broadcast::Receiver<Arc<Change>>,
    mut closed: tokio::sync::watch::Receiver<u64>,
    bookmark_every: Duration,
    start_rv: u64,
) {
    let deadline = tokio::time::sleep(request.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(bookmark_every);
    ticker.reset();
    let mut last_rv = start_rv;
    loop {
        let event = tokio::select! {
            _ = &mut deadline => return,
            _ = closed.changed() => return,
            _ = ticker.tick(), if request.bookmarks => request.bookmark(last_rv, false),
            received = changes.recv() => match received {
                Ok(change) => {
                    last_rv = change.rv;
                    match request.event_for(&change) {
                        Some((t, o)) => json!({ "type": t, "object": o }),
                        None => continue,
                    }
                }
                // Fell behind, or the server stops: end the watch; the
                // client watches again from its last version.
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(line(&event)).await.is_err() {
            return;
        }
    }
}
