//! AlterReplicaLogDirs (key 34): moves this node's replicas between its own log
//! directories. Each partition's move starts in the background and the answer
//! comes at once; DescribeLogDirs shows the future copy until it is swapped in.
//! Moves start in request order. The answer has one entry per topic and one per
//! partition in it; a partition named twice is answered with its last result.

use std::sync::Arc;

use indexmap::IndexMap;
use kafka_protocol::messages::alter_replica_log_dirs_response::{AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, TopicName};
use strom_protocol::ErrorCode;

use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: AlterReplicaLogDirsRequest) -> Outcome {
    let mut results: IndexMap<TopicName, IndexMap<i32, ErrorCode>> = IndexMap::new();
    for dir in req.dirs {
        let path = dir.path.as_str();
        for t in dir.topics {
            let answers = results.entry(t.name.clone()).or_default();
            for p in t.partitions {
                let code = b.alter_replica_log_dir(&t.name, p, path);
                if code != ErrorCode::None {
                    tracing::debug!(topic = %t.name.as_str(), partition = p, path, error = ?code, "replica log dir move refused");
                }
                answers.insert(p, code);
            }
        }
    }
    let mut resp = AlterReplicaLogDirsResponse::default();
    for (topic_name, partitions) in results {
        let mut tr = AlterReplicaLogDirTopicResult::default();
        tr.topic_name = topic_name;
        for (partition_index, code) in partitions {
            let mut pr = AlterReplicaLogDirPartitionResult::default();
            pr.partition_index = partition_index;
            pr.error_code = code.code();
            tr.partitions.push(pr);
        }
        resp.results.push(tr);
    }
    reply.ready(&resp)
}
