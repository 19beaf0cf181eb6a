//! Records inside a v2 batch: decoding (bounded) and building.
//!
//! A record is: length (varint), attributes (i8), timestamp delta (varlong),
//! offset delta (varint), key length (varint, -1 = null), key, value length,
//! value, header count (varint), then per header a key (varint length, non-null)
//! and a value (varint length, -1 = null).

use bytes::Bytes;

use crate::batch::{BatchView, HEADER_LEN};
use crate::compression::{self, Codec, CompressionError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("varint is longer than its type allows or truncated")]
    BadVarint,
    #[error("record field truncated")]
    Truncated,
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("decompression: {0}")]
    Decompress(String),
    #[error("record count {0} does not match the records present")]
    CountMismatch(i32),
}

impl From<CompressionError> for RecordError {
    fn from(e: CompressionError) -> Self {
        RecordError::Decompress(e.to_string())
    }
}

/// Reads a zig-zag varint (i32). Returns the value and the bytes used.
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    let (v, n) = read_varlong_raw(buf, 5)?;
    let v = v as u32;
    Ok((((v >> 1) as i32) ^ -((v & 1) as i32), n))
}

/// Reads a zig-zag varlong (i64).
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    let (v, n) = read_varlong_raw(buf, 10)?;
    Ok((((v >> 1) as i64) ^ -((v & 1) as i64), n))
}

fn read_varlong_raw(buf: &[u8], max_bytes: usize) -> Result<(u64, usize), RecordError> {
    let mut v: u64 = 0;
    for i in 0..max_bytes {
        let b = *buf.get(i).ok_or(RecordError::BadVarint)?;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(RecordError::BadVarint)
}

pub fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_varlong(out, v as i64)
}

pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// One decoded record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    owner: &'a Bytes,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<i32, RecordError> {
        let (v, n) = read_varint(self.buf)?;
        self.advance(n);
        Ok(v)
    }
    fn varlong(&mut self) -> Result<i64, RecordError> {
        let (v, n) = read_varlong(self.buf)?;
        self.advance(n);
        Ok(v)
    }
    fn advance(&mut self, n: usize) {
        self.buf = &self.buf[n..];
        self.base += n;
    }
    fn bytes(&mut self, len: i32) -> Result<Option<Bytes>, RecordError> {
        if len < 0 {
            return Ok(None);
        }
        let len = len as usize;
        if self.buf.len() < len {
            return Err(RecordError::Truncated);
        }
        let out = self.owner.slice(self.base..self.base + len);
        self.advance(len);
        Ok(Some(out))
    }
    fn byte(&mut self) -> Result<u8, RecordError> {
        let b = *self.buf.first().ok_or(RecordError::Truncated)?;
        self.advance(1);
        Ok(b)
    }
}

