//! Fetches a plugin component from where a RolloutPlugin says it is: a
//! ConfigMap's `binaryData`, an HTTP(S) URL, or an OCI artifact.

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client as OciClient, Reference};

use crate::cluster::Cluster;
use sluice_api::rollout_plugin::PluginSource;

/// The largest component Sluice accepts.
pub const MAX_PLUGIN_BYTES: usize = 32 * 1024 * 1024;
/// Default key of a ConfigMap source.
pub const DEFAULT_KEY: &str = "plugin.wasm";

/// Media types of Wasm layers in OCI artifacts (the CNCF Wasm OCI artifact
/// layout, wasm-to-oci, and plain `application/wasm`).
pub const WASM_MEDIA_TYPES: [&str; 3] = [
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// Fetches components over HTTP(S) and from OCI registries.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    oci: OciClient,
}

impl Fetcher {
    /// `insecure_registries` are registries (host:port) reached over plain
    /// HTTP, e.g. a registry inside the cluster.
    pub fn new(
        timeout: Duration,
        insecure_registries: Vec<String>,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::http_client::client(timeout, false)?;
        let oci = OciClient::new(ClientConfig {
            protocol: if insecure_registries.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(insecure_registries)
            },
            ..Default::default()
        });
        Ok(Self { http, oci })
    }

    /// The component's bytes; `Err` says what is wrong, naming the field.
    pub async fn fetch<C: Cluster>(
        &self,
        cluster: &C,
        source: &PluginSource,
    ) -> Result<Vec<u8>, String> {
        let set = [
            source.config_map.is_some(),
            source.url.is_some(),
            source.oci.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            return Err(format!(
                "spec.source: set exactly one of configMap, url and oci (got {set})"
            ));
        }
        let bytes = if let Some(cm) = &source.config_map {
            let key = cm.key.as_deref().unwrap_or(DEFAULT_KEY);
            let map = cluster
                .config_map(&cm.namespace, &cm.name)
                .await
                .map_err(|e| format!("reading ConfigMap {}/{}: {e:#}", cm.namespace, cm.name))?
                .ok_or_else(|| {
                    format!(
                        "spec.source.configMap: ConfigMap {}/{} not found",
                        cm.namespace, cm.name
                    )
                })?;
            map.binary_data
                .and_then(|d| d.get(key).map(|b| b.0.clone()))
                .ok_or_else(|| {
                    format!(
                        "spec.source.configMap: ConfigMap {}/{} has no binaryData key {key:?} (create it with kubectl create configmap {} --from-file={key}=plugin.wasm)",
                        cm.namespace, cm.name, cm.name
                    )
                })?
        } else if let Some(url) = &source.url {
            self.fetch_url(url).await?
        } else if let Some(reference) = &source.oci {
            self.fetch_oci(reference).await?
        } else {
            unreachable_source()?
        };
        if bytes.len() > MAX_PLUGIN_BYTES {
            return Err(format!(
                "the component is {} bytes; the limit is {MAX_PLUGIN_BYTES}",
                bytes.len()
            ));
        }
        Ok(bytes)
    }

    async fn fetch_url(&self, url: &str) -> Result<Vec<u8>, String> {
        let response = self.http.get(url).send().await.map_err(|e| {
            format!(
                "spec.source.url: fetching {url}: {}",
                crate::http_client::chain(&e)
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("spec.source.url: {url} answered HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_PLUGIN_BYTES)
        {
            return Err(format!(
                "spec.source.url: {url} is larger than {MAX_PLUGIN_BYTES} bytes"
            ));
        }
        let body = response.bytes().await.map_err(|e| {
            format!(
                "spec.source.url: reading {url}: {}",
                crate::http_client::chain(&e)
            )
        })?;
        Ok(body.to_vec())
    }

    async fn fetch_oci(&self, reference: &str) -> Result<Vec<u8>, String> {
        let parsed: Reference = reference
            .parse()
            .map_err(|e| format!("spec.source.oci: {reference:?} is not an OCI reference: {e}"))?;
        let image = self
            .oci
            .pull(&parsed, &RegistryAuth::Anonymous, WASM_MEDIA_TYPES.to_vec())
            .await
            .map_err(|e| format!("spec.source.oci: pulling {reference}: {e}"))?;
        let mut layers = image.layers.into_iter();
        match (layers.next(), layers.next()) {
            (Some(layer), None) => Ok(layer.data.to_vec()),
            (None, _) => Err(format!(
                "spec.source.oci: {reference} has no Wasm layer ({})",
                WASM_MEDIA_TYPES.join(", ")
            )),
            (Some(_), Some(_)) => Err(format!(
                "spec.source.oci: {reference} has several Wasm layers; a plugin artifact has one"
            )),
        }
    }
}

/// Kept apart so the branch above stays exhaustive without a panic.
fn unreachable_source() -> Result<Vec<u8>, String> {
    Err("spec.source: no source set".into())
}
