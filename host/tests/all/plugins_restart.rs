//! Restarts: versions and the active pointer survive, the compiled-component cache
//! spares recompiling, and bundled plugins never replace an operator's upload.

use crate::common;

use common::{Backend, TestDb, TestServer, client, guest, probe_manifest, rebuilt, settings};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_survive_a_restart_without_recompiling() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    assert_eq!(server.get_text("/healthz").await, (200, "ok\n".into()));
    assert_eq!(server.get_text("/readyz").await, (200, "ready\n".into()));
    // The bundled hello was installed at first start.
    assert_eq!(
        server.get_text("/plugins/hello/").await,
        (200, "Hello from HAM\n".into())
    );
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.2.0", "v2", ""),
            rebuilt(&guest("probe"), "2"),
        )
        .await;
    let compiled_before = server.state.runtime.stats.compilations();
    assert!(compiled_before >= 2);

    let server = server.restart().await;
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v2".into())
    );
    assert_eq!(server.get_text("/plugins/hello/").await.0, 200);
    let stats = &server.state.runtime.stats;
    assert_eq!(
        stats.compilations(),
        0,
        "a restart must load compiled components from the cache"
    );
    let active = server.state.registry.snapshot().plugins.len() as u64;
    assert!(active >= 2, "probe and the bundled plugins are active");
    assert_eq!(
        stats.cache_hits(),
        active,
        "every active plugin (probe and the bundled ones) comes from the cache"
    );

    // Rolling back to a version compiled before the restart uses the cache too.
    let response = client()
        .post(server.url("/api/admin/plugins/probe/rollback"))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".into())
    );
    assert_eq!(server.state.runtime.stats.compilations(), 0);

    // The rollback is what survives the next restart.
    let server = server.restart().await;
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".into())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_plugins_never_replace_a_newer_upload() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    // An operator uploads their own hello, newer than the bundled one.
    let manifest = "name = \"hello\"\nversion = \"9.0.0\"\n[variables]\ngreeting = { default = \"Operator's hello\" }\n";
    let bundled = ham_host::plugins::bundled::BUNDLED
        .iter()
        .find(|p| p.name == "hello")
        .unwrap();
    server
        .install("hello", manifest, bundled.component.to_vec())
        .await;

    let server = server.restart().await;
    assert_eq!(
        server.get_text("/plugins/hello/").await,
        (200, "Operator's hello\n".into())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_bundled_plugin_replaces_an_older_stored_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    // A database that holds only an older hello (0.0.1) than the binary carries.
    {
        let store = ham_host::store::Db::connect(&db.url).await.unwrap();
        let runtime = std::sync::Arc::new(
            ham_host::runtime::Runtime::new(
                dir.path(),
                ham_host::capabilities::Capabilities::with_defaults(store.clone()).unwrap(),
                Default::default(),
            )
            .unwrap(),
        );
        let registry =
            ham_host::plugins::Registry::load(runtime, store.clone(), Default::default())
                .await
                .unwrap();
        let old = "name = \"hello\"\nversion = \"0.0.1\"\n[variables]\ngreeting = { default = \"Old hello\" }\n";
        let bundled = ham_host::plugins::bundled::BUNDLED
            .iter()
            .find(|p| p.name == "hello")
            .unwrap();
        registry
            .install(
                old,
                bundled.component,
                ham_host::plugins::Source::Upload,
                None,
            )
            .await
            .unwrap();
        store.close().await;
    }
    let server = TestServer::start(settings(dir.path(), &db)).await;
    assert_eq!(
        server.get_text("/plugins/hello/").await,
        (200, "Hello from HAM\n".into())
    );
    server.stop().await;
}
