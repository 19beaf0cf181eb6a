//! The classic group protocol and committed offsets, as a pure state machine.
//!
//! States follow Kafka's: `Empty` → `PreparingRebalance` (members rejoin) →
//! `CompletingRebalance` (waiting for the leader's assignment) → `Stable`.
//!
//! - A rebalance completes when every member has rejoined, or when the largest
//!   rebalance timeout passes (members that did not rejoin are removed). The first
//!   rebalance of an empty group waits `group.initial.rebalance.delay.ms`, extended
//!   while new members keep arriving, up to the rebalance timeout.
//! - JoinGroup v4+ without a member id gets MEMBER_ID_REQUIRED and an id to
//!   rejoin with (KIP-394). Ids handed out but not used expire after the session
//!   timeout.
//! - Static members (`group.instance.id`, KIP-345) that rejoin without a member id
//!   take over their old membership; if the group is stable and their protocols
//!   did not change, no rebalance happens.
//! - A member whose session times out is removed and the group rebalances.
//!
//! Every method takes `now_ms` and returns an [`Output`]: writes to append to
//! `__consumer_offsets` and the answers for waiting JoinGroup/SyncGroup requests
//! that can go out now. What a write changes is held back until the caller
//! reports it durable with [`GroupCoordinator::complete_write`]:
//! - offset commits and deletions become visible (Kafka's pending offset commits);
//! - a leader's assignment makes the group `Stable` and answers the SyncGroups;
//!   if the write fails they get the error and the group rebalances;
//! - a static member's replacement is answered, or undone if the write fails;
//! - a deleted or expired group is `Dead` while its tombstone is in flight and
//!   goes away once it is durable (back to its state if the write fails).
//!
//! Writes of one partition take effect in the order they were made, as a replay
//! of the log would apply them.
//!
//! **Transactional offsets** (TxnOffsetCommit) are written as one transactional
//! batch stamped with the producer id. Once durable they are *pending* offsets of
//! (group, producer id), invisible to OffsetFetch, until the transaction's marker
//! reaches the group's partition: [`GroupCoordinator::complete_txn`] (or the
//! marker met on replay) makes them committed (commit) or drops them (abort). A
//! committed offset remembers the log position of its record, so a plain commit
//! written after a transactional one wins even if the transaction commits later,
//! as in Kafka. OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT
//! for partitions with a pending or in-flight commit
//! ([`GroupCoordinator::has_pending_commit`]).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use crate::errors::*;
use crate::records::{GroupRecord, GroupValue, MemberValue, OffsetValue, ReplayBatch};
use crate::write_queue::WriteQueue;
use crate::{partition_for, Token, WriteId};

