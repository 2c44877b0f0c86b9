//! Settings: defaults, then a TOML file (`--config` or `HAM_CONFIG`), then `HAM_*`
//! environment variables. Unknown keys in the file are refused; secrets are
//! redacted in `Debug`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A secret value: shown as `***` in `Debug`.
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

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where `ham serve` listens. `HAM_ADDR`, default `127.0.0.1:3001`.
    pub addr: SocketAddr,
    /// Data dir: the SQLite file, the compiled-component cache. `HAM_DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`; default a SQLite file in the data dir.
    pub database_url: Option<Secret>,
    /// Bearer token for the admin routes. `HAM_ADMIN_TOKEN`; unset turns them off.
    pub admin_token: Option<Secret>,
    /// The root of the keys that seal plugin secrets at rest and sign grants
    /// (at least 32 bytes). `HAM_SECRET_KEY`; unset: a random key generated once
    /// into `<data dir>/secret.key`. Replicas must share it.
    pub secret_key: Option<Secret>,
    /// Watched plugin directory (development). `HAM_PLUGINS_DIR`.
    pub plugins_dir: Option<PathBuf>,
    /// Largest plugin upload in bytes. `HAM_MAX_UPLOAD_BYTES`, default 32 MiB.
    pub max_upload_bytes: usize,
    /// Attempts a job gets before it is dead. `HAM_JOB_MAX_ATTEMPTS`, default 5.
    pub job_max_attempts: i64,
    /// First retry delay; doubles per attempt. `HAM_JOB_BACKOFF_MS`, default 1000.
    pub job_backoff_ms: u64,
    /// How long a claimed job is leased before another process may take it over.
    /// Longer than the longest plugin `timeout_ms`. `HAM_JOB_LEASE_MS`, default 360000.
    pub job_lease_ms: i64,
    /// Job workers per process. `HAM_JOB_WORKERS`, default 2.
    pub job_workers: usize,
    /// How long finished jobs (and the webhook payloads they carry) are kept
    /// before they are pruned. `HAM_JOB_RETENTION`, default `7d`.
    pub job_retention: Duration,
    /// A client must send a request's headers within this time (this also closes
    /// idle keep-alive connections). `HAM_HEADER_TIMEOUT`, default `10s`.
    pub header_timeout: Duration,
    /// A client must send a request's whole body within this time after its
    /// headers. `HAM_BODY_TIMEOUT`, default `60s`.
    pub body_timeout: Duration,
    /// Who a request comes from: `local` accounts or `forward-auth` headers. `HAM_AUTH`.
    pub auth: AuthMode,
    /// Peers whose forward-auth headers are believed (CIDRs). `HAM_TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<Cidr>,
    /// Forward-auth header names (`HAM_FORWARD_AUTH_UID_HEADER`, `…_USER_HEADER`,
    /// `…_EMAIL_HEADER`, `…_GROUPS_HEADER`); Authentik's by default.
    pub forward_auth_headers: ForwardAuthHeaders,
    /// `oidc`: the issuer (`iss`), `HAM_OIDC_ISSUER`; the audience (`aud`),
    /// `HAM_OIDC_AUDIENCE`; the JWKS, `HAM_OIDC_JWKS_URL` (default: discovered).
    pub oidc_issuer: Option<String>,
    pub oidc_audience: Option<String>,
    pub oidc_jwks_url: Option<String>,
    /// Members of this group (in the groups header, `|`-separated) are admins.
    /// `HAM_ADMIN_GROUP`.
    pub admin_group: Option<String>,
    /// Anyone may register, not just the first user and admins. `HAM_OPEN_REGISTRATION=1`.
    pub open_registration: bool,
    /// Apply pending migrations at start. `HAM_MIGRATE_ON_START`, default true;
    /// `false` when a separate `ham migrate` step (a Kubernetes Job) owns them, and
    /// the server then waits up to a minute for the schema, then refuses to start.
    pub migrate_on_start: bool,
    /// `HAM_PLUGIN_<PLUGIN>_<VARIABLE>` values for plugin variables; values redacted.
    pub plugin_env: BTreeMap<String, Secret>,
    /// The language model behind `ham:plugin/llm` (`HAM_LLM_*`, `ANTHROPIC_*`).
    pub llm: crate::llm::LlmSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3001)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            admin_token: None,
            secret_key: None,
            plugins_dir: None,
            max_upload_bytes: 32 * 1024 * 1024,
            open_registration: false,
            migrate_on_start: true,
            auth: AuthMode::Local,
            trusted_proxies: Vec::new(),
            forward_auth_headers: ForwardAuthHeaders::default(),
            admin_group: None,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks_url: None,
            job_max_attempts: 5,
            job_backoff_ms: 1000,
            job_lease_ms: 360_000,
            job_workers: 2,
            job_retention: Duration::from_secs(7 * 24 * 3600),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            plugin_env: BTreeMap::new(),
            llm: Default::default(),
        }
    }
}

