//! CloudFront's expiration rules, the edge's default mode: whether a response is stored and
//! for how long, from its Cache-Control (RFC 9111 §5.2.2), Expires (RFC 9111 §5.3) and Date
//! (RFC 9110 §6.6.1) and the behavior's minimum, default and maximum TTLs.
//!
//! The TTL comes from `s-maxage`, else `max-age`, else `Expires - Date` (or `Expires - now`
//! when Date is missing or invalid), else the default TTL; it is then clamped to
//! `[min_ttl, max_ttl]`. With `min_ttl == 0`, `no-store` and `private` mean not stored and
//! `no-cache` means stored but revalidated on every use; with `min_ttl > 0` CloudFront
//! ignores those three directives and stores the response for the clamped TTL.
//! [`cloudfront_ttl_governed`] applies the same rules to the directives of a targeted field
//! (RFC 9213), which replace Expires as well as Cache-Control.

use std::time::{Duration, SystemTime};

use http::header::{DATE, EXPIRES};
use http::{HeaderMap, StatusCode};

use super::age::elapsed;
use super::cache_control::CacheControl;
use super::date::parse_http_date;
use super::targeted::CcSource;

/// A cache behavior's TTLs, in seconds. Config validation is expected to keep
/// `min_ttl <= default_ttl <= max_ttl`; if it does not, `min_ttl` wins over `max_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlSettings {
    pub default_ttl: u64,
    pub min_ttl: u64,
    pub max_ttl: u64,
}

impl Default for TtlSettings {
    /// CloudFront's defaults: one day, zero, one year.
    fn default() -> Self {
        TtlSettings {
            default_ttl: 86_400,
            min_ttl: 0,
            max_ttl: 31_536_000,
        }
    }
}

/// Where the TTL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlRule {
    /// `Cache-Control: s-maxage` (an invalid value gives 0).
    SMaxAge,
    /// `Cache-Control: max-age` (an invalid value gives 0).
    MaxAge,
    /// `Expires` minus `Date` or now (invalid or past gives 0).
    Expires,
    /// None of the above: the default TTL.
    Default,
    /// `no-cache` with `min_ttl == 0`: stored with a zero TTL, revalidated on every use.
    NoCache,
    /// No explicit expiration: a fraction of the time since Last-Modified (RFC 9111
    /// §4.2.2), in strict mode.
    Heuristic,
    /// An error status without explicit expiration: the behavior's error caching TTL.
    ErrorTtl,
    /// Not stored; see [`TtlDecision::not_stored`].
    NotStored,
}

impl TtlRule {
    pub fn as_str(self) -> &'static str {
        match self {
            TtlRule::SMaxAge => "s-maxage",
            TtlRule::MaxAge => "max-age",
            TtlRule::Expires => "expires",
            TtlRule::Default => "default",
            TtlRule::NoCache => "no-cache",
            TtlRule::Heuristic => "heuristic",
            TtlRule::ErrorTtl => "error-ttl",
            TtlRule::NotStored => "not-stored",
        }
    }
}

/// Which bound, if any, changed the TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clamp {
    None,
    /// Raised to `min_ttl`.
    Min,
    /// Lowered to `max_ttl`.
    Max,
}

impl Clamp {
    pub fn as_str(self) -> &'static str {
        match self {
            Clamp::None => "none",
            Clamp::Min => "min",
            Clamp::Max => "max",
        }
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStoredReason {
    /// The status is not in [`cacheable_status`].
    Status,
    /// `Cache-Control: no-store` with `min_ttl == 0`.
    NoStore,
    /// `Cache-Control: private` (qualified or not) with `min_ttl == 0`.
    Private,
}

impl NotStoredReason {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStoredReason::Status => "status",
            NotStoredReason::NoStore => "no-store",
            NotStoredReason::Private => "private",
        }
    }
}

