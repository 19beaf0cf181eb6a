//! A partition log: an ordered set of segments, the log end offset, the log start
//! offset and the recovery point (everything below it is fsynced).
//!
//! Concurrency: one `std::sync::Mutex` per partition guards the segment list and
//! offsets. It is held only to validate order, patch offsets and `pwrite`; reads
//! take a snapshot of the segment under the lock and `pread` outside it. fsync runs
//! on the blocking pool without the lock, and many waiters share one fsync (group
//! commit, see [`Log::flush_to`]).
//!
//! Replication: the log also keeps the leader-epoch cache ([`crate::epoch`]) and
//! the high watermark, takes a follower's copy of the leader's batches as they are
//! ([`Log::append_replica`]) and truncates to a divergence point
//! ([`Log::truncate_to`]).
//!
//! Producer state ([`crate::producers`]) lives under the same lock: a client
//! append is checked against it (duplicates, sequences, epochs, transactions)
//! and updates it in the critical section that writes the batches; a follower's
//! append and recovery update it from batch headers. Its snapshots are written
//! at segment roll and at clean shutdown; opening or truncating a log loads
//! the newest usable one and replays the batch headers after it.
//!
//! A failed write or fsync makes the log fail for good ([`Log::is_failed`]): its
//! dirty pages may be gone, so a later fsync that succeeds proves nothing, and
//! nothing more may be acknowledged until a restart recovers the log from disk.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strom_protocol::batch::{self, BatchError, BatchIter, BatchView, LOG_OVERHEAD};
use strom_protocol::records::{decode_batch, rebuild_batch, rebuild_batch_with, BatchBuilder};
use tokio::sync::watch;

use crate::epoch::EpochCache;
use crate::manager::DirHealth;
use crate::producers::{self, AbortedTxn, BatchFacts, PendingAppend, ProducerInfo, ProducerState, NO_SEQUENCE};
use crate::segment::Segment;
use crate::{now_ms, StorageError};

/// The bytes of a batch header the broker patches: base offset (0..8), length
/// (8..12, unchanged) and partition leader epoch (12..16).
pub const PATCHED_HEAD: usize = 16;

