//! CustomResourceDefinitions: their resource types and the validation of
//! their objects on every write.
//!
//! Models what the API server does with a structural `openAPIV3Schema`:
//!
//! - **pruning**: fields the schema does not declare are dropped (unless
//!   `x-kubernetes-preserve-unknown-fields` or `additionalProperties`
//!   allows them), as with the default `fieldValidation=Warn` minus the
//!   warning;
//! - **defaulting**: a missing property with a `default` gets it;
//! - **validation**: the object is checked against the schema; a failure is
//!   422 Invalid naming the field (`spec.analysis.iterations: Invalid
//!   value: …`).
//!
//! The Kubernetes dialect is translated to JSON Schema (draft 4) for the
//! `jsonschema` crate: `nullable: true` adds `"null"` to the type,
//! `x-kubernetes-int-or-string` means integer or string, other
//! `x-kubernetes-*` keys, `format` (Kubernetes' `int32`, `double`, …),
//! `default` and `description` are dropped.
//!
//! Simplified: no CEL rules (`x-kubernetes-validations`), no
//! `x-kubernetes-list-type` uniqueness, no `metadata` pruning or
//! validation beyond the name, one schema per version, no conversion.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Error};
use crate::resource::ResourceType;

/// One served version of a CRD.
pub struct CrdVersion {
    pub resource: ResourceType,
    schema: Option<Value>,
    validator: Option<jsonschema::Validator>,
}

/// The CRDs loaded, by (group, version, plural).
#[derive(Default)]
pub struct Schemas {
    versions: HashMap<(String, String, String), CrdVersion>,
}

impl Schemas {
    /// Reads every `*.yaml`/`*.yml` file of `dir` (multi-document files
    /// too) and keeps the `CustomResourceDefinition`s.
    pub fn load_dir(&mut self, dir: &Path) -> Result<Vec<ResourceType>, Error> {
        let read_err = |source| Error::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        let mut added = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.display().to_string(),
                source,
            })?;
            for document in yaml_serde::Deserializer::from_str(&text) {
                let value: Value =
                    serde::Deserialize::deserialize(document).map_err(|e| Error::Crd {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                if value.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
                    added.extend(self.add_crd(&value).map_err(|message| Error::Crd {
                        path: path.display().to_string(),
                        message,
                    })?);
                }
            }
        }
        Ok(added)
    }

    /// Adds one CRD (as JSON) and returns the resource types it serves.
    pub fn add_crd(&mut self, crd: &Value) -> Result<Vec<ResourceType>, String> {
        let spec = crd.get("spec").ok_or("the CRD has no spec")?;
        let text = |v: Option<&Value>, what: &str| {
            v.and_then(Value::as_str)
                .map(String::from)
                .ok_or(format!("the CRD has no {what}"))
        };
        let group = text(spec.get("group"), "spec.group")?;
        let plural = text(spec.pointer("/names/plural"), "spec.names.plural")?;
        let kind = text(spec.pointer("/names/kind"), "spec.names.kind")?;
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let mut added = Vec::new();
        for version in spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("the CRD has no spec.versions")?
        {
            if version.get("served") == Some(&Value::Bool(false)) {
                continue;
            }
            let name = text(version.get("name"), "version name")?;
            let resource = ResourceType {
                group: group.clone(),
                version: name.clone(),
                plural: plural.clone(),
                kind: kind.clone(),
                namespaced,
                status: version.pointer("/subresources/status").is_some(),
            };
            let schema = version.pointer("/schema/openAPIV3Schema").cloned();
            let validator = match &schema {
                Some(s) => Some(
                    jsonschema::draft4::new(&translate(s))
                        .map_err(|e| format!("the schema of {kind} {name}: {e}"))?,
                ),
                None => None,
            };
            added.push(resource.clone());
            self.versions.insert(
                (group.clone(), name, plural.clone()),
                CrdVersion {
                    resource,
                    schema,
                    validator,
                },
            );
        }
        Ok(added)
    }

    /// Prunes, defaults and validates `object` if it is of a CRD kind with
    /// a schema; objects of other kinds pass unchanged.
    pub fn admit(&self, resource: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
        let key = (
            resource.group.clone(),
            resource.version.clone(),
            resource.plural.clone(),
        );
        let Some(crd) = self.versions.get(&key) else {
            return Ok(());
        };
        let (Some(schema), Some(validator)) = (&crd.schema, &crd.validator) else {
            return Ok(());
        };
        prune_and_default(object, schema, true);
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = crd.resource.qualified_kind();
        let mut errors: Vec<(String, String)> = validator
            .iter_errors(object)
            .map(|e| {
                let field = field_path(e.instance_path());
                let value = e.instance().to_string();
                (field, format!("Invalid value: {value}: {e}"))
            })
            .collect();
        errors.sort();
        match errors.first() {
            None => Ok(()),
            Some((field, detail)) => {
                let mut err = ApiError::invalid(&kind, &name, field, detail);
                if errors.len() > 1 {
                    let rest: Vec<String> = errors[1..]
                        .iter()
                        .map(|(f, d)| format!("{f}: {d}"))
                        .collect();
                    err.message = format!("{}, {}", err.message, rest.join(", "));
                }
                Err(err)
            }
        }
    }
}

