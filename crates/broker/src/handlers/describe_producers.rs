//! DescribeProducers (key 61): the idempotent and transactional producers a
//! partition leader currently tracks, with their epoch, last sequence and the
//! start offset of their open transaction.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use strom_protocol::ErrorCode;

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeProducersRequest) -> Outcome {
    let image = b.metadata.image();
    let mut resp = DescribeProducersResponse::default();
    for t in req.topics {
        let mut tr = TopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partition_indexes {
            let mut pr = PartitionResponse::default();
            pr.partition_index = p;
            match b.leader_partition(&image, &t.name, p) {
                Err(code) => {
                    pr.error_code = code.code();
                    if code == ErrorCode::NotLeaderOrFollower {
                        pr.error_message = Some(super::s("this broker is not the partition's leader"));
                    }
                }
                Ok(part) => {
                    pr.active_producers = part
                        .log()
                        .producers()
                        .into_iter()
                        .map(|x| {
                            let mut ps = ProducerState::default();
                            ps.producer_id = ProducerId(x.producer_id);
                            ps.producer_epoch = x.producer_epoch as i32;
                            ps.last_sequence = x.last_sequence;
                            ps.last_timestamp = x.last_timestamp;
                            ps.coordinator_epoch = x.coordinator_epoch;
                            ps.current_txn_start_offset = x.current_txn_start_offset;
                            ps
                        })
                        .collect();
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    reply.ready(&resp)
}
