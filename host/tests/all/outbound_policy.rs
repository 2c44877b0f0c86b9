//! Outbound HTTP from plugins: an exactly listed local server is reached; anything
//! not listed, a private address behind a wildcard, and a redirect to an unlisted
//! private address are refused with `HttpRequestDenied` in the guest. A listed DNS
//! name that resolves to loopback is refused unless the entry is marked
//! `private = true`; an IP-literal entry reaches its address however a request
//! spells it, and no other entry lets a numeric spelling of loopback through.

use crate::common;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use common::log::{capture_logs, logged};
use common::{Backend, TestServer, guest};

async fn upstream(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_follow_the_allowlist() {
    capture_logs();
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

    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            // The upstream is named through a variable, set in the environment as an
            // operator (or a test) would, so the plugin need not be rebuilt.
            s.plugin_env.insert(
                "HAM_PLUGIN_FETCHER_UPSTREAM".into(),
                ham_host::settings::Secret::new(format!("{allowed}/api/v3")),
            );
        })
        .start()
        .await
        .unwrap();
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
    for host in [
        "127.0.0.1",
        "localhost",
        "[::ffff:127.0.0.1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "2130706433",
        "0x7f.1",
        "017700000001",
        "127.1",
    ] {
        let (status, body) = server
            .get_text(&format!(
                "/plugins/wild/fetch?url=http://{host}:{port}/hello"
            ))
            .await;
        assert_eq!(status, 502, "{host}: {body}");
        assert!(body.contains("HttpRequestDenied"), "{host}: {body}");
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

/// A plugin whose only outbound entries are `entries` (a TOML array).
fn fetcher(name: &str, entries: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = {entries}\n\
         [variables]\nlabel = {{ default = \"f\" }}\nnas = {{ default = \"http://nas.invalid\" }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_ip_literals_and_names_marked_private_reach_loopback() {
    capture_logs();
    let upstream =
        upstream(Router::new().route("/hello", get(|| async { "hello from upstream" }))).await;
    let port = upstream.rsplit(':').next().unwrap().to_string();

    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| {
            // The marked entry's URL comes from a variable, as an operator would set it.
            s.plugin_env.insert(
                "HAM_PLUGIN_TEMPLATED_NAS".into(),
                ham_host::settings::Secret::new(format!("http://localhost:{port}/api")),
            );
        })
        .start()
        .await
        .unwrap();
    for (name, entries) in [
        // A DNS name (`localhost` resolves to 127.0.0.1 here) without the mark.
        ("named", format!("[\"http://localhost:{port}\"]")),
        // The same port as an IP literal.
        ("literal", format!("[\"http://127.0.0.1:{port}\"]")),
        // The same DNS name, marked private on purpose.
        (
            "marked",
            format!("[{{ url = \"http://localhost:{port}\", private = true }}]"),
        ),
        (
            "templated",
            "[{ url = \"{{ nas }}\", private = true }]".into(),
        ),
    ] {
        server
            .install(name, &fetcher(name, &entries), guest("probe"))
            .await;
    }

    let reached = Ok("200\nhello from upstream");
    let denied = Err("HttpRequestDenied");
    let mut cases = vec![
        ("named", "localhost".to_string(), denied),
        ("literal", "127.0.0.1".to_string(), reached),
        ("marked", "localhost".to_string(), reached),
        ("templated", "localhost".to_string(), reached),
        // A name entry never matches an address, and an address entry never a name.
        ("marked", "127.0.0.1".to_string(), denied),
        ("literal", "localhost".to_string(), denied),
        // A host that looks like an address but is not one is refused, not resolved.
        (
            "literal",
            "1.2.3.256".to_string(),
            Err("HttpRequestUriInvalid"),
        ),
        (
            "literal",
            "0x7g.1".to_string(),
            Err("HttpRequestUriInvalid"),
        ),
    ];
    // Other spellings of 127.0.0.1 are that address: an entry for a name does not
    // let them through, the IP-literal entry does.
    for spelled in [
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "017700000001",
        "127.1",
        "[::ffff:127.0.0.1]",
    ] {
        cases.push(("named", spelled.to_string(), denied));
        cases.push(("marked", spelled.to_string(), denied));
        cases.push(("literal", spelled.to_string(), reached));
    }
    for (plugin, host, expected) in cases {
        let (status, body) = server
            .get_text(&format!(
                "/plugins/{plugin}/fetch?url=http://{host}:{port}/hello"
            ))
            .await;
        match expected {
            Ok(want) => assert_eq!((status, body.as_str()), (200, want), "{plugin} {host}"),
            Err(error) => {
                assert_eq!(status, 502, "{plugin} {host}: {body}");
                assert!(body.contains(error), "{plugin} {host}: {body}");
            }
        }
    }

    // The operator sees which plugin tried which host, and the address it resolved to.
    let lines = logged(&[
        "WARN",
        "plugin=named",
        "host=localhost",
        "address=127.0.0.1",
    ]);
    assert!(!lines.is_empty(), "no warning for the refused name");
    server.stop().await;
}
