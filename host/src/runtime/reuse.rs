//! Warm instances of one plugin version's HTTP handler, kept between requests so
//! a request can skip instantiation.
//!
//! Reuse is safe by construction, because an instance is only ever handed back
//! to requests that could have seen everything it holds anyway:
//!
//! - **same acting user**: idle instances are grouped by the user their last
//!   request acted for (anonymous requests form a group of their own), and a
//!   request only takes one from its own group. A second user's first request
//!   always gets a fresh instance.
//! - **same plugin version**: the pool belongs to one [`super::LoadedPlugin`];
//!   a swap, a rollback or a rollout's candidate is another version with another
//!   pool, so versions never share an instance.
//! - **only after a clean request**: an instance goes back only when its
//!   `handle` returned without a trap, timeout, fuel or memory failure, it set
//!   an `Ok` response, and it left nothing in its resource table (no request,
//!   body, stream or capability resource survives into the next request). Any
//!   error drops it.
//! - **bounded**: at most `limits.reuse_requests` requests per instance
//!   (`1`: never reused), at most `limits.reuse_idle_ms` idle (a sweeper drops
//!   expired instances, releasing their memory, and a request never takes an
//!   expired one), at most `limits.max_concurrency` idle per version and
//!   [`MAX_IDLE_INSTANCES`] in the whole host. The engine's pool has room for
//!   those idle instances on top of the running ones, so idle instances never
//!   make a request `Busy`.
//!
//! The per-invocation state of the capabilities (the `Caller` with the acting
//! user, storage, config, …) is rebuilt for every request, as are its deadline
//! and fuel; only the guest's own memory carries over, within one user's group.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::Proxy;

use super::Invocation;

/// Idle instances the whole host may keep, all plugins together. The engine's
/// pool is sized for [`super::MAX_CONCURRENT_INSTANCES`] running plus these.
pub const MAX_IDLE_INSTANCES: u32 = 128;
/// How often the sweeper looks for instances idle past their version's
/// `reuse_idle_ms`.
const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// An instance between two requests.
pub(super) struct Warm {
    pub store: Store<Invocation>,
    pub proxy: Proxy,
    /// Requests it has served.
    pub served: u32,
    idle_since: Instant,
}

impl Warm {
    pub fn new(store: Store<Invocation>, proxy: Proxy, served: u32) -> Self {
        Self {
            store,
            proxy,
            served,
            idle_since: Instant::now(),
        }
    }
}

/// The user group an instance belongs to: the acting user's id, `None` for
/// anonymous requests.
type Group = Option<String>;

/// The idle instances of one plugin version, by user group.
pub struct InstancePool {
    /// Fx, not SipHash: the keys are user ids the host made, not a client's.
    groups: Mutex<HashMap<Group, Vec<Warm>, rustc_hash::FxBuildHasher>>,
    /// Idle instances in this pool.
    idle: AtomicUsize,
    max_requests: u32,
    max_idle_time: Duration,
    max_idle: usize,
    host: Arc<HostIdle>,
}

/// What the pools of one host share: the count of idle instances against
/// [`MAX_IDLE_INSTANCES`], and the pools for the sweeper.
#[derive(Default)]
pub struct HostIdle {
    idle: AtomicUsize,
    pools: Mutex<Vec<Weak<InstancePool>>>,
    /// Instances started fresh because no warm one of the group was idle, and
    /// requests served by a warm instance: for tests and `/metrics`.
    pub fresh: AtomicUsize,
    pub reused: AtomicUsize,
}

impl HostIdle {
    /// Idle instances in the whole host.
    pub fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    /// Drops every instance idle past its version's `reuse_idle_ms`, and forgets
    /// pools whose version is gone.
    pub fn sweep(&self) {
        let pools: Vec<Arc<InstancePool>> = {
            let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
            pools.retain(|p| p.strong_count() > 0);
            pools.iter().filter_map(Weak::upgrade).collect()
        };
        for pool in pools {
            pool.drop_expired();
        }
    }
}

