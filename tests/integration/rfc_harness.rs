//! The HTTP caching conformance harness cache-tests (the suite behind cache-tests.fyi; npm
//! package `http-cache-tests`, installed by `.ci/run` under `target/tools/cache-tests`) run
//! unchanged through `cairn serve --origin URL --default-ttl 0`, the strict RFC 9111 quick
//! mode: the harness's own server is the origin and its client the viewer, correlating
//! requests by its own query strings and headers and registering each test with a PUT.
//!
//! Every required test passes but the known failures below (each with its reason; most
//! are where this published release is older than the suite at cache-tests.fyi), and no
//! test fails to set up but the known ones: a change that breaks a caching rule, or keeps
//! the harness's requests from reaching its server, fails here. A required test that fails
//! in the full run is run again alone once, so that one slow moment on a loaded machine is
//! not taken for a regression. Without node or the harness the test is skipped (a failure
//! under `CI=true`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::edge_harness::*;

/// Why some required tests of the published `http-cache-tests` 0.4.5 fail. That release
/// is older than the suite at cache-tests.fyi: run from its repository, the current suite
/// fails only `age-parse-suffix` and `interim-not-cached` of its required tests through
/// Cairn (the session note of issue 12 has the figures).
const OLD_AGE: &str = "this release expects an invalid or list-valued Age to make the response \
     stale; RFC 9111 §5.1 (and the suite's later releases) use the first member and ignore an \
     invalid one";
const OLD_502: &str = "this release reads the edge's own 502 (the origin closed the \
     connection and must-revalidate forbids serving stale) as a cached response; the suite's \
     later releases pass";
const SURROGATE: &str = "Surrogate-Control is not implemented (RFC 9213's CDN-Cache-Control \
     and Cairn-CDN-Cache-Control are)";
const OLD_304: &str = "this release expects a 304 to leave the stored field alone; RFC 9111 \
     §3.2 updates it (the suite's later releases pass)";

/// Required tests Cairn does not pass, and why.
const KNOWN_FAILURES: &[(&str, &str)] = &[
    ("age-parse-dup-0", OLD_AGE),
    ("age-parse-dup-0-twoline", OLD_AGE),
    ("age-parse-dup-old", OLD_AGE),
    ("age-parse-float", OLD_AGE),
    ("age-parse-negative", OLD_AGE),
    ("age-parse-nonnumeric", OLD_AGE),
    ("age-parse-numeric-parameter", OLD_AGE),
    ("age-parse-parameter", OLD_AGE),
    ("age-parse-prefix-twoline", OLD_AGE),
    ("age-parse-suffix", OLD_AGE),
    ("stale-close-must-revalidate", OLD_502),
    ("stale-close-no-cache", OLD_502),
    ("stale-close-proxy-revalidate", OLD_502),
    ("stale-close-s-maxage=2", OLD_502),
    ("surrogate-fresh-cc-nostore", SURROGATE),
    ("surrogate-max-age-0-expires", SURROGATE),
    ("surrogate-max-age-long-cc-max-age", SURROGATE),
    ("surrogate-no-store-cc-fresh", SURROGATE),
    ("304-etag-update-response-ETag", OLD_304),
    ("304-etag-update-response-Content-MD5", OLD_304),
    (
        "304-etag-update-response-Set-Cookie",
        "a 304's Set-Cookie is not stored while cookies are not keyed (one viewer's cookie \
         would reach every viewer of the object)",
    ),
];

/// Tests that fail to set up through Cairn, and why.
const KNOWN_SETUP_FAILURES: &[(&str, &str)] = &[
    (
        "invalidate-M-SEARCH",
        "M-SEARCH is not a method CloudFront passes: 405",
    ),
    (
        "invalidate-M-SEARCH-cl",
        "M-SEARCH is not a method CloudFront passes: 405",
    ),
    (
        "invalidate-M-SEARCH-failed",
        "M-SEARCH is not a method CloudFront passes: 405",
    ),
    (
        "stale-warning-become",
        "Warning (obsoleted by RFC 9111) is not generated",
    ),
    (
        "stale-warning-stored",
        "Warning (obsoleted by RFC 9111) is not generated",
    ),
    (
        "headers-store-Transfer-Encoding",
        "its setup sends a Transfer-Encoding the edge cannot decode, so the body's framing \
         is unknown and the response is passed through uncached",
    ),
    (
        "head-410-update",
        "the edge answers HEAD from the stored GET and never sends HEAD upstream",
    ),
];

/// Classifies the harness's results with its own rules (`determineTestResult`): prints
/// `{id: {"kind": required|optimal|check, "result": pass|fail|setup_fail|...}}`.
const CLASSIFY: &str = r#"
import fs from 'fs'
import { pathToFileURL } from 'url'
const [root, resultsFile] = process.argv.slice(2)
const load = async f => (await import(pathToFileURL(`${root}/${f}`)))
const tests = (await load('tests/index.mjs')).default
tests.push((await load('tests/surrogate-control.mjs')).default)
const display = await load('lib/display.mjs')
const results = JSON.parse(fs.readFileSync(resultsFile))
const names = { '✅': 'pass', '⛔️': 'fail', '⚠️': 'optional_fail', Y: 'yes', N: 'no',
  '🔹': 'setup_fail', '⁉️': 'harness_fail', '⚪️': 'dependency_fail', '↻': 'retry', '-': 'untested' }
