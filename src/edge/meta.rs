//! What the edge keeps in a stored object's metadata bytes (opaque to the store): either a
//! response (status, end-to-end headers, and the freshness facts needed to compute Age,
//! decide reuse and explain which TTL rule applied) or, at a response's primary key when
//! it has `Vary`, the list of header names its variants are keyed by. Encoded as
//! `[version byte 2] ++ bincode 2` (fixed-width little-endian integers, at most 1 MiB);
//! storage-format.md §8 is the contract. Metadata of another version (version 1 objects
//! from before Vary support) is refused, and the edge refetches the object.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

/// Version byte of the encoding below.
pub const META_VERSION: u8 = 2;
const MAX_META_LEN: usize = 1 << 20;

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    /// End-to-end response headers in origin order (hop-by-hop ones already removed).
    pub headers: Vec<(String, Vec<u8>)>,
    /// When the edge sent the request that produced this response (ms since the epoch).
    pub request_time_ms: u64,
    /// When the response headers arrived (ms since the epoch).
    pub response_time_ms: u64,
    /// RFC 9111 §4.2.3 corrected initial age, seconds.
    pub initial_age_s: u64,
    /// Freshness lifetime, seconds (after the distribution's clamps).
    pub ttl_s: u64,
    /// Stored but must be revalidated before every use (`no-cache` with min_ttl 0).
    pub revalidate_each_use: bool,
    /// Never served stale (must-revalidate, proxy-revalidate, s-maxage).
    pub must_revalidate: bool,
    /// RFC 5861 windows, seconds.
    pub stale_while_revalidate_s: Option<u64>,
    pub stale_if_error_s: Option<u64>,
    /// Which TTL rule applied (s-maxage, max-age, expires, default, …) and which clamp.
    pub ttl_rule: String,
    pub ttl_clamp: String,
    /// Header names this response varies on (lower case); empty without `Vary`.
    pub vary: Vec<String>,
}

/// What a stored object's metadata holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Meta {
    /// A response (with its body in the object).
    Response(StoredResponse),
    /// At a primary key: the response varies on these header names; each variant is
    /// stored under the primary key extended by its variant suffix. The body is empty.
    Variants(Vec<String>),
    /// At `primary ++ 0x00 ++ 0x05`: the byte ranges `(first, last)` of the stored partial
    /// (206) responses of the primary key, newest last. The body is empty.
    Partials(Vec<(u64, u64)>),
}

impl Meta {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![META_VERSION];
        // Encoding into a Vec only fails past the size limit, which headers bounded by
        // hyper's limits never reach; an empty result would fail decoding, never mislead.
        if bincode::serde::encode_into_std_write(self, &mut out, bincode_config()).is_err() {
            out.truncate(1);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, MetaError> {
        let (&v, rest) = bytes.split_first().ok_or(MetaError::Empty)?;
        if v != META_VERSION {
            return Err(MetaError::Version(v));
        }
        let (meta, used): (Self, usize) = bincode::serde::decode_from_slice(rest, bincode_config())
            .map_err(|e| MetaError::Decode(e.to_string()))?;
        if used != rest.len() {
            return Err(MetaError::Decode(format!(
                "{} trailing bytes",
                rest.len() - used
            )));
        }
        Ok(meta)
    }
}

/// How long a response stays fresh and how it may be reused once stale.
#[derive(Debug, Clone)]
pub struct Freshness {
    pub lifetime: Duration,
    pub rule: &'static str,
    pub clamp: &'static str,
    pub revalidate_each_use: bool,
    pub must_revalidate: bool,
    pub stale_while_revalidate: Option<Duration>,
    pub stale_if_error: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("stored metadata is empty")]
    Empty,
    #[error("stored metadata has version {0}; this edge reads version {META_VERSION}")]
    Version(u8),
    #[error("stored metadata does not decode: {0}")]
    Decode(String),
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<MAX_META_LEN>()
}

pub use crate::store::{from_ms, to_ms};

/// The latest time the store records (its times are milliseconds since the epoch in a u64).
pub fn far_future() -> SystemTime {
    from_ms(u64::MAX)
}

