//! The `plugin_rollouts` and `plugin_rollout_counts` tables: a candidate version
//! on trial beside the stable one, the figures it is judged on, and the decision.
//!
//! A rollout starts in the transaction that stores its candidate, and is decided
//! by one conditional update (`WHERE state IN ('canary', 'shadow')`), so when
//! several replicas judge the same figures at once exactly one decision is
//! recorded; a promotion
//! stamps the candidate active in the same transaction. Both announce the plugin
//! on the `ham_plugins` channel (PostgreSQL), as an activation does, so every
//! replica follows at once.
//!
//! Counts are kept per arm and second: each replica adds what it served
//! (`add_rollout_counts`), and the sums over the window are the same for all.
//!
//! A shadow run (state `shadow`) is a rollout whose candidate serves nothing:
//! each replica adds the answers it compared, those that differed and the
//! candidate's failures to the rollout's row (`add_shadow_figures`), with the
//! latest differences (at most [`MAX_SHADOW_EXAMPLES`] kept, removed at the
//! decision). A rollout runs in state `canary` or `shadow`, at most one per plugin.

use sqlx::{AssertSqlSafe, Row as _};

use super::plugin_versions::{NewVersion, VersionRow, insert_or_find, notify, stamp_active};
use super::text::{StoredText, decode};
use super::{Db, Result, now_ms};

/// Where a rollout stands (stored as `canary`, `shadow`, `promoted`, `rolled_back`,
/// `aborted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// The candidate serves its share; not decided yet.
    Canary,
    /// The candidate rule set evaluates a sample of the stable version's inputs
    /// beside it and serves nobody; decided by an admin.
    Shadow,
    /// The candidate is the active version.
    Promoted,
    /// The host took the candidate out: its error rate was over the plan's.
    RolledBack,
    /// An admin took the candidate out.
    Aborted,
}

impl StoredText for RolloutState {
    const COLUMN: &'static str = "plugin_rollouts.state";

    fn as_stored(self) -> &'static str {
        match self {
            RolloutState::Canary => "canary",
            RolloutState::Shadow => "shadow",
            RolloutState::Promoted => "promoted",
            RolloutState::RolledBack => "rolled_back",
            RolloutState::Aborted => "aborted",
        }
    }

    fn from_stored(text: &str) -> Option<Self> {
        match text {
            "canary" => Some(RolloutState::Canary),
            "shadow" => Some(RolloutState::Shadow),
            "promoted" => Some(RolloutState::Promoted),
            "rolled_back" => Some(RolloutState::RolledBack),
            "aborted" => Some(RolloutState::Aborted),
            _ => None,
        }
    }
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        self.as_stored()
    }

    /// Whether the rollout is under way (canary or shadow), not decided.
    pub fn is_running(self) -> bool {
        matches!(self, RolloutState::Canary | RolloutState::Shadow)
    }
}

/// The latest differences kept per shadow run.
pub const MAX_SHADOW_EXAMPLES: i64 = 10;

/// A shadow run's figures, in habit answers: compared with the stable version's,
/// differing from it, and failed by the candidate (a trap, a timeout, an answer
/// the host refused); failures are not differences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ShadowFigures {
    pub compared: i64,
    pub differed: i64,
    pub errors: i64,
}

/// One answer that differed: the habit (its id only: nothing of its user or its
/// entries), the day the answers first differ (today when today's score or the
/// streaks do), and both versions' score of that day and current streak.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ShadowExample {
    pub habit_id: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    pub stable_score: f64,
    pub candidate_score: f64,
    pub stable_streak: i64,
    pub candidate_streak: i64,
}

/// Which version of a rollout served an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arm {
    Stable,
    Candidate,
}

impl Arm {
    fn as_stored(self) -> &'static str {
        match self {
            Arm::Stable => "stable",
            Arm::Candidate => "candidate",
        }
    }
}

/// Requests (HTTP requests and jobs) and the errors among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Figures {
    pub requests: i64,
    pub errors: i64,
}

