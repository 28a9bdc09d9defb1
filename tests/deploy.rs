//! The deployment manifests (`deploy/kustomize`, the Helm chart in
//! `deploy/chart/sluice`, `deploy/Dockerfile`) agree with the code: the
//! ClusterRoles grant exactly `RBAC_RULES`, the operator's configuration
//! parses with `sluice run`, probes and metrics point at what the operator
//! serves, and versions match the workspace's.
//!
//! The Helm templates are not rendered (no Helm here): the ClusterRole's
//! rules are kept free of templating and parsed as they are, and the rest
//! is checked statically (every `.Values` path exists, blocks balance, the
//! Deployment sets the same variables as the plain manifests).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use clap::Parser;
use serde_json::Value;
use sluice::cli::{Cli, Command};
use sluice_api::load;
use sluice_operator::kube_cluster::RBAC_RULES;

const KUSTOMIZE: &str = "deploy/kustomize";
const CHART: &str = "deploy/chart/sluice";

fn yaml(path: &str) -> Value {
    let docs = load::documents(&common::read(path)).unwrap_or_else(|e| panic!("{path}: {e:#}"));
    assert_eq!(docs.len(), 1, "{path}: one document");
    docs.into_iter().next().expect("one document")
}

fn kustomization() -> Value {
    yaml(&format!("{KUSTOMIZE}/kustomization.yaml"))
}

/// The plain manifests listed by the kustomization, by kind.
fn kustomize_objects() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for r in kustomization()["resources"].as_array().expect("resources") {
        let r = r.as_str().expect("resource path");
        if r.starts_with("..") {
            continue;
        }
        let doc = yaml(&format!("{KUSTOMIZE}/{r}"));
        let kind = doc["kind"].as_str().expect("kind").to_string();
        assert!(out.insert(kind.clone(), doc).is_none(), "two {kind}s");
    }
    out
}

/// A rule set as (apiGroup, resource, verb) triples.
type Grants = BTreeSet<(String, String, String)>;

fn expected_grants() -> Grants {
    RBAC_RULES
        .iter()
        .flat_map(|r| {
            r.verbs.iter().map(|v| {
                (
                    r.api_group.to_string(),
                    r.resource.to_string(),
                    v.to_string(),
                )
            })
        })
        .collect()
}

/// The grants of a ClusterRole's `rules`, refusing anything wider than a
/// list of groups, resources and verbs.
fn grants(rules: &Value, source: &str) -> Grants {
    let mut out = Grants::new();
    for rule in rules
        .as_array()
        .unwrap_or_else(|| panic!("{source}: rules"))
    {
        let rule = rule.as_object().expect("rule");
        for key in rule.keys() {
            assert!(
                ["apiGroups", "resources", "verbs"].contains(&key.as_str()),
                "{source}: {key} is not allowed in the operator's rules"
            );
        }
        let list = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap_or_else(|| panic!("{source}: {k}"))
                .iter()
                .map(|v| v.as_str().expect("string").to_string())
                .collect()
        };
        for group in list("apiGroups") {
            for resource in list("resources") {
                for verb in list("verbs") {
                    assert!(
                        !group.contains('*') && !resource.contains('*') && verb != "*",
                        "{source}: wildcards grant more than the code uses"
                    );
                    assert!(
                        out.insert((group.clone(), resource.clone(), verb)),
                        "{source}: {group}/{resource} granted twice"
                    );
                }
            }
        }
    }
    out
}

/// How to print the expected rules, for a failure message.
fn rules_yaml() -> String {
    let mut s = String::from("rules:\n");
    for r in RBAC_RULES {
        let verbs: Vec<String> = r.verbs.iter().map(|v| format!("{v:?}")).collect();
        s.push_str(&format!(
            "  - apiGroups: [{:?}]\n    resources: [{:?}]\n    verbs: [{}]\n",
            r.api_group,
            r.resource,
            verbs.join(", ")
        ));
    }
    s
}

