//! A plugin's settings schema: a JSON Schema embedded in the component as a
//! custom section named `sluice:config-schema` (the guest SDK's
//! `config_schema!` puts it in the core module; a section at the
//! component's own level counts too). The host reads and compiles it once,
//! when it loads the plugin, and checks a Canary's settings for the plugin
//! against it before any call (see `analysis` in `sluice-rollout`).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;
use wasmparser::{Parser, Payload};

/// The custom section that carries a plugin's settings schema.
pub const SECTION: &str = "sluice:config-schema";

/// At most this many of the validator's messages are reported per refusal.
const MAX_MESSAGES: usize = 5;

/// A plugin's compiled settings schema. Cheap to clone.
#[derive(Clone)]
pub struct ConfigSchema {
    json: Arc<Value>,
    validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for ConfigSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSchema")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

/// Why a component's settings schema is refused (the plugin with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("its {SECTION} custom section could not be read: {0}")]
    Unreadable(String),
    #[error(
        "it has {0} {SECTION} custom sections; a plugin has at most one (call config_schema! once)"
    )]
    Several(usize),
    #[error("its {SECTION} custom section is not JSON: {0}")]
    NotJson(String),
    #[error("its {SECTION} custom section is not a valid JSON Schema: {0}")]
    Invalid(String),
}

/// Why settings do not fit a plugin's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("is not JSON: {0}")]
    NotJson(String),
    /// The validator's messages, each with the JSON pointer of the value it
    /// is about (`""` is the settings themselves).
    #[error("does not match the plugin's settings schema: {}", .0.join("; "))]
    Mismatch(Vec<String>),
    /// The plugin's own `validate-config` refused the settings.
    #[error("is refused by the plugin: {0}")]
    Refused(String),
    /// The plugin's `validate-config` faulted (trap, time-out, …).
    #[error("could not be checked: validate-config failed: {0}")]
    Unchecked(String),
}

impl ConfigSchema {
    /// Compiles `json` (checked against its meta-schema first).
    pub fn compile(json: Value) -> Result<Self, SchemaError> {
        let validator = jsonschema::validator_for(&json).map_err(|e| {
            let at = e.instance_path().as_str();
            SchemaError::Invalid(if at.is_empty() {
                e.to_string()
            } else {
                format!("at \"{at}\": {e}")
            })
        })?;
        Ok(Self {
            json: Arc::new(json),
            validator: Arc::new(validator),
        })
    }

    /// The schema as the plugin embedded it.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// The schema as indented JSON.
    pub fn pretty(&self) -> String {
        serde_json::to_string_pretty(&*self.json).unwrap_or_else(|_| self.json.to_string())
    }

    /// Checks `config`, settings as a JSON string.
    pub fn check(&self, config: &str) -> Result<(), ConfigError> {
        let value: Value =
            serde_json::from_str(config).map_err(|e| ConfigError::NotJson(e.to_string()))?;
        let messages: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(MAX_MESSAGES)
            .map(|e| format!("at \"{}\": {e}", e.instance_path().as_str()))
            .collect();
        if messages.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Mismatch(messages))
        }
    }
}

/// Reads and compiles the settings schema of a component (or core module),
/// if it has one: the custom sections named [`SECTION`] at any level.
pub fn read(wasm: &[u8]) -> Result<Option<ConfigSchema>, SchemaError> {
    let mut found: Vec<&[u8]> = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| SchemaError::Unreadable(e.to_string()))?;
        if let Payload::CustomSection(reader) = payload
            && reader.name() == SECTION
        {
            found.push(reader.data());
        }
    }
    let data = match found.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        several => return Err(SchemaError::Several(several.len())),
    };
    let json: Value =
        serde_json::from_slice(data).map_err(|e| SchemaError::NotJson(e.to_string()))?;
    ConfigSchema::compile(json).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTOR: &str = r#"{"type":"object","properties":{"factor":{"type":"number","minimum":1}},"required":["factor"]}"#;

    /// A custom section, as bytes (id 0, size, name, payload).
    fn section(name: &str, payload: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        leb(&mut body, name.len());
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(payload);
        let mut out = vec![0u8];
        leb(&mut out, body.len());
        out.extend(body);
        out
    }

    fn leb(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// An empty core module with `sections` after its header.
    fn module(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        for s in sections {
            m.extend_from_slice(s);
        }
        m
    }

    #[test]
    fn a_module_without_the_section_has_no_schema() {
        assert!(read(&module(&[])).unwrap().is_none());
        assert!(read(&module(&[section("other", b"{}")])).unwrap().is_none());
    }

    #[test]
    fn the_schema_is_read_compiled_and_checks_settings_with_pointers() {
        let schema = read(&module(&[section(SECTION, FACTOR.as_bytes())]))
            .unwrap()
            .expect("a schema");
        assert_eq!(schema.json()["required"][0], "factor");
        assert!(schema.pretty().contains("\n  \"properties\""));
        assert_eq!(schema.check(r#"{"factor": 2}"#), Ok(()));
        let e = schema.check(r#"{"factor": 0}"#).unwrap_err().to_string();
        assert_eq!(
            e,
            "does not match the plugin's settings schema: at \"/factor\": 0 is less than the minimum of 1"
        );
        let e = schema.check("{}").unwrap_err().to_string();
        assert_eq!(
            e,
            "does not match the plugin's settings schema: at \"\": \"factor\" is a required property"
        );
        let e = schema.check("not json").unwrap_err();
        assert!(matches!(e, ConfigError::NotJson(_)), "{e}");
    }

    #[test]
    fn a_schema_that_is_not_json_schema_or_not_json_or_twice_is_refused() {
        let e = read(&module(&[section(SECTION, br#"{"type": 12}"#)])).unwrap_err();
        assert!(matches!(e, SchemaError::Invalid(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("its sluice:config-schema custom section is not a valid JSON Schema"),
            "{e}"
        );
        let e = read(&module(&[section(SECTION, b"{nope")])).unwrap_err();
        assert!(matches!(e, SchemaError::NotJson(_)), "{e}");
        let e = read(&module(&[section(SECTION, b"{}"), section(SECTION, b"{}")])).unwrap_err();
        assert_eq!(e, SchemaError::Several(2));
        assert!(matches!(
            read(b"not wasm").unwrap_err(),
            SchemaError::Unreadable(_)
        ));
    }
}
