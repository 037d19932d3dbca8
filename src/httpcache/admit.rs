//! Admission: whether an origin response is stored (and so may be shared with other
//! viewers), and if not, why. One pure function, [`admit`], asked once per response: the
//! storing rules of RFC 9111 ([`decide_store`]) plus what the edge knows beyond the
//! headers — an error never displaces a stored object being revalidated; a 206 is not a
//! whole object; a close-delimited body cannot be told from a truncated one; Set-Cookie
//! under the behaviour's cookie rule; `Vary: *`; the store's size limit; a response
//! already stale with no way to revalidate it.

use std::time::{Duration, SystemTime};

use http::header::SET_COOKIE;
use http::{HeaderMap, StatusCode};

use super::age::initial_age;
use super::store::{decide_store, RequestFacts, StoreDecision, StorePolicy};
use super::validators::has_validator;
use super::vary::{vary_spec, VarySpec};

/// What the edge knows about a response beyond its status and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// When the request that produced it was sent.
    pub request_time: SystemTime,
    /// When its headers arrived.
    pub response_time: SystemTime,
    /// It answers the revalidation of a stored response.
    pub revalidating: bool,
    /// Its body has a Content-Length or is chunked.
    pub delimited: bool,
    pub content_length: Option<u64>,
    /// The largest body the store keeps, in bytes.
    pub max_object_size: u64,
}

/// What the response would be stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitting {
    /// A whole object (any status the storing rules allow but 206).
    Whole,
    /// A single stored part (a 206 the edge passed through): kept only while fresh and
    /// only without Vary.
    Part,
}

/// The outcome of [`admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The storing rules' decision (freshness, TTL rule, stale windows, fields to strip).
    pub decision: StoreDecision,
    /// The response's corrected initial age (RFC 9111 §4.2.3).
    pub age: Duration,
    /// Its Vary.
    pub vary: VarySpec,
    /// Why it is not stored; None when it is.
    pub refused: Option<&'static str>,
}

impl Admission {
    pub fn stored(&self) -> bool {
        self.refused.is_none()
    }

    /// Why stored, or why not (for logs).
    pub fn reason(&self) -> &'static str {
        self.refused.unwrap_or(self.decision.reason)
    }
}

/// Reasons [`admit`] gives beyond [`decide_store`]'s.
pub mod refused {
    pub const ERROR_DURING_REVALIDATION: &str =
        "an error never displaces a stored object being revalidated";
    pub const PARTIAL: &str = "a partial response (206) is not stored";
    pub const NOT_PARTIAL: &str = "only a 206 is stored as a part";
    pub const UNDELIMITED: &str = "the response has neither Content-Length nor chunked encoding";
    pub const SET_COOKIE: &str = "Set-Cookie while cookies are not in the cache key";
    pub const VARY_STAR: &str = "Vary: * never matches a later request";
    pub const PART_VARIES: &str = "a partial response with Vary is not stored";
    pub const TOO_LARGE: &str = "larger than the largest stored object";
    pub const STALE: &str = "already stale and without a validator";
    pub const PART_STALE: &str = "a partial response is stored only while fresh";
}

