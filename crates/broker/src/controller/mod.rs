//! The controller: a pure step on the active quorum leader.
//!
//! `Controller::step(image, request, now)` → (records to propose, answer). It does
//! no I/O and reads no clock; the service (`service.rs`) proposes the records
//! through the quorum and sends the answer once they are committed. Broker
//! sessions (last heartbeat) are the controller's only soft state: they are not
//! in the metadata log, and a newly active controller starts every session afresh,
//! as Kafka's does.
//!
//! What it decides: broker registration, heartbeats, fencing and controlled
//! shutdown; topic creation with replica placement; partition additions; topic
//! deletion; config changes; producer-id blocks; ISR changes asked for by
//! partition leaders (AlterPartition); leader election (on fencing and
//! unfencing, ElectLeaders, and the periodic leader rebalance of
//! `auto.leader.rebalance.enable`); partition reassignments; replicas in a
//! broker's offline log directories, which lose leadership, leave ISRs (but
//! as the last member) and cannot be elected while the broker reports them.
//!
//! ISR rules, as Kafka's KRaft controller: a broker that is fenced (session
//! lapsed, asked to be fenced, shutting down, or re-registered as a new
//! incarnation) leaves every ISR it is in, except where it is the last member
//! (the ISR is never empty). A partition whose leader is no longer live gets the
//! first live ISR member in replica order; with none, no leader (-1) unless the
//! topic allows unclean election (`unclean.leader.election.enable`), when the
//! first live replica leads and becomes the whole ISR. Unfencing a broker elects
//! leaders for partitions that have none. Each step writes at most one record
//! per partition: `leader_epoch` + 1 when the leader changes, `partition_epoch`
//! + 1 on every change.
//!
//! Reassignment, as KRaft's: starting one makes the replicas the target followed
//! by the original replicas that leave (`removing_replicas`), with the new ones in
//! `adding_replicas`; once every adding replica is in the ISR (and some in-sync
//! replica stays), the same record that says so completes it: the replicas become
//! the target, the removing ones leave the ISR, and a leader that left is replaced.

pub mod client;
pub mod listener;
pub mod placement;
pub mod service;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};
use strom_metadata::{MetadataImage, MetadataRecord, PartitionImage, TopicImage};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::config::{check_topic_config, ConfigError};

/// Producer ids handed to a broker per AllocateProducerIds, as Kafka's block size.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// A failed request: Kafka's code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: i16,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code: code.code(), message: message.into() }
    }
    /// A failure with a code `strom_protocol` does not name (replication and election codes).
    pub fn kafka(e: ResponseError, message: impl Into<String>) -> Self {
        Failure { code: e.code(), message: message.into() }
    }
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::from_code(self.code)
    }
}

/// A partition's leader and ISR with their epochs, as AlterPartition answers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

