//! What `cairn cache-inspect` reports, as typed structs (serde): shared by the offline
//! command (reading a cache directory) and the admin API's `GET /inspect/...` endpoints
//! (asking a running edge, whose store is shared and safe to read concurrently), which
//! sends them as JSON that the command reads back into the same structs.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::{Deserialize, Serialize};

use crate::cache_key::{self, KeyInput, KeyParts};
use crate::config::{Behavior, Config, Distribution, HeaderPolicy, ListPolicy};
use crate::edge::meta::{Meta, StoredResponse};
use crate::edge::router::Router;
use crate::httpcache::{self, Mode, RequestFacts, Reuse};
use crate::store::{ObjectInfo, Store, StoreError};

// ---------------------------------------------------------------------------------------
// Keys

/// What follows the five fields of a primary key (storage-format.md §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyExtra {
    None,
    /// A Vary variant: (header name, normalised value or None when absent).
    Variant(Vec<(String, Option<String>)>),
    /// `primary ++ 0x00 0x05`: the list of stored parts.
    PartsIndex,
    /// `primary ++ 0x00 0x05 ++ "a-b"`.
    Part(String),
}

/// A key read back for display.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub primary: Vec<u8>,
    pub parts: Option<KeyParts>,
    pub extra: KeyExtra,
}

pub fn view_key(key: &[u8]) -> KeyView {
    let seps: Vec<usize> = key
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == 0)
        .map(|(i, _)| i)
        .collect();
    let (primary, rest) = match seps.get(4) {
        Some(&p) => (&key[..p], Some(&key[p + 1..])),
        None => (key, None),
    };
    let extra = match rest {
        None => KeyExtra::None,
        Some([0x05]) => KeyExtra::PartsIndex,
        Some([0x05, range @ ..]) => KeyExtra::Part(String::from_utf8_lossy(range).into_owned()),
        Some(suffix) => KeyExtra::Variant(
            suffix
                .split(|&b| b == 0x03)
                .filter(|i| !i.is_empty())
                .map(|item| match item.iter().position(|&b| b == 0x01) {
                    Some(p) => {
                        let name = String::from_utf8_lossy(&item[..p]).into_owned();
                        let v = &item[p + 1..];
                        let value = (v != [0x02]).then(|| String::from_utf8_lossy(v).into_owned());
                        (name, value)
                    }
                    None => (String::from_utf8_lossy(item).into_owned(), None),
                })
                .collect(),
        ),
    };
    KeyView {
        primary: primary.to_vec(),
        parts: cache_key::parse_key(primary),
        extra,
    }
}

pub fn escape_bytes(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

/// Why a report could not be made: an input that names nothing (a bad URL, header, key
/// or path: the admin API's 400), or the store failed (500).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("--key-hex wants an even number of hex digits (as `ls --json` prints)")]
    BadHex,
    #[error("--header {item:?}: {why}")]
    BadHeader { item: String, why: &'static str },
    #[error("bad URL {url}: {why}")]
    BadUrl { url: String, why: String },
    #[error("{url}: {why}")]
    NoKey { url: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReportError {
    /// The input was at fault (not the store).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ReportError::Store(_))
    }
}

type Result<T> = std::result::Result<T, ReportError>;

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ReportError::BadHex);
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| ReportError::BadHex))
        .collect()
}

impl KeyView {
    /// `dist /path?query [h:v h2] [cookies: c]` plus a variant / part marker.
    pub fn render(&self) -> String {
        let mut s = match &self.parts {
            Some(p) => {
                let mut s = format!("{} {}", p.distribution, p.path);
                if let Some(q) = &p.query {
                    s.push('?');
                    s.push_str(q);
                }
                if !p.headers.is_empty() {
                    let h: Vec<String> = p
                        .headers
                        .iter()
                        .map(|(n, v)| match v {
                            Some(v) => format!("{n}:{v}"),
                            None => n.clone(),
                        })
                        .collect();
                    s.push_str(&format!(" [{}]", h.join(" ")));
                }
                if let Some(c) = &p.cookies {
                    s.push_str(&format!(" [cookies: {c}]"));
                }
                s
            }
            None => escape_bytes(&self.primary),
        };
        match &self.extra {
            KeyExtra::None => {}
            KeyExtra::Variant(v) => {
                let items: Vec<String> = v
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!("{n}={v}"),
                        None => format!("{n} absent"),
                    })
                    .collect();
                s.push_str(&format!(" variant{{{}}}", items.join(", ")));
            }
            KeyExtra::PartsIndex => s.push_str(" parts"),
            KeyExtra::Part(r) => s.push_str(&format!(" part {r}")),
        }
        s
    }

    /// The report of `key` (whose view this is).
    pub fn report(&self, key: &[u8]) -> KeyReport {
        let (variant, part) = match &self.extra {
            KeyExtra::Variant(v) => (Some(v.clone()), None),
            KeyExtra::Part(r) => (None, Some(r.clone())),
            _ => (None, None),
        };
        let parts = self.parts.as_ref();
        KeyReport {
            key_hex: hex(key),
            key: self.render(),
            parsed: parts.is_some(),
            distribution: parts.map(|p| p.distribution.clone()),
            path: parts.map(|p| p.path.clone()),
            query: parts.and_then(|p| p.query.clone()),
            headers: parts.map(|p| p.headers.clone()),
            cookies: parts.and_then(|p| p.cookies.clone()),
            variant,
            part,
        }
    }
}

