//! Outbound HTTP policy: which URLs a plugin may reach through
//! `wasi:http/outgoing-handler`, and the connector that enforces it.
//!
//! Accepted `allowed_outbound_hosts` entries (after `{{ variable }}` interpolation):
//! `http://host`, `https://host:8443`, `https://*.example.com`, `https://*:*`; any
//! path after the authority is ignored, so a base URL such as
//! `https://www.strava.com/api/v3` works as an entry. The port defaults to the
//! scheme's (80, 443).
//!
//! Fail closed:
//! - an empty list denies everything;
//! - the scheme, host and port must match one entry;
//! - the host name is resolved here, every resolved address is checked, and the
//!   connection goes to a checked address (no second lookup a DNS rebinding could
//!   change);
//! - loopback, private, link-local, shared, documentation, multicast and metadata
//!   addresses (IPv4-mapped and NAT64 IPv6 forms included) are refused unless the
//!   matching entry names that exact host and port, without wildcards;
//! - redirects are not followed by the host: a plugin that follows one makes a new
//!   request, checked again;
//! - a response body over [`MAX_RESPONSE_BYTES`] is cut off with an error.
//!
//! A denied request gets `HttpRequestDenied` in the guest and a warning in the log.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Largest response body a plugin may receive on one outbound request.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    scheme: String,
    host: HostPattern,
    port: PortPattern,
}

impl HostRule {
    /// Parses an entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| format!("`{entry}` needs a scheme, as in https://example.com"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{entry}`: the scheme must be http or https"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(format!("`{entry}`: user info is not allowed"));
        }
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("`{entry}`: cannot read host and port"))?;
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!(
                    "`{entry}`: a wildcard host looks like *.example.com"
                ));
            }
            HostPattern::Suffix(format!(".{suffix}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(format!(
                "`{entry}`: a wildcard host looks like *.example.com"
            ));
        } else {
            HostPattern::Exact(host)
        };
        let port = match port {
            None => PortPattern::Exact(if scheme == "https" { 443 } else { 80 }),
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(
                p.parse()
                    .map_err(|_| format!("`{entry}`: `{p}` is not a port number"))?,
            ),
        };
        Ok(Self { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Suffix(suffix) => host.ends_with(suffix.as_str()),
            HostPattern::Exact(h) => h == host,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
        };
        self.scheme == scheme && host_ok && port_ok
    }

    /// Whether this entry names one host and one port, which is what it takes to
    /// reach a non-public address.
    fn is_exact(&self) -> bool {
        matches!(self.host, HostPattern::Exact(_)) && matches!(self.port, PortPattern::Exact(_))
    }
}

/// `host[:port]`, with IPv6 literals in brackets. The host comes back without them.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// The outbound rules of one plugin version.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    pub plugin: String,
    rules: Vec<HostRule>,
}

/// Why an outbound request was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Denied {
    #[error("{0} is not in allowed_outbound_hosts")]
    NotAllowed(String),
    #[error(
        "{0} resolves to {1}, a non-public address; only an entry naming this exact host and port may reach it"
    )]
    NonPublic(String, IpAddr),
}

impl OutboundPolicy {
    pub fn new(plugin: &str, rules: Vec<HostRule>) -> Self {
        Self {
            plugin: plugin.to_string(),
            rules,
        }
    }

    fn rule_for(&self, scheme: &str, host: &str, port: u16) -> Result<&HostRule, Denied> {
        self.rules
            .iter()
            // An exact entry wins over a wildcard, as it alone may reach private addresses.
            .filter(|r| r.matches(scheme, host, port))
            .max_by_key(|r| r.is_exact())
            .ok_or_else(|| Denied::NotAllowed(format!("{scheme}://{}", authority(host, port))))
    }

    /// Checks a target and returns the addresses it may connect to.
    pub async fn resolve(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let host = host.to_ascii_lowercase();
        let rule = self.rule_for(scheme, &host, port)?;
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| ResolveError::Dns(e.to_string()))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ResolveError::Dns(format!("{host} has no addresses")));
        }
        if !rule.is_exact()
            && let Some(bad) = addrs.iter().map(|a| a.ip()).find(|ip| !is_public(*ip))
        {
            return Err(Denied::NonPublic(authority(&host, port), bad).into());
        }
        Ok(addrs)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("DNS lookup failed: {0}")]
    Dns(String),
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether an address is on the public internet. IPv4-mapped, IPv4-compatible and
/// NAT64 IPv6 addresses are judged by the IPv4 address inside.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::a.b.c.d).
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) || s[..6] == [0; 6] {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                   // "this network"
        || a == 10                             // private
        || (a == 100 && (64..128).contains(&b)) // shared (CGNAT)
        || a == 127                            // loopback
        || (a == 169 && b == 254)              // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 168)              // private
        || (a == 198 && (b == 18 || b == 19))  // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00       // unique local (includes fd00:ec2::254 metadata)
        || (s[0] & 0xffc0) == 0xfe80       // link-local
        || (s[0] & 0xff00) == 0xff00       // multicast
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0; 3])) // discard-only
}

