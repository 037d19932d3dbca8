//! Quick mode, `cairn serve --origin URL [...]`: [`quick`] turns the flags into the same
//! raw configuration a file produces — one catch-all distribution "default" with one
//! origin "origin" — and validates it with the same rules, so problems name the flag.
//!
//! Quick mode is a standard reverse-proxy cache, not CloudFront's defaults: every query
//! string is keyed and forwarded, every method CloudFront can pass goes through (GET and
//! HEAD are cached), every viewer header (but hop-by-hop ones) and every
//! cookie is forwarded unkeyed (so a response with Set-Cookie is not stored, but in strict
//! mode, which follows RFC 9111 §3 there), and the
//! origin's own Host is sent unless `--forward-host` keys and forwards the viewer's.
//! `--query-strings` and `--forward-headers` narrow it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::api::ApiDistribution;
use super::build::build;
use super::model::Config;
use super::problem::{At, ConfigErrors, Pos, Problems};
use super::raw::*;
use super::size::parse_size;

/// The flags of quick mode; everything but the origin is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuickOptions {
    /// `--origin`: `http[s]://host[:port][/path]`; a path becomes the origin path prefix.
    pub origin: String,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `--admin-token`.
    pub admin_token: Option<String>,
    /// `--cache-dir`, relative to the working directory.
    pub cache_dir: Option<PathBuf>,
    /// `--capacity`, a size such as "10GiB".
    pub capacity: Option<String>,
    /// `--default-ttl`, seconds.
    pub default_ttl: Option<u64>,
    /// `--min-ttl`, seconds.
    pub min_ttl: Option<u64>,
    /// `--max-ttl`, seconds.
    pub max_ttl: Option<u64>,
    /// `--query-strings all|none|allow=a,b`: keyed and forwarded. Default all.
    pub query_strings: Option<String>,
    /// `--forward-headers all|none|allow=a,b`: forwarded, not keyed. Default all.
    pub forward_headers: Option<String>,
    /// `--forward-host`: the viewer's Host is keyed and forwarded.
    pub forward_host: bool,
    /// `--state-dir`, relative to the working directory.
    pub state_dir: Option<PathBuf>,
}

/// `all`, `none` or `allow=a,b` from flag `name` (default `all`).
fn list_flag(
    value: Option<&str>,
    name: &str,
    problems: &mut Problems,
    path: &str,
) -> Field<RawList> {
    let pos = Pos::flag(name);
    let list = match value.unwrap_or("all") {
        "all" => RawList::All,
        "none" => RawList::None,
        other => match other.strip_prefix("allow=") {
            Some(names) => {
                let names = names
                    .split(',')
                    .map(|n| At::new(n.trim().to_string(), pos.clone()))
                    .filter(|n| !n.value.is_empty())
                    .collect();
                RawList::Allow(At::new(names, pos.clone()))
            }
            None => {
                problems.add(
                    &pos,
                    path,
                    format!("{other:?} is not one of all, none or allow=NAME,NAME"),
                );
                return None;
            }
        },
    };
    Some(At::new(list, pos))
}

/// Builds the configuration of quick mode from its flags.
pub fn quick(opts: &QuickOptions) -> Result<Config, ConfigErrors> {
    quick_with(opts, &[])
}

/// [`quick`] together with the distributions the admin API holds.
pub fn quick_with(opts: &QuickOptions, api: &[ApiDistribution]) -> Result<Config, ConfigErrors> {
    let cwd = std::env::current_dir().unwrap_or_default();
    quick_in_with(opts, &cwd, api)
}

fn flag<T>(value: Option<T>, name: &str) -> Field<T> {
    value.map(|v| At::new(v, Pos::flag(name)))
}

#[cfg(test)]
fn quick_in(opts: &QuickOptions, base: &Path) -> Result<Config, ConfigErrors> {
    quick_in_with(opts, base, &[])
}