/// The per-topic settings the log needs, under Kafka's names in comments.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`
    pub segment_ms: i64,
    /// `max.message.bytes`
    pub max_message_bytes: usize,
    /// `index.interval.bytes`
    pub index_interval_bytes: usize,
    /// `flush.messages`
    pub flush_messages: i64,
    /// `flush.ms`
    pub flush_ms: i64,
    /// `retention.ms` (-1: keep forever)
    pub retention_ms: i64,
    /// `retention.bytes` (-1: no size limit)
    pub retention_bytes: i64,
    /// `cleanup.policy` contains `delete`
    pub delete_enabled: bool,
    /// `cleanup.policy` contains `compact`
    pub compact: bool,
    /// `min.cleanable.dirty.ratio`
    pub min_cleanable_ratio: f64,
    /// `min.compaction.lag.ms`
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long tombstones survive cleaning
    pub delete_retention_ms: i64,
    /// `message.timestamp.type=LogAppendTime`
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`
    pub timestamp_after_max_ms: i64,
    /// `compression.type` other than `producer`: the codec batches are stored in
    pub recompress: Option<strom_protocol::compression::Codec>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1_048_588,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            delete_enabled: true,
            compact: false,
            min_cleanable_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            recompress: None,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_start_offset: i64,
    /// Whether `flush.messages` now asks for a flush.
    pub flush_due: bool,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// The batch was a producer's retry of one already in the log: nothing was
    /// appended, and the offsets (and `log_append_time`) are the original's.
    pub duplicate: bool,
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The last stable offset when the read was made.
    pub last_stable_offset: i64,
}

/// How far a read may go.
#[derive(Clone, Copy)]
enum ReadBound {
    /// The log end (replication).
    End,
    /// Batches starting below this offset (the high watermark).
    Upto(i64),
    /// Batches starting below the last stable offset (read_committed).
    Stable,
}

struct Inner {
    segments: BTreeMap<i64, Segment>,
    next_offset: i64,
    log_start_offset: i64,
    unflushed_messages: i64,
    last_flush_ms: i64,
    /// Files of rolled segments (and the directory) that still need an fsync.
    /// Paths, not open files: a partition holds no descriptor while idle.
    pending_sync: Vec<PathBuf>,
    config: LogConfig,
    /// The partition leader epoch `append` stamps into each batch.
    leader_epoch: i32,
    /// Offsets below this have been compacted (in memory; a restart re-cleans).
    cleaned_upto: i64,
    epochs: EpochCache,
    /// Counts truncations: a flush that began before one must not raise the
    /// recovery point to its (stale) target.
    truncations: u64,
    /// Idempotent and transactional producers, open transactions.
    producers: ProducerState,
}

pub struct Log {
    dir: PathBuf,
    inner: Mutex<Inner>,
    flushing: AtomicBool,
    /// Offset below which everything is fsynced (the recovery point).
    flushed: watch::Sender<i64>,
    /// The log end offset, for fetches waiting on new data.
    end: watch::Sender<i64>,
    /// The high watermark. Changed only under `inner`'s lock (it is clamped to
    /// the log's offsets), read without it.
    hw: watch::Sender<i64>,
    /// Set for good when a write or fsync fails.
    failed: AtomicBool,
    /// The log directory's health: a failure of any log in it fails them all.
    health: Arc<DirHealth>,
}

/// The smallest per-batch bound a follower applies (it takes whatever the leader
/// accepted, whatever its own `max.message.bytes`).
const REPLICA_MIN_BATCH_BOUND: usize = 64 << 20;

impl Log {
    /// Opens (or creates) the log in `dir`. With `clean`, segments are loaded
    /// from their indexes; otherwise every segment from the recovery point on is
    /// scanned with CRC checks and truncated at the first torn or invalid batch.
    /// The high watermark starts at 0 (clamped to the log); see
    /// [`Log::open_with_high_watermark`].
    pub fn open(dir: &Path, config: LogConfig, clean: bool, recovery_point: i64, log_start: i64) -> Result<Log, StorageError> {
        Self::open_with_high_watermark(dir, config, clean, recovery_point, log_start, 0)
    }

    /// [`Log::open`] with a saved high watermark, clamped to [log start, log end].
    ///
    /// The leader-epoch cache is loaded from `leader-epoch-checkpoint` and loses
    /// entries at or after the recovered log end; if the file is missing (a log
    /// written before the cache existed) or unreadable and the log is not empty,
    /// it is rebuilt from the batch headers and written.
    pub fn open_with_high_watermark(
        dir: &Path,
        config: LogConfig,
        clean: bool,
        recovery_point: i64,
        log_start: i64,
        high_watermark: i64,
    ) -> Result<Log, StorageError> {
        std::fs::create_dir_all(dir)?;
        let now = now_ms();
        // A cleaner killed part-way leaves `.cleaned` files; the `.log` files are
        // intact. A snapshot writer leaves `.tmp` files.
        for e in std::fs::read_dir(dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".cleaned") || name.ends_with(".snapshot.tmp") {
                tracing::warn!(file = %e.path().display(), "removing unfinished compaction or snapshot output");
                let _ = std::fs::remove_file(e.path());
            }
        }
        let mut bases: Vec<i64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse::<i64>().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut segments = BTreeMap::new();
        let scan_from = bases.iter().rev().find(|&&b| b <= recovery_point).copied().unwrap_or(i64::MIN);
        let mut cut = false;
        for &base in &bases {
            if cut {
                tracing::warn!(dir = %dir.display(), base, "removing segment after a truncated one");
                remove_segment_files(dir, base);
                continue;
            }
            let seg = if clean || base < scan_from {
                Segment::open_trusted(dir, base, now)?
            } else {
                let (seg, truncated) = Segment::open_recover(dir, base, now)?;
                cut = truncated;
                seg
            };
            segments.insert(base, seg);
        }
        // Drop empty trailing segments other than the first (they carry no offsets).
        let next_offset = segments.values().next_back().map(|s| s.next_offset).unwrap_or(0);
        if segments.is_empty() {
            segments.insert(0, Segment::create(dir, 0, now)?);
        }
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let log_start_offset = log_start.max(first_base).min(next_offset);
        let recovered = recovery_point.min(next_offset).max(0);
        let epochs = load_epochs(dir, &segments, next_offset, log_start_offset)?;
        let leader_epoch = epochs.latest_epoch().unwrap_or(0).max(0);
        // After a crash the transaction indexes of the recovered segments may
        // lack entries: replay from a snapshot no later than the first of them.
        let replay_limit = if clean { next_offset } else { scan_from.max(first_base) };
        let producers = load_producers(dir, &mut segments, next_offset, log_start_offset, replay_limit)?;
        let (flushed, _) = watch::channel(if clean { next_offset } else { recovered });
        let (end, _) = watch::channel(next_offset);
        let (hw, _) = watch::channel(high_watermark.min(next_offset).max(log_start_offset));
        Ok(Log {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                segments,
                next_offset,
                log_start_offset,
                unflushed_messages: 0,
                last_flush_ms: now,
                pending_sync: Vec::new(),
                config,
                leader_epoch,
                cleaned_upto: 0,
                epochs,
                truncations: 0,
                producers,
            }),
            flushing: AtomicBool::new(false),
            flushed,
            end,
            hw,
            failed: AtomicBool::new(false),
            health: DirHealth::standalone(),
        })
    }

    /// Adds files or directories for the next flush to fsync (a new log's
    /// directory and its parent's entry for it).
    pub fn sync_later(&self, paths: Vec<PathBuf>) {
        self.lock().pending_sync.extend(paths);
    }

    /// Shares `health` with the other logs of its directory.
    pub fn with_health(mut self, health: Arc<DirHealth>) -> Self {
        self.health = health;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock poisons it; the data it guards is still
        // consistent at every await-free step, so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn set_config(&self, config: LogConfig) {
        self.lock().config = config;
    }

    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    pub fn log_end_offset(&self) -> i64 {
        *self.end.borrow()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.lock().log_start_offset
    }

    pub fn recovery_point(&self) -> i64 {
        *self.flushed.borrow()
    }

    /// A receiver that changes whenever the log end offset moves.
    pub fn subscribe_end(&self) -> watch::Receiver<i64> {
        self.end.subscribe()
    }

    /// Validates and appends a producer's record set, assigning offsets.
    ///
    /// The record set is written as received: only each batch's first 16 bytes
    /// (base offset, length, leader epoch, none covered by the CRC) are patched,
    /// in a small copy written ahead of the rest, so the common path copies no
    /// record bytes. Topics that rebuild batches (compaction checks, recompression,
    /// LogAppendTime) work on an owned copy.
    pub fn append(&self, data: Bytes) -> Result<AppendInfo, StorageError> {
        self.append_verified(data, None)
    }

    /// [`Log::append`] with KIP-890's guard: with `verified` given, a
    /// transactional batch that would open a transaction on this log is refused
    /// (InvalidTxnState) unless its (producer id, epoch) is among `verified`,
    /// the producers the transaction coordinator confirmed for this partition.
    /// The check runs under the append lock, so a marker that lands between the
    /// coordinator's answer and the append cannot let a late batch open a
    /// transaction nobody will end.
    pub fn append_verified(&self, data: Bytes, verified: Option<&[(i64, i16)]>) -> Result<AppendInfo, StorageError> {
        self.check_failed()?;
        let cfg = self.lock().config.clone();
        let max = cfg.max_message_bytes;
        // CRC work happens before taking the lock.
        batch::validate(&data, max).map_err(map_batch_error)?;
        let now = now_ms();
        let mut rebuilt: Option<Vec<u8>> = None;
        for b in BatchIter::new(&data) {
            let b = b.map_err(map_batch_error)?;
            if b.is_control() {
                let message = "Clients are not allowed to write control records".to_string();
                return Err(StorageError::InvalidRecord { message, records: Vec::new() });
            }
            if !cfg.log_append_time {
                for ts in [b.base_timestamp(), b.max_timestamp()] {
                    let early = ts >= 0 && ts < now.saturating_sub(cfg.timestamp_before_max_ms);
                    let late = ts >= 0 && ts > now.saturating_add(cfg.timestamp_after_max_ms);
                    if early || late {
                        return Err(StorageError::InvalidTimestamp(format!(
                            "timestamp {ts} is outside [now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms]"
                        )));
                    }
                }
            }
            // Compaction needs keys, recompression needs records: only topics that
            // ask for either pay for looking inside.
            let recode = cfg.recompress.filter(|c| c.id() != b.compression() && !b.is_control());
            if cfg.compact || recode.is_some() {
                let records = decode_batch(&b, max).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                if cfg.compact {
                    let keyless: Vec<i32> = records.iter().enumerate().filter(|(_, r)| r.key.is_none()).map(|(i, _)| i as i32).collect();
                    if !keyless.is_empty() {
                        let message = "Compacted topic cannot accept message without key.".to_string();
                        return Err(StorageError::InvalidRecord { message, records: keyless });
                    }
                }
                let out = rebuilt.get_or_insert_with(Vec::new);
                match recode {
                    Some(codec) => {
                        out.extend_from_slice(&rebuild_batch_with(&b, &records, codec).map_err(|e| StorageError::Corrupt(e.to_string()))?)
                    }
                    None => out.extend_from_slice(b.bytes()),
                }
            } else if let Some(out) = rebuilt.as_mut() {
                out.extend_from_slice(b.bytes());
            }
        }
        if cfg.log_append_time {
            let owned = rebuilt.get_or_insert_with(|| data.to_vec());
            let mut at = 0;
            while at < owned.len() {
                let len = BatchView::parse(&owned[at..]).map_err(map_batch_error)?.total_len();
                batch::set_log_append_time(&mut owned[at..at + len], now);
                at += len;
            }
        }
        let data: &[u8] = rebuilt.as_deref().unwrap_or(&data);
        let mut inner = self.lock();
        self.check_failed()?;
        let epoch = inner.leader_epoch;
        let base_offset = inner.next_offset;
        let mut next = base_offset;
        let mut placed = Vec::new();
        let mut heads = Vec::new();
        let mut pending = PendingAppend::default();
        let mut at = 0usize;
        while at < data.len() {
            let v = BatchView::parse(&data[at..]).map_err(map_batch_error)?;
            let (len, delta, max_ts) = (v.total_len(), v.last_offset_delta(), v.max_timestamp());
            // Batches without a producer id (the common case) cost nothing here.
            if v.producer_id() >= 0 {
                let mut facts = BatchFacts::parse(v.bytes()).ok_or_else(|| StorageError::Corrupt("short batch header".into()))?;
                facts.base_offset = next;
                if let Some(ok) = verified {
                    let opens = at == 0 && inner.producers.needs_verification(&facts).is_some();
                    if opens && !ok.contains(&(facts.producer_id, facts.producer_epoch)) {
                        return Err(StorageError::InvalidTxnState(format!(
                            "producer {} (epoch {}) has no verified transaction on this partition",
                            facts.producer_id, facts.producer_epoch
                        )));
                    }
                }
                if let Some(d) = inner.producers.check_client(&mut pending, &facts)? {
                    let log_append_time = if cfg.log_append_time { d.max_timestamp } else { -1 };
                    let log_start_offset = inner.log_start_offset;
                    let (base_offset, last_offset) = (d.base_offset, d.last_offset);
                    return Ok(AppendInfo {
                        base_offset,
                        last_offset,
                        log_start_offset,
                        flush_due: false,
                        log_append_time,
                        duplicate: true,
                    });
                }
            }
            let mut head = [0u8; PATCHED_HEAD];
            head.copy_from_slice(&data[at..at + PATCHED_HEAD]);
            batch::patch_offsets(&mut head, next, epoch);
            heads.push(head);
            placed.push((at, next, max_ts, len));
            next += delta as i64 + 1;
            at += len;
        }
        let (flush_due, log_start_offset) = self.write_locked(&mut inner, data, &heads, &placed, next, now)?;
        if !pending.is_empty() {
            inner.producers.commit(pending);
        }
        drop(inner);
        let log_append_time = if cfg.log_append_time { now } else { -1 };
        Ok(AppendInfo { base_offset, last_offset: next - 1, log_start_offset, flush_due, log_append_time, duplicate: false })
    }

    /// Writes batches whose offsets were assigned (`heads`, `placed`, as for
    /// [`Segment::append`]) at the log end in the current leader epoch, rolling
    /// first if needed. Returns (`flush.messages` reached, log start offset).
    fn write_locked(
        &self,
        inner: &mut Inner,
        data: &[u8],
        heads: &[[u8; PATCHED_HEAD]],
        placed: &[(usize, i64, i64, usize)],
        next: i64,
        now: i64,
    ) -> Result<(bool, i64), StorageError> {
        let epoch = inner.leader_epoch;
        let base_offset = inner.next_offset;
        if inner.epochs.latest_epoch().is_none_or(|latest| epoch > latest) {
            inner.epochs.assign(epoch, base_offset);
        }
        // The epoch a batch carries is on disk before the batch (it may have
        // been assigned, unwritten, while the log had nothing in it).
        if !inner.epochs.is_persisted() {
            self.persist_epochs(inner)?;
        }
        self.maybe_roll(inner, data.len() as u64, base_offset, next - 1, now).map_err(|e| self.write_failed("rolling a segment", e))?;
        let interval = inner.config.index_interval_bytes;
        let active = inner.segments.values_mut().next_back().ok_or(StorageError::Offline)?;
        active.append(data, heads, placed, next, interval).map_err(|e| self.write_failed("writing", e))?;
        inner.next_offset = next;
        inner.unflushed_messages += next - base_offset;
        let flush_due = inner.unflushed_messages >= inner.config.flush_messages;
        // Under the lock, so a truncation cannot be overtaken by a stale end.
        self.end.send_replace(next);
        Ok((flush_due, inner.log_start_offset))
    }

    /// Writes a transaction marker (a control batch: COMMIT if `commit`, else
    /// ABORT) for `producer_id` at the log end, in the current leader epoch,
    /// and completes the producer's ongoing transaction, if any. An aborted
    /// transaction goes into the active segment's transaction index.
    ///
    /// Refused with `InvalidProducerEpoch` if `producer_epoch` is older than the
    /// producer's, and `CoordinatorFenced` if `coordinator_epoch` is older than
    /// that of the producer's last marker.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
    ) -> Result<AppendInfo, StorageError> {
        self.check_failed()?;
        let now = now_ms();
        let mut b = BatchBuilder::new(now).producer(producer_id, producer_epoch, NO_SEQUENCE).transactional(true).control(true);
        b.push(producers::marker_record(commit, coordinator_epoch));
        let data = b.build(strom_protocol::compression::Codec::None).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let mut inner = self.lock();
        self.check_failed()?;
        inner.producers.check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let offset = inner.next_offset;
        let mut head = [0u8; PATCHED_HEAD];
        head.copy_from_slice(&data[..PATCHED_HEAD]);
        batch::patch_offsets(&mut head, offset, inner.leader_epoch);
        let placed = [(0usize, offset, now, data.len())];
        let (flush_due, log_start_offset) = self.write_locked(&mut inner, &data, &[head], &placed, offset + 1, now)?;
        let mut facts = BatchFacts::parse(&data).ok_or_else(|| StorageError::Corrupt("short marker batch".into()))?;
        facts.base_offset = offset;
        self.apply_facts(&mut inner, &facts)?;
        Ok(AppendInfo { base_offset: offset, last_offset: offset, log_start_offset, flush_due, log_append_time: -1, duplicate: false })
    }

    /// Applies a batch just written at the log end to the producer state; an
    /// aborted transaction goes into the active segment's transaction index,
    /// fsynced with the next flush.
    fn apply_facts(&self, inner: &mut Inner, facts: &BatchFacts) -> Result<(), StorageError> {
        let Some(entry) = inner.producers.apply(facts) else {
            return Ok(());
        };
        let active = inner.segments.values_mut().next_back().ok_or(StorageError::Offline)?;
        let files = active.append_aborted(entry).map_err(|e| self.fail("writing the transaction index", e))?;
        inner.pending_sync.extend(files);
        Ok(())
    }

    /// Rolls to a new segment based at `first_base` if the active one cannot take
    /// `incoming` bytes of batches from `first_base` to `last_offset` (size, age,
    /// index entries, offsets relative to its base). An empty active segment
    /// that is rolled (only for offsets, after a gap) is replaced, not kept.
    fn maybe_roll(&self, inner: &mut Inner, incoming: u64, first_base: i64, last_offset: i64, now: i64) -> io::Result<()> {
        let (segment_bytes, segment_ms) = (inner.config.segment_bytes, inner.config.segment_ms);
        let Some(active) = inner.segments.values().next_back() else {
            return Ok(());
        };
        let full = active.size > 0 && active.size + incoming > segment_bytes;
        let old = active.size > 0 && now - active.created_ms >= segment_ms;
        let index_full = active.index.len() >= (1 << 20) || last_offset - active.base_offset >= u32::MAX as i64;
        if !(full || old || index_full) || active.base_offset == first_base {
            return Ok(());
        }
        if active.size == 0 {
            let base = active.base_offset;
            inner.segments.remove(&base);
            delete_segment_files(&self.dir, base)?;
        } else {
            let log = active.log.path().to_path_buf();
            let indexes = inner.segments.values_mut().next_back().map(|s| s.persist_indexes()).transpose()?;
            inner.pending_sync.push(log);
            inner.pending_sync.extend(indexes.into_iter().flatten());
        }
        let seg = Segment::create(&self.dir, first_base, now)?;
        inner.segments.insert(first_base, seg);
        // The snapshot is only a shortcut for recovery: without it the log
        // headers are replayed, so a failure to write it fails nothing.
        if let Err(e) = self.write_snapshot(inner, first_base, false) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write a producer snapshot");
        }
        inner.pending_sync.push(self.dir.clone());
        tracing::debug!(dir = %self.dir.display(), base = first_base, "rolled segment");
        Ok(())
    }

    /// Appends a follower's copy of the leader's batches as they are: offsets
    /// and partition leader epochs stay the leader's, and the bytes go to the
    /// segment without a copy.
    ///
    /// Each batch must be a v2 batch with a correct CRC, at most
    /// max(`max.message.bytes`, 64 MiB) long; batches must ascend and the first
    /// must start at or after the log end offset (a compacted leader leaves
    /// gaps), else `Corrupt`. A partial batch at the end (a fetch response may
    /// carry one) is left out; a record set holding no whole batch is `Corrupt`.
    /// A batch whose epoch differs from the latest cached one starts that epoch
    /// in the leader-epoch cache (Kafka's `assign`), which is persisted before
    /// the batches are written. Returns `None` for an empty record set.
    pub fn append_replica(&self, data: Bytes) -> Result<Option<AppendInfo>, StorageError> {
        self.check_failed()?;
        if data.is_empty() {
            return Ok(None);
        }
        let max = self.lock().config.max_message_bytes.max(REPLICA_MIN_BATCH_BOUND);
        // (position, base offset, max timestamp, length) and (epoch, last offset) per batch.
        let mut placed: Vec<(usize, i64, i64, usize)> = Vec::new();
        let mut marks: Vec<(i32, i64)> = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            let v = match BatchView::parse(&data[at..]) {
                Ok(v) => v,
                Err(BatchError::Truncated { .. }) if !placed.is_empty() => break,
                Err(e) => return Err(map_batch_error(e)),
            };
            check_replica_batch(&v, max)?;
            if let Some(&(_, prev_last)) = marks.last() {
                if v.base_offset() <= prev_last {
                    return Err(StorageError::Corrupt(format!(
                        "replica batch at offset {} does not follow the previous one ending at {prev_last}",
                        v.base_offset()
                    )));
                }
            }
            placed.push((at, v.base_offset(), v.max_timestamp(), v.total_len()));
            marks.push((v.leader_epoch(), v.last_offset()));
            at += v.total_len();
        }
        if at < data.len() {
            tracing::debug!(dir = %self.dir.display(), bytes = data.len() - at, "left out a partial batch at the end of a replica record set");
        }
        let first = placed[0].1;
        let now = now_ms();
        let mut inner = self.lock();
        self.check_failed()?;
        if first < inner.next_offset {
            return Err(StorageError::Corrupt(format!(
                "replica batch at offset {first} is below the log end offset {}",
                inner.next_offset
            )));
        }
        for (&(_, base, _, _), &(epoch, _)) in placed.iter().zip(&marks) {
            inner.epochs.assign(epoch, base);
        }
        // Written only if it differs from the file.
        self.persist_epochs(&mut inner)?;
        let interval = inner.config.index_interval_bytes;
        // Normally one chunk; a set spanning more offsets than a segment can
        // index (gaps from compaction) goes to several segments.
        let mut i = 0;
        while i < placed.len() {
            let chunk_base = placed[i].1;
            let mut j = i + 1;
            while j < placed.len() && marks[j].1 - chunk_base < u32::MAX as i64 {
                j += 1;
            }
            let lo = placed[i].0;
            let hi = placed[j - 1].0 + placed[j - 1].3;
            let last = marks[j - 1].1;
            self.maybe_roll(&mut inner, (hi - lo) as u64, chunk_base, last, now).map_err(|e| self.write_failed("rolling a segment", e))?;
            let batches: Vec<_> = placed[i..j].iter().map(|&(p, b, t, l)| (p - lo, b, t, l)).collect();
            let active = inner.segments.values_mut().next_back().ok_or(StorageError::Offline)?;
            active.append_raw(&data[lo..hi], &batches, last + 1, interval).map_err(|e| self.write_failed("writing", e))?;
            inner.next_offset = last + 1;
            for &(p, _, _, l) in &placed[i..j] {
                self.apply_replica_batch(&mut inner, &data[p..p + l])?;
            }
            i = j;
        }
        let next = inner.next_offset;
        inner.unflushed_messages += next - first;
        let flush_due = inner.unflushed_messages >= inner.config.flush_messages;
        let log_start_offset = inner.log_start_offset;
        self.end.send_replace(next);
        drop(inner);
        Ok(Some(AppendInfo {
            base_offset: first,
            last_offset: next - 1,
            log_start_offset,
            flush_due,
            log_append_time: -1,
            duplicate: false,
        }))
    }

    /// Updates the producer state from a batch a follower just stored, as the
    /// leader did when it appended it (no checks: the leader made them).
    fn apply_replica_batch(&self, inner: &mut Inner, bytes: &[u8]) -> Result<(), StorageError> {
        if bytes.len() < batch::HEADER_LEN || i64::from_be_bytes(head8(bytes, 43)) < 0 {
            return Ok(());
        }
        match BatchFacts::parse(bytes) {
            Some(facts) => self.apply_facts(inner, &facts),
            None => Ok(()),
        }
    }

    /// Writes the producer state as of `offset` (which must be the log end, or
    /// a segment base the state has reached) to `<offset>.snapshot`, keeping
    /// the two newest snapshots. With `sync`, fsyncs it and the directory now;
    /// otherwise with the next flush.
    fn write_snapshot(&self, inner: &mut Inner, offset: i64, sync: bool) -> io::Result<()> {
        let name = producers::snapshot_name(offset);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&inner.producers.encode(offset))?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(&name))?;
        if sync {
            crate::sync_dir(&self.dir)?;
        } else {
            drop(f);
            inner.pending_sync.push(self.dir.join(&name));
            inner.pending_sync.push(self.dir.clone());
        }
        let snapshots = inner.producers.snapshots_mut();
        snapshots.insert(offset);
        while snapshots.len() > 2 {
            let Some(oldest) = snapshots.pop_first() else { break };
            remove_snapshot(&self.dir, oldest);
        }
        Ok(())
    }

    /// Writes a snapshot of the producer state at the log end, fsynced, unless
    /// one exists there: called at clean shutdown so the next start replays
    /// nothing.
    pub fn checkpoint_producers(&self) -> Result<(), StorageError> {
        self.check_failed()?;
        let mut inner = self.lock();
        let end = inner.next_offset;
        // An empty log replays nothing at the next open: no snapshot needed
        // (100,000 idle partitions would cost two fsyncs each at shutdown).
        if inner.producers.snapshots().contains(&end) || inner.segments.values().all(|s| s.size == 0) {
            return Ok(());
        }
        self.write_snapshot(&mut inner, end, true)?;
        Ok(())
    }

    /// KIP-890: if the first batch of `data` is transactional and its producer
    /// has no ongoing transaction in this log at that epoch, `Some((producer
    /// id, epoch))`: the caller must have the transaction coordinator confirm
    /// that this partition belongs to the producer's transaction before
    /// appending (else a late batch could open a transaction nobody ends).
    pub fn needs_verification(&self, data: &[u8]) -> Option<(i64, i16)> {
        let facts = BatchFacts::parse(data)?;
        if !facts.transactional || facts.producer_id < 0 {
            return None;
        }
        self.lock().producers.needs_verification(&facts)
    }

    /// The last stable offset: the first offset of the oldest transaction not
    /// yet completed (or completed by a marker not yet below the high
    /// watermark), at most the high watermark. read_committed reads stop here.
    pub fn last_stable_offset(&self) -> i64 {
        let mut inner = self.lock();
        let hw = *self.hw.borrow();
        inner.producers.last_stable_offset(hw)
    }

    /// The producers this log knows (DescribeProducers), by producer id.
    pub fn producers(&self) -> Vec<ProducerInfo> {
        self.lock().producers.producers()
    }

    /// Forgets producers without an ongoing transaction whose last write is
    /// `expiration_ms` (`producer.id.expiration.ms`) older than `now`. Returns
    /// how many went; their next batch is treated as an unknown producer's.
    pub fn expire_producers(&self, now: i64, expiration_ms: i64) -> usize {
        self.lock().producers.expire(now, expiration_ms)
    }

    /// A read_committed read: [`Log::read_upto`] bounded by the last stable
    /// offset, with the aborted transactions overlapping the returned batches
    /// (last offset at or after `offset`, first offset below the end of the
    /// data), by first offset.
    pub fn read_committed(&self, offset: i64, max_bytes: usize) -> Result<(ReadInfo, Vec<AbortedTxn>), StorageError> {
        let info = self.read_bounded(offset, max_bytes, ReadBound::Stable)?;
        let end = BatchIter::new(&info.records).map_while(|b| b.ok()).last().map(|b| b.last_offset() + 1);
        let aborted = match end {
            Some(end) => self.aborted_between(offset, end),
            None => Vec::new(),
        };
        Ok((info, aborted))
    }

    /// Aborted transactions with a last offset >= `start` and a first offset <
    /// `end`, by first offset. Searches the transaction indexes from the
    /// segment holding `start` on, until an entry's last stable offset shows
    /// that every transaction starting below `end` had completed.
    fn aborted_between(&self, start: i64, end: i64) -> Vec<AbortedTxn> {
        let inner = self.lock();
        let from = inner.segments.range(..=start).next_back().map(|(&b, _)| b).unwrap_or(i64::MIN);
        let mut out = Vec::new();
        for seg in inner.segments.range(from..).map(|(_, s)| s) {
            let mut complete = false;
            for e in &seg.aborted {
                if e.txn.last_offset >= start && e.txn.first_offset < end {
                    out.push(e.txn);
                }
                complete |= e.last_stable_offset >= end;
            }
            if complete {
                break;
            }
        }
        drop(inner);
        out.sort_by_key(|t| t.first_offset);
        out
    }

    /// Becomes leader at `epoch`: later [`Log::append`]s stamp it into their
    /// batches, and if it is newer than the latest cached epoch, it starts at the
    /// log end offset in the leader-epoch cache (persisted). Idempotent.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        self.check_failed()?;
        let mut inner = self.lock();
        self.check_failed()?;
        inner.leader_epoch = epoch;
        let end = inner.next_offset;
        // An entry starting at the log end needs no fsync yet: every open cuts
        // such entries anyway, and the first append in the epoch persists the
        // cache before its batch (see `write_locked`).
        if inner.epochs.latest_epoch().is_none_or(|latest| epoch > latest) {
            inner.epochs.assign(epoch, end);
        }
        Ok(())
    }

    /// The latest epoch in the leader-epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.lock().epochs.latest_epoch()
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: (epoch, end offset) for
    /// OffsetsForLeaderEpoch; (-1, -1) for an epoch newer than any cached (or an
    /// empty cache). See [`EpochCache::end_offset_for`].
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let inner = self.lock();
        inner.epochs.end_offset_for(epoch, inner.next_offset)
    }

    /// The leader-epoch cache: (epoch, start offset), ascending.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.lock().epochs.entries().to_vec()
    }

    /// Removes every batch at or after `offset`; a batch holding `offset` goes
    /// whole, so the new end may be below `offset`. Later segments are deleted,
    /// the containing one is cut (log file, fsynced, and both indexes); the
    /// epoch cache loses entries from the new end on; the recovery point, the
    /// high watermark and the log start offset come down to the new end if above
    /// it. Below the first segment, this is
    /// [`Log::truncate_fully_and_start_at`]. At or past the log end nothing is
    /// removed, but cache entries starting at the log end go (an epoch this
    /// replica began as leader without writing in it), as in Kafka. Returns the
    /// new log end offset.
    pub fn truncate_to(&self, offset: i64) -> Result<i64, StorageError> {
        self.check_failed()?;
        let mut inner = self.lock();
        self.check_failed()?;
        let end = inner.next_offset;
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange { offset, start: inner.log_start_offset, end });
        }
        if offset >= end {
            if inner.epochs.truncate_from_end(end) {
                self.persist_epochs(&mut inner)?;
            }
            return Ok(end);
        }
        if inner.segments.keys().next().is_none_or(|&first| offset < first) {
            self.reset_locked(&mut inner, offset)?;
            return Ok(offset);
        }
        let doomed: Vec<i64> = inner.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        for base in &doomed {
            inner.segments.remove(base);
            delete_segment_files(&self.dir, *base).map_err(|e| self.fail("deleting a truncated segment", e))?;
        }
        if !doomed.is_empty() {
            crate::sync_dir(&self.dir).map_err(|e| self.fail("syncing the log directory", e))?;
        }
        let active = inner.segments.values_mut().next_back().ok_or(StorageError::Offline)?;
        let new_end = active.truncate_at_offset(offset).and_then(|n| active.log.get()?.sync_data().map(|()| n));
        let new_end = new_end.map_err(|e| self.fail("truncating", e))?;
        inner.next_offset = new_end;
        inner.log_start_offset = inner.log_start_offset.min(new_end);
        inner.cleaned_upto = inner.cleaned_upto.min(new_end);
        inner.truncations += 1;
        if inner.epochs.truncate_from_end(new_end) {
            self.persist_epochs(&mut inner)?;
        }
        self.rebuild_producers(&mut inner)?;
        self.flushed.send_if_modified(|v| lower(v, new_end));
        self.hw.send_if_modified(|v| lower(v, new_end));
        self.end.send_replace(new_end);
        drop(inner);
        tracing::info!(dir = %self.dir.display(), from = end, to = new_end, requested = offset, "truncated log");
        Ok(new_end)
    }

    /// Deletes every segment and starts an empty log at `offset` (log start =
    /// log end = high watermark = recovery point = `offset`), with an empty
    /// leader-epoch cache. For a follower whose fetch offset is below the
    /// leader's log start.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        self.check_failed()?;
        let mut inner = self.lock();
        self.check_failed()?;
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange { offset, start: inner.log_start_offset, end: inner.next_offset });
        }
        self.reset_locked(&mut inner, offset)
    }

    fn reset_locked(&self, inner: &mut Inner, offset: i64) -> Result<(), StorageError> {
        let from = inner.next_offset;
        // The cache goes first: should a crash leave segments behind, an empty
        // cache next to a non-empty log is rebuilt from it at the next open.
        inner.epochs.clear();
        self.persist_epochs(inner)?;
        let bases: Vec<i64> = inner.segments.keys().copied().collect();
        inner.segments.clear();
        inner.pending_sync.clear();
        for base in bases {
            delete_segment_files(&self.dir, base).map_err(|e| self.fail("deleting a segment", e))?;
        }
        let seg = Segment::create(&self.dir, offset, now_ms()).map_err(|e| self.fail("creating a segment", e))?;
        inner.segments.insert(offset, seg);
        crate::sync_dir(&self.dir).map_err(|e| self.fail("syncing the log directory", e))?;
        inner.next_offset = offset;
        inner.log_start_offset = offset;
        inner.cleaned_upto = offset;
        inner.unflushed_messages = 0;
        inner.truncations += 1;
        inner.producers.clear();
        for s in std::mem::take(inner.producers.snapshots_mut()) {
            remove_snapshot(&self.dir, s);
        }
        self.flushed.send_replace(offset);
        self.hw.send_replace(offset);
        self.end.send_replace(offset);
        tracing::info!(dir = %self.dir.display(), from, to = offset, "replaced the log by an empty one");
        Ok(())
    }

    /// Rebuilds the producer state after a truncation: from the newest usable
    /// snapshot at or below the log end (later ones are deleted), replaying
    /// the batch headers after it; transaction-index entries from the
    /// snapshot on are rebuilt too.
    fn rebuild_producers(&self, inner: &mut Inner) -> Result<(), StorageError> {
        let end = inner.next_offset;
        let stale: Vec<i64> = inner.producers.snapshots().range(end + 1..).copied().collect();
        for s in stale {
            inner.producers.snapshots_mut().remove(&s);
            remove_snapshot(&self.dir, s);
        }
        inner.producers.clear();
        let from = restore_snapshot(&self.dir, &mut inner.producers, end);
        let from = from.unwrap_or_else(|| inner.segments.keys().next().copied().unwrap_or(0));
        let touched = replay(&mut inner.segments, &mut inner.producers, from).map_err(|e| self.fail("rebuilding producer state", e))?;
        for f in touched {
            crate::sync_path(&f).map_err(|e| self.fail("syncing a transaction index", e))?;
        }
        inner.producers.evict_below(inner.log_start_offset);
        Ok(())
    }

    /// The high watermark, within [log start, log end].
    pub fn high_watermark(&self) -> i64 {
        *self.hw.borrow()
    }

    /// Sets the high watermark, clamped to [log start, log end]; it may go down.
    /// Subscribers hear of it only if it changed.
    pub fn set_high_watermark(&self, hw: i64) {
        let inner = self.lock();
        let hw = hw.min(inner.next_offset).max(inner.log_start_offset);
        self.hw.send_if_modified(|v| {
            let changed = *v != hw;
            *v = hw;
            changed
        });
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn subscribe_hw(&self) -> watch::Receiver<i64> {
        self.hw.subscribe()
    }

    /// Whether a write or fsync of this log, or of another log in its
    /// directory, has failed. Once set, reads, appends, truncations, epoch
    /// changes and flushes fail with `Offline` until a restart recovers the
    /// log from what is on disk.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire) || self.health.is_offline()
    }

    fn check_failed(&self) -> Result<(), StorageError> {
        if self.is_failed() {
            return Err(StorageError::Offline);
        }
        Ok(())
    }

    /// Marks the log failed (logging it the first time) and wraps the error.
    /// A write that the kernel refused for lack of space (ENOSPC, EDQUOT) put
    /// nothing in the page cache, and the log's end did not move, so the next
    /// append simply rewrites the same place: the log stays usable (a full disk
    /// recovers without a restart). The same holds when a roll found no free
    /// descriptor (EMFILE, ENFILE). Any other write error is sticky, see [`Log::fail`].
    fn write_failed(&self, what: &str, e: io::Error) -> StorageError {
        if crate::is_exhausted(&e) {
            return StorageError::Io(e);
        }
        self.fail(what, e)
    }

    fn fail(&self, what: &str, e: io::Error) -> StorageError {
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::error!(dir = %self.dir.display(), error = %e, "{what} failed; the log takes no more writes until a restart recovers it");
            // The disk failed, so its other logs are suspect too; running out of
            // descriptors or space says nothing about them, nor does a file
            // that vanished with its partition's directory (a deleted or
            // moved log, reopened through the descriptor cache).
            if !crate::is_exhausted(&e) && e.kind() != io::ErrorKind::NotFound {
                self.health.mark_offline(&format!("{what} {}: {e}", self.dir.display()));
            }
        }
        StorageError::Io(e)
    }

    fn persist_epochs(&self, inner: &mut Inner) -> Result<(), StorageError> {
        inner.epochs.persist().map_err(|e| self.fail("writing the leader-epoch checkpoint", e))
    }

    /// After the log start moved up: keeps the high watermark at or above it and
    /// trims the epoch cache (best effort: stale entries below the log start are
    /// harmless and trimmed again at the next open).
    fn after_log_start_moved(&self, inner: &mut Inner) {
        let start = inner.log_start_offset;
        self.hw.send_if_modified(|v| {
            let changed = *v < start;
            *v = (*v).max(start);
            changed
        });
        inner.producers.evict_below(start);
        if inner.epochs.truncate_from_start(start) {
            if let Err(e) = inner.epochs.persist() {
                tracing::warn!(dir = %self.dir.display(), error = %e, "could not write the leader-epoch checkpoint");
            }
        }
    }

    /// Reads whole batches starting with the one holding `offset`, up to
    /// `max_bytes` (at least one batch, whatever its size). If compaction left
    /// nothing at or after `offset` in its segment, reading continues in the
    /// following segments, so a consumer never stalls on a gap.
    ///
    /// `ReadInfo::high_watermark` is the log end offset here; see
    /// [`Log::read_upto`] for reads bounded by the high watermark.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, StorageError> {
        self.read_bounded(offset, max_bytes, ReadBound::End)
    }

    /// Like [`Log::read`], but returns only batches whose base offset is below
    /// `max_offset` (the high watermark, for consumers): none if `offset >=
    /// max_offset`. Offsets outside [log start, log end] are still out of range.
    /// `ReadInfo::high_watermark` is [`Log::high_watermark`].
    pub fn read_upto(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadInfo, StorageError> {
        self.read_bounded(offset, max_bytes, ReadBound::Upto(max_offset))
    }

    fn read_bounded(&self, offset: i64, max_bytes: usize, bound: ReadBound) -> Result<ReadInfo, StorageError> {
        self.check_failed()?;
        let (candidates, hw, log_start, lso, max_offset) = {
            let mut inner = self.lock();
            let end = inner.next_offset;
            if offset < inner.log_start_offset || offset > end {
                return Err(StorageError::OffsetOutOfRange { offset, start: inner.log_start_offset, end });
            }
            let real_hw = *self.hw.borrow();
            let lso = inner.producers.last_stable_offset(real_hw);
            let (hw, max_offset) = match bound {
                ReadBound::End => (end, None),
                ReadBound::Upto(m) => (real_hw, Some(m)),
                ReadBound::Stable => (real_hw, Some(lso)),
            };
            if max_offset.is_some_and(|m| offset >= m) {
                let log_start_offset = inner.log_start_offset;
                return Ok(ReadInfo { records: Bytes::new(), high_watermark: hw, log_start_offset, last_stable_offset: lso });
            }
            let containing = inner.segments.range(..=offset).next_back().map(|(_, s)| s);
            let later = inner.segments.range(offset + 1..).map(|(_, s)| s);
            // Only the segment that will answer is opened: almost always the first.
            let candidates: Vec<(&Segment, u64, u64)> = containing
                .into_iter()
                .chain(later)
                .filter(|s| s.next_offset > offset && s.size > 0)
                .map(|s| (s, if s.base_offset <= offset { s.lookup(offset) } else { 0 }, s.size))
                .collect();
            let candidates: Vec<(crate::files::LogFile, u64, u64)> =
                candidates.into_iter().map(|(s, start, end)| (s.log.clone(), start, end)).collect();
            (candidates, hw, inner.log_start_offset, lso, max_offset)
        };
        let mut records = Bytes::new();
        for (file, start, end) in candidates {
            records = read_batches(&*file.get()?, start, end, offset, max_bytes)?;
            if !records.is_empty() {
                break;
            }
        }
        if let Some(max_offset) = max_offset {
            let mut keep = 0;
            for b in BatchIter::new(&records) {
                match b {
                    Ok(b) if b.base_offset() < max_offset => keep += b.total_len(),
                    _ => break,
                }
            }
            records.truncate(keep);
        }
        Ok(ReadInfo { records, high_watermark: hw, log_start_offset: log_start, last_stable_offset: lso })
    }

    /// The first offset whose batch has a max timestamp >= `ts`, with that
    /// batch's bytes so the caller can find the exact record. `None` if no batch.
    pub fn find_by_timestamp(&self, ts: i64) -> Result<Option<Bytes>, StorageError> {
        let candidates: Vec<(crate::files::LogFile, u64, u64)> = {
            let inner = self.lock();
            inner
                .segments
                .values()
                .filter(|s| s.max_timestamp >= ts && s.size > 0)
                .map(|s| (s.log.clone(), s.lookup_time(ts), s.size))
                .collect()
        };
        for (file, start, end) in candidates {
            let file = file.get()?;
            let mut pos = start;
            while pos < end {
                let batch = read_one_batch(&file, pos, end)?;
                let Some(batch) = batch else { break };
                let v = BatchView::parse(&batch).map_err(map_batch_error)?;
                if v.max_timestamp() >= ts {
                    return Ok(Some(batch));
                }
                pos += v.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// The batch holding the largest timestamp in the log (first one on ties).
    pub fn max_timestamp_batch(&self) -> Result<Option<Bytes>, StorageError> {
        let best = {
            let inner = self.lock();
            let max = inner.segments.values().map(|s| s.max_timestamp).max().unwrap_or(-1);
            if max < 0 {
                return Ok(None);
            }
            max
        };
        self.find_by_timestamp(best)
    }

    /// Deletes whole segments that fall out of `retention.ms` (their largest
    /// timestamp is older) or `retention.bytes` (oldest first while the log is
    /// over the limit), and advances the log start offset. The active segment is
    /// never deleted. The lock is held only to unlink segments from the map;
    /// readers that already hold a segment's file keep reading it. Returns the
    /// number of segments deleted.
    pub fn delete_old_segments(&self, now: i64) -> Result<usize, StorageError> {
        let doomed: (Vec<Segment>, Vec<i64>) = {
            let mut inner = self.lock();
            let cfg = inner.config.clone();
            if !cfg.delete_enabled {
                return Ok(0);
            }
            let mut total: i64 = inner.segments.values().map(|s| s.size as i64).sum();
            let active = inner.segments.keys().next_back().copied();
            // An open transaction (or one whose marker is not yet replicated)
            // still needs its data.
            let unstable = inner.producers.first_unstable_offset(*self.hw.borrow());
            let mut out = Vec::new();
            while let Some((&base, seg)) = inner.segments.iter().next() {
                if Some(base) == active || seg.next_offset > unstable {
                    break;
                }
                let by_time = cfg.retention_ms >= 0 && seg.max_timestamp >= 0 && now - seg.max_timestamp > cfg.retention_ms;
                let by_size = cfg.retention_bytes >= 0 && total - seg.size as i64 >= cfg.retention_bytes;
                if !(by_time || by_size) {
                    break;
                }
                total -= seg.size as i64;
                if let Some(seg) = inner.segments.remove(&base) {
                    out.push(seg);
                }
            }
            if let Some((&next_base, _)) = inner.segments.iter().next() {
                if !out.is_empty() {
                    inner.log_start_offset = inner.log_start_offset.max(next_base);
                    self.after_log_start_moved(&mut inner);
                }
            }
            (out, drop_snapshots_below(&mut inner))
        };
        let (doomed, snapshots) = doomed;
        for s in snapshots {
            remove_snapshot(&self.dir, s);
        }
        let n = doomed.len();
        for seg in doomed {
            tracing::info!(dir = %self.dir.display(), base = seg.base_offset, bytes = seg.size, "deleting segment out of retention");
            for ext in crate::segment::EXTENSIONS {
                let _ = std::fs::remove_file(self.dir.join(crate::segment::file_name(seg.base_offset, ext)));
            }
        }
        Ok(n)
    }

    /// Compacts the log when `cleanup.policy` includes `compact` and enough of it
    /// is dirty (`min.cleanable.dirty.ratio`, or a dirty segment older than
    /// `max.compaction.lag.ms`). Only non-active segments at least
    /// `min.compaction.lag.ms` old are cleaned. Each keeps, per key, only the
    /// latest record among the cleaned segments; tombstones older than
    /// `delete.retention.ms` go too. Offsets are kept, leaving gaps.
    ///
    /// Crash safety: a segment's cleaned copy is written to `<base>.cleaned`,
    /// fsynced, and renamed over `<base>.log`; until that rename the original is
    /// untouched, and leftovers are removed at the next open. The latest record of
    /// a key is never dropped. Returns the number of segments rewritten.
    ///
    /// Transactions: only segments below the first unstable offset are
    /// cleaned, so no open transaction is touched. Control batches (markers)
    /// and each producer's newest data batch (its state at the next replay)
    /// are kept whole; batches of aborted transactions are dropped and do not
    /// shadow older values of their keys.
    pub fn compact(&self, now: i64) -> Result<usize, StorageError> {
        let (cfg, eligible, cleaned_upto, txns) = {
            let mut inner = self.lock();
            if !inner.config.compact {
                return Ok(0);
            }
            let active = inner.segments.keys().next_back().copied();
            let lag = inner.config.min_compaction_lag_ms;
            let unstable = inner.producers.first_unstable_offset(*self.hw.borrow());
            let eligible: Vec<(i64, crate::files::LogFile, u64, i64, i64)> = inner
                .segments
                .values()
                .take_while(|s| Some(s.base_offset) != active && s.next_offset <= unstable)
                .take_while(|s| lag <= 0 || s.max_timestamp <= now.saturating_sub(lag))
                .map(|s| (s.base_offset, s.log.clone(), s.size, s.next_offset, s.max_timestamp))
                .collect();
            (inner.config.clone(), eligible, inner.cleaned_upto, TxnView::of(&inner))
        };
        let total: u64 = eligible.iter().map(|e| e.2).sum();
        let dirty: u64 = eligible.iter().filter(|e| e.3 > cleaned_upto).map(|e| e.2).sum();
        if dirty == 0 || total == 0 {
            return Ok(0);
        }
        let overdue = eligible.iter().any(|e| e.3 > cleaned_upto && e.4 >= 0 && now.saturating_sub(e.4) > cfg.max_compaction_lag_ms);
        if (dirty as f64) / (total as f64) < cfg.min_cleanable_ratio && !overdue {
            return Ok(0);
        }
        // Pass 1: the latest offset of every key.
        let mut latest: std::collections::HashMap<Bytes, i64> = std::collections::HashMap::new();
        for (_, file, size, _, _) in &eligible {
            let data = read_file(&*file.get()?, *size)?;
            for b in BatchIter::new(&data) {
                let b = b.map_err(map_batch_error)?;
                if b.is_control() || txns.aborted(&b) {
                    continue;
                }
                for r in decode_batch(&b, usize::MAX >> 1).map_err(|e| StorageError::Corrupt(e.to_string()))? {
                    if let Some(k) = r.key {
                        latest.insert(k, r.offset);
                    }
                }
            }
        }
        // Pass 2: rewrite each segment that loses records.
        let tombstone_horizon = now.saturating_sub(cfg.delete_retention_ms);
        let mut rewritten = Vec::new();
        for (base, file, size, next, _) in &eligible {
            let data = read_file(&*file.get()?, *size)?;
            let mut out = Vec::with_capacity(data.len());
            let mut changed = false;
            for b in BatchIter::new(&data) {
                let b = b.map_err(map_batch_error)?;
                if b.is_control() || txns.keep_whole(&b) {
                    out.extend_from_slice(b.bytes());
                    continue;
                }
                if txns.aborted(&b) {
                    changed = true;
                    continue;
                }
                let records = decode_batch(&b, usize::MAX >> 1).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                let n = records.len();
                let kept: Vec<_> = records
                    .into_iter()
                    .filter(|r| match &r.key {
                        None => true,
                        Some(k) => latest.get(k) == Some(&r.offset) && !(r.value.is_none() && b.max_timestamp() < tombstone_horizon),
                    })
                    .collect();
                if kept.len() == n {
                    out.extend_from_slice(b.bytes());
                } else {
                    changed = true;
                    if !kept.is_empty() {
                        let rebuilt = rebuild_batch(&b, &kept).map_err(|e| StorageError::Corrupt(e.to_string()))?;
                        out.extend_from_slice(&rebuilt);
                    }
                }
            }
            if changed {
                let tmp = self.dir.join(format!("{}.cleaned", crate::segment::file_name(*base, "log")));
                let mut f = File::create(&tmp)?;
                std::io::Write::write_all(&mut f, &out)?;
                f.sync_all()?;
                rewritten.push((*base, *size, *next, tmp));
            }
        }
        // Swap the cleaned copies in, under the lock, if the segments are still there.
        let mut inner = self.lock();
        let mut n = 0;
        for (base, size, next, tmp) in rewritten {
            let still = inner.segments.get(&base).is_some_and(|s| s.size == size);
            if !still {
                let _ = std::fs::remove_file(&tmp);
                continue;
            }
            std::fs::rename(&tmp, self.dir.join(crate::segment::file_name(base, "log")))?;
            let (mut seg, _) = Segment::open_recover(&self.dir, base, now)?;
            seg.next_offset = seg.next_offset.max(next);
            inner.segments.insert(base, seg);
            n += 1;
        }
        if let Some(last) = eligible.last() {
            inner.cleaned_upto = inner.cleaned_upto.max(last.3);
        }
        drop(inner);
        if n > 0 {
            crate::sync_dir(&self.dir)?;
            tracing::info!(dir = %self.dir.display(), segments = n, "compacted");
        }
        Ok(n)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the log
    /// end) and deletes segments that now lie wholly below it. Returns the new
    /// log start offset.
    pub fn advance_log_start(&self, offset: i64) -> Result<i64, StorageError> {
        let (start, doomed, snapshots) = {
            let mut inner = self.lock();
            if offset > inner.next_offset || offset < 0 {
                return Err(StorageError::OffsetOutOfRange { offset, start: inner.log_start_offset, end: inner.next_offset });
            }
            inner.log_start_offset = inner.log_start_offset.max(offset);
            self.after_log_start_moved(&mut inner);
            let start = inner.log_start_offset;
            let active = inner.segments.keys().next_back().copied();
            let mut doomed = Vec::new();
            while let Some((&base, seg)) = inner.segments.iter().next() {
                if Some(base) == active || seg.next_offset > start {
                    break;
                }
                if let Some(seg) = inner.segments.remove(&base) {
                    doomed.push(seg.base_offset);
                }
            }
            (start, doomed, drop_snapshots_below(&mut inner))
        };
        for s in snapshots {
            remove_snapshot(&self.dir, s);
        }
        for base in doomed {
            for ext in crate::segment::EXTENSIONS {
                let _ = std::fs::remove_file(self.dir.join(crate::segment::file_name(base, ext)));
            }
        }
        Ok(start)
    }

    /// Copies this log into the directory `dst` (created if needed), for a
    /// move between log directories. A pass copies what changed since `prev`:
    /// new or rewritten segments (compaction, truncation) whole, and what was
    /// appended to the others. Without `last` it holds the log's lock only to
    /// list the segments. With `last` the whole pass runs under the lock (the
    /// caller has stopped appends, so the copy is exact) and also copies the
    /// indexes and the leader-epoch checkpoint, writes a producer snapshot at
    /// the log end, drops segments the log no longer has, and fsyncs it all:
    /// the copy then opens as a clean log.
    pub fn copy_to(&self, dst: &Path, prev: CopyState, last: bool) -> Result<CopyState, StorageError> {
        self.check_failed()?;
        std::fs::create_dir_all(dst)?;
        if !last {
            let (segments, end, truncations) = {
                let inner = self.lock();
                let segs: Vec<(i64, crate::files::LogFile, u64)> =
                    inner.segments.values().map(|s| (s.base_offset, s.log.clone(), s.size)).collect();
                (segs, inner.next_offset, inner.truncations)
            };
            let mut out = CopyState { end_offset: end, truncations, ..CopyState::default() };
            let prev = if prev.truncations == truncations { prev.segments } else { BTreeMap::new() };
            for (base, file, size) in segments {
                // Synced here, outside the lock, so the last pass syncs only what it adds.
                if copy_segment(dst, base, &file.get()?, size, prev.get(&base), &mut out)? {
                    File::open(dst.join(crate::segment::file_name(base, "log")))?.sync_data()?;
                }
            }
            return Ok(out);
        }
        let inner = self.lock();
        let mut out = CopyState { end_offset: inner.next_offset, truncations: inner.truncations, ..CopyState::default() };
        let prev = if prev.truncations == inner.truncations { prev.segments } else { BTreeMap::new() };
        let mut to_sync = Vec::new();
        for s in inner.segments.values() {
            if copy_segment(dst, s.base_offset, &s.log.get()?, s.size, prev.get(&s.base_offset), &mut out)? {
                to_sync.push(dst.join(crate::segment::file_name(s.base_offset, "log")));
            }
            to_sync.extend(s.write_indexes_to(dst)?);
            let name = crate::segment::file_name(s.base_offset, "txnindex");
            let src = self.dir.join(&name);
            if src.exists() {
                std::fs::copy(&src, dst.join(&name))?;
                to_sync.push(dst.join(&name));
            }
        }
        for e in std::fs::read_dir(dst)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let base = name.split('.').next().and_then(|b| b.parse::<i64>().ok());
            if base.is_some_and(|b| !inner.segments.contains_key(&b)) {
                std::fs::remove_file(e.path())?;
            }
        }
        to_sync.push(inner.epochs.write_copy(dst)?);
        let end = inner.next_offset;
        std::fs::write(dst.join(producers::snapshot_name(end)), inner.producers.encode(end))?;
        to_sync.push(dst.join(producers::snapshot_name(end)));
        // The segments copied by earlier passes were synced by them.
        for path in to_sync {
            File::open(path)?.sync_data()?;
        }
        crate::sync_dir(dst)?;
        Ok(out)
    }

    /// Bytes held by this log's segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size).sum()
    }

    /// Makes everything below `offset` durable. Concurrent callers share fsyncs:
    /// one caller runs an fsync covering everything appended so far while the rest
    /// wait for its result, then re-check (group commit).
    ///
    /// Fails (`Offline`) once the log has failed, even for offsets flushed
    /// before: after a failed fsync nothing more is acknowledged.
    pub async fn flush_to(&self, offset: i64) -> Result<(), StorageError> {
        loop {
            self.check_failed()?;
            let mut rx = self.flushed.subscribe();
            if *rx.borrow_and_update() >= offset {
                return Ok(());
            }
            if self.flushing.swap(true, Ordering::AcqRel) {
                // Someone else is syncing; it always publishes when done.
                if rx.changed().await.is_err() {
                    return Err(StorageError::Offline);
                }
                continue;
            }
            let result = self.flush_once().await;
            self.flushing.store(false, Ordering::Release);
            match result {
                Ok(Some(target)) => {
                    self.flushed.send_modify(|v| *v = (*v).max(target));
                }
                // A truncation came in between: wake the waiters to check again.
                Ok(None) => self.flushed.send_modify(|_| {}),
                Err(e) => {
                    self.flushed.send_modify(|_| {});
                    return Err(e);
                }
            }
        }
    }

    /// One fsync of everything appended so far. Returns the offset it made
    /// durable, or `None` if the log was truncated meanwhile.
    async fn flush_once(&self) -> Result<Option<i64>, StorageError> {
        let (files, active, target, truncations) = {
            let mut inner = self.lock();
            let active = match inner.segments.values().next_back() {
                Some(active) => Some(active.log.get()?),
                None => None,
            };
            let files = std::mem::take(&mut inner.pending_sync);
            inner.unflushed_messages = 0;
            inner.last_flush_ms = now_ms();
            (files, active, inner.next_offset, inner.truncations)
        };
        let res = tokio::task::spawn_blocking(move || -> io::Result<()> {
            for path in files {
                crate::sync_path(&path)?;
            }
            if let Some(active) = active {
                active.sync_data()?;
            }
            Ok(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fail("fsync", e)),
            Err(e) => return Err(self.fail("fsync", io::Error::other(e.to_string()))),
        }
        Ok((self.lock().truncations == truncations).then_some(target))
    }

    /// Whether `flush.ms` has elapsed with unflushed data.
    pub fn flush_time_due(&self, now: i64) -> bool {
        let inner = self.lock();
        inner.unflushed_messages > 0 && now - inner.last_flush_ms >= inner.config.flush_ms
    }

    /// Flushes everything appended so far (used at shutdown and by `flush.ms`).
    pub async fn flush_all(&self) -> Result<(), StorageError> {
        let end = self.log_end_offset();
        self.flush_to(end).await
    }

    /// Syncs everything synchronously (shutdown path, outside the runtime).
    pub fn flush_blocking(&self) -> Result<(), StorageError> {
        self.check_failed()?;
        let mut inner = self.lock();
        // Only what changed since the last flush: an idle log costs no
        // descriptor and no fsync here.
        let unflushed = *self.flushed.borrow() < inner.next_offset || inner.unflushed_messages > 0;
        let synced = (|| -> io::Result<()> {
            for path in std::mem::take(&mut inner.pending_sync) {
                crate::sync_path(&path)?;
            }
            let active = inner.segments.keys().next_back().copied();
            for s in inner.segments.values_mut() {
                if unflushed && Some(s.base_offset) == active {
                    s.log.get()?.sync_data()?;
                }
                for path in s.persist_indexes()? {
                    crate::sync_path(&path)?;
                }
            }
            Ok(())
        })();
        synced.map_err(|e| self.fail("fsync", e))?;
        let end = inner.next_offset;
        inner.unflushed_messages = 0;
        inner.last_flush_ms = now_ms();
        drop(inner);
        self.flushed.send_modify(|v| *v = (*v).max(end));
        Ok(())
    }
}

fn remove_segment_files(dir: &Path, base: i64) {
    for ext in crate::segment::EXTENSIONS {
        let _ = std::fs::remove_file(dir.join(crate::segment::file_name(base, ext)));
    }
}

/// Deletes a segment's files, the `.log` first (a segment exists for `open` as
/// long as its `.log` does). Missing files are fine.
fn delete_segment_files(dir: &Path, base: i64) -> io::Result<()> {
    for ext in crate::segment::EXTENSIONS {
        match std::fs::remove_file(dir.join(crate::segment::file_name(base, ext))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// What compaction needs to know of transactions: the aborted ones and each
/// producer's newest data batch.
struct TxnView {
    /// Producer id → (first offset, marker offset) of its aborted transactions.
    aborted: std::collections::HashMap<i64, Vec<(i64, i64)>>,
    last_batches: std::collections::HashSet<i64>,
}

impl TxnView {
    fn of(inner: &Inner) -> TxnView {
        let mut aborted: std::collections::HashMap<i64, Vec<(i64, i64)>> = std::collections::HashMap::new();
        for e in inner.segments.values().flat_map(|s| &s.aborted) {
            aborted.entry(e.txn.producer_id).or_default().push((e.txn.first_offset, e.txn.last_offset));
        }
        TxnView { aborted, last_batches: inner.producers.last_data_offsets() }
    }

    /// Whether `b` is data of an aborted transaction.
    fn aborted(&self, b: &BatchView<'_>) -> bool {
        if !b.is_transactional() || b.producer_id() < 0 {
            return false;
        }
        let at = b.base_offset();
        self.aborted.get(&b.producer_id()).is_some_and(|txns| txns.iter().any(|&(first, last)| first <= at && at <= last))
    }

    /// Whether `b` is a producer's newest data batch.
    fn keep_whole(&self, b: &BatchView<'_>) -> bool {
        b.producer_id() >= 0 && self.last_batches.contains(&b.last_offset())
    }
}

/// Deletes a snapshot file (best effort: a stale one is ignored or deleted at
/// the next open).
fn remove_snapshot(dir: &Path, offset: i64) {
    if let Err(e) = std::fs::remove_file(dir.join(producers::snapshot_name(offset))) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), offset, error = %e, "could not delete a producer snapshot");
        }
    }
}

/// Forgets the snapshots below the log start; returns them for deletion
/// outside the lock.
fn drop_snapshots_below(inner: &mut Inner) -> Vec<i64> {
    let start = inner.log_start_offset;
    let snapshots = inner.producers.snapshots_mut();
    let keep = snapshots.split_off(&start);
    std::mem::replace(snapshots, keep).into_iter().collect()
}

/// Loads the newest readable snapshot at or below `limit` into `state`;
/// unreadable ones are deleted. Returns its offset.
fn restore_snapshot(dir: &Path, state: &mut ProducerState, limit: i64) -> Option<i64> {
    let candidates: Vec<i64> = state.snapshots().range(..=limit).rev().copied().collect();
    for offset in candidates {
        let loaded =
            std::fs::read(dir.join(producers::snapshot_name(offset))).map_err(|e| e.to_string()).and_then(|b| state.load(&b, offset));
        match loaded {
            Ok(()) => return Some(offset),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), offset, error = %e, "ignoring an unusable producer snapshot");
                state.snapshots_mut().remove(&offset);
                remove_snapshot(dir, offset);
            }
        }
    }
    None
}

