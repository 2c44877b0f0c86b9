//! Settings: what an operator chooses, read once at start.
//!
//! Three layers, each over the one before: the defaults, then a TOML file
//! (`--config FILE` or `HAM_CONFIG`), then the environment. The `settings!`
//! list below is the one place that names each setting: its file key, type,
//! default, environment variable and what it does. Every key can be set both
//! ways: the variable is the key upper-cased with `HAM_` in front
//! (`job_max_attempts`, `HAM_JOB_MAX_ATTEMPTS`); `database_url` and
//! `anthropic_*` also answer to their conventional names (`DATABASE_URL`,
//! `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`), and the `HAM_` name wins when
//! both are set. Plugin variables are the `[plugin.<plugin>]` table and
//! `HAM_PLUGIN_<PLUGIN>_<VARIABLE>`.
//!
//! - The file: a key the list does not name is refused, naming it, as is a value
//!   of the wrong type (`job_workers = "two"`). Lists are TOML arrays.
//! - The environment: an empty variable counts as unset. Numbers are digits,
//!   booleans `true`/`false`/`1`/`0`, lists comma-separated
//!   (`HAM_TRUSTED_PROXIES=10.0.0.0/8,fd00::/8`), durations `10s`, `90m`, `7d`.
//!   A bad value is refused naming the variable. Other `HAM_*` variables are
//!   ignored (they belong to the tests, the build or the shell).
//! - Secrets (the database URL, the admin token, the secret key, the LLM keys,
//!   plugin variables) are [`Secret`]s: `<redacted>` in `Debug` and in
//!   [`Settings::effective_toml`] (`ham config`), which shows the database URL
//!   with its password hidden.
//!
//! `ham.example.toml` at the repository root documents every key; a test keeps
//! it, and the README's table, naming every key this list has.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Lists every setting once; generates [`Keys`] (the settings as the file
/// spells them), its defaults, `KEYS` (key, variable, older names) and
/// `Keys::set`, which reads one key from any serde source (a TOML value, an
/// environment value).
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $key:ident: $ty:ty = $default:expr, $env:literal $(or $alias:literal)?;
    )+) => {
        /// Every setting under its file key, as the layers leave it.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        struct Keys {
            $( $(#[doc = $doc])+ $key: $ty, )+
            /// `[plugin.<plugin>] <variable> = "…"` / `HAM_PLUGIN_<PLUGIN>_<VARIABLE>`,
            /// by environment name.
            #[serde(skip)]
            plugin: BTreeMap<String, Secret>,
        }

        impl Default for Keys {
            fn default() -> Self {
                Self { $( $key: $default, )+ plugin: BTreeMap::new() }
            }
        }

        /// Each key, its environment variable, and the older names it answers to.
        const KEYS: &[(&str, &str, &[&str])] =
            &[ $( (stringify!($key), $env, &[$($alias)?]) ),+ ];

        impl Keys {
            /// Sets `key` from `value`; false when there is no such key.
            fn set<'de, D: Deserializer<'de>>(
                &mut self,
                key: &str,
                value: D,
            ) -> Result<bool, D::Error> {
                match key {
                    $( stringify!($key) => self.$key = <$ty as Deserialize>::deserialize(value)?, )+
                    _ => return Ok(false),
                }
                Ok(true)
            }
        }
    };
}

