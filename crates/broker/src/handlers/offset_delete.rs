//! OffsetDelete (key 47): removes committed offsets, except for topics an active
//! consumer group subscribes to (GROUP_SUBSCRIBED_TO_TOPIC).

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use strom_coordinator::errors::{write_error, NONE};

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: OffsetDeleteRequest) -> Outcome {
    let wanted: Vec<(String, i32)> =
        req.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), p.partition_index))).collect();
    let ((top, codes), pending) = b.groups.step(|c| {
        let (top, codes, out) = c.delete_offsets(&req.group_id, &wanted);
        ((top, codes), out)
    });
    let b = b.clone();
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        let written = b.groups.finish(pending).await;
        let top = if top == NONE { write_error(written) } else { top };
        let mut resp = OffsetDeleteResponse::default();
        resp.error_code = top;
        if top == 0 {
            let mut i = 0;
            for t in &req.topics {
                let mut rt = OffsetDeleteResponseTopic::default();
                rt.name = t.name.clone();
                for p in &t.partitions {
                    let mut rp = OffsetDeleteResponsePartition::default();
                    rp.partition_index = p.partition_index;
                    rp.error_code = codes.get(i).copied().unwrap_or(0);
                    i += 1;
                    rt.partitions.push(rp);
                }
                resp.topics.push(rt);
            }
        }
        reply.encode(&resp)
    }))
}
