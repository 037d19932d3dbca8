//! One access-log line in CloudFront's standard (legacy) log file format: 33 tab-separated
//! W3C fields, `-` for an empty value, date and time in UTC, durations in seconds with
//! three decimals, and field values URL-encoded the way CloudFront documents it
//! (<https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logging-legacy-s3.html>,
//! "Standard log file format"; fields in `standard-logs-reference.html`).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::LogEntry;

/// The two header lines every log file starts with (each ends with a newline).
pub const HEADER: &str = "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end\n";

/// Number of fields in a line.
pub const FIELD_COUNT: usize = 33;

/// CloudFront URL-encodes ASCII 0-32 inclusive, 127 and higher (every byte of a non-ASCII
/// UTF-8 character; `utf8_percent_encode` always does that), and this table:
/// `< > " # % { } | \ ^ ~ [ ] ` '` and space. Encoding `%` itself is why a value the
/// viewer already percent-encoded shows up double-encoded (`%2B` is logged as `%252B`).
const CLOUDFRONT_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'~')
    .add(b'[')
    .add(b']')
    .add(b'`')
    .add(b'\'');

/// 9999-12-31T23:59:59Z, the last second humantime can format.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

/// Formats one line, without the trailing newline. Never contains a tab inside a field,
/// nor a newline.
pub fn format_line(e: &LogEntry) -> String {
    let mut out = String::with_capacity(512);
    format_line_into(e, &mut out);
    out
}

/// Appends the line for `e` to `out` (no newline), so the writer can reuse one buffer.
pub(crate) fn format_line_into(e: &LogEntry, out: &mut String) {
    let mut line = Line { out, first: true };
    let (date, time) = date_time(e.time);
    line.raw(&date); // 1 date
    line.raw(&time); // 2 time
    line.text(&e.edge_location); // 3 x-edge-location
    line.num(e.sc_bytes); // 4 sc-bytes
    line.ip(e.client_ip); // 5 c-ip
    line.text(&e.method); // 6 cs-method
    line.text(&e.host); // 7 cs(Host)
    line.text(&e.uri_stem); // 8 cs-uri-stem
    match e.status {
        // 9 sc-status: 000 when the viewer hung up before a response.
        Some(code) => line.field(format_args!("{code:03}")),
        None => line.raw("000"),
    }
    line.opt_text(e.referer.as_deref()); // 10 cs(Referer)
    line.opt_text(e.user_agent.as_deref()); // 11 cs(User-Agent)
                                            // 12 cs-uri-query: CloudFront leaves the `?` out.
    line.opt_text(e.query.as_deref().map(|q| q.strip_prefix('?').unwrap_or(q)));
    line.opt_text(e.cookie.as_deref()); // 13 cs(Cookie)
    line.text(&e.result_type); // 14 x-edge-result-type
    line.text(&e.request_id); // 15 x-edge-request-id
    line.text(&e.host_header); // 16 x-host-header
    line.text(&e.protocol); // 17 cs-protocol
    line.num(e.cs_bytes); // 18 cs-bytes
    line.seconds(e.time_taken); // 19 time-taken
    line.opt_text(e.forwarded_for.as_deref()); // 20 x-forwarded-for
    line.opt_text(e.ssl_protocol.as_deref()); // 21 ssl-protocol
    line.opt_text(e.ssl_cipher.as_deref()); // 22 ssl-cipher
    line.text(&e.response_result_type); // 23 x-edge-response-result-type
    line.text(&e.protocol_version); // 24 cs-protocol-version
    line.raw("-"); // 25 fle-status: no field-level encryption
    line.raw("-"); // 26 fle-encrypted-fields
    line.num(e.client_port); // 27 c-port
    line.seconds(e.time_to_first_byte); // 28 time-to-first-byte
    line.text(&e.detailed_result_type); // 29 x-edge-detailed-result-type
    line.opt_text(e.content_type.as_deref()); // 30 sc-content-type
    line.opt_num(e.content_len); // 31 sc-content-len
    line.opt_num(e.range_start); // 32 sc-range-start
    line.opt_num(e.range_end); // 33 sc-range-end
}

/// Appends `value` encoded as CloudFront encodes field values; `-` when empty.
pub fn encode_field(value: &str, out: &mut String) {
    if value.is_empty() {
        out.push('-');
    } else {
        out.extend(utf8_percent_encode(value, CLOUDFRONT_ENCODE));
    }
}

