//! Password login's defences, for `local` mode ([`super::local`]): how many
//! wrong passwords a client may try, and how much argon2 work runs at once.
//! `/api/auth/login` and `/api/auth/register` use them through
//! [`LoginLimiter`]; nothing else hashes or verifies passwords.
//!
//! # Password guessing ([`LoginLimiter`])
//!
//! Login attempts are counted against the client ([`super::client_addr`]: the TCP peer,
//! or behind a trusted proxy the right-most untrusted `X-Forwarded-For` entry; an
//! IPv6 client counts as its /64). Two budgets, each a sliding
//! [`FAILURE_WINDOW`] of 15 minutes:
//!
//! - [`MAX_FAILURES_PER_USER_AT_ADDRESS`] (5) per (username, client), and
//! - [`MAX_FAILURES_PER_ADDRESS`] (20) per client, across usernames.
//!
//! There is deliberately no budget per username alone: it would let anyone lock
//! the owner out of their own device by failing from elsewhere. Guessing from many
//! addresses is slowed instead by the bound on password work below.
//!
//! An attempt is *reserved* before the password is verified, so N concurrent
//! wrong logins verify at most the budget; a success takes its reservation back
//! and clears the (username, client) budget, a failure keeps it, and an attempt
//! that never reached a verification (server busy, database error) is refunded.
//! An attempt abandoned halfway (the client hung up) counts as a failure.
//!
//! The limiter's memory is bounded: entries older than the window are dropped
//! whenever their key is touched and by a prune of the whole table, run when the
//! table has doubled since the last one (amortised O(1) per new key). The table
//! holds at most [`MAX_TRACKED_KEYS`] (100 000) keys, at most a few hundred bytes
//! each (~30 MB at worst). When it is full of live entries it fails closed for new
//! keys only: a client the table does not know yet gets 503 `busy` with
//! `Retry-After` until the earliest entry expires (re-checked at most once a
//! second), while every known client keeps its normal budgets and nobody's count
//! is touched, so a full table never turns into a 15-minute lockout of anyone, and
//! no login goes uncounted. Filling it takes 50 000 failed verifications (each
//! adds at most two keys) from some 4 800 addresses or /64s (each adds at most 21)
//! inside one window, which the password-work bound throttles.
//!
//! # Password work ([`PasswordWork`])
//!
//! Each argon2id hash or verification needs 19 MiB of working memory and a core
//! for tens of milliseconds. They run on the blocking pool under a semaphore of
//! [`PASSWORD_WORK_PERMITS_PER_CORE`] (2) permits per core, at most
//! [`MAX_PASSWORD_WORK_PERMITS`] (16); a request waits at most
//! [`PASSWORD_WORK_WAIT`] (2 s) for one and is then answered 503 `busy` with
//! `Retry-After`. The working memory comes from a pool of at most one buffer per
//! permit, allocated once and reused, so password work holds at most
//! permits x 19 MiB whatever the allocator does. Credentials longer than
//! [`MAX_USERNAME_BYTES`] (64) or [`MAX_PASSWORD_BYTES`] (1024) are refused (422)
//! before any lookup or hashing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use super::AuthError;

/// The longest username a login or registration considers.
pub const MAX_USERNAME_BYTES: usize = 64;
/// The longest password hashed or verified.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Failed logins one (username, client) may have within [`FAILURE_WINDOW`].
pub const MAX_FAILURES_PER_USER_AT_ADDRESS: usize = 5;
/// Failed logins one client may have within [`FAILURE_WINDOW`], across usernames.
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
/// How long a failed login counts.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(WINDOW_SECS as u64);
const WINDOW_SECS: u32 = 15 * 60;
/// The most keys (a client, a username at a client) the limiter tracks.
pub const MAX_TRACKED_KEYS: usize = 100_000;
/// Below this many keys the limiter never prunes.
const PRUNE_FLOOR: usize = 1024;
/// Concurrent password hashes or verifications per core.
pub const PASSWORD_WORK_PERMITS_PER_CORE: usize = 2;
/// Concurrent password hashes or verifications at most, whatever the core count
/// (each holds ~19 MiB).
pub const MAX_PASSWORD_WORK_PERMITS: usize = 16;
/// How long a request waits for a password-work permit before it is told `busy`.
pub const PASSWORD_WORK_WAIT: Duration = Duration::from_secs(2);

