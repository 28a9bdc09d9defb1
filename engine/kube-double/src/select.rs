//! `labelSelector` and `fieldSelector` of lists, watches and collection
//! deletes.
//!
//! Label selectors: equality (`a=b`, `a==b`, `a!=b`), existence (`a`,
//! `!a`) and sets (`a in (x,y)`, `a notin (x)`), as the API server parses
//! them. Field selectors: `=`, `==` and `!=` on any dotted path
//! (`metadata.name`, `metadata.namespace`, `spec.x`); the API server allows
//! only a few fields per kind and refuses the rest, the double is lenient.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    /// Field selectors read dotted paths of the object; label selectors
    /// read `metadata.labels`.
    fields: bool,
}

impl Selector {
    pub fn labels(text: &str) -> Result<Self, ApiError> {
        Self::parse(text, false)
    }

    pub fn fields(text: &str) -> Result<Self, ApiError> {
        Self::parse(text, true)
    }

    fn parse(text: &str, fields: bool) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for term in split_top_level(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_term(term, fields)?);
        }
        Ok(Self {
            requirements,
            fields,
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let value = |key: &str| self.value(object, key);
            match r {
                Requirement::Equals(k, v) => value(k).as_deref() == Some(v.as_str()),
                Requirement::NotEquals(k, v) => value(k).as_deref() != Some(v.as_str()),
                Requirement::Exists(k) => value(k).is_some(),
                Requirement::NotExists(k) => value(k).is_none(),
                Requirement::In(k, vs) => value(k).is_some_and(|x| vs.contains(&x)),
                Requirement::NotIn(k, vs) => !value(k).is_some_and(|x| vs.contains(&x)),
            }
        })
    }

    fn value(&self, object: &Value, key: &str) -> Option<String> {
        let found = if self.fields {
            key.split('.')
                .try_fold(object, |node, k| node.as_object()?.get(k))
        } else {
            object.pointer("/metadata/labels").and_then(|l| l.get(key))
        };
        match found? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Splits on commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_term(term: &str, fields: bool) -> Result<Requirement, ApiError> {
    let invalid = || ApiError::bad_request(format!("unable to parse requirement: {term:?}"));
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(k.trim().into(), v.trim().into()));
    }
    if fields {
        return Err(invalid());
    }
    for (op, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((k, rest)) = term.split_once(op) {
            let list = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(invalid)?;
            let values = list.split(',').map(|v| v.trim().to_string()).collect();
            let key = k.trim().to_string();
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    match term.strip_prefix('!') {
        Some(k) => Ok(Requirement::NotExists(k.trim().into())),
        None if !term.contains(char::is_whitespace) => Ok(Requirement::Exists(term.into())),
        None => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let obj = json!({"metadata": {"name": "a", "labels": {"app": "x", "tier": "web"}}});
        for (sel, want) in [
            ("app=x", true),
            ("app==x,tier=web", true),
            ("app!=x", false),
            ("app in (y, x),!missing", true),
            ("tier notin (web)", false),
            ("missing", false),
            ("", true),
        ] {
            assert_eq!(Selector::labels(sel).unwrap().matches(&obj), want, "{sel}");
        }
    }

    #[test]
    fn field_selectors() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}});
        assert!(
            Selector::fields("metadata.name=a,metadata.namespace=ns")
                .unwrap()
                .matches(&obj)
        );
        assert!(!Selector::fields("metadata.name!=a").unwrap().matches(&obj));
        assert!(Selector::fields("metadata.name").is_err());
    }
}
