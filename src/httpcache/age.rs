//! The Age field (RFC 9111 §5.1) and the age calculation of RFC 9111 §4.2.3: a response's
//! corrected initial age when it arrives, and its current age later. All arithmetic
//! saturates; clocks that run backwards give zero rather than errors.

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE};
use http::HeaderMap;

use super::cache_control::parse_delta_seconds;
use super::date::parse_http_date;

/// The first Age value as delta-seconds (RFC 9111 §5.1); an invalid value is ignored
/// (`None`), values above 2^31 saturate to 2^31.
pub fn parse_age(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(AGE)?.to_str().ok()?;
    parse_delta_seconds(value.trim_matches([' ', '\t']))
}

/// The corrected initial age (RFC 9111 §4.2.3) of a response received at `response_time`
/// for a request sent at `request_time`:
///
/// ```text
/// apparent_age = max(0, response_time - date_value)
/// response_delay = response_time - request_time
/// corrected_age_value = age_value + response_delay
/// corrected_initial_age = max(apparent_age, corrected_age_value)
/// ```
///
/// A missing or invalid Date gives an apparent age of 0 (as if the recipient had added
/// Date on receipt, RFC 9110 §6.6.1); a missing or invalid Age counts as 0.
pub fn initial_age(
    headers: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent_age = headers
        .get(DATE)
        .and_then(parse_http_date)
        .map_or(Duration::ZERO, |date| elapsed(date, response_time));
    let age_value = Duration::from_secs(parse_age(headers).unwrap_or(0));
    let response_delay = elapsed(request_time, response_time);
    let corrected_age_value = age_value.saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// The current age (RFC 9111 §4.2.3): `corrected_initial_age + (now - response_time)`.
pub fn current_age(initial_age: Duration, response_time: SystemTime, now: SystemTime) -> Duration {
    initial_age.saturating_add(elapsed(response_time, now))
}

/// `to - from`, or zero if `to` is earlier.
pub(crate) fn elapsed(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpcache::date::format_http_date;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    const BASE: u64 = 1_700_000_000;

    #[test]
    fn parse_age_values() {
        assert_eq!(parse_age(&headers(&[])), None);
        assert_eq!(parse_age(&headers(&[("age", "0")])), Some(0));
        assert_eq!(parse_age(&headers(&[("age", "120")])), Some(120));
        assert_eq!(parse_age(&headers(&[("age", " 7 ")])), Some(7));
        assert_eq!(
            parse_age(&headers(&[("age", "99999999999999999999")])),
            Some(1 << 31)
        );
        assert_eq!(parse_age(&headers(&[("age", "2147483649")])), Some(1 << 31));
        for bad in ["-1", "1.5", "abc", "", "5, 6", "\"5\""] {
            assert_eq!(parse_age(&headers(&[("age", bad)])), None, "{bad:?}");
        }
        // The first value is used.
        assert_eq!(parse_age(&headers(&[("age", "3"), ("age", "4")])), Some(3));
        assert_eq!(parse_age(&headers(&[("age", "x"), ("age", "4")])), None);
        let mut h = HeaderMap::new();
        h.insert(AGE, HeaderValue::from_bytes(b"1\xff").unwrap());
        assert_eq!(parse_age(&h), None);
    }

    #[test]
    fn initial_age_uses_age_plus_delay() {
        let h = headers(&[("age", "100"), ("date", &format_http_date(at(BASE)))]);
        // Sent at BASE, received 2s later: apparent age 2, corrected age value 102.
        assert_eq!(
            initial_age(&h, at(BASE), at(BASE + 2)),
            Duration::from_secs(102)
        );
    }

    #[test]
    fn initial_age_uses_apparent_age_when_larger() {
        // Date is 500s before receipt (a cache upstream that did not send Age).
        let h = headers(&[("age", "10"), ("date", &format_http_date(at(BASE - 500)))]);
        assert_eq!(
            initial_age(&h, at(BASE - 1), at(BASE)),
            Duration::from_secs(500)
        );
    }

    #[test]
    fn initial_age_without_date_or_age() {
        assert_eq!(
            initial_age(&headers(&[]), at(BASE), at(BASE + 3)),
            Duration::from_secs(3)
        );
        let h = headers(&[("date", "garbage"), ("age", "-5")]);
        assert_eq!(
            initial_age(&h, at(BASE), at(BASE + 3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn initial_age_with_date_in_the_future_and_clock_skew() {
        let h = headers(&[("date", &format_http_date(at(BASE + 1000)))]);
        assert_eq!(initial_age(&h, at(BASE), at(BASE)), Duration::ZERO);
        // Response time before request time: no negative delay.
        assert_eq!(
            initial_age(&headers(&[("age", "4")]), at(BASE), at(BASE - 9)),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn initial_age_saturates() {
        let h = headers(&[("age", "99999999999999999999999")]);
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        let age = initial_age(&h, UNIX_EPOCH, far);
        assert_eq!(age, Duration::from_secs((1 << 31) + u64::MAX / 4));
        assert_eq!(current_age(Duration::MAX, at(0), at(10)), Duration::MAX);
    }

    #[test]
    fn current_age_adds_resident_time() {
        let initial = Duration::from_secs(30);
        assert_eq!(
            current_age(initial, at(BASE), at(BASE + 70)),
            Duration::from_secs(100)
        );
        // A clock that went backwards adds nothing.
        assert_eq!(current_age(initial, at(BASE), at(BASE - 70)), initial);
    }
}
