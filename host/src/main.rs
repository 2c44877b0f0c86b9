//! `ham`: the HAM server and its admin command line.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use futures::FutureExt as _;
use ham_host::cli::{self, Remote};
use ham_host::settings::{LogFormat, Settings};
use ham_host::{AppState, plugins};

/// mimalloc, not glibc's malloc: every request allocates and frees a few dozen
/// small objects on two worker threads, and glibc's arenas spent about 8 % of the
/// plugin route's time there (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ham",
    version,
    about = "HAM: habit tracker and fitness coach on a WebAssembly plugin host"
)]
struct Cli {
    /// Settings file (TOML); environment variables override it.
    #[arg(long, env = "HAM_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Manage plugins on a running server.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Apply pending database migrations, then exit (for a migrations Job when
    /// servers run with `HAM_MIGRATE_ON_START=false`).
    Migrate,
    /// Exit 0 if the server on `HAM_ADDR` answers `/healthz` (container health checks).
    Healthcheck,
    /// Print the settings `ham serve` would run with, as TOML (defaults, then the
    /// settings file, then `HAM_*` variables; secrets shown as `<redacted>`).
    Config,
    /// Write a consistent snapshot of the SQLite database (the server may run).
    Backup {
        /// The snapshot file to write (must not exist).
        path: PathBuf,
    },
    /// Put a snapshot in place of the SQLite database (stop the server first).
    Restore {
        /// A snapshot written by `ham backup`.
        path: PathBuf,
    },
    /// Serve a fake LLM provider (tests and demos); prints its base URL.
    #[command(hide = true)]
    FakeLlm {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: std::net::SocketAddr,
        /// `anthropic` or `openai`.
        #[arg(long, default_value = "anthropic")]
        provider: ham_host::llm::fake::FakeProvider,
        #[arg(
            long,
            default_value = "Hello from the fake model. Keep up the good work!"
        )]
        reply: String,
        /// Delay between streamed pieces.
        #[arg(long, default_value_t = 50)]
        delay_ms: u64,
    },
}