/// A key, as the reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    pub key_hex: String,
    /// For people ([`KeyView::render`]).
    pub key: String,
    /// The key's fields could be read back.
    pub parsed: bool,
    pub distribution: Option<String>,
    pub path: Option<String>,
    pub query: Option<String>,
    /// Keyed headers in policy order; the value is None when the viewer sent none.
    pub headers: Option<Vec<(String, Option<String>)>>,
    pub cookies: Option<String>,
    /// A Vary variant's (name, normalised value).
    pub variant: Option<Vec<(String, Option<String>)>>,
    /// A stored part's range (`first-last`).
    pub part: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Objects

pub fn human(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

pub fn ms(t: SystemTime) -> u64 {
    crate::edge::meta::to_ms(t)
}

pub fn time(t: SystemTime) -> String {
    if t <= UNIX_EPOCH {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Seconds `b - a`, signed.
pub fn signed_secs(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs().min(i64::MAX as u64) as i64,
        Err(e) => -(e.duration().as_secs().min(i64::MAX as u64) as i64),
    }
}

pub fn dur(secs: i64) -> String {
    if secs < 0 {
        format!("stale {}", dur(-secs))
    } else {
        humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
    }
}

/// One object as `ls` and `show` describe it.
pub struct Described {
    pub info: ObjectInfo,
    pub view: KeyView,
    pub meta: std::result::Result<Meta, String>,
    pub age_s: i64,
    pub remaining_s: i64,
}

impl Described {
    pub fn new(info: ObjectInfo, now: SystemTime) -> Self {
        let view = view_key(&info.key);
        let meta = Meta::decode(&info.meta).map_err(|e| e.to_string());
        let age_s = match &meta {
            Ok(Meta::Response(r)) => r.age_at(now).as_secs() as i64,
            _ => signed_secs(info.stored_at, now).max(0),
        };
        let remaining_s = signed_secs(now, info.expires_at);
        Self {
            info,
            view,
            meta,
            age_s,
            remaining_s,
        }
    }

    pub fn kind(&self) -> &'static str {
        match (&self.meta, &self.view.extra) {
            (Err(_), _) => "unreadable",
            (Ok(Meta::Variants(_)), _) => "vary-index",
            (Ok(Meta::Partials(_)), _) => "parts-index",
            (Ok(Meta::Response(_)), KeyExtra::Variant(_)) => "variant",
            (Ok(Meta::Response(_)), KeyExtra::Part(_)) => "part",
            (Ok(Meta::Response(_)), _) => "response",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.meta {
            Ok(Meta::Response(r)) => Some(r.status),
            _ => None,
        }
    }

    /// The object's line of `ls` (and the head of `show`).
    pub fn report(&self) -> ObjectReport {
        let mut key = self.view.report(&self.info.key);
        if self.view.parts.is_none() {
            key.distribution = Some(self.info.distribution.clone());
        }
        ObjectReport {
            key,
            kind: self.kind().to_string(),
            status: self.status(),
            body_len: self.info.body_len,
            stored_at: time(self.info.stored_at),
            stored_at_ms: ms(self.info.stored_at),
            expires_at: time(self.info.expires_at),
            expires_at_ms: ms(self.info.expires_at),
            age_s: self.age_s,
            ttl_remaining_s: self.remaining_s,
            stale: self.remaining_s <= 0,
            tags: self.info.tags.clone(),
        }
    }
}

/// One object, as `ls` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectReport {
    #[serde(flatten)]
    pub key: KeyReport,
    /// response, variant, part, vary-index, parts-index or unreadable.
    pub kind: String,
    pub status: Option<u16>,
    pub body_len: u64,
    pub stored_at: String,
    pub stored_at_ms: u64,
    pub expires_at: String,
    pub expires_at_ms: u64,
    pub age_s: i64,
    /// Negative once stale.
    pub ttl_remaining_s: i64,
    pub stale: bool,
    pub tags: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Resolving a URL or a key

/// How a request maps onto the configuration.
pub struct Routed<'a> {
    pub host: String,
    pub distribution: Option<&'a Distribution>,
    pub behavior_index: Option<usize>,
    pub behavior: Option<&'a Behavior>,
    pub key: Option<Vec<u8>>,
    pub headers: HeaderMap,
    pub why_none: Option<String>,
}

pub fn parse_headers(list: &[String]) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    for item in list {
        let bad = |why| ReportError::BadHeader {
            item: item.clone(),
            why,
        };
        let (n, v) = item.split_once(':').ok_or(bad("want NAME:VALUE"))?;
        h.append(
            HeaderName::from_bytes(n.trim().as_bytes()).map_err(|_| bad("bad header name"))?,
            HeaderValue::from_str(v.trim()).map_err(|_| bad("bad header value"))?,
        );
    }
    Ok(h)
}