/// Replays the batch headers from offset `from` to the log end into `state`,
/// rebuilding the transaction-index entries from `from` on. Returns the
/// transaction-index files it wrote, to be fsynced.
fn replay(segments: &mut BTreeMap<i64, Segment>, state: &mut ProducerState, from: i64) -> io::Result<Vec<PathBuf>> {
    let mut touched = Vec::new();
    for seg in segments.values_mut() {
        if seg.next_offset <= from {
            continue;
        }
        seg.truncate_aborted(from)?;
        let pos = if seg.base_offset <= from { seg.lookup(from) } else { 0 };
        let mut aborts = Vec::new();
        seg.for_each_batch_from(pos, from, |bytes| {
            if let Some(entry) = BatchFacts::parse(bytes).and_then(|f| state.apply(&f)) {
                aborts.push(entry);
            }
        })?;
        for entry in aborts {
            touched.extend(seg.append_aborted(entry)?);
        }
    }
    Ok(touched)
}

/// The producer state at open: snapshots past the log end are deleted, the
/// newest usable one at or below `limit` is loaded and the headers after it
/// replayed (the whole log if there is none). Writes a snapshot at the log end
/// if there was none at all, so later truncations replay little.
fn load_producers(
    dir: &Path,
    segments: &mut BTreeMap<i64, Segment>,
    next_offset: i64,
    log_start: i64,
    limit: i64,
) -> Result<ProducerState, StorageError> {
    let mut state = ProducerState::default();
    let mut snapshots = producers::list_snapshots(dir)?;
    for &s in snapshots.range(next_offset + 1..) {
        remove_snapshot(dir, s);
    }
    snapshots.retain(|&s| s <= next_offset);
    let none = snapshots.is_empty();
    *state.snapshots_mut() = snapshots;
    let first = segments.keys().next().copied().unwrap_or(0);
    let from = restore_snapshot(dir, &mut state, limit).unwrap_or(first);
    if from < next_offset {
        let touched = replay(segments, &mut state, from)?;
        for f in touched {
            crate::sync_path(&f)?;
        }
        tracing::info!(dir = %dir.display(), from, to = next_offset, producers = state.producers().len(), "rebuilt producer state from the log");
    }
    state.evict_below(log_start);
    if none && next_offset > first {
        let name = producers::snapshot_name(next_offset);
        crate::write_atomically(dir, &name, &state.encode(next_offset))?;
        state.snapshots_mut().insert(next_offset);
    }
    Ok(state)
}