/// A stored rollout, with the version labels of its two versions.
#[derive(Debug, Clone)]
pub struct RolloutRow {
    pub id: i64,
    pub name: String,
    pub stable_id: i64,
    pub candidate_id: i64,
    pub stable_version: String,
    pub candidate_version: String,
    /// The rollout's plan, JSON.
    pub plan: String,
    pub state: RolloutState,
    pub started_at: i64,
    pub decided_at: Option<i64>,
    /// `host` or `admin`.
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// The figures the decision was made on (zero while it runs).
    pub stable: Figures,
    pub candidate: Figures,
    /// A shadow run's figures, added up by every replica (zero for a canary).
    pub shadow: ShadowFigures,
}

#[derive(sqlx::FromRow)]
struct RolloutRecord {
    id: i64,
    name: String,
    stable_id: i64,
    candidate_id: i64,
    stable_version: String,
    candidate_version: String,
    plan: String,
    state: String,
    started_at: i64,
    decided_at: Option<i64>,
    decided_by: Option<String>,
    reason: Option<String>,
    stable_requests: i64,
    stable_errors: i64,
    candidate_requests: i64,
    candidate_errors: i64,
    shadow_compared: i64,
    shadow_differed: i64,
    shadow_errors: i64,
}

impl TryFrom<RolloutRecord> for RolloutRow {
    type Error = super::Error;

    fn try_from(r: RolloutRecord) -> Result<Self> {
        Ok(Self {
            id: r.id,
            name: r.name,
            stable_id: r.stable_id,
            candidate_id: r.candidate_id,
            stable_version: r.stable_version,
            candidate_version: r.candidate_version,
            plan: r.plan,
            state: decode(&r.state)?,
            started_at: r.started_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
            reason: r.reason,
            stable: Figures {
                requests: r.stable_requests,
                errors: r.stable_errors,
            },
            candidate: Figures {
                requests: r.candidate_requests,
                errors: r.candidate_errors,
            },
            shadow: ShadowFigures {
                compared: r.shadow_compared,
                differed: r.shadow_differed,
                errors: r.shadow_errors,
            },
        })
    }
}

const SELECT: &str = "SELECT r.id, r.name, r.stable_id, r.candidate_id, s.version AS stable_version, \
     c.version AS candidate_version, r.plan, r.state, r.started_at, r.decided_at, r.decided_by, \
     r.reason, r.stable_requests, r.stable_errors, r.candidate_requests, r.candidate_errors, \
     r.shadow_compared, r.shadow_differed, r.shadow_errors \
     FROM plugin_rollouts r JOIN plugin_versions s ON s.id = r.stable_id \
     JOIN plugin_versions c ON c.id = r.candidate_id";

/// One replica's counts of one second: (rollout, arm, second, requests, errors).
pub type Count = (i64, Arm, i64, i64, i64);

/// How a rollout was decided.
pub struct Decision<'a> {
    pub state: RolloutState,
    /// `host` or `admin`.
    pub by: &'a str,
    pub reason: &'a str,
    pub stable: Figures,
    pub candidate: Figures,
}

impl Db {
    /// Stores a version (or finds the identical one) as the candidate of a rollout
    /// against the active version `stable_id`, and starts the rollout in `state`
    /// (canary or shadow). `None` when the version is the stable one itself
    /// (nothing to try).
    pub async fn store_candidate(
        &self,
        new: &NewVersion<'_>,
        stable_id: i64,
        plan: &str,
        state: RolloutState,
    ) -> Result<Option<(VersionRow, bool, RolloutRow)>> {
        let mut tx = self.begin_write().await?;
        let (id, created) = insert_or_find(&mut tx, new).await?;
        if id == stable_id {
            return Ok(None);
        }
        let at = Start {
            name: new.name,
            stable_id,
            candidate_id: id,
            plan,
            state,
        };
        let rollout = start(&mut tx, &at, self.backend()).await?;
        let row = super::plugin_versions::row(&mut tx, id).await?;
        tx.commit().await?;
        let rollout = self
            .rollout(rollout)
            .await?
            .ok_or_else(|| super::Error::unreadable("plugin_rollouts.id", rollout))?;
        Ok(Some((row, created, rollout)))
    }