pub fn parse_url(url: &str) -> Result<(Uri, String)> {
    let bad = |why: String| ReportError::BadUrl {
        url: url.to_string(),
        why,
    };
    let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| bad("want http://HOST/path".into()))?;
    Ok((uri, host))
}

pub fn route<'a>(cfg: &'a Config, url: &str, extra: &[String]) -> Result<Routed<'a>> {
    let (uri, host) = parse_url(url)?;
    let mut headers = parse_headers(extra)?;
    if !headers.contains_key(http::header::HOST) {
        let host = HeaderValue::from_str(&host).map_err(|e| ReportError::BadUrl {
            url: url.to_string(),
            why: e.to_string(),
        })?;
        headers.insert(http::header::HOST, host);
    }
    let mut r = Routed {
        host: host.clone(),
        distribution: None,
        behavior_index: None,
        behavior: None,
        key: None,
        headers,
        why_none: None,
    };
    let Some(di) = Router::new(cfg).route(&host) else {
        let names: Vec<String> = cfg
            .distributions
            .iter()
            .map(|d| d.assigned_domain(&cfg.edge.domain))
            .chain(cfg.distributions.iter().flat_map(|d| d.aliases.clone()))
            .collect();
        r.why_none = Some(format!(
            "no distribution answers Host {host} (assigned domains and aliases: {}; no catch-all)",
            names.join(", ")
        ));
        return Ok(r);
    };
    let d = &cfg.distributions[di];
    r.distribution = Some(d);
    if !d.enabled {
        r.why_none = Some(format!("distribution {} is disabled (403)", d.id));
    }
    let path = cache_key::normalize_path(uri.path()).map_err(|e| ReportError::BadUrl {
        url: url.to_string(),
        why: e.to_string(),
    })?;
    // The same rule as the edge's (edge::runtime::DistRuntime::behavior_for).
    let root = d
        .default_root_object
        .as_deref()
        .and_then(|o| cache_key::root_object_path(o).ok());
    let path_for_behavior = cache_key::behavior_path(&path, root.as_deref());
    r.behavior_index = d
        .behaviors
        .iter()
        .position(|b| b.matches(path_for_behavior));
    let b = r
        .behavior_index
        .and_then(|i| d.behaviors.get(i))
        .unwrap_or(&d.default_behavior);
    r.behavior = Some(b);
    match cache_key::cache_key(&KeyInput {
        distribution: &d.id,
        uri: &uri,
        headers: &r.headers,
        policy: &b.cache_key,
        default_root_object: d.default_root_object.as_deref(),
    }) {
        Ok(k) => r.key = Some(k.key),
        Err(e) => r.why_none = Some(format!("no cache key: {e} ({})", e.status())),
    }
    Ok(r)
}

/// A list policy as the configuration writes it.
pub fn describe_list(l: &ListPolicy) -> String {
    match l {
        ListPolicy::None => "none".into(),
        ListPolicy::All => "all".into(),
        ListPolicy::AllowList(n) => format!("allow [{}]", n.join(", ")),
        ListPolicy::AllExcept(n) => format!("all_except [{}]", n.join(", ")),
    }
}

/// An origin request header policy as the configuration writes it.
pub fn describe_headers(h: &HeaderPolicy) -> String {
    match h {
        HeaderPolicy::None => "none".into(),
        HeaderPolicy::All => "all".into(),
        HeaderPolicy::AllViewer => "all_viewer".into(),
        HeaderPolicy::AllowList(n) => format!("allow [{}]", n.join(", ")),
        HeaderPolicy::AllExcept(n) => format!("all_except [{}]", n.join(", ")),
    }
}

/// The objects stored under `primary` (variants, parts), bounded.
pub fn children(store: &Store, primary: &[u8]) -> Result<Vec<ObjectInfo>> {
    let mut p = primary.to_vec();
    p.push(0);
    Ok(store.list(&p, 256)?)
}

// ---------------------------------------------------------------------------------------
// show / cat

/// A stored response's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseReport {
    pub status: u16,
    /// Header fields in stored order, values as text.
    pub headers: Vec<(String, String)>,
    pub request_time: String,
    pub request_time_ms: u64,
    pub response_time: String,
    pub response_time_ms: u64,
    pub initial_age_s: u64,
    pub ttl_s: u64,
    pub ttl_rule: String,
    pub ttl_clamp: String,
    pub revalidate_each_use: bool,
    pub must_revalidate: bool,
    pub stale_while_revalidate_s: Option<u64>,
    pub stale_if_error_s: Option<u64>,
    pub vary: Vec<String>,
}

