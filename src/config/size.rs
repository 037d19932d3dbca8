//! Byte sizes as people write them: [`parse_size`] reads "4096", "512 MiB", "1.5GB"
//! exactly (no floating point), and [`fmt_size`] writes a size back for messages.

const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1000),
    ("mb", 1000 * 1000),
    ("gb", 1000 * 1000 * 1000),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a byte size: a plain integer (bytes), or a number with a unit — B, KB/MB/GB/TB
/// (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024), case-insensitive, with an optional
/// space. Decimals are allowed with a unit ("1.5GiB"); a fraction of a byte is dropped.
/// Errors name the value.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let unit = unit.trim_start();
    let bad = |why: &str| format!("invalid size {s:?}: {why}");

    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() || (num.contains('.') && frac.is_empty()) || frac.contains('.') {
        return Err(bad(
            "expected a number of bytes or a number with a unit, such as 4096, \"512 MiB\" or \"1.5GB\"",
        ));
    }
    let mult = if unit.is_empty() {
        1
    } else {
        let lower = unit.to_ascii_lowercase();
        match UNITS.iter().find(|(u, _)| *u == lower) {
            Some(&(_, m)) => m,
            None => {
                return Err(bad(&format!(
                    "unknown unit {unit:?} (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
                )))
            }
        }
    };
    if mult == 1 && !frac.trim_end_matches('0').is_empty() {
        return Err(bad("a number of bytes must be whole"));
    }
    let too_large = || bad(&format!("larger than the maximum of {} bytes", u64::MAX));

    // Exact arithmetic in u128: whole * mult + frac * mult / 10^digits.
    let mut value: u128 = 0;
    for d in whole.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u128::from(d - b'0')))
            .filter(|&v| v <= u128::from(u64::MAX))
            .ok_or_else(too_large)?;
    }
    value = value.checked_mul(u128::from(mult)).ok_or_else(too_large)?;
    // Digits past 1e-19 cannot change a result below 2^64 bytes times at most 2^40.
    let frac = &frac[..frac.len().min(19)];
    if !frac.is_empty() {
        let mut f: u128 = 0;
        for d in frac.bytes() {
            f = f * 10 + u128::from(d - b'0');
        }
        let scale = 10u128.pow(frac.len() as u32);
        value += f * u128::from(mult) / scale;
    }
    u64::try_from(value).map_err(|_| too_large())
}

/// A size for messages: "10 GiB" when it is a whole number of a binary unit, else bytes.
pub(crate) fn fmt_size(n: u64) -> String {
    for (name, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{} {name}", n / m);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = KIB * 1024;
    const GIB: u64 = MIB * 1024;

    #[test]
    fn sizes_parse() {
        let ok: &[(&str, u64)] = &[
            ("4096", 4096),
            ("0", 0),
            ("10GiB", 10 * GIB),
            ("512 MiB", 512 * MIB),
            ("1.5GB", 1_500_000_000),
            ("1.5GiB", 3 * GIB / 2),
            ("1.5gib", 3 * GIB / 2),
            ("2 kb", 2000),
            ("2KiB", 2048),
            ("7B", 7),
            ("7 b", 7),
            ("3TB", 3_000_000_000_000),
            ("1TiB", 1 << 40),
            ("  64MiB  ", 64 * MIB),
            ("1.0", 1),
            ("0.5KiB", 512),
            ("0.0001KiB", 0),
            ("1.3GiB", 1_395_864_371),
            ("18446744073709551615", u64::MAX),
            ("16777215.99999999999999TiB", u64::MAX),
        ];
        for &(s, want) in ok {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn bad_sizes_are_errors_naming_the_value() {
        for s in [
            "10XB",
            "",
            "GiB",
            "-1",
            "+1",
            "1.",
            ".5GiB",
            "1..5GiB",
            "1.2.3MiB",
            "1.5",
            "1.5 B",
            "ten",
            "1 G",
            "1GiBs",
            "1 2",
            "18446744073709551616",
            "99999999999999999999999999999999999999999",
            "16777216TiB",
            "18446744073709551615KB",
        ] {
            let e = parse_size(s).expect_err(s);
            assert!(e.contains(&format!("{s:?}")), "{s}: {e}");
        }
        assert!(parse_size("10XB")
            .unwrap_err()
            .contains("unknown unit \"XB\""));
        assert!(parse_size("16777216TiB").unwrap_err().contains("maximum"));
    }

    #[test]
    fn sizes_format() {
        assert_eq!(fmt_size(10 * GIB), "10 GiB");
        assert_eq!(fmt_size(MIB + MIB / 2), "1536 KiB");
        assert_eq!(fmt_size(1000), "1000 bytes");
        assert_eq!(fmt_size(0), "0 bytes");
    }
}
