//! DescribeQuorum (key 55): the metadata quorum's leader, epoch, high watermark
//! and each voter's log end offset. A broker asks a controller; a controller
//! answers from its own Raft state.

use std::sync::Arc;

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use strom_protocol::ErrorCode;

use super::s;
use crate::controller::service::QuorumInfo;
use crate::controller::{Answer, Request};
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

/// Kafka's name for the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn response(info: &QuorumInfo, version: i16) -> DescribeQuorumResponse {
    let now = strom_storage::now_ms();
    let mut p = PartitionData::default();
    p.partition_index = 0;
    p.leader_id = BrokerId(info.leader_id.unwrap_or(-1));
    p.leader_epoch = info.term.min(i32::MAX as u64) as i32;
    p.high_watermark = info.high_watermark as i64;
    p.current_voters = info
        .voters
        .iter()
        .map(|v| {
            let mut r = ReplicaState::default();
            r.replica_id = BrokerId(v.id);
            r.log_end_offset = v.log_end_offset.map(|o| o as i64).unwrap_or(-1);
            let seen = v.last_contact_ms_ago.map(|ago| now - ago as i64).unwrap_or(-1);
            r.last_fetch_timestamp = seen;
            r.last_caught_up_timestamp = if v.log_end_offset.is_some_and(|o| o >= info.high_watermark) { seen } else { -1 };
            r
        })
        .collect();
    if version < 1 {
        for r in &mut p.current_voters {
            r.last_fetch_timestamp = -1;
            r.last_caught_up_timestamp = -1;
        }
    }
    let mut t = TopicData::default();
    t.topic_name = TopicName(s(METADATA_TOPIC));
    t.partitions = vec![p];
    let mut resp = DescribeQuorumResponse::default();
    resp.topics = vec![t];
    resp
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeQuorumRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    let _ = req;
    Outcome::Later(Box::pin(async move {
        let info = match b.controller.call(Request::DescribeQuorum, b.controller.request_timeout).await {
            Ok(crate::controller::service::Reply { answer: Answer::Quorum(q), .. }) => Ok(q),
            Ok(_) => Err(ErrorCode::UnknownServerError),
            Err(f) => Err(f.error_code()),
        };
        let resp = match info {
            Ok(q) => response(&q, reply.version),
            Err(code) => {
                let mut r = DescribeQuorumResponse::default();
                r.error_code = code.code();
                r
            }
        };
        reply.encode(&resp)
    }))
}
