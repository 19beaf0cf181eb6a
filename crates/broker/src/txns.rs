//! Runs the transaction coordinator state machine against real storage.
//!
//! The coordinator (`strom_coordinator::txn`) decides; this module does the I/O,
//! in the same shape as `groups.rs`:
//! - each write it emits is appended to its partition of `__transaction_state`
//!   as one batch, inside the coordinator lock (log order is decision order),
//!   then fsynced and waited for on the in-sync replicas (acks=all) in a task of
//!   its own, and reported with `complete_write`: only then does the state change
//!   and the waiting request hear its answer;
//! - marker jobs (a transaction durable in PrepareCommit/PrepareAbort) run as
//!   tasks: [`crate::markers::send`] to every partition, retrying the partitions
//!   that fail with a backoff until each answers NONE or
//!   UNKNOWN_TOPIC_OR_PARTITION, then `markers_done` writes CompleteCommit or
//!   CompleteAbort. A job stops when its partition is unloaded; the next
//!   coordinator finds the transaction prepared and sends the markers again;
//! - a tick aborts timed-out transactions and expires idle transactional ids at
//!   Kafka's two cleanup intervals.
//!
//! Ownership: this broker coordinates the ids of the `__transaction_state`
//! partitions it leads ([`TxnManager::load_partition`] when it gains the
//! leadership, replaying the partition; [`TxnManager::unload_partition`] when it
//! loses it). The coordinator epoch stamped on markers is the partition's leader
//! epoch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName, TransactionalId};
use strom_coordinator::errors::{
    COORDINATOR_NOT_AVAILABLE, KAFKA_STORAGE_ERROR, MESSAGE_TOO_LARGE, NONE, NOT_COORDINATOR, NOT_LEADER_OR_FOLLOWER, UNKNOWN_SERVER_ERROR,
};
use strom_coordinator::txn::{InitPidRequest, MarkerJob, TxnAnswer, TxnConfig, TxnCoordinator, TxnOutput, TxnPartitionStatus, TxnWrite};
use strom_coordinator::txn_records::TxnRecord;
use strom_coordinator::Token;
use strom_protocol::ErrorCode;
use strom_storage::{Log, StorageError};
use tokio::sync::oneshot;

use crate::config::BrokerConfig;
use crate::partition::{AppendError, NotDurable, Partition};
use crate::peer::PeerConn;
use crate::server::Broker;

pub use strom_coordinator::txn::TRANSACTION_STATE_TOPIC as TXN_TOPIC;

/// How long a transaction write waits for the in-sync replicas.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Marker retries back off from this…
const MARKER_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// …up to this.
const MARKER_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a partition leader waits for a remote coordinator's verification.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle verification connections kept per coordinator broker.
const PEER_POOL_MAX: usize = 4;

