//! Users (local accounts and sessions) and their habits and entries, over real
//! HTTP, on SQLite and on PostgreSQL.

use crate::common;

use common::session::{Session, credentials};
use common::{Backend, TestServer, client, error_of, guest, probe_manifest};
use reqwest::Method;
use serde_json::json;

async fn habits_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    let (mut alice, mut bob, mut anonymous) =
        (Session::default(), Session::default(), Session::default());

    // The first account is an admin, signed in by a secure session cookie.
    let response = alice
        .send(
            &server,
            Method::POST,
            "/api/auth/register",
            credentials("alice"),
        )
        .await;
    assert_eq!(response.status(), 201);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let (status, me) = alice.json(&server, Method::GET, "/api/me", None).await;
    assert_eq!(
        (
            status.as_u16(),
            me["username"].as_str(),
            me["is_admin"].as_bool()
        ),
        (200, Some("alice"), Some(true))
    );

    // After that, only an admin creates accounts.
    let (status, body) = anonymous
        .json(
            &server,
            Method::POST,
            "/api/auth/register",
            credentials("bob"),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (403, Some("registration_closed"))
    );
    let (status, body) = alice
        .json(
            &server,
            Method::POST,
            "/api/auth/register",
            credentials("bob"),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["is_admin"].as_bool()),
        (201, Some(false))
    );
    assert_eq!(
        alice.json(&server, Method::GET, "/api/me", None).await.1["username"],
        "alice"
    );
    let (status, _) = alice
        .json(
            &server,
            Method::POST,
            "/api/auth/register",
            credentials("bob"),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        bob.send(&server, Method::POST, "/api/auth/login", credentials("bob"))
            .await
            .status(),
        200
    );
    assert_eq!(
        bob.json(&server, Method::GET, "/api/me", None).await.1["username"],
        "bob"
    );
    assert_eq!(
        anonymous
            .send(&server, Method::GET, "/api/me", None)
            .await
            .status(),
        401
    );

    // "Today" follows the user's time zone (UTC+14 here, so it is often not UTC's today).
    let (status, error) = alice
        .json(
            &server,
            Method::PATCH,
            "/api/me",
            Some(json!({"time_zone": "Mars/Olympus"})),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("time_zone"),
        "{error}"
    );
    let (status, me) = alice
        .json(
            &server,
            Method::PATCH,
            "/api/me",
            Some(json!({"time_zone": "Pacific/Kiritimati"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), me["time_zone"].as_str()),
        (200, Some("Pacific/Kiritimati"))
    );
    let kiritimati = jiff::tz::TimeZone::get("Pacific/Kiritimati").unwrap();
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(kiritimati)
        .date()
        .to_string();
    assert_eq!(me["today"], today.as_str());

    // Habits of both kinds.
    let run = json!({"name": "Run", "kind": "boolean", "frequency": {"times": 3, "days": 7}});
    let (status, run) = alice
        .json(&server, Method::POST, "/api/habits", Some(run))
        .await;
    assert_eq!(status, 201, "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    assert_eq!(run["frequency"], json!({"times": 3, "days": 7}));
    assert_eq!(
        run["created"],
        today.as_str(),
        "created on the user's today"
    );
    let water = json!({"name": "Water", "kind": "measurable", "unit": "l", "target": {"value": 2.0, "type": "at_least"}, "frequency": {"times": 1, "days": 1}});
    let (status, water) = alice
        .json(&server, Method::POST, "/api/habits", Some(water))
        .await;
    assert_eq!(status, 201, "{water}");
    let water_id = water["id"].as_str().unwrap().to_string();
    assert_eq!(water["target"], json!({"value": 2.0, "type": "at_least"}));

    // Entries: done, skipped with a note, values; an upsert replaces.
    let entry = |id: &str, date: &str| format!("/api/habits/{id}/entries/{date}");
    let (status, e) = alice
        .json(
            &server,
            Method::PUT,
            &entry(&run_id, "2026-11-20"),
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), e["status"].as_str(), e["source"].as_str()),
        (200, Some("done"), Some("manual"))
    );
    alice
        .json(
            &server,
            Method::PUT,
            &entry(&run_id, "2026-11-21"),
            Some(json!({"status": "skipped", "note": "rain"})),
        )
        .await;
    alice
        .json(
            &server,
            Method::PUT,
            &entry(&water_id, "2026-11-20"),
            Some(json!({"value": 2.5})),
        )
        .await;
    let (status, _) = alice
        .json(
            &server,
            Method::PUT,
            &entry(&water_id, "2026-11-20"),
            Some(json!({"value": 3.0})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, list) = alice
        .json(
            &server,
            Method::GET,
            &format!("/api/habits/{water_id}/entries"),
            None,
        )
        .await;
    assert_eq!(
        list["entries"],
        json!([{"habit_id": water_id, "date": "2026-11-20", "status": "value", "value": 3.0, "note": null, "source": "manual"}])
    );
    let (_, list) = alice
        .json(
            &server,
            Method::GET,
            &format!("/api/habits/{run_id}/entries?from=2026-11-21&to=2026-11-30"),
            None,
        )
        .await;
    assert_eq!(list["entries"].as_array().unwrap().len(), 1);
    assert_eq!(list["entries"][0]["note"], "rain");

    // Bad input: a clear error naming the field, and nothing written.
    let bad_habits = [
        (json!({"name": "X", "kind": "sometimes"}), 422, "kind"),
        (
            json!({"name": "X", "kind": "measurable", "unit": "km", "target": {"value": -5, "type": "at_least"}}),
            422,
            "target.value",
        ),
        (
            json!({"name": "X", "kind": "boolean", "frequency": {"times": 5, "days": 3}}),
            422,
            "frequency.times",
        ),
        (
            json!({"name": "X", "kind": "boolean", "frequency": {"times": 1, "days": 0}}),
            422,
            "frequency.days",
        ),
        (json!({"kind": "boolean"}), 422, "name"),
        (
            json!({"name": "X", "kind": "boolean", "colour": "red"}),
            422,
            "colour",
        ),
    ];
    for (body, status, field) in bad_habits {
        let (got, error) = alice
            .json(&server, Method::POST, "/api/habits", Some(body.clone()))
            .await;
        assert_eq!(got.as_u16(), status, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: `{message}` should name {field}"
        );
    }
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut r = client()
            .post(server.url("/api/habits"))
            .header("cookie", alice.cookie.clone().unwrap());
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        r.body(body)
    };
    let (status, code, _) = error_of(
        raw("{not json", Some("application/json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let (status, code, _) = error_of(raw("{}", None).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (415, "unsupported_media_type"));
    let huge = client()
        .post(server.url("/api/habits"))
        .header("cookie", alice.cookie.clone().unwrap())
        .header("content-type", "application/json")
        .body(format!(
            "{{\"name\": \"{}\", \"kind\": \"boolean\"}}",
            "x".repeat(400 * 1024)
        ))
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(huge).await;
    assert_eq!((status, code.as_str()), (413, "too_large"));
    let bad_entries = [
        (
            entry(&run_id, "2026-02-30"),
            json!({"status": "done"}),
            "date",
        ),
        (entry(&run_id, "2026-11-22"), json!({"value": 3}), "value"),
        (
            entry(&water_id, "2026-11-22"),
            json!({"status": "done"}),
            "status",
        ),
        (
            entry(&water_id, "2026-11-22"),
            json!({"value": -1}),
            "value",
        ),
        (
            entry(&run_id, "2026-11-22"),
            json!({"status": "maybe"}),
            "status",
        ),
    ];
    for (path, body, field) in bad_entries {
        let (status, error) = alice
            .json(&server, Method::PUT, &path, Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{path} {body}: {error}");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{path} {body}: {error}"
        );
    }
    let (_, list) = alice.json(&server, Method::GET, "/api/habits", None).await;
    assert_eq!(
        list["habits"].as_array().unwrap().len(),
        2,
        "refused requests must write nothing"
    );
    let (_, list) = alice
        .json(
            &server,
            Method::GET,
            &format!("/api/habits/{run_id}/entries"),
            None,
        )
        .await;
    assert_eq!(list["entries"].as_array().unwrap().len(), 2);

    // Bob sees none of it and can change none of it.
    assert_eq!(
        bob.json(&server, Method::GET, "/api/habits", None).await.1,
        json!({"habits": []})
    );
    for (method, path, body) in [
        (Method::GET, format!("/api/habits/{run_id}"), None),
        (
            Method::PATCH,
            format!("/api/habits/{run_id}"),
            Some(json!({"name": "Mine"})),
        ),
        (Method::DELETE, format!("/api/habits/{run_id}"), None),
        (Method::GET, format!("/api/habits/{run_id}/entries"), None),
        (
            Method::PUT,
            entry(&run_id, "2026-11-23"),
            Some(json!({"status": "done"})),
        ),
        (Method::DELETE, entry(&run_id, "2026-11-20"), None),
    ] {
        let (status, _) = bob.json(&server, method.clone(), &path, body).await;
        assert_eq!(status, 404, "bob {method} {path}");
    }
    assert_eq!(
        alice
            .json(&server, Method::GET, &format!("/api/habits/{run_id}"), None)
            .await
            .1["name"],
        "Run"
    );

    // Edit, archive, delete.
    let (status, patched) = alice
        .json(
            &server,
            Method::PATCH,
            &format!("/api/habits/{run_id}"),
            Some(json!({"name": "Morning run", "reminders": [{"time": "07:30", "days": [1, 2, 3, 4, 5]}]})),
        )
        .await;
    assert_eq!(
        (
            status.as_u16(),
            patched["name"].as_str(),
            patched["reminders"].clone()
        ),
        (
            200,
            Some("Morning run"),
            json!([{"time": "07:30", "days": [1, 2, 3, 4, 5]}])
        )
    );
    let (_, patched) = alice
        .json(
            &server,
            Method::PATCH,
            &format!("/api/habits/{run_id}"),
            Some(json!({"reminders": [], "archived": true})),
        )
        .await;
    assert_eq!(
        (patched["reminders"].clone(), patched["archived"].clone()),
        (json!([]), json!(true))
    );
    assert_eq!(
        alice
            .json(&server, Method::GET, "/api/habits", None)
            .await
            .1["habits"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        alice
            .json(&server, Method::GET, "/api/habits?archived=true", None)
            .await
            .1["habits"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        alice
            .send(&server, Method::DELETE, &entry(&run_id, "2026-11-21"), None)
            .await
            .status(),
        204
    );
    assert_eq!(
        alice
            .send(&server, Method::DELETE, &entry(&run_id, "2026-11-21"), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        alice
            .send(
                &server,
                Method::DELETE,
                &format!("/api/habits/{water_id}"),
                None
            )
            .await
            .status(),
        204
    );
    assert_eq!(
        alice
            .send(
                &server,
                Method::GET,
                &format!("/api/habits/{water_id}/entries"),
                None
            )
            .await
            .status(),
        404
    );

    // A plugin request acts for the signed-in user.
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "p", ""),
            guest("probe"),
        )
        .await;
    let put = alice
        .send(&server, Method::PUT, "/plugins/probe/kv/user/note", None)
        .await;
    assert_eq!(put.status(), 200);
    assert_eq!(
        bob.send(&server, Method::GET, "/plugins/probe/kv/user/note", None)
            .await
            .text()
            .await
            .unwrap(),
        "absent"
    );
    assert_eq!(
        alice
            .send(&server, Method::GET, "/plugins/probe/kv/user/note", None)
            .await
            .text()
            .await
            .unwrap(),
        "1\n"
    );
    assert_eq!(
        anonymous
            .send(&server, Method::GET, "/plugins/probe/kv/user/note", None)
            .await
            .status(),
        403
    );

    // Through the `habits` interface a plugin sees and changes only the acting
    // user's data.
    assert_eq!(
        alice
            .send(&server, Method::GET, "/plugins/probe/habits", None)
            .await
            .text()
            .await
            .unwrap(),
        "Morning run"
    );
    assert_eq!(
        bob.send(&server, Method::GET, "/plugins/probe/habits", None)
            .await
            .text()
            .await
            .unwrap(),
        ""
    );
    assert_eq!(
        anonymous
            .send(&server, Method::GET, "/plugins/probe/habits", None)
            .await
            .status(),
        403
    );
    let checkin = format!("/plugins/probe/habits/checkin?habit={run_id}&date=2026-11-22");
    assert_eq!(
        bob.send(&server, Method::GET, &checkin, None)
            .await
            .status(),
        404,
        "bob cannot check in alice's habit"
    );
    assert_eq!(
        alice
            .send(&server, Method::GET, &checkin, None)
            .await
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let (_, list) = alice
        .json(
            &server,
            Method::GET,
            &format!("/api/habits/{run_id}/entries?from=2026-11-22&to=2026-11-22"),
            None,
        )
        .await;
    assert_eq!(list["entries"][0]["source"], "probe");
    assert_eq!(list["entries"][0]["note"], "from the probe");
    let bad_date = format!("/plugins/probe/habits/checkin?habit={run_id}&date=2026-02-30");
    assert_eq!(
        alice
            .send(&server, Method::GET, &bad_date, None)
            .await
            .status(),
        400
    );
    // Deleting an entry through the interface follows the API's rules: the
    // same ownership, the same date check (one implementation, the tracker's).
    let uncheck = |date: &str| format!("/plugins/probe/habits/uncheck?habit={run_id}&date={date}");
    let bad = alice
        .send(&server, Method::GET, &uncheck("2026-02-30"), None)
        .await;
    assert_eq!(bad.status(), 400);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("is not a date YYYY-MM-DD"),
        "the same words as the API's"
    );
    let (status, _, message) = error_of(
        alice
            .send(
                &server,
                Method::DELETE,
                &format!("/api/habits/{run_id}/entries/2026-02-30"),
                None,
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(message.contains("is not a date YYYY-MM-DD"), "{message}");
    // An entry centuries back would make every stats request of the user fail
    // (the rules judge at most 200 years of a history): refused, naming the floor.
    let (status, _, message) = error_of(
        alice
            .send(
                &server,
                Method::PUT,
                &format!("/api/habits/{run_id}/entries/0154-02-02"),
                Some(json!({"status": "done"})),
            )
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert!(message.contains("1900-01-01 or later"), "{message}");
    assert_eq!(
        bob.send(&server, Method::GET, &uncheck("2026-11-22"), None)
            .await
            .status(),
        404,
        "bob cannot delete alice's entry"
    );
    for expected in ["true", "false"] {
        let deleted = alice
            .send(&server, Method::GET, &uncheck("2026-11-22"), None)
            .await;
        assert_eq!(deleted.text().await.unwrap(), expected);
    }
    let (_, list) = alice
        .json(
            &server,
            Method::GET,
            &format!("/api/habits/{run_id}/entries?from=2026-11-22&to=2026-11-22"),
            None,
        )
        .await;
    assert_eq!(list["entries"], serde_json::json!([]));
    assert_eq!(
        alice
            .send(&server, Method::GET, &checkin, None)
            .await
            .text()
            .await
            .unwrap(),
        "ok"
    );
    // Activities: unique per source and external id, listed per user.
    for _ in 0..2 {
        let run = alice
            .send(
                &server,
                Method::GET,
                "/plugins/probe/habits/run?id=a1&km=5.2&date=2026-11-21",
                None,
            )
            .await;
        assert_eq!(run.text().await.unwrap(), "ok");
    }
    alice
        .send(
            &server,
            Method::GET,
            "/plugins/probe/habits/run?id=a2&km=10&date=2026-11-22",
            None,
        )
        .await;
    let (_, acts) = alice
        .json(
            &server,
            Method::GET,
            "/api/activities?from=2026-11-21&to=2026-11-21&sport=Run",
            None,
        )
        .await;
    let acts = acts["activities"].as_array().unwrap();
    assert_eq!(acts.len(), 1, "an upsert twice is one activity");
    assert_eq!(acts[0]["distance_m"], 5200.0);
    assert_eq!(
        alice
            .json(&server, Method::GET, "/api/activities", None)
            .await
            .1["activities"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        bob.json(&server, Method::GET, "/api/activities", None)
            .await
            .1["activities"],
        json!([])
    );
    assert_eq!(
        bob.send(
            &server,
            Method::GET,
            "/plugins/probe/habits/activities",
            None
        )
        .await
        .text()
        .await
        .unwrap(),
        ""
    );

    // A signed-in admin may use the admin routes; other users may not.
    assert_eq!(
        alice
            .send(&server, Method::GET, "/api/admin/plugins", None)
            .await
            .status(),
        200
    );
    let refused = bob
        .send(&server, Method::GET, "/api/admin/plugins", None)
        .await;
    let (status, code, _) = error_of(refused).await;
    assert_eq!((status, code.as_str()), (403, "not_admin"));

    // Logging out revokes the session on the server, not just in the browser.
    let stolen = bob.cookie.clone();
    assert_eq!(
        bob.send(&server, Method::POST, "/api/auth/logout", None)
            .await
            .status(),
        204
    );
    let mut thief = Session { cookie: stolen };
    assert_eq!(
        thief
            .send(&server, Method::GET, "/api/me", None)
            .await
            .status(),
        401
    );

    // Failed logins are limited: after five, even the right password waits.
    for _ in 0..5 {
        let wrong = Some(json!({"username": "bob", "password": "wrong-password"}));
        assert_eq!(
            bob.send(&server, Method::POST, "/api/auth/login", wrong)
                .await
                .status(),
            401
        );
    }
    let response = bob
        .send(&server, Method::POST, "/api/auth/login", credentials("bob"))
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_habits_on_sqlite() {
    habits_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_habits_on_postgres() {
    habits_story(Backend::Postgres).await;
}
