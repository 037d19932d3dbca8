//! Tag invalidations end to end: objects carry the origin's `Surrogate-Key` / `Cache-Tag`
//! tags (headers the viewers never see), `POST /invalidations` with `"tags"` (dry runs,
//! validation), `cairn invalidate --tag`, and durability across a SIGKILL (including the
//! replay of a tag job the edge died before running).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::edge_harness::*;

const MISS: &str = "Miss from cairn";
const HIT: &str = "Hit from cairn";
const HOST: &str = "viewer.example";

/// /p1: `Surrogate-Key: product-1 all`, /p2: `Surrogate-Key: product-2 all`,
/// /p3: `Cache-Tag: product-3`; anything else untagged. All max-age=600.
async fn origin() -> Origin {
    let n = AtomicUsize::new(0);
    Origin::start(move |seen| {
        let i = n.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("{} #{i}", seen.target);
        let cc = ("cache-control", "max-age=600");
        match seen.target.as_str() {
            "/p1" => ok(body.as_bytes(), &[cc, ("surrogate-key", "product-1 all")]),
            "/p2" => ok(body.as_bytes(), &[cc, ("surrogate-key", "product-2 all")]),
            "/p3" => ok(body.as_bytes(), &[cc, ("cache-tag", "product-3")]),
            _ => ok(body.as_bytes(), &[cc]),
        }
    })
    .await
}

fn config(dir: &Path, origin: &Origin) -> PathBuf {
    write_config(
        dir,
        &format!(
            "[[distribution]]
id = \"t\"
catch_all = true
[[distribution.origin]]
id = \"o\"
url = \"{}\"
",
            origin.url()
        ),
    )
}

