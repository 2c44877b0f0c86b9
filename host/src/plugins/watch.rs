//! `ham serve --watch DIR`: plugin development without uploads.
//!
//! Polls `DIR/plugin.toml` and `DIR/*/plugin.toml` (twice a second) and the
//! files each names (`component` and `openapi`, relative to the manifest); when
//! one changes, the plugin is installed exactly as an upload would be. The first scan
//! installs what is there. A broken build is logged and the active version keeps
//! serving. Polling rather than inotify: it works the same on every file system,
//! including bind mounts and network shares, and costs a few `stat`s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Manifest;
use super::registry::{Package, Registry, Source};

const POLL: Duration = Duration::from_millis(500);

type Fingerprint = Vec<(u64, Option<SystemTime>)>;

/// Starts watching `dir` until the returned task is aborted.
pub fn spawn(registry: Arc<Registry>, dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(dir = %dir.display(), "watching for plugin changes");
        let mut seen: HashMap<PathBuf, Fingerprint> = HashMap::new();
        loop {
            for manifest_path in manifests(&dir) {
                let files = named_files(&manifest_path);
                let print = fingerprint(&[
                    Some(manifest_path.as_path()),
                    files.component.as_deref(),
                    files.openapi.as_deref(),
                ]);
                if seen.get(&manifest_path) == Some(&print) {
                    continue;
                }
                seen.insert(manifest_path.clone(), print);
                install(&registry, &manifest_path, &files).await;
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let top = dir.join("plugin.toml");
    if top.is_file() {
        found.push(top);
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let candidate = entry.path().join("plugin.toml");
            if candidate.is_file() {
                found.push(candidate);
            }
        }
    }
    found.sort();
    found
}

/// The files a manifest names, relative to it.
#[derive(Default)]
struct NamedFiles {
    component: Option<PathBuf>,
    openapi: Option<PathBuf>,
}

fn named_files(manifest_path: &Path) -> NamedFiles {
    let manifest = std::fs::read_to_string(manifest_path)
        .ok()
        .and_then(|text| Manifest::parse(&text).ok());
    let (Some(manifest), Some(dir)) = (manifest, manifest_path.parent()) else {
        return NamedFiles::default();
    };
    NamedFiles {
        component: manifest.component.map(|c| dir.join(c)),
        openapi: manifest.openapi.map(|o| dir.join(o)),
    }
}

fn fingerprint(paths: &[Option<&Path>]) -> Fingerprint {
    paths
        .iter()
        .map(|p| match p.and_then(|p| std::fs::metadata(p).ok()) {
            Some(meta) => (meta.len(), meta.modified().ok()),
            None => (0, None),
        })
        .collect()
}

async fn install(registry: &Registry, manifest_path: &Path, files: &NamedFiles) {
    let shown = manifest_path.display();
    let text = match std::fs::read_to_string(manifest_path) {
        Ok(text) => text,
        Err(e) => return tracing::warn!(manifest = %shown, error = %e, "cannot read manifest"),
    };
    let Some(component) = files.component.as_deref() else {
        return tracing::warn!(manifest = %shown, "manifest is invalid or names no `component`; not installing");
    };
    let bytes = match std::fs::read(component) {
        Ok(bytes) => bytes,
        Err(e) => {
            return tracing::warn!(component = %component.display(), error = %e, "cannot read component");
        }
    };
    let openapi = match files.openapi.as_deref().map(std::fs::read_to_string) {
        None => None,
        Some(Ok(openapi)) => Some(openapi),
        Some(Err(e)) => {
            return tracing::warn!(manifest = %shown, error = %e, "cannot read the OpenAPI document it names");
        }
    };
    let package = Package {
        manifest: &text,
        component: &bytes,
        openapi: openapi.as_deref(),
    };
    match registry
        .install_package(&package, Source::Watch, None)
        .await
    {
        Ok(installed) => tracing::info!(
            plugin = %installed.row.name, version = %installed.row.version, sha256 = %installed.row.sha256,
            "installed from watched directory"
        ),
        Err(e) => {
            tracing::warn!(manifest = %shown, error = %e, "watched plugin refused; the active version keeps serving")
        }
    }
}