settings! {
    /// Where `ham serve` listens (and where `ham healthcheck` knocks).
    addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3001)), "HAM_ADDR";
    /// Where `GET /metrics` is served, on a listener of its own (never on
    /// `addr`); unset: nowhere.
    metrics_addr: Option<SocketAddr> = None, "HAM_METRICS_ADDR";
    /// The URL people reach this server at, for links sent outside the app
    /// (reminders' done links and habit links); unset: `http://` and `addr`
    /// (`127.0.0.1` for an unspecified address).
    public_url: Option<String> = None, "HAM_PUBLIC_URL";
    /// The data directory: the SQLite file, the compiled-component cache, `secret.key`.
    data_dir: PathBuf = PathBuf::from("./data"), "HAM_DATA_DIR";
    /// `sqlite://…` or `postgres://…`; unset: `sqlite://<data_dir>/ham.db`.
    database_url: Option<Secret> = None, "HAM_DATABASE_URL" or "DATABASE_URL";
    /// Bearer token for `/api/admin/*` and `ham plugin`; unset turns those routes off.
    admin_token: Option<Secret> = None, "HAM_ADMIN_TOKEN";
    /// The root of the keys that seal plugin secrets at rest and sign grants (at
    /// least 32 bytes); unset: a random key generated once into
    /// `<data_dir>/secret.key`. Replicas must share it.
    secret_key: Option<Secret> = None, "HAM_SECRET_KEY";
    /// A plugin directory to watch and install from (development; `serve --watch`).
    plugins_dir: Option<PathBuf> = None, "HAM_PLUGINS_DIR";
    /// The largest plugin upload, in bytes.
    max_upload_bytes: usize = 32 * 1024 * 1024, "HAM_MAX_UPLOAD_BYTES";
    /// An upload asking for more than the active version (hosts, llm, routes,
    /// limits…): `auto` activates it, `required` holds it for an admin's approval.
    plugin_approval: PluginApproval = PluginApproval::Auto, "HAM_PLUGIN_APPROVAL";
    /// Who a request comes from: `local` accounts, `forward-auth` headers from a
    /// trusted proxy, or `oidc` bearer JWTs; or an identity provider's mode with
    /// `local` (`forward-auth,local`): see [`AuthModes`].
    auth: AuthModes = AuthModes::default(), "HAM_AUTH";
    /// The proxies in front (CIDRs): their forward-auth headers are believed and
    /// their `X-Forwarded-For` names the client.
    trusted_proxies: Vec<Cidr> = Vec::new(), "HAM_TRUSTED_PROXIES";
    /// forward-auth: the header with the proxy's stable user id (what identifies a user).
    forward_auth_uid_header: String = "X-authentik-uid".into(), "HAM_FORWARD_AUTH_UID_HEADER";
    /// forward-auth: the header with the username (what a user is called).
    forward_auth_user_header: String = "X-authentik-username".into(),
        "HAM_FORWARD_AUTH_USER_HEADER";
    /// forward-auth: the header with the email address.
    forward_auth_email_header: String = "X-authentik-email".into(), "HAM_FORWARD_AUTH_EMAIL_HEADER";
    /// forward-auth: the header with the `|`-separated groups.
    forward_auth_groups_header: String = "X-authentik-groups".into(),
        "HAM_FORWARD_AUTH_GROUPS_HEADER";
    /// forward-auth and oidc: members of this group are admins.
    admin_group: Option<String> = None, "HAM_ADMIN_GROUP";
    /// oidc: the expected issuer (`iss`); required with `auth = "oidc"`.
    oidc_issuer: Option<String> = None, "HAM_OIDC_ISSUER";
    /// oidc: the expected audience (`aud`); required with `auth = "oidc"`.
    oidc_audience: Option<String> = None, "HAM_OIDC_AUDIENCE";
    /// oidc: the issuer's JWKS; unset: discovered from
    /// `<issuer>/.well-known/openid-configuration`.
    oidc_jwks_url: Option<String> = None, "HAM_OIDC_JWKS_URL";
    /// Anyone may register, not just the first user and then admins.
    open_registration: bool = false, "HAM_OPEN_REGISTRATION";
    /// Apply pending migrations at start; `false` when a `ham migrate` step owns
    /// them (the server then waits up to a minute for the schema, then refuses to start).
    migrate_on_start: bool = true, "HAM_MIGRATE_ON_START";
    /// Job workers per process.
    job_workers: usize = 2, "HAM_JOB_WORKERS";
    /// Attempts a job gets before it is dead.
    job_max_attempts: i64 = 5, "HAM_JOB_MAX_ATTEMPTS";
    /// The first retry delay in milliseconds, doubling per attempt (±25% jitter, at most 1 h).
    job_backoff_ms: u64 = 1000, "HAM_JOB_BACKOFF_MS";
    /// A claimed job's lease in milliseconds, renewed while it runs; longer than
    /// the longest plugin `timeout_ms`.
    job_lease_ms: i64 = 360_000, "HAM_JOB_LEASE_MS";
    /// How long finished jobs (and the webhook payloads they carry) are kept.
    job_retention: Span = Span(Duration::from_secs(7 * 24 * 3600)), "HAM_JOB_RETENTION";
    /// A client must send a request's headers within this time (it also closes
    /// idle keep-alive connections).
    header_timeout: Span = Span(Duration::from_secs(10)), "HAM_HEADER_TIMEOUT";
    /// A client must send a request's body within this time after its headers.
    body_timeout: Span = Span(Duration::from_secs(60)), "HAM_BODY_TIMEOUT";
    /// The language model behind `ham:plugin/llm`: `none`, `anthropic` or `openai`
    /// (any OpenAI-compatible server).
    llm_provider: ProviderKind = ProviderKind::None, "HAM_LLM_PROVIDER";
    /// The default model; unset: `claude-sonnet-4-5` (anthropic), `llama3.2` (openai).
    llm_model: Option<String> = None, "HAM_LLM_MODEL";
    /// openai: the server, e.g. `http://127.0.0.1:11434/v1`.
    llm_base_url: Option<String> = None, "HAM_LLM_BASE_URL";
    /// openai: its key, if it wants one (sent as a bearer token).
    llm_api_key: Option<Secret> = None, "HAM_LLM_API_KEY";
    /// anthropic: the API key.
    anthropic_api_key: Option<Secret> = None, "HAM_ANTHROPIC_API_KEY" or "ANTHROPIC_API_KEY";
    /// anthropic: the API's base URL.
    anthropic_base_url: String = "https://api.anthropic.com".into(),
        "HAM_ANTHROPIC_BASE_URL" or "ANTHROPIC_BASE_URL";
    /// Input plus output tokens each user may use per UTC day; unset or 0: no budget.
    llm_daily_tokens: Option<u64> = None, "HAM_LLM_DAILY_TOKENS";
    /// Tokens per UTC day of all calls made for no user together; unset: the same
    /// as `llm_daily_tokens`; 0 refuses them.
    llm_no_user_daily_tokens: Option<u64> = None, "HAM_LLM_NO_USER_DAILY_TOKENS";
    /// Models a plugin may ask for instead of the default.
    llm_allowed_models: Vec<String> = Vec::new(), "HAM_LLM_ALLOWED_MODELS";
    /// The longest wait, in milliseconds, for a reply to start, for the next piece
    /// of a stream, and for a whole reply.
    llm_timeout_ms: u64 = 120_000, "HAM_LLM_TIMEOUT_MS";
    /// Retries after a 429, 529, 5xx or refused connection.
    llm_max_retries: u32 = 3, "HAM_LLM_MAX_RETRIES";
    /// The first retry delay in milliseconds without `retry-after`, doubling per retry.
    llm_retry_base_ms: u64 = 500, "HAM_LLM_RETRY_BASE_MS";
    /// The log filter (`tracing` syntax, e.g. `info,plugin=debug`).
    log: String = "info".into(), "HAM_LOG";
    /// `text`, or `json`: one JSON object per line with the span fields.
    log_format: LogFormat = LogFormat::Text, "HAM_LOG_FORMAT";
}

/// What the host runs with: the layers read, checked and typed. Each field is a
/// key of the settings file (see `ham.example.toml`) and a `HAM_*` variable.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `addr`, `HAM_ADDR`.
    pub addr: SocketAddr,
    /// `metrics_addr`, `HAM_METRICS_ADDR`: the metrics listener; none when unset.
    pub metrics_addr: Option<SocketAddr>,
    /// `public_url`, `HAM_PUBLIC_URL`: without a trailing `/`; unset: derived
    /// from `addr`.
    pub public_url: String,
    /// `data_dir`, `HAM_DATA_DIR`.
    pub data_dir: PathBuf,
    /// `database_url`, `HAM_DATABASE_URL` or `DATABASE_URL`; see [`Settings::database_url()`].
    pub database_url: Option<Secret>,
    /// `admin_token`, `HAM_ADMIN_TOKEN`; unset turns the admin routes off.
    pub admin_token: Option<Secret>,
    /// `secret_key`, `HAM_SECRET_KEY`; unset: generated into `<data dir>/secret.key`.
    pub secret_key: Option<Secret>,
    /// `plugins_dir`, `HAM_PLUGINS_DIR` (or `serve --watch`).
    pub plugins_dir: Option<PathBuf>,
    /// `max_upload_bytes`, `HAM_MAX_UPLOAD_BYTES`.
    pub max_upload_bytes: usize,
    /// `plugin_approval`, `HAM_PLUGIN_APPROVAL`.
    pub plugin_approval: PluginApproval,
    /// `job_max_attempts`, `HAM_JOB_MAX_ATTEMPTS`.
    pub job_max_attempts: i64,
    /// `job_backoff_ms`, `HAM_JOB_BACKOFF_MS`.
    pub job_backoff_ms: u64,
    /// `job_lease_ms`, `HAM_JOB_LEASE_MS`.
    pub job_lease_ms: i64,
    /// `job_workers`, `HAM_JOB_WORKERS`.
    pub job_workers: usize,
    /// `job_retention`, `HAM_JOB_RETENTION`.
    pub job_retention: Duration,
    /// `header_timeout`, `HAM_HEADER_TIMEOUT`.
    pub header_timeout: Duration,
    /// `body_timeout`, `HAM_BODY_TIMEOUT`.
    pub body_timeout: Duration,
    /// `auth`, `HAM_AUTH`.
    pub auth: AuthModes,
    /// `trusted_proxies`, `HAM_TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<Cidr>,
    /// `forward_auth_*_header`, `HAM_FORWARD_AUTH_*_HEADER`.
    pub forward_auth_headers: ForwardAuthHeaders,
    /// `oidc_issuer`, `HAM_OIDC_ISSUER`; with `oidc_audience`, required by `oidc`.
    pub oidc_issuer: Option<String>,
    /// `oidc_audience`, `HAM_OIDC_AUDIENCE`.
    pub oidc_audience: Option<String>,
    /// `oidc_jwks_url`, `HAM_OIDC_JWKS_URL`; unset: discovered.
    pub oidc_jwks_url: Option<String>,
    /// `admin_group`, `HAM_ADMIN_GROUP`.
    pub admin_group: Option<String>,
    /// `open_registration`, `HAM_OPEN_REGISTRATION`.
    pub open_registration: bool,
    /// `migrate_on_start`, `HAM_MIGRATE_ON_START`.
    pub migrate_on_start: bool,
    /// `[plugin.<plugin>]`, `HAM_PLUGIN_<PLUGIN>_<VARIABLE>`: plugin variable
    /// values by environment name; values redacted.
    pub plugin_env: BTreeMap<String, Secret>,
    /// `llm_*` and `anthropic_*`: the language model behind `ham:plugin/llm`.
    pub llm: LlmSettings,
    /// `log`, `HAM_LOG`: a valid `tracing` filter.
    pub log: String,
    /// `log_format`, `HAM_LOG_FORMAT`.
    pub log_format: LogFormat,
}

