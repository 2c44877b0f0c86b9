//! Durable jobs: plugins queue work for themselves (`ham:plugin/jobs.enqueue`) and
//! the host runs it later through their `job-handler` export, retrying with
//! exponential backoff and jitter until the job succeeds or uses its attempts.
//!
//! A job runs for the user it was queued for (or for no user), with the same
//! scoping as a request. Every host process runs workers against the one `jobs`
//! table; a claim leases the job, and a job whose host died mid-run is claimed
//! again when its lease runs out (counted as an attempt).

pub mod cron;
pub mod grant;

use std::time::Duration;

use std::sync::Arc;

use crate::plugins::Registry;
use crate::runtime::InvokeError;
use crate::settings::Settings;
use crate::store::Db;
use crate::store::jobs::{JobRow, NewJob};
use crate::store::now_ms;
use crate::wit::exports::ham::plugin::job_handler::{Job, JobError};

/// What the job workers, the scheduler and the pruner draw on.
#[derive(Clone)]
pub struct Workers {
    pub db: Db,
    /// The plugins jobs run in (and, through it, the runtime).
    pub registry: Arc<Registry>,
    /// `job_*` settings.
    pub settings: Arc<Settings>,
}

/// How often an idle worker looks for due jobs.
const POLL: Duration = Duration::from_millis(200);
/// Longest delay between attempts.
const MAX_BACKOFF_MS: u64 = 3_600_000;
/// The least delay before a job whose plugin was busy runs again (plus jitter).
const BUSY_RETRY_MS: u64 = 1000;

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped, with
/// ±25% jitter so failing jobs do not retry in lockstep.
pub fn backoff_ms(attempt: i64, base_ms: u64) -> u64 {
    let exp = u32::try_from(attempt.clamp(1, 32) - 1).unwrap_or(0);
    let delay = base_ms
        .saturating_mul(1u64 << exp.min(31))
        .min(MAX_BACKOFF_MS);
    let jitter = u64::from(rand_u16()) % (delay / 2 + 1);
    delay - delay / 4 + jitter
}

fn rand_u16() -> u16 {
    let id = crate::auth::new_id();
    u16::from_str_radix(&id[..4], 16).unwrap_or(0)
}

/// How often the scheduler looks at the clock; several looks per minute, so no
/// slot is missed while the host runs.
const SCHEDULE_TICK: Duration = Duration::from_secs(10);

/// Queues the manifests' `schedule` entries on time: each slot (a minute an entry's
/// cron matches, in UTC) becomes one job whose id names the plugin, the job and the
/// minute, so however many host processes look, the slot is queued once. A slot
/// that passes while no host runs is skipped.
pub fn spawn_scheduler(state: &Workers) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            let minute = now_ms() / 60_000;
            for plugin in state.registry.snapshot().plugins.values() {
                if !plugin.exports.job_handler {
                    continue;
                }
                for entry in &plugin.manifest.schedule {
                    let Ok(cron) = cron::Cron::parse(&entry.cron) else {
                        continue;
                    };
                    if !cron.matches(minute) {
                        continue;
                    }
                    let users = match entry.per_user {
                        false => vec![None],
                        true => match state.db.kv_users(&plugin.manifest.name).await {
                            Ok(users) => users.into_iter().map(Some).collect(),
                            Err(e) => {
                                tracing::error!(plugin = %plugin.manifest.name, error = %e, "listing a plugin's users failed");
                                continue;
                            }
                        },
                    };
                    for user in &users {
                        let id = match user {
                            None => {
                                format!("schedule:{}:{}:{minute}", plugin.manifest.name, entry.job)
                            }
                            Some(user) => format!(
                                "schedule:{}:{}:{minute}:{user}",
                                plugin.manifest.name, entry.job
                            ),
                        };
                        let queued = state
                            .db
                            .enqueue_job(&NewJob {
                                id: &id,
                                plugin: &plugin.manifest.name,
                                user_id: user.as_deref(),
                                kind: &entry.job,
                                payload: &[],
                                run_after: minute * 60_000,
                                max_attempts: state.settings.job_max_attempts,
                            })
                            .await;
                        if let Err(e) = queued {
                            tracing::error!(job = %id, error = %e, "queueing a scheduled job failed");
                        }
                    }
                }
            }
            tokio::time::sleep(SCHEDULE_TICK).await;
        }
    })
}

/// How often finished jobs and expired sessions are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Prunes what grows with traffic: finished jobs (done or dead, with their webhook
/// payloads) older than `HAM_JOB_RETENTION`, and expired sessions. Runs at start
/// and hourly; every replica may run it, since each delete is idempotent.
pub fn spawn_pruner(state: &Workers) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            prune(&state).await;
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    })
}

/// One pruning pass; failures are logged and retried at the next pass.
pub async fn prune(state: &Workers) {
    let retention = i64::try_from(state.settings.job_retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms().saturating_sub(retention);
    match state.db.prune_finished_jobs(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "pruned finished jobs past their retention"),
        Err(e) => tracing::warn!(error = %e, "pruning finished jobs failed"),
    }
    match state.db.prune_expired_sessions().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "pruned expired sessions"),
        Err(e) => tracing::warn!(error = %e, "pruning expired sessions failed"),
    }
    match state.db.prune_expired_done_links().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(links = n, "pruned the uses of expired done links"),
        Err(e) => tracing::warn!(error = %e, "pruning used done links failed"),
    }
}

