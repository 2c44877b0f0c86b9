//! The `ham plugin` commands against a running server, and `--watch` installing
//! plugins from a directory as they change.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Backend, TestServer, guest, probe_manifest, rebuilt};

/// `ham <args>` with a clean environment: settings come from the flags.
async fn ham(args: &[&str]) -> (bool, String) {
    common::process::run_ham(args, &[]).await
}

fn write_plugin(dir: &Path, version: &str, label: &str, component: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("probe.wasm"), component).unwrap();
    let manifest = probe_manifest("probe", version, label, "component = \"probe.wasm\"");
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
}

/// Polls until the plugin answers `want`, for at most 10 s.
async fn until_label(server: &TestServer, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.get_text("/plugins/probe/label").await;
        if status == 200 && body == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} {body}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_installs_lists_and_rolls_back() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let plugin_dir = server.data_dir.join("src");
    let remote = ["--url", server.url.as_str(), "--token", ADMIN_TOKEN];
    let manifest = plugin_dir.join("plugin.toml");
    let manifest = manifest.to_str().unwrap();

    write_plugin(&plugin_dir, "0.1.0", "cli-1", &guest("probe"));
    let (ok, out) =
        ham(&[&["plugin", "install", "--manifest", manifest], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(out.contains("probe 0.1.0 active"), "{out}");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "cli-1".into())
    );

    write_plugin(
        &plugin_dir,
        "0.2.0",
        "cli-2",
        &rebuilt(&guest("probe"), "cli-2"),
    );
    let (ok, out) =
        ham(&[&["plugin", "install", "--manifest", manifest], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "cli-2".into())
    );

    let (ok, out) = ham(&[&["plugin", "list"], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("probe "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("0.2.0") && line.contains("wasi:http/incoming-handler"),
        "{line}"
    );

    let (ok, out) = ham(&[&["plugin", "rollback", "probe"], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(out.contains("rolled back to 0.1.0"), "{out}");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "cli-1".into())
    );

    // Errors are the server's words, and the exit status says failure.
    let (ok, out) = ham(&["plugin", "list", "--url", server.url.as_str()]).await;
    assert!(!ok);
    assert!(out.contains("401"), "{out}");
    std::fs::write(plugin_dir.join("probe.wasm"), b"not wasm").unwrap();
    let (ok, out) =
        ham(&[&["plugin", "install", "--manifest", manifest], &remote[..]].concat()).await;
    assert!(!ok);
    assert!(out.contains("not a WebAssembly binary"), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_rolls_out_with_canary_and_aborts() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let plugin_dir = server.data_dir.join("src");
    let remote = ["--url", server.url.as_str(), "--token", ADMIN_TOKEN];
    let manifest = plugin_dir.join("plugin.toml");
    let manifest = manifest.to_str().unwrap();
    write_plugin(&plugin_dir, "0.1.0", "cli-1", &guest("probe"));
    let (ok, out) =
        ham(&[&["plugin", "install", "--manifest", manifest], &remote[..]].concat()).await;
    assert!(ok, "{out}");

    write_plugin(
        &plugin_dir,
        "0.2.0",
        "cli-2",
        &rebuilt(&guest("probe"), "cli-2"),
    );
    let install = [
        "plugin",
        "install",
        "--manifest",
        manifest,
        "--canary",
        "20",
        "--min-requests",
        "100000",
    ];
    let (ok, out) = ham(&[&install[..], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(out.contains("probe 0.2.0 serves 20% beside 0.1.0"), "{out}");

    let (ok, out) = ham(&[&["plugin", "abort", "probe"], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(out.contains("probe 0.2.0: aborted"), "{out}");
    for _ in 0..20 {
        assert_eq!(
            server.get_text("/plugins/probe/label").await,
            (200, "cli-1".into())
        );
    }
    let (ok, out) = ham(&[&["plugin", "abort", "probe"], &remote[..]].concat()).await;
    assert!(!ok);
    assert!(
        out.contains("no rollout of plugin probe is under way"),
        "{out}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_runs_a_rule_set_in_shadow_and_promotes_it() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let remote = ["--url", server.url.as_str(), "--token", ADMIN_TOKEN];
    let component = server.data_dir.join("strict.wasm");
    std::fs::write(&component, guest("rules-strict-streaks")).unwrap();
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/rules-strict-streaks/plugin.toml"
    );
    let install = [
        "plugin",
        "install",
        "--manifest",
        manifest,
        "--component",
        component.to_str().unwrap(),
        "--shadow",
        "--sample-percent",
        "50",
    ];
    let (ok, out) = ham(&[&install[..], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("habit-rules 0.2.0-strict runs in shadow beside") && out.contains("on 50%"),
        "{out}"
    );
    let (ok, out) = ham(&[&["plugin", "promote", "habit-rules"], &remote[..]].concat()).await;
    assert!(ok, "{out}");
    assert!(out.contains("habit-rules 0.2.0-strict: promoted"), "{out}");
    assert_eq!(
        server
            .state
            .registry
            .get("habit-rules")
            .unwrap()
            .version_label(),
        "0.2.0-strict"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_directory_installs_changes() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let watched = server.data_dir.join("plugins");
    std::fs::create_dir_all(&watched).unwrap();
    let watcher = ham_host::plugins::watch::spawn(server.state.registry.clone(), watched.clone());

    write_plugin(&watched.join("probe"), "0.1.0", "w1", &guest("probe"));
    until_label(&server, "w1").await;

    // A rebuilt component with a new manifest goes live.
    write_plugin(
        &watched.join("probe"),
        "0.1.1",
        "w2",
        &rebuilt(&guest("probe"), "w2"),
    );
    until_label(&server, "w2").await;

    // A broken build is refused; the active version keeps serving.
    std::fs::write(
        watched.join("probe").join("probe.wasm"),
        b"\0asm\x0d\0\x01\0broken",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "w2".into())
    );
    watcher.abort();
    server.stop().await;
}
