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
//!
//! A request may also (or instead) name cache tags (`"tags": [...]`, the origin's
//! `Surrogate-Key` / `Cache-Tag`): the job walks every object of the store and removes
//! (per-key tombstones) those of the distribution carrying one of them. Tag jobs are
//! journalled the same way (journal lines without `tags` are path-only jobs).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache_key::{exact_path_prefix, normalize_path, path_prefix, root_object_path};
use crate::config::Distribution;
use crate::httpcache::tags::tag_problem;
use crate::store::{Store, StoreError};

/// Paths accepted in one request (CloudFront's limit for a single invalidation).
pub const MAX_PATHS: usize = 3000;
/// Tags accepted in one request (Fastly's batch purge limit).
pub const MAX_TAGS: usize = 256;
/// Completed invalidations remembered across restarts (the journal is compacted to these).
const KEEP_COMPLETED: usize = 1000;

pub const JOURNAL: &str = "invalidations.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Create {
        id: String,
        distribution: String,
        #[serde(default)]
        paths: Vec<String>,
        /// Store key prefixes, hex.
        #[serde(default)]
        prefixes: Vec<String>,
        /// Cache tags (absent from path-only lines, and from journals written before tags).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
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
    pub tags: Vec<String>,
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
            "tags": self.tags,
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

/// A validated request: its normalised paths, the key prefixes to remove, and the cache
/// tags whose objects to remove.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub paths: Vec<String>,
    pub prefixes: Vec<Vec<u8>>,
    pub tags: Vec<String>,
}

