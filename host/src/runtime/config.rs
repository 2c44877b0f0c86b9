//! The `ham:plugin/config` interface: a plugin's declared variables.
//!
//! A variable's value comes from the environment, `HAM_PLUGIN_<PLUGIN>_<VARIABLE>`
//! (upper case, `-` as `_`), else from the manifest's `default`. Secrets have no
//! default (the manifest is not a place for them) and are never logged. Values are
//! resolved once per plugin version, when it is loaded.

use std::collections::BTreeMap;

use super::Invocation;
use super::bindings::ham::plugin::config;
use super::bindings::ham::plugin::types::Error as GuestError;
use crate::plugins::manifest::Manifest;

/// The environment variable that sets `variable` of `plugin`.
pub fn env_name(plugin: &str, variable: &str) -> String {
    format!("HAM_PLUGIN_{plugin}_{variable}")
        .to_uppercase()
        .replace('-', "_")
}

/// A plugin version's variables with their values.
#[derive(Clone, Default)]
pub struct Variables {
    values: BTreeMap<String, Option<String>>,
    /// Required variables with no value, by name.
    pub missing: Vec<String>,
}

impl std::fmt::Debug for Variables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: show only which are set.
        f.debug_struct("Variables")
            .field(
                "set",
                &self
                    .values
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>(),
            )
            .field("missing", &self.missing)
            .finish()
    }
}

impl Variables {
    /// Resolves the manifest's variables against `env` (the `HAM_PLUGIN_*` variables
    /// the host was started with).
    pub fn resolve(manifest: &Manifest, env: &BTreeMap<String, String>) -> Self {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in &manifest.variables {
            let value = env
                .get(&env_name(&manifest.name, name))
                .cloned()
                .or_else(|| decl.default.clone());
            if value.is_none() && decl.required {
                missing.push(name.clone());
            }
            values.insert(name.clone(), value);
        }
        Self { values, missing }
    }

    /// The value of a declared variable; `None` for an undeclared name.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.values.get(name).map(|v| v.as_deref())
    }
}

impl config::Host for Invocation {
    async fn get(&mut self, name: String) -> Result<Option<String>, GuestError> {
        let manifest = &self.plugin.manifest;
        match self.plugin.variables.get(&name) {
            None => Err(GuestError::InvalidArgument(format!(
                "variable `{name}` is not declared in the manifest of {}",
                manifest.name
            ))),
            Some(None) if manifest.variables.get(&name).is_some_and(|d| d.required) => {
                Err(GuestError::NotConfigured(format!(
                    "variable `{name}` is required; set {}",
                    env_name(&manifest.name, &name)
                )))
            }
            Some(value) => Ok(value.map(str::to_string)),
        }
    }
}