/// `YYYY-MM-DD` and `HH:MM:SS` in UTC. Times outside what humantime can format are
/// clamped (before 1970 to the epoch, after 9999 to its last second) instead of panicking.
fn date_time(time: SystemTime) -> (String, String) {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs().min(MAX_UNIX_SECS),
        Err(_) => 0,
    };
    let whole = UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH);
    let mut stamp = String::with_capacity(20);
    // humantime reports an unformattable time as fmt::Error; never expected after clamping.
    if write!(stamp, "{}", humantime::format_rfc3339_seconds(whole)).is_err() {
        stamp.clear();
    }
    match stamp.trim_end_matches('Z').split_once('T') {
        Some((date, time)) => (date.to_owned(), time.to_owned()),
        None => ("1970-01-01".to_owned(), "00:00:00".to_owned()),
    }
}

/// A CloudFront-like request id: 42 random bytes in URL-safe base64 without padding,
/// 56 characters of `A-Z a-z 0-9 - _`.
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 42];
    if getrandom::fill(&mut bytes).is_err() {
        fallback_random(&mut bytes);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Only when the OS refuses randomness: std's per-process random hasher keys, the clock
/// and a counter, which is unique enough for an id that is not a secret.
fn fallback_random(bytes: &mut [u8]) {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let state = std::collections::hash_map::RandomState::new();
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = state.build_hasher();
        h.write_u128(nanos);
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// Builds a line field by field, putting the tabs in between.
struct Line<'a> {
    out: &'a mut String,
    first: bool,
}

impl Line<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.out.push('\t');
        }
        self.first = false;
    }

    /// A value this module produced itself (digits, dates): nothing to encode.
    fn raw(&mut self, v: &str) {
        self.sep();
        self.out.push_str(v);
    }

    fn field(&mut self, v: std::fmt::Arguments<'_>) {
        self.sep();
        // Writing to a String cannot fail.
        let _ = self.out.write_fmt(v);
    }

    fn text(&mut self, v: &str) {
        self.sep();
        encode_field(v, self.out);
    }

    fn opt_text(&mut self, v: Option<&str>) {
        self.text(v.unwrap_or(""));
    }

    fn num(&mut self, v: impl Into<u64>) {
        let v: u64 = v.into();
        self.field(format_args!("{v}"));
    }

    fn opt_num(&mut self, v: Option<u64>) {
        match v {
            Some(v) => self.num(v),
            None => self.raw("-"),
        }
    }

    fn ip(&mut self, ip: IpAddr) {
        // An IPv4 viewer on a dual-stack socket arrives as ::ffff:a.b.c.d; log a.b.c.d.
        self.field(format_args!("{}", ip.to_canonical()));
    }

    /// Seconds with three decimals (milliseconds truncated), as time-taken uses.
    fn seconds(&mut self, d: Duration) {
        self.field(format_args!("{}.{:03}", d.as_secs(), d.subsec_millis()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn full_entry() -> LogEntry {
        LogEntry {
            // 2019-12-04T21:02:31.250Z
            time: UNIX_EPOCH + Duration::from_millis(1_575_493_351_250),
            edge_location: "LAX1".into(),
            sc_bytes: 392,
            client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)),
            client_port: 11040,
            method: "GET".into(),
            host: "d111111abcdef8.cairn.example".into(),
            uri_stem: "/index.html".into(),
            query: Some("a=1&b=two".into()),
            status: Some(200),
            referer: Some("https://www.example.com/page".into()),
            user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64)".into()),
            cookie: Some("session=abc; theme=dark".into()),
            result_type: "Hit".into(),
            request_id: "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ".into(),
            host_header: "www.example.com".into(),
            protocol: "https".into(),
            cs_bytes: 23,
            time_taken: Duration::from_micros(1_999),
            time_to_first_byte: Duration::from_micros(500),
            forwarded_for: Some("203.0.113.9".into()),
            ssl_protocol: Some("TLSv1.3".into()),
            ssl_cipher: Some("TLS_AES_128_GCM_SHA256".into()),
            response_result_type: "Hit".into(),
            protocol_version: "HTTP/2.0".into(),
            detailed_result_type: "Hit".into(),
            content_type: Some("text/html".into()),
            content_len: Some(78),
            range_start: Some(0),
            range_end: Some(77),
        }
    }

    #[test]
    fn access_log_full_entry() {
        let line = format_line(&full_entry());
        let expected = [
            "2019-12-04",
            "21:02:31",
            "LAX1",
            "392",
            "192.0.2.100",
            "GET",
            "d111111abcdef8.cairn.example",
            "/index.html",
            "200",
            "https://www.example.com/page",
            "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)",
            "a=1&b=two",
            "session=abc;%20theme=dark",
            "Hit",
            "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ",
            "www.example.com",
            "https",
            "23",
            "0.001",
            "203.0.113.9",
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            "Hit",
            "HTTP/2.0",
            "-",
            "-",
            "11040",
            "0.000",
            "Hit",
            "text/html",
            "78",
            "0",
            "77",
        ]
        .join("\t");
        assert_eq!(line, expected);
        assert_eq!(line.split('\t').count(), FIELD_COUNT);
        let names = HEADER.lines().nth(1).unwrap_or("");
        assert_eq!(names.split(' ').count(), FIELD_COUNT + 1); // "#Fields:" + 33
        assert!(HEADER.starts_with("#Version: 1.0\n#Fields: date time x-edge-location "));
        assert!(HEADER.ends_with(" sc-range-start sc-range-end\n"));
    }

    #[test]
    fn access_log_minimal_entry() {
        let e = LogEntry::default();
        let line = format_line(&e);
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), FIELD_COUNT);
        assert_eq!(fields[0], "1970-01-01");
        assert_eq!(fields[1], "00:00:00");
        assert_eq!(fields[4], "0.0.0.0");
        assert_eq!(fields[8], "000", "no status means the viewer hung up first");
        assert_eq!(fields[18], "0.000");
        assert_eq!(fields[27], "0.000");
        for i in [
            2, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 23, 24, 25,
        ] {
            assert_eq!(fields[i], "-", "field {} should be empty", i + 1);
        }
        for i in [28, 29, 30, 31, 32] {
            assert_eq!(fields[i], "-", "field {} should be empty", i + 1);
        }
        assert!(!line.contains('\n'));
    }

    #[test]
    fn access_log_status_padding_and_seconds() {
        let mut e = LogEntry {
            status: Some(0),
            time_taken: Duration::from_millis(1500),
            time_to_first_byte: Duration::new(12, 345_678_901),
            ..LogEntry::default()
        };
        let f: Vec<String> = format_line(&e).split('\t').map(str::to_owned).collect();
        assert_eq!(f[8], "000");
        assert_eq!(f[18], "1.500");
        assert_eq!(f[27], "12.345");
        e.status = Some(99);
        assert_eq!(format_line(&e).split('\t').nth(8), Some("099"));
        e.status = Some(504);
        assert_eq!(format_line(&e).split('\t').nth(8), Some("504"));
    }

    #[test]
    fn access_log_encodes_request_data() {
        let e = LogEntry {
            uri_stem: "/a b/\u{e9}t\u{e9}/%2B/~me/x\ty\nz".into(),
            query: Some("?q=hello world&x=%2F&h=#frag&<b>".into()),
            user_agent: Some(
                "Bad\tAgent\r\n\"quoted\" 'single' \\ {x}|^[y]`\u{1F600}\u{7f}".into(),
            ),
            referer: Some("https://ex.com/\u{0}".into()),
            cookie: Some("a=1;\tb=2".into()),
            host_header: "www.exa mple.com".into(),
            ..LogEntry::default()
        };
        let line = format_line(&e);
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), FIELD_COUNT);
        assert_eq!(f[7], "/a%20b/%C3%A9t%C3%A9/%252B/%7Eme/x%09y%0Az");
        assert_eq!(f[11], "q=hello%20world&x=%252F&h=%23frag&%3Cb%3E");
        assert_eq!(
            f[10],
            "Bad%09Agent%0D%0A%22quoted%22%20%27single%27%20%5C%20%7Bx%7D%7C%5E%5By%5D%60%F0%9F%98%80%7F"
        );
        assert_eq!(f[9], "https://ex.com/%00");
        assert_eq!(f[12], "a=1;%09b=2");
        assert_eq!(f[15], "www.exa%20mple.com");
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains(' '));
    }

    #[test]
    fn access_log_empty_query_and_ipv6() {
        let e = LogEntry {
            query: Some("?".into()),
            client_ip: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            ..LogEntry::default()
        };
        let f: Vec<String> = format_line(&e).split('\t').map(str::to_owned).collect();
        assert_eq!(f[11], "-");
        assert_eq!(f[4], "2001:db8::1");
        let mapped = LogEntry {
            client_ip: IpAddr::V6(Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped()),
            ..LogEntry::default()
        };
        assert_eq!(
            format_line(&mapped).split('\t').nth(4),
            Some("198.51.100.7")
        );
    }

    #[test]
    fn access_log_time_clamped_never_panics() {
        let before = UNIX_EPOCH
            .checked_sub(Duration::from_secs(86_400))
            .unwrap_or(UNIX_EPOCH);
        assert_eq!(date_time(before), ("1970-01-01".into(), "00:00:00".into()));
        let far = UNIX_EPOCH
            .checked_add(Duration::from_secs(400_000_000_000))
            .unwrap_or(UNIX_EPOCH);
        assert_eq!(date_time(far), ("9999-12-31".into(), "23:59:59".into()));
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600); // 2000-02-29T12:00:00Z
        assert_eq!(date_time(leap), ("2000-02-29".into(), "12:00:00".into()));
    }

    #[test]
    fn access_log_request_id_shape() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 56);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let mut buf = [0u8; 42];
        fallback_random(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }
}
