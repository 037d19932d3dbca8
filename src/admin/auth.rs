//! Bearer-token access control of the admin API (`[edge] admin_token`).

use http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};

use crate::body::BoxBody;

/// None when the request may proceed; else the 401 to answer.
pub fn check(token: Option<&str>, headers: &HeaderMap) -> Option<Response<BoxBody>> {
    let token = token?;
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let (error, why) = match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => return None,
        Some(_) => (Some("invalid_token"), "the bearer token is not valid"),
        None => (
            None,
            "this admin API needs an Authorization: Bearer <admin_token> header",
        ),
    };
    let mut r = super::json(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({ "error": why }),
    );
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"cairn-admin\", error=\"{e}\""),
        None => "Bearer realm=\"cairn-admin\"".to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    Some(r)
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Some(v) = v {
            m.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn bearer() {
        let t = Some("0123456789abcdef");
        assert!(check(None, &h(None)).is_none());
        assert!(check(t, &h(Some("Bearer 0123456789abcdef"))).is_none());
        assert!(check(t, &h(Some("bearer  0123456789abcdef "))).is_none());
        for bad in [
            None,
            Some("Bearer nope"),
            Some("Basic 0123456789abcdef"),
            Some("Bearer"),
        ] {
            let r = check(t, &h(bad)).expect("refused");
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            assert!(r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
        }
    }
}
