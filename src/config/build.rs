//! Validation of the raw configuration into the model: defaults, ranges, references
//! (behaviour targets, group members), generated distribution ids, and the checks across
//! the whole configuration (unique ids and host names, one catch-all, one writer per log
//! file). Every rule reports to [`Problems`] at the position of the value it concerns and
//! goes on with a default, so one load reports everything at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::check;
use super::model::*;
use super::policy;
use super::problem::{At, Pos, Problems};
use super::raw::*;
use super::size::fmt_size;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

pub(crate) const DEFAULT_NAME: &str = "cairn";
pub(crate) const DEFAULT_DOMAIN: &str = "cairn.localhost";
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
pub(crate) const DEFAULT_CACHE_DIR: &str = "cairn-cache";
/// Beside the cache directory: the cache may be wiped, the state may not.
pub(crate) const DEFAULT_STATE_DIR: &str = "cairn-state";
pub(crate) const DEFAULT_CAPACITY: u64 = 10 * GIB;
pub(crate) const DEFAULT_SEGMENT_SIZE: u64 = 256 * MIB;
pub(crate) const DEFAULT_STALE_GRACE: u64 = 3600;
pub(crate) const DEFAULT_MIN_FREE_DISK: u64 = 64 * MIB;
/// Above this, `min_free_disk` is surely a mistake (a unit typed wrong).
const MAX_MIN_FREE_DISK: u64 = TIB;
/// Ten years: beyond this a grace period is a mistake, and time arithmetic stays far from
/// overflow.
const MAX_STALE_GRACE: u64 = 10 * 365 * 86400;
pub(crate) const DEFAULT_TTL: u64 = 86400;
pub(crate) const DEFAULT_MIN_TTL: u64 = 0;
pub(crate) const DEFAULT_MAX_TTL: u64 = 31_536_000;
pub(crate) const DEFAULT_ERROR_TTL: u64 = 10;
/// The longest TTL a behaviour may set: 100 years, in effect no limit, and far enough from
/// overflow that freshness arithmetic on any clock reading stays exact.
pub(crate) const MAX_TTL: u64 = 100 * 365 * 86400;
/// One year, as for max_ttl's default: longer error caching is a mistake, and time
/// arithmetic stays far from overflow.
const MAX_ERROR_TTL: u64 = 31_536_000;
pub(crate) const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;
/// Far beyond what one process can hold open (file descriptors), yet a `u32`.
const MAX_MAX_CONNECTIONS: u64 = 10_000_000;
pub(crate) const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u64 = 1000;
const MAX_MAX_REQUESTS_PER_CONNECTION: u64 = 1_000_000_000;
pub(crate) const DEFAULT_MAX_REQUEST_BODY: u64 = 10 * MIB;
pub(crate) const DEFAULT_RANGE_FILL_MAX: u64 = 64 * MIB;
/// A CA file is a few hundred KiB at most; refuse to read anything absurd.
const MAX_CA_FILE: u64 = 16 * MIB;

/// `p` against `base` unless absolute, without `.` components.
pub(crate) fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let mut out = base.to_path_buf();
    for c in p.components() {
        if c != Component::CurDir {
            out.push(c);
        }
    }
    out
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// ", line N" when the position has a line.
pub(crate) fn line_note(pos: &Pos) -> String {
    if pos.line > 0 {
        format!(", line {}", pos.line)
    } else {
        String::new()
    }
}

fn ranged(p: &mut Problems, f: &Field<u64>, path: &str, (lo, hi): (u64, u64), default: u64) -> u64 {
    match f {
        None => default,
        Some(v) if (lo..=hi).contains(&v.value) => v.value,
        Some(v) => {
            p.add(
                &v.pos,
                path,
                format!("must be between {lo} and {hi} (got {})", v.value),
            );
            default
        }
    }
}

fn secs(p: &mut Problems, f: &Field<u64>, path: &str, range: (u64, u64), default: u64) -> Duration {
    Duration::from_secs(ranged(p, f, path, range, default))
}

/// Builds the model from `raw`, reporting every problem to `p`. The result is only
/// meaningful when `p` stayed empty.
pub(crate) fn build(raw: RawConfig, base_dir: &Path, p: &mut Problems) -> Config {
    let edge = edge(&raw.edge, p);
    let cache = cache(&raw.cache, base_dir, p);
    let built: Vec<Built> = raw
        .distributions
        .iter()
        .map(|d| distribution(d, base_dir, p))
        .collect();
    if built.is_empty() && !raw.distributions_malformed {
        p.add(
            &raw.pos,
            "distribution",
            "no distribution: add at least one [[distribution]] with an [[distribution.origin]]",
        );
    }
    across(&edge, &built, p);
    let control = ControlSettings {
        state_dir: match &raw.control.state_dir {
            Some(d) => resolve(base_dir, &d.value),
            None => cache
                .dir
                .parent()
                .unwrap_or(base_dir)
                .join(DEFAULT_STATE_DIR),
        },
    };
    Config {
        edge,
        cache,
        control,
        distributions: built.into_iter().map(|b| b.dist).collect(),
    }
}

