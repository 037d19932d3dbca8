//! `cairn cache-inspect --admin URL ...`: the reports asked of a running edge through its
//! admin API (`GET /inspect/...`), with the same JSON as the offline command.

use serde_json::Value;

use crate::edge_harness::*;

fn live(edge: &Edge, args: &[&str]) -> (Option<i32>, String, String) {
    let admin = format!("http://{}", edge.admin);
    let mut a = vec!["cache-inspect", "--admin", admin.as_str()];
    a.extend_from_slice(args);
    run_cairn(&a)
}

fn live_json(edge: &Edge, args: &[&str]) -> Value {
    let (code, out, err) = live(edge, args);
    assert_eq!(code, Some(0), "cache-inspect {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_reports_match_the_offline_json() {
    let origin = Origin::start(|seen| {
        ok(
            format!("body of {}", seen.target).as_bytes(),
            &[("cache-control", "max-age=600")],
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::quick(&origin.url(), dir.path(), &[]);
    for p in ["/a", "/b"] {
        assert_eq!(get(edge.addr, "x", p).await.status, 200);
    }

    let summary = live_json(&edge, &["summary", "--json"]);
    assert!(summary["objects"].as_u64().unwrap() >= 2, "{summary}");
    assert_eq!(summary["capacity"], 256 * 1024 * 1024);
    for k in [
        "blobs",
        "live_bytes",
        "segments_by_state",
        "kinds",
        "distributions",
    ] {
        assert!(summary.get(k).is_some(), "summary lacks {k}: {summary}");
    }

    let ls = live_json(&edge, &["ls", "--json"]);
    let rows = ls.as_array().unwrap();
    assert!(rows.len() >= 2, "{ls}");
    let paths: Vec<&str> = rows.iter().filter_map(|r| r["path"].as_str()).collect();
    assert!(paths.contains(&"/a") && paths.contains(&"/b"), "{ls}");
    for k in [
        "key_hex",
        "key",
        "kind",
        "status",
        "body_len",
        "ttl_remaining_s",
    ] {
        assert!(rows[0].get(k).is_some(), "ls row lacks {k}: {ls}");
    }
    let limited = live_json(&edge, &["ls", "--limit", "1", "--json"]);
    assert_eq!(limited.as_array().unwrap().len(), 1);

    let show = live_json(
        &edge,
        &["show", "--distribution", "default", "http://x/a", "--json"],
    );
    assert_eq!(show["path"], "/a", "{show}");
    assert_eq!(show["status"], 200);
    assert_eq!(show["body_len"], "body of /a".len());
    assert_eq!(show["meta"]["response"]["status"], 200);
    assert_eq!(show["blob"]["found"], true);
    // The same object by its raw key, as `ls --json` prints it.
    let hex = show["key_hex"].as_str().unwrap();
    let by_key = live_json(&edge, &["show", "--key-hex", hex, "--json"]);
    assert_eq!(by_key["key_hex"], hex);

    // Keyed by the running configuration: explain and show with a bare URL.
    let explain = live_json(&edge, &["explain", "http://x/a", "--json"]);
    assert_eq!(explain["next"], "hit", "{explain}");
    assert_eq!(explain["cache_key"]["key_hex"], hex);

    // Human output works too.
    let (code, out, err) = live(&edge, &["summary"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("objects"), "{out}");

    let (code, _, err) = live(
        &edge,
        &["show", "--distribution", "default", "http://x/nope"],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("no object"), "{err}");

    for args in [
        &["verify"][..],
        &["cat", "--key-hex", hex],
        &["rebuild-index"],
    ] {
        let (code, _, err) = live(&edge, args);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(err.contains("offline-only"), "{args:?}: {err}");
    }

    // The human `show` is the same live and offline (but for the clock-dependent rows).
    let show = ["show", "--distribution", "default", "http://x/a"];
    let (code, live_out, err) = live(&edge, &show);
    assert_eq!(code, Some(0), "{err}");
    assert!(live_out.contains("blob run 0"), "{live_out}");
    let (code, explain_out, err) = live(&edge, &["explain", "http://x/a"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!explain_out.trim_start().starts_with('{'), "{explain_out}");
    let mut edge = edge;
    edge.signal(libc::SIGTERM);
    assert_eq!(edge.wait_exit(WAIT), Some(0));
    let cache = dir.path().join("cache");
    let mut offline = vec!["cache-inspect", "--cache-dir", cache.to_str().unwrap()];
    offline.extend_from_slice(&show);
    let (code, offline_out, err) = run_cairn(&offline);
    assert_eq!(code, Some(0), "{err}");
    let steady = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("age ") && !l.starts_with("ttl left"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(steady(&live_out), steady(&offline_out));
}