/// How requests are tied to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Accounts and session cookies, managed by HAM.
    Local,
    /// A proxy in front (Authentik with Traefik) names the user in headers.
    ForwardAuth,
    /// Bearer JWTs from an OpenID Connect issuer.
    Oidc,
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
        Self {
            uid: "X-authentik-uid".into(),
            user: "X-authentik-username".into(),
            email: "X-authentik-email".into(),
            groups: "X-authentik-groups".into(),
        }
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<Secret>,
    admin_token: Option<Secret>,
    secret_key: Option<Secret>,
    plugins_dir: Option<PathBuf>,
    max_upload_bytes: Option<usize>,
    open_registration: Option<bool>,
    llm_provider: Option<String>,
    llm_model: Option<String>,
    llm_base_url: Option<String>,
    llm_api_key: Option<Secret>,
    anthropic_api_key: Option<Secret>,
    anthropic_base_url: Option<String>,
    llm_daily_tokens: Option<u64>,
    llm_no_user_daily_tokens: Option<u64>,
    llm_allowed_models: Option<Vec<String>>,
    llm_timeout_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid settings file {0}: {1}")]
    File(PathBuf, toml::de::Error),
    #[error("invalid {0}: {1}")]
    Env(&'static str, String),
}

fn number<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, SettingsError> {
    value
        .parse()
        .map_err(|_| SettingsError::Env(name, format!("`{value}` is not a number")))
}

