//! Fetches a plugin component from where a RolloutPlugin says it is: a
//! ConfigMap's `binaryData`, an HTTP(S) URL, or an OCI artifact (anonymous,
//! or with the credentials of a `kubernetes.io/dockerconfigjson` Secret).
//!
//! Every network fetch has a connect, a read and an overall timeout, and
//! reading stops as soon as a component is known to be larger than the host
//! accepts: a declared size over the cap is refused before the body (or the
//! OCI layer) is pulled, and a body that runs past it is cut off there.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client as OciClient, Reference};
use tokio::io::AsyncWrite;

use crate::cluster::Cluster;
use sluice_api::rollout_plugin::{OciPluginSource, PluginSource, PullSecretReference};

/// The largest component Sluice accepts: the host's limit.
pub const MAX_PLUGIN_BYTES: usize = sluice_host::MAX_COMPONENT_BYTES;
/// Default key of a ConfigMap source.
const DEFAULT_KEY: &str = "plugin.wasm";

/// Media types of Wasm layers in OCI artifacts (the CNCF Wasm OCI artifact
/// layout, wasm-to-oci, and plain `application/wasm`).
const WASM_MEDIA_TYPES: [&str; 3] = [
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
];

/// The Secret type of a pull secret, and the key holding its config.
const DOCKER_CONFIG_JSON: (&str, &str) = ("kubernetes.io/dockerconfigjson", ".dockerconfigjson");
/// The legacy form (`~/.dockercfg`), accepted too.
const DOCKER_CFG: (&str, &str) = ("kubernetes.io/dockercfg", ".dockercfg");

/// How long a fetch may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// Between two reads of an answer (its headers, then each chunk).
    pub read: Duration,
    /// For the whole fetch.
    pub total: Duration,
}

impl Timeouts {
    /// `total` in all, connecting within 10 s and never waiting more than
    /// 30 s for the next bytes (each at most `total`).
    fn within(total: Duration) -> Self {
        Self {
            connect: total.min(Duration::from_secs(10)),
            read: total.min(Duration::from_secs(30)),
            total,
        }
    }
}

impl fmt::Display for Timeouts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the operator waits {:?} to connect, {:?} for each read and {:?} in all",
            self.connect, self.read, self.total
        )
    }
}

/// How a component turned out too large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Oversize {
    /// Its size as announced (Content-Length, or the OCI manifest's layer
    /// size), before any of it was read.
    Declared(u64),
    /// Reading stopped after this many bytes, past the cap.
    Read(usize),
}

impl fmt::Display for Oversize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Oversize::Declared(n) => write!(f, "declares {n} bytes (not pulled)"),
            Oversize::Read(n) => write!(
                f,
                "sent more than {MAX_PLUGIN_BYTES} bytes (reading stopped at {n})"
            ),
        }
    }
}

