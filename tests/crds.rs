//! The checked-in CRDs (`crds/`, and the Helm chart's copy) are what the
//! code generates, their schemas are structural (the API server accepts
//! them), and they reject, at `kubectl apply` time, the invalid Canaries the
//! engine rejects wherever OpenAPI can say so, while accepting every example.
//!
//! The schema checks run a small OpenAPI v3 validator below: the subset of
//! keywords the generated schemas use, with the API server's meaning.

use crate::common;

use serde_json::{Value, json};
use sluice_api::load;

const REGENERATE: &str = "regenerate with `cargo run -- crd > crds/sluice.yaml && cp crds/sluice.yaml deploy/chart/sluice/crds/sluice.yaml`";

fn generated() -> String {
    sluice::cli::crds().expect("the CRDs generate")
}

fn yaml_documents(text: &str) -> Vec<Value> {
    load::documents(text).expect("the CRDs are YAML")
}

fn crd(name: &str) -> Value {
    yaml_documents(&generated())
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

/// The `openAPIV3Schema` of the served version of a CRD.
fn schema(crd_name: &str) -> Value {
    let crd = crd(crd_name);
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "{crd_name}: one version");
    versions[0]["schema"]["openAPIV3Schema"].clone()
}

/// The first line where two texts differ, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  checked in: {x}\n  generated:  {y}", i + 1);
        }
    }
    format!(
        "one is a prefix of the other ({} vs {} lines)",
        a.lines().count(),
        b.lines().count()
    )
}

#[test]
fn checked_in_crds_are_what_the_code_generates() {
    let want = generated();
    for path in ["crds/sluice.yaml", "deploy/chart/sluice/crds/sluice.yaml"] {
        let have = common::read(path);
        assert!(
            have == want,
            "{path} is stale: {REGENERATE}\n{}",
            first_difference(&have, &want)
        );
    }
}

