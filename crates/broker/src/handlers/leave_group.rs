//! LeaveGroup (key 13): one member (v0-2) or a batch of members (v3+).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
use strom_coordinator::errors::{NONE, UNKNOWN_MEMBER_ID};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: LeaveGroupRequest) -> Outcome {
    let v = reply.version;
    let members: Vec<(String, Option<String>)> = if v >= 3 {
        req.members.iter().map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let group = req.group_id.to_string();
    let now = strom_storage::now_ms();
    let ((top, codes), pending) = b.groups.step(|c| {
        let serving = c.check(&group);
        if serving != NONE {
            return ((serving, Vec::new()), Default::default());
        }
        let (codes, out) = c.leave(&group, &members, now);
        ((NONE, codes), out)
    });
    let b = b.clone();
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        // Removing members takes effect at once (as Kafka); the group record that
        // follows is written before the answer.
        b.groups.finish(pending).await;
        let mut resp = LeaveGroupResponse::default();
        if top != NONE {
            resp.error_code = top;
        } else if v >= 3 {
            // Kafka answers UNKNOWN_MEMBER_ID at the top only when the group is unknown.
            resp.members = members
                .iter()
                .zip(&codes)
                .map(|((id, instance), code)| {
                    let mut m = MemberResponse::default();
                    m.member_id = s(id.clone());
                    m.group_instance_id = instance.clone().map(s);
                    m.error_code = *code;
                    m
                })
                .collect();
        } else {
            resp.error_code = codes.first().copied().unwrap_or(UNKNOWN_MEMBER_ID);
        }
        reply.encode(&resp)
    }))
}
