//! Test helpers shared by unit and integration tests: run goaccess (an independent
//! CloudFront log parser) over a log file and report how many lines it accepted, and a
//! generator of varied entries. Not part of the stable API.
//!
//! goaccess 1.7 is run as `goaccess FILE --log-format=CLOUDFRONT --date-format=CLOUDFRONT
//! --time-format=CLOUDFRONT --no-global-config --no-strict-status -o REPORT.json`.
//! `--no-strict-status` is needed because goaccess otherwise rejects CloudFront's `000`
//! status; goaccess also rejects methods outside its known list (e.g. PURGE).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{new_request_id, LogEntry};
use crate::scratch_dir::ScratchDir;

/// What goaccess made of a log file (from the `general` section of its JSON report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoaccessReport {
    pub total_requests: u64,
    pub valid_requests: u64,
    pub failed_requests: u64,
    /// The lines goaccess rejected (its `--invalid-requests` file), at most 20.
    pub invalid_lines: Vec<String>,
}

const GOACCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// goaccess on PATH, if any.
pub fn goaccess_path() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join("goaccess"))
        .find(|p| p.is_file())
}

/// Whether a goaccess test can run. When goaccess is missing: prints why the test
/// `test` is skipped and returns `Ok(false)`, or `Err` when the CI variable is "true"
/// (CI must not skip it silently).
pub fn goaccess_available(test: &str) -> Result<bool, String> {
    if goaccess_path().is_some() {
        return Ok(true);
    }
    let reason = format!("{test}: goaccess is not on PATH");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return Err(format!("{reason} (required when CI=true)"));
    }
    eprintln!("skipping {reason}");
    Ok(false)
}

/// Runs goaccess over `path` with its CLOUDFRONT format and returns its counts.
pub fn goaccess_check(path: &Path) -> Result<GoaccessReport, String> {
    let bin = goaccess_path().ok_or("goaccess is not on PATH")?;
    let work = ScratchDir::new("goaccess")?;
    let report = work.path().join("report.json");
    let invalid = work.path().join("invalid.log");
    let stderr_path = work.path().join("stderr.txt");
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    // Output goes to files, not pipes: a JSON report bigger than a pipe buffer would
    // block goaccess while we wait for it.
    let mut child = Command::new(&bin)
        .arg(path)
        .args([
            "--log-format=CLOUDFRONT",
            "--date-format=CLOUDFRONT",
            "--time-format=CLOUDFRONT",
            "--no-global-config",
            "--no-strict-status",
            "--no-progress",
            "--no-parsing-spinner",
        ])
        .arg(format!("--invalid-requests={}", invalid.display()))
        .arg("-o")
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let deadline = Instant::now() + GOACCESS_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("goaccess took more than {GOACCESS_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("waiting for goaccess: {e}")),
        }
    };
    if !status.success() {
        let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(format!("goaccess failed ({status}): {}", err.trim()));
    }
    let json = std::fs::read_to_string(&report).map_err(|e| format!("goaccess report: {e}"))?;
    let invalid_lines = std::fs::read_to_string(&invalid)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .map(str::to_owned)
        .collect();
    Ok(GoaccessReport {
        total_requests: json_u64(&json, "total_requests")?,
        valid_requests: json_u64(&json, "valid_requests")?,
        failed_requests: json_u64(&json, "failed_requests")?,
        invalid_lines,
    })
}

/// The first `"key": <digits>` in `json`; goaccess's general section comes first.
fn json_u64(json: &str, key: &str) -> Result<u64, String> {
    let quoted = format!("\"{key}\"");
    let at = json
        .find(&quoted)
        .ok_or_else(|| format!("no {key} in the goaccess report"))?;
    let rest = json[at + quoted.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or_else(|| format!("malformed {key} in the goaccess report"))?
        .trim_start();
    let digits: &str = &rest[..rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len())];
    digits
        .parse()
        .map_err(|_| format!("{key} is not a number in the goaccess report"))
}