/// Why a component could not be fetched. Each message names the field of
/// the RolloutPlugin at fault and how to fix it; the status shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("spec.source: set exactly one of configMap, url and oci (got {0})")]
    SourceCount(usize),
    #[error("{field}: reading {what}: {why} (the operator must be allowed to get it)")]
    Cluster {
        field: &'static str,
        what: String,
        why: String,
    },
    #[error("spec.source.configMap: ConfigMap {namespace}/{name} not found")]
    ConfigMapNotFound { namespace: String, name: String },
    #[error(
        "spec.source.configMap: ConfigMap {namespace}/{name} has no binaryData key {key:?} (create it with kubectl create configmap {name} --from-file={key}=plugin.wasm)"
    )]
    ConfigMapKey {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("spec.source.url: fetching {url}: {why}")]
    Url { url: String, why: String },
    #[error("spec.source.url: {url} answered HTTP {status}")]
    UrlStatus { url: String, status: u16 },
    #[error(
        "{field}: {location} did not answer in time ({timeouts}); check that it is up and reachable from the operator"
    )]
    Timeout {
        field: &'static str,
        location: String,
        timeouts: Timeouts,
    },
    #[error(
        "{field}: {location} {size}; a plugin may be at most {MAX_PLUGIN_BYTES} bytes (32 MiB): make the component smaller (a release build, wasm-tools strip)"
    )]
    TooLarge {
        field: &'static str,
        location: String,
        size: Oversize,
    },
    #[error(
        "spec.source.oci.reference: {reference:?} is not an OCI reference ({why}); write it as registry/repository:tag or registry/repository@sha256:…"
    )]
    OciReference { reference: String, why: String },
    #[error(
        "spec.source.oci.pullSecret: Secret {namespace}/{name} not found; create it with kubectl -n {namespace} create secret docker-registry {name} --docker-server=REGISTRY --docker-username=USER --docker-password=PASSWORD"
    )]
    PullSecretNotFound { namespace: String, name: String },
    #[error(
        "spec.source.oci.pullSecret: Secret {namespace}/{name} is of type {found:?}, not kubernetes.io/dockerconfigjson; create it with kubectl -n {namespace} create secret docker-registry {name} …"
    )]
    PullSecretType {
        namespace: String,
        name: String,
        found: String,
    },
    #[error(
        "spec.source.oci.pullSecret: Secret {namespace}/{name}: {why}; recreate it with kubectl -n {namespace} create secret docker-registry {name} …"
    )]
    PullSecretInvalid {
        namespace: String,
        name: String,
        why: String,
    },
    #[error(
        "spec.source.oci.pullSecret: Secret {namespace}/{name} has no credentials for registry {registry} (it has: {known}); add them, or name a Secret that has them"
    )]
    PullSecretNoRegistry {
        namespace: String,
        name: String,
        registry: String,
        known: String,
    },
    #[error("spec.source.oci: {registry} refused to serve {reference} ({why}); {fix}")]
    OciDenied {
        registry: String,
        reference: String,
        why: String,
        fix: String,
    },
    #[error("spec.source.oci: pulling {reference}: {why}")]
    Oci { reference: String, why: String },
    #[error("spec.source.oci: {reference} has no Wasm layer (one of {media_types})", media_types = WASM_MEDIA_TYPES.join(", "))]
    OciNoLayer { reference: String },
    #[error("spec.source.oci: {reference} has {count} Wasm layers; a plugin artifact has one")]
    OciLayers { reference: String, count: usize },
    #[error(
        "spec.source.oci: {reference}: its Wasm layer sent more than the {declared} bytes its manifest declares; refusing it"
    )]
    OciLayerOverDeclared { reference: String, declared: u64 },
}

/// Fetches components over HTTP(S) and from OCI registries.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    insecure_registries: Vec<String>,
    timeouts: Timeouts,
}

impl Fetcher {
    /// A fetcher whose fetches take at most `timeout` in all (see
    /// [`Timeouts::within`]). `insecure_registries` are registries
    /// (host:port) reached over plain HTTP, e.g. a registry inside the
    /// cluster.
    pub fn new(
        timeout: Duration,
        insecure_registries: Vec<String>,
    ) -> Result<Self, reqwest::Error> {
        Self::with_timeouts(Timeouts::within(timeout), insecure_registries)
    }

    pub fn with_timeouts(
        timeouts: Timeouts,
        insecure_registries: Vec<String>,
    ) -> Result<Self, reqwest::Error> {
        let http = crate::http_client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .timeout(timeouts.total)
            .build()?;
        Ok(Self {
            http,
            insecure_registries,
            timeouts,
        })
    }