/// The big-endian 8 bytes at `at` (the caller checked the length).
fn head8(bytes: &[u8], at: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    b
}

/// Lowers a watched offset to `to`; whether it changed.
fn lower(v: &mut i64, to: i64) -> bool {
    let changed = *v > to;
    *v = (*v).min(to);
    changed
}

/// What a follower checks of a leader's batch: no more than the leader did
/// (its records are not decoded, and a compacted batch may hold fewer records
/// than its offset delta spans).
fn check_replica_batch(v: &BatchView<'_>, max: usize) -> Result<(), StorageError> {
    if v.magic() != batch::MAGIC_V2 {
        return Err(StorageError::Corrupt(format!("replica batch with magic {}", v.magic())));
    }
    if v.total_len() > max {
        return Err(StorageError::MessageTooLarge { size: v.total_len(), max });
    }
    let (stored, computed) = (v.crc(), v.computed_crc());
    if stored != computed {
        return Err(StorageError::Corrupt(format!("replica batch at offset {}: crc {stored:#x} != {computed:#x}", v.base_offset())));
    }
    let (delta, count) = (v.last_offset_delta(), v.record_count());
    if v.base_offset() < 0 || delta < 0 || count < 0 || count as i64 > delta as i64 + 1 {
        return Err(StorageError::Corrupt(format!(
            "replica batch at offset {}: {count} records for an offset delta of {delta}",
            v.base_offset()
        )));
    }
    Ok(())
}

