//! A coordinator's partition (`__consumer_offsets`, `__transaction_state`):
//! its writes as batches, and reading it back when this node starts
//! coordinating it.

use bytes::Bytes;
use strom_protocol::batch::{BatchIter, BatchView};
use strom_protocol::compression::{Codec, CompressionError};
use strom_protocol::records::{decode_batch, BatchBuilder, Record};
use strom_storage::Log;

/// Bytes read from the log per step of a load.
pub const LOAD_CHUNK: usize = 1 << 20;

/// Reads about [`LOAD_CHUNK`] bytes of batches from `offset` and hands each
/// decodable one to `f` with its records; returns the offset to read next
/// (`offset` itself when nothing could be read). Blocking disk reads.
pub fn read_chunk(log: &Log, topic: &str, partition: i32, mut offset: i64, mut f: impl FnMut(&BatchView<'_>, Vec<Record>)) -> i64 {
    let read = match log.read(offset, LOAD_CHUNK) {
        Ok(r) if !r.records.is_empty() => r,
        Ok(_) => return offset,
        Err(e) => {
            tracing::error!(topic, partition, offset, error = %e, "cannot read a coordinator partition");
            return offset;
        }
    };
    for batch in BatchIter::new(&read.records) {
        let Ok(batch) = batch else { break };
        offset = batch.last_offset() + 1;
        if let Ok(records) = decode_batch(&batch, 64 << 20) {
            f(&batch, records);
        }
    }
    offset
}

/// One coordinator write as one uncompressed batch of (key, value) records,
/// stamped `now`; with `producer`, a transactional batch of that producer id and
/// epoch without sequence numbers (a TxnOffsetCommit).
pub fn write_batch(
    records: impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    producer: Option<(i64, i16)>,
    now: i64,
) -> Result<Bytes, CompressionError> {
    let mut builder = match producer {
        Some((id, epoch)) => BatchBuilder::new(now).producer(id, epoch, -1).transactional(true),
        None => BatchBuilder::new(now),
    };
    for (k, v) in records {
        builder.push(Record { key: Some(Bytes::from(k)), value: v.map(Bytes::from), timestamp: now, ..Default::default() });
    }
    builder.build(Codec::None)
}
