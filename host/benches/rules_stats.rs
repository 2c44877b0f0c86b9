//! `cargo bench -p ham-host --bench rules_stats`: habit stats through the host and
//! the bundled `habit-rules` component, for docs/benchmarks.md.
//!
//! 1. One daily habit with 10 years of entries, written day by day between four
//!    other habits' (as a household's database holds them, not side by side as one
//!    import lays them out): `GET /api/habits/{id}/stats` for
//!    the last year after an entry write through the API (the host patches the
//!    entries it keeps and calls the plugin), after a write by another process
//!    (all entries read again, plugin called), for another range of the unchanged
//!    habit (entries kept, plugin called), and cached; the entries query and the
//!    plugin call alone, and the entries query right after a write (when SQLite's
//!    connections have dropped their page caches).
//! 2. 50 habits with a year of entries each: today's stats of all of them in one
//!    plugin call (uncached, through the evaluator), and `GET /api/habits/stats`
//!    (cached).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

#[path = "../tests/all/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::session::Session;
use common::{Backend, TestDb, TestServer, settings};
use std::sync::Arc;

use ham_host::capabilities::habits as wit;
use ham_host::habits::{Entry, EntryStatus};
use ham_host::rules::{Evaluator, Range, day_of};
use ham_host::wit::exports::ham::plugin::scheduled_rules::{EvaluationInput, Schedule};
use jiff::ToSpan as _;
use jiff::civil::Date;
use reqwest::Method;
use serde_json::{Value, json};

const SAMPLES: usize = 400;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let median = percentile(&samples, 0.5);
    println!(
        "{label:<58} median {:>8.3} ms   p99 {:>8.3} ms",
        median.as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
    median
}

/// A habit document with `days` days of history ending today: done on most days,
/// some skipped, some missed.
fn habit(name: &str, today: Date, days: i64) -> Value {
    let entries: Vec<Value> = (0..days)
        .filter_map(|i| {
            let date = today.checked_sub(i.days()).unwrap().to_string();
            match (i * 7919) % 10 {
                0 => None,
                1 => Some(json!({"date": date, "status": "skipped", "value": null, "note": null, "source": "manual"})),
                _ => Some(json!({"date": date, "status": "done", "value": null, "note": null, "source": "manual"})),
            }
        })
        .collect();
    json!({
        "id": name, "name": name, "description": "", "color": "#4f46e5", "kind": "boolean",
        "unit": null, "target": null, "frequency": {"times": 1, "days": 1}, "reminders": [],
        "archived": false, "position": 0, "created": today.checked_sub(days.days()).unwrap().to_string(),
        "entries": entries,
    })
}

/// An entry written straight to the database, as another replica's write would be:
/// this process's evaluator does not hear of it.
async fn write_elsewhere(server: &TestServer, habit_id: &str, day: Date, status: EntryStatus) {
    server
        .state
        .db
        .upsert_entry(&Entry {
            habit_id: habit_id.to_string(),
            date: day.to_string(),
            status,
            value: None,
            note: None,
            source: "elsewhere".into(),
        })
        .await
        .unwrap();
}

fn without_entries(mut habit: Value) -> Value {
    habit["entries"] = json!([]);
    habit
}

