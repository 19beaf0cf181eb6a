//! OffsetForLeaderEpoch (key 23): for each partition, the end offset of the
//! requested leader epoch in the leader's log, so a consumer (KIP-320) or a
//! follower can find where its copy diverged.
//!
//! As Kafka's `Partition.lastOffsetForLeaderEpoch`: a partition the image does not
//! know is UNKNOWN_TOPIC_OR_PARTITION. On a broker holding a replica, the
//! request's `current_leader_epoch` (when >= 0) is checked against the replica's
//! leader epoch first: older is FENCED_LEADER_EPOCH, newer UNKNOWN_LEADER_EPOCH. Only the
//! leader answers; others say NOT_LEADER_OR_FOLLOWER (LEADER_NOT_AVAILABLE when
//! there is no leader). The answer is `(epoch, end offset)`: the largest epoch
//! <= the requested one and the start offset of the epoch after it (the log end
//! offset for the current epoch), or (-1, -1) when the log knows no such epoch.
//! Consumers (-1), debug tools (-2) and followers (>= 0) get the same answer.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use strom_metadata::MetadataImage;
use strom_protocol::ErrorCode;

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: OffsetForLeaderEpochRequest) -> Outcome {
    let image = b.metadata.image();
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut pr = EpochEndOffset::default();
            pr.partition = p.partition;
            pr.leader_epoch = -1;
            pr.end_offset = -1;
            match end_offset(b, &image, &t.topic, p.partition, p.current_leader_epoch, p.leader_epoch) {
                Ok((epoch, offset)) => {
                    pr.leader_epoch = epoch;
                    pr.end_offset = offset;
                }
                Err(code) => pr.error_code = code.code(),
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    reply.ready(&resp)
}

fn end_offset(b: &Broker, image: &MetadataImage, topic: &str, partition: i32, current: i32, wanted: i32) -> Result<(i32, i64), ErrorCode> {
    image.partition(topic, partition).ok_or(ErrorCode::UnknownTopicOrPartition)?;
    // A replica here checks the epoch before whether it leads, as Kafka's getLocalLog.
    if let Some(part) = b.replicas.get(topic, partition) {
        part.check_epoch(current)?;
    }
    let log = b.leader_log(image, topic, partition)?;
    Ok(log.end_offset_for_epoch(wanted))
}