/// The coordinator's settings from the broker config.
pub fn txn_config(c: &BrokerConfig) -> TxnConfig {
    TxnConfig {
        max_timeout_ms: c.int("transaction.max.timeout.ms").clamp(1, i32::MAX as i64) as i32,
        id_expiration_ms: c.int("transactional.id.expiration.ms").max(1),
        state_partitions: c.int("transaction.state.log.num.partitions").clamp(1, i32::MAX as i64) as i32,
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct TxnManager {
    inner: Arc<Inner>,
    /// Idle connections to other brokers' coordinators, for verification calls.
    peers: Mutex<HashMap<String, Vec<PeerConn>>>,
}

struct Inner {
    coord: Mutex<TxnCoordinator>,
    /// Logs of the owned partitions; only touched with `coord` held.
    logs: Mutex<HashMap<i32, Arc<Partition>>>,
    waiting: Mutex<HashMap<Token, oneshot::Sender<TxnAnswer>>>,
    next_token: AtomicU64,
    /// The broker, for marker tasks; set by the first request or tick.
    broker: OnceLock<Weak<Broker>>,
    /// Marker jobs waiting for a broker handle and a runtime (e.g. found at start-up).
    queued: Mutex<Vec<MarkerJob>>,
    /// (abort interval, expiry interval) in ms, and when each last ran.
    timers: Mutex<Timers>,
}

struct Timers {
    abort_every_ms: i64,
    expire_every_ms: i64,
    last_abort_ms: i64,
    last_expire_ms: i64,
}

/// Answers and appended writes to hand out once the coordinator lock is released.
#[derive(Default)]
struct Delivery {
    answers: Vec<(Token, TxnAnswer)>,
    jobs: Vec<MarkerJob>,
    /// Appended writes: (partition, offset to flush to, leader epoch, write id).
    flushes: Vec<(Arc<Partition>, i64, i32, u64)>,
}

impl TxnManager {
    pub fn new(c: &BrokerConfig) -> Self {
        let now = strom_storage::now_ms();
        TxnManager {
            inner: Arc::new(Inner {
                coord: Mutex::new(TxnCoordinator::new(txn_config(c))),
                logs: Mutex::new(HashMap::new()),
                waiting: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(1),
                broker: OnceLock::new(),
                queued: Mutex::new(Vec::new()),
                timers: Mutex::new(Timers {
                    abort_every_ms: c.int("transaction.abort.timed.out.transaction.cleanup.interval.ms").max(1),
                    expire_every_ms: c.int("transaction.remove.expired.transaction.cleanup.interval.ms").max(1),
                    last_abort_ms: now,
                    last_expire_ms: now,
                }),
            }),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// The coordinator, for read-only questions (describe, list, verify).
    pub fn lock(&self) -> MutexGuard<'_, TxnCoordinator> {
        guard(&self.inner.coord)
    }

    /// Whether this broker coordinates the ids of `partition`.
    pub fn owns(&self, partition: i32) -> bool {
        self.lock().owns(partition)
    }

    /// Lets marker tasks reach the broker. Idempotent.
    fn attach(&self, b: &Arc<Broker>) {
        let _ = self.inner.broker.set(Arc::downgrade(b));
    }

    /// Runs one coordinator step and delivers what it produced.
    fn step(&self, f: impl FnOnce(&mut TxnCoordinator, i64) -> TxnOutput) {
        let mut coord = self.lock();
        let out = f(&mut coord, strom_storage::now_ms());
        let d = self.inner.process(&mut coord, out);
        drop(coord);
        self.inner.deliver(d);
    }

    /// Runs a request step with a fresh token and waits for its answer (at once,
    /// or once its write is durable or failed).
    pub async fn call(&self, b: &Arc<Broker>, f: impl FnOnce(&mut TxnCoordinator, Token, i64) -> TxnOutput) -> TxnAnswer {
        self.attach(b);
        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        guard(&self.inner.waiting).insert(token, tx);
        self.step(|c, now| f(c, token, now));
        rx.await.unwrap_or(TxnAnswer::Code(UNKNOWN_SERVER_ERROR))
    }

    /// Transactional InitProducerId: allocates a producer id when the coordinator
    /// asks for one, then repeats the step with it.
    pub async fn init_producer_id(&self, b: &Arc<Broker>, req: InitPidRequest) -> TxnAnswer {
        let mut fresh = None;
        for _ in 0..3 {
            let r = req.clone();
            match self.call(b, |c, t, now| c.init_producer_id(r, fresh, t, now)).await {
                TxnAnswer::NeedProducerId => match crate::handlers::init_producer_id::allocate(b).await {
                    Ok(id) => fresh = Some(id),
                    Err(code) => return init_error(code.code()),
                },
                answer => return answer,
            }
        }
        init_error(strom_coordinator::txn::codes::CONCURRENT_TRANSACTIONS)
    }

    /// Every tick: starts queued marker jobs; at their intervals, aborts timed-out
    /// transactions (and restarts stalled markers) and expires idle ids. Nothing
    /// while the broker is fenced: at start-up the coordinators were loaded from
    /// the metadata on disk, which may name this node leader of partitions it no
    /// longer leads; once unfenced, the metadata is caught up and those are gone.
    pub async fn tick(&self, b: &Arc<Broker>) {
        if b.lifecycle.is_fenced() {
            return;
        }
        self.attach(b);
        let queued = std::mem::take(&mut *guard(&self.inner.queued));
        if !queued.is_empty() {
            self.inner.deliver(Delivery { jobs: queued, ..Default::default() });
        }
        let now = strom_storage::now_ms();
        let (abort, expire) = {
            let mut t = guard(&self.inner.timers);
            let abort = now - t.last_abort_ms >= t.abort_every_ms;
            let expire = now - t.last_expire_ms >= t.expire_every_ms;
            if abort {
                t.last_abort_ms = now;
            }
            if expire {
                t.last_expire_ms = now;
            }
            (abort, expire)
        };
        if abort {
            self.step(|c, now| c.abort_timed_out(now));
        }
        if expire {
            self.step(|c, now| c.expire_ids(now));
        }
    }

    /// Replays one partition of `__transaction_state` into the coordinator at
    /// `coordinator_epoch` (its leader epoch), then serves its ids; prepared
    /// transactions get their markers sent. Blocking disk reads: call it from a
    /// blocking context. Gives up if the partition is unloaded meanwhile.
    pub fn load_partition(&self, b: &Broker, partition: i32, coordinator_epoch: i32) {
        let Some(part) = b.replicas.get(TXN_TOPIC, partition) else {
            // Not hosted yet (a snapshot is applied before the logs open): the
            // publisher loads it again once the log exists.
            tracing::debug!(partition, "no log yet for this __transaction_state partition; not loading");
            self.unload_partition(partition);
            return;
        };
        let ticket = {
            let mut coord = self.lock();
            let (ticket, out) = coord.begin_load(partition, coordinator_epoch);
            let d = self.inner.process(&mut coord, out);
            drop(coord);
            self.inner.deliver(d);
            ticket
        };
        let started = std::time::Instant::now();
        let log = &part.log();
        let mut count = 0usize;
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            // Read and decode without the lock; apply a chunk at a time.
            let (records, next) = read_chunk(log, partition, offset);
            if next <= offset {
                break;
            }
            offset = next;
            let mut coord = self.lock();
            if coord.status(partition) != TxnPartitionStatus::Loading(ticket) {
                tracing::info!(partition, "transaction load abandoned: partition unloaded");
                return;
            }
            count += records.len();
            for r in records {
                coord.load(partition, r);
            }
        }
        let mut coord = self.lock();
        let Some(out) = coord.finish_load(partition, ticket) else { return };
        guard(&self.inner.logs).insert(partition, part);
        let d = self.inner.process(&mut coord, out);
        drop(coord);
        self.inner.deliver(d);
        let ms = started.elapsed().as_millis() as u64;
        if count > 0 {
            tracing::info!(partition, coordinator_epoch, records = count, ms, "transaction partition loaded");
        } else {
            tracing::debug!(partition, coordinator_epoch, ms, "transaction partition loaded (empty)");
        }
    }

    /// Stops coordinating the ids of `partition`: they leave memory, waiting
    /// requests get NOT_COORDINATOR and its marker jobs stop.
    pub fn unload_partition(&self, partition: i32) {
        let mut coord = self.lock();
        let out = coord.unload(partition);
        guard(&self.inner.logs).remove(&partition);
        let d = self.inner.process(&mut coord, out);
        drop(coord);
        self.inner.deliver(d);
        tracing::debug!(partition, "transaction partition unloaded");
    }
}

impl TxnManager {
    fn take_peer(&self, addr: &str) -> Option<PeerConn> {
        guard(&self.peers).get_mut(addr).and_then(|v| v.pop())
    }

    /// Keeps a connection that just answered, up to [`PEER_POOL_MAX`] per broker.
    fn return_peer(&self, conn: PeerConn) {
        let mut peers = guard(&self.peers);
        let idle = peers.entry(conn.addr.clone()).or_default();
        if idle.len() < PEER_POOL_MAX {
            idle.push(conn);
        }
    }
}

fn init_error(error: i16) -> TxnAnswer {
    TxnAnswer::InitProducerId { error, producer_id: -1, producer_epoch: -1 }
}

impl Inner {
    /// Appends an output's writes (writes that fail at once are reported at once,
    /// which may produce more output); collects answers, jobs and fsyncs. Called
    /// with the coordinator lock held.
    fn process(&self, coord: &mut TxnCoordinator, out: TxnOutput) -> Delivery {
        let mut d = Delivery::default();
        let mut queue = std::collections::VecDeque::from([out]);
        while let Some(mut out) = queue.pop_front() {
            d.answers.append(&mut out.answers);
            d.jobs.append(&mut out.markers);
            for w in std::mem::take(&mut out.writes) {
                match self.append(&w) {
                    Ok((part, end, epoch)) => d.flushes.push((part, end, epoch, w.id)),
                    Err(code) => queue.push_back(coord.complete_write(w.id, code, strom_storage::now_ms())),
                }
            }
        }
        d
    }

    /// One write as one batch on its partition, as leader with acks=all's ISR
    /// check: (partition, offset to flush to, leader epoch).
    fn append(&self, w: &TxnWrite) -> Result<(Arc<Partition>, i64, i32), i16> {
        let Some(part) = guard(&self.logs).get(&w.partition).cloned() else {
            return Err(NOT_LEADER_OR_FOLLOWER);
        };
        let records = w.records.iter().map(|r| r.encode());
        let batch = crate::coord_log::write_batch(records, None, strom_storage::now_ms()).map_err(|e| {
            tracing::error!(error = %e, "cannot build transaction record batch");
            UNKNOWN_SERVER_ERROR
        })?;
        match part.append_leader(batch, -1) {
            Ok((info, epoch)) => Ok((part, info.last_offset + 1, epoch)),
            Err(AppendError::Storage(e)) => {
                tracing::error!(partition = w.partition, error = %e, "cannot append transaction records");
                Err(storage_code(&e))
            }
            Err(AppendError::Code(_)) => Err(NOT_COORDINATOR),
            Err(AppendError::NotEnough(..)) => Err(COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// Fsyncs to `end`, waits for the in-sync replicas, then reports the write.
    /// Its own task, so a caller that goes away cannot leave it unreported.
    fn flush_later(self: &Arc<Inner>, part: Arc<Partition>, end: i64, epoch: i32, id: u64) {
        let this = self.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            let result = part.log().flush_blocking().map_err(|e| storage_code(&e));
            this.report(id, result);
            return;
        };
        rt.spawn(async move {
            let result = part.durable(end, epoch, WRITE_TIMEOUT).await.map_err(|e| match e {
                NotDurable::Flush(e) => storage_code(&e),
                NotDurable::Replicate(ErrorCode::NotLeaderOrFollower) => NOT_COORDINATOR,
                NotDurable::Replicate(_) => COORDINATOR_NOT_AVAILABLE,
            });
            this.report(id, result);
        });
    }

    fn report(self: &Arc<Inner>, id: u64, result: Result<(), i16>) {
        let code = result.err().unwrap_or(NONE);
        let mut coord = guard(&self.coord);
        let out = coord.complete_write(id, code, strom_storage::now_ms());
        let d = self.process(&mut coord, out);
        drop(coord);
        self.deliver(d);
    }

    /// Starts fsyncs and marker jobs and hands out answers. Called without the
    /// coordinator lock.
    fn deliver(self: &Arc<Inner>, d: Delivery) {
        for (part, end, epoch, id) in d.flushes {
            self.flush_later(part, end, epoch, id);
        }
        if !d.answers.is_empty() {
            let mut waiting = guard(&self.waiting);
            for (t, a) in d.answers {
                if let Some(tx) = waiting.remove(&t) {
                    let _ = tx.send(a);
                }
            }
        }
        for job in d.jobs {
            self.start_job(job);
        }
    }

    /// Runs a marker job as a task, or queues it until the tick can.
    fn start_job(self: &Arc<Inner>, job: MarkerJob) {
        let broker = self.broker.get().cloned();
        match (broker, tokio::runtime::Handle::try_current()) {
            (Some(b), Ok(rt)) => {
                rt.spawn(self.clone().send_markers(b, job));
            }
            _ => guard(&self.queued).push(job),
        }
    }

    /// Writes a job's markers, retrying failed partitions with a backoff while the
    /// job is live, then completes the transaction.
    async fn send_markers(self: Arc<Inner>, broker: Weak<Broker>, job: MarkerJob) {
        let mut remaining = job.partitions.clone();
        let mut backoff = MARKER_BACKOFF_MIN;
        while !remaining.is_empty() {
            if !guard(&self.coord).marker_job_live(&job) {
                return;
            }
            let Some(b) = broker.upgrade() else { return };
            let results =
                crate::markers::send(&b, job.producer_id, job.producer_epoch, job.coordinator_epoch, job.commit, remaining.clone()).await;
            drop(b);
            let failed: Vec<((String, i32), ErrorCode)> =
                results.into_iter().filter(|(_, code)| !matches!(code, ErrorCode::None | ErrorCode::UnknownTopicOrPartition)).collect();
            if let Some((tp, code)) = failed.first() {
                tracing::debug!(transactional_id = %job.transactional_id, topic = %tp.0, partition = tp.1, ?code, failed = failed.len(), "transaction markers failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MARKER_BACKOFF_MAX);
            }
            remaining = failed.into_iter().map(|(tp, _)| tp).collect();
        }
        let mut coord = guard(&self.coord);
        let out = coord.markers_done(&job, strom_storage::now_ms());
        let d = self.process(&mut coord, out);
        drop(coord);
        self.deliver(d);
    }
}

/// The Kafka error a write would get for this storage failure.
fn storage_code(e: &StorageError) -> i16 {
    match e {
        StorageError::Io(_) | StorageError::Offline => KAFKA_STORAGE_ERROR,
        StorageError::MessageTooLarge { .. } | StorageError::Inflated { .. } => MESSAGE_TOO_LARGE,
        _ => UNKNOWN_SERVER_ERROR,
    }
}

/// Decodes the transaction records of the batches from `offset` on (about
/// [`crate::coord_log::LOAD_CHUNK`] bytes); returns them and the offset to read next.
fn read_chunk(log: &Log, partition: i32, offset: i64) -> (Vec<TxnRecord>, i64) {
    let mut out = Vec::new();
    let next = crate::coord_log::read_chunk(log, TXN_TOPIC, partition, offset, |_, records| {
        for r in records {
            let Some(key) = r.key else { continue };
            match TxnRecord::decode(&key, r.value.as_deref()) {
                Ok(Some(rec)) => out.push(rec),
                Ok(None) => {}
                Err(e) => tracing::warn!(partition, offset = r.offset, error = %e, "skipping unreadable transaction record"),
            }
        }
    });
    (out, next)
}

// ----- Coordinator placement --------------------------------------------------

impl Broker {
    /// Creates `__transaction_state` if it does not exist yet, as Kafka does on the
    /// first transactional FindCoordinator or InitProducerId: compacted,
    /// `transaction.state.log.num.partitions` partitions,
    /// `transaction.state.log.replication.factor` replicas (at most the live
    /// brokers), `min.insync.replicas` from `transaction.state.log.min.isr` (at most
    /// the replication factor) and `transaction.state.log.segment.bytes`. True once
    /// it exists here.
    pub async fn ensure_txn_topic(&self) -> bool {
        if self.metadata.image().topic(TXN_TOPIC).is_some() {
            return true;
        }
        let image = self.metadata.image();
        let live = image.brokers.values().filter(|x| x.is_live()).count().max(1) as i64;
        let wanted_rf = self.config.int("transaction.state.log.replication.factor").clamp(1, i16::MAX as i64);
        let rf = wanted_rf.min(live);
        if rf < wanted_rf {
            tracing::warn!(
                wanted = wanted_rf,
                live,
                "transaction.state.log.replication.factor exceeds the live brokers; creating __transaction_state with {rf}"
            );
        }
        let min_isr = self.config.int("transaction.state.log.min.isr").clamp(1, rf);
        let t = crate::replica::NewTopic {
            name: TXN_TOPIC.to_string(),
            partitions: self.config.int("transaction.state.log.num.partitions").clamp(1, i32::MAX as i64) as i32,
            replication_factor: rf as i16,
            assignments: Default::default(),
            configs: [
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), self.config.int("transaction.state.log.segment.bytes").max(1).to_string()),
                ("min.insync.replicas".to_string(), min_isr.to_string()),
                ("unclean.leader.election.enable".to_string(), "false".to_string()),
                ("compression.type".to_string(), "uncompressed".to_string()),
            ]
            .into(),
        };
        match self.create_topics(vec![t], false).await.pop() {
            Some(Ok(_)) => true,
            Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => self.metadata.image().topic(TXN_TOPIC).is_some(),
            Some(Err(e)) => {
                tracing::warn!(error = %e.message, "cannot create __transaction_state");
                false
            }
            None => false,
        }
    }

    /// Loads (`gain`) the transaction coordinators of the `__transaction_state`
    /// partitions this node leads in `image` (reloading when the leader epoch
    /// changed), or unloads (`!gain`) those it no longer leads.
    pub(crate) fn move_txn_coordinators(&self, image: &strom_metadata::MetadataImage, gain: bool) {
        let Some(t) = image.topic(TXN_TOPIC) else {
            if !gain {
                // The count first: the guard must be gone before `owns` locks again.
                let count = self.txns.lock().config.state_partitions;
                let owned: Vec<i32> = (0..count).filter(|p| self.txns.owns(*p)).collect();
                for p in owned {
                    self.txns.unload_partition(p);
                }
            }
            return;
        };
        // Ids map to partitions by the topic's real partition count, as FindCoordinator does.
        self.txns.lock().config.state_partitions = t.partitions.len().clamp(1, i32::MAX as usize) as i32;
        for (p, pi) in &t.partitions {
            let leads = pi.leader == self.node_id;
            let current = {
                let c = self.txns.lock();
                (c.status(*p), c.coordinator_epoch(*p))
            };
            let loaded = current.0 == TxnPartitionStatus::Owned && current.1 == Some(pi.leader_epoch);
            // Loads happen in the gain phase, and in the later phase for partitions
            // whose log opened in between (a snapshot).
            if leads && !loaded && (gain || self.replicas.get(TXN_TOPIC, *p).is_some()) {
                self.txns.load_partition(self, *p, pi.leader_epoch);
            } else if !gain && !leads && current.0 != TxnPartitionStatus::NotOwned {
                self.txns.unload_partition(*p);
            }
        }
    }
}

// ----- KIP-890 part 1: verification for the produce path ---------------------

/// Asks the coordinator of `transactional_id` whether `topic`-`partition` is in
/// the ongoing transaction of (producer id, epoch), before a partition leader
/// appends a transactional batch. The local coordinator answers directly; a
/// remote one gets AddPartitionsToTxn v4 with `verify_only`.
///
/// Errors are the ones Kafka's produce path returns: INVALID_TXN_STATE when the
/// partition was not added; retriable coordinator trouble (not the coordinator,
/// loading, unavailable, a commit or abort under way, the network) becomes
/// NOT_ENOUGH_REPLICAS, which every client retries without refreshing metadata;
/// PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH.
pub async fn verify_partition(
    b: &Arc<Broker>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), ErrorCode> {
    let code = match coordinator_of(b, transactional_id) {
        Err(code) => code,
        Ok(None) => {
            let tp = [(topic.to_string(), partition)];
            b.txns.lock().verify(transactional_id, producer_id, producer_epoch, &tp).first().copied().unwrap_or(UNKNOWN_SERVER_ERROR)
        }
        Ok(Some(addr)) => verify_remote(&b.txns, &addr, transactional_id, producer_id, producer_epoch, topic, partition).await,
    };
    produce_verification_error(code)
}

/// Where the coordinator of an id is: `None` for this broker, else its address.
fn coordinator_of(b: &Broker, transactional_id: &str) -> Result<Option<String>, i16> {
    let image = b.metadata.image();
    let t = image.topic(TXN_TOPIC).ok_or(COORDINATOR_NOT_AVAILABLE)?;
    let p = strom_coordinator::partition_for(transactional_id, t.partitions.len().max(1) as i32);
    let leader = t.partitions.get(&p).map(|p| p.leader).unwrap_or(-1);
    if leader == b.node_id {
        return Ok(None);
    }
    image.brokers.get(&leader).map(|x| Some(format!("{}:{}", x.host, x.port))).ok_or(COORDINATOR_NOT_AVAILABLE)
}

/// Maps a coordinator's verification answer to the produce error (Kafka's
/// `ReplicaManager` and `AddPartitionsToTxnManager`).
fn produce_verification_error(code: i16) -> Result<(), ErrorCode> {
    use strom_coordinator::errors::{COORDINATOR_LOAD_IN_PROGRESS, NOT_ENOUGH_REPLICAS};
    use strom_coordinator::txn::codes::{CONCURRENT_TRANSACTIONS, INVALID_PRODUCER_EPOCH, PRODUCER_FENCED};
    const NETWORK_EXCEPTION: i16 = 13;
    match code {
        NONE => Ok(()),
        CONCURRENT_TRANSACTIONS | NETWORK_EXCEPTION | COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR => {
            Err(ErrorCode::from_code(NOT_ENOUGH_REPLICAS))
        }
        PRODUCER_FENCED => Err(ErrorCode::from_code(INVALID_PRODUCER_EPOCH)),
        other => Err(ErrorCode::from_code(other)),
    }
}

/// AddPartitionsToTxn v4 `verify_only` to the coordinator at `addr`: the
/// partition's code, or NETWORK_EXCEPTION when the call fails. Reuses an idle
/// connection when there is one; if that one turns out dead, tries once more on
/// a new connection.
async fn verify_remote(
    txns: &TxnManager,
    addr: &str,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partition: i32,
) -> i16 {
    const NETWORK_EXCEPTION: i16 = 13;
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = TopicName(crate::handlers::s(topic.to_string()));
    t.partitions = vec![partition];
    let mut tx = AddPartitionsToTxnTransaction::default();
    tx.transactional_id = TransactionalId(crate::handlers::s(transactional_id.to_string()));
    tx.producer_id = ProducerId(producer_id);
    tx.producer_epoch = producer_epoch;
    tx.verify_only = true;
    tx.topics = vec![t];
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![tx];
    let mut resp = None;
    for attempt in 0..2 {
        let pooled = if attempt == 0 { txns.take_peer(addr) } else { None };
        let reused = pooled.is_some();
        let call = async {
            let mut conn = match pooled {
                Some(c) => c,
                None => PeerConn::connect(addr, VERIFY_TIMEOUT).await?,
            };
            let r = conn.call::<_, AddPartitionsToTxnResponse>(ApiKey::AddPartitionsToTxn, 4, &req).await?;
            Ok::<_, std::io::Error>((conn, r))
        };
        match tokio::time::timeout(VERIFY_TIMEOUT, call).await {
            Ok(Ok((conn, r))) => {
                txns.return_peer(conn);
                resp = Some(r);
                break;
            }
            Ok(Err(e)) if reused => tracing::debug!(addr, error = %e, "idle coordinator connection failed; reconnecting"),
            Ok(Err(e)) => {
                tracing::debug!(addr, error = %e, "transaction verification call failed");
                return NETWORK_EXCEPTION;
            }
            Err(_) => return NETWORK_EXCEPTION,
        }
    }
    let Some(resp) = resp else { return NETWORK_EXCEPTION };
    if resp.error_code != NONE {
        return resp.error_code;
    }
    resp.results_by_transaction
        .iter()
        .flat_map(|r| r.topic_results.iter())
        .filter(|r| r.name.as_str() == topic)
        .flat_map(|r| r.results_by_partition.iter())
        .find(|r| r.partition_index == partition)
        .map(|r| r.partition_error_code)
        .unwrap_or(UNKNOWN_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_errors_map_like_kafka() {
        assert_eq!(produce_verification_error(NONE), Ok(()));
        for retriable in [51, 13, 14, 15, 16] {
            assert_eq!(produce_verification_error(retriable), Err(ErrorCode::NotEnoughReplicas), "{retriable}");
        }
        assert_eq!(produce_verification_error(90), Err(ErrorCode::InvalidProducerEpoch));
        assert_eq!(produce_verification_error(48), Err(ErrorCode::InvalidTxnState));
        assert_eq!(produce_verification_error(49), Err(ErrorCode::InvalidProducerIdMapping));
    }

    #[test]
    fn config_from_broker_settings() {
        let c = BrokerConfig::default();
        let t = txn_config(&c);
        assert_eq!((t.max_timeout_ms, t.id_expiration_ms, t.state_partitions), (900_000, 604_800_000, 50));
    }
}