#[test]
fn every_crd_is_served_as_v1beta1_of_sluice_dev() {
    let docs = yaml_documents(&generated());
    let mut names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().expect("name"))
        .collect();
    names.sort();
    for must in [
        "alertproviders.sluice.dev",
        "canaries.sluice.dev",
        "metrictemplates.sluice.dev",
        "rolloutplugins.sluice.dev",
    ] {
        assert!(names.contains(&must), "{must} missing from {names:?}");
    }
    for d in &docs {
        assert_eq!(d["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(d["spec"]["group"], "sluice.dev");
        // RolloutPlugins are registered once for the whole cluster.
        let scope = if d["metadata"]["name"] == "rolloutplugins.sluice.dev" {
            "Cluster"
        } else {
            "Namespaced"
        };
        assert_eq!(d["spec"]["scope"], scope, "{}", d["metadata"]["name"]);
        let v = &d["spec"]["versions"][0];
        assert_eq!(v["name"], "v1beta1");
        assert_eq!(v["served"], true);
        assert_eq!(v["storage"], true);
    }
    // The engine writes the Canary status through its subresource.
    let canary = crd("canaries.sluice.dev");
    assert_eq!(
        canary["spec"]["versions"][0]["subresources"]["status"],
        json!({})
    );
}

// ---------------------------------------------------------------------------
// A small OpenAPI v3 validator, with the API server's semantics for the
// keywords the generated schemas use.

/// Every problem of `value` against `schema`, as "path: message".
fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "", &mut errors);
    errors
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut fail = |msg: String| {
        errors.push(format!(
            "{}: {msg}",
            if path.is_empty() { "<root>" } else { path }
        ))
    };
    if value.is_null() {
        if schema["nullable"] != true && schema["x-kubernetes-preserve-unknown-fields"] != true {
            fail("must not be null".into());
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_string()) {
            fail(format!("must be an integer or a string, got {value}"));
        }
        return;
    }
    let type_ok = match schema["type"].as_str() {
        None => true,
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some(other) => {
            fail(format!("unknown type {other}"));
            false
        }
    };
    if !type_ok {
        fail(format!("must be of type {}, got {value}", schema["type"]));
        return;
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        fail(format!("{value} is not one of {}", schema["enum"]));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64()
            && n < min
        {
            fail(format!("{n} is less than the minimum {min}"));
        }
        if let Some(max) = schema["maximum"].as_f64()
            && n > max
        {
            fail(format!("{n} is greater than the maximum {max}"));
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64()
            && chars < min
        {
            fail(format!("{s:?} is shorter than {min}"));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && chars > max
        {
            fail(format!("{s:?} is longer than {max}"));
        }
        if let Some(p) = schema["pattern"].as_str() {
            let re = regex::Regex::new(p).expect("pattern compiles");
            if !re.is_match(s) {
                fail(format!("{s:?} does not match {p}"));
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(map) = value.as_object() {
        if let Some(min) = schema["minProperties"].as_u64()
            && (map.len() as u64) < min
        {
            errors.push(format!("{path}: must have at least {min} properties"));
        }
        if let Some(max) = schema["maxProperties"].as_u64()
            && (map.len() as u64) > max
        {
            errors.push(format!("{path}: must have at most {max} properties"));
        }
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().expect("required names are strings");
            if !map.contains_key(req) {
                errors.push(format!("{path}.{req}: required"));
            }
        }
        for (k, v) in map {
            let sub = if let Some(p) = schema["properties"].get(k) {
                p
            } else if schema["additionalProperties"].is_object() {
                &schema["additionalProperties"]
            } else {
                // The API server prunes unknown fields; nothing to check.
                continue;
            };
            check(sub, v, &format!("{path}.{k}"), errors);
        }
    }
}

/// The rules of structural schemas the API server enforces on a CRD that
/// `schema` (at `path`) breaks.
fn structural_problems(schema: &Value, path: &str, problems: &mut Vec<String>) {
    let typed = schema.get("type").is_some()
        || schema["x-kubernetes-int-or-string"] == true
        || schema["x-kubernetes-preserve-unknown-fields"] == true;
    if !typed {
        problems.push(format!("{path}: no type"));
    }
    for banned in [
        "$ref",
        "definitions",
        "$defs",
        "$schema",
        "const",
        "examples",
    ] {
        if schema.get(banned).is_some() {
            problems.push(format!("{path}: {banned} is not allowed in a CRD schema"));
        }
    }
    for combinator in ["anyOf", "oneOf", "allOf", "not"] {
        if schema.get(combinator).is_some() {
            problems.push(format!(
                "{path}: {combinator} is not structural as generated here"
            ));
        }
    }
    if let Some(t) = schema.get("type")
        && !t.is_string()
    {
        problems.push(format!("{path}: type must be one string, got {t}"));
    }
    if let Some(default) = schema.get("default") {
        // The API server refuses a default that fails its own schema.
        let mut without = schema.clone();
        without.as_object_mut().expect("object").remove("default");
        for e in validate(&without, default) {
            problems.push(format!("{path}: default {default} is invalid: {e}"));
        }
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            structural_problems(v, &format!("{path}.{k}"), problems);
        }
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap_or_default();
            if !props.contains_key(req) {
                problems.push(format!("{path}: required {req} is not a property"));
            }
        }
    }
    if schema.get("items").is_some() {
        structural_problems(&schema["items"], &format!("{path}[]"), problems);
    }
    if schema["additionalProperties"].is_object() {
        structural_problems(
            &schema["additionalProperties"],
            &format!("{path}.*"),
            problems,
        );
    }
}

#[test]
fn every_schema_is_structural_with_valid_defaults() {
    for crd in yaml_documents(&generated()) {
        let name = crd["metadata"]["name"].as_str().expect("name");
        let mut problems = Vec::new();
        structural_problems(&schema(name), name, &mut problems);
        assert!(
            problems.is_empty(),
            "{}\n(a free-form field needs #[schemars(extend(\"x-kubernetes-preserve-unknown-fields\" = true))]; \
             a required field with bounds needs its default removed)",
            problems.join("\n")
        );
    }
}

/// The node at a dotted path of property names ("[]" steps into items).
fn node<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut n = schema;
    for step in path.split('.') {
        n = if step == "[]" {
            &n["items"]
        } else {
            &n["properties"][step]
        };
        assert!(!n.is_null(), "no schema at {path} (stuck at {step})");
    }
    n
}

