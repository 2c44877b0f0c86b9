//! A reminder's done link, over real HTTP, on SQLite and on PostgreSQL: it checks
//! the habit in once (source `reminders`) without a session; a second use and an
//! expired link are 410; a forged, truncated or foreign link is 404 and writes
//! nothing; GET is 405; forged links from one address do not stop a good one
//! from another.

use crate::common;

use std::net::IpAddr;

use common::session::Session;
use common::{Backend, TestServer, client};
use reqwest::Method;
use serde_json::{Value, json};

async fn user_id(session: &mut Session, server: &TestServer) -> String {
    let (_, me) = session.json(server, Method::GET, "/api/me", None).await;
    me["id"].as_str().unwrap().to_string()
}

async fn habit(session: &mut Session, server: &TestServer, name: &str, kind: &str) -> String {
    let mut body = json!({"name": name, "kind": kind});
    if kind == "measurable" {
        body["target"] = json!({"value": 2, "type": "at_least"});
    }
    let (status, habit) = session
        .json(server, Method::POST, "/api/habits", Some(body))
        .await;
    assert_eq!(status, 201, "{habit}");
    habit["id"].as_str().unwrap().to_string()
}

async fn entries(session: &mut Session, server: &TestServer, habit: &str) -> Value {
    let (_, list) = session
        .json(
            server,
            Method::GET,
            &format!("/api/habits/{habit}/entries"),
            None,
        )
        .await;
    list["entries"].clone()
}

async fn post(server: &TestServer, http: &reqwest::Client, path: &str) -> (u16, Value) {
    let response = http.post(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn done_link_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend)
        .with(|s| s.open_registration = true)
        .start()
        .await
    else {
        return;
    };
    let mut ada = Session::register(&server, "ada").await;
    let mut bob = Session::register(&server, "bob").await;
    let (ada_id, bob_id) = (
        user_id(&mut ada, &server).await,
        user_id(&mut bob, &server).await,
    );
    let run = habit(&mut ada, &server, "Run", "boolean").await;
    let water = habit(&mut ada, &server, "Water", "measurable").await;
    let bobs = habit(&mut bob, &server, "Bob's", "boolean").await;
    let reminders = &server.state.reminders;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let link = reminders.done_link(&ada_id, &run, today).await.unwrap();
    let http = client();

    // A previewer's GET uses nothing.
    let response = http.get(server.url(&link.path())).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(entries(&mut ada, &server, &run).await, json!([]));

    // Forged (another habit under the old signature), truncated, garbage: 404,
    // nothing written.
    let (_, tag) = link.token.split_once('.').unwrap();
    let other = reminders.done_link(&ada_id, &water, today).await.unwrap();
    let (payload, _) = other.token.split_once('.').unwrap();
    for token in [
        format!("{payload}.{tag}"),
        link.token[..link.token.len() - 3].to_string(),
        "nonsense".to_string(),
    ] {
        let (status, body) = post(&server, &http, &format!("/api/reminders/done/{token}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{token}"
        );
    }
    assert_eq!(entries(&mut ada, &server, &water).await, json!([]));

    // A link of Ada's naming Bob's habit: 404, Bob's habit untouched.
    let foreign = reminders.done_link(&ada_id, &bobs, today).await.unwrap();
    let (status, _) = post(&server, &http, &foreign.path()).await;
    assert_eq!(status, 404);
    assert_eq!(entries(&mut bob, &server, &bobs).await, json!([]));
    let _ = bob_id;

    // The link: checked in once, as `reminders`, without a session.
    let (status, body) = post(&server, &http, &link.path()).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"habit_id": run, "date": today.to_string(), "status": "done"})
        )
    );
    let recorded = entries(&mut ada, &server, &run).await;
    assert_eq!(recorded[0]["status"], "done");
    assert_eq!(recorded[0]["source"], "reminders");
    assert_eq!(recorded.as_array().unwrap().len(), 1);
    let (status, body) = post(&server, &http, &link.path()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("link_used"))
    );

    // Yesterday's link has expired.
    let yesterday = today.yesterday().unwrap();
    let old = reminders.done_link(&ada_id, &run, yesterday).await.unwrap();
    let (status, body) = post(&server, &http, &old.path()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("link_expired"))
    );
    assert_eq!(
        entries(&mut ada, &server, &run)
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A measurable habit takes a value: 422, and the link stays unused.
    let measured = reminders.done_link(&ada_id, &water, today).await.unwrap();
    let (status, _) = post(&server, &http, &measured.path()).await;
    assert_eq!(status, 422);
    let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM used_done_links")
        .fetch_one(server.state.db.pool())
        .await
        .unwrap();
    assert_eq!(used, 1);

    // A deleted habit's link: 404.
    let read = habit(&mut ada, &server, "Read", "boolean").await;
    let gone = reminders.done_link(&ada_id, &read, today).await.unwrap();
    let (status, _) = ada
        .json(
            &server,
            Method::DELETE,
            &format!("/api/habits/{read}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = post(&server, &http, &gone.path()).await;
    assert_eq!(status, 404);

    // The browser's page, for a request that prefers HTML.
    let html_link = reminders.done_link(&bob_id, &bobs, today).await.unwrap();
    let response = http
        .post(server.url(&html_link.path()))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("Checked in"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_link_checks_in_once_on_sqlite() {
    done_link_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_link_checks_in_once_on_postgres() {
    done_link_story(Backend::Postgres).await;
}

/// A client whose connections come from `ip` (a loopback address).
fn from(ip: [u8; 4]) -> reqwest::Client {
    let _ = client();
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_links_from_one_address_do_not_stop_a_good_one_from_another() {
    let server = TestServer::builder(Backend::Sqlite)
        .with(|s| s.open_registration = true)
        .start()
        .await
        .unwrap();
    let mut ada = Session::register(&server, "ada").await;
    let ada_id = user_id(&mut ada, &server).await;
    let run = habit(&mut ada, &server, "Run", "boolean").await;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let link = server
        .state
        .reminders
        .done_link(&ada_id, &run, today)
        .await
        .unwrap();
    let attacker = from([127, 0, 0, 2]);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let forged = format!("{}{i}", &link.token[..link.token.len() - 4]);
        let (status, _) = post(&server, &attacker, &format!("/api/reminders/done/{forged}")).await;
        statuses.push(status);
    }
    assert!(statuses[..5].iter().all(|s| *s == 404), "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even a good link is held back from the flooding address for a while...
    let response = attacker
        .post(server.url(&link.path()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // ...while the owner's phone, elsewhere, is not.
    let (status, body) = post(&server, &from([127, 0, 0, 1]), &link.path()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        entries(&mut ada, &server, &run).await[0]["source"],
        "reminders"
    );
    server.stop().await;
}