async fn admin(edge: &Edge, method: &str, target: &str, body: &str) -> (u16, serde_json::Value) {
    let r = request(
        edge.admin,
        method,
        "127.0.0.1",
        target,
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    let v = serde_json::from_slice(r.bytes()).unwrap_or(serde_json::Value::Null);
    (r.status.as_u16(), v)
}

async fn purge(edge: &Edge, tags: &[&str], dry_run: bool) -> (u16, serde_json::Value) {
    let body = serde_json::json!({"distribution": "t", "tags": tags, "dry_run": dry_run});
    admin(edge, "POST", "/invalidations", &body.to_string()).await
}

/// Polls GET /invalidations/{id} (bounded) until Completed; returns the final answer.
async fn completed(edge: &Edge, id: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let (s, v) = admin(edge, "GET", &format!("/invalidations/{id}"), "").await;
        assert_eq!(s, 200, "{v}");
        if v["status"] == "Completed" {
            return v;
        }
        assert!(start.elapsed() < WAIT, "invalidation {id} did not complete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Purges `tags` and waits; returns how many objects went.
async fn purged(edge: &Edge, tags: &[&str]) -> u64 {
    let (s, v) = purge(edge, tags, false).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tags"], serde_json::json!(tags), "{v}");
    let done = completed(edge, v["id"].as_str().unwrap()).await;
    done["objects"].as_u64().unwrap()
}

async fn x_cache(edge: &Edge, target: &str) -> String {
    let r = get(edge.addr, HOST, target).await;
    assert_eq!(r.status, 200, "GET {target}");
    assert_eq!(r.header("surrogate-key"), None, "GET {target}");
    assert_eq!(r.header("cache-tag"), None, "GET {target}");
    r.x_cache().to_string()
}

const OBJECTS: [&str; 4] = ["/p1", "/p2", "/p3", "/untagged"];

async fn cache_all(edge: &Edge) {
    for t in OBJECTS {
        x_cache(edge, t).await;
        assert_eq!(x_cache(edge, t).await, HIT, "{t} cached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_invalidations_and_restart() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &origin);
    let edge = Edge::with_config(&cfg, dir.path());
    for t in OBJECTS {
        assert_eq!(x_cache(&edge, t).await, MISS, "{t} first");
        assert_eq!(x_cache(&edge, t).await, HIT, "{t} second");
    }

    // A dry run counts and removes nothing.
    let (s, v) = purge(&edge, &["all"], true).await;
    assert_eq!((s, v["objects"].as_u64()), (200, Some(2)), "{v}");
    for t in OBJECTS {
        assert_eq!(x_cache(&edge, t).await, HIT, "{t} after a dry run");
    }

    assert_eq!(purged(&edge, &["product-1"]).await, 1);
    assert_eq!(x_cache(&edge, "/p1").await, MISS);
    assert_eq!(x_cache(&edge, "/p2").await, HIT);
    assert_eq!(x_cache(&edge, "/p3").await, HIT);

    // /p1 is cached again: "all" takes it and /p2.
    assert_eq!(purged(&edge, &["all"]).await, 2);
    assert_eq!(x_cache(&edge, "/p2").await, MISS);
    assert_eq!(x_cache(&edge, "/p1").await, MISS);
    assert_eq!(x_cache(&edge, "/p3").await, HIT);

    // Cache-Tag works like Surrogate-Key.
    assert_eq!(purged(&edge, &["product-3"]).await, 1);
    assert_eq!(x_cache(&edge, "/p3").await, MISS);
    assert_eq!(x_cache(&edge, "/untagged").await, HIT);

    // Paths and tags together.
    cache_all(&edge).await;
    let body =
        serde_json::json!({"distribution": "t", "paths": ["/untagged"], "tags": ["product-1"]});
    let (s, v) = admin(&edge, "POST", "/invalidations", &body.to_string()).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        completed(&edge, v["id"].as_str().unwrap()).await["objects"],
        2
    );
    assert_eq!(x_cache(&edge, "/untagged").await, MISS);
    assert_eq!(x_cache(&edge, "/p1").await, MISS);
    assert_eq!(x_cache(&edge, "/p2").await, HIT);

    // Bad tags.
    let long = "x".repeat(129);
    for bad in ["a b", "", "tab\tbed", long.as_str()] {
        let (s, v) = purge(&edge, &["ok", bad], false).await;
        assert_eq!(s, 400, "{bad:?}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(&format!("{bad:?}")), "{bad:?}: {msg}");
    }
    let body = serde_json::json!({"distribution": "t", "paths": [], "tags": []});
    let (s, v) = admin(&edge, "POST", "/invalidations", &body.to_string()).await;
    assert_eq!(s, 400, "{v}");

    // Purged objects stay gone after a SIGKILL, and a tag job the edge died before
    // running (journalled, never done) is run at the next start.
    cache_all(&edge).await;
    assert_eq!(purged(&edge, &["product-2"]).await, 1);
    edge.kill9();
    let line = serde_json::json!({"op": "create", "id": "I0000000000000001",
        "distribution": "t", "paths": [], "prefixes": [], "tags": ["product-3"]});
    let journal = dir.path().join("cache/invalidations.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str(&format!("{line}\n"));
    std::fs::write(&journal, text).unwrap();

    let edge = Edge::with_config(&cfg, dir.path());
    let v = completed(&edge, "I0000000000000001").await;
    assert_eq!(v["objects"], 1, "{v}");
    assert_eq!(v["tags"], serde_json::json!(["product-3"]), "{v}");
    assert_eq!(x_cache(&edge, "/p2").await, MISS, "/p2 after the restart");
    assert_eq!(x_cache(&edge, "/p3").await, MISS, "/p3 after the restart");
    assert_eq!(x_cache(&edge, "/p1").await, HIT, "/p1 after the restart");
    assert_eq!(x_cache(&edge, "/untagged").await, HIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_command_with_tags() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::with_config(&config(dir.path(), &origin), dir.path());
    cache_all(&edge).await;
    let addr = format!("http://{}", edge.admin);
    let run = |extra: &[&str]| {
        let mut args: Vec<String> = ["invalidate", "--admin", &addr, "--distribution", "t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cairn(&a)
        })
    };

    let (code, out, err) = run(&["--dry-run", "--tag", "all"]).await.unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2 object"), "{out}");
    assert_eq!(x_cache(&edge, "/p1").await, HIT);

    // Repeatable, no paths needed.
    let (code, out, err) = run(&["--wait", "--tag", "product-1", "--tag", "product-3"])
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with('I') && out.contains("Completed 2 object"),
        "{out}"
    );
    assert_eq!(x_cache(&edge, "/p1").await, MISS);
    assert_eq!(x_cache(&edge, "/p3").await, MISS);
    assert_eq!(x_cache(&edge, "/p2").await, HIT);

    // With a path.
    let (code, out, err) = run(&["--wait", "--tag", "product-2", "/untagged"])
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("Completed 2 object"), "{out}");
    assert_eq!(x_cache(&edge, "/p2").await, MISS);
    assert_eq!(x_cache(&edge, "/untagged").await, MISS);

    let (code, _, err) = run(&["--tag", "a b"]).await.unwrap();
    assert_ne!(code, Some(0));
    assert!(err.contains("400") && err.contains("\"a b\""), "{err}");
    // Neither a path nor a tag.
    let (code, _, _) = run(&[]).await.unwrap();
    assert_ne!(code, Some(0));
}
