//! `ham plugin new|check|test`: the author kit on the command line. These run
//! on the author's machine, without a server; `main.rs` flattens
//! [`KitCommand`] into `ham plugin`.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::harness::{Harness, HttpRequest, JobOutcome, JobRequest, KitError, RulesFixture};
use super::scaffold::{self, Kind};

#[derive(clap::Subcommand)]
pub enum KitCommand {
    /// Write a new plugin crate in ./NAME: Cargo.toml, src/lib.rs, plugin.toml,
    /// HAM's WIT files and a README (build, check, test, install).
    New {
        /// The plugin's name: lower-case letters, digits and '-', starting with
        /// a letter.
        name: String,
        /// What it does.
        #[arg(long, value_enum)]
        kind: Kind,
    },
    /// Check a plugin offline as the server checks an upload (manifest,
    /// OpenAPI document, component exports and imports); exits non-zero with
    /// the server's answer when it would refuse it.
    Check {
        /// The plugin's manifest (`plugin.toml`).
        #[arg(long)]
        manifest: PathBuf,
        /// The component; defaults to the manifest's `component`, relative to it.
        #[arg(long)]
        component: Option<PathBuf>,
    },
    /// Run a plugin without a server (in-memory storage) and print what it
    /// answered: an HTTP request, a rules evaluation, or a job. Exits non-zero
    /// when it fails.
    Test(TestArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("invocation").required(true).args(["request", "rules", "job"])))]
pub struct TestArgs {
    /// The plugin's manifest (`plugin.toml`).
    #[arg(long)]
    manifest: PathBuf,
    /// The component; defaults to the manifest's `component`, relative to it.
    #[arg(long)]
    component: Option<PathBuf>,
    /// An HTTP request, `METHOD /path`: `/plugins/NAME/…` or a route the
    /// manifest claims.
    #[arg(long, value_name = "METHOD /PATH")]
    request: Option<String>,
    /// The request body; `@FILE` reads a file.
    #[arg(long, requires = "request")]
    body: Option<String>,
    /// A request header, `NAME: VALUE` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE", requires = "request")]
    headers: Vec<String>,
    /// The user the request or job acts for, as if signed in (created on the fly).
    #[arg(long)]
    user: Option<String>,
    /// A rules evaluation: a JSON fixture (one habit or an array of them) with
    /// `habit`, `entries`, `today`, `from`, `to`.
    #[arg(long, value_name = "FIXTURE")]
    rules: Option<PathBuf>,
    /// A job of this kind.
    #[arg(long, value_name = "KIND")]
    job: Option<String>,
    /// The job's payload; `@FILE` reads a file.
    #[arg(long, requires = "job")]
    payload: Option<String>,
}

/// Runs a kit command; an error is the exit status 1 with its message.
pub async fn run(command: KitCommand) -> anyhow::Result<()> {
    match command {
        KitCommand::New { name, kind } => new(&name, kind),
        KitCommand::Check {
            manifest,
            component,
        } => {
            init_logs();
            check(&manifest, component.as_deref()).await
        }
        KitCommand::Test(args) => {
            init_logs();
            test(args).await
        }
    }
}

fn new(name: &str, kind: Kind) -> anyhow::Result<()> {
    // Relative, so messages name `./NAME` as the author typed it.
    scaffold::write(Path::new("."), name, kind)?;
    let shown = Path::new(".").join(name);
    println!("wrote a {} plugin in {}", kind.as_str(), shown.display());
    let manifest = shown.join("plugin.toml");
    println!("next:");
    println!(
        "  cd {} && cargo build --release --target wasm32-wasip2",
        shown.display()
    );
    println!("  ham plugin check --manifest {}", manifest.display());
    let try_it = match kind {
        Kind::Http => format!("--request 'GET /plugins/{name}/'"),
        Kind::Rules => format!("--rules {}", shown.join("fixtures/week.json").display()),
        Kind::Job => "--job tick".to_string(),
    };
    println!(
        "  ham plugin test --manifest {} {try_it}",
        manifest.display()
    );
    println!("  ham plugin install --manifest {}", manifest.display());
    Ok(())
}

