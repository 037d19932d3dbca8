//! `cairn cache-inspect`: look inside a cache directory offline (the edge must not be
//! running on it). Every subcommand prints aligned columns, or JSON with `--json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde_json::{json, Value};

use cairn::cache_key::{self, KeyInput, KeyParts};
use cairn::config::{self, Behavior, Config, Distribution};
use cairn::edge::meta::{Meta, StoredResponse};
use cairn::edge::router::Router;
use cairn::httpcache::{self, Mode, RequestFacts, Reuse};
use cairn::store::{
    ObjectInfo, Store, StoreConfig, StoreError, VerifyPhase, VerifyProgress, VerifyReport,
};

use crate::{Inspect, Target};

/// Where to point a running edge's operator.
const ADMIN_HINT: &str = "--admin http://127.0.0.1:9090";

pub fn run(cache_dir: &Path, what: Inspect) -> anyhow::Result<ExitCode> {
    match what {
        Inspect::Summary { json, config } => {
            let store = open_offline(cache_dir, false)?;
            let capacity = match config {
                Some(f) => Some(load_config(&f)?.cache.capacity),
                None => None,
            };
            summary(&store, capacity, json)?;
        }
        Inspect::Segments { json } => segments(&open_offline(cache_dir, false)?, json)?,
        Inspect::Verify { repair, json } => {
            let store = match open_offline(cache_dir, false) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("cairn: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            return verify(&store, repair, json);
        }
        Inspect::RebuildIndex => {
            let store = open_offline(cache_dir, true)?;
            let s = store.stats();
            println!(
                "rebuilt the index of {}: {} objects, {} blobs",
                cache_dir.display(),
                s.objects,
                s.blobs
            );
        }
        Inspect::Ls {
            distribution,
            prefix,
            limit,
            json,
        } => ls(
            &open_offline(cache_dir, false)?,
            distribution.as_deref(),
            prefix.as_deref(),
            limit,
            json,
        )?,
        Inspect::Show { target, json } => show(&open_offline(cache_dir, false)?, &target, json)?,
        Inspect::Cat { target } => return cat(&open_offline(cache_dir, false)?, &target),
        Inspect::Explain {
            url,
            config,
            header,
            json,
        } => {
            let cfg = load_config(&config)?;
            explain(&open_offline(cache_dir, false)?, &cfg, &url, &header, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the store for inspection. Objects past their expiry are kept visible (the
/// grace is made very long): inspection shows what the index holds.
pub fn open_offline(dir: &Path, rebuild: bool) -> anyhow::Result<Store> {
    let mut cfg = StoreConfig::new(dir, u64::MAX / 4);
    cfg.background_interval = None;
    cfg.stale_grace = Duration::from_secs(100 * 365 * 86400);
    if !dir.join("FORMAT").exists() {
        anyhow::bail!(
            "{} is not a cairn cache directory (no FORMAT file)",
            dir.display()
        );
    }
    let store = if rebuild {
        Store::open_rebuilding(cfg)
    } else {
        Store::open(cfg)
    };
    match store {
        Ok(s) => Ok(s),
        Err(StoreError::Locked { dir, holder }) => anyhow::bail!(
            "cache directory {} is in use by a running edge (pid {holder}); cache-inspect \
             reads a cache offline only. Stop the edge first, or ask the running edge through \
             its admin API ({ADMIN_HINT})",
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening the cache in {}", dir.display())),
    }
}

fn load_config(file: &Path) -> anyhow::Result<Config> {
    config::load_file(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

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

fn escape_bytes(b: &[u8]) -> String {
    b.iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!("--key-hex wants an even number of hex digits (as `ls --json` prints)");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(Into::into))
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

    fn to_json(&self, key: &[u8]) -> Value {
        let (variant, part) = match &self.extra {
            KeyExtra::Variant(v) => (json!(v), Value::Null),
            KeyExtra::Part(r) => (Value::Null, json!(r)),
            _ => (Value::Null, Value::Null),
        };
        json!({
            "key_hex": hex(key),
            "key": self.render(),
            "parsed": self.parts.is_some(),
            "distribution": self.parts.as_ref().map(|p| p.distribution.clone()),
            "path": self.parts.as_ref().map(|p| p.path.clone()),
            "query": self.parts.as_ref().and_then(|p| p.query.clone()),
            "headers": self.parts.as_ref().map(|p| json!(p.headers)),
            "cookies": self.parts.as_ref().and_then(|p| p.cookies.clone()),
            "variant": variant,
            "part": part,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Objects

fn human(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

fn ms(t: SystemTime) -> u64 {
    cairn::edge::meta::to_ms(t)
}

fn time(t: SystemTime) -> String {
    if t <= UNIX_EPOCH {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Seconds `b - a`, signed.
fn signed_secs(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs().min(i64::MAX as u64) as i64,
        Err(e) => -(e.duration().as_secs().min(i64::MAX as u64) as i64),
    }
}

fn dur(secs: i64) -> String {
    if secs < 0 {
        format!("stale {}", dur(-secs))
    } else {
        humantime::format_duration(Duration::from_secs(secs as u64)).to_string()
    }
}

/// One object as `ls` and `show` describe it.
struct Described {
    info: ObjectInfo,
    view: KeyView,
    meta: Result<Meta, String>,
    age_s: i64,
    remaining_s: i64,
}

impl Described {
    fn new(info: ObjectInfo, now: SystemTime) -> Self {
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

    fn kind(&self) -> &'static str {
        match (&self.meta, &self.view.extra) {
            (Err(_), _) => "unreadable",
            (Ok(Meta::Variants(_)), _) => "vary-index",
            (Ok(Meta::Partials(_)), _) => "parts-index",
            (Ok(Meta::Response(_)), KeyExtra::Variant(_)) => "variant",
            (Ok(Meta::Response(_)), KeyExtra::Part(_)) => "part",
            (Ok(Meta::Response(_)), _) => "response",
        }
    }

    fn status(&self) -> Option<u16> {
        match &self.meta {
            Ok(Meta::Response(r)) => Some(r.status),
            _ => None,
        }
    }

    fn summary_json(&self) -> Value {
        let mut v = self.view.to_json(&self.info.key);
        let o = v.as_object_mut().expect("object");
        o.insert("kind".into(), json!(self.kind()));
        o.insert("status".into(), json!(self.status()));
        o.insert("body_len".into(), json!(self.info.body_len));
        o.insert("stored_at".into(), json!(time(self.info.stored_at)));
        o.insert("stored_at_ms".into(), json!(ms(self.info.stored_at)));
        o.insert("expires_at".into(), json!(time(self.info.expires_at)));
        o.insert("expires_at_ms".into(), json!(ms(self.info.expires_at)));
        o.insert("age_s".into(), json!(self.age_s));
        o.insert("ttl_remaining_s".into(), json!(self.remaining_s));
        o.insert("stale".into(), json!(self.remaining_s <= 0));
        o.insert("tags".into(), json!(self.info.tags));
        if self.view.parts.is_none() {
            o.insert("distribution".into(), json!(self.info.distribution));
        }
        v
    }
}

/// Prints rows with every column but the last padded to its widest cell; `right` marks
/// right-aligned columns.
fn print_table(header: &[&str], right: &[bool], rows: &[Vec<String>]) {
    let n = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = w[i] - c.chars().count();
            if i + 1 == n && !right[i] {
                line.push_str(c);
            } else if right[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                line.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

fn ls(
    store: &Store,
    distribution: Option<&str>,
    prefix: Option<&str>,
    limit: usize,
    json_out: bool,
) -> anyhow::Result<()> {
    let key_prefix = match (distribution, prefix) {
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
    };
    let now = SystemTime::now();
    let limit = if limit == 0 { usize::MAX } else { limit };
    let mut rows = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    let mut more = false;
    'pages: loop {
        let page = store.list(&key_prefix, after.as_deref(), 1024)?;
        let last = page.len() < 1024;
        after = page.last().map(|o| o.key.clone());
        for info in page {
            let d = Described::new(info, now);
            if distribution.is_none() {
                if let Some(p) = prefix {
                    if !d.view.parts.as_ref().is_some_and(|k| k.path.starts_with(p)) {
                        continue;
                    }
                }
            }
            if rows.len() == limit {
                more = true;
                break 'pages;
            }
            rows.push(d);
        }
        if last || after.is_none() {
            break;
        }
    }
    if json_out {
        let v: Vec<Value> = rows.iter().map(Described::summary_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|d| {
            vec![
                d.kind().to_string(),
                d.status().map_or("-".into(), |s| s.to_string()),
                human(d.info.body_len),
                time(d.info.stored_at),
                time(d.info.expires_at),
                dur(d.age_s),
                dur(d.remaining_s),
                d.view.render(),
            ]
        })
        .collect();
    print_table(
        &[
            "KIND", "STATUS", "SIZE", "STORED", "EXPIRES", "AGE", "TTL LEFT", "KEY",
        ],
        &[false, true, true, false, false, true, true, false],
        &table,
    );
    if more {
        eprintln!("(more objects; raise --limit, 0 for all)");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Resolving a URL or a key

/// How a request maps onto the configuration.
struct Routed<'a> {
    host: String,
    distribution: Option<&'a Distribution>,
    behavior_index: Option<usize>,
    behavior: Option<&'a Behavior>,
    key: Option<Vec<u8>>,
    headers: HeaderMap,
    why_none: Option<String>,
}

fn parse_headers(list: &[String]) -> anyhow::Result<HeaderMap> {
    let mut h = HeaderMap::new();
    for item in list {
        let (n, v) = item
            .split_once(':')
            .with_context(|| format!("--header {item:?}: want NAME:VALUE"))?;
        h.append(
            HeaderName::from_bytes(n.trim().as_bytes())
                .with_context(|| format!("bad header name {n:?}"))?,
            HeaderValue::from_str(v.trim()).with_context(|| format!("bad header value {v:?}"))?,
        );
    }
    Ok(h)
}

fn parse_url(url: &str) -> anyhow::Result<(Uri, String)> {
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .with_context(|| format!("{url}: want http://HOST/path"))?;
    Ok((uri, host))
}

fn route<'a>(cfg: &'a Config, url: &str, extra: &[String]) -> anyhow::Result<Routed<'a>> {
    let (uri, host) = parse_url(url)?;
    let mut headers = parse_headers(extra)?;
    if !headers.contains_key(http::header::HOST) {
        headers.insert(http::header::HOST, HeaderValue::from_str(&host)?);
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
    let path = cache_key::normalize_path(uri.path()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let path_for_behavior = if path == "/" {
        d.default_root_object
            .as_ref()
            .map(|o| format!("/{o}"))
            .unwrap_or(path)
    } else {
        path
    };
    r.behavior_index = d
        .behaviors
        .iter()
        .position(|b| b.matches(&path_for_behavior));
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

/// The store key `target` names.
fn resolve(target: &Target) -> anyhow::Result<Vec<u8>> {
    if let Some(h) = &target.key_hex {
        return unhex(h);
    }
    let Some(url) = &target.url else {
        anyhow::bail!("give a URL (with --config FILE or --distribution ID) or --key-hex HEX");
    };
    if let Some(file) = &target.config {
        let cfg = load_config(file)?;
        let r = route(&cfg, url, &target.header)?;
        return match r.key {
            Some(k) => Ok(k),
            None => anyhow::bail!(
                "{url}: {}",
                r.why_none.unwrap_or_else(|| "no cache key".into())
            ),
        };
    }
    if let Some(d) = &target.distribution {
        let (uri, _) = match parse_url(url) {
            Ok(x) => x,
            Err(_) => (url.parse::<Uri>()?, String::new()),
        };
        let path = cache_key::normalize_path(uri.path()).map_err(|e| anyhow::anyhow!("{e}"))?;
        return Ok(KeyParts {
            distribution: d.clone(),
            path,
            query: None,
            headers: vec![],
            cookies: None,
        }
        .to_key());
    }
    anyhow::bail!("{url}: say how to form its key: --config FILE or --distribution ID")
}

/// The objects stored under `primary` (variants, parts), bounded.
fn children(store: &Store, primary: &[u8]) -> anyhow::Result<Vec<ObjectInfo>> {
    let mut p = primary.to_vec();
    p.push(0);
    Ok(store.list(&p, None, 256)?)
}

// ---------------------------------------------------------------------------------------
// show / cat

fn response_json(r: &StoredResponse) -> Value {
    json!({
        "status": r.status,
        "headers": r.headers.iter().map(|(n, v)| json!([n, String::from_utf8_lossy(v)])).collect::<Vec<_>>(),
        "request_time": time(cairn::edge::meta::from_ms(r.request_time_ms)),
        "request_time_ms": r.request_time_ms,
        "response_time": time(r.response_time()),
        "response_time_ms": r.response_time_ms,
        "initial_age_s": r.initial_age_s,
        "ttl_s": r.ttl_s,
        "ttl_rule": r.ttl_rule,
        "ttl_clamp": r.ttl_clamp,
        "revalidate_each_use": r.revalidate_each_use,
        "must_revalidate": r.must_revalidate,
        "stale_while_revalidate_s": r.stale_while_revalidate_s,
        "stale_if_error_s": r.stale_if_error_s,
        "vary": r.vary,
    })
}

fn show(store: &Store, target: &Target, json_out: bool) -> anyhow::Result<()> {
    let key = resolve(target)?;
    let Some(info) = store.info(&key)? else {
        anyhow::bail!(
            "no object at key {} ({})",
            view_key(&key).render(),
            hex(&key)
        );
    };
    let now = SystemTime::now();
    let d = Described::new(info, now);
    let blob = store.blob_info(&d.info.blob)?;
    let kids = match d.meta {
        Ok(Meta::Variants(_)) | Ok(Meta::Partials(_)) => children(store, &key)?,
        _ => Vec::new(),
    };
    let mut v = d.summary_json();
    let o = v.as_object_mut().expect("object");
    o.insert(
        "record".into(),
        json!({"segment": d.info.record.segment, "offset": d.info.record.offset}),
    );
    let meta = match &d.meta {
        Ok(Meta::Response(r)) => json!({"response": response_json(r)}),
        Ok(Meta::Variants(names)) => json!({"vary_index": names}),
        Ok(Meta::Partials(p)) => json!({"parts_index": p}),
        Err(e) => json!({"error": e}),
    };
    o.insert("meta".into(), meta);
    o.insert(
        "blob".into(),
        json!({
            "hash": hex(&d.info.blob),
            "found": blob.is_some(),
            "len": blob.as_ref().map(|b| b.len),
            "references": blob.as_ref().map(|b| b.references),
            "manifest": blob.as_ref().map(|b| json!({"segment": b.manifest.segment, "offset": b.manifest.offset})),
            "runs": blob.as_ref().map(|b| b.runs.iter().map(|r| json!({"segment": r.segment, "offset": r.offset, "len": r.len})).collect::<Vec<_>>()),
        }),
    );
    o.insert(
        "children".into(),
        json!(kids
            .iter()
            .map(|k| json!({"key_hex": hex(&k.key), "key": view_key(&k.key).render(), "body_len": k.body_len}))
            .collect::<Vec<_>>()),
    );
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut rows: Vec<(String, String)> = vec![
        ("key".into(), d.view.render()),
        ("key (hex)".into(), hex(&d.info.key)),
        ("kind".into(), d.kind().into()),
        ("distribution".into(), d.info.distribution.clone()),
    ];
    if let Some(p) = &d.view.parts {
        rows.push(("path".into(), p.path.clone()));
        rows.push(("query".into(), p.query.clone().unwrap_or("-".into())));
        for (n, val) in &p.headers {
            rows.push((
                format!("key header {n}"),
                val.clone().unwrap_or("(absent)".into()),
            ));
        }
        rows.push(("cookies".into(), p.cookies.clone().unwrap_or("-".into())));
    }
    rows.push((
        "body length".into(),
        format!("{} ({})", d.info.body_len, human(d.info.body_len)),
    ));
    rows.push(("stored at".into(), time(d.info.stored_at)));
    rows.push(("expires at".into(), time(d.info.expires_at)));
    rows.push(("age".into(), dur(d.age_s)));
    rows.push(("ttl left".into(), dur(d.remaining_s)));
    if !d.info.tags.is_empty() {
        rows.push(("tags".into(), d.info.tags.join(", ")));
    }
    match &d.meta {
        Ok(Meta::Response(r)) => {
            rows.push(("status".into(), r.status.to_string()));
            rows.push((
                "request time".into(),
                time(cairn::edge::meta::from_ms(r.request_time_ms)),
            ));
            rows.push(("response time".into(), time(r.response_time())));
            rows.push(("initial age".into(), format!("{}s", r.initial_age_s)));
            rows.push((
                "ttl".into(),
                format!("{}s (rule {}, clamp {})", r.ttl_s, r.ttl_rule, r.ttl_clamp),
            ));
            rows.push((
                "revalidate each use".into(),
                r.revalidate_each_use.to_string(),
            ));
            rows.push(("must revalidate".into(), r.must_revalidate.to_string()));
            let opt = |o: Option<u64>| o.map_or("-".into(), |s| format!("{s}s"));
            rows.push((
                "stale-while-revalidate".into(),
                opt(r.stale_while_revalidate_s),
            ));
            rows.push(("stale-if-error".into(), opt(r.stale_if_error_s)));
            rows.push((
                "vary".into(),
                if r.vary.is_empty() {
                    "-".into()
                } else {
                    r.vary.join(", ")
                },
            ));
            for (n, val) in &r.headers {
                rows.push((
                    format!("header {n}"),
                    String::from_utf8_lossy(val).into_owned(),
                ));
            }
        }
        Ok(Meta::Variants(names)) => rows.push(("vary index on".into(), names.join(", "))),
        Ok(Meta::Partials(p)) => rows.push((
            "parts index".into(),
            p.iter()
                .map(|(a, b)| format!("{a}-{b}"))
                .collect::<Vec<_>>()
                .join(", "),
        )),
        Err(e) => rows.push(("metadata".into(), format!("unreadable: {e}"))),
    }
    rows.push(("blob".into(), hex(&d.info.blob)));
    rows.push((
        "record".into(),
        format!(
            "segment {:016x} offset {}",
            d.info.record.segment, d.info.record.offset
        ),
    ));
    match &blob {
        Some(b) => {
            rows.push(("blob references".into(), b.references.to_string()));
            rows.push((
                "blob manifest".into(),
                format!(
                    "segment {:016x} offset {}",
                    b.manifest.segment, b.manifest.offset
                ),
            ));
            for (i, r) in b.runs.iter().enumerate() {
                rows.push((
                    format!("blob run {i}"),
                    format!(
                        "segment {:016x} offset {} len {}",
                        r.segment, r.offset, r.len
                    ),
                ));
            }
        }
        None => rows.push(("blob location".into(), "(not in the index)".into())),
    }
    for k in &kids {
        rows.push(("stored under it".into(), view_key(&k.key).render()));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
    Ok(())
}

fn cat(store: &Store, target: &Target) -> anyhow::Result<ExitCode> {
    let mut key = resolve(target)?;
    // Follow a Vary index to the variant the given headers select.
    if let Some(info) = store.info(&key)? {
        if let Ok(Meta::Variants(names)) = Meta::decode(&info.meta) {
            key = cache_key::variant_key(&key, &names, &parse_headers(&target.header)?);
        }
    }
    let Some(info) = store.info(&key)? else {
        anyhow::bail!(
            "no object at key {} ({})",
            view_key(&key).render(),
            hex(&key)
        );
    };
    let Some(hit) = store.lookup(&key)? else {
        anyhow::bail!(
            "the body of {} failed its checksum (blob {})",
            view_key(&key).render(),
            hex(&info.blob)
        );
    };
    let mut body = hit.body;
    let out = std::io::stdout();
    let mut out = out.lock();
    while let Some(chunk) = body.next_chunk() {
        match chunk {
            Ok(b) => out.write_all(&b).context("writing to stdout")?,
            Err(e) => {
                let _ = out.flush();
                eprintln!("cairn: the body failed its check: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// explain

fn explain(
    store: &Store,
    cfg: &Config,
    url: &str,
    header: &[String],
    json_out: bool,
) -> anyhow::Result<()> {
    let r = route(cfg, url, header)?;
    let now = SystemTime::now();
    let mut v = json!({
        "url": url,
        "host": r.host,
        "distribution": r.distribution.map(|d| d.id.clone()),
    });
    let o = v.as_object_mut().expect("object");
    let mut lines: Vec<(String, String)> = vec![("url".into(), url.into())];
    match r.distribution {
        Some(d) => lines.push(("distribution".into(), d.id.clone())),
        None => lines.push(("distribution".into(), "(none)".into())),
    }
    let mut next = "fetch".to_string();
    let mut why = String::new();
    if let Some(b) = r.behavior {
        let mode = if b.strict() {
            Mode::Strict
        } else {
            Mode::CloudFront
        };
        let mode_s = if mode == Mode::Strict {
            "strict"
        } else {
            "cloudfront"
        };
        let name = match r.behavior_index {
            Some(i) => format!("behaviors[{i}]"),
            None => "default_behavior".into(),
        };
        let pattern = b.path_pattern.clone().unwrap_or_else(|| "*".into());
        o.insert(
            "behavior".into(),
            json!({"name": name, "path_pattern": pattern, "mode": mode_s,
                   "default_ttl": b.default_ttl, "min_ttl": b.min_ttl, "max_ttl": b.max_ttl}),
        );
        lines.push((
            "behavior".into(),
            format!(
                "{name} (path pattern {pattern}, {mode_s} mode, ttl default {} min {} max {})",
                b.default_ttl, b.min_ttl, b.max_ttl
            ),
        ));
        if let Some(key) = &r.key {
            let view = view_key(key);
            o.insert("cache_key".into(), view.to_json(key));
            lines.push(("cache key".into(), view.render()));
            lines.push(("cache key (hex)".into(), hex(key)));
            let mut found = store.info(key)?;
            if let Some(info) = &found {
                if let Ok(Meta::Variants(names)) = Meta::decode(&info.meta) {
                    let kids = children(store, key)?;
                    let variants: Vec<Value> = kids
                        .iter()
                        .map(|k| json!({"key_hex": hex(&k.key), "key": view_key(&k.key).render()}))
                        .collect();
                    lines.push(("vary".into(), names.join(", ")));
                    for k in &kids {
                        lines.push(("stored variant".into(), view_key(&k.key).render()));
                    }
                    let vk = cache_key::variant_key(key, &names, &r.headers);
                    lines.push(("selected variant".into(), view_key(&vk).render()));
                    o.insert(
                        "vary".into(),
                        json!({"names": names, "variants": variants, "selected_key_hex": hex(&vk)}),
                    );
                    found = store.info(&vk)?;
                }
            }
            match found.map(|i| (Meta::decode(&i.meta), i)) {
                None => {
                    why = "not in the cache".into();
                    o.insert("stored".into(), Value::Null);
                }
                Some((Ok(Meta::Response(m)), info)) => {
                    let facts = m.facts(now);
                    let remaining =
                        m.ttl_s as i64 - facts.current_age.as_secs().min(i64::MAX as u64) as i64;
                    let req = RequestFacts::from_request(&Method::GET, &r.headers);
                    let decision = httpcache::reuse(mode, &facts, &req);
                    next = match decision {
                        Reuse::Fresh => "hit".into(),
                        Reuse::StaleWhileRevalidate => "stale-while-revalidate".into(),
                        Reuse::Revalidate => "revalidate".into(),
                        Reuse::Fetch => "fetch".into(),
                    };
                    why = match decision {
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
                    };
                    lines.push(("stored status".into(), m.status.to_string()));
                    lines.push(("stored at".into(), time(info.stored_at)));
                    lines.push((
                        "ttl".into(),
                        format!("{}s (rule {}, clamp {})", m.ttl_s, m.ttl_rule, m.ttl_clamp),
                    ));
                    lines.push(("age".into(), format!("{}s", facts.current_age.as_secs())));
                    lines.push(("freshness left".into(), dur(remaining)));
                    o.insert(
                        "stored".into(),
                        json!({
                            "key_hex": hex(&info.key),
                            "status": m.status,
                            "body_len": info.body_len,
                            "stored_at": time(info.stored_at),
                            "ttl_s": m.ttl_s,
                            "ttl_rule": m.ttl_rule,
                            "ttl_clamp": m.ttl_clamp,
                            "age_s": facts.current_age.as_secs(),
                            "freshness_remaining_s": remaining,
                            "must_revalidate": m.must_revalidate,
                            "revalidate_each_use": m.revalidate_each_use,
                            "stale_while_revalidate_s": m.stale_while_revalidate_s,
                            "stale_if_error_s": m.stale_if_error_s,
                            "has_validator": facts.has_validator,
                        }),
                    );
                }
                Some((Ok(_), _)) => {
                    why = "an index object is at this key, no response".into();
                    o.insert("stored".into(), Value::Null);
                }
                Some((Err(e), _)) => {
                    why = format!("stored metadata unreadable ({e}): dropped and fetched");
                    o.insert("stored".into(), Value::Null);
                }
            }
        }
    }
    if let Some(w) = &r.why_none {
        next = "error".into();
        why = w.clone();
    }
    lines.push(("next request".into(), format!("{next} ({why})")));
    o.insert("next".into(), json!(next));
    o.insert("reason".into(), json!(why));
    if json_out {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let w = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, val) in lines {
            println!("{k:<w$}  {val}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// summary / segments

fn summary(store: &Store, capacity: Option<u64>, json_out: bool) -> anyhow::Result<()> {
    let s = store.stats();
    let now = SystemTime::now();
    let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
    for seg in store.segments() {
        *by_state.entry(seg.state.as_str()).or_default() += 1;
    }
    // (objects, body bytes) per distribution; bounded by the number of distributions.
    let mut per_dist: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut oldest: Option<(SystemTime, Vec<u8>)> = None;
    let mut newest: Option<(SystemTime, Vec<u8>)> = None;
    let mut expired = 0u64;
    let mut body_bytes = 0u64;
    for o in store.iter() {
        let o = o?;
        let e = per_dist.entry(o.distribution.clone()).or_default();
        e.0 += 1;
        e.1 += o.body_len;
        body_bytes += o.body_len;
        let kind = match Meta::decode(&o.meta) {
            Ok(Meta::Variants(_)) => "vary-index",
            Ok(Meta::Partials(_)) => "parts-index",
            Ok(Meta::Response(_)) => "response",
            Err(_) => "unreadable",
        };
        *kinds.entry(kind).or_default() += 1;
        if o.expires_at <= now {
            expired += 1;
        }
        if oldest.as_ref().is_none_or(|(t, _)| o.stored_at < *t) {
            oldest = Some((o.stored_at, o.key.clone()));
        }
        if newest.as_ref().is_none_or(|(t, _)| o.stored_at > *t) {
            newest = Some((o.stored_at, o.key.clone()));
        }
    }
    let when = |x: &Option<(SystemTime, Vec<u8>)>| {
        x.as_ref().map(
            |(t, k)| json!({"stored_at": time(*t), "key": view_key(k).render(), "key_hex": hex(k)}),
        )
    };
    if json_out {
        let v = json!({
            "objects": s.objects,
            "blobs": s.blobs,
            "live_bytes": s.live_bytes,
            "body_bytes": body_bytes,
            "bytes_on_disk": s.bytes_on_disk,
            "index_bytes_on_disk": s.index_bytes_on_disk,
            "capacity": capacity,
            "segments": s.segments,
            "segments_by_state": by_state,
            "dedup_saved_bytes": s.dedup_saved_bytes,
            "expired_kept": expired,
            "kinds": kinds,
            "distributions": per_dist.iter().map(|(d, (n, b))| (d.clone(), json!({"objects": n, "body_bytes": b}))).collect::<serde_json::Map<_, _>>(),
            "oldest": when(&oldest),
            "newest": when(&newest),
        });
        println!("{v:#}");
        return Ok(());
    }
    let mut rows = vec![
        ("objects".to_string(), s.objects.to_string()),
        ("blobs".into(), s.blobs.to_string()),
        ("live bytes".into(), human(s.live_bytes)),
        ("bytes on disk".into(), human(s.bytes_on_disk)),
        (
            "capacity".into(),
            capacity.map_or("unknown (give --config)".into(), human),
        ),
        ("index on disk".into(), human(s.index_bytes_on_disk)),
        ("segments".into(), s.segments.to_string()),
    ];
    for (st, n) in &by_state {
        rows.push((format!("  {st}"), n.to_string()));
    }
    rows.push(("saved by dedup".into(), human(s.dedup_saved_bytes)));
    rows.push(("expired, kept".into(), expired.to_string()));
    for (k, n) in &kinds {
        rows.push((format!("kind {k}"), n.to_string()));
    }
    for (d, (n, b)) in &per_dist {
        rows.push((
            format!("distribution {d}"),
            format!("{n} objects, {}", human(*b)),
        ));
    }
    if let Some((t, k)) = &oldest {
        rows.push((
            "oldest".into(),
            format!("{}  {}", time(*t), view_key(k).render()),
        ));
    }
    if let Some((t, k)) = &newest {
        rows.push((
            "newest".into(),
            format!("{}  {}", time(*t), view_key(k).render()),
        ));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
    Ok(())
}

fn segments(store: &Store, json_out: bool) -> anyhow::Result<()> {
    let segs = store.segments();
    if json_out {
        let v: Vec<_> = segs
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "state": s.state.as_str(),
                    "bytes_on_disk": s.bytes_on_disk,
                    "created_at": time(s.created_at),
                    "path": s.path,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let rows: Vec<Vec<String>> = segs
            .iter()
            .map(|s| {
                vec![
                    format!("{:016x}", s.id),
                    s.state.as_str().to_string(),
                    human(s.bytes_on_disk),
                    time(s.created_at),
                ]
            })
            .collect();
        print_table(
            &["ID", "STATE", "ON DISK", "CREATED"],
            &[false, false, true, false],
            &rows,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// verify

/// Shows verification progress on stderr: a bar on a terminal, a plain line per phase and
/// per segment otherwise (so logs of scripted runs stay readable).
struct VerifyDisplay {
    bar: Option<indicatif::ProgressBar>,
    phase: Option<VerifyPhase>,
    segment: Option<u64>,
}

impl VerifyDisplay {
    fn new() -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr_with_hz(10),
            )
        });
        Self {
            bar,
            phase: None,
            segment: None,
        }
    }

    fn update(&mut self, p: VerifyProgress) {
        let new_phase = self.phase != Some(p.phase);
        self.phase = Some(p.phase);
        match &self.bar {
            Some(bar) => {
                if new_phase {
                    let template = match p.phase {
                        VerifyPhase::Index => {
                            "{msg:>10} [{bar:40}] {pos}/{len} entries ({per_sec}, eta {eta})"
                        }
                        VerifyPhase::Segments => {
                            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
                        }
                    };
                    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.reset();
                    bar.set_message(p.phase.as_str());
                }
                bar.set_length(p.total);
                bar.set_position(p.done);
                if let Some(id) = p.segment {
                    if self.segment != Some(id) {
                        self.segment = Some(id);
                        bar.set_message(format!("{id:016x}"));
                    }
                }
            }
            None => {
                if new_phase {
                    eprintln!("verify: checking {}", p.phase.as_str());
                }
                if let Some(id) = p.segment {
                    if self.segment != Some(id) {
                        self.segment = Some(id);
                        eprintln!(
                            "verify: segment {id:016x} ({} of {} walked so far)",
                            human(p.done),
                            human(p.total)
                        );
                    }
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn verify(store: &Store, repair: bool, json_out: bool) -> anyhow::Result<ExitCode> {
    let mut display = VerifyDisplay::new();
    let result = store.verify(repair, &mut |p| display.update(p));
    display.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn: verifying {}: {e}", store.dir().display());
            return Ok(ExitCode::from(2));
        }
    };
    if json_out {
        println!("{:#}", verify_json(&report));
    } else {
        verify_human(&report);
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn opt_hex(b: &Option<[u8; 32]>) -> Value {
    b.as_ref().map_or(Value::Null, |h| json!(hex(h)))
}

fn verify_json(r: &VerifyReport) -> Value {
    json!({
        "clean": r.is_clean(),
        "repair": r.repair,
        "records_checked": r.records_checked,
        "bytes_checked": r.bytes_checked,
        "objects_checked": r.objects_checked,
        "blobs_checked": r.blobs_checked,
        "blob_bytes_hashed": r.blob_bytes_hashed,
        "corrupt_records": r.corrupt_records.iter().map(|c| json!({
            "segment": c.segment,
            "offset": c.offset,
            "kind": c.kind.map(|k| k.as_str()),
            "reason": c.reason,
            "header": c.header,
            "unreachable_bytes": c.unreachable_bytes,
            "live": c.live,
        })).collect::<Vec<_>>(),
        "live_corrupt_records": r.live_corrupt_records(),
        "orphans": {
            "extent_records": r.orphan_extent_records,
            "extent_bytes": r.orphan_extent_bytes,
            "blob_records": r.orphan_blob_records,
            "blob_bytes": r.orphan_blob_bytes,
        },
        "dangling": r.dangling.iter().map(|d| json!({
            "kind": d.kind.as_str(),
            "key": d.key.as_ref().map(|k| view_key(k).render()),
            "key_hex": d.key.as_ref().map(|k| hex(k)),
            "blob": opt_hex(&d.blob),
            "segment": d.segment,
            "offset": d.offset,
            "reason": d.reason,
            "repaired": d.repaired,
        })).collect::<Vec<_>>(),
        "ref_mismatches": r.ref_mismatches.iter().map(|m| json!({
            "blob": hex(&m.blob),
            "key": m.key.as_ref().map(|k| view_key(k).render()),
            "key_hex": m.key.as_ref().map(|k| hex(k)),
            "reason": m.reason,
            "repaired": m.repaired,
        })).collect::<Vec<_>>(),
        "segments": r.segments.iter().map(|s| json!({
            "id": s.id,
            "bytes": s.bytes,
            "end": s.end,
            "end_offset": s.end_offset,
            "records": s.records,
            "extent_records": s.extent_records,
            "blob_records": s.blob_records,
            "object_records": s.object_records,
            "tombstone_records": s.tombstone_records,
            "corrupt_records": s.corrupt_records,
            "orphan_records": s.orphan_records,
            "orphan_bytes": s.orphan_bytes,
        })).collect::<Vec<_>>(),
        "removed_objects": r.removed_objects,
        "dropped_blobs": r.dropped_blobs,
        "fixed_refs": r.fixed_refs,
    })
}

fn verify_human(r: &VerifyReport) {
    let seg = |s: Option<u64>| s.map_or("-".to_string(), |s| format!("{s:016x}"));
    let off = |o: Option<u64>| o.map_or("-".to_string(), |o| o.to_string());
    let rows: Vec<Vec<String>> = r
        .segments
        .iter()
        .map(|s| {
            vec![
                format!("{:016x}", s.id),
                s.records.to_string(),
                human(s.end_offset),
                s.corrupt_records.to_string(),
                s.orphan_records.to_string(),
                human(s.orphan_bytes),
                s.end.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "SEGMENT",
            "RECORDS",
            "WRITTEN",
            "CORRUPT",
            "ORPHANS",
            "ORPHAN BYTES",
            "END",
        ],
        &[false, true, true, true, true, true, false],
        &rows,
    );
    if !r.corrupt_records.is_empty() {
        println!();
        println!("corrupt records:");
        let rows: Vec<Vec<String>> = r
            .corrupt_records
            .iter()
            .map(|c| {
                vec![
                    format!("{:016x}", c.segment),
                    c.offset.to_string(),
                    c.kind.map_or("?", |k| k.as_str()).to_string(),
                    if c.live { "live" } else { "dead space" }.to_string(),
                    if c.header {
                        format!(
                            "{} (header: the {} after it cannot be walked)",
                            c.reason,
                            human(c.unreachable_bytes)
                        )
                    } else {
                        c.reason.clone()
                    },
                ]
            })
            .collect();
        print_table(
            &["SEGMENT", "OFFSET", "KIND", "STATE", "WHY"],
            &[false, true, false, false, false],
            &rows,
        );
    }
    if !r.dangling.is_empty() {
        println!();
        println!("dangling entries:");
        let rows: Vec<Vec<String>> = r
            .dangling
            .iter()
            .map(|d| {
                let what = match (&d.key, &d.blob) {
                    (Some(k), _) if d.kind == cairn::store::EntryKind::Object => {
                        view_key(k).render()
                    }
                    (_, Some(h)) => hex(h),
                    (Some(k), None) => format!("key {}", hex(k)),
                    (None, None) => "-".into(),
                };
                vec![
                    d.kind.as_str().to_string(),
                    seg(d.segment),
                    off(d.offset),
                    if d.repaired { "removed" } else { "-" }.to_string(),
                    format!("{what}: {}", d.reason),
                ]
            })
            .collect();
        print_table(
            &["ENTRY", "SEGMENT", "OFFSET", "REPAIR", "WHAT"],
            &[false, false, true, false, false],
            &rows,
        );
    }
    if !r.ref_mismatches.is_empty() {
        println!();
        println!("reference mismatches:");
        let rows: Vec<Vec<String>> = r
            .ref_mismatches
            .iter()
            .map(|m| {
                vec![
                    hex(&m.blob),
                    m.key
                        .as_ref()
                        .map_or("-".to_string(), |k| view_key(k).render()),
                    if m.repaired { "fixed" } else { "-" }.to_string(),
                    m.reason.clone(),
                ]
            })
            .collect();
        print_table(
            &["BLOB", "KEY", "REPAIR", "WHY"],
            &[false, false, false, false],
            &rows,
        );
    }
    println!();
    let dead_corrupt = r.corrupt_records.len() - r.live_corrupt_records();
    let rows = [
        ("segments", r.segments.len().to_string()),
        ("records checked", r.records_checked.to_string()),
        ("bytes checked", human(r.bytes_checked)),
        ("objects checked", r.objects_checked.to_string()),
        ("blobs checked", r.blobs_checked.to_string()),
        ("body bytes hashed", human(r.blob_bytes_hashed)),
        (
            "corrupt records",
            format!(
                "{} ({} live, {dead_corrupt} in dead space)",
                r.corrupt_records.len(),
                r.live_corrupt_records()
            ),
        ),
        (
            "orphan records",
            format!(
                "{} extents ({}), {} blob records ({}): reclaimable dead space",
                r.orphan_extent_records,
                human(r.orphan_extent_bytes),
                r.orphan_blob_records,
                human(r.orphan_blob_bytes)
            ),
        ),
        (
            "dangling",
            format!(
                "{} objects, {} blobs",
                r.dangling_objects(),
                r.dangling_blobs()
            ),
        ),
        ("reference mismatches", r.ref_mismatches.len().to_string()),
    ];
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<w$}  {v}");
    }
    println!();
    if r.is_clean() {
        println!("cache is sound");
    } else if r.repair {
        println!(
            "repaired: removed {} objects, dropped {} blobs, fixed {} references; damaged \
             records stay as dead space (run verify again to confirm)",
            r.removed_objects, r.dropped_blobs, r.fixed_refs
        );
    } else {
        println!(
            "cache has damage: run `cache-inspect verify --repair` to remove what cannot be served"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary() -> Vec<u8> {
        KeyParts {
            distribution: "d1".into(),
            path: "/a b".into(),
            query: Some("x=1".into()),
            headers: vec![
                ("accept".into(), Some("text/html".into())),
                ("origin".into(), None),
            ],
            cookies: Some("s=1".into()),
        }
        .to_key()
    }

    #[test]
    fn renders_primary_variant_and_parts() {
        let p = primary();
        assert_eq!(
            view_key(&p).render(),
            "d1 /a b?x=1 [accept:text/html origin] [cookies: s=1]"
        );
        let mut v = p.clone();
        v.push(0);
        v.extend_from_slice(b"accept-language\x01en\x03origin\x01\x02");
        let kv = view_key(&v);
        assert_eq!(
            kv.extra,
            KeyExtra::Variant(vec![
                ("accept-language".into(), Some("en".into())),
                ("origin".into(), None)
            ])
        );
        assert!(kv
            .render()
            .ends_with(" variant{accept-language=en, origin absent}"));
        let mut idx = p.clone();
        idx.extend_from_slice(&[0, 5]);
        assert_eq!(view_key(&idx).extra, KeyExtra::PartsIndex);
        let mut part = idx.clone();
        part.extend_from_slice(b"0-99");
        assert_eq!(view_key(&part).extra, KeyExtra::Part("0-99".into()));
        assert!(view_key(&part).render().ends_with(" part 0-99"));
        // Not a key cache_key builds: shown escaped.
        assert_eq!(view_key(b"raw\x01key").render(), "raw\\x01key");
    }

    #[test]
    fn hex_round_trips() {
        let p = primary();
        assert_eq!(unhex(&hex(&p)).unwrap(), p);
        assert!(unhex("abc").is_err());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn durations_are_signed() {
        let t = UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(signed_secs(t, t + Duration::from_secs(5)), 5);
        assert_eq!(signed_secs(t + Duration::from_secs(5), t), -5);
        assert_eq!(dur(-5), "stale 5s");
        assert_eq!(dur(65), "1m 5s");
    }
}
