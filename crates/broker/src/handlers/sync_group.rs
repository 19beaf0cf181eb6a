//! SyncGroup (key 14). Followers wait for the leader's assignment.

use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use strom_coordinator::errors::COORDINATOR_NOT_AVAILABLE;
use strom_coordinator::group::{SyncRequest, SyncResponse};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: SyncGroupRequest) -> Outcome {
    let v = reply.version;
    let sync = SyncRequest {
        group_id: req.group_id.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        protocol_type: req.protocol_type.as_ref().map(|p| p.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|p| p.to_string()),
        assignments: req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect(),
    };
    // The state change happens now, in request order; only the wait is deferred.
    // The leader's assignment is answered (to every member) once its record is
    // durable, or with the write's error.
    let (token, rx) = b.groups.sync_token();
    let now = strom_storage::now_ms();
    let _ = b.groups.step(|c| ((), c.sync(sync, token, now)));
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        let r = rx.await.unwrap_or(SyncResponse { error: COORDINATOR_NOT_AVAILABLE, ..Default::default() });
        let mut resp = SyncGroupResponse::default();
        resp.error_code = r.error;
        resp.assignment = r.assignment;
        if v >= 5 {
            resp.protocol_type = r.protocol_type.map(s);
            resp.protocol_name = r.protocol_name.map(s);
        }
        reply.encode(&resp)
    }))
}
