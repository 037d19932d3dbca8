//! The validated configuration the edge runs on. `load` turns TOML (or the quick-mode
//! flags) into these types; everything here has already been checked, so the edge never
//! re-validates. Every field says its unit and default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole edge configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub edge: EdgeSettings,
    pub cache: CacheSettings,
    pub control: ControlSettings,
    pub distributions: Vec<Distribution>,
}

/// Where distributions made through the admin API are kept (`[control]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ControlSettings {
    /// The edge's durable state (the API's distributions). Default: `cairn-state` beside
    /// the cache directory.
    pub state_dir: PathBuf,
}

/// Process-wide settings (`[edge]`).
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeSettings {
    /// Name of this edge in `Via` and in logs (`x-edge-location`). Default "cairn".
    pub name: String,
    /// Assigned domains are `<distribution id>.<domain>`. Default "cairn.localhost".
    pub domain: String,
    /// Viewer listener. Default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// Admin listener. Default 127.0.0.1:9090.
    pub admin_listen: SocketAddr,
    /// Bearer token every admin request must carry (`Authorization: Bearer TOKEN`).
    /// Default none; required when `admin_listen` is not a loopback address.
    pub admin_token: Option<String>,
    /// How long SIGTERM waits for in-flight requests before closing. Default 10 s.
    pub drain_timeout: Duration,
    /// How long a viewer connection may take to send its request headers (also how long
    /// an idle keep-alive connection is kept). Default 10 s.
    pub header_read_timeout: Duration,
    /// Viewer connections open at once; beyond it a new connection gets a quick 503 and is
    /// closed. Default 10000.
    pub max_connections: u32,
    /// Requests served on one viewer connection; the last response carries
    /// `Connection: close` (HTTP/2: GOAWAY). Default 1000.
    pub max_requests_per_connection: u32,
    /// Largest request body forwarded to an origin, in bytes; a larger one gets 413.
    /// Default 10 MiB.
    pub max_request_body: u64,
}

/// The store (`[cache]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Cache directory. Default "./cairn-cache".
    pub dir: PathBuf,
    /// Bytes of segment files kept on disk. Default 10 GiB.
    pub capacity: u64,
    /// Bytes per segment file. Default 256 MiB (never more than capacity / 4).
    pub segment_size: u64,
    /// How long expired objects are kept for revalidation. Default 1 hour.
    pub stale_grace: Duration,
    /// Largest body stored, in bytes; larger responses are passed through. Default: a
    /// quarter of the capacity.
    pub max_object_size: Option<u64>,
    /// Bytes of free space the store leaves on the cache's filesystem: below it, responses
    /// are passed through uncached (the index, which treats a write error as fatal, lives
    /// there too). Default 64 MiB.
    pub min_free_disk: u64,
}

/// One distribution (`[[distribution]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// Letters, digits and '-' ; lower case. Given, or generated stably from the aliases
    /// and origins when absent.
    pub id: String,
    /// Alternate domain names, lower case, no port. `*.example.com` wildcards allowed.
    pub aliases: Vec<String>,
    /// Answer any Host no other distribution claims (quick mode's single distribution).
    pub catch_all: bool,
    /// Default true. A disabled distribution answers 403.
    pub enabled: bool,
    /// Free text. Default "".
    pub comment: String,
    pub origins: Vec<Origin>,
    pub origin_groups: Vec<OriginGroup>,
    /// Object served for `/` (for example "index.html"). Default none.
    pub default_root_object: Option<String>,
    pub logging: Logging,
    pub default_behavior: Behavior,
    /// Ordered; the first whose pattern matches the path wins, else the default.
    pub behaviors: Vec<Behavior>,
}

impl Distribution {
    /// The assigned domain `<id>.<edge domain>`.
    pub fn assigned_domain(&self, edge_domain: &str) -> String {
        format!("{}.{}", self.id, edge_domain)
    }

    pub fn origin(&self, id: &str) -> Option<&Origin> {
        self.origins.iter().find(|o| o.id == id)
    }

    pub fn group(&self, id: &str) -> Option<&OriginGroup> {
        self.origin_groups.iter().find(|g| g.id == id)
    }
}

/// Access logging of a distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Logging {
    /// Default false.
    pub enabled: bool,
    /// Log file; default `logs/<distribution id>.log` next to the config file (quick mode:
    /// the working directory).
    pub file: PathBuf,
}

/// An origin server (`[[distribution.origin]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// Unique within the distribution.
    pub id: String,
    /// An HTTP server, or another Cairn edge (a parent tier). Default http.
    pub kind: OriginKind,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host name or IP address (no brackets for IPv6).
    pub host: String,
    /// Port (default 80 / 443 by scheme).
    pub port: u16,
    /// Prefix added before the request path: "" or "/something" with no trailing '/'.
    pub path: String,
    /// Headers added to every request to this origin (replacing a viewer's of that name).
    pub headers: Vec<(String, String)>,
    /// Per connection attempt. Default 10 s.
    pub connect_timeout: Duration,
    /// Connection attempts before the origin counts as unreachable. Default 3.
    pub connect_attempts: u32,
    /// Time to the response headers, and the longest pause between body bytes. Default 30 s.
    pub response_timeout: Duration,
    /// How long an idle pooled connection to the origin is kept. Default 5 s.
    pub keepalive_timeout: Duration,
    /// Extra PEM file of CA certificates trusted for this https origin (besides the
    /// built-in web roots). Default none.
    pub ca_file: Option<PathBuf>,
}

