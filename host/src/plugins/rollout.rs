//! Rollouts: a new version of a plugin (the candidate) serves a share of its HTTP
//! requests and jobs beside the version already active (the stable one), and the
//! host judges it by its errors before everyone gets it.
//!
//! - The plan ([`RolloutPlan`]) comes with the upload (`rollout`, JSON):
//!   `canary_percent` (1..=99, required), `min_requests` (1..=1000000, default
//!   50), `max_error_rate` (0..=1, default 0.05), `window_s` (1..=86400, default
//!   60). Anything else is refused with a message naming the field.
//! - Who gets which version ([`Canary::takes`]): a signed-in user by a stable hash
//!   of the plugin, the candidate's id and the user's id, so one person sees one
//!   version on every replica; a request for no user (and a job for none) by
//!   itself, spread evenly.
//! - Errors: answers of 5xx, traps, timeouts, memory and fuel exhaustion, and
//!   jobs that fail for good. A request refused for want of an instance slot
//!   (`plugin_busy`) counts for neither version: it never ran.
//! - Counting: each replica adds what it served to the database per arm and
//!   second ([`Tally`], flushed every [`TICK`]); the window's sums are the same
//!   for every replica.
//! - Judging ([`judge`]): once the candidate has served `min_requests` since the
//!   rollout began, its error rate over the last `window_s` seconds is compared:
//!   over `max_error_rate` and over the stable version's rate, the host rolls it
//!   back; otherwise it promotes it. Every replica judges; the database records
//!   one decision (see `store::rollouts`) and every replica follows it.
//! - A shadow run ([`Plan::Shadow`], `{"shadow": true, "sample_percent": 10}`) is
//!   a rollout of a rule set that serves nothing: see [`super::shadow`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use crate::store::rollouts::{Arm, Figures, RolloutRow, RolloutState};

/// How often each replica flushes its counts and judges its rollouts.
pub const TICK: Duration = Duration::from_millis(250);

/// How a candidate is tried: its share, and when and how it is judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RolloutPlan {
    /// The share of requests and jobs the candidate serves, in percent (1..=99).
    pub canary_percent: u8,
    /// Requests the candidate serves before it is judged (1..=1000000; default 50).
    pub min_requests: u64,
    /// The highest error rate it may have over the window (0..=1; default 0.05).
    pub max_error_rate: f64,
    /// The window errors are counted over, in seconds (1..=86400; default 60).
    pub window_s: u64,
}

/// Why a rollout's JSON was refused; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("rollout: {0}")]
pub struct PlanError(pub String);

impl RolloutPlan {
    /// Parses and checks a plan (the upload's `rollout` field).
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let bad = |why: String| Err(PlanError(why));
        let value: Value =
            serde_json::from_str(text).map_err(|e| PlanError(format!("not JSON: {e}")))?;
        let Value::Object(fields) = value else {
            return bad(
                "expected an object such as {\"canary_percent\": 20, \"min_requests\": 50, \
                 \"max_error_rate\": 0.05, \"window_s\": 60}"
                    .into(),
            );
        };
        if let Some(key) = fields.keys().find(|k| {
            !matches!(
                k.as_str(),
                "canary_percent" | "min_requests" | "max_error_rate" | "window_s"
            )
        }) {
            return bad(format!(
                "{key}: unknown field (known: canary_percent, min_requests, max_error_rate, window_s)"
            ));
        }
        let integer =
            |key: &str, range: std::ops::RangeInclusive<u64>, default: Option<u64>| match fields
                .get(key)
            {
                None => default.ok_or_else(|| {
                    PlanError(format!(
                        "{key}: required, a whole number within {}..={}",
                        range.start(),
                        range.end()
                    ))
                }),
                Some(v) => v.as_u64().filter(|n| range.contains(n)).ok_or_else(|| {
                    PlanError(format!(
                        "{key}: {v} is not a whole number within {}..={}",
                        range.start(),
                        range.end()
                    ))
                }),
            };
        let canary_percent = integer("canary_percent", 1..=99, None)?;
        let min_requests = integer("min_requests", 1..=1_000_000, Some(50))?;
        let window_s = integer("window_s", 1..=86_400, Some(60))?;
        let max_error_rate = match fields.get("max_error_rate") {
            None => 0.05,
            Some(v) => v
                .as_f64()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    PlanError(format!("max_error_rate: {v} is not a number within 0..=1"))
                })?,
        };
        Ok(Self {
            canary_percent: u8::try_from(canary_percent).unwrap_or(99),
            min_requests,
            max_error_rate,
            window_s,
        })
    }

    /// The plan as stored and shown.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// How a rollout tries its candidate: a canary share of requests and jobs, or a
