//! HAM's host: a habit tracker and fitness coach built as a WebAssembly plugin host.
//!
//! The host owns the network, the database, the secrets and the sandbox; the app's
//! logic runs in WASM components that are swapped while the server runs. This crate
//! is a library with a thin binary (`ham`): [`AppState::build`] wires the parts,
//! [`router`] is the whole HTTP surface, [`serve`] runs it until shutdown, and
//! [`serve_metrics`] runs the operators' `GET /metrics` on a listener of its own.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod backup;
pub mod capabilities;
pub mod cli;
pub mod export;
pub mod habits;
pub mod jobs;
#[cfg(test)]
mod layering;
pub mod llm;
pub mod plugin_kit;
pub mod plugins;
pub mod reminders;
pub mod rules;
pub mod runtime;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod wit;

use std::sync::Arc;

use anyhow::Context as _;

use crate::plugins::Registry;
use crate::runtime::Runtime;
use crate::settings::Settings;
use crate::store::Db;

/// Everything a request handler needs: one `Arc`, so the clones axum makes for
/// every layer of every request cost one reference count, not one per service
/// (a profile of the plugin route had 12 % of its time in cloning and dropping
/// a state of a dozen `Arc`s). Fields read through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub runtime: Arc<Runtime>,
    pub registry: Arc<Registry>,
    pub login_limiter: Arc<auth::LoginLimiter>,
    /// Password changes, account deletion, the admin's user management.
    pub accounts: Arc<accounts::Accounts>,
    /// Personal API tokens (`Authorization: Bearer ham_…`).
    pub tokens: Arc<auth::tokens::ApiTokens>,
    /// Every operation on habits, entries and activities.
    pub tracker: Arc<habits::Tracker>,
    /// Habit stats from the rules plugin, cached.
    pub evaluator: Arc<rules::Evaluator>,
    /// Who a request comes from, in the mode `HAM_AUTH` chose at start.
    pub auth: Arc<dyn auth::Authenticator>,
    /// Delivery channels and done links.
    pub reminders: Arc<reminders::Reminders>,
    /// Forged done links per client address, counted as the login limiter
    /// counts wrong passwords (`api::reminders`).
    pub done_link_limiter: Arc<auth::LoginLimiter>,
}

/// What the identity extractors ([`auth::CurrentUser`], [`auth::MaybeUser`]) ask.
impl axum::extract::FromRef<AppState> for Arc<dyn auth::Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// What the identity extractors ask first: personal API tokens.
impl axum::extract::FromRef<AppState> for Arc<auth::tokens::ApiTokens> {
    fn from_ref(state: &AppState) -> Self {
        state.tokens.clone()
    }
}

/// What `GET /api/llm/status` ([`llm::status`]) asks.
impl axum::extract::FromRef<AppState> for Arc<llm::Llm> {
    fn from_ref(state: &AppState) -> Self {
        state.runtime.capabilities().llm().clone()
    }
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
        let metrics = Arc::new(telemetry::Metrics::default());
        let tracker = Arc::new(habits::Tracker::new(db.clone()));
        let mut llm = llm::Llm::new(&settings.llm, db.clone())?;
        llm.metrics = metrics.clone();
        let secret = store::sealed::HostSecret::load(
            settings.secret_key.as_ref().map(|s| s.expose()),
            &settings.data_dir,
        )
        .context("loading the secret key")?;
        let reminders = Arc::new(reminders::Reminders::new(
            db.clone(),
            tracker.clone(),
            secret.clone(),
        ));
        let capabilities = capabilities::Capabilities::new(capabilities::Parts {
            db: db.clone(),
            tracker: tracker.clone(),
            llm: Arc::new(llm),
            secret,
            reminders: reminders.clone(),
            public_url: settings.public_url.clone(),
            job_max_attempts: settings.job_max_attempts,
            metrics: metrics.clone(),
        });
        let runtime = Arc::new(Runtime::new(&settings.data_dir, capabilities, metrics)?);
        let registry = Arc::new(
            Registry::load(
                runtime.clone(),
                db.clone(),
                Arc::new(settings.plugin_env_values()),
            )
            .await?,
        );
        let evaluator = Arc::new(rules::Evaluator::new(
            Arc::downgrade(&registry),
            tracker.clone(),
        ));
        runtime.capabilities().serve_stats(evaluator.clone());
        plugins::bundled::install_bundled(&registry)
            .await
            .context("installing bundled plugins")?;
        let auth = auth::authenticator(&settings, &db).context("setting up HAM_AUTH")?;
        let login_limiter = Arc::new(auth::LoginLimiter::default());
        let accounts = Arc::new(accounts::Accounts::new(
            db.clone(),
            login_limiter.clone(),
            auth.password_login(),
        ));
        let settings = Arc::new(settings);
        let tokens = Arc::new(auth::tokens::ApiTokens::new(db.clone(), settings.clone()));
        Ok(Self(Arc::new(Services {
            auth,
            tokens,
            settings,
            db,
            runtime,
            registry,
            tracker,
            evaluator,
            login_limiter,
            accounts,
            reminders,
            done_link_limiter: Arc::new(auth::LoginLimiter::new(auth::login::MAX_TRACKED_KEYS, 1)),
        })))
    }
}

