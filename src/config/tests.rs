//! Tests of loading whole configurations: the example file, defaults, every rule with the
//! exact location of its problem, and the checks across distributions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const EXAMPLE: &str = include_str!("../../cairn.example.toml");
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    load_str(text, "t.toml", Path::new("/etc/cairn"))
}

fn problems(text: &str) -> Vec<Problem> {
    match load(text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(e) => e.problems,
    }
}

/// The only problem of `text`, as (line, column, path); its message must contain `says`.
fn only(text: &str, says: &str) -> (usize, usize, String) {
    let ps = problems(text);
    assert_eq!(
        ps.len(),
        1,
        "expected one problem, got:\n{}",
        ConfigErrors {
            problems: ps.clone()
        }
    );
    let p = &ps[0];
    assert!(p.message.contains(says), "{p}\n does not say {says:?}");
    assert_eq!(p.source, "t.toml");
    (p.line, p.column, p.path.clone())
}

const MINIMAL: &str =
    "[[distribution]]\n[[distribution.origin]]\nurl = \"http://127.0.0.1:8000\"\n";

/// A valid distribution with id `site` to append rules to; `extra` goes into its table.
fn site(extra: &str) -> String {
    format!(
        "[[distribution]]\nid = \"site\"\n{extra}\n[[distribution.origin]]\nurl = \"http://o:1\"\n"
    )
}

#[test]
fn the_example_loads() {
    let c = load(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.edge.name, "cairn");
    assert_eq!(c.cache.dir, Path::new("/etc/cairn/cairn-cache"));
    assert_eq!(c.cache.max_object_size, Some(GIB));
    assert_eq!(c.cache.min_free_disk, 64 * MIB);
    assert_eq!(c.distributions.len(), 2);
    let d = &c.distributions[0];
    assert_eq!(d.id, "site");
    assert_eq!(d.aliases, ["www.example.com", "*.img.example.com"]);
    assert_eq!(d.default_root_object.as_deref(), Some("index.html"));
    assert_eq!(d.logging.file, Path::new("/etc/cairn/logs/site.log"));
    assert!(d.logging.enabled);
    let web = d.origin("web").unwrap();
    assert_eq!(web.path, "/static");
    assert_eq!(
        web.headers,
        [("X-Origin-Token".to_string(), "secret".to_string())]
    );
    let backup = d.origin("backup").unwrap();
    assert_eq!((backup.scheme, backup.port), (Scheme::Https, 8443));
    assert_eq!(
        d.group("failover").unwrap().failover_statuses,
        [500, 502, 503, 504]
    );
    assert_eq!(d.default_behavior.target, "failover");
    assert_eq!(d.default_behavior.cache_key.headers, ["accept-encoding"]);
    assert_eq!(d.default_behavior.error_ttl, 10);
    assert_eq!(d.default_behavior.error_ttls, [(404, 60), (503, 5)]);
    assert_eq!(d.default_behavior.range_fill_max, 64 * MIB);
    assert!(!d.default_behavior.strict());
    assert_eq!(d.behaviors.len(), 2);
    assert_eq!(d.behaviors[0].path_pattern.as_deref(), Some("/images/*"));
    assert_eq!(
        d.behaviors[0].allowed_methods,
        AllowedMethods::GetHeadOptions
    );
    assert_eq!(
        d.behaviors[0].cache_key.query_strings,
        ListPolicy::AllowList(vec!["w".into(), "h".into()])
    );
    assert_eq!(
        (d.behaviors[0].error_ttl, d.behaviors[0].range_fill_max),
        (30, GIB)
    );
    assert!(d.behaviors[0].error_ttls.is_empty());
    assert!(d.behaviors[1].strict());
    assert_eq!(d.behaviors[1].allowed_methods, AllowedMethods::All);
    assert_eq!(d.behaviors[1].cache_key.query_strings, ListPolicy::All);
    assert_eq!(
        d.behaviors[1].cache_key.cookies,
        ListPolicy::AllExcept(vec!["tracking".into()])
    );
    let gen = &c.distributions[1];
    assert!(gen.id.starts_with('d') && gen.id.len() == 14, "{}", gen.id);
    assert_eq!(gen.origins[0].id, "origin");
}

