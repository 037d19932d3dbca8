//! The admin API end to end: invalidations (CloudFront path syntax, dry runs, status,
//! durability across a SIGKILL), bearer-token access control, `POST /reload` and the
//! `cairn invalidate` command.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const HOST: &str = "viewer.example";
const TOKEN: &str = "s3cret-token-0123456789";

/// GETs answer 200 "<target> #<n>" with max-age=600.
async fn origin() -> Origin {
    let n = AtomicUsize::new(0);
    Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        ok(
            format!("{} #{i}", seen.target).as_bytes(),
            &[("cache-control", "max-age=600")],
        )
    })
    .await
}

fn dist_body(origin: &Origin, enabled: bool) -> String {
    format!(
        "[[distribution]]
id = \"t\"
catch_all = true
enabled = {enabled}
[[distribution.origin]]
id = \"o\"
url = \"{}\"
[distribution.default_behavior.cache_key]
query_strings = \"all\"
",
        origin.url()
    )
}

/// The harness's config, with `edge_extra` lines added to `[edge]` and the admin
/// listener replaced by `admin_listen`.
fn config(dir: &Path, origin: &Origin, admin_listen: &str, edge_extra: &str) -> PathBuf {
    let path = write_config(dir, &dist_body(origin, true));
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "admin_listen = \"127.0.0.1:0\"\n",
        &format!("admin_listen = \"{admin_listen}\"\n{edge_extra}"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn admin(
    edge: &Edge,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value, Resp) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let r = request(
        edge.admin,
        method,
        "127.0.0.1",
        target,
        &headers,
        body.as_bytes(),
    )
    .await;
    let v = serde_json::from_slice(r.bytes()).unwrap_or(serde_json::Value::Null);
    (r.status.as_u16(), v, r)
}

async fn invalidate(edge: &Edge, paths: &[&str], dry_run: bool) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"distribution": "t", "paths": paths, "dry_run": dry_run});
    let (s, v, _) = admin(edge, "POST", "/invalidations", None, &body.to_string()).await;
    (s, v)
}

