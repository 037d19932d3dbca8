//! Whether a shared cache may store a response, and for how long it is fresh (RFC 9111 §3,
//! §4.2.1, §4.2.2, §5.2.2), in one of two modes. [`Mode::CloudFront`] (a behavior whose
//! default TTL is above zero) keeps CloudFront's TTL rules ([`cloudfront_ttl_governed`]) and
//! adds CloudFront's error caching; [`Mode::Strict`] (default TTL zero) is a plain RFC 9111
//! shared cache. Both honour the targeted fields of RFC 9213 (see
//! [`governing_cache_control`]), the Authorization rule of RFC 9111 §3.5, and report the
//! RFC 5861 stale windows and the fields that must not be stored (RFC 9111 §5.2.2.4,
//! §5.2.2.7). Pure functions; all arithmetic saturates.

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, CACHE_CONTROL, DATE, LAST_MODIFIED, PRAGMA};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use super::age::elapsed;
use super::cache_control::{CacheControl, FieldDirective};
use super::date::parse_http_date;
use super::targeted::{governing_cache_control, CcSource};
use super::ttl::{
    cacheable_status, cloudfront_ttl_governed, explicit_ttl, Clamp, NotStoredReason, TtlRule,
    TtlSettings,
};

/// The largest heuristic freshness lifetime by default: one day (RFC 9111 §4.2.2 leaves
/// the bound to the cache).
pub const DEFAULT_HEURISTIC_MAX: Duration = Duration::from_secs(86_400);

/// CloudFront's error caching TTL when none is configured: 10 seconds.
pub const DEFAULT_ERROR_TTL: u64 = 10;

/// Which caching rules a behavior follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// CloudFront's TTL rules: min / default / max TTL, error caching, viewers cannot
    /// bypass the cache.
    CloudFront,
    /// A plain RFC 9111 shared cache.
    Strict,
}

impl Mode {
    /// CloudFront mode when the behavior has a default TTL above zero, else strict.
    pub fn for_settings(ttl: &TtlSettings) -> Mode {
        if ttl.default_ttl > 0 {
            Mode::CloudFront
        } else {
            Mode::Strict
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::CloudFront => "cloudfront",
            Mode::Strict => "strict",
        }
    }
}

/// What the storing and reuse rules need to know about the viewer's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub method: Method,
    /// The request carries Authorization (RFC 9111 §3.5).
    pub has_authorization: bool,
    /// The viewer's Cache-Control (RFC 9111 §5.2.1).
    pub cache_control: CacheControl,
    /// `Pragma: no-cache` in a request without Cache-Control: same as `no-cache`
    /// (RFC 9111 §5.4).
    pub pragma_no_cache: bool,
}

impl RequestFacts {
    /// The facts of a request with `method` and `headers`.
    pub fn from_request(method: &Method, headers: &HeaderMap) -> RequestFacts {
        let pragma_no_cache = !headers.contains_key(CACHE_CONTROL)
            && headers.get_all(PRAGMA).iter().any(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .any(|p| p.trim_matches([' ', '\t']).eq_ignore_ascii_case("no-cache"))
            });
        RequestFacts {
            method: method.clone(),
            has_authorization: headers.contains_key(AUTHORIZATION),
            cache_control: CacheControl::from_headers(headers),
            pragma_no_cache,
        }
    }

    /// A GET without Authorization or caching directives.
    pub fn plain_get() -> RequestFacts {
        RequestFacts {
            method: Method::GET,
            has_authorization: false,
            cache_control: CacheControl::default(),
            pragma_no_cache: false,
        }
    }
}

/// CloudFront error caching TTLs, in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorTtls {
    /// For error statuses without an entry in `per_status`.
    pub default: u64,
    /// `(status, ttl)`; the first entry for a status wins.
    pub per_status: Vec<(u16, u64)>,
}

impl Default for ErrorTtls {
    /// CloudFront's default: 10 seconds for every error status.
    fn default() -> Self {
        ErrorTtls {
            default: DEFAULT_ERROR_TTL,
            per_status: Vec::new(),
        }
    }
}

impl ErrorTtls {
    /// The error caching TTL of `status`.
    pub fn for_status(&self, status: u16) -> u64 {
        self.per_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(self.default, |(_, ttl)| *ttl)
    }
}

/// A behavior's storing rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePolicy {
    pub mode: Mode,
    pub ttl: TtlSettings,
    pub error_ttls: ErrorTtls,
    /// Cap for heuristic freshness (strict mode), RFC 9111 §4.2.2.
    pub heuristic_max: Duration,
    /// A response with Set-Cookie may be stored: cookies are in the cache key, or strict
    /// mode (RFC 9111 §3: Set-Cookie does not inhibit storing). Checked by [`admit`].
    ///
    /// [`admit`]: super::admit
    pub set_cookie_stored: bool,
}