impl ResponseReport {
    pub fn of(r: &StoredResponse) -> Self {
        ResponseReport {
            status: r.status,
            headers: r
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect(),
            request_time: time(crate::edge::meta::from_ms(r.request_time_ms)),
            request_time_ms: r.request_time_ms,
            response_time: time(r.response_time()),
            response_time_ms: r.response_time_ms,
            initial_age_s: r.initial_age_s,
            ttl_s: r.ttl_s,
            ttl_rule: r.ttl_rule.clone(),
            ttl_clamp: r.ttl_clamp.clone(),
            revalidate_each_use: r.revalidate_each_use,
            must_revalidate: r.must_revalidate,
            stale_while_revalidate_s: r.stale_while_revalidate_s,
            stale_if_error_s: r.stale_if_error_s,
            vary: r.vary.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The reports

/// The index prefix `ls` walks for a distribution (and a path prefix).
fn ls_key_prefix(distribution: Option<&str>, prefix: Option<&str>) -> Vec<u8> {
    match (distribution, prefix) {
        (Some(d), Some(p)) => cache_key::path_prefix(d, p),
        (Some(d), None) => {
            let mut k = KeyParts {
                distribution: d.to_string(),
                path: "/".into(),
                query: None,
                headers: vec![],
                cookies: None,
            }
            .to_key();
            // The escaped distribution and its separator.
            let end = k.iter().position(|&b| b == 0).map_or(k.len(), |p| p + 1);
            k.truncate(end);
            k
        }
        (None, _) => Vec::new(),
    }
}

/// `ls`: the objects of a distribution (and path prefix), at most `limit` (0: all);
/// whether more were left off.
pub fn ls_rows(
    store: &Store,
    distribution: Option<&str>,
    prefix: Option<&str>,
    limit: usize,
) -> Result<(Vec<Described>, bool)> {
    let key_prefix = ls_key_prefix(distribution, prefix);
    let now = SystemTime::now();
    let limit = if limit == 0 { usize::MAX } else { limit };
    let mut rows = Vec::new();
    let mut more = false;
    for info in store.iter_prefix(&key_prefix) {
        let d = Described::new(info?, now);
        if distribution.is_none() {
            if let Some(p) = prefix {
                if !d.view.parts.as_ref().is_some_and(|k| k.path.starts_with(p)) {
                    continue;
                }
            }
        }
        if rows.len() == limit {
            more = true;
            break;
        }
        rows.push(d);
    }
    // The store walks its directory in hash order: show keys in order.
    rows.sort_by(|a, b| a.info.key.cmp(&b.info.key));
    Ok((rows, more))
}

/// `ls`: one report per object.
pub fn ls_report(rows: &[Described]) -> Vec<ObjectReport> {
    rows.iter().map(Described::report).collect()
}

/// One segment, as `segments` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentReport {
    pub id: u64,
    pub state: String,
    pub bytes_on_disk: u64,
    pub live_bytes: u64,
    pub records: u64,
    pub record_bytes: u64,
    pub created_at: String,
    pub path: std::path::PathBuf,
}

/// `segments`: each segment with its records and live bytes.
pub fn segments_report(store: &Store) -> Result<Vec<SegmentReport>> {
    let usage: BTreeMap<u64, crate::store::SegmentUsage> = store
        .segment_usage()?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(store
        .segments()
        .iter()
        .map(|s| {
            let u = usage.get(&s.id).cloned().unwrap_or_default();
            SegmentReport {
                id: s.id,
                state: s.state.as_str().to_string(),
                bytes_on_disk: s.bytes_on_disk,
                live_bytes: u.live_bytes,
                records: u.records,
                record_bytes: u.record_bytes,
                created_at: time(s.created_at),
                path: s.path.clone(),
            }
        })
        .collect())
}

/// What `summary` says of the whole store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryReport {
    pub objects: u64,
    pub blobs: u64,
    pub live_bytes: u64,
    pub body_bytes: u64,
    pub bytes_on_disk: u64,
    pub index_bytes_on_disk: u64,
    /// The configured capacity, when known.
    pub capacity: Option<u64>,
    pub segments: u64,
    pub segments_by_state: BTreeMap<String, u64>,
    pub dedup_saved_bytes: u64,
    /// Expired objects still kept (for revalidation).
    pub expired_kept: u64,
    /// Objects by kind (response, vary-index, parts-index, unreadable).
    pub kinds: BTreeMap<String, u64>,
    pub distributions: BTreeMap<String, DistributionUsage>,
    pub oldest: Option<Stamped>,
    pub newest: Option<Stamped>,
}

/// A distribution's share of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionUsage {
    pub objects: u64,
    pub body_bytes: u64,
}

/// An object and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    pub stored_at: String,
    pub key: String,
    pub key_hex: String,
}