fn edge(e: &RawEdge, p: &mut Problems) -> EdgeSettings {
    let name = match &e.name {
        Some(n) => {
            if let Err(m) = check::edge_name(&n.value) {
                p.add(&n.pos, "edge.name", m);
            }
            n.value.clone()
        }
        None => DEFAULT_NAME.to_string(),
    };
    let domain = match &e.domain {
        Some(d) => match check::dns_name(&d.value, false) {
            Ok(lower) => lower,
            Err(m) => {
                p.add(&d.pos, "edge.domain", m);
                d.value.to_ascii_lowercase()
            }
        },
        None => DEFAULT_DOMAIN.to_string(),
    };
    let default_addr = |s: &str| {
        s.parse::<SocketAddr>()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
    };
    let listen = e
        .listen
        .as_ref()
        .map_or_else(|| default_addr(DEFAULT_LISTEN), |a| a.value);
    let admin_listen = e
        .admin_listen
        .as_ref()
        .map_or_else(|| default_addr(DEFAULT_ADMIN_LISTEN), |a| a.value);
    // The defaults differ, so equal listeners always involve an explicit one.
    let explicit = match (&e.admin_listen, &e.listen) {
        (Some(a), _) => Some((&a.pos, "edge.admin_listen")),
        (None, Some(l)) => Some((&l.pos, "edge.listen")),
        (None, None) => None,
    };
    if let Some((pos, path)) = explicit.filter(|_| listen == admin_listen && listen.port() != 0) {
        p.add(
            pos,
            path,
            format!("`listen` and `admin_listen` are both {listen}; they must differ"),
        );
    }
    let admin_token = e.admin_token.as_ref().map(|t| {
        if let Err(m) = check::admin_token(&t.value) {
            p.add(&t.pos, "edge.admin_token", m);
        }
        t.value.clone()
    });
    if let (Some(a), None) = (&e.admin_listen, &admin_token) {
        if !a.value.ip().is_loopback() {
            p.add(
                &a.pos,
                "edge.admin_listen",
                format!(
                    "`admin_listen` {} is not a loopback address: set `admin_token` so that admin requests need a bearer token",
                    a.value
                ),
            );
        }
    }
    EdgeSettings {
        name,
        domain,
        listen,
        admin_listen,
        admin_token,
        drain_timeout: secs(p, &e.drain_timeout, "edge.drain_timeout", (0, 3600), 10),
        header_read_timeout: secs(
            p,
            &e.header_read_timeout,
            "edge.header_read_timeout",
            (1, 300),
            10,
        ),
        // The ranges keep both within u32.
        max_connections: ranged(
            p,
            &e.max_connections,
            "edge.max_connections",
            (1, MAX_MAX_CONNECTIONS),
            DEFAULT_MAX_CONNECTIONS,
        ) as u32,
        max_requests_per_connection: ranged(
            p,
            &e.max_requests_per_connection,
            "edge.max_requests_per_connection",
            (1, MAX_MAX_REQUESTS_PER_CONNECTION),
            DEFAULT_MAX_REQUESTS_PER_CONNECTION,
        ) as u32,
        max_request_body: match &e.max_request_body {
            Some(v) if v.value > TIB => {
                p.add(
                    &v.pos,
                    "edge.max_request_body",
                    format!("{} is above the maximum of 1 TiB", fmt_size(v.value)),
                );
                DEFAULT_MAX_REQUEST_BODY
            }
            Some(v) => v.value,
            None => DEFAULT_MAX_REQUEST_BODY,
        },
    }
}

