//! `cargo run -p ham-host --example fake_strava`: a fake Strava on loopback, for
//! trying the `strava-sync` plugin without a Strava account. The same fake the
//! tests use (`tests/all/common/fake_strava.rs`): OAuth that approves at once, the
//! activities API, rate-limit headers.
//!
//! It prints the settings that point `ham` at it. Start `ham` with them, sign in,
//! connect on the Strava page and add a mapping rule; then type `run 5.2` here to
//! record a 5.2 km run today: the fake posts its webhook event to HAM (`HAM_URL`,
//! default `http://127.0.0.1:3001`) as Strava would, and the run shows up in
//! Activities and checks the mapped habit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a demo tool fails loudly"
)]

#[path = "../tests/all/common/mod.rs"]
mod common;

use std::io::BufRead as _;

use common::fake_strava::{FakeStrava, event, post_event, run};
use serde_json::json;

#[tokio::main]
async fn main() {
    let fake = FakeStrava::start().await;
    let ham = std::env::var("HAM_URL").unwrap_or_else(|_| "http://127.0.0.1:3001".into());
    println!("A fake Strava is listening at {}.", fake.url);
    println!("Start ham with these settings (and restart it if it was running):\n");
    for (name, value) in fake.plugin_env() {
        println!("  export {name}={value}");
    }
    println!(
        "\nThen sign in at {ham}, open Strava, connect, and add a mapping rule (for example Run -> a habit)."
    );
    println!("Type `run <km>` to record a run today and send its webhook event, or `quit`.");

    // Lines as they come: a channel fed by a blocking reader.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut next_id = 9_000_000_000_u64;
    while let Some(line) = rx.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["run", km] => {
                let Ok(km) = km.parse::<f64>() else {
                    println!("`{km}` is not a number of kilometres");
                    continue;
                };
                next_id += 1;
                let today = jiff::Timestamp::now()
                    .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .date()
                    .to_string();
                fake.put_activity(run(next_id, "Morning run", &today, km * 1000.0));
                let (status, took) =
                    post_event(&ham, &event("activity", "create", next_id, json!({}))).await;
                println!(
                    "posted activity {next_id} ({km} km, {today}): HAM answered {status} in {took:?}"
                );
            }
            ["quit"] | ["exit"] => break,
            [] => {}
            _ => println!("type `run <km>` or `quit`"),
        }
    }
}
