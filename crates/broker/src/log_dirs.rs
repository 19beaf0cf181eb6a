//! Several log directories (`log.dirs`): what DescribeLogDirs reports, moving
//! a replica between directories (AlterReplicaLogDirs), and what a broker does
//! when a directory fails.
//!
//! **A move** copies the log into `<topic>-<partition>.<id>-future` in the
//! target directory while writes continue (passes of [`Log::copy_to`], each
//! copying what the previous one missed), then, with the partition's appends
//! stopped for one short final pass, swaps the copy in
//! ([`Partition::replace_log`], [`strom_storage::LogManager::replace_with_future`])
//! and deletes the old copy. A move asked for while one runs retargets it; a
//! move back to where the replica is cancels it. An interrupted move (a crash,
//! a failure) is abandoned: its copy is deleted and the replica stays.
//!
//! **A failed directory** ([`watch`]): its replicas stop (they answer
//! KAFKA_STORAGE_ERROR), and the broker reports them to the controller, which
//! moves their leadership to in-sync replicas elsewhere and keeps them out of
//! ISRs and elections. In a cluster a node whose every directory, or whose
//! metadata directory, has failed stops, as Kafka's does.
//!
//! [`Log::copy_to`]: strom_storage::Log::copy_to
//! [`Partition::replace_log`]: crate::partition::Partition::replace_log

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use strom_protocol::ErrorCode;
use strom_storage::{CopyState, StorageError};

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

/// Moves in progress, by partition.
#[derive(Default)]
pub struct Moves {
    inner: Mutex<HashMap<(String, i32), Move>>,
}

struct Move {
    /// The directory (index in `log.dirs`) the replica is to end up in.
    target: usize,
    /// The directory a copy is being made in.
    copying: Option<usize>,
    /// The log end offset and bytes the copy reached.
    copied_end: i64,
    copied_bytes: u64,
}

impl Moves {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, i32), Move>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Broker {
    /// Every configured log directory, in `log.dirs` order.
    pub fn log_dir_reports(&self) -> Vec<LogDirReport> {
        let moves = self.moves.lock();
        self.logs
            .dirs()
            .into_iter()
            .enumerate()
            .map(|(i, d)| {
                let path = std::fs::canonicalize(&d.path).unwrap_or_else(|_| absolute(&d.path)).display().to_string();
                let (total_bytes, usable_bytes) = d.space.map(|(t, a)| (t as i64, a as i64)).unwrap_or((-1, -1));
                let mut replicas: Vec<ReplicaReport> = d
                    .logs
                    .iter()
                    .map(|((topic, partition), log)| ReplicaReport {
                        topic: topic.clone(),
                        partition: *partition,
                        size_bytes: log.size_bytes() as i64,
                        offset_lag: 0,
                        is_future: false,
                    })
                    .collect();
                if d.offline.is_none() {
                    for ((topic, partition), m) in moves.iter() {
                        if m.copying == Some(i) {
                            let end = self.logs.get(topic, *partition).map(|l| l.log_end_offset()).unwrap_or(m.copied_end);
                            replicas.push(ReplicaReport {
                                topic: topic.clone(),
                                partition: *partition,
                                size_bytes: m.copied_bytes as i64,
                                offset_lag: (end - m.copied_end).max(0),
                                is_future: true,
                            });
                        }
                    }
                }
                let error = if d.offline.is_some() { ErrorCode::KafkaStorageError } else { ErrorCode::None };
                LogDirReport { path, error, total_bytes, usable_bytes, replicas }
            })
            .collect()
    }

