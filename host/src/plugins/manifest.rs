//! `plugin.toml`: what a plugin is, what it may do, and what it needs.
//!
//! Parsing is strict: an unknown key or an invalid value is refused with a message
//! naming the key, so a typo never silently turns a limit or a permission off.
//!
//! ```toml
//! name = "strava-sync"
//! version = "0.1.0"
//! component = "strava_sync.wasm"          # path relative to the manifest (CLI, watcher)
//! openapi = "openapi.json"                # its routes' OpenAPI operations (CLI, watcher)
//! allowed_outbound_hosts = ["{{ api_base_url }}"]
//! llm = false
//! notifications = false                  # true to import ham:plugin/notifications
//! routes = [{ path = "/api/strava/webhook", methods = ["GET", "POST"], auth = "none" }]
//! schedule = [{ cron = "0 */6 * * *", job = "backfill" }]
//! [limits]
//! memory_mb = 64
//! timeout_ms = 5000
//! storage_quota_mb = 10                  # each user's scope, and the plugin's own
//! storage_total_mb = 100                 # all scopes together (default 10x, at most 10240)
//! max_concurrency = 100                   # instances at once (default 100)
//! request_body_kb = 64                    # largest request body (default 64)
//! reuse_requests = 1000                   # HTTP requests one instance may serve, same user only (1: never reuse)
//! reuse_idle_ms = 1000                    # how long an idle instance is kept for reuse
//! [variables]
//! api_base_url = { default = "https://www.strava.com/api/v3" }
//! client_secret = { required = true, secret = true }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capabilities::config::{Variable, Variables};
use crate::capabilities::outbound::{HostRule, OutboundEntry};
use crate::runtime::{MAX_CONCURRENT_INSTANCES, MAX_MEMORY_MB};

/// A refused manifest; the message names the key at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid manifest: {0}")]
pub struct ManifestError(pub String);

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: semver::Version,
    #[serde(default)]
    pub component: Option<String>,
    /// The OpenAPI operations of the routes it claims: a JSON file, relative to the
    /// manifest (CLI, watcher), uploaded as the `openapi` field (see
    /// `plugins::registry::ApiDocument`).
    #[serde(default)]
    pub openapi: Option<String>,
    /// URL strings, or `{ url = "...", private = true }` tables.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<OutboundEntry>,
    #[serde(default)]
    pub llm: bool,
    /// Imports `ham:plugin/notifications` (due reminders of every user, their
    /// channels with tokens): only a delivery plugin should say so.
    #[serde(default)]
    pub notifications: bool,
    #[serde(default)]
    pub routes: Vec<RouteClaim>,
    #[serde(default)]
    pub schedule: Vec<ScheduleEntry>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
}

/// A route the plugin serves besides `/plugins/{name}/…`: an exact path, or a
/// path ending in `/*`, which matches the path before it and everything below
/// (`/api/coach/conversations/*` matches `/api/coach/conversations/42`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteClaim {
    pub path: String,
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    #[serde(default)]
    pub auth: RouteAuth,
    /// The route serves pages of the app itself (HTML with script that must run
    /// on the app's origin). Without it, responses carry
    /// `Content-Security-Policy: sandbox`, so a page a plugin serves cannot act as
    /// the app.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub app_content: bool,
}

