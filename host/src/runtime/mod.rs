//! The component runtime: one wasmtime `Engine` (component model, async, pooling
//! allocator, epoch interruption), one `Linker` with everything the host provides,
//! and per plugin version a pre-linked `InstancePre`.
//!
//! Jobs and rule evaluations get a fresh `Store` and instance per invocation; the
//! pooling allocator makes that cost microseconds. HTTP requests may run on a warm
//! instance of the same plugin version that last served the same acting user
//! (`reuse`: grouped by user, never after an error, bounded by
//! `limits.reuse_requests` and `limits.reuse_idle_ms`), with every piece of
//! per-invocation state (capabilities with the acting user, deadline, fuel)
//! rebuilt for the request. Each store carries the version's limits: an epoch
//! deadline (`timeout_ms`, also enforced as a wall-clock timeout for time spent
//! waiting on the host) and a memory cap (`memory_mb`). A trap, panic, timeout or
//! memory blow-up fails that invocation only; the store is dropped and never reused.
//!
//! Compiled components are cached on disk under `<data>/cache/<engine hash>/<sha256>.cwasm`:
//! the engine hash covers the wasmtime version and the compilation settings, so a
//! restart (or a rollback) deserializes instead of recompiling.

mod reuse;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;
use tracing::Instrument as _;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolConcurrencyLimitError, PoolingAllocationConfig,
    ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::capabilities::config::Variables;
use crate::capabilities::outbound::OutboundPolicy;
use crate::capabilities::{Capabilities, CapabilitiesCtxView, CapabilitiesView, Contexts, Grants};
use crate::plugins::manifest::Manifest;
use crate::telemetry::Metrics;
use crate::wit::exports::ham::plugin::{job_handler, rules, scheduled_rules};

pub use reuse::{HostIdle, InstancePool, MAX_IDLE_INSTANCES};

/// How often the epoch advances; deadlines are measured in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// The largest `memory_mb` a manifest may ask for.
pub const MAX_MEMORY_MB: u32 = 1024;
/// Instances that may run at once, all plugins together; each plugin version
/// may use its manifest's `max_concurrency` of them.
pub const MAX_CONCURRENT_INSTANCES: u32 = 1000;
/// How long an invocation waits for one of its plugin's slots before it is `Busy`.
const SLOT_WAIT: Duration = Duration::from_secs(1);

const HTTP_EXPORT: &str = "wasi:http/incoming-handler@0.2.";
const RULES_EXPORT: &str = "ham:plugin/rules@0.1.";
const SCHEDULED_RULES_EXPORT: &str = "ham:plugin/scheduled-rules@0.1.";
const JOB_EXPORT: &str = "ham:plugin/job-handler@0.1.";
const LLM_IMPORT: &str = "ham:plugin/llm@0.1.";
const NOTIFICATIONS_IMPORT: &str = "ham:plugin/notifications@0.1.";

/// Counters a test or `/metrics` can read.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    /// Components compiled from wasm (cache misses).
    pub compilations: AtomicU64,
    /// Components loaded from the on-disk compiled cache.
    pub cache_hits: AtomicU64,
}

/// Why a component cannot be loaded. Each is the uploader's to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly binary (it must start with \\0asm)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component; build with `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error(
        "the component exports none of wasi:http/incoming-handler@0.2, ham:plugin/scheduled-rules@0.1, ham:plugin/rules@0.1, ham:plugin/job-handler@0.1 (it exports: {0})"
    )]
    NoKnownExport(String),
    #[error("the component imports ham:plugin/llm but the manifest does not say `llm = true`")]
    LlmNotGranted,
    #[error(
        "the component imports ham:plugin/notifications but the manifest does not say `notifications = true`"
    )]
    NotificationsNotGranted,
    #[error("the component imports what the host does not provide: {0}")]
    UnsatisfiedImport(String),
    #[error("the component's exports do not have the contract's shape: {0}")]
    ExportMismatch(String),
    #[error("allowed_outbound_hosts: {0}")]
    Outbound(String),
    #[error("internal error while loading: {0}")]
    Internal(String),
}