fn cache(c: &RawCache, base: &Path, p: &mut Problems) -> CacheSettings {
    let dir = match &c.dir {
        Some(d) => resolve(base, &d.value),
        None => resolve(base, Path::new(DEFAULT_CACHE_DIR)),
    };
    let capacity = match &c.capacity {
        Some(v) if v.value < 2 * MIB => {
            p.add(
                &v.pos,
                "cache.capacity",
                format!("{} is below the minimum of 2 MiB", fmt_size(v.value)),
            );
            2 * MIB
        }
        Some(v) => v.value,
        None => DEFAULT_CAPACITY,
    };
    let segment_size = match &c.segment_size {
        Some(v) => {
            let why = if v.value < MIB {
                Some("is below the minimum of 1 MiB".to_string())
            } else if v.value > TIB {
                Some("is above the maximum of 1 TiB".to_string())
            } else if v.value > capacity / 2 {
                Some(format!(
                    "is more than half the capacity ({}); the cache must hold at least two \
                     segments, so raise `capacity` or lower `segment_size`",
                    fmt_size(capacity)
                ))
            } else {
                None
            };
            if let Some(why) = why {
                p.add(
                    &v.pos,
                    "cache.segment_size",
                    format!("{} {why}", fmt_size(v.value)),
                );
            }
            v.value
        }
        None => ((capacity / 4).min(DEFAULT_SEGMENT_SIZE) / MIB * MIB).max(MIB),
    };
    let stale_grace = secs(
        p,
        &c.stale_grace,
        "cache.stale_grace",
        (0, MAX_STALE_GRACE),
        DEFAULT_STALE_GRACE,
    );
    let max_object_size = c.max_object_size.as_ref().map(|v| {
        if v.value == 0 {
            p.add(&v.pos, "cache.max_object_size", "must be at least 1 byte");
        } else if v.value > capacity {
            p.add(
                &v.pos,
                "cache.max_object_size",
                format!(
                    "{} is larger than the capacity ({}); such an object could never be stored",
                    fmt_size(v.value),
                    fmt_size(capacity)
                ),
            );
        }
        v.value
    });
    let min_free_disk = match &c.min_free_disk {
        Some(v) if v.value < MIB => {
            p.add(
                &v.pos,
                "cache.min_free_disk",
                format!(
                    "{} is below the minimum of 1 MiB; the index needs room to write",
                    fmt_size(v.value)
                ),
            );
            v.value
        }
        Some(v) if v.value > MAX_MIN_FREE_DISK => {
            p.add(
                &v.pos,
                "cache.min_free_disk",
                format!("{} is above the maximum of 1 TiB", fmt_size(v.value)),
            );
            v.value
        }
        Some(v) => v.value,
        None => DEFAULT_MIN_FREE_DISK,
    };
    CacheSettings {
        dir,
        capacity,
        segment_size,
        stale_grace,
        max_object_size,
        min_free_disk,
    }
}

/// A distribution and what the checks across the configuration need about it.
struct Built {
    dist: Distribution,
    path: String,
    /// False when no id was given and none could be generated (no alias, no origin).
    has_id: bool,
    id_pos: Pos,
    /// The alias or URL a generated id was made from.
    generated_from: Option<String>,
    aliases: Vec<(String, Pos, String)>,
    catch_all_pos: Option<Pos>,
    log_pos: Pos,
}

impl Built {
    fn describe(&self) -> String {
        // A distribution given through the API has no path in a file.
        let at = if self.path.is_empty() {
            format!("from {}", self.id_pos.source)
        } else {
            format!("{}{}", self.path, line_note(&self.id_pos))
        };
        if self.has_id {
            format!("distribution {:?} ({at})", self.dist.id)
        } else {
            format!("distribution ({at})")
        }
    }
}

/// Origin and group ids of one distribution, for references.
struct Targets {
    origins: Vec<String>,
    groups: Vec<String>,
}

impl Targets {
    fn known(&self) -> String {
        let all: Vec<String> = self
            .origins
            .iter()
            .chain(&self.groups)
            .map(|s| format!("{s:?}"))
            .collect();
        if all.is_empty() {
            "none".to_string()
        } else {
            all.join(", ")
        }
    }
}

fn distribution(d: &RawDistribution, base: &Path, p: &mut Problems) -> Built {
    let dp = d.path.as_str();
    if d.origins.is_empty() {
        p.add(
            &d.pos,
            dp,
            "a distribution needs at least one origin ([[distribution.origin]] with a `url`)",
        );
    }

    let (origins, groups, targets) = targets(d, base, p);
    let (default_behavior, behaviors) = behaviors(d, &targets, p);
    let (id, id_pos, generated_from, has_id) = distribution_id(d, p);
    let (alias_values, aliases) = aliases(d, p);
    let default_root_object = d.default_root_object.as_ref().map(|r| {
        if let Err(m) = check::default_root_object(&r.value) {
            p.add(&r.pos, &join(dp, "default_root_object"), m);
        }
        r.value.clone()
    });

    let logging = Logging {
        enabled: d.logging.enabled.as_ref().is_some_and(|e| e.value),
        file: match &d.logging.file {
            Some(f) => resolve(base, &f.value),
            None => resolve(base, &Path::new("logs").join(format!("{id}.log"))),
        },
    };
    let log_pos = d
        .logging
        .file
        .as_ref()
        .map(|f| &f.pos)
        .or(d.logging.enabled.as_ref().map(|e| &e.pos))
        .unwrap_or(&d.pos)
        .clone();

    let catch_all = d.catch_all.as_ref().is_some_and(|c| c.value);
    Built {
        dist: Distribution {
            id,
            aliases: alias_values,
            catch_all,
            enabled: d.enabled.as_ref().is_none_or(|e| e.value),
            comment: d
                .comment
                .as_ref()
                .map(|c| c.value.clone())
                .unwrap_or_default(),
            origins,
            origin_groups: groups,
            default_root_object,
            logging,
            default_behavior,
            behaviors,
        },
        path: d.path.clone(),
        has_id,
        id_pos,
        generated_from,
        aliases,
        catch_all_pos: d
            .catch_all
            .as_ref()
            .filter(|c| c.value)
            .map(|c| c.pos.clone()),
        log_pos,
    }
}