    /// Starts moving this node's replica of `topic`-`partition` to the log directory `path`
    /// (AlterReplicaLogDirs). Returns at once; the copy runs in the background.
    /// NONE (also when it is already there or already moving there), LOG_DIR_NOT_FOUND (57) when
    /// `path` is not a configured directory, KAFKA_STORAGE_ERROR (56) when that directory or the
    /// replica's current one is offline, UNKNOWN_TOPIC_OR_PARTITION (3) when the partition does not
    /// exist, REPLICA_NOT_AVAILABLE (9) when this node hosts no replica of it.
    pub fn alter_replica_log_dir(self: &Arc<Self>, topic: &str, partition: i32, path: &str) -> ErrorCode {
        let Some(to) = self.logs.dir_index(Path::new(path)) else {
            return ErrorCode::LogDirNotFound;
        };
        let image = self.metadata.image();
        let Some(p) = image.partition(topic, partition) else {
            return ErrorCode::UnknownTopicOrPartition;
        };
        if !self.hosts(p) {
            return ErrorCode::ReplicaNotAvailable;
        }
        if self.logs.is_dir_offline(to) || self.logs.is_offline(topic, partition) {
            return ErrorCode::KafkaStorageError;
        }
        let Some(from) = self.logs.dir_of(topic, partition) else {
            return ErrorCode::ReplicaNotAvailable;
        };
        let key = (topic.to_string(), partition);
        {
            let mut moves = self.moves.lock();
            if let Some(m) = moves.get_mut(&key) {
                m.target = to;
                return ErrorCode::None;
            }
            if from == to {
                return ErrorCode::None;
            }
            moves.insert(key.clone(), Move { target: to, copying: None, copied_end: 0, copied_bytes: 0 });
        }
        tracing::info!(topic, partition, to = %path, "moving a replica to another log directory");
        let b = self.clone();
        tokio::task::spawn_blocking(move || run_move(&b, &key.0, key.1));
        ErrorCode::None
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Moves the replica until it is where the latest request wants it (or a move fails).
fn run_move(b: &Arc<Broker>, topic: &str, partition: i32) {
    let key = (topic.to_string(), partition);
    loop {
        let Some(target) = b.moves.lock().get(&key).map(|m| m.target) else { return };
        let result = move_once(b, topic, partition, target);
        let mut moves = b.moves.lock();
        let retargeted = moves.get(&key).is_some_and(|m| m.target != target);
        match &result {
            Ok(true) => tracing::info!(topic, partition, dir = target, "replica moved to another log directory"),
            Ok(false) => {}
            Err(e) if retargeted => tracing::info!(topic, partition, reason = %e, "replica move retargeted"),
            Err(e) => tracing::warn!(topic, partition, error = %e, "replica move between log directories failed; the replica stays"),
        }
        if !retargeted {
            moves.remove(&key);
            return;
        }
        if let Some(m) = moves.get_mut(&key) {
            m.copying = None;
        }
    }
}

/// One move to directory `to`. Ok(false): nothing to do (it is there already).
fn move_once(b: &Arc<Broker>, topic: &str, partition: i32, to: usize) -> Result<bool, String> {
    let key = (topic.to_string(), partition);
    let from = b.logs.dir_of(topic, partition).ok_or("the replica is no longer hosted here")?;
    if from == to {
        return Ok(false);
    }
    let part = b.replicas.get(topic, partition).ok_or("the replica is no longer hosted here")?;
    let future = b.logs.future_dir(topic, partition, to).ok_or("no such log directory")?;
    if let Some(m) = b.moves.lock().get_mut(&key) {
        m.copying = Some(to);
    }
    let result = copy_and_swap(b, &part, topic, partition, to, &future);
    if result.is_err() && future.exists() {
        let _ = std::fs::remove_dir_all(&future);
    }
    result.map(|_| true)
}

/// Bytes a copy pass may leave for the final pass, which runs with appends stopped.
const FINAL_PASS_BYTES: u64 = 4 << 20;
/// Passes while appends continue, at most.
const MAX_PASSES: usize = 20;

fn copy_and_swap(
    b: &Arc<Broker>,
    part: &crate::partition::Partition,
    topic: &str,
    partition: i32,
    to: usize,
    future: &Path,
) -> Result<(), String> {
    let key = (topic.to_string(), partition);
    let still_wanted = || b.moves.lock().get(&key).is_some_and(|m| m.target == to);
    let note = |state: &CopyState| {
        if let Some(m) = b.moves.lock().get_mut(&key) {
            m.copied_end = state.end_offset;
            m.copied_bytes = state.total_bytes();
        }
    };
    let mut state = CopyState::default();
    for _ in 0..MAX_PASSES {
        state = part.log().copy_to(future, state, false).map_err(|e| format!("copying: {e}"))?;
        note(&state);
        if !still_wanted() {
            return Err("another directory was asked for".into());
        }
        if state.copied_bytes <= FINAL_PASS_BYTES {
            break;
        }
    }
    let image = b.metadata.image();
    let t = image.topic(topic).ok_or("the topic is gone")?;
    let config = b.log_config(t);
    let paused = std::time::Instant::now();
    let mut last_bytes = 0;
    part.replace_log(|old| -> Result<Arc<strom_storage::Log>, StorageError> {
        let last = old.copy_to(future, std::mem::take(&mut state), true)?;
        last_bytes = last.copied_bytes;
        note(&last);
        b.logs.replace_with_future(topic, partition, future, to, config)
    })
    .map_err(|e| format!("swapping in the copy: {e}"))?;
    tracing::info!(
        topic,
        partition,
        last_pass_bytes = last_bytes,
        appends_paused_ms = paused.elapsed().as_millis() as u64,
        "swapped in the moved copy"
    );
    Ok(())
}

/// Watches for failed log directories for the broker's lifetime: stops their
/// replicas (the heartbeat loop reports them to the controller), and stops a
/// clustered node that has lost every directory or its metadata directory.
pub async fn watch(b: Arc<Broker>) {
    let mut failures = b.logs.subscribe_failures();
    loop {
        if failures.changed().await.is_err() {
            return;
        }
        let offline = b.logs.offline_partitions();
        for (topic, partition) in &offline {
            if b.replicas.get(topic, *partition).is_some() {
                b.replicas.remove(topic, *partition);
            }
        }
        let dirs = b.logs.paths();
        let all_failed = (0..dirs.len()).all(|i| b.logs.is_dir_offline(i));
        let meta_failed = b.logs.dir_index(Path::new(&b.config.data_dir())).is_some_and(|i| b.logs.is_dir_offline(i));
        let others = b.metadata.image().brokers.keys().any(|id| *id != b.node_id);
        tracing::error!(replicas = offline.len(), "replicas in failed log directories are offline");
        if others && (all_failed || meta_failed) {
            tracing::error!(
                "{}; halting so that leadership moves to healthy replicas",
                if all_failed { "every log directory has failed" } else { "the metadata log directory has failed" }
            );
            std::process::exit(1);
        }
        if all_failed {
            tracing::error!("every log directory has failed: partitions answer KAFKA_STORAGE_ERROR until a restart");
        }
    }
}