/// `n` entries that exercise the format: hits, misses, errors, `000` statuses, IPv4 and
/// IPv6 viewers, HTTP and HTTPS, odd user agents (tabs, newlines, quotes, non-ASCII),
/// query strings with spaces and percent-escapes, cookies, ranges.
pub fn varied_entries(n: usize) -> Vec<LogEntry> {
    const METHODS: [&str; 7] = ["GET", "GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE"];
    const STATUSES: [Option<u16>; 9] = [
        Some(200),
        Some(200),
        Some(206),
        Some(304),
        Some(404),
        Some(403),
        Some(502),
        Some(504),
        None,
    ];
    const USER_AGENTS: [Option<&str>; 8] = [
        Some("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        Some("curl/8.5.0"),
        None,
        Some("Bad\tAgent\r\nInjected: header"),
        Some("\"quoted\" 'agent' \\ {braces} |pipe| ^caret^ [x] `tick`"),
        Some("\u{fc}n\u{ef}c\u{f6}de-agent/1.0 \u{1F680}"),
        Some("-"),
        Some("Googlebot/2.1 (+http://www.google.com/bot.html)"),
    ];
    const QUERIES: [Option<&str>; 7] = [
        None,
        Some("a=1&b=2"),
        Some("q=hello world"),
        Some("x=%2F%20y&z=%E2%82%AC"),
        Some("utf=\u{e9}t\u{e9}&tab=a\tb"),
        Some("?leading=question"),
        Some(""),
    ];
    const STEMS: [&str; 6] = [
        "/",
        "/index.html",
        "/img/cat 1.jpg",
        "/a%2Bb/c~d/\u{e9}.txt",
        "/deep/path/to/video.mp4",
        "/weird<>\"#{}|\\^[]`'",
    ];
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    (0..n)
        .map(|i| {
            let status = STATUSES[i % STATUSES.len()];
            let https = i % 3 != 0;
            let (result, detailed) = match status {
                None => ("Error", "ClientCommError"),
                Some(s) if s >= 500 => ("Error", "OriginConnectError"),
                Some(s) if s >= 400 => ("Error", "Error"),
                _ => match i % 4 {
                    0 => ("Miss", "Miss"),
                    1 => ("RefreshHit", "RefreshHit"),
                    _ => ("Hit", "Hit"),
                },
            };
            let client_ip = if i % 5 == 4 {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16))
            } else {
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1))
            };
            let ranged = status == Some(206);
            LogEntry {
                time: base + Duration::from_secs(37 * i as u64),
                edge_location: "CRN1".into(),
                sc_bytes: if status.is_none() {
                    0
                } else {
                    300 + 17 * i as u64
                },
                client_ip,
                client_port: 40_000 + i as u16,
                method: METHODS[i % METHODS.len()].into(),
                host: "d1abcdef.cairn.example".into(),
                uri_stem: STEMS[i % STEMS.len()].into(),
                query: QUERIES[i % QUERIES.len()].map(str::to_owned),
                status,
                referer: (i % 4 == 1).then(|| "https://www.example.com/from page".to_owned()),
                user_agent: USER_AGENTS[i % USER_AGENTS.len()].map(str::to_owned),
                cookie: (i % 6 == 2).then(|| "session=abc; theme=dark".to_owned()),
                result_type: result.into(),
                request_id: new_request_id(),
                host_header: if i % 2 == 0 {
                    "www.example.com".into()
                } else {
                    "d1abcdef.cairn.example".into()
                },
                protocol: if https { "https" } else { "http" }.into(),
                cs_bytes: 80 + i as u64,
                time_taken: Duration::from_micros(1_234 * i as u64),
                time_to_first_byte: Duration::from_micros(567 * i as u64),
                forwarded_for: (i % 7 == 3).then(|| "203.0.113.5, 198.51.100.2".to_owned()),
                ssl_protocol: https.then(|| "TLSv1.3".to_owned()),
                ssl_cipher: https.then(|| "TLS_AES_128_GCM_SHA256".to_owned()),
                response_result_type: result.into(),
                protocol_version: ["HTTP/1.1", "HTTP/2.0", "HTTP/1.0"][i % 3].into(),
                detailed_result_type: detailed.into(),
                content_type: status
                    .filter(|s| *s != 304)
                    .map(|_| "text/html; charset=utf-8".to_owned()),
                content_len: status.filter(|s| *s != 304).map(|_| 100 + i as u64),
                range_start: ranged.then_some(0),
                range_end: ranged.then_some(99),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_json_u64() {
        let j = "{\"general\": {\"total_requests\": 3,\n\t\"failed_requests\":0}}";
        assert_eq!(json_u64(j, "total_requests"), Ok(3));
        assert_eq!(json_u64(j, "failed_requests"), Ok(0));
        assert!(json_u64(j, "valid_requests").is_err());
        assert!(json_u64("{\"total_requests\": x}", "total_requests").is_err());
    }

    #[test]
    fn access_log_goaccess_rejects_broken_lines() {
        // The check itself must notice bad lines, or the goaccess test proves nothing.
        match goaccess_available("access_log_goaccess_rejects_broken_lines") {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => panic!("{e}"),
        }
        let dir = ScratchDir::new("goaccess").unwrap();
        let path = dir.path().join("bad.log");
        let good = super::super::format_line(&varied_entries(1)[0]);
        let broken = good.replacen('\t', " ", 3);
        let text = format!("{}{good}\n{broken}\n", super::super::HEADER);
        std::fs::write(&path, text).unwrap();
        let report = goaccess_check(&path).unwrap();
        assert_eq!(report.total_requests, 2, "{report:?}");
        assert_eq!(report.failed_requests, 1, "{report:?}");
        assert_eq!(report.invalid_lines.len(), 1, "{report:?}");
    }
}
