//! Invalidations (`POST /invalidations`, `GET /invalidations/{id}`) with CloudFront's path
//! syntax, and their journal.
//!
//! A request is validated and turned into store key prefixes (an exact path removes every
//! key of that path, `/x*` every key whose path starts with `/x`), appended to
//! `<cache dir>/invalidations.jsonl` and fsynced before the 201 answer, then run in a
//! blocking task. Once done, a "done" line records it; the removals themselves are
//! durable through the store's prefix tombstones. At startup [`Invalidations::open`]
//! reads the journal back, keeps the recent entries, and [`Invalidations::replay`] runs
//! the ones that never completed (removing by prefix is idempotent).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache_key::{exact_path_prefix, normalize_path, path_prefix, root_object_path};
use crate::config::Distribution;
use crate::store::Store;

/// Paths accepted in one request (CloudFront's limit for a single invalidation).
pub const MAX_PATHS: usize = 3000;
/// Completed invalidations remembered across restarts (the journal is compacted to these).
const KEEP_COMPLETED: usize = 1000;
/// Objects listed per page when counting a dry run.
const LIST_PAGE: usize = 1000;
/// Pages listed per prefix at most when counting a dry run.
const MAX_LIST_PAGES: usize = 10_000;

pub const JOURNAL: &str = "invalidations.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Create {
        id: String,
        distribution: String,
        paths: Vec<String>,
        /// Store key prefixes, hex.
        prefixes: Vec<String>,
    },
    Done {
        id: String,
        objects: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "InProgress",
            Status::Completed => "Completed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub distribution: String,
    pub paths: Vec<String>,
    prefixes: Vec<Vec<u8>>,
    pub status: Status,
    pub objects: u64,
    /// Creation order (for compaction).
    seq: u64,
}

impl Entry {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "distribution": self.distribution,
            "status": self.status.as_str(),
            "paths": self.paths,
            "objects": self.objects,
        })
    }
}

/// The invalidations of this edge and their journal.
pub struct Invalidations {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    journal: File,
    entries: HashMap<String, Entry>,
    /// Last id number handed out (time in ms << 16 | counter).
    last_id: u64,
    seq: u64,
}

/// A validated request: its normalised paths and the key prefixes to remove.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub paths: Vec<String>,
    pub prefixes: Vec<Vec<u8>>,
}

/// Checks CloudFront's path syntax and builds the key prefixes for distribution `d`.
/// The error names the offending path.
pub fn plan(d: &Distribution, paths: &[String]) -> Result<Plan, String> {
    if paths.is_empty() {
        return Err("`paths` must list at least one path".into());
    }
    if paths.len() > MAX_PATHS {
        return Err(format!(
            "at most {MAX_PATHS} paths per invalidation (got {})",
            paths.len()
        ));
    }
    let mut prefixes = Vec::with_capacity(paths.len());
    for p in paths {
        prefixes.push(prefix_of(d, p).map_err(|m| format!("invalid path {p:?}: {m}"))?);
    }
    Ok(Plan {
        paths: paths.to_vec(),
        prefixes: minimal(prefixes),
    })
}

fn prefix_of(d: &Distribution, p: &str) -> Result<Vec<u8>, String> {
    if !p.starts_with('/') {
        return Err("it must start with '/'".into());
    }
    if p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("spaces and control characters must be percent-encoded".into());
    }
    if p.contains(['?', '#']) {
        return Err("a path cannot carry a query string or fragment (invalidating a path removes every query string variant)".into());
    }
    let (body, wildcard) = match p.strip_suffix('*') {
        Some(b) => (b, true),
        None => (p, false),
    };
    if body.contains('*') {
        return Err("'*' is allowed only as the last character".into());
    }
    let mut norm = normalize_path(body).map_err(|e| e.to_string())?;
    if wildcard {
        return Ok(path_prefix(&d.id, &norm));
    }
    if norm == "/" {
        if let Some(root) = &d.default_root_object {
            norm = root_object_path(root).map_err(|e| e.to_string())?;
        }
    }
    Ok(exact_path_prefix(&d.id, &norm))
}