/// The permits for password work on this machine: [`PASSWORD_WORK_PERMITS_PER_CORE`]
/// per available core (cgroup quotas included), at most [`MAX_PASSWORD_WORK_PERMITS`].
pub fn password_work_permits() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .saturating_mul(PASSWORD_WORK_PERMITS_PER_CORE)
        .min(MAX_PASSWORD_WORK_PERMITS)
}

/// The most argon2 working memory a stored hash may ask for, in 1 KiB blocks
/// (64 MiB); HAM's own hashes use argon2's default, 19 MiB.
const MAX_HASH_BLOCKS: usize = 64 * 1024;

/// Grows `memory` to `blocks` blocks.
fn fit(memory: &mut Vec<Block>, blocks: usize) {
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
}

/// An argon2id hash (PHC string, argon2's default parameters) of a password,
/// computed in `memory`.
fn hash_password_in(
    password: &str,
    memory: &mut Vec<Block>,
) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    fit(memory, params.block_count());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(
            password.as_bytes(),
            raw_salt,
            &mut output,
            &mut memory[..],
        )?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `stored`, computed in `memory`; the
/// comparison takes constant time.
fn verify_password_in(stored: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(hash.algorithm),
        version,
        Params::try_from(&hash),
    ) else {
        return false;
    };
    if params.block_count() > MAX_HASH_BLOCKS {
        tracing::warn!(
            blocks = params.block_count(),
            "a stored password hash asks for more memory than allowed; refused"
        );
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut output = [0u8; Output::MAX_LENGTH];
    let Some(output) = output.get_mut(..expected.len()) else {
        return false;
    };
    fit(memory, params.block_count());
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), raw_salt, output, &mut memory[..])
        .is_ok()
        && Output::new(output).is_ok_and(|computed| computed == expected)
}

/// Whether `password` matches `stored`. A missing hash still costs one
/// verification (of a dummy hash), so a wrong username takes as long as a wrong
/// password.
fn verify_or_pretend(stored: Option<&str>, password: &str, memory: &mut Vec<Block>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    match stored {
        Some(hash) => verify_password_in(hash, password, memory),
        None => {
            let dummy = DUMMY.get_or_init(|| {
                hash_password_in("not a real password", memory).unwrap_or_default()
            });
            let _ = verify_password_in(dummy, password, memory);
            false
        }
    }
}

/// Who attempts are counted against: an IPv4 address, or an IPv6 /64 (what one
/// subscriber usually holds, so rotating addresses within it gains nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Client(IpAddr);

impl Client {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => Self(IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & (u128::MAX << 64),
            ))),
            v4 => Self(v4),
        }
    }
}

/// A budget of failed logins.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Budget {
    /// One client, whatever the usernames.
    Client(Client),
    /// One username at one client.
    UserAt(Client, Box<str>),
}

impl Budget {
    fn limit(&self) -> usize {
        match self {
            Self::Client(_) => MAX_FAILURES_PER_ADDRESS,
            Self::UserAt(..) => MAX_FAILURES_PER_USER_AT_ADDRESS,
        }
    }
}

/// A reserved login attempt: counted as a failure in its budgets until settled by
/// [`LoginLimiter::succeeded`] or [`LoginLimiter::refund`]; [`LoginLimiter::failed`]
/// (or dropping it) leaves it counted.
#[must_use = "settle it with LoginLimiter::succeeded, ::failed or ::refund"]
#[derive(Debug)]
pub struct LoginAttempt {
    client: Client,
    username: Box<str>,
    /// Seconds since the limiter's origin.
    at: u32,
}

impl LoginAttempt {
    fn budgets(&self) -> [Budget; 2] {
        [
            Budget::Client(self.client),
            Budget::UserAt(self.client, self.username.clone()),
        ]
    }
}

/// Failed logins per budget, and the bound on password work; see the module doc.
pub struct LoginLimiter {
    attempts: Mutex<Attempts>,
    /// Where the limiter's seconds count from.
    origin: Instant,
    passwords: PasswordWork,
}

/// The table of failures, in seconds since the limiter's origin.
struct Attempts {
    failures: HashMap<Budget, Vec<u32>>,
    max_keys: usize,
    /// Prune when the table would grow past this many keys.
    prune_at: usize,
    /// Full of live entries: no new key (and no prune) before this second.
    full_until: Option<u32>,
}