/// A positive duration such as `10s`, `90m` or `7d`.
fn duration(name: &'static str, value: &str) -> Result<Duration, SettingsError> {
    match humantime::parse_duration(value) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(SettingsError::Env(
            name,
            format!("`{value}` is not a positive duration such as 10s, 90m or 7d"),
        )),
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
        let mut settings = Settings::default();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| SettingsError::Read(path.into(), e))?;
            let f: FileSettings =
                toml::from_str(&text).map_err(|e| SettingsError::File(path.into(), e))?;
            settings.addr = f.addr.unwrap_or(settings.addr);
            settings.data_dir = f.data_dir.unwrap_or(settings.data_dir);
            settings.database_url = f.database_url.or(settings.database_url);
            settings.admin_token = f.admin_token.or(settings.admin_token);
            settings.secret_key = f.secret_key.or(settings.secret_key);
            settings.plugins_dir = f.plugins_dir.or(settings.plugins_dir);
            settings.max_upload_bytes = f.max_upload_bytes.unwrap_or(settings.max_upload_bytes);
            settings.open_registration = f.open_registration.unwrap_or(settings.open_registration);
            let llm_keys = [
                ("HAM_LLM_PROVIDER", f.llm_provider),
                ("HAM_LLM_MODEL", f.llm_model),
                ("HAM_LLM_BASE_URL", f.llm_base_url),
                ("HAM_LLM_API_KEY", f.llm_api_key.map(|s| s.0)),
                ("ANTHROPIC_API_KEY", f.anthropic_api_key.map(|s| s.0)),
                ("ANTHROPIC_BASE_URL", f.anthropic_base_url),
                (
                    "HAM_LLM_DAILY_TOKENS",
                    f.llm_daily_tokens.map(|n| n.to_string()),
                ),
                (
                    "HAM_LLM_NO_USER_DAILY_TOKENS",
                    f.llm_no_user_daily_tokens.map(|n| n.to_string()),
                ),
                (
                    "HAM_LLM_ALLOWED_MODELS",
                    f.llm_allowed_models.map(|m| m.join(",")),
                ),
                (
                    "HAM_LLM_TIMEOUT_MS",
                    f.llm_timeout_ms.map(|n| n.to_string()),
                ),
            ];
            for (key, value) in llm_keys {
                if let Some(value) = value {
                    settings.llm.apply(key, &value)?;
                }
            }
        }
        for (key, value) in env {
            match key.as_str() {
                "HAM_ADDR" => {
                    settings.addr = value.parse().map_err(|_| {
                        SettingsError::Env("HAM_ADDR", format!("`{value}` is not host:port"))
                    })?
                }
                "HAM_DATA_DIR" => settings.data_dir = PathBuf::from(value),
                "DATABASE_URL" | "HAM_DATABASE_URL" => settings.database_url = Some(Secret(value)),
                "HAM_ADMIN_TOKEN" if !value.is_empty() => {
                    settings.admin_token = Some(Secret(value))
                }
                "HAM_SECRET_KEY" if !value.is_empty() => settings.secret_key = Some(Secret(value)),
                "HAM_PLUGINS_DIR" if !value.is_empty() => {
                    settings.plugins_dir = Some(PathBuf::from(value))
                }
                "HAM_MAX_UPLOAD_BYTES" => {
                    settings.max_upload_bytes = value.parse().map_err(|_| {
                        SettingsError::Env(
                            "HAM_MAX_UPLOAD_BYTES",
                            format!("`{value}` is not a number"),
                        )
                    })?
                }
                "HAM_JOB_MAX_ATTEMPTS" => {
                    settings.job_max_attempts = number("HAM_JOB_MAX_ATTEMPTS", &value)?
                }
                "HAM_JOB_BACKOFF_MS" => {
                    settings.job_backoff_ms = number("HAM_JOB_BACKOFF_MS", &value)?
                }
                "HAM_JOB_LEASE_MS" => settings.job_lease_ms = number("HAM_JOB_LEASE_MS", &value)?,
                "HAM_JOB_WORKERS" => settings.job_workers = number("HAM_JOB_WORKERS", &value)?,
                "HAM_JOB_RETENTION" => {
                    settings.job_retention = duration("HAM_JOB_RETENTION", &value)?
                }
                "HAM_HEADER_TIMEOUT" => {
                    settings.header_timeout = duration("HAM_HEADER_TIMEOUT", &value)?
                }
                "HAM_BODY_TIMEOUT" => settings.body_timeout = duration("HAM_BODY_TIMEOUT", &value)?,
                "HAM_AUTH" => {
                    settings.auth = match value.as_str() {
                        "local" => AuthMode::Local,
                        "forward-auth" => AuthMode::ForwardAuth,
                        "oidc" => AuthMode::Oidc,
                        other => {
                            return Err(SettingsError::Env(
                                "HAM_AUTH",
                                format!("`{other}` is not one of local, forward-auth, oidc"),
                            ));
                        }
                    }
                }
                "HAM_TRUSTED_PROXIES" => {
                    settings.trusted_proxies = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse()
                                .map_err(|why| SettingsError::Env("HAM_TRUSTED_PROXIES", why))
                        })
                        .collect::<Result<_, _>>()?
                }
                "HAM_OIDC_ISSUER" => settings.oidc_issuer = Some(value),
                "HAM_OIDC_AUDIENCE" => settings.oidc_audience = Some(value),
                "HAM_OIDC_JWKS_URL" => settings.oidc_jwks_url = Some(value),
                "HAM_FORWARD_AUTH_UID_HEADER" => settings.forward_auth_headers.uid = value,
                "HAM_FORWARD_AUTH_USER_HEADER" => settings.forward_auth_headers.user = value,
                "HAM_FORWARD_AUTH_EMAIL_HEADER" => settings.forward_auth_headers.email = value,
                "HAM_FORWARD_AUTH_GROUPS_HEADER" => settings.forward_auth_headers.groups = value,
                "HAM_ADMIN_GROUP" if !value.is_empty() => settings.admin_group = Some(value),
                "HAM_OPEN_REGISTRATION" => {
                    settings.open_registration = matches!(value.as_str(), "1" | "true")
                }
                "HAM_MIGRATE_ON_START" => {
                    settings.migrate_on_start = match value.as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(SettingsError::Env(
                                "HAM_MIGRATE_ON_START",
                                format!("`{value}` is not true or false"),
                            ));
                        }
                    }
                }
                _ if settings.llm.apply(&key, &value)? => {}
                _ if key.starts_with("HAM_PLUGIN_") => {
                    settings.plugin_env.insert(key, Secret(value));
                }
                _ => {}
            }
        }
        if settings.auth == AuthMode::Oidc
            && (settings.oidc_issuer.is_none() || settings.oidc_audience.is_none())
        {
            return Err(SettingsError::Env(
                "HAM_AUTH",
                "oidc needs HAM_OIDC_ISSUER and HAM_OIDC_AUDIENCE".into(),
            ));
        }
        Ok(settings)
    }

    /// Whether `ip` is one of `HAM_TRUSTED_PROXIES`.
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|cidr| cidr.contains(ip))
    }

    /// The database to use: `DATABASE_URL`, else `<data dir>/ham.db`.
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

    #[test]
    fn env_overrides_file_and_secrets_stay_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ham.toml");
        std::fs::write(
            &file,
            "addr = \"0.0.0.0:8080\"\nadmin_token = \"from-file\"\n",
        )
        .unwrap();
        let env = [
            ("HAM_ADMIN_TOKEN".to_string(), "from-env".to_string()),
            ("HAM_PLUGIN_HELLO_GREETING".to_string(), "hi".to_string()),
        ];
        let s = Settings::load_from(Some(&file), env).unwrap();
        assert_eq!(s.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(s.admin_token.as_ref().unwrap().expose(), "from-env");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("from-env") && !shown.contains("\"hi\""),
            "{shown}"
        );
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

    #[test]
    fn unknown_file_keys_and_bad_env_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ham.toml");
        std::fs::write(&file, "adress = \"x\"\n").unwrap();
        let err = Settings::load_from(Some(&file), [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("adress"), "{err}");
        let err =
            Settings::load_from(None, [("HAM_ADDR".to_string(), "nope".to_string())]).unwrap_err();
        assert!(err.to_string().contains("HAM_ADDR"));
    }
}
