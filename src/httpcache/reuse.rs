//! Whether a stored response may answer a request (RFC 9111 §4, §4.2.4, §5.2.1) and
//! whether a stale one may be served after the origin failed (RFC 5861). A fresh response
//! is served; a stale one is served while its `stale-while-revalidate` window lasts
//! (RFC 5861 §3) and refreshed in the background, else revalidated. `must-revalidate`,
//! `proxy-revalidate` and `s-maxage` (RFC 9111 §5.2.2.2, §5.2.2.8, §5.2.2.10) and
//! unqualified `no-cache` (RFC 9111 §5.2.2.4) forbid every stale use, as RFC 9111 §4.2.4
//! requires. In [`Mode::CloudFront`] the viewer's request directives are ignored (no viewer
//! can bypass the cache); in [`Mode::Strict`] they are honoured (RFC 9111 §5.2.1, §5.4).

use std::time::Duration;

use http::Method;

use super::cache_control::CacheControl;
use super::store::{Mode, RequestFacts};

/// What the cache knows about a stored response when a request arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFacts {
    /// Freshness lifetime (RFC 9111 §4.2.1), as decided when it was stored.
    pub freshness: Duration,
    /// Current age (RFC 9111 §4.2.3).
    pub current_age: Duration,
    /// Unqualified `no-cache`: validate before every use (RFC 9111 §5.2.2.4).
    pub revalidate_each_use: bool,
    /// `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served stale.
    pub must_revalidate: bool,
    /// RFC 5861 §3.
    pub stale_while_revalidate: Option<Duration>,
    /// RFC 5861 §4.
    pub stale_if_error: Option<Duration>,
    /// A valid ETag or Last-Modified (RFC 9111 §4.3.1).
    pub has_validator: bool,
}

impl StoredFacts {
    /// True while `current_age < freshness` (RFC 9111 §4.2).
    pub fn is_fresh(&self) -> bool {
        self.current_age < self.freshness
    }

    /// How long ago it became stale; zero while fresh.
    pub fn staleness(&self) -> Duration {
        self.current_age.saturating_sub(self.freshness)
    }
}

/// How a request can use a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it now without contacting the origin: fresh, or (strict mode) stale within
    /// the request's `max-stale`.
    Fresh,
    /// Serve it now and refresh it in the background (RFC 5861 §3).
    StaleWhileRevalidate,
    /// Contact the origin first: a conditional request when the stored response has a
    /// validator, else a plain one. If that fails, see [`stale_if_error_allows`].
    Revalidate,
    /// The stored response cannot be used for this request at all.
    Fetch,
}

impl Reuse {
    pub fn as_str(self) -> &'static str {
        match self {
            Reuse::Fresh => "fresh",
            Reuse::StaleWhileRevalidate => "stale-while-revalidate",
            Reuse::Revalidate => "revalidate",
            Reuse::Fetch => "fetch",
        }
    }
}

/// How the request `req` may use the stored response described by `stored`.
pub fn reuse(mode: Mode, stored: &StoredFacts, req: &RequestFacts) -> Reuse {
    // RFC 9111 §4: a stored response answers only the method it was stored for (a GET
    // response also answers HEAD).
    if req.method != Method::GET && req.method != Method::HEAD {
        return Reuse::Fetch;
    }
    // RFC 9111 §5.2.2.4: no-cache means validation before every use, fresh or not.
    if stored.revalidate_each_use {
        return Reuse::Revalidate;
    }
    let directives = match mode {
        Mode::CloudFront => None,
        Mode::Strict => Some(&req.cache_control),
    };
    if let Some(cc) = directives {
        // RFC 9111 §5.2.1.4 and §5.4 (Pragma only without Cache-Control).
        if cc.no_cache.is_present() || req.pragma_no_cache {
            return Reuse::Revalidate;
        }
        // RFC 9111 §5.2.1.1: the client wants an age of at most max-age (stale beyond,
        // even with max-stale). An invalid value is read as 0, the stricter reading.
        if let Some(max_age) = cc.max_age {
            let limit = Duration::from_secs(max_age.secs().unwrap_or(0));
            if stored.current_age > limit {
                return Reuse::Revalidate;
            }
        }
    }
    if stored.is_fresh() {
        // RFC 9111 §5.2.1.3: at least min-fresh of the lifetime must remain.
        if let Some(min_fresh) = directives.and_then(|cc| cc.min_fresh) {
            let remaining = stored.freshness.saturating_sub(stored.current_age);
            if remaining < Duration::from_secs(min_fresh) {
                return Reuse::Revalidate;
            }
        }
        return Reuse::Fresh;
    }
    // Stale. RFC 9111 §4.2.4 and §5.2.2.2: must-revalidate (and what implies it) forbids
    // any use without validation.
    if stored.must_revalidate {
        return Reuse::Revalidate;
    }
    let staleness = stored.staleness();
    // RFC 9111 §5.2.1.2: the client accepts this much staleness (any, without a value).
    if let Some(max_stale) = directives.and_then(max_stale) {
        if max_stale.is_none_or(|limit| staleness <= limit) {
            return Reuse::Fresh;
        }
    }
    // RFC 5861 §3.
    if stored
        .stale_while_revalidate
        .is_some_and(|window| staleness <= window)
    {
        return Reuse::StaleWhileRevalidate;
    }
    Reuse::Revalidate
}

