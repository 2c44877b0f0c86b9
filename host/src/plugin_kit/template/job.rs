//! A HAM plugin that runs jobs: `plugin.toml` schedules a `tick` every hour, and
//! anything the plugin queues itself (`jobs::enqueue`) comes here too.
//!
//! A `tick` logs what it got and counts its runs in the plugin's storage. Any
//! other kind fails for good: `fail` keeps the job as dead with the reason, while
//! `retry` (and a trap or a timeout) tries it again later with backoff.

wit_bindgen::generate!({
    path: "wit",
    world: "ham:plugin/job-plugin",
    generate_all,
});

use exports::ham::plugin::job_handler::{Guest, Job, JobError};
use ham::plugin::{log, storage};

struct Plugin;

impl Guest for Plugin {
    fn handle(job: Job) -> Result<(), JobError> {
        match job.kind.as_str() {
            "tick" => tick(&job),
            other => Err(JobError::Fail(format!("unknown job kind `{other}`"))),
        }
    }
}

export!(Plugin);

fn tick(job: &Job) -> Result<(), JobError> {
    let runs = count_run().map_err(|e| JobError::Retry(format!("storage failed: {e:?}")))?;
    log::log(
        log::Level::Info,
        "tick",
        &[
            ("job".into(), job.id.clone()),
            ("attempt".into(), job.attempt.to_string()),
            (
                "user".into(),
                job.user_id.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "payload".into(),
                String::from_utf8_lossy(&job.payload).into_owned(),
            ),
            ("runs".into(), runs.to_string()),
        ],
    );
    Ok(())
}

/// Adds one to the plugin-wide `runs` counter.
fn count_run() -> Result<u64, storage::Error> {
    loop {
        let current = storage::get(storage::Scope::Plugin, "runs")?;
        let (count, expected) = match &current {
            Some(entry) => {
                let n = std::str::from_utf8(&entry.value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                (n + 1, Some(entry.revision))
            }
            None => (1, None),
        };
        let value = count.to_string().into_bytes();
        match storage::compare_and_swap(storage::Scope::Plugin, "runs", expected, &value) {
            Ok(_) => return Ok(count),
            Err(storage::Error::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
}
