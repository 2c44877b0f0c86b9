//! Import from Loop Habit Tracker: a full backup built here with Loop's schema
//! (its `Habits`, `Repetitions` and `HabitGroups` tables and their encodings)
//! arrives with identical entries, and the yes/no habit's scores are the ones Loop
//! shows for that history (its own `ScoreListTest` figures). Files that are not a
//! Loop backup, are damaged, or hold a habit HAM refuses write nothing.

use crate::common;

use common::session::{Session, credentials};
use common::{Backend, TestServer, client};
use jiff::ToSpan as _;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

/// Loop's `ScoreListTest::test_getValueWithSkip`: its history and expected scores,
/// as day offsets from today.
fn loop_case() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/habit-rules-engine/testdata/loop_scores.json"
    );
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    cases
        .into_iter()
        .find(|c| c["name"] == "YesNo test_getValueWithSkip")
        .unwrap()
}

fn day(today: Date, offset: i64) -> Date {
    today.checked_add(offset.days()).unwrap()
}

/// Loop's timestamp of a day: milliseconds at its UTC midnight.
fn loop_timestamp(date: Date) -> i64 {
    let days = jiff::civil::date(1970, 1, 1)
        .until(date)
        .unwrap()
        .get_days();
    i64::from(days) * 86_400_000
}

/// Loop's schema as of its migration 26 (habit groups).
const LOOP_SCHEMA: &str = "
    CREATE TABLE Habits (id integer primary key, archived integer, color integer,
        description text, freq_den integer, freq_num integer, highlight integer, name text,
        position integer, reminder_hour integer, reminder_min integer,
        reminder_days integer not null default 127, type integer not null default 0,
        target_type integer not null default 0, target_value real not null default 0,
        unit text not null default '', question text, uuid text,
        group_uuid text references habitgroups(uuid), group_id integer references habitgroups(id));
    CREATE TABLE Repetitions (id integer primary key autoincrement,
        habit integer not null references habits(id), timestamp integer not null,
        value integer not null, notes text);
    CREATE UNIQUE INDEX idx_repetitions_habit_timestamp on Repetitions(habit, timestamp);
    CREATE TABLE HabitGroups (id integer primary key, archived integer, color integer,
        description text not null default '', highlight integer, name text, position integer,
        reminder_days integer not null default 127, reminder_hour integer, reminder_min integer,
        question text not null default '', uuid text);
    CREATE TABLE android_metadata (locale TEXT);
    PRAGMA user_version = 26;
";

/// Writes a database from `statements` and returns its bytes.
async fn sqlite_file(statements: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Loop Habits Backup 2026-11-30 120000.db");
    let mut db = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(false),
    )
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(statements.to_string()))
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    std::fs::read(&path).unwrap()
}

