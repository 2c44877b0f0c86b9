//! What the host gives plugins: one module per `ham:plugin` interface, plus the
//! outbound side of `wasi:http`.
//!
//! Every capability has the same shape, after wasmtime's `WasiView` and Spin's
//! factors, so a newcomer who has read one has read them all:
//!
//! - its shared state, built once at start ([`storage::StorageHost`], …), which
//!   [`Capabilities`] holds;
//! - its per-invocation context ([`storage::StorageCtx`], …): the shared state
//!   plus the [`Caller`] (plugin version and acting user), built by
//!   [`Capabilities::contexts`] for one store and dropped with it;
//! - the host side of its WIT interface, implemented on that context;
//! - its configuration from the manifest, resolved once per plugin version into
//!   [`Grants`].
//!
//! The runtime's store data holds a [`Contexts`] and hands it out through the one
//! view trait [`CapabilitiesView`]; [`Capabilities::add_to_linker`] links each
//! interface to its context. The runtime knows nothing else of what is inside.

pub mod config;
pub mod habits;
pub mod jobs;
pub mod llm;
pub mod log;
pub mod notifications;
pub mod outbound;
pub mod storage;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};

use crate::llm::Llm;
use crate::reminders::Reminders;
use crate::store::Db;
use crate::store::kv::Quota;
use crate::store::sealed::HostSecret;
use crate::telemetry::Metrics;
use crate::wit::ham::plugin::types::{self, Error as GuestError};

/// What one plugin version may use, resolved once from its manifest when it
/// loads: its identity, its variables, its outbound policy and its storage
/// quota. Every invocation of the version shares it.
#[derive(Debug)]
pub struct Grants {
    pub plugin: String,
    pub version: String,
    pub variables: config::Variables,
    pub outbound: outbound::OutboundPolicy,
    pub storage: Quota,
}

/// Who is calling: a plugin version, and the user its invocation acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub grants: Arc<Grants>,
    pub user: Option<Arc<str>>,
}

impl Caller {
    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.grants.plugin
    }

    /// The user this invocation acts for; `access-denied` for none.
    pub fn acting_user(&self) -> Result<&str, GuestError> {
        self.user
            .as_deref()
            .ok_or_else(|| GuestError::AccessDenied("this invocation acts for no user".into()))
    }

    /// A host failure behind a WIT call: everything to the log, `internal` to the guest.
    pub fn host_failed(&self, e: impl std::fmt::Display) -> GuestError {
        tracing::error!(
            plugin = %self.grants.plugin,
            version = %self.grants.version,
            error = %e,
            "host call failed"
        );
        GuestError::Internal
    }
}

/// The shared state of every capability, built once at start.
pub struct Capabilities {
    storage: Arc<storage::StorageHost>,
    habits: Arc<habits::HabitsHost>,
    jobs: Arc<jobs::JobsHost>,
    llm: Arc<Llm>,
    notifications: Arc<notifications::NotificationsHost>,
    metrics: Arc<Metrics>,
}

/// What [`Capabilities::new`] draws on.
pub struct Parts {
    pub db: Db,
    pub tracker: Arc<crate::habits::Tracker>,
    pub llm: Arc<Llm>,
    pub secret: HostSecret,
    /// Channels and done links, for `notifications`.
    pub reminders: Arc<Reminders>,
    /// `HAM_PUBLIC_URL`: the base of the links reminders carry.
    pub public_url: String,
    /// Attempts each job a plugin queues gets.
    pub job_max_attempts: i64,
    pub metrics: Arc<Metrics>,
}

/// The capabilities' contexts of one invocation. Never shared, never reused.
pub struct Contexts {
    storage: storage::StorageCtx,
    habits: habits::HabitsCtx,
    jobs: jobs::JobsCtx,
    llm: llm::LlmCtx,
    notifications: notifications::NotificationsCtx,
    config: config::ConfigCtx,
    log: log::LogCtx,
    outbound: outbound::OutboundHooks,
}

impl Contexts {
    /// The `wasi:http` hooks that send this invocation's outgoing requests.
    pub fn outbound(&mut self) -> &mut outbound::OutboundHooks {
        &mut self.outbound
    }
}

