//! Strom's storage engine: partition logs made of segments.
//!
//! - [`segment`]: one `.log` file with its sparse `.index` and `.timeindex`.
//! - [`log`]: a partition log, append/read, group-commit fsync, recovery.
//! - [`producers`]: idempotent and transactional producer state, the last
//!   stable offset, producer snapshots.
//! - [`manager`]: the log directories (`log.dirs`), placement of partitions
//!   across them, their checkpoint files and clean-shutdown markers, and a
//!   directory's failure.
//!
//! Layout under each log directory:
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
//! - `<topic>-<partition>.<id>-future/`: a move to this directory in progress
//!   (AlterReplicaLogDirs); `<topic>-<partition>.<ms>-delete/`: a removal.
//!
//! This crate knows nothing of the network or of cluster metadata.
#![deny(unsafe_code)]

pub mod epoch;
pub mod files;
pub mod log;
pub mod manager;
pub mod producers;
pub mod segment;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub use crate::log::{AppendInfo, CopyState, Log, LogConfig, ReadInfo};
pub use crate::manager::{DirHealth, DirView, LogManager};
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

pub type TopicPartition = (String, i32);

/// A resource ran out rather than the disk failing: ENOSPC or EDQUOT (the
/// write changed nothing and may succeed once space is freed), EMFILE or
/// ENFILE (no descriptor to open a file with). It fails neither a log nor its
/// directory.
pub fn is_exhausted(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28) | Some(122) | Some(24) | Some(23))
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Fsyncs the file or directory at `path`, opened for just this. A path that
/// no longer exists (a segment deleted since it was written) needs nothing.
pub(crate) fn sync_path(path: &Path) -> std::io::Result<()> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if f.metadata()?.is_dir() {
        f.sync_all()
    } else {
        f.sync_data()
    }
}

pub(crate) fn read_checkpoint(path: &Path) -> HashMap<TopicPartition, i64> {
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

pub(crate) fn write_checkpoint(dir: &Path, name: &str, entries: &[(TopicPartition, i64)]) -> std::io::Result<()> {
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