impl InstancePool {
    /// A pool for a version with these limits; `max_requests <= 1` keeps nothing.
    pub fn new(
        host: &Arc<HostIdle>,
        max_requests: u32,
        max_idle_time: Duration,
        max_idle: u32,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            groups: Mutex::default(),
            idle: AtomicUsize::new(0),
            max_requests,
            max_idle_time,
            max_idle: max_idle as usize,
            host: host.clone(),
        });
        if max_requests > 1 {
            host.pools
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::downgrade(&pool));
        }
        pool
    }

    /// Idle instances in this pool.
    pub fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    /// A warm instance that last served `user`'s group, if one is idle and not
    /// expired. The caller rebinds its per-request state before using it.
    pub(super) fn take(&self, user: &Group) -> Option<Warm> {
        if self.max_requests <= 1 || self.idle.load(Ordering::Relaxed) == 0 {
            self.host.fresh.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let now = Instant::now();
        let (warm, expired) = {
            let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(idle) = groups.get_mut(user) else {
                drop(groups);
                self.host.fresh.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            // The most recently used first: its pages are the warmest. Anything
            // older than it that expired is dropped outside the lock.
            let warm = idle.pop();
            let warm = warm.filter(|w| now.duration_since(w.idle_since) < self.max_idle_time);
            let expired = match warm {
                Some(_) => Vec::new(),
                None => std::mem::take(idle),
            };
            if idle.is_empty() {
                groups.remove(user);
            }
            (warm, expired)
        };
        let gone = expired.len() + usize::from(warm.is_some());
        self.forget(gone);
        match &warm {
            Some(_) => self.host.reused.fetch_add(1, Ordering::Relaxed),
            None => self.host.fresh.fetch_add(1, Ordering::Relaxed),
        };
        drop(expired);
        warm
    }

    /// Keeps an instance that just served `user` cleanly, unless it has served
    /// its `reuse_requests` or the version's or the host's idle bound is full
    /// (then it is dropped, which frees its slot at once).
    pub(super) fn put(&self, user: Group, warm: Warm) {
        if warm.served >= self.max_requests || self.idle.load(Ordering::Relaxed) >= self.max_idle {
            return;
        }
        // Reserve a place in the host's bound before keeping it.
        if self.host.idle.fetch_add(1, Ordering::Relaxed) >= MAX_IDLE_INSTANCES as usize {
            self.host.idle.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.idle.fetch_add(1, Ordering::Relaxed);
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(user)
            .or_default()
            .push(warm);
    }

    fn forget(&self, n: usize) {
        if n > 0 {
            self.idle.fetch_sub(n, Ordering::Relaxed);
            self.host.idle.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Drops the instances idle past `reuse_idle_ms`.
    fn drop_expired(&self) {
        if self.idle.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            groups.retain(|_, idle| {
                // Oldest first: a group's instances were put in the order they
                // went idle.
                let keep_from = idle
                    .iter()
                    .position(|w| now.duration_since(w.idle_since) < self.max_idle_time)
                    .unwrap_or(idle.len());
                expired.extend(idle.drain(..keep_from));
                !idle.is_empty()
            });
        }
        self.forget(expired.len());
        drop(expired);
    }
}

impl Drop for InstancePool {
    fn drop(&mut self) {
        let n = self.idle.load(Ordering::Relaxed);
        self.host.idle.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Starts the sweeper: a thread that drops expired idle instances every
/// [`SWEEP_EVERY`], and ends when the host is gone.
pub fn spawn_sweeper(host: &Arc<HostIdle>) {
    let weak = Arc::downgrade(host);
    let spawned = std::thread::Builder::new()
        .name("ham-idle-sweeper".into())
        .spawn(move || {
            while let Some(host) = weak.upgrade() {
                host.sweep();
                drop(host);
                std::thread::sleep(SWEEP_EVERY);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the idle instance sweeper; idle instances are released only when reused");
    }
}
