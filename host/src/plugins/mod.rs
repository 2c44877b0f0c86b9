//! Plugins: manifests, the registry of versions with hot swap, rollouts of new
//! versions (a canary share, or a shadow run for a rule set) and approval of
//! wider grants, the plugins bundled in the binary, the development directory
//! watcher, and the convergence of replicas on one PostgreSQL.

pub mod approval;
pub mod bundled;
pub mod manifest;
pub mod registry;
pub mod replicas;
pub mod rollout;
pub mod shadow;
pub mod watch;

pub use manifest::Manifest;
pub use registry::{InstallError, InstallOptions, Installed, Outcome, Registry, Source};
