//! The `jobs` table: a durable queue shared by every host process on one database.
//!
//! Claiming is one atomic statement: on PostgreSQL the candidate row is locked with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never take the same job nor wait
//! on each other; SQLite has one writer at a time, so the same statement without
//! the lock clause is already exclusive.

use sqlx::Row as _;

use super::text::{StoredText, decode};
use super::{Backend, Db, Result, now_ms};

/// Where a job is in its life: `queued` until due, `running` while a worker holds
/// its lease, then `done`, or `dead` after its last attempt (see [`super::text`]
/// for the stored names; the JSON shows the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Dead,
}

impl JobState {
    /// The stored name: `queued`, `running`, `done` or `dead`.
    pub fn as_str(self) -> &'static str {
        self.as_stored()
    }
}

/// A state by its stored name; any other name is [`super::Error::Unreadable`].
impl std::str::FromStr for JobState {
    type Err = super::Error;

    fn from_str(text: &str) -> Result<Self> {
        decode(text)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state compares equal to its stored name (`job.state == "done"`).
impl PartialEq<&str> for JobState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct JobRow {
    pub id: String,
    pub plugin: String,
    pub user_id: Option<String>,
    pub kind: String,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: i64,
    pub last_error: Option<String>,
}

/// A `jobs` row as stored ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
struct JobRecord {
    id: String,
    plugin: String,
    user_id: Option<String>,
    kind: String,
    payload: Vec<u8>,
    state: String,
    attempts: i64,
    max_attempts: i64,
    run_after: i64,
    last_error: Option<String>,
}

impl TryFrom<JobRecord> for JobRow {
    type Error = super::Error;

    fn try_from(r: JobRecord) -> Result<Self> {
        Ok(JobRow {
            id: r.id,
            plugin: r.plugin,
            user_id: r.user_id,
            kind: r.kind,
            payload: r.payload,
            state: decode(&r.state)?,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            run_after: r.run_after,
            last_error: r.last_error,
        })
    }
}

const COLUMNS: &str =
    "id, plugin, user_id, kind, payload, state, attempts, max_attempts, run_after, last_error";

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
        let row: Option<JobRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = $2, updated_at = $1 \
             WHERE id = (SELECT id FROM jobs WHERE (state = 'queued' AND run_after <= $1) \
             OR (state = 'running' AND lease_until < $1) ORDER BY run_after LIMIT 1 {lock}) \
             RETURNING {COLUMNS}"
        )))
        .bind(now)
        .bind(now + lease_ms)
        .fetch_optional(self.writer())
        .await?;
        row.map(JobRow::try_from).transpose()
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
    pub async fn list_jobs(&self, state: Option<JobState>, limit: i64) -> Result<Vec<JobRow>> {
        let rows: Vec<JobRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE ($1 = '' OR state = $1) ORDER BY created_at DESC, id LIMIT $2"
        )))
        .bind(state.map_or("", JobState::as_str))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(JobRow::try_from).collect()
    }

    /// Whether `plugin` has a job of `kind` for `user_id` due at `since` or later.
    pub async fn has_job_since(
        &self,
        plugin: &str,
        user_id: &str,
        kind: &str,
        since: i64,
    ) -> Result<bool> {
        let found = sqlx::query(
            "SELECT 1 FROM jobs WHERE plugin = $1 AND user_id = $2 AND kind = $3 AND run_after >= $4 LIMIT 1",
        )
        .bind(plugin)
        .bind(user_id)
        .bind(kind)
        .bind(since)
        .fetch_optional(self.writer())
        .await?;
        Ok(found.is_some())
    }

    pub async fn get_job(&self, id: &str) -> Result<Option<JobRow>> {
        let row: Option<JobRecord> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(JobRow::try_from).transpose()
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
    pub async fn count_jobs(&self) -> Result<Vec<(JobState, i64)>> {
        let rows = sqlx::query(
            "SELECT state, CAST(COUNT(*) AS BIGINT) AS n FROM jobs GROUP BY state ORDER BY state",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((decode(r.try_get("state")?)?, r.try_get("n")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_in_an_unknown_state_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ham.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.enqueue_job(&NewJob {
            id: "j1",
            plugin: "p",
            user_id: None,
            kind: "sync",
            payload: b"{}",
            run_after: 0,
            max_attempts: 3,
        })
        .await
        .unwrap();
        let job = db.get_job("j1").await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(db.count_jobs().await.unwrap(), [(JobState::Queued, 1)]);
        assert_eq!(
            db.list_jobs(Some(JobState::Dead), 10).await.unwrap().len(),
            0
        );
        sqlx::query("UPDATE jobs SET state = 'paused'")
            .execute(db.pool())
            .await
            .unwrap();
        for error in [
            db.get_job("j1").await.unwrap_err().to_string(),
            db.count_jobs().await.unwrap_err().to_string(),
        ] {
            assert!(
                error.contains("jobs.state") && error.contains("`paused`"),
                "{error}"
            );
        }
    }
}
