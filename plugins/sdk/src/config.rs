//! The plugin `config` string: free-form, JSON by convention.
//!
//! [`Config::parse`] takes the `config` field of the analysis spec or metric:
//! an empty string means "no settings", anything else must be a JSON object,
//! read with `serde_json`. The accessors ([`Config::get_str`],
//! [`Config::get_f64`], [`Config::get_u32`], and [`Config::get_as`] for any
//! `serde::Deserialize` type, derived structs included) name the setting in
//! their errors, so a user sees which key of their config is wrong.

use serde::de::DeserializeOwned;
use serde_json::Map;

/// A JSON value (`serde_json`'s).
pub use serde_json::Value;

/// The JSON type name of `value`, for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A plugin's settings: the parsed `config` string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// A repeated key keeps its last value.
    members: Map<String, Value>,
}

impl Config {
    /// Parses a `config` string. Empty (or all whitespace) means no settings;
    /// otherwise it must be a JSON object.
    pub fn parse(config: &str) -> Result<Config, String> {
        if config.trim().is_empty() {
            return Ok(Config::default());
        }
        match serde_json::from_str(config) {
            Ok(Value::Object(members)) => Ok(Config { members }),
            Ok(other) => Err(format!(
                "invalid plugin config: expected a JSON object, got {}",
                type_name(&other)
            )),
            Err(e) => Err(format!("invalid plugin config: invalid JSON: {e}")),
        }
    }

    /// The raw value of `key`, if present (and not `null`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.members.get(key).filter(|v| !v.is_null())
    }

    /// A string setting; an error if present with another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(key, "a string", other)),
        }
    }

    /// A number setting; an error if present with another type.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(wrong_type(key, "a number", other)),
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

    /// A setting of any type `serde` can deserialize (a derived struct for
    /// nested settings, a `Vec<String>`, an enum, …); an error naming `key`
    /// if it does not fit.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|e| format!("invalid plugin config: \"{key}\": {e}")),
        }
    }
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> String {
    format!(
        "invalid plugin config: \"{key}\" must be {expected}, got {}",
        type_name(got)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents() {
        let c = Config::parse(
            r#" {"a": [1, -2.5e1, true, false, null], "b": {"c": "x\"\u00e9\ud83d\ude00"}} "#,
        )
        .unwrap();
        assert_eq!(
            c.get("a"),
            Some(&serde_json::json!([1, -25.0, true, false, null]))
        );
        assert_eq!(
            c.get("b").and_then(|b| b.get("c")),
            Some(&Value::String("x\"é😀".into()))
        );
        // A repeated key keeps its last value.
        let c = Config::parse(r#"{"unit": "s", "unit": "ms"}"#).unwrap();
        assert_eq!(c.get_str("unit"), Ok(Some("ms")));
    }

    #[test]
    fn rejects_bad_json() {
        for bad in [
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":[1,]}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":\"abc}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":tru}",
            "{} x",
            "{'a':1}",
            "{\"a\":\"a\nb\"}",
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(
                e.starts_with("invalid plugin config: invalid JSON: "),
                "{bad:?}: {e}"
            );
        }
        let deep = format!("{{\"a\":{}", "[".repeat(1000));
        assert!(Config::parse(&deep).is_err());
    }

    #[test]
    fn config_accessors() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.get_str("unit"), Ok(None));
        let c = Config::parse("  \n").unwrap();
        assert_eq!(c.get_u32("firstStep"), Ok(None));

        let c = Config::parse(
            r#"{"unit": "ms", "firstStep": 5, "x": null, "f": 1.5, "w": 2.0, "big": 1e3}"#,
        )
        .unwrap();
        assert_eq!(c.get_str("unit"), Ok(Some("ms")));
        assert_eq!(c.get_u32("firstStep"), Ok(Some(5)));
        assert_eq!(c.get_u32("w"), Ok(Some(2)));
        assert_eq!(c.get_u32("big"), Ok(Some(1000)));
        assert_eq!(c.get_f64("f"), Ok(Some(1.5)));
        assert_eq!(c.get_u32("x"), Ok(None));
        assert_eq!(c.get_str("missing"), Ok(None));
        assert_eq!(
            c.get_u32("f"),
            Err(format!(
                "invalid plugin config: \"f\" must be a whole number from 0 to {}, got 1.5",
                u32::MAX
            ))
        );
        assert_eq!(
            c.get_str("firstStep"),
            Err("invalid plugin config: \"firstStep\" must be a string, got a number".into())
        );
        assert_eq!(
            c.get_u32("unit"),
            Err("invalid plugin config: \"unit\" must be a number, got a string".into())
        );

        let c = Config::parse(r#"{"n": -1, "m": 4294967296}"#).unwrap();
        assert!(c.get_u32("n").unwrap_err().contains("\"n\""));
        assert!(c.get_u32("m").unwrap_err().contains("\"m\""));

        let e = Config::parse("[1]").unwrap_err();
        assert_eq!(
            e,
            "invalid plugin config: expected a JSON object, got an array"
        );
        let e = Config::parse("{unit: ms}").unwrap_err();
        assert!(e.starts_with("invalid plugin config: invalid JSON"), "{e}");
    }

    #[test]
    fn typed_settings() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Header {
            name: String,
            #[serde(default)]
            exact_match: bool,
        }

        let c = Config::parse(
            r#"{"header": {"name": "x-canary", "exactMatch": true}, "tags": ["a", "b"],
                "bad": {"name": 1}, "extra": {"name": "n", "nmae": "typo"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.get_as::<Header>("header"),
            Ok(Some(Header {
                name: "x-canary".into(),
                exact_match: true
            }))
        );
        assert_eq!(
            c.get_as::<Vec<String>>("tags"),
            Ok(Some(vec!["a".into(), "b".into()]))
        );
        assert_eq!(c.get_as::<Header>("none"), Ok(None));
        let e = c.get_as::<Header>("bad").unwrap_err();
        assert!(
            e.starts_with("invalid plugin config: \"bad\": invalid type: integer `1`"),
            "{e}"
        );
        let e = c.get_as::<Header>("extra").unwrap_err();
        assert!(
            e.starts_with("invalid plugin config: \"extra\": unknown field `nmae`"),
            "{e}"
        );
        let e = c.get_as::<u8>("tags").unwrap_err();
        assert!(e.starts_with("invalid plugin config: \"tags\": "), "{e}");
    }
}