/// The leader-epoch cache at open: the checkpoint, or (missing, unreadable, or
/// empty next to a log with batches) rebuilt from the batch headers; then cut to
/// the recovered log and its start.
fn load_epochs(dir: &Path, segments: &BTreeMap<i64, Segment>, next_offset: i64, log_start: i64) -> Result<EpochCache, StorageError> {
    let has_data = segments.values().any(|s| s.size > 0);
    let loaded = EpochCache::load(dir).unwrap_or_else(|e| {
        tracing::warn!(dir = %dir.display(), error = %e, "unreadable leader-epoch checkpoint, rebuilding it from the log");
        None
    });
    let mut cache = match loaded {
        Some(c) if !(has_data && c.entries().is_empty()) => c,
        _ if has_data => {
            let mut c = EpochCache::new(dir);
            for seg in segments.values() {
                seg.for_each_batch_head(|base, epoch| {
                    c.assign(epoch, base);
                })?;
            }
            tracing::info!(dir = %dir.display(), epochs = c.entries().len(), "rebuilt the leader-epoch cache from batch headers");
            c.persist()?;
            c
        }
        _ => EpochCache::new(dir),
    };
    // Not persisted: every open cuts the file's entries the same way, so the
    // file may keep them (an epoch begun at the log end without a batch in it,
    // re-assigned when this replica leads again). Writing here would cost two
    // fsyncs per partition at every start.
    cache.truncate_from_end(next_offset);
    cache.truncate_from_start(log_start);
    Ok(cache)
}

