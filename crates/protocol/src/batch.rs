//! Zero-copy view of record batch v2 and its validation.
//!
//! Layout of a v2 batch header (61 bytes, big-endian):
//!
//! | offset | field                 | type |
//! |-------:|-----------------------|------|
//! |  0     | base offset           | i64  |
//! |  8     | batch length          | i32 (bytes after this field) |
//! | 12     | partition leader epoch| i32  |
//! | 16     | magic (= 2)           | i8   |
//! | 17     | crc32c                | u32 (covers bytes 21..end) |
//! | 21     | attributes            | i16  |
//! | 23     | last offset delta     | i32  |
//! | 27     | base timestamp        | i64  |
//! | 35     | max timestamp         | i64  |
//! | 43     | producer id           | i64  |
//! | 51     | producer epoch        | i16  |
//! | 53     | base sequence         | i32  |
//! | 57     | record count          | i32  |
//! | 61     | records …             |      |
//!
//! The CRC does not cover base offset, length or leader epoch, so the broker can
//! patch base offset and leader epoch in place without recomputing it.

use crate::records::read_varint;

pub const HEADER_LEN: usize = 61;
/// Bytes of a batch before the length field's coverage starts (offset + length).
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("batch truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("invalid batch length {0}")]
    BadLength(i32),
    #[error("unsupported magic {0}")]
    BadMagic(i8),
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("record count {count} does not match the records present")]
    BadRecordCount { count: i32 },
    #[error("invalid last offset delta {delta} for {count} records")]
    BadOffsetDelta { delta: i32, count: i32 },
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("unknown compression codec {0}")]
    BadCodec(i16),
    #[error("records decompress to more than max.message.bytes {max}")]
    Inflated { max: usize },
    #[error("records cannot be decompressed: {0}")]
    Undecodable(String),
    #[error("empty record set")]
    Empty,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// A borrowed view of one complete batch (header and records).
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Views the batch at the start of `buf`. Checks only that the length field is
    /// sane and the whole batch is present; see [`validate`] for the rest.
    pub fn parse(buf: &'a [u8]) -> Result<Self, BatchError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated { need: LOG_OVERHEAD, have: buf.len() });
        }
        let len = be_i32(buf, 8);
        if len < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(len));
        }
        let total = LOG_OVERHEAD + len as usize;
        if buf.len() < total {
            return Err(BatchError::Truncated { need: total, have: buf.len() });
        }
        Ok(BatchView { bytes: &buf[..total] })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn total_len(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, 0)
    }
    pub fn leader_epoch(&self) -> i32 {
        be_i32(self.bytes, 12)
    }
    pub fn magic(&self) -> i8 {
        self.bytes[16] as i8
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, 17) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, 21)
    }
    pub fn compression(&self) -> i16 {
        self.attributes() & ATTR_COMPRESSION_MASK
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & ATTR_CONTROL != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & ATTR_TRANSACTIONAL != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, 23)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + self.last_offset_delta() as i64
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, 27)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, 35)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, 43)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, 51)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, 53)
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, 57)
    }
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }
    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[21..])
    }
}

/// Walks the complete batches in a buffer. Stops (returning `None`) at a trailing
/// partial batch, which fetch responses are allowed to carry.
pub struct BatchIter<'a> {
    rest: &'a [u8],
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter { rest: buf }
    }
}

impl<'a> Iterator for BatchIter<'a> {
    type Item = Result<BatchView<'a>, BatchError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match BatchView::parse(self.rest) {
            Ok(b) => {
                self.rest = &self.rest[b.total_len()..];
                Some(Ok(b))
            }
            Err(BatchError::Truncated { .. }) => None,
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// What the broker learned from validating a produce request's record set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedSet {
    /// Number of batches.
    pub batches: usize,
    /// Total offsets the set occupies (sum of last offset delta + 1).
    pub offsets: i64,
    /// Largest max timestamp among the batches.
    pub max_timestamp: i64,
}

/// Validates a record set sent by a producer: every batch complete, magic 2, CRC
/// correct, sizes within `max_batch_bytes`, offset delta consistent with the record
/// count, and the record count matching the records actually present. Compressed
/// batches are decompressed for that, up to `max_batch_bytes` and no further.
pub fn validate(set: &[u8], max_batch_bytes: usize) -> Result<ValidatedSet, BatchError> {
    if set.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut out = ValidatedSet { batches: 0, offsets: 0, max_timestamp: -1 };
    let mut rest = set;
    while !rest.is_empty() {
        if rest.len() >= 17 && rest[16] as i8 != MAGIC_V2 {
            return Err(BatchError::BadMagic(rest[16] as i8));
        }
        let b = BatchView::parse(rest)?;
        validate_one(&b, max_batch_bytes)?;
        out.batches += 1;
        out.offsets += b.last_offset_delta() as i64 + 1;
        out.max_timestamp = out.max_timestamp.max(b.max_timestamp());
        rest = &rest[b.total_len()..];
    }
    Ok(out)
}

