//! HTTP caching semantics as pure functions over `http::HeaderMap` and `SystemTime`: no I/O,
//! no async, no panics on any input. Cache-Control parsing (RFC 9111 §5.2), HTTP dates
//! (RFC 9110 §5.6.7), Age and the age calculation (RFC 9111 §5.1, §4.2.3), CloudFront's TTL
//! rules (the edge's default mode), hop-by-hop fields (RFC 9110 §7.6.1) and validators for
//! revalidation (RFC 9111 §4.3.1).

mod age;
mod cache_control;
mod date;
mod hop_by_hop;
mod ttl;
mod validators;

pub use age::{current_age, initial_age, parse_age};
pub use cache_control::{
    parse_delta_seconds, CacheControl, Delta, FieldDirective, DELTA_SECONDS_MAX,
};
pub use date::{format_http_date, parse_http_date};
pub use hop_by_hop::{is_hop_by_hop, strip_hop_by_hop, HOP_BY_HOP};
pub use ttl::{
    cacheable_status, cloudfront_ttl, cloudfront_ttl_with, Clamp, NotStoredReason, TtlDecision,
    TtlRule, TtlSettings,
};
pub use validators::{conditional_headers, has_validator, is_valid_etag};

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
