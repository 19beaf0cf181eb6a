//! Runs the group coordinator state machine against real storage.
//!
//! The coordinator (`strom-coordinator`) decides; this module does the I/O:
//! - appends each write it emits to its partition of `__consumer_offsets` as one
//!   batch, inside the coordinator lock so the log order is the decision order;
//! - fsyncs it in a task of its own (group commit), so a client that goes away
//!   cannot leave a write unreported, then reports the outcome to the
//!   coordinator ([`GroupCoordinator::complete_write`]): only then do commits
//!   become visible and assignments take effect ("apply from committed
//!   records"); a failed append or fsync changes nothing;
//! - delivers answers to the JoinGroup/SyncGroup requests waiting on oneshot
//!   channels, and tells each caller how its own writes ended.
//!
//! Ownership: this broker coordinates the groups of the `__consumer_offsets`
//! partitions it has loaded ([`GroupManager::load_partition`]); the others answer
//! NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while being loaded. A loaded
//! partition's log is kept here, so writes do not go through the broker again.
//! A background tick drives session expiry, rebalance timeouts and offset
//! retention of the owned groups.
//!
//! Transactions: a TxnOffsetCommit's write is appended as a transactional batch
//! of its producer; the WriteTxnMarkers handler reports each marker it made
//! durable on a `__consumer_offsets` partition with [`GroupManager::complete_txn`].
//! A load replays batches with their headers ([`ReplayBatch`]), so offsets of a
//! transaction whose marker is in the log are completed, and the others stay
//! pending for a marker to come.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use strom_coordinator::errors::{
    COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR, MESSAGE_TOO_LARGE, NONE, NOT_COORDINATOR, NOT_LEADER_OR_FOLLOWER, UNKNOWN_SERVER_ERROR,
};
use strom_coordinator::group::{Output, SyncResponse};
use strom_coordinator::records::{decode_marker, GroupRecord, ReplayBatch};
use strom_coordinator::{GroupConfig, GroupCoordinator, PartitionStatus, Token, Write, WriteId};
use strom_storage::{Log, StorageError};

/// How long a group write waits for the in-sync replicas (Kafka's `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
use tokio::sync::oneshot;

pub use strom_coordinator::group::JoinResponse;

use crate::config::BrokerConfig;
use crate::partition::{AppendError, NotDurable, Partition};
use crate::server::Broker;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

enum Waiter {
    Join(oneshot::Sender<JoinResponse>),
    Sync(oneshot::Sender<SyncResponse>),
}

pub struct GroupManager {
    inner: Arc<Inner>,
}

struct Inner {
    coord: Mutex<GroupCoordinator>,
    /// Logs of the owned partitions; only touched with `coord` held.
    logs: Mutex<HashMap<i32, Arc<Partition>>>,
    waiting: Mutex<HashMap<Token, Waiter>>,
    /// Callers waiting for their writes: the append error, or NONE.
    writes: Mutex<HashMap<WriteId, oneshot::Sender<i16>>>,
    next_token: AtomicU64,
}