fn default_methods() -> Vec<String> {
    vec!["GET".to_string()]
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    /// Anyone may call it (webhooks).
    None,
    /// A signed-in user; the invocation acts for that user.
    #[default]
    User,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    pub cron: String,
    pub job: String,
    /// Queue one job per user who has used the plugin (who has rows in its user
    /// scope of `storage`), acting for that user, instead of one for no user.
    #[serde(default)]
    pub per_user: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub memory_mb: u32,
    pub timeout_ms: u64,
    /// Bytes (MiB) one scope of the plugin's storage may hold: each user's scope,
    /// and the plugin's own. One user at this quota leaves the others writing.
    pub storage_quota_mb: u32,
    /// Bytes (MiB) all the plugin's scopes may hold together; none: ten times
    /// `storage_quota_mb`, at most [`MAX_STORAGE_TOTAL_MB`]. See
    /// [`Limits::storage_total_mb`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_total_mb: Option<u32>,
    /// An instruction budget per invocation (wasmtime fuel: about one unit per
    /// wasm instruction). Unlike the deadline it does not depend on the machine's
    /// speed or load, so a pure plugin (a rule set) gives the same answer, or the
    /// same refusal, every time. None: no budget, only the deadline.
    pub fuel: Option<u64>,
    /// Instances of this plugin that may run at once: its share of the host's
    /// pool, so one busy plugin leaves the others serving. One more request
    /// waits up to a second for a slot, then gets 503 `plugin_busy`.
    pub max_concurrency: u32,
    /// Largest request body its HTTP routes accept, in KiB; the host reads the
    /// whole body before an instance starts, so a slow client holds no instance.
    pub request_body_kb: u32,
    /// HTTP requests one instance may serve before it is dropped. Requests run
    /// on a warm instance only if it last served the same acting user (anonymous
    /// requests are a group of their own), of the same version, and ended
    /// cleanly; `1` gives every request a fresh instance. See `runtime::reuse`.
    pub reuse_requests: u32,
    /// How long an instance waits idle for its user's next request before it is
    /// dropped and its memory released, in milliseconds.
    pub reuse_idle_ms: u64,
}

/// The default `limits.reuse_requests` (docs/benchmarks.md: throughput levels
/// off well below it, and a guest that leaks grows for at most this many).
pub const DEFAULT_REUSE_REQUESTS: u32 = 1000;
/// The largest `limits.reuse_requests`.
pub const MAX_REUSE_REQUESTS: u32 = 100_000;
/// The default `limits.reuse_idle_ms`: longer than the gaps between a busy
/// client's requests, short enough that a burst's instances are soon released.
pub const DEFAULT_REUSE_IDLE_MS: u64 = 1000;
/// The largest `limits.reuse_idle_ms`.
pub const MAX_REUSE_IDLE_MS: u64 = 600_000;

/// The default `limits.request_body_kb`: enough for JSON requests and webhooks.
pub const DEFAULT_REQUEST_BODY_KB: u32 = 64;
/// The largest `limits.request_body_kb`.
pub const MAX_REQUEST_BODY_KB: u32 = 32 * 1024;
/// The largest `limits.storage_quota_mb`.
pub const MAX_STORAGE_QUOTA_MB: u32 = 1024;
/// The largest `limits.storage_total_mb`, and the cap of its default.
pub const MAX_STORAGE_TOTAL_MB: u32 = 10 * 1024;

impl Limits {
    /// What all scopes of the plugin's storage may hold together, in MiB: the
    /// manifest's `storage_total_mb`, else ten times `storage_quota_mb` capped at
    /// [`MAX_STORAGE_TOTAL_MB`].
    pub fn storage_total_mb(&self) -> u32 {
        self.storage_total_mb.unwrap_or_else(|| {
            self.storage_quota_mb
                .saturating_mul(10)
                .min(MAX_STORAGE_TOTAL_MB)
        })
    }

    /// The storage quotas these limits set, in bytes.
    pub fn storage_quota(&self) -> crate::store::kv::Quota {
        const MIB: i64 = 1024 * 1024;
        crate::store::kv::Quota {
            scope: i64::from(self.storage_quota_mb) * MIB,
            total: i64::from(self.storage_total_mb()) * MIB,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_mb: 64,
            timeout_ms: 5000,
            storage_quota_mb: 10,
            storage_total_mb: None,
            fuel: None,
            max_concurrency: 100,
            request_body_kb: DEFAULT_REQUEST_BODY_KB,
            reuse_requests: DEFAULT_REUSE_REQUESTS,
            reuse_idle_ms: DEFAULT_REUSE_IDLE_MS,
        }
    }
}

