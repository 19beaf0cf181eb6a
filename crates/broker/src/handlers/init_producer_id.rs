//! InitProducerId (key 22): hands out producer ids.
//!
//! - Idempotent producers (no transactional id): ids come from blocks of 1000
//!   that the controller reserves in the metadata log (AllocateProducerIds), so
//!   two brokers, or two runs of one, never hand out the same id.
//! - Transactional producers: the transaction coordinator (`txns.rs`) keeps one
//!   producer id per transactional id and bumps its epoch on every call, which
//!   fences zombies; an ongoing transaction is aborted first
//!   (CONCURRENT_TRANSACTIONS, the client retries). v3+ clients may name the id
//!   and epoch they had (KIP-360) to recover without losing their id.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strom_coordinator::txn::{InitPidRequest, TxnAnswer};
use strom_protocol::ErrorCode;

use crate::controller::service::Reply;
use crate::controller::{Answer, Request};
use crate::dispatch::Outcome;
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &crate::dispatch::Reply, req: InitProducerIdRequest) -> Outcome {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(id) = &req.transactional_id {
        return transactional(b, reply, id.to_string(), &req, resp);
    }
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        match allocate(&b).await {
            Ok(id) => {
                resp.producer_id = ProducerId(id);
                resp.producer_epoch = 0;
            }
            Err(code) => resp.error_code = code.code(),
        }
        reply.encode(&resp)
    }))
}

/// The transactional branch: the coordinator of `transactional_id` answers.
fn transactional(
    b: &Arc<Broker>,
    reply: &crate::dispatch::Reply,
    transactional_id: String,
    req: &InitProducerIdRequest,
    mut resp: InitProducerIdResponse,
) -> Outcome {
    // Kafka: both or neither of producer id and epoch.
    let expected = match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => None,
        (-1, _) | (_, -1) => {
            resp.error_code = ErrorCode::InvalidRequest.code();
            return reply.ready(&resp);
        }
        (pid, epoch) => Some((pid, epoch)),
    };
    let r = InitPidRequest { transactional_id, timeout_ms: req.transaction_timeout_ms, expected };
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        if !b.ensure_txn_topic().await {
            resp.error_code = ErrorCode::CoordinatorNotAvailable.code();
            return reply.encode(&resp);
        }
        match b.txns.init_producer_id(&b, r).await {
            TxnAnswer::InitProducerId { error, producer_id, producer_epoch } => {
                // PRODUCER_FENCED is new in v4; older clients know it as INVALID_PRODUCER_EPOCH.
                resp.error_code = if error == ErrorCode::ProducerFenced.code() && reply.version < 4 {
                    ErrorCode::InvalidProducerEpoch.code()
                } else {
                    error
                };
                resp.producer_id = ProducerId(producer_id);
                resp.producer_epoch = producer_epoch;
            }
            _ => resp.error_code = ErrorCode::UnknownServerError.code(),
        }
        reply.encode(&resp)
    }))
}

/// The next id of this broker's block; a new block from the controller when it runs out.
pub(crate) async fn allocate(b: &Broker) -> Result<i64, ErrorCode> {
    let mut block = b.producer_ids.lock().await;
    if block.0 >= block.1 {
        let req = Request::AllocateProducerIds { id: b.node_id, epoch: b.lifecycle.epoch() };
        match b.controller.call(req, b.controller.request_timeout).await {
            Ok(Reply { answer: Answer::ProducerIds(Ok((start, len))), .. }) => *block = (start, start + len),
            Ok(Reply { answer: Answer::ProducerIds(Err(f)), .. }) => {
                tracing::warn!(error = %f.message, "no producer id block");
                return Err(ErrorCode::CoordinatorLoadInProgress);
            }
            Ok(_) => return Err(ErrorCode::UnknownServerError),
            Err(f) => {
                return Err(if f.error_code() == ErrorCode::RequestTimedOut {
                    ErrorCode::RequestTimedOut
                } else {
                    ErrorCode::CoordinatorNotAvailable
                })
            }
        }
    }
    let id = block.0;
    block.0 += 1;
    Ok(id)
}
