//! Producer state of a partition log: what idempotent and transactional
//! producers have written, as Kafka's `ProducerStateManager` keeps it.
//!
//! Per producer id: its epoch, the last [`BATCHES_KEPT`] batches' sequence
//! ranges and offsets (to answer a retried duplicate with its original
//! offsets), the coordinator epoch of its last marker and the first offset of
//! its ongoing transaction. Across producers: the ongoing transactions and the
//! completed ones whose marker the high watermark has not passed yet; together
//! with the high watermark they give the last stable offset (LSO).
//!
//! Everything here reads batch headers only, never record bodies, except the
//! one record of a control batch (its key says COMMIT or ABORT). The state is
//! owned by the log's `Inner` and changed under the partition lock, in the same
//! critical section as the append it describes.
//!
//! Snapshot file `<offset, 20 digits>.snapshot`: the state as of `offset` (every
//! batch below it applied, none at or after it), big-endian:
//!
//! | field | type |
//! |---|---|
//! | magic `b"SPRS"` | 4 bytes |
//! | version (= 1) | u16 |
//! | crc32c of everything after this field | u32 |
//! | offset | i64 |
//! | producer count, then per producer: id i64, epoch i16, last timestamp i64, coordinator epoch i32, ongoing txn first offset i64, last data offset i64, batch count u8, then per batch: first seq i32, last seq i32, last offset i64, offset delta i32, max timestamp i64 | |
//! | completed txn count, then per txn: first offset i64, producer id i64, marker offset i64 | |
//!
//! The transaction index (`.txnindex`, one per segment, see
//! [`crate::segment`]) is not part of the snapshot: it lives with the segments.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::path::Path;

use strom_protocol::batch::{ATTR_CONTROL, ATTR_TRANSACTIONAL, HEADER_LEN};
use strom_protocol::records::{read_varint, read_varlong};

use crate::StorageError;

/// Kafka's `NO_SEQUENCE`: a batch without sequence numbers (written by a
/// coordinator), exempt from sequence and duplicate checks.
pub const NO_SEQUENCE: i32 = -1;
/// How many recent batches per producer are remembered for duplicate detection
/// (Kafka's `NUM_BATCHES_TO_RETAIN`; clients keep at most 5 in flight).
pub const BATCHES_KEPT: usize = 5;
/// Control record type of an ABORT marker.
pub const CONTROL_ABORT: i16 = 0;
/// Control record type of a COMMIT marker.
pub const CONTROL_COMMIT: i16 = 1;
/// Bytes of a control batch's records that [`BatchFacts::parse`] needs (the
/// single record up to and including its value fits comfortably).
pub const CONTROL_PREFIX: usize = 40;

const SNAPSHOT_MAGIC: &[u8; 4] = b"SPRS";
const SNAPSHOT_VERSION: u16 = 1;

/// A transaction that was aborted: its data spans `[first_offset,
/// last_offset]`, `last_offset` being its ABORT marker. read_committed
/// consumers drop that producer's records in the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One producer's state, as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The last sequence of the newest batch, -1 if none.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the ongoing transaction, -1 if none.
    pub current_txn_start_offset: i64,
}

/// An entry of a segment's transaction index: an aborted transaction and the
/// LSO right after its marker (Kafka's `AbortedTxn` with `lastStableOffset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnIndexEntry {
    pub txn: AbortedTxn,
    pub last_stable_offset: i64,
}

/// The header fields of one stored batch that producer state needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchFacts {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub offset_delta: i32,
    pub base_offset: i64,
    pub max_timestamp: i64,
    pub transactional: bool,
    /// For a control batch: (commit, coordinator epoch); `None` for data, or
    /// for a control record that is not a transaction marker.
    pub marker: Option<(bool, i32)>,
    pub control: bool,
}

impl BatchFacts {
    /// Reads the facts from a batch's bytes: the 61-byte header, followed (for
    /// control batches) by at least the start of its records. `None` if the
    /// header is short.
    pub fn parse(bytes: &[u8]) -> Option<BatchFacts> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let i16_at = |at: usize| i16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let i32_at = |at: usize| i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let attributes = i16_at(21);
        let control = attributes & ATTR_CONTROL != 0;
        let marker = if control { parse_marker(&bytes[HEADER_LEN..]) } else { None };
        Some(BatchFacts {
            producer_id: i64_at(43),
            producer_epoch: i16_at(51),
            base_sequence: i32_at(53),
            offset_delta: i32_at(23),
            base_offset: i64_at(0),
            max_timestamp: i64_at(35),
            transactional: attributes & ATTR_TRANSACTIONAL != 0,
            marker,
            control,
        })
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.offset_delta as i64
    }

    /// The last sequence, wrapping past `i32::MAX` to 0 as producers do.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.offset_delta)
    }
}

