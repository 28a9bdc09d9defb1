//! The guest crates (built-in plugins, the SDK, the example plugins) are
//! their own Cargo workspaces, built for wasm32-wasip2; their logic is plain
//! Rust with unit tests that run on the host. This runs those tests, so
//! that `cargo test` at the root covers every crate of the repository.

use std::path::Path;
use std::process::Command;

fn cargo_test(manifest: &str) {
    let _heavy = crate::common::cpu_heavy();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--quiet", "--manifest-path"])
        .arg(root.join(manifest))
        .arg("--target-dir")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-tests"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run cargo test");
    assert!(
        out.status.success(),
        "cargo test --manifest-path {manifest} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn built_in_plugins_and_sdk_unit_tests_pass() {
    cargo_test("plugins/Cargo.toml");
}

#[test]
fn example_plugin_unit_tests_pass() {
    for example in ["doubling", "mann-whitney", "time-window", "template"] {
        cargo_test(&format!("examples/plugins/{example}/Cargo.toml"));
    }
}
