//! crates/broker/src/log_dirs.rs (STUB — replaced by the lead)
use std::sync::Arc;

use strom_protocol::ErrorCode;

use crate::server::Broker;

/// One configured log directory as DescribeLogDirs reports it.
pub struct LogDirReport {
    /// The directory's absolute path.
    pub path: String,
    /// NONE, or KAFKA_STORAGE_ERROR when the directory is offline (failed, or missing at start-up).
    pub error: ErrorCode,
    /// Filesystem total and usable bytes (-1 when unknown, e.g. offline).
    pub total_bytes: i64,
    pub usable_bytes: i64,
    /// The replicas in this directory (empty when offline).
    pub replicas: Vec<ReplicaReport>,
}

pub struct ReplicaReport {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: i64,
    /// For a future replica (a move in progress): how far it is behind the current one; else 0.
    pub offset_lag: i64,
    /// A move's destination copy, not yet swapped in.
    pub is_future: bool,
}

impl Broker {
    /// Every configured log directory, in `log.dirs` order.
    pub fn log_dir_reports(&self) -> Vec<LogDirReport> {
        let dir = self.logs.dir();
        let path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()).display().to_string();
        let mut replicas: Vec<ReplicaReport> = self
            .logs
            .all()
            .into_iter()
            .map(|((topic, partition), log)| ReplicaReport {
                topic,
                partition,
                size_bytes: log.size_bytes() as i64,
                offset_lag: 0,
                is_future: false,
            })
            .collect();
        replicas.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        vec![LogDirReport { path, error: ErrorCode::None, total_bytes: -1, usable_bytes: -1, replicas }]
    }

    /// Starts moving this node's replica of `topic`-`partition` to the log directory `path`
    /// (AlterReplicaLogDirs). Returns at once; the copy runs in the background.
    /// NONE (also when it is already there or already moving there), LOG_DIR_NOT_FOUND (57) when
    /// `path` is not a configured directory, KAFKA_STORAGE_ERROR (56) when that directory or the
    /// replica's current one is offline, UNKNOWN_TOPIC_OR_PARTITION (3) when the partition does not
    /// exist, REPLICA_NOT_AVAILABLE (9) when this node hosts no replica of it.
    pub fn alter_replica_log_dir(self: &Arc<Self>, topic: &str, partition: i32, path: &str) -> ErrorCode {
        let image = self.metadata.image();
        let Some(p) = image.partition(topic, partition) else { return ErrorCode::UnknownTopicOrPartition };
        if !self.hosts(p) {
            return ErrorCode::ReplicaNotAvailable;
        }
        match self.log_dir_reports().iter().find(|d| d.path == path) {
            Some(_) => ErrorCode::None,
            None => ErrorCode::LogDirNotFound,
        }
    }
}