/// Path prefixes the host serves itself; a plugin cannot claim a route under them.
pub const HOST_ROUTE_PREFIXES: &[&str] = &[
    "/api/admin",
    "/api/auth",
    "/api/me",
    "/api/habits",
    "/api/activities",
    "/api/export",
    "/api/import",
    "/api/openapi.json",
    "/api/llm",
];

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

impl Manifest {
    /// Parses and validates a manifest.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError(e.to_string().trim().to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let bad = |key: &str, why: String| Err(ManifestError(format!("{key}: {why}")));
        if !is_name(&self.name) {
            return bad(
                "name",
                format!(
                    "`{}` must be 1 to 63 lower-case letters, digits or '-', starting with a letter",
                    self.name
                ),
            );
        }
        let l = &self.limits;
        if !(1..=MAX_MEMORY_MB).contains(&l.memory_mb) {
            return bad(
                "limits.memory_mb",
                format!("{} is not within 1..={MAX_MEMORY_MB}", l.memory_mb),
            );
        }
        if !(1..=300_000).contains(&l.timeout_ms) {
            return bad(
                "limits.timeout_ms",
                format!("{} is not within 1..=300000", l.timeout_ms),
            );
        }
        if l.storage_quota_mb > MAX_STORAGE_QUOTA_MB {
            return bad(
                "limits.storage_quota_mb",
                format!(
                    "{} is not within 0..={MAX_STORAGE_QUOTA_MB}",
                    l.storage_quota_mb
                ),
            );
        }
        if let Some(total) = l.storage_total_mb
            && !(l.storage_quota_mb..=MAX_STORAGE_TOTAL_MB).contains(&total)
        {
            return bad(
                "limits.storage_total_mb",
                format!(
                    "{total} is not within storage_quota_mb ({})..={MAX_STORAGE_TOTAL_MB}",
                    l.storage_quota_mb
                ),
            );
        }
        if !(1..=MAX_CONCURRENT_INSTANCES).contains(&l.max_concurrency) {
            return bad(
                "limits.max_concurrency",
                format!(
                    "{} is not within 1..={MAX_CONCURRENT_INSTANCES}",
                    l.max_concurrency
                ),
            );
        }
        if !(1..=MAX_REQUEST_BODY_KB).contains(&l.request_body_kb) {
            return bad(
                "limits.request_body_kb",
                format!(
                    "{} is not within 1..={MAX_REQUEST_BODY_KB}",
                    l.request_body_kb
                ),
            );
        }
        if !(1..=MAX_REUSE_REQUESTS).contains(&l.reuse_requests) {
            return bad(
                "limits.reuse_requests",
                format!(
                    "{} is not within 1..={MAX_REUSE_REQUESTS} (1 gives every request a fresh instance)",
                    l.reuse_requests
                ),
            );
        }
        if !(1..=MAX_REUSE_IDLE_MS).contains(&l.reuse_idle_ms) {
            return bad(
                "limits.reuse_idle_ms",
                format!("{} is not within 1..={MAX_REUSE_IDLE_MS}", l.reuse_idle_ms),
            );
        }
        if l.fuel == Some(0) {
            return bad(
                "limits.fuel",
                "0 leaves no instructions to run; omit it for no budget".into(),
            );
        }
        for (name, variable) in &self.variables {
            if !is_variable_name(name) {
                return bad(
                    &format!("variables.{name}"),
                    "a variable name is lower-case letters, digits and '_', starting with a letter"
                        .into(),
                );
            }
            if variable.secret && variable.default.is_some() {
                return bad(
                    &format!("variables.{name}"),
                    "a secret cannot have a default; set it in the environment".into(),
                );
            }
        }
        for (i, entry) in self.allowed_outbound_hosts.iter().enumerate() {
            let key = format!("allowed_outbound_hosts[{i}]");
            let names =
                template_names(&entry.url).map_err(|why| ManifestError(format!("{key}: {why}")))?;
            if let Some(unknown) = names.iter().find(|n| !self.variables.contains_key(*n)) {
                return bad(
                    &key,
                    format!("`{{{{ {unknown} }}}}` is not a declared variable"),
                );
            }
            if names.is_empty() {
                HostRule::parse(&entry.url, entry.private)
                    .map_err(|why| ManifestError(format!("{key}: {why}")))?;
            } else if entry.private && entry.url.contains('*') {
                // The rest is checked when the version loads, with the values in.
                return bad(
                    &key,
                    format!(
                        "`{}`: private = true needs an exact host and port, without wildcards",
                        entry.url
                    ),
                );
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("routes[{i}]");
            let base = route.prefix().unwrap_or(&route.path);
            if !base.starts_with("/api/")
                || base.len() <= "/api/".len()
                || base.ends_with('/')
                || base.contains(['?', '#', '*', '{'])
            {
                return bad(
                    &format!("{key}.path"),
                    format!(
                        "`{}` must be an exact path under /api/, or one ending in /*",
                        route.path
                    ),
                );
            }
            if let Some(prefix) = HOST_ROUTE_PREFIXES
                .iter()
                .find(|p| is_under(base, p) || is_under(p, base))
            {
                return bad(
                    &format!("{key}.path"),
                    format!("`{}` is under {prefix}, which the host serves", route.path),
                );
            }
            if route.methods.is_empty() {
                return bad(&format!("{key}.methods"), "name at least one method".into());
            }
            if let Some(m) = route
                .methods
                .iter()
                .find(|m| !METHODS.contains(&m.as_str()))
            {
                return bad(
                    &format!("{key}.methods"),
                    format!("`{m}` is not one of {}", METHODS.join(", ")),
                );
            }
        }
        for (i, entry) in self.schedule.iter().enumerate() {
            if let Err(why) = crate::jobs::cron::Cron::parse(&entry.cron) {
                return bad(&format!("schedule[{i}].cron"), why);
            }
            if entry.job.is_empty() || entry.job.len() > 100 {
                return bad(
                    &format!("schedule[{i}].job"),
                    "name the job kind (1 to 100 bytes)".into(),
                );
            }
        }
        Ok(())
    }

