//! Which contract a component implements, read from its import and export
//! names, so that the host refuses a plugin built for another world or
//! another version of `sluice:plugin` with a message that names both sides,
//! instead of a linker error.

use std::fmt;

use wasmparser::{Parser, Payload};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The WIT package of the contract.
pub(crate) const PACKAGE: &str = "sluice:plugin";
/// Versions the host accepts: 0.1 (`wit/plugin.wit`) and 0.2
/// (`wit/v0.2/plugin.wit`), any patch of each (0.x is unstable: a new
/// minor may break, so each minor has its own bindings).
pub(crate) const ACCEPTS: &str = "0.1.x and 0.2.x";

/// A contract version the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V0_1,
    V0_2,
}

impl Version {
    /// The version `version` (a semver string) belongs to, if the host
    /// runs it.
    fn of(version: &str) -> Option<Version> {
        let mut parts = version.split('.');
        match (parts.next(), parts.next()) {
            (Some("0"), Some("1")) => Some(Version::V0_1),
            (Some("0"), Some("2")) => Some(Version::V0_2),
            _ => None,
        }
    }
}

/// The `sluice:plugin` interfaces a plugin may import: the log function and
/// the type-only interfaces.
const HOST_INTERFACES: [&str; 4] = ["log", "types", "strategy-types", "evaluator-types"];

/// The two kinds of plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    Strategy,
    Evaluator,
}

impl World {
    /// The interface a plugin of this world exports.
    fn export(self) -> &'static str {
        match self {
            World::Strategy => "rollout",
            World::Evaluator => "judge",
        }
    }

    /// "a strategy", "an evaluator".
    pub fn with_article(self) -> &'static str {
        match self {
            World::Strategy => "a strategy",
            World::Evaluator => "an evaluator",
        }
    }

    fn of_export(interface: &str) -> Option<World> {
        match interface {
            "rollout" => Some(World::Strategy),
            "judge" => Some(World::Evaluator),
            _ => None,
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Strategy => "strategy",
            World::Evaluator => "evaluator",
        })
    }
}

/// What a component says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contract {
    /// The world its `sluice:plugin` export belongs to, if any.
    pub world: Option<World>,
    /// The `sluice:plugin` version it targets, if it names one.
    pub version: Option<String>,
    pub(crate) imports: Vec<String>,
    pub(crate) exports: Vec<String>,
}

/// Splits "sluice:plugin/rollout@0.1.0" into ("rollout", Some("0.1.0")).
fn sluice_interface(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(match rest.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (rest, None),
    })
}

/// Reads the contract of a compiled component.
pub fn inspect(engine: &Engine, component: &Component) -> Contract {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let mut world = None;
    let mut version = None;
    for name in &exports {
        if let Some((interface, v)) = sluice_interface(name)
            && let Some(w) = World::of_export(interface)
        {
            world = Some(w);
            version = v.map(String::from);
        }
    }
    Contract {
        world,
        version,
        imports,
        exports,
    }
}

/// Why a component is not a plugin this host can run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "it exports no {PACKAGE} interface (exports: {exports}); build it with the Sluice plugin SDK for the {expected} world"
    )]
    NotAPlugin { exports: String, expected: World },
    #[error("it is {} plugin (it exports {PACKAGE}/{}), not {} plugin", .found.with_article(), .found.export(), .expected.with_article())]
    WrongWorld { found: World, expected: World },
    #[error(
        "it targets {PACKAGE}@{0}; this host supports {PACKAGE}@{ACCEPTS}: rebuild it with the SDK of one of those versions"
    )]
    Version(String),
    #[error("its {PACKAGE} export has no version; this host supports {PACKAGE}@{ACCEPTS}")]
    NoVersion,
    #[error(
        "it imports {0}, which the host does not provide: plugins get WASI 0.2 io, clocks, random, cli, filesystem and sockets only, as deterministic stand-ins; rebuild it without that import (componentize-js: --disable http fetch-event)"
    )]
    WasiImport(String),
    #[error(
        "it imports {0}, which the host does not provide (plugins get only {PACKAGE}/log and a WASI without capabilities)"
    )]
    Import(String),
}

/// Checks that `contract` is the `expected` world at a version this host
/// accepts, and imports nothing the host does not provide (its
/// `sluice:plugin` imports of its own version only); returns the version.
pub fn check(contract: &Contract, expected: World) -> Result<Version, ContractError> {
    let Some(world) = contract.world else {
        return Err(ContractError::NotAPlugin {
            exports: list(&contract.exports),
            expected,
        });
    };
    if world != expected {
        return Err(ContractError::WrongWorld {
            found: world,
            expected,
        });
    }
    let version = match &contract.version {
        Some(v) => Version::of(v).ok_or_else(|| ContractError::Version(v.clone()))?,
        None => return Err(ContractError::NoVersion),
    };
    for import in &contract.imports {
        if import.starts_with("wasi:") && !super::sandbox::links(import) {
            return Err(ContractError::WasiImport(import.clone()));
        }
        let provided = import.starts_with("wasi:")
            || sluice_interface(import).is_some_and(|(i, v)| {
                HOST_INTERFACES.contains(&i) && v.and_then(Version::of) == Some(version)
            });
        if !provided {
            return Err(ContractError::Import(import.clone()));
        }
    }
    Ok(version)
}

