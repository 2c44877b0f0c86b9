//! Builds the bundled plugins (`plugins/*`) for wasm32-wasip2 and generates
//! `bundled.rs`, which embeds each plugin's manifest and component in the `ham`
//! binary, so `cargo build -p ham-host` alone yields a binary that serves them.
//!
//! The plugins build in their own target dir (`target/wasm`), so this nested cargo
//! never waits on the outer one's lock, and with the `plugin` profile (small, LTO).
//!
//! It also builds the browser app (`host/web`, with npm) and generates
//! `web_assets.rs`, which embeds every file of `host/web/dist` (see [`build_web`]).

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
    // The crates the plugins share (the rules engine, civil days, guest HTTP).
    println!("cargo:rerun-if-changed={}", root.join("crates").display());
    // `sqlx::migrate!` embeds the migrations but does not tell cargo to watch
    // them: without this a new migration file would not rebuild the crate.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("migrations").display()
    );

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
        ensure_wasm_target(&root)?;
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

    build_web(&host_dir.join("web"), &out_dir)?;
    Ok(())
}

/// Builds the browser app and writes `web_assets.rs`: one `WebAsset` per file of
/// `host/web/dist`, its bytes included with `include_bytes!`.
///
/// `npm ci` runs when `node_modules` is missing or older than `package-lock.json`,
/// then `npm run build` (type-check and bundle). Only the app's sources and configs
/// are watched, never `node_modules` or `dist`, so an unchanged app costs nothing.
/// `HAM_SKIP_WEB_BUILD=1` embeds an existing `dist` without running npm (a
/// container stage that built the app already).
fn build_web(web_dir: &Path, out_dir: &Path) -> Result<(), Box<dyn Error>> {
    for watched in [
        "src",
        "public",
        "index.html",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "vite.config.ts",
        "vite.sw.config.ts",
    ] {
        // A watched path that does not exist would rerun this script on every build.
        let path = web_dir.join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rerun-if-env-changed=HAM_SKIP_WEB_BUILD");
    println!("cargo:rerun-if-env-changed=NPM");
    let dist = web_dir.join("dist");
    let run_npm_build =
        std::env::var_os("HAM_SKIP_WEB_BUILD").is_none_or(|v| v.is_empty() || v == "0");
    if run_npm_build {
        let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".to_string());
        let found = Command::new(&npm)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "building the browser app (host/web) needs npm (Node.js 20 or later) on PATH, \
                 and `{npm} --version` failed; install Node.js (e.g. `apt-get install nodejs npm`), \
                 or set NPM to its path, or set HAM_SKIP_WEB_BUILD=1 to embed an already built \
                 host/web/dist"
            )
            .into());
        }
        let lock = web_dir.join("package-lock.json");
        let installed = web_dir.join("node_modules").join(".package-lock.json");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let stale = match (modified(&installed), modified(&lock)) {
            (Some(installed), Some(lock)) => installed < lock,
            _ => true,
        };
        if stale {
            run_npm(&npm, web_dir, &["ci", "--no-audit", "--no-fund"])?;
        }
        run_npm(&npm, web_dir, &["run", "build"])?;
    }
    if !dist.join("index.html").is_file() {
        return Err(format!(
            "the browser app build left no {}",
            dist.join("index.html").display()
        )
        .into());
    }

    let mut files = Vec::new();
    collect_files(&dist, &dist, &mut files)?;
    files.sort();
    if run_npm_build {
        // Cargo compares the files `include_bytes!` reads with the time this build
        // began, so files the bundler just wrote would make the next build compile
        // the crate once more. Their content is followed by this script's reruns
        // (a rerun rebuilds the crate), so give them a fixed time in the past.
        let fixed = std::time::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800);
        for rel in &files {
            std::fs::File::options()
                .write(true)
                .open(dist.join(rel))?
                .set_modified(fixed)?;
        }
    }
    let mut out = String::from(
        "/// The browser app's files (host/web/dist), by path relative to it.\npub static WEB_ASSETS: &[WebAsset] = &[\n",
    );
    for rel in &files {
        let file = dist.join(rel);
        let bytes = std::fs::read(&file)?;
        writeln!(
            out,
            "    WebAsset {{ path: {:?}, etag: \"\\\"{:016x}\\\"\", bytes: include_bytes!({:?}) }},",
            rel,
            fnv1a(&bytes),
            file
        )?;
    }
    out.push_str("];\n");
    std::fs::write(out_dir.join("web_assets.rs"), out)?;
    Ok(())
}

fn run_npm(npm: &str, dir: &Path, args: &[&str]) -> Result<(), Box<dyn Error>> {
    let output = Command::new(npm).current_dir(dir).args(args).output()?;
    if !output.status.success() {
        return Err(format!(
            "`npm {}` in {} failed:\n{}\n{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

/// Paths of the files under `dir`, relative to `root`, with `/` separators.
fn collect_files(root: &Path, dir: &Path, files: &mut Vec<String>) -> Result<(), Box<dyn Error>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(root, &path, files)?;
        } else {
            let rel = path.strip_prefix(root)?;
            let parts: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            files.push(parts.join("/"));
        }
    }
    Ok(())
}

/// FNV-1a, 64 bits: a content tag for `ETag`, not a security hash.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
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

// The wasm32-wasip2 check, in a file of its own so that a test can build it into
// a crate of its own against a toolchain without the target
// (host/tests/all/first_command.rs).
include!("build/wasm_target.rs");

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
