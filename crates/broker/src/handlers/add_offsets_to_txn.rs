//! AddOffsetsToTxn (key 25): puts the group's `__consumer_offsets` partition into
//! the producer's transaction, so the offsets it commits with TxnOffsetCommit get
//! the transaction's marker. Answered once the transaction's record is durable.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use strom_coordinator::txn::TxnAnswer;
use strom_protocol::ErrorCode;

use super::add_partitions_to_txn::fenced_for;
use crate::dispatch::{Outcome, Reply};
use crate::groups::OFFSETS_TOPIC;
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: AddOffsetsToTxnRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut resp = AddOffsetsToTxnResponse::default();
        // The group's offsets partition must exist before a transaction can name it.
        if !b.ensure_offsets_topic().await {
            resp.error_code = ErrorCode::CoordinatorNotAvailable.code();
            return reply.encode(&resp);
        }
        let id = req.transactional_id.to_string();
        let parts = [(OFFSETS_TOPIC.to_string(), b.groups.partition_for(&req.group_id))];
        let answer =
            b.txns.call(&b, |c, token, now| c.add_partitions(&id, req.producer_id.0, req.producer_epoch, &parts, token, now)).await;
        resp.error_code = match answer {
            TxnAnswer::Code(c) => fenced_for(c, reply.version),
            _ => ErrorCode::UnknownServerError.code(),
        };
        reply.encode(&resp)
    }))
}
