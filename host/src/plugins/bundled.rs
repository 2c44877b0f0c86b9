//! The plugins built into the `ham` binary (by `host/build.rs`, from `plugins/`).
//!
//! At start each is installed when the database holds no version of that plugin,
//! or only older ones (by semver). A version an operator uploaded that is as new or
//! newer is never replaced.

use super::Manifest;
use super::registry::{InstallError, Package, Registry, Source};

/// A plugin carried in the binary.
pub struct BundledPlugin {
    pub name: &'static str,
    pub manifest: &'static str,
    pub component: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The OpenAPI documents of the bundled plugins whose manifests name one
/// (`openapi = "openapi.json"`), by plugin name: `host/build.rs` embeds each
/// manifest and component, these files are listed here.
const OPENAPI: &[(&str, &str)] = &[
    ("coach", include_str!("../../../plugins/coach/openapi.json")),
    (
        "strava-sync",
        include_str!("../../../plugins/strava-sync/openapi.json"),
    ),
];

/// The OpenAPI document bundled for plugin `name`, if any.
fn openapi(name: &str) -> Option<&'static str> {
    OPENAPI
        .iter()
        .find(|(plugin, _)| *plugin == name)
        .map(|(_, text)| *text)
}

/// Installs the bundled plugins that are missing or newer than what is stored.
pub async fn install_bundled(registry: &Registry) -> Result<(), InstallError> {
    for bundled in BUNDLED {
        let manifest = Manifest::parse(bundled.manifest)?;
        let stored = registry.db().versions(bundled.name).await?;
        let newest = stored
            .iter()
            .filter_map(|v| semver::Version::parse(&v.version).ok())
            .max();
        if newest.is_some_and(|v| v >= manifest.version) {
            continue;
        }
        let package = Package {
            manifest: bundled.manifest,
            component: bundled.component,
            openapi: manifest
                .openapi
                .as_ref()
                .and_then(|_| openapi(bundled.name)),
        };
        registry
            .install_package(&package, Source::Bundled, Some(bundled.name))
            .await?;
    }
    Ok(())
}
