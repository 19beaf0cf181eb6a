//! The transaction coordinator as a pure state machine (Kafka's
//! `TransactionCoordinator` and `TransactionStateManager`, without I/O).
//!
//! A transactional id lives in one partition of `__transaction_state`
//! (`abs(javaHash(id)) % partitions`) and moves through Kafka's states:
//!
//! ```text
//!  Empty ──AddPartitions──► Ongoing ──EndTxn──► PrepareCommit ──markers──► CompleteCommit
//!    ▲                        │   └─────EndTxn/timeout/fence─► PrepareAbort ─markers─► CompleteAbort
//!    └──InitProducerId────────┴── (from Empty/Complete*: epoch bump) ◄─────────────────┘
//! ```
//!
//! **State only from durable records.** Every transition is a [`TxnWrite`] of
//! the id's new record. Nothing changes until the caller reports the write
//! appended and replicated with [`TxnCoordinator::complete_write`]; a failed write
//! changes nothing and its request gets Kafka's mapped error. While an id has a
//! write in flight, other requests for it get CONCURRENT_TRANSACTIONS (Kafka's
//! "pending transition"). Writes of one partition take effect in the order made.
//!
//! **Requests are answered through tokens.** Every request takes a [`Token`]; its
//! [`TxnAnswer`] comes in the same call's [`TxnOutput`] when nothing must be
//! written, or in the output of the `complete_write` that made it durable.
//!
//! **Producer ids come from the caller.** InitProducerId for a new id (or an
//! exhausted epoch) answers [`TxnAnswer::NeedProducerId`] unless the caller passed
//! a fresh id; the caller allocates one and repeats the call.
//!
//! **Markers.** Once PrepareCommit/PrepareAbort is durable, the client is answered
//! and a [`MarkerJob`] goes out: the caller writes the markers to every partition
//! of the transaction, then reports [`TxnCoordinator::markers_done`], which writes
//! CompleteCommit/CompleteAbort. A partition loaded in a Prepare state, or whose
//! Complete write failed, gets its job again (at load, then from the tick).
//!
//! **Timers** advance only through [`TxnCoordinator::abort_timed_out`] (Ongoing
//! past its timeout: the epoch is bumped to fence the producer and the
//! transaction aborted) and [`TxnCoordinator::expire_ids`] (ids idle in
//! Empty/Complete* for `transactional.id.expiration.ms` get a tombstone).
//!
//! This implements transactions version 1 (KIP-890 part 1): EndTxn does not bump
//! the epoch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::errors::*;
use crate::txn_records::{TxnRecord, TxnValue};
use crate::write_queue::WriteQueue;
use crate::{partition_for, Token, WriteId};

pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka codes used only by transactions.
pub mod codes {
    pub const INVALID_REQUEST: i16 = 42;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
}
use codes::*;

/// No producer id / epoch (Kafka's `RecordBatch.NO_PRODUCER_ID/EPOCH`).
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

#[derive(Debug, Clone)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`
    pub id_expiration_ms: i64,
    /// `transaction.state.log.num.partitions`
    pub state_partitions: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig { max_timeout_ms: 900_000, id_expiration_ms: 604_800_000, state_partitions: 50 }
    }
}

/// Kafka's transaction states; [`byte`](Self::byte) is the value stored in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn byte(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_byte(b: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.byte() == b)
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    fn is_prepare(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// No transaction in progress: the id may start one, be re-initialized or expire.
    fn is_idle(self) -> bool {
        matches!(self, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort)
    }
}

/// A transactional id's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation, or -1.
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump by a KIP-360 InitProducerId, so its retry
    /// gets the same answer (in memory only, as in Kafka).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the ongoing transaction started (its first AddPartitions), or -1.
    pub start_ms: i64,
}