#[test]
fn canary_schema_carries_the_engine_bounds() {
    let s = schema("canaries.sluice.dev");
    let range = |path: &str, min: f64, max: Option<f64>| {
        let n = node(&s, path);
        assert_eq!(n["minimum"].as_f64(), Some(min), "{path}.minimum");
        assert_eq!(n["maximum"].as_f64(), max, "{path}.maximum");
    };
    for path in [
        "spec.analysis.stepWeight",
        "spec.analysis.maxWeight",
        "spec.analysis.stepWeightPromotion",
        "spec.analysis.mirrorWeight",
        "spec.analysis.stepWeights.[]",
    ] {
        range(path, 1.0, Some(100.0));
    }
    range("spec.analysis.threshold", 1.0, None);
    range("spec.analysis.iterations", 1.0, None);
    range("spec.progressDeadlineSeconds", 1.0, None);
    range("spec.service.port", 1.0, Some(65535.0));
    range("spec.analysis.webhooks.[].retries", 0.0, Some(100.0));
    range(
        "spec.analysis.sessionAffinity.maxAge",
        1.0,
        Some(u32::MAX as f64),
    );

    let required = |path: &str, fields: &[&str]| {
        let n = if path.is_empty() { &s } else { node(&s, path) };
        for f in fields {
            assert!(
                n["required"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!(f))),
                "{path}: {f} is not required: {}",
                n["required"]
            );
            assert!(
                n["properties"][f].get("default").is_none(),
                "{path}.{f}: a required field must not have a default"
            );
        }
    };
    required("spec", &["targetRef", "service"]);
    required("spec.targetRef", &["name"]);
    required("spec.autoscalerRef", &["name"]);
    required("spec.service", &["port"]);
    required("spec.service.gatewayRefs.[]", &["name"]);
    required("spec.analysis.sessionAffinity", &["cookieName"]);
    required("spec.analysis.metrics.[]", &["name"]);
    required("spec.analysis.webhooks.[]", &["name", "url"]);

    for path in [
        "spec.targetRef.name",
        "spec.autoscalerRef.name",
        "spec.service.gatewayRefs.[].name",
        "spec.analysis.sessionAffinity.cookieName",
        "spec.analysis.metrics.[].name",
        "spec.analysis.metrics.[].templateRef.name",
        "spec.analysis.webhooks.[].name",
        "spec.analysis.strategy",
    ] {
        assert_eq!(node(&s, path)["minLength"], 1, "{path}.minLength");
    }
    assert_eq!(
        node(&s, "spec.analysis.webhooks.[].type")["enum"],
        json!([
            "confirm-rollout",
            "pre-rollout",
            "rollout",
            "confirm-traffic-increase",
            "confirm-promotion",
            "post-rollout",
            "rollback",
            "event"
        ])
    );
    assert_eq!(
        node(&s, "spec.analysis.webhooks.[].url")["pattern"],
        "^https?://"
    );
    assert_eq!(
        node(&s, "spec.targetRef.kind")["enum"],
        json!(["Deployment"])
    );
    assert_eq!(
        node(&s, "spec.service.rewrite.type")["enum"],
        json!(["ReplaceFullPath", "ReplacePrefixMatch"])
    );
    let string_match = node(&s, "spec.analysis.match.[].headers")["additionalProperties"].clone();
    assert_eq!(string_match["minProperties"], 1);
    assert_eq!(string_match["maxProperties"], 1);
    assert_eq!(node(&s, "spec.analysis.match.[]")["minProperties"], 1);
    for free_form in [
        "spec.analysis.strategyConfig",
        "spec.analysis.metrics.[].evaluatorConfig",
    ] {
        assert_eq!(
            node(&s, free_form)["x-kubernetes-preserve-unknown-fields"],
            true,
            "{free_form}"
        );
    }
}