/// shadow run of a rule set (`plugins::shadow`). Shown and stored as the JSON it
/// was given with, completed with the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Plan {
    Canary(RolloutPlan),
    Shadow(super::shadow::ShadowPlan),
}

impl Plan {
    /// Parses and checks the upload's `rollout` field: a shadow run when it has
    /// the key `shadow`, else a canary plan.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PlanError(format!("not JSON: {e}")))?;
        match value.get("shadow") {
            Some(_) => super::shadow::ShadowPlan::parse(&value).map(Plan::Shadow),
            None => RolloutPlan::parse(text).map(Plan::Canary),
        }
    }

    /// The plan as stored and shown.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The canary plan, if it is one.
    pub fn canary(&self) -> Option<&RolloutPlan> {
        match self {
            Plan::Canary(plan) => Some(plan),
            Plan::Shadow(_) => None,
        }
    }

    /// The state a rollout of this plan runs in.
    pub fn running_state(&self) -> RolloutState {
        match self {
            Plan::Canary(_) => RolloutState::Canary,
            Plan::Shadow(_) => RolloutState::Shadow,
        }
    }
}

/// What the figures say, once the candidate has served enough.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub state: RolloutState,
    pub reason: String,
}

/// Judges a candidate: `None` until it has served `plan.min_requests` since the
/// rollout began (`candidate_total`); then [`RolloutState::RolledBack`] when its
/// error rate over the window is over `max_error_rate` and over the stable
/// version's, else [`RolloutState::Promoted`].
pub fn judge(
    plan: &RolloutPlan,
    stable: Figures,
    candidate: Figures,
    candidate_total: i64,
) -> Option<Verdict> {
    if u64::try_from(candidate_total).unwrap_or(0) < plan.min_requests {
        return None;
    }
    let rate = |f: Figures| match f.requests {
        0 => 0.0,
        n => f.errors as f64 / n as f64,
    };
    let (c, s) = (rate(candidate), rate(stable));
    let figures = format!(
        "candidate {} errors in {} requests ({:.1} %), stable {} in {} ({:.1} %) over the last {} s",
        candidate.errors,
        candidate.requests,
        c * 100.0,
        stable.errors,
        stable.requests,
        s * 100.0,
        plan.window_s
    );
    Some(if c > plan.max_error_rate && c > s {
        Verdict {
            state: RolloutState::RolledBack,
            reason: format!(
                "error rate over {:.1} % and over the stable version's: {figures}",
                plan.max_error_rate * 100.0
            ),
        }
    } else {
        Verdict {
            state: RolloutState::Promoted,
            reason: format!("healthy: {figures}"),
        }
    })
}

