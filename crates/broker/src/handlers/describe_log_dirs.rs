//! DescribeLogDirs (key 35): the data directory and each partition's size.
//! A null topic list means every partition.

use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeLogDirsRequest) -> Outcome {
    let image = b.metadata.image();
    let wanted: Vec<(String, Vec<i32>)> = match &req.topics {
        Some(ts) => ts.iter().map(|t| (t.topic.to_string(), t.partitions.clone())).collect(),
        None => image.topics.values().map(|t| (t.name.clone(), t.partitions.keys().copied().collect())).collect(),
    };
    let mut dir = DescribeLogDirsResult::default();
    dir.log_dir = s(std::fs::canonicalize(b.logs.dir()).unwrap_or_else(|_| b.logs.dir().to_path_buf()).display().to_string());
    dir.total_bytes = -1;
    dir.usable_bytes = -1;
    for (topic, parts) in wanted {
        let mut t = DescribeLogDirsTopic::default();
        t.name = TopicName(s(topic.clone()));
        for p in parts {
            if let Some(log) = b.partition_log(&topic, p) {
                let mut dp = DescribeLogDirsPartition::default();
                dp.partition_index = p;
                dp.partition_size = log.size_bytes() as i64;
                t.partitions.push(dp);
            }
        }
        if !t.partitions.is_empty() {
            dir.topics.push(t);
        }
    }
    let mut resp = DescribeLogDirsResponse::default();
    resp.results = vec![dir];
    reply.ready(&resp)
}