/// Why an invalidation request is refused (400) or could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum InvalidationError {
    #[error("`paths` or `tags` must list at least one path or tag")]
    Empty,
    #[error("at most {MAX_PATHS} paths per invalidation (got {0})")]
    TooManyPaths(usize),
    #[error("at most {MAX_TAGS} tags per invalidation (got {0})")]
    TooManyTags(usize),
    #[error("invalid path {path:?}: {why}")]
    Path { path: String, why: String },
    #[error("invalid tag {tag:?}: {why}")]
    Tag { tag: String, why: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks CloudFront's path syntax and the tags, and builds the key prefixes for
/// distribution `d`. At least one path or tag is needed. The error names the offending
/// path or tag.
pub fn plan(
    d: &Distribution,
    paths: &[String],
    tags: &[String],
) -> Result<Plan, InvalidationError> {
    if paths.is_empty() && tags.is_empty() {
        return Err(InvalidationError::Empty);
    }
    if paths.len() > MAX_PATHS {
        return Err(InvalidationError::TooManyPaths(paths.len()));
    }
    if tags.len() > MAX_TAGS {
        return Err(InvalidationError::TooManyTags(tags.len()));
    }
    let mut prefixes = Vec::with_capacity(paths.len());
    for p in paths {
        prefixes.push(prefix_of(d, p).map_err(|why| InvalidationError::Path {
            path: p.clone(),
            why,
        })?);
    }
    let mut uniq: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if let Some(why) = tag_problem(t) {
            return Err(InvalidationError::Tag {
                tag: t.clone(),
                why,
            });
        }
        if !uniq.contains(t) {
            uniq.push(t.clone());
        }
    }
    Ok(Plan {
        paths: paths.to_vec(),
        prefixes: minimal(prefixes),
        tags: uniq,
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

/// How many live objects of `distribution` the plan matches: those under its prefixes
/// (listing a bounded number of pages each) plus the others carrying one of its tags.
pub fn count(store: &Store, distribution: &str, plan: &Plan) -> Result<u64, StoreError> {
    let n = count_prefixes(store, &plan.prefixes)?;
    let tagged = tagged_keys(store, distribution, &plan.tags, &plan.prefixes)?;
    Ok(n + tagged.len() as u64)
}

/// The keys of the live objects of `distribution` carrying one of `tags`, except those
/// under one of `skip` (walks the whole store).
fn tagged_keys(
    store: &Store,
    distribution: &str,
    tags: &[String],
    skip: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, StoreError> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: std::collections::HashSet<&str> = tags.iter().map(String::as_str).collect();
    let mut keys = Vec::new();
    for o in store.iter() {
        let o = o?;
        if o.distribution == distribution
            && o.tags.iter().any(|t| wanted.contains(t.as_str()))
            && !skip.iter().any(|p| o.key.starts_with(p))
        {
            keys.push(o.key);
        }
    }
    Ok(keys)
}

fn count_prefixes(store: &Store, prefixes: &[Vec<u8>]) -> Result<u64, StoreError> {
    // One pass over the store for all prefixes (the directory is not in key order).
    let mut n = 0u64;
    for o in store.iter() {
        let o = o?;
        if prefixes.iter().any(|p| o.key.starts_with(p)) {
            n += 1;
        }
    }
    Ok(n)
}

/// Removes every object under the prefixes, then every object of `distribution` carrying
/// one of the tags (durably); returns how many were removed.
fn remove(
    store: &Store,
    distribution: &str,
    prefixes: &[Vec<u8>],
    tags: &[String],
) -> Result<u64, StoreError> {
    let mut n = 0;
    for p in prefixes {
        n += store.remove_prefix(p)?;
    }
    // Collected first, removed after the walk (the walk pages through the index).
    for key in tagged_keys(store, distribution, tags, &[])? {
        if store.remove(&key)? {
            n += 1;
        }
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
        tags: e.tags.clone(),
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
                            tags,
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
                                    tags,
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
            tags: plan.tags,
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
        let objects = match remove(store, &e.distribution, &e.prefixes, &e.tags) {
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
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
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
                    "expected {{\"distribution\": ID, \"paths\": [...], \"tags\": [...], \"dry_run\": bool}}: {e}"
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
    let plan = match plan(d, &r.paths, &r.tags) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let a = admin.clone();
    if r.dry_run {
        let (paths, tags) = (plan.paths.clone(), plan.tags.clone());
        let dist = r.distribution.clone();
        let n = tokio::task::spawn_blocking(move || count(&a.edge.store, &dist, &plan)).await;
        return match n {
            Ok(Ok(n)) => super::json(
                StatusCode::OK,
                serde_json::json!({
                    "dry_run": true,
                    "distribution": r.distribution,
                    "status": "Completed",
                    "paths": paths,
                    "tags": tags,
                    "objects": n,
                }),
            ),
            Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
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
            let e = plan(&d, &paths(&[bad]), &[]).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(plan(&d, &[], &[]).is_err());
        let p = plan(&d, &paths(&["/a.jpg", "/images/*", "/*"]), &[]).unwrap();
        assert_eq!(p.prefixes, vec![path_prefix("default", "/")]);
        let p = plan(&d, &paths(&["/images/*", "/images/1.jpg", "/b"]), &[]).unwrap();
        assert_eq!(
            p.prefixes,
            vec![
                exact_path_prefix("default", "/b"),
                path_prefix("default", "/images/")
            ]
        );
        // Normalised like viewer paths.
        let p = plan(&d, &paths(&["/a/../%7Eb"]), &[]).unwrap();
        assert_eq!(p.prefixes, vec![exact_path_prefix("default", "/~b")]);
    }

    #[test]
    fn root_object() {
        let d = dist(Some("index.html"));
        let p = plan(&d, &paths(&["/"]), &[]).unwrap();
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
            .create("default", plan(&d, &paths(&["/a"]), &[]).unwrap())
            .unwrap();
        let b = inv
            .create("default", plan(&d, &paths(&["/b*"]), &[]).unwrap())
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
            .create("default", plan(&d, &paths(&["/c"]), &[]).unwrap())
            .unwrap();
        assert!(id_number(&c.id).unwrap() > id_number(&b.id).unwrap());
    }

    #[test]
    fn tags_are_checked_and_deduplicated() {
        let d = dist(None);
        let p = plan(&d, &[], &paths(&["a", "b", "a"])).unwrap();
        assert_eq!((p.tags, p.prefixes.len()), (paths(&["a", "b"]), 0));
        let long = "x".repeat(129);
        for bad in ["", "a b", "a\tb", "a\u{7f}", long.as_str()] {
            let e = plan(&d, &paths(&["/ok"]), &paths(&["fine", bad])).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(plan(&d, &[], &many).is_err());
    }

    #[test]
    fn journal_keeps_tags_and_reads_old_lines() {
        let dir = tempfile::tempdir().unwrap();
        let d = dist(None);
        let inv = Invalidations::open(dir.path()).unwrap();
        let a = inv
            .create("default", plan(&d, &[], &paths(&["product-1"])).unwrap())
            .unwrap();
        drop(inv);
        // A line written before tags existed.
        let old = format!(
            "{{\"op\":\"create\",\"id\":\"I0000000000000001\",\"distribution\":\"default\",\"paths\":[\"/x\"],\"prefixes\":[\"{}\"]}}\n",
            hex(&exact_path_prefix("default", "/x"))
        );
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .unwrap();
        f.write_all(old.as_bytes()).unwrap();
        drop(f);
        let inv = Invalidations::open(dir.path()).unwrap();
        let ga = inv.get(&a.id).unwrap();
        assert_eq!(
            (ga.tags, ga.status),
            (paths(&["product-1"]), Status::InProgress)
        );
        assert!(ga.paths.is_empty());
        let old = inv.get("I0000000000000001").unwrap();
        assert!(old.tags.is_empty());
        assert_eq!(old.prefixes, vec![exact_path_prefix("default", "/x")]);
        // Path-only lines are written without `tags`.
        let text = std::fs::read_to_string(dir.path().join(JOURNAL)).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("I0000000000000001"))
            .unwrap();
        assert!(!line.contains("tags"), "{line}");
    }

    #[test]
    fn tag_jobs_remove_tagged_objects_of_the_distribution() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::store::StoreConfig::new(dir.path().join("s"), 64 * crate::store::MIB);
        cfg.segment_size = 4 * crate::store::MIB;
        cfg.background_interval = None;
        let store = Store::open(cfg).unwrap();
        let far = SystemTime::now() + std::time::Duration::from_secs(3600);
        let put = |key: &str, dist: &str, tags: &[&str]| {
            store
                .insert(
                    crate::store::ObjectSpec {
                        key: key.as_bytes().to_vec(),
                        distribution: dist.into(),
                        tags: paths(tags),
                        meta: Vec::new(),
                        stored_at: SystemTime::now(),
                        expires_at: far,
                    },
                    key.as_bytes(),
                )
                .unwrap();
        };
        put("k1", "default", &["p1", "all"]);
        put("k2", "default", &["p2", "all"]);
        put("k3", "other", &["p1"]);
        put("k4", "default", &[]);
        let d = dist(None);
        let p = plan(&d, &[], &paths(&["all"])).unwrap();
        assert_eq!(count(&store, "default", &p).ok(), Some(2));
        let inv = Invalidations::open(dir.path()).unwrap();
        let e = inv
            .create("default", plan(&d, &[], &paths(&["p1"])).unwrap())
            .unwrap();
        inv.run(&store, &e.id);
        let e = inv.get(&e.id).unwrap();
        assert_eq!((e.status, e.objects), (Status::Completed, 1));
        assert!(store.info(b"k1").unwrap().is_none());
        for k in ["k2", "k3", "k4"] {
            assert!(store.info(k.as_bytes()).unwrap().is_some(), "{k}");
        }
    }
}
