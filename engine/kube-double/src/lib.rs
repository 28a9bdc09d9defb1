//! A Kubernetes API server double on loopback, for testing the operator
//! through kube-rs' real HTTP path (client, watcher, controller, server-side
//! apply, status subresource, finalizers, events, leases) without a
//! cluster.
//!
//! ```no_run
//! # async fn example() -> Result<(), sluice_kube_double::Error> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use sluice_kube_double::{ApiServer, Fault};
//!
//! let server = ApiServer::builder()
//!     .crds(concat!(env!("CARGO_MANIFEST_DIR"), "/../../crds"))
//!     .start()
//!     .await?;
//! let client = server.client()?; // plain HTTP, namespace "default"
//! let api: kube::Api<ConfigMap> = kube::Api::default_namespaced(client);
//! // … run the code under test; make the next status write conflict:
//! server.inject(Fault::conflict("canaries").on_status());
//! // Play a controller: write a Deployment's status directly.
//! // server.put(&deployment_with_status)?;
//! let cm = server
//!     .wait_for::<ConfigMap>("default", "x", |cm| cm.is_some(), std::time::Duration::from_secs(5))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Each module says what real API-server behaviour it models and what it
//! simplifies: [`store`] (versions, generation, status subresource,
//! finalizers, garbage collection), [`watch`], [`apply`] and [`fields`]
//! (server-side apply), [`patch`], [`schema`] (CRD pruning, defaulting,
//! validation), [`select`], [`discovery`], [`routes`] (URLs and verbs),
//! [`faults`] (test controls).

pub mod apply;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod fields;
pub mod patch;
pub mod resource;
pub mod routes;
pub mod schema;
pub mod select;
pub mod store;
pub mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

pub use error::{ApiError, Error};
pub use faults::{Fault, FaultKind, FaultMet, Injected, RecordedRequest};
pub use resource::ResourceType;
pub use store::DeleteOptions;

use faults::{Faults, lock};
use store::State;

/// The namespace of the client [`ApiServer::client`] builds.
pub const DEFAULT_NAMESPACE: &str = "default";

/// State shared by the HTTP handlers and the test's handle.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) faults: Faults,
    /// Bumped to end every open watch.
    pub(crate) closer: tokio::sync::watch::Sender<u64>,
    pub(crate) bookmark_interval: Duration,
}

/// Configures an [`ApiServer`] before it starts.
#[derive(Debug, Clone)]
pub struct Builder {
    crd_dirs: Vec<PathBuf>,
    history_limit: usize,
    bookmark_interval: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            crd_dirs: Vec::new(),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

impl Builder {
    /// Loads the CRDs of every YAML file in `dir`: their kinds are served
    /// and their objects validated on write.
    pub fn crds(mut self, dir: impl Into<PathBuf>) -> Self {
        self.crd_dirs.push(dir.into());
        self
    }

    /// How many changes watches can resume from (default 10 000); a watch
    /// from an older version gets 410 Gone.
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit.max(1);
        self
    }

