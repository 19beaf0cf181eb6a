//! InitProducerId (key 22): hands out producer ids for idempotent producers.
//!
//! Ids come from blocks reserved in the metadata log, so they never repeat across
//! restarts. Transactional ids need the transaction coordinator, which Strom does
//! not have yet; they get COORDINATOR_NOT_AVAILABLE.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strom_metadata::MetadataRecord;
use strom_protocol::ErrorCode;

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

const BLOCK: i64 = 1000;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: InitProducerIdRequest) -> Outcome {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if req.transactional_id.is_some() {
        resp.error_code = ErrorCode::CoordinatorNotAvailable.code();
        return reply.ready(&resp);
    }
    match allocate(b) {
        Ok(id) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(code) => resp.error_code = code.code(),
    }
    reply.ready(&resp)
}

fn allocate(b: &Broker) -> Result<i64, ErrorCode> {
    let mut next = b.producer_ids.lock().unwrap_or_else(|p| p.into_inner());
    let reserved = b.metadata.image().next_producer_id;
    if *next >= reserved {
        b.metadata.commit(vec![MetadataRecord::ProducerIds { next: *next + BLOCK }]).map_err(|_| ErrorCode::KafkaStorageError)?;
    }
    let id = *next;
    *next += 1;
    Ok(id)
}
