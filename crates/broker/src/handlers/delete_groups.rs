//! DeleteGroups (key 42): only empty groups; their offsets go with them. A group
//! is answered once its tombstones are durable (or with the write's error, and
//! the group stays).

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use strom_coordinator::errors::{write_error, NONE};

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DeleteGroupsRequest) -> Outcome {
    let mut resp = DeleteGroupsResponse::default();
    let mut steps = Vec::new();
    for g in req.groups_names {
        let (code, pending) = b.groups.step(|c| c.delete_group(&g));
        steps.push((code, pending));
        let mut r = DeletableGroupResult::default();
        r.group_id = g;
        r.error_code = code;
        resp.results.push(r);
    }
    let b = b.clone();
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        for (r, (code, pending)) in resp.results.iter_mut().zip(steps) {
            let written = b.groups.finish(pending).await;
            if code == NONE {
                r.error_code = write_error(written);
            }
        }
        reply.encode(&resp)
    }))
}