impl Default for Settings {
    fn default() -> Self {
        Keys::default().into_settings()
    }
}

/// A secret value: `<redacted>` in `Debug` and when serialized, so neither logs
/// nor `ham config` can show it; [`Secret::expose`] is the one way to read it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// One way requests are tied to users (`local`, `forward-auth`, `oidc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Accounts and session cookies, managed by HAM.
    Local,
    /// A proxy in front (Authentik with Traefik) names the user in headers.
    ForwardAuth,
    /// Bearer JWTs from an OpenID Connect issuer.
    Oidc,
}

impl AuthMode {
    /// The name `HAM_AUTH` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Local => "local",
            AuthMode::ForwardAuth => "forward-auth",
            AuthMode::Oidc => "oidc",
        }
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "local" => Ok(Self::Local),
            "forward-auth" => Ok(Self::ForwardAuth),
            "oidc" => Ok(Self::Oidc),
            other => Err(format!(
                "`{other}` is not an identity mode: local, forward-auth or oidc"
            )),
        }
    }
}

/// `auth`: the identity modes requests are known by, one, or two as a
/// comma-separated list (`HAM_AUTH=forward-auth,local`).
///
/// Accepted: any one mode; `forward-auth` or `oidc` together with `local`
/// (mixed identity: a request carrying the identity provider's credential is
/// that user, any other is known by its session cookie, as in `local`).
/// Refused, naming the fault: an empty list, an unknown name, a mode named twice,
/// and `forward-auth` with `oidc` (two identity providers would give one person
/// two accounts, one per issuer; personal API tokens already serve scripts in
/// every mode). The order written does not matter: the modes are kept, asked and
/// shown identity provider first, `local` last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthModes(Vec<AuthMode>);

impl AuthModes {
    /// The modes, identity provider first; refused as described on [`AuthModes`].
    pub fn new(modes: &[AuthMode]) -> Result<Self, String> {
        if modes.is_empty() {
            return Err("names no identity mode: local, forward-auth or oidc".into());
        }
        for (i, mode) in modes.iter().enumerate() {
            if modes[..i].contains(mode) {
                return Err(format!("`{}` is named twice", mode.as_str()));
            }
        }
        let providers: Vec<AuthMode> = modes
            .iter()
            .copied()
            .filter(|m| *m != AuthMode::Local)
            .collect();
        if providers.len() > 1 {
            return Err(format!(
                "`{}` cannot be combined with `{}`: pick one identity provider \
                 (each would make its own account for the same person); combine \
                 it with `local` for people who sign in with a password",
                providers[0].as_str(),
                providers[1].as_str()
            ));
        }
        let mut ordered = providers;
        if modes.contains(&AuthMode::Local) {
            ordered.push(AuthMode::Local);
        }
        Ok(Self(ordered))
    }

    /// The modes in the order they are asked: the identity provider's, then `local`.
    pub fn iter(&self) -> impl Iterator<Item = AuthMode> + '_ {
        self.0.iter().copied()
    }

    /// Whether `mode` is one of them.
    pub fn contains(&self, mode: AuthMode) -> bool {
        self.0.contains(&mode)
    }

    /// Their names, as `GET /api/auth/config` lists them.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(AuthMode::as_str).collect()
    }
}

impl Default for AuthModes {
    fn default() -> Self {
        Self(vec![AuthMode::Local])
    }
}

impl From<AuthMode> for AuthModes {
    fn from(mode: AuthMode) -> Self {
        Self(vec![mode])
    }
}

impl std::fmt::Display for AuthModes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl std::str::FromStr for AuthModes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let modes = s
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<AuthMode>, String>>()?;
        Self::new(&modes)
    }
}

/// The file and the environment write the modes as one string, comma-separated;
/// the file may also give a list (`auth = ["forward-auth", "local"]`).
impl<'de> Deserialize<'de> for AuthModes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Modes;
        impl<'de> Visitor<'de> for Modes {
            type Value = AuthModes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("identity modes, such as \"local\" or \"forward-auth,local\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<AuthModes, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<AuthModes, A::Error> {
                let mut modes = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    modes.push(name.trim().parse().map_err(de::Error::custom)?);
                }
                AuthModes::new(&modes).map_err(de::Error::custom)
            }
        }
        d.deserialize_any(Modes)
    }
}

impl Serialize for AuthModes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether an upload that asks for more than the active version waits for an
/// admin (`auto`, `required`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginApproval {
    /// It goes live; its additions are reported.
    #[default]
    Auto,
    /// It is stored and waits for `POST …/versions/{version}/approve`.
    Required,
}

/// How log lines are written (`text`, `json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the fields of the current span and its parents.
    Json,
}

#[derive(Debug, Clone)]
pub struct ForwardAuthHeaders {
    /// The proxy's stable id for the user: what identifies them.
    pub uid: String,
    /// Their username: what they are called.
    pub user: String,
    pub email: String,
    pub groups: String,
}

