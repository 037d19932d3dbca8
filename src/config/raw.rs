//! The configuration as written, before validation: every field optional and carrying its
//! position ([`At`]), every table its key path. The TOML walker (`load`) and quick mode
//! (`quick`) both produce these, and `build` validates them into the model, so both
//! front ends share every rule and every message.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::problem::{At, Pos};

pub(crate) type Field<T> = Option<At<T>>;

#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    /// Start of the source: where "no distribution" is reported.
    pub pos: Pos,
    pub edge: RawEdge,
    pub cache: RawCache,
    pub control: RawControl,
    pub distributions: Vec<RawDistribution>,
    /// `distribution` was there but not an array of tables (already reported).
    pub distributions_malformed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RawEdge {
    pub name: Field<String>,
    pub domain: Field<String>,
    pub listen: Field<SocketAddr>,
    pub admin_listen: Field<SocketAddr>,
    pub admin_token: Field<String>,
    pub drain_timeout: Field<u64>,
    pub header_read_timeout: Field<u64>,
    pub max_connections: Field<u64>,
    pub max_requests_per_connection: Field<u64>,
    pub max_request_body: Field<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct RawCache {
    pub dir: Field<PathBuf>,
    pub capacity: Field<u64>,
    pub segment_size: Field<u64>,
    pub stale_grace: Field<u64>,
    pub max_object_size: Field<u64>,
    pub min_free_disk: Field<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct RawControl {
    pub state_dir: Field<PathBuf>,
}

#[derive(Debug, Default)]
pub(crate) struct RawDistribution {
    /// `distribution[i]`.
    pub path: String,
    /// The `[[distribution]]` header.
    pub pos: Pos,
    pub id: Field<String>,
    pub aliases: Vec<At<String>>,
    pub enabled: Field<bool>,
    pub comment: Field<String>,
    pub default_root_object: Field<String>,
    pub catch_all: Field<bool>,
    pub logging: RawLogging,
    pub origins: Vec<RawOrigin>,
    pub groups: Vec<RawGroup>,
    pub default_behavior: RawBehavior,
    pub behaviors: Vec<RawBehavior>,
}

#[derive(Debug, Default)]
pub(crate) struct RawLogging {
    pub enabled: Field<bool>,
    pub file: Field<PathBuf>,
}

#[derive(Debug, Default)]
pub(crate) struct RawOrigin {
    pub path: String,
    pub pos: Pos,
    pub id: Field<String>,
    /// `type`: "http" or "edge".
    pub kind: Field<String>,
    pub url: Field<String>,
    /// Quick mode: a path in the URL is the origin path, not an error.
    pub url_path_is_prefix: bool,
    pub path_prefix: Field<String>,
    /// Name and value, each where it was written.
    pub headers: Vec<(At<String>, At<String>)>,
    pub connect_timeout: Field<u64>,
    pub connect_attempts: Field<u64>,
    pub response_timeout: Field<u64>,
    pub keepalive_timeout: Field<u64>,
    pub ca_file: Field<PathBuf>,
}

#[derive(Debug, Default)]
pub(crate) struct RawGroup {
    pub path: String,
    pub pos: Pos,
    pub id: Field<String>,
    pub members: Field<Vec<At<String>>>,
    pub failover_statuses: Vec<At<i64>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawBehavior {
    pub path: String,
    pub pos: Pos,
    pub path_pattern: Field<String>,
    pub target: Field<String>,
    pub default_ttl: Field<u64>,
    pub min_ttl: Field<u64>,
    pub max_ttl: Field<u64>,
    pub allowed_methods: Field<Vec<At<String>>>,
    pub cache_key: RawCacheKey,
    pub origin_request: RawOriginRequest,
    pub error_ttl: Field<u64>,
    /// `error_ttls` entries: the key (a status, as written) and the seconds.
    pub error_ttls: Vec<(At<String>, At<u64>)>,
    pub range_fill_max: Field<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct RawCacheKey {
    /// A CloudFront managed cache policy name.
    pub managed: Field<String>,
    pub query_strings: Field<RawList>,
    pub headers: Vec<At<String>>,
    /// Where `headers` is written, when it is.
    pub headers_pos: Option<Pos>,
    pub cookies: Field<RawList>,
}

/// `origin_request`: what is forwarded besides the cache key.
#[derive(Debug, Default)]
pub(crate) struct RawOriginRequest {
    /// A CloudFront managed origin request policy name.
    pub managed: Field<String>,
    pub headers: Field<RawList>,
    pub cookies: Field<RawList>,
    pub query_strings: Field<RawList>,
}

/// A `query_strings`, `cookies` or (origin request) `headers` value; the lists keep their
/// own position.
#[derive(Debug)]
pub(crate) enum RawList {
    None,
    All,
    /// `"all_viewer"`: headers only (every viewer header, Host included).
    AllViewer,
    Allow(At<Vec<At<String>>>),
    AllExcept(At<Vec<At<String>>>),
}