    /// Starts a rollout of a stored version (one an admin just approved).
    pub async fn start_rollout(&self, at: &Start<'_>) -> Result<RolloutRow> {
        let mut tx = self.begin_write().await?;
        let id = start(&mut tx, at, self.backend()).await?;
        tx.commit().await?;
        self.rollout(id)
            .await?
            .ok_or_else(|| super::Error::unreadable("plugin_rollouts.id", id))
    }

    /// One rollout by id.
    pub async fn rollout(&self, id: i64) -> Result<Option<RolloutRow>> {
        let row: Option<RolloutRecord> =
            sqlx::query_as(AssertSqlSafe(format!("{SELECT} WHERE r.id = $1")))
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        row.map(RolloutRow::try_from).transpose()
    }

    /// The rollout of `name` under way, if any.
    pub async fn running_rollout(&self, name: &str) -> Result<Option<RolloutRow>> {
        let row: Option<RolloutRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "{SELECT} WHERE r.name = $1 AND r.state IN ('canary', 'shadow')"
        )))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(RolloutRow::try_from).transpose()
    }

    /// The latest rollout of `name`, under way or decided.
    pub async fn latest_rollout(&self, name: &str) -> Result<Option<RolloutRow>> {
        let row: Option<RolloutRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "{SELECT} WHERE r.name = $1 ORDER BY r.id DESC LIMIT 1"
        )))
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.map(RolloutRow::try_from).transpose()
    }

    /// Every rollout under way.
    pub async fn running_rollouts(&self) -> Result<Vec<RolloutRow>> {
        let rows: Vec<RolloutRecord> = sqlx::query_as(AssertSqlSafe(format!(
            "{SELECT} WHERE r.state IN ('canary', 'shadow') ORDER BY r.name"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RolloutRow::try_from).collect()
    }

    /// Adds one replica's counts.
    pub async fn add_rollout_counts(&self, counts: &[Count]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (rollout, arm, second, requests, errors) in counts {
            sqlx::query(
                "INSERT INTO plugin_rollout_counts (rollout_id, arm, second, requests, errors) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rollout_id, arm, second) DO UPDATE SET \
                 requests = plugin_rollout_counts.requests + excluded.requests, \
                 errors = plugin_rollout_counts.errors + excluded.errors",
            )
            .bind(rollout)
            .bind(arm.as_stored())
            .bind(second)
            .bind(requests)
            .bind(errors)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The figures of a running rollout: each arm's since `since_second` (the
    /// window), and the candidate's requests since it began.
    pub async fn rollout_figures(
        &self,
        id: i64,
        since_second: i64,
    ) -> Result<(Figures, Figures, i64)> {
        let rows = sqlx::query(
            "SELECT arm, CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
             CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors \
             FROM plugin_rollout_counts WHERE rollout_id = $1 AND second >= $2 GROUP BY arm",
        )
        .bind(id)
        .bind(since_second)
        .fetch_all(self.pool())
        .await?;
        let (mut stable, mut candidate) = (Figures::default(), Figures::default());
        for row in &rows {
            let arm: String = row.try_get("arm")?;
            let figures = Figures {
                requests: row.try_get("requests")?,
                errors: row.try_get("errors")?,
            };
            match arm.as_str() {
                "stable" => stable = figures,
                "candidate" => candidate = figures,
                other => return Err(super::Error::unreadable("plugin_rollout_counts.arm", other)),
            }
        }
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) FROM plugin_rollout_counts \
             WHERE rollout_id = $1 AND arm = 'candidate'",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok((stable, candidate, total))
    }

    /// Records the decision of a running rollout, and on promotion stamps its
    /// candidate active, in one transaction; announced to every replica. False
    /// when it was no longer running (another replica or an admin decided first):
    /// nothing changed.
    pub async fn decide_rollout(&self, id: i64, decision: &Decision<'_>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let decided = sqlx::query(
            "UPDATE plugin_rollouts SET state = $2, decided_at = $3, decided_by = $4, reason = $5, \
             stable_requests = $6, stable_errors = $7, candidate_requests = $8, candidate_errors = $9 \
             WHERE id = $1 AND state IN ('canary', 'shadow')",
        )
        .bind(id)
        .bind(decision.state.as_stored())
        .bind(now_ms())
        .bind(decision.by)
        .bind(decision.reason)
        .bind(decision.stable.requests)
        .bind(decision.stable.errors)
        .bind(decision.candidate.requests)
        .bind(decision.candidate.errors)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if decided == 0 {
            return Ok(false);
        }
        let (name, candidate): (String, i64) = {
            let row = sqlx::query("SELECT name, candidate_id FROM plugin_rollouts WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            (row.try_get("name")?, row.try_get("candidate_id")?)
        };
        if decision.state == RolloutState::Promoted {
            stamp_active(&mut tx, candidate, self.backend()).await?;
        } else {
            notify(&mut tx, &name, self.backend()).await?;
        }
        for table in ["plugin_rollout_counts", "plugin_shadow_examples"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE rollout_id = $1"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Adds one replica's figures of a shadow run and its latest differences
    /// (newest last), keeping the newest [`MAX_SHADOW_EXAMPLES`]. Nothing changes
    /// once the run is decided.
    pub async fn add_shadow_figures(
        &self,
        id: i64,
        figures: ShadowFigures,
        examples: &[ShadowExample],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let running = sqlx::query(
            "UPDATE plugin_rollouts SET shadow_compared = shadow_compared + $2, \
             shadow_differed = shadow_differed + $3, shadow_errors = shadow_errors + $4 \
             WHERE id = $1 AND state = 'shadow'",
        )
        .bind(id)
        .bind(figures.compared)
        .bind(figures.differed)
        .bind(figures.errors)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if running == 0 {
            return Ok(());
        }
        for e in examples {
            sqlx::query(
                "INSERT INTO plugin_shadow_examples (rollout_id, habit_id, day, stable_score, \
                 candidate_score, stable_streak, candidate_streak) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(&e.habit_id)
            .bind(&e.day)
            .bind(e.stable_score)
            .bind(e.candidate_score)
            .bind(e.stable_streak)
            .bind(e.candidate_streak)
            .execute(&mut *tx)
            .await?;
        }
        if !examples.is_empty() {
            sqlx::query(
                "DELETE FROM plugin_shadow_examples WHERE rollout_id = $1 AND id NOT IN \
                 (SELECT id FROM plugin_shadow_examples WHERE rollout_id = $1 ORDER BY id DESC LIMIT $2)",
            )
            .bind(id)
            .bind(MAX_SHADOW_EXAMPLES)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The latest differences of a shadow run, newest first.
    pub async fn shadow_examples(&self, id: i64) -> Result<Vec<ShadowExample>> {
        Ok(sqlx::query_as(
            "SELECT habit_id, day, stable_score, candidate_score, stable_streak, candidate_streak \
             FROM plugin_shadow_examples WHERE rollout_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(MAX_SHADOW_EXAMPLES)
        .fetch_all(self.pool())
        .await?)
    }
}

/// A rollout to start: the candidate against the active version, its plan (JSON)
/// and the state it runs in (canary or shadow).
pub struct Start<'a> {
    pub name: &'a str,
    pub stable_id: i64,
    pub candidate_id: i64,
    pub plan: &'a str,
    pub state: RolloutState,
}

async fn start(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    at: &Start<'_>,
    backend: super::Backend,
) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO plugin_rollouts (name, stable_id, candidate_id, plan, state, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(at.name)
    .bind(at.stable_id)
    .bind(at.candidate_id)
    .bind(at.plan)
    .bind(at.state.as_stored())
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?;
    notify(tx, at.name, backend).await?;
    Ok(id)
}
