//! TxnOffsetCommit (key 28): a transactional producer commits a consumer
//! group's offsets inside its transaction (`sendOffsetsToTransaction`).
//!
//! The group coordinator writes them to the group's `__consumer_offsets`
//! partition as one transactional batch of the producer and answers once it is
//! durable and replicated. They stay pending, invisible to OffsetFetch, until
//! the transaction's marker reaches that partition (`GroupManager::complete_txn`).
//! Unknown topics get UNKNOWN_TOPIC_OR_PARTITION; member fields (v3+) are
//! checked as OffsetCommit's are; a failed write answers Kafka's mapping of the
//! append error, with producer errors (a fenced epoch) passed through.
//!
//! KIP-890 part 1: when the producer has no transaction under way on that
//! `__consumer_offsets` partition yet, the transaction coordinator must confirm
//! that AddOffsetsToTxn put the partition in the ongoing transaction before the
//! batch is appended (`transaction.partition.verification.enable`), as for
//! Produce.

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use strom_coordinator::errors::{commit_error, COORDINATOR_NOT_AVAILABLE, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use strom_coordinator::group::{CommitEntry, TxnCommitRequest};
use strom_protocol::compression::Codec;
use strom_protocol::records::{BatchBuilder, Record};
use strom_protocol::ErrorCode;

use crate::dispatch::{Outcome, Reply};
use crate::groups::OFFSETS_TOPIC;
use crate::server::Broker;

/// Where each partition of the request stands: (topic index, partition, index of
/// its entry in the coordinator's request, or `None` for an unknown topic).
type Shape = Vec<(usize, i32, Option<usize>)>;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: TxnOffsetCommitRequest) -> Outcome {
    let (entries, shape) = entries(b, reply.version, &req);
    let names: Vec<TopicName> = req.topics.iter().map(|t| t.name.clone()).collect();
    let commit = TxnCommitRequest {
        group_id: req.group_id.to_string(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        // v0-2 have no member fields: their defaults mean "no member check".
        generation: if reply.version >= 3 { req.generation_id } else { -1 },
        member_id: if reply.version >= 3 { req.member_id.to_string() } else { String::new() },
        group_instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        offsets: entries,
    };
    let transactional_id = req.transactional_id.to_string();
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let refused = match commit.producer_id {
            pid if pid < 0 => ErrorCode::InvalidProducerIdMapping.code(),
            pid => verify(&b, &transactional_id, &commit.group_id, pid, commit.producer_epoch).await,
        };
        let (codes, written) = if refused != NONE {
            (vec![NONE; commit.offsets.len()], refused)
        } else {
            let now = strom_storage::now_ms();
            let (codes, pending) = b.groups.step(|c| c.txn_commit(commit, now));
            (codes, b.groups.finish(pending).await)
        };
        let failed = txn_commit_error(written, reply.version);
        let mut resp = TxnOffsetCommitResponse::default();
        resp.topics = names
            .into_iter()
            .map(|n| {
                let mut t = TxnOffsetCommitResponseTopic::default();
                t.name = n;
                t
            })
            .collect();
        for (ti, partition, idx) in shape {
            let mut p = TxnOffsetCommitResponsePartition::default();
            p.partition_index = partition;
            p.error_code = match idx {
                None => UNKNOWN_TOPIC_OR_PARTITION,
                Some(i) => match codes.get(i).copied().unwrap_or(COORDINATOR_NOT_AVAILABLE) {
                    NONE => failed,
                    code => code,
                },
            };
            if let Some(t) = resp.topics.get_mut(ti) {
                t.partitions.push(p);
            }
        }
        reply.encode(&resp)
    }))
}