/// The backup: Meditate (yes/no, Loop's skip case, in group Morning, reminded
/// Mon/Wed/Fri at 07:30), Water (numerical: amounts, a skip, an unknown), Old
/// (archived, 3 a week, a colour outside the palette).
fn loop_backup_sql(today: Date) -> (String, Vec<Value>, Vec<Value>) {
    let case = loop_case();
    let mut sql = String::from(LOOP_SCHEMA);
    sql.push_str(
        "INSERT INTO HabitGroups (id, name, position, uuid) VALUES (1, 'Morning', 0, 'g1');
         INSERT INTO Habits (id, archived, color, description, freq_den, freq_num, highlight, name,
             position, reminder_hour, reminder_min, reminder_days, type, question, uuid, group_id)
         VALUES (1, 0, 7, '10 minutes', 1, 1, 0, 'Meditate', 0, 7, 30, 84, 0, 'Did you meditate?', 'u1', 1);
         INSERT INTO Habits (id, archived, color, description, freq_den, freq_num, highlight, name,
             position, type, target_type, target_value, unit, question, uuid)
         VALUES (2, 0, 9, '', 1, 1, 0, 'Water', 1, 1, 0, 2.0, 'l', 'How much water?', 'u2');
         INSERT INTO Habits (id, archived, color, description, freq_den, freq_num, highlight, name,
             position, type, question, uuid)
         VALUES (3, 1, 99, '', 7, 3, 0, 'Old', 2, 0, '', 'u3');
        ",
    );
    let mut meditate = Vec::new();
    for e in case["entries"].as_array().unwrap() {
        let date = day(today, e["day"].as_i64().unwrap());
        let (value, status) = match e["status"].as_str().unwrap() {
            "done" => (2, "done"),
            "skipped" => (3, "skipped"),
            other => panic!("{other}"),
        };
        // One note on a done day comes across.
        let note = (e["day"] == -3).then_some("felt calm");
        sql.push_str(&format!(
            "INSERT INTO Repetitions (habit, timestamp, value, notes) VALUES (1, {}, {value}, {});\n",
            loop_timestamp(date),
            note.map_or("NULL".into(), |n| format!("'{n}'")),
        ));
        meditate.push(json!({"date": date.to_string(), "status": status, "value": null, "note": note, "source": "loop"}));
    }
    // Days that are no check-in: not done (with a note, left out and counted),
    // and done automatically (derived by Loop, not a check-in).
    for (offset, value, note) in [(-30, 0, "'sick'"), (-31, 1, "NULL")] {
        sql.push_str(&format!(
            "INSERT INTO Repetitions (habit, timestamp, value, notes) VALUES (1, {}, {value}, {note});\n",
            loop_timestamp(day(today, offset))
        ));
    }
    let mut water = Vec::new();
    for (offset, value, note, expected) in [
        (-3, 2500, "'after the run'", Some(("value", Some(2.5)))),
        (-2, 3, "NULL", Some(("skipped", None))),
        (-1, 0, "NULL", Some(("value", Some(0.0)))),
        (0, -1, "NULL", None),
    ] {
        let date = day(today, offset);
        sql.push_str(&format!(
            "INSERT INTO Repetitions (habit, timestamp, value, notes) VALUES (2, {}, {value}, {note});\n",
            loop_timestamp(date)
        ));
        if let Some((status, value)) = expected {
            let note = (note != "NULL").then(|| note.trim_matches('\''));
            water.push(json!({"date": date.to_string(), "status": status, "value": value, "note": note, "source": "loop"}));
        }
    }
    (sql, meditate, water)
}