/// Whether a signed-in user falls in the candidate's share: a hash of the plugin,
/// the candidate's version id and the user's id, the same on every replica and
/// for every request of the rollout.
pub fn user_takes_candidate(name: &str, candidate_id: i64, user: &str, percent: u8) -> bool {
    let digest = Sha256::digest(format!("{name}\0{candidate_id}\0{user}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100 < u64::from(percent)
}

/// Whether a request for no user goes to the candidate: requests are numbered,
/// and a mix of the number decides, so the share holds over any run of requests.
pub fn request_takes_candidate(percent: u8) -> bool {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    splitmix64(NEXT.fetch_add(1, Ordering::Relaxed)) % 10_000 < u64::from(percent) * 100
}

pub(super) fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One second of one arm of a rollout: (rollout, arm, second since the epoch).
type Slot = (i64, Arm, i64);

/// This replica's counts not yet in the database: (requests, errors) per slot.
#[derive(Debug, Default)]
pub struct Tally {
    pending: Mutex<HashMap<Slot, (i64, i64)>>,
}

impl Tally {
    /// Counts one invocation served by `arm` of rollout `rollout`.
    pub fn add(&self, rollout: i64, arm: Arm, error: bool) {
        let second = crate::store::now_ms() / 1000;
        if let Ok(mut pending) = self.pending.lock() {
            let entry = pending.entry((rollout, arm, second)).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += i64::from(error);
        }
    }

    /// Takes every count out, for the database.
    pub fn drain(&self) -> Vec<crate::store::rollouts::Count> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .drain()
            .map(|((rollout, arm, second), (requests, errors))| {
                (rollout, arm, second, requests, errors)
            })
            .collect()
    }
}

/// Runs [`super::Registry::tick`] every [`TICK`] until the task is aborted.
pub fn spawn(registry: std::sync::Arc<super::Registry>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            registry.tick().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_checked_field_by_field() {
        let plan = RolloutPlan::parse(r#"{"canary_percent": 20}"#).unwrap();
        assert_eq!(
            plan,
            RolloutPlan {
                canary_percent: 20,
                min_requests: 50,
                max_error_rate: 0.05,
                window_s: 60
            }
        );
        let cases = [
            ("[]", "expected an object"),
            ("{", "not JSON"),
            ("{}", "canary_percent: required"),
            (r#"{"canary_percent": 0}"#, "canary_percent: 0 is not"),
            (r#"{"canary_percent": 100}"#, "canary_percent: 100 is not"),
            (r#"{"canary_percent": 20.5}"#, "canary_percent: 20.5 is not"),
            (
                r#"{"canary_percent": 20, "min_requests": 0}"#,
                "min_requests: 0",
            ),
            (
                r#"{"canary_percent": 20, "max_error_rate": 1.5}"#,
                "max_error_rate: 1.5",
            ),
            (
                r#"{"canary_percent": 20, "max_error_rate": "x"}"#,
                "max_error_rate: \"x\"",
            ),
            (r#"{"canary_percent": 20, "window_s": 0}"#, "window_s: 0"),
            (
                r#"{"canary_percent": 20, "percent": 1}"#,
                "percent: unknown field",
            ),
        ];
        for (text, expected) in cases {
            let e = RolloutPlan::parse(text).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn a_candidate_is_judged_after_min_requests() {
        let plan = RolloutPlan::parse(r#"{"canary_percent": 20, "min_requests": 10}"#).unwrap();
        let f = |requests, errors| Figures { requests, errors };
        assert_eq!(judge(&plan, f(40, 0), f(9, 9), 9), None);
        let bad = judge(&plan, f(40, 0), f(10, 10), 10).unwrap();
        assert_eq!(bad.state, RolloutState::RolledBack);
        let good = judge(&plan, f(40, 0), f(10, 0), 10).unwrap();
        assert_eq!(good.state, RolloutState::Promoted);
        // No worse than the stable version: not its fault.
        let both = judge(&plan, f(40, 40), f(10, 10), 10).unwrap();
        assert_eq!(both.state, RolloutState::Promoted);
    }

    #[test]
    fn a_user_always_gets_the_same_arm_and_shares_hold() {
        let takes: Vec<bool> = (0..1000)
            .map(|i| user_takes_candidate("p", 7, &format!("user{i}"), 20))
            .collect();
        let share = takes.iter().filter(|t| **t).count();
        assert!((120..=280).contains(&share), "{share}");
        for (i, took) in takes.iter().enumerate().take(50) {
            assert_eq!(user_takes_candidate("p", 7, &format!("user{i}"), 20), *took);
        }
        let requests = (0..10_000).filter(|_| request_takes_candidate(20)).count();
        assert!((1_700..=2_300).contains(&requests), "{requests}");
    }
}