impl StorePolicy {
    /// The policy of a behavior with these TTLs: mode from the default TTL, default error
    /// TTLs and heuristic cap.
    pub fn new(ttl: TtlSettings) -> StorePolicy {
        let mode = Mode::for_settings(&ttl);
        StorePolicy {
            mode,
            ttl,
            error_ttls: ErrorTtls::default(),
            heuristic_max: DEFAULT_HEURISTIC_MAX,
            set_cookie_stored: mode == Mode::Strict,
        }
    }
}

/// The outcome of [`decide_store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDecision {
    /// False: do not store.
    pub store: bool,
    /// Why not stored, or which rule stored it (for logs and cache-inspect explain).
    pub reason: &'static str,
    /// Freshness lifetime (RFC 9111 §4.2.1), before subtracting the response's age.
    pub freshness: Duration,
    pub rule: TtlRule,
    pub clamp: Clamp,
    /// Unqualified `no-cache` (RFC 9111 §5.2.2.4): validate before every use.
    pub revalidate_each_use: bool,
    /// `must-revalidate`, `proxy-revalidate`, or `s-maxage` (which implies
    /// proxy-revalidate for a shared cache, RFC 9111 §5.2.2.10): never served stale.
    pub must_revalidate: bool,
    /// RFC 5861 §3 window, from the governing directives.
    pub stale_while_revalidate: Option<Duration>,
    /// RFC 5861 §4 window, from the governing directives.
    pub stale_if_error: Option<Duration>,
    /// Fields named by `private="…"` and `no-cache="…"` (RFC 9111 §5.2.2.7, §5.2.2.4):
    /// not stored, so never sent from the cache without revalidation.
    pub strip_fields: Vec<HeaderName>,
    /// Which field's directives governed (RFC 9213).
    pub source: CcSource,
}

impl StoreDecision {
    fn not_stored(reason: &'static str, source: CcSource) -> StoreDecision {
        StoreDecision {
            store: false,
            reason,
            freshness: Duration::ZERO,
            rule: TtlRule::NotStored,
            clamp: Clamp::None,
            revalidate_each_use: false,
            must_revalidate: false,
            stale_while_revalidate: None,
            stale_if_error: None,
            strip_fields: Vec::new(),
            source,
        }
    }
}

/// Reasons reported by [`decide_store`].
pub mod reason {
    pub const METHOD: &str = "request method is not GET or HEAD";
    pub const INFORMATIONAL: &str = "interim (1xx) response";
    pub const NOT_MODIFIED: &str = "304 is not stored as an object";
    pub const AUTHORIZATION: &str =
        "request has Authorization and the response has no public, s-maxage or must-revalidate";
    pub const MUST_UNDERSTAND: &str =
        "must-understand with a status this cache does not understand";
    pub const NO_STORE: &str = "no-store";
    pub const PRIVATE: &str = "private";
    pub const NO_FRESHNESS: &str =
        "no explicit freshness, not public and the status is not heuristically cacheable";
    pub const STATUS: &str = "status is not cacheable";
    pub const ERROR_DIRECTIVE: &str = "error status with no-store, no-cache or private";
    pub const S_MAXAGE: &str = "stored: s-maxage";
    pub const MAX_AGE: &str = "stored: max-age";
    pub const EXPIRES: &str = "stored: expires";
    pub const HEURISTIC: &str = "stored: heuristic freshness";
    pub const DEFAULT: &str = "stored: default ttl";
    pub const NO_CACHE: &str = "stored: no-cache, revalidated on every use";
    pub const ERROR_TTL: &str = "stored: error caching ttl";
}

/// Statuses whose requirements this cache implements, for `must-understand`
/// (RFC 9111 §5.2.2.3).
pub fn understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 302 | 303 | 307 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Heuristically cacheable statuses (RFC 9110 §15.1, RFC 9111 §4.2.2).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Error statuses CloudFront caches with its error caching TTL.
pub fn cloudfront_error_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        404 | 405 | 414 | 500 | 501 | 502 | 503 | 504
    )
}