/// Why one invocation failed. The host keeps serving either way.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("exceeded its memory limit of {0} MiB")]
    MemoryLimit(u32),
    #[error("ran out of fuel (its budget of {0} instructions)")]
    OutOfFuel(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned no response")]
    NoResponse,
    #[error("answered with an error: {0}")]
    GuestError(String),
    #[error("is at its limit of concurrent instances")]
    Busy,
    #[error("does not serve HTTP")]
    NoHttpExport,
    #[error("does not handle jobs")]
    NoJobHandler,
    #[error("does not export rules")]
    NoRules,
    #[error("failed in the host: {0}")]
    Internal(String),
}

impl InvokeError {
    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            InvokeError::Timeout(_) => "timeout",
            InvokeError::MemoryLimit(_) => "memory",
            InvokeError::OutOfFuel(_) => "fuel",
            InvokeError::Trap(_) => "trap",
            InvokeError::Busy => "busy",
            InvokeError::NoResponse | InvokeError::GuestError(_) => "failed",
            InvokeError::NoHttpExport | InvokeError::NoJobHandler | InvokeError::NoRules => {
                "no_export"
            }
            InvokeError::Internal(_) => "internal",
        }
    }
}

/// The memory cap a store enforces; raised as an error, not a plain trap, so it can
/// be told apart from a guest that traps for its own reasons.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {0} MiB exceeded")]
struct MemoryLimitExceeded(u32);

/// What a plugin version exports, as found at load time.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Exports {
    pub http: bool,
    /// The first contract of a rule set.
    pub rules: bool,
    /// The rule set contract that knows weekday schedules.
    pub scheduled_rules: bool,
    pub job_handler: bool,
}

impl Exports {
    /// Whether it judges habits, through either rules contract.
    pub fn judges_habits(&self) -> bool {
        self.rules || self.scheduled_rules
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.http {
            names.push("wasi:http/incoming-handler");
        }
        if self.scheduled_rules {
            names.push("ham:plugin/scheduled-rules");
        }
        if self.rules {
            names.push("ham:plugin/rules");
        }
        if self.job_handler {
            names.push("ham:plugin/job-handler");
        }
        names
    }
}

/// Where a rule set's `evaluate` is, in the contract it was built against.
#[derive(Clone)]
enum RulesIndices {
    Scheduled(scheduled_rules::GuestIndices),
    /// `rules`, the first contract: no schedules.
    First(rules::GuestIndices),
}

/// A `scheduled-rules` call in the first contract's terms, and its answer back.
/// The records are the same field for field, less the schedule.
mod first_contract {
    use super::{rules, scheduled_rules as scheduled};

    pub fn input(i: &scheduled::EvaluationInput) -> rules::EvaluationInput {
        rules::EvaluationInput {
            habit: i.habit.clone(),
            entries: i
                .entries
                .iter()
                .map(|e| rules::DayEntry {
                    day: e.day,
                    value: e.value,
                })
                .collect(),
            today: i.today,
            from: i.from,
            to: i.to,
        }
    }

    pub fn evaluation(e: rules::Evaluation) -> scheduled::Evaluation {
        let streak = |s: rules::Streak| scheduled::Streak {
            start: s.start,
            end: s.end,
            length: s.length,
        };
        scheduled::Evaluation {
            scores: e.scores,
            today_score: e.today_score,
            current_streak: e.current_streak.map(streak),
            best_streaks: e.best_streaks.into_iter().map(streak).collect(),
            window: scheduled::WindowProgress {
                done: e.window.done,
                target: e.window.target,
                days: e.window.days,
            },
        }
    }
}