/// The outcome of [`cloudfront_ttl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlDecision {
    /// False: do not store (`not_stored` says why).
    pub store: bool,
    /// Freshness lifetime, before subtracting the response's age. Zero when not stored.
    pub ttl: Duration,
    /// Stored but must be revalidated on every use (`no-cache` with `min_ttl == 0`).
    pub revalidate_each_use: bool,
    pub rule: TtlRule,
    pub clamp: Clamp,
    pub not_stored: Option<NotStoredReason>,
}

impl TtlDecision {
    fn not_stored(reason: NotStoredReason) -> Self {
        TtlDecision {
            store: false,
            ttl: Duration::ZERO,
            revalidate_each_use: false,
            rule: TtlRule::NotStored,
            clamp: Clamp::None,
            not_stored: Some(reason),
        }
    }
}

/// Statuses this mode stores: 200, 203, 204, 206, 300, 301 and 410. CloudFront also caches
/// 404, 405, 414 and 501, but the edge decides error statuses with its own (error caching)
/// rules, so they are not stored here.
pub fn cacheable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 200 | 203 | 204 | 206 | 300 | 301 | 410)
}

/// CloudFront's decision for a response with headers `resp` and `status`, received `now`.
pub fn cloudfront_ttl(
    resp: &HeaderMap,
    status: StatusCode,
    settings: &TtlSettings,
    now: SystemTime,
) -> TtlDecision {
    cloudfront_ttl_with(
        resp,
        &CacheControl::from_headers(resp),
        status,
        settings,
        now,
    )
}

/// [`cloudfront_ttl`] with the response's Cache-Control already parsed.
pub fn cloudfront_ttl_with(
    resp: &HeaderMap,
    cc: &CacheControl,
    status: StatusCode,
    settings: &TtlSettings,
    now: SystemTime,
) -> TtlDecision {
    cloudfront_ttl_governed(resp, cc, CcSource::CacheControl, status, settings, now)
}

/// [`cloudfront_ttl_with`] for the directives that govern this cache (RFC 9213, see
/// [`governing_cache_control`](super::governing_cache_control)): when `source` is a
/// targeted field, `cc` holds its directives and Expires is ignored (RFC 9213 §2.2).
pub fn cloudfront_ttl_governed(
    resp: &HeaderMap,
    cc: &CacheControl,
    source: CcSource,
    status: StatusCode,
    settings: &TtlSettings,
    now: SystemTime,
) -> TtlDecision {
    if !cacheable_status(status) {
        return TtlDecision::not_stored(NotStoredReason::Status);
    }
    if settings.min_ttl == 0 {
        if cc.no_store {
            return TtlDecision::not_stored(NotStoredReason::NoStore);
        }
        // Qualified `private="..."` is treated like `private`: a shared cache could only
        // store the response without those fields, which CloudFront does not do.
        if cc.private.is_present() {
            return TtlDecision::not_stored(NotStoredReason::Private);
        }
        // Only unqualified `no-cache` forces revalidation; the qualified form only restricts
        // the listed fields (RFC 9111 §5.2.2.4), which this mode does not act on.
        if cc.no_cache.is_all() {
            return TtlDecision {
                store: true,
                ttl: Duration::ZERO,
                revalidate_each_use: true,
                rule: TtlRule::NoCache,
                clamp: Clamp::None,
                not_stored: None,
            };
        }
    }
    let (raw, rule) = explicit_ttl(resp, cc, !source.ignores_expires(), now)
        .unwrap_or((settings.default_ttl, TtlRule::Default));
    let (ttl, clamp) = clamp_ttl(raw, settings);
    TtlDecision {
        store: true,
        ttl: Duration::from_secs(ttl),
        revalidate_each_use: false,
        rule,
        clamp,
        not_stored: None,
    }
}