/// Whether and how long a response with `status` and headers `resp`, received at `now`
/// for the request `req`, may be stored under `policy`.
pub fn decide_store(
    policy: &StorePolicy,
    req: &RequestFacts,
    status: StatusCode,
    resp: &HeaderMap,
    now: SystemTime,
) -> StoreDecision {
    let (cc, source) = governing_cache_control(resp);
    // RFC 9111 §3: the method must be understood and allow caching (GET; HEAD is answered
    // from the same stored response).
    if req.method != Method::GET && req.method != Method::HEAD {
        return StoreDecision::not_stored(reason::METHOD, source);
    }
    // RFC 9111 §3: only final responses (RFC 9110 §15.2).
    if status.is_informational() {
        return StoreDecision::not_stored(reason::INFORMATIONAL, source);
    }
    // A 304 only updates a stored response (RFC 9111 §4.3.4).
    if status == StatusCode::NOT_MODIFIED {
        return StoreDecision::not_stored(reason::NOT_MODIFIED, source);
    }
    // RFC 9111 §3.5: a shared cache stores answers to authorized requests only when a
    // directive explicitly allows it.
    if req.has_authorization && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return StoreDecision::not_stored(reason::AUTHORIZATION, source);
    }
    let fresh = match policy.mode {
        Mode::Strict => strict(policy, &cc, source, status, resp, now),
        Mode::CloudFront => cloudfront(policy, &cc, source, status, resp, now),
    };
    let fresh = match fresh {
        Ok(fresh) => fresh,
        Err(why) => return StoreDecision::not_stored(why, source),
    };
    StoreDecision {
        store: true,
        reason: stored_reason(fresh.rule),
        freshness: Duration::from_secs(fresh.secs),
        rule: fresh.rule,
        clamp: fresh.clamp,
        revalidate_each_use: fresh.revalidate_each_use,
        must_revalidate: cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some(),
        stale_while_revalidate: cc.stale_while_revalidate.map(Duration::from_secs),
        stale_if_error: cc.stale_if_error.map(Duration::from_secs),
        strip_fields: strip_fields(&cc),
        source,
    }
}

/// A stored response's freshness, before the common fields are added.
struct Fresh {
    secs: u64,
    rule: TtlRule,
    clamp: Clamp,
    revalidate_each_use: bool,
}

impl Fresh {
    fn new(secs: u64, rule: TtlRule, clamp: Clamp) -> Fresh {
        Fresh {
            secs,
            rule,
            clamp,
            revalidate_each_use: false,
        }
    }

    fn no_cache() -> Fresh {
        Fresh {
            secs: 0,
            rule: TtlRule::NoCache,
            clamp: Clamp::None,
            revalidate_each_use: true,
        }
    }
}

/// RFC 9111 §3 and §4.2.1 for a shared cache.
fn strict(
    policy: &StorePolicy,
    cc: &CacheControl,
    source: CcSource,
    status: StatusCode,
    resp: &HeaderMap,
    now: SystemTime,
) -> Result<Fresh, &'static str> {
    // RFC 9111 §5.2.2.3: with must-understand, only a cache that understands the status
    // stores the response, and it then ignores no-store.
    if cc.must_understand && !understood_status(status) {
        return Err(reason::MUST_UNDERSTAND);
    }
    if cc.no_store && !cc.must_understand {
        return Err(reason::NO_STORE);
    }
    // RFC 9111 §5.2.2.7: a shared cache must not store an unqualified private response;
    // the qualified form is stored without the named fields.
    if cc.private.is_all() {
        return Err(reason::PRIVATE);
    }
    let explicit = explicit_ttl(resp, cc, !source.ignores_expires(), now);
    let heuristic_ok = heuristically_cacheable(status) || cc.public;
    // RFC 9111 §3: explicit expiration, public, or a heuristically cacheable status.
    if explicit.is_none() && !heuristic_ok {
        return Err(reason::NO_FRESHNESS);
    }
    if cc.no_cache.is_all() {
        return Ok(Fresh::no_cache());
    }
    let (secs, rule) = match explicit {
        Some(found) => found,
        None => (
            heuristic_freshness(resp, now, policy.heuristic_max).as_secs(),
            TtlRule::Heuristic,
        ),
    };
    // Lowering freshness is always allowed (a cache may revalidate early); raising it is
    // not, so only the behavior's maximum applies.
    if secs > policy.ttl.max_ttl {
        Ok(Fresh::new(policy.ttl.max_ttl, rule, Clamp::Max))
    } else {
        Ok(Fresh::new(secs, rule, Clamp::None))
    }
}

/// RFC 9111 §4.2.2: 10% of the time between Last-Modified and Date (the response time
/// when Date is missing or invalid), at most `cap`; zero without a valid Last-Modified.
fn heuristic_freshness(resp: &HeaderMap, now: SystemTime, cap: Duration) -> Duration {
    let Some(last_modified) = resp.get(LAST_MODIFIED).and_then(parse_http_date) else {
        return Duration::ZERO;
    };
    let date = resp.get(DATE).and_then(parse_http_date).unwrap_or(now);
    (elapsed(last_modified, date) / 10).min(cap)
}

