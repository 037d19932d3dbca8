//! The edge's durable state without a config store: the distributions created through the
//! admin API, in a small sled database of the state directory. Each write is one atomic
//! sled transaction (the record and the revision counter together) flushed to disk before
//! it is acknowledged, so a `kill -9` at any moment loses no acknowledged write and never
//! leaves a half-written one to apply. Every record carries the revision that wrote it
//! (the API's ETag, for compare-and-swap updates) and a crc32 of its bytes; a record that
//! fails its check is reported by id and left out, never applied.
//!
//! Layout: key `dist/<id>` → `[1] ++ crc32(json) LE ++ json`, the JSON being
//! `{"revision": u64, "settings": {...}}`; key `revision` → the last revision, u64 LE.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sled::transaction::{ConflictableTransactionError, TransactionError};

const DIST_PREFIX: &[u8] = b"dist/";
const REVISION_KEY: &[u8] = b"revision";
const RECORD_VERSION: u8 = 1;
/// sled's page cache for this small database.
const CACHE_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state directory {} cannot be opened: {why}; move it aside to start without the distributions created through the API", .dir.display())]
    Open { dir: PathBuf, why: String },
    #[error("the state directory's database failed: {0}")]
    Db(#[from] sled::Error),
    #[error("distribution {0:?} already exists")]
    Exists(String),
    #[error("no distribution {0:?} was created through the API")]
    NotFound(String),
    #[error("distribution {id:?} is at revision {current}, not {expected}")]
    Stale {
        id: String,
        expected: u64,
        current: u64,
    },
}

/// One distribution the API created, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDistribution {
    #[serde(skip)]
    pub id: String,
    /// The revision of the write that made it what it is (its ETag).
    pub revision: u64,
    pub settings: Value,
}

/// The state directory's database.
pub struct StateStore {
    db: sled::Db,
    dir: PathBuf,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("dir", &self.dir)
            .finish()
    }
}

fn encode(d: &StoredDistribution) -> Vec<u8> {
    // A map of plain values always serialises.
    let json = serde_json::to_vec(d).unwrap_or_default();
    let mut out = Vec::with_capacity(json.len() + 5);
    out.push(RECORD_VERSION);
    out.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
    out.extend_from_slice(&json);
    out
}

fn decode(id: &str, bytes: &[u8]) -> Result<StoredDistribution, String> {
    let (&version, rest) = bytes.split_first().ok_or("the record is empty")?;
    if version != RECORD_VERSION {
        return Err(format!(
            "record version {version}, this edge reads {RECORD_VERSION}"
        ));
    }
    let (crc, json) = rest.split_at_checked(4).ok_or("the record is cut short")?;
    let crc = u32::from_le_bytes(crc.try_into().map_err(|_| "the record is cut short")?);
    if crc32fast::hash(json) != crc {
        return Err("its checksum does not match".into());
    }
    let mut d: StoredDistribution =
        serde_json::from_slice(json).map_err(|e| format!("it does not decode: {e}"))?;
    d.id = id.to_string();
    Ok(d)
}

fn key(id: &str) -> Vec<u8> {
    [DIST_PREFIX, id.as_bytes()].concat()
}

type TxResult<T> = Result<T, ConflictableTransactionError<StateError>>;