/// The `wasi:http` hooks of one invocation: every outgoing request goes through
/// the plugin's [`OutboundPolicy`], and bodies the guest writes are buffered.
pub struct OutboundHooks {
    /// The invocation's plugin (its policy, and its version for the refusal
    /// counter) and export.
    pub plugin: Arc<super::LoadedPlugin>,
    pub export: &'static str,
    pub metrics: Arc<crate::telemetry::Metrics>,
}

impl WasiHttpHooks for OutboundHooks {
    /// Let a guest write a whole small response without waiting for the client to
    /// take each chunk: with the default of one, every `flush` is a round trip
    /// through the connection task while the instance is held.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        16
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_error: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        let plugin = self.plugin.clone();
        let metrics = self.metrics.clone();
        let export = self.export;
        Box::new(async move {
            let policy = &plugin.outbound;
            let response = send(policy, request, options).await.inspect_err(|e| {
                if matches!(e, HttpError::HttpRequestDenied) {
                    metrics.inc(
                        "ham_plugin_errors_total",
                        &[
                            ("plugin", policy.plugin.as_str()),
                            ("version", plugin.version_label().as_str()),
                            ("export", export),
                            ("kind", "denied_outbound"),
                        ],
                    );
                }
            })?;
            let done: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

async fn send(
    policy: &OutboundPolicy,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, HttpError> {
    let uri = request.uri().clone();
    let use_tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let scheme = if use_tls { "https" } else { "http" };
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });

    let addrs = match policy.resolve(scheme, host, port).await {
        Ok(addrs) => addrs,
        Err(ResolveError::Denied(why)) => {
            tracing::warn!(plugin = %policy.plugin, url = %uri, reason = %why, "outbound request denied");
            return Err(HttpError::HttpRequestDenied);
        }
        Err(ResolveError::Dns(why)) => {
            return Err(HttpError::DnsError {
                rcode: Some(why),
                info_code: None,
            });
        }
    };

    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(FIRST_BYTE_TIMEOUT);
    let tcp = connect_any(&addrs, connect_timeout).await?;

    // The request line carries only the path; the Host header names the authority.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let response = if use_tls {
        let server_name = match host.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(host.to_string())?,
        };
        let tls = tls_connector()
            .connect(server_name, tcp)
            .await
            .map_err(HttpError::Tls)?;
        exchange(tls, request, connect_timeout, first_byte_timeout).await?
    } else {
        exchange(tcp, request, connect_timeout, first_byte_timeout).await?
    };
    Ok(response.map(|body| {
        http_body_util::Limited::new(body, MAX_RESPONSE_BYTES)
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => HttpError::from(*e),
                Err(_) => HttpError::HttpResponseBodySize(None),
            })
            .boxed_unsync()
    }))
}

async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(HttpError::Connect(e)),
            Err(_) => last = Some(HttpError::ConnectionTimeout),
        }
    }
    Err(last.unwrap_or(HttpError::ConnectionRefused))
}

async fn exchange<S>(
    stream: S,
    request: http::Request<WasiBody>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
) -> Result<http::Response<hyper::body::Incoming>, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "outbound connection ended with an error");
        }
    });
    tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)?
        .map_err(HttpError::from)
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            });
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(
            "t",
            entries
                .iter()
                .map(|e| HostRule::parse(e).unwrap())
                .collect(),
        )
    }

    #[test]
    fn parses_the_documented_forms() {
        for entry in [
            "https://www.strava.com",
            "https://www.strava.com/api/v3",
            "http://127.0.0.1:8080",
            "https://*.example.com",
            "https://*:*",
            "http://[::1]:9000",
        ] {
            assert!(HostRule::parse(entry).is_ok(), "{entry}");
        }
        for (entry, why) in [
            ("www.strava.com", "needs a scheme"),
            ("ftp://x", "http or https"),
            ("https://a.*.com", "wildcard"),
            ("https://x:http", "not a port"),
            ("https://u:p@x", "user info"),
        ] {
            let err = HostRule::parse(entry).unwrap_err();
            assert!(err.contains(why), "{entry}: {err}");
        }
    }

    #[test]
    fn classifies_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} should not be public");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[tokio::test]
    async fn denies_what_is_not_listed_and_private_targets_of_wildcards() {
        let empty = policy(&[]);
        assert!(matches!(
            empty.resolve("https", "example.com", 443).await,
            Err(ResolveError::Denied(_))
        ));

        let wildcard = policy(&["http://*:*"]);
        // Decimal and IPv4-mapped spellings of loopback are still loopback.
        for host in ["127.0.0.1", "::ffff:127.0.0.1", "localhost"] {
            assert!(
                matches!(
                    wildcard.resolve("http", host, 80).await,
                    Err(ResolveError::Denied(Denied::NonPublic(..)))
                ),
                "{host}"
            );
        }

        let exact = policy(&["http://127.0.0.1:8080"]);
        assert!(exact.resolve("http", "127.0.0.1", 8080).await.is_ok());
        assert!(exact.resolve("http", "127.0.0.1", 8081).await.is_err());
        assert!(exact.resolve("https", "127.0.0.1", 8080).await.is_err());
    }
}
