//! InitProducerId (key 22): hands out producer ids for idempotent producers.
//!
//! Ids come from blocks of 1000 that the controller reserves in the metadata log
//! (AllocateProducerIds), so two brokers, or two runs of one, never hand out the same id. Transactional ids need the transaction coordinator, which Strom does
//! not have yet; they get COORDINATOR_NOT_AVAILABLE.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strom_protocol::ErrorCode;

use crate::controller::service::Reply;
use crate::controller::{Answer, Request};
use crate::dispatch::Outcome;
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &crate::dispatch::Reply, req: InitProducerIdRequest) -> Outcome {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if req.transactional_id.is_some() {
        resp.error_code = ErrorCode::CoordinatorNotAvailable.code();
        return reply.ready(&resp);
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

/// The next id of this broker's block; a new block from the controller when it runs out.
async fn allocate(b: &Broker) -> Result<i64, ErrorCode> {
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
