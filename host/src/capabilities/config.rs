//! The `ham:plugin/config` interface: a plugin's declared variables.
//!
//! A variable's value comes from the environment, `HAM_PLUGIN_<PLUGIN>_<VARIABLE>`
//! (upper case, `-` as `_`), else from the manifest's `default`. Secrets have no
//! default (the manifest is not a place for them) and are never logged. Values are
//! resolved once per plugin version, when it is loaded.
//!
//! Names can collide: `HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID` is variable `client_id`
//! of `strava-sync` and variable `sync_client_id` of `strava`. The names stay (they
//! are in operators' configs); instead two plugins whose names could share an
//! environment name are never installed together ([`env_collision`], called by
//! the registry before it stores a version).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

use super::{CapabilitiesView, Grants, ctx};
use crate::wit::ham::plugin::config;
use crate::wit::ham::plugin::types::Error as GuestError;

/// A variable as a manifest declares it (`[variables]`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The environment variable that sets `variable` of `plugin`.
pub fn env_name(plugin: &str, variable: &str) -> String {
    format!("HAM_PLUGIN_{plugin}_{variable}")
        .to_uppercase()
        .replace('-', "_")
}

/// A plugin that cannot be installed beside another: some environment name would
/// set a variable of both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "plugin `{name}` cannot be installed beside plugin `{installed}`: their variables would \
     share environment names (HAM_PLUGIN_{example} would set a variable of both); \
     choose another name"
)]
pub struct EnvCollision {
    /// The plugin being installed.
    pub name: String,
    /// The installed plugin it collides with.
    pub installed: String,
    /// One shared name, after `HAM_PLUGIN_`.
    pub example: String,
}

