//! Outbound HTTP policy: which URLs a plugin may reach through
//! `wasi:http/outgoing-handler`, and the connector that enforces it.
//!
//! # Accepted `allowed_outbound_hosts` entries
//!
//! An entry is a URL string, or a table `{ url = "...", private = true }` (see
//! [`OutboundEntry`]); `{{ variable }}` templates in the URL are replaced before it
//! is read here. The URL is `scheme://host[:port]`; a path after the authority is
//! ignored, so a base URL such as `https://www.strava.com/api/v3` works as an entry.
//!
//! | form | meaning | may reach non-public addresses |
//! | --- | --- | --- |
//! | `https://api.example.com`, `http://nas.lan:8080` | that DNS name and port (80, 443 by default) | no: every resolved address is checked |
//! | `{ url = "http://nas.lan:8080", private = true }` | the same, marked private on purpose | yes |
//! | `http://127.0.0.1:8080`, `http://[::1]:9000`, `http://192.168.1.10` | that address and port | yes |
//! | `https://*.example.com`, `https://*:443`, `https://*:*` | any name under the suffix, any host, any port | no |
//!
//! Refused when the manifest is read: a scheme other than http or https, user info,
//! a wildcard other than a whole host (`*`), a leading `*.` or a whole port (`*`),
//! `private = true` on an entry with a wildcard host or port (private access names
//! one host and one port), a non-public IP literal with a `*` port, and an IPv4
//! address not written as four decimal numbers (`2130706433`, `0x7f.1`, `127.1`:
//! write `127.0.0.1`).
//!
//! # Hosts, in entries and in requests
//!
//! A host is read once, here, and never handed to the resolver as text that could
//! mean an address: `[…]` or anything with a `:` must be an IPv6 address; a host
//! whose last label is a number (`2130706433`, `0x7f.1`, `017700000001`, `127.1`)
//! is an IPv4 address, read as the WHATWG URL standard and `inet_aton` read it
//! (decimal, `0` octal, `0x` hex parts; the last part fills the remaining bytes),
//! or refused if it is not one; anything else must be a DNS name of letters,
//! digits, `-`, `_` and `.`. A request that spells `127.0.0.1` as `0x7f.1` is judged
//! as `127.0.0.1`, and an entry for `localhost` or `*.example.com` never matches it.
//! An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is the IPv4 address it maps.
//!
//! # Fail closed
//!
//! - an empty list denies everything;
//! - the scheme, host and port must match one entry; of several matching entries,
//!   one that may reach non-public addresses (an exact one) wins over a wildcard;
//! - a DNS name is resolved here, and the connection goes to a checked address (no
//!   second lookup a DNS rebinding could change);
//! - unless the matching entry is an IP literal with a port, or marked
//!   `private = true`, every address must be public ([`is_public`]): if any address
//!   a name resolves to is loopback, private, link-local, shared, documentation,
//!   multicast, metadata or otherwise special, the request is denied;
//! - redirects are not followed by the host: a plugin that follows one makes a new
//!   request, checked again;
//! - a response body over [`MAX_RESPONSE_BYTES`] is cut off with an error.
//!
//! A denied request gets `HttpRequestDenied` in the guest and a warning in the log
//! naming the plugin, the host and, for a non-public address, the address; a host
//! that cannot be read gets `HttpRequestUriInvalid`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Largest response body a plugin may receive on one outbound request.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);

/// One `allowed_outbound_hosts` entry as the manifest writes it: a string
/// (`"https://api.example.com"`), or a table
/// (`{ url = "http://nas.lan:8080", private = true }`) whose `private` lets an
/// exact DNS name reach non-public addresses. A table with any other key is
/// refused with a message naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEntry {
    /// The URL, possibly with `{{ variable }}` templates.
    pub url: String,
    /// Marked private on purpose: may reach loopback, private, link-local and
    /// metadata addresses. Only for an exact host and port.
    pub private: bool,
}