/// KIP-890 part 1 for the group's `__consumer_offsets` partition: NONE when the
/// producer already has a transaction under way there (or verification is
/// off, or this broker has no such partition: the coordinator answers then),
/// else the transaction coordinator's verdict.
async fn verify(b: &Arc<Broker>, transactional_id: &str, group: &str, producer_id: i64, producer_epoch: i16) -> i16 {
    if !b.config.bool("transaction.partition.verification.enable") {
        return NONE;
    }
    if b.groups.lock().check(group) != NONE {
        return NONE; // the coordinator step answers NOT_COORDINATOR or loading
    }
    let partition = b.groups.partition_for(group);
    let Some(part) = b.replicas.get(OFFSETS_TOPIC, partition) else {
        return NONE;
    };
    // The log decides from a batch header whether this producer's batch would
    // start a transaction on the partition: ask it with an empty probe.
    let mut probe = BatchBuilder::new(0).producer(producer_id, producer_epoch, -1).transactional(true);
    probe.push(Record::default());
    let Ok(probe) = probe.build(Codec::None) else {
        return NONE;
    };
    if part.log().needs_verification(&probe).is_none() {
        return NONE;
    }
    match crate::txns::verify_partition(b, transactional_id, producer_id, producer_epoch, OFFSETS_TOPIC, partition).await {
        Ok(()) => NONE,
        Err(code) => code.code(),
    }
}

/// The coordinator's entries for the partitions of known topics, and the shape
/// of the answer.
fn entries(b: &Broker, version: i16, req: &TxnOffsetCommitRequest) -> (Vec<CommitEntry>, Shape) {
    let image = b.metadata.image();
    let mut entries = Vec::new();
    let mut shape = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = image.topic(&t.name);
        for p in &t.partitions {
            if !topic.is_some_and(|tp| tp.partitions.contains_key(&p.partition_index)) {
                shape.push((ti, p.partition_index, None));
                continue;
            }
            shape.push((ti, p.partition_index, Some(entries.len())));
            let epoch = if version >= 2 { p.committed_leader_epoch } else { -1 };
            let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
            entries.push((t.name.to_string(), p.partition_index, p.committed_offset, epoch, metadata));
        }
    }
    (entries, shape)
}

/// The answer for a TxnOffsetCommit whose write failed: OffsetCommit's mapping,
/// except that the producer's own errors reach it (Kafka passes them through).
/// Clients before v4 do not know TRANSACTION_ABORTABLE and get
/// INVALID_TXN_STATE; PRODUCER_FENCED is INVALID_PRODUCER_EPOCH, as Kafka's
/// verification answers producers.
fn txn_commit_error(append_error: i16, version: i16) -> i16 {
    let producer_errors = [
        ErrorCode::InvalidProducerEpoch,
        ErrorCode::InvalidTxnState,
        ErrorCode::InvalidProducerIdMapping,
        ErrorCode::OutOfOrderSequenceNumber,
        ErrorCode::TransactionCoordinatorFenced,
    ];
    if append_error == ErrorCode::ProducerFenced.code() {
        return ErrorCode::InvalidProducerEpoch.code();
    }
    if append_error == ErrorCode::TransactionAbortable.code() {
        return if version >= 4 { append_error } else { ErrorCode::InvalidTxnState.code() };
    }
    if producer_errors.iter().any(|c| c.code() == append_error) {
        return append_error;
    }
    commit_error(append_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_errors_pass_through_and_storage_errors_map() {
        let epoch = ErrorCode::InvalidProducerEpoch.code();
        assert_eq!(txn_commit_error(NONE, 4), NONE);
        assert_eq!(txn_commit_error(epoch, 3), epoch);
        assert_eq!(txn_commit_error(ErrorCode::ProducerFenced.code(), 4), epoch);
        assert_eq!(txn_commit_error(ErrorCode::TransactionAbortable.code(), 3), ErrorCode::InvalidTxnState.code());
        assert_eq!(txn_commit_error(ErrorCode::TransactionAbortable.code(), 4), ErrorCode::TransactionAbortable.code());
        assert_eq!(txn_commit_error(ErrorCode::KafkaStorageError.code(), 4), ErrorCode::NotCoordinator.code());
        assert_eq!(txn_commit_error(ErrorCode::MessageTooLarge.code(), 4), strom_coordinator::errors::INVALID_COMMIT_OFFSET_SIZE);
    }
}