impl Default for ForwardAuthHeaders {
    fn default() -> Self {
        Settings::default().forward_auth_headers
    }
}

/// A positive duration written `10s`, `90m` or `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span(Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            Ok(span) if !span.is_zero() => Ok(Self(span)),
            _ => Err(de::Error::custom(format!(
                "`{text}` is not a positive duration such as 10s, 90m or 7d"
            ))),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// Which provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProviderKind {
    /// No provider: calls say how to configure one.
    #[default]
    None,
    /// Anthropic's Messages API.
    Anthropic,
    /// An OpenAI-compatible chat completions server.
    OpenAi,
}

impl ProviderKind {
    /// The name `HAM_LLM_PROVIDER` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::None => "none",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAi => "openai",
        }
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "none" => Ok(Self::None),
            "anthropic" => Ok(Self::Anthropic),
            "openai" => Ok(Self::OpenAi),
            other => Err(format!("`{other}` is not one of none, anthropic, openai")),
        }
    }
}

/// The LLM settings (part of [`Settings`]); [`crate::llm`] reads them.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// `HAM_LLM_PROVIDER`: `none` (default), `anthropic`, `openai`.
    pub provider: ProviderKind,
    /// `HAM_LLM_MODEL`; default per provider.
    pub model: Option<String>,
    /// `ANTHROPIC_API_KEY`.
    pub anthropic_api_key: Option<Secret>,
    /// `ANTHROPIC_BASE_URL`, default `https://api.anthropic.com`.
    pub anthropic_base_url: String,
    /// `HAM_LLM_BASE_URL`: the OpenAI-compatible server, e.g. `http://127.0.0.1:11434/v1`.
    pub base_url: Option<String>,
    /// `HAM_LLM_API_KEY`: its key, if it wants one (sent as a bearer token).
    pub api_key: Option<Secret>,
    /// `HAM_LLM_DAILY_TOKENS`: input plus output tokens a user may use per UTC day.
    pub daily_tokens: Option<u64>,
    /// `HAM_LLM_NO_USER_DAILY_TOKENS`: the tokens per UTC day of all calls made
    /// for no user together (jobs acting for nobody, routes with `auth = "none"`).
    /// None: the same number as `daily_tokens`; 0 refuses such calls.
    pub no_user_daily_tokens: Option<u64>,
    /// `HAM_LLM_ALLOWED_MODELS`: models a request may name instead of the default.
    pub allowed_models: Vec<String>,
    /// `HAM_LLM_TIMEOUT_MS`: the longest wait for a reply to start, for the next
    /// piece of a stream, and for a whole non-streamed completion. Default 120000.
    pub timeout_ms: u64,
    /// `HAM_LLM_MAX_RETRIES`: retries after a 429, 529 or 5xx. Default 3.
    pub max_retries: u32,
    /// `HAM_LLM_RETRY_BASE_MS`: the first retry delay without `retry-after`;
    /// doubles per retry. Default 500.
    pub retry_base_ms: u64,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            provider: ProviderKind::None,
            model: None,
            anthropic_api_key: None,
            anthropic_base_url: "https://api.anthropic.com".into(),
            base_url: None,
            api_key: None,
            daily_tokens: None,
            no_user_daily_tokens: None,
            allowed_models: Vec::new(),
            timeout_ms: 120_000,
            max_retries: 3,
            retry_base_ms: 500,
        }
    }
}

impl LlmSettings {
    /// The daily budget of calls for `user` (none: calls for no user), if any.
    pub fn budget_for(&self, user: Option<&str>) -> Option<u64> {
        match user {
            Some(_) => self.daily_tokens,
            None => self.no_user_daily_tokens.or(self.daily_tokens),
        }
    }
}