#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`
    pub max_size: usize,
    /// `offsets.retention.minutes`, in ms
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions`
    pub offsets_partitions: i32,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 3_600_000,
            offset_metadata_max_bytes: 4096,
            offsets_partitions: 50,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat_ms: i64,
    awaiting_join: Option<Token>,
    awaiting_sync: Option<Token>,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

/// One producer's pending transactional offsets: (topic, partition) → (value,
/// log position of its record).
type TxnOffsets = BTreeMap<(String, i32), (OffsetValue, u64)>;

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub state: State,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, with their expiry.
    pending: HashMap<String, i64>,
    /// group.instance.id → member id
    static_members: HashMap<String, String>,
    /// Durable committed offsets only.
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Where each committed offset's record sits in the partition's log order
    /// (a write id, or a replay position): a later record wins over an earlier
    /// transactional one that commits afterwards.
    positions: HashMap<(String, i32), u64>,
    /// Durable transactional offsets waiting for their transaction's marker, by
    /// producer id.
    txn_offsets: BTreeMap<i64, TxnOffsets>,
    rebalance_deadline_ms: i64,
    initial_delay: Option<(i64, i64)>,
    sync_deadline_ms: i64,
    pub state_timestamp_ms: i64,
    /// The `__consumer_offsets` partition that stores this group.
    pub partition: i32,
    /// Writes for this group that are not resolved yet.
    inflight: u32,
    /// The generation whose leader assignment is being written.
    assigning: Option<i32>,
}

impl Group {
    fn new(id: &str, now: i64, partition: i32) -> Group {
        Group {
            id: id.to_string(),
            state: State::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: BTreeMap::new(),
            positions: HashMap::new(),
            txn_offsets: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_delay: None,
            sync_deadline_ms: 0,
            state_timestamp_ms: now,
            partition,
            inflight: 0,
            assigning: None,
        }
    }

    /// Makes `value` the committed offset unless a later record (by log
    /// position) already set it.
    fn put_offset(&mut self, key: (String, i32), value: OffsetValue, position: u64) {
        if self.positions.get(&key).is_some_and(|&p| p > position) {
            return;
        }
        self.positions.insert(key.clone(), position);
        self.offsets.insert(key, value);
    }

    /// An offset tombstone: the committed offset and every pending
    /// transactional one of the partition go (Kafka's replay does the same).
    fn remove_offset(&mut self, key: &(String, i32)) {
        self.offsets.remove(key);
        self.positions.remove(key);
        self.txn_offsets.retain(|_, pending| {
            pending.remove(key);
            !pending.is_empty()
        });
    }

    /// The transaction of `producer_id` ended: its pending offsets become
    /// committed (each unless a later record set that partition) or go.
    fn finish_txn(&mut self, producer_id: i64, commit: bool) {
        let Some(pending) = self.txn_offsets.remove(&producer_id) else {
            return;
        };
        if commit {
            for (key, (value, position)) in pending {
                self.put_offset(key, value, position);
            }
        }
    }

    fn has_pending_txn(&self, key: &(String, i32)) -> bool {
        self.txn_offsets.values().any(|p| p.contains_key(key))
    }

    /// The group's offset commit rules for a TxnOffsetCommit (Kafka's classic
    /// group): generation -1 on an empty group, or no member fields at all, is
    /// accepted; otherwise the member and generation must match. Unlike
    /// OffsetCommit, neither a non-empty group nor a rebalance refuses it.
    fn check_txn_commit(&self, generation: i32, member_id: &str, instance: Option<&str>) -> i16 {
        if self.state == State::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if generation < 0 && self.state == State::Empty {
            return NONE;
        }
        if generation < 0 && member_id.is_empty() && instance.is_none() {
            return NONE;
        }
        if let Some(i) = instance {
            match self.static_members.get(i) {
                None => return UNKNOWN_MEMBER_ID,
                Some(id) if id != member_id => return FENCED_INSTANCE_ID,
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        if generation != self.generation {
            return ILLEGAL_GENERATION;
        }
        NONE
    }

    fn set_state(&mut self, s: State, now: i64) {
        self.state = s;
        self.state_timestamp_ms = now;
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members.values().map(|m| m.rebalance_timeout_ms as i64).max().unwrap_or(0)
    }

    /// Protocols every member supports, in the first member's order.
    fn common_protocols(&self) -> Vec<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else {
            return Vec::new();
        };
        let mut names: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            names.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        names
    }

    /// Kafka's vote: each member votes for its most preferred common protocol.
    fn select_protocol(&self) -> Option<String> {
        let common = self.common_protocols();
        let mut votes: Vec<(String, usize)> = common.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| common.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let max = votes.iter().map(|(_, v)| *v).max()?;
        votes.into_iter().find(|(_, v)| *v == max).map(|(c, _)| c)
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    fn to_record(&self) -> GroupRecord {
        self.record_with(None)
    }

    /// The group's metadata record; `assignments` replaces the members' current ones.
    fn record_with(&self, assignments: Option<&HashMap<String, Bytes>>) -> GroupRecord {
        let protocol = self.protocol.clone();
        GroupRecord::Group {
            group: self.id.clone(),
            value: Some(GroupValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation: self.generation,
                protocol: protocol.clone(),
                leader: self.leader.clone(),
                state_timestamp: self.state_timestamp_ms,
                members: self
                    .members
                    .values()
                    .map(|m| MemberValue {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        subscription: protocol.as_deref().map(|p| m.metadata(p)).unwrap_or_default(),
                        assignment: match assignments {
                            Some(a) => a.get(&m.member_id).cloned().unwrap_or_default(),
                            None => m.assignment.clone(),
                        },
                    })
                    .collect(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a first join without a member id gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResponse {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, group instance id, metadata); only the leader gets these.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResponse {
    fn error(error: i16, member_id: &str) -> JoinResponse {
        JoinResponse { error, generation: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResponse {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    fn error(error: i16) -> SyncResponse {
        SyncResponse { error, ..Default::default() }
    }
}

/// A partition's commit: (topic, partition, offset, leader epoch, metadata).
pub type CommitEntry = (String, i32, i64, i32, Option<String>);

#[derive(Debug, Clone)]
pub struct CommitRequest {
    pub group_id: String,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<CommitEntry>,
}

/// A TxnOffsetCommit: offsets committed inside the transaction of
/// `producer_id`. `generation` -1 with an empty `member_id` skips the member
/// checks (v0-2 carry no member fields).
#[derive(Debug, Clone)]
pub struct TxnCommitRequest {
    pub group_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub generation: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub offsets: Vec<CommitEntry>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: State,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// Records for one `__consumer_offsets` partition, to append as one batch. The
/// caller reports the outcome with [`GroupCoordinator::complete_write`].
#[derive(Debug)]
pub struct Write {
    pub id: WriteId,
    pub partition: i32,
    pub records: Vec<GroupRecord>,
    /// (producer id, producer epoch) of a TxnOffsetCommit: the batch must be
    /// transactional and stamped with them (base sequence -1), so the marker
    /// of that transaction completes it, on replay too.
    pub producer: Option<(i64, i16)>,
}

/// What a call produced: writes to make durable and answers to deliver now.
#[derive(Debug, Default)]
pub struct Output {
    pub writes: Vec<Write>,
    pub joins: Vec<(Token, JoinResponse)>,
    pub syncs: Vec<(Token, SyncResponse)>,
    /// Writes that took effect (`NONE`) or were dropped (the append error, or
    /// NOT_COORDINATOR when their partition was unloaded) during this call.
    pub resolved: Vec<(WriteId, i16)>,
    staged: Vec<GroupRecord>,
    effects: Vec<Effect>,
}

impl Output {
    /// Every record of every write.
    pub fn records(&self) -> impl Iterator<Item = &GroupRecord> {
        self.writes.iter().flat_map(|w| w.records.iter())
    }

    /// Adds another call's output to this one.
    pub fn extend(&mut self, o: Output) {
        self.writes.extend(o.writes);
        self.joins.extend(o.joins);
        self.syncs.extend(o.syncs);
        self.resolved.extend(o.resolved);
        self.staged.extend(o.staged);
        self.effects.extend(o.effects);
    }
}

/// What a write changes once it is durable.
#[derive(Debug)]
enum Effect {
    /// An offset commit (`Some`) or deletion (`None`).
    Offset { group: String, topic: String, partition: i32, value: Option<OffsetValue> },
    /// A transactional offset commit: pending for `producer_id` once durable,
    /// unless the transaction ended meanwhile (`ended`: committed or not).
    TxnOffset { group: String, producer_id: i64, topic: String, partition: i32, value: OffsetValue, ended: Option<bool> },
    /// A leader's assignment for `generation`: the group becomes Stable.
    Assignment { group: String, generation: i32, assignments: HashMap<String, Bytes> },
    /// A static member took a new member id in a stable group; its JoinGroup is
    /// answered with `resp`, or the replacement is undone.
    StaticRejoin { group: String, instance: String, old: Box<Member>, new_id: String, was_leader: bool, token: Token, resp: JoinResponse },
    /// The group's tombstone: the group goes; `before` is its state if the write fails.
    RemoveGroup { group: String, before: State },
}

impl Effect {
    fn group(&self) -> &str {
        match self {
            Effect::Offset { group, .. }
            | Effect::TxnOffset { group, .. }
            | Effect::Assignment { group, .. }
            | Effect::StaticRejoin { group, .. }
            | Effect::RemoveGroup { group, .. } => group,
        }
    }
}

#[derive(Debug)]
struct PendingWrite {
    groups: Vec<String>,
    effects: Vec<Effect>,
}

/// Whether this coordinator serves a partition's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionStatus {
    NotOwned,
    /// Being replayed; the value tells this load from a later one.
    Loading(u64),
    Owned,
}

pub struct GroupCoordinator {
    pub config: GroupConfig,
    groups: HashMap<String, Group>,
    next_member: u64,
    partitions: HashMap<i32, PartitionStatus>,
    next_load: u64,
    /// Unresolved writes per `__consumer_offsets` partition, in the order made.
    pending: WriteQueue<PendingWrite>,
    next_write: WriteId,
}

impl GroupCoordinator {
    /// A coordinator that owns no partition yet: load some with
    /// [`begin_load`](Self::begin_load) / [`finish_load`](Self::finish_load).
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            groups: HashMap::new(),
            next_member: 0,
            partitions: HashMap::new(),
            next_load: 0,
            pending: WriteQueue::default(),
            next_write: 1,
        }
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// The `__consumer_offsets` partition of a group.
    pub fn partition_for(&self, group: &str) -> i32 {
        partition_for(group, self.config.offsets_partitions)
    }

    // ----- Ownership -------------------------------------------------------

    pub fn status(&self, partition: i32) -> PartitionStatus {
        self.partitions.get(&partition).copied().unwrap_or(PartitionStatus::NotOwned)
    }

    pub fn owns(&self, partition: i32) -> bool {
        self.status(partition) == PartitionStatus::Owned
    }

    /// Whether some partition is being loaded.
    pub fn loading(&self) -> bool {
        self.partitions.values().any(|s| matches!(s, PartitionStatus::Loading(_)))
    }

    /// NONE if this coordinator serves the group, else NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub fn check(&self, group: &str) -> i16 {
        match self.status(self.partition_for(group)) {
            PartitionStatus::Owned => NONE,
            PartitionStatus::Loading(_) => COORDINATOR_LOAD_IN_PROGRESS,
            PartitionStatus::NotOwned => NOT_COORDINATOR,
        }
    }

    /// Starts loading a partition: its groups answer COORDINATOR_LOAD_IN_PROGRESS
    /// until [`finish_load`](Self::finish_load). Replay its records with
    /// [`load`](Self::load). Returns the load's ticket. A partition already owned
    /// is unloaded first.
    pub fn begin_load(&mut self, partition: i32) -> (u64, Output) {
        let out = self.unload(partition);
        self.next_load += 1;
        self.partitions.insert(partition, PartitionStatus::Loading(self.next_load));
        (self.next_load, out)
    }

    /// Ends a load: the partition is owned. False (and nothing changes) if the
    /// partition was unloaded or loaded again since `ticket`.
    pub fn finish_load(&mut self, partition: i32, ticket: u64) -> bool {
        if self.status(partition) != PartitionStatus::Loading(ticket) {
            return false;
        }
        self.partitions.insert(partition, PartitionStatus::Owned);
        true
    }

    /// Gives up a partition: its groups leave memory, their waiting JoinGroup and
    /// SyncGroup requests and unresolved writes get NOT_COORDINATOR.
    pub fn unload(&mut self, partition: i32) -> Output {
        let mut out = Output::default();
        self.partitions.remove(&partition);
        let ids: Vec<String> = self.groups.values().filter(|g| g.partition == partition).map(|g| g.id.clone()).collect();
        for id in ids {
            let Some(g) = self.groups.remove(&id) else { continue };
            for m in g.members.values() {
                if let Some(t) = m.awaiting_join {
                    out.joins.push((t, JoinResponse::error(NOT_COORDINATOR, &m.member_id)));
                }
                if let Some(t) = m.awaiting_sync {
                    out.syncs.push((t, SyncResponse::error(NOT_COORDINATOR)));
                }
            }
        }
        for (id, w) in self.pending.remove(partition) {
            out.resolved.push((id, NOT_COORDINATOR));
            for e in w.effects {
                if let Effect::StaticRejoin { token, .. } = e {
                    out.joins.push((token, JoinResponse::error(NOT_COORDINATOR, "")));
                }
            }
        }
        out
    }

    // ----- Writes ----------------------------------------------------------

    /// Turns a call's staged records and effects into writes, one per partition.
    fn seal(&mut self, out: &mut Output) {
        self.seal_as(out, None);
    }

    /// As [`seal`](Self::seal), for the writes of a transactional producer.
    fn seal_as(&mut self, out: &mut Output, producer: Option<(i64, i16)>) {
        let mut by_partition: BTreeMap<i32, (Vec<GroupRecord>, Vec<Effect>)> = BTreeMap::new();
        for r in std::mem::take(&mut out.staged) {
            by_partition.entry(self.partition_for(r.group())).or_default().0.push(r);
        }
        for e in std::mem::take(&mut out.effects) {
            by_partition.entry(self.partition_for(e.group())).or_default().1.push(e);
        }
        for (partition, (records, effects)) in by_partition {
            let id = self.next_write;
            self.next_write += 1;
            let mut groups: Vec<String> = records.iter().map(|r| r.group().to_string()).collect();
            groups.sort();
            groups.dedup();
            for g in &groups {
                if let Some(g) = self.groups.get_mut(g) {
                    g.inflight += 1;
                }
            }
            self.pending.push(partition, id, PendingWrite { groups, effects });
            out.writes.push(Write { id, partition, records, producer });
        }
    }

    /// Reports a write: `NONE` once its records are appended and fsynced, else the
    /// append's error code (e.g. KAFKA_STORAGE_ERROR, RECORD_LIST_TOO_LARGE,
    /// NOT_LEADER_OR_FOLLOWER). Writes of a partition take effect in the order
    /// they were made, so this may resolve earlier-reported writes too, or none.
    /// Unknown ids (e.g. of an unloaded partition) are ignored.
    pub fn complete_write(&mut self, id: WriteId, result: i16, now: i64) -> Output {
        let mut out = Output::default();
        let Some((_, done)) = self.pending.complete(id, result) else {
            return out;
        };
        for (id, result, w) in done {
            self.resolve(id, result, w, now, &mut out);
        }
        self.seal(&mut out);
        out
    }

    fn resolve(&mut self, id: WriteId, result: i16, w: PendingWrite, now: i64, out: &mut Output) {
        for g in &w.groups {
            if let Some(g) = self.groups.get_mut(g) {
                g.inflight = g.inflight.saturating_sub(1);
            }
        }
        out.resolved.push((id, result));
        for e in w.effects {
            if result == NONE {
                self.apply(e, id, now, out);
            } else {
                self.undo(e, result, now, out);
            }
        }
    }

    /// A durable write's effect; `position` is the write's place in log order.
    fn apply(&mut self, e: Effect, position: u64, now: i64, out: &mut Output) {
        match e {
            Effect::Offset { group, topic, partition, value } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    match value {
                        Some(v) => g.put_offset((topic, partition), v, position),
                        None => g.remove_offset(&(topic, partition)),
                    }
                }
            }
            Effect::TxnOffset { group, producer_id, topic, partition, value, ended } => {
                let Some(g) = self.groups.get_mut(&group) else { return };
                match ended {
                    None => {
                        g.txn_offsets.entry(producer_id).or_default().insert((topic, partition), (value, position));
                    }
                    Some(true) => g.put_offset((topic, partition), value, position),
                    Some(false) => {}
                }
            }
            Effect::Assignment { group, generation, assignments } => {
                let Some(g) = self.groups.get_mut(&group) else { return };
                if g.assigning == Some(generation) {
                    g.assigning = None;
                }
                // The group may have moved on (a member left, a new rebalance);
                // then its SyncGroups were already answered.
                if g.state != State::CompletingRebalance || g.generation != generation {
                    return;
                }
                for m in g.members.values_mut() {
                    m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
                }
                g.set_state(State::Stable, now);
                for m in g.members.values_mut() {
                    if let Some(t) = m.awaiting_sync.take() {
                        out.syncs.push((
                            t,
                            SyncResponse {
                                error: NONE,
                                protocol_type: g.protocol_type.clone(),
                                protocol_name: g.protocol.clone(),
                                assignment: m.assignment.clone(),
                            },
                        ));
                    }
                }
            }
            Effect::StaticRejoin { token, resp, .. } => out.joins.push((token, resp)),
            Effect::RemoveGroup { group, .. } => {
                if self.groups.get(&group).is_some_and(|g| g.state == State::Dead) {
                    self.groups.remove(&group);
                }
            }
        }
    }

    /// A failed write's effect: nothing it would have changed changes.
    fn undo(&mut self, e: Effect, append_error: i16, now: i64, out: &mut Output) {
        let error = group_write_error(append_error);
        match e {
            Effect::Offset { .. } | Effect::TxnOffset { .. } => {}
            Effect::Assignment { group, generation, .. } => {
                let Some(g) = self.groups.get_mut(&group) else { return };
                if g.assigning == Some(generation) {
                    g.assigning = None;
                }
                if g.state != State::CompletingRebalance || g.generation != generation {
                    return;
                }
                // As Kafka: the members hear the error and the group rebalances.
                for m in g.members.values_mut() {
                    m.assignment = Bytes::new();
                    if let Some(t) = m.awaiting_sync.take() {
                        out.syncs.push((t, SyncResponse::error(error)));
                    }
                }
                Self::prepare_rebalance(g, now, out);
                Self::try_complete_join(g, now, out);
            }
            Effect::StaticRejoin { group, instance, old, new_id, was_leader, token, .. } => {
                out.joins.push((token, JoinResponse::error(error, "")));
                let Some(g) = self.groups.get_mut(&group) else { return };
                if g.static_members.get(&instance) != Some(&new_id) {
                    return;
                }
                let Some(m) = g.members.shift_remove(&new_id) else { return };
                if let Some(t) = m.awaiting_join {
                    out.joins.push((t, JoinResponse::error(error, &new_id)));
                }
                if let Some(t) = m.awaiting_sync {
                    out.syncs.push((t, SyncResponse::error(error)));
                }
                let old_id = old.member_id.clone();
                g.static_members.insert(instance, old_id.clone());
                if was_leader || g.leader.as_deref() == Some(new_id.as_str()) {
                    g.leader = Some(old_id.clone());
                }
                let mut old = *old;
                old.last_heartbeat_ms = now;
                g.members.insert(old_id, old);
            }
            Effect::RemoveGroup { group, before } => {
                if let Some(g) = self.groups.get_mut(&group).filter(|g| g.state == State::Dead) {
                    g.state = before;
                }
            }
        }
    }

    fn new_member_id(&mut self, prefix: &str, now: i64) -> String {
        self.next_member += 1;
        let prefix = if prefix.is_empty() { "member" } else { prefix };
        format!("{prefix}-{now:x}-{:08x}", self.next_member)
    }

    // ----- JoinGroup -------------------------------------------------------

    pub fn join(&mut self, req: JoinRequest, token: Token, now: i64) -> Output {
        let mut out = Output::default();
        let respond_err = |out: &mut Output, e: i16, id: &str| out.joins.push((token, JoinResponse::error(e, id)));
        if req.group_id.is_empty() {
            respond_err(&mut out, INVALID_GROUP_ID, &req.member_id);
            return out;
        }
        let serving = self.check(&req.group_id);
        if serving != NONE {
            respond_err(&mut out, serving, &req.member_id);
            return out;
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms || req.session_timeout_ms > self.config.max_session_timeout_ms {
            respond_err(&mut out, INVALID_SESSION_TIMEOUT, &req.member_id);
            return out;
        }
        if !req.member_id.is_empty() && !self.groups.contains_key(&req.group_id) {
            respond_err(&mut out, UNKNOWN_MEMBER_ID, &req.member_id);
            return out;
        }
        let partition = self.partition_for(&req.group_id);
        let g = self.groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, now, partition));
        if g.state == State::Dead {
            respond_err(&mut out, COORDINATOR_NOT_AVAILABLE, &req.member_id);
            return out;
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            respond_err(&mut out, INCONSISTENT_GROUP_PROTOCOL, &req.member_id);
            return out;
        }
        if !g.members.is_empty() {
            let same_type = g.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let common = g.common_protocols();
            let overlap = req.protocols.iter().any(|(n, _)| common.contains(n));
            // A sole member may change its protocols freely.
            let sole = g.members.len() == 1 && g.members.contains_key(&req.member_id);
            if !same_type || (!overlap && !sole) {
                respond_err(&mut out, INCONSISTENT_GROUP_PROTOCOL, &req.member_id);
                return out;
            }
        }
        if req.member_id.is_empty() {
            self.join_unknown(req, token, now, &mut out);
        } else {
            self.join_known(req, token, now, &mut out);
        }
        self.seal(&mut out);
        out
    }

    fn join_unknown(&mut self, req: JoinRequest, token: Token, now: i64, out: &mut Output) {
        if let Some(instance) = req.group_instance_id.clone() {
            let new_id = self.new_member_id(&instance, now);
            let existing = self.groups.get(&req.group_id).and_then(|g| g.static_members.get(&instance).cloned());
            if let Some(old_id) = existing {
                self.replace_static(req, old_id, new_id, token, now, out);
                return;
            }
            self.add_member(req, new_id, token, now, out);
            return;
        }
        let new_id = self.new_member_id(&req.client_id, now);
        if req.require_known_member_id {
            let Some(g) = self.groups.get_mut(&req.group_id) else {
                return;
            };
            g.pending.insert(new_id.clone(), now + req.session_timeout_ms as i64);
            out.joins.push((token, JoinResponse::error(MEMBER_ID_REQUIRED, &new_id)));
            return;
        }
        self.add_member(req, new_id, token, now, out);
    }

    fn join_known(&mut self, req: JoinRequest, token: Token, now: i64, out: &mut Output) {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        if g.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            self.add_member(req, id, token, now, out);
            return;
        }
        if let Some(instance) = &req.group_instance_id {
            if g.static_members.get(instance).is_some_and(|id| *id != req.member_id) {
                out.joins.push((token, JoinResponse::error(FENCED_INSTANCE_ID, &req.member_id)));
                return;
            }
        }
        let Some(m) = g.members.get_mut(&req.member_id) else {
            out.joins.push((token, JoinResponse::error(UNKNOWN_MEMBER_ID, &req.member_id)));
            return;
        };
        let changed = m.protocols != req.protocols;
        m.protocols = req.protocols;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.last_heartbeat_ms = now;
        let is_leader = g.leader.as_deref() == Some(req.member_id.as_str());
        match g.state {
            State::PreparingRebalance => {
                if let Some(old) = g.members.get_mut(&req.member_id).and_then(|m| m.awaiting_join.replace(token)) {
                    out.joins.push((old, JoinResponse::error(UNKNOWN_MEMBER_ID, &req.member_id)));
                }
                Self::try_complete_join(g, now, out);
            }
            State::CompletingRebalance if !changed => {
                out.joins.push((token, Self::join_response(g, &req.member_id)));
            }
            State::Stable if !changed && !is_leader => {
                out.joins.push((token, Self::join_response(g, &req.member_id)));
            }
            _ => {
                if let Some(m) = g.members.get_mut(&req.member_id) {
                    m.awaiting_join = Some(token);
                }
                Self::prepare_rebalance(g, now, out);
                Self::try_complete_join(g, now, out);
            }
        }
    }

    fn add_member(&mut self, req: JoinRequest, id: String, token: Token, now: i64, out: &mut Output) {
        let max = self.config.max_size;
        let delay = self.config.initial_rebalance_delay_ms;
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        if g.members.len() >= max {
            out.joins.push((token, JoinResponse::error(GROUP_MAX_SIZE_REACHED, &id)));
            return;
        }
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            g.static_members.insert(instance.clone(), id.clone());
        }
        g.members.insert(
            id.clone(),
            Member {
                member_id: id,
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                last_heartbeat_ms: now,
                awaiting_join: Some(token),
                awaiting_sync: None,
            },
        );
        match g.state {
            State::PreparingRebalance => {
                // A new member arriving during the initial delay extends it.
                if let Some((start, until)) = g.initial_delay {
                    let cap = start + g.max_rebalance_timeout();
                    g.initial_delay = Some((start, (now + delay).min(cap).max(until)));
                }
            }
            State::Empty => {
                let timeout = g.max_rebalance_timeout();
                g.set_state(State::PreparingRebalance, now);
                g.rebalance_deadline_ms = now + timeout;
                g.initial_delay = Some((now, now + delay.min(timeout)));
            }
            _ => Self::prepare_rebalance(g, now, out),
        }
        Self::try_complete_join(g, now, out);
    }

    fn replace_static(&mut self, req: JoinRequest, old_id: String, new_id: String, token: Token, now: i64, out: &mut Output) {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let Some(mut m) = g.members.shift_remove(&old_id) else {
            g.static_members.remove(req.group_instance_id.as_deref().unwrap_or_default());
            self.add_member(req, new_id, token, now, out);
            return;
        };
        if let Some(t) = m.awaiting_join.take() {
            out.joins.push((t, JoinResponse::error(FENCED_INSTANCE_ID, &old_id)));
        }
        if let Some(t) = m.awaiting_sync.take() {
            out.syncs.push((t, SyncResponse::error(FENCED_INSTANCE_ID)));
        }
        let changed = m.protocols != req.protocols;
        let before = m.clone();
        let was_leader = g.leader.as_deref() == Some(old_id.as_str());
        m.member_id = new_id.clone();
        m.protocols = req.protocols;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout_ms = req.session_timeout_ms;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.last_heartbeat_ms = now;
        g.members.insert(new_id.clone(), m);
        if let Some(instance) = &req.group_instance_id {
            g.static_members.insert(instance.clone(), new_id.clone());
        }
        if g.leader.as_deref() == Some(old_id.as_str()) {
            g.leader = Some(new_id.clone());
        }
        match g.state {
            State::Stable if !changed => {
                // The same member came back: hand it the current generation, no
                // rebalance, once its new member id is durable (undone if not).
                let mut resp = Self::join_response(g, &new_id);
                resp.members.clear();
                out.staged.push(g.to_record());
                out.effects.push(Effect::StaticRejoin {
                    group: g.id.clone(),
                    instance: req.group_instance_id.clone().unwrap_or_default(),
                    old: Box::new(before),
                    new_id,
                    was_leader,
                    token,
                    resp,
                });
            }
            State::PreparingRebalance => {
                if let Some(m) = g.members.get_mut(&new_id) {
                    m.awaiting_join = Some(token);
                }
                Self::try_complete_join(g, now, out);
            }
            _ => {
                if let Some(m) = g.members.get_mut(&new_id) {
                    m.awaiting_join = Some(token);
                }
                Self::prepare_rebalance(g, now, out);
                Self::try_complete_join(g, now, out);
            }
        }
    }

    fn join_response(g: &Group, member_id: &str) -> JoinResponse {
        let protocol = g.protocol.clone().unwrap_or_default();
        let leader = g.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            g.members.values().map(|m| (m.member_id.clone(), m.group_instance_id.clone(), m.metadata(&protocol))).collect()
        } else {
            Vec::new()
        };
        JoinResponse {
            error: NONE,
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn prepare_rebalance(g: &mut Group, now: i64, out: &mut Output) {
        if g.state == State::CompletingRebalance {
            for m in g.members.values_mut() {
                if let Some(t) = m.awaiting_sync.take() {
                    out.syncs.push((t, SyncResponse::error(REBALANCE_IN_PROGRESS)));
                }
            }
        }
        if g.state != State::PreparingRebalance {
            g.set_state(State::PreparingRebalance, now);
            g.rebalance_deadline_ms = now + g.max_rebalance_timeout();
        }
    }

    fn try_complete_join(g: &mut Group, now: i64, out: &mut Output) {
        if g.state != State::PreparingRebalance {
            return;
        }
        if let Some((_, until)) = g.initial_delay {
            if now < until {
                return;
            }
        }
        if g.all_joined() {
            Self::complete_join(g, now, out);
        }
    }

    fn complete_join(g: &mut Group, now: i64, out: &mut Output) {
        g.initial_delay = None;
        g.pending.clear();
        g.generation += 1;
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.set_state(State::Empty, now);
            out.staged.push(g.to_record());
            return;
        }
        g.protocol = g.select_protocol();
        if g.leader.as_ref().is_none_or(|l| !g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.set_state(State::CompletingRebalance, now);
        g.sync_deadline_ms = now + g.max_rebalance_timeout();
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            let resp = Self::join_response(g, &id);
            if let Some(m) = g.members.get_mut(&id) {
                m.last_heartbeat_ms = now;
                if let Some(t) = m.awaiting_join.take() {
                    out.joins.push((t, resp));
                }
            }
        }
    }

    // ----- SyncGroup -------------------------------------------------------

    pub fn sync(&mut self, req: SyncRequest, token: Token, now: i64) -> Output {
        let mut out = Output::default();
        let serving = self.check(&req.group_id);
        if serving != NONE {
            out.syncs.push((token, SyncResponse::error(serving)));
            return out;
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            out.syncs.push((token, SyncResponse::error(UNKNOWN_MEMBER_ID)));
            return out;
        };
        let err = if let Some(instance) =
            req.group_instance_id.as_ref().filter(|i| g.static_members.get(*i).is_some_and(|id| *id != req.member_id))
        {
            let _ = instance;
            FENCED_INSTANCE_ID
        } else if !g.members.contains_key(&req.member_id) {
            UNKNOWN_MEMBER_ID
        } else if req.generation != g.generation {
            ILLEGAL_GENERATION
        } else if req.protocol_type.as_ref().is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || req.protocol_name.as_ref().is_some_and(|n| Some(n) != g.protocol.as_ref())
        {
            INCONSISTENT_GROUP_PROTOCOL
        } else {
            NONE
        };
        if err != NONE {
            out.syncs.push((token, SyncResponse::error(err)));
            return out;
        }
        match g.state {
            State::Empty | State::Dead => out.syncs.push((token, SyncResponse::error(UNKNOWN_MEMBER_ID))),
            State::PreparingRebalance => out.syncs.push((token, SyncResponse::error(REBALANCE_IN_PROGRESS))),
            State::Stable => {
                let m = &g.members[&req.member_id];
                out.syncs.push((
                    token,
                    SyncResponse {
                        error: NONE,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol.clone(),
                        assignment: m.assignment.clone(),
                    },
                ));
            }
            State::CompletingRebalance => {
                if let Some(m) = g.members.get_mut(&req.member_id) {
                    if let Some(old) = m.awaiting_sync.replace(token) {
                        out.syncs.push((old, SyncResponse::error(UNKNOWN_MEMBER_ID)));
                    }
                    m.last_heartbeat_ms = now;
                }
                // The leader's assignment takes effect (Stable, SyncGroups
                // answered) once its record is durable; a leader that syncs again
                // meanwhile just waits.
                if g.leader.as_deref() == Some(req.member_id.as_str()) && g.assigning != Some(g.generation) {
                    let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    out.staged.push(g.record_with(Some(&given)));
                    g.assigning = Some(g.generation);
                    out.effects.push(Effect::Assignment { group: g.id.clone(), generation: g.generation, assignments: given });
                }
            }
        }
        self.seal(&mut out);
        out
    }

    // ----- Heartbeat / LeaveGroup ------------------------------------------

    pub fn heartbeat(&mut self, group_id: &str, generation: i32, member_id: &str, instance: Option<&str>, now: i64) -> i16 {
        let serving = self.check(group_id);
        if serving != NONE {
            return serving;
        }
        let Some(g) = self.groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if let Some(i) = instance {
            if g.static_members.get(i).is_some_and(|id| id != member_id) {
                return FENCED_INSTANCE_ID;
            }
        }
        let state = g.state;
        let current = g.generation;
        let Some(m) = g.members.get_mut(member_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        match state {
            State::Empty | State::Dead => UNKNOWN_MEMBER_ID,
            _ if generation != current => ILLEGAL_GENERATION,
            State::PreparingRebalance => {
                m.last_heartbeat_ms = now;
                REBALANCE_IN_PROGRESS
            }
            State::CompletingRebalance | State::Stable => {
                m.last_heartbeat_ms = now;
                NONE
            }
        }
    }

    /// Removes members; returns a code per (member id, instance id) given (all
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS if the group is not served here).
    pub fn leave(&mut self, group_id: &str, members: &[(String, Option<String>)], now: i64) -> (Vec<i16>, Output) {
        let mut out = Output::default();
        let serving = self.check(group_id);
        if serving != NONE {
            return (vec![serving; members.len()], out);
        }
        let Some(g) = self.groups.get_mut(group_id) else {
            return (vec![UNKNOWN_MEMBER_ID; members.len()], out);
        };
        let mut codes = Vec::with_capacity(members.len());
        for (member_id, instance) in members {
            let target = match instance {
                Some(i) => match g.static_members.get(i) {
                    Some(id) if !member_id.is_empty() && id != member_id => {
                        codes.push(FENCED_INSTANCE_ID);
                        continue;
                    }
                    Some(id) => Some(id.clone()),
                    None => None,
                },
                None => Some(member_id.clone()),
            };
            match target {
                Some(id) if g.members.contains_key(&id) => {
                    Self::remove_member(g, &id, now, &mut out);
                    codes.push(NONE);
                }
                Some(id) if g.pending.remove(&id).is_some() => {
                    Self::try_complete_join(g, now, &mut out);
                    codes.push(NONE);
                }
                _ => codes.push(UNKNOWN_MEMBER_ID),
            }
        }
        self.seal(&mut out);
        (codes, out)
    }

    fn remove_member(g: &mut Group, id: &str, now: i64, out: &mut Output) {
        let Some(mut m) = g.members.shift_remove(id) else {
            return;
        };
        if let Some(i) = &m.group_instance_id {
            if g.static_members.get(i).is_some_and(|x| x == id) {
                g.static_members.remove(i);
            }
        }
        if let Some(t) = m.awaiting_join.take() {
            out.joins.push((t, JoinResponse::error(UNKNOWN_MEMBER_ID, id)));
        }
        if let Some(t) = m.awaiting_sync.take() {
            out.syncs.push((t, SyncResponse::error(UNKNOWN_MEMBER_ID)));
        }
        match g.state {
            State::Stable | State::CompletingRebalance => {
                Self::prepare_rebalance(g, now, out);
                Self::try_complete_join(g, now, out);
            }
            State::PreparingRebalance => Self::try_complete_join(g, now, out),
            _ => {}
        }
    }

    // ----- Timers ----------------------------------------------------------

    /// Expires sessions, pending member ids and rebalance deadlines; ends the
    /// initial delay; expires offsets of empty groups. Touches only the groups of
    /// owned partitions.
    pub fn tick(&mut self, now: i64) -> Output {
        let mut out = Output::default();
        let retention = self.config.offsets_retention_ms;
        let partitions = &self.partitions;
        let mut forget = Vec::new();
        for g in self.groups.values_mut() {
            if partitions.get(&g.partition) != Some(&PartitionStatus::Owned) {
                continue;
            }
            let o = &mut out;
            g.pending.retain(|_, expiry| *expiry > now);
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    m.awaiting_join.is_none() && m.awaiting_sync.is_none() && now > m.last_heartbeat_ms + m.session_timeout_ms as i64
                })
                .map(|m| m.member_id.clone())
                .collect();
            for id in expired {
                Self::remove_member(g, &id, now, o);
            }
            if g.state == State::PreparingRebalance && now >= g.rebalance_deadline_ms {
                let late: Vec<String> = g.members.values().filter(|m| m.awaiting_join.is_none()).map(|m| m.member_id.clone()).collect();
                for id in late {
                    if let Some(m) = g.members.shift_remove(&id) {
                        if let Some(i) = &m.group_instance_id {
                            g.static_members.remove(i);
                        }
                    }
                }
                g.pending.clear();
                Self::complete_join(g, now, o);
            } else {
                Self::try_complete_join(g, now, o);
            }
            if g.state == State::CompletingRebalance && now >= g.sync_deadline_ms {
                let late: Vec<String> = g.members.values().filter(|m| m.awaiting_sync.is_none()).map(|m| m.member_id.clone()).collect();
                for id in late {
                    Self::remove_member(g, &id, now, o);
                }
            }
            // Expiry waits for the group's writes in flight, so it never writes twice.
            if g.state == State::Empty && g.inflight == 0 {
                let stale: Vec<(String, i32)> = g
                    .offsets
                    .iter()
                    .filter(|(k, v)| v.commit_timestamp.max(g.state_timestamp_ms) + retention <= now && !g.has_pending_txn(k))
                    .map(|(k, _)| k.clone())
                    .collect();
                for (topic, partition) in stale {
                    o.staged.push(GroupRecord::Offset { group: g.id.clone(), topic: topic.clone(), partition, value: None });
                    o.effects.push(Effect::Offset { group: g.id.clone(), topic, partition, value: None });
                }
                // A group with an open transaction's offsets stays (as Kafka).
                let empty = g.offsets.is_empty() && g.members.is_empty() && g.pending.is_empty() && g.txn_offsets.is_empty();
                if empty && g.generation > 0 && g.state_timestamp_ms + retention <= now {
                    o.staged.push(GroupRecord::Group { group: g.id.clone(), value: None });
                    o.effects.push(Effect::RemoveGroup { group: g.id.clone(), before: g.state });
                    g.state = State::Dead;
                } else if empty && g.generation == 0 {
                    // Never had a generation, so nothing of it is in the log (e.g.
                    // a simple commit that failed): forget it without a record.
                    forget.push(g.id.clone());
                }
            }
        }
        for id in forget {
            self.groups.remove(&id);
        }
        self.seal(&mut out);
        out
    }

    // ----- Offsets ---------------------------------------------------------

    /// Validates commits and writes them; returns an error code per entry. A
    /// commit answered `NONE` here takes effect (and becomes visible to
    /// [`fetch_offsets`](Self::fetch_offsets)) only when its write is reported
    /// durable; if the write fails the caller answers
    /// [`commit_error`](crate::errors::commit_error) instead.
    pub fn commit(&mut self, req: CommitRequest, now: i64) -> (Vec<i16>, Output) {
        let mut out = Output::default();
        let n = req.offsets.len();
        let simple = req.generation < 0 && req.member_id.is_empty();
        let partition = self.partition_for(&req.group_id);
        if req.group_id.is_empty() {
            return (vec![INVALID_GROUP_ID; n], out);
        }
        let serving = self.check(&req.group_id);
        if serving != NONE {
            return (vec![serving; n], out);
        }
        if self.groups.get(&req.group_id).is_some_and(|g| g.state == State::Dead) {
            return (vec![COORDINATOR_NOT_AVAILABLE; n], out);
        }
        if simple {
            let g = self.groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, now, partition));
            if !g.members.is_empty() {
                return (vec![UNKNOWN_MEMBER_ID; n], out);
            }
        } else {
            let Some(g) = self.groups.get_mut(&req.group_id) else {
                return (vec![UNKNOWN_MEMBER_ID; n], out);
            };
            if let Some(i) = &req.group_instance_id {
                if g.static_members.get(i).is_some_and(|id| *id != req.member_id) {
                    return (vec![FENCED_INSTANCE_ID; n], out);
                }
            }
            let state = g.state;
            let generation = g.generation;
            let Some(m) = g.members.get_mut(&req.member_id) else {
                return (vec![UNKNOWN_MEMBER_ID; n], out);
            };
            if req.generation != generation {
                return (vec![ILLEGAL_GENERATION; n], out);
            }
            if state == State::CompletingRebalance {
                return (vec![REBALANCE_IN_PROGRESS; n], out);
            }
            m.last_heartbeat_ms = now;
        }
        let group = req.group_id.clone();
        let codes = self.stage_offsets(&req.group_id, req.offsets, now, &mut out, |topic, partition, value| Effect::Offset {
            group: group.clone(),
            topic,
            partition,
            value: Some(value),
        });
        self.seal(&mut out);
        (codes, out)
    }

    /// Stages one offset record per entry, with the effect `effect` makes of its
    /// value; entries with metadata over `offset.metadata.max.bytes` get
    /// OFFSET_METADATA_TOO_LARGE and nothing. Returns each entry's code.
    fn stage_offsets(
        &self,
        group_id: &str,
        offsets: Vec<CommitEntry>,
        now: i64,
        out: &mut Output,
        effect: impl Fn(String, i32, OffsetValue) -> Effect,
    ) -> Vec<i16> {
        let mut codes = Vec::with_capacity(offsets.len());
        for (topic, partition, offset, epoch, metadata) in offsets {
            let metadata = metadata.unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                codes.push(OFFSET_METADATA_TOO_LARGE);
                continue;
            }
            let value = OffsetValue { offset, leader_epoch: epoch, metadata, commit_timestamp: now };
            out.staged.push(GroupRecord::Offset {
                group: group_id.to_string(),
                topic: topic.clone(),
                partition,
                value: Some(value.clone()),
            });
            out.effects.push(effect(topic, partition, value));
            codes.push(NONE);
        }
        codes
    }

    /// Durable committed offsets of a group: all of them, or the partitions asked
    /// for (`None` where nothing is committed). The caller checks
    /// [`check`](Self::check) first.
    pub fn fetch_offsets(&self, group_id: &str, wanted: Option<&[(String, Vec<i32>)]>) -> Vec<(String, i32, Option<OffsetValue>)> {
        let g = self.groups.get(group_id).filter(|g| g.state != State::Dead);
        match wanted {
            None => g.map(|g| g.offsets.iter().map(|((t, p), v)| (t.clone(), *p, Some(v.clone()))).collect()).unwrap_or_default(),
            Some(list) => list
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p, g.and_then(|g| g.offsets.get(&(t.clone(), *p)).cloned()))))
                .collect(),
        }
    }

    // ----- Transactional offsets -------------------------------------------

    /// TxnOffsetCommit: validates and writes the offsets as one transactional
    /// batch of `req.producer_id`; returns an error code per entry. Entries
    /// answered `NONE` become pending offsets of (group, producer) once the write
    /// is durable, and committed offsets only when the transaction commits
    /// ([`complete_txn`](Self::complete_txn)). An unknown group is created as a
    /// simple group when `generation` is negative (Kafka's rule), else the
    /// commit gets ILLEGAL_GENERATION.
    pub fn txn_commit(&mut self, req: TxnCommitRequest, now: i64) -> (Vec<i16>, Output) {
        let mut out = Output::default();
        let n = req.offsets.len();
        if req.group_id.is_empty() {
            return (vec![INVALID_GROUP_ID; n], out);
        }
        let serving = self.check(&req.group_id);
        if serving != NONE {
            return (vec![serving; n], out);
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation >= 0 {
                return (vec![ILLEGAL_GENERATION; n], out);
            }
            let partition = self.partition_for(&req.group_id);
            self.groups.insert(req.group_id.clone(), Group::new(&req.group_id, now, partition));
        }
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return (vec![COORDINATOR_NOT_AVAILABLE; n], out);
        };
        let error = g.check_txn_commit(req.generation, &req.member_id, req.group_instance_id.as_deref());
        if error != NONE {
            return (vec![error; n], out);
        }
        if let Some(m) = g.members.get_mut(&req.member_id) {
            m.last_heartbeat_ms = now;
        }
        let (group, producer_id) = (req.group_id.clone(), req.producer_id);
        let codes = self.stage_offsets(&req.group_id, req.offsets, now, &mut out, |topic, partition, value| Effect::TxnOffset {
            group: group.clone(),
            producer_id,
            topic,
            partition,
            value,
            ended: None,
        });
        self.seal_as(&mut out, Some((req.producer_id, req.producer_epoch)));
        (codes, out)
    }

    /// The marker of `producer_id`'s transaction is durable on `partition` of
    /// `__consumer_offsets`: its pending offsets in every group of that
    /// partition become committed (`commit`) or are dropped. Offsets of the
    /// transaction still being written take the same outcome when they land.
    /// Partitions neither owned nor loading are ignored (their groups are not
    /// here; a later load replays the marker).
    pub fn complete_txn(&mut self, partition: i32, producer_id: i64, commit: bool) {
        if self.status(partition) == PartitionStatus::NotOwned {
            return;
        }
        self.finish_txn_in(partition, producer_id, commit);
        for w in self.pending.iter_mut(partition) {
            for e in &mut w.effects {
                if let Effect::TxnOffset { producer_id: p, ended: ended @ None, .. } = e {
                    if *p == producer_id {
                        *ended = Some(commit);
                    }
                }
            }
        }
    }

    fn finish_txn_in(&mut self, partition: i32, producer_id: i64, commit: bool) {
        for g in self.groups.values_mut().filter(|g| g.partition == partition) {
            g.finish_txn(producer_id, commit);
        }
    }

    /// Whether a partition's offset in a group is not final: a transactional
    /// commit waits for its marker, or a commit is still being written. OffsetFetch
    /// with `require_stable` answers UNSTABLE_OFFSET_COMMIT for it.
    pub fn has_pending_commit(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        if self.groups.get(group_id).is_some_and(|g| g.has_pending_txn(&key)) {
            return true;
        }
        let home = self.partition_for(group_id);
        self.pending.iter(home).flat_map(|w| w.effects.iter()).any(|e| match e {
            Effect::Offset { group, topic: t, partition: p, value: Some(_) } | Effect::TxnOffset { group, topic: t, partition: p, .. } => {
                group == group_id && t == topic && *p == partition
            }
            _ => false,
        })
    }

    /// Producer ids with pending transactional offsets in a group.
    pub fn open_txns(&self, group_id: &str) -> Vec<i64> {
        self.groups.get(group_id).map(|g| g.txn_offsets.keys().copied().collect()).unwrap_or_default()
    }

    // ----- Administration --------------------------------------------------

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group_id)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        let complete = matches!(g.state, State::Stable);
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if complete || g.state == State::CompletingRebalance { protocol.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if complete { m.metadata(&protocol) } else { Bytes::new() },
                    assignment: if complete { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        })
    }

    /// (group id, protocol type, state) of every group of the owned partitions.
    pub fn list(&self) -> Vec<(String, String, State)> {
        let mut v: Vec<_> = self
            .groups
            .values()
            .filter(|g| self.owns(g.partition))
            .map(|g| (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Deletes an empty group with its offsets. The group is `Dead` until the
    /// tombstones are durable, then gone; if they fail it is back as it was.
    pub fn delete_group(&mut self, group_id: &str) -> (i16, Output) {
        let mut out = Output::default();
        let serving = self.check(group_id);
        if serving != NONE {
            return (serving, out);
        }
        let partition = self.partition_for(group_id);
        // Offsets whose commits are still in flight get tombstones too.
        let mut keys: Vec<(String, i32)> = self
            .pending
            .iter(partition)
            .flat_map(|w| w.effects.iter())
            .filter_map(|e| match e {
                Effect::Offset { group, topic, partition, value: Some(_) } | Effect::TxnOffset { group, topic, partition, .. }
                    if group == group_id =>
                {
                    Some((topic.clone(), *partition))
                }
                _ => None,
            })
            .collect();
        let Some(g) = self.groups.get_mut(group_id) else {
            return (GROUP_ID_NOT_FOUND, out);
        };
        if g.state == State::Dead {
            return (GROUP_ID_NOT_FOUND, out);
        }
        if g.state != State::Empty || !g.members.is_empty() {
            return (NON_EMPTY_GROUP, out);
        }
        keys.extend(g.offsets.keys().cloned());
        // Pending transactional offsets go too (Kafka writes their tombstones).
        keys.extend(g.txn_offsets.values().flat_map(|p| p.keys().cloned()));
        keys.sort();
        keys.dedup();
        for (t, p) in keys {
            out.staged.push(GroupRecord::Offset { group: group_id.to_string(), topic: t.clone(), partition: p, value: None });
            out.effects.push(Effect::Offset { group: group_id.to_string(), topic: t, partition: p, value: None });
        }
        out.staged.push(GroupRecord::Group { group: group_id.to_string(), value: None });
        out.effects.push(Effect::RemoveGroup { group: group_id.to_string(), before: g.state });
        g.state = State::Dead;
        self.seal(&mut out);
        (NONE, out)
    }

    /// Deletes committed offsets; a partition of a topic that an active consumer
    /// group subscribes to gets GROUP_SUBSCRIBED_TO_TOPIC.
    pub fn delete_offsets(&mut self, group_id: &str, partitions: &[(String, i32)]) -> (i16, Vec<i16>, Output) {
        let mut out = Output::default();
        let serving = self.check(group_id);
        if serving != NONE {
            return (serving, Vec::new(), out);
        }
        let Some(g) = self.groups.get_mut(group_id).filter(|g| g.state != State::Dead) else {
            return (GROUP_ID_NOT_FOUND, Vec::new(), out);
        };
        let subscribed: Vec<String> = if g.state == State::Empty || g.protocol_type.as_deref() != Some("consumer") {
            Vec::new()
        } else {
            let protocol = g.protocol.clone().unwrap_or_default();
            g.members.values().flat_map(|m| consumer_subscription(&m.metadata(&protocol))).collect()
        };
        let mut codes = Vec::with_capacity(partitions.len());
        for (t, p) in partitions {
            if subscribed.contains(t) {
                codes.push(GROUP_SUBSCRIBED_TO_TOPIC);
                continue;
            }
            let key = (t.clone(), *p);
            if g.offsets.contains_key(&key) || g.has_pending_txn(&key) {
                out.staged.push(GroupRecord::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p, value: None });
                out.effects.push(Effect::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p, value: None });
            }
            codes.push(NONE);
        }
        self.seal(&mut out);
        (NONE, codes, out)
    }

    // ----- Loading ---------------------------------------------------------

    /// Applies one replayed batch of `partition`, in log order: plain records
    /// as [`load`](Self::load); a transactional batch's offsets become pending
    /// for its producer; a marker completes that producer's pending offsets.
    pub fn load_batch(&mut self, partition: i32, batch: ReplayBatch, now: i64) {
        match batch {
            ReplayBatch::Marker { producer_id, commit } => self.finish_txn_in(partition, producer_id, commit),
            ReplayBatch::Records { producer_id, transactional, records } => {
                let position = self.next_position();
                for r in records {
                    match r {
                        GroupRecord::Offset { group, topic, partition, value: Some(v) } if transactional => {
                            let home = self.partition_for(&group);
                            let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now, home));
                            g.txn_offsets.entry(producer_id).or_default().insert((topic, partition), (v, position));
                        }
                        r => self.load_at(r, position, now),
                    }
                }
            }
        }
    }

    /// A position in log order for replayed records: drawn from the write ids,
    /// so records replayed before a write are older than it.
    fn next_position(&mut self) -> u64 {
        let p = self.next_write;
        self.next_write += 1;
        p
    }

    /// Applies one replayed (non-transactional) record of a partition being
    /// loaded. Members of a loaded group get a fresh session from `now`, so
    /// consumers that are gone expire after their session timeout.
    pub fn load(&mut self, record: GroupRecord, now: i64) {
        let position = self.next_position();
        self.load_at(record, position, now);
    }

    fn load_at(&mut self, record: GroupRecord, position: u64, now: i64) {
        let home = self.partition_for(record.group());
        match record {
            GroupRecord::Offset { group, topic, partition, value } => match value {
                Some(v) => {
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now, home));
                    g.put_offset((topic, partition), v, position);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.remove_offset(&(topic, partition));
                    }
                }
            },
            GroupRecord::Group { group, value: None } => {
                self.groups.remove(&group);
            }
            GroupRecord::Group { group, value: Some(v) } => {
                let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now, home));
                g.protocol_type = if v.protocol_type.is_empty() { None } else { Some(v.protocol_type) };
                g.generation = v.generation;
                g.protocol = v.protocol.clone();
                g.leader = v.leader;
                g.state_timestamp_ms = v.state_timestamp;
                g.members.clear();
                g.static_members.clear();
                let protocol = v.protocol.unwrap_or_default();
                for m in v.members {
                    if let Some(i) = &m.group_instance_id {
                        g.static_members.insert(i.clone(), m.member_id.clone());
                    }
                    g.members.insert(
                        m.member_id.clone(),
                        Member {
                            member_id: m.member_id,
                            group_instance_id: m.group_instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout_ms: m.session_timeout_ms,
                            rebalance_timeout_ms: m.rebalance_timeout_ms,
                            protocols: vec![(protocol.clone(), m.subscription)],
                            assignment: m.assignment,
                            last_heartbeat_ms: now,
                            awaiting_join: None,
                            awaiting_sync: None,
                        },
                    );
                }
                g.state = if g.members.is_empty() { State::Empty } else { State::Stable };
            }
        }
    }
}

/// Topics in a consumer-protocol subscription (version i16, then an array of
/// strings). Returns nothing for metadata it cannot read.
pub fn consumer_subscription(meta: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if meta.len() < 6 {
        return out;
    }
    let n = i32::from_be_bytes([meta[2], meta[3], meta[4], meta[5]]);
    let mut at = 6usize;
    for _ in 0..n.max(0) {
        let Some(len) = meta.get(at..at + 2).map(|b| i16::from_be_bytes([b[0], b[1]])) else {
            break;
        };
        if len < 0 {
            break;
        }
        let Some(s) = meta.get(at + 2..at + 2 + len as usize) else {
            break;
        };
        out.push(String::from_utf8_lossy(s).into_owned());
        at += 2 + len as usize;
    }
    out
}
