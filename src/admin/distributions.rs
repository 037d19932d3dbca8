//! The distribution API on the admin listener, after CloudFront's: `POST /distributions`
//! (201 with the assigned domain, status InProgress, ETag and `Location`),
//! `GET /distributions`, `GET /distributions/{id}` (with `ETag`),
//! `PUT /distributions/{id}` and `DELETE /distributions/{id}` (both need `If-Match` with
//! the current ETag: 428 without, 412 on a mismatch; a delete only once disabled and
//! Deployed), and `GET /distributions/{id}/status`.
//!
//! A body has the fields of a `[[distribution]]` block and is checked by the same code
//! (`config::check_distribution`): 400 with one `field.path: message` per problem. Ids and
//! host names are unique across the file and the API (409 naming both). Distributions of
//! the configuration file are listed and shown, and read-only here (409 naming the file).
//! A write is durable before it is answered, then applied in the background; the status is
//! Deployed once the running configuration holds its revision.

use std::sync::Arc;

use http::header::{HeaderValue, ETAG, IF_MATCH, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{json, Admin};
use crate::body::BoxBody;
use crate::config::{check_distribution, settings_of, ConfigErrors, Distribution};
use crate::control::{self, StateError};
use crate::edge::{DistRuntime, Runtime};

/// Largest body accepted.
const MAX_BODY: usize = 1 << 20;

/// Routes `/distributions...`; None for a path that is not one of these.
pub async fn handle(
    admin: &Arc<Admin>,
    req: Request<Incoming>,
    path: &str,
) -> Option<Response<BoxBody>> {
    let rest = path.strip_prefix("/distributions")?;
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let answered = match (&method, parts.as_slice()) {
        (&Method::GET, []) => Ok(list(admin)),
        (&Method::POST, []) => create(admin, req).await,
        (&Method::GET, [id]) => show(admin, id),
        (&Method::PUT, [id]) => update(admin, id.to_string(), req).await,
        (&Method::DELETE, [id]) => delete(admin, id.to_string(), req).await,
        (&Method::GET, [id, "status"]) => status(admin, id),
        _ => return None,
    };
    Some(answered.unwrap_or_else(ApiError::into_response))
}

/// A refused request: its status, CloudFront's error code and what to do.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `field.path: message`, one per problem of a body.
    problems: Vec<String>,
}

type Answer = Result<Response<BoxBody>, ApiError>;

impl ApiError {
    fn into_response(self) -> Response<BoxBody> {
        let mut v = json!({ "error": self.code, "message": self.message });
        if !self.problems.is_empty() {
            v["problems"] = json!(self.problems);
        }
        json(self.status, v)
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        problems: Vec::new(),
    }
}

/// One `field.path: message` line per problem.
fn problems(e: &ConfigErrors) -> ApiError {
    let lines: Vec<String> = e
        .problems
        .iter()
        .map(|p| {
            if p.path.is_empty() {
                p.message.clone()
            } else {
                format!("{}: {}", p.path, p.message)
            }
        })
        .collect();
    ApiError {
        problems: lines.clone(),
        ..error(StatusCode::BAD_REQUEST, "InvalidArgument", lines.join("; "))
    }
}

fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

/// The revision an `If-Match` names; Err is the answer to give.
fn if_match(req: &Request<Incoming>) -> Result<u64, ApiError> {
    let Some(v) = req.headers().get(IF_MATCH) else {
        let msg = "this request needs If-Match with the distribution's current ETag";
        return Err(error(
            StatusCode::PRECONDITION_REQUIRED,
            "PreconditionRequired",
            msg,
        ));
    };
    let text = v.to_str().unwrap_or("");
    let tag = text.trim().trim_start_matches("W/").trim_matches('"');
    tag.parse().map_err(|_| {
        let msg = format!("If-Match {text:?} is not an ETag this API gave");
        error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", msg)
    })
}

async fn body_json(req: Request<Incoming>) -> Result<Value, ApiError> {
    let bytes = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                format!("reading the body: {e}"),
            ))
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        let msg = format!("the body must be the distribution's settings as JSON: {e}");
        error(StatusCode::BAD_REQUEST, "InvalidArgument", msg)
    })
}

/// Where a distribution of the running configuration came from, and its revision.
enum Origin {
    File,
    Api(u64),
}

fn origin_of(rt: &Runtime, id: &str) -> Origin {
    match rt.api_revisions.get(id) {
        Some(r) => Origin::Api(*r),
        None => Origin::File,
    }
}

/// The view of one distribution: what the API answers for it.
fn view(admin: &Admin, rt: &Runtime, d: &Distribution, stored: Option<u64>) -> Value {
    let applied = rt.api_revisions.get(&d.id).copied();
    let (source, revision) = match (stored, applied) {
        (Some(r), _) => ("api", r),
        (None, Some(r)) => ("api", r),
        (None, None) => ("config", 0),
    };
    let deployed = source == "config" || applied == Some(revision);
    json!({
        "id": d.id,
        "domain_name": d.assigned_domain(&rt.config.edge.domain),
        "aliases": d.aliases,
        "enabled": d.enabled,
        "status": if deployed { "Deployed" } else { "InProgress" },
        "etag": etag(revision),
        "source": source,
        "defined_in": if source == "config" { admin.control.source.describe() } else { "the admin API".into() },
        "config": settings_of(d),
    })
}

