//! DescribeLogDirs (key 35): each log directory with its partitions and sizes.
//! A null topic list means every partition.

use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeLogDirsRequest) -> Outcome {
    let wanted = |topic: &str, p: i32| match &req.topics {
        None => true,
        Some(ts) => ts.iter().any(|t| t.topic.as_str() == topic && t.partitions.contains(&p)),
    };
    let mut resp = DescribeLogDirsResponse::default();
    for d in b.log_dir_reports() {
        let mut dir = DescribeLogDirsResult::default();
        dir.log_dir = s(d.path);
        dir.error_code = d.error.code();
        dir.total_bytes = d.total_bytes;
        dir.usable_bytes = d.usable_bytes;
        let mut topics: std::collections::BTreeMap<String, Vec<DescribeLogDirsPartition>> = Default::default();
        for r in d.replicas.into_iter().filter(|r| wanted(&r.topic, r.partition)) {
            let mut dp = DescribeLogDirsPartition::default();
            dp.partition_index = r.partition;
            dp.partition_size = r.size_bytes;
            dp.offset_lag = r.offset_lag;
            dp.is_future_key = r.is_future;
            topics.entry(r.topic).or_default().push(dp);
        }
        for (name, partitions) in topics {
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(s(name));
            t.partitions = partitions;
            dir.topics.push(t);
        }
        resp.results.push(dir);
    }
    reply.ready(&resp)
}
