//! Sluice's playground, all on loopback: a real Envoy serving the
//! HTTPRoutes Sluice writes ([`envoy`]), two podinfo-like backends that
//! can be told to fail or slow down ([`backend`]), a real Prometheus
//! scraping Envoy's statistics ([`prometheus`]), a steady load generator
//! ([`load`]), a webhook receiver that behaves like Flagger's load tester
//! ([`loadtester`]), and the engine driving a Canary in real time on the
//! in-memory cluster ([`rollout`]). The integration tests and `sluice
//! demo` use it; nothing in the operator depends on it.

pub mod backend;
pub mod envoy;
pub mod examples;
pub mod load;
pub mod loadtester;
pub mod prometheus;
pub mod rollout;
pub mod tools;

use std::time::Duration;

pub use backend::Backend;
pub use envoy::{Envoy, EnvoyError, Services};
pub use load::{Load, LoadSpec, Request, Tally};
pub use loadtester::LoadTester;
pub use prometheus::{Prometheus, PrometheusProcessError};
pub use rollout::{Rollout, TickReport, Traffic};
pub use tools::{MissingTool, Tools};

/// The namespace of the playground's Services (the guide's).
pub const NAMESPACE: &str = "test";
/// Their Service port (podinfo's).
pub const PORT: i32 = 9898;
/// The primary's Service, and the name its backend answers with.
pub const PRIMARY: &str = "podinfo-primary";
/// The canary's Service, and the name its backend answers with.
pub const CANARY: &str = "podinfo-canary";
/// The host name the guide's Canaries route.
pub const HOST: &str = "www.example.com";

/// Why the playground did not start or a rollout step failed.
#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error(transparent)]
    MissingTool(#[from] MissingTool),
    #[error(transparent)]
    Envoy(#[from] EnvoyError),
    #[error(transparent)]
    Prometheus(#[from] PrometheusProcessError),
    #[error("starting a loopback server: {0}")]
    Server(#[from] std::io::Error),
    #[error("the Canary: {0}")]
    Canary(String),
    #[error("the in-memory cluster: {0}")]
    Cluster(String),
    #[error("the metrics provider: {0}")]
    Metrics(String),
    #[error("the webhook client: {0}")]
    Webhooks(String),
    #[error("a tick failed: {0}")]
    Tick(String),
}

/// The Services of the two backends, as Envoy's clusters.
pub fn services(primary: &Backend, canary: &Backend) -> Services {
    Services::new(NAMESPACE, PORT)
        .with(PRIMARY, primary.port())
        .with(CANARY, canary.port())
}

/// Everything running: backends, Envoy, Prometheus scraping Envoy, and the
/// load tester. Dropping it stops every process and server.
pub struct Playground {
    pub primary: Backend,
    pub canary: Backend,
    pub envoy: Envoy,
    pub prometheus: Prometheus,
    pub loadtester: LoadTester,
}

impl Playground {
    /// Starts the backends (the primary at version 6.0.0, the canary at
    /// 6.0.1), Envoy, Prometheus (once it has scraped Envoy) and the load
    /// tester.
    pub async fn start(tools: &Tools) -> Result<Playground, PlaygroundError> {
        let primary = Backend::start(PRIMARY, "6.0.0").await?;
        let canary = Backend::start(CANARY, "6.0.1").await?;
        let envoy = Envoy::start(&tools.envoy, &services(&primary, &canary)).await?;
        let prometheus =
            Prometheus::start(&tools.prometheus, &[envoy.admin_address().to_string()]).await?;
        let loadtester = LoadTester::start(Duration::from_secs(30)).await?;
        Ok(Playground {
            primary,
            canary,
            envoy,
            prometheus,
            loadtester,
        })
    }

    /// A steady load of `rate` requests per second of `GET /` for
    /// [`HOST`] through Envoy.
    pub fn steady_load(&self, rate: f64) -> Result<Load, PlaygroundError> {
        Ok(Load::start(
            &self.envoy.url(""),
            LoadSpec::steady(rate),
            |_| Request::get(HOST, "/"),
        )?)
    }
}