pub fn group_config(c: &BrokerConfig) -> GroupConfig {
    GroupConfig {
        min_session_timeout_ms: c.int("group.min.session.timeout.ms") as i32,
        max_session_timeout_ms: c.int("group.max.session.timeout.ms") as i32,
        initial_rebalance_delay_ms: c.int("group.initial.rebalance.delay.ms"),
        max_size: c.int("group.max.size").max(1) as usize,
        offsets_retention_ms: c.int("offsets.retention.minutes").saturating_mul(60_000),
        offset_metadata_max_bytes: c.int("offset.metadata.max.bytes").max(0) as usize,
        offsets_partitions: c.int("offsets.topic.num.partitions").max(1) as i32,
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a step left to wait for: how its writes end.
pub struct Pending {
    writes: Vec<oneshot::Receiver<i16>>,
}

/// Answers, write outcomes and fsyncs to start once the coordinator lock is released.
#[derive(Default)]
struct Answers {
    joins: Vec<(Token, JoinResponse)>,
    syncs: Vec<(Token, SyncResponse)>,
    resolved: Vec<(WriteId, i16)>,
    /// Appended writes: (partition, offset to flush to, leader epoch, write).
    flushes: Vec<(Arc<Partition>, i64, i32, WriteId)>,
}

impl GroupManager {
    pub fn new(config: GroupConfig) -> Self {
        GroupManager {
            inner: Arc::new(Inner {
                coord: Mutex::new(GroupCoordinator::new(config)),
                logs: Mutex::new(HashMap::new()),
                waiting: Mutex::new(HashMap::new()),
                writes: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(1),
            }),
        }
    }

    /// The coordinator, for read-only questions (describe, list, fetch offsets)
    /// and heartbeats, which write nothing.
    pub fn lock(&self) -> MutexGuard<'_, GroupCoordinator> {
        guard(&self.inner.coord)
    }

    /// The `__consumer_offsets` partition that stores a group.
    pub fn partition_for(&self, group: &str) -> i32 {
        self.lock().partition_for(group)
    }

    /// Whether this broker coordinates the groups of `partition` (loaded, not unloaded).
    pub fn owns(&self, partition: i32) -> bool {
        self.lock().owns(partition)
    }

    pub fn join_token(&self) -> (Token, oneshot::Receiver<JoinResponse>) {
        let t = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        guard(&self.inner.waiting).insert(t, Waiter::Join(tx));
        (t, rx)
    }

    pub fn sync_token(&self) -> (Token, oneshot::Receiver<SyncResponse>) {
        let t = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        guard(&self.inner.waiting).insert(t, Waiter::Sync(tx));
        (t, rx)
    }

    /// Runs one coordinator step: appends its writes (their fsync and report run
    /// on their own), delivers the answers that can go now, and returns what the
    /// caller may wait for with [`finish`](Self::finish).
    pub fn step<R>(&self, f: impl FnOnce(&mut GroupCoordinator) -> (R, Output)) -> (R, Pending) {
        let mut coord = self.lock();
        let (r, out) = f(&mut coord);
        let mut receivers = Vec::with_capacity(out.writes.len());
        if !out.writes.is_empty() {
            let mut writes = guard(&self.inner.writes);
            for w in &out.writes {
                let (tx, rx) = oneshot::channel();
                writes.insert(w.id, tx);
                receivers.push(rx);
            }
        }
        let answers = self.inner.process(&mut coord, out);
        drop(coord);
        self.inner.deliver(answers);
        (r, Pending { writes: receivers })
    }

    /// Waits until a step's writes are durable and applied, or failed. Returns
    /// NONE or the first append error (a Kafka code such as KAFKA_STORAGE_ERROR;
    /// map it with `strom_coordinator::errors::{commit_error, write_error}`).
    pub async fn finish(&self, p: Pending) -> i16 {
        let mut result = NONE;
        for rx in p.writes {
            let code = rx.await.unwrap_or(UNKNOWN_SERVER_ERROR);
            if result == NONE {
                result = code;
            }
        }
        result
    }

    /// A transaction marker of `producer_id` is durable and replicated on
    /// `partition` of `__consumer_offsets`: the offsets that producer committed
    /// in the transaction become visible to OffsetFetch (`commit`) or are
    /// dropped. Call it after the marker's append is durable, before answering
    /// WriteTxnMarkers, so the producer's next transaction starts after it.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        self.lock().complete_txn(partition, producer_id, commit);
    }

    pub async fn tick(&self, _b: &Broker) {
        let now = strom_storage::now_ms();
        let ((), pending) = self.step(|c| ((), c.tick(now)));
        self.finish(pending).await;
    }

    /// Loads every partition of `__consumer_offsets` in the current metadata
    /// (the single node at start-up). Blocking disk reads.
    pub fn load(&self, b: &Broker) {
        let partitions: Vec<i32> =
            b.metadata.image().topic(OFFSETS_TOPIC).map(|t| t.partitions.keys().copied().collect()).unwrap_or_default();
        for p in partitions {
            self.load_partition(b, p);
        }
    }

    /// Replays one partition of `__consumer_offsets` into the coordinator, then
    /// serves its groups (they answer COORDINATOR_LOAD_IN_PROGRESS meanwhile).
    /// Does blocking disk reads: call it from a blocking context. Does nothing if
    /// the partition is owned or being loaded already; gives up if it is
    /// unloaded while loading.
    pub fn load_partition(&self, b: &Broker, partition: i32) {
        let ticket = {
            let mut coord = self.lock();
            if coord.status(partition) != PartitionStatus::NotOwned {
                return;
            }
            let (ticket, out) = coord.begin_load(partition);
            let answers = self.inner.process(&mut coord, out);
            drop(coord);
            self.inner.deliver(answers);
            ticket
        };
        let started = std::time::Instant::now();
        let part = b.replicas.get(OFFSETS_TOPIC, partition);
        if part.is_none() {
            tracing::warn!(partition, "no log for this __consumer_offsets partition; its group writes will fail");
        }
        let Some((mut coord, count)) = self.replay(part.as_ref(), partition, ticket) else {
            tracing::info!(partition, "group load abandoned: partition unloaded");
            return;
        };
        if !coord.finish_load(partition, ticket) {
            return;
        }
        match part {
            Some(part) => guard(&self.inner.logs).insert(partition, part),
            None => guard(&self.inner.logs).remove(&partition),
        };
        let ms = started.elapsed().as_millis() as u64;
        if count > 0 {
            tracing::info!(partition, records = count, ms, "group partition loaded");
        } else {
            tracing::debug!(partition, ms, "group partition loaded (empty)");
        }
    }

    /// Replays `part`'s log, from its start to its end, into the partition being
    /// loaded with `ticket`. Returns the coordinator, locked with the log at its
    /// end, and how many records (a marker counts one) were applied; `None` if
    /// the partition was unloaded meanwhile.
    fn replay(&self, part: Option<&Arc<Partition>>, partition: i32, ticket: u64) -> Option<(MutexGuard<'_, GroupCoordinator>, usize)> {
        let mut count = 0usize;
        let mut offset = part.map(|p| p.log().log_start_offset()).unwrap_or(0);
        loop {
            // Read and decode without the lock; apply a chunk at a time. The
            // partition's groups are invisible until the load finishes.
            let chunk = part.filter(|p| offset < p.log().log_end_offset()).map(|p| read_chunk(&p.log(), partition, offset));
            let mut coord = self.lock();
            if coord.status(partition) != PartitionStatus::Loading(ticket) {
                return None;
            }
            let Some((batches, next)) = chunk else {
                if part.is_some_and(|p| offset < p.log().log_end_offset()) {
                    continue; // a marker came meanwhile: replay it too
                }
                // At the log end with the lock held: a transaction marker
                // appended from now on reaches an owned partition through
                // `complete_txn`; one appended before was replayed.
                return Some((coord, count));
            };
            if next <= offset {
                return Some((coord, count));
            }
            offset = next;
            let now = strom_storage::now_ms();
            for batch in batches {
                count += match &batch {
                    ReplayBatch::Records { records, .. } => records.len(),
                    ReplayBatch::Marker { .. } => 1,
                };
                coord.load_batch(partition, batch, now);
            }
        }
    }

    /// Stops coordinating the groups of `partition`: they leave memory, waiting
    /// JoinGroup/SyncGroup calls and writes in flight get NOT_COORDINATOR.
    pub fn unload_partition(&self, partition: i32) {
        let mut coord = self.lock();
        let out = coord.unload(partition);
        guard(&self.inner.logs).remove(&partition);
        let answers = self.inner.process(&mut coord, out);
        drop(coord);
        self.inner.deliver(answers);
        tracing::info!(partition, "group partition unloaded");
    }
}