impl Origin {
    /// `scheme://host:port`, for logs and error messages.
    pub fn base_url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{}:{}", self.scheme.as_str(), host, self.port)
    }
}

/// What an origin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OriginKind {
    /// An HTTP(S) server.
    #[default]
    Http,
    /// Another Cairn edge, a parent tier: it is sent the viewer's Host (so that it routes
    /// the request to the same distribution) and its own result comes back to the viewer
    /// as `X-Cache-Parent`.
    Edge,
}

impl OriginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OriginKind::Http => "http",
            OriginKind::Edge => "edge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// An origin group (`[[distribution.origin_group]]`): members tried in order.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginGroup {
    pub id: String,
    /// Origin ids of this distribution, at least two, tried in order.
    pub members: Vec<String>,
    /// Origin statuses that make the edge try the next member (e.g. 500, 502, 503, 504).
    /// Default empty: only connection errors and timeouts fail over.
    pub failover_statuses: Vec<u16>,
}

/// A cache behaviour: defaults or `[[distribution.behavior]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// None for the default behaviour; else a CloudFront path pattern (`/images/*`,
    /// `*.jpg`): case-sensitive, `*` matches any run of characters, `?` exactly one.
    pub path_pattern: Option<String>,
    /// Origin or origin group id. Default: the first origin.
    pub target: String,
    /// Seconds. Default 86400.
    pub default_ttl: u64,
    /// Seconds. Default 0.
    pub min_ttl: u64,
    /// Seconds. Default 31536000.
    pub max_ttl: u64,
    pub allowed_methods: AllowedMethods,
    pub cache_key: CacheKeyPolicy,
    /// What is forwarded to the origin besides what the cache key includes.
    pub origin_request: OriginRequestPolicy,
    /// Seconds CloudFront mode caches an error response (one of
    /// [`CACHED_ERROR_STATUSES`]) that has no explicit freshness (no `s-maxage`, `max-age`
    /// or `Expires`). 0 to 31536000. Default 10.
    pub error_ttl: u64,
    /// Per-status overrides of `error_ttl`: (status, seconds), sorted by status, each
    /// status one of [`CACHED_ERROR_STATUSES`] at most once. Default empty.
    pub error_ttls: Vec<(u16, u64)>,
    /// Bytes. A Range request on a miss fetches and caches the whole object only when its
    /// size, known from Content-Length, is at most this; larger objects get the range
    /// passed through to the origin. Default 64 MiB.
    pub range_fill_max: u64,
}

/// The error statuses CloudFront mode caches for `error_ttl` when the origin gives no
/// explicit freshness; the keys `error_ttls` accepts.
pub const CACHED_ERROR_STATUSES: [u16; 8] = [404, 405, 414, 500, 501, 502, 503, 504];

impl Behavior {
    /// Does this behaviour's pattern match `path` (the normalised request path)?
    pub fn matches(&self, path: &str) -> bool {
        match &self.path_pattern {
            None => true,
            Some(p) => pattern_matches(p.as_bytes(), path.as_bytes()),
        }
    }

    /// Seconds an error response with `status` and no explicit freshness is cached in
    /// CloudFront mode: its `error_ttls` override, else `error_ttl`. Whether `status` is
    /// cached at all ([`CACHED_ERROR_STATUSES`]) is the caller's to check.
    pub fn error_ttl_for(&self, status: u16) -> u64 {
        self.error_ttls
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(self.error_ttl, |(_, secs)| *secs)
    }

    /// A behaviour whose `default_ttl` is 0 runs as a plain RFC 9111 shared cache (strict
    /// mode) instead of by CloudFront's TTL rules.
    pub fn strict(&self) -> bool {
        self.default_ttl == 0
    }

    /// A response with Set-Cookie is not stored: CloudFront's rules apply and cookies are
    /// not in the cache key (forwarded or not). Strict mode follows RFC 9111 §3 instead,
    /// where Set-Cookie does not inhibit storing (the origin says `private` or
    /// `no-cache="Set-Cookie"` to keep it out).
    pub fn set_cookie_prevents_storing(&self) -> bool {
        self.cache_key.cookies == ListPolicy::None && !self.strict()
    }
}

/// CloudFront path pattern matching: `*` any run (including empty), `?` one byte. A pattern
/// that does not start with '/' or '*' is matched as if it started with '/'.
pub fn pattern_matches(pattern: &[u8], path: &[u8]) -> bool {
    pattern_matches_compiled(&compile_pattern_bytes(pattern), path)
}

/// A path pattern in the form [`pattern_matches_compiled`] takes (done once per
/// configuration, not per request).
pub fn compile_pattern(pattern: &str) -> Vec<u8> {
    compile_pattern_bytes(pattern.as_bytes())
}