/// The explicit expiration time (RFC 9111 §4.2.1) in seconds and its rule: s-maxage >
/// max-age > Expires (only if `use_expires`); `None` when there is none. An invalid
/// s-maxage or max-age means stale at once (RFC 9111 §4.2.1), not a fall-through.
pub(crate) fn explicit_ttl(
    resp: &HeaderMap,
    cc: &CacheControl,
    use_expires: bool,
    now: SystemTime,
) -> Option<(u64, TtlRule)> {
    if let Some(d) = cc.s_maxage {
        return Some((d.secs().unwrap_or(0), TtlRule::SMaxAge));
    }
    if let Some(d) = cc.max_age {
        return Some((d.secs().unwrap_or(0), TtlRule::MaxAge));
    }
    if use_expires {
        if let Some(secs) = expires_ttl(resp, now) {
            return Some((secs, TtlRule::Expires));
        }
    }
    None
}

/// `Expires - Date` in seconds (RFC 9111 §4.2.1), with `now` standing in for a missing or
/// invalid Date; `None` without Expires. An invalid Expires, or several that disagree,
/// means already expired (RFC 9111 §5.3), as does one in the past.
fn expires_ttl(resp: &HeaderMap, now: SystemTime) -> Option<u64> {
    let mut values = resp.get_all(EXPIRES).iter();
    let first = values.next()?;
    if values.any(|v| v != first) {
        return Some(0);
    }
    let Some(expires) = parse_http_date(first) else {
        return Some(0);
    };
    let date = resp.get(DATE).and_then(parse_http_date).unwrap_or(now);
    Some(elapsed(date, expires).as_secs())
}