const out = {}
for (const suite of tests) {
  for (const t of suite.tests) {
    if (!(t.id in results)) continue
    const symbol = display.determineTestResult(tests, t.id, results, false)[2]
    out[t.id] = { kind: t.kind || 'required', result: names[symbol] || symbol }
  }
}
console.log(JSON.stringify(out))
"#;

/// Where the harness is installed, if it is.
fn harness_root() -> Option<PathBuf> {
    let root = match std::env::var_os("CAIRN_CACHE_TESTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tools/cache-tests/node_modules/http-cache-tests"),
    };
    root.join("cli.mjs").is_file().then_some(root)
}

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The harness, or why the test is skipped (a panic under `CI=true`).
fn harness() -> Option<PathBuf> {
    let why = match (node_available(), harness_root()) {
        (true, Some(root)) => return Some(root),
        (false, _) => "node is not on PATH".to_string(),
        (true, None) => "the cache-tests harness is not installed (npm install --prefix \
             target/tools/cache-tests http-cache-tests@0.4.5, as .ci/run does)"
            .to_string(),
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("rfc_harness: {why} (required when CI=true)");
    }
    eprintln!("skipping rfc_harness: {why}");
    None
}

/// The harness's test server on `port`, killed on drop.
struct HarnessServer(Child);

impl Drop for HarnessServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(root: &Path, port: u16, dir: &Path) -> HarnessServer {
    let child = Command::new("node")
        .arg("server/server.mjs")
        .current_dir(root)
        .env("npm_config_protocol", "http")
        .env("npm_config_port", port.to_string())
        .env("npm_config_pidfile", dir.join("server.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the harness's server");
    let server = HarnessServer(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < WAIT,
            "the harness's server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Runs the harness's client against `base` (one test with `id`, or all) and returns its
/// raw results (test id → `true` or `[kind, message]`).
fn run_client(root: &Path, base: &str, id: &str) -> serde_json::Value {
    let mut child = Command::new("node")
        .args(["--no-warnings", "cli.mjs"])
        .current_dir(root)
        .env("npm_config_base", base)
        .env("npm_config_id", id)
        // Read when the line above is empty (the client expects to run under npm).
        .env("npm_package_config_id", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the harness's client");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("the harness's client did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if id.is_empty() {
        return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    }
    // A single test prints its outcome as text.
    serde_json::json!({ id: text.contains("✅") })
}

/// The harness's own classification of `results`.
fn classify(
    root: &Path,
    dir: &Path,
    results: &serde_json::Value,
) -> BTreeMap<String, (String, String)> {
    let results_file = dir.join("results.json");
    std::fs::write(&results_file, results.to_string()).unwrap();
    let script = dir.join("classify.mjs");
    std::fs::write(&script, CLASSIFY).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .arg(root)
        .arg(&results_file)
        .output()
        .expect("classifying the results");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(id, c)| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (id.clone(), (s("kind"), s("result")))
        })
        .collect()
}

#[test]
fn the_cache_tests_harness_runs_through_strict_quick_mode() {
    let Some(root) = harness() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server_port = free_port();
    let _server = start_server(&root, server_port, dir.path());
    let edge = Edge::quick(
        &format!("http://127.0.0.1:{server_port}"),
        dir.path(),
        &["--default-ttl", "0"],
    );
    let base = format!("http://{}", edge.addr);
    let results = run_client(&root, &base, "");
    let classes = classify(&root, dir.path(), &results);
    assert!(
        classes.len() > 300,
        "the harness ran {} tests",
        classes.len()
    );
    let known = |list: &[(&str, &str)], id: &str| list.iter().any(|(k, _)| *k == id);
    let mut unexpected = Vec::new();
    for (id, (kind, result)) in &classes {
        let failed_required = kind == "required" && result != "pass";
        if result == "setup_fail" && !known(KNOWN_SETUP_FAILURES, id) {
            unexpected.push(format!("{id}: setup failed: {}", results[id]));
        } else if failed_required && result != "setup_fail" && !known(KNOWN_FAILURES, id) {
            // Once more alone, to tell a regression from a slow moment.
            let again = run_client(&root, &base, id);
            if again[id] != true {
                unexpected.push(format!("{id}: {}", results[id]));
            }
        }
    }
    let passed = classes.values().filter(|(_, r)| r == "pass").count();
    eprintln!(
        "cache-tests through cairn: {passed} of {} tests pass",
        classes.len()
    );
    assert!(
        unexpected.is_empty(),
        "cache-tests failures beyond the known ones:\n{}",
        unexpected.join("\n")
    );
}
