//! Shared test harness: real servers on loopback, real databases, real components.
//!
//! Every story of `tests/all/` runs in one test process, so what is global here
//! (the tracing subscriber, the built guests, the HTTP client, the turns of the
//! machine-loading tests) is set up once, for all of them.
#![allow(
    dead_code,
    reason = "the benches and the fake_strava example include this harness too, each using a part"
)]

pub mod fake_strava;
pub mod llm;
pub mod log;
pub mod machine;
pub mod process;
pub mod session;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ham_host::AppState;
use ham_host::settings::{Secret, Settings};

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Builds the test guests and examples for wasm32-wasip2 once per test process
/// (cargo's own lock serializes processes building at once) and returns their
/// directory.
pub fn guests_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let target = root.join("target").join("wasm");
        let mut cmd =
            std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&root)
            .args([
                "build",
                "--profile",
                "plugin",
                "--target",
                "wasm32-wasip2",
                "--target-dir",
            ])
            .arg(&target);
        for package in [
            "guest-probe",
            "guest-no-known-export",
            "guest-unprovided-import",
            "guest-trivial-job",
            "guest-bad-rules",
            "wasi-proxy",
            "rules-strict-streaks",
        ] {
            cmd.args(["-p", package]);
        }
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            if key.starts_with("CARGO_") && key != "CARGO_HOME"
                || key == "RUSTFLAGS"
                || key.starts_with("RUSTC_")
            {
                cmd.env_remove(key);
            }
        }
        let output = cmd.output().expect("running cargo to build test guests");
        assert!(
            output.status.success(),
            "building test guests failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-wasip2").join("plugin")
    })
}