/// A database URL with any password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Settings read the provider by name (`none`, `anthropic`, `openai`).
impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for ProviderKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An address range, `10.0.0.0/8`, `fd00::/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: std::net::IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s.split_once('/').map_or((s, None), |(ip, p)| (ip, Some(p)));
        let network: std::net::IpAddr = ip
            .parse()
            .map_err(|_| format!("`{s}` is not an address or CIDR"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has a bad prefix length"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Cidr {
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Why the settings were refused; each names the file key or the variable.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read settings file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid settings file {0}: {1}")]
    File(PathBuf, toml::de::Error),
    #[error("settings file {path}: unknown key `{key}` (ham.example.toml lists every key)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("settings file {path}: invalid `{key}`: {why}")]
    FileValue {
        path: PathBuf,
        key: String,
        why: String,
    },
    /// A bad environment value, named by its variable.
    #[error("invalid {0}: {1}")]
    Env(&'static str, String),
    /// A value that is fine alone but not with the others, or not usable.
    #[error("invalid `{key}` ({env}): {why}")]
    Invalid {
        key: &'static str,
        env: &'static str,
        why: String,
    },
    #[error("cannot show the settings: {0}")]
    Show(#[from] toml::ser::Error),
}

impl Keys {
    /// The defaults, then `file`, then `env`.
    fn layered(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut keys = Keys::default();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| SettingsError::Read(path.into(), e))?;
            keys.read_file(path, &text)?;
        }
        keys.read_env(env.into_iter().collect())?;
        keys.check()?;
        Ok(keys)
    }

    fn read_file(&mut self, path: &Path, text: &str) -> Result<(), SettingsError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e| SettingsError::File(path.into(), e))?;
        for (key, value) in table {
            let result = if key == "plugin" {
                read_plugin_table("plugin", "HAM_PLUGIN", value, &mut self.plugin).map(|()| true)
            } else {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                self.set(&key, value)
                    .map_err(|e| naming(&text, e.message().to_string()))
            };
            match result {
                Ok(true) => {}
                Ok(false) => {
                    return Err(SettingsError::UnknownKey {
                        path: path.into(),
                        key,
                    });
                }
                Err(why) => {
                    return Err(SettingsError::FileValue {
                        path: path.into(),
                        key,
                        why,
                    });
                }
            }
        }
        Ok(())
    }

    fn read_env(&mut self, env: BTreeMap<String, String>) -> Result<(), SettingsError> {
        for &(key, name, older) in KEYS {
            // The older name first, so that the `HAM_` one wins.
            for &name in older.iter().chain([&name]) {
                if let Some(value) = env.get(name).filter(|v| !v.is_empty()) {
                    self.set(key, EnvValue(value))
                        .map_err(|e| SettingsError::Env(name, naming(value, e.to_string())))?;
                }
            }
        }
        for (name, value) in env {
            if name.starts_with("HAM_PLUGIN_") && !KEYS.iter().any(|(_, env, _)| *env == name) {
                self.plugin.insert(name, Secret(value));
            }
        }
        Ok(())
    }

    /// What no single value can say wrong.
    fn check(&self) -> Result<(), SettingsError> {
        if self.auth.contains(AuthMode::Oidc)
            && (given(self.oidc_issuer.clone()).is_none()
                || given(self.oidc_audience.clone()).is_none())
        {
            return Err(SettingsError::Invalid {
                key: "auth",
                env: "HAM_AUTH",
                why: "`oidc` needs oidc_issuer and oidc_audience \
                      (HAM_OIDC_ISSUER, HAM_OIDC_AUDIENCE)"
                    .into(),
            });
        }
        if let Some(metrics) = self.metrics_addr
            && metrics.port() != 0
            && metrics.port() == self.addr.port()
            && (metrics.ip() == self.addr.ip()
                || metrics.ip().is_unspecified()
                || self.addr.ip().is_unspecified())
        {
            return Err(SettingsError::Invalid {
                key: "metrics_addr",
                env: "HAM_METRICS_ADDR",
                why: format!(
                    "`{metrics}` is where `addr` listens ({}); metrics get a port of their own, \
                     such as 127.0.0.1:9464",
                    self.addr
                ),
            });
        }
        if let Some(url) = given(self.public_url.clone())
            && !is_base_url(&url)
        {
            return Err(SettingsError::Invalid {
                key: "public_url",
                env: "HAM_PUBLIC_URL",
                why: format!(
                    "`{url}` is not an http:// or https:// URL with a host (and no query), \
                     as in https://ham.example.com"
                ),
            });
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return Err(SettingsError::Invalid {
                key: "log",
                env: "HAM_LOG",
                why: format!("`{}` is not a log filter: {e}", self.log),
            });
        }
        Ok(())
    }

    fn into_settings(self) -> Settings {
        let trimmed = |url: String| url.trim_end_matches('/').to_string();
        let public_url = match given(self.public_url) {
            Some(url) => trimmed(url),
            None => derived_public_url(self.addr),
        };
        Settings {
            addr: self.addr,
            metrics_addr: self.metrics_addr,
            public_url,
            data_dir: self.data_dir,
            database_url: given(self.database_url),
            admin_token: given(self.admin_token),
            secret_key: given(self.secret_key),
            plugins_dir: given(self.plugins_dir),
            max_upload_bytes: self.max_upload_bytes,
            plugin_approval: self.plugin_approval,
            job_max_attempts: self.job_max_attempts,
            job_backoff_ms: self.job_backoff_ms,
            job_lease_ms: self.job_lease_ms,
            job_workers: self.job_workers,
            job_retention: self.job_retention.0,
            header_timeout: self.header_timeout.0,
            body_timeout: self.body_timeout.0,
            auth: self.auth,
            trusted_proxies: self.trusted_proxies,
            forward_auth_headers: ForwardAuthHeaders {
                uid: self.forward_auth_uid_header,
                user: self.forward_auth_user_header,
                email: self.forward_auth_email_header,
                groups: self.forward_auth_groups_header,
            },
            oidc_issuer: given(self.oidc_issuer),
            oidc_audience: given(self.oidc_audience),
            oidc_jwks_url: given(self.oidc_jwks_url),
            admin_group: given(self.admin_group),
            open_registration: self.open_registration,
            migrate_on_start: self.migrate_on_start,
            plugin_env: self.plugin,
            llm: LlmSettings {
                provider: self.llm_provider,
                model: given(self.llm_model),
                anthropic_api_key: given(self.anthropic_api_key),
                anthropic_base_url: trimmed(self.anthropic_base_url),
                base_url: given(self.llm_base_url).map(trimmed),
                api_key: given(self.llm_api_key),
                daily_tokens: self.llm_daily_tokens.filter(|n| *n != 0),
                no_user_daily_tokens: self.llm_no_user_daily_tokens,
                allowed_models: self.llm_allowed_models,
                timeout_ms: self.llm_timeout_ms,
                max_retries: self.llm_max_retries,
                retry_base_ms: self.llm_retry_base_ms,
            },
            log: self.log,
            log_format: self.log_format,
        }
    }

    /// Every key as TOML, in the list's order; unset keys as comments, secrets
    /// `<redacted>`, the database URL with its password hidden.
    fn to_toml(&self) -> Result<String, SettingsError> {
        let mut table = toml::Table::try_from(self)?;
        if let Some(url) = &self.database_url {
            table.insert(
                "database_url".into(),
                shown_database_url(url.expose()).into(),
            );
        }
        let mut out = String::new();
        for (key, _, _) in KEYS {
            let _ = match table.get(*key) {
                Some(value) => writeln!(out, "{key} = {value}"),
                None => writeln!(out, "# {key} is not set"),
            };
        }
        if !self.plugin.is_empty() {
            out.push_str("\n[plugin]\n");
            for name in self.plugin.keys() {
                let key = name.trim_start_matches("HAM_PLUGIN_").to_lowercase();
                let _ = writeln!(out, "{key} = \"{REDACTED}\"");
            }
        }
        Ok(out)
    }
}

/// Whether `url` can be the base of the links the server sends: `http(s)://`,
/// a host, maybe a path, no query or fragment.
fn is_base_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri.query().is_none()
        && !url.contains('#')
}

/// The public URL when none is set: the listen address over plain HTTP, with
/// `127.0.0.1` (or `[::1]`) for an address that listens everywhere, since no
/// one can open a link to `0.0.0.0`.
fn derived_public_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The database URL as `ham config` shows it: the password hidden (as in logs),
/// and the query, which may carry one, too.
fn shown_database_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{}?{REDACTED}", redact_url(base)),
        None => redact_url(url),
    }
}

/// `why` a value was refused, naming the value unless it already names it (or
/// the part of it that is wrong, in backquotes).
fn naming(value: &str, why: String) -> String {
    if why.contains(value) || why.contains('`') {
        why
    } else {
        format!("`{value}`: {why}")
    }
}

/// `[plugin.<plugin>] <variable> = "value"` (or any nesting: `plugin.a_b = ""`
/// too) as `HAM_PLUGIN_<PLUGIN>_<VARIABLE>` names; numbers and booleans as text.
fn read_plugin_table(
    path: &str,
    name: &str,
    value: toml::Value,
    out: &mut BTreeMap<String, Secret>,
) -> Result<(), String> {
    let text = match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let name = format!("{name}_{key}").to_uppercase().replace('-', "_");
                read_plugin_table(&format!("{path}.{key}"), &name, value, out)?;
            }
            return Ok(());
        }
        _ if path == "plugin" => {
            return Err("must be a table: [plugin.<plugin>] <variable> = \"value\"".into());
        }
        toml::Value::String(text) => text,
        value @ (toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)) => {
            value.to_string()
        }
        _ => return Err(format!("`{path}` must be a string")),
    };
    out.insert(name.to_string(), Secret(text));
    Ok(())
}