/// "/spec/match/0/uri" → "spec.match[0].uri".
fn field_path(location: &jsonschema::paths::Location) -> String {
    let mut out = String::new();
    for segment in location.segments() {
        match segment {
            jsonschema::paths::LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
            jsonschema::paths::LocationSegment::Property(p) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&p);
            }
        }
    }
    if out.is_empty() { "<root>".into() } else { out }
}

/// The Kubernetes schema dialect as JSON Schema draft 4 (see the module
/// doc).
pub fn translate(schema: &Value) -> Value {
    let Some(map) = schema.as_object() else {
        return schema.clone();
    };
    let mut out: Map<String, Value> = map
        .iter()
        .filter_map(|(key, value)| Some((key.clone(), translate_keyword(key, value)?)))
        .collect();
    widen_type(map, &mut out);
    Value::Object(out)
}

/// One keyword of a schema, translated (subschemas recursively); `None`
/// drops it.
fn translate_keyword(key: &str, value: &Value) -> Option<Value> {
    match key {
        "properties" | "patternProperties" | "definitions" => {
            let translated: Map<String, Value> = value
                .as_object()
                .map(|props| {
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), translate(s)))
                        .collect()
                })
                .unwrap_or_default();
            Some(Value::Object(translated))
        }
        "items" | "additionalProperties" | "not" | "additionalItems" => {
            Some(if value.is_object() {
                translate(value)
            } else {
                value.clone()
            })
        }
        "allOf" | "anyOf" | "oneOf" => {
            let list = value
                .as_array()
                .map(|l| l.iter().map(translate).collect())
                .unwrap_or_default();
            Some(Value::Array(list))
        }
        "nullable" | "format" | "default" | "description" | "example" | "externalDocs"
        | "title" => None,
        k if k.starts_with("x-kubernetes-") => None,
        _ => Some(value.clone()),
    }
}

/// The translated `type` of `x-kubernetes-int-or-string` and `nullable`
/// schemas.
fn widen_type(schema: &Map<String, Value>, out: &mut Map<String, Value>) {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if schema.get("nullable") == Some(&Value::Bool(true)) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(Value::Array(mut types)) => {
                types.push(json!("null"));
                out.insert("type".into(), Value::Array(types));
            }
            _ => {}
        }
    }
}

/// Drops undeclared fields and fills in defaults (see the module doc).
/// At the root, `apiVersion`, `kind` and `metadata` are always kept.
fn prune_and_default(value: &mut Value, schema: &Value, root: bool) {
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            if let Some(props) = properties {
                if !preserve && additional.is_none() {
                    map.retain(|k, _| {
                        props.contains_key(k)
                            || (root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                    });
                }
                for (name, prop_schema) in props {
                    match map.get_mut(name) {
                        Some(child) => prune_and_default(child, prop_schema, false),
                        None => {
                            if let Some(default) = prop_schema.get("default") {
                                map.insert(name.clone(), default.clone());
                            }
                        }
                    }
                }
            } else if let Some(additional) = additional.filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    prune_and_default(child, additional, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    prune_and_default(item, item_schema, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_the_kubernetes_dialect() {
        let k8s = json!({"type": "object", "properties": {
            "a": {"type": "string", "nullable": true, "format": "int32"},
            "b": {"x-kubernetes-int-or-string": true},
            "default": {"type": "integer", "default": 1, "x-kubernetes-preserve-unknown-fields": true}
        }});
        assert_eq!(
            translate(&k8s),
            json!({"type": "object", "properties": {
                "a": {"type": ["string", "null"]},
                "b": {"type": ["integer", "string"]},
                "default": {"type": "integer"}
            }})
        );
    }

    #[test]
    fn prunes_unknown_fields_and_defaults() {
        let schema = json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "x": {"type": "integer", "default": 3},
                "free": {"x-kubernetes-preserve-unknown-fields": true}
            }}
        }});
        let mut obj = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n"},
            "bogus": 1, "spec": {"y": 1, "free": {"anything": 1}}});
        prune_and_default(&mut obj, &schema, true);
        assert_eq!(
            obj,
            json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n"},
                   "spec": {"x": 3, "free": {"anything": 1}}})
        );
    }
}