/// The bytes of a built guest (`probe`, `no-known-export`, …) or example (`wasi-proxy`).
pub fn guest(name: &str) -> Vec<u8> {
    let file = match name {
        "wasi-proxy" | "rules-strict-streaks" => format!("{}.wasm", name.replace('-', "_")),
        other => format!("guest_{}.wasm", other.replace('-', "_")),
    };
    std::fs::read(guests_dir().join(&file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

/// The same component with a custom section appended: identical behaviour, a new
/// sha256 (a "rebuild").
pub fn rebuilt(component: &[u8], tag: &str) -> Vec<u8> {
    let name = b"ham-test";
    let payload_len = 1 + name.len() + tag.len();
    let mut out = component.to_vec();
    out.push(0); // custom section id
    out.push(u8::try_from(payload_len).unwrap()); // short payloads: one LEB128 byte
    out.push(u8::try_from(name.len()).unwrap());
    out.extend_from_slice(name);
    out.extend_from_slice(tag.as_bytes());
    out
}

/// A manifest for the probe guest.
pub fn probe_manifest(name: &str, version: &str, label: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\n{extra}\n[variables]\nlabel = {{ default = \"{label}\" }}\n"
    )
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of a test's own: a SQLite file in a temp dir, or a fresh PostgreSQL
/// database (dropped afterwards).
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
}

fn pg_base_url() -> String {
    std::env::var("HAM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl TestDb {
    /// None when PostgreSQL is unreachable outside CI (the test then says so and
    /// passes on SQLite alone); under `CI=true` an unreachable server fails the test.
    pub async fn new(backend: Backend, dir: &Path) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self {
                url: format!("sqlite://{}", dir.join("ham.db").display()),
                pg_name: None,
            }),
            Backend::Postgres => {
                sqlx::any::install_default_drivers();
                let base = pg_base_url();
                let admin = match sqlx::AnyPool::connect(&base).await {
                    Ok(pool) => pool,
                    Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                        panic!("PostgreSQL at {base} is unreachable under CI=true: {e}")
                    }
                    Err(e) => {
                        eprintln!("skipping the PostgreSQL half: {base} is unreachable ({e})");
                        return None;
                    }
                };
                let name = format!("ham_test_{}_{}", std::process::id(), unique());
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let url = match base.rfind('/') {
                    Some(i) => format!("{}/{name}", &base[..i]),
                    None => panic!("HAM_TEST_DATABASE_URL has no database name"),
                };
                Some(Self {
                    url,
                    pg_name: Some(name),
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let base = pg_base_url();
        // Drop runs outside async; use a runtime of its own on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = sqlx::AnyPool::connect(&base).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

/// A running `ham` on 127.0.0.1 with its own data dir and database, and its
/// metrics listener on another port.
pub struct TestServer {
    pub url: String,
    /// The metrics listener (`metrics_addr`): `GET /metrics` is served there only.
    pub metrics_url: String,
    pub state: AppState,
    pub data_dir: PathBuf,
    settings: Settings,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    metrics_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The database the builder made (shared with servers started
    /// [`TestServerBuilder::sharing_database_of`] this one); dropped with the last,
    /// after the server (fields drop in order).
    db: Option<Arc<TestDb>>,
    /// The data dir the builder made; removed when the server is dropped.
    dir: Option<tempfile::TempDir>,
}

/// A test server about to start: a temp data dir and a database of its own on one
/// backend, the test [`settings`], then the test's own changes to them, in order.
///
/// ```ignore
/// let Some(server) = TestServer::builder(backend)
///     .with(|s| s.open_registration = true)
///     .start()
///     .await
/// else {
///     return; // PostgreSQL is unreachable outside CI
/// };
/// ```
#[must_use = "a builder starts nothing until `start` is awaited"]
pub struct TestServerBuilder<'a> {
    backend: Backend,
    shared_db: Option<Arc<TestDb>>,
    tweaks: Vec<SettingsTweak<'a>>,
}

/// One change a test makes to its server's settings.
type SettingsTweak<'a> = Box<dyn FnOnce(&mut Settings) + 'a>;

impl<'a> TestServerBuilder<'a> {
    /// Changes the settings before the server starts; `s.data_dir` is already the
    /// server's own.
    pub fn with(mut self, tweak: impl FnOnce(&mut Settings) + 'a) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// A second host of the same deployment: the database of `other`, a data dir
    /// of its own.
    pub fn sharing_database_of(mut self, other: &TestServer) -> Self {
        self.shared_db = Some(other.db.clone().expect("a server the builder started"));
        self
    }

    /// Makes the data dir and the database, and starts the server. None when the
    /// database is PostgreSQL and it is unreachable outside CI (as [`TestDb::new`]:
    /// the test then passes on SQLite alone); under `CI=true` an unreachable
    /// PostgreSQL fails the test.
    pub async fn start(self) -> Option<TestServer> {
        let dir = tempfile::tempdir().unwrap();
        let db = match self.shared_db {
            Some(db) => db,
            None => Arc::new(TestDb::new(self.backend, dir.path()).await?),
        };
        let mut s = settings(dir.path(), &db);
        for tweak in self.tweaks {
            tweak(&mut s);
        }
        let mut server = TestServer::start(s).await;
        server.db = Some(db);
        server.dir = Some(dir);
        Some(server)
    }
}

/// Settings for a test server in `dir` on `db`.
pub fn settings(dir: &Path, db: &TestDb) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        database_url: Some(Secret::new(db.url.clone())),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        ..Settings::default()
    }
}

impl TestServer {
    /// The usual way to start a test server: see [`TestServerBuilder`].
    pub fn builder<'a>(backend: Backend) -> TestServerBuilder<'a> {
        TestServerBuilder {
            backend,
            shared_db: None,
            tweaks: Vec::new(),
        }
    }

    /// Starts a server on `settings` whose data dir and database the caller made
    /// and keeps (a restore target, a database prepared before any server).
    pub async fn start(settings: Settings) -> Self {
        // The server's warnings and errors show with a failing test's output.
        log::init();
        let data_dir = settings.data_dir.clone();
        let state = AppState::build(settings.clone())
            .await
            .expect("building the app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}", metrics_listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = futures::FutureExt::shared(rx);
        let task = tokio::spawn(ham_host::serve(listener, state.clone(), {
            let stopped = stopped.clone();
            async move {
                let _ = stopped.await;
            }
        }));
        let metrics_task = tokio::spawn(ham_host::serve_metrics(
            metrics_listener,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            url,
            metrics_url,
            state,
            data_dir,
            settings,
            shutdown: Some(tx),
            task: Some(task),
            metrics_task: Some(metrics_task),
            db: None,
            dir: None,
        }
    }

    /// The database the builder made for this server.
    pub fn db(&self) -> &TestDb {
        self.db.as_deref().expect("a server the builder started")
    }

    /// Stops the server and starts another on the same data dir, database and
    /// settings: the process restarted.
    pub async fn restart(mut self) -> Self {
        let (settings, db, dir) = (self.settings.clone(), self.db.take(), self.dir.take());
        self.stop().await;
        let mut server = Self::start(settings).await;
        server.db = db;
        server.dir = dir;
        server
    }

    /// Stops accepting, waits for the server task, and closes the database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        if let Some(task) = self.metrics_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.state.db.close().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// `PUT /api/admin/plugins/{name}` with a manifest and component.
    pub async fn upload(
        &self,
        name: &str,
        manifest: &str,
        component: Vec<u8>,
    ) -> reqwest::Response {
        upload_plugin(&self.url, name, manifest, component).await
    }

    /// Uploads and asserts success.
    pub async fn install(
        &self,
        name: &str,
        manifest: &str,
        component: Vec<u8>,
    ) -> serde_json::Value {
        let response = self.upload(name, manifest, component).await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            status.is_success(),
            "upload of {name} failed: {status} {body}"
        );
        body
    }

    /// The text of `GET /metrics` from the metrics listener.
    pub async fn metrics(&self) -> String {
        let response = client()
            .get(format!("{}/metrics", self.metrics_url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "GET /metrics on the metrics listener"
        );
        response.text().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = client().get(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            // Idle connections are dropped before the server's header timeout
            // (10 s, HAM_HEADER_TIMEOUT) closes them: a request written onto a
            // connection the server is closing at that moment fails with
            // IncompleteMessage (a test that sleeps 10 s hit it).
            reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap()
        })
        .clone()
}

/// The JSON error body's code and message.
pub async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Every job, newest first, as `GET /api/admin/jobs` of the server at `base_url`
/// lists them.
pub async fn admin_jobs(base_url: &str) -> Vec<serde_json::Value> {
    let all: serde_json::Value = client()
        .get(format!("{base_url}/api/admin/jobs"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["jobs"].as_array().unwrap().clone()
}

/// `PUT /api/admin/plugins/{name}` (multipart `manifest`, `component`) with the
/// admin token, to the server at `base_url`.
pub async fn upload_plugin(
    base_url: &str,
    name: &str,
    manifest: &str,
    component: Vec<u8>,
) -> reqwest::Response {
    upload_plugin_rollout(base_url, name, manifest, component, None).await
}

/// [`upload_plugin`] with an optional `rollout` field (a canary or shadow plan).
pub async fn upload_plugin_rollout(
    base_url: &str,
    name: &str,
    manifest: &str,
    component: Vec<u8>,
    rollout: Option<&str>,
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new()
        .text("manifest", manifest.to_string())
        .part(
            "component",
            reqwest::multipart::Part::bytes(component).file_name("c.wasm"),
        );
    if let Some(rollout) = rollout {
        form = form.text("rollout", rollout.to_string());
    }
    client()
        .put(format!("{base_url}/api/admin/plugins/{name}"))
        .bearer_auth(ADMIN_TOKEN)
        .multipart(form)
        .send()
        .await
        .unwrap()
}
