//! The byte codec of segment files: the segment header, record headers and the payloads
//! of object, blob-manifest and tombstone records. Pure functions over byte slices, so that
//! recovery, `verify`, the fuzz targets and an independent reader share one definition.
//! storage-format.md is the contract this file implements.

use serde::{Deserialize, Serialize};

/// Version of the on-disk format (directory, segments, records). Bump on any change.
pub const FORMAT_VERSION: u32 = 1;

pub const SEGMENT_MAGIC: [u8; 8] = *b"CAIRNSEG";
pub const SEGMENT_HEADER_LEN: usize = 64;
pub const RECORD_MAGIC: [u8; 4] = *b"CREC";
pub const RECORD_HEADER_LEN: usize = 64;

/// Bodies are cut into chunks of this many bytes; each chunk is one extent record whose
/// crc32 is checked as the chunk is handed to a reader.
pub const CHUNK_SIZE: u32 = 64 * 1024;

/// Upper bound of a segment's length (and so of any offset in one).
pub const MAX_SEGMENT_LEN: u64 = 1 << 40;

/// Upper bound of any record payload this version writes or accepts (object, manifest and
/// tombstone payloads are bounded further by the store's configuration).
pub const MAX_PAYLOAD_LEN: u32 = 16 * 1024 * 1024;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// One chunk of body bytes (raw, no encoding).
    Extent = 1,
    /// Where a blob's chunks live: [`BlobRecord`].
    Blob = 2,
    /// A committed object or a metadata update: [`ObjectRecord`].
    Object = 3,
    /// A removal or invalidation: [`TombstoneRecord`].
    Tombstone = 4,
}

impl RecordKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Extent),
            2 => Some(Self::Blob),
            3 => Some(Self::Object),
            4 => Some(Self::Tombstone),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Extent => "extent",
            Self::Blob => "blob",
            Self::Object => "object",
            Self::Tombstone => "tombstone",
        }
    }
}

/// Why bytes read from disk were refused. Decoding never panics and never allocates more
/// than the bytes it was given justify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: u64, available: u64 },
    #[error("bad magic")]
    BadMagic,
    #[error("header checksum mismatch")]
    HeaderChecksum,
    #[error("unknown record kind {0}")]
    UnknownKind(u8),
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("segment id {found} in header does not match file name id {expected}")]
    SegmentIdMismatch { expected: u64, found: u64 },
    #[error("segment belongs to another cache (salt mismatch)")]
    SaltMismatch,
    #[error("payload length {len} exceeds the limit of {max}")]
    PayloadTooLarge { len: u64, max: u64 },
    #[error("payload crc32 mismatch")]
    PayloadChecksum,
    #[error("payload blake3 mismatch")]
    PayloadHash,
    #[error("wrong record kind: expected {expected}, found {found}")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("length {len} does not match the expected {expected}")]
    LengthMismatch { len: u64, expected: u64 },
    #[error("invalid encoding: {0}")]
    Encoding(String),
    #[error("{0} trailing bytes after the encoded value")]
    TrailingBytes(usize),
    #[error("invalid value: {0}")]
    Invalid(&'static str),
}

/// The 64-byte header at offset 0 of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub version: u32,
    pub segment_id: u64,
    pub salt: u64,
    pub created_at_ms: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        b[24..32].copy_from_slice(&self.salt.to_le_bytes());
        b[32..40].copy_from_slice(&self.created_at_ms.to_le_bytes());
        let crc = crc32fast::hash(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a segment header: magic, checksum, version, id and salt.
    pub fn decode(bytes: &[u8], expected_id: u64, salt: u64) -> Result<Self, DecodeError> {
        let b = take(bytes, 0, SEGMENT_HEADER_LEN)?;
        if b[0..8] != SEGMENT_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if crc32fast::hash(&b[0..60]) != le_u32(&b[60..64]) {
            return Err(DecodeError::HeaderChecksum);
        }
        let version = le_u32(&b[8..12]);
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        if le_u32(&b[12..16]) as usize != SEGMENT_HEADER_LEN {
            return Err(DecodeError::Invalid("segment header length"));
        }
        let segment_id = le_u64(&b[16..24]);
        if segment_id != expected_id {
            return Err(DecodeError::SegmentIdMismatch {
                expected: expected_id,
                found: segment_id,
            });
        }
        if le_u64(&b[24..32]) != salt {
            return Err(DecodeError::SaltMismatch);
        }
        Ok(Self {
            version,
            segment_id,
            salt,
            created_at_ms: le_u64(&b[32..40]),
        })
    }
}

