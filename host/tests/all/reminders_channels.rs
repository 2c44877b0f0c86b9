//! `GET`/`PUT /api/me/notifications`, on SQLite and on PostgreSQL: tokens are
//! write-only (never shown, sealed in the database), kept by `null`, cleared by
//! `""`; another user sees none of them; bad kinds, urls and too many channels
//! are 422 naming the field.

use crate::common;

use common::session::Session;
use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

async fn channels_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend)
        .with(|s| s.open_registration = true)
        .start()
        .await
    else {
        return;
    };
    let mut ada = Session::register(&server, "ada").await;
    let mut bob = Session::register(&server, "bob").await;
    let path = "/api/me/notifications";

    let (status, empty) = ada.json(&server, Method::GET, path, None).await;
    assert_eq!((status.as_u16(), empty), (200, json!({"channels": []})));

    let (status, saved) = ada
        .json(
            &server,
            Method::PUT,
            path,
            Some(json!({"channels": [
                {"kind": "ntfy", "url": "https://ntfy.example/my-topic", "token": "tk_secret_1"},
                {"kind": "webhook", "url": "https://hooks.example/ham"},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let (_, shown) = ada.json(&server, Method::GET, path, None).await;
    assert_eq!(shown, saved);
    let text = shown.to_string();
    assert!(!text.contains("tk_secret_1"), "{text}");
    let channels = shown["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    for (c, kind, token_set) in [
        (&channels[0], "ntfy", true),
        (&channels[1], "webhook", false),
    ] {
        assert_eq!(c["kind"], kind);
        assert_eq!(c["token_set"], token_set, "{c}");
        assert!(c.get("token").is_none(), "{c}");
        assert!(c["id"].as_str().is_some_and(|id| !id.is_empty()));
        for field in ["last_error", "last_error_at", "last_success_at"] {
            assert_eq!(c[field], Value::Null, "{field} of {c}");
        }
    }
    let ntfy_id = channels[0]["id"].clone();

    // The database holds the token sealed, never in plaintext.
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT token_sealed FROM notification_channels WHERE kind = 'ntfy'")
            .fetch_one(server.state.db.pool())
            .await
            .unwrap();
    assert!(sealed.starts_with(b"hamseal1"));
    assert!(!sealed.windows(11).any(|w| w == b"tk_secret_1"));

    // A delivery result shows; the token opens for the worker.
    let stored = server
        .state
        .db
        .notification_channels(&me(&mut ada, &server).await)
        .await
        .unwrap();
    assert!(
        server
            .state
            .db
            .record_delivery(&stored[0].id, Err("HTTP 401 from ntfy.example"))
            .await
            .unwrap()
    );
    assert_eq!(
        server
            .state
            .reminders
            .channel_token(&me(&mut ada, &server).await, &stored[0])
            .as_deref(),
        Some("tk_secret_1")
    );

    // `null` (and no token) keeps it, by kind and url; the id and results stay.
    let (status, kept) = ada
        .json(
            &server,
            Method::PUT,
            path,
            Some(json!({"channels": [
                {"kind": "webhook", "url": "https://hooks.example/ham", "token": null},
                {"kind": "ntfy", "url": "https://ntfy.example/my-topic", "token": null},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["channels"][1]["token_set"], true, "{kept}");
    assert_eq!(kept["channels"][1]["id"], ntfy_id);
    assert_eq!(
        kept["channels"][1]["last_error"],
        "HTTP 401 from ntfy.example"
    );
    assert!(kept["channels"][1]["last_error_at"].is_i64());
    assert_eq!(kept["channels"][0]["token_set"], false);

    // Another user sees none of it, and their PUT touches none of it.
    let (_, theirs) = bob.json(&server, Method::GET, path, None).await;
    assert_eq!(theirs, json!({"channels": []}));
    let (status, _) = bob
        .json(
            &server,
            Method::PUT,
            path,
            Some(json!({"channels": [{"kind": "ntfy", "url": "https://ntfy.example/my-topic", "token": null}]})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, theirs) = bob.json(&server, Method::GET, path, None).await;
    assert_eq!(theirs["channels"][0]["token_set"], false, "{theirs}");
    let (_, mine) = ada.json(&server, Method::GET, path, None).await;
    assert_eq!(mine, kept);

    // The same url under another kind is another channel, without the token.
    let (_, moved) = ada
        .json(
            &server,
            Method::PUT,
            path,
            Some(json!({"channels": [{"kind": "webhook", "url": "https://ntfy.example/my-topic", "token": null}]})),
        )
        .await;
    assert_eq!(moved["channels"][0]["token_set"], false, "{moved}");

    // `""` clears a token.
    let (_, set) = ada
        .json(
            &server,
            Method::PUT,
            path,
            Some(json!({"channels": [{"kind": "ntfy", "url": "https://ntfy.example/t", "token": "x"}]})),
        )
        .await;
    assert_eq!(set["channels"][0]["token_set"], true);
    let (_, cleared) = ada
        .json(
            &server,
            Method::PUT,
            path,
            Some(json!({"channels": [{"kind": "ntfy", "url": "https://ntfy.example/t", "token": ""}]})),
        )
        .await;
    assert_eq!(cleared["channels"][0]["token_set"], false, "{cleared}");

    // A channel listed twice is saved once, with the later listing's token.
    let (status, twice) = ada
        .json(
            &server,
            Method::PUT,
            path,
            Some(json!({"channels": [
                {"kind": "ntfy", "url": "https://ntfy.example/t", "token": "tk_first"},
                {"kind": "ntfy", "url": "https://ntfy.example/t", "token": ""},
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{twice}");
    assert_eq!(twice["channels"].as_array().unwrap().len(), 1, "{twice}");
    assert_eq!(twice["channels"][0]["token_set"], false, "{twice}");
    assert_eq!(twice["channels"][0]["id"], cleared["channels"][0]["id"]);

    // Refusals name the field and change nothing.
    let many: Vec<Value> = (0..11)
        .map(|i| json!({"kind": "webhook", "url": format!("https://h.example/{i}")}))
        .collect();
    for (channels, field) in [
        (
            json!([{"kind": "email", "url": "https://x.example"}]),
            "channels[0].kind",
        ),
        (
            json!([{"kind": "ntfy", "url": "ftp://x.example/t"}]),
            "channels[0].url",
        ),
        (
            json!([{"kind": "ntfy", "url": "ntfy.sh/topic"}]),
            "channels[0].url",
        ),
        (
            json!([{"kind": "ntfy", "url": "https://"}]),
            "channels[0].url",
        ),
        (json!(many), "channels"),
    ] {
        let (status, body) = ada
            .json(
                &server,
                Method::PUT,
                path,
                Some(json!({"channels": channels})),
            )
            .await;
        assert_eq!(
            (status.as_u16(), body["error"]["code"].as_str()),
            (422, Some("invalid_field")),
            "{channels}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{channels}: {message}");
    }
    let (_, after) = ada.json(&server, Method::GET, path, None).await;
    assert_eq!(after, cleared);

    // Without a session: 401.
    let (status, _) = Session::default()
        .json(&server, Method::GET, path, None)
        .await;
    assert_eq!(status, 401);
    server.stop().await;
}

async fn me(session: &mut Session, server: &TestServer) -> String {
    let (_, me) = session.json(server, Method::GET, "/api/me", None).await;
    me["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_tokens_are_write_only_on_sqlite() {
    channels_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_tokens_are_write_only_on_postgres() {
    channels_story(Backend::Postgres).await;
}