impl<'de> Deserialize<'de> for OutboundEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;

        const KEYS: &[&str] = &["url", "private"];

        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = OutboundEntry;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a URL string, or a table { url = \"...\", private = true }")
            }

            fn visit_str<E: de::Error>(self, url: &str) -> Result<OutboundEntry, E> {
                Ok(OutboundEntry {
                    url: url.to_string(),
                    private: false,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OutboundEntry, A::Error> {
                let (mut url, mut private) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "url" if url.is_some() => return Err(de::Error::duplicate_field("url")),
                        "url" => url = Some(map.next_value::<String>()?),
                        "private" if private.is_some() => {
                            return Err(de::Error::duplicate_field("private"));
                        }
                        "private" => private = Some(map.next_value::<bool>()?),
                        other => return Err(de::Error::unknown_field(other, KEYS)),
                    }
                }
                Ok(OutboundEntry {
                    url: url.ok_or_else(|| de::Error::missing_field("url"))?,
                    private: private.unwrap_or(false),
                })
            }
        }

        deserializer.deserialize_any(EntryVisitor)
    }
}

impl Serialize for OutboundEntry {
    /// The form it was read from: a string, or a table when marked private.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.private {
            return serializer.serialize_str(&self.url);
        }
        let mut table = serializer.serialize_struct("OutboundEntry", 2)?;
        table.serialize_field("url", &self.url)?;
        table.serialize_field("private", &self.private)?;
        table.end()
    }
}

/// A host as the policy reads it, from an entry or from a request's authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An address; IPv4-mapped IPv6 addresses are kept as the IPv4 address.
    Ip(IpAddr),
    /// A lower-case DNS name, resolved when a request is made.
    Name(String),
}

impl Host {
    /// Reads a host (`example.com`, `127.0.0.1`, `[::1]`, `0x7f.1`). An IPv4
    /// address in any spelling a resolver would accept comes back as that address;
    /// a host that looks like an address but is not one, or has characters no DNS
    /// name has, is refused.
    pub fn read(text: &str) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        let bracketed = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        if let Some(v6) = bracketed.or_else(|| lower.contains(':').then_some(lower.as_str())) {
            return v6
                .parse::<Ipv6Addr>()
                .map(|ip| Self::Ip(IpAddr::V6(ip).to_canonical()))
                .map_err(|_| format!("`{text}` is not an IPv6 address"));
        }
        if ends_in_number(&lower) {
            return ipv4_any_spelling(&lower)
                .map(|ip| Self::Ip(IpAddr::V4(ip)))
                .ok_or_else(|| format!("`{text}` ends in a number but is not an IPv4 address"));
        }
        let is_name_char = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
        if lower.is_empty()
            || !lower.bytes().all(is_name_char)
            || lower.starts_with('.')
            || lower.contains("..")
        {
            return Err(format!("`{text}` is not a DNS name or an IP address"));
        }
        Ok(Self::Name(lower))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(ip) => write!(f, "{ip}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// Whether the last label (before one trailing dot) is a number, which makes the
/// whole host an IPv4 address to URL parsers and to `inet_aton` (WHATWG URL,
/// "ends in a number").
fn ends_in_number(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    let digits = last.strip_prefix("0x").unwrap_or(last);
    let hex = digits.len() < last.len();
    !last.is_empty()
        && digits.bytes().all(|b| {
            if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }
        })
}

/// An IPv4 address in any spelling `inet_aton` and the WHATWG URL parser accept:
/// one to four parts, each decimal, octal (leading `0`) or hex (`0x`), every part
/// but the last at most 255, the last filling the bytes that remain
/// (`2130706433`, `0x7f.1`, `017700000001`, `127.1`). Lower-case input.
fn ipv4_any_spelling(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let parts = host
        .split('.')
        .map(ipv4_part)
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|p| *p > 255) {
        return None;
    }
    let last_bits = 8 * (4 - leading.len() as u32);
    if *last >= 1u64 << last_bits {
        return None;
    }
    let value = leading
        .iter()
        .fold(0u64, |acc, p| (acc << 8) | p)
        .checked_shl(last_bits)?
        | last;
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn ipv4_part(part: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(octal) = part.strip_prefix('0').filter(|o| !o.is_empty()) {
        (octal, 8)
    } else {
        (part, 10)
    };
    if part.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if digits.is_empty() {
        return Some(0); // `0x` alone
    }
    u64::from_str_radix(digits, radix).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
    Name(String),
    Ip(IpAddr),
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
    private: bool,
}

impl HostRule {
    /// Parses an entry's URL (templates already replaced); `private` is the
    /// entry's mark. The error says what is wrong with it.
    pub fn parse(entry: &str, private: bool) -> Result<Self, String> {
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
        let wildcard_form = || format!("`{entry}`: a wildcard host looks like *.example.com");
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            match Host::read(suffix) {
                Ok(Host::Name(name)) => HostPattern::Suffix(format!(".{name}")),
                _ => return Err(wildcard_form()),
            }
        } else if host.contains('*') {
            return Err(wildcard_form());
        } else {
            match Host::read(host).map_err(|why| format!("`{entry}`: {why}"))? {
                Host::Name(name) => HostPattern::Name(name),
                Host::Ip(IpAddr::V4(ip)) if !host.starts_with('[') && ip.to_string() != host => {
                    return Err(format!(
                        "`{entry}`: write an IPv4 address as four decimal numbers, as in {ip}"
                    ));
                }
                Host::Ip(ip) => HostPattern::Ip(ip),
            }
        };
        let port = match port {
            None => PortPattern::Exact(if scheme == "https" { 443 } else { 80 }),
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(
                p.parse()
                    .map_err(|_| format!("`{entry}`: `{p}` is not a port number"))?,
            ),
        };
        let rule = Self {
            scheme,
            host,
            port,
            private,
        };
        let exact = matches!(rule.host, HostPattern::Name(_) | HostPattern::Ip(_))
            && matches!(rule.port, PortPattern::Exact(_));
        if private && !exact {
            return Err(format!(
                "`{entry}`: private = true needs an exact host and port, without wildcards"
            ));
        }
        if let HostPattern::Ip(ip) = rule.host
            && !exact
            && !is_public(ip)
        {
            return Err(format!(
                "`{entry}`: {ip} is not a public address; name the port it may reach"
            ));
        }
        Ok(rule)
    }

