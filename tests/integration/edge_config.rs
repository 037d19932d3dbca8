//! The edge as its configuration file describes it: `check-config`, routing by Host,
//! default root objects, origin path prefixes and custom headers, cache behaviours,
//! allowed methods, SIGHUP reloads and the SIGTERM drain.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::edge_harness::*;

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in the file"))
        + 1
}

/// The 1-based column of `needle` in line `line` (1-based) of `text`.
fn column_of(text: &str, line: usize, needle: &str) -> usize {
    let line = text.lines().nth(line - 1).unwrap();
    line[..line.find(needle).unwrap()].chars().count() + 1
}

/// An origin that answers every request with `tag` and the request target, cacheable.
async fn tagged_origin(tag: &'static str) -> Origin {
    Origin::start(move |seen| {
        ok(
            format!("{tag} {}", seen.target).as_bytes(),
            &[
                ("cache-control", "max-age=600"),
                ("content-type", "text/plain"),
            ],
        )
    })
    .await
}

#[test]
fn check_config_reports_every_problem_with_its_location() {
    let dir = tempfile::tempdir().unwrap();

    // Valid.
    let good = write_config(
        dir.path(),
        "[[distribution]]\nid = \"site\"\naliases = [\"www.site.test\"]\n\
         [[distribution.origin]]\nurl = \"http://127.0.0.1:9\"\n",
    );
    let (code, out, err) = run_cairn(&["check-config", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("1 distribution"), "{out}");

    // The documented example is valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/cairn.example.toml");
    let (code, out, err) = run_cairn(&["check-config", example]);
    assert_eq!(code, Some(0), "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("configuration is valid (2 distribution(s))"),
        "{out}"
    );

    // A missing file and a syntax error.
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    let (code, _, err) = run_cairn(&["check-config", missing]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!("{missing}: cannot read the configuration")),
        "{err}"
    );
    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[edge]\nname = \"x\"\n[cache\n").unwrap();
    let syntax = syntax.to_str().unwrap();
    let (code, _, err) = run_cairn(&["check-config", syntax]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!("{syntax}:3:7: TOML syntax error")),
        "{err}"
    );

    // Three problems in one file: a TTL relation, an unknown key, a missing target.
    let bad = write_config(
        dir.path(),
        "[[distribution]]\n\
         id = \"site\"\n\
         colour = \"blue\"\n\
         [[distribution.origin]]\n\
         id = \"web\"\n\
         url = \"http://127.0.0.1:9\"\n\
         [distribution.default_behavior]\n\
         min_ttl = 600\n\
         max_ttl = 60\n\
         [[distribution.behavior]]\n\
         path_pattern = \"/api/*\"\n\
         target = \"nowhere\"\n",
    );
    let text = std::fs::read_to_string(&bad).unwrap();
    let file = bad.to_str().unwrap();
    let (code, out, err) = run_cairn(&["check-config", file]);
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    assert!(!out.contains("valid"), "{out}");
    let expected = [
        (
            "colour = ",
            "colour",
            "distribution[0].colour: unknown key `colour`",
        ),
        (
            "min_ttl = 600",
            "600",
            "distribution[0].default_behavior.min_ttl: min_ttl (600) is greater than max_ttl (60)",
        ),
        (
            "target = \"nowhere\"",
            "\"nowhere\"",
            "distribution[0].behavior[0].target: \"nowhere\" is neither an origin nor an origin group",
        ),
    ];
    let lines: Vec<&str> = err.lines().collect();
    for (line_needle, col_needle, tail) in expected {
        let line = line_of(&text, line_needle);
        let prefix = format!("{file}:{line}:{}: ", column_of(&text, line, col_needle));
        let want = format!("{prefix}{tail}");
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "no line starting with {want:?} in:\n{err}"
        );
    }
    // Exactly those three problems, in file order, then the summary line.
    let problems: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with(&format!("{file}:")) && !l.ends_with("test failed"))
        .collect();
    assert_eq!(problems.len(), 3, "{err}");
    assert!(problems[0].contains("colour") && problems[2].contains("nowhere"));
    assert!(
        err.trim_end()
            .ends_with(&format!("{file}: configuration test failed")),
        "{err}"
    );

    // One host claimed by two distributions: refused, naming both.
    let twice = write_config(
        dir.path(),
        "[[distribution]]\nid = \"first\"\naliases = [\"shared.test\"]\n\
         [[distribution.origin]]\nurl = \"http://127.0.0.1:9\"\n\n\
         [[distribution]]\nid = \"second\"\naliases = [\"other.test\", \"Shared.TEST\"]\n\
         [[distribution.origin]]\nurl = \"http://127.0.0.1:9\"\n",
    );
    let text = std::fs::read_to_string(&twice).unwrap();
    let file = twice.to_str().unwrap();
    let (code, out, err) = run_cairn(&["check-config", file]);
    assert_eq!(code, Some(1), "stdout: {out}\nstderr: {err}");
    let second_line = line_of(&text, "\"Shared.TEST\"");
    let col = column_of(&text, second_line, "\"Shared.TEST\"");
    let want = format!("{file}:{second_line}:{col}: distribution[1].aliases[1]: host \"shared.test\" is claimed twice");
    let line = err
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_else(|| panic!("no line starting with {want:?} in:\n{err}"));
    assert!(
        line.contains("\"first\"") && line.contains("\"second\""),
        "{line}"
    );
    assert!(
        line.contains(&format!("line {}", line_of(&text, "id = \"first\""))),
        "{line}"
    );

    // An alias equal to another distribution's assigned domain is refused the same way.
    let assigned = write_config(
        dir.path(),
        "[[distribution]]\nid = \"first\"\n\
         [[distribution.origin]]\nurl = \"http://127.0.0.1:9\"\n\n\
         [[distribution]]\nid = \"second\"\naliases = [\"first.cdn.test\"]\n\
         [[distribution.origin]]\nurl = \"http://127.0.0.1:9\"\n",
    );
    let (code, _, err) = run_cairn(&["check-config", assigned.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "\"first.cdn.test\" is claimed twice: as the assigned domain of distribution \"first\""
        ) && err.contains("alias of distribution \"second\""),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_route_to_their_distribution() {
    let site = tagged_origin("site").await;
    let other = tagged_origin("other").await;
    let off = tagged_origin("off").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"site\"\naliases = [\"www.site.test\", \"*.img.test\"]\n\
             [[distribution.origin]]\nurl = \"{}\"\n\n\
             [[distribution]]\nid = \"other\"\n\
             aliases = [\"other.test\", \"special.img.test\", \"*.b.img.test\"]\n\
             [[distribution.origin]]\nurl = \"{}\"\n\n\
             [[distribution]]\nid = \"off\"\nenabled = false\naliases = [\"off.test\"]\n\
             [[distribution.origin]]\nurl = \"{}\"\n",
            site.url(),
            other.url(),
            off.url()
        ),
    );
    let edge = Edge::with_config(&cfg, dir.path());
    for (host, tag) in [
        ("site.cdn.test", "site"),
        ("www.site.test", "site"),
        ("a.img.test", "site"),
        ("x.deep.c.img.test", "site"),
        ("www.site.test.", "site"),
        ("WWW.Site.TEST", "site"),
        ("www.site.test:8443", "site"),
        ("SITE.CDN.TEST:80", "site"),
        ("other.cdn.test", "other"),
        ("other.test", "other"),
        ("Other.Test:1234", "other"),
        // An exact alias beats a wildcard, a longer wildcard a shorter one.
        ("special.img.test", "other"),
        ("Deep.B.img.test", "other"),
    ] {
        let r = get(edge.addr, host, "/who").await;
        assert_eq!(r.status, 200, "Host {host}");
        assert_eq!(r.text(), format!("{tag} /who"), "Host {host}");
    }

    // Names nobody claims; the bare parent of a wildcard is not below it.
    for host in ["nobody.test", "img.test", "cdn.test", "xsite.cdn.test"] {
        let r = get(edge.addr, host, "/who").await;
        assert_eq!(r.status, 421, "Host {host}");
        assert_eq!(r.x_cache(), "Error from cairn");
        let body = r.text().to_ascii_lowercase();
        for secret in ["site", "other", "off", "img.test", "cdn.test"] {
            assert!(!body.contains(secret), "421 body {body:?} reveals {secret}");
        }
        assert!(body.len() < 100, "{body:?}");
    }

    // A disabled distribution: 403 on every name it has, the origin never asked.
    for host in ["off.cdn.test", "off.test"] {
        let r = get(edge.addr, host, "/who").await;
        assert_eq!(r.status, 403, "Host {host}");
        assert!(r.text().contains("disabled"), "{}", r.text());
        assert!(r.bytes().len() < 200);
    }
    assert_eq!(off.requests().len(), 0);
    // One object per distribution: the later requests were hits.
    assert_eq!(other.count("/who"), 1);
    assert_eq!(site.count("/who"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_is_the_default_root_object() {
    let origin = tagged_origin("o").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"site\"\ndefault_root_object = \"index.html\"\n\
             [[distribution.origin]]\nurl = \"{}\"\n",
            origin.url()
        ),
    );
    let edge = Edge::with_config(&cfg, dir.path());
    let r = get(edge.addr, "site.cdn.test", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "o /index.html");
    assert_eq!(r.x_cache(), "Miss from cairn");
    let seen: Vec<String> = origin.requests().into_iter().map(|s| s.target).collect();
    assert_eq!(seen, ["/index.html"]);
    // "/" and "/index.html" are one object.
    let r = get(edge.addr, "site.cdn.test", "/index.html").await;
    assert_eq!(r.x_cache(), "Hit from cairn");
    assert_eq!(r.text(), "o /index.html");
    let r = get(edge.addr, "site.cdn.test", "/").await;
    assert_eq!(r.x_cache(), "Hit from cairn");
    // Only exactly "/": a directory is fetched as it is.
    let r = get(edge.addr, "site.cdn.test", "/docs/").await;
    assert_eq!(r.text(), "o /docs/");
    assert_eq!(origin.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_path_prefix_and_custom_headers() {
    let origin = tagged_origin("o").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"site\"\ndefault_root_object = \"index.html\"\n\
             [[distribution.origin]]\nurl = \"{}\"\npath = \"/static\"\n\
             headers = {{ \"X-Origin-Token\" = \"s3cret\" }}\n\
             [[distribution.behavior]]\npath_pattern = \"/keyed/*\"\n\
             cache_key = {{ headers = [\"x-origin-token\"] }}\n",
            origin.url()
        ),
    );
    let edge = Edge::with_config(&cfg, dir.path());
    let r = get_with(
        edge.addr,
        "site.cdn.test",
        "/a.css",
        &[("x-origin-token", "forged")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "o /static/a.css");
    // Even when the behaviour forwards the viewer's header, the origin's value replaces it.
    let r = get_with(
        edge.addr,
        "site.cdn.test",
        "/keyed/b.css",
        &[("X-Origin-Token", "forged")],
    )
    .await;
    assert_eq!(r.text(), "o /static/keyed/b.css");
    // The prefix goes before the default root object too.
    let r = get(edge.addr, "site.cdn.test", "/").await;
    assert_eq!(r.text(), "o /static/index.html");
    let seen = origin.requests();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        let tokens: Vec<&str> = s
            .headers
            .iter()
            .filter(|(n, _)| n == "x-origin-token")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(tokens, ["s3cret"], "{} got {:?}", s.target, s.headers);
    }
    assert_eq!(seen[0].target, "/static/a.css");
    assert_eq!(seen[1].target, "/static/keyed/b.css");
    assert_eq!(seen[2].target, "/static/index.html");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviours_pick_origins_and_ttls_in_order() {
    let web = tagged_origin("web").await;
    let api = tagged_origin("api").await;
    let img = tagged_origin("img").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"site\"\n\
             [[distribution.origin]]\nid = \"web\"\nurl = \"{}\"\n\
             [[distribution.origin]]\nid = \"api\"\nurl = \"{}\"\n\
             [[distribution.origin]]\nid = \"img\"\nurl = \"{}\"\n\
             [[distribution.behavior]]\npath_pattern = \"/api/*\"\ntarget = \"api\"\n\
             default_ttl = 0\nmin_ttl = 0\nmax_ttl = 0\n\
             [[distribution.behavior]]\npath_pattern = \"*.jpg\"\ntarget = \"img\"\n\
             [[distribution.behavior]]\npath_pattern = \"/api/v2/*\"\ntarget = \"web\"\n",
            web.url(),
            api.url(),
            img.url()
        ),
    );
    let edge = Edge::with_config(&cfg, dir.path());
    let h = "site.cdn.test";

    // The default behaviour caches.
    let r = get(edge.addr, h, "/page.html").await;
    assert_eq!(
        (r.text(), r.x_cache()),
        ("web /page.html".into(), "Miss from cairn")
    );
    let r = get(edge.addr, h, "/page.html").await;
    assert_eq!(
        (r.text(), r.x_cache()),
        ("web /page.html".into(), "Hit from cairn")
    );
    assert_eq!(web.count("/page.html"), 1);

    // /api/*: max_ttl 0 overrides the origin's max-age=600; never cached.
    for _ in 0..2 {
        let r = get(edge.addr, h, "/api/users").await;
        assert_eq!(r.text(), "api /api/users");
        assert_eq!(r.x_cache(), "Miss from cairn");
    }
    assert_eq!(api.count("/api/users"), 2);

    // *.jpg anywhere.
    let r = get(edge.addr, h, "/photos/cat.jpg").await;
    assert_eq!(r.text(), "img /photos/cat.jpg");
    let r = get(edge.addr, h, "/photos/cat.jpg").await;
    assert_eq!(r.x_cache(), "Hit from cairn");
    // Case-sensitive: .JPG is not .jpg.
    let r = get(edge.addr, h, "/photos/cat.JPG").await;
    assert_eq!(r.text(), "web /photos/cat.JPG");

    // The first matching pattern wins: /api/* before *.jpg and before /api/v2/*.
    let r = get(edge.addr, h, "/api/chart.jpg").await;
    assert_eq!(r.text(), "api /api/chart.jpg");
    let r = get(edge.addr, h, "/api/v2/items").await;
    assert_eq!(r.text(), "api /api/v2/items");
    assert_eq!(img.count("/api"), 0);
    assert_eq!(web.count("/api"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_methods_405_pass_through_and_head() {
    let origin = Origin::start(|seen| {
        let body = format!(
            "{} {} {}",
            seen.method,
            seen.target,
            String::from_utf8_lossy(&seen.body)
        );
        if seen.target.starts_with("/big") {
            ok(&pattern(1234, 3), &[("cache-control", "max-age=600")])
        } else {
            ok(body.as_bytes(), &[("cache-control", "max-age=600")])
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"site\"\n\
             [[distribution.origin]]\nurl = \"{}\"\n\
             [[distribution.behavior]]\npath_pattern = \"/api/*\"\n\
             allowed_methods = [\"GET\", \"HEAD\", \"OPTIONS\", \"PUT\", \"POST\", \"PATCH\", \"DELETE\"]\n\
             [[distribution.behavior]]\npath_pattern = \"/opt/*\"\n\
             allowed_methods = [\"get\", \"options\", \"head\"]\n",
            origin.url()
        ),
    );
    let edge = Edge::with_config(&cfg, dir.path());
    let h = "site.cdn.test";

    // GET/HEAD only (the default behaviour).
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = request(edge.addr, method, h, "/page", &[], b"x=1").await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
    let r = request(edge.addr, "POST", h, "/opt/x", &[], b"x=1").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(
        origin.requests().len(),
        0,
        "a refused method reached the origin"
    );

    // All methods: a POST goes through with its body and is not cached.
    for i in 0..2 {
        let body = format!("a=1&n={i}");
        let r = request(
            edge.addr,
            "POST",
            h,
            "/api/submit",
            &[("content-type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("POST /api/submit {body}"));
        assert_eq!(r.x_cache(), "Miss from cairn");
    }
    let posts: Vec<Seen> = origin
        .requests()
        .into_iter()
        .filter(|s| s.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].body, b"a=1&n=0");
    assert_eq!(
        posts[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // The POST's response was not stored for GETs of the same URL.
    let r = get(edge.addr, h, "/api/submit").await;
    assert_eq!(r.text(), "GET /api/submit ");
    assert_eq!(r.x_cache(), "Miss from cairn");
    let r = request(edge.addr, "DELETE", h, "/api/submit", &[], b"").await;
    assert_eq!(r.text(), "DELETE /api/submit ");
    let r = request(edge.addr, "OPTIONS", h, "/opt/x", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OPTIONS /opt/x ");

    // HEAD after a cached GET: a hit with the length and no body.
    let r = get(edge.addr, h, "/big").await;
    assert_eq!(r.x_cache(), "Miss from cairn");
    assert_eq!(r.bytes().len(), 1234);
    let r = request(edge.addr, "HEAD", h, "/big", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "Hit from cairn");
    assert_eq!(r.header("content-length"), Some("1234"));
    assert!(r.bytes().is_empty());
    assert_eq!(origin.count("/big"), 1);
}

/// The reload test's configuration: `site` enabled or not, `extra` appended.
fn reload_config(dir: &Path, origin: &str, enabled: bool, extra: &str) {
    write_config(
        dir,
        &format!(
            "[[distribution]]\nid = \"site\"\nenabled = {enabled}\n\
             [[distribution.origin]]\nurl = \"{origin}\"\n\n\
             [[distribution]]\nid = \"always\"\n\
             [[distribution.origin]]\nurl = \"{origin}\"\n{extra}"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_keeps_connections_and_refuses_bad_files() {
    let origin = tagged_origin("o").await;
    let dir = tempfile::tempdir().unwrap();
    reload_config(dir.path(), &origin.url(), true, "");
    let cfg = dir.path().join("cairn.toml");
    let edge = Edge::with_config(&cfg, dir.path());
    let (site, always) = ("site.cdn.test", "always.cdn.test");

    assert_eq!(
        get(edge.addr, site, "/a").await.x_cache(),
        "Miss from cairn"
    );
    let mut conn = KeepAlive::connect(edge.addr).await;
    let r = conn.get(site, "/a").await.unwrap();
    assert_eq!(r.x_cache(), "Hit from cairn");

    // Disable the distribution and reload.
    reload_config(dir.path(), &origin.url(), false, "");
    edge.signal(libc::SIGHUP);
    let start = Instant::now();
    loop {
        let r = get(edge.addr, site, "/a").await;
        if r.status == 403 {
            break;
        }
        assert_eq!(r.status, 200);
        assert!(start.elapsed() < WAIT, "the reload never took effect");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The connection opened before the reload serves on the new configuration.
    let r = conn
        .get(site, "/a")
        .await
        .expect("the connection survived the reload");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("disabled"));
    let r = conn.get(always, "/b").await.unwrap();
    assert_eq!(r.text(), "o /b");
    assert!(edge.stderr().contains("configuration reloaded"));

    // An invalid file (it would re-enable `site`) is refused; the running one stays.
    reload_config(
        dir.path(),
        &origin.url(),
        true,
        "[distribution.default_behavior]\nmin_ttl = 10\nmax_ttl = 5\n",
    );
    edge.signal(libc::SIGHUP);
    eventually("the refused reload in the log", || {
        edge.stderr().contains("configuration reload refused")
    })
    .await;
    let log = edge.stderr();
    assert!(
        log.contains("min_ttl (10) is greater than max_ttl (5)"),
        "the log says why: {log}"
    );
    let r = get(edge.addr, site, "/a").await;
    assert_eq!(
        r.status, 403,
        "the previous configuration is still in force"
    );
    let r = conn.get(site, "/a").await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        get(edge.addr, always, "/b").await.x_cache(),
        "Hit from cairn"
    );

    // Valid again: the object cached before both reloads is still a hit.
    reload_config(dir.path(), &origin.url(), true, "");
    edge.signal(libc::SIGHUP);
    let start = Instant::now();
    let r = loop {
        let r = get(edge.addr, site, "/a").await;
        if r.status != 403 {
            break r;
        }
        assert!(
            start.elapsed() < WAIT,
            "the second reload never took effect"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "Hit from cairn");
    assert_eq!(r.text(), "o /a");
    let r = conn.get(site, "/a").await.unwrap();
    assert_eq!(r.x_cache(), "Hit from cairn");
    assert_eq!(origin.count("/a"), 1);
    assert_eq!(origin.count("/b"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_closes_the_store() {
    let body = pattern(200_000, 9);
    let b2 = body.clone();
    let origin = Origin::start(move |_| {
        // The head at once, then the body over about 1.6 s.
        let mut steps = vec![Step::Write(head_with_length(
            b2.len(),
            &[("cache-control", "max-age=600")],
        ))];
        for piece in b2.chunks(25_000) {
            steps.push(Step::Write(piece.to_vec()));
            steps.push(Step::Sleep(Duration::from_millis(200)));
        }
        steps
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"site\"\n[[distribution.origin]]\nurl = \"{}\"\n",
            origin.url()
        ),
    );
    let mut edge = Edge::with_config(&cfg, dir.path());
    let addr = edge.addr;
    let viewer = tokio::spawn(async move { get(addr, "site.cdn.test", "/slow").await });
    eventually("the origin request", || origin.count("/slow") == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!viewer.is_finished(), "the body was not in flight any more");
    edge.signal(libc::SIGTERM);
    let signalled = Instant::now();

    let r = viewer.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "Miss from cairn");
    assert_eq!(r.bytes(), &body[..], "the viewer got the whole body");
    let code = tokio::task::block_in_place(|| edge.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0), "exit status; log:\n{}", edge.stderr());
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exited {:?} after SIGTERM, beyond the drain timeout",
        signalled.elapsed()
    );
    assert!(edge.stderr().contains("stopped"));
    drop(edge);

    // The store was closed cleanly: the object is there after a restart.
    let edge = Edge::with_config(&cfg, dir.path());
    let r = get(edge.addr, "site.cdn.test", "/slow").await;
    assert_eq!(r.x_cache(), "Hit from cairn");
    assert_eq!(r.bytes(), &body[..]);
    assert_eq!(origin.count("/slow"), 1);
}

/// A request longer than the drain timeout is cut; the process still exits in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_gives_up_on_requests_longer_than_the_drain_timeout() {
    let body = pattern(100_000, 5);
    let b2 = body.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let origin = Origin::start(move |_| {
        if c2.fetch_add(1, Ordering::SeqCst) > 0 {
            return ok(&b2, &[("cache-control", "max-age=600")]);
        }
        // The first time, the body over about 5 s.
        let mut steps = vec![Step::Write(head_with_length(
            b2.len(),
            &[("cache-control", "max-age=600")],
        ))];
        for piece in b2.chunks(10_000) {
            steps.push(Step::Write(piece.to_vec()));
            steps.push(Step::Sleep(Duration::from_millis(500)));
        }
        steps
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[distribution]]\nid = \"site\"\n[[distribution.origin]]\nurl = \"{}\"\n",
            origin.url()
        ),
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("drain_timeout = 5", "drain_timeout = 1");
    std::fs::write(&cfg, text).unwrap();
    let mut edge = Edge::with_config(&cfg, dir.path());
    let addr = edge.addr;
    let viewer = tokio::spawn(async move { get(addr, "site.cdn.test", "/long").await });
    eventually("the origin request", || origin.count("/long") == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    edge.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let code = tokio::task::block_in_place(|| edge.wait_exit(Duration::from_secs(10)));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "exit status; log:\n{}", edge.stderr());
    // The drain timeout bounds the whole stop (connections, then fills left behind).
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1900),
        "exited {took:?} after SIGTERM with drain_timeout = 1"
    );
    assert!(edge
        .stderr()
        .contains("connections still open after the drain timeout"));
    let r = viewer.await.unwrap();
    assert!(r.body.is_err(), "a cut body looked complete");
    drop(edge);

    // The unfinished object was not stored; the store works.
    let edge = Edge::with_config(&cfg, dir.path());
    let r = get(edge.addr, "site.cdn.test", "/long").await;
    assert_eq!(r.x_cache(), "Miss from cairn");
    assert_eq!(r.bytes(), &body[..]);
    let r = get(edge.addr, "site.cdn.test", "/long").await;
    assert_eq!(r.x_cache(), "Hit from cairn");
    assert_eq!(origin.count("/long"), 2);
}

/// A script that waits for the ready line may signal at once: the handlers must already be
/// installed, or SIGHUP's and SIGTERM's default action kills the process.
#[test]
fn signals_right_after_the_ready_line_are_handled() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the origin port; no request is made.
    let cfg = write_config(
        dir.path(),
        "[[distribution]]\nid = \"site\"\n[[distribution.origin]]\nurl = \"http://127.0.0.1:9\"\n",
    );
    for sig in [
        libc::SIGHUP,
        libc::SIGHUP,
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGTERM,
    ] {
        let mut child = Command::new(cairn_bin())
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        // The first byte of the ready line (a blocking read: the edge starts or exits).
        let mut first = [0u8; 1];
        assert_eq!(stdout.read(&mut first).unwrap(), 1, "cairn did not start");
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed()
                > Duration::from_millis(if sig == libc::SIGHUP { 300 } else { 10_000 })
            {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if sig == libc::SIGHUP {
            let _ = child.kill();
            let _ = child.wait();
            assert!(status.is_none(), "SIGHUP killed the edge: {status:?}");
        } else {
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(0),
                "after SIGTERM: {status:?}"
            );
        }
    }
}