/// A plugin version ready to run: manifest, resolved variables and policies, and the
/// pre-linked component.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub version_id: i64,
    pub sha256: String,
    pub uploaded_at: i64,
    /// What the version may use, shared by its invocations' capabilities.
    pub grants: Arc<Grants>,
    pub exports: Exports,
    /// The component's imports, by name.
    pub imports: Vec<String>,
    instance_pre: InstancePre<Invocation>,
    proxy_pre: Option<ProxyPre<Invocation>>,
    job_indices: Option<job_handler::GuestIndices>,
    rules_indices: Option<RulesIndices>,
    /// This version's share of the instance pool (`limits.max_concurrency`).
    slots: Arc<tokio::sync::Semaphore>,
    /// Its warm HTTP instances, by acting user (see `reuse`).
    pub pool: Arc<InstancePool>,
    version_label: String,
    /// `/plugins/{name}`: where its HTTP handler is mounted, the route label of
    /// its requests and their `X-Forwarded-Prefix`, made once at load.
    pub mount: http::HeaderValue,
    /// Set once a response header the host drops (`Set-Cookie`, …) was logged, so
    /// the log says it once per version, not once per request.
    pub dropped_header_logged: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("sha256", &self.sha256)
            .field("exports", &self.exports)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub fn version_label(&self) -> String {
        self.version_label.clone()
    }

    /// `/plugins/{name}`.
    pub fn mount_path(&self) -> &str {
        // Made from a `String` at load, so it is text.
        self.mount.to_str().unwrap_or_default()
    }

    /// The version as written (`0.2.0`), formatted once at load.
    pub fn version_str(&self) -> &str {
        &self.version_label
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.manifest.limits.timeout_ms)
    }

    /// One of this version's instance slots, held for as long as the instance
    /// lives; `Busy` when none frees up within [`SLOT_WAIT`].
    async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, InvokeError> {
        // The common case takes a free slot without arming a timer.
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(SLOT_WAIT, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(InvokeError::Busy),
        }
    }
}

/// The state of one invocation: a `Store`'s data. Never shared between users or
/// versions; an HTTP instance's store serves further requests of the same user
/// only with its capabilities, deadline and fuel rebuilt for each (`reuse`).
pub struct Invocation {
    /// When the current invocation's epoch deadline interrupts the guest.
    deadline: Instant,
    capabilities: Contexts,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: InvocationLimits,
}

impl WasiView for Invocation {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Invocation {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: self.capabilities.outbound(),
        }
    }
}

impl CapabilitiesView for Invocation {
    fn capabilities(&mut self) -> CapabilitiesCtxView<'_> {
        CapabilitiesCtxView {
            ctx: &mut self.capabilities,
            table: &mut self.table,
        }
    }
}

struct InvocationLimits {
    memory_mb: u32,
}

