// Included by host/build.rs, and by the test that builds it against a toolchain
// without the target (host/tests/all/first_command.rs): std only, and the caller
// brings `Path`, `Command` and `Error` into scope.

/// Makes sure the toolchain can build for `wasm32-wasip2`. `rust-toolchain.toml`
/// lists the target, but rustup adds it only when it installs the toolchain: a
/// toolchain already on the machine without it would fail deep in the nested
/// build (`can't find crate for core`). So the build adds it through rustup when
/// it can, and otherwise stops with the one command to run.
fn ensure_wasm_target(root: &Path) -> Result<(), Box<dyn Error>> {
    const TARGET: &str = "wasm32-wasip2";
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let installed = |sysroot: &str| {
        Path::new(sysroot.trim())
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
    };
    let sysroot = Command::new(&rustc)
        .current_dir(root)
        .args(["--print", "sysroot"])
        .output()?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).to_string();
    if installed(&sysroot) {
        return Ok(());
    }
    let mut rustup = Command::new("rustup");
    rustup.current_dir(root).args(["target", "add", TARGET]);
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        rustup.args(["--toolchain", &toolchain]);
    }
    match rustup.output() {
        Ok(done) if done.status.success() && installed(&sysroot) => {
            println!("cargo:warning=added the {TARGET} target to the toolchain with rustup");
            Ok(())
        }
        _ => Err(format!(
            "the {TARGET} target is not installed for this toolchain ({}); run `rustup target add {TARGET}`",
            sysroot.trim()
        )
        .into()),
    }
}
