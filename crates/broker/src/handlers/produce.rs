//! Produce (key 0): validate, append, and acknowledge per `acks`.
//!
//! Stage one (in request order on the connection): every partition's record set
//! is validated and appended on the leader; partitions fail independently.
//! Stage two: with acks=all the response waits until the appended offsets are
//! fsynced here (group commit shares one fsync between all waiters) and below the
//! partition's high watermark, that is, on every in-sync replica
//! ([`crate::partition::Partition::wait_replicated`]), until the request's
//! `timeout_ms`. acks=0 sends no response.
//!
//! Idempotent and transactional batches are checked against the partition's
//! producer state under its append lock (strom-storage): a retried duplicate is
//! answered with its original offsets and not stored again; gaps get
//! OUT_OF_ORDER_SEQUENCE_NUMBER and stale epochs INVALID_PRODUCER_EPOCH.
//!
//! NOT_LEADER_OR_FOLLOWER answers carry the current leader and its endpoint
//! from v10 (KIP-951), so clients skip a metadata round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse};
use strom_metadata::MetadataImage;
use strom_protocol::ErrorCode;
use strom_storage::StorageError;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::partition::{AppendError, NotDurable, Partition};
use crate::server::Broker;

struct Pending {
    topic: usize,
    partition: usize,
    part: Arc<Partition>,
    end: i64,
    /// The leader epoch of the append.
    epoch: i32,
    /// Wait for the in-sync replicas (acks=all), not just the local flush.
    replicated: bool,
}

