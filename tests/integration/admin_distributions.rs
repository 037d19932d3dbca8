//! The distribution API on one edge (its embedded durable state): create, get, list,
//! update with If-Match, enable and disable, delete; the file's distributions read-only
//! through it; ids and host names unique across both; every write durable across SIGKILL;
//! and the `cairn distributions` command.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::edge_harness::*;

/// The edge's configuration file: one distribution `site` (alias `www.site.test`).
fn file_body(origin: &Origin) -> String {
    format!(
        "[[distribution]]\nid = \"site\"\naliases = [\"www.site.test\"]\n\
         [[distribution.origin]]\nurl = \"{}\"\n",
        origin.url()
    )
}

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

/// One admin request: status, JSON answer (Null when empty), ETag.
async fn api(
    edge: &Edge,
    method: &str,
    target: &str,
    if_match: Option<&str>,
    body: &Value,
) -> (u16, Value, Option<String>) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(tag) = if_match {
        headers.push(("if-match", tag));
    }
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let r = request(
        edge.admin,
        method,
        "127.0.0.1",
        target,
        &headers,
        text.as_bytes(),
    )
    .await;
    let v = serde_json::from_slice(r.bytes()).unwrap_or(Value::Null);
    let etag = r.header("etag").map(str::to_string);
    (r.status.as_u16(), v, etag)
}

