//! PATCH bodies other than server-side apply.
//!
//! - `application/merge-patch+json`: RFC 7386, as the API server does it.
//! - `application/strategic-merge-patch+json`: **simplified** to a merge
//!   patch. The API server merges lists that declare a patch strategy (e.g.
//!   `containers`, keyed by `name`) item by item and understands `$patch`
//!   directives; here every list is replaced whole and directives are
//!   ordinary keys.
//! - `application/json-patch+json`: RFC 6902 through the `json-patch` crate,
//!   except that `test` of `null` passes on a missing path, as in the API
//!   server (its JSON-patch library reads a missing value as null; kube-rs'
//!   finalizer helper relies on it with `test /metadata/finalizers null`).

use serde_json::Value;

use crate::error::ApiError;

/// What a PATCH's `Content-Type` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    StrategicMerge,
    Json,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::StrategicMerge),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            _ => Err(ApiError::unsupported_media_type(content_type)),
        }
    }
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else
/// replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch_map {
        if value.is_null() {
            target_map.remove(key);
        } else {
            merge(target_map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Applies an RFC 6902 patch to `target` (all or nothing). A failed `test`
/// or a bad path is 422, as from the API server.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch must be an array of operations"))?;
    // `test` of null on a missing path passes: drop such operations.
    let kept: Vec<Value> = ops
        .iter()
        .filter(|op| {
            let is_null_test = op.get("op").and_then(Value::as_str) == Some("test")
                && op.get("value").is_some_and(Value::is_null);
            let missing = op
                .get("path")
                .and_then(Value::as_str)
                .is_some_and(|p| target.pointer(p).is_none());
            !(is_null_test && missing)
        })
        .cloned()
        .collect();
    let parsed: json_patch::Patch = serde_json::from_value(Value::Array(kept))
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &parsed).map_err(|e| ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("the JSON patch could not be applied: {e}"),
        details: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge(&mut doc, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_null_test_passes_on_missing_path() {
        let mut doc = json!({"metadata": {}});
        json_patch(
            &mut doc,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]),
        )
        .unwrap();
        assert_eq!(doc, json!({"metadata": {"finalizers": ["x"]}}));
        let err = json_patch(
            &mut doc,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null}]),
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
    }
}
