//! Reading manifests from YAML files: Sluice's own group and, unchanged,
//! Flagger's `flagger.app/v1beta1`.

use serde::de::DeserializeOwned;
use thiserror::Error;

use super::{AlertProvider, Canary, MetricTemplate};

const API_VERSION: &str = "sluice.dev/v1beta1";
const FLAGGER_API_VERSION: &str = "flagger.app/v1beta1";

/// Why a manifest cannot be read; each message names the document or the
/// field and what to change.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("document {index} is not valid YAML")]
    Yaml {
        index: usize,
        #[source]
        source: yaml_serde::Error,
    },
    #[error(
        "apiVersion {found:?} is not supported for {kind}; use {API_VERSION} (or {FLAGGER_API_VERSION})"
    )]
    ApiVersion { kind: &'static str, found: String },
    #[error("expected kind {expected}, found {found:?}")]
    Kind {
        expected: &'static str,
        found: String,
    },
    /// A field of the right kind has the wrong shape (the message is the
    /// deserializer's, shown in full rather than as a source).
    #[error("{kind} {name}: {path}: {error}")]
    Field {
        kind: &'static str,
        name: String,
        path: String,
        error: serde_json::Error,
    },
    /// A value the resource needs is missing or refused.
    #[error("{0}")]
    Invalid(String),
}

type Result<T, E = LoadError> = std::result::Result<T, E>;

fn invalid<T>(message: impl Into<String>) -> Result<T> {
    Err(LoadError::Invalid(message.into()))
}

/// Splits a multi-document YAML text into JSON values, skipping empty documents.
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>> {
    let mut docs = Vec::new();
    for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(de).map_err(|source| LoadError::Yaml {
                index: i + 1,
                source,
            })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Deserializes one resource of `kind`, accepting both API groups, with the
/// path of the offending field in the error.
fn typed<T: DeserializeOwned>(mut doc: serde_json::Value, kind: &'static str) -> Result<T> {
    let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
    if api_version != API_VERSION && api_version != FLAGGER_API_VERSION {
        return Err(LoadError::ApiVersion {
            kind,
            found: api_version.to_string(),
        });
    }
    let actual_kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    if actual_kind != kind {
        return Err(LoadError::Kind {
            expected: kind,
            found: actual_kind.to_string(),
        });
    }
    doc["apiVersion"] = API_VERSION.into();
    let name = doc
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("<unnamed>")
        .to_string();
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        LoadError::Field {
            kind,
            name,
            path,
            error: e.into_inner(),
        }
    })
}

/// Reads the single Canary in `text`.
pub fn canary_from_yaml(text: &str) -> Result<Canary> {
    let docs = documents(text)?;
    let mut canaries = docs
        .into_iter()
        .filter(|d| d.get("kind").and_then(|k| k.as_str()) == Some("Canary"));
    let Some(doc) = canaries.next() else {
        return invalid("no Canary found (expected a document with kind: Canary)");
    };
    if canaries.next().is_some() {
        return invalid("more than one Canary in the file; give one per file");
    }
    let mut canary: Canary = typed(doc, "Canary")?;
    if canary.metadata.name.as_deref().unwrap_or("").is_empty() {
        return invalid("Canary: metadata.name: required");
    }
    if canary.metadata.namespace.is_none() {
        canary.metadata.namespace = Some("default".into());
    }
    Ok(canary)
}

/// Reads every MetricTemplate in `text`.
pub fn metric_templates_from_yaml(text: &str) -> Result<Vec<MetricTemplate>> {
    let mut out = Vec::new();
    for doc in documents(text)? {
        let mut t: MetricTemplate = typed(doc, "MetricTemplate")?;
        if t.metadata.name.as_deref().unwrap_or("").is_empty() {
            return invalid("MetricTemplate: metadata.name: required");
        }
        if t.metadata.namespace.is_none() {
            t.metadata.namespace = Some("default".into());
        }
        if t.spec.query.trim().is_empty() {
            return invalid(format!(
                "MetricTemplate {}: spec.query: required",
                t.metadata.name.as_deref().unwrap_or_default()
            ));
        }
        out.push(t);
    }
    Ok(out)
}

/// Reads every AlertProvider in `text`, skipping documents of other kinds
/// (alert providers usually sit next to their Secrets).
pub fn alert_providers_from_yaml(text: &str) -> Result<Vec<AlertProvider>> {
    let mut out = Vec::new();
    for doc in documents(text)? {
        if doc.get("kind").and_then(|k| k.as_str()) != Some("AlertProvider") {
            continue;
        }
        let mut p: AlertProvider = typed(doc, "AlertProvider")?;
        let name = p.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            return invalid("AlertProvider: metadata.name: required");
        }
        if p.metadata.namespace.is_none() {
            p.metadata.namespace = Some("default".into());
        }
        if !["slack", "msteams", "discord", "generic"].contains(&p.spec.provider_type.as_str()) {
            return invalid(format!(
                "AlertProvider {name}: spec.type: {:?} is not supported; use slack, msteams, discord or generic",
                p.spec.provider_type
            ));
        }
        if p.spec.address.as_deref().unwrap_or("").is_empty() && p.spec.secret_ref.is_none() {
            return invalid(format!(
                "AlertProvider {name}: give spec.address or spec.secretRef (a Secret with an address key)"
            ));
        }
        out.push(p);
    }
    Ok(out)
}