pub fn storage_error_code(e: &StorageError) -> ErrorCode {
    match e {
        StorageError::Corrupt(_) => ErrorCode::CorruptMessage,
        StorageError::MessageTooLarge { .. } | StorageError::Inflated { .. } => ErrorCode::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        StorageError::InvalidRecord { .. } => ErrorCode::InvalidRecord,
        StorageError::InvalidTimestamp(_) => ErrorCode::InvalidTimestamp,
        StorageError::OutOfOrderSequence(_) => ErrorCode::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch(_) => ErrorCode::InvalidProducerEpoch,
        StorageError::InvalidTxnState(_) => ErrorCode::InvalidTxnState,
        StorageError::CoordinatorFenced(_) => ErrorCode::TransactionCoordinatorFenced,
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

/// KIP-890 part 1: what the transaction coordinator said about the
/// partitions a transactional batch would open a transaction on.
#[derive(Default)]
struct Verification {
    /// Whether appends are guarded (a transactional id, verification enabled).
    on: bool,
    /// Partitions the coordinator refused, with the code to answer.
    refused: HashMap<(String, i32), ErrorCode>,
    /// (producer id, epoch) confirmed per partition.
    verified: HashMap<(String, i32), Vec<(i64, i16)>>,
}

/// Before a transactional batch starts a transaction on a partition, its leader
/// asks the transaction coordinator whether the partition was added to that
/// transaction. Awaited before the appends, so the connection's requests stay
/// in order; the append re-checks under the partition lock
/// ([`Partition::append_leader_verified`]).
async fn verify(b: &Arc<Broker>, req: &ProduceRequest) -> Verification {
    let mut v = Verification::default();
    let Some(txn_id) = req.transactional_id.as_ref().map(|t| t.to_string()) else { return v };
    if !b.config.bool("transaction.partition.verification.enable") {
        return v;
    }
    v.on = true;
    let image = b.metadata.image();
    for topic in &req.topic_data {
        let Some(t) = (if topic.name.is_empty() { image.topic_by_id(&topic.topic_id) } else { image.topic(&topic.name) }) else { continue };
        for pd in &topic.partition_data {
            let Some(records) = pd.records.as_ref() else { continue };
            let Ok(part) = b.leader_partition(&image, &t.name, pd.index) else { continue };
            let Some((pid, epoch)) = part.log().needs_verification(records) else { continue };
            let key = (t.name.clone(), pd.index);
            match crate::txns::verify_partition(b, &txn_id, pid, epoch, &t.name, pd.index).await {
                Ok(()) => v.verified.entry(key).or_default().push((pid, epoch)),
                Err(code) => {
                    v.refused.insert(key, code);
                }
            }
        }
    }
    v
}

pub async fn handle(b: &Arc<Broker>, reply: &Reply, req: ProduceRequest) -> Outcome {
    let acks = req.acks;
    let timeout = Duration::from_millis(req.timeout_ms.clamp(0, 30 * 60 * 1000) as u64);
    let verification = verify(b, &req).await;
    let image = b.metadata.image();
    let mut leaders: Vec<i32> = Vec::new();
    let mut resp = ProduceResponse::default();
    let mut pending = Vec::new();
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
            let partition = match b.leader_partition(&image, &t.name, p) {
                Ok(l) => l,
                Err(code) => {
                    let mut r = part(p, code, None);
                    if code == ErrorCode::NotLeaderOrFollower && reply.version >= 10 {
                        hint_leader(&image, &t.name, &mut r, &mut leaders);
                    }
                    tr.partition_responses.push(r);
                    continue;
                }
            };
            let Some(records) = pd.records else {
                tr.partition_responses.push(part(p, ErrorCode::CorruptMessage, Some("no records".into())));
                continue;
            };
            let key = (t.name.clone(), p);
            if let Some(&code) = verification.refused.get(&key) {
                let msg = "the partition is not part of the producer's ongoing transaction".to_string();
                tr.partition_responses.push(part(p, code, Some(msg)));
                continue;
            }
            let verified = verification.on.then(|| verification.verified.get(&key).map(Vec::as_slice).unwrap_or(&[]));
            match partition.append_leader_verified(records, acks, verified) {
                Ok((info, epoch)) => {
                    let mut r = part(p, ErrorCode::None, None);
                    r.base_offset = info.base_offset;
                    r.log_start_offset = info.log_start_offset;
                    r.log_append_time_ms = info.log_append_time;
                    if acks == -1 || info.flush_due {
                        pending.push(Pending {
                            topic: ti,
                            partition: pi,
                            part: partition.clone(),
                            end: info.last_offset + 1,
                            epoch,
                            replicated: acks == -1,
                        });
                    }
                    tr.partition_responses.push(r);
                }
                Err(AppendError::Code(code)) => tr.partition_responses.push(part(p, code, None)),
                Err(AppendError::NotEnough(have, min_isr)) => {
                    let msg = format!("The size of the current ISR {have} is insufficient to satisfy the min.isr requirement of {min_isr}");
                    tr.partition_responses.push(part(p, ErrorCode::NotEnoughReplicas, Some(msg)));
                }
                Err(AppendError::Storage(e)) => {
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
    if reply.version >= 10 {
        resp.node_endpoints = endpoints(&image, &leaders);
    }
    if pending.is_empty() {
        return if acks == 0 { Outcome::Ready(None) } else { reply.ready(&resp) };
    }
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        // The partitions' flushes run at once (each is group-committed with other
        // requests' flushes of the same partition); the answer waits for all.
        let waits: Vec<_> = pending
            .iter()
            .map(|p| {
                let (part, end, epoch, replicated) = (p.part.clone(), p.end, p.epoch, p.replicated);
                tokio::spawn(async move {
                    let result = if replicated {
                        part.durable(end, epoch, timeout).await
                    } else {
                        part.log().flush_to(end).await.map_err(|e| {
                            tracing::error!(dir = %part.log().dir().display(), error = %e, "fsync failed");
                            NotDurable::Flush(e)
                        })
                    };
                    result.map_err(|e| match e {
                        NotDurable::Flush(e) => (ErrorCode::KafkaStorageError, Some(e.to_string())),
                        NotDurable::Replicate(code) => (code, None),
                    })
                })
            })
            .collect();
        for (p, wait) in pending.into_iter().zip(waits) {
            let result = wait.await.unwrap_or(Err((ErrorCode::KafkaStorageError, None)));
            if let Err((code, msg)) = result {
                if let Some(r) = resp.responses.get_mut(p.topic).and_then(|t| t.partition_responses.get_mut(p.partition)) {
                    *r = part(r.index, code, msg);
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

/// KIP-951: the partition's current leader in a NOT_LEADER_OR_FOLLOWER answer.
fn hint_leader(image: &MetadataImage, topic: &str, r: &mut PartitionProduceResponse, leaders: &mut Vec<i32>) {
    let Some(p) = image.partition(topic, r.index) else { return };
    if p.leader < 0 {
        return;
    }
    let mut l = LeaderIdAndEpoch::default();
    l.leader_id = BrokerId(p.leader);
    l.leader_epoch = p.leader_epoch;
    r.current_leader = l;
    if !leaders.contains(&p.leader) {
        leaders.push(p.leader);
    }
}

fn endpoints(image: &MetadataImage, leaders: &[i32]) -> Vec<NodeEndpoint> {
    leaders
        .iter()
        .filter_map(|id| image.brokers.get(id))
        .map(|br| {
            let mut e = NodeEndpoint::default();
            e.node_id = BrokerId(br.id);
            e.host = s(br.host.clone());
            e.port = br.port as i32;
            e.rack = br.rack.clone().map(s);
            e
        })
        .collect()
}