impl ResourceLimiter for InvocationLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > (self.memory_mb as usize) << 20 {
            return Err(wasmtime::Error::new(MemoryLimitExceeded(self.memory_mb)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The engine, the linker and the compiled-component cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Invocation>,
    cache_dir: PathBuf,
    capabilities: Capabilities,
    pub stats: RuntimeStats,
    /// Idle HTTP instances kept for reuse, all versions together.
    pub idle: Arc<HostIdle>,
    /// Invocation and error counters, exposed at `/metrics`; shared with the HTTP
    /// layer, the jobs and the LLM client.
    pub metrics: Arc<Metrics>,
}

impl Runtime {
    /// Builds the engine and the linker with every capability, and starts the
    /// epoch ticker (a thread that ends when the engine is dropped). Compiled
    /// components are cached under `data_dir`.
    pub fn new(
        data_dir: &Path,
        capabilities: Capabilities,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Fuel gives pure plugins (rule sets) a deterministic instruction budget;
        // stores of plugins without `limits.fuel` get an unlimited tank.
        config.consume_fuel(true);
        let mut pool = PoolingAllocationConfig::default();
        // Room for every running instance plus every idle one kept for reuse, so
        // idle instances never make a request `Busy`.
        let instances = MAX_CONCURRENT_INSTANCES + MAX_IDLE_INSTANCES;
        pool.total_component_instances(instances)
            .total_core_instances(instances)
            .total_memories(instances)
            .total_tables(instances)
            .total_stacks(instances)
            .max_memory_size((MAX_MEMORY_MB as usize) << 20);
        // Reuse instance slots in place instead of handing their pages back to the
        // kernel after every invocation: unmapping pages costs TLB shootdowns across
        // cores, which dominated the plugin route under load (75% kernel time). With
        // PAGEMAP_SCAN (Linux 6.7+) only the pages an instance dirtied are reset.
        // Measured on /plugins/hello/ with wrk: 12k req/s before, ~40k after
        // (docs/benchmarks.md).
        pool.pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(128 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut linker = Linker::<Invocation>::new(&engine);
        // Guests built for wasm32-wasip2 import wasi:cli, wasi:io and friends even
        // when unused; the WasiCtx behind them is empty (no env, dirs or sockets).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        Capabilities::add_to_linker(&mut linker)?;

        let cache_dir = data_dir.join("cache").join(engine_hash(&engine));
        std::fs::create_dir_all(&cache_dir)?;
        spawn_epoch_ticker(&engine);
        let idle = Arc::new(HostIdle::default());
        reuse::spawn_sweeper(&idle);
        Ok(Self {
            engine,
            linker,
            cache_dir,
            capabilities,
            stats: RuntimeStats::default(),
            idle,
            metrics,
        })
    }

    /// The capabilities plugins are given.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component for a manifest: compile (or take from the cache), check its
    /// exports and imports against the contract and the manifest, and pre-link it.
    pub async fn prepare(
        &self,
        manifest: Manifest,
        bytes: &[u8],
        sha256: &str,
        version_id: i64,
        uploaded_at: i64,
        plugin_env: &std::collections::BTreeMap<String, String>,
    ) -> Result<LoadedPlugin, LoadError> {
        check_header(bytes)?;
        let component = self.component(bytes, sha256).await?;
        let ty = component.component_type();
        let export_names: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let has = |prefix: &str| export_names.iter().any(|n| n.starts_with(prefix));
        let exports = Exports {
            http: has(HTTP_EXPORT),
            rules: has(RULES_EXPORT),
            scheduled_rules: has(SCHEDULED_RULES_EXPORT),
            job_handler: has(JOB_EXPORT),
        };
        if !(exports.http || exports.judges_habits() || exports.job_handler) {
            let found = if export_names.is_empty() {
                "nothing".to_string()
            } else {
                export_names.join(", ")
            };
            return Err(LoadError::NoKnownExport(found));
        }
        if imports.iter().any(|n| n.starts_with(LLM_IMPORT)) && !manifest.llm {
            return Err(LoadError::LlmNotGranted);
        }
        if imports.iter().any(|n| n.starts_with(NOTIFICATIONS_IMPORT)) && !manifest.notifications {
            return Err(LoadError::NotificationsNotGranted);
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::UnsatisfiedImport(format!("{e:#}")))?;
        let proxy_pre = match exports.http {
            true => Some(
                ProxyPre::new(instance_pre.clone())
                    .map_err(|e| LoadError::ExportMismatch(format!("{e:#}")))?,
            ),
            false => None,
        };
        let job_indices = match exports.job_handler {
            true => Some(
                job_handler::GuestIndices::new(&instance_pre)
                    .map_err(|e| LoadError::ExportMismatch(format!("{e:#}")))?,
            ),
            false => None,
        };
        // The newer contract when a component exports both.
        let rules_indices = match (exports.scheduled_rules, exports.rules) {
            (true, _) => Some(RulesIndices::Scheduled(
                scheduled_rules::GuestIndices::new(&instance_pre)
                    .map_err(|e| LoadError::ExportMismatch(format!("{e:#}")))?,
            )),
            (false, true) => Some(RulesIndices::First(
                rules::GuestIndices::new(&instance_pre)
                    .map_err(|e| LoadError::ExportMismatch(format!("{e:#}")))?,
            )),
            (false, false) => None,
        };
        let manifest_concurrency = manifest.limits.max_concurrency;
        let variables = Variables::resolve(&manifest.name, &manifest.variables, plugin_env);
        let rules = manifest
            .outbound_rules(&variables)
            .map_err(LoadError::Outbound)?;
        let grants = Arc::new(Grants {
            plugin: manifest.name.clone(),
            version: manifest.version.to_string(),
            outbound: OutboundPolicy::new(&manifest.name, rules),
            storage: manifest.limits.storage_quota(),
            variables,
        });
        // Only HTTP requests reuse instances.
        let pool = InstancePool::new(
            &self.idle,
            match exports.http {
                true => manifest.limits.reuse_requests,
                false => 1,
            },
            Duration::from_millis(manifest.limits.reuse_idle_ms),
            manifest_concurrency,
        );
        // A manifest's name is lowercase letters, digits and dashes.
        let mount =
            http::HeaderValue::from_str(&format!("/plugins/{}", manifest.name)).map_err(|_| {
                LoadError::Internal(format!("`{}` is not a header value", manifest.name))
            })?;
        Ok(LoadedPlugin {
            mount,
            version_label: manifest.version.to_string(),
            manifest,
            version_id,
            sha256: sha256.to_string(),
            uploaded_at,
            grants,
            exports,
            imports,
            instance_pre,
            proxy_pre,
            job_indices,
            rules_indices,
            slots: Arc::new(tokio::sync::Semaphore::new(manifest_concurrency as usize)),
            pool,
            dropped_header_logged: Default::default(),
        })
    }

    async fn component(&self, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        let cached = self.cache_dir.join(format!("{sha256}.cwasm"));
        if cached.exists() {
            // SAFETY: the file is one this host wrote with `Component::serialize` into
            // its own data dir, under a directory keyed by the engine's compatibility
            // hash; wasmtime checks the header again and we fall back to compiling.
            #[allow(
                unsafe_code,
                reason = "deserializing the host's own compiled-component cache"
            )]
            let loaded = unsafe { Component::deserialize_file(&self.engine, &cached) };
            match loaded {
                Ok(component) => {
                    self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(component);
                }
                Err(e) => {
                    tracing::warn!(path = %cached.display(), error = %e, "discarding unusable compiled cache entry");
                    let _ = std::fs::remove_file(&cached);
                }
            }
        }
        let engine = self.engine.clone();
        let wasm = bytes.to_vec();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, &wasm))
            .await
            .map_err(|e| LoadError::Internal(e.to_string()))?
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        self.stats.compilations.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = write_cache(&component, &cached) {
            tracing::warn!(path = %cached.display(), error = %e, "could not write the compiled cache");
        }
        Ok(component)
    }

    fn new_store(
        &self,
        plugin: &LoadedPlugin,
        export: &'static str,
        user: Option<String>,
    ) -> Store<Invocation> {
        let invocation = Invocation {
            deadline: Instant::now() + plugin.timeout(),
            capabilities: self.capabilities.contexts(&plugin.grants, export, user),
            limits: InvocationLimits {
                memory_mb: plugin.manifest.limits.memory_mb,
            },
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, invocation);
        store.limiter(|inv| &mut inv.limits);
        // Yield to the executor every tick so a busy guest does not hog a worker
        // thread, and interrupt it at its invocation's deadline.
        store.epoch_deadline_callback(|store| {
            Ok(if Instant::now() >= store.data().deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        Self::arm(&mut store, plugin);
        store
    }

    /// Fuel and the epoch deadline for one invocation (`deadline` is set by the caller).
    fn arm(store: &mut Store<Invocation>, plugin: &LoadedPlugin) {
        let fuel = plugin.manifest.limits.fuel.unwrap_or(u64::MAX);
        if let Err(e) = store.set_fuel(fuel) {
            tracing::error!(error = %e, "could not set a store's fuel");
        }
        store.set_epoch_deadline(1);
    }

    /// Makes a warm HTTP instance's store act for this request: fresh
    /// capability contexts (the `Caller` with this request's user), a new
    /// deadline, a full tank of fuel.
    fn rebind(&self, store: &mut Store<Invocation>, plugin: &LoadedPlugin, user: Option<String>) {
        let invocation = store.data_mut();
        invocation.capabilities = self.capabilities.contexts(&plugin.grants, "http", user);
        invocation.deadline = Instant::now() + plugin.timeout();
        Self::arm(store, plugin);
    }

    /// Serves one HTTP request, on a warm instance of the plugin version that last
    /// served the same acting user when one is idle (`reuse`), else on a fresh one.
    /// The response body streams from the guest as it writes; the invocation's
    /// deadline covers the whole exchange.
    pub async fn serve_http<B>(
        &self,
        plugin: Arc<LoadedPlugin>,
        user: Option<String>,
        request: http::Request<B>,
    ) -> Result<http::Response<HyperOutgoingBody>, InvokeError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = Instant::now();
        let request_span = tracing::Span::current();
        let result = if request_span.has_field("plugin") {
            // Served for an HTTP request: its span names the plugin and version.
            request_span.record("plugin", plugin.manifest.name.as_str());
            request_span.record("version", plugin.version_str());
            self.serve_http_inner(&plugin, user, request).await
        } else {
            // No request span (a `/plugins/` path below `debug`, the author
            // kit): the invocation's events name the plugin and version
            // themselves, and a span would cost every request.
            self.serve_http_inner(&plugin, user, request)
                .instrument(tracing::debug_span!(
                    "plugin",
                    plugin = %plugin.manifest.name,
                    version = plugin.version_str(),
                    export = "http"
                ))
                .await
        };
        self.record(&plugin, "http", started, result.as_ref().err());
        result
    }

    async fn serve_http_inner<B>(
        &self,
        plugin: &Arc<LoadedPlugin>,
        user: Option<String>,
        request: http::Request<B>,
    ) -> Result<http::Response<HyperOutgoingBody>, InvokeError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Some(pre) = plugin.proxy_pre.as_ref() else {
            return Err(InvokeError::NoHttpExport);
        };
        let slot = plugin.slot().await?;
        let (mut store, warm, served) = match plugin.pool.take(&user) {
            Some(warm) => {
                let mut store = warm.store;
                self.rebind(&mut store, plugin, user.clone());
                (store, Some(warm.proxy), warm.served)
            }
            None => (self.new_store(plugin, "http", user.clone()), None, 0),
        };
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        // Whether the guest answered with a response (not an error): only then
        // may its instance serve again.
        let answered = Arc::new(AtomicBool::new(false));
        let mut http = store.data_mut().http();
        let req = http
            .new_incoming_request(
                wasmtime_wasi_http::p2::bindings::http::types::Scheme::Http,
                request,
            )
            .map_err(|e| InvokeError::Internal(format!("{e:#}")))?;
        let out = http
            .new_response_outparam_from_callback({
                let answered = answered.clone();
                move |response| {
                    answered.store(response.is_ok(), Ordering::Relaxed);
                    let _ = tx.send(response);
                }
            })
            .map_err(|e| InvokeError::Internal(format!("{e:#}")))?;
        let pre = match warm {
            Some(_) => None,
            None => Some(pre.clone()),
        };
        let plugin = plugin.clone();
        let run = async move {
            let limits = &plugin.manifest.limits;
            let call = async {
                let proxy = match (warm, pre) {
                    (Some(proxy), _) => proxy,
                    (None, Some(pre)) => pre.instantiate_async(&mut store).await?,
                    (None, None) => return Err(wasmtime::Error::msg("no instance to run")),
                };
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await?;
                Ok(proxy)
            };
            let result =
                match tokio::time::timeout(Duration::from_millis(limits.timeout_ms), call).await {
                    Ok(Ok(proxy)) => {
                        // Clean: it answered, returned, and left no resource behind.
                        if answered.load(Ordering::Relaxed) && store.data().table.is_empty() {
                            plugin
                                .pool
                                .put(user, reuse::Warm::new(store, proxy, served + 1));
                        }
                        Ok(())
                    }
                    Ok(Err(e)) => Err(classify(e, limits)),
                    Err(_) => Err(InvokeError::Timeout(limits.timeout_ms)),
                };
            if let Err(e) = &result {
                tracing::warn!(
                    plugin = %plugin.manifest.name,
                    version = plugin.version_str(),
                    error = %e,
                    "plugin invocation failed"
                );
            }
            // The slot frees when the instance is done, response body included.
            drop(slot);
            result
        };
        // The guest runs in this task until it answers; only one still running
        // after that (a streaming body) gets a task of its own. If this request
        // is dropped meanwhile (the client left), the guest still runs to its end.
        let mut run = Detached(Some(Box::pin(run)), tracing::Span::current());
        let first = std::future::poll_fn(|cx| {
            if let Some(running) = run.0.as_mut()
                && let Poll::Ready(result) = running.as_mut().poll(cx)
            {
                run.0 = None;
                return Poll::Ready(Err(result));
            }
            Pin::new(&mut rx).poll(cx).map(Ok)
        })
        .await;
        match first {
            // The guest is done: it answered before, or never will.
            Err(result) => match rx.try_recv() {
                Ok(Ok(response)) => Ok(whole(response).await),
                Ok(Err(code)) => Err(InvokeError::GuestError(format!("{code:?}"))),
                Err(_) => Err(result.err().unwrap_or(InvokeError::NoResponse)),
            },
            // It answered and runs on: writing its body, or finishing up.
            Ok(Ok(answer)) => {
                run.detach();
                answer.map_err(|code| InvokeError::GuestError(format!("{code:?}")))
            }
            // It dropped its response-outparam: its end says why.
            Ok(Err(_)) => match run.0.take() {
                Some(running) => match running.await {
                    Err(e) => Err(e),
                    Ok(()) => Err(InvokeError::NoResponse),
                },
                None => Err(InvokeError::NoResponse),
            },
        }
    }

    /// Runs one job with a fresh instance of the plugin's `job-handler`.
    pub async fn run_job(
        &self,
        plugin: Arc<LoadedPlugin>,
        user: Option<String>,
        job: &job_handler::Job,
    ) -> Result<Result<(), job_handler::JobError>, InvokeError> {
        let Some(indices) = plugin.job_indices.clone() else {
            return Err(InvokeError::NoJobHandler);
        };
        let counted = plugin.clone();
        let limits = plugin.manifest.limits.clone();
        let pre = plugin.instance_pre.clone();
        let started = Instant::now();
        let _slot = match plugin.slot().await {
            Ok(slot) => slot,
            Err(e) => {
                self.record(&counted, "job-handler", started, Some(&e));
                return Err(e);
            }
        };
        let mut store = self.new_store(&plugin, "job-handler", user);
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            let guest = indices.load(&mut store, &instance)?;
            guest.call_handle(&mut store, job).await
        };
        let run = tokio::time::timeout(Duration::from_millis(limits.timeout_ms), run)
            .instrument(invocation_span(&counted, "job-handler"));
        let result = match run.await {
            Ok(result) => result.map_err(|e| classify(e, &limits)),
            Err(_) => Err(InvokeError::Timeout(limits.timeout_ms)),
        };
        self.record(&counted, "job-handler", started, result.as_ref().err());
        result
    }
    /// Evaluates habits with a fresh instance of the plugin's rules export: one
    /// call for many habits. A rule set built against the first contract (`rules`)
    /// gets each input without its schedule (a weekday habit as its count of
    /// weekdays in 7 days, which `habit.frequency` already says). The plugin's
    /// answers are returned as given; checking them is the caller's business.
    pub async fn evaluate_rules(
        &self,
        plugin: Arc<LoadedPlugin>,
        inputs: &[scheduled_rules::EvaluationInput],
    ) -> Result<Vec<Result<scheduled_rules::Evaluation, String>>, InvokeError> {
        let Some(indices) = plugin.rules_indices.clone() else {
            return Err(InvokeError::NoRules);
        };
        let counted = plugin.clone();
        let limits = plugin.manifest.limits.clone();
        let pre = plugin.instance_pre.clone();
        let started = Instant::now();
        let _slot = match plugin.slot().await {
            Ok(slot) => slot,
            Err(e) => {
                self.record(&counted, "rules", started, Some(&e));
                return Err(e);
            }
        };
        let mut store = self.new_store(&plugin, "rules", None);
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            match indices {
                RulesIndices::Scheduled(indices) => {
                    let guest = indices.load(&mut store, &instance)?;
                    guest.call_evaluate(&mut store, inputs).await
                }
                RulesIndices::First(indices) => {
                    let guest = indices.load(&mut store, &instance)?;
                    let inputs: Vec<_> = inputs.iter().map(first_contract::input).collect();
                    let answers = guest.call_evaluate(&mut store, &inputs).await?;
                    Ok(answers
                        .into_iter()
                        .map(|a| a.map(first_contract::evaluation))
                        .collect())
                }
            }
        };
        let run = tokio::time::timeout(Duration::from_millis(limits.timeout_ms), run)
            .instrument(invocation_span(&counted, "rules"));
        let result = match run.await {
            Ok(result) => result.map_err(|e| classify(e, &limits)),
            Err(_) => Err(InvokeError::Timeout(limits.timeout_ms)),
        };
        self.record(&counted, "rules", started, result.as_ref().err());
        result
    }

    /// Counts an invocation and its latency, and its failure if it failed.
    fn record(
        &self,
        plugin: &LoadedPlugin,
        export: &'static str,
        started: Instant,
        error: Option<&InvokeError>,
    ) {
        let labels = [
            ("plugin", plugin.manifest.name.as_str()),
            ("version", plugin.version_str()),
            ("export", export),
        ];
        self.metrics.count_and_observe(
            ("ham_plugin_invocations_total", &labels),
            ("ham_plugin_invocation_duration_seconds", &labels),
            started.elapsed().as_secs_f64(),
        );
        if let Some(e) = error {
            let [plugin, version, export] = labels;
            self.metrics.inc(
                "ham_plugin_errors_total",
                &[plugin, version, export, ("kind", e.kind())],
            );
        }
    }
}