async fn import(server: &TestServer, session: &mut Session, habits: Vec<Value>) {
    let document = json!({"format": "ham-export", "version": 1, "time_zone": "UTC", "habits": habits, "activities": []});
    let (status, body) = session
        .json(server, Method::POST, "/api/import", Some(document))
        .await;
    assert!(status.is_success(), "{body}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite, dir.path()).await.unwrap();
    let server = TestServer::start(ham_host::settings::Settings {
        open_registration: true,
        ..settings(dir.path(), &db)
    })
    .await;
    let mut ada = Session::register(&server, "ada").await;
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();

    println!("## one daily habit, 10 years of entries, stats for the last 365 days");
    // As a household's database holds it: the habit's entries were written day by
    // day between those of other habits (here four of another user's), not side by
    // side as one import would lay them out.
    let mut bob = Session::register(&server, "bob").await;
    let others: Vec<Value> = ["walk", "read", "water", "sleep"]
        .iter()
        .map(|name| without_entries(habit(name, today, 3650)))
        .collect();
    import(&server, &mut bob, others).await;
    import(
        &server,
        &mut ada,
        vec![without_entries(habit("decade", today, 3650))],
    )
    .await;
    let ids = |list: Value| -> Vec<String> {
        list["habits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    };
    let id = ids(ada.json(&server, Method::GET, "/api/habits", None).await.1).remove(0);
    let mut interleaved = vec![id.clone()];
    interleaved.extend(ids(bob
        .json(&server, Method::GET, "/api/habits", None)
        .await
        .1));
    let mut tx = server.state.db.begin_write().await.unwrap();
    for i in (0..3650_i64).rev() {
        let date = today.checked_sub(i.days()).unwrap().to_string();
        let status = match (i * 7919) % 10 {
            0 => continue,
            1 => EntryStatus::Skipped,
            _ => EntryStatus::Done,
        };
        for habit_id in &interleaved {
            let entry = Entry {
                habit_id: habit_id.clone(),
                date: date.clone(),
                status,
                value: None,
                note: None,
                source: "manual".into(),
            };
            ham_host::store::Db::upsert_entry_with(&mut *tx, &entry)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
    let path = |offset: i64| {
        let to = today.checked_sub(offset.days()).unwrap();
        let from = to.checked_sub(364.days()).unwrap();
        format!("/api/habits/{id}/stats?from={from}&to={to}")
    };
    for i in 0..20 {
        ada.json(&server, Method::GET, &path(1000 + i), None).await;
    }
    // After an entry write through the API (not timed): the host patches the
    // entries it keeps and calls the plugin.
    let mut after_write = Vec::new();
    for i in 0..SAMPLES as i64 {
        let day = today.checked_sub((3000 + i % 300).days()).unwrap();
        let status = if i % 2 == 0 { "skipped" } else { "done" };
        let (written, body) = ada
            .json(
                &server,
                Method::PUT,
                &format!("/api/habits/{id}/entries/{day}"),
                Some(json!({ "status": status })),
            )
            .await;
        assert!(written.is_success(), "{body}");
        let started = Instant::now();
        let (status, _) = ada.json(&server, Method::GET, &path(0), None).await;
        after_write.push(started.elapsed());
        assert!(status.is_success());
    }
    let decade_after_write = report(
        "GET /stats after an entry write (entries patched, plugin call)",
        after_write,
    );
    // After a write this process did not make (another replica's, written here
    // straight to the database): the host reads every entry again.
    let mut after_other = Vec::new();
    for i in 0..SAMPLES as i64 {
        let day = today.checked_sub((3000 + i % 300).days()).unwrap();
        let status = if i % 2 == 0 {
            EntryStatus::Done
        } else {
            EntryStatus::Skipped
        };
        write_elsewhere(&server, &id, day, status).await;
        let started = Instant::now();
        let (status, _) = ada.json(&server, Method::GET, &path(0), None).await;
        after_other.push(started.elapsed());
        assert!(status.is_success());
    }
    let decade_after_other = report(
        "GET /stats after another process's write (entries read, plugin call)",
        after_other,
    );
    // Another range of the unchanged habit: its entries are kept, the plugin is
    // called.
    let mut new_range = Vec::new();
    for i in 0..SAMPLES as i64 {
        let started = Instant::now();
        let (status, _) = ada.json(&server, Method::GET, &path(i + 1), None).await;
        new_range.push(started.elapsed());
        assert!(status.is_success());
    }
    let decade_new_range = report(
        "GET /stats, another range (entries kept, plugin call)",
        new_range,
    );
    let mut cached = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        ada.json(&server, Method::GET, &path(0), None).await;
        cached.push(started.elapsed());
    }
    report("GET /stats, cached", cached);

    // Where the time goes: the entries query, and the plugin call with its input
    // built (a fresh evaluator each time: no cache).
    let user = server
        .state
        .db
        .user_with_password("ada")
        .await
        .unwrap()
        .unwrap()
        .0;
    let habits = server
        .state
        .db
        .habits_with_revision(&user.id, false)
        .await
        .unwrap();
    let range = Range {
        from: today.checked_sub(364.days()).unwrap(),
        to: today,
    };
    let mut query = Vec::new();
    let mut loaded = Default::default();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        loaded = server
            .state
            .db
            .entries_for_rules(&user.id, Some(&id), &today.to_string())
            .await
            .unwrap();
        query.push(started.elapsed());
    }
    report("entries query alone (3,285 entries, aggregated)", query);
    let mut query_after_write = Vec::new();
    for i in 0..SAMPLES as i64 {
        let day = today.checked_sub((3000 + i % 300).days()).unwrap();
        write_elsewhere(&server, &id, day, EntryStatus::Done).await;
        let started = Instant::now();
        server
            .state
            .db
            .entries_for_rules(&user.id, Some(&id), &today.to_string())
            .await
            .unwrap();
        query_after_write.push(started.elapsed());
    }
    report(
        "entries query alone, right after a write",
        query_after_write,
    );
    let mut row_by_row = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        server
            .state
            .db
            .list_entries(&id, "0000-01-01", &today.to_string())
            .await
            .unwrap();
        row_by_row.push(started.elapsed());
    }
    report(
        "  (the same entries row by row, for comparison)",
        row_by_row,
    );
    let inputs = vec![EvaluationInput {
        habit: wit::habit(habits[0].0.clone()),
        schedule: Schedule::Every,
        entries: loaded.remove(&id).unwrap(),
        today: day_of(today),
        from: day_of(range.from),
        to: day_of(range.to),
    }];
    let plugin = server.state.registry.get("habit-rules").unwrap();
    let mut call = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        server
            .state
            .runtime
            .evaluate_rules(plugin.clone(), &inputs)
            .await
            .unwrap();
        call.push(started.elapsed());
    }
    report("plugin call alone (fresh instance, input built)", call);
    let empty = vec![EvaluationInput {
        entries: Vec::new(),
        from: day_of(today),
        ..inputs[0].clone()
    }];
    let mut floor = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        server
            .state
            .runtime
            .evaluate_rules(plugin.clone(), &empty)
            .await
            .unwrap();
        floor.push(started.elapsed());
    }
    report(
        "  (the same, no entries and one day: the fixed cost)",
        floor,
    );
    let mut alone = Vec::new();
    for _ in 0..SAMPLES {
        let fresh = Evaluator::new(
            Arc::downgrade(&server.state.registry),
            Arc::new(ham_host::habits::Tracker::new(server.state.db.clone())),
        );
        let started = Instant::now();
        fresh
            .evaluate(&user.id, &habits, today, &range)
            .await
            .unwrap();
        alone.push(started.elapsed());
    }
    report("evaluator, uncached (entries query + plugin call)", alone);

    println!("\n## 50 habits, a year of entries each, today's stats in one call");
    let fifty: Vec<Value> = (0..50)
        .map(|i| habit(&format!("h{i:02}"), today, 365))
        .collect();
    import(&server, &mut ada, fifty).await;
    let habits = server
        .state
        .db
        .habits_with_revision(&user.id, false)
        .await
        .unwrap();
    assert_eq!(habits.len(), 51);
    let mut bulk = Vec::new();
    let today_only = Range {
        from: today,
        to: today,
    };
    for _ in 0..SAMPLES {
        let fresh = Evaluator::new(
            Arc::downgrade(&server.state.registry),
            Arc::new(ham_host::habits::Tracker::new(server.state.db.clone())),
        );
        let started = Instant::now();
        fresh
            .evaluate(&user.id, &habits, today, &today_only)
            .await
            .unwrap();
        bulk.push(started.elapsed());
    }
    let bulk_uncached = report("evaluator, 51 habits, uncached (one plugin call)", bulk);
    let mut all = Vec::new();
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let (status, _) = ada
            .json(&server, Method::GET, "/api/habits/stats", None)
            .await;
        all.push(started.elapsed());
        assert!(status.is_success());
    }
    report("GET /api/habits/stats, 51 habits, cached", all);

    println!("\n## summary");
    println!(
        "10-year habit after an entry write, through HTTP: median {:.3} ms (target < 2 ms)",
        decade_after_write.as_secs_f64() * 1e3
    );
    println!(
        "10-year habit after another process's write:      median {:.3} ms",
        decade_after_other.as_secs_f64() * 1e3
    );
    println!(
        "10-year habit, another range, through HTTP:      median {:.3} ms",
        decade_new_range.as_secs_f64() * 1e3
    );
    println!(
        "51 habits, uncached, one plugin call:  median {:.3} ms",
        bulk_uncached.as_secs_f64() * 1e3
    );
    server.stop().await;
}