impl StateStore {
    /// Opens (creating) the state database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let failed = |why: String| StateError::Open {
            dir: dir.to_path_buf(),
            why,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let path = dir.join("db");
        // sled panics on some damaged files instead of returning an error.
        let opened = std::panic::catch_unwind(move || {
            sled::Config::new()
                .path(&path)
                .cache_capacity(CACHE_BYTES)
                .mode(sled::Mode::LowSpace)
                .open()
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(_) => return Err(failed("its files are damaged".into())),
        };
        Ok(StateStore {
            db,
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every distribution, in id order; a record that fails its check is logged by id and
    /// left out.
    pub fn distributions(&self) -> Result<Vec<StoredDistribution>, StateError> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(DIST_PREFIX) {
            let (k, v) = item?;
            let id = String::from_utf8_lossy(&k[DIST_PREFIX.len()..]).into_owned();
            match decode(&id, &v) {
                Ok(d) => out.push(d),
                Err(why) => {
                    tracing::error!(distribution = %id, dir = %self.dir.display(), "a stored distribution is unreadable ({why}); it is not applied")
                }
            }
        }
        Ok(out)
    }

    /// One distribution, if the API created it (and its record reads).
    pub fn get(&self, id: &str) -> Result<Option<StoredDistribution>, StateError> {
        Ok(self.db.get(key(id))?.and_then(|v| decode(id, &v).ok()))
    }

    /// Stores a new distribution; its revision.
    pub fn create(&self, id: &str, settings: &Value) -> Result<u64, StateError> {
        self.write(id, |current| match current {
            Some(_) => Err(StateError::Exists(id.to_string())),
            None => Ok(Some(settings.clone())),
        })
    }

    /// Replaces a distribution's settings, if it is still at revision `expected`.
    pub fn replace(&self, id: &str, expected: u64, settings: &Value) -> Result<u64, StateError> {
        self.write(id, |current| {
            Self::expect(id, current, expected)?;
            Ok(Some(settings.clone()))
        })
    }

    /// Deletes a distribution, if it is still at revision `expected`.
    pub fn delete(&self, id: &str, expected: u64) -> Result<u64, StateError> {
        self.write(id, |current| {
            Self::expect(id, current, expected)?;
            Ok(None)
        })
    }

    fn expect(id: &str, current: Option<u64>, expected: u64) -> Result<(), StateError> {
        match current {
            None => Err(StateError::NotFound(id.to_string())),
            Some(c) if c != expected => Err(StateError::Stale {
                id: id.to_string(),
                expected,
                current: c,
            }),
            Some(_) => Ok(()),
        }
    }

    /// One atomic write: `change` sees the current revision of `id` (None: absent) and
    /// says the new settings (None: delete). Durable when it returns; returns the new
    /// revision.
    fn write(
        &self,
        id: &str,
        change: impl Fn(Option<u64>) -> Result<Option<Value>, StateError>,
    ) -> Result<u64, StateError> {
        let k = key(id);
        let written = self.db.transaction(|tx| -> TxResult<u64> {
            // An unreadable record counts as revision 0: only a fresh create replaces it.
            let current = tx
                .get(&k)?
                .map(|v| decode(id, &v).map(|d| d.revision).unwrap_or(0));
            let next = match change(current) {
                Ok(next) => next,
                Err(e) => return Err(ConflictableTransactionError::Abort(e)),
            };
            let revision = match tx.get(REVISION_KEY)? {
                Some(v) => u64::from_le_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
                None => 0,
            } + 1;
            tx.insert(REVISION_KEY, &revision.to_le_bytes())?;
            match next {
                Some(settings) => {
                    let d = StoredDistribution {
                        id: id.to_string(),
                        revision,
                        settings,
                    };
                    tx.insert(k.as_slice(), encode(&d))?;
                }
                None => {
                    tx.remove(k.as_slice())?;
                }
            }
            Ok(revision)
        });
        let revision = match written {
            Ok(r) => r,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(StateError::Db(e)),
        };
        self.db.flush()?;
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_are_compared_and_swapped_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        let r1 = s.create("a", &json!({"id": "a"})).unwrap();
        assert!(matches!(
            s.create("a", &json!({})),
            Err(StateError::Exists(_))
        ));
        let r2 = s.create("b", &json!({"id": "b"})).unwrap();
        assert!(r2 > r1);
        assert!(matches!(
            s.replace("a", r1 + 100, &json!({})),
            Err(StateError::Stale { current, .. }) if current == r1
        ));
        let r3 = s
            .replace("a", r1, &json!({"id": "a", "enabled": false}))
            .unwrap();
        assert!(matches!(s.delete("b", r1), Err(StateError::Stale { .. })));
        s.delete("b", r2).unwrap();
        assert!(matches!(s.delete("b", r2), Err(StateError::NotFound(_))));
        drop(s);
        let s = StateStore::open(dir.path()).unwrap();
        let all = s.distributions().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].id.as_str(), all[0].revision), ("a", r3));
        assert_eq!(all[0].settings["enabled"], false);
        assert!(
            s.create("c", &json!({})).unwrap() > r3,
            "revisions only grow"
        );
    }

    #[test]
    fn a_damaged_record_is_left_out_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(dir.path()).unwrap();
        s.create("good", &json!({"id": "good"})).unwrap();
        s.create("bad", &json!({"id": "bad"})).unwrap();
        let mut v = s.db.get(key("bad")).unwrap().unwrap().to_vec();
        let last = v.len() - 2;
        v[last] ^= 0x20;
        s.db.insert(key("bad"), v).unwrap();
        let ids: Vec<String> = s
            .distributions()
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["good"]);
        assert_eq!(
            decode("x", &[2, 0, 0, 0, 0]).unwrap_err(),
            "record version 2, this edge reads 1"
        );
        assert!(decode("x", &[1, 0]).is_err());
    }
}