type Running = Pin<Box<dyn Future<Output = Result<(), InvokeError>> + Send>>;

/// A guest's HTTP invocation driven by the request's own task; whatever is left
/// of it when this is dropped (the guest writing its body after answering, or a
/// client that went away) runs on in a task of its own, so it always ends as it
/// would have: its slot freed, its instance kept or dropped. In the request's
/// task it runs in the request's span; detached, in that span still.
struct Detached(Option<Running>, tracing::Span);

impl Detached {
    fn detach(&mut self) {
        if let Some(running) = self.0.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(running.instrument(self.1.clone()));
                }
                // No runtime (shutting down): the invocation ends here.
                Err(_) => drop(running),
            }
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The answer of a guest that has returned: its body is all written (or was
/// dropped), so it goes out in one piece with its length, not as a chunked
/// stream polled frame by frame. Trailers, rare, keep the collected body; a body
/// the guest aborted still fails on the wire as it would have.
async fn whole(response: http::Response<HyperOutgoingBody>) -> http::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt as _;
    let (parts, body) = response.into_parts();
    // Nothing can still write to it, so this finishes without waiting.
    let body = match body.collect().await {
        Ok(collected) if collected.trailers().is_none() => {
            http_body_util::Full::new(collected.to_bytes())
                .map_err(|never| match never {})
                .boxed_unsync()
        }
        Ok(collected) => collected.map_err(|never| match never {}).boxed_unsync(),
        Err(e) => http_body_util::StreamBody::new(futures::stream::iter([Err(e)])).boxed_unsync(),
    };
    http::Response::from_parts(parts, body)
}

