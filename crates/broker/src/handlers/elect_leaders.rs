//! ElectLeaders (key 43): preferred (0) or unclean (1) leader elections, decided
//! by the controller.
//!
//! As Kafka's controller: a null topic list means every partition, and then
//! partitions that need no election (ELECTION_NOT_NEEDED) are left out of the
//! answer; named partitions are all answered, in the order asked. Topics this
//! node does not know answer UNKNOWN_TOPIC_OR_PARTITION without asking. v0 has
//! only preferred elections and no top-level error; from v1 a failure of the
//! whole call (no quorum) is also the top-level error.

use std::sync::Arc;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{s, Slot};
use crate::controller::Failure;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

/// Where a partition's answer comes from.
pub fn handle(b: &Arc<Broker>, reply: &Reply, req: ElectLeadersRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let election_type = if reply.version >= 1 { req.election_type } else { 0 };
        let image = b.metadata.image();
        let all = req.topic_partitions.is_none();
        let mut asked: Vec<(Uuid, i32)> = Vec::new();
        let mut slots: Vec<(String, Vec<(i32, Slot)>)> = Vec::new();
        let mut ask = |id: Uuid, p: i32| {
            asked.push((id, p));
            Slot::Asked(asked.len() - 1)
        };
        match &req.topic_partitions {
            None => {
                for t in image.topics.values() {
                    let parts = t.partitions.keys().map(|&p| (p, ask(t.id, p))).collect();
                    slots.push((t.name.clone(), parts));
                }
            }
            Some(topics) => {
                for t in topics {
                    let name = t.topic.to_string();
                    let id = image.topic(&name).map(|x| x.id);
                    let parts = t
                        .partitions
                        .iter()
                        .map(|&p| {
                            let slot = match id {
                                Some(id) => ask(id, p),
                                None => Slot::Local(Failure::new(
                                    ErrorCode::UnknownTopicOrPartition,
                                    format!("The topic '{name}' does not exist."),
                                )),
                            };
                            (p, slot)
                        })
                        .collect();
                    slots.push((name, parts));
                }
            }
        }
        let mut resp = ElectLeadersResponse::default();
        let results = if !matches!(election_type, 0 | 1) {
            Err(Failure::new(ErrorCode::InvalidRequest, format!("unknown election type {election_type}")))
        } else {
            b.elect_leaders(election_type, asked).await
        };
        let whole = results.as_ref().err().cloned();
        if let Some(f) = &whole {
            if reply.version >= 1 {
                resp.error_code = f.code;
            }
        }
        for (name, parts) in slots {
            let mut tr = ReplicaElectionResult::default();
            tr.topic = TopicName(s(name));
            for (p, slot) in parts {
                let outcome = slot.outcome(&results);
                let mut pr = PartitionResult::default();
                pr.error_message = None; // null on success, as Kafka sends it
                pr.partition_id = p;
                if let Err(f) = outcome {
                    if all && whole.is_none() && f.code == ErrorCode::ElectionNotNeeded.code() {
                        continue;
                    }
                    pr.error_code = f.code;
                    pr.error_message = Some(s(f.message));
                }
                tr.partition_result.push(pr);
            }
            resp.replica_election_results.push(tr);
        }
        reply.encode(&resp)
    }))
}
