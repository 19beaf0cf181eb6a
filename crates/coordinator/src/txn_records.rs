//! Records of `__transaction_state`, in Kafka's layout.
//!
//! - Key (`TransactionLogKey` v0): i16 version 0, then the transactional id as an
//!   i16-length-prefixed string.
//! - Value (`TransactionLogValue`): i16 version, then producer id (i64), producer
//!   epoch (i16), transaction timeout (i32), state (i8, [`TxnState::byte`]), the
//!   partitions (nullable array of {topic, array of i32 partition ids}), the last
//!   update time and the start time (i64 ms each). Version 0 is the classic
//!   layout and what Strom writes; version 1 is the flexible one (compact strings
//!   and arrays, tagged fields: 0 = previous producer id, 1 = next producer id,
//!   2 = client transaction version), read so a log written by newer Kafka loads.
//! - A null value is a tombstone: the transactional id expired.
//!
//! Everything is big-endian; decoding checks every length against the bytes present.

use crate::txn::TxnState;

/// The decoded value of a transactional id's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    pub producer_id: i64,
    /// The producer id before the last rotation (v1 tagged field), or -1.
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partitions), topics in order.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

/// One record of `__transaction_state`; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub value: Option<TxnValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad __transaction_state record: {0}")]
pub struct TxnDecodeError(pub String);

impl TxnRecord {
    /// (key, value) bytes; the value in version 0.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut k = Vec::with_capacity(4 + self.transactional_id.len());
        k.extend_from_slice(&0i16.to_be_bytes());
        put_str(&mut k, &self.transactional_id);
        (k, self.value.as_ref().map(encode_value))
    }

    /// Decodes a record; `None` for keys of versions this coordinator does not know
    /// (skipped on replay, as Kafka does).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<TxnRecord>, TxnDecodeError> {
        let mut r = Reader(key);
        if r.i16()? != 0 {
            return Ok(None);
        }
        let transactional_id = r.string(false)?;
        let value = match value {
            None => None,
            Some(v) => Some(decode_value(v)?),
        };
        Ok(Some(TxnRecord { transactional_id, value }))
    }
}

