//! `ham plugin …`: the admin API from the command line.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Where the server is and how to prove admin rights.
pub struct Remote {
    pub url: String,
    pub token: Option<String>,
}

impl Remote {
    fn client(&self) -> anyhow::Result<reqwest::Client> {
        // One crypto provider for the process; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(reqwest::Client::builder().build()?)
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/api/admin/plugins{path}", self.url.trim_end_matches('/'))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no details");
            bail!("{status}: {message}");
        }
        Ok(body)
    }
}

/// Uploads a plugin version; the component defaults to the manifest's `component`.
/// The OpenAPI document the manifest names (`openapi`, relative to it) goes along,
/// and the rollout (JSON, the upload's `rollout` field) when one is asked.
pub async fn install(
    remote: &Remote,
    manifest: &Path,
    component: Option<&Path>,
    rollout: Option<&str>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let parsed = crate::plugins::Manifest::parse(&text)?;
    let component: PathBuf = match (component, &parsed.component) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(rel)) => manifest.parent().unwrap_or(Path::new(".")).join(rel),
        (None, None) => bail!("the manifest names no `component`; pass --component PATH"),
    };
    let bytes =
        std::fs::read(&component).with_context(|| format!("reading {}", component.display()))?;
    let mut form = reqwest::multipart::Form::new().text("manifest", text).part(
        "component",
        reqwest::multipart::Part::bytes(bytes).file_name("component.wasm"),
    );
    if let Some(rel) = &parsed.openapi {
        let path = manifest.parent().unwrap_or(Path::new(".")).join(rel);
        let openapi = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (the manifest's `openapi`)", path.display()))?;
        form = form.text("openapi", openapi);
    }
    if let Some(rollout) = rollout {
        form = form.text("rollout", rollout.to_string());
    }
    let client = remote.client()?;
    let body = remote
        .send(
            client
                .put(remote.endpoint(&format!("/{}", parsed.name)))
                .multipart(form),
        )
        .await?;
    let (name, version) = (
        body["name"].as_str().unwrap_or_default(),
        body["version"].as_str().unwrap_or_default(),
    );
    let sha256 = body["sha256"].as_str().unwrap_or_default();
    match body["activation"].as_str() {
        Some("canary") => println!(
            "{name} {version} serves {}% beside {} (sha256 {sha256}); the host promotes or rolls it back by its errors",
            body["rollout"]["plan"]["canary_percent"],
            body["rollout"]["stable_version"]
                .as_str()
                .unwrap_or_default()
        ),
        Some("shadow") => println!(
            "{name} {version} runs in shadow beside {} on {}% of evaluations (sha256 {sha256}); \
             users keep the active answers: `ham plugin promote {name}` or `ham plugin abort {name}`",
            body["rollout"]["stable_version"]
                .as_str()
                .unwrap_or_default(),
            body["rollout"]["plan"]["sample_percent"],
        ),
        Some("pending_approval") => println!(
            "{name} {version} stored, awaiting approval (sha256 {sha256}): `ham plugin approve {name} {version}`"
        ),
        _ => println!("{name} {version} active (sha256 {sha256})"),
    }
    for added in body["added_capabilities"].as_array().into_iter().flatten() {
        println!("  asks for more: {}", added.as_str().unwrap_or_default());
    }
    Ok(())
}

/// Promotes (`promote`) or aborts the rollout of `name` under way.
pub async fn decide(remote: &Remote, name: &str, promote: bool) -> anyhow::Result<()> {
    let action = if promote { "promote" } else { "abort" };
    let body = remote
        .send(
            remote
                .client()?
                .post(remote.endpoint(&format!("/{name}/rollout/{action}"))),
        )
        .await?;
    println!(
        "{name} {}: {}",
        body["candidate_version"].as_str().unwrap_or_default(),
        body["state"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// Approves a version of `name` waiting for approval.
pub async fn approve(remote: &Remote, name: &str, version: &str) -> anyhow::Result<()> {
    let body = remote
        .send(
            remote
                .client()?
                .post(remote.endpoint(&format!("/{name}/versions/{version}/approve"))),
        )
        .await?;
    println!(
        "{name} {version} approved: {}",
        body["activation"].as_str().unwrap_or_default()
    );
    Ok(())
}

pub async fn list(remote: &Remote) -> anyhow::Result<()> {
    let body = remote
        .send(remote.client()?.get(remote.endpoint("")))
        .await?;
    println!(
        "{:<20} {:<10} {:<14} {:<40} ROUTES",
        "NAME", "VERSION", "SHA256", "EXPORTS"
    );
    for plugin in body.as_array().into_iter().flatten() {
        let exports: Vec<&str> = plugin["exports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let routes: Vec<&str> = plugin["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["path"].as_str())
            .collect();
        println!(
            "{:<20} {:<10} {:<14} {:<40} {}",
            plugin["name"].as_str().unwrap_or_default(),
            plugin["version"].as_str().unwrap_or_default(),
            plugin["sha256"]
                .as_str()
                .unwrap_or_default()
                .get(..12)
                .unwrap_or_default(),
            exports.join(","),
            routes.join(",")
        );
    }
    Ok(())
}

pub async fn rollback(remote: &Remote, name: &str) -> anyhow::Result<()> {
    let body = remote
        .send(
            remote
                .client()?
                .post(remote.endpoint(&format!("/{name}/rollback"))),
        )
        .await?;
    println!(
        "{} rolled back to {} (sha256 {})",
        name,
        body["version"].as_str().unwrap_or_default(),
        body["sha256"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// Checks that the server listening on `addr` answers `GET /healthz` with 200
/// within 3 s. An unspecified listen address (`0.0.0.0`, `::`) is reached over
/// loopback, so the check works inside the server's own container.
pub async fn healthcheck(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{target}/healthz");
    // reqwest wants a crypto provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    println!("ok");
    Ok(())
}