impl TxnMetadata {
    fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now,
            start_ms: -1,
        }
    }

    /// Kafka rotates the producer id once the epoch reaches `i16::MAX - 1`.
    pub fn epoch_exhausted(&self) -> bool {
        epoch_exhausted(self.producer_epoch)
    }

    fn record(&self) -> TxnRecord {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &self.partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        TxnRecord {
            transactional_id: self.transactional_id.clone(),
            value: Some(TxnValue {
                producer_id: self.producer_id,
                previous_producer_id: self.previous_producer_id,
                producer_epoch: self.producer_epoch,
                timeout_ms: self.timeout_ms,
                state: self.state,
                partitions: by_topic.into_iter().map(|(t, ps)| (t.to_string(), ps)).collect(),
                last_update_ms: self.last_update_ms,
                start_ms: self.start_ms,
            }),
        }
    }

    fn from_value(transactional_id: String, v: TxnValue) -> TxnMetadata {
        TxnMetadata {
            transactional_id,
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: v.partitions.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p))).collect(),
            last_update_ms: v.last_update_ms,
            start_ms: v.start_ms,
        }
    }

    /// The transaction aborted by the coordinator: the epoch is bumped so the
    /// producer that let it time out (or a zombie) is fenced (Kafka's
    /// `prepareFenceProducerEpoch` followed by the abort).
    fn fenced_abort(&self, now: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.producer_epoch = next.producer_epoch.saturating_add(1);
        next.last_producer_epoch = NO_PRODUCER_EPOCH;
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now;
        next
    }
}

pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// InitProducerId for a transactional id.
#[derive(Debug, Clone)]
pub struct InitPidRequest {
    pub transactional_id: String,
    pub timeout_ms: i32,
    /// KIP-360: the producer id and epoch the client had, to recover after an error.
    pub expected: Option<(i64, i16)>,
}

/// What a waiting request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnAnswer {
    InitProducerId {
        error: i16,
        producer_id: i64,
        producer_epoch: i16,
    },
    /// Repeat the InitProducerId call with a fresh producer id.
    NeedProducerId,
    /// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn: one code for the request.
    Code(i16),
}

impl TxnAnswer {
    fn init_error(error: i16) -> TxnAnswer {
        TxnAnswer::InitProducerId { error, producer_id: NO_PRODUCER_ID, producer_epoch: NO_PRODUCER_EPOCH }
    }
}

/// The transaction's records for one `__transaction_state` partition, to append
/// as one batch; report the outcome with [`TxnCoordinator::complete_write`].
#[derive(Debug)]
pub struct TxnWrite {
    pub id: WriteId,
    pub partition: i32,
    pub records: Vec<TxnRecord>,
}

/// Markers to write: to every partition, a commit or abort marker for
/// (producer id, epoch) stamped with the coordinator epoch. Report the end with
/// [`TxnCoordinator::markers_done`]; give up when [`TxnCoordinator::marker_job_live`]
/// turns false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub id: u64,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// What a call produced.
#[derive(Debug, Default)]
pub struct TxnOutput {
    pub writes: Vec<TxnWrite>,
    pub answers: Vec<(Token, TxnAnswer)>,
    pub markers: Vec<MarkerJob>,
    /// Writes that took effect (NONE) or were dropped (the append error, or
    /// NOT_COORDINATOR when their partition was unloaded) during this call.
    pub resolved: Vec<(WriteId, i16)>,
}

impl TxnOutput {
    pub fn extend(&mut self, o: TxnOutput) {
        self.writes.extend(o.writes);
        self.answers.extend(o.answers);
        self.markers.extend(o.markers);
        self.resolved.extend(o.resolved);
    }

    fn answer(&mut self, token: Option<Token>, a: TxnAnswer) {
        if let Some(t) = token {
            self.answers.push((t, a));
        }
    }
}

/// What a durable write does besides replacing the id's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Answer InitProducerId with the new producer id and epoch.
    InitDone,
    /// InitProducerId found a transaction ongoing and aborts it: answer
    /// CONCURRENT_TRANSACTIONS so the client retries, and send the markers.
    FenceAbort,
    /// A transaction entered Ongoing (or grew): answer NONE.
    Added,
    /// PrepareCommit/PrepareAbort: answer NONE and send the markers.
    Prepared,
    /// CompleteCommit/CompleteAbort.
    Completed,
    /// The tombstone of an expired id.
    Expired,
}

/// One id's change inside a write.
#[derive(Debug)]
struct Change {
    transactional_id: String,
    /// The new metadata; `None` removes the id (tombstone).
    next: Option<TxnMetadata>,
    token: Option<Token>,
    then: Then,
}

