//! AlterPartitionReassignments (key 45): start (`replicas` given) or cancel
//! (`replicas` null) partition reassignments; the controller decides.
//!
//! Topics this node does not know answer UNKNOWN_TOPIC_OR_PARTITION without
//! asking. With `allow_replication_factor_change` false (v1, KIP-860), a target
//! whose size differs from the partition's replication factor (its original
//! replicas, when a reassignment is already in progress) is refused with
//! INVALID_REPLICATION_FACTOR. The controller answers the rest per partition
//! (INVALID_REPLICA_ASSIGNMENT, NO_REASSIGNMENT_IN_PROGRESS, ...). When the
//! controller cannot be asked, its error is the top-level error and every
//! partition's.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{ReassignablePartitionResponse, ReassignableTopicResponse};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use strom_metadata::PartitionImage;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{s, Slot};
use crate::controller::Failure;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: AlterPartitionReassignmentsRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let allow_rf_change = reply.version < 1 || req.allow_replication_factor_change;
        let image = b.metadata.image();
        let mut asked: Vec<(Uuid, i32, Option<Vec<i32>>)> = Vec::new();
        let mut slots = Vec::new();
        for t in &req.topics {
            let name = t.name.to_string();
            let topic = image.topic(&name);
            let mut parts = Vec::new();
            for p in &t.partitions {
                let target: Option<Vec<i32>> = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                let slot = match topic {
                    None => Slot::Local(Failure::new(ErrorCode::UnknownTopicOrPartition, format!("The topic '{name}' does not exist."))),
                    Some(topic) => {
                        let current = topic.partitions.get(&p.partition_index);
                        match (&target, current) {
                            (Some(target), Some(current)) if !allow_rf_change && target.len() != replication_factor(current) => {
                                Slot::Local(Failure::new(
                                    ErrorCode::InvalidReplicationFactor,
                                    format!("The replication factor is changed from {} to {}", replication_factor(current), target.len()),
                                ))
                            }
                            _ => {
                                asked.push((topic.id, p.partition_index, target));
                                Slot::Asked(asked.len() - 1)
                            }
                        }
                    }
                };
                parts.push((p.partition_index, slot));
            }
            slots.push((name, parts));
        }
        let results = b.alter_reassignments(asked).await;
        let mut resp = AlterPartitionReassignmentsResponse::default();
        resp.error_message = None; // null on success, as Kafka sends it
        if reply.version >= 1 {
            resp.allow_replication_factor_change = req.allow_replication_factor_change;
        }
        if let Err(f) = &results {
            resp.error_code = f.code;
            resp.error_message = Some(s(f.message.clone()));
        }
        for (name, parts) in slots {
            let mut tr = ReassignableTopicResponse::default();
            tr.name = kafka_protocol::messages::TopicName(s(name));
            for (p, slot) in parts {
                let outcome = slot.outcome(&results);
                let mut pr = ReassignablePartitionResponse::default();
                pr.error_message = None;
                pr.partition_index = p;
                if let Err(f) = outcome {
                    pr.error_code = f.code;
                    pr.error_message = Some(s(f.message));
                }
                tr.partitions.push(pr);
            }
            resp.responses.push(tr);
        }
        reply.encode(&resp)
    }))
}

/// The replication factor a reassignment must keep: the original replicas
/// while one is in progress.
fn replication_factor(p: &PartitionImage) -> usize {
    p.replicas.iter().filter(|r| !p.adding_replicas.contains(r)).count()
}