/// The names a component imports at its top level, read from its bytes
/// without compiling it; `None` when they are not a readable component
/// (compiling it then says why).
pub(crate) fn top_level_imports(wasm: &[u8]) -> Option<Vec<String>> {
    let mut depth = 0usize;
    let mut imports = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.ok()?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Some(imports)
}

/// The first of `imports` that no plugin gets, whatever its world and
/// contract version: a WASI interface the sandbox does not link, or an
/// interface of another package. [`check`] refuses each of them too; this
/// lets the host refuse such a component before it spends seconds and
/// hundreds of MiB compiling it.
pub(crate) fn refused_import(imports: &[String]) -> Option<ContractError> {
    imports.iter().find_map(|import| {
        if import.starts_with("wasi:") {
            (!super::sandbox::links(import)).then(|| ContractError::WasiImport(import.clone()))
        } else if sluice_interface(import).is_none_or(|(i, _)| !HOST_INTERFACES.contains(&i)) {
            Some(ContractError::Import(import.clone()))
        } else {
            None
        }
    })
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(world: Option<World>, version: Option<&str>, imports: &[&str]) -> Contract {
        Contract {
            world,
            version: version.map(String::from),
            imports: imports.iter().map(|s| s.to_string()).collect(),
            exports: vec!["sluice:plugin/rollout@0.1.0".into()],
        }
    }

    fn accepts(version: &str) -> bool {
        Version::of(version).is_some()
    }

    #[test]
    fn versions() {
        assert!(accepts("0.1.0"));
        assert!(accepts("0.1.7"));
        assert!(accepts("0.2.0"));
        assert!(!accepts("0.3.0"));
        assert!(!accepts("1.1.0"));
        assert_eq!(
            sluice_interface("sluice:plugin/rollout@0.1.0"),
            Some(("rollout", Some("0.1.0")))
        );
        assert_eq!(sluice_interface("wasi:cli/stdout@0.2.0"), None);
    }

    #[test]
    fn imports_no_plugin_gets_are_found_without_compiling() {
        let weighted = crate::builtin::strategy("weighted").expect("built in");
        let imports = top_level_imports(weighted).expect("a component");
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with("sluice:plugin/types@")),
            "{imports:?}"
        );
        assert_eq!(refused_import(&imports), None);
        assert_eq!(top_level_imports(b"not wasm"), None);
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            refused_import(&names(&["wasi:io/poll@0.2.6", "wasi:http/types@0.2.6"])),
            Some(ContractError::WasiImport("wasi:http/types@0.2.6".into()))
        );
        assert_eq!(
            refused_import(&names(&["acme:net/http@1.0.0"])),
            Some(ContractError::Import("acme:net/http@1.0.0".into()))
        );
        assert_eq!(
            refused_import(&names(&["sluice:plugin/secrets@0.2.0"])),
            Some(ContractError::Import("sluice:plugin/secrets@0.2.0".into()))
        );
    }

    #[test]
    fn refusals_name_both_sides() {
        let wasi = ["wasi:cli/environment@0.2.3", "sluice:plugin/log@0.1.0"];
        assert_eq!(
            check(
                &contract(Some(World::Strategy), Some("0.1.0"), &wasi),
                World::Strategy
            ),
            Ok(Version::V0_1)
        );
        assert_eq!(
            check(
                &contract(Some(World::Strategy), Some("0.3.0"), &wasi),
                World::Strategy
            )
            .unwrap_err()
            .to_string(),
            "it targets sluice:plugin@0.3.0; this host supports sluice:plugin@0.1.x and 0.2.x: rebuild it with the SDK of one of those versions"
        );
        // A 0.2 plugin imports 0.2's log, not 0.1's: one version per plugin.
        let v2 = ["sluice:plugin/log@0.2.0"];
        assert_eq!(
            check(
                &contract(Some(World::Strategy), Some("0.2.0"), &v2),
                World::Strategy
            ),
            Ok(Version::V0_2)
        );
        assert!(
            check(
                &contract(Some(World::Strategy), Some("0.2.0"), &wasi),
                World::Strategy
            )
            .unwrap_err()
            .to_string()
            .starts_with("it imports sluice:plugin/log@0.1.0")
        );
        assert_eq!(
            check(
                &contract(Some(World::Evaluator), Some("0.1.0"), &wasi),
                World::Strategy
            )
            .unwrap_err()
            .to_string(),
            "it is an evaluator plugin (it exports sluice:plugin/judge), not a strategy plugin"
        );
        assert!(
            check(&contract(None, None, &wasi), World::Evaluator)
                .unwrap_err()
                .to_string()
                .starts_with("it exports no sluice:plugin interface")
        );
        assert_eq!(
            check(
                &contract(
                    Some(World::Strategy),
                    Some("0.1.0"),
                    &["acme:net/http@1.0.0"]
                ),
                World::Strategy
            )
            .unwrap_err()
            .to_string(),
            "it imports acme:net/http@1.0.0, which the host does not provide (plugins get only sluice:plugin/log and a WASI without capabilities)"
        );
    }
}