/// `summary`: `capacity` is the configured one when known.
pub fn summary_report(store: &Store, capacity: Option<u64>) -> Result<SummaryReport> {
    let s = store.stats();
    let now = SystemTime::now();
    let mut segments_by_state: BTreeMap<String, u64> = BTreeMap::new();
    for seg in store.segments() {
        *segments_by_state
            .entry(seg.state.as_str().to_string())
            .or_default() += 1;
    }
    // Per distribution; bounded by the number of distributions.
    let mut distributions: BTreeMap<String, DistributionUsage> = BTreeMap::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut oldest: Option<(SystemTime, Vec<u8>)> = None;
    let mut newest: Option<(SystemTime, Vec<u8>)> = None;
    let (mut expired_kept, mut body_bytes) = (0u64, 0u64);
    for o in store.iter() {
        let o = o?;
        let e = distributions
            .entry(o.distribution.clone())
            .or_insert(DistributionUsage {
                objects: 0,
                body_bytes: 0,
            });
        e.objects += 1;
        e.body_bytes += o.body_len;
        body_bytes += o.body_len;
        let kind = match Meta::decode(&o.meta) {
            Ok(Meta::Variants(_)) => "vary-index",
            Ok(Meta::Partials(_)) => "parts-index",
            Ok(Meta::Response(_)) => "response",
            Err(_) => "unreadable",
        };
        *kinds.entry(kind.to_string()).or_default() += 1;
        if o.expires_at <= now {
            expired_kept += 1;
        }
        if oldest.as_ref().is_none_or(|(t, _)| o.stored_at < *t) {
            oldest = Some((o.stored_at, o.key.clone()));
        }
        if newest.as_ref().is_none_or(|(t, _)| o.stored_at > *t) {
            newest = Some((o.stored_at, o.key.clone()));
        }
    }
    let stamped = |x: Option<(SystemTime, Vec<u8>)>| {
        x.map(|(t, k)| Stamped {
            stored_at: time(t),
            key: view_key(&k).render(),
            key_hex: hex(&k),
        })
    };
    Ok(SummaryReport {
        objects: s.objects,
        blobs: s.blobs,
        live_bytes: s.live_bytes,
        body_bytes,
        bytes_on_disk: s.bytes_on_disk,
        index_bytes_on_disk: s.index_bytes_on_disk,
        capacity,
        segments: s.segments,
        segments_by_state,
        dedup_saved_bytes: s.dedup_saved_bytes,
        expired_kept,
        kinds,
        distributions,
        oldest: stamped(oldest),
        newest: stamped(newest),
    })
}

/// The key of `url`'s path in distribution `distribution` (no query, headers or cookies).
pub fn distribution_key(distribution: &str, url: &str) -> Result<Vec<u8>> {
    let bad = |why: String| ReportError::BadUrl {
        url: url.to_string(),
        why,
    };
    let uri = match parse_url(url) {
        Ok((uri, _)) => uri,
        Err(_) => url.parse::<Uri>().map_err(|e| bad(e.to_string()))?,
    };
    let path = cache_key::normalize_path(uri.path()).map_err(|e| bad(e.to_string()))?;
    Ok(KeyParts {
        distribution: distribution.to_string(),
        path,
        query: None,
        headers: vec![],
        cookies: None,
    }
    .to_key())
}

/// The key `url` has under `cfg` (routing it as the edge would).
pub fn config_key(cfg: &Config, url: &str, header: &[String]) -> Result<Vec<u8>> {
    let r = route(cfg, url, header)?;
    r.key.ok_or_else(|| ReportError::NoKey {
        url: url.to_string(),
        why: r.why_none.unwrap_or_else(|| "no cache key".into()),
    })
}

/// Where a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAt {
    pub segment: u64,
    pub offset: u64,
}

/// A run of a blob's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAt {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

/// What an object's metadata holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaReport {
    Response(ResponseReport),
    /// The header names its variants are keyed by.
    VaryIndex(Vec<String>),
    /// The ranges of its stored parts.
    PartsIndex(Vec<(u64, u64)>),
    /// Why it could not be read.
    Error(String),
}

/// An object's blob, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobReport {
    pub hash: String,
    /// The index has the blob.
    pub found: bool,
    pub len: Option<u64>,
    pub references: Option<usize>,
    pub manifest: Option<RecordAt>,
    pub runs: Option<Vec<RunAt>>,
}

/// An object stored under another's key (variants, parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildReport {
    pub key_hex: String,
    pub key: String,
    pub body_len: u64,
}

/// `show`: one object, its metadata, its blob and what is stored under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowReport {
    #[serde(flatten)]
    pub object: ObjectReport,
    pub record: RecordAt,
    pub meta: MetaReport,
    pub blob: BlobReport,
    pub children: Vec<ChildReport>,
}

/// What `show` tells of the object at `key`: the object, its blob as the index knows it,
/// and what is stored under it (for an index object); None when no object is there.
#[allow(clippy::type_complexity)]
fn shown(
    store: &Store,
    key: &[u8],
) -> Result<Option<(Described, Option<crate::store::BlobInfo>, Vec<ObjectInfo>)>> {
    let Some(info) = store.info(key)? else {
        return Ok(None);
    };
    let d = Described::new(info, SystemTime::now());
    let blob = store.blob_info(&d.info.blob)?;
    let kids = match d.meta {
        Ok(Meta::Variants(_)) | Ok(Meta::Partials(_)) => children(store, key)?,
        _ => Vec::new(),
    };
    Ok(Some((d, blob, kids)))
}

