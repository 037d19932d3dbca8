//! HTTP caching semantics as pure functions over `http::HeaderMap` and `SystemTime`: no I/O,
//! no async, no panics on any input. Cache-Control parsing (RFC 9111 §5.2), targeted
//! cache-control fields (RFC 9213), HTTP dates (RFC 9110 §5.6.7), Age and the age
//! calculation (RFC 9111 §5.1, §4.2.3), CloudFront's TTL rules (the edge's default mode),
//! the storing decision in CloudFront or strict RFC 9111 mode (RFC 9111 §3, §4.2), the reuse
//! decision with RFC 5861's stale windows (RFC 9111 §4), hop-by-hop fields
//! (RFC 9110 §7.6.1), validators for
//! revalidation (RFC 9111 §4.3.1), viewers' conditional requests (RFC 9110 §13,
//! `conditional`), byte ranges (RFC 9110 §14, `range`), Vary (RFC 9111 §4.1) and
//! invalidation after unsafe methods (RFC 9111 §4.4), and cache tags (`Surrogate-Key`,
//! `Cache-Tag`, `tags`), and the edge's whole admission decision (`admit`).

mod admit;
mod age;
mod cache_control;
pub mod conditional;
mod date;
mod hop_by_hop;
mod invalidate;
pub mod range;
mod reuse;
mod store;
pub mod tags;
mod targeted;
mod ttl;
mod validators;
mod vary;

pub use admit::{admit, refused, Admission, Admitting, Received};
pub use age::{current_age, initial_age, parse_age};
pub use cache_control::{
    parse_delta_seconds, CacheControl, Delta, FieldDirective, DELTA_SECONDS_MAX,
};
pub use date::{format_http_date, parse_http_date};
pub use hop_by_hop::{is_hop_by_hop, strip_hop_by_hop, HOP_BY_HOP};
pub use invalidate::{invalidation_targets, is_safe};
pub use reuse::{reuse, stale_if_error_allows, Reuse, StoredFacts};
pub use store::{
    cloudfront_error_status, decide_store, heuristically_cacheable, reason, understood_status,
    ErrorTtls, Mode, RequestFacts, StoreDecision, StorePolicy, DEFAULT_ERROR_TTL,
    DEFAULT_HEURISTIC_MAX,
};
pub use targeted::{
    governing_cache_control, parse_targeted, CcSource, CAIRN_CDN_CACHE_CONTROL, CDN_CACHE_CONTROL,
};
pub use ttl::{
    cacheable_status, cloudfront_ttl, cloudfront_ttl_governed, cloudfront_ttl_with, Clamp,
    NotStoredReason, TtlDecision, TtlRule, TtlSettings,
};
pub use validators::{conditional_headers, has_validator, has_validator_in, is_valid_etag};
pub use vary::{normalized_value, variant_suffix, vary_spec, VarySpec};

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// Deterministic strings built from the characters the parsers care about, fed to every
    /// entry point: nothing may panic.
    #[test]
    fn never_panics_on_generated_input() {
        const ALPHABET: &[&str] = &[
            ",",
            "=",
            "\"",
            "\\",
            " ",
            "\t",
            "-",
            "0",
            "9",
            "max-age",
            "s-maxage",
            "private",
            "no-cache",
            "no-store",
            "max-stale",
            "W/",
            "GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "99999999999999999999",
            "é",
            "\u{80}",
            ":",
            ";",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let names = [
            "cache-control",
            "expires",
            "date",
            "age",
            "etag",
            "last-modified",
            "connection",
        ];
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for _ in 0..3000 {
            let len = next() % 12;
            let s: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let _ = CacheControl::parse(&s);
            let _ = parse_http_date(&s);
            let _ = parse_delta_seconds(&s);
            let Ok(value) = HeaderValue::from_str(&s) else {
                continue;
            };
            let mut h = HeaderMap::new();
            for name in names {
                if next() % 2 == 0 {
                    h.append(HeaderName::from_static(name), value.clone());
                }
            }
            let settings = TtlSettings {
                default_ttl: next() % 1000,
                min_ttl: next() % 3 * 100,
                max_ttl: next() % 1000,
            };
            let _ = cloudfront_ttl(&h, StatusCode::OK, &settings, now);
            let age = initial_age(&h, now, now + Duration::from_secs(1));
            let _ = current_age(age, now, SystemTime::UNIX_EPOCH);
            let _ = parse_age(&h);
            let _ = has_validator(&h);
            let _ = conditional_headers(&h);
            strip_hop_by_hop(&mut h);
        }
    }
}