    fn matches(&self, scheme: &str, host: &Host, port: u16) -> bool {
        let host_ok = match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Suffix(suffix), Host::Name(name)) => {
                name.len() > suffix.len() && name.ends_with(suffix.as_str())
            }
            (HostPattern::Name(rule), Host::Name(name)) => rule == name,
            (HostPattern::Ip(rule), Host::Ip(ip)) => rule == ip,
            _ => false,
        };
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
        };
        self.scheme == scheme && host_ok && port_ok
    }

    /// Whether this entry may reach non-public addresses: an IP literal, or a DNS
    /// name marked `private = true`, with one port (parsing refuses the mark on
    /// anything less exact).
    fn reaches_non_public(&self) -> bool {
        let exact_port = matches!(self.port, PortPattern::Exact(_));
        match self.host {
            HostPattern::Ip(_) => exact_port,
            HostPattern::Name(_) => exact_port && self.private,
            HostPattern::Any | HostPattern::Suffix(_) => false,
        }
    }
}

/// `host[:port]`, with IPv6 literals in brackets (kept on the host).
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (host, after) = authority.split_at(end);
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
        "{0} resolves to {1}, a non-public address; only an IP-literal entry or an entry with private = true may reach it"
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

    fn rule_for(&self, scheme: &str, host: &Host, port: u16) -> Result<&HostRule, Denied> {
        self.rules
            .iter()
            // An exact entry wins over a wildcard, as it alone may reach private addresses.
            .filter(|r| r.matches(scheme, host, port))
            .max_by_key(|r| r.reaches_non_public())
            .ok_or_else(|| Denied::NotAllowed(format!("{scheme}://{host}:{port}")))
    }

    /// Checks a target and returns the addresses it may connect to: the address
    /// itself, or every address a name resolves to, all of them checked.
    pub async fn resolve(
        &self,
        scheme: &str,
        host: &Host,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let rule = self.rule_for(scheme, host, port)?;
        let addrs: Vec<SocketAddr> = match host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
            // `Host::read` let through only names that no resolver reads as an address.
            Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| ResolveError::Dns(e.to_string()))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ResolveError::Dns(format!("{host} has no addresses")));
        }
        if !rule.reaches_non_public()
            && let Some(bad) = addrs.iter().map(|a| a.ip()).find(|ip| !is_public(*ip))
        {
            return Err(Denied::NonPublic(format!("{host}:{port}"), bad).into());
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

/// Whether an address is on the public internet: not in any IANA special-purpose
/// range that is not globally reachable, nor in a range that reaches the machine,
/// its network or its cloud's metadata service.
///
/// - IPv4: every range of [`is_public_v4`].
/// - IPv4-mapped (`::ffff:0:0/96`) and NAT64 (`64:ff9b::/96`) IPv6 addresses are
///   judged by the IPv4 address inside, which is what they reach.
/// - Other IPv6: public only inside global unicast `2000::/3`, outside
///   `2001::/23` (IETF protocol assignments, Teredo `2001::/32` among them),
///   `2001:db8::/32` and `3fff::/20` (documentation) and `2002::/16` (6to4,
///   deprecated: its relays reach whatever IPv4 address is embedded, so it is
///   non-public whatever that address is). Everything outside `2000::/3` is
///   non-public: `::`, `::1`, the deprecated IPv4-compatible `::a.b.c.d`,
///   `64:ff9b:1::/48` (local-use NAT64), `100::/64` (discard), `fc00::/7` (unique
///   local, with `fd00:ec2::254` metadata), `fec0::/10` (deprecated site-local),
///   `fe80::/10` (link-local), `ff00::/8` (multicast) and unassigned space.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 address reaches: IPv4-mapped `::ffff:a.b.c.d` and
/// NAT64 `64:ff9b::a.b.c.d`.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let [.., a, b, c, d] = ip.octets();
    (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]).then(|| Ipv4Addr::new(a, b, c, d))
}

