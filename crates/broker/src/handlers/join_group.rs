//! JoinGroup (key 11). The answer waits until the rebalance completes.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use strom_coordinator::errors::COORDINATOR_NOT_AVAILABLE;
use strom_coordinator::group::JoinRequest;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: JoinGroupRequest) -> Outcome {
    let v = reply.version;
    let join = JoinRequest {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if v >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect(),
        client_id: reply.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", reply.peer.ip()),
        require_known_member_id: v >= 4,
    };
    // The state change happens now, in request order; only the wait is deferred.
    // The coordinator answers the token when the rebalance completes (or, for a
    // static member's rejoin, when its new member id is durable); a group this
    // broker does not coordinate answers NOT_COORDINATOR at once.
    let (token, rx) = b.groups.join_token();
    let now = strom_storage::now_ms();
    let _ = b.groups.step(|c| ((), c.join(join, token, now)));
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        let r = rx.await.unwrap_or_else(|_| strom_coordinator::group::JoinResponse {
            error: COORDINATOR_NOT_AVAILABLE,
            generation: -1,
            ..Default::default()
        });
        let mut resp = JoinGroupResponse::default();
        resp.error_code = r.error;
        resp.generation_id = r.generation;
        resp.leader = s(r.leader);
        resp.member_id = s(r.member_id);
        resp.protocol_name = Some(s(r.protocol_name.unwrap_or_default()));
        if v >= 7 {
            resp.protocol_type = r.protocol_type.map(s);
        }
        resp.members = r
            .members
            .into_iter()
            .map(|(id, instance, meta)| {
                let mut m = JoinGroupResponseMember::default();
                m.member_id = s(id);
                if v >= 5 {
                    m.group_instance_id = instance.map(s);
                }
                m.metadata = meta;
                m
            })
            .collect();
        reply.encode(&resp)
    }))
}
