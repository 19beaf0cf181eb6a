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
//! Every method takes `now_ms` and returns an [`Output`]: records to append to
//! `__consumer_offsets` and the answers for waiting JoinGroup/SyncGroup requests.
//! The caller must make the records durable before delivering the answers.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use crate::errors::*;
use crate::records::{GroupRecord, GroupValue, MemberValue, OffsetValue};
use crate::{partition_for, Token};

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
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    rebalance_deadline_ms: i64,
    initial_delay: Option<(i64, i64)>,
    sync_deadline_ms: i64,
    pub state_timestamp_ms: i64,
}

impl Group {
    fn new(id: &str, now: i64) -> Group {
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
            rebalance_deadline_ms: 0,
            initial_delay: None,
            sync_deadline_ms: 0,
            state_timestamp_ms: now,
        }
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
                        assignment: m.assignment.clone(),
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

/// What a call produced: records to make durable, then answers to deliver.
#[derive(Debug, Default)]
pub struct Output {
    /// (`__consumer_offsets` partition, record)
    pub records: Vec<(i32, GroupRecord)>,
    pub joins: Vec<(Token, JoinResponse)>,
    pub syncs: Vec<(Token, SyncResponse)>,
}

pub struct GroupCoordinator {
    pub config: GroupConfig,
    groups: HashMap<String, Group>,
    next_member: u64,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator { config, groups: HashMap::new(), next_member: 0 }
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
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
        if req.session_timeout_ms < self.config.min_session_timeout_ms || req.session_timeout_ms > self.config.max_session_timeout_ms {
            respond_err(&mut out, INVALID_SESSION_TIMEOUT, &req.member_id);
            return out;
        }
        if !req.member_id.is_empty() && !self.groups.contains_key(&req.group_id) {
            respond_err(&mut out, UNKNOWN_MEMBER_ID, &req.member_id);
            return out;
        }
        let g = self.groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, now));
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
        let partition = partition_for(&req.group_id, self.config.offsets_partitions);
        if req.member_id.is_empty() {
            self.join_unknown(req, token, now, &mut out);
        } else {
            self.join_known(req, token, now, &mut out);
        }
        Self::fix_partitions(&mut out, partition);
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
        let partition = partition_for(&req.group_id, self.config.offsets_partitions);
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
                // The same member came back: hand it the current generation, no rebalance.
                let mut resp = Self::join_response(g, &new_id);
                resp.members.clear();
                out.joins.push((token, resp));
                out.records.push((partition, g.to_record()));
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
            let p = 0; // replaced by the caller's partition mapping
            out.records.push((p, g.to_record()));
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
        let partition = partition_for(&req.group_id, self.config.offsets_partitions);
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
                if g.leader.as_deref() == Some(req.member_id.as_str()) {
                    let given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = given.get(&m.member_id).cloned().unwrap_or_default();
                    }
                    g.set_state(State::Stable, now);
                    out.records.push((partition, g.to_record()));
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
            }
        }
        out
    }

    // ----- Heartbeat / LeaveGroup ------------------------------------------

    pub fn heartbeat(&mut self, group_id: &str, generation: i32, member_id: &str, instance: Option<&str>, now: i64) -> i16 {
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

    /// Removes members; returns a code per (member id, instance id) given.
    pub fn leave(&mut self, group_id: &str, members: &[(String, Option<String>)], now: i64) -> (Vec<i16>, Output) {
        let mut out = Output::default();
        let partition = partition_for(group_id, self.config.offsets_partitions);
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
        Self::fix_partitions(&mut out, partition);
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

    /// Group records from rebalances are written to the group's partition.
    fn fix_partitions(out: &mut Output, partition: i32) {
        for (p, _) in out.records.iter_mut() {
            *p = partition;
        }
    }

    // ----- Timers ----------------------------------------------------------

    /// Expires sessions, pending member ids and rebalance deadlines; ends the
    /// initial delay; expires offsets of empty groups.
    pub fn tick(&mut self, now: i64) -> Output {
        let mut out = Output::default();
        let retention = self.config.offsets_retention_ms;
        let parts = self.config.offsets_partitions;
        let mut dead = Vec::new();
        for g in self.groups.values_mut() {
            let mut o = Output::default();
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
                Self::remove_member(g, &id, now, &mut o);
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
                Self::complete_join(g, now, &mut o);
            } else {
                Self::try_complete_join(g, now, &mut o);
            }
            if g.state == State::CompletingRebalance && now >= g.sync_deadline_ms {
                let late: Vec<String> = g.members.values().filter(|m| m.awaiting_sync.is_none()).map(|m| m.member_id.clone()).collect();
                for id in late {
                    Self::remove_member(g, &id, now, &mut o);
                }
            }
            if g.state == State::Empty {
                let stale: Vec<(String, i32)> = g
                    .offsets
                    .iter()
                    .filter(|(_, v)| v.commit_timestamp.max(g.state_timestamp_ms) + retention <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                for (topic, partition) in stale {
                    g.offsets.remove(&(topic.clone(), partition));
                    o.records.push((0, GroupRecord::Offset { group: g.id.clone(), topic, partition, value: None }));
                }
                if g.offsets.is_empty() && g.members.is_empty() && g.generation > 0 && g.state_timestamp_ms + retention <= now {
                    o.records.push((0, GroupRecord::Group { group: g.id.clone(), value: None }));
                    dead.push(g.id.clone());
                }
            }
            Self::fix_partitions(&mut o, partition_for(&g.id, parts));
            out.records.extend(o.records);
            out.joins.extend(o.joins);
            out.syncs.extend(o.syncs);
        }
        for id in dead {
            self.groups.remove(&id);
        }
        out
    }

    // ----- Offsets ---------------------------------------------------------

    /// Validates and records commits; returns an error code per entry.
    pub fn commit(&mut self, req: CommitRequest, now: i64) -> (Vec<i16>, Output) {
        let mut out = Output::default();
        let n = req.offsets.len();
        let simple = req.generation < 0 && req.member_id.is_empty();
        let max_meta = self.config.offset_metadata_max_bytes;
        let partition = partition_for(&req.group_id, self.config.offsets_partitions);
        if req.group_id.is_empty() {
            return (vec![INVALID_GROUP_ID; n], out);
        }
        if simple {
            let g = self.groups.entry(req.group_id.clone()).or_insert_with(|| Group::new(&req.group_id, now));
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
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return (vec![UNKNOWN_MEMBER_ID; n], out);
        };
        let mut codes = Vec::with_capacity(n);
        for (topic, p, offset, epoch, metadata) in req.offsets {
            let metadata = metadata.unwrap_or_default();
            if metadata.len() > max_meta {
                codes.push(OFFSET_METADATA_TOO_LARGE);
                continue;
            }
            let value = OffsetValue { offset, leader_epoch: epoch, metadata, commit_timestamp: now };
            g.offsets.insert((topic.clone(), p), value.clone());
            out.records.push((partition, GroupRecord::Offset { group: req.group_id.clone(), topic, partition: p, value: Some(value) }));
            codes.push(NONE);
        }
        (codes, out)
    }

    /// Committed offsets of a group: all of them, or the partitions asked for
    /// (offset -1 where nothing is committed).
    pub fn fetch_offsets(&self, group_id: &str, wanted: Option<&[(String, Vec<i32>)]>) -> Vec<(String, i32, Option<OffsetValue>)> {
        let g = self.groups.get(group_id);
        match wanted {
            None => g.map(|g| g.offsets.iter().map(|((t, p), v)| (t.clone(), *p, Some(v.clone()))).collect()).unwrap_or_default(),
            Some(list) => list
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p, g.and_then(|g| g.offsets.get(&(t.clone(), *p)).cloned()))))
                .collect(),
        }
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

    /// (group id, protocol type, state) of every group.
    pub fn list(&self) -> Vec<(String, String, State)> {
        let mut v: Vec<_> = self.groups.values().map(|g| (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn delete_group(&mut self, group_id: &str) -> (i16, Output) {
        let mut out = Output::default();
        let partition = partition_for(group_id, self.config.offsets_partitions);
        let Some(g) = self.groups.get(group_id) else {
            return (GROUP_ID_NOT_FOUND, out);
        };
        if !matches!(g.state, State::Empty | State::Dead) || !g.members.is_empty() {
            return (NON_EMPTY_GROUP, out);
        }
        for (t, p) in g.offsets.keys() {
            out.records
                .push((partition, GroupRecord::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p, value: None }));
        }
        out.records.push((partition, GroupRecord::Group { group: group_id.to_string(), value: None }));
        self.groups.remove(group_id);
        (NONE, out)
    }

    /// Deletes committed offsets; a partition of a topic that an active consumer
    /// group subscribes to gets GROUP_SUBSCRIBED_TO_TOPIC.
    pub fn delete_offsets(&mut self, group_id: &str, partitions: &[(String, i32)]) -> (i16, Vec<i16>, Output) {
        let mut out = Output::default();
        let partition = partition_for(group_id, self.config.offsets_partitions);
        let Some(g) = self.groups.get_mut(group_id) else {
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
            if g.offsets.remove(&(t.clone(), *p)).is_some() {
                out.records
                    .push((partition, GroupRecord::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p, value: None }));
            }
            codes.push(NONE);
        }
        (NONE, codes, out)
    }

    // ----- Loading ---------------------------------------------------------

    /// Applies one replayed record. Members of a loaded group get a fresh session
    /// from `now`, so consumers that are gone expire after their session timeout.
    pub fn load(&mut self, record: GroupRecord, now: i64) {
        match record {
            GroupRecord::Offset { group, topic, partition, value } => match value {
                Some(v) => {
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now));
                    g.offsets.insert((topic, partition), v);
                }
                None => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            GroupRecord::Group { group, value: None } => {
                self.groups.remove(&group);
            }
            GroupRecord::Group { group, value: Some(v) } => {
                let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now));
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