    /// How often watches that allow bookmarks get one (default 5 s).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Binds 127.0.0.1 on a free port and serves.
    pub async fn start(self) -> Result<ApiServer, Error> {
        let (events, _) = broadcast::channel(4096);
        let mut state = State::new(self.history_limit, events);
        for dir in &self.crd_dirs {
            let types = state.schemas.load_dir(dir)?;
            state.add_types(types);
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            faults: Faults::default(),
            closer: tokio::sync::watch::channel(0).0,
            bookmark_interval: self.bookmark_interval,
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = routes::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "kube-double stopped");
            }
        });
        Ok(ApiServer {
            shared,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// The running double. Stops when dropped or on [`ApiServer::shutdown`].
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// A double with the built-in kinds only.
    pub async fn start() -> Result<Self, Error> {
        Builder::default().start().await
    }

    /// A double that also serves (and validates) the CRDs in `dir`.
    pub async fn with_crds(dir: impl AsRef<Path>) -> Result<Self, Error> {
        Builder::default().crds(dir.as_ref()).start().await
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The kube-rs configuration for this server: plain HTTP, no
    /// credentials, namespace "default".
    pub fn config(&self) -> Result<kube::Config, Error> {
        let url = self
            .url()
            .parse()
            .map_err(|e| Error::Client(format!("{e}")))?;
        let mut config = kube::Config::new(url);
        config.default_namespace = DEFAULT_NAMESPACE.into();
        Ok(config)
    }

    /// A kube-rs client for this server.
    pub fn client(&self) -> Result<kube::Client, Error> {
        kube::Client::try_from(self.config()?).map_err(|e| Error::Client(e.to_string()))
    }

    /// Writes a kubeconfig pointing at this server (namespace "default"),
    /// for a separate process run with `KUBECONFIG=path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: kube-double\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: kube-double\n  user: {{}}\n\
             contexts:\n\
             - name: kube-double\n  context:\n    cluster: kube-double\n    user: kube-double\n    namespace: {ns}\n\
             current-context: kube-double\n",
            url = self.url(),
            ns = DEFAULT_NAMESPACE,
        );
        std::fs::write(path, text).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })
    }

    // ---- faults and inspection ----

    /// Arms a fault: the next matching writes fail or are held.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.arm(fault);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Every request an armed fault met (failed or held), oldest first.
    pub fn faults_met(&self) -> Vec<FaultMet> {
        self.shared.faults.met()
    }

    /// Lets every request held now ([`Fault::held`], [`Fault::delayed`])
    /// be served at once.
    pub fn release_held(&self) {
        self.shared.faults.release();
    }

    /// How many held requests have not been served yet.
    pub fn held_requests(&self) -> usize {
        self.shared.faults.holding()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.faults.requests()
    }

    pub fn clear_requests(&self) {
        self.shared.faults.clear_requests();
    }

    /// Ends every open watch; clients must watch again.
    pub fn close_watches(&self) {
        self.shared.closer.send_modify(|n| *n += 1);
    }

    /// Forgets the watch history: a watch from any version before now gets
    /// 410 Gone, and kube's watcher relists.
    pub fn compact(&self) {
        lock(&self.shared.state).compact();
    }

    /// The latest `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.state).resource_version()
    }

    // ---- direct object access (no HTTP) ----

    /// The resource type of `K` (a built-in or CRD kind; any other is
    /// served generically, namespaced).
    pub fn resource_type<K: Resource<DynamicType = ()>>(&self) -> ResourceType {
        lock(&self.shared.state).registry.resolve(
            &K::group(&()),
            &K::version(&()),
            &K::plural(&()),
            true,
        )
    }

    /// The stored object, as JSON.
    pub fn get_json(&self, resource: &ResourceType, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.shared.state)
            .get(resource, namespace, name)
            .cloned()
    }

    /// The stored object, typed; `None` if it does not exist.
    pub fn get<K>(&self, namespace: &str, name: &str) -> Result<Option<K>, Error>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        self.get_json(&self.resource_type::<K>(), namespace, name)
            .map(serde_json::from_value)
            .transpose()
            .map_err(Error::from)
    }

    /// Creates or replaces an object as given, `status` included (as a
    /// controller or kubelet would write it), without validation; bumps
    /// the `resourceVersion` and notifies watches. A missing namespace is
    /// "default".
    pub fn put_json(&self, object: Value) -> Result<Value, Error> {
        Ok(lock(&self.shared.state).put(object)?)
    }

    /// [`Self::put_json`], typed.
    pub fn put<K>(&self, object: &K) -> Result<K, Error>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let mut value = serde_json::to_value(object)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), K::kind(&()).into());
        }
        Ok(serde_json::from_value(self.put_json(value)?)?)
    }

    /// Deletes as a client would (finalizers and garbage collection
    /// apply), bypassing HTTP. `Ok(None)` if there was no such object.
    pub fn delete_json(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Option<Value>, Error> {
        match lock(&self.shared.state).delete(resource, namespace, name, options) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Self::delete_json`] for the kind `K`, background propagation.
    pub fn delete<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, Error> {
        self.delete_json(
            &self.resource_type::<K>(),
            namespace,
            name,
            &DeleteOptions::default(),
        )
    }

    /// The resource type served at `group`/`version`/`plural` (built-in or
    /// from a CRD), if known.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        lock(&self.shared.state)
            .registry
            .get(group, version, plural)
            .cloned()
    }

    /// Waits until `predicate` holds for the object (`None`: it does not
    /// exist), checking now and after every change; returns the object as
    /// it was then.
    pub async fn wait_for<K>(
        &self,
        namespace: &str,
        name: &str,
        predicate: impl Fn(Option<&K>) -> bool,
        timeout: Duration,
    ) -> Result<Option<K>, Error>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let resource = self.resource_type::<K>();
        let typed = |v: Option<&Value>| -> Option<K> {
            v.and_then(|v| serde_json::from_value(v.clone()).ok())
        };
        let found = self
            .wait_for_json(
                &resource,
                namespace,
                name,
                |v| predicate(typed(v).as_ref()),
                timeout,
            )
            .await?;
        found
            .map(serde_json::from_value)
            .transpose()
            .map_err(Error::from)
    }

    /// [`Self::wait_for`] on the JSON object.
    pub async fn wait_for_json(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
        predicate: impl Fn(Option<&Value>) -> bool,
        timeout: Duration,
    ) -> Result<Option<Value>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = lock(&self.shared.state).subscribe();
        loop {
            let object = self.get_json(resource, namespace, name);
            if predicate(object.as_ref()) {
                return Ok(object);
            }
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Err(_) => {
                    return Err(Error::Timeout(
                        timeout,
                        format!("{} {namespace}/{name}", resource.kind),
                    ));
                }
                // A change, a lag or a closed channel: look again.
                Ok(Ok(_) | Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep_until(deadline).await;
                }
            }
        }
    }

    /// Stops serving: ends every watch and waits (up to 5 s) for the
    /// server to finish.
    pub async fn shutdown(mut self) {
        self.close_watches();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.close_watches();
        // The server task finishes by itself: it stops accepting, and its
        // connections close once idle (the watches were just ended).
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