/// The distribution's origins and origin groups (one id namespace: a behaviour target
/// names either), and their ids for the behaviours' references.
fn targets(
    d: &RawDistribution,
    base: &Path,
    p: &mut Problems,
) -> (Vec<Origin>, Vec<OriginGroup>, Targets) {
    // Origin and group ids share one namespace: a behaviour target names either.
    let mut ids: HashMap<String, (Pos, String)> = HashMap::new();
    let mut claim_id = |p: &mut Problems, id: &str, pos: &Pos, path: String| {
        if let Some((first_pos, first_path)) = ids.get(id) {
            p.add(
                pos,
                &path,
                format!(
                    "id {id:?} is already used by {first_path}{}",
                    line_note(first_pos)
                ),
            );
        } else {
            ids.insert(id.to_string(), (pos.clone(), path));
        }
    };

    let mut origins = Vec::new();
    for (j, o) in d.origins.iter().enumerate() {
        let (origin, id_pos) = origin(o, j, base, p);
        claim_id(p, &origin.id, &id_pos, join(&o.path, "id"));
        origins.push(origin);
    }
    let targets_origins: Vec<String> = origins.iter().map(|o| o.id.clone()).collect();

    let mut groups = Vec::new();
    for g in &d.groups {
        let id = match &g.id {
            Some(id) => {
                if let Err(m) = check::origin_id(&id.value) {
                    p.add(&id.pos, &join(&g.path, "id"), m);
                }
                claim_id(p, &id.value, &id.pos, join(&g.path, "id"));
                id.value.clone()
            }
            None => {
                p.add(&g.pos, &g.path, "missing required key `id`");
                String::new()
            }
        };
        groups.push(group(g, id, &targets_origins, &d.groups, p));
    }

    let targets = Targets {
        origins: targets_origins,
        groups: groups
            .iter()
            .map(|g: &OriginGroup| g.id.clone())
            .filter(|id| !id.is_empty())
            .collect(),
    };
    (origins, groups, targets)
}

/// The default behaviour and the others, each path pattern used once.
fn behaviors(
    d: &RawDistribution,
    targets: &Targets,
    p: &mut Problems,
) -> (Behavior, Vec<Behavior>) {
    let default_behavior = behavior(&d.default_behavior, targets, false, p);
    let mut patterns: HashMap<&str, &At<String>> = HashMap::new();
    let mut behaviors = Vec::new();
    for b in &d.behaviors {
        if let Some(pat) = &b.path_pattern {
            match patterns.get(pat.value.as_str()) {
                Some(first) => p.add(
                    &pat.pos,
                    &join(&b.path, "path_pattern"),
                    format!(
                        "path pattern {:?} is already used by an earlier behaviour{}; the \
                         later one could never match",
                        pat.value,
                        line_note(&first.pos)
                    ),
                ),
                None => {
                    patterns.insert(&pat.value, pat);
                }
            }
        }
        behaviors.push(behavior(b, targets, true, p));
    }

    (default_behavior, behaviors)
}

/// The distribution's id, where it is reported, what a generated one was made from, and
/// whether there is one at all.
fn distribution_id(d: &RawDistribution, p: &mut Problems) -> (String, Pos, Option<String>, bool) {
    let dp = d.path.as_str();
    match &d.id {
        Some(id) => {
            if let Err(m) = check::distribution_id(&id.value) {
                p.add(&id.pos, &join(dp, "id"), m);
            }
            (id.value.clone(), id.pos.clone(), None, true)
        }
        None => {
            let seed = match (
                d.aliases.first(),
                d.origins.first().and_then(|o| o.url.as_ref()),
            ) {
                (Some(a), _) => Some(a.value.to_ascii_lowercase()),
                (None, Some(u)) => Some(u.value.clone()),
                (None, None) => None,
            };
            match seed {
                Some(seed) => (check::generated_id(&seed), d.pos.clone(), Some(seed), true),
                None => (String::new(), d.pos.clone(), None, false),
            }
        }
    }
}

