//! Strom's storage engine: partition logs made of segments.
//!
//! - [`segment`]: one `.log` file with its sparse `.index` and `.timeindex`.
//! - [`log`]: a partition log, append/read, group-commit fsync, recovery.
//! - [`producers`]: idempotent and transactional producer state, the last
//!   stable offset, producer snapshots.
//! - [`LogManager`] (here): the data directory, its checkpoint files and the
//!   clean-shutdown marker.
//!
//! Directory layout under the data dir:
//! - `<topic>-<partition>/` with `<20-digit base offset>.{log,index,timeindex}`,
//!   `.txnindex` for segments holding ABORT markers, and
//!   `<20-digit offset>.snapshot` producer-state snapshots.
//! - `<topic>-<partition>/leader-epoch-checkpoint`: the log's leader-epoch cache
//!   (see [`epoch`]).
//! - `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
//!   `replication-offset-checkpoint` (high watermarks), in Kafka's text format: a
//!   version line (`0`), a count line, then one `topic partition offset` line per
//!   partition.
//! - `.strom_clean_shutdown`, present only between a clean shutdown and the next
//!   start; when it is missing, logs are recovered from their recovery points.
//!
//! This crate knows nothing of the network or of cluster metadata.
#![deny(unsafe_code)]

pub mod epoch;
pub mod log;
pub mod producers;
pub mod segment;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub use crate::log::{AppendInfo, Log, LogConfig, ReadInfo};
pub use crate::producers::{AbortedTxn, ProducerInfo};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt record set: {0}")]
    Corrupt(String),
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("records decompress to more than max.message.bytes {max}")]
    Inflated { max: usize },
    #[error("offset {offset} outside [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// The log cannot be used: a write or fsync failed earlier (see
    /// [`Log::is_failed`]), or the log is going away.
    #[error("log is offline")]
    Offline,
    /// Some records are unacceptable; `records` are their indexes within their batch.
    #[error("invalid record: {message}")]
    InvalidRecord { message: String, records: Vec<i32> },
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: a producer's batch does not follow its last one.
    #[error("out of order sequence: {0}")]
    OutOfOrderSequence(String),
    /// INVALID_PRODUCER_EPOCH: a batch or marker from a fenced (older) producer epoch.
    #[error("invalid producer epoch: {0}")]
    InvalidProducerEpoch(String),
    /// INVALID_TXN_STATE: e.g. a non-transactional batch inside an open transaction.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// TRANSACTION_COORDINATOR_FENCED: a marker from an older coordinator epoch.
    #[error("transaction coordinator fenced: {0}")]
    CoordinatorFenced(String),
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

const CLEAN_MARKER: &str = ".strom_clean_shutdown";
const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
const START_CHECKPOINT: &str = "log-start-offset-checkpoint";
const HW_CHECKPOINT: &str = "replication-offset-checkpoint";

pub type TopicPartition = (String, i32);

/// Owns every partition log in one data directory.
pub struct LogManager {
    dir: PathBuf,
    clean: bool,
    recovery_points: HashMap<TopicPartition, i64>,
    start_offsets: HashMap<TopicPartition, i64>,
    high_watermarks: HashMap<TopicPartition, i64>,
    logs: RwLock<HashMap<TopicPartition, Arc<Log>>>,
    /// One checkpoint writer at a time: they share temp file names.
    checkpointing: std::sync::Mutex<()>,
}

