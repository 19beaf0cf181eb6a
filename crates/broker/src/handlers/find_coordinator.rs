//! FindCoordinator (key 10): this node coordinates every group. v4+ batches keys.
//! The first group lookup creates `__consumer_offsets`, as in Kafka. Transaction
//! coordinators do not exist yet: key type 1 gets COORDINATOR_NOT_AVAILABLE.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::groups::ensure_offsets_topic;
use crate::server::Broker;

const GROUP: i8 = 0;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: FindCoordinatorRequest) -> Outcome {
    let available = req.key_type == GROUP && ensure_offsets_topic(b);
    let code = if available { ErrorCode::None } else { ErrorCode::CoordinatorNotAvailable };
    let (host, port) = (b.advertised.0.clone(), b.advertised.1 as i32);
    let mut resp = FindCoordinatorResponse::default();
    if reply.version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let mut c = Coordinator::default();
                c.key = k.clone();
                c.error_code = code.code();
                if available {
                    c.node_id = BrokerId(b.node_id);
                    c.host = s(host.clone());
                    c.port = port;
                } else {
                    c.node_id = BrokerId(-1);
                    c.error_message = Some(s("The coordinator is not available."));
                }
                c
            })
            .collect();
    } else {
        resp.error_code = code.code();
        if available {
            resp.node_id = BrokerId(b.node_id);
            resp.host = s(host);
            resp.port = port;
        } else {
            resp.node_id = BrokerId(-1);
            if reply.version >= 1 {
                resp.error_message = Some(s("The coordinator is not available."));
            }
        }
    }
    reply.ready(&resp)
}
