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

/// Requests under `/plugins/` skip the router (`api::serve_plugin_path`); they
/// still get what the router gives every answer. A HEAD answer has no body and
/// leaves the connection usable for the next request; a body of known size
/// carries its `Content-Length`; the request is counted under the plugin's
/// route label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_paths_answer_as_routed_requests_do() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    server
        .install(
            "proxy",
            "name = \"proxy\"\nversion = \"0.1.0\"\n",
            guest("wasi-proxy"),
        )
        .await;

    // Five requests on one connection: HEAD and GET on the plugin, the mount
    // itself with a query and bare, then a host route. The guest writes a body
    // for HEAD too; none of it reaches the wire.
    let addr = server.url("").trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"HEAD /plugins/proxy/x HTTP/1.1\r\nHost: ham\r\n\r\n\
              GET /plugins/proxy/x HTTP/1.1\r\nHost: ham\r\n\r\n\
              GET /plugins/proxy?x=1 HTTP/1.1\r\nHost: ham\r\n\r\n\
              GET /plugins/proxy HTTP/1.1\r\nHost: ham\r\n\r\n\
              GET /healthz HTTP/1.1\r\nHost: ham\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut wire = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut wire),
    )
    .await
    .expect("the server answered all five and closed")
    .unwrap();
    let answers: Vec<&str> = wire.split("HTTP/1.1 ").skip(1).collect();
    assert_eq!(answers.len(), 5, "{wire}");
    assert!(answers.iter().all(|a| a.starts_with("200 OK")), "{wire}");
    let (head, rest) = answers[0].split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-security-policy: sandbox"), "{head}");
    assert_eq!(rest, "", "a HEAD answer has no body: {wire}");
    assert!(!wire.contains("saw HEAD"), "{wire}");
    assert!(answers[1].contains("wasi-proxy saw GET /x\n"), "{wire}");
    // A guest that has returned sent its whole body: it goes out with its length.
    assert!(answers[1].contains("content-length: 22\r\n"), "{wire}");
    assert!(!answers[1].contains("transfer-encoding"), "{wire}");
    // Below the mount, a query with no path is the root's.
    assert!(answers[2].contains("wasi-proxy saw GET /?x=1\n"), "{wire}");
    assert!(answers[3].contains("wasi-proxy saw GET /\n"), "{wire}");
    assert!(answers[4].ends_with("\r\n\r\nok\n"), "{wire}");

    // A body of known size (the JSON 404 for a plugin that does not exist)
    // carries its length.
    let response = client()
        .get(server.url("/plugins/nothing/here"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let length = response.headers()["content-length"].clone();
    let body = response.text().await.unwrap();
    assert_eq!(length.to_str().unwrap(), body.len().to_string(), "{body}");
    assert!(body.contains("\"not_found\""), "{body}");

    let metrics = server.metrics().await;
    for (method, count) in [("HEAD", 1), ("GET", 3)] {
        let series = format!(
            "ham_http_requests_total{{method=\"{method}\",route=\"/plugins/proxy\",status=\"200\"}} {count}\n"
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    server.stop().await;
}

/// A guest that promises more body than it writes: the host refuses to end the
/// body, so no client takes the three bytes for the whole answer, and the next
/// request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_length_never_reaches_a_client_whole() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    server
        .install(
            "probe",
            &common::probe_manifest("probe", "0.1.0", "one", ""),
            guest("probe"),
        )
        .await;
    for _ in 0..3 {
        let answer = match client()
            .get(server.url("/plugins/probe/short"))
            .send()
            .await
        {
            Ok(response) => response.bytes().await.map(|b| b.to_vec()),
            Err(e) => Err(e),
        };
        assert!(
            answer.is_err(),
            "a short body was taken as whole: {answer:?}"
        );
        let (status, body) = server.get_text("/plugins/probe/label").await;
        assert_eq!((status, body.as_str()), (200, "one"));
    }
    server.stop().await;
}