/// `show`; `None` when no object is at `key`.
pub fn show_report(store: &Store, key: &[u8]) -> Result<Option<ShowReport>> {
    let Some((d, blob, kids)) = shown(store, key)? else {
        return Ok(None);
    };
    let meta = match &d.meta {
        Ok(Meta::Response(r)) => MetaReport::Response(ResponseReport::of(r)),
        Ok(Meta::Variants(names)) => MetaReport::VaryIndex(names.clone()),
        Ok(Meta::Partials(p)) => MetaReport::PartsIndex(p.clone()),
        Err(e) => MetaReport::Error(e.clone()),
    };
    let at = |p: &crate::store::Pos| RecordAt {
        segment: p.segment,
        offset: p.offset,
    };
    let blob = BlobReport {
        hash: hex(&d.info.blob),
        found: blob.is_some(),
        len: blob.as_ref().map(|b| b.len),
        references: blob.as_ref().map(|b| b.references),
        manifest: blob.as_ref().map(|b| at(&b.manifest)),
        runs: blob.as_ref().map(|b| {
            b.runs
                .iter()
                .map(|r| RunAt {
                    segment: r.segment,
                    offset: r.offset,
                    len: r.len,
                })
                .collect()
        }),
    };
    let children = kids
        .iter()
        .map(|k| ChildReport {
            key_hex: hex(&k.key),
            key: view_key(&k.key).render(),
            body_len: k.body_len,
        })
        .collect();
    Ok(Some(ShowReport {
        object: d.report(),
        record: at(&d.info.record),
        meta,
        blob,
        children,
    }))
}

/// The message for a key with no object.
pub fn no_object(key: &[u8]) -> String {
    format!("no object at key {} ({})", view_key(key).render(), hex(key))
}

/// What `explain` says of a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainReport {
    pub url: String,
    pub host: String,
    pub distribution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<BehaviorReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<KeyReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vary: Option<VaryReport>,
    /// The stored response the request would find (null when none).
    #[serde(default)]
    pub stored: Option<StoredReport>,
    /// hit, stale-while-revalidate, revalidate, fetch or error.
    pub next: String,
    pub reason: String,
}

/// The behaviour a URL falls under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BehaviorReport {
    pub name: String,
    pub path_pattern: String,
    /// cloudfront or strict.
    pub mode: String,
    pub default_ttl: u64,
    pub min_ttl: u64,
    pub max_ttl: u64,
    pub origin_request: ForwardingReport,
}

/// What the origin request policy adds, as the configuration writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardingReport {
    pub headers: String,
    pub cookies: String,
    pub query_strings: String,
}

/// The Vary index at a URL's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaryReport {
    pub names: Vec<String>,
    pub variants: Vec<VariantReport>,
    /// The variant the request's headers select.
    pub selected_key_hex: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantReport {
    pub key_hex: String,
    pub key: String,
}

/// The stored response a URL finds, and its freshness now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReport {
    pub key_hex: String,
    pub status: u16,
    pub body_len: u64,
    pub stored_at: String,
    pub ttl_s: u64,
    pub ttl_rule: String,
    pub ttl_clamp: String,
    pub age_s: u64,
    /// Negative once stale.
    pub freshness_remaining_s: i64,
    pub must_revalidate: bool,
    pub revalidate_each_use: bool,
    pub stale_while_revalidate_s: Option<u64>,
    pub stale_if_error_s: Option<u64>,
    pub has_validator: bool,
}

/// `explain`: how the edge configured by `cfg` would answer `url` (with the request
/// headers `header`, NAME:VALUE), as a report and as lines for people.
pub fn explain_report(
    store: &Store,
    cfg: &Config,
    url: &str,
    header: &[String],
) -> Result<(ExplainReport, Lines)> {
    let r = route(cfg, url, header)?;
    let mut lines = Lines::default();
    lines.push("url", url);
    let distribution = r.distribution.map(|d| d.id.clone());
    lines.push("distribution", distribution.as_deref().unwrap_or("(none)"));
    let mut report = ExplainReport {
        url: url.to_string(),
        host: r.host.clone(),
        distribution,
        behavior: None,
        cache_key: None,
        vary: None,
        stored: None,
        next: "fetch".into(),
        reason: String::new(),
    };
    if let Some(b) = r.behavior {
        let behavior = behavior_report(b, r.behavior_index, &mut lines);
        if let Some(key) = &r.key {
            let mode = if b.strict() {
                Mode::Strict
            } else {
                Mode::CloudFront
            };
            explain_key(store, key, &r.headers, mode, &mut report, &mut lines)?;
        }
        report.behavior = Some(behavior);
    }
    if let Some(w) = &r.why_none {
        report.next = "error".into();
        report.reason = w.clone();
    }
    lines.push(
        "next request",
        format!("{} ({})", report.next, report.reason),
    );
    Ok((report, lines))
}

