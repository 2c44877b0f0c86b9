//! The README's first command on a machine whose toolchain lacks `wasm32-wasip2`:
//! the build must stop at once with the one command that fixes it, not fail deep
//! in the nested plugin build (`can't find crate for core`).
//!
//! Building `ham` itself in a clean target dir takes minutes, so the test builds
//! the same check (`host/build/wasm_target.rs`, which `host/build.rs` includes and
//! runs before anything else of the plugins) as the build script of a crate with
//! no dependencies, in a clean `CARGO_TARGET_DIR`, with a toolchain that is this
//! one without the target: a hard-linked copy of its sysroot, the target's
//! directory removed, linked into rustup under a name of its own. rustup cannot
//! add a target to a linked toolchain (as it cannot without a network), so this is
//! the path a newcomer offline or on a custom toolchain takes.

use std::path::Path;
use std::process::Command;

/// Unlinks the test's toolchain from rustup however the test ends.
struct LinkedToolchain(String);

impl Drop for LinkedToolchain {
    fn drop(&mut self) {
        let _ = Command::new("rustup")
            .args(["toolchain", "uninstall", &self.0])
            .output();
    }
}

fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().expect("spawn");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn without_the_wasm_target_the_build_stops_at_once_with_the_command_to_run() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let sysroot = run(Command::new("rustc")
        .current_dir(repo)
        .args(["--print", "sysroot"]))
    .stdout;
    let sysroot = String::from_utf8(sysroot).unwrap().trim().to_string();
    assert!(
        Path::new(&sysroot)
            .join("lib/rustlib/wasm32-wasip2")
            .is_dir(),
        "this machine's toolchain has the target (.ci/run adds it)"
    );

    let dir = tempfile::tempdir().unwrap();
    let toolchain = dir.path().join("toolchain");
    // Hard links: instant, no space, and the original keeps its target.
    run(Command::new("cp").arg("-al").arg(&sysroot).arg(&toolchain));
    std::fs::remove_dir_all(toolchain.join("lib/rustlib/wasm32-wasip2")).unwrap();
    let name = format!("ham-test-no-wasm-{}", std::process::id());
    run(Command::new("rustup")
        .args(["toolchain", "link", &name])
        .arg(&toolchain));
    let _linked = LinkedToolchain(name.clone());

    let krate = dir.path().join("first-command");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"first-command\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), "").unwrap();
    let check = repo.join("host/build/wasm_target.rs");
    std::fs::write(
        krate.join("build.rs"),
        format!(
            "use std::error::Error;\nuse std::path::Path;\nuse std::process::Command;\n\
             include!({check:?});\n\
             fn main() -> Result<(), Box<dyn Error>> {{\n    \
             ensure_wasm_target(Path::new(env!(\"CARGO_MANIFEST_DIR\")))\n}}\n"
        ),
    )
    .unwrap();

    let output = Command::new("cargo")
        .arg(format!("+{name}"))
        .arg("build")
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("CARGO")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the build went on: {stderr}");
    assert!(
        stderr.contains("the wasm32-wasip2 target is not installed for this toolchain")
            && stderr.contains("run `rustup target add wasm32-wasip2`"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("can't find crate"),
        "it failed deep in the build: {stderr}"
    );
}