/// The aliases, lower-cased, and each with where it is written.
fn aliases(d: &RawDistribution, p: &mut Problems) -> (Vec<String>, Vec<(String, Pos, String)>) {
    let dp = d.path.as_str();
    let mut aliases = Vec::new();
    let mut alias_values = Vec::new();
    for (k, a) in d.aliases.iter().enumerate() {
        let path = format!("{}[{k}]", join(dp, "aliases"));
        match check::alias(&a.value) {
            Ok(lower) => {
                alias_values.push(lower.clone());
                aliases.push((lower, a.pos.clone(), path));
            }
            Err(m) => p.add(&a.pos, &path, m),
        }
    }

    (alias_values, aliases)
}

/// Returns the origin and the position its id is reported at.
fn origin(o: &RawOrigin, index: usize, base: &Path, p: &mut Problems) -> (Origin, Pos) {
    let op = o.path.as_str();
    let (id, id_pos) = match &o.id {
        Some(id) => {
            if let Err(m) = check::origin_id(&id.value) {
                p.add(&id.pos, &join(op, "id"), m);
            }
            (id.value.clone(), id.pos.clone())
        }
        // Single-origin distributions need no ids; later ones get distinct defaults.
        None if index == 0 => ("origin".to_string(), o.pos.clone()),
        None => (format!("origin{}", index + 1), o.pos.clone()),
    };

    let (scheme, host, port, path) = origin_address(o, p);
    let headers = origin_headers(o, p);
    let ca_file = origin_ca_file(o, scheme, base, p);
    let kind = match o.kind.as_ref().map(|k| (k.value.as_str(), k)) {
        None | Some(("http", _)) => OriginKind::Http,
        Some(("edge", _)) => OriginKind::Edge,
        Some((other, k)) => {
            p.add(
                &k.pos,
                &join(op, "type"),
                format!("{other:?} is not an origin type: \"http\" (a server) or \"edge\" (another Cairn edge, a parent tier)"),
            );
            OriginKind::Http
        }
    };
    let origin = Origin {
        id,
        kind,
        scheme: scheme.unwrap_or(Scheme::Http),
        host,
        port,
        path,
        headers,
        connect_timeout: secs(
            p,
            &o.connect_timeout,
            &join(op, "connect_timeout"),
            (1, 60),
            10,
        ),
        connect_attempts: ranged(
            p,
            &o.connect_attempts,
            &join(op, "connect_attempts"),
            (1, 3),
            3,
        ) as u32,
        response_timeout: secs(
            p,
            &o.response_timeout,
            &join(op, "response_timeout"),
            (1, 180),
            30,
        ),
        keepalive_timeout: secs(
            p,
            &o.keepalive_timeout,
            &join(op, "keepalive_timeout"),
            (1, 180),
            5,
        ),
        ca_file,
    };
    (origin, id_pos)
}

/// The origin's scheme, host, port and path prefix (from `path`, or in quick mode from
/// the URL's path).
fn origin_address(o: &RawOrigin, p: &mut Problems) -> (Option<Scheme>, String, u16, String) {
    let op = o.path.as_str();
    let mut scheme = None;
    let (mut host, mut port) = (String::new(), 0);
    let mut path = String::new();
    if let Some(pp) = &o.path_prefix {
        match check::origin_path(&pp.value) {
            Ok(()) => path = pp.value.clone(),
            Err(m) => p.add(&pp.pos, &join(op, "path"), m),
        }
    }
    match &o.url {
        None => p.add(
            &o.pos,
            op,
            "missing required key `url` (for example url = \"http://127.0.0.1:8000\")",
        ),
        Some(u) => match check::origin_url(&u.value) {
            Err(m) => p.add(&u.pos, &join(op, "url"), m),
            Ok(parsed) => {
                scheme = Some(parsed.scheme);
                host = parsed.host;
                port = parsed.port;
                let url_path = parsed.path.trim_end_matches('/');
                if !url_path.is_empty() {
                    if o.url_path_is_prefix && o.path_prefix.is_none() {
                        match check::origin_path(url_path) {
                            Ok(()) => path = url_path.to_string(),
                            Err(m) => p.add(&u.pos, &join(op, "url"), format!("path: {m}")),
                        }
                    } else {
                        p.add(
                            &u.pos,
                            &join(op, "url"),
                            format!(
                                "{:?} has a path; an origin URL is scheme://host[:port] only, \
                                 so write the prefix as `path = {url_path:?}`",
                                u.value
                            ),
                        );
                    }
                }
            }
        },
    }

    (scheme, host, port, path)
}

/// The origin's custom headers, each valid and given once.
fn origin_headers(o: &RawOrigin, p: &mut Problems) -> Vec<(String, String)> {
    let op = o.path.as_str();
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in &o.headers {
        let hp = format!("{op}.headers.{}", name.value);
        if let Err(m) = check::custom_header(&name.value, &value.value) {
            let pos = if m.starts_with("the value") {
                &value.pos
            } else {
                &name.pos
            };
            p.add(pos, &hp, m);
        } else if headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(&name.value))
        {
            p.add(
                &name.pos,
                &hp,
                format!(
                    "header {:?} is given twice (names are case-insensitive)",
                    name.value
                ),
            );
        }
        headers.push((name.value.clone(), value.value.clone()));
    }

    headers
}

