//! Every story test of the host, in one test binary: each links wasmtime, and one
//! link is much faster (and the test build much smaller) than one per story.
//! `cargo test -p ham-host --test all` runs them all; a story alone with its
//! module path, e.g. `cargo test -p ham-host --test all api_habits::`.
//!
//! One binary is one process: what used to be per binary is now shared by all
//! (see `common`), and the tests that load the machine take turns with those that
//! time it (`common::machine`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

mod accounts;
mod api_entry_taps;
mod api_export;
mod api_habit_order;
mod api_habits;
mod api_openapi;
mod api_tokens;
mod auth_forward;
mod auth_login_flood;
mod auth_mixed;
mod auth_oidc;
mod backup_restore;
mod cli_and_watch;
mod coach_chat;
mod fair_shares;
mod first_command;
mod fuzz_parsers;
mod http_cross_origin;
mod http_slow_clients;
mod import_loop;
mod jobs_processes;
mod jobs_queue;
mod llm_gemini;
mod llm_providers;
mod logs_json;
mod metrics_exposition;
mod ops_commands;
mod outbound_policy;
mod pg_backup_restore;
mod plugin_kit;
mod plugins_bad_uploads;
mod plugins_hot_swap;
mod plugins_instance_reuse;
mod plugins_replicas;
mod plugins_restart;
mod plugins_rollouts;
mod plugins_routes;
mod plugins_sandbox_boundary;
mod reminders_channels;
mod reminders_delivery;
mod reminders_done_link;
mod reminders_habits;
mod rules_shadow;
mod rules_stats;
mod rules_weekdays;
mod runtime_limits;
mod storage_isolation;
mod store_pruning;
mod strava_forged_events;
mod strava_processes;
mod strava_sync;
mod web_app;
