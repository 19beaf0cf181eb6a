//! AddPartitionsToTxn (key 24): puts partitions into a producer's ongoing
//! transaction, answered once the transaction's record is durable.
//!
//! - v0-v3 (clients): one transaction. Partitions of unknown topics get
//!   UNKNOWN_TOPIC_OR_PARTITION and then the others OPERATION_NOT_ATTEMPTED, as
//!   Kafka does; otherwise every partition gets the coordinator's answer.
//! - v4+ (brokers): a batch of transactions. `verify_only` asks whether each
//!   partition is in the ongoing transaction already, writing nothing: partition
//!   leaders use it before appending a transactional batch (KIP-890 part 1).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName, TransactionalId};
use strom_coordinator::txn::TxnAnswer;
use strom_protocol::ErrorCode;

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

/// Kafka's OPERATION_NOT_ATTEMPTED: another partition of the request failed.
const OPERATION_NOT_ATTEMPTED: i16 = 55;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: AddPartitionsToTxnRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut resp = AddPartitionsToTxnResponse::default();
        if reply.version < 4 {
            let id = req.v3_and_below_transactional_id.to_string();
            let codes = add(&b, &id, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch, &req.v3_and_below_topics).await;
            let codes = codes.into_iter().map(|(tp, c)| (tp, fenced_for(c, reply.version))).collect();
            resp.results_by_topic_v3_and_below = topic_results(codes);
        } else {
            for tx in &req.transactions {
                let id = tx.transactional_id.to_string();
                let codes = if tx.verify_only {
                    let parts = flatten(&tx.topics);
                    let codes = b.txns.lock().verify(&id, tx.producer_id.0, tx.producer_epoch, &parts);
                    parts.into_iter().zip(codes).collect()
                } else {
                    add(&b, &id, tx.producer_id.0, tx.producer_epoch, &tx.topics).await
                };
                let mut r = AddPartitionsToTxnResult::default();
                r.transactional_id = TransactionalId(super::s(id));
                r.topic_results = topic_results(codes);
                resp.results_by_transaction.push(r);
            }
        }
        reply.encode(&resp)
    }))
}

/// Adds the partitions through the coordinator: each partition's code.
async fn add(b: &Arc<Broker>, id: &str, producer_id: i64, epoch: i16, topics: &[AddPartitionsToTxnTopic]) -> Vec<((String, i32), i16)> {
    let parts = flatten(topics);
    let image = b.metadata.image();
    let unknown: Vec<bool> = parts.iter().map(|(t, p)| image.partition(t, *p).is_none()).collect();
    if unknown.iter().any(|u| *u) {
        let code = |u: bool| if u { ErrorCode::UnknownTopicOrPartition.code() } else { OPERATION_NOT_ATTEMPTED };
        return parts.into_iter().zip(unknown).map(|(tp, u)| (tp, code(u))).collect();
    }
    let answer = b.txns.call(b, |c, token, now| c.add_partitions(id, producer_id, epoch, &parts, token, now)).await;
    let code = match answer {
        TxnAnswer::Code(c) => c,
        _ => ErrorCode::UnknownServerError.code(),
    };
    parts.into_iter().map(|tp| (tp, code)).collect()
}

/// PRODUCER_FENCED is new in v2; older clients know it as INVALID_PRODUCER_EPOCH.
pub(crate) fn fenced_for(code: i16, version: i16) -> i16 {
    if code == ErrorCode::ProducerFenced.code() && version < 2 {
        ErrorCode::InvalidProducerEpoch.code()
    } else {
        code
    }
}

fn flatten(topics: &[AddPartitionsToTxnTopic]) -> Vec<(String, i32)> {
    topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), *p))).collect()
}

/// Per-topic results in the order the partitions came.
fn topic_results(codes: Vec<((String, i32), i16)>) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), code) in codes {
        if out.last().is_none_or(|t| t.name.as_str() != topic) {
            let mut t = AddPartitionsToTxnTopicResult::default();
            t.name = TopicName(super::s(topic));
            out.push(t);
        }
        let mut r = AddPartitionsToTxnPartitionResult::default();
        r.partition_index = p;
        r.partition_error_code = code;
        if let Some(t) = out.last_mut() {
            t.results_by_partition.push(r);
        }
    }
    out
}