/// Polls until distribution `id` is Deployed; returns its view and ETag.
async fn deployed(edge: &Edge, id: &str) -> (Value, String) {
    let start = Instant::now();
    loop {
        let (s, v, etag) = api(
            edge,
            "GET",
            &format!("/distributions/{id}"),
            None,
            &Value::Null,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        if v["status"] == "Deployed" {
            return (v, etag.expect("an ETag"));
        }
        assert!(start.elapsed() < WAIT, "{id} was not Deployed: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn shop(origin: &Origin) -> Value {
    json!({
        "id": "shop",
        "aliases": ["www.shop.test"],
        "origin": [{ "url": origin.url() }],
        "default_behavior": { "default_ttl": 60 },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distribution_created_through_the_api_is_served_updated_disabled_and_deleted() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::with_config(&write_config(dir.path(), &file_body(&origin)), dir.path());

    let (s, v, etag) = api(&edge, "POST", "/distributions", None, &shop(&origin)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["id"], "shop");
    assert_eq!(v["domain_name"], "shop.cdn.test");
    assert_eq!(v["status"], "InProgress");
    assert_eq!(v["etag"].as_str(), etag.as_deref());
    assert_eq!(v["config"]["default_behavior"]["default_ttl"], 60);
    let (view, etag) = deployed(&edge, "shop").await;
    assert_eq!(view["source"], "api");
    for host in ["shop.cdn.test", "www.shop.test"] {
        let r = get(edge.addr, host, "/a").await;
        assert_eq!(r.status, 200, "{host}");
    }
    let (_, list, _) = api(&edge, "GET", "/distributions", None, &Value::Null).await;
    let ids: Vec<&str> = list["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["site", "shop"]);

    // Updates need the current ETag.
    let mut changed = view["config"].clone();
    changed["aliases"] = json!(["shop.example"]);
    let (s, v, _) = api(&edge, "PUT", "/distributions/shop", None, &changed).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (428, Some("PreconditionRequired")),
        "{v}"
    );
    let (s, v, _) = api(
        &edge,
        "PUT",
        "/distributions/shop",
        Some("\"999\""),
        &changed,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (412, Some("PreconditionFailed")),
        "{v}"
    );
    let (s, v, _) = api(&edge, "PUT", "/distributions/shop", Some(&etag), &changed).await;
    assert_eq!(s, 200, "{v}");
    let (s, _, _) = api(&edge, "PUT", "/distributions/shop", Some(&etag), &changed).await;
    assert_eq!(s, 412, "the old ETag is stale now");
    let (view, etag) = deployed(&edge, "shop").await;
    assert_eq!(get(edge.addr, "shop.example", "/a").await.status, 200);
    assert_eq!(get(edge.addr, "www.shop.test", "/a").await.status, 421);

    // Delete: only once disabled and Deployed.
    let (s, v, _) = api(
        &edge,
        "DELETE",
        "/distributions/shop",
        Some(&etag),
        &Value::Null,
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("DistributionNotDisabled")),
        "{v}"
    );
    let mut off = view["config"].clone();
    off["enabled"] = json!(false);
    let (s, v, _) = api(&edge, "PUT", "/distributions/shop", Some(&etag), &off).await;
    assert_eq!(s, 200, "{v}");
    let (_, etag) = deployed(&edge, "shop").await;
    assert_eq!(get(edge.addr, "shop.example", "/a").await.status, 403);
    let (s, _, _) = api(
        &edge,
        "DELETE",
        "/distributions/shop",
        Some(&etag),
        &Value::Null,
    )
    .await;
    assert_eq!(s, 204);
    let start = Instant::now();
    while get(edge.addr, "shop.example", "/a").await.status != 421 {
        assert!(
            start.elapsed() < WAIT,
            "the deleted distribution is still served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, _, _) = api(&edge, "GET", "/distributions/shop", None, &Value::Null).await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_conflicts_and_the_file_s_distributions_are_refused() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &file_body(&origin));
    let edge = Edge::with_config(&cfg, dir.path());
    let bad = json!({
        "id": "Bad Id",
        "origin": [{ "url": "ftp://x" }],
        "default_behavior": { "default_ttl": "a day" },
    });
    let (s, v, _) = api(&edge, "POST", "/distributions", None, &bad).await;
    assert_eq!(s, 400, "{v}");
    let problems: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for field in ["id: ", "origin[0].url: ", "default_behavior.default_ttl: "] {
        assert!(
            problems.iter().any(|p| p.starts_with(field)),
            "{field} in {problems:?}"
        );
    }
    // Unique across the file and the API, both named.
    let mut taken = shop(&origin);
    taken["aliases"] = json!(["www.site.test"]);
    let (s, v, _) = api(&edge, "POST", "/distributions", None, &taken).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("CNAMEAlreadyExists")),
        "{v}"
    );
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("\"www.site.test\"") && msg.contains("\"site\"") && msg.contains("cairn.toml"),
        "{msg}"
    );
    let mut same_id = shop(&origin);
    same_id["id"] = json!("site");
    let (s, v, _) = api(&edge, "POST", "/distributions", None, &same_id).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("DistributionAlreadyExists")),
        "{v}"
    );
    // The file's distributions are shown, and read-only here.
    let (s, v, etag) = api(&edge, "GET", "/distributions/site", None, &Value::Null).await;
    assert_eq!(
        (s, v["source"].as_str(), v["status"].as_str()),
        (200, Some("config"), Some("Deployed"))
    );
    let (s, v, _) = api(
        &edge,
        "PUT",
        "/distributions/site",
        etag.as_deref(),
        &v["config"],
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("DistributionReadOnly")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("cairn.toml"), "{v}");
    // An id is generated when none is given, as for a file.
    let mut anonymous = shop(&origin);
    anonymous.as_object_mut().unwrap().remove("id");
    let (s, v, _) = api(&edge, "POST", "/distributions", None, &anonymous).await;
    assert_eq!(s, 201, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with('d'), "{v}");
    let (s, _, _) = api(&edge, "GET", "/distributions/none-such", None, &Value::Null).await;
    assert_eq!(s, 404);
}

/// Creates distributions one after another until the edge dies; returns the ids whose
/// create was acknowledged.
async fn create_until_killed(
    edge_admin: std::net::SocketAddr,
    origin: String,
    round: usize,
) -> Vec<String> {
    let mut acked = Vec::new();
    for n in 0..10_000 {
        let id = format!("r{round}-n{n}");
        let body = json!({ "id": id, "origin": [{ "url": origin }] }).to_string();
        let headers = [("content-type", "application/json")];
        match try_request(
            edge_admin,
            "POST",
            "127.0.0.1",
            "/distributions",
            &headers,
            body.as_bytes(),
        )
        .await
        {
            Ok(r) if r.status == 201 => acked.push(id),
            Ok(r) => panic!("create {id}: {} {:?}", r.status, r.body),
            Err(_) => break,
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_stream_of_creates_loses_no_acknowledged_create() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &file_body(&origin));
    let mut all_acked: Vec<String> = Vec::new();
    let mut seed: u64 = 0x5eed_1234_abcd;
    for round in 0..20 {
        let edge = Edge::with_config(&cfg, dir.path());
        let creator = tokio::spawn(create_until_killed(edge.admin, origin.url(), round));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(30 + seed % 150)).await;
        edge.kill9();
        all_acked.extend(creator.await.unwrap());
    }
    assert!(
        all_acked.len() > 20,
        "only {} creates were acknowledged",
        all_acked.len()
    );
    let edge = Edge::with_config(&cfg, dir.path());
    let (_, list, _) = api(&edge, "GET", "/distributions", None, &Value::Null).await;
    let listed: std::collections::HashSet<&str> = list["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "Deployed")
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let lost: Vec<&String> = all_acked
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged creates lost: {lost:?}");
    // Each is served under its assigned domain.
    let last = all_acked.last().unwrap();
    let r = get(edge.addr, &format!("{last}.cdn.test"), "/x").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distributions_command_drives_the_api() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = Edge::with_config(&write_config(dir.path(), &file_body(&origin)), dir.path());
    let admin = format!("http://{}", edge.admin);
    let toml_file = dir.path().join("shop.toml");
    std::fs::write(
        &toml_file,
        format!(
            "[[distribution]]\nid = \"shop\"\naliases = [\"www.shop.test\"]\n\
             [[distribution.origin]]\nurl = \"{}\"\n",
            origin.url()
        ),
    )
    .unwrap();
    let cairn = |args: &[&str]| {
        let mut all = vec!["distributions", "--admin", admin.as_str()];
        all.extend_from_slice(args);
        run_cairn(&all)
    };
    let (code, out, err) = cairn(&["create", toml_file.to_str().unwrap(), "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["id"].as_str(), v["status"].as_str()),
        (Some("shop"), Some("Deployed"))
    );
    assert_eq!(get(edge.addr, "www.shop.test", "/a").await.status, 200);
    let (code, out, _) = cairn(&["list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("\"shop\"") && out.contains("\"site\""),
        "{out}"
    );
    let (code, _, err) = cairn(&["disable", "shop", "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(get(edge.addr, "www.shop.test", "/a").await.status, 403);
    let (code, _, err) = cairn(&["enable", "shop", "--wait"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(get(edge.addr, "www.shop.test", "/a").await.status, 200);
    // A JSON file too; errors carry the API's message and exit 1.
    let json_file = dir.path().join("bad.json");
    std::fs::write(&json_file, r#"{"id": "x", "origin": [{"url": "ftp://x"}]}"#).unwrap();
    let (code, _, err) = cairn(&["create", json_file.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("400") && err.contains("origin[0].url"),
        "{err}"
    );
    let (code, _, err) = cairn(&["delete", "shop"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("DistributionNotDisabled"), "{err}");
    let (code, _, err) = cairn(&["update", "site", toml_file.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("DistributionReadOnly"), "{err}");
    cairn(&["disable", "shop", "--wait"]);
    let (code, out, err) = cairn(&["delete", "shop"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"deleted\": true"), "{out}");
    let (code, _, err) = cairn(&["get", "shop"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("404"), "{err}");
}
