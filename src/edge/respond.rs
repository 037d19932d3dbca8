//! Headers every response of the edge carries (`Via`, `X-Cache`, `Age` on cached ones)
//! and the edge's own short error responses, which never reveal internal detail.

use std::time::Duration;

use http::header::{HeaderValue, AGE, CONTENT_LENGTH, CONTENT_TYPE, VIA};
use http::{HeaderMap, Response, StatusCode};

use crate::body::{self, BoxBody};
use crate::result::ResultType;

pub const X_CACHE: &str = "x-cache";

/// Adds `Via` (appended to any the origin sent) and `X-Cache`.
pub fn decorate(headers: &mut HeaderMap, edge_name: &str, result: ResultType) {
    let ours = format!("1.1 {edge_name} (cairn)");
    let via = match headers.get(VIA).and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ours}"),
        _ => ours,
    };
    headers.remove(VIA);
    if let Ok(v) = HeaderValue::from_str(&via) {
        headers.insert(VIA, v);
    }
    let x = format!("{} from cairn", result.as_str());
    if let Ok(v) = HeaderValue::from_str(&x) {
        headers.insert(X_CACHE, v);
    }
}

/// Sets `Age` to the object's current age in whole seconds.
pub fn set_age(headers: &mut HeaderMap, age: Duration) {
    headers.insert(AGE, HeaderValue::from(age.as_secs().min(i32::MAX as u64)));
}

/// A short plain-text response made by the edge itself.
pub fn error(status: StatusCode, message: &str, edge_name: &str) -> Response<BoxBody> {
    let text = format!(
        "{} {}\n{message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(body::full(text.clone()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    decorate(h, edge_name, ResultType::Error);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_is_appended() {
        let mut h = HeaderMap::new();
        h.insert(VIA, HeaderValue::from_static("1.1 upstream"));
        decorate(&mut h, "edge1", ResultType::Hit);
        assert_eq!(h[VIA], "1.1 upstream, 1.1 edge1 (cairn)");
        assert_eq!(h[X_CACHE], "Hit from cairn");
    }
}
