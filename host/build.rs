//! Builds the bundled plugins (`plugins/*`) for wasm32-wasip2 and generates
//! `bundled.rs`, which embeds each plugin's manifest and component in the `ham`
//! binary, so `cargo build -p ham-host` alone yields a binary that serves them.
//!
//! The plugins build in their own target dir (`target/wasm`), so this nested cargo
//! never waits on the outer one's lock, and with the `plugin` profile (small, LTO).

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn Error>> {
    let host_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = host_dir
        .parent()
        .ok_or("host/ has no parent")?
        .to_path_buf();
    let plugins_dir = root.join("plugins");
    println!("cargo:rerun-if-changed={}", plugins_dir.display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("wasm"),
        None => root.join("target").join("wasm"),
    };

    let mut plugins = Vec::new();
    for entry in std::fs::read_dir(&plugins_dir)? {
        let dir = entry?.path();
        if dir.join("plugin.toml").is_file() && dir.join("Cargo.toml").is_file() {
            plugins.push(Plugin::read(&dir)?);
        }
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));

    if !plugins.is_empty() {
        build_plugins(&root, &target_dir, &plugins)?;
    }

    let mut out = String::from(
        "/// The plugins embedded in this binary.\npub static BUNDLED: &[BundledPlugin] = &[\n",
    );
    for plugin in &plugins {
        let wasm = target_dir
            .join("wasm32-wasip2")
            .join("plugin")
            .join(format!("{}.wasm", plugin.package.replace('-', "_")));
        if !wasm.is_file() {
            return Err(format!("plugin build produced no {}", wasm.display()).into());
        }
        writeln!(
            out,
            "    BundledPlugin {{ name: {:?}, manifest: include_str!({:?}), component: include_bytes!({:?}) }},",
            plugin.name,
            plugin.dir.join("plugin.toml"),
            wasm
        )?;
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("bundled.rs"), out)?;
    Ok(())
}

struct Plugin {
    dir: PathBuf,
    /// The plugin's name, from plugin.toml.
    name: String,
    /// The crate's package name, from Cargo.toml.
    package: String,
}

impl Plugin {
    fn read(dir: &Path) -> Result<Self, Box<dyn Error>> {
        let manifest: toml::Table = std::fs::read_to_string(dir.join("plugin.toml"))?.parse()?;
        let cargo: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))?.parse()?;
        let name = manifest
            .get("name")
            .and_then(|v| v.as_str())
            .ok_or("plugin.toml has no name")?;
        let package = cargo
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(|v| v.as_str())
            .ok_or("Cargo.toml has no package.name")?;
        Ok(Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            package: package.to_string(),
        })
    }
}

fn build_plugins(root: &Path, target_dir: &Path, plugins: &[Plugin]) -> Result<(), Box<dyn Error>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for plugin in plugins {
        cmd.args(["-p", &plugin.package]);
    }
    // The outer build's settings (flags for the host target, clippy as the rustc
    // wrapper, its profile) must not leak into the nested build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = key == "CARGO_HOME" || key == "CARGO_NET_OFFLINE" || key == "CARGO_MAKEFLAGS";
        if (key.starts_with("CARGO_") && !keep)
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key == "RUSTC"
            || key == "RUSTDOC"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let output = cmd.output()?;
    if !output.status.success() {
        return Err(format!(
            "building the bundled plugins failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}
