//! One replica of a partition on this node: its log plus Kafka's ISR state.
//!
//! The metadata image says who leads, at which leader epoch, and who is in sync.
//! [`Partition::apply`] turns that into a role here:
//! - **Leader.** Appends are stamped with the leader epoch. Each follower's fetch
//!   offset is its log end offset; the high watermark is the smallest log end
//!   offset over the (maximal) ISR, and does not move while the committed ISR is
//!   smaller than `min.insync.replicas`. Followers that stop catching up for
//!   `replica.lag.time.max.ms` are proposed for removal, and followers that catch
//!   up for addition, through AlterPartition to the controller. acks=all waits on
//!   this partition's own high-watermark watch ([`Partition::wait_replicated`]).
//! - **Follower.** The fetcher (`fetcher.rs`) appends the leader's batches as they
//!   are, and truncates to the divergence point the leader reports.
//!
//! One `std::sync::Mutex` guards the role; appends and truncations take it, so a
//! role change never interleaves with a write.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use strom_metadata::PartitionImage;
use strom_protocol::ErrorCode;
use strom_storage::{AbortedTxn, AppendInfo, Log, ReadInfo, StorageError};
use tokio::sync::watch;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No live leader, or not yet applied.
    Offline,
    Leader,
    Follower {
        leader: i32,
    },
}

#[derive(Debug, Clone)]
struct FollowerState {
    /// The follower's log end offset: its last fetch offset (-1 until it fetches).
    leo: i64,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end offset when that fetch arrived.
    leader_leo_at_last_fetch: i64,
}

#[derive(Debug)]
struct State {
    role: Role,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    /// The committed ISR (from the image or an AlterPartition answer).
    isr: Vec<i32>,
    /// An ISR sent to the controller and not yet answered.
    pending_isr: Option<Vec<i32>>,
    followers: BTreeMap<i32, FollowerState>,
    /// The log end offset when this node became leader at this epoch.
    epoch_start: i64,
    min_isr: usize,
    /// After a refused or failed proposal, no new one before this time.
    retry_after_ms: i64,
}

/// An ISR change this leader wants the controller to commit.
#[derive(Debug, Clone)]
pub struct IsrProposal {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// The controller's answer to an [`IsrProposal`].
#[derive(Debug, Clone)]
pub struct CommittedIsr {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

pub struct Partition {
    pub topic: String,
    pub index: i32,
    pub topic_id: Uuid,
    /// Replaced only when the log moves to another directory, under `state`'s lock.
    log: RwLock<Arc<Log>>,
    node_id: i32,
    state: Mutex<State>,
    /// Bumped on every role or ISR change, so acks=all waiters re-check.
    changed: watch::Sender<u64>,
    /// The broker's "something was appended" signal, which wakes waiting
    /// fetches (followers' too): coordinator writes and markers must not wait
    /// out a follower's `replica.fetch.wait.max.ms`.
    appended: Option<watch::Sender<u64>>,
}

impl Partition {
    pub fn new(topic: &str, index: i32, topic_id: Uuid, log: Arc<Log>, node_id: i32) -> Self {
        Partition {
            topic: topic.to_string(),
            index,
            topic_id,
            log: RwLock::new(log),
            node_id,
            state: Mutex::new(State {
                role: Role::Offline,
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                pending_isr: None,
                followers: BTreeMap::new(),
                epoch_start: 0,
                min_isr: 1,
                retry_after_ms: 0,
            }),
            changed: watch::channel(0).0,
            appended: None,
        }
    }

    /// Wakes `appended`'s waiters after every append made through this partition.
    pub fn with_wake(mut self, appended: watch::Sender<u64>) -> Self {
        self.appended = Some(appended);
        self
    }