fn assert_same_grants(have: &Grants, source: &str) {
    let want = expected_grants();
    let missing: Vec<_> = want.difference(have).collect();
    let extra: Vec<_> = have.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{source} differs from sluice_operator::kube_cluster::RBAC_RULES\nmissing: {missing:?}\nextra: {extra:?}\nexpected:\n{}",
        rules_yaml()
    );
}

#[test]
fn kustomize_cluster_role_grants_exactly_rbac_rules() {
    let role = &kustomize_objects()["ClusterRole"];
    assert_same_grants(
        &grants(&role["rules"], "deploy/kustomize/clusterrole.yaml"),
        "deploy/kustomize/clusterrole.yaml",
    );
}

/// The `rules:` block of the chart's ClusterRole, which has no templating.
fn chart_rules() -> Value {
    let path = format!("{CHART}/templates/clusterrole.yaml");
    let text = common::read(&path);
    let start = text
        .find("\nrules:")
        .unwrap_or_else(|| panic!("{path}: no rules block"));
    let block = &text[start + 1..];
    assert!(
        !block.contains("{{"),
        "{path}: keep the rules block free of templating"
    );
    load::documents(block).expect("rules parse")[0]["rules"].clone()
}

#[test]
fn chart_cluster_role_grants_exactly_rbac_rules() {
    let path = format!("{CHART}/templates/clusterrole.yaml");
    assert_same_grants(&grants(&chart_rules(), &path), &path);
    // And in the same order and shape as the plain manifests.
    assert_eq!(chart_rules(), kustomize_objects()["ClusterRole"]["rules"]);
}

#[test]
fn kustomize_objects_fit_together() {
    let k = kustomization();
    let namespace = k["namespace"].as_str().expect("namespace");
    let objects = kustomize_objects();
    assert_eq!(objects["Namespace"]["metadata"]["name"], namespace);

    let sa = objects["ServiceAccount"]["metadata"]["name"].clone();
    let role = &objects["ClusterRole"]["metadata"]["name"];
    let binding = &objects["ClusterRoleBinding"];
    assert_eq!(&binding["roleRef"]["name"], role);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], sa);
    assert_eq!(subjects[0]["namespace"], namespace);

    let deployment = &objects["Deployment"];
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["spec"]["serviceAccountName"], sa);
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);

    // The metrics Service selects the operator's pods and its port.
    let service = &objects["Service"];
    let labels = pod["metadata"]["labels"].as_object().expect("labels");
    for (k, v) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(labels.get(k), Some(v), "Service selector {k}");
    }
    let port = &service["spec"]["ports"][0];
    assert_eq!(port["port"], 8080);
    assert_eq!(port["targetPort"], "http");
    assert_eq!(
        service["metadata"]["annotations"]["prometheus.io/path"],
        "/metrics"
    );

    // The CRDs come from crds/, generated by `sluice crd`.
    let resources = k["resources"].as_array().expect("resources");
    assert!(resources.iter().any(|r| r == "../../crds"));
    let crds = yaml("crds/kustomization.yaml");
    assert_eq!(crds["resources"], serde_json::json!(["sluice.yaml"]));
    for r in resources {
        let r = r.as_str().expect("path");
        let p = common::repo_root().join(KUSTOMIZE).join(r);
        assert!(p.exists(), "{KUSTOMIZE}/{r} does not exist");
    }
}

fn container(deployment: &Value) -> &Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    assert_eq!(containers.len(), 1);
    &containers[0]
}