#[test]
fn the_example_ca_file_key_works_when_the_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let text = EXAMPLE.replace("# ca_file = \"ca.pem\"", "ca_file = \"ca.pem\"");
    assert_ne!(text, EXAMPLE);
    let line = text.lines().position(|l| l.starts_with("ca_file")).unwrap() + 1;

    let e = load_str(&text, "ex.toml", dir.path()).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!((e.problems[0].line, e.problems[0].column), (line, 11));
    assert!(e.problems[0].message.contains("cannot read"), "{e}");

    std::fs::write(dir.path().join("ca.pem"), "junk").unwrap();
    let e = load_str(&text, "ex.toml", dir.path()).unwrap_err();
    assert!(e.problems[0].message.contains("no PEM certificate"), "{e}");

    std::fs::write(
        dir.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let c = load_str(&text, "ex.toml", dir.path()).unwrap();
    assert_eq!(
        c.distributions[0]
            .origin("backup")
            .unwrap()
            .ca_file
            .as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
}

#[test]
fn defaults_are_as_documented() {
    let c = load(MINIMAL).unwrap();
    let e = &c.edge;
    assert_eq!(e.name, "cairn");
    assert_eq!(e.domain, "cairn.localhost");
    assert_eq!(e.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(e.admin_listen, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(e.drain_timeout, Duration::from_secs(10));
    assert_eq!(e.header_read_timeout, Duration::from_secs(10));
    assert_eq!(e.max_connections, 10_000);
    assert_eq!(e.max_requests_per_connection, 1000);
    assert_eq!(e.max_request_body, 10 * MIB);
    let k = &c.cache;
    assert_eq!(k.dir, Path::new("/etc/cairn/cairn-cache"));
    assert_eq!(k.capacity, 10 * GIB);
    assert_eq!(k.segment_size, 256 * MIB);
    assert_eq!(k.stale_grace, Duration::from_secs(3600));
    assert_eq!(k.max_object_size, None);
    assert_eq!(k.min_free_disk, 64 * MIB);
    let d = &c.distributions[0];
    assert!(d.id.starts_with('d') && d.id.len() == 14);
    assert!(d.aliases.is_empty());
    assert!(d.enabled && !d.catch_all);
    assert_eq!(d.comment, "");
    assert_eq!(d.default_root_object, None);
    assert!(!d.logging.enabled);
    assert_eq!(
        d.logging.file,
        PathBuf::from(format!("/etc/cairn/logs/{}.log", d.id))
    );
    assert!(d.origin_groups.is_empty() && d.behaviors.is_empty());
    let o = &d.origins[0];
    assert_eq!(o.id, "origin");
    assert_eq!(o.base_url(), "http://127.0.0.1:8000");
    assert_eq!(o.path, "");
    assert!(o.headers.is_empty());
    assert_eq!(o.connect_timeout, Duration::from_secs(10));
    assert_eq!(o.connect_attempts, 3);
    assert_eq!(o.response_timeout, Duration::from_secs(30));
    assert_eq!(o.keepalive_timeout, Duration::from_secs(5));
    assert_eq!(o.ca_file, None);
    let b = &d.default_behavior;
    assert_eq!(b.path_pattern, None);
    assert_eq!(b.target, "origin");
    assert_eq!(
        (b.default_ttl, b.min_ttl, b.max_ttl),
        (86400, 0, 31_536_000)
    );
    assert_eq!(b.allowed_methods, AllowedMethods::GetHead);
    assert_eq!(b.cache_key, CacheKeyPolicy::default());
    assert_eq!(b.error_ttl, 10);
    assert!(b.error_ttls.is_empty());
    assert_eq!(b.range_fill_max, 64 * MIB);
    assert!(!b.strict());
    for status in CACHED_ERROR_STATUSES {
        assert_eq!(b.error_ttl_for(status), 10);
    }
}

#[test]
fn segment_size_follows_capacity() {
    let seg = |cache: &str| {
        let c = load(&format!("[cache]\n{cache}\n{MINIMAL}")).unwrap_or_else(|e| panic!("{e}"));
        (c.cache.capacity, c.cache.segment_size)
    };
    assert_eq!(seg("capacity = \"64MiB\""), (64 * MIB, 16 * MIB));
    assert_eq!(seg("capacity = \"2MiB\""), (2 * MIB, MIB));
    assert_eq!(seg("capacity = 10000000"), (10_000_000, 2 * MIB));
    assert_eq!(seg("capacity = \"100GB\""), (100_000_000_000, 256 * MIB));
    assert_eq!(
        seg("capacity = \"4MiB\"\nsegment_size = \"2MiB\""),
        (4 * MIB, 2 * MIB)
    );

    let cache = |body: &str| format!("[cache]\n{body}\n{MINIMAL}");
    assert_eq!(
        only(&cache("capacity = \"1MiB\""), "minimum of 2 MiB"),
        (2, 12, "cache.capacity".into())
    );
    assert_eq!(
        only(
            &cache("capacity = \"4MiB\"\nsegment_size = 3145728"),
            "more than half the capacity (4 MiB)"
        ),
        (3, 16, "cache.segment_size".into())
    );
    assert_eq!(
        only(&cache("segment_size = \"512KiB\""), "minimum of 1 MiB"),
        (2, 16, "cache.segment_size".into())
    );
    assert_eq!(
        only(&cache("capacity = \"10XB\""), "unknown unit \"XB\""),
        (2, 12, "cache.capacity".into())
    );
    assert_eq!(
        only(&cache("capacity = -5"), "negative"),
        (2, 12, "cache.capacity".into())
    );
    assert_eq!(
        only(&cache("capacity = 1.5"), "expected a size"),
        (2, 12, "cache.capacity".into())
    );
    assert_eq!(
        only(
            &cache("max_object_size = \"11GiB\""),
            "larger than the capacity"
        ),
        (2, 19, "cache.max_object_size".into())
    );
    assert_eq!(
        only(
            &cache("min_free_disk = \"512KiB\""),
            "below the minimum of 1 MiB"
        ),
        (2, 17, "cache.min_free_disk".into())
    );
    assert_eq!(
        only(
            &cache("min_free_disk = \"2TiB\""),
            "above the maximum of 1 TiB"
        ),
        (2, 17, "cache.min_free_disk".into())
    );
    assert_eq!(
        only(&cache("dir = \"\""), "empty"),
        (2, 7, "cache.dir".into())
    );
    let c = load(&cache("dir = \"/var/cache/cairn\"")).unwrap();
    assert_eq!(c.cache.dir, Path::new("/var/cache/cairn"));
}

#[test]
fn edge_rules_report_their_line() {
    let edge = |body: &str| format!("# comment\n[edge]\n{body}\n{MINIMAL}");
    assert_eq!(
        only(&edge("name = \"a b\""), "letters"),
        (3, 8, "edge.name".into())
    );
    assert_eq!(
        only(&edge("domain = \"-x.com\""), "'-'"),
        (3, 10, "edge.domain".into())
    );
    assert_eq!(
        only(&edge("listen = \"localhost:80\""), "not resolved"),
        (3, 10, "edge.listen".into())
    );
    assert_eq!(
        only(&edge("admin_listen = \"127.0.0.1:8080\""), "must differ"),
        (3, 16, "edge.admin_listen".into())
    );
    assert_eq!(
        only(&edge("admin_listen = \"0.0.0.0:9090\""), "admin_token"),
        (3, 16, "edge.admin_listen".into())
    );
    assert_eq!(
        only(&edge("admin_token = \"short\""), "16 to 256"),
        (3, 15, "edge.admin_token".into())
    );
    assert_eq!(
        only(&edge("admin_token = \"0123456789abcdef ghi\""), "letters"),
        (3, 15, "edge.admin_token".into())
    );
    let open = load_str(
        &edge("admin_listen = \"0.0.0.0:9090\"\nadmin_token = \"0123456789abcdef==\""),
        "t.toml",
        Path::new("/etc/cairn"),
    )
    .unwrap();
    assert_eq!(open.edge.admin_token.as_deref(), Some("0123456789abcdef=="));
    assert_eq!(
        only(&edge("drain_timeout = 3601"), "between 0 and 3600"),
        (3, 17, "edge.drain_timeout".into())
    );
    assert_eq!(
        only(&edge("header_read_timeout = 0"), "between 1 and 300"),
        (3, 23, "edge.header_read_timeout".into())
    );
    assert_eq!(
        only(&edge("max_connections = 0"), "between 1 and 10000000"),
        (3, 19, "edge.max_connections".into())
    );
    assert_eq!(
        only(
            &edge("max_requests_per_connection = 0"),
            "between 1 and 1000000000"
        ),
        (3, 31, "edge.max_requests_per_connection".into())
    );
    assert_eq!(
        only(
            &edge("max_request_body = \"2TiB\""),
            "above the maximum of 1 TiB"
        ),
        (3, 20, "edge.max_request_body".into())
    );
    assert_eq!(
        only(&edge("max_request_body = \"ten\""), ""),
        (3, 20, "edge.max_request_body".into())
    );
    let limits = load(&edge(
        "max_connections = 4\nmax_requests_per_connection = 3\nmax_request_body = \"1KiB\"",
    ))
    .unwrap();
    assert_eq!(limits.edge.max_connections, 4);
    assert_eq!(limits.edge.max_requests_per_connection, 3);
    assert_eq!(limits.edge.max_request_body, 1024);
    let no_bodies = load(&edge("max_request_body = 0")).unwrap();
    assert_eq!(no_bodies.edge.max_request_body, 0);
    assert_eq!(
        only(
            &edge("listen = 8080"),
            "expected a string, found an integer"
        ),
        (3, 10, "edge.listen".into())
    );
    let c = load(&edge("domain = \"CDN.Example.NET\"")).unwrap();
    assert_eq!(c.edge.domain, "cdn.example.net");
}

#[test]
fn origin_type_is_http_or_edge() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.distributions[0].origins[0].kind, OriginKind::Http);
    let c = load(&format!("{MINIMAL}type = \"edge\"\n")).unwrap();
    assert_eq!(c.distributions[0].origins[0].kind, OriginKind::Edge);
    assert_eq!(
        only(
            &format!("{MINIMAL}type = \"cdn\"\n"),
            "\"cdn\" is not an origin type: \"http\" (a server) or \"edge\""
        ),
        (4, 8, "distribution[0].origin[0].type".into())
    );
}

#[test]
fn unknown_keys_are_reported_with_location_and_accepted_keys() {
    let (line, col, path) = only(
        &format!("{MINIMAL}conect_timeout = 5\n"),
        "unknown key `conect_timeout`",
    );
    assert_eq!(
        (line, col, path.as_str()),
        (4, 1, "distribution[0].origin[0].conect_timeout")
    );
    let p = &problems(&format!("{MINIMAL}conect_timeout = 5\n"))[0];
    assert!(p.message.contains("did you mean `connect_timeout`?"), "{p}");
    assert!(
        p.message
            .contains("accepted keys here: id, type, url, path, headers,"),
        "{p}"
    );

    let (line, col, path) = only(
        &format!("[edge]\n  lisen = \"127.0.0.1:1\"\n{MINIMAL}"),
        "accepted keys here: name, domain",
    );
    assert_eq!((line, col, path.as_str()), (2, 3, "edge.lisen"));

    let (line, col, path) = only(
        &format!("{MINIMAL}[distribution.default_behavior]\npath_pattern = \"/x\"\n"),
        "unknown key",
    );
    assert_eq!(
        (line, col, path.as_str()),
        (5, 1, "distribution[0].default_behavior.path_pattern")
    );

    let (line, col, path) = only(&format!("origins = 1\n{MINIMAL}"), "unknown key `origins`");
    assert_eq!((line, col, path.as_str()), (1, 1, "origins"));

    let text = site("cache_key = 1\nlogging = { enabled = true, fil = \"x\" }");
    let ps = problems(&text);
    let at: Vec<(usize, usize, &str)> = ps
        .iter()
        .map(|p| (p.line, p.column, p.path.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            (3, 1, "distribution[0].cache_key"),
            (4, 29, "distribution[0].logging.fil")
        ],
        "{}",
        ConfigErrors {
            problems: ps.clone()
        }
    );
}

#[test]
fn syntax_errors_have_a_location() {
    let ps = problems("[edge]\nname = \"x\"\nlisten = \n");
    assert_eq!(ps.len(), 1);
    assert_eq!((ps[0].line, ps[0].column, ps[0].path.as_str()), (3, 10, ""));
    assert!(ps[0].message.starts_with("TOML syntax error"), "{}", ps[0]);
    let ps = problems("a = 1\na = 2\n");
    assert_eq!((ps[0].line, ps[0].column), (2, 1), "{}", ps[0]);
    assert!(
        ps[0]
            .to_string()
            .starts_with("t.toml:2:1: TOML syntax error"),
        "{}",
        ps[0]
    );
}

#[test]
fn wrong_shapes_are_reported() {
    let (l, c, p) = only("[distribution]\nid = \"x\"\n", "[[distribution]]");
    assert_eq!((l, c, p.as_str()), (1, 1, "distribution"));
    assert_eq!(
        only(&format!("edge = 1\n{MINIMAL}"), "expected a table"),
        (1, 8, "edge".into())
    );
    let empty_list =
        format!("{MINIMAL}[distribution.default_behavior.cache_key]\ncookies = {{}}\n");
    assert_eq!(
        only(&empty_list, "expected \"none\""),
        (
            5,
            11,
            "distribution[0].default_behavior.cache_key.cookies".into()
        )
    );
    assert_eq!(only("", "no distribution").0, 1);
    let (l, _, p) = only(&site("aliases = \"a.com\""), "expected an array of strings");
    assert_eq!((l, p.as_str()), (3, "distribution[0].aliases"));
    let (l, c, p) = only(
        &site("aliases = [\"a.com\", 2]"),
        "expected a string, found an integer",
    );
    assert_eq!((l, c, p.as_str()), (3, 21, "distribution[0].aliases[1]"));
    let (l, _, p) = only(&site("enabled = \"yes\""), "expected true or false");
    assert_eq!((l, p.as_str()), (3, "distribution[0].enabled"));
    // Inline arrays of tables are as good as [[...]].
    let c = load("distribution = [{ id = \"a\", origin = [{ url = \"http://o\" }] }]").unwrap();
    assert_eq!(c.distributions[0].origins[0].port, 80);
}

#[test]
fn distribution_rules_report_their_line() {
    let (l, c, p) = only(
        &site("aliases = [\"ok.com\", \"a.com:80\"]"),
        "without a port",
    );
    assert_eq!((l, c, p.as_str()), (3, 22, "distribution[0].aliases[1]"));
    let (l, _, _) = only(&site("aliases = [\"a.*.com\"]"), "leading \"*.\"");
    assert_eq!(l, 3);
    let (l, c, p) = only(
        "[[distribution]]\n\nid = \"Site\"\n[[distribution.origin]]\nurl = \"http://o\"\n",
        "not a valid distribution id",
    );
    assert_eq!((l, c, p.as_str()), (3, 6, "distribution[0].id"));
    let (l, _, p) = only(
        &site("default_root_object = \"/index.html\""),
        "must not start with '/'",
    );
    assert_eq!((l, p.as_str()), (3, "distribution[0].default_root_object"));
    let (l, c, p) = only("[[distribution]]\nid = \"a\"\n", "at least one origin");
    assert_eq!((l, c, p.as_str()), (1, 1, "distribution[0]"));
    let c = load(&site("aliases = [\"WWW.Example.COM\"]")).unwrap();
    assert_eq!(c.distributions[0].aliases, ["www.example.com"]);
}

#[test]
fn origin_rules_report_their_line() {
    let origin =
        |body: &str| format!("[[distribution]]\nid = \"s\"\n[[distribution.origin]]\n{body}\n");
    let (l, c, p) = only(
        &origin("url = \"http://h:1/static\""),
        "`path = \"/static\"`",
    );
    assert_eq!((l, c, p.as_str()), (4, 7, "distribution[0].origin[0].url"));
    let (l, _, _) = only(&origin("url = \"ftp://h\""), "http:// or https://");
    assert_eq!(l, 4);
    load(&origin("url = \"http://h/\"")).unwrap();
    let (l, c, p) = only(&origin("id = \"a\""), "missing required key `url`");
    assert_eq!((l, c, p.as_str()), (3, 1, "distribution[0].origin[0]"));
    let (l, _, p) = only(
        &origin("url = \"http://h\"\npath = \"/a/\""),
        "must not end with '/'",
    );
    assert_eq!((l, p.as_str()), (5, "distribution[0].origin[0].path"));
    let (l, _, _) = only(&origin("url = \"http://h\"\npath = \"/a/../b\""), "'..'");
    assert_eq!(l, 5);
    let (l, c, p) = only(
        &origin("url = \"http://h\"\nheaders = { \"X-Ok\" = \"1\", Host = \"x\" }"),
        "managed by the edge",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (5, 27, "distribution[0].origin[0].headers.Host")
    );
    let (l, _, _) = only(
        &origin("url = \"http://h\"\nheaders = { \"Connection\" = \"close\" }"),
        "hop-by-hop",
    );
    assert_eq!(l, 5);
    let (l, c, _) = only(
        &origin("url = \"http://h\"\nheaders = { \"X-A\" = \"a\\nb\" }"),
        "not allowed in a header",
    );
    assert_eq!((l, c), (5, 21));
    let (l, _, _) = only(
        &origin("url = \"http://h\"\nheaders = { \"x-a\" = \"1\", \"X-A\" = \"2\" }"),
        "given twice",
    );
    assert_eq!(l, 5);
    let (l, c, p) = only(
        &origin("url = \"http://h\"\nconnect_timeout = 61"),
        "between 1 and 60",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (5, 19, "distribution[0].origin[0].connect_timeout")
    );
    assert_eq!(
        only(
            &origin("url = \"http://h\"\nconnect_attempts = 4"),
            "between 1 and 3"
        )
        .0,
        5
    );
    assert_eq!(
        only(
            &origin("url = \"http://h\"\nresponse_timeout = 181"),
            "between 1 and 180"
        )
        .0,
        5
    );
    assert_eq!(
        only(
            &origin("url = \"http://h\"\nkeepalive_timeout = 0"),
            "between 1 and 180"
        )
        .0,
        5
    );
    let (l, c, p) = only(
        &origin("url = \"http://h\"\nca_file = \"ca.pem\""),
        "only to https",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (5, 11, "distribution[0].origin[0].ca_file")
    );
    let (l, _, _) = only(
        &origin("url = \"https://h\"\nca_file = \"/nonexistent/ca.pem\""),
        "cannot read /nonexistent/ca.pem",
    );
    assert_eq!(l, 5);
    let two = "[[distribution]]\nid = \"s\"\n[[distribution.origin]]\nid = \"a\"\nurl = \"http://h\"\n[[distribution.origin]]\nid = \"a\"\nurl = \"http://h\"\n";
    let (l, c, p) = only(
        two,
        "id \"a\" is already used by distribution[0].origin[0].id, line 4",
    );
    assert_eq!((l, c, p.as_str()), (7, 6, "distribution[0].origin[1].id"));
    // Later origins without ids get distinct defaults.
    let c = load("[[distribution]]\nid = \"s\"\n[[distribution.origin]]\nurl = \"http://h\"\n[[distribution.origin]]\nurl = \"http://i\"\n").unwrap();
    let ids: Vec<&str> = c.distributions[0]
        .origins
        .iter()
        .map(|o| o.id.as_str())
        .collect();
    assert_eq!(ids, ["origin", "origin2"]);
}

#[test]
fn group_rules_report_their_line() {
    let base = "[[distribution]]\nid = \"s\"\n[[distribution.origin]]\nid = \"a\"\nurl = \"http://h\"\n[[distribution.origin]]\nid = \"b\"\nurl = \"http://i\"\n[[distribution.origin_group]]\n";
    // Line 10 onwards is the group.
    let group = |body: &str| format!("{base}{body}\n");
    let c = load(&group("id = \"g\"\nmembers = [\"a\", \"b\"]")).unwrap();
    assert_eq!(c.distributions[0].origin_groups[0].members, ["a", "b"]);
    let (l, c, p) = only(
        &group("id = \"a\"\nmembers = [\"a\", \"b\"]"),
        "already used by distribution[0].origin[0].id",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (10, 6, "distribution[0].origin_group[0].id")
    );
    let (l, c, p) = only(
        &group("id = \"g\"\nmembers = [\"a\", \"c\"]"),
        "\"c\" is not an origin of this distribution (origins: \"a\", \"b\")",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (11, 17, "distribution[0].origin_group[0].members[1]")
    );
    assert_eq!(
        only(
            &group("id = \"g\"\nmembers = [\"a\"]"),
            "at least two members"
        )
        .0,
        11
    );
    assert_eq!(
        only(
            &group("id = \"g\"\nmembers = [\"a\", \"a\"]"),
            "listed twice"
        )
        .0,
        11
    );
    assert_eq!(
        only(
            &group("members = [\"a\", \"b\"]"),
            "missing required key `id`"
        )
        .0,
        9
    );
    let (l, c, p) = only(
        &group("id = \"g\"\nmembers = [\"a\", \"b\"]\nfailover_statuses = [500, 302]"),
        "between 400 and 599",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (
            12,
            27,
            "distribution[0].origin_group[0].failover_statuses[1]"
        )
    );
    let text = group("id = \"g\"\nmembers = [\"a\", \"b\"]\n[[distribution.origin_group]]\nid = \"h\"\nmembers = [\"a\", \"g\"]");
    assert_eq!(only(&text, "groups cannot contain groups").0, 14);
}

#[test]
fn behavior_rules_report_their_line() {
    let b = |body: &str| format!("{}[[distribution.behavior]]\n{body}\n", site(""));
    // site("") is 5 lines; the behaviour header is line 6.
    let ok = load(&b("path_pattern = \"*.jpg\"\ntarget = \"origin\"")).unwrap();
    assert_eq!(ok.distributions[0].behaviors[0].target, "origin");
    let (l, c, p) = only(
        &b("target = \"origin\""),
        "missing required key `path_pattern`",
    );
    assert_eq!((l, c, p.as_str()), (6, 1, "distribution[0].behavior[0]"));
    let (l, c, p) = only(&b("path_pattern = \"/a b\""), "' '");
    assert_eq!(
        (l, c, p.as_str()),
        (7, 16, "distribution[0].behavior[0].path_pattern")
    );
    assert_eq!(only(&b("path_pattern = \"\""), "1 to 255").0, 7);
    let (l, c, p) = only(
        &b("path_pattern = \"/x\"\ntarget = \"nope\""),
        "\"nope\" is neither an origin nor an origin group of this distribution (ids: \"origin\")",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (8, 10, "distribution[0].behavior[0].target")
    );
    let (l, c, p) = only(
        &b("path_pattern = \"/x\"\nmin_ttl = 10\nmax_ttl = 5"),
        "min_ttl (10) is greater than max_ttl (5)",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (8, 11, "distribution[0].behavior[0].min_ttl")
    );
    load(&b("path_pattern = \"/x\"\nmax_ttl = 5")).unwrap();
    // default_ttl below min_ttl is allowed (the edge uses min_ttl).
    load(&b("path_pattern = \"/x\"\ndefault_ttl = 1\nmin_ttl = 10")).unwrap();
    let (l, c, _) = only(
        &b("path_pattern = \"/x\"\nmin_ttl = 40000000"),
        "greater than max_ttl (31536000)",
    );
    assert_eq!((l, c), (8, 11));
    // TTLs are bounded so that freshness arithmetic never overflows the clock.
    let ps = problems(&b(
        "path_pattern = \"/x\"\nmax_ttl = 3153600001\ndefault_ttl = 18446744073709551",
    ));
    let found: Vec<(usize, usize, &str)> = ps
        .iter()
        .map(|p| (p.line, p.column, p.path.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (8, 11, "distribution[0].behavior[0].max_ttl"),
            (9, 15, "distribution[0].behavior[0].default_ttl")
        ]
    );
    assert!(ps[0]
        .message
        .contains("more than the longest TTL, 3153600000 seconds (100 years)"));
    load(&b(
        "path_pattern = \"/x\"\nmax_ttl = 3153600000\ndefault_ttl = 3153600000",
    ))
    .unwrap();
    let (l, c, p) = only(
        &b("path_pattern = \"/x\"\nallowed_methods = [\"GET\", \"POST\"]"),
        "must be one of",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (8, 19, "distribution[0].behavior[0].allowed_methods")
    );
    let ok = load(&b(
        "path_pattern = \"/x\"\nallowed_methods = [\"options\", \"head\", \"get\"]",
    ))
    .unwrap();
    assert_eq!(
        ok.distributions[0].behaviors[0].allowed_methods,
        AllowedMethods::GetHeadOptions
    );
    let (l, c, _) = only(
        &b("path_pattern = \"/x\"\nallowed_methods = [\"GET\", \"HEAD\", \"FETCH\"]"),
        "\"FETCH\" is not one of",
    );
    assert_eq!((l, c), (8, 35));
    assert_eq!(
        only(
            &b("path_pattern = \"/x\"\nallowed_methods = [\"GET\", \"HEAD\", \"get\"]"),
            "listed twice"
        )
        .0,
        8
    );
    let dup = format!(
        "{}[[distribution.behavior]]\npath_pattern = \"/x\"\n",
        b("path_pattern = \"/x\"")
    );
    let (l, c, p) = only(&dup, "already used by an earlier behaviour, line 7");
    assert_eq!(
        (l, c, p.as_str()),
        (9, 16, "distribution[0].behavior[1].path_pattern")
    );
}

#[test]
fn error_ttls_and_range_fill_max() {
    let b = |body: &str| format!("{}[distribution.default_behavior]\n{body}\n", site(""));
    // site("") is 5 lines; the table header is line 6, the body starts on line 7.
    let c = load(&b(
        "error_ttl = 0\nerror_ttls = { 503 = 5, 404 = 60, \"500\" = 0 }\nrange_fill_max = \"1.5GiB\"",
    ))
    .unwrap();
    let d = &c.distributions[0].default_behavior;
    assert_eq!(d.error_ttl, 0);
    assert_eq!(d.error_ttls, [(404, 60), (500, 0), (503, 5)]);
    assert_eq!(d.range_fill_max, 3 * GIB / 2);
    assert_eq!(
        [404, 405, 500, 503, 200].map(|s| d.error_ttl_for(s)),
        [60, 0, 0, 5, 0]
    );
    // A standard table, and sizes as plain bytes (0: ranges always pass through).
    let c = load(&format!(
        "{}[distribution.default_behavior.error_ttls]\n414 = 7\n",
        b("range_fill_max = 0")
    ))
    .unwrap();
    let d = &c.distributions[0].default_behavior;
    assert_eq!(
        (d.error_ttls.as_slice(), d.range_fill_max),
        (&[(414, 7)][..], 0)
    );
    assert_eq!((d.error_ttl, d.error_ttl_for(414)), (10, 7));
    // Behaviours take the keys too, independently of the default behaviour.
    let c = load(&format!(
        "{}[[distribution.behavior]]\npath_pattern = \"/x\"\nerror_ttls = {{ 502 = 1 }}\n",
        b("error_ttl = 3")
    ))
    .unwrap();
    let x = &c.distributions[0].behaviors[0];
    assert_eq!(
        (x.error_ttl, x.error_ttl_for(502), x.error_ttl_for(404)),
        (10, 1, 10)
    );

    let (l, c, p) = only(
        &b("error_ttls = { 404 = 60, 403 = 60 }"),
        "\"403\" is not an error status the edge caches; the keys of error_ttls are 404, \
         405, 414, 500, 501, 502, 503, 504",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (7, 26, "distribution[0].default_behavior.error_ttls.403")
    );
    assert_eq!(only(&b("error_ttls = { 0404 = 1 }"), "\"0404\"").1, 16);
    assert_eq!(only(&b("error_ttls = { x = 1 }"), "\"x\" is not").1, 16);
    let (l, c, p) = only(
        &b("error_ttls = { 404 = -1 }"),
        "must not be negative (got -1)",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (7, 22, "distribution[0].default_behavior.error_ttls.404")
    );
    let (l, c, p) = only(
        &b("\nerror_ttls = { 404 = 31536001 }"),
        "must be between 0 and 31536000 (got 31536001)",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (8, 22, "distribution[0].default_behavior.error_ttls.404")
    );
    let (l, c, p) = only(
        &b("error_ttl = 99999999999"),
        "must be between 0 and 31536000",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (7, 13, "distribution[0].default_behavior.error_ttl")
    );
    assert_eq!(
        only(&b("error_ttls = 5"), "expected a table").2,
        "distribution[0].default_behavior.error_ttls"
    );
    assert_eq!(
        only(&b("error_ttls = { 404 = \"1m\" }"), "expected an integer").2,
        "distribution[0].default_behavior.error_ttls.404"
    );
    let (l, c, p) = only(&b("range_fill_max = \"64 MB!\""), "invalid size \"64 MB!\"");
    assert_eq!(
        (l, c, p.as_str()),
        (7, 18, "distribution[0].default_behavior.range_fill_max")
    );
    assert!(only(&b("range_fill_max = true"), "expected a size").0 == 7);
}

#[test]
fn strict_mode_is_a_zero_default_ttl() {
    let c = load(&format!(
        "{}[distribution.default_behavior]\ndefault_ttl = 0\nmin_ttl = 0\n",
        site("")
    ))
    .unwrap();
    assert!(c.distributions[0].default_behavior.strict());
}

#[test]
fn cache_key_rules_report_their_line() {
    let k = |body: &str| {
        format!(
            "{}[distribution.default_behavior.cache_key]\n{body}\n",
            site("")
        )
    };
    // The cache_key header is line 6.
    let c = load(&k("headers = [\"Accept-Encoding\", \"Host\"]\nquery_strings = { all_except = [\"utm\"] }\ncookies = { allow = [\"s\"] }")).unwrap();
    let key = &c.distributions[0].default_behavior.cache_key;
    assert_eq!(key.headers, ["accept-encoding", "host"]);
    assert_eq!(key.query_strings, ListPolicy::AllExcept(vec!["utm".into()]));
    assert_eq!(key.cookies, ListPolicy::AllowList(vec!["s".into()]));
    let (l, c, p) = only(&k("headers = [\"cookie\"]"), "use `cookies`");
    assert_eq!(
        (l, c, p.as_str()),
        (
            7,
            12,
            "distribution[0].default_behavior.cache_key.headers[0]"
        )
    );
    assert_eq!(
        only(&k("headers = [\"te\"]"), "cannot be part of the cache key").0,
        7
    );
    assert_eq!(only(&k("headers = [\"a\", \"A\"]"), "listed twice").0, 7);
    let (l, c, p) = only(
        &k("query_strings = \"some\""),
        "is not one of \"none\", \"all\"",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (
            7,
            17,
            "distribution[0].default_behavior.cache_key.query_strings"
        )
    );
    let (l, c, p) = only(&k("query_strings = { allow = [] }"), "must not be empty");
    assert_eq!(
        (l, c, p.as_str()),
        (
            7,
            27,
            "distribution[0].default_behavior.cache_key.query_strings.allow"
        )
    );
    assert_eq!(
        only(
            &k("cookies = { allow = [\"a\"], all_except = [\"b\"] }"),
            "not both"
        )
        .0,
        7
    );
    let (l, c, _) = only(&k("cookies = { deny = [\"a\"] }"), "unknown key `deny`");
    assert_eq!((l, c), (7, 13));
    assert_eq!(
        only(
            &k("cookies = { allow = [\"a=b\"] }"),
            "not a valid cookie name"
        )
        .0,
        7
    );
}

#[test]
fn many_problems_are_all_reported_in_order() {
    let text = "\
[edge]
name = \"bad name\"
drain_timeout = -1
[cache]
capacity = \"lots\"
[[distribution]]
id = \"A\"
bogus = true
[[distribution.origin]]
url = \"gopher://h\"
[[distribution.behavior]]
path_pattern = \"/x\"
target = \"nowhere\"
";
    let e = load(text).unwrap_err();
    let at: Vec<(usize, &str)> = e
        .problems
        .iter()
        .map(|p| (p.line, p.path.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            (2, "edge.name"),
            (3, "edge.drain_timeout"),
            (5, "cache.capacity"),
            (7, "distribution[0].id"),
            (8, "distribution[0].bogus"),
            (10, "distribution[0].origin[0].url"),
            (13, "distribution[0].behavior[0].target"),
        ],
        "{e}"
    );
    assert_eq!(e.to_string().lines().count(), 7);
    assert!(e.to_string().starts_with("t.toml:2:8: edge.name: "), "{e}");
}

#[test]
fn duplicate_hosts_name_both_distributions() {
    let text = "\
[[distribution]]
id = \"one\"
aliases = [\"www.example.com\"]
[[distribution.origin]]
url = \"http://a\"
[[distribution]]
id = \"two\"
aliases = [\"x.example.com\", \"WWW.example.com\"]
[[distribution.origin]]
url = \"http://b\"
";
    let (l, c, p) = only(text, "host \"www.example.com\" is claimed twice");
    assert_eq!((l, c, p.as_str()), (8, 29, "distribution[1].aliases[1]"));
    let m = &problems(text)[0].message;
    assert!(
        m.contains("distribution \"one\" (distribution[0], line 2)"),
        "{m}"
    );
    assert!(
        m.contains("distribution \"two\" (distribution[1], line 7)"),
        "{m}"
    );

    // An alias may not take another distribution's assigned domain.
    let text = text.replace("WWW.example.com", "one.cairn.localhost");
    let (l, _, _) = only(&text, "as the assigned domain of distribution \"one\"");
    assert_eq!(l, 8);
    // Nor list a host twice itself.
    let (l, _, _) = only(
        &site("aliases = [\"a.com\", \"a.com\"]"),
        "already this distribution's alias",
    );
    assert_eq!(l, 3);
}

#[test]
fn ids_catch_all_and_log_files_are_unique() {
    let two = |a: &str, b: &str| {
        format!("[[distribution]]\n{a}\n[[distribution.origin]]\nurl = \"http://a\"\n[[distribution]]\n{b}\n[[distribution.origin]]\nurl = \"http://b\"\n")
    };
    let (l, c, p) = only(
        &two("id = \"s\"", "id = \"s\""),
        "id \"s\" is already the id of distribution \"s\" (distribution[0], line 2)",
    );
    assert_eq!((l, c, p.as_str()), (6, 6, "distribution[1].id"));
    let (l, _, p) = only(
        &two(
            "catch_all = true\nid = \"a\"",
            "catch_all = true\nid = \"b\"",
        ),
        "only one distribution may set catch_all, and distribution \"a\"",
    );
    assert_eq!((l, p.as_str()), (7, "distribution[1].catch_all"));
    load(&two(
        "catch_all = true\nid = \"a\"",
        "catch_all = false\nid = \"b\"",
    ))
    .unwrap();
    let (l, _, p) = only(
        &two(
            "id = \"a\"\nlogging = { enabled = true, file = \"x.log\" }",
            "id = \"b\"\nlogging = { enabled = true, file = \"./x.log\" }",
        ),
        "log file /etc/cairn/x.log is already written by distribution \"a\"",
    );
    assert_eq!((l, p.as_str()), (8, "distribution[1].logging.file"));
}

#[test]
fn generated_ids_are_stable_and_distinct() {
    let one = |alias: &str| {
        let text = format!("[[distribution]]\naliases = [\"{alias}\"]\n[[distribution.origin]]\nurl = \"http://o\"\n");
        load(&text).unwrap().distributions[0].id.clone()
    };
    let a = one("www.example.com");
    assert_eq!(a, one("www.example.com"));
    assert_eq!(
        a,
        one("WWW.Example.com"),
        "case does not change the host, nor the id"
    );
    assert_ne!(a, one("www.example.org"));
    assert!(a.starts_with('d') && a.len() == 14);
    assert!(
        a[1..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
        "{a}"
    );

    // Without aliases the first origin's URL is the seed.
    let by_url = |url: &str| {
        load(&format!(
            "[[distribution]]\n[[distribution.origin]]\nurl = \"{url}\"\n"
        ))
        .unwrap()
        .distributions[0]
            .id
            .clone()
    };
    assert_eq!(by_url("http://o:1"), by_url("http://o:1"));
    assert_ne!(by_url("http://o:1"), by_url("http://o:2"));

    // Two distributions generating the same id is an error that says what to do.
    let text = "[[distribution]]\n[[distribution.origin]]\nurl = \"http://o\"\n[[distribution]]\n[[distribution.origin]]\nurl = \"http://o\"\n";
    let (l, c, p) = only(text, "set `id` explicitly");
    assert_eq!((l, c, p.as_str()), (4, 1, "distribution[1].id"));
}

#[test]
fn load_file_resolves_paths_and_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(
        &file,
        "[cache]\ndir = \"cache\"\n[[distribution]]\nid = \"s\"\nlogging = { enabled = true }\n[[distribution.origin]]\nurl = \"http://o\"\n",
    )
    .unwrap();
    let c = load_file(&file).unwrap();
    assert_eq!(c.cache.dir, dir.path().join("cache"));
    assert_eq!(
        c.distributions[0].logging.file,
        dir.path().join("logs/s.log")
    );

    let missing = dir.path().join("nope.toml");
    let e = load_file(&missing).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    let p = &e.problems[0];
    assert_eq!(p.source, missing.display().to_string());
    assert_eq!((p.line, p.column), (0, 0));
    assert!(p.message.contains("No such file"), "{p}");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", missing.display())),
        "{e}"
    );

    std::fs::write(&file, "[edge]\nname = 5\n").unwrap();
    let e = load_file(&file).unwrap_err();
    let p = e.problems.iter().find(|p| p.path == "edge.name").unwrap();
    assert_eq!(
        (p.source.as_str(), p.line),
        (file.display().to_string().as_str(), 2)
    );
}

#[test]
fn origin_request_policies_load_in_every_form() {
    let r = |body: &str| {
        format!(
            "{}[distribution.default_behavior.origin_request]\n{body}\n",
            site("")
        )
    };
    let c = load(&r(
        "headers = \"all\"\ncookies = \"all\"\nquery_strings = { allow = [\"q\"] }",
    ))
    .unwrap();
    let o = &c.distributions[0].default_behavior.origin_request;
    assert_eq!(o.headers, HeaderPolicy::All);
    assert_eq!(o.cookies, ListPolicy::All);
    assert_eq!(o.query_strings, ListPolicy::AllowList(vec!["q".into()]));
    let c = load(&r("headers = { all_except = [\"X-Debug\"] }")).unwrap();
    let o = &c.distributions[0].default_behavior.origin_request;
    assert_eq!(o.headers, HeaderPolicy::AllExcept(vec!["x-debug".into()]));
    assert_eq!(o.cookies, ListPolicy::None, "default: nothing more");
    for (form, want) in [
        ("\"none\"", HeaderPolicy::None),
        ("\"all_viewer\"", HeaderPolicy::AllViewer),
        (
            "{ allow = [\"Authorization\", \"host\"] }",
            HeaderPolicy::AllowList(vec!["authorization".into(), "host".into()]),
        ),
    ] {
        let c = load(&r(&format!("headers = {form}"))).unwrap();
        assert_eq!(
            c.distributions[0].default_behavior.origin_request.headers,
            want
        );
    }
    // The origin_request table is line 6; its first key line 7.
    let (l, c, p) = only(
        &r("cookies = \"all_viewer\""),
        "\"all_viewer\" is not one of \"none\", \"all\", { allow",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (
            7,
            11,
            "distribution[0].default_behavior.origin_request.cookies"
        )
    );
    let (l, c, p) = only(
        &r("headers = { allow = [\"cookie\"] }"),
        "forwarded by `cookies`",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (
            7,
            22,
            "distribution[0].default_behavior.origin_request.headers.allow[0]"
        )
    );
    for refused in [
        "connection",
        "via",
        "x-forwarded-for",
        "content-length",
        "Keep-Alive",
    ] {
        only(
            &r(&format!("headers = {{ allow = [\"{refused}\"] }}")),
            "cannot be listed here",
        );
    }
    only(&r("headers = \"some\""), "\"all_viewer\"");
    only(&r("headers = { allow = [] }"), "must not be empty");
    only(&r("headers = { allow = [\"a\", \"A\"] }"), "listed twice");
    only(&r("header = \"all\""), "did you mean `headers`?");
}

#[test]
fn managed_policy_names_expand_as_documented() {
    let b = |body: &str| format!("{}[distribution.default_behavior]\n{body}\n", site(""));
    let behaviour = |body: &str| {
        load(&b(body)).unwrap().distributions[0]
            .default_behavior
            .clone()
    };
    let opt = behaviour("cache_key = { managed = \"CachingOptimized\" }");
    assert_eq!(opt.cache_key.headers, ["accept-encoding"]);
    assert_eq!(opt.cache_key.query_strings, ListPolicy::None);
    assert_eq!(opt.cache_key.cookies, ListPolicy::None);
    assert_eq!(
        (opt.min_ttl, opt.default_ttl, opt.max_ttl),
        (1, 86400, 31536000)
    );
    let off = behaviour("cache_key = { managed = \"CachingDisabled\" }");
    assert_eq!((off.min_ttl, off.default_ttl, off.max_ttl), (0, 0, 0));
    assert!(off.strict() && off.cache_key == CacheKeyPolicy::default());
    let origin_cc = behaviour("cache_key = { managed = \"UseOriginCacheControlHeaders\" }");
    assert!(origin_cc.strict());
    assert_eq!(
        origin_cc.cache_key.headers,
        [
            "accept-encoding",
            "host",
            "origin",
            "x-http-method-override",
            "x-http-method",
            "x-method-override"
        ]
    );
    assert_eq!(origin_cc.cache_key.cookies, ListPolicy::All);
    assert_eq!(origin_cc.cache_key.query_strings, ListPolicy::None);
    let with_q =
        behaviour("cache_key = { managed = \"UseOriginCacheControlHeaders-QueryStrings\" }");
    assert_eq!(with_q.cache_key.query_strings, ListPolicy::All);
    assert_eq!(with_q.max_ttl, 31536000);

    let all = behaviour("origin_request = { managed = \"AllViewer\" }").origin_request;
    assert_eq!(
        (all.headers, all.cookies, all.query_strings),
        (HeaderPolicy::AllViewer, ListPolicy::All, ListPolicy::All)
    );
    let no_host = behaviour("origin_request = { managed = \"AllViewerExceptHostHeader\" }");
    assert_eq!(no_host.origin_request.headers, HeaderPolicy::All);
    assert!(!no_host.origin_request.headers.includes("host"));
    let cors = behaviour("origin_request = { managed = \"CORS-S3Origin\" }").origin_request;
    assert_eq!(
        cors.headers,
        HeaderPolicy::AllowList(vec![
            "origin".into(),
            "access-control-request-headers".into(),
            "access-control-request-method".into()
        ])
    );
    assert_eq!(
        (cors.cookies, cors.query_strings),
        (ListPolicy::None, ListPolicy::None)
    );
    let ua = behaviour("origin_request = { managed = \"UserAgentRefererHeaders\" }").origin_request;
    assert_eq!(
        ua.headers,
        HeaderPolicy::AllowList(vec!["user-agent".into(), "referer".into()])
    );
    assert_eq!(ua.query_strings, ListPolicy::All);
    // Every documented name loads.
    for m in MANAGED_CACHE_POLICIES {
        behaviour(&format!("cache_key = {{ managed = \"{}\" }}", m.name));
    }
    for m in MANAGED_ORIGIN_REQUEST_POLICIES {
        behaviour(&format!("origin_request = {{ managed = \"{}\" }}", m.name));
    }
}

#[test]
fn policy_conflicts_are_explained_where_they_are_written() {
    let b = |body: &str| format!("{}[distribution.default_behavior]\n{body}\n", site(""));
    // The default_behavior table is line 6.
    let (l, c, p) = only(
        &b("cache_key = { headers = [\"accept-language\"] }\norigin_request = { headers = { all_except = [\"Accept-Language\"] } }"),
        "\"Accept-Language\" is in the cache key (cache_key.headers, line 7), and what the cache key includes is always forwarded",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (
            8,
            46,
            "distribution[0].default_behavior.origin_request.headers.all_except[0]"
        )
    );
    let (l, _, p) = only(
        &b("cache_key = { query_strings = \"all\" }\norigin_request = { query_strings = { all_except = [\"utm\"] } }"),
        "\"utm\" is in the cache key (cache_key.query_strings, line 7)",
    );
    assert_eq!(
        (l, p.as_str()),
        (
            8,
            "distribution[0].default_behavior.origin_request.query_strings.all_except[0]"
        )
    );
    only(
        &b("cache_key = { managed = \"UseOriginCacheControlHeaders\" }\norigin_request = { cookies = { all_except = [\"s\"] } }"),
        "(cache_key.managed = \"UseOriginCacheControlHeaders\", line 7)",
    );
    // Excluding what the key leaves out is fine.
    load(&b("cache_key = { cookies = { allow = [\"s\"] } }\norigin_request = { cookies = { all_except = [\"t\"] } }")).unwrap();

    let (l, c, p) = only(
        &b("cache_key = { managed = \"CachingFast\" }"),
        "\"CachingFast\" is not a managed cache policy; the managed names are CachingOptimized, ",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (7, 25, "distribution[0].default_behavior.cache_key.managed")
    );
    only(
        &b("origin_request = { managed = \"AllViewers\" }"),
        "is not a managed origin request policy; the managed names are AllViewer, ",
    );
    let (l, c, p) = only(
        &b("cache_key = { managed = \"CachingOptimized\", headers = [\"x\"] }"),
        "`managed = \"CachingOptimized\"`, line 7 already sets `headers`",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (7, 55, "distribution[0].default_behavior.cache_key.headers")
    );
    only(
        &b("origin_request = { managed = \"AllViewer\", cookies = \"none\" }"),
        "already sets `cookies`",
    );
    let (l, c, p) = only(
        &b("default_ttl = 60\ncache_key = { managed = \"CachingOptimized\" }"),
        "`cache_key.managed`, line 8 sets min_ttl, default_ttl and max_ttl",
    );
    assert_eq!(
        (l, c, p.as_str()),
        (7, 15, "distribution[0].default_behavior.default_ttl")
    );
}

#[test]
fn the_example_documents_origin_request_policies() {
    let c = load(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let d = &c.distributions[0];
    assert_eq!(
        d.default_behavior.origin_request.headers,
        HeaderPolicy::AllowList(vec!["user-agent".into(), "accept-language".into()])
    );
    let images = &d.behaviors[0].origin_request;
    assert_eq!(
        images.headers,
        HeaderPolicy::AllowList(vec![
            "origin".into(),
            "access-control-request-headers".into(),
            "access-control-request-method".into()
        ])
    );
    let api = &d.behaviors[1].origin_request;
    assert_eq!(api.headers, HeaderPolicy::AllExcept(vec!["x-debug".into()]));
    assert_eq!(api.cookies, ListPolicy::All);
}

#[test]
fn the_state_directory_defaults_beside_the_cache() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.control.state_dir, Path::new("/etc/cairn/cairn-state"));
    let c = load(&format!("[cache]\ndir = \"/var/cache/cairn\"\n{MINIMAL}")).unwrap();
    assert_eq!(c.control.state_dir, Path::new("/var/cache/cairn-state"));
    let c = load(&format!("[control]\nstate_dir = \"state\"\n{MINIMAL}")).unwrap();
    assert_eq!(c.control.state_dir, Path::new("/etc/cairn/state"));
    let c = load(EXAMPLE).unwrap();
    assert_eq!(c.control.state_dir, Path::new("/etc/cairn/cairn-state"));
    let (l, _, p) = only(
        &format!("[control]\nstate = 1\n{MINIMAL}"),
        "unknown key `state`",
    );
    assert_eq!((l, p.as_str()), (2, "control.state"));
}