/// The 64-byte header in front of every record's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: RecordKind,
    pub payload_len: u32,
    pub payload_crc32: u32,
    pub payload_blake3: [u8; 32],
}

impl RecordHeader {
    /// Header for `payload`, computing both of its checksums.
    pub fn for_payload(kind: RecordKind, payload: &[u8]) -> Self {
        Self {
            kind,
            payload_len: payload.len() as u32,
            payload_crc32: crc32fast::hash(payload),
            payload_blake3: *blake3::hash(payload).as_bytes(),
        }
    }

    /// Encodes the header as it is written at `offset` of segment `segment_id`: the header
    /// checksum binds it to that place and to this cache's salt.
    pub fn encode(&self, salt: u64, segment_id: u64, offset: u64) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&RECORD_MAGIC);
        b[4] = self.kind as u8;
        b[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.payload_crc32.to_le_bytes());
        b[16..48].copy_from_slice(&self.payload_blake3);
        let crc = header_crc(salt, segment_id, offset, &b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the header found at `offset` of segment `segment_id`.
    pub fn decode(
        bytes: &[u8],
        salt: u64,
        segment_id: u64,
        offset: u64,
    ) -> Result<Self, DecodeError> {
        let b = take(bytes, 0, RECORD_HEADER_LEN)?;
        if b[0..4] != RECORD_MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if header_crc(salt, segment_id, offset, &b[0..60]) != le_u32(&b[60..64]) {
            return Err(DecodeError::HeaderChecksum);
        }
        let kind = RecordKind::from_u8(b[4]).ok_or(DecodeError::UnknownKind(b[4]))?;
        if b[5] != 0 || b[6] != 0 || b[7] != 0 || b[48..60].iter().any(|&x| x != 0) {
            return Err(DecodeError::Invalid("reserved header bytes are not zero"));
        }
        let payload_len = le_u32(&b[8..12]);
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(DecodeError::PayloadTooLarge {
                len: payload_len as u64,
                max: MAX_PAYLOAD_LEN as u64,
            });
        }
        let mut payload_blake3 = [0u8; 32];
        payload_blake3.copy_from_slice(&b[16..48]);
        Ok(Self {
            kind,
            payload_len,
            payload_crc32: le_u32(&b[12..16]),
            payload_blake3,
        })
    }

    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + self.payload_len as u64
    }
}

fn header_crc(salt: u64, segment_id: u64, offset: u64, header: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(&segment_id.to_le_bytes());
    h.update(&offset.to_le_bytes());
    h.update(header);
    h.finalize()
}

/// One contiguous run of extent records in one segment: `len` body bytes starting with the
/// extent record at `offset`. Every extent in a run but the last carries [`CHUNK_SIZE`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub segment: u64,
    pub offset: u64,
    pub len: u64,
}

