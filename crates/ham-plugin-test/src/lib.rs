//! Test a HAM plugin from `cargo test`, without a server: the harness behind
//! `ham plugin check` and `ham plugin test`, with a blocking API for plain
//! `#[test]` functions.
//!
//! [`Harness::load`] reads a `plugin.toml` and the component it names, and
//! loads them the way the server loads an upload (the same runtime, limits,
//! capabilities and checks, over an in-memory database): a refusal is the
//! server's answer ([`KitError::Refused`]), word for word. Then
//! [`Harness::http`], [`Harness::evaluate`] and [`Harness::job`] run the plugin
//! as the server would, and [`Harness::stored`] reads what it stored.
//!
//! The tests run on the host target and load the `.wasm`, so build the
//! component first:
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2 && cargo test
//! ```
//!
//! ```no_run
//! use ham_plugin_test::{Harness, HttpRequest};
//!
//! let plugin = Harness::load("plugin.toml").unwrap();
//! let answer = plugin.http(HttpRequest::get("/plugins/my-plugin/").user("alice")).unwrap();
//! assert_eq!(answer.status, 200);
//! ```
//!
//! Inside an async test, use [`AsyncHarness`] (the same, with `async` methods).

use std::path::Path;

pub use ham_host::plugin_kit::Harness as AsyncHarness;
pub use ham_host::plugin_kit::harness::{
    Answer, FixtureEntry, FixtureHabit, FixtureMark, FixtureValue, HttpRequest, HttpResponse,
    JobOutcome, JobRequest, KitError, RulesFixture,
};
pub use ham_host::plugins::registry::Package;
pub use ham_host::rules::HabitStats;
pub use ham_host::runtime::LoadedPlugin;

/// A plugin version loaded as the server would load it, with a host of its
/// own; each call blocks until the plugin is done.
pub struct Harness {
    // Dropped before the runtime that served it.
    inner: AsyncHarness,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    /// Loads the plugin `manifest` describes, its component where the manifest
    /// says (relative to it), with variable values from the environment
    /// (`HAM_PLUGIN_<NAME>_<VARIABLE>`).
    pub fn load(manifest: impl AsRef<Path>) -> Result<Self, KitError> {
        Self::load_with(manifest.as_ref(), None)
    }

    /// [`Harness::load`] with another component than the manifest's.
    pub fn load_with(manifest: &Path, component: Option<&Path>) -> Result<Self, KitError> {
        let runtime = runtime()?;
        let inner = runtime.block_on(AsyncHarness::load_with(manifest, component))?;
        Ok(Self { inner, runtime })
    }

    /// Loads a plugin from its parts (manifest text, component bytes, OpenAPI
    /// text), with variable values from the environment.
    pub fn from_package(package: &Package<'_>) -> Result<Self, KitError> {
        let runtime = runtime()?;
        let env = ham_host::plugin_kit::harness::plugin_env_from_process();
        let inner = runtime.block_on(AsyncHarness::from_package(package, env))?;
        Ok(Self { inner, runtime })
    }

    /// The loaded version: its manifest, exports and imports.
    pub fn plugin(&self) -> &LoadedPlugin {
        self.inner.plugin()
    }

    /// Serves one request as the server would (see [`AsyncHarness::http`]).
    pub fn http(&self, request: HttpRequest) -> Result<HttpResponse, KitError> {
        self.runtime.block_on(self.inner.http(request))
    }

    /// Evaluates habits and checks the answers as the stats API does (see
    /// [`AsyncHarness::evaluate`]).
    pub fn evaluate(&self, fixtures: &[RulesFixture]) -> Result<Vec<HabitStats>, KitError> {
        self.runtime.block_on(self.inner.evaluate(fixtures))
    }

    /// Runs one job (see [`AsyncHarness::job`]).
    pub fn job(&self, job: JobRequest) -> Result<JobOutcome, KitError> {
        self.runtime.block_on(self.inner.job(job))
    }

    /// What the plugin stored under `key`, in its own scope (`user` none) or
    /// that user's.
    pub fn stored(&self, user: Option<&str>, key: &str) -> Result<Option<Vec<u8>>, KitError> {
        self.runtime.block_on(self.inner.stored(user, key))
    }

    /// The async harness inside.
    pub fn inner(&self) -> &AsyncHarness {
        &self.inner
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, KitError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| KitError::Setup(format!("a tokio runtime: {e}")))
}