/// Whether a response with `status` and `headers` to the request `req` is stored under
/// `policy`, as `what`.
pub fn admit(
    policy: &StorePolicy,
    req: &RequestFacts,
    status: StatusCode,
    headers: &HeaderMap,
    received: &Received,
    what: Admitting,
) -> Admission {
    let decision = decide_store(policy, req, status, headers, received.response_time);
    let age = initial_age(headers, received.request_time, received.response_time);
    let vary = vary_spec(headers);
    let part = what == Admitting::Part;
    let fresh_left = decision.freshness.saturating_sub(age);
    let varies = !matches!(&vary, VarySpec::Names(n) if n.is_empty());
    // The edge's own rules, in order, after the storing rules.
    let rules: [(bool, &'static str); 11] = [
        (!decision.store, decision.reason),
        (
            received.revalidating && status.as_u16() >= 500,
            refused::ERROR_DURING_REVALIDATION,
        ),
        // RFC 9111 §3.3, §4: an incomplete response must not answer a later request for
        // the whole; parts are stored apart.
        (
            !part && status == StatusCode::PARTIAL_CONTENT,
            refused::PARTIAL,
        ),
        (
            part && status != StatusCode::PARTIAL_CONTENT,
            refused::NOT_PARTIAL,
        ),
        (!received.delimited, refused::UNDELIMITED),
        (
            headers.contains_key(SET_COOKIE) && !policy.set_cookie_stored,
            refused::SET_COOKIE,
        ),
        (vary == VarySpec::Star, refused::VARY_STAR),
        (part && varies, refused::PART_VARIES),
        (
            received
                .content_length
                .is_some_and(|l| l > received.max_object_size),
            refused::TOO_LARGE,
        ),
        (part && fresh_left.is_zero(), refused::PART_STALE),
        (
            fresh_left.is_zero()
                && !has_validator(headers)
                && decision.stale_while_revalidate.is_none()
                && decision.stale_if_error.is_none(),
            refused::STALE,
        ),
    ];
    let refused = rules
        .into_iter()
        .find(|(applies, _)| *applies)
        .map(|(_, why)| why);
    Admission {
        decision,
        age,
        vary,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpcache::{Mode, TtlSettings};
    use http::{HeaderName, HeaderValue, Method};
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn received() -> Received {
        Received {
            request_time: at(1_700_000_000),
            response_time: at(1_700_000_000),
            revalidating: false,
            delimited: true,
            content_length: Some(10),
            max_object_size: 1000,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn policy(mode: Mode) -> StorePolicy {
        let mut p = StorePolicy::new(TtlSettings {
            default_ttl: if mode == Mode::Strict { 0 } else { 86400 },
            min_ttl: 0,
            max_ttl: 31_536_000,
        });
        p.set_cookie_stored = mode == Mode::Strict;
        p
    }

    fn why(
        mode: Mode,
        status: u16,
        h: &[(&str, &str)],
        change: impl Fn(&mut Received),
        what: Admitting,
    ) -> Option<&'static str> {
        let mut r = received();
        change(&mut r);
        admit(
            &policy(mode),
            &RequestFacts::plain_get(),
            StatusCode::from_u16(status).unwrap(),
            &headers(h),
            &r,
            what,
        )
        .refused
    }

    const CACHEABLE: (&str, &str) = ("cache-control", "max-age=60");

    #[test]
    fn each_rule_refuses_with_its_reason() {
        let whole = Admitting::Whole;
        let cf = Mode::CloudFront;
        assert_eq!(why(cf, 200, &[CACHEABLE], |_| {}, whole), None);
        assert_eq!(
            why(cf, 200, &[("cache-control", "no-store")], |_| {}, whole),
            Some(crate::httpcache::reason::NO_STORE),
            "the storing rules come first"
        );
        assert_eq!(
            why(cf, 503, &[CACHEABLE], |r| r.revalidating = true, whole),
            Some(refused::ERROR_DURING_REVALIDATION)
        );
        assert_eq!(why(cf, 503, &[CACHEABLE], |_| {}, whole), None);
        assert_eq!(
            why(cf, 206, &[CACHEABLE], |_| {}, whole),
            Some(refused::PARTIAL)
        );
        assert_eq!(
            why(cf, 200, &[CACHEABLE], |r| r.delimited = false, whole),
            Some(refused::UNDELIMITED)
        );
        let cookie = [CACHEABLE, ("set-cookie", "a=1")];
        assert_eq!(
            why(cf, 200, &cookie, |_| {}, whole),
            Some(refused::SET_COOKIE)
        );
        assert_eq!(
            why(Mode::Strict, 200, &cookie, |_| {}, whole),
            None,
            "RFC 9111 §3: Set-Cookie does not inhibit storing"
        );
        assert_eq!(
            why(cf, 200, &[CACHEABLE, ("vary", "*")], |_| {}, whole),
            Some(refused::VARY_STAR)
        );
        assert_eq!(
            why(
                cf,
                200,
                &[CACHEABLE],
                |r| r.content_length = Some(1001),
                whole
            ),
            Some(refused::TOO_LARGE)
        );
        let old = [("cache-control", "max-age=60"), ("age", "100")];
        assert_eq!(why(cf, 200, &old, |_| {}, whole), Some(refused::STALE));
        let old_with_etag = [old[0], old[1], ("etag", "\"v\"")];
        assert_eq!(why(cf, 200, &old_with_etag, |_| {}, whole), None);
        let old_swr = [
            ("cache-control", "max-age=60, stale-while-revalidate=30"),
            old[1],
        ];
        assert_eq!(why(cf, 200, &old_swr, |_| {}, whole), None);
    }

    #[test]
    fn parts_are_stored_only_fresh_and_without_vary() {
        let part = Admitting::Part;
        let cf = Mode::CloudFront;
        let range = ("content-range", "bytes 0-9/100");
        assert_eq!(why(cf, 206, &[CACHEABLE, range], |_| {}, part), None);
        assert_eq!(
            why(cf, 200, &[CACHEABLE], |_| {}, part),
            Some(refused::NOT_PARTIAL)
        );
        assert_eq!(
            why(
                cf,
                206,
                &[CACHEABLE, range, ("vary", "accept")],
                |_| {},
                part
            ),
            Some(refused::PART_VARIES)
        );
        let old = [CACHEABLE, range, ("age", "100"), ("etag", "\"v\"")];
        assert_eq!(why(cf, 206, &old, |_| {}, part), Some(refused::PART_STALE));
    }

    #[test]
    fn the_age_and_decision_come_back_with_the_answer() {
        let a = admit(
            &policy(Mode::CloudFront),
            &RequestFacts::from_request(&Method::GET, &HeaderMap::new()),
            StatusCode::OK,
            &headers(&[("cache-control", "max-age=60"), ("age", "5")]),
            &received(),
            Admitting::Whole,
        );
        assert!(a.stored());
        assert_eq!(a.age, Duration::from_secs(5));
        assert_eq!(a.decision.freshness, Duration::from_secs(60));
        assert_eq!(a.reason(), crate::httpcache::reason::MAX_AGE);
    }
}
