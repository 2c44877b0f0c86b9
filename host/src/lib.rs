//! HAM's host: a habit tracker and fitness coach built as a WebAssembly plugin host.
//!
//! The host owns the network, the database, the secrets and the sandbox; the app's
//! logic runs in WASM components that are swapped while the server runs. This crate
//! is a library with a thin binary (`ham`): [`AppState::build`] wires the parts,
//! [`router`] is the whole HTTP surface, [`serve`] runs it until shutdown.

pub mod api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod export;
pub mod habits;
pub mod jobs;
pub mod llm;
pub mod plugins;
pub mod rules;
pub mod runtime;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod web;

use std::sync::Arc;

use anyhow::Context as _;

use crate::plugins::Registry;
use crate::runtime::Runtime;
use crate::settings::Settings;
use crate::store::Db;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    pub login_limiter: Arc<auth::LoginLimiter>,
    /// Habit stats from the rules plugin, cached.
    pub evaluator: Arc<rules::Evaluator>,
    /// The token checker, in `oidc` mode.
    pub oidc: Option<Arc<auth::oidc::Oidc>>,
}

impl AppState {
    /// Connects the database (running migrations), starts the runtime, loads the
    /// active plugin versions and installs bundled plugins that are new.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        let url = settings.database_url();
        let db = open_database(&url, settings.migrate_on_start)
            .await
            .with_context(|| format!("opening database {}", store::redact_url(&url)))?;
        let mut runtime = Runtime::new(&settings.data_dir, db.clone())?;
        runtime.job_max_attempts = settings.job_max_attempts;
        runtime.secret = store::sealed::HostSecret::load(
            settings.secret_key.as_ref().map(|s| s.expose()),
            &settings.data_dir,
        )
        .context("loading the secret key")?;
        let mut llm = llm::Llm::new(&settings.llm, db.clone())?;
        llm.metrics = runtime.metrics.clone();
        runtime.llm = Arc::new(llm);
        let runtime = Arc::new(runtime);
        let registry = Arc::new(
            Registry::load(
                runtime.clone(),
                db.clone(),
                Arc::new(settings.plugin_env_values()),
            )
            .await?,
        );
        let evaluator = Arc::new(rules::Evaluator::new(Arc::downgrade(&registry), db.clone()));
        // Set once, right here; a second set cannot happen.
        let _ = runtime.evaluator.set(evaluator.clone());
        plugins::bundled::install_bundled(&registry)
            .await
            .context("installing bundled plugins")?;
        let oidc = match (
            &settings.auth,
            &settings.oidc_issuer,
            &settings.oidc_audience,
        ) {
            (settings::AuthMode::Oidc, Some(issuer), Some(audience)) => {
                Some(Arc::new(auth::oidc::Oidc::new(
                    issuer.clone(),
                    audience.clone(),
                    settings.oidc_jwks_url.clone(),
                )?))
            }
            _ => None,
        };
        Ok(Self {
            oidc,
            settings: Arc::new(settings),
            db,
            runtime,
            registry,
            evaluator,
            login_limiter: Default::default(),
        })
    }
}

/// The host's HTTP surface.
pub fn router(state: AppState) -> axum::Router {
    api::router(state)
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut workers = jobs::spawn_workers(&state);
    workers.push(jobs::spawn_scheduler(&state));
    if state.db.backend() == store::Backend::Postgres {
        workers.push(plugins::replicas::spawn(
            state.registry.clone(),
            state.settings.database_url(),
        ));
    }
    // Handlers see the TCP peer (login rate limits; trusted proxies later).
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    // A job cut off here stays leased; another process (or the next start) runs it.
    for worker in workers {
        worker.abort();
    }
    served
}

/// Opens the database for `ham serve`. Without `migrate_on_start` the schema must
/// already be current; a rolling update may start this process a moment before
/// the migrations Job finishes, so it waits up to a minute before giving up.
async fn open_database(url: &str, migrate_on_start: bool) -> Result<Db, store::Error> {
    if migrate_on_start {
        return Db::open(url, store::Migrations::Apply).await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match Db::open(url, store::Migrations::Require).await {
            Err(store::Error::SchemaBehind(pending)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%pending, "waiting for `ham migrate` to apply migrations");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}