/// CloudFront's TTL rules, plus its error caching.
fn cloudfront(
    policy: &StorePolicy,
    cc: &CacheControl,
    source: CcSource,
    status: StatusCode,
    resp: &HeaderMap,
    now: SystemTime,
) -> Result<Fresh, &'static str> {
    if cacheable_status(status) {
        let d = cloudfront_ttl_governed(resp, cc, source, status, &policy.ttl, now);
        return match d.not_stored {
            None if d.store => Ok(Fresh {
                secs: d.ttl.as_secs(),
                rule: d.rule,
                clamp: d.clamp,
                revalidate_each_use: d.revalidate_each_use,
            }),
            Some(NotStoredReason::NoStore) => Err(reason::NO_STORE),
            Some(NotStoredReason::Private) => Err(reason::PRIVATE),
            _ => Err(reason::STATUS),
        };
    }
    if !cloudfront_error_status(status) {
        return Err(reason::STATUS);
    }
    // CloudFront does not cache 404, 410, 414 and 501 with no-store, no-cache or private;
    // for the other error statuses it ignores those directives.
    let honours_directives = matches!(status.as_u16(), 404 | 414 | 501);
    if honours_directives && (cc.no_store || cc.no_cache.is_all() || cc.private.is_present()) {
        return Err(reason::ERROR_DIRECTIVE);
    }
    match explicit_ttl(resp, cc, !source.ignores_expires(), now) {
        // CloudFront caches an error with explicit freshness for the larger of that and
        // the error caching minimum TTL, but no longer than the behaviour's max TTL.
        Some((secs, rule)) => {
            let error_ttl = policy.error_ttls.for_status(status.as_u16());
            let (secs, rule, clamp) = if error_ttl > secs {
                (error_ttl, TtlRule::ErrorTtl, Clamp::None)
            } else {
                (secs, rule, Clamp::None)
            };
            if secs > policy.ttl.max_ttl {
                Ok(Fresh::new(policy.ttl.max_ttl, rule, Clamp::Max))
            } else {
                Ok(Fresh::new(secs, rule, clamp))
            }
        }
        None => Ok(Fresh::new(
            policy.error_ttls.for_status(status.as_u16()),
            TtlRule::ErrorTtl,
            Clamp::None,
        )),
    }
}

fn stored_reason(rule: TtlRule) -> &'static str {
    match rule {
        TtlRule::SMaxAge => reason::S_MAXAGE,
        TtlRule::MaxAge => reason::MAX_AGE,
        TtlRule::Expires => reason::EXPIRES,
        TtlRule::Heuristic => reason::HEURISTIC,
        TtlRule::Default => reason::DEFAULT,
        TtlRule::NoCache => reason::NO_CACHE,
        TtlRule::ErrorTtl => reason::ERROR_TTL,
        TtlRule::NotStored => reason::STATUS,
    }
}