    /// The component's bytes; `Err` says what is wrong, naming the field.
    pub async fn fetch<C: Cluster>(
        &self,
        cluster: &C,
        source: &PluginSource,
    ) -> Result<Vec<u8>, FetchError> {
        let set = [
            source.config_map.is_some(),
            source.url.is_some(),
            source.oci.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        let bytes = match (&source.config_map, &source.url, &source.oci) {
            (Some(cm), None, None) => {
                let key = cm.key.as_deref().unwrap_or(DEFAULT_KEY);
                let map = cluster
                    .config_map(&cm.namespace, &cm.name)
                    .await
                    .map_err(|e| FetchError::Cluster {
                        field: "spec.source.configMap",
                        what: format!("ConfigMap {}/{}", cm.namespace, cm.name),
                        why: format!("{e:#}"),
                    })?
                    .ok_or_else(|| FetchError::ConfigMapNotFound {
                        namespace: cm.namespace.clone(),
                        name: cm.name.clone(),
                    })?;
                map.binary_data
                    .and_then(|mut d| d.remove(key).map(|b| b.0))
                    .ok_or_else(|| FetchError::ConfigMapKey {
                        namespace: cm.namespace.clone(),
                        name: cm.name.clone(),
                        key: key.to_string(),
                    })?
            }
            (None, Some(url), None) => self.fetch_url(url).await?,
            (None, None, Some(oci)) => self.fetch_oci(cluster, oci).await?,
            _ => return Err(FetchError::SourceCount(set)),
        };
        if bytes.len() > MAX_PLUGIN_BYTES {
            return Err(FetchError::TooLarge {
                field: "spec.source",
                location: "the component".into(),
                size: Oversize::Read(bytes.len()),
            });
        }
        Ok(bytes)
    }

    async fn fetch_url(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout {
                    field: "spec.source.url",
                    location: url.to_string(),
                    timeouts: self.timeouts,
                }
            } else {
                FetchError::Url {
                    url: url.to_string(),
                    why: crate::http_client::chain(&e),
                }
            }
        };
        let mut response = self.http.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::UrlStatus {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let too_large = |size| FetchError::TooLarge {
            field: "spec.source.url",
            location: url.to_string(),
            size,
        };
        let declared = response.content_length();
        if let Some(n) = declared.filter(|n| *n > MAX_PLUGIN_BYTES as u64) {
            return Err(too_large(Oversize::Declared(n)));
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            let read = body.len() + chunk.len();
            if read > MAX_PLUGIN_BYTES {
                // Dropping the response closes the connection: the rest is
                // never read.
                return Err(too_large(Oversize::Read(read)));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A client per fetch: oci-client keeps the first credentials it is
    /// given for a registry, and two RolloutPlugins (or a rotated Secret)
    /// may bring different ones.
    fn oci_client(&self) -> OciClient {
        OciClient::new(ClientConfig {
            protocol: if self.insecure_registries.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(self.insecure_registries.clone())
            },
            connect_timeout: Some(self.timeouts.connect),
            read_timeout: Some(self.timeouts.read),
            ..Default::default()
        })
    }

    async fn fetch_oci<C: Cluster>(
        &self,
        cluster: &C,
        source: &OciPluginSource,
    ) -> Result<Vec<u8>, FetchError> {
        let reference = source.reference.as_str();
        let parsed: Reference = reference.parse().map_err(|e| FetchError::OciReference {
            reference: reference.to_string(),
            why: format!("{e}"),
        })?;
        let auth = match &source.pull_secret {
            Some(secret) => pull_secret_auth(cluster, secret, &parsed).await?,
            None => RegistryAuth::Anonymous,
        };
        let timed_out = || FetchError::Timeout {
            field: "spec.source.oci",
            location: format!("the registry of {reference}"),
            timeouts: self.timeouts,
        };
        tokio::time::timeout(self.timeouts.total, self.pull(source, &parsed, &auth))
            .await
            .map_err(|_| timed_out())?
    }

    /// The manifest, its one Wasm layer checked for size, then the layer,
    /// capped at its declared size.
    async fn pull(
        &self,
        source: &OciPluginSource,
        parsed: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Vec<u8>, FetchError> {
        let reference = source.reference.as_str();
        let client = self.oci_client();
        let (manifest, _) = client
            .pull_image_manifest(parsed, auth)
            .await
            .map_err(|e| self.oci_error(source, parsed, e))?;
        let layers: Vec<&OciDescriptor> = manifest
            .layers
            .iter()
            .filter(|l| WASM_MEDIA_TYPES.contains(&l.media_type.as_str()))
            .collect();
        let layer = match layers[..] {
            [layer] => layer,
            [] => {
                return Err(FetchError::OciNoLayer {
                    reference: reference.to_string(),
                });
            }
            _ => {
                return Err(FetchError::OciLayers {
                    reference: reference.to_string(),
                    count: layers.len(),
                });
            }
        };
        let declared = u64::try_from(layer.size).unwrap_or(0);
        if declared > MAX_PLUGIN_BYTES as u64 {
            return Err(FetchError::TooLarge {
                field: "spec.source.oci",
                location: format!("{reference}: its Wasm layer"),
                size: Oversize::Declared(declared),
            });
        }
        let mut out = Capped::new(declared as usize);
        let pulled = client.pull_blob(parsed, layer, &mut out).await;
        if out.exceeded {
            return Err(FetchError::OciLayerOverDeclared {
                reference: reference.to_string(),
                declared,
            });
        }
        pulled.map_err(|e| self.oci_error(source, parsed, e))?;
        Ok(out.bytes)
    }

    fn oci_error(
        &self,
        source: &OciPluginSource,
        parsed: &Reference,
        e: OciDistributionError,
    ) -> FetchError {
        let reference = source.reference.clone();
        let fix = match &source.pull_secret {
            Some(s) => format!(
                "check the credentials for {} in Secret {}/{} (spec.source.oci.pullSecret)",
                parsed.registry(),
                s.namespace,
                s.name
            ),
            None => format!(
                "set spec.source.oci.pullSecret to a kubernetes.io/dockerconfigjson Secret with credentials for {}",
                parsed.registry()
            ),
        };
        match e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => FetchError::OciDenied {
                registry: parsed.registry().to_string(),
                reference,
                why: e.to_string(),
                fix,
            },
            e if is_timeout(&e)
                || matches!(&e, OciDistributionError::RequestError(r) if r.is_timeout()) =>
            {
                FetchError::Timeout {
                    field: "spec.source.oci",
                    location: format!("the registry of {reference}"),
                    timeouts: self.timeouts,
                }
            }
            e => FetchError::Oci {
                reference,
                why: crate::http_client::chain(&e),
            },
        }
    }
}

/// Whether an error (or one of its causes) is a timeout.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Collects a layer, failing the write that would take it past `limit`.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl Capped {
    fn new(limit: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(limit),
            limit,
            exceeded: false,
        }
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Poll::Ready(Err(std::io::Error::other(
                "the layer is larger than declared",
            )));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The credentials a pull secret holds for `reference`'s registry.
async fn pull_secret_auth<C: Cluster>(
    cluster: &C,
    secret_ref: &PullSecretReference,
    reference: &Reference,
) -> Result<RegistryAuth, FetchError> {
    let (namespace, name) = (secret_ref.namespace.clone(), secret_ref.name.clone());
    let secret = cluster
        .secret(&namespace, &name)
        .await
        .map_err(|e| FetchError::Cluster {
            field: "spec.source.oci.pullSecret",
            what: format!("Secret {namespace}/{name}"),
            why: format!("{e:#}"),
        })?
        .ok_or_else(|| FetchError::PullSecretNotFound {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    let invalid = |why: String| FetchError::PullSecretInvalid {
        namespace: namespace.clone(),
        name: name.clone(),
        why,
    };
    let auths = docker_auths(&secret).map_err(|e| match e {
        SecretProblem::Type(found) => FetchError::PullSecretType {
            namespace: namespace.clone(),
            name: name.clone(),
            found,
        },
        SecretProblem::Invalid(why) => invalid(why),
    })?;
    let wanted = registry_aliases(reference);
    let entry = auths
        .iter()
        .find(|(server, _)| wanted.contains(&registry_host(server)))
        .map(|(_, entry)| entry)
        .ok_or_else(|| FetchError::PullSecretNoRegistry {
            namespace: namespace.clone(),
            name: name.clone(),
            registry: reference.registry().to_string(),
            known: if auths.is_empty() {
                "none".into()
            } else {
                auths
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    let (username, password) = credentials(entry)
        .map_err(|why| invalid(format!("the entry for {}: {why}", reference.registry())))?;
    Ok(RegistryAuth::Basic(username, password))
}

enum SecretProblem {
    Type(String),
    Invalid(String),
}

/// The `auths` of a docker config Secret, by server.
fn docker_auths(secret: &Secret) -> Result<Vec<(String, serde_json::Value)>, SecretProblem> {
    let found = secret.type_.clone().unwrap_or_else(|| "Opaque".into());
    let (key, nested) = if found == DOCKER_CONFIG_JSON.0 {
        (DOCKER_CONFIG_JSON.1, true)
    } else if found == DOCKER_CFG.0 {
        (DOCKER_CFG.1, false)
    } else {
        return Err(SecretProblem::Type(found));
    };
    let raw = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key).map(|b| b.0.clone()))
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key).map(|s| s.clone().into_bytes()))
        })
        .ok_or_else(|| SecretProblem::Invalid(format!("it has no key {key}")))?;
    let config: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| SecretProblem::Invalid(format!("its {key} is not JSON: {e}")))?;
    let auths = if nested { &config["auths"] } else { &config };
    let auths = auths.as_object().ok_or_else(|| {
        SecretProblem::Invalid(format!(
            "its {key} has no {} object",
            if nested { "\"auths\"" } else { "top-level" }
        ))
    })?;
    Ok(auths.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The host (and port) of a docker config server key: `https://ghcr.io`,
/// `ghcr.io`, `https://index.docker.io/v1/` are all hosts.
fn registry_host(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    s.split('/').next().unwrap_or(s).to_ascii_lowercase()
}

const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The names the reference's registry may have in a docker config.
fn registry_aliases(reference: &Reference) -> Vec<String> {
    let mut names = vec![
        reference.registry().to_ascii_lowercase(),
        reference.resolve_registry().to_ascii_lowercase(),
    ];
    if names.iter().any(|n| DOCKER_HUB.contains(&n.as_str())) {
        names.extend(DOCKER_HUB.iter().map(|s| s.to_string()));
    }
    names
}

/// Username and password of a docker config entry: `username` and
/// `password`, or `auth` (base64 of `user:password`).
fn credentials(entry: &serde_json::Value) -> Result<(String, String), String> {
    let field = |k: &str| entry[k].as_str().filter(|s| !s.is_empty());
    if let (Some(user), Some(password)) = (field("username"), field("password")) {
        return Ok((user.to_string(), password.to_string()));
    }
    let Some(auth) = field("auth") else {
        return Err("it has neither username and password nor auth".into());
    };
    let decoded = base64_decode(auth).ok_or("its auth is not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "its auth is not UTF-8")?;
    match decoded.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok((user.to_string(), password.to_string())),
        _ => Err("its auth is not user:password".into()),
    }
}

/// Standard base64, padding optional.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim().trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    fn secret(type_: &str, key: &str, json: serde_json::Value) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(json.to_string().into_bytes()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(
            base64_decode("YWxpY2U6czNjcmV0IQ==").unwrap(),
            b"alice:s3cret!"
        );
        assert_eq!(
            base64_decode("YWxpY2U6czNjcmV0IQ").unwrap(),
            b"alice:s3cret!"
        );
        assert_eq!(base64_decode("not base64!"), None);
    }

    #[test]
    fn registry_hosts_are_matched_whatever_the_key_looks_like() {
        assert_eq!(registry_host("https://GHCR.io/"), "ghcr.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            registry_host("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        let hub: Reference = "library/busybox:1".parse().unwrap();
        assert!(registry_aliases(&hub).contains(&"index.docker.io".to_string()));
        assert!(registry_aliases(&hub).contains(&"docker.io".to_string()));
    }

    #[test]
    fn credentials_come_from_username_and_password_or_auth() {
        let both = serde_json::json!({"username": "u", "password": "p", "auth": "eDp5"});
        assert_eq!(credentials(&both).unwrap(), ("u".into(), "p".into()));
        let auth = serde_json::json!({"auth": "dXNlcjpwYTpzcw=="});
        assert_eq!(credentials(&auth).unwrap(), ("user".into(), "pa:ss".into()));
        assert!(credentials(&serde_json::json!({})).is_err());
        assert!(credentials(&serde_json::json!({"auth": "bm9jb2xvbg=="})).is_err());
    }

    #[test]
    fn docker_config_secrets_are_read_in_both_forms() {
        let json = secret(
            DOCKER_CONFIG_JSON.0,
            DOCKER_CONFIG_JSON.1,
            serde_json::json!({"auths": {"ghcr.io": {"auth": "dXNlcjpwYXNz"}}}),
        );
        assert_eq!(docker_auths(&json).ok().unwrap()[0].0, "ghcr.io");
        let legacy = secret(
            DOCKER_CFG.0,
            DOCKER_CFG.1,
            serde_json::json!({"ghcr.io": {"auth": "dXNlcjpwYXNz"}}),
        );
        assert_eq!(docker_auths(&legacy).ok().unwrap()[0].0, "ghcr.io");
        let opaque = secret("Opaque", "x", serde_json::json!({}));
        assert!(matches!(docker_auths(&opaque), Err(SecretProblem::Type(t)) if t == "Opaque"));
    }

    #[test]
    fn timeouts_fit_within_the_total() {
        let t = Timeouts::within(Duration::from_secs(5));
        assert_eq!(t.connect, Duration::from_secs(5));
        let t = Timeouts::within(Duration::from_secs(60));
        assert_eq!(
            (t.connect, t.read, t.total),
            (
                Duration::from_secs(10),
                Duration::from_secs(30),
                Duration::from_secs(60)
            )
        );
    }
}
