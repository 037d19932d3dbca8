//! Records staged in memory in their on-disk layout (a 64-byte header slot in front of each
//! payload), so that appending them is one pwrite with no copy. Header checksums depend on
//! where a record lands, so the headers are filled in by the log at append time.

use crate::store::record::{RecordHeader, RecordKind, CHUNK_SIZE, RECORD_HEADER_LEN};

#[derive(Debug, Default)]
pub struct RecordBatch {
    /// Header slots and payloads, back to back.
    pub(crate) buf: Vec<u8>,
    /// Start of each finished record in `buf`, with its header.
    pub(crate) recs: Vec<(usize, RecordHeader)>,
    /// Start of the extent record still being filled, if any.
    open: Option<usize>,
}

impl RecordBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty() && self.open.is_none()
    }

    /// Finished records.
    pub fn len(&self) -> usize {
        self.recs.len()
    }

    /// Stages a whole record.
    pub fn push(&mut self, kind: RecordKind, payload: &[u8]) {
        debug_assert!(self.open.is_none(), "finish the open extent first");
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
        self.buf.extend_from_slice(payload);
        self.recs
            .push((start, RecordHeader::for_payload(kind, payload)));
    }

    /// Appends body bytes, cutting them into extent records of [`CHUNK_SIZE`] bytes.
    pub fn push_body(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let start = match self.open {
                Some(s) => s,
                None => {
                    let s = self.buf.len();
                    self.buf.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
                    self.open = Some(s);
                    s
                }
            };
            let filled = self.buf.len() - start - RECORD_HEADER_LEN;
            let take = (CHUNK_SIZE as usize - filled).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if filled + take == CHUNK_SIZE as usize {
                self.close_extent();
            }
        }
    }

    /// Finishes the extent being filled, if any (at the end of a body).
    pub fn close_extent(&mut self) {
        if let Some(start) = self.open.take() {
            let payload = &self.buf[start + RECORD_HEADER_LEN..];
            let h = RecordHeader::for_payload(RecordKind::Extent, payload);
            self.recs.push((start, h));
        }
    }

    /// Takes the finished records out, leaving a partly filled extent behind.
    pub fn take_finished(&mut self) -> RecordBatch {
        let rest = match self.open {
            Some(start) => {
                let rest = self.buf.split_off(start);
                self.open = Some(0);
                rest
            }
            None => Vec::new(),
        };
        RecordBatch {
            buf: std::mem::replace(&mut self.buf, rest),
            recs: std::mem::take(&mut self.recs),
            open: None,
        }
    }

    /// Total length of record `i` (header included).
    pub(crate) fn record_len(&self, i: usize) -> usize {
        RECORD_HEADER_LEN + self.recs[i].1.payload_len as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_cut_into_chunks_and_partial_chunks_survive_take() {
        let mut b = RecordBatch::new();
        b.push_body(&vec![1u8; CHUNK_SIZE as usize + 10]);
        assert_eq!(b.len(), 1);
        let taken = b.take_finished();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken.buf.len(), RECORD_HEADER_LEN + CHUNK_SIZE as usize);
        b.push_body(&[2u8; 5]);
        b.close_extent();
        assert_eq!(b.len(), 1);
        assert_eq!(b.recs[0].1.payload_len, 15);
        assert_eq!(
            &b.buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + 10],
            &[1u8; 10]
        );
    }
}