/// Polls GET /invalidations/{id} (bounded) until Completed; returns the final answer.
async fn completed(edge: &Edge, id: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (s, v, _) = admin(edge, "GET", &format!("/invalidations/{id}"), None, "").await;
        assert_eq!(s, 200, "{v}");
        if v["status"] == "Completed" {
            return v;
        }
        assert_eq!(v["status"], "InProgress", "{v}");
        assert!(start.elapsed() < WAIT, "invalidation {id} did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn x_cache(edge: &Edge, target: &str) -> String {
    let r = get(edge.addr, HOST, target).await;
    assert_eq!(r.status, 200, "GET {target}");
    r.x_cache().to_string()
}

const OBJECTS: [&str; 5] = ["/a", "/a?x=1", "/img/1", "/img/2", "/b"];

async fn cache_all(edge: &Edge) {
    for t in OBJECTS {
        x_cache(edge, t).await;
        assert_eq!(x_cache(edge, t).await, HIT, "{t} cached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_remove_by_path_and_prefix() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::with_config(&config(dir.path(), &origin, "127.0.0.1:0", ""), dir.path());
    cache_all(&edge).await;

    // A dry run counts and removes nothing.
    let (s, v) = invalidate(&edge, &["/img/*"], true).await;
    assert_eq!((s, v["objects"].as_u64()), (200, Some(2)), "{v}");
    for t in OBJECTS {
        assert_eq!(x_cache(&edge, t).await, HIT, "{t} after a dry run");
    }

    // A prefix.
    let (s, v) = invalidate(&edge, &["/img/*"], false).await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(id.starts_with('I'), "{v}");
    assert!(["InProgress", "Completed"].contains(&v["status"].as_str().unwrap()));
    assert_eq!(v["paths"], serde_json::json!(["/img/*"]));
    let done = completed(&edge, &id).await;
    assert_eq!(done["objects"], 2, "{done}");
    assert_eq!(x_cache(&edge, "/img/1").await, MISS);
    assert_eq!(x_cache(&edge, "/img/2").await, MISS);
    assert_eq!(x_cache(&edge, "/b").await, HIT);
    assert_eq!(x_cache(&edge, "/a").await, HIT);

    // An exact path: every query variant of it, nothing else.
    let (s, v) = invalidate(&edge, &["/a"], false).await;
    assert_eq!(s, 201, "{v}");
    let id2 = v["id"].as_str().unwrap().to_string();
    assert_ne!(id, id2);
    assert_eq!(completed(&edge, &id2).await["objects"], 2);
    assert_eq!(x_cache(&edge, "/a").await, MISS);
    assert_eq!(x_cache(&edge, "/a?x=1").await, MISS);
    assert_eq!(x_cache(&edge, "/b").await, HIT);

    // Everything.
    cache_all(&edge).await;
    let (s, v) = invalidate(&edge, &["/*"], false).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        completed(&edge, v["id"].as_str().unwrap()).await["objects"],
        5
    );
    for t in OBJECTS {
        assert_eq!(x_cache(&edge, t).await, MISS, "{t} after /*");
    }

    // Bad input.
    for bad in ["img/x", "/a*b"] {
        let (s, v) = invalidate(&edge, &["/ok", bad], false).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().contains(bad), "{v}");
    }
    let (s, _, _) = admin(&edge, "POST", "/invalidations", None, "{not json").await;
    assert_eq!(s, 400);
    let body = serde_json::json!({"distribution": "nope", "paths": ["/a"]}).to_string();
    let (s, v, _) = admin(&edge, "POST", "/invalidations", None, &body).await;
    assert_eq!(s, 404, "{v}");
    let (s, _, _) = admin(&edge, "GET", "/invalidations/I0000", None, "").await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_survives_sigkill() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &origin, "127.0.0.1:0", "");
    let edge = Edge::with_config(&cfg, dir.path());
    cache_all(&edge).await;
    let (s, v) = invalidate(&edge, &["/img/*", "/a"], false).await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    edge.kill9();
    // An acknowledged invalidation the edge died before running (its journal line is
    // there, its "done" line is not): the next start runs it.
    let prefix: String = cairn::cache_key::exact_path_prefix("t", "/b")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let line = serde_json::json!({"op": "create", "id": "I0000000000000001",
        "distribution": "t", "paths": ["/b"], "prefixes": [prefix]});
    let journal = dir.path().join("cache/invalidations.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str(&format!("{line}\n"));
    std::fs::write(&journal, text).unwrap();

    let edge = Edge::with_config(&cfg, dir.path());
    for t in ["/img/1", "/img/2", "/a", "/a?x=1", "/b"] {
        assert_eq!(x_cache(&edge, t).await, MISS, "{t} after the restart");
    }
    let v = completed(&edge, &id).await;
    assert_eq!(v["id"], id.as_str());
    let v = completed(&edge, "I0000000000000001").await;
    assert_eq!(v["objects"], 1, "{v}");
    // Ids stay unique across restarts.
    let (s, v) = invalidate(&edge, &["/b"], false).await;
    assert_eq!(s, 201);
    assert!(v["id"].as_str().unwrap() > id.as_str(), "{v} after {id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_is_required_and_checked() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();

    // (A non-loopback admin_listen without a token is refused by config validation,
    // which `serve` runs at startup; src/config/tests.rs checks it, so that no test here
    // names an address other than 127.0.0.1.)
    let cfg = config(
        dir.path(),
        &origin,
        "127.0.0.1:0",
        &format!("admin_token = \"{TOKEN}\"\n"),
    );
    let edge = Edge::with_config(&cfg, dir.path());
    for token in [None, Some("wrong-token-0123456789")] {
        let (s, _, r) = admin(&edge, "GET", "/status", token, "").await;
        assert_eq!(s, 401);
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
        let (s, _, _) = admin(&edge, "POST", "/reload", token, "").await;
        assert_eq!(s, 401);
    }
    let (s, v, _) = admin(&edge, "GET", "/status", Some(TOKEN), "").await;
    assert_eq!(s, 200, "{v}");
    let body = serde_json::json!({"distribution": "t", "paths": ["/x"]}).to_string();
    let (s, v, _) = admin(&edge, "POST", "/invalidations", Some(TOKEN), &body).await;
    assert_eq!(s, 201, "{v}");

    // The command line passes the token on.
    let addr = format!("http://{}", edge.admin);
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run_cairn(&[
            "invalidate",
            "--admin",
            &addr,
            "--distribution",
            "t",
            "--token",
            TOKEN,
            "--wait",
            "/x",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Completed"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_or_refuses() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &origin, "127.0.0.1:0", "");
    let edge = Edge::with_config(&cfg, dir.path());
    assert_eq!(get(edge.addr, HOST, "/a").await.status, 200);

    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("enabled = true", "enabled = false")).unwrap();
    let (s, v, _) = admin(&edge, "POST", "/reload", None, "").await;
    assert_eq!((s, v["config_version"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(get(edge.addr, HOST, "/a").await.status, 403);

    std::fs::write(&cfg, text.replace("enabled = true", "enabled = 7")).unwrap();
    let (s, v, _) = admin(&edge, "POST", "/reload", None, "").await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("enabled"), "{v}");
    // The running configuration stays.
    assert_eq!(get(edge.addr, HOST, "/a").await.status, 403);
    let (_, v, _) = admin(&edge, "GET", "/status", None, "").await;
    assert_eq!(v["config_version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_command_end_to_end() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::with_config(&config(dir.path(), &origin, "127.0.0.1:0", ""), dir.path());
    cache_all(&edge).await;
    let addr = format!("http://{}", edge.admin);

    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cairn(&a)
        })
    };
    let base = |extra: &[&str]| {
        let mut v: Vec<String> = ["invalidate", "--admin", &addr, "--distribution", "t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    let (code, out, err) = run(base(&["--dry-run", "/img/*"])).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 object"), "{out}");
    assert_eq!(x_cache(&edge, "/img/1").await, HIT);

    let (code, out, err) = run(base(&["--wait", "/img/*", "/b"])).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with('I') && out.contains("Completed 3 object"),
        "{out}"
    );
    assert_eq!(x_cache(&edge, "/img/1").await, MISS);
    assert_eq!(x_cache(&edge, "/b").await, MISS);
    assert_eq!(x_cache(&edge, "/a").await, HIT);

    let (code, _, err) = run(base(&["/a*b"])).await.unwrap();
    assert_ne!(code, Some(0));
    assert!(err.contains("400") && err.contains("/a*b"), "{err}");
}