/// `seq + delta`, wrapping from `i32::MAX` to 0 (Kafka's `incrementSequence`).
fn increment_sequence(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

/// Whether `next` directly follows `last` (wrapping at `i32::MAX`).
fn in_sequence(last: i32, next: i32) -> bool {
    next as i64 == last as i64 + 1 || (next == 0 && last == i32::MAX)
}

/// Parses the single record of an uncompressed control batch: key = (version
/// i16, type i16), value = (version i16, coordinator epoch i32). Returns
/// (commit, coordinator epoch) for COMMIT/ABORT markers.
pub(crate) fn parse_marker(records: &[u8]) -> Option<(bool, i32)> {
    let mut at = 0usize;
    let varint = |at: &mut usize| -> Option<i64> {
        let (v, n) = read_varlong(records.get(*at..)?).ok()?;
        *at += n;
        Some(v)
    };
    let _len = varint(&mut at)?;
    at += 1; // attributes
    let _ts_delta = varint(&mut at)?;
    let _offset_delta = varint(&mut at)?;
    let key_len = varint(&mut at)?;
    if key_len < 4 {
        return None;
    }
    let key = records.get(at..at + 4)?;
    at = at.saturating_add(key_len as usize);
    let kind = i16::from_be_bytes([key[2], key[3]]);
    let commit = match kind {
        CONTROL_ABORT => false,
        CONTROL_COMMIT => true,
        _ => return None,
    };
    let (value_len, n) = read_varint(records.get(at..)?).ok()?;
    at += n;
    let coordinator_epoch = match records.get(at..at.saturating_add(6)) {
        Some(v) if value_len >= 6 => i32::from_be_bytes([v[2], v[3], v[4], v[5]]),
        _ => -1,
    };
    Some((commit, coordinator_epoch))
}

/// The record set of a control batch for a COMMIT or ABORT marker: one record,
/// key (version 0, type), value (version 0, coordinator epoch).
pub(crate) fn marker_record(commit: bool, coordinator_epoch: i32) -> strom_protocol::records::Record {
    let kind = if commit { CONTROL_COMMIT } else { CONTROL_ABORT };
    let mut key = vec![0u8, 0];
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = vec![0u8, 0];
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    strom_protocol::records::Record { key: Some(key.into()), value: Some(value.into()), ..Default::default() }
}

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    last_offset: i64,
    offset_delta: i32,
    max_timestamp: i64,
}

/// What the log knows of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_timestamp: i64,
    coordinator_epoch: i32,
    /// First offset of the ongoing transaction, -1 if none.
    txn_first_offset: i64,
    /// Last offset of the producer's newest batch here (data or marker): once
    /// the log start passes it, nothing in the log backs this entry.
    last_data_offset: i64,
}

impl Entry {
    fn new(epoch: i16) -> Entry {
        Entry { epoch, batches: VecDeque::new(), last_timestamp: -1, coordinator_epoch: -1, txn_first_offset: -1, last_data_offset: -1 }
    }

    /// Moves to `epoch`; the remembered batches belong to the old one.
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    fn last_seq(&self) -> i32 {
        self.batches.back().map(|b| b.last_seq).unwrap_or(NO_SEQUENCE)
    }

    /// Applies a data batch without checks.
    fn add_data(&mut self, f: &BatchFacts) {
        self.set_epoch(f.producer_epoch);
        if f.base_sequence != NO_SEQUENCE {
            if self.batches.len() == BATCHES_KEPT {
                self.batches.pop_front();
            }
            self.batches.push_back(BatchMeta {
                first_seq: f.base_sequence,
                last_seq: f.last_sequence(),
                last_offset: f.last_offset(),
                offset_delta: f.offset_delta,
                max_timestamp: f.max_timestamp,
            });
        }
        self.last_timestamp = f.max_timestamp;
        self.last_data_offset = f.last_offset();
        if f.transactional && self.txn_first_offset < 0 {
            self.txn_first_offset = f.base_offset;
        }
    }

