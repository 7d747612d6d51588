//! Builds plugin crates of this workspace for wasm32 with a nested cargo and a target directory
//! of its own. Shared by the build scripts of `angage-policy` (the built-ins it embeds) and
//! `angage-test-plugins` (the fixtures tests load by path).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `packages` (release, LTO, one codegen unit) and returns the folder of the `.wasm`
/// files. Reruns the calling build script when `plugins/`, `sdk/` or the lock file change.
pub(crate) fn build(packages: &[&str]) -> PathBuf {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let workspace = manifest.ancestors().nth(2).expect("workspace root").to_path_buf();
    println!("cargo:rerun-if-changed={}", workspace.join("plugins").display());
    println!("cargo:rerun-if-changed={}", workspace.join("sdk").display());
    println!("cargo:rerun-if-changed={}", workspace.join("Cargo.lock").display());

    // A target directory of its own: sharing the outer build's would deadlock on its lock, and
    // one shared by every profile keeps the wasm build from being redone per profile.
    let outer_target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"));
    let target_dir = outer_target.join("wasm-plugins");
    ensure_wasm_target();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "--locked"])
        .env("CARGO_TARGET_DIR", &target_dir)
        // One codegen unit with LTO: the SDK's handles and the generated glue inline into each
        // plugin's code, which runs on every request.
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    for package in packages {
        cmd.args(["-p", package]);
    }
    // The outer build's compiler wrappers and flags are for the host target, not wasm32.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for the wasm32 plugins");
    assert!(
        status.success(),
        "building the plugins for wasm32-unknown-unknown failed (is the target installed? `rustup target add wasm32-unknown-unknown`)"
    );
    let wasm_dir = target_dir.join("wasm32-unknown-unknown").join("release");
    for package in packages {
        let file = wasm_file(&wasm_dir, package);
        assert!(file.is_file(), "missing {}", file.display());
    }
    wasm_dir
}

/// The file a plugin package builds to.
pub(crate) fn wasm_file(wasm_dir: &Path, package: &str) -> PathBuf {
    wasm_dir.join(format!("{}.wasm", package.replace('-', "_")))
}

/// A string literal for generated code.
pub(crate) fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// rustup adds the targets `rust-toolchain.toml` lists only when it installs the toolchain: a
/// machine that already had the toolchain lacks wasm32. Add it then (a no-op when present).
fn ensure_wasm_target() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-unknown-unknown").is_dir()) {
        return;
    }
    // Failure is reported by the plugin build below, with the command to run by hand.
    let _ = Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]).status();
}