impl Run {
    /// The extent records of this run: (record offset, data length).
    /// (Arithmetic saturates, so a corrupt run cannot overflow; [`Run::validate`] refuses
    /// such runs before anything reads them.)
    pub fn extents(&self, chunk_size: u32) -> impl Iterator<Item = (u64, u32)> + '_ {
        let chunk = chunk_size.max(1) as u64;
        let n = self.len.div_ceil(chunk);
        (0..n).map(move |i| {
            let step = RECORD_HEADER_LEN as u64 + chunk;
            let off = self.offset.saturating_add(i.saturating_mul(step));
            let len = (self.len - i * chunk).min(chunk) as u32;
            (off, len)
        })
    }

    /// Bytes this run occupies in its segment, headers included (saturating).
    pub fn disk_len(&self, chunk_size: u32) -> u64 {
        let chunk = chunk_size.max(1) as u64;
        self.len.saturating_add(
            self.len
                .div_ceil(chunk)
                .saturating_mul(RECORD_HEADER_LEN as u64),
        )
    }

    /// Where this run ends in its segment, if it is well formed: it starts after the
    /// segment header, is not empty, and ends within the largest possible segment.
    pub fn validate(&self, chunk_size: u32) -> Result<u64, DecodeError> {
        if self.len == 0 {
            return Err(DecodeError::Invalid("empty run"));
        }
        if self.offset < SEGMENT_HEADER_LEN as u64 {
            return Err(DecodeError::Invalid("run starts inside the segment header"));
        }
        let end = self
            .offset
            .checked_add(self.disk_len(chunk_size))
            .filter(|&e| e <= MAX_SEGMENT_LEN)
            .ok_or(DecodeError::Invalid("run ends beyond any segment"))?;
        Ok(end)
    }
}

/// Checks a body's placement: chunk size in range, every run well formed, lengths adding
/// up to `len`. Shared by blob records and the index's blob entries.
pub fn validate_runs(len: u64, chunk_size: u32, runs: &[Run]) -> Result<(), DecodeError> {
    if chunk_size == 0 || chunk_size > MAX_PAYLOAD_LEN {
        return Err(DecodeError::Invalid("blob chunk size"));
    }
    let mut total: u64 = 0;
    for r in runs {
        r.validate(chunk_size)?;
        total = total
            .checked_add(r.len)
            .ok_or(DecodeError::Invalid("run lengths overflow"))?;
    }
    if total != len {
        return Err(DecodeError::LengthMismatch {
            len: total,
            expected: len,
        });
    }
    Ok(())
}

/// Payload of a blob record: a body's content address and where its chunks are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub hash: [u8; 32],
    pub len: u64,
    pub chunk_size: u32,
    pub runs: Vec<Run>,
}

impl BlobRecord {
    /// Checks that the runs add up to the length and are well formed.
    pub fn validate(&self) -> Result<(), DecodeError> {
        validate_runs(self.len, self.chunk_size, &self.runs)
    }
}

/// Payload of an object record: a committed object or a metadata update of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub key: Vec<u8>,
    #[serde(deserialize_with = "bounded::string")]
    pub distribution: String,
    #[serde(deserialize_with = "bounded::strings")]
    pub tags: Vec<String>,
    pub meta: Vec<u8>,
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
    pub blob: [u8; 32],
    pub body_len: u64,
}

/// Payload of a tombstone record: everything it names that was written before it is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TombstoneRecord {
    /// One key.
    Key(Vec<u8>),
    /// Every key that starts with these bytes.
    Prefix(Vec<u8>),
}

/// String decoding that never allocates what a corrupt length claims. bincode decodes a
/// `String` by allocating its claimed length before reading; decoding it as a byte
/// sequence instead goes through serde's cautious preallocation (at most 1 MiB) and grows
/// only with bytes actually present. The encoding is the same (u64 length, then bytes).
pub(crate) mod bounded {
    use serde::{Deserialize, Deserializer};

    struct Utf8(String);

    impl<'de> Deserialize<'de> for Utf8 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let bytes = Vec::<u8>::deserialize(d)?;
            String::from_utf8(bytes)
                .map(Utf8)
                .map_err(|_| serde::de::Error::custom("string is not UTF-8"))
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Utf8::deserialize(d).map(|u| u.0)
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(Vec::<Utf8>::deserialize(d)?
            .into_iter()
            .map(|u| u.0)
            .collect())
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ MAX_PAYLOAD_LEN as usize }>()
}