    fn find_duplicate(&self, f: &BatchFacts) -> Option<BatchMeta> {
        if f.producer_epoch != self.epoch || f.base_sequence == NO_SEQUENCE {
            return None;
        }
        let last = f.last_sequence();
        self.batches.iter().find(|b| b.first_seq == f.base_sequence && b.last_seq == last).copied()
    }
}

/// The original offsets of a retried batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// The checked changes of one client append, applied by
/// [`ProducerState::commit`] once the batches are written.
#[derive(Debug, Default)]
pub(crate) struct PendingAppend {
    updated: Vec<(i64, Entry)>,
}

impl PendingAppend {
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty()
    }
}

/// The producer state of one partition log. Not thread safe by itself: the
/// log's lock guards it.
#[derive(Debug, Default)]
pub(crate) struct ProducerState {
    producers: HashMap<i64, Entry>,
    /// Ongoing transactions: first offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// Completed transactions whose marker may be at or above the high
    /// watermark: first offset → (producer id, marker offset).
    unreplicated: BTreeMap<i64, (i64, i64)>,
    /// Offsets of the snapshot files in the log directory.
    snapshots: BTreeSet<i64>,
}

impl ProducerState {
    /// Checks a client's batch (producer id >= 0) against the state plus the
    /// earlier batches of the same request, and stages its effect. Returns the
    /// original offsets if it is a retried duplicate (nothing is staged).
    pub fn check_client(&self, pending: &mut PendingAppend, f: &BatchFacts) -> Result<Option<Duplicate>, StorageError> {
        let current = self.producers.get(&f.producer_id);
        if let Some(d) = current.and_then(|e| e.find_duplicate(f)) {
            return Ok(Some(Duplicate {
                base_offset: d.last_offset - d.offset_delta as i64,
                last_offset: d.last_offset,
                max_timestamp: d.max_timestamp,
            }));
        }
        let staged = pending.updated.iter().position(|(pid, _)| *pid == f.producer_id);
        let entry = staged.map(|i| &pending.updated[i].1).or(current);
        if let Some(e) = entry {
            check_epoch(e, f.producer_id, f.producer_epoch)?;
            check_sequence(e, f)?;
            if !f.transactional && e.txn_first_offset >= 0 {
                return Err(StorageError::InvalidTxnState(format!(
                    "producer {} has an ongoing transaction from offset {} and sent a non-transactional batch",
                    f.producer_id, e.txn_first_offset
                )));
            }
        }
        let mut next = entry.cloned().unwrap_or_else(|| Entry::new(f.producer_epoch));
        next.add_data(f);
        match staged {
            Some(i) => pending.updated[i].1 = next,
            None => pending.updated.push((f.producer_id, next)),
        }
        Ok(None)
    }

    /// Applies what [`ProducerState::check_client`] staged, after the write.
    pub fn commit(&mut self, pending: PendingAppend) {
        for (pid, entry) in pending.updated {
            let was_ongoing = self.producers.get(&pid).is_some_and(|e| e.txn_first_offset >= 0);
            if entry.txn_first_offset >= 0 && !was_ongoing {
                self.ongoing.insert(entry.txn_first_offset, pid);
            }
            self.producers.insert(pid, entry);
        }
    }

    /// Checks a marker the leader is about to write.
    pub fn check_marker(&self, producer_id: i64, producer_epoch: i16, coordinator_epoch: i32) -> Result<(), StorageError> {
        let Some(e) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        check_epoch(e, producer_id, producer_epoch)?;
        if coordinator_epoch < e.coordinator_epoch {
            return Err(StorageError::CoordinatorFenced(format!(
                "marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, older than {}",
                e.coordinator_epoch
            )));
        }
        Ok(())
    }