/// Drops duplicates and prefixes covered by a shorter one.
fn minimal(mut prefixes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    prefixes.sort();
    prefixes.dedup();
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        // Sorted: a covering prefix sorts right before everything it covers.
        if out.last().is_some_and(|last| p.starts_with(last)) {
            continue;
        }
        out.push(p);
    }
    out
}

/// How many live objects the prefixes match (listing a bounded number of pages each).
pub fn count(store: &Store, prefixes: &[Vec<u8>]) -> Result<u64, String> {
    let mut n = 0u64;
    for prefix in prefixes {
        let mut after: Option<Vec<u8>> = None;
        for _ in 0..MAX_LIST_PAGES {
            let page = store
                .list(prefix, after.as_deref(), LIST_PAGE)
                .map_err(|e| e.to_string())?;
            n += page.len() as u64;
            match page.last() {
                Some(last) if page.len() == LIST_PAGE => after = Some(last.key.clone()),
                _ => break,
            }
        }
    }
    Ok(n)
}

/// Removes every object under the prefixes (durably); returns how many were removed.
fn remove(store: &Store, prefixes: &[Vec<u8>]) -> Result<u64, String> {
    let mut n = 0;
    for p in prefixes {
        n += store.remove_prefix(p).map_err(|e| e.to_string())?;
    }
    Ok(n)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn id_number(id: &str) -> Option<u64> {
    u64::from_str_radix(id.strip_prefix('I')?, 16).ok()
}

fn line_text(l: &Line) -> String {
    let mut s = serde_json::to_string(l).unwrap_or_default();
    s.push('\n');
    s
}

fn create_line(e: &Entry) -> Line {
    Line::Create {
        id: e.id.clone(),
        distribution: e.distribution.clone(),
        paths: e.paths.clone(),
        prefixes: e.prefixes.iter().map(|p| hex(p)).collect(),
    }
}

impl Invalidations {
    /// Reads (and compacts) the journal in `dir`, creating it if absent.
    pub fn open(dir: &Path) -> std::io::Result<Invalidations> {
        let path = dir.join(JOURNAL);
        let mut entries: HashMap<String, Entry> = HashMap::new();
        let mut last_id = 0u64;
        let mut seq = 0u64;
        match File::open(&path) {
            Ok(f) => {
                for (i, line) in BufReader::new(f).lines().enumerate() {
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    // A torn last line (crash mid-append, before the fsync) was never
                    // acknowledged: skipping it is correct.
                    let parsed: Line = match serde_json::from_str(&line) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(line = i + 1, error = %e, "skipping an unreadable invalidation journal line");
                            continue;
                        }
                    };
                    match parsed {
                        Line::Create {
                            id,
                            distribution,
                            paths,
                            prefixes,
                        } => {
                            let Some(prefixes) = prefixes
                                .iter()
                                .map(|p| unhex(p))
                                .collect::<Option<Vec<_>>>()
                            else {
                                tracing::warn!(
                                    line = i + 1,
                                    "skipping an invalidation with a bad prefix"
                                );
                                continue;
                            };
                            last_id = last_id.max(id_number(&id).unwrap_or(0));
                            seq += 1;
                            entries.insert(
                                id.clone(),
                                Entry {
                                    id,
                                    distribution,
                                    paths,
                                    prefixes,
                                    status: Status::InProgress,
                                    objects: 0,
                                    seq,
                                },
                            );
                        }
                        Line::Done { id, objects } => {
                            if let Some(e) = entries.get_mut(&id) {
                                e.status = Status::Completed;
                                e.objects = objects;
                            }
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Keep every unfinished entry and the most recent completed ones.
        let mut completed: Vec<_> = entries
            .values()
            .filter(|e| e.status == Status::Completed)
            .map(|e| (e.seq, e.id.clone()))
            .collect();
        completed.sort();
        let drop_n = completed.len().saturating_sub(KEEP_COMPLETED);
        for (_, id) in completed.into_iter().take(drop_n) {
            entries.remove(&id);
        }
        let mut ordered: Vec<&Entry> = entries.values().collect();
        ordered.sort_by_key(|e| e.seq);
        let mut text = String::new();
        for e in ordered {
            text.push_str(&line_text(&create_line(e)));
            if e.status == Status::Completed {
                text.push_str(&line_text(&Line::Done {
                    id: e.id.clone(),
                    objects: e.objects,
                }));
            }
        }
        let tmp = dir.join(format!("{JOURNAL}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()?;
        let journal = OpenOptions::new().append(true).open(&path)?;
        Ok(Invalidations {
            path,
            state: Mutex::new(State {
                journal,
                entries,
                last_id,
                seq,
            }),
        })
    }

    pub fn journal_path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new invalidation durably (append + fsync) and returns its entry, still
    /// InProgress; the caller runs it with [`Invalidations::run`]. Blocking.
    pub fn create(&self, distribution: &str, plan: Plan) -> std::io::Result<Entry> {
        let mut st = self.lock();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let n = (now_ms << 16).max(st.last_id + 1);
        st.last_id = n;
        st.seq += 1;
        let e = Entry {
            id: format!("I{n:016X}"),
            distribution: distribution.to_string(),
            paths: plan.paths,
            prefixes: plan.prefixes,
            status: Status::InProgress,
            objects: 0,
            seq: st.seq,
        };
        st.journal
            .write_all(line_text(&create_line(&e)).as_bytes())?;
        st.journal.sync_data()?;
        st.entries.insert(e.id.clone(), e.clone());
        Ok(e)
    }

    pub fn get(&self, id: &str) -> Option<Entry> {
        self.lock().entries.get(id).cloned()
    }

    /// Runs invalidation `id` to completion and records it. Blocking.
    pub fn run(&self, store: &Store, id: &str) {
        let Some(e) = self.get(id) else { return };
        let objects = match remove(store, &e.prefixes) {
            Ok(n) => n,
            Err(err) => {
                // Stays InProgress: the next start replays it.
                tracing::error!(id, error = %err, "invalidation failed");
                return;
            }
        };
        let mut st = self.lock();
        let line = line_text(&Line::Done {
            id: id.to_string(),
            objects,
        });
        if let Err(err) = st
            .journal
            .write_all(line.as_bytes())
            .and_then(|_| st.journal.sync_data())
        {
            // The removals are durable anyway; a replay would only redo them.
            tracing::warn!(id, error = %err, "could not record a completed invalidation");
        }
        if let Some(e) = st.entries.get_mut(id) {
            e.status = Status::Completed;
            e.objects = objects;
        }
        tracing::info!(id, distribution = %e.distribution, objects, "invalidation completed");
    }

    /// Runs every invalidation the journal left unfinished. Blocking.
    pub fn replay(self: &Arc<Self>, store: &Store) -> usize {
        let mut ids: Vec<(u64, String)> = self
            .lock()
            .entries
            .values()
            .filter(|e| e.status == Status::InProgress)
            .map(|e| (e.seq, e.id.clone()))
            .collect();
        ids.sort();
        for (_, id) in &ids {
            tracing::info!(id, "replaying an unfinished invalidation");
            self.run(store, id);
        }
        ids.len()
    }
}

// ---- HTTP ----

/// Largest request body accepted by `POST /invalidations`.
const MAX_BODY: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    distribution: String,
    paths: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

fn error(status: http::StatusCode, msg: impl Into<String>) -> http::Response<crate::body::BoxBody> {
    super::json(status, serde_json::json!({ "error": msg.into() }))
}

/// `POST /invalidations`.
pub async fn post(
    admin: &Arc<super::Admin>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<crate::body::BoxBody> {
    use http::StatusCode;
    use http_body_util::BodyExt;
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let r: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"distribution\": ID, \"paths\": [...], \"dry_run\": bool}}: {e}"
                ),
            )
        }
    };
    let rt = admin.edge.runtime();
    let Some(d) = rt
        .config
        .distributions
        .iter()
        .find(|d| d.id == r.distribution)
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no distribution {:?}", r.distribution),
        );
    };
    let plan = match plan(d, &r.paths) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let a = admin.clone();
    if r.dry_run {
        let paths = plan.paths.clone();
        let n = tokio::task::spawn_blocking(move || count(&a.edge.store, &plan.prefixes)).await;
        return match n {
            Ok(Ok(n)) => super::json(
                StatusCode::OK,
                serde_json::json!({
                    "dry_run": true,
                    "distribution": r.distribution,
                    "status": "Completed",
                    "paths": paths,
                    "objects": n,
                }),
            ),
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
    }
    let dist = r.distribution.clone();
    let created = tokio::task::spawn_blocking(move || {
        let e = a.invalidations.create(&dist, plan)?;
        let id = e.id.clone();
        let b = a.clone();
        // The work goes on after the answer.
        tokio::task::spawn_blocking(move || b.invalidations.run(&b.edge.store, &id));
        Ok::<_, std::io::Error>(e)
    })
    .await;
    let e = match created {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("recording the invalidation: {e}"),
            )
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    // It may already be done.
    let e = admin.invalidations.get(&e.id).unwrap_or(e);
    let mut resp = super::json(StatusCode::CREATED, e.to_json());
    if let Ok(v) = http::HeaderValue::from_str(&format!("/invalidations/{}", e.id)) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// `GET /invalidations/{id}`.
pub fn get(admin: &super::Admin, id: &str) -> http::Response<crate::body::BoxBody> {
    match admin.invalidations.get(id) {
        Some(e) => super::json(http::StatusCode::OK, e.to_json()),
        None => error(
            http::StatusCode::NOT_FOUND,
            format!("no invalidation {id:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(root: Option<&str>) -> Distribution {
        let c = crate::config::quick(&crate::config::QuickOptions {
            origin: "http://127.0.0.1:1".into(),
            ..Default::default()
        })
        .unwrap();
        let mut d = c.distributions[0].clone();
        d.default_root_object = root.map(str::to_string);
        d
    }

    fn paths(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn path_syntax() {
        let d = dist(None);
        for bad in ["img/x", "/a*b", "/**", "", "*", "/a b", "/a?x=1", "/%zz"] {
            let e = plan(&d, &paths(&[bad])).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(plan(&d, &[]).is_err());
        let p = plan(&d, &paths(&["/a.jpg", "/images/*", "/*"])).unwrap();
        assert_eq!(p.prefixes, vec![path_prefix("default", "/")]);
        let p = plan(&d, &paths(&["/images/*", "/images/1.jpg", "/b"])).unwrap();
        assert_eq!(
            p.prefixes,
            vec![
                exact_path_prefix("default", "/b"),
                path_prefix("default", "/images/")
            ]
        );
        // Normalised like viewer paths.
        let p = plan(&d, &paths(&["/a/../%7Eb"])).unwrap();
        assert_eq!(p.prefixes, vec![exact_path_prefix("default", "/~b")]);
    }

    #[test]
    fn root_object() {
        let d = dist(Some("index.html"));
        let p = plan(&d, &paths(&["/"])).unwrap();
        assert_eq!(
            p.prefixes,
            vec![exact_path_prefix("default", "/index.html")]
        );
    }

    #[test]
    fn journal_ids_and_replay_state() {
        let dir = tempfile::tempdir().unwrap();
        let d = dist(None);
        let inv = Invalidations::open(dir.path()).unwrap();
        let a = inv
            .create("default", plan(&d, &paths(&["/a"])).unwrap())
            .unwrap();
        let b = inv
            .create("default", plan(&d, &paths(&["/b*"])).unwrap())
            .unwrap();
        assert_ne!(a.id, b.id);
        {
            // Mark a done by hand (no store needed).
            let mut st = inv.lock();
            let line = line_text(&Line::Done {
                id: a.id.clone(),
                objects: 3,
            });
            st.journal.write_all(line.as_bytes()).unwrap();
        }
        drop(inv);
        // A torn line at the end is skipped.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .unwrap();
        f.write_all(b"{\"op\":\"create\",\"id\"").unwrap();
        drop(f);
        let inv = Invalidations::open(dir.path()).unwrap();
        let ga = inv.get(&a.id).unwrap();
        assert_eq!((ga.status, ga.objects), (Status::Completed, 3));
        let gb = inv.get(&b.id).unwrap();
        assert_eq!(gb.status, Status::InProgress);
        assert_eq!(gb.prefixes, vec![path_prefix("default", "/b")]);
        let c = inv
            .create("default", plan(&d, &paths(&["/c"])).unwrap())
            .unwrap();
        assert!(id_number(&c.id).unwrap() > id_number(&b.id).unwrap());
    }
}