fn live(at: u32, now: u32) -> bool {
    now < at.saturating_add(WINDOW_SECS)
}

impl Attempts {
    /// Whether `new_keys` more keys fit, pruning expired entries first when the
    /// table has doubled since the last prune; `Err(seconds)` when it is full of
    /// live entries.
    fn make_room(&mut self, new_keys: usize, now: u32) -> Result<(), u32> {
        let needed = self.failures.len() + new_keys;
        if new_keys == 0 || needed <= self.prune_at {
            return Ok(());
        }
        if let Some(until) = self.full_until.filter(|until| now < *until) {
            return if needed <= self.max_keys {
                Ok(())
            } else {
                Err(until - now)
            };
        }
        self.prune(now);
        let len = self.failures.len();
        if len + new_keys <= self.max_keys {
            self.full_until = None;
            return Ok(());
        }
        // Full of live entries: no new key, and no other prune (it would free
        // nothing), until the earliest of them expires; at most once a second.
        let earliest = self
            .failures
            .values()
            .flatten()
            .min()
            .map_or(now, |at| at.saturating_add(WINDOW_SECS));
        let until = earliest.max(now.saturating_add(1));
        self.full_until = Some(until);
        Err(until - now)
    }

    /// Drops expired entries and keys left empty; the next prune waits until the
    /// table has doubled (amortised O(1) per key).
    fn prune(&mut self, now: u32) {
        self.failures.retain(|_, times| {
            times.retain(|at| live(*at, now));
            !times.is_empty()
        });
        let len = self.failures.len();
        if self.failures.capacity() > 4 * len.max(PRUNE_FLOOR) {
            self.failures.shrink_to(2 * len);
        }
        self.prune_at = len
            .saturating_mul(2)
            .clamp(PRUNE_FLOOR.min(self.max_keys), self.max_keys);
    }

    /// Takes one reservation made at `at` out of `budget`.
    fn take_back(&mut self, budget: &Budget, at: u32) {
        if let Some(times) = self.failures.get_mut(budget) {
            if let Some(i) = times.iter().position(|t| *t == at) {
                times.swap_remove(i);
            }
            if times.is_empty() {
                self.failures.remove(budget);
            }
        }
    }
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(MAX_TRACKED_KEYS, password_work_permits())
    }
}