#[test]
fn probes_and_metrics_use_the_operators_port() {
    let objects = kustomize_objects();
    let c = container(&objects["Deployment"]);
    let ports = c["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["name"], "http");
    assert_eq!(ports[0]["containerPort"], 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);

    let chart = common::read(&format!("{CHART}/templates/deployment.yaml"));
    for must in [
        "path: /healthz",
        "path: /readyz",
        "containerPort: 8080",
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
    ] {
        assert!(chart.contains(must), "chart Deployment lacks {must:?}");
    }
}

/// The `sluice run` invocation a container of the Deployment makes: the
/// image's entrypoint, its args, and every environment variable that is a
/// flag of `run` turned into that flag (the value of a `valueFrom` is
/// made up). Variables that are not flags must be ones `main` reads.
fn run_invocation(c: &Value) -> Vec<String> {
    let mut argv = vec!["sluice".to_string(), "run".to_string()];
    for a in c["args"].as_array().into_iter().flatten() {
        argv.push(a.as_str().expect("arg").to_string());
    }
    // Built, so that each argument's action and arity are final.
    let mut cli = <Cli as clap::CommandFactory>::command();
    cli.build();
    let run = cli.find_subcommand("run").expect("`sluice run` exists");
    for e in c["env"].as_array().expect("env") {
        let name = e["name"].as_str().expect("name");
        let value = match e["value"].as_str() {
            Some(v) => v.to_string(),
            None => {
                assert!(e["valueFrom"].is_object(), "{name} has no value");
                format!("{}-from-the-downward-api", name.to_lowercase())
            }
        };
        match name {
            "SLUICE_LOG" => continue,
            "SLUICE_LOG_FORMAT" => {
                assert!(["json", "text"].contains(&value.as_str()), "{value}");
                continue;
            }
            _ => {}
        }
        let arg = run
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|env| env == name))
            .unwrap_or_else(|| panic!("{name} is not read by `sluice run`"));
        let long = arg.get_long().expect("a long flag");
        if !arg.get_action().takes_values() {
            // A switch: its variable must read as a boolean.
            assert!(
                ["true", "false"].contains(&value.as_str()),
                "{name}={value}"
            );
            if value == "true" {
                argv.push(format!("--{long}"));
            }
        } else {
            argv.push(format!("--{long}={value}"));
        }
    }
    argv
}

#[test]
fn the_plain_deployment_configures_sluice_run() {
    let objects = kustomize_objects();
    let deployment = &objects["Deployment"];
    let c = container(deployment);
    let argv = run_invocation(c);
    let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let Command::Run(args) = cli.command else {
        panic!("not `sluice run`")
    };
    assert_eq!(args.listen.port(), 8080, "probes and metrics are on 8080");
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let cache = args.plugin_cache.expect("a plugin cache");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str() == cache.to_str()),
        "the plugin cache {cache:?} is on a volume (the root file system is read-only)"
    );
    let replicas = deployment["spec"]["replicas"].as_i64().expect("replicas");
    assert!(
        replicas == 1 || args.leader_election,
        "more than one replica needs leader election"
    );
}

/// Environment variable names a manifest sets on its container.
fn env_names(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"(?m)^\s*- name: ([A-Z][A-Z0-9_]*)\s*$").expect("regex");
    re.captures_iter(text).map(|c| c[1].to_string()).collect()
}

#[test]
fn the_chart_sets_what_the_plain_deployment_sets() {
    let chart = env_names(&common::read(&format!("{CHART}/templates/deployment.yaml")));
    let plain = env_names(&common::read(&format!("{KUSTOMIZE}/deployment.yaml")));
    let only_chart: BTreeSet<_> = chart.difference(&plain).collect();
    let only_plain: BTreeSet<_> = plain.difference(&chart).collect();
    assert!(
        only_plain.is_empty(),
        "the chart does not set {only_plain:?}"
    );
    // The chart's extra knobs must be real flags of `sluice run` too.
    let cli = <Cli as clap::CommandFactory>::command();
    let run = cli.find_subcommand("run").expect("run");
    for name in only_chart {
        assert!(
            run.get_arguments()
                .any(|a| a.get_env().is_some_and(|env| env == name.as_str())),
            "the chart sets {name}, which `sluice run` does not read"
        );
    }
}

/// Looks a dotted path up in the chart's values.
fn has_value(values: &Value, path: &str) -> bool {
    let mut v = values;
    for step in path.split('.') {
        match v.get(step) {
            Some(next) => v = next,
            None => return false,
        }
    }
    true
}

