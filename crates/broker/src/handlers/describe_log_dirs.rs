//! DescribeLogDirs (key 35): every configured log directory, whether it is online,
//! the space on its filesystem (v4+), and the size of each replica in it,
//! including a move's future copy. A null topic list means every partition;
//! otherwise only the listed partitions are reported.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use strom_protocol::ErrorCode;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeLogDirsRequest) -> Outcome {
    let wanted: Option<HashSet<(String, i32)>> =
        req.topics.map(|ts| ts.iter().flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.to_string(), p))).collect());
    let mut resp = DescribeLogDirsResponse::default();
    resp.error_code = ErrorCode::None.code();
    for dir in b.log_dir_reports() {
        let mut r = DescribeLogDirsResult::default();
        r.log_dir = s(dir.path);
        r.error_code = dir.error.code();
        if reply.version >= 4 {
            r.total_bytes = dir.total_bytes;
            r.usable_bytes = dir.usable_bytes;
        }
        // Topics in name order, partitions in index order (a current and a future
        // copy of one partition never share a directory, so no index repeats).
        let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for rep in dir.replicas {
            if let Some(w) = &wanted {
                if !w.contains(&(rep.topic.clone(), rep.partition)) {
                    continue;
                }
            }
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = rep.partition;
            p.partition_size = rep.size_bytes;
            p.offset_lag = rep.offset_lag;
            p.is_future_key = rep.is_future;
            topics.entry(rep.topic).or_default().push(p);
        }
        for (name, mut partitions) in topics {
            partitions.sort_by_key(|p| (p.partition_index, p.is_future_key));
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(s(name));
            t.partitions = partitions;
            r.topics.push(t);
        }
        resp.results.push(r);
    }
    reply.ready(&resp)
}
