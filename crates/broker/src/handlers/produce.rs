//! Produce (key 0): validate, append, and acknowledge per `acks`.
//!
//! Stage one (in request order on the connection): every partition's record set
//! is validated and appended; partitions fail independently. Stage two: with
//! acks=all the response waits until the appended offsets are fsynced (group
//! commit shares one fsync between all waiters). acks=0 sends no response.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use strom_protocol::ErrorCode;
use strom_storage::{Log, StorageError};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

struct Pending {
    topic: usize,
    partition: usize,
    log: Arc<Log>,
    end: i64,
}

pub fn storage_error_code(e: &StorageError) -> ErrorCode {
    match e {
        StorageError::Corrupt(_) => ErrorCode::CorruptMessage,
        StorageError::MessageTooLarge { .. } | StorageError::Inflated { .. } => ErrorCode::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::InvalidRecord { .. } => ErrorCode::InvalidRecord,
        StorageError::InvalidTimestamp(_) => ErrorCode::InvalidTimestamp,
        _ => ErrorCode::KafkaStorageError,
    }
}

fn part(index: i32, code: ErrorCode, msg: Option<String>) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.error_code = code.code();
    p.base_offset = -1;
    p.log_append_time_ms = -1;
    p.log_start_offset = -1;
    p.error_message = msg.map(s);
    p
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: ProduceRequest) -> Outcome {
    let acks = req.acks;
    let image = b.metadata.image();
    let mut resp = ProduceResponse::default();
    let mut pending = Vec::new();
    let mut appended = false;
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let t = if topic.name.is_empty() { image.topic_by_id(&topic.topic_id) } else { image.topic(&topic.name) };
        let mut tr = TopicProduceResponse::default();
        tr.name = topic.name.clone();
        tr.topic_id = topic.topic_id;
        for (pi, pd) in topic.partition_data.into_iter().enumerate() {
            let p = pd.index;
            if !matches!(acks, -1..=1) {
                tr.partition_responses.push(part(p, ErrorCode::InvalidRequiredAcks, None));
                continue;
            }
            let Some(t) = t else {
                let code = if topic.name.is_empty() { ErrorCode::UnknownTopicId } else { ErrorCode::UnknownTopicOrPartition };
                tr.partition_responses.push(part(p, code, None));
                continue;
            };
            let log = match b.leader_log(&image, &t.name, p) {
                Ok(l) => l,
                Err(code) => {
                    tr.partition_responses.push(part(p, code, None));
                    continue;
                }
            };
            if acks == -1 {
                let min_isr = b.config.topic_value(&t.configs, "min.insync.replicas").and_then(|(v, _)| v.parse::<i64>().ok()).unwrap_or(1);
                if min_isr > 1 {
                    let msg = format!("The size of the current ISR 1 is insufficient to satisfy the min.isr requirement of {min_isr}");
                    tr.partition_responses.push(part(p, ErrorCode::NotEnoughReplicas, Some(msg)));
                    continue;
                }
            }
            let Some(records) = pd.records else {
                tr.partition_responses.push(part(p, ErrorCode::CorruptMessage, Some("no records".into())));
                continue;
            };
            match log.append(records) {
                Ok(info) => {
                    appended = true;
                    let mut r = part(p, ErrorCode::None, None);
                    r.base_offset = info.base_offset;
                    r.log_start_offset = info.log_start_offset;
                    r.log_append_time_ms = info.log_append_time;
                    if acks == -1 || info.flush_due {
                        pending.push(Pending { topic: ti, partition: pi, log: log.clone(), end: info.last_offset + 1 });
                    }
                    tr.partition_responses.push(r);
                }
                Err(e) => {
                    let code = storage_error_code(&e);
                    if code == ErrorCode::KafkaStorageError {
                        tracing::error!(topic = %t.name, partition = p, error = %e, "append failed");
                    }
                    let mut r = part(p, code, Some(e.to_string()));
                    // v8+: name the offending records so clients fail only those.
                    if let (StorageError::InvalidRecord { message, records }, true) = (&e, reply.version >= 8) {
                        r.record_errors = records
                            .iter()
                            .map(|&i| {
                                let mut x = BatchIndexAndErrorMessage::default();
                                x.batch_index = i;
                                x.batch_index_error_message = Some(s(message.clone()));
                                x
                            })
                            .collect();
                    }
                    tr.partition_responses.push(r);
                }
            }
        }
        resp.responses.push(tr);
    }
    if appended {
        b.appended.send_modify(|v| *v = v.wrapping_add(1));
    }
    if pending.is_empty() {
        return if acks == 0 { Outcome::Ready(None) } else { reply.ready(&resp) };
    }
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        // The partitions' flushes run at once (each is group-committed with other
        // requests' flushes of the same partition); the answer waits for all.
        let flushes: Vec<_> = pending
            .iter()
            .map(|p| {
                let (log, end) = (p.log.clone(), p.end);
                tokio::spawn(async move { log.flush_to(end).await })
            })
            .collect();
        for (p, flush) in pending.into_iter().zip(flushes) {
            let result = flush.await.unwrap_or(Err(StorageError::Offline));
            if let Err(e) = result {
                tracing::error!(dir = %p.log.dir().display(), error = %e, "fsync failed");
                if let Some(r) = resp.responses.get_mut(p.topic).and_then(|t| t.partition_responses.get_mut(p.partition)) {
                    *r = part(r.index, ErrorCode::KafkaStorageError, Some(e.to_string()));
                }
            }
        }
        if acks == 0 {
            None
        } else {
            reply.encode(&resp)
        }
    }))
}