impl Inner {
    /// Appends an output's writes (more outputs follow from writes that fail at
    /// once); collects the answers and the fsyncs to start. Called with the
    /// coordinator lock held.
    fn process(&self, coord: &mut GroupCoordinator, out: Output) -> Answers {
        let mut answers = Answers::default();
        let mut queue = VecDeque::from([out]);
        while let Some(mut out) = queue.pop_front() {
            answers.joins.append(&mut out.joins);
            answers.syncs.append(&mut out.syncs);
            answers.resolved.append(&mut out.resolved);
            for w in std::mem::take(&mut out.writes) {
                match self.append(&w) {
                    Ok((part, end, epoch)) => answers.flushes.push((part, end, epoch, w.id)),
                    Err(code) => queue.push_back(coord.complete_write(w.id, code, strom_storage::now_ms())),
                }
            }
        }
        answers
    }

    /// One write as one batch on its partition's log, as the leader and with
    /// acks=all's ISR check: (partition, offset to flush to, leader epoch).
    fn append(&self, w: &Write) -> Result<(Arc<Partition>, i64, i32), i16> {
        let Some(part) = guard(&self.logs).get(&w.partition).cloned() else {
            tracing::error!(partition = w.partition, "__consumer_offsets partition has no log here");
            return Err(NOT_LEADER_OR_FOLLOWER);
        };
        // A TxnOffsetCommit's batch carries its producer: the transaction's marker
        // completes it, here and on replay.
        let records = w.records.iter().map(|r| r.encode());
        let batch = crate::coord_log::write_batch(records, w.producer, strom_storage::now_ms()).map_err(|e| {
            tracing::error!(error = %e, "cannot build group record batch");
            UNKNOWN_SERVER_ERROR
        })?;
        match part.append_leader(batch, -1) {
            Ok((info, epoch)) => Ok((part, info.last_offset + 1, epoch)),
            Err(AppendError::Storage(e)) => {
                tracing::error!(partition = w.partition, error = %e, "cannot append group records");
                Err(storage_code(&e))
            }
            Err(AppendError::Code(strom_protocol::ErrorCode::NotLeaderOrFollower)) => Err(NOT_COORDINATOR),
            // A transactional write refused by the producer checks (e.g. a
            // fenced epoch): the client must hear why, as Kafka answers.
            Err(AppendError::Code(c)) if w.producer.is_some() => Err(c.code()),
            Err(AppendError::Code(_)) => Err(NOT_COORDINATOR),
            Err(AppendError::NotEnough(..)) => Err(COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// Fsyncs up to `end` and waits until the in-sync replicas have it (the high
    /// watermark passes it), then reports the write. Runs as its own task so that
    /// a caller that goes away cannot leave the write unreported. Called without
    /// the coordinator lock.
    fn flush_later(self: &Arc<Inner>, part: Arc<Partition>, end: i64, epoch: i32, id: WriteId) {
        let this = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let result = part.durable(end, epoch, COMMIT_TIMEOUT).await.map_err(|e| match e {
                        NotDurable::Flush(e) => storage_code(&e),
                        // Kafka's mapping for group writes.
                        NotDurable::Replicate(strom_protocol::ErrorCode::NotLeaderOrFollower) => NOT_COORDINATOR,
                        NotDurable::Replicate(_) => COORDINATOR_NOT_AVAILABLE,
                    });
                    this.report(id, result);
                });
            }
            Err(_) => {
                let result = part.log().flush_blocking().map_err(|e| storage_code(&e));
                this.report(id, result);
            }
        }
    }

    fn report(self: &Arc<Inner>, id: WriteId, result: Result<(), i16>) {
        let code = match result {
            Ok(()) => NONE,
            Err(code) => code,
        };
        let mut coord = guard(&self.coord);
        let out = coord.complete_write(id, code, strom_storage::now_ms());
        let answers = self.process(&mut coord, out);
        drop(coord);
        self.deliver(answers);
    }

    /// Hands out answers and write outcomes and starts fsyncs. Called without the
    /// coordinator lock.
    fn deliver(self: &Arc<Inner>, a: Answers) {
        for (part, end, epoch, id) in a.flushes {
            self.flush_later(part, end, epoch, id);
        }
        if !a.joins.is_empty() || !a.syncs.is_empty() {
            let mut waiting = guard(&self.waiting);
            for (t, r) in a.joins {
                if let Some(Waiter::Join(tx)) = waiting.remove(&t) {
                    let _ = tx.send(r);
                }
            }
            for (t, r) in a.syncs {
                if let Some(Waiter::Sync(tx)) = waiting.remove(&t) {
                    let _ = tx.send(r);
                }
            }
        }
        if !a.resolved.is_empty() {
            let mut writes = guard(&self.writes);
            for (id, code) in a.resolved {
                if let Some(tx) = writes.remove(&id) {
                    let _ = tx.send(code);
                }
            }
        }
    }
}

