//! Plugins: manifests, the registry of versions with hot swap, rollouts of new
//! versions and approval of wider grants, the plugins bundled in the binary, the
//! development directory watcher, and the convergence of replicas on one
//! PostgreSQL.

pub mod approval;
pub mod bundled;
pub mod manifest;
pub mod registry;
pub mod replicas;
pub mod rollout;
pub mod watch;

pub use manifest::Manifest;
pub use registry::{InstallError, InstallOptions, Installed, Outcome, Registry, Source};
