//! The browser app served from the binary: cache headers, SPA fallback, and the
//! paths it must never take over.

use crate::common;

use common::{Backend, TestServer, client};

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_is_served_with_cache_headers_and_spa_fallback() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();

    // index.html: never cached without revalidation.
    let index = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&index, "cache-control"), "no-cache");
    assert!(header(&index, "content-security-policy").contains("default-src 'self'"));
    let etag = header(&index, "etag");
    assert!(etag.starts_with('"'), "{etag}");
    let html = index.text().await.unwrap();
    assert!(html.contains("<div id=\"root\">"), "{html}");

    // Revalidation with the ETag is a 304.
    let again = client()
        .get(server.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // The hashed bundle index.html loads: immutable for a year.
    let script = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("no /assets/*.js in {html}"))
        .to_string();
    let js = client().get(server.url(&script)).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(
        header(&js, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        header(&js, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(header(&js, "x-content-type-options"), "nosniff");
    assert!(js.bytes().await.unwrap().len() > 1000);
    if let Some(css) = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".css"))
    {
        let css = client().get(server.url(css)).send().await.unwrap();
        assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    }

    // Client routes get index.html (GET and HEAD).
    for path in ["/habits/abc/edit", "/coach", "/settings?x=1"] {
        let page = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(header(&page, "cache-control"), "no-cache", "{path}");
        assert_eq!(page.text().await.unwrap(), html, "{path}");
    }
    let head = client().head(server.url("/today")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert!(head.bytes().await.unwrap().is_empty());

    // Unknown files, other methods, and the host's own prefixes are not the app's.
    for path in [
        "/assets/gone-1234.js",
        "/favicon.ico",
        "/api/nothing-here",
        "/api",
        "/plugins/nobody/",
    ] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            !header(&response, "content-type").starts_with("text/html"),
            "{path} answered html"
        );
    }
    // A person opening such a link gets the app's not-found page instead.
    for path in [
        "/plugins/nobody/",
        "/plugins/nobody/x",
        "/api/nothing-here",
        "/nowhere",
    ] {
        let response = client()
            .get(server.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .header("sec-fetch-mode", "navigate")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            header(&response, "content-type").starts_with("text/html"),
            "{path} did not answer the app"
        );
    }
    let post = client().post(server.url("/today")).send().await.unwrap();
    assert_eq!(post.status(), 404);
    // The API keeps its JSON errors.
    let api = client().get(server.url("/api/me")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok\n");

    server.stop().await;
}