#[derive(Args, Default)]
struct ServeArgs {
    /// Install plugins from this directory whenever they change (development);
    /// overrides the `plugins_dir` setting (`HAM_PLUGINS_DIR`).
    #[arg(long)]
    watch: Option<PathBuf>,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Upload a plugin version and make it active (or roll it out with --canary,
    /// or run a rule set in shadow with --shadow).
    Install {
        #[arg(long)]
        manifest: PathBuf,
        /// The component; defaults to the manifest's `component`, relative to it.
        #[arg(long)]
        component: Option<PathBuf>,
        /// Roll it out: it serves this percentage (1-99) of requests and jobs
        /// beside the active version until the host promotes it or rolls it back
        /// by its errors.
        #[arg(long, value_name = "PERCENT")]
        canary: Option<u64>,
        /// With --canary: requests it serves before it is judged (default 50).
        #[arg(long, requires = "canary")]
        min_requests: Option<u64>,
        /// With --canary: the highest error rate it may have, 0-1 (default 0.05).
        #[arg(long, requires = "canary")]
        max_error_rate: Option<f64>,
        /// With --canary: the window errors are counted over, in seconds (default 60).
        #[arg(long, requires = "canary")]
        window_s: Option<u64>,
        /// Run a rule set of habit-rules in shadow: users keep the active
        /// version's answers, the new one evaluates a sample of the same inputs
        /// and the host counts how often they differ, until an admin promotes or
        /// aborts it.
        #[arg(long, conflicts_with = "canary")]
        shadow: bool,
        /// With --shadow: the share of evaluations compared, 1-100 (default 10).
        #[arg(long, requires = "shadow", value_name = "PERCENT")]
        sample_percent: Option<u64>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Promote the candidate of a rollout under way to every request.
    Promote {
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Abort a rollout under way: the active version serves everyone again.
    Abort {
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Approve a version waiting for approval (it asks for more than the active one).
    Approve {
        name: String,
        version: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List the active plugins.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Reactivate the version that was active before the current one.
    Rollback {
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// `new`, `check`, `test`: the author kit, without a server.
    #[command(flatten)]
    Kit(ham_host::plugin_kit::cli::KitCommand),
}

#[derive(Args)]
struct RemoteArgs {
    /// The server's base URL.
    #[arg(long, env = "HAM_URL", default_value = "http://127.0.0.1:3001")]
    url: String,
    /// The admin token.
    #[arg(long, env = "HAM_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl From<RemoteArgs> for Remote {
    fn from(args: RemoteArgs) -> Self {
        Remote {
            url: args.url,
            token: args.token,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(cli.config, args).await,
        Command::Plugin(PluginCommand::Install {
            manifest,
            component,
            canary,
            min_requests,
            max_error_rate,
            window_s,
            shadow,
            sample_percent,
            remote,
        }) => {
            let shadow = shadow.then(|| {
                let mut plan = serde_json::json!({ "shadow": true });
                if let Some(percent) = sample_percent {
                    plan["sample_percent"] = percent.into();
                }
                plan.to_string()
            });
            let rollout = canary.map(|percent| {
                let mut plan = serde_json::json!({ "canary_percent": percent });
                for (key, value) in [
                    ("min_requests", min_requests.map(serde_json::Value::from)),
                    (
                        "max_error_rate",
                        max_error_rate.map(serde_json::Value::from),
                    ),
                    ("window_s", window_s.map(serde_json::Value::from)),
                ] {
                    if let Some(value) = value {
                        plan[key] = value;
                    }
                }
                plan.to_string()
            });
            let rollout = rollout.or(shadow);
            cli::install(
                &remote.into(),
                &manifest,
                component.as_deref(),
                rollout.as_deref(),
            )
            .await
        }
        Command::Plugin(PluginCommand::Promote { name, remote }) => {
            cli::decide(&remote.into(), &name, true).await
        }
        Command::Plugin(PluginCommand::Abort { name, remote }) => {
            cli::decide(&remote.into(), &name, false).await
        }
        Command::Plugin(PluginCommand::Approve {
            name,
            version,
            remote,
        }) => cli::approve(&remote.into(), &name, &version).await,
        Command::Plugin(PluginCommand::List { remote }) => cli::list(&remote.into()).await,
        Command::Plugin(PluginCommand::Rollback { name, remote }) => {
            cli::rollback(&remote.into(), &name).await
        }
        Command::Plugin(PluginCommand::Kit(command)) => {
            ham_host::plugin_kit::cli::run(command).await
        }
        Command::Migrate => {
            let settings = Settings::load(cli.config.as_deref())?;
            let url = settings.database_url();
            let db = ham_host::store::Db::open(&url, ham_host::store::Migrations::Leave)
                .await
                .with_context(|| {
                    format!("opening database {}", ham_host::store::redact_url(&url))
                })?;
            let applied = db.migrate().await?;
            println!("{applied} migrations applied; the schema is current");
            Ok(())
        }
        Command::Config => {
            print!("{}", Settings::effective_toml(cli.config.as_deref())?);
            Ok(())
        }
        Command::Healthcheck => {
            let settings = Settings::load(cli.config.as_deref())?;
            cli::healthcheck(settings.addr).await
        }
        Command::Backup { path } => {
            let settings = Settings::load(cli.config.as_deref())?;
            ham_host::backup::backup(&settings.database_url(), &path).await?;
            println!("backup written to {} (integrity check ok)", path.display());
            Ok(())
        }
        Command::Restore { path } => {
            let settings = Settings::load(cli.config.as_deref())?;
            let target = ham_host::backup::restore(&settings.database_url(), &path).await?;
            println!(
                "restored {} to {} (the previous file is kept as {}.before-restore)",
                path.display(),
                target.display(),
                target.display()
            );
            Ok(())
        }
        Command::FakeLlm {
            addr,
            provider,
            reply,
            delay_ms,
        } => {
            use ham_host::llm::fake::{FakeLlm, Reply};
            let reply = Reply::text(&reply, std::time::Duration::from_millis(delay_ms));
            let fake = FakeLlm::start_on(addr, provider, reply).await?;
            println!("{}", fake.url());
            shutdown_signal().await;
            Ok(())
        }
    }
}

/// Logs to stdout, filtered by `log` and formatted by `log_format`.
fn init_logging(settings: &Settings) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The settings checked that the filter parses.
    let filter = ham_host::telemetry::log_filter(&settings.log);
    let format = match settings.log_format {
        // One JSON object per line, with the fields of the current span and its
        // parents (the request's method, route, status, plugin and version).
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
        // Colours only for a person at a terminal: escape codes in a log file or
        // a container's log are noise, and formatting them costs every request.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(format)
        .init();
}

async fn serve(config: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = Settings::load(config.as_deref())?;
    init_logging(&settings);
    if args.watch.is_some() {
        settings.plugins_dir = args.watch;
    }
    let addr = settings.addr;
    let metrics_addr = settings.metrics_addr;
    let watch = settings.plugins_dir.clone();
    let state = AppState::build(settings).await?;
    if let Some(dir) = watch {
        plugins::watch::spawn(state.registry.clone(), dir);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let metrics_listener = match metrics_addr {
        Some(metrics_addr) => Some(
            tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| {
                    format!(
                        "binding the metrics listener {metrics_addr} (metrics_addr, \
                         HAM_METRICS_ADDR; unset it to serve no metrics)"
                    )
                })?,
        ),
        None => None,
    };
    // One signal stops both listeners.
    let shutdown = shutdown_signal().boxed().shared();
    let metrics = match metrics_listener {
        Some(metrics_listener) => {
            tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listener serving /metrics");
            Some(tokio::spawn(ham_host::serve_metrics(
                metrics_listener,
                state.clone(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    tracing::info!(addr = %listener.local_addr()?, "ham serving");
    ham_host::serve(listener, state, shutdown).await?;
    if let Some(metrics) = metrics {
        metrics.await??;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