/// Clamps to `[min_ttl, max_ttl]`, `min_ttl` winning if the two cross.
pub(crate) fn clamp_ttl(ttl: u64, settings: &TtlSettings) -> (u64, Clamp) {
    if ttl < settings.min_ttl {
        (settings.min_ttl, Clamp::Min)
    } else if ttl > settings.max_ttl {
        (settings.max_ttl.max(settings.min_ttl), Clamp::Max)
    } else {
        (ttl, Clamp::None)
    }
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

    fn settings(min_ttl: u64, default_ttl: u64, max_ttl: u64) -> TtlSettings {
        TtlSettings {
            default_ttl,
            min_ttl,
            max_ttl,
        }
    }

    /// Wide bounds so that no clamp applies.
    const WIDE: TtlSettings = TtlSettings {
        default_ttl: 86_400,
        min_ttl: 0,
        max_ttl: 1 << 40,
    };

    fn decide(pairs: &[(&'static str, &str)], s: &TtlSettings) -> TtlDecision {
        cloudfront_ttl(&headers(pairs), StatusCode::OK, s, at(NOW))
    }

    fn stored(d: &TtlDecision, secs: u64, rule: TtlRule, clamp: Clamp) {
        assert!(d.store, "{d:?}");
        assert_eq!(d.not_stored, None, "{d:?}");
        assert!(!d.revalidate_each_use, "{d:?}");
        assert_eq!(d.ttl, Duration::from_secs(secs), "{d:?}");
        assert_eq!(d.rule, rule, "{d:?}");
        assert_eq!(d.clamp, clamp, "{d:?}");
    }

    fn not_stored(d: &TtlDecision, reason: NotStoredReason) {
        assert!(!d.store, "{d:?}");
        assert_eq!(d.not_stored, Some(reason), "{d:?}");
        assert_eq!(d.ttl, Duration::ZERO);
        assert_eq!(d.rule, TtlRule::NotStored);
    }

    #[test]
    fn precedence() {
        let expires = date(NOW + 500);
        let all = [
            ("cache-control", "max-age=100, s-maxage=200"),
            ("expires", expires.as_str()),
        ];
        stored(&decide(&all, &WIDE), 200, TtlRule::SMaxAge, Clamp::None);
        let no_s = [
            ("cache-control", "max-age=100"),
            ("expires", expires.as_str()),
        ];
        stored(&decide(&no_s, &WIDE), 100, TtlRule::MaxAge, Clamp::None);
        let only_expires = [("expires", expires.as_str())];
        stored(
            &decide(&only_expires, &WIDE),
            500,
            TtlRule::Expires,
            Clamp::None,
        );
        stored(&decide(&[], &WIDE), 86_400, TtlRule::Default, Clamp::None);
        // Cache-Control without a lifetime falls through to the default too.
        stored(
            &decide(&[("cache-control", "public")], &WIDE),
            86_400,
            TtlRule::Default,
            Clamp::None,
        );
        // max-age=0 is a lifetime, not an absence.
        stored(
            &decide(&[("cache-control", "max-age=0")], &WIDE),
            0,
            TtlRule::MaxAge,
            Clamp::None,
        );
    }

    #[test]
    fn invalid_max_age_or_s_maxage_is_stale_not_fall_through() {
        let expires = date(NOW + 500);
        let d = decide(
            &[("cache-control", "max-age=abc"), ("expires", &expires)],
            &WIDE,
        );
        stored(&d, 0, TtlRule::MaxAge, Clamp::None);
        let d = decide(&[("cache-control", "s-maxage=-1, max-age=100")], &WIDE);
        stored(&d, 0, TtlRule::SMaxAge, Clamp::None);
        let d = decide(&[("cache-control", "max-age=100, max-age=200")], &WIDE);
        stored(&d, 0, TtlRule::MaxAge, Clamp::None);
        // With a minimum TTL the zero is raised.
        let d = decide(
            &[("cache-control", "max-age=abc")],
            &settings(60, 86_400, 1000),
        );
        stored(&d, 60, TtlRule::MaxAge, Clamp::Min);
    }

    #[test]
    fn expires_with_and_without_date() {
        // Expires - Date, not Expires - now.
        let d = decide(
            &[("date", &date(NOW - 100)), ("expires", &date(NOW + 500))],
            &WIDE,
        );
        stored(&d, 600, TtlRule::Expires, Clamp::None);
        // Invalid Date: Expires - now.
        let d = decide(
            &[("date", "yesterday"), ("expires", &date(NOW + 500))],
            &WIDE,
        );
        stored(&d, 500, TtlRule::Expires, Clamp::None);
        // Obsolete formats are accepted.
        let d = decide(&[("expires", "Sunday, 06-Nov-94 08:49:37 GMT")], &WIDE);
        stored(&d, 0, TtlRule::Expires, Clamp::None);
    }

    #[test]
    fn expires_invalid_or_past_is_zero() {
        for bad in ["0", "-1", "never", ""] {
            let d = decide(&[("expires", bad)], &WIDE);
            stored(&d, 0, TtlRule::Expires, Clamp::None);
        }
        let d = decide(&[("expires", &date(NOW - 10))], &WIDE);
        stored(&d, 0, TtlRule::Expires, Clamp::None);
        // Expires before Date.
        let d = decide(&[("date", &date(NOW)), ("expires", &date(NOW - 10))], &WIDE);
        stored(&d, 0, TtlRule::Expires, Clamp::None);
        // Disagreeing duplicates: invalid. Equal duplicates: fine.
        let (a, b) = (date(NOW + 10), date(NOW + 20));
        stored(
            &decide(&[("expires", &a), ("expires", &b)], &WIDE),
            0,
            TtlRule::Expires,
            Clamp::None,
        );
        stored(
            &decide(&[("expires", &a), ("expires", &a)], &WIDE),
            10,
            TtlRule::Expires,
            Clamp::None,
        );
        // Invalid Expires, then clamped up.
        let d = decide(&[("expires", "0")], &settings(30, 100, 1000));
        stored(&d, 30, TtlRule::Expires, Clamp::Min);
    }

    #[test]
    fn clamps_both_ways() {
        let s = settings(60, 600, 3600);
        stored(
            &decide(&[("cache-control", "max-age=10")], &s),
            60,
            TtlRule::MaxAge,
            Clamp::Min,
        );
        stored(
            &decide(&[("cache-control", "max-age=99999")], &s),
            3600,
            TtlRule::MaxAge,
            Clamp::Max,
        );
        stored(
            &decide(&[("cache-control", "max-age=3600")], &s),
            3600,
            TtlRule::MaxAge,
            Clamp::None,
        );
        stored(
            &decide(&[("cache-control", "max-age=60")], &s),
            60,
            TtlRule::MaxAge,
            Clamp::None,
        );
        stored(
            &decide(&[("cache-control", "s-maxage=1")], &s),
            60,
            TtlRule::SMaxAge,
            Clamp::Min,
        );
        let far = date(NOW + 1_000_000);
        stored(
            &decide(&[("expires", &far)], &s),
            3600,
            TtlRule::Expires,
            Clamp::Max,
        );
        // Max clamp with min_ttl == 0.
        let s0 = settings(0, 600, 3600);
        stored(
            &decide(&[("cache-control", "max-age=7200")], &s0),
            3600,
            TtlRule::MaxAge,
            Clamp::Max,
        );
        // The default is clamped too (misconfigured default above max).
        stored(
            &decide(&[], &settings(0, 7200, 3600)),
            3600,
            TtlRule::Default,
            Clamp::Max,
        );
        // Crossed bounds: min wins.
        stored(
            &decide(&[("cache-control", "max-age=5000")], &settings(100, 50, 10)),
            100,
            TtlRule::MaxAge,
            Clamp::Max,
        );
        stored(
            &decide(&[("cache-control", "max-age=1")], &settings(100, 50, 10)),
            100,
            TtlRule::MaxAge,
            Clamp::Min,
        );
    }

    #[test]
    fn min_ttl_with_no_headers_is_max_of_min_and_default() {
        stored(
            &decide(&[], &settings(600, 60, 3600)),
            600,
            TtlRule::Default,
            Clamp::Min,
        );
        stored(
            &decide(&[], &settings(60, 600, 3600)),
            600,
            TtlRule::Default,
            Clamp::None,
        );
    }

    #[test]
    fn min_ttl_zero_honours_no_store_private_no_cache() {
        let s = settings(0, 86_400, 31_536_000);
        not_stored(
            &decide(&[("cache-control", "no-store, max-age=60")], &s),
            NotStoredReason::NoStore,
        );
        not_stored(
            &decide(&[("cache-control", "private, max-age=60")], &s),
            NotStoredReason::Private,
        );
        not_stored(
            &decide(
                &[("cache-control", "private=\"set-cookie\", max-age=60")],
                &s,
            ),
            NotStoredReason::Private,
        );
        // no-store is reported before private.
        not_stored(
            &decide(&[("cache-control", "private, no-store")], &s),
            NotStoredReason::NoStore,
        );
        let d = decide(&[("cache-control", "no-cache, max-age=60")], &s);
        assert!(d.store && d.revalidate_each_use, "{d:?}");
        assert_eq!(d.ttl, Duration::ZERO);
        assert_eq!(d.rule, TtlRule::NoCache);
        assert_eq!(d.not_stored, None);
        // Qualified no-cache does not force revalidation in this mode.
        let d = decide(
            &[("cache-control", "no-cache=\"set-cookie\", max-age=60")],
            &s,
        );
        stored(&d, 60, TtlRule::MaxAge, Clamp::None);
        // no-store wins over no-cache.
        not_stored(
            &decide(&[("cache-control", "no-cache, no-store")], &s),
            NotStoredReason::NoStore,
        );
    }

    #[test]
    fn min_ttl_above_zero_overrides_no_store_private_no_cache() {
        let s = settings(60, 600, 3600);
        for cc in [
            "no-store",
            "private",
            "no-cache",
            "no-store, private, no-cache",
        ] {
            let d = decide(&[("cache-control", cc)], &s);
            stored(&d, 600, TtlRule::Default, Clamp::None);
        }
        let d = decide(&[("cache-control", "no-store, max-age=10")], &s);
        stored(&d, 60, TtlRule::MaxAge, Clamp::Min);
        let d = decide(&[("cache-control", "private, max-age=120")], &s);
        stored(&d, 120, TtlRule::MaxAge, Clamp::None);
        let d = decide(&[("cache-control", "no-cache, s-maxage=99999")], &s);
        stored(&d, 3600, TtlRule::SMaxAge, Clamp::Max);
    }

    #[test]
    fn statuses() {
        for code in [200, 203, 204, 206, 300, 301, 410] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(cacheable_status(status), "{code}");
            let d = cloudfront_ttl(&HeaderMap::new(), status, &WIDE, at(NOW));
            stored(&d, 86_400, TtlRule::Default, Clamp::None);
        }
        for code in [
            100, 201, 302, 304, 307, 400, 403, 404, 405, 414, 500, 501, 502, 503,
        ] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(!cacheable_status(status), "{code}");
            // Even a minimum TTL does not store them.
            let d = cloudfront_ttl(&HeaderMap::new(), status, &settings(60, 60, 60), at(NOW));
            not_stored(&d, NotStoredReason::Status);
        }
    }

    #[test]
    fn parsed_variant_agrees() {
        let h = headers(&[("cache-control", "s-maxage=5")]);
        let cc = CacheControl::from_headers(&h);
        assert_eq!(
            cloudfront_ttl_with(&h, &cc, StatusCode::OK, &WIDE, at(NOW)),
            cloudfront_ttl(&h, StatusCode::OK, &WIDE, at(NOW))
        );
    }

    #[test]
    fn governed_variant_ignores_expires_for_targeted_fields() {
        let expires = date(NOW + 500);
        let h = headers(&[("expires", &expires), ("cdn-cache-control", "public")]);
        let targeted = CacheControl::parse("public");
        let d =
            cloudfront_ttl_governed(&h, &targeted, CcSource::Cdn, StatusCode::OK, &WIDE, at(NOW));
        stored(&d, 86_400, TtlRule::Default, Clamp::None);
        let d = cloudfront_ttl_governed(
            &h,
            &targeted,
            CcSource::CacheControl,
            StatusCode::OK,
            &WIDE,
            at(NOW),
        );
        stored(&d, 500, TtlRule::Expires, Clamp::None);
        assert_eq!(TtlRule::Heuristic.as_str(), "heuristic");
        assert_eq!(TtlRule::ErrorTtl.as_str(), "error-ttl");
    }

    #[test]
    fn as_str_names() {
        assert_eq!(TtlRule::SMaxAge.as_str(), "s-maxage");
        assert_eq!(TtlRule::Default.as_str(), "default");
        assert_eq!(Clamp::Max.as_str(), "max");
        assert_eq!(NotStoredReason::Private.as_str(), "private");
        assert_eq!(TtlSettings::default(), settings(0, 86_400, 31_536_000));
    }

    #[test]
    fn never_panics() {
        let extremes = [
            settings(0, 0, 0),
            settings(u64::MAX, u64::MAX, u64::MAX),
            settings(u64::MAX, 0, 0),
            settings(0, u64::MAX, 0),
        ];
        let nasty: [&[(&'static str, &str)]; 6] = [
            &[("cache-control", "max-age=99999999999999999999999")],
            &[("expires", "Fri, 31 Dec 9999 23:59:59 GMT")],
            &[
                ("expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
                ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ],
            &[
                ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
                ("date", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ],
            &[("cache-control", "\"\\,=,\""), ("expires", "\\")],
            &[("date", "\t"), ("expires", "\t")],
        ];
        for s in &extremes {
            for h in nasty {
                for now in [
                    UNIX_EPOCH,
                    at(NOW),
                    UNIX_EPOCH + Duration::from_secs(1 << 40),
                ] {
                    let _ = cloudfront_ttl(&headers(h), StatusCode::OK, s, now);
                }
            }
        }
    }
}