/// Decodes every record of a batch. `limit` caps the decompressed size.
pub fn decode_batch(batch: &BatchView<'_>, limit: usize) -> Result<Vec<Record>, RecordError> {
    let codec = Codec::from_attributes(batch.attributes()).ok_or(RecordError::Decompress("unknown codec".into()))?;
    let raw = compression::decompress(codec, batch.records_bytes(), limit)?;
    let owner = Bytes::from(raw);
    let count = batch.record_count();
    if count < 0 {
        return Err(RecordError::CountMismatch(count));
    }
    let log_append = batch.attributes() & crate::batch::ATTR_TIMESTAMP_TYPE != 0;
    let mut cur = Cursor { buf: &owner[..], owner: &owner, base: 0 };
    // The count comes from the wire: never let it size an allocation.
    let mut out = Vec::with_capacity((count as usize).min(owner.len() / 7 + 1));
    for _ in 0..count {
        let len = cur.varint()?;
        if len < 0 {
            return Err(RecordError::NegativeLength(len as i64));
        }
        if cur.buf.len() < len as usize {
            return Err(RecordError::Truncated);
        }
        let end = cur.base + len as usize;
        let _attrs = cur.byte()?;
        let ts_delta = cur.varlong()?;
        let off_delta = cur.varint()?;
        let klen = cur.varint()?;
        let key = cur.bytes(klen)?;
        let vlen = cur.varint()?;
        let value = cur.bytes(vlen)?;
        let hcount = cur.varint()?;
        if hcount < 0 {
            return Err(RecordError::NegativeLength(hcount as i64));
        }
        let mut headers = Vec::with_capacity((hcount as usize).min(cur.buf.len() / 2 + 1));
        for _ in 0..hcount {
            let hk = cur.varint()?;
            if hk < 0 {
                return Err(RecordError::NegativeLength(hk as i64));
            }
            let k = cur.bytes(hk)?.unwrap_or_default();
            let hv = cur.varint()?;
            let v = cur.bytes(hv)?;
            headers.push((String::from_utf8_lossy(&k).into_owned(), v));
        }
        if cur.base != end {
            return Err(RecordError::Truncated);
        }
        let timestamp = if log_append { batch.max_timestamp() } else { batch.base_timestamp() + ts_delta };
        out.push(Record { offset: batch.base_offset() + off_delta as i64, timestamp, key, value, headers });
    }
    if !cur.buf.is_empty() {
        return Err(RecordError::CountMismatch(count));
    }
    Ok(out)
}

/// Builds one v2 batch: by default producer id -1, not transactional; see
/// [`BatchBuilder::producer`], [`BatchBuilder::transactional`] and [`BatchBuilder::control`].
pub struct BatchBuilder {
    base_timestamp: i64,
    records: Vec<u8>,
    count: i32,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// Extra attribute bits (transactional, control).
    flags: i16,
}

impl BatchBuilder {
    pub fn new(base_timestamp: i64) -> Self {
        BatchBuilder {
            base_timestamp,
            records: Vec::new(),
            count: 0,
            max_timestamp: base_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            flags: 0,
        }
    }

    /// Stamps the batch with a producer id, epoch and first sequence (-1: none).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction.
    pub fn transactional(mut self, yes: bool) -> Self {
        self.flags = if yes { self.flags | crate::batch::ATTR_TRANSACTIONAL } else { self.flags & !crate::batch::ATTR_TRANSACTIONAL };
        self
    }