    /// The outbound rules with variables interpolated. An entry that is exactly
    /// one `{{ variable }}` becomes one rule per comma-separated item of its value
    /// (none for an empty value), each with the entry's `private` mark, so an
    /// operator can list hosts in one variable. An entry whose variable has no
    /// value is left out (and so denies), with a warning; an entry that the values
    /// make invalid (a wildcard in a `private = true` entry) is an error.
    pub fn outbound_rules(&self, variables: &Variables) -> Result<Vec<HostRule>, String> {
        let mut rules = Vec::new();
        for entry in &self.allowed_outbound_hosts {
            let Some(expanded) = interpolate(&entry.url, variables) else {
                tracing::warn!(plugin = %self.name, entry = %entry.url, "outbound entry left out: its variable has no value");
                continue;
            };
            let items: Vec<&str> = match whole_template(&entry.url) {
                true => expanded
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .collect(),
                false => vec![&expanded],
            };
            for item in items {
                rules.push(HostRule::parse(item, entry.private)?);
            }
        }
        Ok(rules)
    }
}

impl RouteClaim {
    /// For a claim ending in `/*`, the path it covers (without the `/*`).
    pub fn prefix(&self) -> Option<&str> {
        self.path.strip_suffix("/*")
    }

    /// Whether a request path falls under this claim.
    pub fn matches(&self, path: &str) -> bool {
        match self.prefix() {
            Some(base) => is_under(path, base),
            None => self.path == path,
        }
    }
}