impl PartitionState {
    pub fn of(p: &PartitionImage) -> Self {
        PartitionState { leader: p.leader, leader_epoch: p.leader_epoch, isr: p.isr.clone(), partition_epoch: p.partition_epoch }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    /// -1: `num.partitions`.
    pub partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// A topic config change: set a value, or remove the override (`None`).
pub type ConfigChange = (String, Option<String>);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Register {
        id: i32,
        incarnation: Uuid,
        cluster_id: Option<String>,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    Heartbeat {
        id: i32,
        epoch: i64,
        metadata_offset: u64,
        want_fence: bool,
        want_shutdown: bool,
    },
    /// A broker's replicas (topic id, partition) in offline log directories:
    /// the whole set, sent whenever it differs from the image's.
    ReplicasOffline {
        id: i32,
        epoch: i64,
        replicas: Vec<(Uuid, i32)>,
    },
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        ids: Vec<Uuid>,
    },
    CreatePartitions {
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    },
    AlterTopicConfigs {
        topic: String,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    },
    AlterBrokerConfigs {
        node: Option<i32>,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    },
    AllocateProducerIds {
        id: i32,
        epoch: i64,
    },
    /// A partition's leader asks for a new ISR (Kafka's AlterPartition), naming the leader and
    /// partition epochs it knows.
    AlterPartition {
        broker: i32,
        broker_epoch: i64,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Starts (`Some(target replicas)`) or cancels (`None`) partition reassignments (Kafka's
    /// AlterPartitionReassignments), by topic id and partition.
    AlterReassignments {
        items: Vec<(Uuid, i32, Option<Vec<i32>>)>,
    },
    /// Kafka's ElectLeaders: `election_type` 0 is preferred, 1 unclean.
    ElectLeaders {
        election_type: i8,
        partitions: Vec<(Uuid, i32)>,
    },
    /// Answered by any voter, without a step.
    DescribeQuorum,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedTopic {
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Why the topic differs from what was asked (a default replication factor
    /// larger than the cluster), for the log.
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub error: i16,
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shutdown: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Answer {
    Register(Result<i64, Failure>),
    Heartbeat(HeartbeatAnswer),
    CreateTopics(Vec<Result<CreatedTopic, Failure>>),
    DeleteTopics(Vec<Result<(), Failure>>),
    Done(Result<(), Failure>),
    ProducerIds(Result<(i64, i64), Failure>),
    /// The partition's state after the change (or as it is, when the ISR asked for is the current one).
    AlterPartition(Result<PartitionState, Failure>),
    /// One result per item, in order.
    AlterReassignments(Vec<Result<(), Failure>>),
    /// One result per partition, in order.
    ElectLeaders(Vec<Result<(), Failure>>),
    /// Sent by a node that is not the active controller.
    NotController {
        leader: Option<i32>,
    },
    Quorum(service::QuorumInfo),
}

impl Answer {
    /// The same answer shape with every part failed with `f` (its records did not commit).
    pub fn failed(self, f: Failure) -> Answer {
        match self {
            Answer::Register(_) => Answer::Register(Err(f)),
            Answer::Heartbeat(mut h) => {
                h.error = f.code;
                Answer::Heartbeat(h)
            }
            Answer::CreateTopics(v) => Answer::CreateTopics(v.into_iter().map(|_| Err(f.clone())).collect()),
            Answer::DeleteTopics(v) => Answer::DeleteTopics(v.into_iter().map(|_| Err(f.clone())).collect()),
            Answer::Done(_) => Answer::Done(Err(f)),
            Answer::ProducerIds(_) => Answer::ProducerIds(Err(f)),
            Answer::AlterPartition(_) => Answer::AlterPartition(Err(f)),
            Answer::AlterReassignments(v) => Answer::AlterReassignments(v.into_iter().map(|_| Err(f.clone())).collect()),
            Answer::ElectLeaders(v) => Answer::ElectLeaders(v.into_iter().map(|_| Err(f.clone())).collect()),
            other @ (Answer::NotController { .. } | Answer::Quorum(_)) => other,
        }
    }
}

/// How often the tick looks for leaderless partitions without a metadata change.
const ELECT_RECHECK_MS: i64 = 5_000;

#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub session_timeout_ms: i64,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    /// `offsets.topic.replication.factor`, for `__consumer_offsets`.
    pub offsets_replication_factor: i16,
    /// The static `unclean.leader.election.enable`: topics without a setting of their own (nor a
    /// dynamic cluster default) follow it.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in milliseconds.
    pub leader_imbalance_check_interval_ms: i64,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_per_broker_percentage: i64,
    /// `max.broker.partitions` (KIP-578): partition replicas one broker may hold.
    pub max_broker_partitions: i64,
}

impl Default for ControllerConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        ControllerConfig {
            session_timeout_ms: 9000,
            num_partitions: 1,
            default_replication_factor: 1,
            offsets_replication_factor: 3,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
            max_broker_partitions: 200_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    epoch: i64,
    last_heartbeat: i64,
    /// A heartbeat of this epoch reached this controller (not just inherited at activation).
    heard: bool,
    /// The broker is caught up once its metadata offset reaches this.
    catch_up_to: u64,
}

pub struct Controller {
    config: ControllerConfig,
    sessions: BTreeMap<i32, Session>,
    /// Randomness handed in (topic ids); a simulation passes a fixed seed.
    seed: u64,
    /// When the next leader-imbalance check is due (soft state, like the sessions).
    next_balance: Option<i64>,
    /// The image offset and time of the last look for leaderless partitions:
    /// only a metadata change can make one electable, so the tick looks again
    /// after one (or every few seconds), not on every tick of every partition.
    last_elect: (u64, i64),
}

impl Controller {
    pub fn new(config: ControllerConfig, seed: u64) -> Self {
        Controller { config, sessions: BTreeMap::new(), seed, next_balance: None, last_elect: (u64::MAX, 0) }
    }

    /// This node just became the active controller: every registered broker gets a
    /// fresh session, so none is fenced for silence it had towards the old one.
    pub fn activate(&mut self, image: &MetadataImage, now: i64) {
        self.sessions =
            image.brokers.values().map(|b| (b.id, Session { epoch: b.epoch, last_heartbeat: now, heard: false, catch_up_to: 0 })).collect();
        self.next_balance = Some(now + self.config.leader_imbalance_check_interval_ms);
    }

    /// Records the first active controller writes: the cluster id.
    pub fn bootstrap(&self, image: &MetadataImage, cluster_id: impl FnOnce() -> String) -> Vec<MetadataRecord> {
        match image.cluster_id {
            Some(_) => Vec::new(),
            None => vec![MetadataRecord::ClusterId { id: cluster_id() }],
        }
    }

    pub fn step(&mut self, image: &MetadataImage, req: Request, now: i64) -> (Vec<MetadataRecord>, Answer) {
        match req {
            Request::Register { id, incarnation, cluster_id, host, port, rack } => {
                self.register(image, id, incarnation, cluster_id, host, port, rack, now)
            }
            Request::Heartbeat { id, epoch, metadata_offset, want_fence, want_shutdown } => {
                self.heartbeat(image, id, epoch, metadata_offset, want_fence, want_shutdown, now)
            }
            Request::ReplicasOffline { id, epoch, replicas } => {
                if image.brokers.get(&id).is_none_or(|b| b.epoch != epoch) {
                    let f = Failure::new(ErrorCode::StaleBrokerEpoch, format!("broker {id} epoch {epoch} is not its current registration"));
                    return (Vec::new(), Answer::Done(Err(f)));
                }
                let mut plan = Plan::new(image, &self.config);
                replicas_offline(&mut plan, id, epoch, replicas);
                (plan.finish(), Answer::Done(Ok(())))
            }
            Request::CreateTopics { topics, validate_only } => {
                let mut records = Vec::new();
                let mut answers = Vec::new();
                // Later topics in one request see the earlier ones (name collisions).
                let mut view = image.clone();
                for (i, t) in topics.iter().enumerate() {
                    match self.create_topic(&view, t, i as u64) {
                        Ok((recs, created)) => {
                            if !validate_only {
                                view = view.apply(&recs);
                                records.extend(recs);
                            }
                            answers.push(Ok(created));
                        }
                        Err(f) => answers.push(Err(f)),
                    }
                }
                (records, Answer::CreateTopics(answers))
            }
            Request::DeleteTopics { ids } => {
                let mut records = Vec::new();
                let answers = ids
                    .iter()
                    .map(|id| match image.topic_by_id(id) {
                        Some(_) => {
                            records.push(MetadataRecord::RemoveTopic { id: *id });
                            Ok(())
                        }
                        None => Err(Failure::new(ErrorCode::UnknownTopicId, "This server does not host this topic ID.")),
                    })
                    .collect();
                (records, Answer::DeleteTopics(answers))
            }
            Request::CreatePartitions { topic, count, assignments, validate_only } => {
                match self.add_partitions(image, &topic, count, assignments) {
                    Ok(recs) => (if validate_only { Vec::new() } else { recs }, Answer::Done(Ok(()))),
                    Err(f) => (Vec::new(), Answer::Done(Err(f))),
                }
            }
            Request::AlterTopicConfigs { topic, changes, validate_only } => {
                let result = existing(image, &topic).and_then(|t| {
                    for (k, v) in &changes {
                        if let Some(v) = v {
                            check_topic_config(k, v).map_err(|e| invalid_config(k, e))?;
                        } else if !crate::config::TOPIC_DEFS.iter().any(|(n, _, _)| n == k) {
                            return Err(invalid_config(k, ConfigError::Unknown(k.clone())));
                        }
                    }
                    Ok(changes
                        .iter()
                        .map(|(key, value)| MetadataRecord::TopicConfig { topic_id: t.id, key: key.clone(), value: value.clone() })
                        .collect())
                });
                match result {
                    Ok(recs) => (if validate_only { Vec::new() } else { recs }, Answer::Done(Ok(()))),
                    Err(f) => (Vec::new(), Answer::Done(Err(f))),
                }
            }
            Request::AlterBrokerConfigs { node, changes, validate_only } => {
                let mut check = Ok(());
                for (k, v) in &changes {
                    let Some(def) = crate::config::BROKER_DEFS.iter().find(|d| d.name == k) else {
                        check = Err(Failure::new(ErrorCode::InvalidConfig, format!("Unknown broker config name: {k}")));
                        break;
                    };
                    if !crate::config::is_dynamic(k) {
                        check = Err(Failure::new(ErrorCode::InvalidRequest, format!("Cannot update these configs dynamically: {k}")));
                        break;
                    }
                    if let Some(v) = v {
                        if let Err(e) = crate::config::check_value(k, def.kind, v) {
                            check = Err(Failure::new(ErrorCode::InvalidConfig, e.to_string()));
                            break;
                        }
                    }
                }
                if check.is_err() || validate_only {
                    return (Vec::new(), Answer::Done(check));
                }
                let recs = changes.into_iter().map(|(key, value)| MetadataRecord::BrokerConfig { node, key, value }).collect();
                (recs, Answer::Done(Ok(())))
            }
            Request::AllocateProducerIds { id, epoch } => {
                if image.brokers.get(&id).is_none_or(|b| b.epoch != epoch) {
                    return (Vec::new(), Answer::ProducerIds(Err(Failure::new(ErrorCode::StaleBrokerEpoch, "unknown broker epoch"))));
                }
                let start = image.next_producer_id.max(1000);
                (vec![MetadataRecord::ProducerIds { next: start + PRODUCER_ID_BLOCK }], Answer::ProducerIds(Ok((start, PRODUCER_ID_BLOCK))))
            }
            Request::AlterPartition { broker, broker_epoch, topic_id, partition, leader_epoch, partition_epoch, isr } => {
                let mut plan = Plan::new(image, &self.config);
                let answer = alter_partition(&mut plan, broker, broker_epoch, topic_id, partition, leader_epoch, partition_epoch, isr);
                (plan.finish(), Answer::AlterPartition(answer))
            }
            Request::AlterReassignments { items } => {
                let mut plan = Plan::new(image, &self.config);
                let answers =
                    items.into_iter().map(|(topic_id, partition, target)| reassign(&mut plan, topic_id, partition, target)).collect();
                (plan.finish(), Answer::AlterReassignments(answers))
            }
            Request::ElectLeaders { election_type, partitions } => {
                let mut plan = Plan::new(image, &self.config);
                let answers = partitions
                    .into_iter()
                    .map(|(topic_id, partition)| elect_leader(&mut plan, election_type, topic_id, partition))
                    .collect();
                (plan.finish(), Answer::ElectLeaders(answers))
            }
            Request::DescribeQuorum => (Vec::new(), Answer::Done(Ok(()))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        image: &MetadataImage,
        id: i32,
        incarnation: Uuid,
        cluster_id: Option<String>,
        host: String,
        port: u16,
        rack: Option<String>,
        now: i64,
    ) -> (Vec<MetadataRecord>, Answer) {
        if let (Some(ours), Some(theirs)) = (&image.cluster_id, &cluster_id) {
            if ours != theirs {
                let f = Failure::new(
                    ErrorCode::InconsistentClusterId,
                    format!("broker {id} belongs to cluster {theirs}, but this is cluster {ours}"),
                );
                return (Vec::new(), Answer::Register(Err(f)));
            }
        }
        if let Some(b) = image.brokers.get(&id) {
            if b.incarnation == incarnation && b.host == host && b.port == port && b.rack == rack {
                // A retried registration: same answer.
                self.sessions.insert(id, Session { epoch: b.epoch, last_heartbeat: now, heard: true, catch_up_to: image.offset });
                return (Vec::new(), Answer::Register(Ok(b.epoch)));
            }
            if b.incarnation != incarnation && !b.fenced {
                if let Some(s) = self.sessions.get(&id) {
                    // Refused only while the other incarnation is demonstrably alive: a session
                    // inherited by a new controller (e.g. this very node restarting) does not count.
                    if s.heard && s.epoch == b.epoch && now - s.last_heartbeat < self.config.session_timeout_ms {
                        let f = Failure::new(
                            ErrorCode::DuplicateBrokerRegistration,
                            format!("another broker with node.id {id} is registered and heartbeating"),
                        );
                        return (Vec::new(), Answer::Register(Err(f)));
                    }
                }
            }
        }
        let epoch = image.next_broker_epoch.max(1);
        let mut plan = Plan::new(image, &self.config);
        // The new registration starts fenced: the old incarnation leaves the ISRs (but the last
        // member) and its leaderships move, until this one is unfenced again.
        plan.push(MetadataRecord::RegisterBroker { id, epoch, incarnation, host, port, rack });
        fence_out(&mut plan, id);
        self.sessions.insert(id, Session { epoch, last_heartbeat: now, heard: true, catch_up_to: image.offset + 1 });
        (plan.finish(), Answer::Register(Ok(epoch)))
    }

    #[allow(clippy::too_many_arguments)]
    fn heartbeat(
        &mut self,
        image: &MetadataImage,
        id: i32,
        epoch: i64,
        metadata_offset: u64,
        want_fence: bool,
        want_shutdown: bool,
        now: i64,
    ) -> (Vec<MetadataRecord>, Answer) {
        let stale = |code: ErrorCode| HeartbeatAnswer { error: code.code(), is_caught_up: false, is_fenced: true, should_shutdown: false };
        let Some(b) = image.brokers.get(&id) else {
            return (Vec::new(), Answer::Heartbeat(stale(ErrorCode::BrokerIdNotRegistered)));
        };
        if b.epoch != epoch {
            return (Vec::new(), Answer::Heartbeat(stale(ErrorCode::StaleBrokerEpoch)));
        }
        let session = self.sessions.entry(id).or_insert(Session { epoch, last_heartbeat: now, heard: true, catch_up_to: 0 });
        session.epoch = epoch;
        session.last_heartbeat = now;
        session.heard = true;
        let caught_up = metadata_offset >= session.catch_up_to;
        let mut plan = Plan::new(image, &self.config);
        let mut fenced = b.fenced;
        let mut should_shutdown = false;
        if want_shutdown {
            if !b.shutting_down && !b.fenced {
                plan.push(MetadataRecord::BrokerShuttingDown { id, epoch });
            }
            // It leaves the ISRs and everything it led moves (or has no other replica to move to).
            fence_out(&mut plan, id);
            should_shutdown = true;
            self.sessions.remove(&id);
        } else if want_fence {
            if !b.fenced {
                plan.push(MetadataRecord::BrokerFence { id, epoch, fenced: true });
                fence_out(&mut plan, id);
                fenced = true;
            }
        } else if b.fenced && caught_up {
            plan.push(MetadataRecord::BrokerFence { id, epoch, fenced: false });
            elect_leaderless(&mut plan);
            fenced = false;
        }
        let records = plan.finish();
        (records, Answer::Heartbeat(HeartbeatAnswer { error: 0, is_caught_up: caught_up, is_fenced: fenced, should_shutdown }))
    }

    /// Fences brokers whose session lapsed and elects leaders where needed.
    pub fn tick(&mut self, image: &MetadataImage, now: i64) -> Vec<MetadataRecord> {
        let mut plan = Plan::new(image, &self.config);
        for b in image.brokers.values() {
            if b.fenced {
                continue;
            }
            let lapsed = match self.sessions.get(&b.id) {
                Some(s) if s.epoch == b.epoch => now - s.last_heartbeat >= self.config.session_timeout_ms,
                _ => {
                    // Unknown session (e.g. a broker shutting down): start one now.
                    self.sessions.insert(b.id, Session { epoch: b.epoch, last_heartbeat: now, heard: false, catch_up_to: 0 });
                    false
                }
            };
            if lapsed {
                plan.push(MetadataRecord::BrokerFence { id: b.id, epoch: b.epoch, fenced: true });
                fence_out(&mut plan, b.id);
            }
        }
        // Partitions that can get a leader now (e.g. unclean election was just allowed).
        let (offset, at) = self.last_elect;
        if offset != image.offset || !plan.records.is_empty() || now - at >= ELECT_RECHECK_MS {
            self.last_elect = (image.offset, now);
            elect_leaderless(&mut plan);
        }
        if self.config.auto_leader_rebalance {
            let interval = self.config.leader_imbalance_check_interval_ms.max(1);
            let due = *self.next_balance.get_or_insert(now + interval);
            if now >= due {
                self.next_balance = Some(now + interval);
                balance_leaders(&mut plan, self.config.leader_imbalance_per_broker_percentage);
            }
        }
        plan.finish()
    }

    fn create_topic(&self, image: &MetadataImage, t: &NewTopic, salt: u64) -> Result<(Vec<MetadataRecord>, CreatedTopic), Failure> {
        crate::replica::validate_topic_name(&t.name).map_err(|m| Failure::new(ErrorCode::InvalidTopicException, m))?;
        if image.topic(&t.name).is_some() {
            return Err(Failure::new(ErrorCode::TopicAlreadyExists, format!("Topic '{}' already exists.", t.name)));
        }
        // Only names with '.' or '_' can collide; compared without allocating.
        let same = |a: &str, b: &str| {
            a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y || matches!((x, y), (b'.', b'_') | (b'_', b'.')))
        };
        let may_collide = t.name.contains(['.', '_']);
        if let Some(other) = image.topics.keys().filter(|_| may_collide).find(|n| same(n, &t.name)) {
            return Err(Failure::new(
                ErrorCode::InvalidTopicException,
                format!("Topic '{}' collides with existing topic: {other}", t.name),
            ));
        }
        for (k, v) in &t.configs {
            check_topic_config(k, v).map_err(|e| invalid_config(k, e))?;
        }
        let live: Vec<_> = image.live_brokers().map(|b| (b.id, b.rack.clone())).collect();
        let mut note = None;
        let assignment: Vec<Vec<i32>> = if !t.assignments.is_empty() {
            if t.partitions != -1 || t.replication_factor != -1 {
                return Err(Failure::new(
                    ErrorCode::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set.",
                ));
            }
            for (i, (p, replicas)) in t.assignments.iter().enumerate() {
                if *p != i as i32 {
                    return Err(Failure::new(ErrorCode::InvalidReplicaAssignment, "partitions must be numbered 0..n-1"));
                }
                check_assignment(image, replicas)?;
            }
            t.assignments.values().cloned().collect()
        } else {
            if t.partitions == 0 || t.partitions < -1 {
                return Err(Failure::new(ErrorCode::InvalidPartitions, "Number of partitions must be larger than 0."));
            }
            if t.replication_factor == 0 || t.replication_factor < -1 {
                return Err(Failure::new(ErrorCode::InvalidReplicationFactor, "Replication factor must be larger than 0."));
            }
            let count = if t.partitions == -1 { self.config.num_partitions.max(1) } else { t.partitions };
            let internal = t.name == crate::groups::OFFSETS_TOPIC;
            let mut rf = match (t.replication_factor, internal) {
                (-1, true) => self.config.offsets_replication_factor,
                (-1, false) => self.config.default_replication_factor,
                (rf, _) => rf,
            };
            if t.replication_factor == -1 && rf as usize > live.len() && !live.is_empty() {
                // A default larger than the cluster: fall back rather than fail, and say so.
                let setting = if internal { "offsets.topic.replication.factor" } else { "default.replication.factor" };
                note = Some(format!(
                    "{setting} is {rf} but only {} broker(s) are live; topic '{}' gets replication factor {}",
                    live.len(),
                    t.name,
                    live.len()
                ));
                rf = live.len() as i16;
            }
            if live.is_empty() {
                return Err(Failure::new(
                    ErrorCode::InvalidReplicationFactor,
                    "Unable to replicate the partition: no broker is registered and unfenced.",
                ));
            }
            if rf as usize > live.len() {
                return Err(Failure::new(
                    ErrorCode::InvalidReplicationFactor,
                    format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.", live.len()),
                ));
            }
            let seed = hash_name(&t.name).wrapping_add(salt);
            placement::place(&live, count, rf as usize, 0, seed)
        };
        self.check_budget(image, &assignment)?;
        let id = uuid_from(image, &t.name, salt ^ self.seed);
        let mut records = vec![MetadataRecord::Topic { name: t.name.clone(), id }];
        for (k, v) in &t.configs {
            records.push(MetadataRecord::TopicConfig { topic_id: id, key: k.clone(), value: Some(v.clone()) });
        }
        let rf = assignment.first().map(|r| r.len()).unwrap_or(0) as i16;
        for (p, replicas) in assignment.iter().enumerate() {
            records.push(new_partition(image, id, p as i32, replicas.clone()));
        }
        Ok((records, CreatedTopic { id, partitions: assignment.len() as i32, replication_factor: rf, note }))
    }

    fn add_partitions(
        &self,
        image: &MetadataImage,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
    ) -> Result<Vec<MetadataRecord>, Failure> {
        let topic = existing(image, name)?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            let msg = if count == current {
                format!("Topic already has {current} partitions.")
            } else {
                format!("Topic currently has {current} partitions, which is higher than the requested {count}.")
            };
            return Err(Failure::new(ErrorCode::InvalidPartitions, msg));
        }
        // The replication factor a reassignment in progress leads to, not its interim one.
        let rf = topic.partitions.values().next().map(|p| p.target_replicas().len()).unwrap_or(1);
        let assignment = match assignments {
            Some(a) => {
                if a.len() as i32 != count - current {
                    return Err(Failure::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!("Increasing the number of partitions by {} but {} assignments provided.", count - current, a.len()),
                    ));
                }
                for r in &a {
                    check_assignment(image, r)?;
                }
                a
            }
            None => {
                let live: Vec<_> = image.live_brokers().map(|b| (b.id, b.rack.clone())).collect();
                if rf > live.len() {
                    return Err(Failure::new(
                        ErrorCode::InvalidReplicationFactor,
                        format!("Unable to replicate the partition {rf} time(s): only {} broker(s) are registered.", live.len()),
                    ));
                }
                placement::place(&live, count - current, rf, current, hash_name(name))
            }
        };
        self.check_budget(image, &assignment)?;
        Ok(assignment.into_iter().enumerate().map(|(i, replicas)| new_partition(image, topic.id, current + i as i32, replicas)).collect())
    }

    /// Refuses new partitions that would put more than `max.broker.partitions`
    /// replicas on some broker, before anything is written: a request takes
    /// effect whole or not at all.
    fn check_budget(&self, image: &MetadataImage, assignment: &[Vec<i32>]) -> Result<(), Failure> {
        let max = self.config.max_broker_partitions.max(0) as usize;
        let mut adding: BTreeMap<i32, usize> = BTreeMap::new();
        for r in assignment.iter().flatten() {
            *adding.entry(*r).or_default() += 1;
        }
        let mut held: BTreeMap<i32, usize> = adding.keys().map(|b| (*b, 0)).collect();
        for t in image.topics.values() {
            for p in t.partitions.values() {
                for r in &p.replicas {
                    if let Some(n) = held.get_mut(r) {
                        *n += 1;
                    }
                }
            }
        }
        for (broker, add) in adding {
            let now = held.get(&broker).copied().unwrap_or(0);
            if now + add > max {
                return Err(Failure::new(
                    ErrorCode::PolicyViolation,
                    format!(
                        "Refused: {add} new partition replica(s) on broker {broker}, which holds {now}, would exceed max.broker.partitions = {max}. Nothing was created."
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A new partition: the live replicas are in sync (all of them when none is live), the first leads.
fn new_partition(image: &MetadataImage, topic_id: Uuid, partition: i32, replicas: Vec<i32>) -> MetadataRecord {
    let live: Vec<i32> = replicas.iter().copied().filter(|r| image.is_live(*r)).collect();
    let leader = live.first().copied().unwrap_or(-1);
    let isr = if live.is_empty() { replicas.clone() } else { live };
    MetadataRecord::Partition {
        topic_id,
        partition,
        isr,
        replicas,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

fn check_assignment(image: &MetadataImage, replicas: &[i32]) -> Result<(), Failure> {
    if replicas.is_empty() {
        return Err(Failure::new(ErrorCode::InvalidReplicaAssignment, "a partition needs at least one replica"));
    }
    let mut seen = replicas.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != replicas.len() {
        return Err(Failure::new(ErrorCode::InvalidReplicaAssignment, format!("replica assignment {replicas:?} repeats a broker")));
    }
    if let Some(b) = replicas.iter().find(|b| !image.brokers.contains_key(b)) {
        return Err(Failure::new(
            ErrorCode::InvalidReplicaAssignment,
            format!("replica assignment {replicas:?} names broker {b}, which is not registered"),
        ));
    }
    Ok(())
}

fn existing<'a>(image: &'a MetadataImage, name: &str) -> Result<&'a std::sync::Arc<TopicImage>, Failure> {
    image.topic(name).ok_or_else(|| Failure::new(ErrorCode::UnknownTopicOrPartition, format!("The topic '{name}' does not exist.")))
}

/// The topic config (or dynamic cluster default) that allows electing an out-of-sync replica.
pub const UNCLEAN_ELECTION: &str = "unclean.leader.election.enable";

/// Whether `t` allows unclean election: its own setting, else the dynamic cluster default, else
/// `default` (the static broker setting).
fn unclean_allowed(image: &MetadataImage, t: &TopicImage, default: bool) -> bool {
    t.configs
        .get(UNCLEAN_ELECTION)
        .or_else(|| image.broker_configs.get(&None).and_then(|c| c.get(UNCLEAN_ELECTION)))
        .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
}

/// The partition changes of one step. Each change is made to `view` at once, so that later
/// decisions in the step see it; [`Plan::finish`] then writes one record per changed partition,
/// with its epochs counted from the image the step started from.
struct Plan<'a> {
    base: &'a MetadataImage,
    view: MetadataImage,
    /// The static `unclean.leader.election.enable`.
    unclean_default: bool,
    /// Records other than partition changes, in order.
    records: Vec<MetadataRecord>,
    changed: BTreeSet<(Uuid, i32)>,
}

impl<'a> Plan<'a> {
    fn new(base: &'a MetadataImage, config: &ControllerConfig) -> Self {
        Plan { base, view: base.clone(), unclean_default: config.unclean_leader_election, records: Vec::new(), changed: BTreeSet::new() }
    }

    fn unclean(&self, t: &TopicImage) -> bool {
        unclean_allowed(&self.view, t, self.unclean_default)
    }

    /// A record other than a partition change (a broker's registration or fencing), applied at once.
    fn push(&mut self, r: MetadataRecord) {
        self.view = self.view.apply(std::slice::from_ref(&r));
        self.records.push(r);
    }

    /// Sets a partition's next replicas, leader and ISR (completing its reassignment if that is
    /// now done); its epochs are settled by [`Plan::settled`].
    fn set(&mut self, topic_id: Uuid, next: PartitionImage) {
        let Some(name) = self.view.topic_names.get(&topic_id).cloned() else { return };
        let Some(t) = self.view.topics.get(&name) else { return };
        let next = complete_reassignment(&self.view, self.unclean(t), topic_id, next);
        let Some(t) = self.view.topics.get_mut(&name) else { return };
        self.changed.insert((topic_id, next.partition));
        Arc::make_mut(t).partitions.insert(next.partition, next);
    }

    /// A partition as it will be once this step's records apply: `leader_epoch` + 1 if its leader
    /// changed, `partition_epoch` + 1 if anything did.
    fn settled(&self, topic_id: Uuid, partition: i32) -> Option<PartitionImage> {
        let now = self.view.topic_by_id(&topic_id)?.partitions.get(&partition)?;
        let mut next = now.clone();
        if let Some(was) = self.base.topic_by_id(&topic_id).and_then(|t| t.partitions.get(&partition)) {
            let same = was.replicas == now.replicas
                && was.leader == now.leader
                && was.isr == now.isr
                && was.adding_replicas == now.adding_replicas
                && was.removing_replicas == now.removing_replicas;
            if same {
                return Some(was.clone());
            }
            next.leader_epoch = was.leader_epoch + i32::from(now.leader != was.leader);
            next.partition_epoch = was.partition_epoch + 1;
        }
        Some(next)
    }

    fn finish(self) -> Vec<MetadataRecord> {
        let mut out = self.records.clone();
        for (topic_id, partition) in &self.changed {
            let Some(next) = self.settled(*topic_id, *partition) else { continue };
            let unchanged = self.base.topic_by_id(topic_id).and_then(|t| t.partitions.get(partition)) == Some(&next);
            if !unchanged {
                out.push(next.to_record(*topic_id));
            }
        }
        out
    }
}

/// `gone` is no longer live: it leaves every ISR it is in (unless it is the last member), and the
/// partitions it led get another leader, or none.
fn fence_out(plan: &mut Plan, gone: i32) {
    let mut todo = Vec::new();
    for t in plan.view.topics.values() {
        let unclean = plan.unclean(t);
        for p in t.partitions.values() {
            if p.isr.contains(&gone) || p.leader == gone {
                todo.push((t.id, reelect(&plan.view, unclean, t.id, p, Some(gone))));
            }
        }
    }
    for (topic_id, next) in todo {
        plan.set(topic_id, next);
    }
}

/// A broker's report of its replicas in offline log directories:
/// when it differs from the image, the new set is recorded; each newly offline
/// replica leaves the ISR (unless it is the last member) and its leadership
/// moves; partitions without a leader get one where a replica came back.
fn replicas_offline(plan: &mut Plan, id: i32, epoch: i64, reported: Vec<(Uuid, i32)>) {
    let reported: BTreeSet<(Uuid, i32)> = reported
        .into_iter()
        .filter(|(t, p)| plan.view.topic_by_id(t).is_some_and(|t| t.partitions.get(p).is_some_and(|p| p.replicas.contains(&id))))
        .collect();
    let Some(before) = plan.view.brokers.get(&id).map(|b| b.offline_replicas.clone()) else { return };
    if reported == before {
        return;
    }
    plan.push(MetadataRecord::BrokerReplicasOffline { id, epoch, replicas: reported.iter().copied().collect() });
    let mut todo = Vec::new();
    for (topic_id, partition) in reported.difference(&before) {
        let Some(t) = plan.view.topic_by_id(topic_id) else { continue };
        let Some(p) = t.partitions.get(partition) else { continue };
        todo.push((*topic_id, reelect(&plan.view, plan.unclean(t), *topic_id, p, Some(id))));
    }
    for (topic_id, next) in todo {
        plan.set(topic_id, next);
    }
    if before.difference(&reported).next().is_some() {
        elect_leaderless(plan);
    }
}

/// Elects a leader for every partition without a live one, where it can.
fn elect_leaderless(plan: &mut Plan) {
    let mut todo = Vec::new();
    for t in plan.view.topics.values() {
        let unclean = plan.unclean(t);
        for p in t.partitions.values() {
            if p.leader >= 0 && plan.view.can_lead(p.leader, t.id, p.partition) {
                continue;
            }
            let next = reelect(&plan.view, unclean, t.id, p, (p.leader >= 0).then_some(p.leader));
            if next != *p {
                todo.push((t.id, next));
            }
        }
    }
    for (topic_id, next) in todo {
        plan.set(topic_id, next);
    }
}

/// `p` once `gone` (if any) has left its ISR, where it stays only as the last member, and with a
/// live leader if it can have one: the current one if it is still live and in sync, else the first
/// live ISR member in replica order, else, when `unclean` allows, the first live replica, which
/// becomes the whole ISR; else no leader (-1). Epochs are left as they are.
fn reelect(image: &MetadataImage, unclean: bool, topic_id: Uuid, p: &PartitionImage, gone: Option<i32>) -> PartitionImage {
    let mut next = p.clone();
    if let Some(g) = gone {
        if next.isr.len() > 1 {
            next.isr.retain(|r| *r != g);
        }
    }
    let can_lead = |r: i32| Some(r) != gone && image.can_lead(r, topic_id, p.partition);
    if next.leader >= 0 && can_lead(next.leader) && next.isr.contains(&next.leader) {
        return next;
    }
    if let Some(l) = next.replicas.iter().copied().find(|r| next.isr.contains(r) && can_lead(*r)) {
        next.leader = l;
    } else if let Some(l) = next.replicas.iter().copied().find(|r| unclean && can_lead(*r)) {
        next.leader = l;
        next.isr = vec![l];
    } else {
        next.leader = -1;
    }
    next
}

/// Validates and applies an AlterPartition, in Kafka's order of checks.
#[allow(clippy::too_many_arguments)]
fn alter_partition(
    plan: &mut Plan,
    broker: i32,
    broker_epoch: i64,
    topic_id: Uuid,
    partition: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: Vec<i32>,
) -> Result<PartitionState, Failure> {
    let image = &plan.view;
    if image.brokers.get(&broker).is_none_or(|b| b.epoch != broker_epoch) {
        return Err(Failure::new(
            ErrorCode::StaleBrokerEpoch,
            format!("broker {broker} epoch {broker_epoch} is not its current registration"),
        ));
    }
    let Some(t) = image.topic_by_id(&topic_id) else {
        return Err(Failure::new(ErrorCode::UnknownTopicId, format!("no topic has id {topic_id}")));
    };
    let Some(p) = t.partitions.get(&partition) else {
        return Err(Failure::new(ErrorCode::UnknownTopicOrPartition, format!("topic {} has no partition {partition}", t.name)));
    };
    let name = format!("{}-{partition}", t.name);
    if p.leader != broker {
        return Err(Failure::new(
            ErrorCode::NotLeaderOrFollower,
            format!("broker {broker} is not the leader of {name} (leader {})", p.leader),
        ));
    }
    if leader_epoch < p.leader_epoch {
        return Err(Failure::new(
            ErrorCode::FencedLeaderEpoch,
            format!("leader epoch {leader_epoch} of {name} is older than the current {}", p.leader_epoch),
        ));
    }
    if leader_epoch > p.leader_epoch {
        return Err(Failure::new(
            ErrorCode::NotLeaderOrFollower,
            format!("leader epoch {leader_epoch} of {name} is newer than the controller's {}", p.leader_epoch),
        ));
    }
    if partition_epoch != p.partition_epoch {
        return Err(Failure::kafka(
            ResponseError::InvalidUpdateVersion,
            format!("partition epoch {partition_epoch} of {name} is not the current {}", p.partition_epoch),
        ));
    }
    let mut sorted = isr.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != isr.len() || !isr.contains(&p.leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
        return Err(Failure::new(
            ErrorCode::InvalidRequest,
            format!("ISR {isr:?} of {name} must name distinct replicas of {:?}, the leader {} among them", p.replicas, p.leader),
        ));
    }
    if let Some(r) = isr.iter().copied().find(|r| !p.isr.contains(r) && !image.can_lead(*r, topic_id, partition)) {
        return Err(Failure::kafka(
            ResponseError::IneligibleReplica,
            format!("replica {r} cannot join the ISR of {name}: it is not registered, or fenced, or shutting down"),
        ));
    }
    let mut current = p.isr.clone();
    current.sort_unstable();
    if current == sorted {
        return Ok(PartitionState::of(p));
    }
    let mut next = p.clone();
    next.isr = isr;
    plan.set(topic_id, next);
    let settled = plan.settled(topic_id, partition).ok_or_else(|| Failure::new(ErrorCode::UnknownServerError, "partition vanished"))?;
    Ok(PartitionState::of(&settled))
}

/// Completes `p`'s reassignment if it is done: every adding replica is in the ISR, and the ISR
/// keeps a member once the removing replicas leave it. Then the replicas are the target, the ISR
/// loses the removing replicas, and a leader that was removed is replaced by an in-sync target
/// replica (or none).
fn complete_reassignment(image: &MetadataImage, unclean: bool, topic_id: Uuid, p: PartitionImage) -> PartitionImage {
    if !p.is_reassigning() || p.adding_replicas.iter().any(|r| !p.isr.contains(r)) {
        return p;
    }
    let isr: Vec<i32> = p.isr.iter().copied().filter(|r| !p.removing_replicas.contains(r)).collect();
    if isr.is_empty() {
        return p;
    }
    let mut next = p.clone();
    next.replicas = p.target_replicas();
    next.isr = isr;
    next.adding_replicas.clear();
    next.removing_replicas.clear();
    reelect(image, unclean, topic_id, &next, None)
}

/// Starts (`Some(target)`) or cancels (`None`) one partition's reassignment. Both start from the
/// original replicas (those of a reassignment in progress less its adding ones): a new target
/// replaces the one in progress, and replicas that were being added for it and are not in the new
/// target leave the replicas and the ISR.
fn reassign(plan: &mut Plan, topic_id: Uuid, partition: i32, target: Option<Vec<i32>>) -> Result<(), Failure> {
    let Some(t) = plan.view.topic_by_id(&topic_id).cloned() else {
        return Err(Failure::new(ErrorCode::UnknownTopicOrPartition, format!("no topic has id {topic_id}")));
    };
    let Some(p) = t.partitions.get(&partition) else {
        return Err(Failure::new(ErrorCode::UnknownTopicOrPartition, format!("topic {} has no partition {partition}", t.name)));
    };
    let original: Vec<i32> = p.replicas.iter().copied().filter(|r| !p.adding_replicas.contains(r)).collect();
    let mut next = p.clone();
    match target {
        None if !p.is_reassigning() => {
            return Err(Failure::kafka(
                ResponseError::NoReassignmentInProgress,
                format!("no reassignment of {}-{partition} is in progress", t.name),
            ));
        }
        None => {
            next.replicas = original.clone();
            next.adding_replicas.clear();
            next.removing_replicas.clear();
        }
        Some(target) => {
            check_assignment(&plan.view, &target)?;
            if target == p.replicas && !p.is_reassigning() {
                return Ok(());
            }
            next.replicas = target.iter().copied().chain(original.iter().copied().filter(|r| !target.contains(r))).collect();
            next.adding_replicas = target.iter().copied().filter(|r| !original.contains(r)).collect();
            next.removing_replicas = original.iter().copied().filter(|r| !target.contains(r)).collect();
        }
    }
    next.isr.retain(|r| next.replicas.contains(r));
    if next.isr.is_empty() {
        // Only replicas that were being added were in sync: the original ones are all there is.
        next.isr = original.iter().copied().filter(|r| next.replicas.contains(r)).collect();
    }
    let unclean = plan.unclean(&t);
    let next = reelect(&plan.view, unclean, topic_id, &next, None);
    plan.set(topic_id, next);
    Ok(())
}

/// Kafka's ElectLeaders for one partition: 0 makes the preferred (first) replica the leader when
/// it is live and in sync; 1 elects a leader for a partition that has none, from outside the ISR
/// if need be.
fn elect_leader(plan: &mut Plan, election_type: i8, topic_id: Uuid, partition: i32) -> Result<(), Failure> {
    let Some(t) = plan.view.topic_by_id(&topic_id).cloned() else {
        return Err(Failure::new(ErrorCode::UnknownTopicOrPartition, format!("no topic has id {topic_id}")));
    };
    let Some(p) = t.partitions.get(&partition) else {
        return Err(Failure::new(ErrorCode::UnknownTopicOrPartition, format!("topic {} has no partition {partition}", t.name)));
    };
    let name = format!("{}-{partition}", t.name);
    let next = match election_type {
        0 => {
            let preferred = p.replicas.first().copied().unwrap_or(-1);
            if p.leader == preferred {
                return Err(Failure::kafka(ResponseError::ElectionNotNeeded, format!("{preferred} already leads {name}")));
            }
            if !plan.view.can_lead(preferred, topic_id, partition) || !p.isr.contains(&preferred) {
                return Err(Failure::kafka(
                    ResponseError::PreferredLeaderNotAvailable,
                    format!("the preferred leader {preferred} of {name} is not live and in sync"),
                ));
            }
            PartitionImage { leader: preferred, ..p.clone() }
        }
        1 => {
            if p.leader >= 0 && plan.view.can_lead(p.leader, topic_id, partition) {
                return Err(Failure::kafka(ResponseError::ElectionNotNeeded, format!("{name} has a leader, {}", p.leader)));
            }
            let next = reelect(&plan.view, true, topic_id, p, (p.leader >= 0).then_some(p.leader));
            if next.leader < 0 {
                return Err(Failure::kafka(ResponseError::EligibleLeadersNotAvailable, format!("no replica of {name} is live")));
            }
            next
        }
        other => return Err(Failure::new(ErrorCode::InvalidRequest, format!("unknown election type {other}"))),
    };
    plan.set(topic_id, next);
    Ok(())
}

/// Kafka's automatic leader rebalance: for each broker whose share of the partitions it is the
/// preferred (first) replica of but does not lead exceeds `max_percent`, those partitions go back
/// to it where it is live and in sync. Partitions being reassigned are left alone.
fn balance_leaders(plan: &mut Plan, max_percent: i64) {
    let mut counts: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for t in plan.view.topics.values() {
        for p in t.partitions.values().filter(|p| !p.is_reassigning()) {
            if let Some(preferred) = p.replicas.first() {
                let c = counts.entry(*preferred).or_default();
                c.0 += 1;
                c.1 += i64::from(p.leader != *preferred);
            }
        }
    }
    let imbalanced: BTreeSet<i32> =
        counts.into_iter().filter(|(_, (total, off))| *off * 100 > *total * max_percent).map(|(b, _)| b).collect();
    let mut todo = Vec::new();
    for t in plan.view.topics.values() {
        for p in t.partitions.values().filter(|p| !p.is_reassigning()) {
            let Some(preferred) = p.replicas.first().copied() else { continue };
            if imbalanced.contains(&preferred)
                && p.leader != preferred
                && plan.view.can_lead(preferred, t.id, p.partition)
                && p.isr.contains(&preferred)
            {
                todo.push((t.id, PartitionImage { leader: preferred, ..p.clone() }));
            }
        }
    }
    for (topic_id, next) in todo {
        plan.set(topic_id, next);
    }
}

/// A topic id derived from the image position and the name: deterministic for a
/// given step (so a replayed simulation makes the same ids), unique in practice.
fn uuid_from(image: &MetadataImage, name: &str, salt: u64) -> Uuid {
    let mut hi = hash_name(name) ^ image.offset.rotate_left(17) ^ salt.rotate_left(41);
    let mut lo = image.records.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hash_name(&format!("{name}/{}", image.offset));
    loop {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&hi.to_be_bytes());
        bytes[8..].copy_from_slice(&lo.to_be_bytes());
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        if !id.is_nil() && !image.topic_names.contains_key(&id) {
            return id;
        }
        hi = hi.wrapping_add(1);
        lo = lo.rotate_left(7);
    }
}

fn hash_name(s: &str) -> u64 {
    // FNV-1a: stable across processes and versions, unlike std's hasher.
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn invalid_config(key: &str, e: ConfigError) -> Failure {
    match e {
        ConfigError::Unknown(_) => Failure::new(ErrorCode::InvalidConfig, format!("Unknown topic config name: {key}")),
        other => Failure::new(ErrorCode::InvalidConfig, other.to_string()),
    }
}

#[cfg(test)]
mod tests;
