//! Plugins: manifests, the registry of versions with hot swap, the plugins bundled
//! in the binary, the development directory watcher, and the convergence of
//! replicas on one PostgreSQL.

pub mod bundled;
pub mod manifest;
pub mod registry;
pub mod replicas;
pub mod watch;

pub use manifest::Manifest;
pub use registry::{InstallError, Installed, Registry, Source};
