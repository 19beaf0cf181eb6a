//! OffsetCommit (key 8): answered once the commit records are fsynced and the
//! offsets applied; if the append or fsync fails, the commit is not applied and
//! its partitions get Kafka's mapping of the storage error (`commit_error`).

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use strom_coordinator::errors::{commit_error, COORDINATOR_NOT_AVAILABLE, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use strom_coordinator::group::CommitRequest;

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: OffsetCommitRequest) -> Outcome {
    let image = b.metadata.image();
    // Partitions of unknown topics are refused here; the rest go to the coordinator.
    let mut entries = Vec::new();
    let mut shape: Vec<(usize, i32, Option<usize>)> = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = image.topic(&t.name);
        for p in &t.partitions {
            if topic.is_some_and(|tp| tp.partitions.contains_key(&p.partition_index)) {
                shape.push((ti, p.partition_index, Some(entries.len())));
                let epoch = if reply.version >= 6 { p.committed_leader_epoch } else { -1 };
                entries.push((
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    epoch,
                    p.committed_metadata.as_ref().map(|m| m.to_string()),
                ));
            } else {
                shape.push((ti, p.partition_index, None));
            }
        }
    }
    let commit = CommitRequest {
        group_id: req.group_id.to_string(),
        generation: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        offsets: entries,
    };
    let names: Vec<_> = req.topics.iter().map(|t| t.name.clone()).collect();
    // Applied now, in request order: pipelined async commits must land in the
    // order they were sent. The answer waits for the fsync.
    let now = strom_storage::now_ms();
    let (codes, pending) = b.groups.step(|c| c.commit(commit, now));
    let b = b.clone();
    let reply = reply.clone();
    Outcome::Later(Box::pin(async move {
        let written = b.groups.finish(pending).await;
        let mut resp = OffsetCommitResponse::default();
        resp.topics = names
            .into_iter()
            .map(|n| {
                let mut t = OffsetCommitResponseTopic::default();
                t.name = n;
                t
            })
            .collect();
        for (ti, partition, idx) in shape {
            let mut p = OffsetCommitResponsePartition::default();
            p.partition_index = partition;
            p.error_code = match idx {
                None => UNKNOWN_TOPIC_OR_PARTITION,
                Some(i) => match codes.get(i).copied().unwrap_or(COORDINATOR_NOT_AVAILABLE) {
                    NONE => commit_error(written),
                    code => code,
                },
            };
            if let Some(t) = resp.topics.get_mut(ti) {
                t.partitions.push(p);
            }
        }
        reply.encode(&resp)
    }))
}