/// Whether this coordinator serves a partition's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnPartitionStatus {
    NotOwned,
    /// Being replayed; the value tells this load from a later one.
    Loading(u64),
    Owned,
}

#[derive(Debug, Clone, Copy)]
struct Owned {
    status: TxnPartitionStatus,
    /// The leader epoch of the `__transaction_state` partition; stamped on markers.
    coordinator_epoch: i32,
}

#[derive(Debug)]
struct Entry {
    meta: TxnMetadata,
    partition: i32,
    /// The marker job in progress for a Prepare state.
    marker_job: Option<u64>,
}

/// One row of ListTransactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

pub struct TxnCoordinator {
    pub config: TxnConfig,
    txns: HashMap<String, Entry>,
    partitions: HashMap<i32, Owned>,
    /// Ids with a write in flight, and the write.
    inflight: HashMap<String, WriteId>,
    /// Unresolved writes per partition, in the order made.
    pending: WriteQueue<Vec<Change>>,
    next_write: WriteId,
    next_load: u64,
    next_job: u64,
}

/// Kafka's answer for a transaction record that could not be written
/// (`TransactionStateManager.appendTransactionToLog`): lost or under-replicated
/// partitions and timeouts → COORDINATOR_NOT_AVAILABLE; lost leadership or a failed
/// disk → NOT_COORDINATOR; anything else → UNKNOWN_SERVER_ERROR.
pub fn txn_write_error(append_error: i16) -> i16 {
    match append_error {
        NONE => NONE,
        UNKNOWN_TOPIC_OR_PARTITION
        | NOT_ENOUGH_REPLICAS
        | NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | REQUEST_TIMED_OUT
        | COORDINATOR_NOT_AVAILABLE => COORDINATOR_NOT_AVAILABLE,
        NOT_LEADER_OR_FOLLOWER | KAFKA_STORAGE_ERROR | NOT_COORDINATOR => NOT_COORDINATOR,
        _ => UNKNOWN_SERVER_ERROR,
    }
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TxnCoordinator {
            config,
            txns: HashMap::new(),
            partitions: HashMap::new(),
            inflight: HashMap::new(),
            pending: WriteQueue::default(),
            next_write: 1,
            next_load: 0,
            next_job: 1,
        }
    }

    /// The `__transaction_state` partition of a transactional id.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.state_partitions)
    }

    pub fn metadata(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id).map(|e| &e.meta)
    }

    // ----- Ownership -------------------------------------------------------

    pub fn status(&self, partition: i32) -> TxnPartitionStatus {
        self.partitions.get(&partition).map(|o| o.status).unwrap_or(TxnPartitionStatus::NotOwned)
    }

    pub fn owns(&self, partition: i32) -> bool {
        self.status(partition) == TxnPartitionStatus::Owned
    }

    /// The coordinator epoch of an owned or loading partition.
    pub fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        self.partitions.get(&partition).map(|o| o.coordinator_epoch)
    }

    /// NONE if this coordinator serves the id, else NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub fn check(&self, transactional_id: &str) -> i16 {
        match self.status(self.partition_for(transactional_id)) {
            TxnPartitionStatus::Owned => NONE,
            TxnPartitionStatus::Loading(_) => COORDINATOR_LOAD_IN_PROGRESS,
            TxnPartitionStatus::NotOwned => NOT_COORDINATOR,
        }
    }

    /// Starts loading a partition at `coordinator_epoch` (its leader epoch): its
    /// ids answer COORDINATOR_LOAD_IN_PROGRESS until
    /// [`finish_load`](Self::finish_load). Replay records with [`load`](Self::load).
    /// A partition owned already is unloaded first.
    pub fn begin_load(&mut self, partition: i32, coordinator_epoch: i32) -> (u64, TxnOutput) {
        let out = self.unload(partition);
        self.next_load += 1;
        self.partitions.insert(partition, Owned { status: TxnPartitionStatus::Loading(self.next_load), coordinator_epoch });
        (self.next_load, out)
    }

    /// Replays one record of a partition being loaded: the latest value of an id wins;
    /// a tombstone removes it.
    pub fn load(&mut self, partition: i32, record: TxnRecord) {
        if !matches!(self.status(partition), TxnPartitionStatus::Loading(_)) {
            return;
        }
        match record.value {
            Some(v) => {
                let meta = TxnMetadata::from_value(record.transactional_id.clone(), v);
                self.txns.insert(record.transactional_id, Entry { meta, partition, marker_job: None });
            }
            None => {
                self.txns.remove(&record.transactional_id);
            }
        }
    }

    /// Ends a load: the partition is owned, and transactions found half-way through
    /// commit or abort get their markers sent again. `None` (nothing changes) if the
    /// partition was unloaded or loaded again since `ticket`.
    pub fn finish_load(&mut self, partition: i32, ticket: u64) -> Option<TxnOutput> {
        let owned = self.partitions.get_mut(&partition)?;
        if owned.status != TxnPartitionStatus::Loading(ticket) {
            return None;
        }
        owned.status = TxnPartitionStatus::Owned;
        let mut out = TxnOutput::default();
        self.resume_markers(Some(partition), &mut out);
        Some(out)
    }

    /// Gives up a partition: its ids leave memory; writes in flight and their
    /// requests get NOT_COORDINATOR; its marker jobs stop being live.
    pub fn unload(&mut self, partition: i32) -> TxnOutput {
        let mut out = TxnOutput::default();
        self.partitions.remove(&partition);
        self.txns.retain(|_, e| e.partition != partition);
        for (id, changes) in self.pending.remove(partition) {
            out.resolved.push((id, NOT_COORDINATOR));
            for c in changes {
                self.inflight.remove(&c.transactional_id);
                let answer = match c.then {
                    Then::InitDone | Then::FenceAbort => TxnAnswer::init_error(NOT_COORDINATOR),
                    _ => TxnAnswer::Code(NOT_COORDINATOR),
                };
                out.answer(c.token, answer);
            }
        }
        out
    }

    // ----- Writes ----------------------------------------------------------

    /// Makes one write of the changes of one partition and marks their ids busy.
    fn write(&mut self, partition: i32, changes: Vec<Change>, out: &mut TxnOutput) {
        if changes.is_empty() {
            return;
        }
        let id = self.next_write;
        self.next_write += 1;
        let mut records = Vec::with_capacity(changes.len());
        for c in &changes {
            self.inflight.insert(c.transactional_id.clone(), id);
            records.push(match &c.next {
                Some(m) => m.record(),
                None => TxnRecord { transactional_id: c.transactional_id.clone(), value: None },
            });
        }
        self.pending.push(partition, id, changes);
        out.writes.push(TxnWrite { id, partition, records });
    }

    fn write_one(&mut self, partition: i32, change: Change, out: &mut TxnOutput) {
        self.write(partition, vec![change], out);
    }

    /// Reports a write: NONE once its records are appended and replicated, else the
    /// append's error code. Writes of a partition take effect in the order made, so
    /// this may resolve earlier-reported writes too, or none. Unknown ids (of an
    /// unloaded partition) are ignored.
    pub fn complete_write(&mut self, id: WriteId, result: i16, _now: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        let Some((partition, done)) = self.pending.complete(id, result) else {
            return out;
        };
        for (id, result, changes) in done {
            out.resolved.push((id, result));
            for c in changes {
                self.inflight.remove(&c.transactional_id);
                if result == NONE {
                    self.apply(partition, c, &mut out);
                } else {
                    self.undo(c, result, &mut out);
                }
            }
        }
        out
    }

    /// A durable change: the metadata is replaced, then the change's follow-up.
    fn apply(&mut self, partition: i32, c: Change, out: &mut TxnOutput) {
        let Some(next) = c.next else {
            self.txns.remove(&c.transactional_id);
            return;
        };
        let (pid, epoch) = (next.producer_id, next.producer_epoch);
        let id = c.transactional_id;
        match self.txns.get_mut(&id) {
            Some(e) => {
                e.meta = next;
                e.marker_job = None;
            }
            None => {
                self.txns.insert(id.clone(), Entry { meta: next, partition, marker_job: None });
            }
        }
        match c.then {
            Then::InitDone => out.answer(c.token, TxnAnswer::InitProducerId { error: NONE, producer_id: pid, producer_epoch: epoch }),
            Then::FenceAbort => {
                out.answer(c.token, TxnAnswer::init_error(CONCURRENT_TRANSACTIONS));
                self.start_markers(&id, out);
            }
            Then::Prepared => {
                out.answer(c.token, TxnAnswer::Code(NONE));
                self.start_markers(&id, out);
            }
            Then::Added => out.answer(c.token, TxnAnswer::Code(NONE)),
            Then::Completed | Then::Expired => {}
        }
    }

    /// A failed change: nothing changes; the request hears the mapped error. A
    /// failed Complete write leaves the transaction prepared, and the tick sends
    /// its markers again.
    fn undo(&mut self, c: Change, append_error: i16, out: &mut TxnOutput) {
        let error = txn_write_error(append_error);
        match c.then {
            Then::InitDone | Then::FenceAbort => out.answer(c.token, TxnAnswer::init_error(error)),
            Then::Added | Then::Prepared => out.answer(c.token, TxnAnswer::Code(error)),
            Then::Completed => {
                if let Some(e) = self.txns.get_mut(&c.transactional_id) {
                    e.marker_job = None;
                }
            }
            Then::Expired => {}
        }
    }

    // ----- Markers ---------------------------------------------------------

    /// Starts a marker job for a prepared transaction that has none.
    fn start_markers(&mut self, transactional_id: &str, out: &mut TxnOutput) {
        let Some(e) = self.txns.get_mut(transactional_id) else { return };
        if !e.meta.state.is_prepare() || e.marker_job.is_some() || self.inflight.contains_key(transactional_id) {
            return;
        }
        let Some(owned) = self.partitions.get(&e.partition).filter(|o| o.status == TxnPartitionStatus::Owned) else {
            return;
        };
        let id = self.next_job;
        self.next_job += 1;
        e.marker_job = Some(id);
        out.markers.push(MarkerJob {
            id,
            transactional_id: transactional_id.to_string(),
            producer_id: e.meta.producer_id,
            producer_epoch: e.meta.producer_epoch,
            coordinator_epoch: owned.coordinator_epoch,
            commit: e.meta.state == TxnState::PrepareCommit,
            partitions: e.meta.partitions.iter().cloned().collect(),
        });
    }

    /// Starts marker jobs for prepared transactions without one (of one partition,
    /// or of all owned partitions).
    fn resume_markers(&mut self, partition: Option<i32>, out: &mut TxnOutput) {
        let mut ids: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, e)| partition.is_none_or(|p| e.partition == p) && e.meta.state.is_prepare() && e.marker_job.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        for id in ids {
            self.start_markers(&id, out);
        }
    }

    /// Whether a marker job is still wanted: its transaction is still prepared here
    /// under the same coordinator epoch. The caller stops retrying when not.
    pub fn marker_job_live(&self, job: &MarkerJob) -> bool {
        self.txns.get(&job.transactional_id).is_some_and(|e| e.marker_job == Some(job.id))
    }

    /// Every marker of a job is written: the transaction completes (a
    /// CompleteCommit/CompleteAbort write). Nothing if the job is no longer live.
    pub fn markers_done(&mut self, job: &MarkerJob, now: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        if !self.marker_job_live(job) || self.inflight.contains_key(&job.transactional_id) {
            return out;
        }
        let Some(e) = self.txns.get(&job.transactional_id) else { return out };
        let mut next = e.meta.clone();
        next.state = if next.state == TxnState::PrepareCommit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        next.partitions.clear();
        next.last_update_ms = now;
        let partition = e.partition;
        let change = Change { transactional_id: job.transactional_id.clone(), next: Some(next), token: None, then: Then::Completed };
        self.write_one(partition, change, &mut out);
        out
    }

    // ----- Requests --------------------------------------------------------

    /// Transactional InitProducerId. A new id, or an exhausted epoch, needs a fresh
    /// producer id: without `fresh_producer_id` the answer is
    /// [`TxnAnswer::NeedProducerId`].
    pub fn init_producer_id(&mut self, req: InitPidRequest, fresh_producer_id: Option<i64>, token: Token, now: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        let id = req.transactional_id.as_str();
        let early = if id.is_empty() {
            Some(INVALID_REQUEST)
        } else if req.timeout_ms <= 0 || req.timeout_ms > self.config.max_timeout_ms {
            Some(INVALID_TRANSACTION_TIMEOUT)
        } else if self.check(id) != NONE {
            Some(self.check(id))
        } else if self.inflight.contains_key(id) {
            Some(CONCURRENT_TRANSACTIONS)
        } else {
            None
        };
        if let Some(error) = early {
            out.answers.push((token, TxnAnswer::init_error(error)));
            return out;
        }
        let current = match self.txns.get(id) {
            Some(e) => e.meta.clone(),
            None => match fresh_producer_id {
                Some(pid) => TxnMetadata::new(id, pid, req.timeout_ms, now),
                None => {
                    out.answers.push((token, TxnAnswer::NeedProducerId));
                    return out;
                }
            },
        };
        let partition = self.partition_for(id);
        match self.init_transition(&current, &req, fresh_producer_id, now) {
            Ok((next, then)) => {
                let change = Change { transactional_id: id.to_string(), next: Some(next), token: Some(token), then };
                self.write_one(partition, change, &mut out);
            }
            Err(answer) => out.answers.push((token, answer)),
        }
        out
    }

    /// The state InitProducerId moves `m` to (Kafka's `prepareInitProducerIdTransit`).
    fn init_transition(
        &self,
        m: &TxnMetadata,
        req: &InitPidRequest,
        fresh: Option<i64>,
        now: i64,
    ) -> Result<(TxnMetadata, Then), TxnAnswer> {
        if let Some((pid, epoch)) = req.expected {
            // KIP-360: a producer recovering with its old id and epoch is fenced
            // unless the id is new, it is the current id, or it is the previous id
            // with an exhausted epoch (a retry of the rotation).
            let valid =
                m.producer_epoch == NO_PRODUCER_EPOCH || pid == m.producer_id || (pid == m.previous_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Err(TxnAnswer::init_error(PRODUCER_FENCED));
            }
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::Dead | TxnState::PrepareEpochFence => {
                Err(TxnAnswer::init_error(CONCURRENT_TRANSACTIONS))
            }
            TxnState::Ongoing => Ok((m.fenced_abort(now), Then::FenceAbort)),
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = m.clone();
                if m.epoch_exhausted() && req.expected.is_none_or(|(_, e)| e == m.producer_epoch) {
                    let Some(pid) = fresh.filter(|p| *p != m.producer_id) else {
                        return Err(TxnAnswer::NeedProducerId);
                    };
                    next.previous_producer_id = m.producer_id;
                    next.producer_id = pid;
                    next.producer_epoch = 0;
                    next.last_producer_epoch = if req.expected.is_some() { m.producer_epoch } else { NO_PRODUCER_EPOCH };
                } else {
                    let (epoch, last) = bumped_epoch(m, req.expected.map(|(_, e)| e)).ok_or(TxnAnswer::init_error(PRODUCER_FENCED))?;
                    next.producer_epoch = epoch;
                    next.last_producer_epoch = last;
                }
                next.timeout_ms = req.timeout_ms;
                next.state = TxnState::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_update_ms = now;
                Ok((next, Then::InitDone))
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's
    /// `__consumer_offsets` partition): the transaction is Ongoing with these
    /// partitions once the write is durable.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        token: Token,
        now: i64,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        let m = match self.lookup(transactional_id, producer_id, producer_epoch) {
            Ok(m) => m,
            Err(code) => {
                out.answers.push((token, TxnAnswer::Code(code)));
                return out;
            }
        };
        let busy = matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::Dead | TxnState::PrepareEpochFence);
        let code = if busy || self.inflight.contains_key(transactional_id) {
            Some(CONCURRENT_TRANSACTIONS)
        } else if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            Some(NONE)
        } else {
            None
        };
        if let Some(code) = code {
            out.answers.push((token, TxnAnswer::Code(code)));
            return out;
        }
        let mut next = m.clone();
        if m.state.is_idle() {
            next.start_ms = now;
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now;
        let partition = self.partition_for(transactional_id);
        let change = Change { transactional_id: transactional_id.to_string(), next: Some(next), token: Some(token), then: Then::Added };
        self.write_one(partition, change, &mut out);
        out
    }

    /// The id's metadata if this coordinator serves it and (producer id, epoch)
    /// are its current ones, else Kafka's error.
    fn lookup(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16) -> Result<&TxnMetadata, i16> {
        if transactional_id.is_empty() {
            return Err(INVALID_REQUEST);
        }
        match self.check(transactional_id) {
            NONE => {}
            e => return Err(e),
        }
        let m = self.metadata(transactional_id).ok_or(INVALID_PRODUCER_ID_MAPPING)?;
        if m.producer_id != producer_id {
            return Err(INVALID_PRODUCER_ID_MAPPING);
        }
        if m.producer_epoch != producer_epoch {
            return Err(PRODUCER_FENCED);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn v4+ `verify_only` (KIP-890 part 1): for each partition,
    /// NONE if it is in the ongoing transaction of (producer id, epoch), else
    /// INVALID_TXN_STATE; or one error for all (not the coordinator, unknown id,
    /// fenced epoch, a commit or abort under way). Writes nothing.
    pub fn verify(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16, partitions: &[(String, i32)]) -> Vec<i16> {
        let all = |code: i16| vec![code; partitions.len()];
        let m = match self.lookup(transactional_id, producer_id, producer_epoch) {
            Ok(m) => m,
            Err(code) => return all(code),
        };
        if m.state.is_prepare() {
            return all(CONCURRENT_TRANSACTIONS);
        }
        partitions.iter().map(|p| if m.state == TxnState::Ongoing && m.partitions.contains(p) { NONE } else { INVALID_TXN_STATE }).collect()
    }

    /// EndTxn from the client: PrepareCommit/PrepareAbort is written; once durable
    /// the client hears NONE and the markers go out. A retry after completion with
    /// the same result is NONE, with the other result INVALID_TXN_STATE.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        token: Token,
        now: i64,
    ) -> TxnOutput {
        let mut out = TxnOutput::default();
        let m = match self.lookup(transactional_id, producer_id, producer_epoch) {
            Ok(m) => m,
            Err(code) => {
                out.answers.push((token, TxnAnswer::Code(code)));
                return out;
            }
        };
        if self.inflight.contains_key(transactional_id) {
            out.answers.push((token, TxnAnswer::Code(CONCURRENT_TRANSACTIONS)));
            return out;
        }
        let same = |s: TxnState| if s == TxnState::PrepareCommit || s == TxnState::CompleteCommit { commit } else { !commit };
        let code = match m.state {
            TxnState::Ongoing => None,
            s @ (TxnState::CompleteCommit | TxnState::CompleteAbort) => Some(if same(s) { NONE } else { INVALID_TXN_STATE }),
            s @ (TxnState::PrepareCommit | TxnState::PrepareAbort) => {
                Some(if same(s) { CONCURRENT_TRANSACTIONS } else { INVALID_TXN_STATE })
            }
            TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => Some(INVALID_TXN_STATE),
        };
        if let Some(code) = code {
            out.answers.push((token, TxnAnswer::Code(code)));
            return out;
        }
        let mut next = m.clone();
        next.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        next.last_update_ms = now;
        let partition = self.partition_for(transactional_id);
        let change = Change { transactional_id: transactional_id.to_string(), next: Some(next), token: Some(token), then: Then::Prepared };
        self.write_one(partition, change, &mut out);
        out
    }

    // ----- Timers ----------------------------------------------------------

    /// Aborts ongoing transactions past their timeout, bumping the epoch so their
    /// producer is fenced (`transaction.abort.timed.out.transaction.cleanup.interval.ms`),
    /// and restarts the markers of prepared transactions that have no job.
    pub fn abort_timed_out(&mut self, now: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        let mut by_partition: BTreeMap<i32, Vec<Change>> = BTreeMap::new();
        for (id, e) in &self.txns {
            let timed_out = e.meta.state == TxnState::Ongoing && e.meta.start_ms.saturating_add(e.meta.timeout_ms as i64) < now;
            if !timed_out || self.inflight.contains_key(id) || !self.owns(e.partition) || e.meta.producer_epoch == i16::MAX {
                continue;
            }
            by_partition.entry(e.partition).or_default().push(Change {
                transactional_id: id.clone(),
                next: Some(e.meta.fenced_abort(now)),
                token: None,
                then: Then::Prepared,
            });
        }
        for (partition, mut changes) in by_partition {
            changes.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
            self.write(partition, changes, &mut out);
        }
        self.resume_markers(None, &mut out);
        out
    }

    /// Removes ids idle (Empty, CompleteCommit, CompleteAbort) for
    /// `transactional.id.expiration.ms`: a tombstone each, one write per partition.
    pub fn expire_ids(&mut self, now: i64) -> TxnOutput {
        let mut out = TxnOutput::default();
        let mut by_partition: BTreeMap<i32, Vec<Change>> = BTreeMap::new();
        for (id, e) in &self.txns {
            let expired = e.meta.state.is_idle() && e.meta.last_update_ms.saturating_add(self.config.id_expiration_ms) <= now;
            if !expired || self.inflight.contains_key(id) || !self.owns(e.partition) {
                continue;
            }
            by_partition.entry(e.partition).or_default().push(Change {
                transactional_id: id.clone(),
                next: None,
                token: None,
                then: Then::Expired,
            });
        }
        for (partition, mut changes) in by_partition {
            changes.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
            self.write(partition, changes, &mut out);
        }
        out
    }

    // ----- Questions -------------------------------------------------------

    /// DescribeTransactions: the id's metadata, or NOT_COORDINATOR,
    /// COORDINATOR_LOAD_IN_PROGRESS, INVALID_REQUEST or TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe(&self, transactional_id: &str) -> Result<TxnMetadata, i16> {
        if transactional_id.is_empty() {
            return Err(INVALID_REQUEST);
        }
        match self.check(transactional_id) {
            NONE => {}
            e => return Err(e),
        }
        self.metadata(transactional_id).filter(|m| m.state != TxnState::Dead).cloned().ok_or(TRANSACTIONAL_ID_NOT_FOUND)
    }

    /// ListTransactions over the owned partitions: filtered by state names (unknown
    /// names come back as the second value and match nothing), producer ids and,
    /// when `min_duration_ms >= 0`, transactions running longer than that.
    /// COORDINATOR_LOAD_IN_PROGRESS while a partition loads.
    pub fn list(
        &self,
        states: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
        now: i64,
    ) -> Result<(Vec<TxnListing>, Vec<String>), i16> {
        if self.partitions.values().any(|o| matches!(o.status, TxnPartitionStatus::Loading(_))) {
            return Err(COORDINATOR_LOAD_IN_PROGRESS);
        }
        let wanted: Vec<TxnState> = states.iter().filter_map(|s| TxnState::from_name(s)).collect();
        let unknown: Vec<String> = states.iter().filter(|s| TxnState::from_name(s).is_none()).cloned().collect();
        let mut rows: Vec<TxnListing> = self
            .txns
            .values()
            .filter(|e| self.owns(e.partition))
            .map(|e| &e.meta)
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| states.is_empty() || wanted.contains(&m.state))
            .filter(|m| min_duration_ms < 0 || now - m.start_ms > min_duration_ms)
            .map(|m| TxnListing { transactional_id: m.transactional_id.clone(), producer_id: m.producer_id, state: m.state })
            .collect();
        rows.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok((rows, unknown))
    }
}

/// Kafka's `prepareIncrementProducerEpoch`: (new epoch, last epoch), or `None` when
/// the expected epoch is fenced. A retry of a bump the client never heard of gets
/// the current epoch again.
fn bumped_epoch(m: &TxnMetadata, expected: Option<i16>) -> Option<(i16, i16)> {
    let bumped = m.producer_epoch.saturating_add(1);
    match expected {
        None => Some((bumped, NO_PRODUCER_EPOCH)),
        Some(e) if m.producer_epoch == NO_PRODUCER_EPOCH || e == m.producer_epoch => Some((bumped, m.producer_epoch)),
        Some(e) if e == m.last_producer_epoch => Some((m.producer_epoch, m.last_producer_epoch)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests;