fn encode_value(v: &TxnValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.to_be_bytes());
    out.extend_from_slice(&v.timeout_ms.to_be_bytes());
    out.push(v.state.byte() as u8);
    if v.state == TxnState::Empty && v.partitions.is_empty() {
        // Kafka writes a null partition list for an empty transaction.
        out.extend_from_slice(&(-1i32).to_be_bytes());
    } else {
        out.extend_from_slice(&(v.partitions.len() as i32).to_be_bytes());
        for (topic, parts) in &v.partitions {
            put_str(&mut out, topic);
            out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
            for p in parts {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&v.last_update_ms.to_be_bytes());
    out.extend_from_slice(&v.start_ms.to_be_bytes());
    out
}

fn decode_value(v: &[u8]) -> Result<TxnValue, TxnDecodeError> {
    let mut r = Reader(v);
    let version = r.i16()?;
    if !(0..=1).contains(&version) {
        return Err(TxnDecodeError(format!("transaction log value version {version}")));
    }
    let flexible = version >= 1;
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let byte = r.i8()?;
    let state = TxnState::from_byte(byte).ok_or_else(|| TxnDecodeError(format!("unknown transaction state {byte}")))?;
    let mut partitions = Vec::new();
    if let Some(n) = r.array_len(flexible)? {
        for _ in 0..n {
            let topic = r.string(flexible)?;
            let count = r.array_len(flexible)?.unwrap_or(0);
            let mut parts = Vec::with_capacity(count.min(r.0.len() / 4));
            for _ in 0..count {
                parts.push(r.i32()?);
            }
            if flexible {
                r.skip_tags()?;
            }
            partitions.push((topic, parts));
        }
    }
    let last_update_ms = r.i64()?;
    let start_ms = r.i64()?;
    let mut previous_producer_id = -1;
    if flexible {
        for (tag, mut field) in r.tags()? {
            if tag == 0 {
                previous_producer_id = field.i64()?;
            }
        }
    }
    Ok(TxnValue { producer_id, previous_producer_id, producer_epoch, timeout_ms, state, partitions, last_update_ms, start_ms })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TxnDecodeError> {
        if self.0.len() < n {
            return Err(TxnDecodeError(format!("need {n} bytes, have {}", self.0.len())));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i8(&mut self) -> Result<i8, TxnDecodeError> {
        Ok(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, TxnDecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, TxnDecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, TxnDecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(a))
    }
    fn uvarint(&mut self) -> Result<u64, TxnDecodeError> {
        let mut v = 0u64;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(TxnDecodeError("varint too long".into()))
    }
    /// An array's length (`None` when null): i32, or a compact uvarint (length + 1).
    fn array_len(&mut self, flexible: bool) -> Result<Option<usize>, TxnDecodeError> {
        let n = if flexible { self.uvarint()? as i64 - 1 } else { self.i32()? as i64 };
        if n < 0 {
            return Ok(None);
        }
        // Every element takes at least one byte: a count beyond the bytes left is corrupt.
        if n as usize > self.0.len() {
            return Err(TxnDecodeError(format!("array of {n} elements in {} bytes", self.0.len())));
        }
        Ok(Some(n as usize))
    }
    fn string(&mut self, flexible: bool) -> Result<String, TxnDecodeError> {
        let n = if flexible { self.uvarint()? as i64 - 1 } else { self.i16()? as i64 };
        if n < 0 {
            return Ok(String::new());
        }
        Ok(String::from_utf8_lossy(self.take(n as usize)?).into_owned())
    }
    /// The tagged fields of a flexible struct: (tag, its bytes).
    fn tags(&mut self) -> Result<Vec<(u64, Reader<'a>)>, TxnDecodeError> {
        let n = self.uvarint()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let tag = self.uvarint()?;
            let len = self.uvarint()? as usize;
            out.push((tag, Reader(self.take(len)?)));
        }
        Ok(out)
    }
    fn skip_tags(&mut self) -> Result<(), TxnDecodeError> {
        self.tags().map(drop)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.extend_from_slice(&(b.len() as i16).to_be_bytes());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(state: TxnState, partitions: Vec<(String, Vec<i32>)>) -> TxnValue {
        TxnValue {
            producer_id: 4000,
            previous_producer_id: -1,
            producer_epoch: 7,
            timeout_ms: 60_000,
            state,
            partitions,
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn records_round_trip() {
        let recs = vec![
            TxnRecord { transactional_id: "tx".into(), value: Some(value(TxnState::Empty, vec![])) },
            TxnRecord {
                transactional_id: "tx".into(),
                value: Some(value(TxnState::Ongoing, vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])])),
            },
            TxnRecord { transactional_id: "tx".into(), value: Some(value(TxnState::PrepareCommit, vec![("a".into(), vec![0])])) },
            TxnRecord { transactional_id: "tx".into(), value: None },
        ];
        for r in recs {
            let (k, v) = r.encode();
            assert_eq!(TxnRecord::decode(&k, v.as_deref()).unwrap(), Some(r));
        }
    }

    #[test]
    fn exact_v0_layout() {
        let r = TxnRecord { transactional_id: "t".into(), value: Some(value(TxnState::Ongoing, vec![("x".into(), vec![3])])) };
        let (k, v) = r.encode();
        assert_eq!(k, vec![0, 0, 0, 1, b't']);
        let v = v.unwrap();
        // version, pid, epoch, timeout, state
        assert_eq!(&v[..2], &[0, 0]);
        assert_eq!(&v[2..10], &4000i64.to_be_bytes());
        assert_eq!(&v[10..12], &7i16.to_be_bytes());
        assert_eq!(&v[12..16], &60_000i32.to_be_bytes());
        assert_eq!(v[16], 1);
        // one topic "x" with partition 3
        assert_eq!(&v[17..21], &1i32.to_be_bytes());
        assert_eq!(&v[21..24], &[0, 1, b'x']);
        assert_eq!(&v[24..28], &1i32.to_be_bytes());
        assert_eq!(&v[28..32], &3i32.to_be_bytes());
        assert_eq!(v.len(), 32 + 16);
    }

    #[test]
    fn flexible_v1_values_decode() {
        let mut v = Vec::new();
        v.extend_from_slice(&1i16.to_be_bytes());
        v.extend_from_slice(&9i64.to_be_bytes());
        v.extend_from_slice(&2i16.to_be_bytes());
        v.extend_from_slice(&1000i32.to_be_bytes());
        v.push(3); // PrepareAbort
        v.push(2); // one topic
        v.push(2); // "t"
        v.push(b't');
        v.push(3); // two partitions
        v.extend_from_slice(&0i32.to_be_bytes());
        v.extend_from_slice(&5i32.to_be_bytes());
        v.push(0); // topic tags
        v.extend_from_slice(&11i64.to_be_bytes());
        v.extend_from_slice(&10i64.to_be_bytes());
        v.push(1); // one tag
        v.push(0); // previous producer id
        v.push(8);
        v.extend_from_slice(&8i64.to_be_bytes());
        let d = decode_value(&v).unwrap();
        assert_eq!(d.state, TxnState::PrepareAbort);
        assert_eq!(d.partitions, vec![("t".to_string(), vec![0, 5])]);
        assert_eq!(d.previous_producer_id, 8);
        assert_eq!((d.last_update_ms, d.start_ms), (11, 10));
    }

    #[test]
    fn truncated_and_corrupt_values_are_errors() {
        let (k, v) =
            TxnRecord { transactional_id: "t".into(), value: Some(value(TxnState::Ongoing, vec![("x".into(), vec![3])])) }.encode();
        let v = v.unwrap();
        for n in 0..v.len() {
            assert!(TxnRecord::decode(&k, Some(&v[..n])).is_err(), "{n}");
        }
        let mut bad = v.clone();
        bad[16] = 42;
        assert!(TxnRecord::decode(&k, Some(&bad)).is_err());
        let mut huge = v;
        huge[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(TxnRecord::decode(&k, Some(&huge)).is_err());
        assert_eq!(TxnRecord::decode(&[0, 1, 0, 0], None).unwrap(), None);
    }
}