async fn check(manifest: &Path, component: Option<&Path>) -> anyhow::Result<()> {
    let harness = Harness::load_with(manifest, component).await?;
    let plugin = harness.plugin();
    let m = &plugin.manifest;
    println!(
        "ok: {} {} loads as the server loads an upload",
        m.name, m.version
    );
    println!("  sha256    {}", plugin.sha256);
    println!("  exports   {}", plugin.exports.names().join(", "));
    let mut imports: Vec<&str> = plugin
        .imports
        .iter()
        .map(String::as_str)
        .filter(|i| {
            (i.starts_with("ham:") && !i.starts_with("ham:plugin/types@"))
                || i.starts_with("wasi:http/outgoing")
        })
        .collect();
    imports.sort_unstable();
    if !imports.is_empty() {
        println!("  uses      {}", imports.join(", "));
    }
    for route in &m.routes {
        println!(
            "  route     {} {} (auth {})",
            route.methods.join(","),
            route.path,
            match route.auth {
                crate::plugins::manifest::RouteAuth::None => "none",
                crate::plugins::manifest::RouteAuth::User => "user",
            }
        );
    }
    for entry in &m.schedule {
        println!(
            "  schedule  {} {}{}",
            entry.cron,
            entry.job,
            if entry.per_user { " (per user)" } else { "" }
        );
    }
    if !m.schedule.is_empty() && !plugin.exports.job_handler {
        println!(
            "  warning   it schedules jobs but exports no ham:plugin/job-handler: they will fail"
        );
    }
    println!(
        "  not checked here: routes other plugins of the server claim, and whether it needs approval"
    );
    Ok(())
}

async fn test(args: TestArgs) -> anyhow::Result<()> {
    let harness = Harness::load_with(&args.manifest, args.component.as_deref()).await?;
    if let Some(line) = &args.request {
        let mut request = HttpRequest::parse(line)?;
        if let Some(body) = &args.body {
            request = request.body(text_or_file(body)?);
        }
        for header in &args.headers {
            let Some((name, value)) = header.split_once(':') else {
                bail!("the header `{header}` is not `NAME: VALUE`");
            };
            request = request.header(name.trim(), value.trim());
        }
        if let Some(user) = &args.user {
            request = request.user(user);
        }
        let response = harness.http(request).await?;
        let reason = http::StatusCode::from_u16(response.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        println!("HTTP {} {reason}", response.status);
        for (name, value) in &response.headers {
            println!("{name}: {value}");
        }
        println!();
        let body = response.text();
        print!("{body}");
        if !body.is_empty() && !body.ends_with('\n') {
            println!();
        }
        if response.status >= 500 {
            bail!("the plugin failed: {}", response.status);
        }
    } else if let Some(path) = &args.rules {
        let fixtures = RulesFixture::read(path)?;
        let stats = harness.evaluate(&fixtures).await?;
        let shown = match stats.as_slice() {
            [one] => serde_json::to_string_pretty(one)?,
            many => serde_json::to_string_pretty(many)?,
        };
        println!("{shown}");
    } else if let Some(kind) = &args.job {
        let mut job = JobRequest::new(kind);
        if let Some(payload) = &args.payload {
            job = job.payload(text_or_file(payload)?);
        }
        if let Some(user) = &args.user {
            job = job.user(user);
        }
        let outcome = harness.job(job).await?;
        println!("{outcome}");
        if outcome != JobOutcome::Done {
            bail!("the job did not succeed");
        }
    }
    Ok(())
}

/// The text itself, or with `@FILE` the file's bytes.
fn text_or_file(value: &str) -> Result<Vec<u8>, KitError> {
    match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read(path).map_err(|e| KitError::Input(format!("reading {path}: {e}")))
        }
        None => Ok(value.as_bytes().to_vec()),
    }
}

/// Plugin logs (and the host's warnings) to stderr; `HAM_LOG` filters them.
fn init_logs() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,plugin=trace"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