    /// Applies a stored batch without checks (a follower's copy, recovery, or
    /// a marker the leader wrote). Returns the transaction-index entry if the
    /// batch is an ABORT marker that completed a transaction.
    pub fn apply(&mut self, f: &BatchFacts) -> Option<TxnIndexEntry> {
        if f.producer_id < 0 {
            return None;
        }
        if !f.control {
            let entry = self.producers.entry(f.producer_id).or_insert_with(|| Entry::new(f.producer_epoch));
            let was = entry.txn_first_offset;
            entry.add_data(f);
            if was < 0 && entry.txn_first_offset >= 0 {
                self.ongoing.insert(entry.txn_first_offset, f.producer_id);
            }
            return None;
        }
        let (commit, coordinator_epoch) = f.marker?;
        self.complete_txn(f.producer_id, f.producer_epoch, coordinator_epoch, commit, f.base_offset, f.max_timestamp)
    }

    fn complete_txn(
        &mut self,
        pid: i64,
        epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        marker_offset: i64,
        ts: i64,
    ) -> Option<TxnIndexEntry> {
        let entry = self.producers.entry(pid).or_insert_with(|| Entry::new(epoch));
        entry.set_epoch(epoch);
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = ts;
        entry.last_data_offset = marker_offset;
        let first = std::mem::replace(&mut entry.txn_first_offset, -1);
        if first < 0 {
            return None;
        }
        self.ongoing.remove(&first);
        self.unreplicated.insert(first, (pid, marker_offset));
        if commit {
            return None;
        }
        let last_stable_offset = self.ongoing.keys().next().copied().unwrap_or(marker_offset + 1);
        Some(TxnIndexEntry { txn: AbortedTxn { producer_id: pid, first_offset: first, last_offset: marker_offset }, last_stable_offset })
    }

    /// The lowest offset an unfinished transaction still needs: the first
    /// offset of the oldest ongoing transaction or completed one whose marker
    /// is not below `hw`; `i64::MAX` if none. Forgets completed transactions
    /// the high watermark has passed.
    pub fn first_unstable_offset(&mut self, hw: i64) -> i64 {
        self.unreplicated.retain(|_, &mut (_, last)| last >= hw);
        let ongoing = self.ongoing.keys().next().copied().unwrap_or(i64::MAX);
        let completed = self.unreplicated.keys().next().copied().unwrap_or(i64::MAX);
        ongoing.min(completed)
    }

    /// The last stable offset for high watermark `hw`.
    pub fn last_stable_offset(&mut self, hw: i64) -> i64 {
        self.first_unstable_offset(hw).min(hw)
    }

    /// KIP-890: `Some((pid, epoch))` if a transactional batch from this
    /// producer would start a transaction here (so the coordinator must
    /// confirm the partition is part of one).
    pub fn needs_verification(&self, f: &BatchFacts) -> Option<(i64, i16)> {
        if !f.transactional || f.producer_id < 0 {
            return None;
        }
        let ongoing = self.producers.get(&f.producer_id).is_some_and(|e| e.txn_first_offset >= 0 && e.epoch == f.producer_epoch);
        (!ongoing).then_some((f.producer_id, f.producer_epoch))
    }

