//! DeleteGroups (key 42): only empty groups; their offsets go with them.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DeleteGroupsRequest) -> Outcome {
    let b = b.clone();
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        let mut resp = DeleteGroupsResponse::default();
        for g in req.groups_names {
            let (code, pending) = b.groups.step(&b, |c| c.delete_group(&g));
            b.groups.finish(pending).await;
            let mut r = DeletableGroupResult::default();
            r.group_id = g;
            r.error_code = code;
            resp.results.push(r);
        }
        reply.encode(&resp)
    }))
}
