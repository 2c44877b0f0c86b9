//! Organising habits: groups and a persisted order (`PUT /api/habits/order`),
//! over real HTTP on SQLite and PostgreSQL, with what another user or a
//! malformed body gets.

use crate::common;

use common::session::{Session, credentials};
use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

/// The names of `habits`, in order.
fn names(habits: &Value) -> Vec<&str> {
    habits["habits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect()
}

async fn organising_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    let (mut alice, mut bob) = (Session::default(), Session::default());
    alice
        .send(
            &server,
            Method::POST,
            "/api/auth/register",
            credentials("alice"),
        )
        .await;
    alice
        .send(
            &server,
            Method::POST,
            "/api/auth/register",
            credentials("bob"),
        )
        .await;
    bob.send(&server, Method::POST, "/api/auth/login", credentials("bob"))
        .await;

    let mut ids = Vec::new();
    for (name, group) in [
        ("Stretch", json!("  Morning ")),
        ("Read", Value::Null),
        ("Water", json!("Morning")),
        ("Journal", json!("Evening")),
    ] {
        let (status, habit) = alice
            .json(
                &server,
                Method::POST,
                "/api/habits",
                Some(json!({ "name": name, "kind": "boolean", "group": group })),
            )
            .await;
        assert_eq!(status, 201, "{habit}");
        ids.push(habit["id"].as_str().unwrap().to_string());
    }
    // Groups are trimmed; no group is null.
    let (_, list) = alice.json(&server, Method::GET, "/api/habits", None).await;
    let groups: Vec<&Value> = list["habits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["group"])
        .collect();
    assert_eq!(
        groups,
        [
            &json!("Morning"),
            &Value::Null,
            &json!("Morning"),
            &json!("Evening")
        ]
    );

    // A group is 1 to 40 characters; "" takes the habit out of it.
    for (group, status) in [(json!("x".repeat(41)), 422), (json!("a\u{0}b"), 422)] {
        let (got, body) = alice
            .json(
                &server,
                Method::PATCH,
                &format!("/api/habits/{}", ids[0]),
                Some(json!({ "group": group })),
            )
            .await;
        assert_eq!(
            (got.as_u16(), body["error"]["code"].as_str()),
            (status, Some("invalid_field")),
            "{body}"
        );
        assert!(body["error"]["message"].as_str().unwrap().contains("group"));
    }
    let (_, water) = alice
        .json(
            &server,
            Method::PATCH,
            &format!("/api/habits/{}", ids[2]),
            Some(json!({ "group": "" })),
        )
        .await;
    assert_eq!(water["group"], Value::Null);

    // Archive Read: a reorder of the active ones leaves it where it was.
    alice
        .json(
            &server,
            Method::PATCH,
            &format!("/api/habits/{}", ids[1]),
            Some(json!({ "archived": true })),
        )
        .await;
    let order = json!({ "ids": [&ids[3], &ids[0], &ids[2]] });
    let (status, body) = alice
        .json(&server, Method::PUT, "/api/habits/order", Some(order))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["Journal", "Stretch", "Water"]);
    let (_, all) = alice
        .json(&server, Method::GET, "/api/habits?archived=true", None)
        .await;
    assert_eq!(names(&all), ["Journal", "Read", "Stretch", "Water"]);

    // Bob cannot reorder Alice's habits, nor learn that they exist: 404 as for
    // an id that is nobody's, and nothing moves. His own list is untouched.
    let (status, body) = bob
        .json(
            &server,
            Method::PUT,
            "/api/habits/order",
            Some(json!({ "ids": [&ids[0], &ids[3]] })),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // An id twice, too many ids, or a malformed body: refused, nothing moves.
    let twice = json!({ "ids": [&ids[0], &ids[0]] });
    let many = json!({ "ids": (0..1001).map(|i| i.to_string()).collect::<Vec<_>>() });
    for (body, status, code) in [
        (twice, 422, "invalid_field"),
        (many, 422, "invalid_field"),
        (json!({ "ids": "all" }), 422, "invalid_field"),
        (json!({ "ids": [], "position": 1 }), 422, "invalid_field"),
    ] {
        let (got, answer) = alice
            .json(&server, Method::PUT, "/api/habits/order", Some(body))
            .await;
        assert_eq!(
            (got.as_u16(), answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }
    let (_, after) = alice
        .json(&server, Method::GET, "/api/habits?archived=true", None)
        .await;
    assert_eq!(names(&after), ["Journal", "Read", "Stretch", "Water"]);

    // Groups and order survive an export and an import into another account.
    let (_, export) = alice
        .json(&server, Method::GET, "/api/export?format=json", None)
        .await;
    let (status, _) = bob
        .json(&server, Method::POST, "/api/import", Some(export))
        .await;
    assert!(status.is_success(), "{status}");
    let (_, imported) = bob
        .json(&server, Method::GET, "/api/habits?archived=true", None)
        .await;
    assert_eq!(names(&imported), ["Journal", "Read", "Stretch", "Water"]);
    let imported_groups: Vec<&Value> = imported["habits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["group"])
        .collect();
    assert_eq!(
        imported_groups,
        [
            &json!("Evening"),
            &Value::Null,
            &json!("Morning"),
            &Value::Null
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_order_on_sqlite() {
    organising_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_order_on_postgres() {
    organising_story(Backend::Postgres).await;
}
