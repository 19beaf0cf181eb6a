//! Heartbeat (key 12): keeps a member's session alive and tells it to rejoin.
//! Groups this broker does not coordinate answer NOT_COORDINATOR (or
//! COORDINATOR_LOAD_IN_PROGRESS while their partition loads).

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: HeartbeatRequest) -> Outcome {
    let now = strom_storage::now_ms();
    let instance = req.group_instance_id.as_ref().map(|i| i.to_string());
    let code = b.groups.lock().heartbeat(&req.group_id, req.generation_id, &req.member_id, instance.as_deref(), now);
    let mut resp = HeartbeatResponse::default();
    resp.error_code = code;
    reply.ready(&resp)
}