/// After the origin failed (an error status or no answer) while `req` was being served,
/// may the stored response be sent instead? A fresh one may (RFC 9111 §4.3.3); a stale
/// one only within `stale-if-error` seconds of becoming stale, from the response or, in
/// strict mode, from the request (RFC 5861 §4). Never with `must-revalidate` (or what
/// implies it, RFC 9111 §5.2.2.2) or unqualified `no-cache` (RFC 9111 §5.2.2.4), which
/// forbid any use without successful validation.
pub fn stale_if_error_allows(mode: Mode, stored: &StoredFacts, req: &RequestFacts) -> bool {
    if req.method != Method::GET && req.method != Method::HEAD {
        return false;
    }
    if stored.revalidate_each_use {
        return false;
    }
    if stored.is_fresh() {
        return true;
    }
    if stored.must_revalidate {
        return false;
    }
    // CloudFront serves what it has cached when the origin answers 5xx or does not answer
    // ("Origin unavailable"), for as long as it keeps the object (the stale grace).
    if mode == Mode::CloudFront {
        return true;
    }
    let staleness = stored.staleness();
    let request_window = match mode {
        Mode::CloudFront => None,
        Mode::Strict => req.cache_control.stale_if_error.map(Duration::from_secs),
    };
    [stored.stale_if_error, request_window]
        .into_iter()
        .flatten()
        .any(|window| staleness <= window)
}

