//! The `jobs` table: a durable queue shared by every host process on one database.
//!
//! Claiming is one atomic statement: on PostgreSQL the candidate row is locked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never take the same job nor wait
//! on each other; SQLite has one writer at a time, so the same statement without
//! the lock clause is already exclusive.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Backend, Db, Result, now_ms};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobRow {
    pub id: String,
    pub plugin: String,
    pub user_id: Option<String>,
    pub kind: String,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub last_error: Option<String>,
}

const COLUMNS: &str =
    "id, plugin, user_id, kind, payload, state, attempts, max_attempts, run_after, last_error";

fn job_row(r: &AnyRow) -> JobRow {
    JobRow {
        id: r.get(0),
        plugin: r.get(1),
        user_id: r.get(2),
        kind: r.get(3),
        payload: r.get(4),
        state: r.get(5),
        attempts: r.get(6),
        max_attempts: r.get(7),
        run_after: r.get(8),
        last_error: r.get(9),
    }
}

/// A job to queue.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub plugin: &'a str,
    pub user_id: Option<&'a str>,
    pub kind: &'a str,
    pub payload: &'a [u8],
    pub run_after: i64,
    pub max_attempts: i64,
}

impl Db {
    /// Queues a job; a job with the same id already queued (a scheduled slot
    /// another process queued first) is left as it is.
    pub async fn enqueue_job(&self, job: &NewJob<'_>) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, plugin, user_id, kind, payload, state, attempts, max_attempts, run_after, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $8) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(job.id)
        .bind(job.plugin)
        .bind(job.user_id)
        .bind(job.kind)
        .bind(job.payload)
        .bind(job.max_attempts)
        .bind(job.run_after)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Takes the next due job (or one whose lease expired) and leases it until
    /// `now + lease_ms`. Counts the attempt.
    pub async fn claim_job(&self, lease_ms: i64) -> Result<Option<JobRow>> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, updated_at = $1 \
             WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND run_after <= $1) \
             OR (state = 'running' AND lease_until < $1) ORDER BY run_after LIMIT 1 {lock}) \
             RETURNING {COLUMNS}"
        )))
        .bind(now)
        .bind(now + lease_ms)
        .fetch_optional(self.writer())
        .await?;
        Ok(row.as_ref().map(job_row))
    }

    /// Extends the lease of a job this worker still holds (its claim was attempt
    /// `attempt`) to `now + lease_ms`. False when the job is no longer ours.
    pub async fn extend_lease(&self, id: &str, attempt: i64, lease_ms: i64) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $3, updated_at = $4 \
             WHERE id = $1 AND attempts = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(attempt)
        .bind(now + lease_ms)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks a running job done, if the claim `attempt` still holds it (a claim
    /// taken over after its lease ran out records nothing).
    pub async fn finish_job(&self, id: &str, attempt: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = $2 \
             WHERE id = $1 AND attempts = $3 AND state = 'running'",
        )
        .bind(id)
        .bind(now_ms())
        .bind(attempt)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Puts a job back in the queue to run at `run_after`, or kills it when it has
    /// used its attempts (or `dead` is set). `refund` does not count this attempt.
    /// Like [`Db::finish_job`], only while the claim `attempt` holds it.
    pub async fn fail_job(
        &self,
        id: &str,
        attempt: i64,
        error: &str,
        run_after: i64,
        dead: bool,
        refund: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET attempts = attempts - $5, \
             state = CASE WHEN $4 = 1 OR attempts - $5 >= max_attempts THEN 'dead' ELSE 'queued' END, \
             run_after = $3, lease_until = NULL, last_error = $2, updated_at = $6 \
             WHERE id = $1 AND attempts = $7 AND state = 'running'",
        )
        .bind(id)
        .bind(error)
        .bind(run_after)
        .bind(i64::from(dead))
        .bind(i64::from(refund))
        .bind(now_ms())
        .bind(attempt)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Deletes finished jobs (done or dead) last changed before `cutoff_ms`, with
    /// the payloads (webhook events) they carry. Returns how many went.
    pub async fn prune_finished_jobs(&self, cutoff_ms: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'dead') AND updated_at < $1")
                .bind(cutoff_ms)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected())
    }

    /// Jobs, newest first, optionally in one state.
    pub async fn list_jobs(&self, state: Option<&str>, limit: i64) -> Result<Vec<JobRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE ($1 = '' OR state = $1) ORDER BY created_at DESC, id LIMIT $2"
        )))
        .bind(state.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(job_row).collect())
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<JobRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(job_row))
    }

    /// Requeues a dead job with fresh attempts. False when it is not dead.
    pub async fn retry_dead_job(&self, id: &str) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = $2, updated_at = $2 \
             WHERE id = $1 AND state = 'dead'",
        )
        .bind(id)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Jobs per state, for queue depth.
    pub async fn count_jobs(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT state, CAST(COUNT(*) AS BIGINT) FROM jobs GROUP BY state ORDER BY state",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