fn validate_one(b: &BatchView<'_>, max_batch_bytes: usize) -> Result<(), BatchError> {
    if b.magic() != MAGIC_V2 {
        return Err(BatchError::BadMagic(b.magic()));
    }
    if b.total_len() > max_batch_bytes {
        return Err(BatchError::TooLarge { size: b.total_len(), max: max_batch_bytes });
    }
    let (stored, computed) = (b.crc(), b.computed_crc());
    if stored != computed {
        return Err(BatchError::BadCrc { stored, computed });
    }
    let count = b.record_count();
    let delta = b.last_offset_delta();
    if count <= 0 || delta < 0 || delta != count - 1 {
        return Err(BatchError::BadOffsetDelta { delta, count });
    }
    match b.compression() {
        0 => check_uncompressed_count(b.records_bytes(), count),
        c @ 1..=4 => {
            // A compressed batch is inflated once, capped at max.message.bytes, so a
            // compression bomb stops at the cap and the record count is checked too.
            let codec = crate::compression::Codec::from_attributes(c).ok_or(BatchError::BadCodec(c))?;
            let raw = crate::compression::decompress(codec, b.records_bytes(), max_batch_bytes).map_err(|e| match e {
                crate::compression::CompressionError::TooLarge(_) => BatchError::Inflated { max: max_batch_bytes },
                other => BatchError::Undecodable(other.to_string()),
            })?;
            check_uncompressed_count(&raw, count)
        }
        c => Err(BatchError::BadCodec(c)),
    }
}

/// Each record starts with its length as a zig-zag varint; walking those lengths
/// proves the count without decoding the records.
fn check_uncompressed_count(mut records: &[u8], count: i32) -> Result<(), BatchError> {
    let mut seen = 0i32;
    while !records.is_empty() {
        let (len, used) = read_varint(records).map_err(|_| BatchError::BadRecordCount { count })?;
        if len < 0 {
            return Err(BatchError::BadRecordCount { count });
        }
        let end = used.checked_add(len as usize).filter(|&e| e <= records.len()).ok_or(BatchError::BadRecordCount { count })?;
        records = &records[end..];
        seen += 1;
        if seen > count {
            return Err(BatchError::BadRecordCount { count });
        }
    }
    if seen != count {
        return Err(BatchError::BadRecordCount { count });
    }
    Ok(())
}

/// Marks a batch as LogAppendTime with `now` as its max timestamp and
/// recomputes the CRC (both fields are covered by it).
pub fn set_log_append_time(batch: &mut [u8], now: i64) {
    let attrs = i16::from_be_bytes([batch[21], batch[22]]) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&now.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Patches base offset and partition leader epoch in place. The CRC stays valid.
pub fn patch_offsets(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::Codec;
    use crate::records::{BatchBuilder, Record};

    fn sample(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new(1_000);
        for i in 0..n {
            b.push(Record { key: Some(format!("k{i}").into()), value: Some(vec![7u8; 10].into()), ..Default::default() });
        }
        b.build(crate::compression::Codec::None).unwrap().to_vec()
    }

    #[test]
    fn compression_bomb_stops_at_the_cap() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let mut b = BatchBuilder::new(1_000);
            b.push(Record { value: Some(vec![0u8; 8 << 20].into()), ..Default::default() });
            let set = b.build(codec).unwrap().to_vec();
            assert!(set.len() < 1 << 20, "{codec:?} compresses 8 MiB of zeros to {} bytes", set.len());
            assert_eq!(validate(&set, 1 << 20), Err(BatchError::Inflated { max: 1 << 20 }), "{codec:?}");
            assert!(validate(&set, 9 << 20).is_ok(), "{codec:?}");
        }
    }

    #[test]
    fn valid_batch_passes() {
        let set = sample(3);
        let v = validate(&set, 1 << 20).unwrap();
        assert_eq!(v, ValidatedSet { batches: 1, offsets: 3, max_timestamp: 1_002 });
    }

    #[test]
    fn flipped_bit_is_a_crc_error() {
        let mut set = sample(3);
        let last = set.len() - 1;
        set[last] ^= 1;
        assert!(matches!(validate(&set, 1 << 20), Err(BatchError::BadCrc { .. })));
    }

    #[test]
    fn patching_keeps_crc_valid() {
        let mut set = sample(2);
        patch_offsets(&mut set, 12345, 7);
        let b = BatchView::parse(&set).unwrap();
        assert_eq!(b.base_offset(), 12345);
        assert_eq!(b.leader_epoch(), 7);
        assert!(validate(&set, 1 << 20).is_ok());
    }

    #[test]
    fn oversize_is_refused() {
        let set = sample(3);
        assert!(matches!(validate(&set, 20), Err(BatchError::TooLarge { .. })));
    }

    #[test]
    fn wrong_count_is_refused() {
        let mut set = sample(3);
        // claim 4 records with a matching delta, then fix the CRC
        set[57..61].copy_from_slice(&4i32.to_be_bytes());
        set[23..27].copy_from_slice(&3i32.to_be_bytes());
        let crc = crc32c::crc32c(&set[21..]);
        set[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(validate(&set, 1 << 20), Err(BatchError::BadRecordCount { .. })));
    }

    #[test]
    fn truncated_and_negative_lengths() {
        let set = sample(1);
        assert!(matches!(validate(&set[..set.len() - 1], 1 << 20), Err(BatchError::Truncated { .. })));
        let mut bad = set.clone();
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(validate(&bad, 1 << 20), Err(BatchError::BadLength(-5))));
    }
}
