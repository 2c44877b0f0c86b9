//! Plugins: manifests, the registry of versions with hot swap, the plugins bundled
//! in the binary, and the development directory watcher.

pub mod bundled;
pub mod manifest;
pub mod registry;
pub mod watch;

pub use manifest::Manifest;
pub use registry::{InstallError, Installed, Registry, Source};