/// The request's `max-stale`: `Some(None)` for any staleness, `Some(Some(limit))`.
fn max_stale(cc: &CacheControl) -> Option<Option<Duration>> {
    cc.max_stale.map(|v| v.map(Duration::from_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Fresh for 100 s, age 10 s, nothing else.
    fn stored() -> StoredFacts {
        StoredFacts {
            freshness: secs(100),
            current_age: secs(10),
            revalidate_each_use: false,
            must_revalidate: false,
            stale_while_revalidate: None,
            stale_if_error: None,
            has_validator: true,
        }
    }

    fn aged(age: u64) -> StoredFacts {
        StoredFacts {
            current_age: secs(age),
            ..stored()
        }
    }

    fn req(cc: &str) -> RequestFacts {
        RequestFacts {
            cache_control: CacheControl::parse(cc),
            ..RequestFacts::plain_get()
        }
    }

    const MODES: [Mode; 2] = [Mode::Strict, Mode::CloudFront];

    #[test]
    fn fresh_while_age_below_freshness() {
        for mode in MODES {
            assert_eq!(reuse(mode, &aged(0), &req("")), Reuse::Fresh);
            assert_eq!(reuse(mode, &aged(99), &req("")), Reuse::Fresh);
            assert_eq!(reuse(mode, &aged(100), &req("")), Reuse::Revalidate);
            assert_eq!(reuse(mode, &aged(5000), &req("")), Reuse::Revalidate);
            let zero = StoredFacts {
                freshness: Duration::ZERO,
                current_age: Duration::ZERO,
                ..stored()
            };
            assert_eq!(reuse(mode, &zero, &req("")), Reuse::Revalidate);
        }
    }

    #[test]
    fn revalidate_without_validator_is_still_revalidate() {
        let s = StoredFacts {
            has_validator: false,
            ..aged(200)
        };
        assert_eq!(reuse(Mode::Strict, &s, &req("")), Reuse::Revalidate);
    }

    #[test]
    fn other_methods_cannot_use_stored_responses() {
        for mode in MODES {
            for m in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
                let r = RequestFacts {
                    method: m,
                    ..RequestFacts::plain_get()
                };
                assert_eq!(reuse(mode, &stored(), &r), Reuse::Fetch);
                assert!(!stale_if_error_allows(mode, &stored(), &r));
            }
            let head = RequestFacts {
                method: Method::HEAD,
                ..RequestFacts::plain_get()
            };
            assert_eq!(reuse(mode, &stored(), &head), Reuse::Fresh);
        }
        assert_eq!(Reuse::Fetch.as_str(), "fetch");
    }

    #[test]
    fn no_cache_response_revalidates_each_use() {
        let s = StoredFacts {
            revalidate_each_use: true,
            stale_while_revalidate: Some(secs(1000)),
            stale_if_error: Some(secs(1000)),
            ..stored()
        };
        for mode in MODES {
            assert_eq!(reuse(mode, &s, &req("max-stale")), Reuse::Revalidate);
            assert!(!stale_if_error_allows(
                mode,
                &s,
                &req("stale-if-error=9999")
            ));
        }
    }

    #[test]
    fn stale_while_revalidate_window() {
        let s = |age| StoredFacts {
            stale_while_revalidate: Some(secs(30)),
            ..aged(age)
        };
        for mode in MODES {
            assert_eq!(reuse(mode, &s(50), &req("")), Reuse::Fresh);
            assert_eq!(reuse(mode, &s(100), &req("")), Reuse::StaleWhileRevalidate);
            assert_eq!(reuse(mode, &s(130), &req("")), Reuse::StaleWhileRevalidate);
            assert_eq!(reuse(mode, &s(131), &req("")), Reuse::Revalidate);
            // Never with must-revalidate.
            let strict = StoredFacts {
                must_revalidate: true,
                ..s(110)
            };
            assert_eq!(reuse(mode, &strict, &req("")), Reuse::Revalidate);
        }
        // A request that insists on validation gets it (strict mode).
        assert_eq!(
            reuse(Mode::Strict, &s(110), &req("no-cache")),
            Reuse::Revalidate
        );
        assert_eq!(
            reuse(Mode::Strict, &s(110), &req("max-age=50")),
            Reuse::Revalidate
        );
    }

    #[test]
    fn stale_if_error_window_and_must_revalidate() {
        let s = |age| StoredFacts {
            stale_if_error: Some(secs(60)),
            ..aged(age)
        };
        for mode in MODES {
            // Fresh: always usable after an error.
            assert!(stale_if_error_allows(mode, &aged(10), &req("")));
            assert!(stale_if_error_allows(mode, &s(100), &req("")));
            assert!(stale_if_error_allows(mode, &s(160), &req("")));
            // Strict mode: only within the window, and not without the directive.
            // CloudFront mode: whatever is still cached is served when the origin fails.
            let strict = mode == Mode::Strict;
            assert_eq!(stale_if_error_allows(mode, &s(161), &req("")), !strict);
            assert_eq!(stale_if_error_allows(mode, &aged(101), &req("")), !strict);
            let must = StoredFacts {
                must_revalidate: true,
                ..s(120)
            };
            assert!(!stale_if_error_allows(
                mode,
                &must,
                &req("stale-if-error=1000")
            ));
            // must-revalidate does not matter while fresh.
            let must_fresh = StoredFacts {
                must_revalidate: true,
                ..s(50)
            };
            assert!(stale_if_error_allows(mode, &must_fresh, &req("")));
        }
    }

    #[test]
    fn request_stale_if_error_in_strict_mode_only() {
        let s = aged(150);
        assert!(stale_if_error_allows(
            Mode::Strict,
            &s,
            &req("stale-if-error=50")
        ));
        assert!(!stale_if_error_allows(
            Mode::Strict,
            &s,
            &req("stale-if-error=49")
        ));
        // CloudFront mode serves it anyway (whatever the request says).
        assert!(stale_if_error_allows(Mode::CloudFront, &s, &req("")));
        // Either window suffices.
        let with = StoredFacts {
            stale_if_error: Some(secs(10)),
            ..s
        };
        assert!(stale_if_error_allows(
            Mode::Strict,
            &with,
            &req("stale-if-error=100")
        ));
    }

    #[test]
    fn request_no_cache_revalidates_in_strict_mode() {
        assert_eq!(
            reuse(Mode::Strict, &stored(), &req("no-cache")),
            Reuse::Revalidate
        );
        let pragma = RequestFacts {
            pragma_no_cache: true,
            ..RequestFacts::plain_get()
        };
        assert_eq!(reuse(Mode::Strict, &stored(), &pragma), Reuse::Revalidate);
    }

    #[test]
    fn request_max_age_in_strict_mode() {
        assert_eq!(
            reuse(Mode::Strict, &aged(10), &req("max-age=10")),
            Reuse::Fresh
        );
        assert_eq!(
            reuse(Mode::Strict, &aged(11), &req("max-age=10")),
            Reuse::Revalidate
        );
        assert_eq!(
            reuse(Mode::Strict, &aged(1), &req("max-age=0")),
            Reuse::Revalidate
        );
        assert_eq!(
            reuse(Mode::Strict, &aged(0), &req("max-age=0")),
            Reuse::Fresh
        );
        // Invalid: read as 0.
        assert_eq!(
            reuse(Mode::Strict, &aged(1), &req("max-age=x")),
            Reuse::Revalidate
        );
        // With max-stale, a stale response within max-age is acceptable.
        assert_eq!(
            reuse(Mode::Strict, &aged(150), &req("max-age=200, max-stale")),
            Reuse::Fresh
        );
        assert_eq!(
            reuse(Mode::Strict, &aged(250), &req("max-age=200, max-stale")),
            Reuse::Revalidate
        );
    }

    #[test]
    fn request_min_fresh_in_strict_mode() {
        // 90 s of freshness remain.
        assert_eq!(
            reuse(Mode::Strict, &aged(10), &req("min-fresh=90")),
            Reuse::Fresh
        );
        assert_eq!(
            reuse(Mode::Strict, &aged(10), &req("min-fresh=91")),
            Reuse::Revalidate
        );
    }

    #[test]
    fn request_max_stale_in_strict_mode() {
        assert_eq!(
            reuse(Mode::Strict, &aged(150), &req("max-stale=50")),
            Reuse::Fresh
        );
        assert_eq!(
            reuse(Mode::Strict, &aged(151), &req("max-stale=50")),
            Reuse::Revalidate
        );
        assert_eq!(
            reuse(Mode::Strict, &aged(1 << 40), &req("max-stale")),
            Reuse::Fresh
        );
        // Never when must-revalidate.
        let must = StoredFacts {
            must_revalidate: true,
            ..aged(150)
        };
        assert_eq!(
            reuse(Mode::Strict, &must, &req("max-stale")),
            Reuse::Revalidate
        );
        // Beyond max-stale, stale-while-revalidate still applies.
        let swr = StoredFacts {
            stale_while_revalidate: Some(secs(100)),
            ..aged(180)
        };
        assert_eq!(
            reuse(Mode::Strict, &swr, &req("max-stale=50")),
            Reuse::StaleWhileRevalidate
        );
    }

    #[test]
    fn request_directives_ignored_in_cloudfront_mode() {
        for cc in ["no-cache", "max-age=0", "min-fresh=99999", "no-store"] {
            assert_eq!(
                reuse(Mode::CloudFront, &stored(), &req(cc)),
                Reuse::Fresh,
                "{cc}"
            );
        }
        let pragma = RequestFacts {
            pragma_no_cache: true,
            ..RequestFacts::plain_get()
        };
        assert_eq!(reuse(Mode::CloudFront, &stored(), &pragma), Reuse::Fresh);
        assert_eq!(
            reuse(Mode::CloudFront, &aged(150), &req("max-stale")),
            Reuse::Revalidate
        );
    }

    #[test]
    fn never_panics() {
        let durations = [0, 1, 100, u64::MAX / 2, u64::MAX];
        let requests = [
            "",
            "max-age=0",
            "max-stale",
            "max-stale=99999999999999",
            "min-fresh=99999999999",
            "no-cache",
            "stale-if-error=99999999999",
        ];
        for &f in &durations {
            for &a in &durations {
                for &w in &durations {
                    let s = StoredFacts {
                        freshness: secs(f),
                        current_age: Duration::MAX.min(secs(a)),
                        revalidate_each_use: false,
                        must_revalidate: w % 2 == 1,
                        stale_while_revalidate: Some(secs(w)),
                        stale_if_error: Some(secs(w)),
                        has_validator: false,
                    };
                    for r in requests {
                        for mode in MODES {
                            let _ = reuse(mode, &s, &req(r));
                            let _ = stale_if_error_allows(mode, &s, &req(r));
                        }
                    }
                }
            }
        }
        let max = StoredFacts {
            freshness: Duration::MAX,
            current_age: Duration::MAX,
            ..stored()
        };
        let _ = reuse(Mode::Strict, &max, &req("min-fresh=5"));
    }
}