/// How the store data of an invocation hands out its capabilities' contexts,
/// with the resource table their resources live in.
pub trait CapabilitiesView: Send {
    fn capabilities(&mut self) -> CapabilitiesCtxView<'_>;
}

pub struct CapabilitiesCtxView<'a> {
    pub ctx: &'a mut Contexts,
    pub table: &'a mut ResourceTable,
}

impl types::Host for Contexts {}

/// `T`'s contexts, for the linker's getters.
fn ctx<T: CapabilitiesView>(t: &mut T) -> &mut Contexts {
    t.capabilities().ctx
}

impl Capabilities {
    pub fn new(parts: Parts) -> Self {
        Self {
            storage: Arc::new(storage::StorageHost {
                db: parts.db.clone(),
                secret: parts.secret.clone(),
            }),
            habits: Arc::new(habits::HabitsHost::new(parts.tracker)),
            notifications: Arc::new(notifications::NotificationsHost {
                db: parts.db.clone(),
                reminders: parts.reminders,
                public_url: parts.public_url,
            }),
            jobs: Arc::new(jobs::JobsHost {
                db: parts.db,
                secret: parts.secret,
                max_attempts: parts.job_max_attempts,
                metrics: parts.metrics.clone(),
            }),
            llm: parts.llm,
            metrics: parts.metrics,
        }
    }

    /// The capabilities of a host with default settings over `db`: no language
    /// model, a random secret, five attempts per job, the default public URL.
    /// For tools and tests that run plugins without the whole app.
    pub fn with_defaults(db: Db) -> anyhow::Result<Self> {
        let tracker = Arc::new(crate::habits::Tracker::new(db.clone()));
        let secret = HostSecret::random()?;
        Ok(Self::new(Parts {
            reminders: Arc::new(Reminders::new(db.clone(), tracker.clone(), secret.clone())),
            public_url: crate::settings::Settings::default().public_url,
            tracker,
            llm: Arc::new(Llm::new(&Default::default(), db.clone())?),
            secret,
            job_max_attempts: 5,
            metrics: Arc::default(),
            db,
        }))
    }

    /// The language model behind `ham:plugin/llm`.
    pub fn llm(&self) -> &Arc<Llm> {
        &self.llm
    }

    /// Where `habits.list-stats` gets its answers: the rules evaluator, which
    /// can only exist once the plugins it runs are loaded. Set once at start.
    pub fn serve_stats(&self, source: Arc<dyn habits::StatsSource>) {
        self.habits.serve_stats(source);
    }

    /// Links every `ham:plugin` interface to its context in `T`.
    pub fn add_to_linker<T: CapabilitiesView + 'static>(
        linker: &mut Linker<T>,
    ) -> wasmtime::Result<()> {
        types::add_to_linker::<T, HasSelf<Contexts>>(linker, ctx)?;
        storage::add_to_linker(linker)?;
        config::add_to_linker(linker)?;
        log::add_to_linker(linker)?;
        habits::add_to_linker(linker)?;
        jobs::add_to_linker(linker)?;
        llm::add_to_linker(linker)?;
        notifications::add_to_linker(linker)?;
        Ok(())
    }

    /// The contexts of one invocation of `grants`' plugin version, acting for
    /// `user`, through its export `export` (a metrics label).
    pub fn contexts(
        &self,
        grants: &Arc<Grants>,
        export: &'static str,
        user: Option<String>,
    ) -> Contexts {
        let caller = Caller {
            grants: grants.clone(),
            user: user.map(Arc::from),
        };
        Contexts {
            storage: storage::StorageCtx {
                caller: caller.clone(),
                host: self.storage.clone(),
            },
            habits: habits::HabitsCtx {
                caller: caller.clone(),
                host: self.habits.clone(),
            },
            jobs: jobs::JobsCtx {
                caller: caller.clone(),
                host: self.jobs.clone(),
            },
            llm: llm::LlmCtx {
                caller: caller.clone(),
                llm: self.llm.clone(),
            },
            notifications: notifications::NotificationsCtx {
                caller: caller.clone(),
                host: self.notifications.clone(),
            },
            config: config::ConfigCtx {
                grants: grants.clone(),
            },
            log: log::LogCtx {
                grants: grants.clone(),
            },
            outbound: outbound::OutboundHooks {
                grants: grants.clone(),
                export,
                metrics: self.metrics.clone(),
            },
        }
    }
}