fn map_batch_error(e: BatchError) -> StorageError {
    match e {
        BatchError::TooLarge { size, max } => StorageError::MessageTooLarge { size, max },
        BatchError::Inflated { max } => StorageError::Inflated { max },
        other => StorageError::Corrupt(other.to_string()),
    }
}

/// Reads the batch at `pos` whole, or `None` if it is not complete before `end`.
fn read_one_batch(file: &File, pos: u64, end: u64) -> Result<Option<Bytes>, StorageError> {
    if pos + LOG_OVERHEAD as u64 > end {
        return Ok(None);
    }
    let mut head = [0u8; LOG_OVERHEAD];
    file.read_exact_at(&mut head, pos)?;
    let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
    if len < 49 || pos + LOG_OVERHEAD as u64 + len as u64 > end {
        return Ok(None);
    }
    let mut buf = vec![0u8; LOG_OVERHEAD + len as usize];
    file.read_exact_at(&mut buf, pos)?;
    Ok(Some(Bytes::from(buf)))
}

/// Reads from `start` (an index point at or before the wanted batch), skips
/// batches that end before `offset`, and returns whole batches up to `max_bytes`.
fn read_batches(file: &File, mut start: u64, end: u64, offset: i64, max_bytes: usize) -> Result<Bytes, StorageError> {
    // Skip forward over batch headers until the one containing `offset`.
    let mut head = [0u8; batch::HEADER_LEN];
    while start + batch::HEADER_LEN as u64 <= end {
        file.read_exact_at(&mut head, start)?;
        let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if len < 49 {
            return Err(StorageError::Corrupt(format!("bad batch length {len} at {start}")));
        }
        let base = i64::from_be_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
        let delta = i32::from_be_bytes([head[23], head[24], head[25], head[26]]);
        if base + delta as i64 >= offset {
            break;
        }
        start += LOG_OVERHEAD as u64 + len as u64;
    }
    if start >= end {
        return Ok(Bytes::new());
    }
    let want = ((end - start) as usize).min(max_bytes.max(batch::HEADER_LEN));
    let mut buf = vec![0u8; want];
    file.read_exact_at(&mut buf, start)?;
    // Trim to whole batches; if not even one fits, read the first one whole.
    let mut keep = 0usize;
    for b in batch::BatchIter::new(&buf) {
        match b {
            Ok(v) => keep += v.total_len(),
            Err(_) => break,
        }
    }
    if keep == 0 {
        return Ok(read_one_batch(file, start, end)?.unwrap_or_default());
    }
    buf.truncate(keep);
    Ok(Bytes::from(buf))
}