impl AppState {
    /// What the job workers draw on.
    pub fn job_workers(&self) -> jobs::Workers {
        jobs::Workers {
            db: self.db.clone(),
            registry: self.registry.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// The host's HTTP surface. `/metrics` is not on it: see [`metrics_router`].
pub fn router(state: AppState) -> axum::Router {
    api::router(state)
}

/// The metrics listener's surface (`metrics_addr`, `HAM_METRICS_ADDR`): `GET
/// /metrics` in Prometheus' text format, and a JSON 404 for anything else.
pub fn metrics_router(state: AppState) -> axum::Router {
    api::metrics_router(state)
}

/// Serves [`metrics_router`] on `listener` until `shutdown` resolves, with the
/// same connection limits as [`serve`] (header deadline, bounded head), and
/// nothing else: the job workers belong to [`serve`].
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let header_timeout = state.settings.header_timeout;
    serve_connections(
        listener,
        metrics_router(state),
        None,
        header_timeout,
        shutdown,
    )
    .await;
    Ok(())
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
///
/// Each connection is HTTP/1.1 with a header-read deadline
/// ([`Settings::header_timeout`], which also ends idle keep-alive connections)
/// and a bounded header buffer, so a client that trickles its headers holds a
/// connection for seconds, not forever; request bodies get their own deadline
/// in the router.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let job_workers = state.job_workers();
    let mut workers = jobs::spawn_workers(&job_workers);
    workers.push(jobs::spawn_scheduler(&job_workers));
    workers.push(jobs::spawn_pruner(&job_workers));
    workers.push(plugins::rollout::spawn(state.registry.clone()));
    if state.db.backend() == store::Backend::Postgres {
        workers.push(plugins::replicas::spawn(
            state.registry.clone(),
            state.settings.database_url(),
        ));
    }
    let header_timeout = state.settings.header_timeout;
    let plugins = Some(state.clone());
    serve_connections(listener, router(state), plugins, header_timeout, shutdown).await;
    // A job cut off here stays leased; another process (or the next start) runs it.
    for worker in workers {
        worker.abort();
    }
    Ok(())
}

/// Largest request head (request line and headers) a client may send.
const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener`; with `plugins`, requests under `/plugins/` skip
/// the router ([`api::serve_plugin_path`]).
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    plugins: Option<AppState>,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept:
                    // wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let plugins = plugins.clone();
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            // Handlers see the TCP peer (login limits, trusted proxies).
            let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                let request = request.map(axum::body::Body::new::<hyper::body::Incoming>);
                let plugin_path = plugins
                    .as_ref()
                    .filter(|_| request.uri().path().starts_with("/plugins/"))
                    .cloned();
                let app = app.clone();
                async move {
                    match plugin_path {
                        Some(state) => Ok(api::serve_plugin_path(state, request).await),
                        None => app.oneshot(request).await,
                    }
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_REQUEST_HEAD_BYTES)
                .writev(false);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
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
