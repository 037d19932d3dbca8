//! A behaviour's two request policies, from the raw tables: the cache key policy (what
//! identifies a stored response, and so is forwarded) and the origin request policy (what
//! is forwarded besides it, never keyed). CloudFront's managed policy names expand to what
//! [`MANAGED_CACHE_POLICIES`] and [`MANAGED_ORIGIN_REQUEST_POLICIES`] say; the conflicts
//! between the two policies (a value the key includes can never be kept from the origin)
//! and between a managed name and the fields it sets are reported at the text that
//! causes them.

use super::build::{join, line_note};
use super::check;
use super::model::*;
use super::problem::{At, Pos, Problems};
use super::raw::*;

/// TTLs a managed cache policy sets on its behaviour, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PolicyTtls {
    pub min: u64,
    pub default: u64,
    pub max: u64,
}

/// A CloudFront managed cache policy: what its name expands to.
#[derive(Debug, Clone, Copy)]
pub struct ManagedCachePolicy {
    pub name: &'static str,
    /// min_ttl, default_ttl, max_ttl in seconds.
    pub ttls: [u64; 3],
    /// Headers in the key. CloudFront's "compression support" is `accept-encoding` here
    /// (normalised to br, gzip or identity).
    pub headers: &'static [&'static str],
    /// Every cookie in the key (else none).
    pub cookies_all: bool,
    /// Every query string parameter in the key (else none).
    pub query_all: bool,
}

const ORIGIN_CACHE_CONTROL_HEADERS: &[&str] = &[
    "accept-encoding",
    "host",
    "origin",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// CloudFront's managed cache policies.
pub const MANAGED_CACHE_POLICIES: [ManagedCachePolicy; 5] = [
    ManagedCachePolicy {
        name: "CachingOptimized",
        ttls: [1, 86400, 31536000],
        headers: &["accept-encoding"],
        cookies_all: false,
        query_all: false,
    },
    ManagedCachePolicy {
        name: "CachingOptimizedForUncompressedObjects",
        ttls: [1, 86400, 31536000],
        headers: &[],
        cookies_all: false,
        query_all: false,
    },
    // default_ttl 0 makes the behaviour strict RFC 9111; max_ttl 0 keeps nothing fresh.
    ManagedCachePolicy {
        name: "CachingDisabled",
        ttls: [0, 0, 0],
        headers: &[],
        cookies_all: false,
        query_all: false,
    },
    ManagedCachePolicy {
        name: "UseOriginCacheControlHeaders",
        ttls: [0, 0, 31536000],
        headers: ORIGIN_CACHE_CONTROL_HEADERS,
        cookies_all: true,
        query_all: false,
    },
    ManagedCachePolicy {
        name: "UseOriginCacheControlHeaders-QueryStrings",
        ttls: [0, 0, 31536000],
        headers: ORIGIN_CACHE_CONTROL_HEADERS,
        cookies_all: true,
        query_all: true,
    },
];

/// Headers a managed origin request policy forwards.
#[derive(Debug, Clone, Copy)]
pub enum ManagedHeaders {
    /// "all_viewer".
    AllViewer,
    /// "all": every header but Host.
    All,
    Allow(&'static [&'static str]),
}

/// A CloudFront managed origin request policy that maps onto Cairn's forms.
#[derive(Debug, Clone, Copy)]
pub struct ManagedOriginRequestPolicy {
    pub name: &'static str,
    pub headers: ManagedHeaders,
    /// Every cookie (else none).
    pub cookies_all: bool,
    /// Every query string parameter (else none).
    pub query_all: bool,
}

/// CloudFront's managed origin request policies.
pub const MANAGED_ORIGIN_REQUEST_POLICIES: [ManagedOriginRequestPolicy; 5] = [
    ManagedOriginRequestPolicy {
        name: "AllViewer",
        headers: ManagedHeaders::AllViewer,
        cookies_all: true,
        query_all: true,
    },
    ManagedOriginRequestPolicy {
        name: "AllViewerExceptHostHeader",
        headers: ManagedHeaders::All,
        cookies_all: true,
        query_all: true,
    },
    ManagedOriginRequestPolicy {
        name: "CORS-CustomOrigin",
        headers: ManagedHeaders::Allow(&["origin"]),
        cookies_all: false,
        query_all: false,
    },
    ManagedOriginRequestPolicy {
        name: "CORS-S3Origin",
        headers: ManagedHeaders::Allow(&[
            "origin",
            "access-control-request-headers",
            "access-control-request-method",
        ]),
        cookies_all: false,
        query_all: false,
    },
    ManagedOriginRequestPolicy {
        name: "UserAgentRefererHeaders",
        headers: ManagedHeaders::Allow(&["user-agent", "referer"]),
        cookies_all: false,
        query_all: true,
    },
];