fn behavior_report(b: &Behavior, index: Option<usize>, lines: &mut Lines) -> BehaviorReport {
    let mode = if b.strict() { "strict" } else { "cloudfront" };
    let name = match index {
        Some(i) => format!("behaviors[{i}]"),
        None => "default_behavior".into(),
    };
    let pattern = b.path_pattern.clone().unwrap_or_else(|| "*".into());
    let forwarded = &b.origin_request;
    let origin_request = ForwardingReport {
        headers: describe_headers(&forwarded.headers),
        cookies: describe_list(&forwarded.cookies),
        query_strings: describe_list(&forwarded.query_strings),
    };
    lines.push(
        "behavior",
        format!(
            "{name} (path pattern {pattern}, {mode} mode, ttl default {} min {} max {})",
            b.default_ttl, b.min_ttl, b.max_ttl
        ),
    );
    lines.push(
        "also forwarded",
        format!(
            "headers {}, cookies {}, query strings {}",
            origin_request.headers, origin_request.cookies, origin_request.query_strings
        ),
    );
    BehaviorReport {
        name,
        path_pattern: pattern,
        mode: mode.into(),
        default_ttl: b.default_ttl,
        min_ttl: b.min_ttl,
        max_ttl: b.max_ttl,
        origin_request,
    }
}

/// The key, the Vary index (following it to the selected variant) and what is stored.
fn explain_key(
    store: &Store,
    key: &[u8],
    headers: &HeaderMap,
    mode: Mode,
    report: &mut ExplainReport,
    lines: &mut Lines,
) -> Result<()> {
    let view = view_key(key);
    report.cache_key = Some(view.report(key));
    lines.push("cache key", view.render());
    lines.push("cache key (hex)", hex(key));
    let mut found = store.info(key)?;
    if let Some(info) = &found {
        if let Ok(Meta::Variants(names)) = Meta::decode(&info.meta) {
            let kids = children(store, key)?;
            lines.push("vary", names.join(", "));
            for k in &kids {
                lines.push("stored variant", view_key(&k.key).render());
            }
            let vk = cache_key::variant_key(key, &names, headers);
            lines.push("selected variant", view_key(&vk).render());
            let variants = kids
                .iter()
                .map(|k| VariantReport {
                    key_hex: hex(&k.key),
                    key: view_key(&k.key).render(),
                })
                .collect();
            report.vary = Some(VaryReport {
                names,
                variants,
                selected_key_hex: hex(&vk),
            });
            found = store.info(&vk)?;
        }
    }
    report.reason = match found.map(|i| (Meta::decode(&i.meta), i)) {
        None => "not in the cache".into(),
        Some((Ok(Meta::Response(m)), info)) => {
            explain_stored(&m, &info, headers, mode, report, lines)
        }
        Some((Ok(_), _)) => "an index object is at this key, no response".into(),
        Some((Err(e), _)) => format!("stored metadata unreadable ({e}): dropped and fetched"),
    };
    Ok(())
}

/// What the next request would do with the stored response `m`; returns why.
fn explain_stored(
    m: &StoredResponse,
    info: &ObjectInfo,
    headers: &HeaderMap,
    mode: Mode,
    report: &mut ExplainReport,
    lines: &mut Lines,
) -> String {
    let facts = m.facts(SystemTime::now());
    let remaining = m.ttl_s as i64 - facts.current_age.as_secs().min(i64::MAX as u64) as i64;
    let req = RequestFacts::from_request(&Method::GET, headers);
    let decision = httpcache::reuse(mode, &facts, &req);
    report.next = match decision {
        Reuse::Fresh => "hit",
        Reuse::StaleWhileRevalidate => "stale-while-revalidate",
        Reuse::Revalidate => "revalidate",
        Reuse::Fetch => "fetch",
    }
    .into();
    lines.push("stored status", m.status.to_string());
    lines.push("stored at", time(info.stored_at));
    lines.push(
        "ttl",
        format!("{}s (rule {}, clamp {})", m.ttl_s, m.ttl_rule, m.ttl_clamp),
    );
    lines.push("age", format!("{}s", facts.current_age.as_secs()));
    lines.push("freshness left", dur(remaining));
    report.stored = Some(StoredReport {
        key_hex: hex(&info.key),
        status: m.status,
        body_len: info.body_len,
        stored_at: time(info.stored_at),
        ttl_s: m.ttl_s,
        ttl_rule: m.ttl_rule.clone(),
        ttl_clamp: m.ttl_clamp.clone(),
        age_s: facts.current_age.as_secs(),
        freshness_remaining_s: remaining,
        must_revalidate: m.must_revalidate,
        revalidate_each_use: m.revalidate_each_use,
        stale_while_revalidate_s: m.stale_while_revalidate_s,
        stale_if_error_s: m.stale_if_error_s,
        has_validator: facts.has_validator,
    });
    match decision {
        Reuse::Fresh => "fresh: served from the cache".into(),
        Reuse::StaleWhileRevalidate => {
            "stale within stale-while-revalidate: served, refreshed in the background".into()
        }
        Reuse::Revalidate if facts.has_validator => {
            "stale (or no-cache): conditional request to the origin".into()
        }
        Reuse::Revalidate => {
            "stale (or no-cache) without a validator: full request to the origin".into()
        }
        Reuse::Fetch => "the stored response cannot answer this request".into(),
    }
}