/// `path` is `prefix` or below it (segment-wise: `/api/ab` is not under `/api/a`).
pub fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Plugin names: what goes in `/plugins/{name}` and in environment variable names.
pub fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The variable names in `{{ name }}` templates of an entry.
fn template_names(entry: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = entry;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("`{entry}` has an unclosed {{{{"))?;
        names.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// Whether an entry is one `{{ variable }}` and nothing else (spaces aside).
fn whole_template(entry: &str) -> bool {
    entry
        .trim()
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
        .is_some_and(|name| !name.contains(['{', '}']))
}

fn interpolate(entry: &str, variables: &Variables) -> Option<String> {
    let mut out = String::new();
    let mut rest = entry;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        out.push_str(variables.get(after[..end].trim())??);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"hello\"\nversion = \"0.1.0\"\n";

    #[test]
    fn prefix_claims_match_their_path_and_below() {
        let m = Manifest::parse(
            "name = \"c\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/c/items/*\" }]",
        )
        .unwrap();
        let claim = &m.routes[0];
        assert_eq!(claim.prefix(), Some("/api/c/items"));
        for path in ["/api/c/items", "/api/c/items/1", "/api/c/items/1/x"] {
            assert!(claim.matches(path), "{path}");
        }
        for path in ["/api/c/itemsx", "/api/c", "/api/c/item"] {
            assert!(!claim.matches(path), "{path}");
        }
    }

    #[test]
    fn a_minimal_manifest_gets_defaults() {
        let m = Manifest::parse(MINIMAL).unwrap();
        assert_eq!(m.limits.memory_mb, 64);
        assert_eq!(m.limits.timeout_ms, 5000);
        assert!(m.allowed_outbound_hosts.is_empty());
    }

    #[test]
    fn refusals_name_the_key() {
        let cases = [
            ("name = \"x\"\nversion = \"0.1.0\"\ncolour = 1", "colour"),
            ("name = \"x\"\nversion = \"one\"", "version"),
            ("name = \"X y\"\nversion = \"0.1.0\"", "name"),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\nmemory_mb = 0",
                "limits.memory_mb",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\nmemroy_mb = 3",
                "memroy_mb",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\ntimeout_ms = -1",
                "timeout_ms",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [\"example.com\"]",
                "allowed_outbound_hosts[0]",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [\"{{ base }}\"]",
                "allowed_outbound_hosts[0]",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [\"https://a\", { url = \"https://*.lan\", private = true }]",
                "allowed_outbound_hosts[1]",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [{ url = \"https://a\", privte = true }]",
                "privte",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/admin/x\" }]",
                "routes[0].path",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/elsewhere\" }]",
                "routes[0].path",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/*\" }]",
                "routes[0].path",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/x/*/y\" }]",
                "routes[0].path",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/habits/*\" }]",
                "routes[0].path",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/x\", methods = [\"FETCH\"] }]",
                "routes[0].methods",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nroutes = [{ path = \"/api/x\", auth = \"maybe\" }]",
                "auth",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\nschedule = [{ cron = \"* *\", job = \"j\" }]",
                "schedule[0].cron",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[variables]\nkey = { secret = true, default = \"k\" }",
                "variables.key",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\nreuse_requests = 0",
                "limits.reuse_requests: 0 is not within 1..=100000 (1 gives every request a fresh instance)",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\nreuse_requests = 100001",
                "limits.reuse_requests",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\nreuse_idle_ms = 0",
                "limits.reuse_idle_ms: 0 is not within 1..=600000",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\nreuse_idle_ms = 600001",
                "limits.reuse_idle_ms",
            ),
            (
                "name = \"x\"\nversion = \"0.1.0\"\n[limits]\nreuse_request = 5",
                "reuse_request",
            ),
        ];
        for (text, key) in cases {
            let err = Manifest::parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "expected `{key}` in: {err}");
        }
    }

    #[test]
    fn outbound_entries_interpolate_variables() {
        let m = Manifest::parse(
            "name = \"s\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [\"{{ api }}\", \"{{ unset }}\"]\n\
             [variables]\napi = { default = \"http://127.0.0.1:9/api/v3\" }\nunset = {}",
        )
        .unwrap();
        let env = BTreeMap::new();
        let rules = m
            .outbound_rules(&Variables::resolve(&m.name, &m.variables, &env))
            .unwrap();
        assert_eq!(
            rules,
            vec![HostRule::parse("http://127.0.0.1:9", false).unwrap()]
        );

        let env = BTreeMap::from([(
            "HAM_PLUGIN_S_API".to_string(),
            "https://other.example".to_string(),
        )]);
        let rules = m
            .outbound_rules(&Variables::resolve(&m.name, &m.variables, &env))
            .unwrap();
        assert_eq!(
            rules,
            vec![HostRule::parse("https://other.example", false).unwrap()]
        );
    }

    /// An entry that is exactly `{{ variable }}` takes a comma-separated list;
    /// its items may reach private addresses only when the entry is marked so
    /// (or an item is an IP literal with a port), and a wildcard item never does.
    #[tokio::test]
    async fn a_whole_template_entry_expands_a_list_and_private_stays_refused_unless_listed() {
        use crate::capabilities::outbound::{Denied, Host, OutboundPolicy, ResolveError};
        let m = Manifest::parse(
            "name = \"reminders\"\nversion = \"0.1.0\"\n\
             allowed_outbound_hosts = [\"https://*:*\", { url = \"{{ allowed_hosts }}\", private = true }]\n\
             [variables]\nallowed_hosts = { default = \"\" }\n",
        )
        .unwrap();
        let rules_with = |value: Option<&str>| {
            let env: BTreeMap<String, String> = value
                .map(|v| {
                    (
                        "HAM_PLUGIN_REMINDERS_ALLOWED_HOSTS".to_string(),
                        v.to_string(),
                    )
                })
                .into_iter()
                .collect();
            m.outbound_rules(&Variables::resolve(&m.name, &m.variables, &env))
        };
        assert_eq!(
            rules_with(None).unwrap(),
            vec![HostRule::parse("https://*:*", false).unwrap()],
            "an empty list adds nothing"
        );
        let listed = rules_with(Some(" http://127.0.0.1:8080 ,,http://localhost:9000, ")).unwrap();
        assert_eq!(
            listed,
            vec![
                HostRule::parse("https://*:*", false).unwrap(),
                HostRule::parse("http://127.0.0.1:8080", true).unwrap(),
                HostRule::parse("http://localhost:9000", true).unwrap(),
            ]
        );
        let err = rules_with(Some("http://a.lan:1,https://*.lan")).unwrap_err();
        assert!(err.contains("private = true needs an exact host"), "{err}");

        let reach = |rules: Vec<HostRule>, url: &'static str| async move {
            let uri: http::Uri = url.parse().unwrap();
            let host = Host::read(uri.host().unwrap()).unwrap();
            let port = uri.port_u16().unwrap_or(443);
            OutboundPolicy::new("reminders", rules)
                .resolve(uri.scheme_str().unwrap(), &host, port)
                .await
        };
        // Public https anywhere; loopback only when listed, and only what is listed.
        assert!(reach(listed.clone(), "https://8.8.8.8").await.is_ok());
        assert!(reach(listed.clone(), "http://127.0.0.1:8080").await.is_ok());
        assert!(reach(listed.clone(), "http://localhost:9000").await.is_ok());
        assert!(matches!(
            reach(listed.clone(), "http://127.0.0.1:8081").await,
            Err(ResolveError::Denied(Denied::NotAllowed(_)))
        ));
        for url in [
            "https://127.0.0.1",
            "https://localhost:8443",
            "https://10.0.0.1",
        ] {
            assert!(
                matches!(
                    reach(rules_with(None).unwrap(), url).await,
                    Err(ResolveError::Denied(Denied::NonPublic(..)))
                ),
                "{url} is private and not listed"
            );
        }

        // Other entries with a template are read whole, commas and all.
        let one = Manifest::parse(
            "name = \"s\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = [\"{{ a }}/x\"]\n\
             [variables]\na = { default = \"https://a.example,https://b.example\" }\n",
        )
        .unwrap();
        let env = BTreeMap::new();
        assert!(
            one.outbound_rules(&Variables::resolve(&one.name, &one.variables, &env))
                .is_err()
        );
    }

    /// `allowed_outbound_hosts` entries: (the list as written, the value of the
    /// `nas` variable set in the environment, the rules it gives as (URL, private)
    /// or the error naming what is wrong).
    #[test]
    fn outbound_entries_as_strings_and_tables() {
        let marked = Ok(vec![("http://nas.lan:8080", true)]);
        let cases = [
            (
                r#"["https://a.example", { url = "http://nas.lan:8080", private = true }]"#,
                None,
                Ok(vec![
                    ("https://a.example", false),
                    ("http://nas.lan:8080", true),
                ]),
            ),
            (
                r#"[{ url = "https://a.example" }, { url = "http://[::1]:1", private = false }]"#,
                None,
                Ok(vec![
                    ("https://a.example", false),
                    ("http://[::1]:1", false),
                ]),
            ),
            // A template in `url`, marked private; the environment can point it elsewhere.
            (
                r#"[{ url = "{{ nas }}", private = true }]"#,
                None,
                marked.clone(),
            ),
            (
                r#"[{ url = "{{ nas }}/api", private = true }]"#,
                Some("http://[fd00::5]:81"),
                Ok(vec![("http://[fd00::5]:81", true)]),
            ),
            // A wildcard with `private = true` is refused, before or after interpolation.
            (
                r#"[{ url = "https://*:*", private = true }]"#,
                None,
                Err("allowed_outbound_hosts[0]: `https://*:*`: private = true needs an exact host"),
            ),
            (
                r#"[{ url = "http://*.{{ nas }}", private = true }]"#,
                None,
                Err(
                    "allowed_outbound_hosts[0]: `http://*.{{ nas }}`: private = true needs an exact",
                ),
            ),
            (
                r#"[{ url = "{{ nas }}", private = true }]"#,
                Some("http://nas.lan:*"),
                Err("`http://nas.lan:*`: private = true needs an exact host"),
            ),
            (
                r#"[{ url = "https://a", privat = true }]"#,
                None,
                Err("unknown field `privat`"),
            ),
            (r#"[{ private = true }]"#, None, Err("missing field `url`")),
            (
                r#"[{ url = "{{ x }}" }]"#,
                None,
                Err("`{{ x }}` is not a declared variable"),
            ),
            (r#"["http://0x7f.1:80"]"#, None, Err("as in 127.0.0.1")),
        ];
        for (list, nas, expected) in cases {
            let text = format!(
                "name = \"s\"\nversion = \"0.1.0\"\nallowed_outbound_hosts = {list}\n\
                 [variables]\nnas = {{ default = \"http://nas.lan:8080\" }}\n"
            );
            let env: BTreeMap<String, String> = nas
                .map(|v| ("HAM_PLUGIN_S_NAS".to_string(), v.to_string()))
                .into_iter()
                .collect();
            let rules = Manifest::parse(&text)
                .map_err(|e| e.to_string())
                .and_then(|m| m.outbound_rules(&Variables::resolve(&m.name, &m.variables, &env)));
            match (rules, expected) {
                (Ok(rules), Ok(expected)) => {
                    let expected: Vec<HostRule> = expected
                        .iter()
                        .map(|(url, private)| HostRule::parse(url, *private).unwrap())
                        .collect();
                    assert_eq!(rules, expected, "{list}");
                }
                (Err(err), Err(why)) => assert!(err.contains(why), "{list}: {err}"),
                (got, expected) => panic!("{list}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
