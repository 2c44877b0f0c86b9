//! Outbound HTTP from plugins: an exactly listed local server is reached; anything
//! not listed, a private address behind a wildcard, and a redirect to an unlisted
//! private address are refused with `HttpRequestDenied` in the guest.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use common::{Backend, TestDb, TestServer, guest, settings};

async fn upstream(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_follow_the_allowlist() {
    let allowed =
        upstream(Router::new().route("/hello", get(|| async { "hello from upstream" }))).await;
    let unlisted =
        upstream(Router::new().route("/", get(|| async { "should never be reached" }))).await;
    let redirect_target = format!("{unlisted}/");
    let redirector = upstream(Router::new().route(
        "/",
        get(move || {
            let to = redirect_target.clone();
            async move { Redirect::temporary(&to) }
        }),
    ))
    .await;

    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let mut s = settings(dir.path(), &db);
    // The upstream is named through a variable, set in the environment as an
    // operator (or a test) would, so the plugin need not be rebuilt.
    s.plugin_env.insert(
        "HAM_PLUGIN_FETCHER_UPSTREAM".into(),
        ham_host::settings::Secret::new(format!("{allowed}/api/v3")),
    );
    let server = TestServer::start(s).await;
    let manifest = format!(
        "name = \"fetcher\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [\"{{{{ upstream }}}}\", \"{redirector}\"]\n\
         [variables]\nupstream = {{ default = \"https://www.strava.com\" }}\nlabel = {{ default = \"f\" }}\n"
    );
    server.install("fetcher", &manifest, guest("probe")).await;
    let wildcard =
        "name = \"wild\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [\"http://*:*\"]\n";
    server.install("wild", wildcard, guest("probe")).await;

    // Listed exactly: reached.
    let (status, body) = server
        .get_text(&format!("/plugins/fetcher/fetch?url={allowed}/hello"))
        .await;
    assert_eq!((status, body.as_str()), (200, "200\nhello from upstream"));

    // Not listed: refused.
    let (status, body) = server
        .get_text(&format!("/plugins/fetcher/fetch?url={unlisted}/"))
        .await;
    assert_eq!(status, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");

    // A wildcard never reaches loopback, however it is spelled.
    let port = allowed.rsplit(':').next().unwrap();
    for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"] {
        let (status, body) = server
            .get_text(&format!(
                "/plugins/wild/fetch?url=http://{host}:{port}/hello"
            ))
            .await;
        assert_eq!(status, 502, "{host}: {body}");
        assert!(
            body.contains("HttpRequestDenied") || body.contains("DnsError"),
            "{host}: {body}"
        );
    }

    // A listed host that redirects to an unlisted private address: the second hop
    // is checked again and refused.
    let (status, body) = server
        .get_text(&format!("/plugins/fetcher/fetch?url={redirector}/"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    // A plugin with no allowlist reaches nothing.
    server
        .install(
            "closed",
            "name = \"closed\"\nversion = \"0.1.0\"\n",
            guest("probe"),
        )
        .await;
    let (status, body) = server
        .get_text(&format!("/plugins/closed/fetch?url={allowed}/hello"))
        .await;
    assert_eq!(status, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    server.stop().await;
}
