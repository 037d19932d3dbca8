//! `cairn cache-inspect` against a cache an edge filled: ls, show, cat, explain, summary,
//! segments, and the refusal (with a hint at --admin) while an edge holds the directory.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::edge_harness::*;

const HOST: &str = "viewer.example";

fn dist_body(origin: &Origin) -> String {
    format!(
        "[[distribution]]
id = \"t\"
catch_all = true
[[distribution.origin]]
id = \"o\"
url = \"{}\"
[distribution.default_behavior.cache_key]
query_strings = \"all\"
",
        origin.url()
    )
}

/// `/vary…` answers "vary body" with `Vary: Accept-Language`, `/big` with 300 000 patterned bytes,
/// anything else "<target> body"; all max-age=600.
async fn origin() -> Origin {
    Origin::start(|seen| {
        if seen.target.starts_with("/vary") {
            ok(
                b"vary body",
                &[
                    ("cache-control", "max-age=600"),
                    ("vary", "Accept-Language"),
                ],
            )
        } else if seen.target == "/big" {
            ok(&pattern(300_000, 7), &[("cache-control", "max-age=600")])
        } else {
            ok(
                format!("{} body", seen.target).as_bytes(),
                &[("cache-control", "max-age=600"), ("etag", "\"v1\"")],
            )
        }
    })
    .await
}

fn inspect(cache: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut a = vec!["cache-inspect", "--cache-dir", cache.to_str().unwrap()];
    a.extend_from_slice(args);
    run_cairn(&a)
}