/// Text that is blank counts as unset.
trait Blank {
    fn is_blank(&self) -> bool;
}

impl Blank for String {
    fn is_blank(&self) -> bool {
        self.trim().is_empty()
    }
}

impl Blank for Secret {
    fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl Blank for PathBuf {
    fn is_blank(&self) -> bool {
        self.as_os_str().is_empty()
    }
}

fn given<T: Blank>(value: Option<T>) -> Option<T> {
    value.filter(|v| !v.is_blank())
}

/// One environment value, read as the setting it sets: numbers and booleans
/// (`true`, `false`, `1`, `0`) parsed, lists split at commas, the rest as text.
struct EnvValue<'a>(&'a str);

impl EnvValue<'_> {
    fn number<T: std::str::FromStr>(&self) -> Result<T, de::value::Error> {
        self.0
            .parse()
            .map_err(|_| de::Error::custom(format!("`{}` is not a number", self.0)))
    }
}

macro_rules! env_numbers {
    ($($method:ident $ty:ty => $visit:ident),+) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            visitor.$visit(self.number::<$ty>()?)
        }
    )+};
}

impl<'de> Deserializer<'de> for EnvValue<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_str(self.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            "1" | "true" => visitor.visit_bool(true),
            "0" | "false" => visitor.visit_bool(false),
            other => Err(de::Error::custom(format!("`{other}` is not true or false"))),
        }
    }

    env_numbers!(
        deserialize_u8 u64 => visit_u64, deserialize_u16 u64 => visit_u64,
        deserialize_u32 u64 => visit_u64, deserialize_u64 u64 => visit_u64,
        deserialize_i8 i64 => visit_i64, deserialize_i16 i64 => visit_i64,
        deserialize_i32 i64 => visit_i64, deserialize_i64 i64 => visit_i64
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let items = self.0.split(',').map(str::trim).filter(|s| !s.is_empty());
        visitor.visit_seq(de::value::SeqDeserializer::new(items.map(EnvValue)))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(de::value::StrDeserializer::<Self::Error>::new(self.0))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        f32 f64 char str string bytes byte_buf unit unit_struct tuple tuple_struct map
        struct identifier ignored_any
    }
}