/// The origin's extra CA file (https only), readable now.
fn origin_ca_file(
    o: &RawOrigin,
    scheme: Option<Scheme>,
    base: &Path,
    p: &mut Problems,
) -> Option<PathBuf> {
    let op = o.path.as_str();
    o.ca_file.as_ref().map(|f| {
        let resolved = resolve(base, &f.value);
        let fp = join(op, "ca_file");
        if scheme == Some(Scheme::Http) {
            p.add(
                &f.pos,
                &fp,
                "`ca_file` applies only to https origins; this origin's URL is http",
            );
        } else if let Err(m) = readable_pem(&resolved) {
            p.add(&f.pos, &fp, m);
        }
        resolved
    })
}

/// The CA file must exist, be readable now, and hold at least one PEM certificate.
fn readable_pem(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_CA_FILE {
        return Err(format!(
            "{shown} is larger than 16 MiB; it is not a CA file"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let marker = b"-----BEGIN CERTIFICATE-----";
    if !bytes.windows(marker.len()).any(|w| w == marker) {
        return Err(format!(
            "{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(())
}

fn group(
    g: &RawGroup,
    id: String,
    origins: &[String],
    groups: &[RawGroup],
    p: &mut Problems,
) -> OriginGroup {
    let gp = g.path.as_str();
    let mut members = Vec::new();
    match &g.members {
        None => p.add(
            &g.pos,
            gp,
            "missing required key `members` (at least two origin ids)",
        ),
        Some(list) => {
            if list.value.len() < 2 {
                p.add(
                    &list.pos,
                    &join(gp, "members"),
                    "an origin group needs at least two members",
                );
            }
            for (k, m) in list.value.iter().enumerate() {
                let mp = format!("{gp}.members[{k}]");
                if members.contains(&m.value) {
                    p.add(&m.pos, &mp, format!("{:?} is listed twice", m.value));
                } else if !origins.contains(&m.value) {
                    let is_group = groups
                        .iter()
                        .any(|other| other.id.as_ref().is_some_and(|i| i.value == m.value));
                    let msg = if is_group {
                        format!(
                            "{:?} is an origin group; groups cannot contain groups",
                            m.value
                        )
                    } else {
                        let known: Vec<String> = origins.iter().map(|o| format!("{o:?}")).collect();
                        format!(
                            "{:?} is not an origin of this distribution (origins: {})",
                            m.value,
                            known.join(", ")
                        )
                    };
                    p.add(&m.pos, &mp, msg);
                }
                members.push(m.value.clone());
            }
        }
    }
    let mut failover_statuses: Vec<u16> = Vec::new();
    for (k, s) in g.failover_statuses.iter().enumerate() {
        let sp = format!("{gp}.failover_statuses[{k}]");
        match u16::try_from(s.value) {
            Ok(code) if (400..=599).contains(&code) => {
                if failover_statuses.contains(&code) {
                    p.add(&s.pos, &sp, format!("{code} is listed twice"));
                }
                failover_statuses.push(code);
            }
            _ => p.add(
                &s.pos,
                &sp,
                format!(
                    "{} is not an error status; failover statuses are between 400 and 599",
                    s.value
                ),
            ),
        }
    }
    OriginGroup {
        id,
        members,
        failover_statuses,
    }
}

fn behavior(b: &RawBehavior, targets: &Targets, with_pattern: bool, p: &mut Problems) -> Behavior {
    let bp = b.path.as_str();
    let path_pattern = if with_pattern {
        match &b.path_pattern {
            None => {
                p.add(
                    &b.pos,
                    bp,
                    "missing required key `path_pattern` (for example \"/images/*\")",
                );
                Some(String::new())
            }
            Some(pat) => {
                if let Err(m) = check::path_pattern(&pat.value) {
                    p.add(&pat.pos, &join(bp, "path_pattern"), m);
                }
                Some(pat.value.clone())
            }
        }
    } else {
        None
    };
    let target = match &b.target {
        Some(t) => {
            if !targets.origins.contains(&t.value) && !targets.groups.contains(&t.value) {
                p.add(
                    &t.pos,
                    &join(bp, "target"),
                    format!(
                        "{:?} is neither an origin nor an origin group of this distribution \
                         (ids: {})",
                        t.value,
                        targets.known()
                    ),
                );
            }
            t.value.clone()
        }
        None => targets.origins.first().cloned().unwrap_or_default(),
    };
    let (cache_key, managed_ttls) = policy::cache_key(&b.cache_key, &join(bp, "cache_key"), p);
    let origin_request = policy::origin_request(&b.origin_request, &join(bp, "origin_request"), p);
    policy::conflicts(&b.cache_key, &cache_key, &b.origin_request, bp, p);
    let ttls = match managed_ttls {
        Some((ttls, at)) => {
            managed_sets_ttls(b, &at, bp, p);
            ttls
        }
        None => policy::PolicyTtls {
            min: ttl(p, &b.min_ttl, &join(bp, "min_ttl"), DEFAULT_MIN_TTL),
            default: ttl(p, &b.default_ttl, &join(bp, "default_ttl"), DEFAULT_TTL),
            max: ttl(p, &b.max_ttl, &join(bp, "max_ttl"), DEFAULT_MAX_TTL),
        },
    };
    let (default_ttl, min_ttl, max_ttl) = (ttls.default, ttls.min, ttls.max);
    if min_ttl > max_ttl {
        let (pos, key) = match (&b.min_ttl, &b.max_ttl) {
            (Some(v), _) => (&v.pos, "min_ttl"),
            (None, Some(v)) => (&v.pos, "max_ttl"),
            (None, None) => (&b.pos, "min_ttl"),
        };
        p.add(
            pos,
            &join(bp, key),
            format!("min_ttl ({min_ttl}) is greater than max_ttl ({max_ttl})"),
        );
    }
    Behavior {
        path_pattern,
        target,
        default_ttl,
        min_ttl,
        max_ttl,
        allowed_methods: allowed_methods(&b.allowed_methods, &join(bp, "allowed_methods"), p),
        cache_key,
        origin_request,
        error_ttl: ranged(
            p,
            &b.error_ttl,
            &join(bp, "error_ttl"),
            (0, MAX_ERROR_TTL),
            DEFAULT_ERROR_TTL,
        ),
        error_ttls: error_ttls(&b.error_ttls, &join(bp, "error_ttls"), p),
        range_fill_max: b
            .range_fill_max
            .as_ref()
            .map_or(DEFAULT_RANGE_FILL_MAX, |v| v.value),
    }
}

/// A managed cache policy sets the behaviour's TTLs, as CloudFront's do: one written
/// beside it is a conflict.
fn managed_sets_ttls(b: &RawBehavior, managed: &Pos, bp: &str, p: &mut Problems) {
    for (key, f) in [
        ("min_ttl", &b.min_ttl),
        ("default_ttl", &b.default_ttl),
        ("max_ttl", &b.max_ttl),
    ] {
        if let Some(v) = f {
            p.add(
                &v.pos,
                &join(bp, key),
                format!(
                    "`cache_key.managed`{} sets min_ttl, default_ttl and max_ttl as its                      CloudFront policy does: remove `{key}`, or write the cache key out instead                      of naming a managed policy",
                    line_note(managed)
                ),
            );
        }
    }
}

/// A TTL in seconds, at most [`MAX_TTL`].
fn ttl(p: &mut Problems, f: &Field<u64>, path: &str, default: u64) -> u64 {
    match f {
        None => default,
        Some(v) if v.value <= MAX_TTL => v.value,
        Some(v) => {
            p.add(
                &v.pos,
                path,
                format!(
                    "{} seconds is more than the longest TTL, {MAX_TTL} seconds (100 years)",
                    v.value
                ),
            );
            default
        }
    }
}

/// `error_ttls`: each key exactly one of the cached error statuses, each value seconds in
/// the range of `error_ttl`; sorted by status.
fn error_ttls(entries: &[(At<String>, At<u64>)], path: &str, p: &mut Problems) -> Vec<(u16, u64)> {
    let mut out: Vec<(u16, u64)> = Vec::new();
    for (key, secs) in entries {
        let kp = join(path, &key.value);
        let status = CACHED_ERROR_STATUSES
            .iter()
            .copied()
            .find(|s| s.to_string() == key.value);
        let Some(status) = status else {
            let statuses: Vec<String> = CACHED_ERROR_STATUSES.iter().map(u16::to_string).collect();
            p.add(
                &key.pos,
                &kp,
                format!(
                    "{:?} is not an error status the edge caches; the keys of error_ttls are {}",
                    key.value,
                    statuses.join(", ")
                ),
            );
            continue;
        };
        let secs = ranged(
            p,
            &Some(secs.clone()),
            &kp,
            (0, MAX_ERROR_TTL),
            DEFAULT_ERROR_TTL,
        );
        out.push((status, secs));
    }
    out.sort_unstable();
    out
}

const METHODS: [&str; 7] = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"];

fn allowed_methods(f: &Field<Vec<At<String>>>, path: &str, p: &mut Problems) -> AllowedMethods {
    let Some(list) = f else {
        return AllowedMethods::GetHead;
    };
    let mut mask = 0u32;
    let mut unknown = false;
    for (k, m) in list.value.iter().enumerate() {
        let up = m.value.to_ascii_uppercase();
        match METHODS.iter().position(|x| *x == up) {
            Some(bit) if mask & (1 << bit) != 0 => {
                p.add(
                    &m.pos,
                    &format!("{path}[{k}]"),
                    format!("{:?} is listed twice", m.value),
                );
            }
            Some(bit) => mask |= 1 << bit,
            None => {
                unknown = true;
                p.add(
                    &m.pos,
                    &format!("{path}[{k}]"),
                    format!("{:?} is not one of {}", m.value, METHODS.join(", ")),
                );
            }
        }
    }
    match mask {
        0b11 => AllowedMethods::GetHead,
        0b111 => AllowedMethods::GetHeadOptions,
        0b111_1111 => AllowedMethods::All,
        _ => {
            if !unknown {
                p.add(
                    &list.pos,
                    path,
                    "must be one of [\"GET\", \"HEAD\"], [\"GET\", \"HEAD\", \"OPTIONS\"] or \
                     [\"GET\", \"HEAD\", \"OPTIONS\", \"PUT\", \"POST\", \"PATCH\", \"DELETE\"] \
                     (in any order)",
                );
            }
            AllowedMethods::GetHead
        }
    }
}

/// Checks between distributions: ids, host names, catch-all, log files.
fn across(edge: &EdgeSettings, built: &[Built], p: &mut Problems) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    // A repeated id is reported once, not again as a repeated assigned domain.
    let mut repeated = vec![false; built.len()];
    for (i, b) in built.iter().enumerate() {
        if !b.has_id {
            continue;
        }
        let Some(&j) = ids.get(b.dist.id.as_str()) else {
            ids.insert(&b.dist.id, i);
            continue;
        };
        let first = &built[j];
        let msg = match (&b.generated_from, &first.generated_from) {
            (Some(seed), _) => format!(
                "the id generated from {seed:?} is {:?}, already the id of {}; set `id` \
                 explicitly",
                b.dist.id,
                first.describe()
            ),
            (None, _) => format!(
                "id {:?} is already the id of {}",
                b.dist.id,
                first.describe()
            ),
        };
        p.add(&b.id_pos, &join(&b.path, "id"), msg);
        repeated[i] = true;
    }

    // Every host a distribution answers for, owned by exactly one distribution.
    let mut hosts: HashMap<String, (usize, String)> = HashMap::new();
    for (i, b) in built.iter().enumerate() {
        let mut claims: Vec<(String, &Pos, String, &str)> = Vec::new();
        if b.has_id && !repeated[i] {
            let assigned = b.dist.assigned_domain(&edge.domain);
            if assigned.len() > 253 {
                p.add(
                    &b.id_pos,
                    &join(&b.path, "id"),
                    format!("the assigned domain {assigned:?} is longer than 253 characters"),
                );
            }
            claims.push((assigned, &b.id_pos, join(&b.path, "id"), "assigned domain"));
        }
        for (alias, pos, path) in &b.aliases {
            claims.push((alias.clone(), pos, path.clone(), "alias"));
        }
        for (host, pos, path, kind) in claims {
            match hosts.get(&host) {
                Some((j, first_kind)) if *j == i => p.add(
                    pos,
                    &path,
                    format!("host {host:?} is already this distribution's {first_kind}"),
                ),
                Some((j, first_kind)) => p.add(
                    pos,
                    &path,
                    format!(
                        "host {host:?} is claimed twice: as the {first_kind} of {} and as the \
                         {kind} of {}",
                        built[*j].describe(),
                        b.describe()
                    ),
                ),
                None => {
                    hosts.insert(host, (i, kind.to_string()));
                }
            }
        }
    }

    let mut catch_all: Option<&Built> = None;
    for b in built {
        let Some(pos) = &b.catch_all_pos else {
            continue;
        };
        match catch_all {
            Some(first) => p.add(
                pos,
                &join(&b.path, "catch_all"),
                format!(
                    "only one distribution may set catch_all, and {} already does",
                    first.describe()
                ),
            ),
            None => catch_all = Some(b),
        }
    }

    let mut logs: HashMap<&Path, &Built> = HashMap::new();
    for b in built.iter().filter(|b| b.dist.logging.enabled) {
        match logs.get(b.dist.logging.file.as_path()) {
            Some(first) => p.add(
                &b.log_pos,
                &join(&b.path, "logging.file"),
                format!(
                    "log file {} is already written by {}",
                    b.dist.logging.file.display(),
                    first.describe()
                ),
            ),
            None => {
                logs.insert(&b.dist.logging.file, b);
            }
        }
    }
}