impl LoginLimiter {
    /// A limiter tracking at most `max_keys` keys, with `permits` concurrent
    /// password hashes or verifications.
    pub fn new(max_keys: usize, permits: usize) -> Self {
        Self {
            attempts: Mutex::new(Attempts {
                failures: HashMap::new(),
                max_keys,
                prune_at: PRUNE_FLOOR.min(max_keys),
                full_until: None,
            }),
            origin: Instant::now(),
            passwords: PasswordWork::new(permits),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Attempts> {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn seconds(&self, now: Instant) -> u32 {
        let elapsed = now.saturating_duration_since(self.origin).as_secs();
        u32::try_from(elapsed).unwrap_or(u32::MAX)
    }

    /// Reserves one login attempt for `username` from `client` before its password
    /// is verified. `TooManyAttempts` when the (username, client) or the client's
    /// budget is used up; `Busy` when the client is new and the table is full of
    /// live entries.
    pub fn reserve(&self, client: IpAddr, username: &str) -> Result<LoginAttempt, AuthError> {
        self.reserve_at(client, username, Instant::now())
    }

    fn reserve_at(
        &self,
        client: IpAddr,
        username: &str,
        now: Instant,
    ) -> Result<LoginAttempt, AuthError> {
        let now = self.seconds(now);
        let attempt = LoginAttempt {
            client: Client::of(client),
            username: username.into(),
            at: now,
        };
        let budgets = attempt.budgets();
        let mut attempts = self.lock();
        let mut wait = 0;
        let mut new_keys = 0;
        for budget in &budgets {
            let Some(times) = attempts.failures.get_mut(budget) else {
                new_keys += 1;
                continue;
            };
            times.retain(|at| live(*at, now));
            if times.len() >= budget.limit() {
                let oldest = times.iter().min().copied().unwrap_or(now);
                wait = wait.max(oldest.saturating_add(WINDOW_SECS).saturating_sub(now));
            }
        }
        if wait > 0 {
            return Err(AuthError::TooManyAttempts {
                retry_after: Duration::from_secs(u64::from(wait)),
            });
        }
        attempts
            .make_room(new_keys, now)
            .map_err(|wait| AuthError::Busy {
                retry_after: Duration::from_secs(u64::from(wait)),
            })?;
        for budget in budgets {
            attempts.failures.entry(budget).or_default().push(now);
        }
        Ok(attempt)
    }

    /// Whether `username` at `client` may try now, without reserving anything:
    /// `TooManyAttempts` when either budget is used up. For checks cheap enough
    /// to run before a reservation (a token lookup), where a reservation held
    /// by every valid request would refuse legitimate ones in parallel; a
    /// failure is then recorded with [`Self::reserve`] and [`Self::failed`].
    pub fn check(&self, client: IpAddr, username: &str) -> Result<(), AuthError> {
        let now = self.seconds(Instant::now());
        let client = Client::of(client);
        let budgets = [
            Budget::Client(client),
            Budget::UserAt(client, username.into()),
        ];
        let attempts = self.lock();
        let mut wait = 0;
        for budget in &budgets {
            let Some(times) = attempts.failures.get(budget) else {
                continue;
            };
            let live_times: Vec<u32> = times.iter().copied().filter(|at| live(*at, now)).collect();
            if live_times.len() >= budget.limit() {
                let oldest = live_times.iter().min().copied().unwrap_or(now);
                wait = wait.max(oldest.saturating_add(WINDOW_SECS).saturating_sub(now));
            }
        }
        if wait > 0 {
            return Err(AuthError::TooManyAttempts {
                retry_after: Duration::from_secs(u64::from(wait)),
            });
        }
        Ok(())
    }

    /// The password was right: the (username, client) budget starts afresh, and
    /// the attempt no longer counts against the client's budget.
    pub fn succeeded(&self, attempt: LoginAttempt) {
        let [client, user_at] = attempt.budgets();
        let mut attempts = self.lock();
        attempts.failures.remove(&user_at);
        attempts.take_back(&client, attempt.at);
    }

    /// The password was wrong: the attempt stays counted for the window.
    pub fn failed(&self, attempt: LoginAttempt) {
        drop(attempt);
    }

    /// No password was verified (the server was busy or failed): the attempt no
    /// longer counts.
    pub fn refund(&self, attempt: LoginAttempt) {
        let mut attempts = self.lock();
        for budget in attempt.budgets() {
            attempts.take_back(&budget, attempt.at);
        }
    }

    /// How many keys the limiter tracks now (at most [`MAX_TRACKED_KEYS`]).
    pub fn tracked_keys(&self) -> usize {
        self.lock().failures.len()
    }

    /// The bound on password work: hashing at registration, verification at login.
    pub fn passwords(&self) -> &PasswordWork {
        &self.passwords
    }
}

/// Argon2id hashing and verification under a bound: at most `permits` at once, on
/// the blocking pool, each in working memory from a pool of at most `permits`
/// buffers that are allocated on first need and then reused, never freed. So the
/// allocator never sees argon2's 19 MiB buffers come and go: glibc kept freed ones
/// in its per-thread arenas, and a flood that verified only 4 passwords at a time
/// still left ~800 MB resident.
pub struct PasswordWork {
    permits: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    runs: AtomicU64,
}

impl PasswordWork {
    /// At most `permits` hashes or verifications at once.
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            memory: Arc::new(Mutex::new(Vec::new())),
            runs: AtomicU64::new(0),
        }
    }

    /// An argon2id hash (PHC string, argon2's default parameters) of `password`.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        self.run(move |memory| hash_password_in(&password, memory))
            .await?
            .map_err(AuthError::internal)
    }