/// Starts the configured number of workers; they run until aborted.
pub fn spawn_workers(state: &Workers) -> Vec<tokio::task::JoinHandle<()>> {
    (0..state.settings.job_workers)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    match state.db.claim_job(state.settings.job_lease_ms).await {
                        Ok(Some(job)) => run(&state, job).await,
                        Ok(None) => tokio::time::sleep(POLL).await,
                        Err(e) => {
                            tracing::error!(error = %e, "claiming a job failed");
                            tokio::time::sleep(POLL * 5).await;
                        }
                    }
                }
            })
        })
        .collect()
}

async fn run(state: &Workers, job: JobRow) {
    // While the job runs, its lease is renewed: a short lease then means a quick
    // takeover when a host dies, never a second run of a job that is still going.
    let lease_ms = state.settings.job_lease_ms;
    let heartbeat = {
        let (db, id, attempt) = (state.db.clone(), job.id.clone(), job.attempts);
        let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1000).max(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match db.extend_lease(&id, attempt, lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "renewing a job's lease failed")
                    }
                }
            }
        })
    };
    let started = std::time::Instant::now();
    let outcome = run_once(state, &job).await;
    heartbeat.abort();
    let result = match &outcome {
        Ok(()) => "done",
        Err((_, _, true)) => "dead",
        Err(_) => "retry",
    };
    state.registry.runtime().metrics.observe(
        "ham_job_run_duration_seconds",
        &[("plugin", &job.plugin), ("outcome", result)],
        started.elapsed().as_secs_f64(),
    );
    let recorded = match outcome {
        Ok(()) => state.db.finish_job(&job.id, job.attempts).await,
        Err((why, after, dead)) => {
            // A requested delay (a rate limit) is not the job's fault: no attempt used.
            let refund = after.is_some();
            let delay =
                after.unwrap_or_else(|| backoff_ms(job.attempts, state.settings.job_backoff_ms));
            let run_after = now_ms() + i64::try_from(delay).unwrap_or(i64::MAX / 2);
            tracing::warn!(job = %job.id, plugin = %job.plugin, kind = %job.kind, attempt = job.attempts, error = %why, "job failed");
            state
                .db
                .fail_job(&job.id, job.attempts, &why, run_after, dead, refund)
                .await
        }
    };
    if let Err(e) = recorded {
        // The lease runs out and another claim retries it.
        tracing::error!(job = %job.id, error = %e, "recording a job's outcome failed");
    }
}

/// One run of a job through its plugin: `Err((why, retry after ms, dead))`. During
/// a rollout of the plugin the job may run in the candidate (for its user as that
/// user's requests do, a job for no user by itself), and its outcome is counted
/// for the version that ran it.
async fn run_once(state: &Workers, job: &JobRow) -> Result<(), (String, Option<u64>, bool)> {
    let snapshot = state.registry.snapshot();
    let Some(stable) = snapshot.plugins.get(&job.plugin) else {
        return Err((
            format!("plugin {} is not installed", job.plugin),
            None,
            false,
        ));
    };
    let plugin = snapshot.serving(stable, job.user_id.as_deref(), |c| c.exports.job_handler);
    drop(snapshot);
    let call = Job {
        id: job.id.clone(),
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        attempt: u32::try_from(job.attempts).unwrap_or(u32::MAX),
        user_id: job.user_id.clone(),
    };
    let result = state
        .registry
        .runtime()
        .run_job(plugin.clone(), job.user_id.clone(), &call)
        .await;
    match &result {
        // A busy plugin never ran the job: neither version's doing.
        Err(InvokeError::Busy) => {}
        Ok(Err(JobError::Fail(_))) | Err(_) => state.registry.record(&plugin, true),
        Ok(_) => state.registry.record(&plugin, false),
    }
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(JobError::Retry(why))) => Err((why, None, false)),
        Ok(Err(JobError::RetryAfter(later))) => Err((later.reason, Some(later.after_ms), false)),
        Ok(Err(JobError::Fail(why))) => Err((why, None, true)),
        // The plugin is at its share of instances: not the job's fault, so
        // it waits a moment without spending an attempt.
        Err(InvokeError::Busy) => Err((
            format!("plugin {} is busy", job.plugin),
            Some(BUSY_RETRY_MS + u64::from(rand_u16()) % BUSY_RETRY_MS),
            false,
        )),
        Err(e) => Err((format!("plugin {} {e}", job.plugin), None, false)),
    }
}

/// Jobs by state, for the `ham_jobs` gauge read at scrape time.
pub async fn count_by_state(
    db: &crate::store::Db,
) -> crate::store::Result<Vec<(crate::store::jobs::JobState, i64)>> {
    db.count_jobs().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_jitter() {
        for attempt in 1..=5 {
            let nominal = 1000u64 << (attempt - 1);
            for _ in 0..50 {
                let d = backoff_ms(attempt, 1000);
                assert!(
                    d >= nominal * 3 / 4 && d <= nominal * 5 / 4 + 1,
                    "attempt {attempt}: {d}"
                );
            }
        }
        assert!(backoff_ms(40, 1000) <= MAX_BACKOFF_MS * 5 / 4);
    }
}