impl StoredResponse {
    /// The metadata of a response received at `response_time` for a request sent at
    /// `request_time`, with its corrected initial age and the TTL decision that applies.
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
        initial_age: Duration,
        freshness: &Freshness,
        vary: Vec<String>,
    ) -> Self {
        Self {
            status: status.as_u16(),
            headers: Self::headers_from(headers),
            request_time_ms: to_ms(request_time),
            response_time_ms: to_ms(response_time),
            initial_age_s: initial_age.as_secs(),
            ttl_s: freshness.lifetime.as_secs(),
            revalidate_each_use: freshness.revalidate_each_use,
            must_revalidate: freshness.must_revalidate,
            stale_while_revalidate_s: freshness.stale_while_revalidate.map(|d| d.as_secs()),
            stale_if_error_s: freshness.stale_if_error.map(|d| d.as_secs()),
            ttl_rule: freshness.rule.to_string(),
            ttl_clamp: freshness.clamp.to_string(),
            vary,
        }
    }

    /// When this response stops being fresh (saturating: a lifetime beyond what the clock
    /// can represent never expires).
    pub fn expires_at(&self) -> SystemTime {
        let left =
            Duration::from_secs(self.ttl_s).saturating_sub(Duration::from_secs(self.initial_age_s));
        self.response_time()
            .checked_add(left)
            .unwrap_or_else(far_future)
    }

    /// Encoded as [`Meta::Response`].
    pub fn encode(&self) -> Vec<u8> {
        Meta::Response(self.clone()).encode()
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The stored headers as a map (entries that are no longer valid header names or
    /// values are skipped; they were valid when stored).
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        map
    }

    pub fn headers_from(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        map.iter()
            .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    pub fn response_time(&self) -> SystemTime {
        from_ms(self.response_time_ms)
    }

    /// What the reuse rules (RFC 9111 §4) need to know about this response at `now`.
    pub fn facts(&self, now: SystemTime) -> crate::httpcache::StoredFacts {
        crate::httpcache::StoredFacts {
            freshness: Duration::from_secs(self.ttl_s),
            current_age: self.age_at(now),
            revalidate_each_use: self.revalidate_each_use,
            must_revalidate: self.must_revalidate,
            stale_while_revalidate: self.stale_while_revalidate_s.map(Duration::from_secs),
            stale_if_error: self.stale_if_error_s.map(Duration::from_secs),
            has_validator: crate::httpcache::has_validator_in(
                self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            ),
        }
    }

    /// RFC 9111 §4.2.3 current_age at `now`.
    pub fn age_at(&self, now: SystemTime) -> Duration {
        let resident = now
            .duration_since(self.response_time())
            .unwrap_or(Duration::ZERO);
        Duration::from_secs(self.initial_age_s).saturating_add(resident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn sample() -> StoredResponse {
        StoredResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), b"text/html".to_vec()),
                ("etag".into(), b"\"abc\"".to_vec()),
            ],
            request_time_ms: 1_700_000_000_000,
            response_time_ms: 1_700_000_000_050,
            initial_age_s: 3,
            ttl_s: 86400,
            revalidate_each_use: false,
            must_revalidate: true,
            stale_while_revalidate_s: Some(30),
            stale_if_error_s: None,
            ttl_rule: "max-age".into(),
            ttl_clamp: "none".into(),
            vary: vec!["accept-language".into()],
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        for m in [
            Meta::Response(sample()),
            Meta::Variants(vec!["accept".into()]),
        ] {
            let bytes = m.encode();
            assert_eq!(bytes[0], META_VERSION);
            assert_eq!(Meta::decode(&bytes).unwrap(), m);
            for cut in 1..bytes.len() {
                assert!(Meta::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(Meta::decode(&long).is_err());
        }
        assert!(matches!(Meta::decode(&[]), Err(MetaError::Empty)));
        let mut v1 = sample().encode();
        v1[0] = 1;
        assert!(matches!(Meta::decode(&v1), Err(MetaError::Version(1))));
        // A huge length prefix must not allocate what it asks for.
        let mut huge = vec![META_VERSION, 0, 0, 0, 0, 200, 0];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(Meta::decode(&huge).is_err());
    }

    #[test]
    fn an_endless_lifetime_saturates_instead_of_overflowing() {
        let mut m = sample();
        m.ttl_s = u64::MAX;
        m.response_time_ms = u64::MAX;
        assert_eq!(m.expires_at(), far_future());
        assert!(m.age_at(far_future()) >= Duration::from_secs(3));
    }

    #[test]
    fn age_adds_resident_time() {
        let m = sample();
        let now = m.response_time() + Duration::from_secs(10);
        assert_eq!(m.age_at(now), Duration::from_secs(13));
        assert_eq!(m.age_at(UNIX_EPOCH), Duration::from_secs(3));
    }
}