fn quick_in_with(
    opts: &QuickOptions,
    base: &Path,
    api: &[ApiDistribution],
) -> Result<Config, ConfigErrors> {
    let mut problems = Problems::default();
    let origin_flag = Pos::flag("--origin");

    let capacity = opts.capacity.as_deref().and_then(|c| match parse_size(c) {
        Ok(v) => Some(At::new(v, Pos::flag("--capacity"))),
        Err(e) => {
            problems.add(&Pos::flag("--capacity"), "cache.capacity", e);
            None
        }
    });
    let cache_dir = match &opts.cache_dir {
        Some(d) if d.as_os_str().is_empty() => {
            problems.add(&Pos::flag("--cache-dir"), "cache.dir", "must not be empty");
            None
        }
        other => flag(other.clone(), "--cache-dir"),
    };

    let dp = "distribution[0]".to_string();
    let bp = format!("{dp}.default_behavior");
    let query_strings = list_flag(
        opts.query_strings.as_deref(),
        "--query-strings",
        &mut problems,
        &format!("{bp}.cache_key.query_strings"),
    );
    let forward_headers = list_flag(
        opts.forward_headers.as_deref(),
        "--forward-headers",
        &mut problems,
        &format!("{bp}.origin_request.headers"),
    );
    let host_flag = Pos::flag("--forward-host");
    let cache_key = RawCacheKey {
        query_strings,
        headers: if opts.forward_host {
            vec![At::new("host".to_string(), host_flag.clone())]
        } else {
            Vec::new()
        },
        headers_pos: opts.forward_host.then_some(host_flag),
        ..RawCacheKey::default()
    };
    let origin_request = RawOriginRequest {
        headers: forward_headers,
        cookies: Some(At::new(RawList::All, origin_flag.clone())),
        ..RawOriginRequest::default()
    };
    // Every method CloudFront can pass: GET and HEAD are cached, the others go through.
    let methods = ["GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"]
        .map(|m| At::new(m.to_string(), origin_flag.clone()))
        .to_vec();
    let mut raw = RawConfig {
        pos: origin_flag.clone(),
        edge: RawEdge {
            listen: flag(opts.listen, "--listen"),
            admin_listen: flag(opts.admin_listen, "--admin-listen"),
            admin_token: flag(opts.admin_token.clone(), "--admin-token"),
            ..RawEdge::default()
        },
        cache: RawCache {
            dir: cache_dir,
            capacity,
            ..RawCache::default()
        },
        control: RawControl {
            state_dir: flag(opts.state_dir.clone(), "--state-dir"),
        },
        distributions: vec![RawDistribution {
            id: Some(At::new("default".to_string(), origin_flag.clone())),
            catch_all: Some(At::new(true, origin_flag.clone())),
            enabled: Some(At::new(true, origin_flag.clone())),
            origins: vec![RawOrigin {
                path: format!("{dp}.origin[0]"),
                pos: origin_flag.clone(),
                id: Some(At::new("origin".to_string(), origin_flag.clone())),
                url: Some(At::new(opts.origin.clone(), origin_flag.clone())),
                url_path_is_prefix: true,
                ..RawOrigin::default()
            }],
            default_behavior: RawBehavior {
                path: bp,
                pos: origin_flag.clone(),
                default_ttl: flag(opts.default_ttl, "--default-ttl"),
                min_ttl: flag(opts.min_ttl, "--min-ttl"),
                max_ttl: flag(opts.max_ttl, "--max-ttl"),
                cache_key,
                origin_request,
                allowed_methods: Some(At::new(methods, origin_flag.clone())),
                ..RawBehavior::default()
            },
            path: dp,
            pos: origin_flag,
            ..RawDistribution::default()
        }],
        distributions_malformed: false,
    };
    super::api::add_raw(&mut raw, api, &mut problems);
    let config = build(raw, base, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems.into_errors())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::*;

    fn opts(origin: &str) -> QuickOptions {
        QuickOptions {
            origin: origin.to_string(),
            ..QuickOptions::default()
        }
    }

    #[test]
    fn builds_one_catch_all_distribution() {
        let c = quick_in(&opts("http://127.0.0.1:8000"), Path::new("/srv")).unwrap();
        assert_eq!(c.distributions.len(), 1);
        let d = &c.distributions[0];
        assert_eq!(d.id, "default");
        assert!(d.catch_all && d.enabled);
        assert!(d.aliases.is_empty());
        assert_eq!(d.origins.len(), 1);
        let o = &d.origins[0];
        assert_eq!(o.id, "origin");
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port, o.path.as_str()),
            (Scheme::Http, "127.0.0.1", 8000, "")
        );
        assert_eq!(d.default_behavior.target, "origin");
        assert_eq!(d.default_behavior.default_ttl, 86400);
        // A reverse-proxy cache passes every method (GET and HEAD are cached).
        assert_eq!(d.default_behavior.allowed_methods, AllowedMethods::All);
        assert_eq!(d.default_behavior.error_ttl, 10);
        assert!(d.default_behavior.error_ttls.is_empty());
        assert_eq!(d.default_behavior.range_fill_max, 64 << 20);
        assert!(!d.default_behavior.strict());
        assert_eq!(c.cache.dir, Path::new("/srv/cairn-cache"));
        assert_eq!(c.cache.capacity, 10 << 30);
        assert_eq!(c.edge.listen, "127.0.0.1:8080".parse().unwrap());
        assert!(d.behaviors.is_empty());
        assert!(!d.logging.enabled);
    }

    #[test]
    fn url_path_becomes_the_origin_path() {
        let c = quick_in(&opts("https://h.example:1/static/"), Path::new("/")).unwrap();
        let o = &c.distributions[0].origins[0];
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port, o.path.as_str()),
            (Scheme::Https, "h.example", 1, "/static")
        );
        let c = quick_in(&opts("http://h:1/"), Path::new("/")).unwrap();
        assert_eq!(c.distributions[0].origins[0].path, "");
        let e = quick_in(&opts("http://h:1/a/../b"), Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("'..'"), "{e}");
    }

    #[test]
    fn flags_are_used_and_checked() {
        let o = QuickOptions {
            origin: "http://[::1]:9000".to_string(),
            listen: Some("0.0.0.0:80".parse().unwrap()),
            admin_listen: Some("127.0.0.1:81".parse().unwrap()),
            admin_token: Some("0123456789abcdef".to_string()),
            cache_dir: Some(PathBuf::from("c")),
            capacity: Some("64MiB".to_string()),
            default_ttl: Some(60),
            min_ttl: Some(10),
            max_ttl: Some(600),
            ..QuickOptions::default()
        };
        let c = quick_in(&o, Path::new("/w")).unwrap();
        assert_eq!(c.cache.dir, Path::new("/w/c"));
        assert_eq!(c.cache.capacity, 64 << 20);
        assert_eq!(c.cache.segment_size, 16 << 20);
        assert_eq!(c.edge.listen.port(), 80);
        assert_eq!(c.edge.admin_token.as_deref(), Some("0123456789abcdef"));
        let b = &c.distributions[0].default_behavior;
        assert_eq!((b.default_ttl, b.min_ttl, b.max_ttl), (60, 10, 600));
        assert_eq!(c.distributions[0].origins[0].host, "::1");

        let bad = QuickOptions {
            capacity: Some("10XB".to_string()),
            min_ttl: Some(700),
            max_ttl: Some(600),
            listen: Some("127.0.0.1:81".parse().unwrap()),
            ..o
        };
        let e = quick_in(&bad, Path::new("/w")).unwrap_err();
        let sources: Vec<&str> = e.problems.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(
            sources,
            ["--admin-listen", "--capacity", "--min-ttl"],
            "{e}"
        );
        assert!(e.problems.iter().all(|p| p.line == 0));
    }

    #[test]
    fn keys_and_forwards_like_a_reverse_proxy_cache() {
        let c = quick_in(&opts("http://127.0.0.1:8000"), Path::new("/")).unwrap();
        let b = &c.distributions[0].default_behavior;
        assert_eq!(b.cache_key.query_strings, ListPolicy::All);
        assert!(b.cache_key.headers.is_empty());
        assert_eq!(b.cache_key.cookies, ListPolicy::None);
        assert_eq!(b.origin_request.headers, HeaderPolicy::All);
        assert_eq!(b.origin_request.cookies, ListPolicy::All);
        assert!(b.set_cookie_prevents_storing());
        let narrow = QuickOptions {
            query_strings: Some("allow=page, q".to_string()),
            forward_headers: Some("allow=Authorization,x-trace".to_string()),
            forward_host: true,
            ..opts("http://127.0.0.1:8000")
        };
        let c = quick_in(&narrow, Path::new("/")).unwrap();
        let b = &c.distributions[0].default_behavior;
        assert_eq!(
            b.cache_key.query_strings,
            ListPolicy::AllowList(vec!["page".into(), "q".into()])
        );
        assert_eq!(b.cache_key.headers, ["host"]);
        assert_eq!(
            b.origin_request.headers,
            HeaderPolicy::AllowList(vec!["authorization".into(), "x-trace".into()])
        );
        let none = QuickOptions {
            query_strings: Some("none".to_string()),
            forward_headers: Some("none".to_string()),
            ..opts("http://127.0.0.1:8000")
        };
        let c = quick_in(&none, Path::new("/")).unwrap();
        let b = &c.distributions[0].default_behavior;
        assert_eq!(b.cache_key.query_strings, ListPolicy::None);
        assert_eq!(b.origin_request.headers, HeaderPolicy::None);
        let bad = QuickOptions {
            query_strings: Some("some".to_string()),
            forward_headers: Some("allow=connection".to_string()),
            ..opts("http://127.0.0.1:8000")
        };
        let e = quick_in(&bad, Path::new("/")).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("--query-strings: distribution[0].default_behavior.cache_key.query_strings: \"some\" is not one of all, none or allow=NAME,NAME"),
            "{shown}"
        );
        assert!(
            shown.contains("--forward-headers: distribution[0].default_behavior.origin_request.headers.allow[0]: \"connection\" cannot be listed here"),
            "{shown}"
        );
    }

    #[test]
    fn rejects_other_schemes_clearly() {
        let e = quick(&opts("ftp://x")).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
        let p = &e.problems[0];
        assert_eq!(p.source, "--origin");
        assert_eq!(p.path, "distribution[0].origin[0].url");
        assert!(
            p.message.contains("unsupported scheme \"ftp\""),
            "{}",
            p.message
        );
        assert!(p.message.contains("http:// or https://"), "{}", p.message);
        assert_eq!(
            e.to_string(),
            format!("--origin: distribution[0].origin[0].url: {}", p.message)
        );
        for bad in ["", "localhost:8000", "http://h?x=1", "http://u@h"] {
            let e = quick(&opts(bad)).unwrap_err();
            assert!(
                e.problems.iter().all(|p| p.source == "--origin"),
                "{bad}: {e}"
            );
        }
    }
}