/// Every Canary and MetricTemplate manifest of the repository, as
/// `sluice.dev/v1beta1` JSON, with its file name.
fn example_manifests() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for dir in ["examples", "tests/fixtures/seed"] {
        let mut files: Vec<_> = std::fs::read_dir(common::repo_root().join(dir))
            .expect("examples dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).expect("read");
            // A fragment (e.g. spec.service.corsPolicy) is checked merged
            // into the guide's Canary, as a user would write it.
            let fragment = text.starts_with("# fragment");
            for mut doc in load::documents(&text).expect("documents") {
                if !matches!(doc["kind"].as_str(), Some("Canary" | "MetricTemplate")) {
                    continue;
                }
                if fragment {
                    let mut whole = edited_canary(|_| {});
                    merge(&mut whole, &doc);
                    doc = whole;
                }
                doc["apiVersion"] = json!("sluice.dev/v1beta1");
                out.push((path.display().to_string(), doc));
            }
        }
    }
    out
}

#[test]
fn schemas_accept_every_example() {
    let examples = example_manifests();
    assert!(
        examples
            .iter()
            .filter(|(_, d)| d["kind"] == "Canary")
            .count()
            >= 8,
        "the examples were found"
    );
    for (file, doc) in examples {
        let crd = match doc["kind"].as_str() {
            Some("Canary") => "canaries.sluice.dev",
            _ => "metrictemplates.sluice.dev",
        };
        let errors = validate(&schema(crd), &doc);
        assert!(errors.is_empty(), "{file}: {}", errors.join("; "));
    }
}

/// Merges `patch` into `base`, objects key by key (a JSON merge patch).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// The guide's Canary, with `edit` applied to its JSON.
fn edited_canary(edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc = load::documents(&common::read("tests/fixtures/seed/podinfo-canary.yaml"))
        .expect("documents")
        .remove(0);
    doc["apiVersion"] = json!("sluice.dev/v1beta1");
    edit(&mut doc);
    doc
}