/// The span of one plugin invocation: the plugin, its version and the export.
fn invocation_span(plugin: &LoadedPlugin, export: &'static str) -> tracing::Span {
    tracing::info_span!(
        "plugin",
        plugin = %plugin.manifest.name,
        version = %plugin.manifest.version,
        export
    )
}

fn classify(e: wasmtime::Error, limits: &crate::plugins::manifest::Limits) -> InvokeError {
    if e.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return InvokeError::MemoryLimit(limits.memory_mb);
    }
    if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return InvokeError::Busy;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => InvokeError::Timeout(limits.timeout_ms),
        Some(Trap::OutOfFuel) => InvokeError::OutOfFuel(limits.fuel.unwrap_or(u64::MAX)),
        Some(trap) => InvokeError::Trap(trap.to_string()),
        None => InvokeError::Trap(format!("{e:#}")),
    }
}

/// Tells a component from a core module or a file that is not wasm at all, so the
/// uploader gets a precise error instead of a parser's.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Err(LoadError::CoreModule),
        _ => Ok(()),
    }
}

fn write_cache(component: &Component, path: &Path) -> anyhow::Result<()> {
    let bytes = component.serialize()?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn engine_hash(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("ham-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the epoch ticker; plugin deadlines will not fire");
    }
}

impl RuntimeStats {
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }
}