/// Posts `bytes` as a Loop backup.
async fn import_loop(
    server: &TestServer,
    session: &Session,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let response = client()
        .post(server.url("/api/import?format=loop"))
        .header("cookie", session.cookie.clone().unwrap())
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn habit_count(server: &TestServer, session: &mut Session) -> usize {
    let (_, list) = session
        .json(server, Method::GET, "/api/habits?archived=true", None)
        .await;
    list["habits"].as_array().unwrap().len()
}

async fn loop_story(backend: Backend) {
    let Some(server) = TestServer::builder(backend).start().await else {
        return;
    };
    let mut ada = Session::register(&server, "ada").await;
    let (_, me) = ada.json(&server, Method::GET, "/api/me", None).await;
    let today: Date = me["today"].as_str().unwrap().parse().unwrap();
    let (sql, meditate_entries, water_entries) = loop_backup_sql(today);
    let backup = sqlite_file(&sql).await;

    // Refused files write nothing, and say why.
    let mut not_loop = sqlite_file("CREATE TABLE notes (body text);").await;
    let mut viewed = sqlite_file(
        "CREATE TABLE h (id integer, name text, freq_num integer, freq_den integer);
         CREATE VIEW Habits AS SELECT * FROM h;
         CREATE TABLE Repetitions (habit integer, timestamp integer, value integer);",
    )
    .await;
    let too_often = sqlite_file(&format!(
        "{LOOP_SCHEMA} INSERT INTO Habits (id, name, freq_num, freq_den, position, type) VALUES (1, 'Gym', 8, 7, 0, 0);"
    ))
    .await;
    let orphan = sqlite_file(&format!(
        "{LOOP_SCHEMA} INSERT INTO Repetitions (habit, timestamp, value) VALUES (9, 0, 2);"
    ))
    .await;
    let truncated = backup[..backup.len() / 2].to_vec();
    let mut garbage = b"SQLite format 3\0".to_vec();
    garbage.extend(std::iter::repeat_n(0xA5, 8192));
    for (bytes, says) in [
        (
            b"{\"format\": \"ham-export\"}".to_vec(),
            "not a Loop Habit Tracker backup",
        ),
        (std::mem::take(&mut not_loop), "no `Habits` table"),
        (std::mem::take(&mut viewed), "no `Habits` table"),
        (too_often, "habits[Gym].frequency.times"),
        (orphan, "names habit 9"),
        (truncated, "damaged"),
        (garbage, "damaged"),
        (Vec::new(), "not a Loop Habit Tracker backup"),
    ] {
        let (status, body) = import_loop(&server, &ada, bytes).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")),
            "{says}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{says}: {message}");
    }
    let (status, body) = ada
        .json(
            &server,
            Method::POST,
            "/api/import?format=beeminder",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(habit_count(&server, &mut ada).await, 0);

    // The backup arrives whole.
    let (status, counts) = import_loop(&server, &ada, backup.clone()).await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    let entry_count = meditate_entries.len() + water_entries.len();
    assert_eq!(
        counts,
        json!({"habits": 3, "entries": entry_count, "activities": 0, "dropped_notes": 1})
    );
    let (_, list) = ada
        .json(&server, Method::GET, "/api/habits?archived=true", None)
        .await;
    let habits = list["habits"].as_array().unwrap();
    let by_name = |name: &str| habits.iter().find(|h| h["name"] == name).unwrap().clone();
    let meditate = by_name("Meditate");
    assert_eq!(
        (
            &meditate["kind"],
            &meditate["color"],
            &meditate["description"],
            &meditate["group"],
            &meditate["frequency"],
            &meditate["reminders"],
            &meditate["archived"],
        ),
        (
            &json!("boolean"),
            &json!("#388e3c"),
            &json!("Did you meditate?\n\n10 minutes"),
            &json!("Morning"),
            &json!({"times": 1, "days": 1}),
            &json!([{"time": "07:30", "days": [1, 3, 5]}]),
            &json!(false),
        )
    );
    let water = by_name("Water");
    assert_eq!(
        (
            &water["kind"],
            &water["unit"],
            &water["target"],
            &water["color"]
        ),
        (
            &json!("measurable"),
            &json!("l"),
            &json!({"value": 2.0, "type": "at_least"}),
            &json!("#00acc1")
        )
    );
    let old = by_name("Old");
    assert_eq!(
        (
            &old["archived"],
            &old["frequency"],
            &old["color"],
            &old["group"]
        ),
        (
            &json!(true),
            &json!({"times": 3, "days": 7}),
            &json!("#1976d2"),
            &Value::Null
        )
    );
    // Entries identical, source `loop`.
    for (habit, expected) in [(&meditate, &meditate_entries), (&water, &water_entries)] {
        let (_, entries) = ada
            .json(
                &server,
                Method::GET,
                &format!("/api/habits/{}/entries", habit["id"].as_str().unwrap()),
                None,
            )
            .await;
        let got: Vec<Value> = entries["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                json!({"date": e["date"], "status": e["status"], "value": e["value"], "note": e["note"], "source": e["source"]})
            })
            .collect();
        assert_eq!(&got, expected, "{}", habit["name"]);
    }

    // Loop's own scores for this history, day by day, within 1e-6.
    let case = loop_case();
    let expected = case["expected"].as_array().unwrap();
    let earliest = expected
        .iter()
        .map(|e| e["day"].as_i64().unwrap())
        .min()
        .unwrap();
    let (status, stats) = ada
        .json(
            &server,
            Method::GET,
            &format!(
                "/api/habits/{}/stats?from={}&to={today}",
                meditate["id"].as_str().unwrap(),
                day(today, earliest)
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let scores = stats["scores"].as_array().unwrap();
    for e in expected {
        let date = day(today, e["day"].as_i64().unwrap()).to_string();
        let got = scores.iter().find(|s| s["date"] == date.as_str()).unwrap()["value"]
            .as_f64()
            .unwrap();
        let want = e["value"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-6,
            "{date}: got {got}, Loop shows {want}"
        );
    }

    // Another user's import of the same file touches nobody else.
    ada.send(
        &server,
        Method::POST,
        "/api/auth/register",
        credentials("bob"),
    )
    .await;
    let mut bob = Session::default();
    bob.send(&server, Method::POST, "/api/auth/login", credentials("bob"))
        .await;
    let (status, _) = import_loop(&server, &bob, backup).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(habit_count(&server, &mut bob).await, 3);
    assert_eq!(habit_count(&server, &mut ada).await, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_backup_on_sqlite() {
    loop_story(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_backup_on_postgres() {
    loop_story(Backend::Postgres).await;
}