impl LogManager {
    /// Opens the data directory. Consumes the clean-shutdown marker: if the
    /// process dies before the next clean shutdown, the next start recovers.
    pub fn open(dir: &Path) -> Result<LogManager, StorageError> {
        std::fs::create_dir_all(dir)?;
        let marker = dir.join(CLEAN_MARKER);
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker)?;
            sync_dir(dir)?;
        }
        Ok(LogManager {
            dir: dir.to_path_buf(),
            clean,
            recovery_points: read_checkpoint(&dir.join(RECOVERY_CHECKPOINT)),
            start_offsets: read_checkpoint(&dir.join(START_CHECKPOINT)),
            high_watermarks: read_checkpoint(&dir.join(HW_CHECKPOINT)),
            logs: RwLock::new(HashMap::new()),
            checkpointing: std::sync::Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn was_clean(&self) -> bool {
        self.clean
    }

    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(format!("{topic}-{partition}"))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Log>> {
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        logs.get(&(topic.to_string(), partition)).cloned()
    }

    /// Opens the log of a partition, creating it if needed.
    pub fn open_log(&self, topic: &str, partition: i32, config: LogConfig) -> Result<Arc<Log>, StorageError> {
        let key = (topic.to_string(), partition);
        if let Some(l) = self.get(topic, partition) {
            return Ok(l);
        }
        let rp = self.recovery_points.get(&key).copied().unwrap_or(0);
        let start = self.start_offsets.get(&key).copied().unwrap_or(0);
        let hw = self.high_watermarks.get(&key).copied().unwrap_or(0);
        let dir = self.partition_dir(topic, partition);
        let fresh = !dir.exists();
        let log = Arc::new(Log::open_with_high_watermark(&dir, config, self.clean || fresh, rp, start, hw)?);
        if fresh {
            sync_dir(&self.dir)?;
        }
        let mut logs = self.logs.write().unwrap_or_else(|p| p.into_inner());
        Ok(logs.entry(key).or_insert(log).clone())
    }

    /// Removes a partition's log and its files.
    pub fn delete_log(&self, topic: &str, partition: i32) -> Result<(), StorageError> {
        let removed = {
            let mut logs = self.logs.write().unwrap_or_else(|p| p.into_inner());
            logs.remove(&(topic.to_string(), partition))
        };
        drop(removed);
        let dir = self.partition_dir(topic, partition);
        if dir.exists() {
            // Rename first so a crash mid-delete never leaves a half log under the live name.
            let doomed = self.dir.join(format!("{topic}-{partition}.{}-delete", now_ms()));
            std::fs::rename(&dir, &doomed)?;
            sync_dir(&self.dir)?;
            std::fs::remove_dir_all(&doomed)?;
        }
        Ok(())
    }

    /// Deletes directories left by an interrupted delete.
    pub fn remove_stray_deletes(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with("-delete") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    pub fn all(&self) -> Vec<(TopicPartition, Arc<Log>)> {
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        logs.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Writes the recovery-point, log-start and high-watermark checkpoint files,
    /// each atomically (temp file, fsync, rename).
    pub fn write_checkpoints(&self) -> Result<(), StorageError> {
        let _one = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        let all = self.all();
        let rps: Vec<_> = all.iter().map(|(k, l)| (k.clone(), l.recovery_point())).collect();
        let starts: Vec<_> = all.iter().map(|(k, l)| (k.clone(), l.log_start_offset())).collect();
        let hws: Vec<_> = all.iter().map(|(k, l)| (k.clone(), l.high_watermark())).collect();
        write_checkpoint(&self.dir, RECOVERY_CHECKPOINT, &rps)?;
        write_checkpoint(&self.dir, START_CHECKPOINT, &starts)?;
        write_checkpoint(&self.dir, HW_CHECKPOINT, &hws)?;
        Ok(())
    }

    /// Flushes every log, writes checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        for (_, log) in self.all() {
            log.flush_blocking()?;
            // Only a shortcut for the next start (which can replay the log).
            if let Err(e) = log.checkpoint_producers() {
                tracing::warn!(dir = %log.dir().display(), error = %e, "could not write a producer snapshot at shutdown");
            }
        }
        self.write_checkpoints()?;
        let mut f = std::fs::File::create(self.dir.join(CLEAN_MARKER))?;
        f.write_all(b"clean\n")?;
        f.sync_all()?;
        sync_dir(&self.dir)?;
        Ok(())
    }
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn read_checkpoint(path: &Path) -> HashMap<TopicPartition, i64> {
    let mut out = HashMap::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return out;
    };
    for line in text.lines().skip(2) {
        let mut parts = line.rsplitn(3, ' ');
        let (Some(off), Some(p), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(off), Ok(p)) = (off.parse(), p.parse()) {
            out.insert((t.to_string(), p), off);
        }
    }
    out
}

fn write_checkpoint(dir: &Path, name: &str, entries: &[(TopicPartition, i64)]) -> std::io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for ((t, p), off) in entries {
        text.push_str(&format!("{t} {p} {off}\n"));
    }
    write_atomically(dir, name, text.as_bytes())
}

/// Replaces `dir/name` with `bytes` atomically: temp file, fsync, rename, fsync
/// of the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}
