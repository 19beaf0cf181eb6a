//! CreatePartitions (key 37): grows a topic. Keys may map to other partitions
//! afterwards, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: CreatePartitionsRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut resp = CreatePartitionsResponse::default();
        for t in req.topics {
            let mut r = CreatePartitionsTopicResult::default();
            r.name = t.name.clone();
            let assignments = t.assignments.map(|a| a.iter().map(|x| x.broker_ids.iter().map(|b| b.0).collect()).collect());
            if let Err(e) = b.add_partitions(&t.name, t.count, assignments, req.validate_only).await {
                r.error_code = e.code.code();
                r.error_message = Some(s(e.message));
            }
            resp.results.push(r);
        }
        reply.encode(&resp)
    }))
}
