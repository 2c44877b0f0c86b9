//! The storage interface through real components: isolation between plugins and
//! between users, compare-and-swap, prefix listing with a cursor, and the quota.
//! The same story runs on SQLite and on PostgreSQL.

use crate::common;

use bytes::Bytes;
use common::{Backend, TestServer, client, guest, probe_manifest};
use http_body_util::{BodyExt, Full};

/// Calls a plugin as `user` (None: no user), straight through the runtime.
async fn call(
    server: &TestServer,
    plugin: &str,
    user: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let plugin = server.state.registry.get(plugin).unwrap();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap();
    let response = server
        .state
        .runtime
        .serve_http(plugin, user.map(str::to_string), request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn storage_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    let quota = "[limits]\nstorage_quota_mb = 1\nstorage_total_mb = 1\n";
    server
        .install(
            "alpha",
            &probe_manifest("alpha", "0.1.0", "a", quota),
            guest("probe"),
        )
        .await;
    server
        .install(
            "beta",
            &probe_manifest("beta", "0.1.0", "b", quota),
            guest("probe"),
        )
        .await;

    // Plugins do not see each other's keys.
    assert_eq!(
        call(&server, "alpha", None, "PUT", "/kv/plugin/k", b"from alpha").await,
        (200, "1".into())
    );
    assert_eq!(
        call(&server, "alpha", None, "GET", "/kv/plugin/k", b"").await,
        (200, "1\nfrom alpha".into())
    );
    assert_eq!(
        call(&server, "beta", None, "GET", "/kv/plugin/k", b"").await,
        (200, "absent".into())
    );

    // Users do not see each other's keys, and the plugin scope is not a user's.
    assert_eq!(
        call(
            &server,
            "alpha",
            Some("alice"),
            "PUT",
            "/kv/user/k",
            b"alice's"
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&server, "alpha", Some("bob"), "GET", "/kv/user/k", b"").await,
        (200, "absent".into())
    );
    assert_eq!(
        call(&server, "alpha", Some("alice"), "GET", "/kv/user/k", b"").await,
        (200, "1\nalice's".into())
    );
    assert_eq!(
        call(&server, "beta", Some("alice"), "GET", "/kv/user/k", b"").await,
        (200, "absent".into())
    );
    assert_eq!(
        call(&server, "alpha", Some("alice"), "GET", "/kv/plugin/k", b"").await,
        (200, "1\nfrom alpha".into())
    );
    // Without a user, the user scope is refused (here over real HTTP).
    let response = client()
        .get(server.url("/plugins/alpha/kv/user/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("no user"));

    // Compare-and-swap.
    assert_eq!(
        call(
            &server,
            "alpha",
            None,
            "POST",
            "/kv/plugin/c?cas=none",
            b"one"
        )
        .await,
        (200, "1".into())
    );
    assert_eq!(
        call(
            &server,
            "alpha",
            None,
            "POST",
            "/kv/plugin/c?cas=none",
            b"two"
        )
        .await
        .0,
        409
    );
    assert_eq!(
        call(&server, "alpha", None, "POST", "/kv/plugin/c?cas=1", b"two").await,
        (200, "2".into())
    );
    assert_eq!(
        call(
            &server,
            "alpha",
            None,
            "POST",
            "/kv/plugin/c?cas=1",
            b"three"
        )
        .await
        .0,
        409
    );
    assert_eq!(
        call(&server, "alpha", None, "GET", "/kv/plugin/c", b"").await,
        (200, "2\ntwo".into())
    );
    assert_eq!(
        call(&server, "alpha", None, "DELETE", "/kv/plugin/c", b"").await,
        (200, "true".into())
    );
    assert_eq!(
        call(&server, "alpha", None, "DELETE", "/kv/plugin/c", b"").await,
        (200, "false".into())
    );

    // Prefix listing pages through keys in order with a cursor.
    for i in 0..25 {
        call(
            &server,
            "alpha",
            None,
            "PUT",
            &format!("/kv/plugin/p/{i:02}"),
            b"v",
        )
        .await;
    }
    call(&server, "alpha", None, "PUT", "/kv/plugin/q/1", b"v").await;
    call(&server, "alpha", None, "PUT", "/kv/plugin/p", b"v").await;
    let mut keys = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let (status, text) = call(
            &server,
            "alpha",
            None,
            "GET",
            &format!("/kv/plugin?prefix=p/&limit=10&cursor={cursor}"),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{text}");
        let (page, next) = text.split_once('\n').unwrap();
        keys.extend(page.split(',').map(str::to_string));
        pages += 1;
        if next.is_empty() {
            break;
        }
        cursor = next.replace('/', "%2F");
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("p/{i:02}")).collect();
    assert_eq!(keys, expected);

    // The total, here equal to the per-scope quota, counts every scope of the
    // plugin; a write past it is refused and the old value stays.
    let big = vec![b'x'; 600 * 1024];
    assert_eq!(
        call(
            &server,
            "alpha",
            Some("alice"),
            "PUT",
            "/kv/user/big1",
            &big
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(&server, "alpha", None, "PUT", "/kv/plugin/big2", &big).await,
        (507, "quota-exceeded".into())
    );
    assert_eq!(
        call(
            &server,
            "alpha",
            None,
            "POST",
            "/kv/plugin/big2?cas=none",
            &big
        )
        .await,
        (507, "quota-exceeded".into())
    );
    assert_eq!(
        call(&server, "alpha", None, "GET", "/kv/plugin/big2", b"").await,
        (200, "absent".into())
    );
    // Replacing a value counts only the new size.
    let bigger = vec![b'y'; 700 * 1024];
    assert_eq!(
        call(
            &server,
            "alpha",
            Some("alice"),
            "PUT",
            "/kv/user/big1",
            &bigger
        )
        .await,
        (200, "2".into())
    );
    // Another plugin's quota is its own.
    assert_eq!(
        call(&server, "beta", None, "PUT", "/kv/plugin/big", &big)
            .await
            .0,
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_sqlite() {
    storage_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_postgres() {
    storage_story(Backend::Postgres).await;
}