    pub fn producers(&self) -> Vec<ProducerInfo> {
        let mut out: Vec<ProducerInfo> = self
            .producers
            .iter()
            .map(|(&pid, e)| ProducerInfo {
                producer_id: pid,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.txn_first_offset,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Last offsets of each producer's newest batch with sequence numbers:
    /// compaction keeps these batches whole, so a replay finds the sequence
    /// the producer continues from.
    pub fn last_data_offsets(&self) -> std::collections::HashSet<i64> {
        self.producers.values().filter_map(|e| e.batches.back()).map(|b| b.last_offset).collect()
    }

    /// Forgets producers idle for `expiration_ms` without an ongoing
    /// transaction. Returns how many went.
    pub fn expire(&mut self, now: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.txn_first_offset >= 0 || now.saturating_sub(e.last_timestamp) < expiration_ms);
        before - self.producers.len()
    }

    /// The log start moved to `start`: forgets producers whose newest batch is
    /// gone (with their transactions) and completed transactions below it.
    pub fn evict_below(&mut self, start: i64) {
        let ongoing = &mut self.ongoing;
        self.producers.retain(|_, e| {
            let keep = e.last_data_offset >= start;
            if !keep && e.txn_first_offset >= 0 {
                ongoing.remove(&e.txn_first_offset);
            }
            keep
        });
        self.unreplicated.retain(|_, &mut (_, last)| last >= start);
    }

    /// Forgets everything except the list of snapshot files.
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
    }

    pub fn snapshots(&self) -> &BTreeSet<i64> {
        &self.snapshots
    }

    pub fn snapshots_mut(&mut self) -> &mut BTreeSet<i64> {
        &mut self.snapshots
    }

    /// Encodes the state as of `offset` (see the module doc).
    pub fn encode(&self, offset: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(16 + self.producers.len() * 64);
        body.extend_from_slice(&offset.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut pids: Vec<&i64> = self.producers.keys().collect();
        pids.sort_unstable();
        for pid in pids {
            let e = &self.producers[pid];
            body.extend_from_slice(&pid.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.txn_first_offset.to_be_bytes());
            body.extend_from_slice(&e.last_data_offset.to_be_bytes());
            body.push(e.batches.len() as u8);
            for b in &e.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.offset_delta.to_be_bytes());
                body.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        body.extend_from_slice(&(self.unreplicated.len() as u32).to_be_bytes());
        for (first, (pid, last)) in &self.unreplicated {
            body.extend_from_slice(&first.to_be_bytes());
            body.extend_from_slice(&pid.to_be_bytes());
            body.extend_from_slice(&last.to_be_bytes());
        }
        let mut out = Vec::with_capacity(10 + body.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Replaces the state (not the snapshot list) by a decoded snapshot taken
    /// at `offset`. On error the state is unchanged.
    pub fn load(&mut self, bytes: &[u8], offset: i64) -> Result<(), String> {
        let decoded = decode(bytes, offset)?;
        self.producers = decoded.producers;
        self.unreplicated = decoded.unreplicated;
        self.ongoing = self.producers.iter().filter(|(_, e)| e.txn_first_offset >= 0).map(|(&pid, e)| (e.txn_first_offset, pid)).collect();
        Ok(())
    }

    /// Whether `other` holds the same producers and transactions (tests and
    /// assertions: a follower or a recovered log must match the leader).
    #[cfg(test)]
    pub fn same_as(&self, other: &ProducerState) -> bool {
        self.producers == other.producers && self.ongoing == other.ongoing
    }
}

fn check_epoch(e: &Entry, pid: i64, epoch: i16) -> Result<(), StorageError> {
    if epoch < e.epoch {
        return Err(StorageError::InvalidProducerEpoch(format!(
            "producer {pid} epoch {epoch} is older than the current epoch {}",
            e.epoch
        )));
    }
    Ok(())
}

/// Kafka's `checkSequence` for a producer with an entry: a new epoch starts at
/// sequence 0; within an epoch the first sequence follows the last one.
fn check_sequence(e: &Entry, f: &BatchFacts) -> Result<(), StorageError> {
    if f.base_sequence == NO_SEQUENCE {
        return Ok(());
    }
    let pid = f.producer_id;
    if f.producer_epoch != e.epoch {
        if f.base_sequence != 0 {
            return Err(StorageError::OutOfOrderSequence(format!(
                "producer {pid} moved to epoch {} with sequence {}, expected 0",
                f.producer_epoch, f.base_sequence
            )));
        }
        return Ok(());
    }
    let last = e.last_seq();
    if !in_sequence(last, f.base_sequence) {
        return Err(StorageError::OutOfOrderSequence(format!(
            "producer {pid} epoch {}: sequence {} does not follow {last}",
            f.producer_epoch, f.base_sequence
        )));
    }
    Ok(())
}

struct Decoded {
    producers: HashMap<i64, Entry>,
    unreplicated: BTreeMap<i64, (i64, i64)>,
}

/// A bounds-checked big-endian reader over a snapshot's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
        if self.buf.len() < N {
            return Err("snapshot truncated".into());
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[..N]);
        self.buf = &self.buf[N..];
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.take::<2>().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.take::<4>().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.take::<4>().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.take::<8>().map(i64::from_be_bytes)
    }
}

fn decode(bytes: &[u8], offset: i64) -> Result<Decoded, String> {
    if bytes.len() < 10 || &bytes[..4] != SNAPSHOT_MAGIC {
        return Err("not a producer snapshot".into());
    }
    let version = u16::from_be_bytes([bytes[4], bytes[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let crc = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let body = &bytes[10..];
    if crc32c::crc32c(body) != crc {
        return Err("snapshot crc mismatch".into());
    }
    let mut r = Reader { buf: body };
    let at = r.i64()?;
    if at != offset {
        return Err(format!("snapshot says offset {at}, its name {offset}"));
    }
    let n = r.u32()?;
    let mut producers = HashMap::new();
    for _ in 0..n {
        let pid = r.i64()?;
        let mut e = Entry::new(r.i16()?);
        e.last_timestamp = r.i64()?;
        e.coordinator_epoch = r.i32()?;
        e.txn_first_offset = r.i64()?;
        e.last_data_offset = r.i64()?;
        let [count] = r.take::<1>()?;
        if count as usize > BATCHES_KEPT {
            return Err(format!("producer {pid} with {count} batches"));
        }
        for _ in 0..count {
            let (first_seq, last_seq, last_offset, offset_delta, max_timestamp) = (r.i32()?, r.i32()?, r.i64()?, r.i32()?, r.i64()?);
            e.batches.push_back(BatchMeta { first_seq, last_seq, last_offset, offset_delta, max_timestamp });
        }
        producers.insert(pid, e);
    }
    let n = r.u32()?;
    let mut unreplicated = BTreeMap::new();
    for _ in 0..n {
        let (first, pid, last) = (r.i64()?, r.i64()?, r.i64()?);
        unreplicated.insert(first, (pid, last));
    }
    if !r.buf.is_empty() {
        return Err("trailing bytes in snapshot".into());
    }
    Ok(Decoded { producers, unreplicated })
}

/// The snapshot file name for `offset`.
pub(crate) fn snapshot_name(offset: i64) -> String {
    crate::segment::file_name(offset, "snapshot")
}

/// Offsets of the snapshot files in `dir`.
pub(crate) fn list_snapshots(dir: &Path) -> io::Result<BTreeSet<i64>> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(off) = name.strip_suffix(".snapshot").and_then(|s| s.parse::<i64>().ok()) {
            out.insert(off);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::compression::Codec;
    use strom_protocol::records::BatchBuilder;

    fn facts(pid: i64, epoch: i16, seq: i32, base: i64, n: i32, txn: bool) -> BatchFacts {
        BatchFacts {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            offset_delta: n - 1,
            base_offset: base,
            max_timestamp: 1000 + base,
            transactional: txn,
            marker: None,
            control: false,
        }
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(4, 5));
        assert!(!in_sequence(4, 6));
    }

    #[test]
    fn marker_batches_parse() {
        let mut b = BatchBuilder::new(5).producer(7, 2, NO_SEQUENCE).transactional(true).control(true);
        b.push(marker_record(false, 9));
        let bytes = b.build(Codec::None).unwrap();
        let f = BatchFacts::parse(&bytes).unwrap();
        assert_eq!((f.producer_id, f.producer_epoch, f.control, f.transactional), (7, 2, true, true));
        assert_eq!(f.marker, Some((false, 9)));
        let mut b = BatchBuilder::new(5).producer(7, 2, NO_SEQUENCE).transactional(true).control(true);
        b.push(marker_record(true, 3));
        let bytes = b.build(Codec::None).unwrap();
        assert_eq!(BatchFacts::parse(&bytes[..HEADER_LEN + CONTROL_PREFIX.min(bytes.len() - HEADER_LEN)]).unwrap().marker, Some((true, 3)));
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut s = ProducerState::default();
        let mut p = PendingAppend::default();
        assert!(s.check_client(&mut p, &facts(1, 0, 0, 0, 3, false)).unwrap().is_none());
        s.commit(p);
        s.apply(&facts(2, 4, 0, 3, 2, true));
        let bytes = s.encode(5);
        let mut t = ProducerState::default();
        t.load(&bytes, 5).unwrap();
        assert!(t.same_as(&s));
        assert!(t.load(&bytes, 6).is_err());
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(t.load(&bad, 5).is_err());
        assert!(t.load(&bytes[..bytes.len() - 3], 5).is_err());
    }

    #[test]
    fn staged_batches_of_one_request_chain() {
        let s = ProducerState::default();
        let mut p = PendingAppend::default();
        s.check_client(&mut p, &facts(1, 0, 0, 0, 2, false)).unwrap();
        s.check_client(&mut p, &facts(1, 0, 2, 2, 2, false)).unwrap();
        assert!(matches!(s.check_client(&mut p, &facts(1, 0, 9, 4, 1, false)), Err(StorageError::OutOfOrderSequence(_))));
    }
}
