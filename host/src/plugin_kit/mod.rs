//! The author kit: what a plugin author runs on their own machine, without a
//! server.
//!
//! - [`scaffold`]: `ham plugin new NAME --kind http|rules|job`, a crate that
//!   builds on its own (`cargo build --release --target wasm32-wasip2`);
//! - [`harness`]: one plugin version loaded the way the server loads an upload
//!   (same runtime, capabilities and install path, over an in-memory database),
//!   behind `ham plugin check` (the server's refusals, word for word) and `ham
//!   plugin test` (an HTTP request, a rules evaluation or a job), and the
//!   `ham-plugin-test` crate for `cargo test`;
//! - [`cli`]: those commands' arguments and output.
//!
//! It reuses the host's own checks rather than restating them, so the kit
//! cannot drift from the server it stands in for.

pub mod cli;
pub mod harness;
pub mod scaffold;

pub use harness::{
    Answer, Harness, HttpRequest, HttpResponse, JobOutcome, JobRequest, KitError, RulesFixture,
};