/// Encodes a payload (bincode 2, fixed-width little-endian integers).
pub fn encode_payload<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode_config()).expect("in-memory encoding cannot fail")
}

/// Decodes a payload, refusing trailing bytes and anything over the size limit.
pub fn decode_payload<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (v, used) = bincode::serde::decode_from_slice(bytes, bincode_config())
        .map_err(|e| DecodeError::Encoding(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(v)
}

/// A record read from a segment and checked: header checksum, bounds, payload crc32 and
/// blake3.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub offset: u64,
    pub header: RecordHeader,
    pub payload: &'a [u8],
}

/// What a walk over a segment found at one place.
#[derive(Debug)]
pub enum WalkItem<'a> {
    /// A whole, checked record.
    Record(RawRecord<'a>),
    /// A record whose header is sound but whose payload fails its checksums; the walk
    /// continues after it because the header's length is trustworthy.
    BadPayload {
        offset: u64,
        header: RecordHeader,
        error: DecodeError,
    },
}

/// Why a walk stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkEnd {
    /// Reached `limit` exactly.
    End,
    /// Zeroes where the next header would start: the unwritten tail of a segment.
    Unwritten { offset: u64 },
    /// A header that does not decode (torn write or corruption). Nothing after it can be
    /// trusted, since recovery never resynchronises by scanning.
    BadHeader { offset: u64, error: DecodeError },
}

/// Walks the records of segment `segment_id` in `bytes[start..limit]`. Every record is
/// checked in full (crc32 and blake3): this is for recovery and verification, not serving.
pub struct Walker<'a> {
    bytes: &'a [u8],
    salt: u64,
    segment_id: u64,
    pos: u64,
    limit: u64,
    end: Option<WalkEnd>,
    verify_extents: bool,
}

impl<'a> Walker<'a> {
    pub fn new(bytes: &'a [u8], salt: u64, segment_id: u64, start: u64) -> Self {
        let limit = bytes.len() as u64;
        Self {
            bytes,
            salt,
            segment_id,
            pos: start,
            limit,
            end: None,
            verify_extents: true,
        }
    }

    /// Skip the (expensive) checksum pass over extent payloads; their headers are still
    /// checked. Used when only the structure of a segment matters.
    pub fn skip_extent_checks(mut self) -> Self {
        self.verify_extents = false;
        self
    }

    /// Offset just past the last record returned so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Why the walk ended (after `next` returned `None`).
    pub fn end(&self) -> Option<&WalkEnd> {
        self.end.as_ref()
    }

    fn stop(&mut self, end: WalkEnd) -> Option<WalkItem<'a>> {
        self.end = Some(end);
        None
    }
}

impl<'a> Iterator for Walker<'a> {
    type Item = WalkItem<'a>;

    fn next(&mut self) -> Option<WalkItem<'a>> {
        if self.end.is_some() {
            return None;
        }
        let off = self.pos;
        if off >= self.limit {
            return self.stop(WalkEnd::End);
        }
        let rest = &self.bytes[off as usize..self.limit as usize];
        if rest.len() < RECORD_HEADER_LEN {
            if rest.iter().all(|&b| b == 0) {
                return self.stop(WalkEnd::Unwritten { offset: off });
            }
            let error = DecodeError::Truncated {
                needed: RECORD_HEADER_LEN as u64,
                available: rest.len() as u64,
            };
            return self.stop(WalkEnd::BadHeader { offset: off, error });
        }
        let header = match RecordHeader::decode(rest, self.salt, self.segment_id, off) {
            Ok(h) => h,
            Err(error) => {
                if rest[..RECORD_HEADER_LEN].iter().all(|&b| b == 0) {
                    return self.stop(WalkEnd::Unwritten { offset: off });
                }
                return self.stop(WalkEnd::BadHeader { offset: off, error });
            }
        };
        let total = header.record_len();
        if total > rest.len() as u64 {
            let error = DecodeError::Truncated {
                needed: total,
                available: rest.len() as u64,
            };
            return self.stop(WalkEnd::BadHeader { offset: off, error });
        }
        let payload = &rest[RECORD_HEADER_LEN..total as usize];
        self.pos = off + total;
        if header.kind != RecordKind::Extent || self.verify_extents {
            if let Err(error) = check_payload(&header, payload) {
                return Some(WalkItem::BadPayload {
                    offset: off,
                    header,
                    error,
                });
            }
        }
        Some(WalkItem::Record(RawRecord {
            offset: off,
            header,
            payload,
        }))
    }
}

