//! Shadow runs of a rule set, over HTTP: the strict rule set (a skip breaks a
//! streak) runs in shadow beside the bundled one; users get the bundled answers
//! only, and the admin view shows the one habit they differ on (on SQLite, and on
//! PostgreSQL with the stats asked of a second replica); abort leaves the bundled
//! answers, promote makes the strict ones live. A candidate that traps is counted
//! as errors and never seen; a shadow upload of anything but a rule set is
//! refused.

use crate::common;
use crate::rules_stats::{add_habit, day, stats, today_utc};

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use common::process::until;
use common::session::Session;
use common::upload_plugin_rollout as upload;
use common::{ADMIN_TOKEN, Backend, TestServer, client, error_of, guest, probe_manifest, rebuilt};

async fn rules_plugin(base: &str) -> Value {
    let response = client()
        .get(format!("{base}/api/admin/plugins/habit-rules"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn decide(base: &str, action: &str) -> Value {
    let response = client()
        .post(format!(
            "{base}/api/admin/plugins/habit-rules/rollout/{action}"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{action}");
    response.json().await.unwrap()
}

/// The shadow run's figures once `compared + errors` reaches `answers` (at most
/// 10 s: each replica adds its figures every 250 ms).
async fn shadow_once(base: &str, answers: i64) -> Value {
    until(
        Duration::from_secs(10),
        &format!("{answers} answers in the shadow view"),
        || async {
            let rollout = rules_plugin(base).await["rollout"].clone();
            let shadow = &rollout["shadow"];
            let seen = shadow["compared"].as_i64()? + shadow["errors"].as_i64()?;
            (seen >= answers).then_some(rollout)
        },
    )
    .await
}

fn strict_manifest() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/rules-strict-streaks/plugin.toml"
    ))
    .unwrap()
}

const SHADOW: &str = r#"{"shadow": true, "sample_percent": 100}"#;

/// The stats of `id` from `offset` days ago to today.
async fn since(server: &TestServer, session: &mut Session, id: &str, offset: i64) -> Value {
    let today = today_utc();
    stats(server, session, id, &day(today, offset), &today.to_string()).await
}

/// `later`, asked over a shorter range, is the same answer as `earlier`: the same
/// figures, and the same score for every day both cover.
fn same_answer(earlier: &Value, later: &Value) {
    for key in ["score", "current_streak", "best_streaks", "window"] {
        assert_eq!(earlier[key], later[key], "{key}: {earlier} / {later}");
    }
    let (a, b) = (
        earlier["scores"].as_array().unwrap(),
        later["scores"].as_array().unwrap(),
    );
    assert_eq!(&a[a.len() - b.len()..], b.as_slice());
}

async fn shadow_story(backend: Backend) {
    let Some(admin) = TestServer::builder(backend).start().await else {
        return;
    };
    // On PostgreSQL the stats are asked of a second replica, the view of the first.
    let second = match backend {
        Backend::Postgres => Some(
            TestServer::builder(backend)
                .sharing_database_of(&admin)
                .start()
                .await
                .unwrap(),
        ),
        Backend::Sqlite => None,
    };
    let users = second.as_ref().unwrap_or(&admin);
    let mut ada = Session::register(users, "ada").await;
    let today = today_utc();
    let habit = json!({"kind": "boolean", "frequency": {"times": 1, "days": 1}, "target": null});
    let skipped: Vec<Value> = (-20..=0)
        .map(|d| match d {
            -5 | -2 => json!({"day": d, "status": "skipped"}),
            _ => json!({"day": d, "status": "done"}),
        })
        .collect();
    let done: Vec<Value> = (-20..=0)
        .map(|d| json!({"day": d, "status": "done"}))
        .collect();
    let floss = add_habit(users, &mut ada, today, "Floss", &habit, &skipped).await;
    let read = add_habit(users, &mut ada, today, "Read", &habit, &done).await;
    let bundled_floss = since(users, &mut ada, &floss, -20).await;
    let bundled_read = since(users, &mut ada, &read, -20).await;
    assert_eq!(
        bundled_floss["current_streak"], 21,
        "skips keep Loop's streaks"
    );
    let bundled_version = rules_plugin(&admin.url).await["version"].clone();

    let response = upload(
        &admin.url,
        "habit-rules",
        &strict_manifest(),
        guest("rules-strict-streaks"),
        Some(SHADOW),
    )
    .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["activation"], "shadow", "{body}");
    assert_eq!(body["active"], false);
    assert_eq!(body["rollout"]["state"], "shadow");
    assert_eq!(body["rollout"]["stable_version"], bundled_version);
    assert_eq!(body["rollout"]["candidate_version"], "0.2.0-strict");
    assert_eq!(
        body["rollout"]["plan"],
        json!({"shadow": true, "sample_percent": 100})
    );
    if let Some(second) = &second {
        until(
            Duration::from_secs(5),
            "the second replica to hold the shadow run",
            || async {
                second
                    .state
                    .registry
                    .snapshot()
                    .shadow("habit-rules")
                    .map(|_| ())
            },
        )
        .await;
    }

    // Users get the bundled answers: cached ones as they were, fresh ones (a
    // shorter range, so not from the cache) the same.
    assert_eq!(since(users, &mut ada, &floss, -20).await, bundled_floss);
    let floss_now = since(users, &mut ada, &floss, -15).await;
    let read_now = since(users, &mut ada, &read, -15).await;
    same_answer(&bundled_floss, &floss_now);
    same_answer(&bundled_read, &read_now);

    // The view shows the one habit the rule sets differ on, on every replica.
    let rollout = shadow_once(&admin.url, 2).await;
    assert_eq!(rollout["state"], "shadow");
    let shadow = &rollout["shadow"];
    assert_eq!(
        (&shadow["compared"], &shadow["differed"], &shadow["errors"]),
        (&json!(2), &json!(1), &json!(0)),
        "{rollout}"
    );
    let examples = shadow["examples"].as_array().unwrap();
    assert_eq!(examples.len(), 1, "{rollout}");
    let example = &examples[0];
    assert_eq!(example["habit_id"], floss.as_str());
    assert_eq!(example["day"], today.to_string());
    assert_eq!(example["stable_streak"], 21);
    assert_eq!(example["candidate_streak"], 2);
    assert_eq!(example["stable_score"], floss_now["score"]);
    assert!(example["candidate_score"].as_f64().unwrap() < floss_now["score"].as_f64().unwrap());
    let keys: Vec<&String> = example.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        6,
        "habit id and figures only, nothing of the user: {example}"
    );
    assert!(!rollout.to_string().contains("ada"));
    if let Some(second) = &second {
        assert_eq!(
            rules_plugin(&second.url).await["rollout"]["shadow"],
            *shadow,
            "the same figures on both replicas"
        );
    }
    let metrics = users.metrics().await;
    for outcome in ["same", "differed"] {
        assert!(
            metrics.contains(&format!(
                "ham_rules_shadow_comparisons_total{{plugin=\"habit-rules\",outcome=\"{outcome}\"}} 1"
            )),
            "{metrics}"
        );
    }

    // Abort: the bundled answers stay, the examples go.
    let aborted = decide(&admin.url, "abort").await;
    assert_eq!(aborted["state"], "aborted");
    assert_eq!(aborted["shadow"]["differed"], 1);
    assert_eq!(aborted["shadow"]["examples"], json!([]));
    let after = since(users, &mut ada, &floss, -10).await;
    same_answer(&bundled_floss, &after);
    let plugin = rules_plugin(&admin.url).await;
    assert_eq!(plugin["version"], bundled_version);

    // Again, and promote: the strict answers go live, on every replica.
    let response = upload(
        &admin.url,
        "habit-rules",
        &strict_manifest(),
        guest("rules-strict-streaks"),
        Some(SHADOW),
    )
    .await;
    assert_eq!(response.status(), 200, "the identical version, stored");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["activation"], "shadow", "{body}");
    let promoted = decide(&admin.url, "promote").await;
    assert_eq!(promoted["state"], "promoted");
    assert_eq!(promoted["decided_by"], "admin");
    until(
        Duration::from_secs(5),
        "the strict answers to go live",
        || {
            let (mut ada, floss) = (ada.clone(), floss.clone());
            async move {
                let strict = since(users, &mut ada, &floss, -20).await;
                (strict["current_streak"] == 2).then_some(())
            }
        },
    )
    .await;
    let strict_read = since(users, &mut ada, &read, -20).await;
    same_answer(&bundled_read, &strict_read);
    assert_eq!(rules_plugin(&admin.url).await["version"], "0.2.0-strict");
    if let Some(second) = second {
        second.stop().await;
    }
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_rule_set_shows_its_differences_and_nobody_sees_it_on_sqlite() {
    shadow_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_rule_set_is_counted_by_every_replica_on_postgres() {
    shadow_story(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_candidate_counts_as_errors_and_users_never_see_it() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    let mut ada = Session::register(&server, "ada").await;
    let today = today_utc();
    let habit = json!({"kind": "boolean", "frequency": {"times": 1, "days": 1}, "target": null});
    let done: Vec<Value> = (-6..=0)
        .map(|d| json!({"day": d, "status": "done"}))
        .collect();
    let read = add_habit(&server, &mut ada, today, "Read", &habit, &done).await;
    let walk = add_habit(&server, &mut ada, today, "Walk", &habit, &done[..3]).await;
    let bundled_read = since(&server, &mut ada, &read, -6).await;
    let bundled_version = rules_plugin(&server.url).await["version"].clone();
    let bundled_walk = since(&server, &mut ada, &walk, -6).await;

    let manifest = "name = \"habit-rules\"\nversion = \"9.0.3\"\n[limits]\ntimeout_ms = 5000\n[variables]\nmode = { default = \"trap\" }\n";
    let response = upload(
        &server.url,
        "habit-rules",
        manifest,
        rebuilt(&guest("bad-rules"), "trap"),
        Some(SHADOW),
    )
    .await;
    assert_eq!(response.status(), 201);

    // Fresh ranges each time: evaluated, so compared.
    let (status, all) = ada
        .json(&server, Method::GET, "/api/habits/stats", None)
        .await;
    assert_eq!(status, 200, "{all}");
    let ours = |id: &str| {
        all["stats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["habit_id"] == id)
            .unwrap()["current_streak"]
            .clone()
    };
    assert_eq!(ours(&read), bundled_read["current_streak"]);
    assert_eq!(ours(&walk), bundled_walk["current_streak"]);
    same_answer(&bundled_read, &since(&server, &mut ada, &read, -5).await);
    same_answer(&bundled_walk, &since(&server, &mut ada, &walk, -5).await);
    let now_read = since(&server, &mut ada, &read, -3).await;
    let now_walk = since(&server, &mut ada, &walk, -3).await;
    same_answer(&bundled_read, &now_read);
    same_answer(&bundled_walk, &now_walk);

    let rollout = shadow_once(&server.url, 6).await;
    let shadow = &rollout["shadow"];
    assert_eq!(shadow["compared"], 0, "{rollout}");
    assert_eq!(shadow["differed"], 0, "{rollout}");
    assert_eq!(shadow["errors"], 6, "{rollout}");
    assert_eq!(shadow["examples"], json!([]));
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            "ham_rules_shadow_comparisons_total{plugin=\"habit-rules\",outcome=\"error\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "ham_plugin_errors_total{plugin=\"habit-rules\",version=\"9.0.3\",export=\"rules\",kind=\"trap\"}"
    ));
    assert_eq!(rules_plugin(&server.url).await["version"], bundled_version);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_run_of_anything_but_a_rule_set_is_refused() {
    let server = TestServer::builder(Backend::Sqlite).start().await.unwrap();
    server
        .install(
            "probe",
            &probe_manifest("probe", "0.1.0", "v1", ""),
            guest("probe"),
        )
        .await;
    let response = upload(
        &server.url,
        "probe",
        &probe_manifest("probe", "0.2.0", "v2", ""),
        rebuilt(&guest("probe"), "v2"),
        Some(r#"{"shadow": true}"#),
    )
    .await;
    let (status, code, message) = error_of(response).await;
    assert_eq!((status, code.as_str()), (422, "rollout_not_applicable"));
    assert!(
        message.contains("probe is not a rule set") && message.contains("habit-rules"),
        "{message}"
    );
    let versions = client()
        .get(server.url("/api/admin/plugins/probe/versions"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1, "nothing stored");
    assert_eq!(
        server.get_text("/plugins/probe/label").await,
        (200, "v1".to_string())
    );

    // A bad shadow plan names its field; a canary share of a rule set is refused.
    for (plan, status, code, words) in [
        (
            r#"{"shadow": true, "sample_percent": 0}"#,
            400,
            "invalid_rollout",
            "sample_percent: 0",
        ),
        (
            r#"{"shadow": true, "canary_percent": 20}"#,
            400,
            "invalid_rollout",
            "canary_percent: unknown field",
        ),
        (
            r#"{"canary_percent": 20}"#,
            422,
            "rollout_not_applicable",
            "neither HTTP nor jobs",
        ),
    ] {
        let response = upload(
            &server.url,
            "habit-rules",
            &strict_manifest(),
            guest("rules-strict-streaks"),
            Some(plan),
        )
        .await;
        let (got, got_code, message) = error_of(response).await;
        assert_eq!(
            (got, got_code.as_str()),
            (status, code),
            "{plan}: {message}"
        );
        assert!(message.contains(words), "{plan}: {message}");
    }
    assert!(rules_plugin(&server.url).await["rollout"].is_null());
    server.stop().await;
}