impl<'de, 'a> IntoDeserializer<'de, de::value::Error> for EnvValue<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl Settings {
    /// Loads settings from the file (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads settings from the file (if any) and the given environment.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        Ok(Keys::layered(file, env)?.into_settings())
    }

    /// `ham config`: the settings [`Settings::load`] would give, as TOML: every
    /// key in `ham.example.toml`'s order, unset ones as comments, secrets
    /// `<redacted>`. Refuses what `load` refuses, with the same error.
    pub fn effective_toml(file: Option<&Path>) -> Result<String, SettingsError> {
        let body = Keys::layered(file, std::env::vars())?.to_toml()?;
        let file = file.map_or("no settings file".into(), |f| f.display().to_string());
        Ok(format!(
            "# What `ham serve` would run with: the defaults, then {file}, then HAM_* \
             variables.\n# Secrets show as \"{REDACTED}\".\n\n{body}"
        ))
    }

    /// Whether `ip` is one of `trusted_proxies`.
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|cidr| cidr.contains(ip))
    }

    /// The database to use: `database_url`, else `<data dir>/ham.db`.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_string(),
            None => format!("sqlite://{}", self.data_dir.join("ham.db").display()),
        }
    }

    /// Plugin variable values, as the runtime resolves them.
    pub fn plugin_env_values(&self) -> BTreeMap<String, String> {
        self.plugin_env
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../ham.example.toml");
    const README: &str = include_str!("../../README.md");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Loads `file` (TOML text, if any) under `env`.
    fn load(file: Option<&str>, pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ham.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        Settings::load_from(file.map(|_| path.as_path()), env(pairs))
    }

    #[test]
    fn the_environment_wins_over_the_file_which_wins_over_the_defaults() {
        let file = r#"
            auth = "forward-auth"
            trusted_proxies = ["10.0.0.0/8"]
            oidc_issuer = "https://file.example"
            job_max_attempts = 7
            job_retention = "2d"
            forward_auth_uid_header = "X-File-Uid"
            llm_allowed_models = ["a", "b"]
        "#;
        let defaults = load(None, &[]).unwrap();
        assert_eq!(defaults.auth, AuthMode::Local.into());
        assert_eq!(
            defaults.metrics_addr, None,
            "no metrics listener unless asked"
        );
        assert!(defaults.trusted_proxies.is_empty());
        assert_eq!(defaults.oidc_issuer, None);
        assert_eq!(defaults.job_max_attempts, 5);

        let from_file = load(Some(file), &[]).unwrap();
        assert_eq!(from_file.auth, AuthMode::ForwardAuth.into());
        assert_eq!(
            from_file.trusted_proxies,
            vec!["10.0.0.0/8".parse().unwrap()]
        );
        assert_eq!(
            from_file.oidc_issuer.as_deref(),
            Some("https://file.example")
        );
        assert_eq!(from_file.job_max_attempts, 7);
        assert_eq!(from_file.job_retention, Duration::from_secs(2 * 24 * 3600));
        assert_eq!(from_file.forward_auth_headers.uid, "X-File-Uid");
        assert_eq!(from_file.llm.allowed_models, ["a", "b"]);
        assert_eq!(
            from_file.job_workers, 2,
            "keys the file leaves out keep their defaults"
        );

        let from_env = load(
            Some(file),
            &[
                ("HAM_AUTH", "oidc"),
                ("HAM_TRUSTED_PROXIES", "192.168.0.0/16, fd00::/8"),
                ("HAM_OIDC_ISSUER", "https://env.example"),
                ("HAM_OIDC_AUDIENCE", "ham"),
                ("HAM_JOB_MAX_ATTEMPTS", "9"),
                ("HAM_LLM_ALLOWED_MODELS", "c"),
                // Empty counts as unset: the file's value stays.
                ("HAM_FORWARD_AUTH_UID_HEADER", ""),
            ],
        )
        .unwrap();
        assert_eq!(from_env.auth, AuthMode::Oidc.into());
        assert_eq!(
            from_env.trusted_proxies,
            vec![
                "192.168.0.0/16".parse().unwrap(),
                "fd00::/8".parse().unwrap()
            ]
        );
        assert_eq!(from_env.oidc_issuer.as_deref(), Some("https://env.example"));
        assert_eq!(from_env.job_max_attempts, 9);
        assert_eq!(from_env.llm.allowed_models, ["c"]);
        assert_eq!(from_env.forward_auth_headers.uid, "X-File-Uid");
    }

    #[test]
    fn conventional_names_work_and_the_ham_names_win() {
        let s = load(
            None,
            &[
                ("DATABASE_URL", "postgres://a@db/ham"),
                ("ANTHROPIC_API_KEY", "sk-plain"),
            ],
        )
        .unwrap();
        assert_eq!(s.database_url(), "postgres://a@db/ham");
        assert_eq!(s.llm.anthropic_api_key.unwrap().expose(), "sk-plain");
        let s = load(
            None,
            &[
                ("DATABASE_URL", "postgres://a@db/ham"),
                ("HAM_DATABASE_URL", "postgres://b@db/ham"),
            ],
        )
        .unwrap();
        assert_eq!(s.database_url(), "postgres://b@db/ham");
    }

    #[test]
    fn every_key_has_its_ham_variable() {
        for (key, env, _) in KEYS {
            assert_eq!(*env, format!("HAM_{}", key.to_uppercase()), "{key}");
        }
    }

    #[test]
    fn plugin_variables_come_from_the_plugin_table_and_the_environment() {
        let file = "[plugin.strava-sync]\nclient_id = 123\nverify_token = \"file\"\n\
                    [plugin.hello]\ngreeting = \"hi\"\n";
        let s = load(
            Some(file),
            &[("HAM_PLUGIN_STRAVA_SYNC_VERIFY_TOKEN", "env")],
        )
        .unwrap();
        let values = s.plugin_env_values();
        assert_eq!(values["HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID"], "123");
        assert_eq!(values["HAM_PLUGIN_STRAVA_SYNC_VERIFY_TOKEN"], "env");
        assert_eq!(values["HAM_PLUGIN_HELLO_GREETING"], "hi");
        let err = load(Some("plugin = \"x\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("`plugin`") && err.contains("table"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused_by_name() {
        let err = load(Some("adress = \"x\"\n"), &[]).unwrap_err().to_string();
        assert!(err.contains("unknown key `adress`"), "{err}");
        // An environment variable nobody knows is not an error.
        load(None, &[("HAM_NO_SUCH_SETTING", "1")]).unwrap();
    }

    #[test]
    fn the_public_url_is_set_or_derived_from_the_listen_address() {
        let url = |pairs: &[(&str, &str)]| load(None, pairs).unwrap().public_url;
        assert_eq!(url(&[]), "http://127.0.0.1:3001");
        assert_eq!(
            url(&[("HAM_ADDR", "0.0.0.0:8080")]),
            "http://127.0.0.1:8080"
        );
        assert_eq!(url(&[("HAM_ADDR", "[::]:8080")]), "http://[::1]:8080");
        assert_eq!(
            url(&[("HAM_ADDR", "192.168.1.5:80")]),
            "http://192.168.1.5:80"
        );
        assert_eq!(
            url(&[("HAM_PUBLIC_URL", "https://ham.example.com/")]),
            "https://ham.example.com"
        );
        assert_eq!(
            url(&[("HAM_PUBLIC_URL", "https://example.com/ham")]),
            "https://example.com/ham"
        );
    }

    #[test]
    fn bad_values_are_refused_naming_the_key_or_variable() {
        /// A file, an environment, and what the error must say.
        type Case = (
            Option<&'static str>,
            &'static [(&'static str, &'static str)],
            &'static [&'static str],
        );
        let cases: &[Case] = &[
            (
                Some("job_workers = \"two\""),
                &[],
                &["`job_workers`", "invalid type"],
            ),
            (Some("addr = \"nope\""), &[], &["`addr`", "`nope`"]),
            (Some("auth = \"ldap\""), &[], &["`auth`", "ldap"]),
            (
                Some("trusted_proxies = [\"nope\"]"),
                &[],
                &["`trusted_proxies`", "nope"],
            ),
            (
                Some("header_timeout = \"0s\""),
                &[],
                &["`header_timeout`", "positive"],
            ),
            (
                Some("llm_provider = \"gpt\""),
                &[],
                &["`llm_provider`", "gpt"],
            ),
            (
                Some("job_max_attempts ="),
                &[],
                &["invalid settings file", "line 1"],
            ),
            (None, &[("HAM_ADDR", "nope")], &["HAM_ADDR", "nope"]),
            (
                None,
                &[("HAM_PUBLIC_URL", "ham.example.com")],
                &["HAM_PUBLIC_URL", "`ham.example.com`", "https://"],
            ),
            (
                None,
                &[("HAM_JOB_WORKERS", "two")],
                &["HAM_JOB_WORKERS", "`two` is not a number"],
            ),
            (
                None,
                &[("HAM_MIGRATE_ON_START", "sometimes")],
                &["HAM_MIGRATE_ON_START"],
            ),
            (None, &[("HAM_AUTH", "ldap")], &["HAM_AUTH", "ldap"]),
            (
                None,
                &[("HAM_TRUSTED_PROXIES", "10.0.0.0/8,nope")],
                &["HAM_TRUSTED_PROXIES", "nope"],
            ),
            (
                None,
                &[("HAM_JOB_RETENTION", "forever")],
                &["HAM_JOB_RETENTION", "forever"],
            ),
            (
                None,
                &[("HAM_LLM_MAX_RETRIES", "5000000000")],
                &["HAM_LLM_MAX_RETRIES"],
            ),
            (
                None,
                &[("HAM_AUTH", "oidc")],
                &["HAM_AUTH", "HAM_OIDC_ISSUER"],
            ),
            (None, &[("HAM_LOG", "info,x=loud")], &["HAM_LOG"]),
            (
                None,
                &[("HAM_LOG_FORMAT", "xml")],
                &["HAM_LOG_FORMAT", "xml"],
            ),
        ];
        for (file, env, wanted) in cases {
            let err = load(*file, env).unwrap_err().to_string();
            for part in *wanted {
                assert!(err.contains(part), "{file:?} {env:?}: {err}");
            }
        }
    }

    #[test]
    fn auth_is_one_mode_or_an_identity_provider_with_local() {
        use AuthMode::{ForwardAuth, Local, Oidc};
        let accepted: &[(&str, &[AuthMode], &str)] = &[
            ("local", &[Local], "local"),
            ("forward-auth", &[ForwardAuth], "forward-auth"),
            ("oidc", &[Oidc], "oidc"),
            (
                "forward-auth,local",
                &[ForwardAuth, Local],
                "forward-auth,local",
            ),
            // Any order and spacing: the identity provider is asked first.
            (
                "local, forward-auth",
                &[ForwardAuth, Local],
                "forward-auth,local",
            ),
            ("local,oidc", &[Oidc, Local], "oidc,local"),
        ];
        let oidc = [
            ("HAM_OIDC_ISSUER", "https://auth.example.com"),
            ("HAM_OIDC_AUDIENCE", "ham"),
        ];
        for (text, modes, shown) in accepted {
            let env = load(None, &[("HAM_AUTH", text), oidc[0], oidc[1]])
                .unwrap()
                .auth;
            let file = load(Some(format!("auth = \"{text}\"\n").as_str()), &oidc)
                .unwrap()
                .auth;
            assert_eq!(env.iter().collect::<Vec<_>>(), *modes, "{text}");
            assert_eq!(
                (env.to_string(), &file),
                (shown.to_string(), &env),
                "{text}"
            );
        }
        let listed = load(Some("auth = [\"local\", \"forward-auth\"]\n"), &[]).unwrap();
        assert_eq!(listed.auth.to_string(), "forward-auth,local");

        let refused: &[(&str, &str)] = &[
            (
                "forward-auth,oidc",
                "`forward-auth` cannot be combined with `oidc`",
            ),
            ("oidc,forward-auth,local", "cannot be combined"),
            ("local,local", "`local` is named twice"),
            ("forward-auth,forward-auth", "`forward-auth` is named twice"),
            (",", "names no identity mode"),
            ("local,ldap", "`ldap` is not an identity mode"),
        ];
        for (text, wanted) in refused {
            let err = load(None, &[("HAM_AUTH", text)]).unwrap_err().to_string();
            assert!(
                err.contains("HAM_AUTH") && err.contains(wanted),
                "{text}: {err}"
            );
            let err = load(Some(format!("auth = \"{text}\"\n").as_str()), &[])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`auth`") && err.contains(wanted),
                "{text}: {err}"
            );
        }
        // oidc's settings are required in mixed identity too.
        let err = load(None, &[("HAM_AUTH", "oidc,local")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HAM_OIDC_ISSUER"), "{err}");
    }

    #[test]
    fn metrics_listen_on_an_address_of_their_own() {
        let s = load(None, &[("HAM_METRICS_ADDR", "0.0.0.0:9464")]).unwrap();
        assert_eq!(s.metrics_addr, Some("0.0.0.0:9464".parse().unwrap()));
        let s = load(Some("metrics_addr = \"127.0.0.1:9464\"\n"), &[]).unwrap();
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9464".parse().unwrap()));
        // Ephemeral ports (tests) never collide.
        let both = [
            ("HAM_ADDR", "127.0.0.1:0"),
            ("HAM_METRICS_ADDR", "127.0.0.1:0"),
        ];
        load(None, &both).unwrap();
        for metrics in ["127.0.0.1:3001", "0.0.0.0:3001"] {
            let err = load(None, &[("HAM_METRICS_ADDR", metrics)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("HAM_METRICS_ADDR") && err.contains("a port of their own"),
                "{err}"
            );
        }
        let err = load(None, &[("HAM_METRICS_ADDR", "9464")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HAM_METRICS_ADDR"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_in_ham_config() {
        let file = "admin_token = \"tok-file\"\nsecret_key = \"key-file-0123456789\"\n\
                    [plugin.hello]\ngreeting = \"hi-there\"\n";
        let pairs = [
            ("HAM_ADMIN_TOKEN", "tok-env"),
            ("HAM_LLM_API_KEY", "sk-openai"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
            (
                "DATABASE_URL",
                "postgres://ham:pw-db@db/ham?password=pw-query",
            ),
        ];
        let s = load(Some(file), &pairs).unwrap();
        assert_eq!(s.admin_token.as_ref().unwrap().expose(), "tok-env");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ham.toml");
        std::fs::write(&path, file).unwrap();
        let shown = Keys::layered(Some(&path), env(&pairs))
            .unwrap()
            .to_toml()
            .unwrap();
        for text in [format!("{s:?}"), shown.clone()] {
            for secret in ["tok-", "key-file", "hi-there", "sk-", "pw-"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(text.contains(REDACTED), "{text}");
        }
        assert!(shown.contains("admin_token = \"<redacted>\""), "{shown}");
        assert!(
            shown.contains("database_url = \"postgres://ham:***@db/ham?<redacted>\""),
            "{shown}"
        );
        assert!(shown.contains("hello_greeting = \"<redacted>\""), "{shown}");
        assert!(shown.contains("# oidc_issuer is not set"), "{shown}");
    }

    #[test]
    fn ham_config_output_reads_back_as_the_same_settings() {
        let pairs = [
            ("HAM_TRUSTED_PROXIES", "10.0.0.0/8"),
            ("HAM_JOB_RETENTION", "36h"),
        ];
        let keys = Keys::layered(None, env(&pairs)).unwrap();
        let shown = keys.to_toml().unwrap();
        let mut again = Keys::default();
        again.read_file(Path::new("shown.toml"), &shown).unwrap();
        assert_eq!(again, keys, "{shown}");
    }

    #[test]
    fn the_example_file_names_every_key_and_holds_the_defaults() {
        for (key, env, older) in KEYS {
            let set = format!("\n{key} = ");
            let commented = format!("\n# {key} = ");
            assert!(
                EXAMPLE.contains(&set) || EXAMPLE.contains(&commented),
                "ham.example.toml does not show `{key}`"
            );
            for name in older.iter().chain([env]) {
                assert!(
                    EXAMPLE.contains(name),
                    "ham.example.toml does not name {name}"
                );
            }
        }
        assert!(EXAMPLE.contains("[plugin.") && EXAMPLE.contains("HAM_PLUGIN_"));
        let mut example = Keys::default();
        example
            .read_file(Path::new("ham.example.toml"), EXAMPLE)
            .unwrap();
        assert_eq!(example, Keys::default());
    }

    #[test]
    fn the_readme_table_names_every_key_and_variable() {
        let start = README.find("## Configuration").unwrap();
        let section = &README[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
        for (key, env, older) in KEYS {
            assert!(
                section.contains(&format!("`{key}`")),
                "README lacks `{key}`"
            );
            for name in older.iter().chain([env]) {
                assert!(section.contains(name), "README lacks {name}");
            }
        }
    }

    #[test]
    fn cidrs_contain_what_they_should() {
        let c: Cidr = "10.42.0.0/16".parse().unwrap();
        assert!(c.contains("10.42.3.4".parse().unwrap()));
        assert!(c.contains("::ffff:10.42.3.4".parse().unwrap()));
        assert!(!c.contains("10.43.0.1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(
            one.contains("127.0.0.1".parse().unwrap())
                && !one.contains("127.0.0.2".parse().unwrap())
        );
        assert!(
            "fd00::/8"
                .parse::<Cidr>()
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "nope".parse::<Cidr>().is_err());
    }
}