/// Whether some environment name `HAM_PLUGIN_…` would set a variable of plugin
/// `a` and a variable of plugin `b`.
///
/// `HAM_PLUGIN_` + A + `_` + V is a name of `a` (A: `a` upper-cased, `-` as `_`;
/// V: a variable, `[a-z][a-z0-9_]*` upper-cased). For two names to meet, the
/// shorter prefix must start the longer: B = A + `_` + R, and `a`'s variable is
/// then R + `_` + V, which is a variable name only when R starts with a letter.
/// So `a` and `b` collide when one is the other plus `-` and a letter:
/// `strava` / `strava-sync` do, `strava` / `strava-2` and `strava` / `stravas`
/// do not. (Plugin names have no `_`, so `-` and `_` map one to one, and equal
/// upper-cased names are equal names.)
pub fn env_names_collide(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short == long {
        return false;
    }
    long.strip_prefix(short)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// Refuses installing plugin `name` beside `installed` (the names of the plugins
/// installed now; `name` itself, a new version of an installed plugin, is fine)
/// when their variables could share an environment name; see
/// [`env_names_collide`].
pub fn env_collision<'a>(
    name: &str,
    installed: impl IntoIterator<Item = &'a str>,
) -> Result<(), EnvCollision> {
    let Some(other) = installed
        .into_iter()
        .find(|other| env_names_collide(name, other))
    else {
        return Ok(());
    };
    let long = if name.len() < other.len() {
        other
    } else {
        name
    };
    // The longer name's variable `x`, which is a variable `<rest>_x` of the other.
    let example = env_name(long, "x")
        .trim_start_matches("HAM_PLUGIN_")
        .to_string();
    Err(EnvCollision {
        name: name.to_string(),
        installed: other.to_string(),
        example,
    })
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
    /// Resolves `plugin`'s declared variables against `env` (the `HAM_PLUGIN_*`
    /// variables the host was started with).
    pub fn resolve(
        plugin: &str,
        declared: &BTreeMap<String, Variable>,
        env: &BTreeMap<String, String>,
    ) -> Self {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in declared {
            let value = env
                .get(&env_name(plugin, name))
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

/// The config context of one invocation: its plugin version's variables.
pub struct ConfigCtx {
    pub(super) grants: Arc<Grants>,
}

pub(super) fn add_to_linker<T: CapabilitiesView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    config::add_to_linker::<T, HasSelf<ConfigCtx>>(linker, |t| &mut ctx(t).config)
}

impl config::Host for ConfigCtx {
    async fn get(&mut self, name: String) -> Result<Option<String>, GuestError> {
        let plugin = &self.grants.plugin;
        match self.grants.variables.get(&name) {
            None => Err(GuestError::InvalidArgument(format!(
                "variable `{name}` is not declared in the manifest of {plugin}"
            ))),
            Some(None) if self.grants.variables.missing.contains(&name) => {
                Err(GuestError::NotConfigured(format!(
                    "variable `{name}` is required; set {}",
                    env_name(plugin, &name)
                )))
            }
            Some(value) => Ok(value.map(str::to_string)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::outbound::OutboundPolicy;
    use crate::store::kv::Quota;

    /// The interface as a guest meets it, without a guest: the `Host` impl called
    /// the way the generated bindings call it. A capability's own module can test
    /// it this way (see "Adding a WIT interface" in docs/architecture.md).
    #[tokio::test]
    async fn get_answers_a_value_a_default_and_names_what_is_wrong() {
        let declared: BTreeMap<String, Variable> = toml::from_str(
            r#"
            region = { default = "eu" }
            client_id = { required = true }
            token = { secret = true }
            "#,
        )
        .unwrap();
        let env = BTreeMap::from([("HAM_PLUGIN_WEATHER_TOKEN".to_string(), "s3cret".to_string())]);
        let mut ctx = ConfigCtx {
            grants: Arc::new(Grants {
                plugin: "weather".into(),
                version: "1.0.0".into(),
                variables: Variables::resolve("weather", &declared, &env),
                outbound: OutboundPolicy::new("weather", Vec::new()),
                storage: Quota { scope: 0, total: 0 },
            }),
        };
        let region = config::Host::get(&mut ctx, "region".into()).await;
        assert_eq!(region.unwrap().as_deref(), Some("eu"));
        let token = config::Host::get(&mut ctx, "token".into()).await;
        assert_eq!(token.unwrap().as_deref(), Some("s3cret"));
        match config::Host::get(&mut ctx, "client_id".into()).await {
            Err(GuestError::NotConfigured(how)) => {
                assert!(how.contains("HAM_PLUGIN_WEATHER_CLIENT_ID"), "{how}");
            }
            other => panic!("a required variable without a value: {other:?}"),
        }
        match config::Host::get(&mut ctx, "city".into()).await {
            Err(GuestError::InvalidArgument(why)) => assert!(why.contains("not declared"), "{why}"),
            other => panic!("an undeclared variable: {other:?}"),
        }
    }

    #[test]
    fn plugin_names_whose_variables_share_environment_names_collide() {
        // HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID: strava-sync's client_id, strava's sync_client_id.
        assert_eq!(
            env_name("strava-sync", "client_id"),
            env_name("strava", "sync_client_id")
        );
        let cases = [
            ("strava", "strava-sync", true),
            ("strava-sync", "strava", true),
            ("a", "a-b-c", true),
            ("a-b", "a-b-c", true),
            ("my-plugin", "my-plugin-x9", true),
            // No variable name starts with a digit, '-' or '_'.
            ("strava", "strava-2", false),
            ("strava", "strava--sync", false),
            ("strava", "strava-", false),
            // Not a prefix at a '-'.
            ("strava", "stravas", false),
            ("strava", "strav", false),
            ("strava-sync", "strava-synced", false),
            ("coach", "habit-rules", false),
            // A new version of the same plugin.
            ("strava", "strava", false),
        ];
        for (a, b, collide) in cases {
            assert_eq!(env_names_collide(a, b), collide, "{a} / {b}");
        }
        // Where the names collide, some variable really is shared; where they
        // do not, the 2-letter variables of each never meet.
        let vars = ["x", "sync_x", "b_c_x", "c_x", "x9_x"];
        for (a, b, collide) in cases {
            let shared = vars.iter().any(|v| {
                vars.iter()
                    .any(|w| a != b && env_name(a, v) == env_name(b, w))
            });
            assert!(!shared || collide, "{a} / {b} share a name");
        }
    }

    #[test]
    fn installing_beside_a_colliding_plugin_is_refused_with_a_clear_message() {
        let installed = ["habit-rules", "strava-sync", "coach", "hello"];
        let err = env_collision("strava", installed).unwrap_err();
        assert_eq!(err.installed, "strava-sync");
        let message = err.to_string();
        assert!(message.contains("`strava`"), "{message}");
        assert!(message.contains("`strava-sync`"), "{message}");
        assert!(message.contains("HAM_PLUGIN_STRAVA_SYNC_X"), "{message}");
        // The reverse: strava installed first, then strava-sync.
        let err = env_collision("strava-sync", ["strava"]).unwrap_err();
        assert_eq!(err.installed, "strava");
        assert!(err.to_string().contains("HAM_PLUGIN_STRAVA_SYNC_X"));
        // A new version of an installed plugin, and unrelated names, are fine.
        assert_eq!(env_collision("strava-sync", installed), Ok(()));
        assert_eq!(env_collision("strava-2", installed), Ok(()));
        assert_eq!(env_collision("weather", installed), Ok(()));
        // The bundled plugins do not collide with each other.
        for name in installed {
            assert_eq!(env_collision(name, installed), Ok(()), "{name}");
        }
    }
}
