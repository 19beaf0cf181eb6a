//! EndTxn (key 26): commits or aborts the producer's transaction. The answer
//! comes once PrepareCommit/PrepareAbort is durable; the markers are written to
//! the transaction's partitions after that, and the transaction completes when
//! every one is in. A retry after completion with the same result is NONE, with
//! the other result INVALID_TXN_STATE.
//!
//! Advertised up to v4: v5 is KIP-890 part 2 (an epoch bump on every EndTxn),
//! which Strom does not implement.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use strom_coordinator::txn::TxnAnswer;
use strom_protocol::ErrorCode;

use super::add_partitions_to_txn::fenced_for;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: EndTxnRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut resp = EndTxnResponse::default();
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
        let id = req.transactional_id.to_string();
        let (pid, epoch, commit) = (req.producer_id.0, req.producer_epoch, req.committed);
        let answer = b.txns.call(&b, |c, token, now| c.end_txn(&id, pid, epoch, commit, token, now)).await;
        resp.error_code = match answer {
            TxnAnswer::Code(c) => fenced_for(c, reply.version),
            _ => ErrorCode::UnknownServerError.code(),
        };
        reply.encode(&resp)
    }))
}
