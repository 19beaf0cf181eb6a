//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest
//! local (-4) and by timestamp (>= 0, through the time index).
//!
//! Answers are limited to what consumers see: the high watermark, or the last
//! stable offset for `isolation_level` 1 (read_committed, v2+). Latest is that
//! limit, and a lookup that lands at or past it finds nothing. The
//! leader epoch returned is the one the offset was written in.
//!
//! For a timestamp the answer is the first record whose timestamp is at or after
//! it. The time index finds the batch; that one batch is decoded to find the
//! record, so lookups are exact even inside compressed batches.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use strom_protocol::batch::BatchView;
use strom_protocol::records::decode_batch;
use strom_protocol::ErrorCode;
use strom_storage::Log;

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

const EARLIEST: i64 = -2;
const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: ListOffsetsRequest) -> Outcome {
    let image = b.metadata.image();
    let mut resp = ListOffsetsResponse::default();
    let committed = reply.version >= 2 && req.isolation_level == 1;
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        let topic = image.topic(&t.name);
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            pr.leader_epoch = -1;
            let _ = topic;
            let part = b.leader_partition(&image, &t.name, p.partition_index).and_then(|part| {
                part.check_epoch(if reply.version >= 4 { p.current_leader_epoch } else { -1 })?;
                Ok(part)
            });
            match part {
                Err(code) => pr.error_code = code.code(),
                Ok(part) => match lookup(&part.log(), p.timestamp, committed) {
                    Ok(Some((offset, ts))) => {
                        pr.offset = offset;
                        pr.timestamp = ts;
                        // The field exists from v4; the codec refuses it earlier.
                        if reply.version >= 4 {
                            pr.leader_epoch = epoch_at(&part.log(), offset);
                        }
                    }
                    Ok(None) => {}
                    Err(code) => pr.error_code = code.code(),
                },
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    reply.ready(&resp)
}

/// The leader epoch `offset` was written in (the latest one at the log end), -1 if unknown.
fn epoch_at(log: &Log, offset: i64) -> i32 {
    log.epoch_entries().iter().rev().find(|(_, start)| *start <= offset).map(|(e, _)| *e).unwrap_or(-1)
}

fn lookup(log: &Log, ts: i64, committed: bool) -> Result<Option<(i64, i64)>, ErrorCode> {
    let limit = if committed { log.last_stable_offset() } else { log.high_watermark() };
    if matches!(ts, LATEST | LATEST_TIERED) {
        return Ok(Some((limit, -1)));
    }
    let found = lookup_any(log, ts)?;
    Ok(match (ts, found) {
        (EARLIEST | EARLIEST_LOCAL, f) => f,
        (_, Some((offset, _))) if offset >= limit => None,
        (_, f) => f,
    })
}

fn lookup_any(log: &Log, ts: i64) -> Result<Option<(i64, i64)>, ErrorCode> {
    match ts {
        EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
        LATEST | LATEST_TIERED => Ok(Some((log.high_watermark(), -1))),
        MAX_TIMESTAMP => {
            let batch = log.max_timestamp_batch().map_err(|_| ErrorCode::KafkaStorageError)?;
            Ok(batch.and_then(|b| first_record_at_or_after(&b, None)))
        }
        t if t >= 0 => {
            let batch = log.find_by_timestamp(t).map_err(|_| ErrorCode::KafkaStorageError)?;
            Ok(batch.and_then(|b| first_record_at_or_after(&b, Some(t))))
        }
        _ => Err(ErrorCode::InvalidRequest),
    }
}

/// With `Some(t)`: the first record with timestamp >= t. With `None`: the first
/// record carrying the batch's max timestamp.
fn first_record_at_or_after(batch: &[u8], t: Option<i64>) -> Option<(i64, i64)> {
    let view = BatchView::parse(batch).ok()?;
    let target = t.unwrap_or(view.max_timestamp());
    match decode_batch(&view, 64 << 20) {
        Ok(records) => records.iter().find(|r| r.timestamp >= target).map(|r| (r.offset, r.timestamp)),
        // Undecodable batch: fall back to batch granularity.
        Err(_) => Some((view.base_offset(), view.max_timestamp())),
    }
}