#[test]
fn schema_rejects_what_the_engine_rejects() {
    let schema = schema("canaries.sluice.dev");
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit)> = vec![
        ("stepWeight 0", |d| {
            d["spec"]["analysis"]["stepWeight"] = json!(0)
        }),
        ("stepWeight 101", |d| {
            d["spec"]["analysis"]["stepWeight"] = json!(101)
        }),
        ("maxWeight 0", |d| {
            d["spec"]["analysis"]["maxWeight"] = json!(0)
        }),
        ("maxWeight 101", |d| {
            d["spec"]["analysis"]["maxWeight"] = json!(101)
        }),
        ("stepWeights with 0", |d| {
            let a = d["spec"]["analysis"].as_object_mut().expect("analysis");
            a.remove("stepWeight");
            a.insert("stepWeights".into(), json!([0, 10]));
        }),
        ("stepWeightPromotion 200", |d| {
            d["spec"]["analysis"]["stepWeightPromotion"] = json!(200)
        }),
        ("threshold 0", |d| {
            d["spec"]["analysis"]["threshold"] = json!(0)
        }),
        ("iterations 0", |d| {
            d["spec"]["analysis"]["iterations"] = json!(0)
        }),
        ("mirrorWeight 101", |d| {
            d["spec"]["analysis"]["mirror"] = json!(true);
            d["spec"]["analysis"]["mirrorWeight"] = json!(101);
        }),
        ("progressDeadlineSeconds 0", |d| {
            d["spec"]["progressDeadlineSeconds"] = json!(0)
        }),
        ("no targetRef", |d| {
            d["spec"].as_object_mut().expect("spec").remove("targetRef");
        }),
        ("no targetRef.name", |d| {
            d["spec"]["targetRef"]
                .as_object_mut()
                .expect("targetRef")
                .remove("name");
        }),
        ("empty targetRef.name", |d| {
            d["spec"]["targetRef"]["name"] = json!("")
        }),
        ("targetRef.kind DaemonSet", |d| {
            d["spec"]["targetRef"]["kind"] = json!("DaemonSet")
        }),
        ("empty autoscalerRef.name", |d| {
            d["spec"]["autoscalerRef"]["name"] = json!("")
        }),
        ("no service", |d| {
            d["spec"].as_object_mut().expect("spec").remove("service");
        }),
        ("service.port 0", |d| {
            d["spec"]["service"]["port"] = json!(0)
        }),
        ("service.port 70000", |d| {
            d["spec"]["service"]["port"] = json!(70000)
        }),
        ("gatewayRef without name", |d| {
            d["spec"]["service"]["gatewayRefs"] = json!([{ "namespace": "istio-ingress" }])
        }),
        ("rewrite.type typo", |d| {
            d["spec"]["service"]["rewrite"] = json!({ "uri": "/", "type": "ReplacePrefix" })
        }),
        ("webhook type typo", |d| {
            d["spec"]["analysis"]["webhooks"][0]["type"] = json!("pre-rolout")
        }),
        ("webhook url not http", |d| {
            d["spec"]["analysis"]["webhooks"][0]["url"] = json!("ftp://loadtester/")
        }),
        ("webhook without url", |d| {
            d["spec"]["analysis"]["webhooks"][0]
                .as_object_mut()
                .expect("webhook")
                .remove("url");
        }),
        ("webhook retries 101", |d| {
            d["spec"]["analysis"]["webhooks"][0]["retries"] = json!(101)
        }),
        ("empty metric name", |d| {
            d["spec"]["analysis"]["metrics"][0]["name"] = json!("")
        }),
        ("empty templateRef name", |d| {
            d["spec"]["analysis"]["metrics"][0]["templateRef"]["name"] = json!("")
        }),
        ("empty match", |d| {
            d["spec"]["analysis"]["iterations"] = json!(10);
            d["spec"]["analysis"]["match"] = json!([{}]);
        }),
        ("string match with two kinds", |d| {
            d["spec"]["analysis"]["iterations"] = json!(10);
            d["spec"]["analysis"]["match"] =
                json!([{ "headers": { "x-canary": { "exact": "insider", "prefix": "in" } } }]);
        }),
        ("string match with none", |d| {
            d["spec"]["analysis"]["iterations"] = json!(10);
            d["spec"]["analysis"]["match"] = json!([{ "headers": { "x-canary": {} } }]);
        }),
        ("sessionAffinity without cookieName", |d| {
            d["spec"]["analysis"]["sessionAffinity"] = json!({ "maxAge": 60 })
        }),
        ("sessionAffinity maxAge 0", |d| {
            d["spec"]["analysis"]["sessionAffinity"] =
                json!({ "cookieName": "canary", "maxAge": 0 })
        }),
        ("empty strategy", |d| {
            d["spec"]["analysis"]["strategy"] = json!("")
        }),
    ];
    // The unedited Canary passes both, so each rejection is the edit's.
    let valid = edited_canary(|_| {});
    assert_eq!(validate(&schema, &valid), Vec::<String>::new());
    load::canary_from_yaml(&serde_json::to_string(&valid).expect("json"))
        .expect("parses")
        .settings()
        .expect("the engine accepts the guide's Canary");

    for (what, edit) in cases {
        let doc = edited_canary(edit);
        let by_schema = validate(&schema, &doc);
        assert!(!by_schema.is_empty(), "{what}: the schema accepts it");
        let canary = load::canary_from_yaml(&serde_json::to_string(&doc).expect("json"))
            .unwrap_or_else(|e| panic!("{what}: the engine must still read it: {e:#}"));
        assert!(
            canary.settings().is_err(),
            "{what}: the schema rejects it ({by_schema:?}) but the engine accepts it"
        );
    }
}