    /// Whether `password` matches the stored PHC string. `None` (no such user, or
    /// no password) is never a match but costs the same as a wrong password.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: String,
    ) -> Result<bool, AuthError> {
        self.run(move |memory| verify_or_pretend(stored.as_deref(), &password, memory))
            .await
    }

    /// How many hashes and verifications have started (a refused request never
    /// adds one).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Runs `work` on the blocking pool with a permit and a memory buffer, both
    /// held until the work ends even if the request is dropped meanwhile. `Busy`
    /// when no permit frees up within [`PASSWORD_WORK_WAIT`].
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit =
            match tokio::time::timeout(PASSWORD_WORK_WAIT, self.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) | Err(_) => {
                    return Err(AuthError::Busy {
                        retry_after: Duration::from_secs(1),
                    });
                }
            };
        self.runs.fetch_add(1, Ordering::Relaxed);
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let taken = pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let mut memory = taken.unwrap_or_default();
            let result = work(&mut memory);
            // What argon2 leaves behind is derived from the password.
            memory.fill(Block::new());
            pool.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(memory);
            drop(permit);
            result
        })
        .await
        .map_err(AuthError::internal)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn at(seconds: u64) -> Instant {
        Instant::now() + Duration::from_secs(seconds)
    }

    fn too_many(result: Result<LoginAttempt, AuthError>) -> bool {
        matches!(result, Err(AuthError::TooManyAttempts { .. }))
    }

    #[test]
    fn concurrent_attempts_reserve_at_most_the_budget() {
        let limiter = LoginLimiter::default();
        let reserved = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..64 {
                s.spawn(|| {
                    for _ in 0..8 {
                        if let Ok(attempt) = limiter.reserve(ip("192.0.2.1"), "alice") {
                            reserved.fetch_add(1, Ordering::Relaxed);
                            limiter.failed(attempt);
                        }
                    }
                });
            }
        });
        assert_eq!(
            reserved.into_inner(),
            MAX_FAILURES_PER_USER_AT_ADDRESS,
            "512 attempts at once"
        );
    }

    #[test]
    fn budgets_are_per_user_at_address_and_per_address() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES_PER_USER_AT_ADDRESS {
            let attempt = limiter.reserve_at(ip("192.0.2.1"), "alice", now).unwrap();
            limiter.failed(attempt);
        }
        let refused = limiter.reserve_at(ip("192.0.2.1"), "alice", now);
        match refused {
            Err(AuthError::TooManyAttempts { retry_after }) => {
                assert_eq!(retry_after, FAILURE_WINDOW);
            }
            other => panic!("{other:?}"),
        }
        // Someone else's failures do not touch alice at her own address.
        let own = limiter
            .reserve_at(ip("198.51.100.7"), "alice", now)
            .unwrap();
        limiter.succeeded(own);
        // The address budget spans usernames: 5 used, 15 more, then none.
        for n in 0..MAX_FAILURES_PER_ADDRESS - MAX_FAILURES_PER_USER_AT_ADDRESS {
            let attempt = limiter
                .reserve_at(ip("192.0.2.1"), &format!("user{}", n / 5), now)
                .unwrap();
            limiter.failed(attempt);
        }
        assert!(too_many(limiter.reserve_at(ip("192.0.2.1"), "zoe", now)));
        // An IPv6 client is its /64; IPv4-mapped IPv6 is the IPv4 address.
        assert!(too_many(limiter.reserve_at(
            ip("::ffff:192.0.2.1"),
            "zoe",
            now
        )));
        for n in 0..MAX_FAILURES_PER_ADDRESS {
            let attempt = limiter
                .reserve_at(ip(&format!("2001:db8:1:2::{n:x}")), &format!("u{n}"), now)
                .unwrap();
            limiter.failed(attempt);
        }
        assert!(too_many(limiter.reserve_at(
            ip("2001:db8:1:2:ffff::1"),
            "v",
            now
        )));
        let other_prefix = limiter.reserve_at(ip("2001:db8:1:3::1"), "v", now);
        assert!(other_prefix.is_ok());
    }

    #[test]
    fn success_clears_the_user_budget_and_refunds_take_attempts_back() {
        let limiter = LoginLimiter::default();
        let client = ip("192.0.2.1");
        for _ in 0..MAX_FAILURES_PER_USER_AT_ADDRESS - 1 {
            let attempt = limiter.reserve(client, "alice").unwrap();
            limiter.failed(attempt);
        }
        let right = limiter.reserve(client, "alice").unwrap();
        limiter.succeeded(right);
        // Alice's budget is fresh; the address keeps her 4 failures.
        for _ in 0..MAX_FAILURES_PER_USER_AT_ADDRESS {
            let attempt = limiter.reserve(client, "alice").unwrap();
            limiter.refund(attempt);
        }
        assert_eq!(limiter.tracked_keys(), 1, "only the address's failures");
        for _ in 0..MAX_FAILURES_PER_ADDRESS - 4 {
            let attempt = limiter.reserve(client, "bob").unwrap();
            limiter.refund(attempt);
        }
    }

    #[test]
    fn check_reserves_nothing_and_refuses_a_spent_budget() {
        let limiter = LoginLimiter::default();
        let client = ip("192.0.2.1");
        for _ in 0..100 {
            limiter.check(client, "").unwrap();
        }
        assert_eq!(limiter.tracked_keys(), 0);
        for _ in 0..MAX_FAILURES_PER_USER_AT_ADDRESS {
            limiter.check(client, "").unwrap();
            let attempt = limiter.reserve(client, "").unwrap();
            limiter.failed(attempt);
        }
        assert!(matches!(
            limiter.check(client, ""),
            Err(AuthError::TooManyAttempts { .. })
        ));
        limiter.check(ip("192.0.2.2"), "").unwrap();
    }

    #[test]
    fn failures_expire_after_the_window() {
        let limiter = LoginLimiter::default();
        for _ in 0..MAX_FAILURES_PER_USER_AT_ADDRESS {
            let attempt = limiter.reserve_at(ip("192.0.2.1"), "alice", at(0)).unwrap();
            limiter.failed(attempt);
        }
        assert!(too_many(limiter.reserve_at(
            ip("192.0.2.1"),
            "alice",
            at(60)
        )));
        let window = FAILURE_WINDOW.as_secs();
        match limiter.reserve_at(ip("192.0.2.1"), "alice", at(window - 1)) {
            Err(AuthError::TooManyAttempts { retry_after }) => {
                assert!(retry_after <= Duration::from_secs(2), "{retry_after:?}");
            }
            other => panic!("{other:?}"),
        }
        let attempt = limiter.reserve_at(ip("192.0.2.1"), "alice", at(window + 1));
        limiter.succeeded(attempt.unwrap());
    }

    #[test]
    fn the_table_stays_under_its_cap_and_refuses_only_new_clients_when_full() {
        let limiter = LoginLimiter::default();
        let known = limiter
            .reserve_at(ip("198.51.100.1"), "alice", at(0))
            .unwrap();
        limiter.failed(known);
        // 60 000 clients failing at once want 120 000 keys.
        let mut busy = 0;
        for n in 0..60_000u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            match limiter.reserve_at(client, "root", at(10)) {
                Ok(attempt) => limiter.failed(attempt),
                Err(AuthError::Busy { retry_after }) => {
                    assert!(retry_after <= FAILURE_WINDOW, "{retry_after:?}");
                    busy += 1;
                }
                Err(other) => panic!("{other:?}"),
            }
            assert!(limiter.tracked_keys() <= MAX_TRACKED_KEYS);
        }
        assert!(busy > 0, "the cap was reached");
        assert!(limiter.tracked_keys() > MAX_TRACKED_KEYS - 2);
        // A client already known keeps its budget while the table is full.
        let again = limiter
            .reserve_at(ip("198.51.100.1"), "alice", at(20))
            .unwrap();
        limiter.failed(again);
        // Once the window has passed, the table empties and takes new clients.
        let later = FAILURE_WINDOW.as_secs() + 30;
        for n in 0..10_000u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n));
            let attempt = limiter.reserve_at(client, "root", at(later)).unwrap();
            limiter.failed(attempt);
        }
        assert!(limiter.tracked_keys() <= 20_000 + PRUNE_FLOOR);
    }

    #[test]
    fn a_small_table_is_bounded_too() {
        let limiter = LoginLimiter::new(8, 1);
        for n in 0..100u32 {
            let client = IpAddr::V4(Ipv4Addr::from(n));
            if let Ok(attempt) = limiter.reserve_at(client, "x", at(u64::from(n))) {
                limiter.failed(attempt);
            }
            assert!(limiter.tracked_keys() <= 8);
        }
    }

    #[test]
    fn hashes_are_standard_argon2id_phc_strings_computed_in_reused_memory() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let mut memory = Vec::new();
        let ours = hash_password_in("correct horse", &mut memory).unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // Hashes stored before (argon2's own API) verify as they did.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password_in(&theirs, "battery staple", &mut memory));
        assert!(!verify_password_in(&theirs, "battery stapler", &mut memory));
        assert!(verify_password_in(&ours, "correct horse", &mut memory));
        assert!(!verify_password_in("not a hash", "x", &mut memory));
        assert!(!verify_or_pretend(None, "correct horse", &mut memory));
        assert_eq!(
            memory.len(),
            Params::DEFAULT_M_COST as usize,
            "one buffer, reused"
        );
    }
}