/// IPv4 outside the IANA special-purpose ranges that are not globally reachable.
fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                     // 0/8 "this network"
        || a == 10                               // 10/8 private
        || (a == 100 && (64..128).contains(&b))  // 100.64/10 shared (CGNAT)
        || a == 127                              // 127/8 loopback
        || (a == 169 && b == 254)                // 169.254/16 link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))   // 172.16/12 private
        || (a == 192 && b == 0 && c == 0)        // 192.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)        // 192.0.2/24 documentation
        || (a == 192 && b == 88 && c == 99)      // 192.88.99/24 6to4 relay anycast (deprecated)
        || (a == 192 && b == 168)                // 192.168/16 private
        || (a == 198 && (b == 18 || b == 19))    // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100)     // 198.51.100/24 documentation
        || (a == 203 && b == 0 && c == 113)      // 203.0.113/24 documentation
        || a >= 224) // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast
}

/// IPv6 without an IPv4 address inside: see [`is_public`].
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    (s[0] & 0xe000) == 0x2000                    // 2000::/3 global unicast
        && !(s[0] == 0x2001 && s[1] < 0x0200)    // 2001::/23 IETF protocol assignments
        && !(s[0] == 0x2001 && s[1] == 0x0db8)   // 2001:db8::/32 documentation
        && s[0] != 0x2002                        // 2002::/16 6to4
        && !(s[0] == 0x3fff && s[1] < 0x1000) // 3fff::/20 documentation
}

