//! `GET /inspect/...`: what `cairn cache-inspect` reports offline, from the running edge
//! (`cairn cache-inspect --admin URL ...`). The store is shared with the edge; reads run
//! on the blocking pool.
//!
//! - `GET /inspect/summary`
//! - `GET /inspect/segments`
//! - `GET /inspect/ls?distribution=&prefix=&limit=` (limit 0: all; default 1000)
//! - `GET /inspect/show?key_hex=HEX`, `?url=URL&distribution=ID`, or `?url=URL` (keyed
//!   by the running configuration; `header=NAME:VALUE` repeatable)
//! - `GET /inspect/explain?url=URL` (`header=NAME:VALUE` repeatable)

use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};

use super::{json, Admin};
use crate::body::BoxBody;
use crate::inspect_report as ij;

/// The decoded `name=value` pairs of a query string.
fn params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(n), dec(v))
        })
        .collect()
}

fn one<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// Serves `GET /inspect/{what}`.
pub async fn get(admin: &Arc<Admin>, what: &str, query: Option<&str>) -> http::Response<BoxBody> {
    let p = params(query);
    let a = admin.clone();
    let what = what.to_string();
    let done = tokio::task::spawn_blocking(move || answer(&a, &what, &p)).await;
    match done {
        Ok(Ok(v)) => json(StatusCode::OK, v),
        Ok(Err((status, e))) => json(status, json!({ "error": e })),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        ),
    }
}

type Answer = Result<Value, (StatusCode, String)>;

/// A report as the JSON the admin API sends.
fn to_json<T: serde::Serialize>(report: T) -> Answer {
    serde_json::to_value(report).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// 400 for an input that names nothing, 500 when the store failed.
fn failed(e: ij::ReportError) -> (StatusCode, String) {
    let status = if e.is_bad_input() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, e.to_string())
}

fn answer(admin: &Admin, what: &str, p: &[(String, String)]) -> Answer {
    let store = &admin.edge.store;
    let headers: Vec<String> = p
        .iter()
        .filter(|(n, _)| n == "header")
        .map(|(_, v)| v.clone())
        .collect();
    match what {
        "summary" => {
            let capacity = admin.edge.runtime().config.cache.capacity;
            to_json(ij::summary_report(store, Some(capacity)).map_err(failed)?)
        }
        "segments" => to_json(ij::segments_report(store).map_err(failed)?),
        "ls" => {
            let limit = match one(p, "limit") {
                Some(l) => l
                    .parse()
                    .map_err(|_| (StatusCode::BAD_REQUEST, format!("bad limit {l:?}")))?,
                None => 1000,
            };
            let (rows, _more) = ij::ls_rows(store, one(p, "distribution"), one(p, "prefix"), limit)
                .map_err(failed)?;
            to_json(ij::ls_report(&rows))
        }
        "show" => {
            let key = match (one(p, "key_hex"), one(p, "url"), one(p, "distribution")) {
                (Some(h), _, _) => ij::unhex(h).map_err(failed)?,
                (None, Some(url), Some(d)) => ij::distribution_key(d, url).map_err(failed)?,
                (None, Some(url), None) => {
                    let rt = admin.edge.runtime();
                    ij::config_key(&rt.config, url, &headers).map_err(failed)?
                }
                (None, None, _) => {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        "give key_hex=HEX or url=URL (with distribution=ID)".into(),
                    ))
                }
            };
            let found = if one(p, "format") == Some("lines") {
                ij::show_lines(store, &key).map_err(failed)?.map(to_json)
            } else {
                ij::show_report(store, &key).map_err(failed)?.map(to_json)
            };
            match found {
                Some(v) => v,
                None => Err((StatusCode::NOT_FOUND, ij::no_object(&key))),
            }
        }
        "explain" => {
            let Some(url) = one(p, "url") else {
                return Err((StatusCode::BAD_REQUEST, "give url=URL".into()));
            };
            let rt = admin.edge.runtime();
            let lines = one(p, "format") == Some("lines");
            let (report, rows) =
                ij::explain_report(store, &rt.config, url, &headers).map_err(failed)?;
            if lines {
                to_json(rows)
            } else {
                to_json(report)
            }
        }
        _ => Err((
            StatusCode::NOT_FOUND,
            format!(
                "no such inspect report {what:?} (summary, segments, ls, show, explain; \
                 verify, rebuild-index and cat are offline-only)"
            ),
        )),
    }
}