#[test]
fn chart_templates_only_use_defined_values_and_balance() {
    let values = yaml(&format!("{CHART}/values.yaml"));
    let value_ref = regex::Regex::new(r"\.Values\.([A-Za-z0-9_.]+)").expect("regex");
    let opener = regex::Regex::new(r"\{\{-?\s*(if|with|range|define)\b").expect("regex");
    let closer = regex::Regex::new(r"\{\{-?\s*end\s*-?\}\}").expect("regex");
    let dir = common::repo_root().join(CHART).join("templates");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("templates")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let name = path.display();
        for c in value_ref.captures_iter(&text) {
            let p = c[1].trim_end_matches('.');
            assert!(
                has_value(&values, p),
                "{name}: .Values.{p} is not in values.yaml"
            );
        }
        assert_eq!(
            text.matches("{{").count(),
            text.matches("}}").count(),
            "{name}: unbalanced braces"
        );
        assert_eq!(
            opener.find_iter(&text).count(),
            closer.find_iter(&text).count(),
            "{name}: every if/with/range/define needs its end"
        );
    }
    for key in [
        "image.repository",
        "image.tag",
        "prometheus.address",
        "log.level",
        "log.format",
        "leaderElection.enabled",
        "replicas",
        "resources",
        "plugins.timeoutMs",
        "plugins.memoryMiB",
        "plugins.cache.enabled",
        "plugins.cache.sizeLimit",
    ] {
        assert!(has_value(&values, key), "values.yaml lacks {key}");
    }
    // The defaults match the operator's own.
    assert_eq!(values["plugins"]["timeoutMs"], 100);
    assert_eq!(values["plugins"]["memoryMiB"], 64);
}

/// `version` of `[workspace.package]` in the top-level Cargo.toml.
fn workspace_field(field: &str) -> String {
    let text = common::read("Cargo.toml");
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .expect("[workspace.package]");
    let re = regex::Regex::new(&format!(r#"(?m)^{field}\s*=\s*"([^"]+)""#)).expect("regex");
    re.captures(section).unwrap_or_else(|| panic!("no {field}"))[1].to_string()
}

#[test]
fn versions_match_the_workspace() {
    let version = workspace_field("version");
    let chart = yaml(&format!("{CHART}/Chart.yaml"));
    assert_eq!(
        chart["appVersion"],
        version.as_str(),
        "Chart.yaml appVersion"
    );
    assert_eq!(chart["name"], "sluice");
    assert_eq!(chart["apiVersion"], "v2");
    let images = kustomization()["images"].clone();
    assert_eq!(images[0]["name"], "sluice");
    assert_eq!(
        images[0]["newTag"],
        version.as_str(),
        "kustomization image tag"
    );
}

#[test]
fn dockerfile_builds_the_plugins_and_runs_the_operator_unprivileged() {
    let text = common::read("deploy/Dockerfile");
    let rust = workspace_field("rust-version");
    let from: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "a builder and a runtime stage: {from:?}");
    assert!(
        from[0].starts_with(&format!("FROM rust:{rust}")),
        "the builder uses the workspace's Rust {rust}: {}",
        from[0]
    );
    for must in [
        "rustup target add wasm32-wasip2",
        "cargo build --release --locked",
        r#"ENTRYPOINT ["/usr/local/bin/sluice", "run"]"#,
        "EXPOSE 8080",
    ] {
        assert!(text.contains(must), "deploy/Dockerfile lacks {must:?}");
    }
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER");
    assert!(!user.contains("root") || user.contains("nonroot"), "{user}");
    assert!(!user.trim_start_matches("USER ").starts_with('0'), "{user}");
    // Both stages on the same Debian release: the binary links against the
    // builder's glibc.
    let debian = |l: &str| -> Option<&'static str> {
        ["bookworm", "debian12", "trixie", "debian13"]
            .into_iter()
            .find(|d| l.contains(d))
    };
    let release = |d: &str| {
        if d == "bookworm" || d == "debian12" {
            12
        } else {
            13
        }
    };
    let (b, r) = (
        debian(from[0]).expect("builder's Debian release"),
        debian(from[1]).expect("runtime's Debian release"),
    );
    assert_eq!(release(b), release(r), "{from:?}");
}
