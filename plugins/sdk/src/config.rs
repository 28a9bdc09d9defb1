//! The plugin `config` string: free-form, JSON by convention.
//!
//! [`Config::parse`] takes the `config` field of the analysis spec or metric:
//! an empty string means "no settings", anything else must be a JSON object.
//! `serde_json` reads the text (syntax, escapes, numbers, nesting limit,
//! error positions) straight into this module's small [`Value`], which keeps
//! an object's members in document order.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; a repeated key keeps its last value.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// Parses one JSON document (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Value, String> {
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
    }

    /// The member `key` of an object (the last one if repeated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The JSON type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Builds a [`Value`] from whatever `serde_json` reads.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n as f64))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Value::Number(n))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Value::Object(members))
    }
}

/// A plugin's settings: the parsed `config` string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    members: Vec<(String, Value)>,
}

impl Config {
    /// Parses a `config` string. Empty (or all whitespace) means no settings;
    /// otherwise it must be a JSON object.
    pub fn parse(config: &str) -> Result<Config, String> {
        if config.trim().is_empty() {
            return Ok(Config::default());
        }
        match Value::parse(config) {
            Ok(Value::Object(members)) => Ok(Config { members }),
            Ok(other) => Err(format!(
                "invalid plugin config: expected a JSON object, got {}",
                other.type_name()
            )),
            Err(e) => Err(format!("invalid plugin config: {e}")),
        }
    }

    /// The keys of the settings, in document order (a repeated key once,
    /// where it first appears), e.g. to refuse keys a plugin does not know.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in &self.members {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        keys
    }

    /// The raw value of `key`, if present (and not `null`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| !matches!(v, Value::Null))
    }

    /// A string setting; an error if present with another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!(
                "invalid plugin config: \"{key}\" must be a string, got {}",
                other.type_name()
            )),
        }
    }

    /// A number setting; an error if present with another type.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(*n)),
            Some(other) => Err(format!(
                "invalid plugin config: \"{key}\" must be a number, got {}",
                other.type_name()
            )),
        }
    }

    /// A whole-number setting in `0..=u32::MAX`; an error otherwise.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, String> {
        match self.get_f64(key)? {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&n) => {
                Ok(Some(n as u32))
            }
            Some(n) => Err(format!(
                "invalid plugin config: \"{key}\" must be a whole number from 0 to {}, got {n}",
                u32::MAX
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents() {
        let v = Value::parse(
            r#" {"a": [1, -2.5e1, true, false, null], "b": {"c": "x\"\u00e9\ud83d\ude00"}} "#,
        )
        .unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::Array(vec![
                Value::Number(1.0),
                Value::Number(-25.0),
                Value::Bool(true),
                Value::Bool(false),
                Value::Null
            ]))
        );
        assert_eq!(
            v.get("b").and_then(|b| b.get("c")),
            Some(&Value::String("x\"é😀".into()))
        );
        assert_eq!(
            Value::parse("\"héllo\"").unwrap(),
            Value::String("héllo".into())
        );
    }

    #[test]
    fn rejects_bad_json() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1,]",
            "01",
            "1.",
            "-",
            "1e",
            "\"abc",
            "\"\\x\"",
            "\"\\ud800\"",
            "tru",
            "{} x",
            "{'a':1}",
            "\"a\nb\"",
        ] {
            assert!(Value::parse(bad).is_err(), "{bad:?} should not parse");
        }
        let deep = "[".repeat(1000);
        assert!(Value::parse(&deep).is_err());
    }

    #[test]
    fn config_accessors() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.get_str("unit"), Ok(None));
        let c = Config::parse("  \n").unwrap();
        assert_eq!(c.get_u32("firstStep"), Ok(None));

        let c = Config::parse(r#"{"unit": "ms", "firstStep": 5, "x": null, "f": 1.5}"#).unwrap();
        assert_eq!(c.get_str("unit"), Ok(Some("ms")));
        assert_eq!(c.get_u32("firstStep"), Ok(Some(5)));
        assert_eq!(c.get_u32("x"), Ok(None));
        assert!(c.get_u32("f").is_err());
        assert!(c.get_str("firstStep").is_err());
        assert!(c.get_u32("unit").is_err());

        let c = Config::parse(r#"{"n": -1}"#).unwrap();
        assert!(c.get_u32("n").is_err());

        let e = Config::parse("[1]").unwrap_err();
        assert!(e.contains("expected a JSON object"), "{e}");
        let e = Config::parse("{unit: ms}").unwrap_err();
        assert!(e.starts_with("invalid plugin config: invalid JSON"), "{e}");
    }

    #[test]
    fn objects_keep_document_order_and_the_last_repeated_key() {
        let v = Value::parse(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(
            v,
            Value::Object(vec![
                ("b".into(), Value::Number(1.0)),
                ("a".into(), Value::Number(2.0)),
                ("b".into(), Value::Number(3.0)),
            ])
        );
        assert_eq!(v.get("b"), Some(&Value::Number(3.0)));
        let c = Config::parse(r#"{"unit": "s", "unit": "ms"}"#).unwrap();
        assert_eq!(c.get_str("unit"), Ok(Some("ms")));
        assert_eq!(c.keys(), ["unit"]);
        let c = Config::parse(r#"{"b": 1, "a": null, "b": 2}"#).unwrap();
        assert_eq!(c.keys(), ["b", "a"]);
        assert!(Config::parse("").unwrap().keys().is_empty());
    }

    #[test]
    fn numbers() {
        let c = Config::parse(
            r#"{"a": 5, "b": -3, "c": 2.0, "d": 1e3, "e": 18446744073709551616, "f": 0.5}"#,
        )
        .unwrap();
        assert_eq!(c.get_u32("a"), Ok(Some(5)));
        assert_eq!(c.get_f64("b"), Ok(Some(-3.0)));
        assert_eq!(c.get_u32("c"), Ok(Some(2)));
        assert_eq!(c.get_u32("d"), Ok(Some(1000)));
        assert_eq!(c.get_f64("e"), Ok(Some(18446744073709551616.0)));
        assert_eq!(c.get_f64("f"), Ok(Some(0.5)));
    }

    #[test]
    fn errors_name_the_key_or_the_position() {
        let c = Config::parse(r#"{"unit": 1, "firstStep": "5", "f": 1.5}"#).unwrap();
        assert_eq!(
            c.get_str("unit"),
            Err("invalid plugin config: \"unit\" must be a string, got a number".into())
        );
        assert_eq!(
            c.get_f64("firstStep"),
            Err("invalid plugin config: \"firstStep\" must be a number, got a string".into())
        );
        assert_eq!(
            c.get_u32("f"),
            Err(format!(
                "invalid plugin config: \"f\" must be a whole number from 0 to {}, got 1.5",
                u32::MAX
            ))
        );
        assert_eq!(
            Config::parse("{\"unit\": \"ms\",\n \"x\": }").unwrap_err(),
            "invalid plugin config: invalid JSON: expected value at line 2 column 7"
        );
        assert_eq!(
            Config::parse("true").unwrap_err(),
            "invalid plugin config: expected a JSON object, got a boolean"
        );
    }
}
