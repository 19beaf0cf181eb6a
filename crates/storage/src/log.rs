//! A partition log: an ordered set of segments, the log end offset, the log start
//! offset and the recovery point (everything below it is fsynced).
//!
//! Concurrency: one `std::sync::Mutex` per partition guards the segment list and
//! offsets. It is held only to validate order, patch offsets and `pwrite`; reads
//! take a snapshot of the segment under the lock and `pread` outside it. fsync runs
//! on the blocking pool without the lock, and many waiters share one fsync (group
//! commit, see [`Log::flush_to`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strom_protocol::batch::{self, BatchError, BatchIter, BatchView, LOG_OVERHEAD};
use strom_protocol::records::{decode_batch, rebuild_batch, rebuild_batch_with};
use tokio::sync::watch;

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
}

/// What a read returned.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct Inner {
    segments: BTreeMap<i64, Segment>,
    next_offset: i64,
    log_start_offset: i64,
    unflushed_messages: i64,
    last_flush_ms: i64,
    /// Files of rolled segments (and the directory) that still need an fsync.
    pending_sync: Vec<File>,
    config: LogConfig,
    leader_epoch: i32,
    /// Offsets below this have been compacted (in memory; a restart re-cleans).
    cleaned_upto: i64,
}

pub struct Log {
    dir: PathBuf,
    inner: Mutex<Inner>,
    flushing: AtomicBool,
    /// Offset below which everything is fsynced (the recovery point).
    flushed: watch::Sender<i64>,
    /// The log end offset, for fetches waiting on new data.
    end: watch::Sender<i64>,
}