/// The Kafka error a produce would get for this storage failure.
fn storage_code(e: &StorageError) -> i16 {
    match e {
        StorageError::Io(_) | StorageError::Offline => KAFKA_STORAGE_ERROR,
        StorageError::MessageTooLarge { .. } | StorageError::Inflated { .. } => MESSAGE_TOO_LARGE,
        // Producer checks of a transactional write (e.g. a fenced epoch) keep
        // their code; group writes map anything else to UNKNOWN_SERVER_ERROR.
        e => crate::handlers::produce::storage_error_code(e).code(),
    }
}

/// Decodes the batches from `offset` on (about [`crate::coord_log::LOAD_CHUNK`]
/// bytes) with what replay needs of their headers; returns them and the offset
/// to read next.
fn read_chunk(log: &Log, partition: i32, offset: i64) -> (Vec<ReplayBatch>, i64) {
    let mut out = Vec::new();
    let next = crate::coord_log::read_chunk(log, OFFSETS_TOPIC, partition, offset, |batch, records| {
        if batch.is_control() {
            // A transaction marker: one control record whose key holds its type.
            let commit = records.first().and_then(|r| r.key.as_deref()).and_then(decode_marker);
            if let Some(commit) = commit {
                out.push(ReplayBatch::Marker { producer_id: batch.producer_id(), commit });
            }
            return;
        }
        let mut group_records = Vec::with_capacity(records.len());
        for r in records {
            let Some(key) = r.key else { continue };
            match GroupRecord::decode(&key, r.value.as_deref()) {
                Ok(Some(rec)) => group_records.push(rec),
                Ok(None) => {}
                Err(e) => tracing::warn!(partition, offset = r.offset, error = %e, "skipping unreadable group record"),
            }
        }
        out.push(ReplayBatch::Records {
            producer_id: batch.producer_id(),
            transactional: batch.is_transactional(),
            records: group_records,
        });
    });
    (out, next)
}