/// Checks a payload against both checksums in its header.
pub fn check_payload(header: &RecordHeader, payload: &[u8]) -> Result<(), DecodeError> {
    if crc32fast::hash(payload) != header.payload_crc32 {
        return Err(DecodeError::PayloadChecksum);
    }
    if blake3::hash(payload).as_bytes() != &header.payload_blake3 {
        return Err(DecodeError::PayloadHash);
    }
    Ok(())
}

/// Reads and checks the extent record at `offset` for serving: header checksum, kind,
/// length and payload crc32 (not blake3: crc32 is the serving-time check). Returns the
/// range of the payload within `bytes`.
pub fn check_extent(
    bytes: &[u8],
    salt: u64,
    segment_id: u64,
    offset: u64,
    expected_len: u32,
) -> Result<std::ops::Range<usize>, DecodeError> {
    let start = usize::try_from(offset).map_err(|_| DecodeError::Invalid("offset"))?;
    let header_bytes = take(bytes, start, RECORD_HEADER_LEN)?;
    let header = RecordHeader::decode(header_bytes, salt, segment_id, offset)?;
    if header.kind != RecordKind::Extent {
        return Err(DecodeError::WrongKind {
            expected: RecordKind::Extent.as_str(),
            found: header.kind.as_str(),
        });
    }
    if header.payload_len != expected_len {
        return Err(DecodeError::LengthMismatch {
            len: header.payload_len as u64,
            expected: expected_len as u64,
        });
    }
    let pstart = start + RECORD_HEADER_LEN;
    let payload = take(bytes, pstart, expected_len as usize)?;
    if crc32fast::hash(payload) != header.payload_crc32 {
        return Err(DecodeError::PayloadChecksum);
    }
    Ok(pstart..pstart + expected_len as usize)
}