    fn wake(&self) {
        if let Some(w) = &self.appended {
            w.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// The partition's log (read it again after waiting: a move between log
    /// directories replaces it).
    pub fn log(&self) -> Arc<Log> {
        self.log.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the log with `swap`'s result, with appends, truncations and
    /// role changes stopped meanwhile; wakes acks=all waiters so they watch the
    /// new log.
    pub fn replace_log<E>(&self, swap: impl FnOnce(&Arc<Log>) -> Result<Arc<Log>, E>) -> Result<(), E> {
        let st = self.lock();
        let old = self.log();
        let new = swap(&old)?;
        *self.log.write().unwrap_or_else(|p| p.into_inner()) = new;
        drop(st);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        self.wake();
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn role(&self) -> Role {
        self.lock().role
    }

    pub fn leader_epoch(&self) -> i32 {
        self.lock().leader_epoch
    }

    pub fn is_leader(&self) -> bool {
        self.lock().role == Role::Leader
    }

    /// (committed ISR size, min.insync.replicas) while leading.
    pub fn isr_size(&self) -> (usize, usize) {
        let st = self.lock();
        (st.isr.len(), st.min_isr)
    }

    /// Applies the image's view of this partition. Blocking (the epoch cache is
    /// written when this node becomes leader): call it off the runtime.
    pub fn apply(&self, p: &PartitionImage, min_isr: usize, now: i64) {
        let mut st = self.lock();
        st.min_isr = min_isr.max(1);
        let new_epoch = p.leader_epoch != st.leader_epoch;
        if p.leader == self.node_id {
            if st.role != Role::Leader || new_epoch {
                if let Err(e) = self.log().assign_leader_epoch(p.leader_epoch) {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e, "cannot record the leader epoch");
                }
                st.role = Role::Leader;
                st.leader_epoch = p.leader_epoch;
                st.epoch_start = self.log().log_end_offset();
                st.followers.clear();
                st.pending_isr = None;
                // Empty partitions (thousands at once when a large topic is created) only at debug.
                if st.epoch_start > 0 {
                    tracing::info!(topic = %self.topic, partition = self.index, epoch = p.leader_epoch, isr = ?p.isr,
                        leo = st.epoch_start, hw = self.log().high_watermark(), "leading");
                } else {
                    tracing::debug!(topic = %self.topic, partition = self.index, epoch = p.leader_epoch, isr = ?p.isr, "leading");
                }
            }
            st.replicas = p.replicas.clone();
            if p.partition_epoch >= st.partition_epoch || new_epoch {
                st.isr = p.isr.clone();
                st.partition_epoch = p.partition_epoch;
                if st.pending_isr.as_ref().is_some_and(|pending| *pending == p.isr) {
                    st.pending_isr = None;
                }
            }
            let isr = st.isr.clone();
            let replicas = st.replicas.clone();
            st.followers.retain(|id, _| replicas.contains(id));
            for r in replicas.iter().filter(|r| **r != self.node_id) {
                st.followers.entry(*r).or_insert(FollowerState {
                    leo: -1,
                    // In-sync followers start as caught up, as at an election in Kafka.
                    last_caught_up_ms: if isr.contains(r) { now } else { 0 },
                    last_fetch_ms: 0,
                    leader_leo_at_last_fetch: -1,
                });
            }
            self.advance_hw(&st);
        } else {
            let role = if p.leader >= 0 { Role::Follower { leader: p.leader } } else { Role::Offline };
            if st.role != role || new_epoch {
                tracing::info!(topic = %self.topic, partition = self.index, epoch = p.leader_epoch, leader = p.leader, "following");
            }
            st.role = role;
            st.leader_epoch = p.leader_epoch;
            st.partition_epoch = p.partition_epoch;
            st.replicas = p.replicas.clone();
            st.isr = p.isr.clone();
            st.pending_isr = None;
            st.followers.clear();
        }
        drop(st);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The image no longer lists this replica here (or the topic is gone).
    pub fn stop(&self) {
        self.lock().role = Role::Offline;
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Kafka's check of a request's current leader epoch (-1: not given).
    pub fn check_epoch(&self, current: i32) -> Result<(), ErrorCode> {
        let ours = self.lock().leader_epoch;
        match current {
            c if c < 0 || c == ours => Ok(()),
            c if c < ours => Err(ErrorCode::FencedLeaderEpoch),
            _ => Err(ErrorCode::UnknownLeaderEpoch),
        }
    }

    /// A producer's append on the leader. With `acks == -1`, refuses when the ISR
    /// is below `min.insync.replicas`. Returns the append and the leader epoch it was made in.
    pub fn append_leader(&self, data: Bytes, acks: i16) -> Result<(AppendInfo, i32), AppendError> {
        self.append_leader_verified(data, acks, None)
    }

    /// [`Partition::append_leader`] with KIP-890's guard (see [`Log::append_verified`]).
    pub fn append_leader_verified(
        &self,
        data: Bytes,
        acks: i16,
        verified: Option<&[(i64, i16)]>,
    ) -> Result<(AppendInfo, i32), AppendError> {
        self.leader_append(acks == -1, |log| log.append_verified(data, verified))
    }

    /// A transaction marker written by this partition's leader (WriteTxnMarkers),
    /// with acks=all's ISR check. Returns the append and its leader epoch.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
    ) -> Result<(AppendInfo, i32), AppendError> {
        self.leader_append(true, |log| log.append_marker(producer_id, producer_epoch, coordinator_epoch, commit))
    }

    /// Appends as the leader (with the ISR check when `needs_isr`), moves the
    /// high watermark and wakes waiting fetches. Returns the append and its epoch.
    fn leader_append(
        &self,
        needs_isr: bool,
        append: impl FnOnce(&Log) -> Result<AppendInfo, StorageError>,
    ) -> Result<(AppendInfo, i32), AppendError> {
        let st = self.lock();
        if st.role != Role::Leader {
            return Err(AppendError::Code(ErrorCode::NotLeaderOrFollower));
        }
        if needs_isr && st.isr.len() < st.min_isr {
            return Err(AppendError::NotEnough(st.isr.len(), st.min_isr));
        }
        let info = append(self.log().as_ref()).map_err(AppendError::Storage)?;
        self.advance_hw(&st);
        let epoch = st.leader_epoch;
        drop(st);
        if !info.duplicate {
            self.wake();
        }
        Ok((info, epoch))
    }

    /// Makes an append at `epoch` ending before `end` durable the acks=all way:
    /// fsynced here (group commit) and on every in-sync replica (below the high
    /// watermark), both at once, within `timeout` for the replicas.
    pub async fn durable(&self, end: i64, epoch: i32, timeout: Duration) -> Result<(), NotDurable> {
        let flush = async { self.log().flush_to(end).await.map_err(NotDurable::Flush) };
        let replicate = async { self.wait_replicated(end, epoch, timeout).await.map_err(NotDurable::Replicate) };
        let (f, r) = tokio::join!(flush, replicate);
        if let Err(NotDurable::Flush(e)) = &f {
            tracing::error!(dir = %self.log().dir().display(), error = %e, "fsync failed");
        }
        f.and(r)
    }

    /// Waits until the high watermark reaches `end` (acks=all), answering
    /// NOT_LEADER_OR_FOLLOWER if leadership moved, NOT_ENOUGH_REPLICAS_AFTER_APPEND
    /// if the ISR fell below `min.insync.replicas`, REQUEST_TIMED_OUT at `timeout`.
    pub async fn wait_replicated(&self, end: i64, epoch: i32, timeout: Duration) -> Result<(), ErrorCode> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.changed.subscribe();
        loop {
            // Subscribed anew each time: a move between directories replaces the log (and bumps `changed`).
            let log = self.log();
            let mut hw = log.subscribe_hw();
            hw.borrow_and_update();
            changed.borrow_and_update();
            {
                let st = self.lock();
                if st.role != Role::Leader || st.leader_epoch != epoch {
                    return Err(ErrorCode::NotLeaderOrFollower);
                }
                if log.high_watermark() >= end {
                    return Ok(());
                }
                if st.isr.len() < st.min_isr {
                    return Err(ErrorCode::NotEnoughReplicasAfterAppend);
                }
            }
            tokio::select! {
                r = hw.changed() => if r.is_err() { return Err(ErrorCode::NotLeaderOrFollower) },
                r = changed.changed() => if r.is_err() { return Err(ErrorCode::NotLeaderOrFollower) },
                _ = tokio::time::sleep_until(deadline) => return Err(ErrorCode::RequestTimedOut),
            }
        }
    }

    /// A follower fetched from `fetch_offset`: it has everything below it. Returns
    /// an ISR expansion to propose, if the follower just caught up.
    pub fn follower_fetched(&self, replica: i32, fetch_offset: i64, now: i64) -> Option<IsrProposal> {
        let mut st = self.lock();
        if st.role != Role::Leader {
            return None;
        }
        let log = self.log();
        let (leo, hw) = (log.log_end_offset(), log.high_watermark());
        let f = st.followers.get_mut(&replica)?;
        if fetch_offset >= leo {
            f.last_caught_up_ms = now;
        } else if fetch_offset >= f.leader_leo_at_last_fetch && f.leader_leo_at_last_fetch >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.leo = fetch_offset.min(leo);
        f.last_fetch_ms = now;
        f.leader_leo_at_last_fetch = leo;
        let caught_up = f.leo >= hw && f.leo >= st.epoch_start;
        let proposal = if caught_up && !st.isr.contains(&replica) && st.pending_isr.is_none() && now >= st.retry_after_ms {
            let mut isr = st.isr.clone();
            isr.push(replica);
            Some(self.propose(&mut st, isr))
        } else {
            None
        };
        self.advance_hw(&st);
        proposal
    }

    /// Followers in the ISR that have not caught up for `lag_ms` (never the leader):
    /// the shrink to propose, if any.
    pub fn check_lagging(&self, now: i64, lag_ms: i64) -> Option<IsrProposal> {
        let mut st = self.lock();
        if st.role != Role::Leader || st.pending_isr.is_some() || now < st.retry_after_ms {
            return None;
        }
        let lagging: Vec<i32> = st
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.node_id)
            .filter(|r| st.followers.get(r).is_none_or(|f| now - f.last_caught_up_ms > lag_ms))
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let isr: Vec<i32> = st.isr.iter().copied().filter(|r| !lagging.contains(r)).collect();
        tracing::info!(topic = %self.topic, partition = self.index, out = ?lagging, isr = ?isr, "shrinking ISR");
        Some(self.propose(&mut st, isr))
    }

    fn propose(&self, st: &mut State, isr: Vec<i32>) -> IsrProposal {
        st.pending_isr = Some(isr.clone());
        IsrProposal {
            topic_id: self.topic_id,
            partition: self.index,
            leader_epoch: st.leader_epoch,
            partition_epoch: st.partition_epoch,
            isr,
        }
    }

    /// The controller's answer to a proposal (None: it failed; retry later).
    pub fn proposal_done(&self, proposed: &IsrProposal, result: Option<CommittedIsr>, now: i64) {
        let mut st = self.lock();
        if st.pending_isr.as_ref() == Some(&proposed.isr) {
            st.pending_isr = None;
        }
        if result.is_none() {
            st.retry_after_ms = now + 200;
        }
        if let Some(c) = result {
            if st.role == Role::Leader && c.leader_epoch == st.leader_epoch && c.partition_epoch > st.partition_epoch {
                st.isr = c.isr;
                st.partition_epoch = c.partition_epoch;
                self.advance_hw(&st);
            }
        }
        drop(st);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Moves the high watermark to the smallest log end offset in the maximal ISR
    /// (committed plus pending additions), never backwards, and only while the
    /// committed ISR has at least `min.insync.replicas` members.
    fn advance_hw(&self, st: &State) {
        if st.role != Role::Leader || st.isr.len() < st.min_isr {
            return;
        }
        let log = self.log();
        let mut hw = log.log_end_offset();
        let maximal = st.isr.iter().chain(st.pending_isr.iter().flatten());
        for r in maximal.filter(|r| **r != self.node_id) {
            match st.followers.get(r) {
                Some(f) if f.leo >= 0 => hw = hw.min(f.leo),
                _ => return,
            }
        }
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
        }
    }

    /// (leader, leader epoch) while following.
    pub fn following(&self) -> Option<(i32, i32)> {
        let st = self.lock();
        match st.role {
            Role::Follower { leader } => Some((leader, st.leader_epoch)),
            _ => None,
        }
    }

    /// Runs `f` on the log if this replica still follows `leader` at `epoch`;
    /// holds the role lock, so no role change interleaves. None if it does not.
    pub fn with_follower_log<T>(&self, leader: i32, epoch: i32, f: impl FnOnce(&Log) -> T) -> Option<T> {
        let st = self.lock();
        if st.role != (Role::Follower { leader }) || st.leader_epoch != epoch {
            return None;
        }
        Some(f(self.log().as_ref()))
    }
}

/// One partition's part of a fetch response, as the leader answers it and the
/// follower applies it.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub code: Option<ErrorCode>,
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start: i64,
    /// (epoch, end offset) where the fetcher's log parts from the leader's.
    pub diverging: Option<(i32, i64)>,
    /// The last stable offset (the high watermark when no transaction is open).
    pub last_stable_offset: i64,
    /// For read_committed consumers: the aborted transactions in the range read.
    pub aborted: Vec<AbortedTxn>,
}

/// What a follower should do after applying a [`Fetched`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Fine,
    /// Leadership news is on its way (or nothing moved): wait a little.
    Backoff,
}

impl Partition {
    /// The leader's side of one partition of a Fetch. `replica` >= 0 is a
    /// follower: it reads to the log end, and its fetch offset is its log end
    /// offset. Consumers (`replica` < 0) read up to the high watermark, or with
    /// `read_committed` up to the last stable offset, with the aborted
    /// transactions of the range. `max_bytes` None: report offsets only (the
    /// response is full). Blocking reads.
    #[allow(clippy::too_many_arguments)]
    pub fn serve_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        current_epoch: i32,
        last_fetched_epoch: i32,
        max_bytes: Option<usize>,
        read_committed: bool,
        now: i64,
    ) -> (Fetched, Option<IsrProposal>) {
        let log = &self.log();
        let mut out = Fetched { high_watermark: -1, log_start: -1, last_stable_offset: -1, ..Fetched::default() };
        if !self.is_leader() {
            out.code = Some(ErrorCode::NotLeaderOrFollower);
            return (out, None);
        }
        if let Err(code) = self.check_epoch(current_epoch) {
            out.code = Some(code);
            return (out, None);
        }
        if last_fetched_epoch >= 0 {
            // KIP-320 / KIP-595: does the fetcher's log agree with ours up to its fetch offset?
            let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch);
            if epoch < last_fetched_epoch || end < fetch_offset {
                out.diverging = Some((epoch, end));
                out.high_watermark = log.high_watermark();
                out.log_start = log.log_start_offset();
                return (out, None);
            }
        }
        let proposal = if replica >= 0 { self.follower_fetched(replica, fetch_offset, now) } else { None };
        // Consumers see only what every in-sync replica has; followers read to the end.
        let limit = if replica >= 0 { i64::MAX } else { log.high_watermark() };
        let res = match max_bytes {
            Some(n) if read_committed && replica < 0 => log.read_committed(fetch_offset, n.max(1)),
            Some(n) => log.read_upto(fetch_offset, n.max(1), limit).map(|i| (i, Vec::new())),
            None => Ok((
                ReadInfo { records: Bytes::new(), high_watermark: -1, log_start_offset: log.log_start_offset(), last_stable_offset: -1 },
                Vec::new(),
            )),
        };
        match res {
            Ok((info, aborted)) => {
                out.records = info.records;
                out.log_start = info.log_start_offset;
                // The read computed it under the log's lock already.
                out.last_stable_offset = info.last_stable_offset;
                out.aborted = aborted;
            }
            Err(StorageError::OffsetOutOfRange { .. }) => {
                out.code = Some(ErrorCode::OffsetOutOfRange);
                out.log_start = log.log_start_offset();
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "read failed");
                out.code = Some(ErrorCode::KafkaStorageError);
            }
        }
        out.high_watermark = log.high_watermark();
        if out.last_stable_offset < 0 {
            out.last_stable_offset = log.last_stable_offset();
        }
        (out, proposal)
    }

    /// The follower's side: applies the leader's answer if this replica still
    /// follows `leader` at `epoch` (else does nothing). Appends the fetched bytes
    /// as they are, truncates to a divergence point, follows the leader's log
    /// start and high watermark. Blocking disk work.
    pub fn apply_fetched(&self, leader: i32, epoch: i32, f: Fetched) -> Result<Applied, StorageError> {
        let result = self.with_follower_log(leader, epoch, |log| -> Result<Applied, StorageError> {
            match f.code {
                None => {}
                Some(ErrorCode::OffsetOutOfRange) => {
                    let ours = log.log_end_offset();
                    if ours < f.log_start {
                        tracing::info!(topic = %self.topic, partition = self.index, from = ours, to = f.log_start,
                            "behind the leader's log start: starting over there");
                        log.truncate_fully_and_start_at(f.log_start)?;
                        return Ok(Applied::Fine);
                    }
                    return Ok(Applied::Backoff);
                }
                Some(other) => {
                    if !matches!(
                        other,
                        ErrorCode::NotLeaderOrFollower
                            | ErrorCode::FencedLeaderEpoch
                            | ErrorCode::UnknownLeaderEpoch
                            | ErrorCode::UnknownTopicOrPartition
                            | ErrorCode::LeaderNotAvailable
                    ) {
                        tracing::warn!(topic = %self.topic, partition = self.index, error = ?other, "replica fetch error");
                    }
                    return Ok(Applied::Backoff);
                }
            }
            if let Some((epoch, end)) = f.diverging {
                let moved = self.truncate_diverged(log, epoch, end)?;
                return Ok(if moved { Applied::Fine } else { Applied::Backoff });
            }
            if !f.records.is_empty() {
                // `flush.messages` holds on followers too, as in Kafka.
                if log.append_replica(f.records)?.is_some_and(|info| info.flush_due) {
                    log.flush_blocking()?;
                }
            }
            if f.log_start > log.log_start_offset() && f.log_start <= log.log_end_offset() {
                log.advance_log_start(f.log_start)?;
            }
            log.set_high_watermark(f.high_watermark.min(log.log_end_offset()));
            Ok(Applied::Fine)
        });
        result.unwrap_or(Ok(Applied::Fine))
    }

    /// The leader says our logs part at (`epoch`, `end`): our batches of `epoch`
    /// and later that lie at or beyond `end` are not the leader's. Truncates to
    /// where both agree, as far as this replica can tell; the next fetch re-checks.
    /// True if the log end moved.
    fn truncate_diverged(&self, log: &Log, epoch: i32, end: i64) -> Result<bool, StorageError> {
        let leo = log.log_end_offset();
        let target = if end < 0 {
            // The leader knows nothing of our epochs: fall back to the high watermark (Kafka's rule).
            log.high_watermark()
        } else {
            let (ours, our_end) = log.end_offset_for_epoch(epoch);
            if ours < 0 || our_end < 0 {
                end.min(leo)
            } else if ours == epoch {
                end.min(our_end)
            } else {
                our_end.min(leo)
            }
        };
        let target = target.clamp(log.log_start_offset(), leo);
        // Even at the log end this drops epochs begun here without records
        // (a term led without a write), which the leader never saw.
        let latest = log.latest_epoch();
        let now = log.truncate_to(target)?;
        if now < leo {
            tracing::info!(topic = %self.topic, partition = self.index, from = leo, to = now, leader_epoch = epoch, leader_end = end,
                "truncated a divergent tail");
        }
        Ok(now < leo || log.latest_epoch() != latest)
    }
}

/// Why [`Partition::durable`] failed.
#[derive(Debug)]
pub enum NotDurable {
    /// The local fsync failed (the log is failed for good).
    Flush(StorageError),
    /// Replication did not complete: NOT_LEADER_OR_FOLLOWER,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND or REQUEST_TIMED_OUT.
    Replicate(ErrorCode),
}

/// Why a leader append failed.
#[derive(Debug)]
pub enum AppendError {
    Code(ErrorCode),
    /// (ISR size, min.insync.replicas)
    NotEnough(usize, usize),
    Storage(StorageError),
}
