//! Each connected user's share of Strava's rate limit for event jobs.
//!
//! Webhook events are unauthenticated: whoever knows a connected athlete's id can
//! post events for made-up activities, and each one that is queued costs a call to
//! Strava. [`crate::pending`] bounds how many wait at once; this bounds how fast
//! they call Strava, so a flood aimed at one athlete spends that athlete's budget,
//! not the app's limit that every user shares.
//!
//! A token bucket in the user's storage (key `event-budget`, JSON `{"tokens",
//! "at"}`, updated with compare-and-swap): [`BURST`] calls at once, then one more
//! every [`REFILL_MS`]. With Strava's default limits (100 reads a quarter hour,
//! 1,000 a day) one athlete's events use at most 63 of a quarter hour and 348 of
//! a day. A job that finds the bucket empty waits (`retry-after`, no attempt used)
//! until the next call is available. Backfills, which a signed-in user asks for,
//! do not draw on it.

use serde::{Deserialize, Serialize};

use crate::bindings::ham::plugin::storage::{self, Scope};
use crate::bindings::ham::plugin::types::Error as HostError;

/// Calls an athlete's events may make at once.
pub const BURST: f64 = 60.0;
/// One more call every this many ms.
pub const REFILL_MS: i64 = 5 * 60_000;
const KEY: &str = "event-budget";
/// Compare-and-swap rounds before giving up (the job is retried).
const ROUNDS: usize = 8;

#[derive(Serialize, Deserialize)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was counted, ms.
    at: i64,
}

/// Takes one call from the user's budget: `Ok(Ok(()))` when taken, `Ok(Err(ms))`
/// when the budget is spent and the next call is available in `ms`.
pub fn take(now: i64) -> Result<Result<(), u64>, HostError> {
    for _ in 0..ROUNDS {
        let entry = storage::get(Scope::User, KEY)?;
        let stored = entry
            .as_ref()
            .and_then(|e| serde_json::from_slice::<Bucket>(&e.value).ok());
        let mut bucket = match stored {
            Some(b) => Bucket {
                tokens: (b.tokens + (now - b.at).max(0) as f64 / REFILL_MS as f64).min(BURST),
                at: now,
            },
            None => Bucket {
                tokens: BURST,
                at: now,
            },
        };
        if bucket.tokens < 1.0 {
            let wait = ((1.0 - bucket.tokens) * REFILL_MS as f64).ceil();
            return Ok(Err((wait as u64).max(1)));
        }
        bucket.tokens -= 1.0;
        let bytes = serde_json::to_vec(&bucket).unwrap_or_default();
        match storage::compare_and_swap(Scope::User, KEY, entry.map(|e| e.revision), &bytes) {
            Ok(_) => return Ok(Ok(())),
            Err(HostError::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(HostError::Conflict)
}