fn take(bytes: &[u8], start: usize, len: usize) -> Result<&[u8], DecodeError> {
    let end = start
        .checked_add(len)
        .ok_or(DecodeError::Invalid("length"))?;
    bytes.get(start..end).ok_or(DecodeError::Truncated {
        needed: end as u64,
        available: bytes.len() as u64,
    })
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: u64 = 0x1234_5678_9abc_def0;

    fn segment_with(records: &[(RecordKind, Vec<u8>)]) -> Vec<u8> {
        let mut seg = SegmentHeader {
            version: FORMAT_VERSION,
            segment_id: 7,
            salt: SALT,
            created_at_ms: 1,
        }
        .encode()
        .to_vec();
        for (kind, payload) in records {
            let off = seg.len() as u64;
            let h = RecordHeader::for_payload(*kind, payload);
            seg.extend_from_slice(&h.encode(SALT, 7, off));
            seg.extend_from_slice(payload);
        }
        seg
    }

    #[test]
    fn segment_header_round_trips_and_checks_identity() {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            segment_id: 42,
            salt: SALT,
            created_at_ms: 99,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b, 42, SALT), Ok(h));
        assert_eq!(
            SegmentHeader::decode(&b, 43, SALT),
            Err(DecodeError::SegmentIdMismatch {
                expected: 43,
                found: 42
            })
        );
        assert_eq!(
            SegmentHeader::decode(&b, 42, SALT + 1),
            Err(DecodeError::SaltMismatch)
        );
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(
            SegmentHeader::decode(&bad, 42, SALT),
            Err(DecodeError::HeaderChecksum)
        );
        assert!(matches!(
            SegmentHeader::decode(&b[..10], 42, SALT),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn newer_segment_version_is_refused() {
        let mut b = SegmentHeader {
            version: FORMAT_VERSION + 1,
            segment_id: 1,
            salt: SALT,
            created_at_ms: 0,
        }
        .encode();
        // encode() wrote the crc over the newer version, so only the version check trips.
        assert_eq!(
            SegmentHeader::decode(&b, 1, SALT),
            Err(DecodeError::UnsupportedVersion(FORMAT_VERSION + 1))
        );
        b[0] = b'X';
        assert_eq!(
            SegmentHeader::decode(&b, 1, SALT),
            Err(DecodeError::BadMagic)
        );
    }

    #[test]
    fn record_header_is_bound_to_its_place_and_salt() {
        let h = RecordHeader::for_payload(RecordKind::Object, b"payload");
        let b = h.encode(SALT, 3, 640);
        assert_eq!(RecordHeader::decode(&b, SALT, 3, 640), Ok(h));
        assert_eq!(
            RecordHeader::decode(&b, SALT, 3, 641),
            Err(DecodeError::HeaderChecksum)
        );
        assert_eq!(
            RecordHeader::decode(&b, SALT, 4, 640),
            Err(DecodeError::HeaderChecksum)
        );
        assert_eq!(
            RecordHeader::decode(&b, SALT ^ 1, 3, 640),
            Err(DecodeError::HeaderChecksum)
        );
    }

    #[test]
    fn every_single_bit_flip_in_a_header_is_caught() {
        let h = RecordHeader::for_payload(RecordKind::Extent, &[5u8; 100]);
        let b = h.encode(SALT, 1, 64);
        for bit in 0..RECORD_HEADER_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(
                RecordHeader::decode(&c, SALT, 1, 64).is_err(),
                "bit {bit} flip went unnoticed"
            );
        }
    }

    #[test]
    fn payload_codecs_round_trip() {
        let o = ObjectRecord {
            key: b"dist/path?q".to_vec(),
            distribution: "E1".into(),
            tags: vec!["a".into(), "b".into()],
            meta: vec![1, 2, 3],
            stored_at_ms: 10,
            expires_at_ms: 20,
            blob: [9; 32],
            body_len: 1234,
        };
        assert_eq!(decode_payload::<ObjectRecord>(&encode_payload(&o)), Ok(o));
        let b = BlobRecord {
            hash: [1; 32],
            len: 70000,
            chunk_size: CHUNK_SIZE,
            runs: vec![
                Run {
                    segment: 1,
                    offset: 64,
                    len: 65536,
                },
                Run {
                    segment: 2,
                    offset: 64,
                    len: 4464,
                },
            ],
        };
        let enc = encode_payload(&b);
        let dec: BlobRecord = decode_payload(&enc).unwrap();
        assert_eq!(dec, b);
        dec.validate().unwrap();
        let t = TombstoneRecord::Prefix(b"dist/".to_vec());
        assert_eq!(
            decode_payload::<TombstoneRecord>(&encode_payload(&t)),
            Ok(t)
        );
    }

    #[test]
    fn payload_decoding_refuses_garbage_without_allocating_it() {
        // A length prefix claiming 2^60 bytes must fail cleanly.
        let mut evil = Vec::new();
        evil.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(decode_payload::<ObjectRecord>(&evil).is_err());
        let mut enc = encode_payload(&TombstoneRecord::Key(b"k".to_vec()));
        enc.push(0);
        assert_eq!(
            decode_payload::<TombstoneRecord>(&enc),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(decode_payload::<TombstoneRecord>(&[9, 0, 0, 0]).is_err());
    }

    #[test]
    fn blob_record_validation() {
        let mut b = BlobRecord {
            hash: [0; 32],
            len: 10,
            chunk_size: CHUNK_SIZE,
            runs: vec![Run {
                segment: 1,
                offset: 64,
                len: 9,
            }],
        };
        assert!(b.validate().is_err());
        b.runs[0].len = 10;
        assert!(b.validate().is_ok());
        b.chunk_size = 0;
        assert!(b.validate().is_err());
    }

    #[test]
    fn run_extents_lay_out_chunks_back_to_back() {
        let r = Run {
            segment: 1,
            offset: 64,
            len: 2 * CHUNK_SIZE as u64 + 5,
        };
        let e: Vec<_> = r.extents(CHUNK_SIZE).collect();
        let step = RECORD_HEADER_LEN as u64 + CHUNK_SIZE as u64;
        assert_eq!(
            e,
            vec![
                (64, CHUNK_SIZE),
                (64 + step, CHUNK_SIZE),
                (64 + 2 * step, 5)
            ]
        );
        assert_eq!(r.disk_len(CHUNK_SIZE), r.len + 3 * RECORD_HEADER_LEN as u64);
    }

    #[test]
    fn walker_reads_records_and_stops_at_unwritten_tail() {
        let mut seg = segment_with(&[
            (RecordKind::Extent, vec![1; 10]),
            (
                RecordKind::Tombstone,
                encode_payload(&TombstoneRecord::Key(b"x".to_vec())),
            ),
        ]);
        let end = seg.len() as u64;
        seg.resize(seg.len() + 200, 0);
        let mut w = Walker::new(&seg, SALT, 7, SEGMENT_HEADER_LEN as u64);
        let kinds: Vec<_> = w
            .by_ref()
            .map(|i| match i {
                WalkItem::Record(r) => r.header.kind,
                WalkItem::BadPayload { .. } => panic!("bad payload"),
            })
            .collect();
        assert_eq!(kinds, vec![RecordKind::Extent, RecordKind::Tombstone]);
        assert_eq!(w.end(), Some(&WalkEnd::Unwritten { offset: end }));
        assert_eq!(w.position(), end);
    }

    #[test]
    fn walker_skips_a_bad_payload_but_stops_at_a_bad_header() {
        let mut seg = segment_with(&[
            (RecordKind::Extent, vec![1; 10]),
            (RecordKind::Extent, vec![2; 10]),
            (RecordKind::Extent, vec![3; 10]),
        ]);
        // Flip a payload byte of the first record: header still sound, walk continues.
        seg[SEGMENT_HEADER_LEN + RECORD_HEADER_LEN] ^= 0xff;
        // Flip a header byte of the third record: walk stops there.
        let third = SEGMENT_HEADER_LEN + 2 * (RECORD_HEADER_LEN + 10);
        seg[third + 9] ^= 1;
        let mut w = Walker::new(&seg, SALT, 7, SEGMENT_HEADER_LEN as u64);
        let items: Vec<_> = w.by_ref().collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(
            items[0],
            WalkItem::BadPayload {
                error: DecodeError::PayloadChecksum,
                ..
            }
        ));
        assert!(matches!(items[1], WalkItem::Record(_)));
        assert!(matches!(
            w.end(),
            Some(WalkEnd::BadHeader {
                error: DecodeError::HeaderChecksum,
                ..
            })
        ));
    }

    #[test]
    fn a_body_shaped_like_a_record_is_never_taken_for_one() {
        // A payload that contains a perfectly valid record header for a *different* place
        // (as an attacker-controlled body might) does not confuse the walker: after the
        // outer record the walker looks at its own next offset, and a copy of the inner
        // header at any other offset fails its place-bound checksum.
        let inner_payload = vec![7u8; 16];
        let inner = RecordHeader::for_payload(RecordKind::Tombstone, &inner_payload);
        let mut body = inner.encode(SALT, 7, 64).to_vec();
        body.extend_from_slice(&inner_payload);
        let seg = segment_with(&[(RecordKind::Extent, body.clone())]);
        let w = Walker::new(&seg, SALT, 7, SEGMENT_HEADER_LEN as u64);
        let items: Vec<_> = w.collect();
        assert_eq!(items.len(), 1);
        // Reading the embedded header at its actual offset fails.
        let at = (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64;
        assert_eq!(
            RecordHeader::decode(&seg[at as usize..], SALT, 7, at),
            Err(DecodeError::HeaderChecksum)
        );
    }

    #[test]
    fn check_extent_verifies_kind_length_and_crc() {
        let mut seg = segment_with(&[
            (RecordKind::Extent, vec![4; 100]),
            (RecordKind::Object, vec![0; 4]),
        ]);
        let off = SEGMENT_HEADER_LEN as u64;
        let r = check_extent(&seg, SALT, 7, off, 100).unwrap();
        assert_eq!(&seg[r], &[4u8; 100][..]);
        assert!(matches!(
            check_extent(&seg, SALT, 7, off, 99),
            Err(DecodeError::LengthMismatch { .. })
        ));
        let second = off + RECORD_HEADER_LEN as u64 + 100;
        assert!(matches!(
            check_extent(&seg, SALT, 7, second, 4),
            Err(DecodeError::WrongKind { .. })
        ));
        seg[SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 50] ^= 4;
        assert_eq!(
            check_extent(&seg, SALT, 7, off, 100),
            Err(DecodeError::PayloadChecksum)
        );
        assert!(check_extent(&seg, SALT, 7, 1 << 40, 100).is_err());
    }
}

#[cfg(test)]
mod golden {
    //! Pins the exact payload encodings that storage-format.md documents.
    use super::*;

    #[test]
    fn object_record_bytes_match_the_spec() {
        let o = ObjectRecord {
            key: b"k1".to_vec(),
            distribution: "D".into(),
            tags: vec!["t".into()],
            meta: vec![0xAA],
            stored_at_ms: 1,
            expires_at_ms: 2,
            blob: [0x11; 32],
            body_len: 3,
        };
        let mut want = Vec::new();
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(b"k1");
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(b"D");
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(b"t");
        want.extend_from_slice(&1u64.to_le_bytes());
        want.push(0xAA);
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&3u64.to_le_bytes());
        assert_eq!(encode_payload(&o), want);
    }

    #[test]
    fn blob_and_tombstone_bytes_match_the_spec() {
        let b = BlobRecord {
            hash: [0x22; 32],
            len: 5,
            chunk_size: CHUNK_SIZE,
            runs: vec![Run {
                segment: 7,
                offset: 64,
                len: 5,
            }],
        };
        let mut want = vec![0x22; 32];
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(&CHUNK_SIZE.to_le_bytes());
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&7u64.to_le_bytes());
        want.extend_from_slice(&64u64.to_le_bytes());
        want.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(encode_payload(&b), want);

        let t = TombstoneRecord::Prefix(b"p".to_vec());
        let mut want = 1u32.to_le_bytes().to_vec();
        want.extend_from_slice(&1u64.to_le_bytes());
        want.push(b'p');
        assert_eq!(encode_payload(&t), want);
    }

    #[test]
    fn record_header_bytes_match_the_spec() {
        let payload = b"hello";
        let h = RecordHeader::for_payload(RecordKind::Object, payload);
        let b = h.encode(0x0102_0304_0506_0708, 9, 64);
        assert_eq!(&b[0..4], b"CREC");
        assert_eq!(b[4], 3);
        assert_eq!(&b[5..8], &[0, 0, 0]);
        assert_eq!(&b[8..12], &5u32.to_le_bytes());
        assert_eq!(&b[12..16], &crc32fast::hash(payload).to_le_bytes());
        assert_eq!(&b[16..48], blake3::hash(payload).as_bytes());
        assert_eq!(&b[48..60], &[0u8; 12]);
        let mut c = crc32fast::Hasher::new();
        c.update(&0x0102_0304_0506_0708u64.to_le_bytes());
        c.update(&9u64.to_le_bytes());
        c.update(&64u64.to_le_bytes());
        c.update(&b[0..60]);
        assert_eq!(&b[60..64], &c.finalize().to_le_bytes());
    }
}
