//! HTTP dates (RFC 9110 §5.6.7): parsing of the preferred IMF-fixdate and of the obsolete
//! RFC 850 and asctime formats, and formatting as IMF-fixdate, both through `httpdate`.
//! Formatting clamps to the range `httpdate` can represent instead of panicking.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last second `httpdate` can format: 9999-12-31T23:59:59Z.
const LAST_FORMATTABLE_SECS: u64 = 253_402_300_799;

/// Parses an HTTP-date (RFC 9110 §5.6.7) in any of its three formats; surrounding
/// whitespace is ignored. Accepts a `&str` or a `&HeaderValue`. `None` for anything
/// invalid, including non-UTF-8 bytes and dates whose weekday does not match.
pub fn parse_http_date<V: AsRef<[u8]> + ?Sized>(value: &V) -> Option<SystemTime> {
    let s = std::str::from_utf8(value.as_ref()).ok()?;
    httpdate::parse_http_date(s.trim_matches([' ', '\t'])).ok()
}

/// Formats `time` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
/// Sub-second parts are dropped; times before 1970 format as the epoch and times after
/// year 9999 as its last second.
pub fn format_http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(LAST_FORMATTABLE_SECS);
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const T_1994: u64 = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn three_formats() {
        let expected = Some(UNIX_EPOCH + Duration::from_secs(T_1994));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), expected);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), expected);
        assert_eq!(
            parse_http_date("  Sun, 06 Nov 1994 08:49:37 GMT\t"),
            expected
        );
        let hv = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date(&hv), expected);
    }

    #[test]
    fn invalid_dates() {
        for bad in [
            "",
            "0",
            "-1",
            "tomorrow",
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Monday, ",
            "Sunday, 06-Nov-94 08:49:37 GMTX",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
        let hv = HeaderValue::from_bytes(b"Sun, 06 Nov 1994 08:49:37 GMT\xff").unwrap();
        assert_eq!(parse_http_date(&hv), None);
    }

    #[test]
    fn format_round_trips() {
        let t = UNIX_EPOCH + Duration::from_secs(T_1994);
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date(&format_http_date(t)), Some(t));
        let with_nanos = t + Duration::from_millis(999);
        assert_eq!(
            format_http_date(with_nanos),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }

    #[test]
    fn format_out_of_range_clamps() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(format_http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        let far = UNIX_EPOCH + Duration::from_secs(LAST_FORMATTABLE_SECS + 1_000_000);
        assert_eq!(format_http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn never_panics() {
        for s in [
            "Sunday, 06-Nov-94 08:49:37 GM",
            "Wednesday, 99-Xyz-99 99:99:99 GMT",
            "Sun Nov 99 99:99:99 9999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Sat, 01 Jan 10000 00:00:00 GMT",
            "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
            "ééééééééééééééééééééééééééééé",
        ] {
            if let Some(t) = parse_http_date(s) {
                let _ = format_http_date(t);
            }
        }
    }
}