/// The `wasi:http` hooks of one invocation: every outgoing request goes through
/// the plugin's [`OutboundPolicy`], and bodies the guest writes are buffered.
pub struct OutboundHooks {
    /// The invocation's plugin version (its policy, and its version for the
    /// refusal counter) and export.
    pub(super) grants: Arc<super::Grants>,
    pub(super) export: &'static str,
    pub(super) metrics: Arc<crate::telemetry::Metrics>,
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
        let grants = self.grants.clone();
        let metrics = self.metrics.clone();
        let export = self.export;
        Box::new(async move {
            let response = send(&grants, request, options).await.inspect_err(|e| {
                if matches!(e, HttpError::HttpRequestDenied) {
                    metrics.inc(
                        "ham_plugin_errors_total",
                        &[
                            ("plugin", grants.plugin.as_str()),
                            ("version", grants.version.as_str()),
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

/// The scheme, host and port a request goes to, read from its URI as the policy
/// reads entries; a host or port that cannot be read is refused, never guessed.
fn request_target(uri: &http::Uri) -> Result<(&'static str, Host, u16), String> {
    let scheme = match uri.scheme_str() {
        Some("https") => "https",
        Some("http") => "http",
        other => return Err(format!("the scheme {other:?} is not http or https")),
    };
    let authority = uri.authority().ok_or("the URI has no authority")?.as_str();
    // `http::Uri` allows user info; the host follows the last `@`.
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = split_host_port(host_port)
        .ok_or_else(|| format!("cannot read host and port from `{authority}`"))?;
    let port = match port {
        None => {
            if scheme == "https" {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse()
            .map_err(|_| format!("`{p}` in `{authority}` is not a port number"))?,
    };
    Ok((scheme, Host::read(host)?, port))
}

async fn send(
    grants: &super::Grants,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, HttpError> {
    let (policy, version) = (&grants.outbound, &grants.version);
    let uri = request.uri().clone();
    let (scheme, host, port) = request_target(&uri).map_err(|why| {
        tracing::warn!(plugin = %policy.plugin, %version, url = %uri, reason = %why, "outbound request refused: unreadable URI");
        HttpError::HttpRequestUriInvalid
    })?;
    let use_tls = scheme == "https";

    let addrs = match policy.resolve(scheme, &host, port).await {
        Ok(addrs) => addrs,
        Err(ResolveError::Denied(why)) => {
            match &why {
                Denied::NonPublic(_, address) => tracing::warn!(
                    plugin = %policy.plugin, %version, host = %host, port, address = %address, url = %uri, reason = %why,
                    "outbound request denied: non-public address"
                ),
                Denied::NotAllowed(_) => tracing::warn!(
                    plugin = %policy.plugin, %version, host = %host, port, url = %uri, reason = %why,
                    "outbound request denied: not allowed"
                ),
            }
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
        let server_name = match &host {
            Host::Ip(ip) => rustls::pki_types::ServerName::from(*ip),
            Host::Name(name) => rustls::pki_types::ServerName::try_from(name.clone())?,
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

    /// An `allowed_outbound_hosts` list as a manifest writes it (a TOML array).
    fn entries(list: &str) -> Result<Vec<OutboundEntry>, String> {
        #[derive(Deserialize)]
        struct Manifest {
            allowed_outbound_hosts: Vec<OutboundEntry>,
        }
        toml::from_str::<Manifest>(&format!("allowed_outbound_hosts = {list}"))
            .map(|m| m.allowed_outbound_hosts)
            .map_err(|e| e.to_string())
    }

    fn policy(rules: Vec<HostRule>) -> OutboundPolicy {
        OutboundPolicy::new("t", rules)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn entries_are_strings_or_tables() {
        let entry = |url: &str, private| OutboundEntry {
            url: url.to_string(),
            private,
        };
        let list = r#"["https://a.example", { url = "http://nas.lan:8080", private = true },
            { url = "{{ base }}" }, { url = "http://b.example", private = false }]"#;
        assert_eq!(
            entries(list).unwrap(),
            vec![
                entry("https://a.example", false),
                entry("http://nas.lan:8080", true),
                entry("{{ base }}", false),
                entry("http://b.example", false),
            ]
        );

        for (list, why) in [
            (
                r#"[{ url = "http://x", privat = true }]"#,
                "unknown field `privat`",
            ),
            (r#"[{ host = "http://x" }]"#, "unknown field `host`"),
            (r#"[{ private = true }]"#, "missing field `url`"),
            (
                r#"[{ url = "http://x", url = "http://y" }]"#,
                "duplicate key",
            ),
            (r#"[{ url = "http://x", private = "yes" }]"#, "bool"),
            ("[7]", "a URL string, or a table"),
        ] {
            let err = entries(list).unwrap_err();
            assert!(err.contains(why), "{list}: {err}");
        }

        // Written back in the form it was read from.
        let json = serde_json::to_string(&[entry("http://a", false), entry("http://b:1", true)]);
        assert_eq!(
            json.unwrap(),
            r#"["http://a",{"url":"http://b:1","private":true}]"#
        );
    }

    #[test]
    fn parses_the_documented_forms() {
        for (entry, private) in [
            ("https://www.strava.com", false),
            ("https://www.strava.com/api/v3", false),
            ("HTTPS://WWW.Strava.com", false),
            ("http://127.0.0.1:8080", false),
            ("http://192.168.1.10", false),
            ("https://*.example.com", false),
            ("https://*:*", false),
            ("https://*:443", false),
            ("http://*.example.com:*", false),
            ("http://[::1]:9000", false),
            ("http://[::ffff:10.0.0.1]:80", false),
            ("https://8.8.8.8:*", false),
            ("http://nas.lan:8080", true),
            ("http://nas.lan", true),
            ("http://10.0.0.5:8080", true),
        ] {
            assert!(HostRule::parse(entry, private).is_ok(), "{entry}");
        }
        for (entry, private, why) in [
            ("www.strava.com", false, "needs a scheme"),
            ("ftp://x", false, "http or https"),
            ("https://a.*.com", false, "wildcard"),
            ("https://*example.com", false, "wildcard"),
            ("https://*.*", false, "wildcard"),
            ("https://*.10.0.0.1", false, "wildcard"),
            ("https://x:http", false, "not a port"),
            ("https://x:70000", false, "not a port"),
            ("https://u:p@x", false, "user info"),
            ("http://[::1", false, "cannot read host"),
            ("http://[1.2.3.4]", false, "not an IPv6 address"),
            ("http://exa%6dple.com", false, "not a DNS name"),
            ("http://2130706433:8080", false, "as in 127.0.0.1"),
            ("http://0x7f.1", false, "as in 127.0.0.1"),
            ("http://017700000001", false, "as in 127.0.0.1"),
            ("http://127.1", false, "as in 127.0.0.1"),
            ("http://127.0.0.1.", false, "as in 127.0.0.1"),
            ("http://1.2.3.4.5", false, "not an IPv4 address"),
            ("http://127.0.0.1:*", false, "name the port"),
            ("http://[fd00:ec2::254]:*", false, "name the port"),
            (
                "http://*.lan:8080",
                true,
                "private = true needs an exact host and port",
            ),
            (
                "http://*:8080",
                true,
                "private = true needs an exact host and port",
            ),
            (
                "http://nas.lan:*",
                true,
                "private = true needs an exact host and port",
            ),
        ] {
            let err = HostRule::parse(entry, private).unwrap_err();
            assert!(err.contains(why), "{entry}: {err}");
        }
    }

    #[test]
    fn reads_hosts_in_every_spelling_or_refuses_them() {
        let v4 = |text: &str| Ok(Host::Ip(ip(text)));
        let name = |text: &str| Ok(Host::Name(text.to_string()));
        for (text, expected) in [
            ("Example.COM", name("example.com")),
            ("my_host-1.lan.", name("my_host-1.lan.")),
            ("1.0x7g", name("1.0x7g")),
            ("1.2.3.example", name("1.2.3.example")),
            ("127.0.0.1", v4("127.0.0.1")),
            ("2130706433", v4("127.0.0.1")),
            ("0x7f.1", v4("127.0.0.1")),
            ("0X7F.0.0.1", v4("127.0.0.1")),
            ("0x7f000001", v4("127.0.0.1")),
            ("017700000001", v4("127.0.0.1")),
            ("0177.0.0.01", v4("127.0.0.1")),
            ("127.1", v4("127.0.0.1")),
            ("127.0.1", v4("127.0.0.1")),
            ("127.0.0.1.", v4("127.0.0.1")),
            ("169.254.43518", v4("169.254.169.254")),
            ("0xa9fea9fe", v4("169.254.169.254")),
            ("0", v4("0.0.0.0")),
            ("0x", v4("0.0.0.0")),
            ("4294967295", v4("255.255.255.255")),
            ("[::1]", Ok(Host::Ip(ip("::1")))),
            ("[::FFFF:127.0.0.1]", v4("127.0.0.1")),
            ("::ffff:7f00:1", v4("127.0.0.1")),
            ("[::127.0.0.1]", Ok(Host::Ip(ip("::127.0.0.1")))),
        ] {
            assert_eq!(Host::read(text), expected, "{text}");
        }
        for text in [
            "",
            "4294967296",
            "256.0.0.1",
            "1.2.3.256",
            "1.2.65536",
            "1.2.3.4.5",
            "08.0.0.1",
            "0x7g.1",
            "1..1",
            "0xfffffffffffffffffffff",
            "[fe80::1%25eth0]",
            "fe80::1%eth0",
            "[127.0.0.1]",
            "exa%6dple.com",
            ".example.com",
            "a..example.com",
            "a b",
            "[::1]x",
        ] {
            assert!(Host::read(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn classifies_every_special_range() {
        // (address, public?): the first and last address of every range, and its
        // neighbours outside.
        let cases: &[(&str, bool)] = &[
            ("0.0.0.0", false),
            ("0.255.255.255", false),
            ("1.0.0.0", true),
            ("9.255.255.255", true),
            ("10.0.0.0", false),
            ("10.255.255.255", false),
            ("11.0.0.0", true),
            ("100.63.255.255", true),
            ("100.64.0.0", false),
            ("100.127.255.255", false),
            ("100.128.0.0", true),
            ("126.255.255.255", true),
            ("127.0.0.1", false),
            ("127.255.255.255", false),
            ("128.0.0.0", true),
            ("169.253.255.255", true),
            ("169.254.0.0", false),
            ("169.254.169.254", false),
            ("169.255.0.0", true),
            ("172.15.255.255", true),
            ("172.16.0.0", false),
            ("172.31.255.255", false),
            ("172.32.0.0", true),
            ("192.0.0.0", false),
            ("192.0.0.255", false),
            ("192.0.1.1", true),
            ("192.0.2.0", false),
            ("192.0.2.255", false),
            ("192.0.3.0", true),
            ("192.88.98.255", true),
            ("192.88.99.0", false),
            ("192.88.99.255", false),
            ("192.88.100.0", true),
            ("192.167.255.255", true),
            ("192.168.0.0", false),
            ("192.168.255.255", false),
            ("192.169.0.0", true),
            ("198.17.255.255", true),
            ("198.18.0.0", false),
            ("198.19.255.255", false),
            ("198.20.0.0", true),
            ("198.51.100.0", false),
            ("198.51.100.255", false),
            ("198.51.101.0", true),
            ("203.0.113.0", false),
            ("203.0.113.255", false),
            ("203.0.114.0", true),
            ("223.255.255.255", true),
            ("224.0.0.0", false),
            ("239.255.255.255", false),
            ("240.0.0.0", false),
            ("255.255.255.254", false),
            ("255.255.255.255", false),
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            // IPv6 special addresses and ranges.
            ("::", false),
            ("::1", false),
            ("::2", false),
            // IPv4-mapped: judged by the IPv4 address inside.
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:0.0.0.0", false),
            ("::ffff:8.8.8.8", true),
            // IPv4-compatible (deprecated): never public.
            ("::127.0.0.1", false),
            ("::8.8.8.8", false),
            // NAT64 well-known prefix: judged by the IPv4 address inside.
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::10.1.2.3", false),
            ("64:ff9b::8.8.8.8", true),
            ("64:ff9b::1:808:808", false),
            // Local-use NAT64.
            ("64:ff9b:1::", false),
            ("64:ff9b:1::8.8.8.8", false),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", false),
            // Discard-only.
            ("100::", false),
            ("100::ffff:ffff:ffff:ffff", false),
            // IETF protocol assignments, Teredo and benchmarking among them.
            ("2001::", false),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
            ("2001:2::1", false),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:200::1", true),
            ("2001:4860:4860::8888", true),
            // Documentation.
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db8::", false),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db9::", true),
            ("3fff::1", false),
            ("3fff:fff:ffff::1", false),
            ("3fff:1000::1", true),
            // 6to4, whatever IPv4 address is inside.
            ("2001:ffff::1", true),
            ("2002::", false),
            ("2002:808:808::1", false),
            ("2002:7f00:1::1", false),
            ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2003::1", true),
            ("2606:4700::1111", true),
            ("2a00:1450:4001::1", true),
            // Unique local, with the AWS metadata address.
            ("fbff:ffff::1", false),
            ("fc00::", false),
            ("fd00:ec2::254", false),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // Link-local and deprecated site-local.
            ("fe80::", false),
            ("febf:ffff::1", false),
            ("fec0::", false),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // Multicast.
            ("ff00::", false),
            ("ff02::1", false),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // Unassigned space outside 2000::/3.
            ("4000::1", false),
            ("1::1", false),
        ];
        for (text, public) in cases {
            assert_eq!(is_public(ip(text)), *public, "{text}");
        }
    }

    /// What a request gets: reached, not in the list, or a non-public address.
    #[derive(Debug, PartialEq)]
    enum Verdict {
        Reached,
        NotAllowed,
        NonPublic,
    }

    #[tokio::test]
    async fn entries_reach_only_what_they_name() {
        use Verdict::*;
        const WILD: &str = r#"["http://*:*"]"#;
        const NAME: &str = r#"["http://localhost:8080"]"#;
        const MARKED: &str = r#"[{ url = "http://localhost:8080", private = true }]"#;
        const LITERAL: &str = r#"["http://127.0.0.1:8080"]"#;
        // (allowed_outbound_hosts as written, the request's URL, what it gets)
        let cases = [
            // Fail closed when nothing is listed.
            ("[]", "https://example.com", NotAllowed),
            // A wildcard never reaches a non-public address, however it is spelled.
            (WILD, "http://127.0.0.1", NonPublic),
            (WILD, "http://[::ffff:127.0.0.1]", NonPublic),
            (WILD, "http://[::127.0.0.1]", NonPublic),
            (WILD, "http://[64:ff9b::7f00:1]", NonPublic),
            (WILD, "http://2130706433", NonPublic),
            (WILD, "http://0x7f.1", NonPublic),
            (WILD, "http://017700000001", NonPublic),
            (WILD, "http://0xa9fea9fe", NonPublic),
            (WILD, "http://localhost", NonPublic),
            (WILD, "http://93.184.216.34", Reached),
            // An exact DNS name is checked after resolution like a wildcard ...
            (NAME, "http://localhost:8080", NonPublic),
            (
                r#"["http://LOCALHOST:8080"]"#,
                "http://LocalHost:8080",
                NonPublic,
            ),
            // ... unless marked private on purpose.
            (MARKED, "http://localhost:8080", Reached),
            (MARKED, "http://localhost:8081", NotAllowed),
            (MARKED, "https://localhost:8080", NotAllowed),
            // A name never matches an address, in any spelling.
            (MARKED, "http://127.0.0.1:8080", NotAllowed),
            (MARKED, "http://2130706433:8080", NotAllowed),
            (NAME, "http://0x7f.1:8080", NotAllowed),
            // An IP literal reaches its address and port, in any spelling.
            (LITERAL, "http://127.0.0.1:8080", Reached),
            (LITERAL, "http://0x7f.1:8080", Reached),
            (LITERAL, "http://[::ffff:127.0.0.1]:8080", Reached),
            (LITERAL, "http://127.0.0.1:8081", NotAllowed),
            (LITERAL, "https://127.0.0.1:8080", NotAllowed),
            (LITERAL, "http://localhost:8080", NotAllowed),
            (LITERAL, "http://127.0.0.2:8080", NotAllowed),
            (r#"["http://[::1]:9000"]"#, "http://[::1]:9000", Reached),
            (
                r#"["http://169.254.169.254"]"#,
                "http://169.254.169.254",
                Reached,
            ),
            // An exact entry wins over a wildcard for the same host, in either order.
            (
                r#"["http://*:*", "http://127.0.0.1:8080"]"#,
                "http://127.0.0.1:8080",
                Reached,
            ),
            (
                r#"["http://127.0.0.1:8080", "http://*:*"]"#,
                "http://127.0.0.1:8080",
                Reached,
            ),
            (
                r#"["http://localhost:8080", { url = "http://localhost:8080", private = true }]"#,
                "http://localhost:8080",
                Reached,
            ),
            // A suffix wildcard matches names below it, never the suffix itself.
            (
                r#"["http://*.localhost:*"]"#,
                "http://localhost",
                NotAllowed,
            ),
        ];
        for (list, url, expected) in cases {
            let rules = entries(list)
                .unwrap()
                .iter()
                .map(|e| HostRule::parse(&e.url, e.private).unwrap())
                .collect();
            let (scheme, host, port) = request_target(&url.parse().unwrap()).unwrap();
            let verdict = match policy(rules).resolve(scheme, &host, port).await {
                Ok(_) => Reached,
                Err(ResolveError::Denied(Denied::NotAllowed(_))) => NotAllowed,
                Err(ResolveError::Denied(Denied::NonPublic(..))) => NonPublic,
                Err(e) => panic!("{list} {url}: {e}"),
            };
            assert_eq!(verdict, expected, "{list} {url}");
        }
    }

    #[test]
    fn reads_the_target_of_a_request() {
        let target = |uri: &str| request_target(&uri.parse().unwrap());
        let ok = |scheme, host: &str, port| Ok((scheme, Host::read(host).unwrap(), port));
        assert_eq!(
            target("http://example.com/x"),
            ok("http", "example.com", 80)
        );
        assert_eq!(
            target("https://example.com/x"),
            ok("https", "example.com", 443)
        );
        assert_eq!(target("http://u:p@0x7f.1:81/"), ok("http", "127.0.0.1", 81));
        assert_eq!(target("http://[::1]:9000/"), ok("http", "[::1]", 9000));
        assert_eq!(target("https://[::1]/"), ok("https", "[::1]", 443));
        for uri in [
            "http://example.com:99999/",
            "http://example.com:http/",
            "http://example.com:/",
            "http://1.2.3.256/",
            "http://[fe80::1%25eth0]/",
            "ftp://example.com/",
        ] {
            assert!(target(uri).is_err(), "{uri}");
        }
    }
}