fn inspect_json(cache: &Path, args: &[&str]) -> Value {
    let (code, out, err) = inspect(cache, args);
    assert_eq!(code, Some(0), "cache-inspect {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_cli_subcommands_on_a_filled_cache() {
    let dir = tempfile::tempdir().unwrap();
    let origin = origin().await;
    let cfg = write_config(dir.path(), &dist_body(&origin));
    let cache = dir.path().join("cache");
    let mut edge = Edge::with_config(&cfg, dir.path());
    for target in ["/a.txt", "/q?x=1&y=2", "/big"] {
        let r = get(edge.addr, HOST, target).await;
        assert_eq!(r.status, 200, "{target}");
    }
    let r = get_with(edge.addr, HOST, "/vary", &[("accept-language", "en")]).await;
    assert_eq!(r.text(), "vary body");
    // Stored after the response: wait until a hit proves it.
    for target in ["/a.txt", "/q?x=1&y=2", "/big", "/vary"] {
        let mut hit = false;
        for _ in 0..100 {
            if get_with(edge.addr, HOST, target, &[("accept-language", "en")])
                .await
                .x_cache()
                .starts_with("Hit")
            {
                hit = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(hit, "{target} never became a hit");
    }

    // While the edge runs, the directory is in use.
    let (code, _, err) = inspect(&cache, &["summary"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("in use"), "{err}");
    assert!(err.contains("--admin http://127.0.0.1:9090"), "{err}");

    edge.signal(libc::SIGTERM);
    assert_eq!(edge.wait_exit(Duration::from_secs(20)), Some(0));

    // ls --json: every object, with kinds.
    let ls = inspect_json(&cache, &["ls", "--json"]);
    let items = ls.as_array().unwrap();
    let find = |path: &str, kind: &str| {
        items
            .iter()
            .find(|o| o["path"] == path && o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} {path} in {ls:#}"))
            .clone()
    };
    let a = find("/a.txt", "response");
    assert_eq!(a["distribution"], "t");
    assert_eq!(a["status"], 200);
    assert_eq!(a["body_len"], "/a.txt body".len());
    assert_eq!(a["stale"], false);
    assert!(a["ttl_remaining_s"].as_i64().unwrap() > 500);
    let q = find("/q", "response");
    assert_eq!(q["query"], "x=1&y=2");
    assert!(q["key"].as_str().unwrap().contains("/q?x=1&y=2"));
    find("/vary", "vary-index");
    let v = find("/vary", "variant");
    assert_eq!(v["variant"][0][0], "accept-language");
    assert_eq!(v["variant"][0][1], "en");
    assert_eq!(find("/big", "response")["body_len"], 300_000);

    // ls human: aligned columns with the paths; filters.
    let (code, out, err) = inspect(&cache, &["ls"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("KIND"), "{out}");
    for p in [
        "/a.txt",
        "/q?x=1&y=2",
        "/big",
        "vary-index",
        "variant{accept-language=en}",
    ] {
        assert!(out.contains(p), "{p} missing from\n{out}");
    }
    assert!(out.contains("KiB"), "{out}");
    let only = inspect_json(
        &cache,
        &["ls", "--distribution", "t", "--prefix", "/q", "--json"],
    );
    assert_eq!(only.as_array().unwrap().len(), 1, "{only:#}");
    let none = inspect_json(&cache, &["ls", "--distribution", "other", "--json"]);
    assert_eq!(none.as_array().unwrap().len(), 0);
    let lim = inspect_json(&cache, &["ls", "--limit", "2", "--json"]);
    assert_eq!(lim.as_array().unwrap().len(), 2);

    // show: by URL with --config, by --distribution, by --key-hex.
    let cfg_s = cfg.to_str().unwrap();
    let s = inspect_json(
        &cache,
        &[
            "show",
            "http://viewer.example/q?x=1&y=2",
            "--config",
            cfg_s,
            "--json",
        ],
    );
    assert_eq!(s["query"], "x=1&y=2");
    assert_eq!(s["meta"]["response"]["status"], 200);
    assert_eq!(s["meta"]["response"]["ttl_s"], 600);
    assert!(!s["meta"]["response"]["ttl_rule"]
        .as_str()
        .unwrap()
        .is_empty());
    assert_eq!(s["blob"]["found"], true);
    assert!(!s["blob"]["runs"].as_array().unwrap().is_empty());
    let s = inspect_json(
        &cache,
        &["show", "http://x/a.txt", "--distribution", "t", "--json"],
    );
    assert_eq!(s["path"], "/a.txt");
    let hexkey = q["key_hex"].as_str().unwrap();
    let s = inspect_json(&cache, &["show", "--key-hex", hexkey, "--json"]);
    assert_eq!(s["query"], "x=1&y=2");
    let s = inspect_json(
        &cache,
        &[
            "show",
            "http://viewer.example/vary",
            "--config",
            cfg_s,
            "--json",
        ],
    );
    assert_eq!(s["kind"], "vary-index");
    assert_eq!(s["meta"]["vary_index"][0], "accept-language");
    assert_eq!(s["children"].as_array().unwrap().len(), 1);
    let (code, out, err) = inspect(
        &cache,
        &["show", "http://viewer.example/a.txt", "--config", cfg_s],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("/a.txt") && out.contains("blob run 0") && out.contains("header etag"),
        "{out}"
    );
    let (code, _, err) = inspect(
        &cache,
        &["show", "http://viewer.example/nothing", "--config", cfg_s],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("no object"), "{err}");

    // cat: the origin's bytes.
    let (code, out, err) = inspect(
        &cache,
        &["cat", "http://viewer.example/a.txt", "--config", cfg_s],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "/a.txt body");
    let c = inspect_json(
        &cache,
        &[
            "cat",
            "http://viewer.example/a.txt",
            "--config",
            cfg_s,
            "--json",
        ],
    );
    assert_eq!(c["body_len"], 11);
    assert_eq!(c["body_base64"], "L2EudHh0IGJvZHk=");
    let big = std::process::Command::new(cairn_bin())
        .args([
            "cache-inspect",
            "--cache-dir",
            cache.to_str().unwrap(),
            "cat",
            "http://h/big",
            "--distribution",
            "t",
        ])
        .output()
        .unwrap();
    assert!(big.status.success());
    assert_eq!(big.stdout, pattern(300_000, 7));
    let (code, out, _) = inspect(
        &cache,
        &[
            "cat",
            "http://viewer.example/vary",
            "--config",
            cfg_s,
            "-H",
            "accept-language: en",
        ],
    );
    assert_eq!(code, Some(0));
    assert_eq!(out, "vary body");

    // explain.
    let e = inspect_json(
        &cache,
        &[
            "explain",
            "http://viewer.example/q?x=1&y=2",
            "--config",
            cfg_s,
            "--json",
        ],
    );
    assert_eq!(e["distribution"], "t");
    assert_eq!(e["behavior"]["name"], "default_behavior");
    assert_eq!(e["cache_key"]["query"], "x=1&y=2");
    assert_eq!(e["stored"]["ttl_s"], 600);
    assert_eq!(e["next"], "hit");
    let e = inspect_json(
        &cache,
        &[
            "explain",
            "http://viewer.example/vary",
            "--config",
            cfg_s,
            "-H",
            "accept-language: de",
            "--json",
        ],
    );
    assert_eq!(e["vary"]["names"][0], "accept-language");
    assert_eq!(e["vary"]["variants"].as_array().unwrap().len(), 1);
    assert_eq!(e["next"], "fetch");
    let e = inspect_json(
        &cache,
        &[
            "explain",
            "http://viewer.example/vary",
            "--config",
            cfg_s,
            "-H",
            "accept-language: en",
            "--json",
        ],
    );
    assert_eq!(e["next"], "hit");
    let (code, out, err) = inspect(
        &cache,
        &["explain", "http://viewer.example/a.txt", "--config", cfg_s],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("next request") && out.contains("hit"), "{out}");

    // summary.
    let s = inspect_json(&cache, &["summary", "--config", cfg_s, "--json"]);
    assert_eq!(s["objects"], 5, "{s:#}");
    assert_eq!(s["distributions"]["t"]["objects"], 5);
    assert_eq!(s["capacity"], 256 * 1024 * 1024);
    assert_eq!(s["expired_kept"], 0);
    assert!(s["oldest"]["key"].is_string());
    assert!(s["segments_by_state"].is_object());
    let (code, out, err) = inspect(&cache, &["summary"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("capacity") && out.contains("unknown") && out.contains("distribution t"),
        "{out}"
    );

    // rebuild-index: the index is rebuilt from the segments and lists the same objects.
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key_hex"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    let before = keys(&inspect_json(&cache, &["ls", "--json"]));
    let (code, out, err) = inspect(&cache, &["rebuild-index"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rebuilt the index"), "{out}");
    assert_eq!(keys(&inspect_json(&cache, &["ls", "--json"])), before);
    let r = inspect_json(&cache, &["rebuild-index", "--json"]);
    assert_eq!(r["objects"].as_u64().unwrap() as usize, before.len());

    // segments.
    let segs = inspect_json(&cache, &["segments", "--json"]);
    assert!(!segs.as_array().unwrap().is_empty());
    // Records and live bytes per segment: every stored body (300 000 bytes for /big alone)
    // is live, and no segment holds more live bytes than records.
    let seg_list = segs.as_array().unwrap();
    let live: u64 = seg_list
        .iter()
        .map(|s| s["live_bytes"].as_u64().unwrap())
        .sum();
    let records: u64 = seg_list
        .iter()
        .map(|s| s["records"].as_u64().unwrap())
        .sum();
    assert!(live >= 300_000, "live bytes {live}");
    assert!(records >= 8, "records {records}");
    for s in seg_list {
        assert!(s["live_bytes"].as_u64().unwrap() <= s["record_bytes"].as_u64().unwrap());
    }

    // cat of a damaged body fails (non-zero) instead of printing wrong bytes.
    let big = inspect_json(
        &cache,
        &["show", "http://h/big", "--distribution", "t", "--json"],
    );
    let run = &big["blob"]["runs"][0];
    let seg_id = run["segment"].as_u64().unwrap();
    let seg = segs
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == seg_id)
        .unwrap();
    let path = seg["path"].as_str().unwrap();
    let at = run["offset"].as_u64().unwrap() + 150_000;
    let mut bytes = std::fs::read(path).unwrap();
    for b in &mut bytes[at as usize..at as usize + 16] {
        *b ^= 0xff;
    }
    std::fs::write(path, bytes).unwrap();
    let out = std::process::Command::new(cairn_bin())
        .args(["cache-inspect", "--cache-dir", cache.to_str().unwrap()])
        .args(["cat", "http://h/big", "--distribution", "t"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "cat of a damaged body succeeded");
    assert!(out.stdout.len() < 300_000);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("check"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