impl Log {
    /// Opens (or creates) the log in `dir`. With `clean`, segments are loaded
    /// from their indexes; otherwise every segment from the recovery point on is
    /// scanned with CRC checks and truncated at the first torn or invalid batch.
    pub fn open(dir: &Path, config: LogConfig, clean: bool, recovery_point: i64, log_start: i64) -> Result<Log, StorageError> {
        std::fs::create_dir_all(dir)?;
        let now = now_ms();
        // A cleaner killed part-way leaves `.cleaned` files; the `.log` files are intact.
        for e in std::fs::read_dir(dir)?.flatten() {
            if e.file_name().to_string_lossy().ends_with(".cleaned") {
                tracing::warn!(file = %e.path().display(), "removing unfinished compaction output");
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
        let (flushed, _) = watch::channel(if clean { next_offset } else { recovered });
        let (end, _) = watch::channel(next_offset);
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
                leader_epoch: 0,
                cleaned_upto: 0,
            }),
            flushing: AtomicBool::new(false),
            flushed,
            end,
        })
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
        let cfg = self.lock().config.clone();
        let max = cfg.max_message_bytes;
        // CRC work happens before taking the lock.
        batch::validate(&data, max).map_err(map_batch_error)?;
        let now = now_ms();
        let mut rebuilt: Option<Vec<u8>> = None;
        for b in BatchIter::new(&data) {
            let b = b.map_err(map_batch_error)?;
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
        let epoch = inner.leader_epoch;
        let base_offset = inner.next_offset;
        let mut next = base_offset;
        let mut placed = Vec::new();
        let mut heads = Vec::new();
        let mut at = 0usize;
        while at < data.len() {
            let v = BatchView::parse(&data[at..]).map_err(map_batch_error)?;
            let (len, delta, max_ts) = (v.total_len(), v.last_offset_delta(), v.max_timestamp());
            let mut head = [0u8; PATCHED_HEAD];
            head.copy_from_slice(&data[at..at + PATCHED_HEAD]);
            batch::patch_offsets(&mut head, next, epoch);
            heads.push(head);
            placed.push((at, next, max_ts, len));
            next += delta as i64 + 1;
            at += len;
        }
        self.maybe_roll(&mut inner, data.len() as u64, now)?;
        let interval = inner.config.index_interval_bytes;
        let active = inner.segments.values_mut().next_back().ok_or(StorageError::Offline)?;
        active.append(data, &heads, &placed, next, interval)?;
        inner.next_offset = next;
        inner.unflushed_messages += next - base_offset;
        let flush_due = inner.unflushed_messages >= inner.config.flush_messages;
        let log_start_offset = inner.log_start_offset;
        drop(inner);
        self.end.send_replace(next);
        let log_append_time = if cfg.log_append_time { now } else { -1 };
        Ok(AppendInfo { base_offset, last_offset: next - 1, log_start_offset, flush_due, log_append_time })
    }

    fn maybe_roll(&self, inner: &mut Inner, incoming: u64, now: i64) -> Result<(), StorageError> {
        let next_offset = inner.next_offset;
        let (segment_bytes, segment_ms) = (inner.config.segment_bytes, inner.config.segment_ms);
        let Some(active) = inner.segments.values().next_back() else {
            return Ok(());
        };
        let full = active.size > 0 && active.size + incoming > segment_bytes;
        let old = active.size > 0 && now - active.created_ms >= segment_ms;
        let index_full = active.index.len() >= (1 << 20) || next_offset - active.base_offset >= u32::MAX as i64;
        if !(full || old || index_full) {
            return Ok(());
        }
        let log = active.log.try_clone()?;
        let (idx, tidx) = active.index_files()?;
        inner.pending_sync.extend([log, idx, tidx]);
        let seg = Segment::create(&self.dir, next_offset, now)?;
        inner.segments.insert(next_offset, seg);
        inner.pending_sync.push(File::open(&self.dir)?);
        tracing::debug!(dir = %self.dir.display(), base = next_offset, "rolled segment");
        Ok(())
    }

    /// Reads whole batches starting with the one holding `offset`, up to
    /// `max_bytes` (at least one batch, whatever its size). If compaction left
    /// nothing at or after `offset` in its segment, reading continues in the
    /// following segments, so a consumer never stalls on a gap.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadInfo, StorageError> {
        let (candidates, hw, log_start) = {
            let inner = self.lock();
            let hw = inner.next_offset;
            if offset < inner.log_start_offset || offset > hw {
                return Err(StorageError::OffsetOutOfRange { offset, start: inner.log_start_offset, end: hw });
            }
            let containing = inner.segments.range(..=offset).next_back().map(|(_, s)| s);
            let later = inner.segments.range(offset + 1..).map(|(_, s)| s);
            let candidates: Vec<(Arc<File>, u64, u64)> = containing
                .into_iter()
                .chain(later)
                .filter(|s| s.next_offset > offset && s.size > 0)
                .map(|s| (s.log.clone(), if s.base_offset <= offset { s.lookup(offset) } else { 0 }, s.size))
                .collect();
            (candidates, hw, inner.log_start_offset)
        };
        for (file, start, end) in candidates {
            let records = read_batches(&file, start, end, offset, max_bytes)?;
            if !records.is_empty() {
                return Ok(ReadInfo { records, high_watermark: hw, log_start_offset: log_start });
            }
        }
        Ok(ReadInfo { records: Bytes::new(), high_watermark: hw, log_start_offset: log_start })
    }

    /// The first offset whose batch has a max timestamp >= `ts`, with that
    /// batch's bytes so the caller can find the exact record. `None` if no batch.
    pub fn find_by_timestamp(&self, ts: i64) -> Result<Option<Bytes>, StorageError> {
        let candidates: Vec<(Arc<File>, u64, u64)> = {
            let inner = self.lock();
            inner
                .segments
                .values()
                .filter(|s| s.max_timestamp >= ts && s.size > 0)
                .map(|s| (s.log.clone(), s.lookup_time(ts), s.size))
                .collect()
        };
        for (file, start, end) in candidates {
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
        let doomed: Vec<Segment> = {
            let mut inner = self.lock();
            let cfg = inner.config.clone();
            if !cfg.delete_enabled {
                return Ok(0);
            }
            let mut total: i64 = inner.segments.values().map(|s| s.size as i64).sum();
            let active = inner.segments.keys().next_back().copied();
            let mut out = Vec::new();
            while let Some((&base, seg)) = inner.segments.iter().next() {
                if Some(base) == active {
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
                }
            }
            out
        };
        let n = doomed.len();
        for seg in doomed {
            tracing::info!(dir = %self.dir.display(), base = seg.base_offset, bytes = seg.size, "deleting segment out of retention");
            for ext in ["log", "index", "timeindex"] {
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
    pub fn compact(&self, now: i64) -> Result<usize, StorageError> {
        let (cfg, eligible, cleaned_upto) = {
            let inner = self.lock();
            if !inner.config.compact {
                return Ok(0);
            }
            let active = inner.segments.keys().next_back().copied();
            let lag = inner.config.min_compaction_lag_ms;
            let eligible: Vec<(i64, Arc<File>, u64, i64, i64)> = inner
                .segments
                .values()
                .take_while(|s| Some(s.base_offset) != active && (lag <= 0 || s.max_timestamp <= now.saturating_sub(lag)))
                .map(|s| (s.base_offset, s.log.clone(), s.size, s.next_offset, s.max_timestamp))
                .collect();
            (inner.config.clone(), eligible, inner.cleaned_upto)
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
            let data = read_file(file, *size)?;
            for b in BatchIter::new(&data) {
                let b = b.map_err(map_batch_error)?;
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
            let data = read_file(file, *size)?;
            let mut out = Vec::with_capacity(data.len());
            let mut changed = false;
            for b in BatchIter::new(&data) {
                let b = b.map_err(map_batch_error)?;
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
        let (start, doomed) = {
            let mut inner = self.lock();
            if offset > inner.next_offset || offset < 0 {
                return Err(StorageError::OffsetOutOfRange { offset, start: inner.log_start_offset, end: inner.next_offset });
            }
            inner.log_start_offset = inner.log_start_offset.max(offset);
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
            (start, doomed)
        };
        for base in doomed {
            for ext in ["log", "index", "timeindex"] {
                let _ = std::fs::remove_file(self.dir.join(crate::segment::file_name(base, ext)));
            }
        }
        Ok(start)
    }

    /// Bytes held by this log's segments.
    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(|s| s.size).sum()
    }

    /// Makes everything below `offset` durable. Concurrent callers share fsyncs:
    /// one caller runs an fsync covering everything appended so far while the rest
    /// wait for its result, then re-check (group commit).
    pub async fn flush_to(&self, offset: i64) -> Result<(), StorageError> {
        loop {
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
                Ok(target) => {
                    self.flushed.send_modify(|v| *v = (*v).max(target));
                }
                Err(e) => {
                    self.flushed.send_modify(|_| {});
                    return Err(e);
                }
            }
        }
    }

    async fn flush_once(&self) -> Result<i64, StorageError> {
        let (mut files, target) = {
            let mut inner = self.lock();
            let mut files = std::mem::take(&mut inner.pending_sync);
            if let Some(active) = inner.segments.values().next_back() {
                files.push(active.log.try_clone()?);
            }
            inner.unflushed_messages = 0;
            inner.last_flush_ms = now_ms();
            (files, inner.next_offset)
        };
        let res = tokio::task::spawn_blocking(move || -> io::Result<()> {
            for f in files.drain(..) {
                f.sync_data()?;
            }
            Ok(())
        })
        .await
        .map_err(|_| StorageError::Offline)?;
        res?;
        Ok(target)
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
        let mut inner = self.lock();
        for f in inner.pending_sync.drain(..) {
            f.sync_data()?;
        }
        for s in inner.segments.values() {
            s.log.sync_data()?;
            let (i, t) = s.index_files()?;
            i.sync_data()?;
            t.sync_data()?;
        }
        let end = inner.next_offset;
        drop(inner);
        self.flushed.send_modify(|v| *v = (*v).max(end));
        Ok(())
    }
}

fn remove_segment_files(dir: &Path, base: i64) {
    for ext in ["log", "index", "timeindex"] {
        let _ = std::fs::remove_file(dir.join(crate::segment::file_name(base, ext)));
    }
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