fn read_file(file: &File, size: u64) -> Result<Vec<u8>, StorageError> {
    let mut buf = vec![0u8; size as usize];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// A copy between directories syncs after this many bytes.
const COPY_SYNC_BYTES: u64 = 2 << 20;

/// What a [`Log::copy_to`] pass copied, so that the next pass copies only what
/// changed.
#[derive(Debug, Default)]
pub struct CopyState {
    /// Segment base → (its file when copied, bytes copied).
    segments: BTreeMap<i64, (Arc<File>, u64)>,
    /// The log's truncation count then: after a truncation everything is copied again.
    truncations: u64,
    /// The log end offset the copy reaches.
    pub end_offset: i64,
    /// Bytes the pass copied.
    pub copied_bytes: u64,
}

impl CopyState {
    /// Bytes of `.log` files the copy holds.
    pub fn total_bytes(&self) -> u64 {
        self.segments.values().map(|(_, n)| *n).sum()
    }
}

/// Copies segment `base`'s `.log` (`size` bytes of `file`) into `dst`: only the
/// bytes after `prev`'s when it copied this same file before. Returns whether
/// it wrote anything.
fn copy_segment(
    dst: &Path,
    base: i64,
    file: &Arc<File>,
    size: u64,
    prev: Option<&(Arc<File>, u64)>,
    out: &mut CopyState,
) -> io::Result<bool> {
    let path = dst.join(crate::segment::file_name(base, "log"));
    let from = match prev {
        Some((f, n)) if Arc::ptr_eq(f, file) && *n <= size && path.exists() => *n,
        _ => 0,
    };
    let target = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    let mut buf = vec![0u8; (size - from).min(1 << 20) as usize];
    let mut pos = from;
    let mut unsynced = 0u64;
    while pos < size {
        let n = ((size - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        target.write_all_at(&buf[..n], pos)?;
        pos += n as u64;
        // Synced as it goes: one large writeback at the end would stall the
        // fsyncs of live logs on the same disk for as long as it takes.
        unsynced += n as u64;
        if unsynced >= COPY_SYNC_BYTES {
            target.sync_data()?;
            unsynced = 0;
        }
    }
    target.set_len(size)?;
    out.segments.insert(base, (file.clone(), size));
    out.copied_bytes += size - from;
    Ok(from < size || from == 0)
}