fn list(admin: &Admin) -> Response<BoxBody> {
    let rt = admin.edge.runtime();
    let mut items: Vec<Value> = rt
        .distributions()
        .iter()
        .map(|d| {
            let v = view(admin, &rt, &d.config, None);
            json!({ "id": v["id"], "domain_name": v["domain_name"], "aliases": v["aliases"],
                    "enabled": v["enabled"], "status": v["status"], "source": v["source"] })
        })
        .collect();
    // Written but not applied yet (InProgress).
    if let Ok(stored) = admin.control.state.distributions() {
        for s in stored.iter().filter(|s| rt.distribution(&s.id).is_none()) {
            items.push(json!({ "id": s.id, "status": "InProgress", "source": "api" }));
        }
    }
    json(StatusCode::OK, json!({ "distributions": items }))
}

/// The distribution `id` as the API shows it (written or running), or 404.
fn find(admin: &Admin, id: &str) -> Result<(Value, u64), ApiError> {
    let rt = admin.edge.runtime();
    let stored = admin.control.state.get(id).ok().flatten();
    let base = admin.control.source.base_dir();
    let d = match (&stored, rt.distribution(id)) {
        (Some(s), _) => check_distribution(&s.settings, &base).ok(),
        // Running but no longer stored: an API distribution being deleted.
        (None, Some(d)) if !rt.api_revisions.contains_key(id) => Some(d.config.clone()),
        _ => None,
    };
    let Some(d) = d else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "NoSuchDistribution",
            format!("no distribution {id:?}"),
        ));
    };
    let revision = stored.as_ref().map_or(0, |s| s.revision);
    Ok((view(admin, &rt, &d, stored.map(|s| s.revision)), revision))
}

fn with_etag(mut resp: Response<BoxBody>, revision: u64) -> Response<BoxBody> {
    if let Ok(v) = HeaderValue::from_str(&etag(revision)) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

fn show(admin: &Admin, id: &str) -> Answer {
    let (v, revision) = find(admin, id)?;
    Ok(with_etag(json(StatusCode::OK, v), revision))
}

fn status(admin: &Admin, id: &str) -> Answer {
    let (v, revision) = find(admin, id)?;
    let rt = admin.edge.runtime();
    let applied = match origin_of(&rt, id) {
        Origin::Api(r) => Some(r),
        Origin::File => rt.distribution(id).map(|_| 0),
    };
    Ok(json(
        StatusCode::OK,
        json!({
            "id": id,
            "status": v["status"],
            "version": revision,
            "edges": [{ "name": rt.edge_name(), "version": applied }],
        }),
    ))
}

/// 409 when `d` claims an id or host another distribution holds (`except`: itself, on an
/// update).
fn conflict(
    admin: &Admin,
    rt: &Runtime,
    d: &Distribution,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let domain = &rt.config.edge.domain;
    let claims = |x: &Distribution| {
        let mut v = vec![x.assigned_domain(domain)];
        v.extend(x.aliases.iter().cloned());
        v
    };
    let mine = claims(d);
    let others = rt
        .distributions()
        .iter()
        .map(|o| &o.config)
        .filter(|o| Some(o.id.as_str()) != except);
    for other in others {
        let name = |o: &Distribution| match origin_of(rt, &o.id) {
            Origin::File => format!(
                "distribution {:?} (in {})",
                o.id,
                admin.control.source.describe()
            ),
            Origin::Api(_) => format!("distribution {:?} (created through the API)", o.id),
        };
        if except.is_none() && other.id == d.id {
            let msg = format!("id {:?} is already the id of {}", d.id, name(other));
            return Err(error(
                StatusCode::CONFLICT,
                "DistributionAlreadyExists",
                msg,
            ));
        }
        if let Some(host) = claims(other).into_iter().find(|h| mine.contains(h)) {
            let msg = format!("host {host:?} is already claimed by {}", name(other));
            return Err(error(StatusCode::CONFLICT, "CNAMEAlreadyExists", msg));
        }
        if d.catch_all && other.catch_all {
            let msg = format!(
                "only one distribution may set catch_all, and {} does",
                name(other)
            );
            return Err(error(StatusCode::CONFLICT, "CatchAllAlreadyExists", msg));
        }
    }
    Ok(())
}

/// 409 for a distribution of the configuration file.
fn read_only(admin: &Admin, rt: &Runtime, id: &str) -> Result<(), ApiError> {
    match (rt.distribution(id), origin_of(rt, id)) {
        (Some(_), Origin::File) => Err(error(
            StatusCode::CONFLICT,
            "DistributionReadOnly",
            match &admin.control.source {
                control::Source::File(f) => format!(
                    "distribution {id:?} is defined in {}: change it there and reload",
                    f.display()
                ),
                control::Source::Quick(_) => format!(
                    "distribution {id:?} comes from the command line: change the flags and restart"
                ),
            },
        )),
        _ => Ok(()),
    }
}

/// Applies what the state now holds, in the background (the answer does not wait).
fn apply(admin: &Arc<Admin>) {
    let a = admin.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = control::reload(&a.edge, &a.control) {
            tracing::error!(error = %e, "a distribution written through the API could not be applied");
        }
    });
}