    /// Marks the batch as a control batch (a transaction marker).
    pub fn control(mut self, yes: bool) -> Self {
        self.flags = if yes { self.flags | crate::batch::ATTR_CONTROL } else { self.flags & !crate::batch::ATTR_CONTROL };
        self
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn size_bytes(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// Appends a record; its timestamp is taken from `r.timestamp` when non-zero,
    /// otherwise the batch base timestamp.
    pub fn push(&mut self, r: Record) {
        let ts = if r.timestamp != 0 { r.timestamp } else { self.base_timestamp + self.count as i64 };
        self.max_timestamp = self.max_timestamp.max(ts);
        put_record(&mut self.records, ts - self.base_timestamp, self.count, &r);
        self.count += 1;
    }

    pub fn build(self, codec: Codec) -> Result<Bytes, CompressionError> {
        let payload = compression::compress(codec, &self.records)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((HEADER_LEN - 12 + payload.len()) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.push(2);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&(codec.id() | self.flags).to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&payload);
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(Bytes::from(out))
    }
}

/// Rewrites a batch keeping only `kept` (a subset of its records, in order).
/// Everything else is preserved: base offset, last offset delta (so the batch
/// still spans its original offsets, leaving gaps), timestamps, attributes and
/// codec, producer fields. Used by compaction.
pub fn rebuild_batch(original: &BatchView<'_>, kept: &[Record]) -> Result<Bytes, CompressionError> {
    let codec = Codec::from_attributes(original.attributes()).unwrap_or(Codec::None);
    rebuild_batch_with(original, kept, codec)
}

/// [`rebuild_batch`] with another codec: the broker recompresses a batch this
/// way when a topic's `compression.type` differs from what the producer sent.
pub fn rebuild_batch_with(original: &BatchView<'_>, kept: &[Record], codec: Codec) -> Result<Bytes, CompressionError> {
    let base = original.base_offset();
    let base_ts = original.base_timestamp();
    let mut records = Vec::new();
    for r in kept {
        put_record(&mut records, r.timestamp - base_ts, (r.offset - base) as i32, r);
    }
    let payload = compression::compress(codec, &records)?;
    let head = &original.bytes()[..HEADER_LEN];
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(head);
    let attrs = (original.attributes() & !crate::batch::ATTR_COMPRESSION_MASK) | codec.id();
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    out[8..12].copy_from_slice(&((HEADER_LEN - 12 + payload.len()) as i32).to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    out.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Bytes::from(out))
}

/// Appends one length-prefixed record (attributes 0) with the given deltas.
fn put_record(out: &mut Vec<u8>, timestamp_delta: i64, offset_delta: i32, r: &Record) {
    let mut body = Vec::with_capacity(32);
    body.push(0u8);
    put_varlong(&mut body, timestamp_delta);
    put_varint(&mut body, offset_delta);
    put_opt(&mut body, r.key.as_deref());
    put_opt(&mut body, r.value.as_deref());
    put_varint(&mut body, r.headers.len() as i32);
    for (k, v) in &r.headers {
        put_opt(&mut body, Some(k.as_bytes()));
        put_opt(&mut body, v.as_deref());
    }
    put_varint(out, body.len() as i32);
    out.extend_from_slice(&body);
}

fn put_opt(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_batch_keeps_offsets_and_gaps() {
        for codec in [Codec::None, Codec::Zstd] {
            let mut b = BatchBuilder::new(1_000);
            for i in 0..5 {
                b.push(Record { key: Some(Bytes::from(vec![b'k', i])), value: Some(Bytes::from(vec![i])), ..Default::default() });
            }
            let mut bytes = b.build(codec).unwrap().to_vec();
            crate::batch::patch_offsets(&mut bytes, 100, 0);
            let view = BatchView::parse(&bytes).unwrap();
            let all = decode_batch(&view, 1 << 20).unwrap();
            let kept = vec![all[1].clone(), all[4].clone()];
            let rebuilt = rebuild_batch(&view, &kept).unwrap();
            let v = BatchView::parse(&rebuilt).unwrap();
            assert_eq!((v.base_offset(), v.last_offset(), v.record_count()), (100, 104, 2));
            assert_eq!(v.crc(), v.computed_crc());
            assert_eq!(decode_batch(&v, 1 << 20).unwrap(), kept);
        }
    }

    #[test]
    fn varints_round_trip() {
        for v in [0i64, 1, -1, 63, -64, 64, 300, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            assert_eq!(read_varlong(&out).unwrap(), (v, out.len()));
        }
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }

    #[test]
    fn builds_and_decodes_in_every_codec() {
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let mut b = BatchBuilder::new(5_000);
            b.push(Record { key: None, value: None, ..Default::default() });
            b.push(Record {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                timestamp: 6_000,
                headers: vec![("h".into(), Some(Bytes::from_static(b"x"))), ("n".into(), None)],
                ..Default::default()
            });
            let bytes = b.build(codec).unwrap();
            crate::batch::validate(&bytes, 1 << 20).unwrap();
            let view = BatchView::parse(&bytes).unwrap();
            let recs = decode_batch(&view, 1 << 20).unwrap();
            assert_eq!(recs.len(), 2);
            assert_eq!(recs[0].key, None);
            assert_eq!(recs[0].value, None);
            assert_eq!(recs[0].timestamp, 5_000);
            assert_eq!(recs[1].offset, 1);
            assert_eq!(recs[1].timestamp, 6_000);
            assert_eq!(recs[1].headers[1], ("n".to_string(), None));
        }
    }
}