/// The fields named by qualified `private` and `no-cache`, as valid field names, once each.
fn strip_fields(cc: &CacheControl) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = Vec::new();
    for directive in [&cc.private, &cc.no_cache] {
        if let FieldDirective::Fields(names) = directive {
            for name in names {
                if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpcache::date::format_http_date;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    const NOW: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date(secs: u64) -> String {
        format_http_date(at(secs))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn strict_policy() -> StorePolicy {
        StorePolicy::new(TtlSettings {
            default_ttl: 0,
            min_ttl: 0,
            max_ttl: 31_536_000,
        })
    }

    fn cloudfront_policy() -> StorePolicy {
        StorePolicy::new(TtlSettings::default())
    }

    fn decide_with(
        policy: &StorePolicy,
        req: &RequestFacts,
        status: u16,
        pairs: &[(&'static str, &str)],
    ) -> StoreDecision {
        decide_store(
            policy,
            req,
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            at(NOW),
        )
    }

    fn strict(status: u16, pairs: &[(&'static str, &str)]) -> StoreDecision {
        decide_with(&strict_policy(), &RequestFacts::plain_get(), status, pairs)
    }

    fn cloudfront(status: u16, pairs: &[(&'static str, &str)]) -> StoreDecision {
        decide_with(
            &cloudfront_policy(),
            &RequestFacts::plain_get(),
            status,
            pairs,
        )
    }

    fn both(status: u16, pairs: &[(&'static str, &str)]) -> [StoreDecision; 2] {
        [strict(status, pairs), cloudfront(status, pairs)]
    }

    #[track_caller]
    fn stored(d: &StoreDecision, secs: u64, rule: TtlRule) {
        assert!(d.store, "{d:?}");
        assert_eq!(d.freshness, Duration::from_secs(secs), "{d:?}");
        assert_eq!(d.rule, rule, "{d:?}");
    }

    #[track_caller]
    fn not_stored(d: &StoreDecision, why: &str) {
        assert!(!d.store, "{d:?}");
        assert_eq!(d.reason, why, "{d:?}");
        assert_eq!(d.freshness, Duration::ZERO);
        assert_eq!(d.rule, TtlRule::NotStored);
    }

    #[test]
    fn mode_follows_default_ttl() {
        assert_eq!(
            Mode::for_settings(&TtlSettings::default()),
            Mode::CloudFront
        );
        assert_eq!(strict_policy().mode, Mode::Strict);
        assert_eq!(Mode::Strict.as_str(), "strict");
        assert_eq!(Mode::CloudFront.as_str(), "cloudfront");
    }

    #[test]
    fn only_get_and_head_are_stored() {
        for m in [Method::POST, Method::PUT, Method::OPTIONS, Method::DELETE] {
            for policy in [strict_policy(), cloudfront_policy()] {
                let req = RequestFacts {
                    method: m.clone(),
                    ..RequestFacts::plain_get()
                };
                let d = decide_with(&policy, &req, 200, &[("cache-control", "max-age=60")]);
                not_stored(&d, reason::METHOD);
            }
        }
        let head = RequestFacts {
            method: Method::HEAD,
            ..RequestFacts::plain_get()
        };
        let d = decide_with(
            &strict_policy(),
            &head,
            200,
            &[("cache-control", "max-age=60")],
        );
        stored(&d, 60, TtlRule::MaxAge);
    }

    #[test]
    fn interim_and_not_modified_are_never_stored() {
        for d in both(100, &[("cache-control", "max-age=60, public")]) {
            not_stored(&d, reason::INFORMATIONAL);
        }
        for d in both(304, &[("cache-control", "max-age=60, public")]) {
            not_stored(&d, reason::NOT_MODIFIED);
        }
    }

    #[test]
    fn partial_content_is_stored_in_both_modes() {
        let [s, c] = both(206, &[("cache-control", "max-age=60")]);
        stored(&s, 60, TtlRule::MaxAge);
        stored(&c, 60, TtlRule::MaxAge);
    }

    #[test]
    fn no_store_is_not_stored() {
        for d in both(200, &[("cache-control", "no-store, max-age=60")]) {
            not_stored(&d, reason::NO_STORE);
        }
    }

    #[test]
    fn must_understand_overrides_no_store_for_understood_status() {
        for status in [
            200, 203, 204, 206, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
        ] {
            let d = strict(
                status,
                &[("cache-control", "no-store, must-understand, max-age=60")],
            );
            stored(&d, 60, TtlRule::MaxAge);
        }
    }

    #[test]
    fn must_understand_with_unknown_status_is_not_stored() {
        for status in [201, 299, 400, 418, 500, 503, 599] {
            let d = strict(status, &[("cache-control", "must-understand, max-age=60")]);
            not_stored(&d, reason::MUST_UNDERSTAND);
        }
        // CloudFront mode does not know must-understand: no-store wins.
        let d = cloudfront(
            200,
            &[("cache-control", "no-store, must-understand, max-age=60")],
        );
        not_stored(&d, reason::NO_STORE);
    }

    #[test]
    fn unqualified_private_is_not_stored() {
        for d in both(200, &[("cache-control", "private, max-age=60")]) {
            not_stored(&d, reason::PRIVATE);
        }
    }

    #[test]
    fn qualified_private_and_no_cache_strip_the_named_fields() {
        let d = strict(
            200,
            &[(
                "cache-control",
                "private=\"Set-Cookie, x-user\", no-cache=\"x-user, x-debug\", max-age=60",
            )],
        );
        stored(&d, 60, TtlRule::MaxAge);
        assert!(!d.revalidate_each_use);
        let names: Vec<&str> = d.strip_fields.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["set-cookie", "x-user", "x-debug"]);
        // CloudFront mode with min_ttl 0 does not store qualified private at all.
        let d = cloudfront(
            200,
            &[("cache-control", "private=\"set-cookie\", max-age=60")],
        );
        not_stored(&d, reason::PRIVATE);
        let d = cloudfront(200, &[("cache-control", "no-cache=\"x-a\", max-age=60")]);
        stored(&d, 60, TtlRule::MaxAge);
        assert_eq!(d.strip_fields, vec![HeaderName::from_static("x-a")]);
    }

    #[test]
    fn authorization_needs_public_s_maxage_or_must_revalidate() {
        let req = RequestFacts {
            has_authorization: true,
            ..RequestFacts::plain_get()
        };
        for policy in [strict_policy(), cloudfront_policy()] {
            let d = decide_with(&policy, &req, 200, &[("cache-control", "max-age=60")]);
            not_stored(&d, reason::AUTHORIZATION);
            let d = decide_with(&policy, &req, 200, &[]);
            not_stored(&d, reason::AUTHORIZATION);
            for cc in [
                "public, max-age=60",
                "s-maxage=60",
                "must-revalidate, max-age=60",
            ] {
                let d = decide_with(&policy, &req, 200, &[("cache-control", cc)]);
                assert!(d.store, "{cc}: {d:?}");
                assert_eq!(d.freshness, Duration::from_secs(60), "{cc}");
            }
            // The governing targeted field decides.
            let d = decide_with(
                &policy,
                &req,
                200,
                &[
                    ("cache-control", "public"),
                    ("cdn-cache-control", "max-age=60"),
                ],
            );
            not_stored(&d, reason::AUTHORIZATION);
        }
    }

    #[test]
    fn strict_needs_explicit_freshness_public_or_heuristic_status() {
        for status in [302, 303, 307, 400, 403, 500, 502, 503, 504] {
            not_stored(&strict(status, &[]), reason::NO_FRESHNESS);
            let d = strict(status, &[("cache-control", "max-age=30")]);
            stored(&d, 30, TtlRule::MaxAge);
            let d = strict(status, &[("cache-control", "public")]);
            stored(&d, 0, TtlRule::Heuristic);
        }
        for status in [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501] {
            stored(&strict(status, &[]), 0, TtlRule::Heuristic);
        }
    }

    #[test]
    fn strict_freshness_precedence() {
        let expires = date(NOW + 500);
        let d = strict(
            200,
            &[
                ("cache-control", "max-age=100, s-maxage=200"),
                ("expires", &expires),
            ],
        );
        stored(&d, 200, TtlRule::SMaxAge);
        let d = strict(
            200,
            &[("cache-control", "max-age=100"), ("expires", &expires)],
        );
        stored(&d, 100, TtlRule::MaxAge);
        let d = strict(200, &[("expires", &expires), ("date", &date(NOW - 100))]);
        stored(&d, 600, TtlRule::Expires);
        // Date absent: the response time stands in.
        stored(
            &strict(200, &[("expires", &expires)]),
            500,
            TtlRule::Expires,
        );
        // Explicit freshness disables the heuristic.
        let d = strict(
            200,
            &[
                ("cache-control", "max-age=0"),
                ("last-modified", &date(NOW - 100_000)),
            ],
        );
        stored(&d, 0, TtlRule::MaxAge);
    }

    #[test]
    fn invalid_expires_means_stale() {
        for bad in ["0", "-1", "never", ""] {
            let d = strict(
                200,
                &[("expires", bad), ("last-modified", &date(NOW - 100_000))],
            );
            stored(&d, 0, TtlRule::Expires);
        }
        // Even an invalid Expires is explicit freshness: a 500 is stored (stale).
        stored(&strict(500, &[("expires", "0")]), 0, TtlRule::Expires);
    }

    #[test]
    fn invalid_max_age_or_s_maxage_means_stale() {
        stored(
            &strict(200, &[("cache-control", "max-age=abc")]),
            0,
            TtlRule::MaxAge,
        );
        stored(
            &strict(200, &[("cache-control", "s-maxage=-1, max-age=60")]),
            0,
            TtlRule::SMaxAge,
        );
        stored(
            &strict(200, &[("cache-control", "max-age=1, max-age=2")]),
            0,
            TtlRule::MaxAge,
        );
    }

    #[test]
    fn heuristic_is_ten_percent_of_age_since_last_modified_capped() {
        let d = strict(
            200,
            &[
                ("date", &date(NOW - 50)),
                ("last-modified", &date(NOW - 50 - 10_000)),
            ],
        );
        stored(&d, 1_000, TtlRule::Heuristic);
        // Without Date: from the response time.
        let d = strict(200, &[("last-modified", &date(NOW - 20_000))]);
        stored(&d, 2_000, TtlRule::Heuristic);
        // Capped at heuristic_max.
        let d = strict(200, &[("last-modified", &date(NOW - 100 * 86_400))]);
        stored(&d, 86_400, TtlRule::Heuristic);
        let mut policy = strict_policy();
        policy.heuristic_max = Duration::from_secs(60);
        let d = decide_with(
            &policy,
            &RequestFacts::plain_get(),
            200,
            &[("last-modified", &date(NOW - 20_000))],
        );
        stored(&d, 60, TtlRule::Heuristic);
        // No Last-Modified, an invalid one, or one after Date: zero.
        stored(&strict(200, &[]), 0, TtlRule::Heuristic);
        stored(
            &strict(200, &[("last-modified", "yesterday")]),
            0,
            TtlRule::Heuristic,
        );
        stored(
            &strict(
                200,
                &[("date", &date(NOW)), ("last-modified", &date(NOW + 999))],
            ),
            0,
            TtlRule::Heuristic,
        );
    }

    #[test]
    fn strict_caps_at_max_ttl_but_never_raises() {
        let mut policy = strict_policy();
        policy.ttl.max_ttl = 100;
        policy.ttl.min_ttl = 50;
        let req = RequestFacts::plain_get();
        let d = decide_with(&policy, &req, 200, &[("cache-control", "max-age=1000")]);
        stored(&d, 100, TtlRule::MaxAge);
        assert_eq!(d.clamp, Clamp::Max);
        let d = decide_with(&policy, &req, 200, &[("cache-control", "max-age=10")]);
        stored(&d, 10, TtlRule::MaxAge);
        assert_eq!(d.clamp, Clamp::None);
    }

    #[test]
    fn no_cache_is_stored_and_revalidated_each_use() {
        for d in both(200, &[("cache-control", "no-cache, max-age=60")]) {
            stored(&d, 0, TtlRule::NoCache);
            assert!(d.revalidate_each_use);
            assert_eq!(d.reason, reason::NO_CACHE);
        }
    }

    #[test]
    fn s_maxage_implies_must_revalidate() {
        for d in both(200, &[("cache-control", "s-maxage=60")]) {
            assert!(d.must_revalidate, "{d:?}");
        }
        for cc in ["must-revalidate, max-age=5", "proxy-revalidate, max-age=5"] {
            for d in both(200, &[("cache-control", cc)]) {
                assert!(d.must_revalidate, "{cc}: {d:?}");
            }
        }
        for d in both(200, &[("cache-control", "max-age=60")]) {
            assert!(!d.must_revalidate, "{d:?}");
        }
    }

    #[test]
    fn stale_windows_come_from_the_governing_directives() {
        for d in both(
            200,
            &[(
                "cache-control",
                "max-age=60, stale-while-revalidate=30, stale-if-error=600",
            )],
        ) {
            assert_eq!(d.stale_while_revalidate, Some(Duration::from_secs(30)));
            assert_eq!(d.stale_if_error, Some(Duration::from_secs(600)));
        }
        let d = strict(
            200,
            &[
                ("cache-control", "max-age=60, stale-while-revalidate=30"),
                ("cdn-cache-control", "max-age=60, stale-if-error=5"),
            ],
        );
        assert_eq!(d.stale_while_revalidate, None);
        assert_eq!(d.stale_if_error, Some(Duration::from_secs(5)));
    }

    #[test]
    fn targeted_field_overrides_cache_control_and_expires() {
        let pairs = [
            ("cache-control", "no-store"),
            ("expires", "0"),
            ("cdn-cache-control", "max-age=600"),
        ];
        for d in both(200, &pairs) {
            stored(&d, 600, TtlRule::MaxAge);
            assert_eq!(d.source, CcSource::Cdn);
        }
        // Expires is ignored: without a lifetime in the targeted field CloudFront mode uses
        // the default TTL, strict mode the heuristic.
        let pairs = [
            ("expires", "0"),
            ("last-modified", &date(NOW - 1000)),
            ("cairn-cdn-cache-control", "public"),
        ];
        let [s, c] = both(200, &pairs);
        stored(&s, 100, TtlRule::Heuristic);
        stored(&c, 86_400, TtlRule::Default);
        assert_eq!(s.source, CcSource::CairnCdn);
        // A targeted no-store wins over a permissive Cache-Control.
        let pairs = [
            ("cache-control", "public, max-age=60"),
            ("cdn-cache-control", "no-store"),
        ];
        for d in both(200, &pairs) {
            not_stored(&d, reason::NO_STORE);
            assert_eq!(d.source, CcSource::Cdn);
        }
    }

    #[test]
    fn malformed_targeted_field_is_ignored() {
        let pairs = [
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "Max-Age=600"),
        ];
        for d in both(200, &pairs) {
            stored(&d, 60, TtlRule::MaxAge);
            assert_eq!(d.source, CcSource::CacheControl);
        }
    }

    #[test]
    fn cloudfront_mode_keeps_cloudfront_ttl_rules() {
        let mut policy = cloudfront_policy();
        policy.ttl = TtlSettings {
            default_ttl: 600,
            min_ttl: 60,
            max_ttl: 3600,
        };
        let req = RequestFacts::plain_get();
        let d = decide_with(&policy, &req, 200, &[("cache-control", "max-age=10")]);
        stored(&d, 60, TtlRule::MaxAge);
        assert_eq!(d.clamp, Clamp::Min);
        // min_ttl > 0 ignores no-store, private and no-cache.
        let d = decide_with(
            &policy,
            &req,
            200,
            &[("cache-control", "no-store, private")],
        );
        stored(&d, 600, TtlRule::Default);
        stored(&cloudfront(200, &[]), 86_400, TtlRule::Default);
        assert_eq!(cloudfront(200, &[]).reason, reason::DEFAULT);
        // Statuses outside CloudFront's lists are not stored, whatever the headers say.
        for status in [201, 302, 307, 400, 403, 416] {
            not_stored(
                &cloudfront(status, &[("cache-control", "public, max-age=60")]),
                reason::STATUS,
            );
        }
    }

    #[test]
    fn error_statuses_cached_for_error_ttl_in_cloudfront_mode() {
        let mut policy = cloudfront_policy();
        policy.error_ttls = ErrorTtls {
            default: 10,
            per_status: vec![(503, 1), (404, 300), (503, 99)],
        };
        policy.ttl.min_ttl = 100;
        let req = RequestFacts::plain_get();
        for (status, ttl) in [
            (404, 300),
            (405, 10),
            (414, 10),
            (500, 10),
            (501, 10),
            (502, 10),
            (503, 1),
            (504, 10),
        ] {
            let d = decide_with(&policy, &req, status, &[]);
            stored(&d, ttl, TtlRule::ErrorTtl);
            // The error TTL is not clamped.
            assert_eq!(d.clamp, Clamp::None);
            assert_eq!(d.reason, reason::ERROR_TTL);
        }
        // Explicit freshness counts when it is longer than the error TTL (CloudFront: the
        // larger of the two), capped by max_ttl; min_ttl does not apply to errors.
        let d = decide_with(&policy, &req, 503, &[("cache-control", "max-age=5")]);
        stored(&d, 5, TtlRule::MaxAge);
        assert_eq!(d.clamp, Clamp::None);
        let d = decide_with(&policy, &req, 500, &[("cache-control", "max-age=5")]);
        stored(&d, 10, TtlRule::ErrorTtl);
        let d = decide_with(&policy, &req, 404, &[("expires", &date(NOW + 500))]);
        stored(&d, 500, TtlRule::Expires);
        let d = decide_with(
            &policy,
            &req,
            500,
            &[("cache-control", "s-maxage=99999999")],
        );
        stored(&d, policy.ttl.max_ttl, TtlRule::SMaxAge);
        assert_eq!(ErrorTtls::default().for_status(500), DEFAULT_ERROR_TTL);
    }

    #[test]
    fn error_directives_follow_cloudfront() {
        // 404, 414, 501: no-store, no-cache or private mean not cached.
        for status in [404, 414, 501] {
            for cc in ["no-store", "no-cache", "private", "private=\"x\""] {
                not_stored(
                    &cloudfront(status, &[("cache-control", cc)]),
                    reason::ERROR_DIRECTIVE,
                );
            }
        }
        // Other error statuses ignore them.
        for status in [405, 500, 502, 503, 504] {
            let d = cloudfront(status, &[("cache-control", "no-store, private, no-cache")]);
            stored(&d, 10, TtlRule::ErrorTtl);
            assert!(!d.revalidate_each_use);
        }
    }

    #[test]
    fn strict_errors_only_as_the_rfc_allows() {
        // 5xx only with explicit freshness (or public).
        for status in [500, 502, 503, 504] {
            not_stored(&strict(status, &[]), reason::NO_FRESHNESS);
            stored(
                &strict(status, &[("cache-control", "max-age=7")]),
                7,
                TtlRule::MaxAge,
            );
        }
        // Heuristically cacheable errors, with a zero heuristic without Last-Modified.
        for status in [404, 405, 410, 414, 501] {
            stored(&strict(status, &[]), 0, TtlRule::Heuristic);
        }
        not_stored(
            &strict(404, &[("cache-control", "no-store")]),
            reason::NO_STORE,
        );
    }

    #[test]
    fn request_facts_from_request() {
        let h = headers(&[("pragma", "x, No-Cache"), ("authorization", "Bearer x")]);
        let r = RequestFacts::from_request(&Method::GET, &h);
        assert!(r.pragma_no_cache && r.has_authorization);
        // Cache-Control present: Pragma is ignored (RFC 9111 §5.4).
        let h = headers(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]);
        let r = RequestFacts::from_request(&Method::HEAD, &h);
        assert!(!r.pragma_no_cache && !r.has_authorization);
        assert_eq!(r.cache_control.max_age_secs(), Some(5));
        assert_eq!(r.method, Method::HEAD);
    }

    #[test]
    fn never_panics() {
        const PIECES: &[&str] = &[
            ",",
            "=",
            "\"",
            " ",
            "0",
            "-1",
            "99999999999999999999",
            "max-age",
            "s-maxage",
            "no-store",
            "private",
            "no-cache",
            "public",
            "must-understand",
            "?0",
            "?1",
            "(",
            ")",
            ";",
            "stale-if-error",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "é",
        ];
        let names = [
            "cache-control",
            "cdn-cache-control",
            "cairn-cdn-cache-control",
            "expires",
            "date",
            "last-modified",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let statuses = [100, 200, 204, 206, 304, 404, 410, 500, 503, 599, 999];
        let settings = [
            TtlSettings {
                default_ttl: 0,
                min_ttl: 0,
                max_ttl: 0,
            },
            TtlSettings {
                default_ttl: u64::MAX,
                min_ttl: u64::MAX,
                max_ttl: 0,
            },
            TtlSettings::default(),
        ];
        for _ in 0..3000 {
            let mut h = HeaderMap::new();
            for name in names {
                if next() % 2 == 0 {
                    let s: String = (0..next() % 8)
                        .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                        .collect();
                    if let Ok(v) = HeaderValue::from_str(&s) {
                        h.append(name, v);
                    }
                }
            }
            let ttl = settings[(next() % 3) as usize];
            let mut policy = StorePolicy::new(ttl);
            if next() % 2 == 0 {
                policy.mode = Mode::Strict;
            }
            policy.heuristic_max = Duration::from_secs(next());
            policy.error_ttls.default = next();
            let req = RequestFacts {
                has_authorization: next() % 3 == 0,
                ..RequestFacts::plain_get()
            };
            let status = StatusCode::from_u16(statuses[(next() % 11) as usize]).unwrap();
            for now in [
                UNIX_EPOCH,
                at(NOW),
                UNIX_EPOCH + Duration::from_secs(1 << 40),
            ] {
                let _ = decide_store(&policy, &req, status, &h, now);
            }
        }
    }
}
