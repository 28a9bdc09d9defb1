//! Builds the guest plugins (the separate `plugins/` workspace) for
//! `wasm32-wasip2` and embeds them: writes `$OUT_DIR/builtin_plugins.rs`, one
//! `pub const NAME: &[u8] = include_bytes!("…/name.wasm");` per plugin, for
//! the engine to `include!`.
//!
//! Only std: the inner build is a plain `cargo build` run with the same cargo
//! (the `CARGO` variable) and a cleaned environment.

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

/// Constant name in `builtin_plugins.rs` and the crate's library name (the
/// `.wasm` file stem).
const PLUGINS: &[(&str, &str)] = &[
    ("WEIGHTED", "sluice_weighted"),
    ("AB_TESTING", "sluice_ab_testing"),
    ("BLUE_GREEN", "sluice_blue_green"),
    ("MIRRORING", "sluice_mirroring"),
    ("SESSION_AFFINITY", "sluice_session_affinity"),
    ("THRESHOLD", "sluice_threshold"),
];

/// Variables Cargo sets for this build script, or that configure the outer
/// build only, which the inner build must not inherit: flags for the host
/// target (`-C target-cpu=native`, coverage instrumentation, …), the outer
/// target dir and target, the outer jobserver, and the wrappers of
/// `cargo clippy` / `cargo fix`.
const REMOVED_VARS: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_BUILD_RUSTDOCFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC_LINKER",
];

/// Prefixes of the same: per-build-script information from Cargo, and
/// Cargo's internal variables.
const REMOVED_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_BIN_",
    "DEP_",
    "__CARGO",
];

/// Builds the guest plugins and writes the constants that embed them.
fn main() {
    let root = repository_root();
    let plugins_dir = root.join("plugins");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target_dir = plugins_target_dir(&out_dir);
    rerun_if_sources_change(&plugins_dir, &root.join("wit"));
    require_wasm_target();
    let hint = failure_hint(&plugins_dir);
    build_plugins(&plugins_dir, &target_dir, &hint);
    let src = builtin_plugins_source(&target_dir.join(WASM_TARGET).join("release"), &hint);
    write_if_changed(&out_dir.join("builtin_plugins.rs"), &src);
}

/// The repository's root: the host crate is `engine/host`, two levels below.
fn repository_root() -> PathBuf {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .expect("the host crate is engine/host, two levels below the repository root")
        .to_path_buf()
}

/// The inner build's target directory, inside this build's own target
/// directory, wherever it is (`CARGO_TARGET_DIR`): `out_dir` is
/// `<target>/<profile>/build/<crate>/out`, and the profile directory is
/// shared by every build of that profile.
fn plugins_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(3)
        .unwrap_or(out_dir)
        .join("wasm-plugins")
}

/// Tells Cargo to run this script again when the build script, the WIT
/// files or the plugins' sources and manifests change: never on the
/// plugins' own target dirs.
fn rerun_if_sources_change(plugins_dir: &Path, wit_dir: &Path) {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", wit_dir.display());
    let mut files = Vec::new();
    watch(plugins_dir, &mut files);
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
}

/// The first lines of every message of a failed inner build: what failed
/// and the likely fix.
fn failure_hint(plugins_dir: &Path) -> String {
    format!(
        "failed to build the Sluice Wasm plugins ({}) for {WASM_TARGET}.\n\
         Is the target installed? Run `rustup target add {WASM_TARGET}`.\n\
         The inner build's output is above.",
        plugins_dir.join("Cargo.toml").display()
    )
}

/// Runs the inner `cargo build` of the plugins into `target_dir`, and stops
/// the build with `hint` when it fails.
fn build_plugins(plugins_dir: &Path, target_dir: &Path, hint: &str) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    match inner_build(&cargo, plugins_dir, target_dir).status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("{hint}\n(`cargo build` exited with {status})"),
        Err(e) => panic!(
            "{hint}\n(could not run {}: {e})",
            Path::new(&cargo).display()
        ),
    }
}

/// The inner build's command: a release build for the Wasm target, with
/// the outer build's variables ([`REMOVED_VARS`], [`REMOVED_PREFIXES`])
/// removed from its environment.
fn inner_build(cargo: &OsStr, plugins_dir: &Path, target_dir: &Path) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(WASM_TARGET)
        .arg("--manifest-path")
        .arg(plugins_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(plugins_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if REMOVED_VARS.contains(&key) || REMOVED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// The text of `builtin_plugins.rs`: one constant per plugin, embedding its
/// component from `wasm_dir`; stops the build with `hint` when one is
/// missing, and when one is not a component.
fn builtin_plugins_source(wasm_dir: &Path, hint: &str) -> String {
    let mut src =
        String::from("// @generated by engine/host/build.rs: the built-in Wasm plugins.\n");
    for (name, stem) in PLUGINS {
        let wasm = wasm_dir.join(format!("{stem}.wasm"));
        let bytes =
            fs::read(&wasm).unwrap_or_else(|e| panic!("{hint}\n(missing {}: {e})", wasm.display()));
        // A component, not a core module: magic, then version 0x0d layer 1.
        assert!(
            bytes.starts_with(b"\0asm\x0d\x00\x01\x00"),
            "{} is not a Wasm component; check the plugins' crate-type (cdylib) and target ({WASM_TARGET})",
            wasm.display()
        );
        let path = wasm
            .to_str()
            .unwrap_or_else(|| panic!("non-UTF-8 path {}", wasm.display()));
        // Writing to a String cannot fail.
        let _ = writeln!(
            src,
            "/// The `{stem}` component (`plugins/`), {} bytes.",
            bytes.len()
        );
        let _ = writeln!(src, "pub const {name}: &[u8] = include_bytes!({path:?});");
    }
    src
}

/// Writes `src` to `generated` only when it changed, so the engine is not
/// rebuilt for nothing.
fn write_if_changed(generated: &Path, src: &str) {
    if fs::read_to_string(generated).ok().as_deref() != Some(src) {
        fs::write(generated, src)
            .unwrap_or_else(|e| panic!("writing {}: {e}", generated.display()));
    }
}

/// Stops the build at once, with the fix, when the Wasm target is missing:
/// the build never installs anything. `rust-toolchain.toml` lists the target,
/// so rustup adds it with the toolchain; `tests/run` adds it when missing.
fn require_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if !libdir.is_some_and(|d| d.exists()) {
        panic!(
            "the Rust target {WASM_TARGET} is not installed; it builds Sluice's built-in plugins.\n\
             Install it with `rustup target add {WASM_TARGET}` (or run `tests/run`, which does)."
        );
    }
}

/// Collects the files under `dir`, skipping `target` and hidden directories.
fn watch(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry
            .file_type()
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if file_type.is_dir() {
            if name != "target" {
                // A new file in a source dir changes the dir's mtime.
                files.push(path.clone());
                watch(&path, files);
            }
        } else {
            files.push(path);
        }
    }
}
