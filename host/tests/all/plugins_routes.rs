//! Exact routes claimed in manifests: served, method-checked, and refused when they
//! collide with another plugin.

use crate::common;

use common::{Backend, TestServer, client, error_of, guest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_routes_are_served_and_collisions_refused() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let manifest = "name = \"proxy\"\nversion = \"0.1.0\"\n\
        routes = [{ path = \"/api/proxy/hook\", methods = [\"GET\", \"POST\"], auth = \"none\" }]\n";
    let body = server.install("proxy", manifest, guest("wasi-proxy")).await;
    assert_eq!(body["routes"][0]["path"], "/api/proxy/hook");

    // The claimed route arrives at the plugin with its full path.
    assert_eq!(
        server.get_text("/api/proxy/hook?x=1").await,
        (200, "wasi-proxy saw GET /api/proxy/hook?x=1\n".into())
    );
    let response = client()
        .post(server.url("/api/proxy/hook"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.text().await.unwrap(),
        "wasi-proxy saw POST /api/proxy/hook\n"
    );
    let (status, code, message) = error_of(
        client()
            .delete(server.url("/api/proxy/hook"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert!(message.contains("GET, POST"), "{message}");

    // Another plugin cannot take it.
    let thief =
        "name = \"thief\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/proxy/hook\" }]\n";
    let (status, code, message) =
        error_of(server.upload("thief", thief, guest("wasi-proxy")).await).await;
    assert_eq!((status, code.as_str()), (409, "route_taken"));
    assert!(message.contains("proxy"), "{message}");
    // Nor a host route.
    let admin =
        "name = \"thief\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/admin/plugins\" }]\n";
    let (status, code, _) =
        error_of(server.upload("thief", admin, guest("wasi-proxy")).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_manifest"));
    // The owner may keep its route in a new version.
    server
        .install(
            "proxy",
            &manifest.replace("0.1.0", "0.2.0"),
            guest("wasi-proxy"),
        )
        .await;
    assert_eq!(server.get_text("/api/proxy/hook").await.0, 200);
    // Unclaimed paths are a JSON 404.
    let (status, code, _) = error_of(
        client()
            .get(server.url("/api/nothing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    server.stop().await;
}