/// `show` for people: `label  value` rows (offline, and live through the admin API's
/// `format=lines`, so both print the same).
pub fn show_lines(store: &Store, key: &[u8]) -> Result<Option<Lines>> {
    let Some((d, blob, kids)) = shown(store, key)? else {
        return Ok(None);
    };
    let mut rows = Lines::default();
    object_lines(&d, &mut rows);
    match &d.meta {
        Ok(Meta::Response(r)) => response_lines(r, &mut rows),
        Ok(Meta::Variants(names)) => rows.push("vary index on", names.join(", ")),
        Ok(Meta::Partials(p)) => {
            let parts: Vec<String> = p.iter().map(|(a, b)| format!("{a}-{b}")).collect();
            rows.push("parts index", parts.join(", "))
        }
        Err(e) => rows.push("metadata", format!("unreadable: {e}")),
    }
    blob_lines(&d, blob.as_ref(), &mut rows);
    for k in &kids {
        rows.push("stored under it", view_key(&k.key).render());
    }
    Ok(Some(rows))
}

/// The key, its fields and the object's times.
fn object_lines(d: &Described, rows: &mut Lines) {
    rows.push("key", d.view.render());
    rows.push("key (hex)", hex(&d.info.key));
    rows.push("kind", d.kind());
    rows.push("distribution", d.info.distribution.clone());
    if let Some(p) = &d.view.parts {
        rows.push("path", p.path.clone());
        rows.push("query", p.query.clone().unwrap_or("-".into()));
        for (n, val) in &p.headers {
            rows.push(
                format!("key header {n}"),
                val.clone().unwrap_or("(absent)".into()),
            );
        }
        rows.push("cookies", p.cookies.clone().unwrap_or("-".into()));
    }
    let len = d.info.body_len;
    rows.push("body length", format!("{len} ({})", human(len)));
    rows.push("stored at", time(d.info.stored_at));
    rows.push("expires at", time(d.info.expires_at));
    rows.push("age", dur(d.age_s));
    rows.push("ttl left", dur(d.remaining_s));
    if !d.info.tags.is_empty() {
        rows.push("tags", d.info.tags.join(", "));
    }
}

/// A stored response's metadata and headers.
fn response_lines(r: &StoredResponse, rows: &mut Lines) {
    rows.push("status", r.status.to_string());
    let requested = crate::edge::meta::from_ms(r.request_time_ms);
    rows.push("request time", time(requested));
    rows.push("response time", time(r.response_time()));
    rows.push("initial age", format!("{}s", r.initial_age_s));
    rows.push(
        "ttl",
        format!("{}s (rule {}, clamp {})", r.ttl_s, r.ttl_rule, r.ttl_clamp),
    );
    rows.push("revalidate each use", r.revalidate_each_use.to_string());
    rows.push("must revalidate", r.must_revalidate.to_string());
    let opt = |o: Option<u64>| o.map_or("-".into(), |s| format!("{s}s"));
    rows.push("stale-while-revalidate", opt(r.stale_while_revalidate_s));
    rows.push("stale-if-error", opt(r.stale_if_error_s));
    let vary = if r.vary.is_empty() {
        "-".into()
    } else {
        r.vary.join(", ")
    };
    rows.push("vary", vary);
    for (n, val) in &r.headers {
        rows.push(format!("header {n}"), String::from_utf8_lossy(val));
    }
}

/// Where the object's record and its blob are.
fn blob_lines(d: &Described, blob: Option<&crate::store::BlobInfo>, rows: &mut Lines) {
    rows.push("blob", hex(&d.info.blob));
    let at = |segment: u64, offset: u64| format!("segment {segment:016x} offset {offset}");
    rows.push("record", at(d.info.record.segment, d.info.record.offset));
    let Some(b) = blob else {
        rows.push("blob location", "(not in the index)");
        return;
    };
    rows.push("blob references", b.references.to_string());
    rows.push("blob manifest", at(b.manifest.segment, b.manifest.offset));
    for (i, r) in b.runs.iter().enumerate() {
        rows.push(
            format!("blob run {i}"),
            format!("{} len {}", at(r.segment, r.offset), r.len),
        );
    }
}

/// `label  value` rows for people; the admin API's `format=lines` sends them as JSON
/// (`{"lines": [[label, value], …]}`), so offline and live print the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lines {
    pub lines: Vec<(String, String)>,
}

impl Lines {
    pub fn push(&mut self, label: impl Into<String>, value: impl Into<String>) {
        self.lines.push((label.into(), value.into()));
    }
}