fn all_or_none(all: bool) -> ListPolicy {
    if all {
        ListPolicy::All
    } else {
        ListPolicy::None
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The key policy and TTLs of a managed cache policy.
pub(crate) fn managed_cache_policy(name: &str) -> Option<(CacheKeyPolicy, PolicyTtls)> {
    let m = MANAGED_CACHE_POLICIES.iter().find(|m| m.name == name)?;
    let key = CacheKeyPolicy {
        query_strings: all_or_none(m.query_all),
        headers: names(m.headers),
        cookies: all_or_none(m.cookies_all),
    };
    let [min, default, max] = m.ttls;
    Some((key, PolicyTtls { min, default, max }))
}

/// A managed origin request policy.
pub(crate) fn managed_origin_request(name: &str) -> Option<OriginRequestPolicy> {
    let m = MANAGED_ORIGIN_REQUEST_POLICIES
        .iter()
        .find(|m| m.name == name)?;
    let headers = match m.headers {
        ManagedHeaders::AllViewer => HeaderPolicy::AllViewer,
        ManagedHeaders::All => HeaderPolicy::All,
        ManagedHeaders::Allow(list) => HeaderPolicy::AllowList(names(list)),
    };
    Some(OriginRequestPolicy {
        headers,
        cookies: all_or_none(m.cookies_all),
        query_strings: all_or_none(m.query_all),
    })
}

/// "unknown managed ... policy X; the names are ...".
fn unknown_managed(p: &mut Problems, m: &At<String>, path: &str, what: &str, known: Vec<&str>) {
    p.add(
        &m.pos,
        path,
        format!(
            "{:?} is not a managed {what} policy; the managed names are {}",
            m.value,
            known.join(", ")
        ),
    );
}

/// Reports each field given beside `managed` in the same table.
fn beside_managed(p: &mut Problems, m: &At<String>, path: &str, given: &[(&str, Option<&Pos>)]) {
    for (key, pos) in given {
        if let Some(pos) = pos {
            p.add(
                pos,
                &join(path, key),
                format!(
                    "`managed = {:?}`{} already sets `{key}`: give either the managed name or \
                     the fields",
                    m.value,
                    line_note(&m.pos)
                ),
            );
        }
    }
}

/// The cache key policy, and the TTLs (with the position of its name) when it is a
/// managed one.
pub(crate) fn cache_key(
    k: &RawCacheKey,
    path: &str,
    p: &mut Problems,
) -> (CacheKeyPolicy, Option<(PolicyTtls, Pos)>) {
    if let Some(m) = &k.managed {
        beside_managed(
            p,
            m,
            path,
            &[
                ("query_strings", k.query_strings.as_ref().map(|q| &q.pos)),
                ("headers", k.headers_pos.as_ref()),
                ("cookies", k.cookies.as_ref().map(|c| &c.pos)),
            ],
        );
        return match managed_cache_policy(&m.value) {
            Some((key, ttls)) => (key, Some((ttls, m.pos.clone()))),
            None => {
                let known = MANAGED_CACHE_POLICIES.iter().map(|m| m.name).collect();
                unknown_managed(p, m, &join(path, "managed"), "cache", known);
                (CacheKeyPolicy::default(), None)
            }
        };
    }
    let mut headers: Vec<String> = Vec::new();
    for (i, h) in k.headers.iter().enumerate() {
        let hp = format!("{path}.headers[{i}]");
        match check::key_header(&h.value) {
            Ok(lower) if headers.contains(&lower) => {
                p.add(&h.pos, &hp, format!("{:?} is listed twice", h.value));
            }
            Ok(lower) => headers.push(lower),
            Err(m) => p.add(&h.pos, &hp, m),
        }
    }
    let key = CacheKeyPolicy {
        query_strings: list_policy(
            &k.query_strings,
            &join(path, "query_strings"),
            check::query_name,
            p,
        ),
        headers,
        cookies: list_policy(&k.cookies, &join(path, "cookies"), check::cookie_name, p),
    };
    (key, None)
}

/// The origin request policy.
pub(crate) fn origin_request(
    r: &RawOriginRequest,
    path: &str,
    p: &mut Problems,
) -> OriginRequestPolicy {
    if let Some(m) = &r.managed {
        beside_managed(
            p,
            m,
            path,
            &[
                ("headers", r.headers.as_ref().map(|h| &h.pos)),
                ("cookies", r.cookies.as_ref().map(|c| &c.pos)),
                ("query_strings", r.query_strings.as_ref().map(|q| &q.pos)),
            ],
        );
        return managed_origin_request(&m.value).unwrap_or_else(|| {
            let known = MANAGED_ORIGIN_REQUEST_POLICIES
                .iter()
                .map(|m| m.name)
                .collect();
            unknown_managed(p, m, &join(path, "managed"), "origin request", known);
            OriginRequestPolicy::default()
        });
    }
    OriginRequestPolicy {
        headers: header_policy(&r.headers, &join(path, "headers"), p),
        cookies: list_policy(&r.cookies, &join(path, "cookies"), check::cookie_name, p),
        query_strings: list_policy(
            &r.query_strings,
            &join(path, "query_strings"),
            check::query_name,
            p,
        ),
    }
}

fn header_policy(f: &Field<RawList>, path: &str, p: &mut Problems) -> HeaderPolicy {
    let Some(l) = f else {
        return HeaderPolicy::None;
    };
    let (list, key) = match &l.value {
        RawList::None => return HeaderPolicy::None,
        RawList::All => return HeaderPolicy::All,
        RawList::AllViewer => return HeaderPolicy::AllViewer,
        RawList::Allow(list) => (list, "allow"),
        RawList::AllExcept(list) => (list, "all_except"),
    };
    let names = checked_names(list, &join(path, key), check::forwarded_header, p);
    if key == "allow" {
        HeaderPolicy::AllowList(names)
    } else {
        HeaderPolicy::AllExcept(names)
    }
}

/// A list's names, each checked by `name_ok` (which may normalise it), none twice, the
/// list not empty.
fn checked_names(
    list: &At<Vec<At<String>>>,
    path: &str,
    name_ok: impl Fn(&str) -> Result<String, String>,
    p: &mut Problems,
) -> Vec<String> {
    if list.value.is_empty() {
        p.add(
            &list.pos,
            path,
            "the list must not be empty (write \"none\" or \"all\" instead)",
        );
    }
    let mut names: Vec<String> = Vec::new();
    for (i, n) in list.value.iter().enumerate() {
        let np = format!("{path}[{i}]");
        match name_ok(&n.value) {
            Err(m) => p.add(&n.pos, &np, m),
            Ok(name) if names.contains(&name) => {
                p.add(&n.pos, &np, format!("{:?} is listed twice", n.value))
            }
            Ok(name) => names.push(name),
        }
    }
    names
}

/// A query string or cookie list policy.
pub(crate) fn list_policy(
    f: &Field<RawList>,
    path: &str,
    name_ok: fn(&str) -> Result<(), String>,
    p: &mut Problems,
) -> ListPolicy {
    let Some(l) = f else {
        return ListPolicy::None;
    };
    let (list, key) = match &l.value {
        RawList::None => return ListPolicy::None,
        RawList::All => return ListPolicy::All,
        RawList::AllViewer => {
            p.add(
                &l.pos,
                path,
                "\"all_viewer\" applies to origin request headers only; write \"all\"",
            );
            return ListPolicy::All;
        }
        RawList::Allow(list) => (list, "allow"),
        RawList::AllExcept(list) => (list, "all_except"),
    };
    let names = checked_names(
        list,
        &join(path, key),
        |n| name_ok(n).map(|()| n.to_string()),
        p,
    );
    if key == "allow" {
        ListPolicy::AllowList(names)
    } else {
        ListPolicy::AllExcept(names)
    }
}

/// A value the cache key includes is always forwarded: an origin request `all_except` that
/// names one is a contradiction. `bp` is the behaviour's key path.
pub(crate) fn conflicts(
    k: &RawCacheKey,
    key: &CacheKeyPolicy,
    r: &RawOriginRequest,
    bp: &str,
    p: &mut Problems,
) {
    let keyed_at = |field: &str, pos: Option<&Pos>| match (&k.managed, pos) {
        (Some(m), _) => format!("cache_key.managed = {:?}{}", m.value, line_note(&m.pos)),
        (None, Some(pos)) => format!("cache_key.{field}{}", line_note(pos)),
        (None, None) => format!("cache_key.{field}"),
    };
    let mut report =
        |list: &Field<RawList>, field: &str, keyed: &dyn Fn(&str) -> Option<String>| {
            let Some(At {
                value: RawList::AllExcept(names),
                ..
            }) = list
            else {
                return;
            };
            for (i, n) in names.value.iter().enumerate() {
                if let Some(at) = keyed(&n.value) {
                    p.add(
                        &n.pos,
                        &format!("{bp}.origin_request.{field}.all_except[{i}]"),
                        format!(
                            "{:?} is in the cache key ({at}), and what the cache key includes is \
                         always forwarded: it cannot be excluded from the origin request",
                            n.value
                        ),
                    );
                }
            }
        };
    report(&r.headers, "headers", &|name| {
        let lower = name.to_ascii_lowercase();
        if !key.headers.contains(&lower) {
            return None;
        }
        let written = k
            .headers
            .iter()
            .find(|h| h.value.eq_ignore_ascii_case(name));
        Some(keyed_at("headers", written.map(|h| &h.pos)))
    });
    report(&r.query_strings, "query_strings", &|name| {
        let pos = k.query_strings.as_ref().map(|q| &q.pos);
        key.query_strings
            .includes(name)
            .then(|| keyed_at("query_strings", pos))
    });
    report(&r.cookies, "cookies", &|name| {
        let pos = k.cookies.as_ref().map(|c| &c.pos);
        key.cookies.includes(name).then(|| keyed_at("cookies", pos))
    });
}