fn compile_pattern_bytes(pattern: &[u8]) -> Vec<u8> {
    match pattern.first() {
        Some(b'/') | Some(b'*') => pattern.to_vec(),
        _ => [b"/".as_slice(), pattern].concat(),
    }
}

/// [`pattern_matches`] for a pattern [`compile_pattern`] made.
pub fn pattern_matches_compiled(pattern: &[u8], path: &[u8]) -> bool {
    // Iterative wildcard match with one backtrack point (linear in practice).
    let (mut p, mut s) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while s < path.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == path[s]) {
            p += 1;
            s += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            p += 1;
            mark = s;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            s = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// Which methods a behaviour accepts (CloudFront's three choices).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedMethods {
    /// GET, HEAD (default).
    GetHead,
    /// GET, HEAD, OPTIONS.
    GetHeadOptions,
    /// GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE.
    All,
}

impl AllowedMethods {
    pub fn allows(self, method: &http::Method) -> bool {
        use http::Method;
        match self {
            AllowedMethods::GetHead => method == Method::GET || method == Method::HEAD,
            AllowedMethods::GetHeadOptions => {
                method == Method::GET || method == Method::HEAD || method == Method::OPTIONS
            }
            AllowedMethods::All => [
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::PUT,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
            ]
            .contains(method),
        }
    }

    /// The `Allow` header value for a 405.
    pub fn allow_header(self) -> &'static str {
        match self {
            AllowedMethods::GetHead => "GET, HEAD",
            AllowedMethods::GetHeadOptions => "GET, HEAD, OPTIONS",
            AllowedMethods::All => "GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE",
        }
    }
}

/// What the cache key includes (and so what is forwarded to the origin).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheKeyPolicy {
    /// Query string parameters. Default none.
    pub query_strings: ListPolicy,
    /// Request header names, lower case. Default empty. "host" means the viewer's Host is
    /// forwarded (and keyed); "accept-encoding" is normalised to br, gzip or identity.
    pub headers: Vec<String>,
    /// Cookie names. Default none.
    pub cookies: ListPolicy,
}

/// What the origin request includes besides what the cache key includes (CloudFront's
/// origin request policy): forwarded, never keyed. Default: nothing more.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OriginRequestPolicy {
    /// Viewer request headers (hop-by-hop ones and those named in Connection never).
    pub headers: HeaderPolicy,
    /// Cookie names.
    pub cookies: ListPolicy,
    /// Query string parameters.
    pub query_strings: ListPolicy,
}

/// Which viewer headers an origin request policy forwards. Names are lower case. Whatever
/// the policy, hop-by-hop headers, those the viewer's Connection names, Cookie (see the
/// cookie policies), X-Forwarded-For and Via (the edge extends them) and the framing
/// headers are never copied; on a cache fill neither are the conditional headers and
/// Range, which the cache answers itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HeaderPolicy {
    #[default]
    None,
    /// Every viewer header except Host.
    All,
    /// Every viewer header, the viewer's Host included.
    AllViewer,
    AllowList(Vec<String>),
    /// Every viewer header except Host and these.
    AllExcept(Vec<String>),
}

impl HeaderPolicy {
    /// Is the (lower-case) header `name` forwarded?
    pub fn includes(&self, name: &str) -> bool {
        match self {
            HeaderPolicy::None => false,
            HeaderPolicy::All => name != "host",
            HeaderPolicy::AllViewer => true,
            HeaderPolicy::AllowList(names) => names.iter().any(|n| n == name),
            HeaderPolicy::AllExcept(names) => name != "host" && !names.iter().any(|n| n == name),
        }
    }
}

/// none | all | allow-list | all-except, for query strings and cookies. Names are
/// case-sensitive, as in CloudFront.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ListPolicy {
    #[default]
    None,
    All,
    AllowList(Vec<String>),
    AllExcept(Vec<String>),
}

impl ListPolicy {
    /// Is the parameter or cookie `name` part of the key?
    pub fn includes(&self, name: &str) -> bool {
        match self {
            ListPolicy::None => false,
            ListPolicy::All => true,
            ListPolicy::AllowList(names) => names.iter().any(|n| n == name),
            ListPolicy::AllExcept(names) => !names.iter().any(|n| n == name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_cloudfront_does() {
        assert!(pattern_matches(b"/images/*", b"/images/a/b.png"));
        assert!(!pattern_matches(b"/images/*", b"/img/a.png"));
        assert!(pattern_matches(b"*.jpg", b"/a/b/c.jpg"));
        assert!(!pattern_matches(b"*.jpg", b"/a/b/c.jpeg"));
        assert!(pattern_matches(b"images/*.png", b"/images/x.png"));
        assert!(pattern_matches(b"/a?c", b"/abc"));
        assert!(!pattern_matches(b"/a?c", b"/ac"));
        assert!(pattern_matches(b"*", b"/"));
        assert!(!pattern_matches(b"/Images/*", b"/images/a"));
    }
}