fn state_error(e: StateError) -> ApiError {
    match e {
        StateError::Exists(_) => error(
            StatusCode::CONFLICT,
            "DistributionAlreadyExists",
            e.to_string(),
        ),
        StateError::NotFound(_) => {
            error(StatusCode::NOT_FOUND, "NoSuchDistribution", e.to_string())
        }
        StateError::Stale { .. } => error(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            e.to_string(),
        ),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        ),
    }
}

/// The checked distribution of a body, and its settings with the id filled in.
fn checked(
    admin: &Admin,
    mut settings: Value,
    id: Option<&str>,
) -> Result<(Distribution, Value), ApiError> {
    if let (Some(id), Some(obj)) = (id, settings.as_object_mut()) {
        match obj.get("id") {
            Some(Value::String(given)) if given != id => {
                let msg = format!("id: the body says {given:?}, the URL {id:?}");
                return Err(error(StatusCode::BAD_REQUEST, "InvalidArgument", msg));
            }
            _ => {
                obj.insert("id".into(), json!(id));
            }
        }
    }
    let d = check_distribution(&settings, &admin.control.source.base_dir())
        .map_err(|e| problems(&e))?;
    if let Some(obj) = settings.as_object_mut() {
        obj.insert("id".into(), json!(d.id));
    }
    Ok((d, settings))
}

/// Runs a state write on the blocking pool.
async fn write<T: Send + 'static>(
    admin: &Arc<Admin>,
    f: impl FnOnce(&control::StateStore) -> Result<T, StateError> + Send + 'static,
) -> Result<T, ApiError> {
    let a = admin.clone();
    match tokio::task::spawn_blocking(move || f(&a.control.state)).await {
        Ok(r) => r.map_err(state_error),
        Err(e) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )),
    }
}

async fn create(admin: &Arc<Admin>, req: Request<Incoming>) -> Answer {
    let (d, settings) = checked(admin, body_json(req).await?, None)?;
    let rt = admin.edge.runtime();
    conflict(admin, &rt, &d, None)?;
    let id = d.id.clone();
    let revision = write(admin, move |state| state.create(&id, &settings)).await?;
    apply(admin);
    let mut v = view(admin, &rt, &d, Some(revision));
    v["status"] = json!("InProgress");
    let mut resp = with_etag(json(StatusCode::CREATED, v), revision);
    if let Ok(loc) = HeaderValue::from_str(&format!("/distributions/{}", d.id)) {
        resp.headers_mut().insert(LOCATION, loc);
    }
    Ok(resp)
}

async fn update(admin: &Arc<Admin>, id: String, req: Request<Incoming>) -> Answer {
    let rt = admin.edge.runtime();
    read_only(admin, &rt, &id)?;
    let expected = if_match(&req)?;
    let (d, settings) = checked(admin, body_json(req).await?, Some(&id))?;
    conflict(admin, &rt, &d, Some(&id))?;
    let revision = write(admin, move |state| state.replace(&id, expected, &settings)).await?;
    apply(admin);
    let mut v = view(admin, &rt, &d, Some(revision));
    v["status"] = json!("InProgress");
    Ok(with_etag(json(StatusCode::OK, v), revision))
}

/// Whether the running configuration holds `d` disabled at `revision`.
fn disabled_and_deployed(rt: &Runtime, id: &str, revision: u64) -> bool {
    let running: Option<&Arc<DistRuntime>> = rt.distribution(id);
    rt.api_revisions.get(id) == Some(&revision) && running.is_some_and(|d| !d.config.enabled)
}

async fn delete(admin: &Arc<Admin>, id: String, req: Request<Incoming>) -> Answer {
    let rt = admin.edge.runtime();
    read_only(admin, &rt, &id)?;
    let expected = if_match(&req)?;
    if !disabled_and_deployed(&rt, &id, expected) {
        return Err(match admin.control.state.get(&id) {
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                "NoSuchDistribution",
                format!("no distribution {id:?}"),
            ),
            Ok(Some(s)) if s.revision != expected => state_error(StateError::Stale {
                id,
                expected,
                current: s.revision,
            }),
            _ => error(
                StatusCode::CONFLICT,
                "DistributionNotDisabled",
                format!(
                    "distribution {id:?} can be deleted only once it is disabled and Deployed \
                     (update it with \"enabled\": false, and wait until it is Deployed)"
                ),
            ),
        });
    }
    write(admin, move |state| state.delete(&id, expected)).await?;
    apply(admin);
    let mut resp = Response::new(crate::body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
