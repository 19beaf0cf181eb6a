//! Runs the group coordinator state machine against real storage.
//!
//! The coordinator (`strom-coordinator`) decides; this module does the I/O:
//! - appends the records it emits to `__consumer_offsets` (one batch per
//!   partition), inside the coordinator lock so the log order is the decision
//!   order;
//! - fsyncs those partitions (group commit, outside the lock);
//! - then delivers the answers to the JoinGroup/SyncGroup requests waiting on
//!   oneshot channels, and returns the caller's own answer.
//!
//! At start-up it replays `__consumer_offsets` into the coordinator. A
//! background tick drives session expiry, rebalance timeouts and offset retention.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use strom_coordinator::group::{Output, SyncResponse};
use strom_coordinator::records::GroupRecord;
use strom_coordinator::{GroupConfig, GroupCoordinator, Token};
use strom_protocol::batch::BatchIter;
use strom_protocol::compression::Codec;
use strom_protocol::records::{decode_batch, BatchBuilder, Record};
use strom_storage::Log;
use tokio::sync::oneshot;

pub use strom_coordinator::group::JoinResponse;

use crate::config::BrokerConfig;
use crate::replica::NewTopic;
use crate::server::Broker;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

enum Waiter {
    Join(oneshot::Sender<JoinResponse>),
    Sync(oneshot::Sender<SyncResponse>),
}

pub struct GroupManager {
    coord: Mutex<GroupCoordinator>,
    waiting: Mutex<HashMap<Token, Waiter>>,
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

impl GroupManager {
    pub fn new(config: GroupConfig) -> Self {
        GroupManager {
            coord: Mutex::new(GroupCoordinator::new(config)),
            waiting: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
        }
    }

    /// The coordinator, for read-only questions (describe, list, fetch offsets).
    pub fn lock(&self) -> MutexGuard<'_, GroupCoordinator> {
        self.coord.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<Token, Waiter>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn join_token(&self) -> (Token, oneshot::Receiver<JoinResponse>) {
        let t = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(t, Waiter::Join(tx));
        (t, rx)
    }

    pub fn sync_token(&self) -> (Token, oneshot::Receiver<SyncResponse>) {
        let t = self.next_token.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(t, Waiter::Sync(tx));
        (t, rx)
    }

    /// Runs one coordinator step, appends its records, and returns what must be
    /// flushed before the answers go out.
    pub fn step<R>(&self, b: &Broker, f: impl FnOnce(&mut GroupCoordinator) -> (R, Output)) -> (R, Pending) {
        let mut coord = self.lock();
        let (r, out) = f(&mut coord);
        let logs = if out.records.is_empty() { Vec::new() } else { append_records(b, &out.records) };
        drop(coord);
        (r, Pending { logs, joins: out.joins, syncs: out.syncs })
    }

    /// Makes a step's records durable, then answers its waiters.
    pub async fn finish(&self, p: Pending) -> bool {
        let mut ok = true;
        for (log, end) in p.logs {
            if let Err(e) = log.flush_to(end).await {
                tracing::error!(error = %e, "__consumer_offsets flush failed");
                ok = false;
            }
        }
        let mut waiting = self.waiting();
        for (t, r) in p.joins {
            if let Some(Waiter::Join(tx)) = waiting.remove(&t) {
                let _ = tx.send(r);
            }
        }
        for (t, r) in p.syncs {
            if let Some(Waiter::Sync(tx)) = waiting.remove(&t) {
                let _ = tx.send(r);
            }
        }
        ok
    }

    pub async fn tick(&self, b: &Broker) {
        let now = strom_storage::now_ms();
        let ((), pending) = self.step(b, |c| ((), c.tick(now)));
        self.finish(pending).await;
    }

    /// Replays `__consumer_offsets` into the coordinator.
    pub fn load(&self, b: &Broker) {
        let image = b.metadata.image();
        let Some(topic) = image.topic(OFFSETS_TOPIC) else {
            return;
        };
        let now = strom_storage::now_ms();
        let mut coord = self.lock();
        let mut count = 0usize;
        for p in topic.partitions.keys() {
            let Some(log) = b.partition_log(OFFSETS_TOPIC, *p) else {
                continue;
            };
            let mut offset = log.log_start_offset();
            while offset < log.log_end_offset() {
                let read = match log.read(offset, 1 << 20) {
                    Ok(r) if !r.records.is_empty() => r,
                    _ => break,
                };
                for batch in BatchIter::new(&read.records) {
                    let Ok(batch) = batch else { break };
                    offset = batch.last_offset() + 1;
                    let Ok(records) = decode_batch(&batch, 64 << 20) else {
                        continue;
                    };
                    for r in records {
                        let Some(key) = r.key else { continue };
                        match GroupRecord::decode(&key, r.value.as_deref()) {
                            Ok(Some(rec)) => {
                                coord.load(rec, now);
                                count += 1;
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(partition = p, offset = r.offset, error = %e, "skipping unreadable group record")
                            }
                        }
                    }
                }
            }
        }
        tracing::info!(records = count, groups = coord.list().len(), "group state loaded");
    }
}

/// What a step left to do: flush these logs up to these offsets, then answer.
pub struct Pending {
    logs: Vec<(Arc<Log>, i64)>,
    joins: Vec<(Token, JoinResponse)>,
    syncs: Vec<(Token, SyncResponse)>,
}

/// Creates `__consumer_offsets` (compacted, `offsets.topic.num.partitions`) if it
/// does not exist yet, as Kafka does on the first group request.
pub fn ensure_offsets_topic(b: &Broker) -> bool {
    if b.metadata.image().topic(OFFSETS_TOPIC).is_some() {
        return true;
    }
    let t = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: b.config.int("offsets.topic.num.partitions").max(1) as i32,
        replication_factor: -1,
        assignments: BTreeMap::new(),
        configs: [("cleanup.policy".to_string(), "compact".to_string()), ("segment.bytes".to_string(), "104857600".to_string())].into(),
    };
    match b.create_topic(&t) {
        Ok(_) => true,
        Err(e) if e.code == strom_protocol::ErrorCode::TopicAlreadyExists => true,
        Err(e) => {
            tracing::error!(error = %e.message, "cannot create __consumer_offsets");
            false
        }
    }
}

fn append_records(b: &Broker, records: &[(i32, GroupRecord)]) -> Vec<(Arc<Log>, i64)> {
    if !ensure_offsets_topic(b) {
        return Vec::new();
    }
    let mut by_partition: BTreeMap<i32, BatchBuilder> = BTreeMap::new();
    let now = strom_storage::now_ms();
    for (p, r) in records {
        let (k, v) = r.encode();
        by_partition.entry(*p).or_insert_with(|| BatchBuilder::new(now)).push(Record {
            key: Some(Bytes::from(k)),
            value: v.map(Bytes::from),
            timestamp: now,
            ..Default::default()
        });
    }
    let mut out = Vec::new();
    for (p, builder) in by_partition {
        let Some(log) = b.partition_log(OFFSETS_TOPIC, p) else {
            tracing::error!(partition = p, "__consumer_offsets partition missing");
            continue;
        };
        let batch = match builder.build(Codec::None) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot build group record batch");
                continue;
            }
        };
        match log.append(batch) {
            Ok(info) => out.push((log, info.last_offset + 1)),
            Err(e) => tracing::error!(partition = p, error = %e, "cannot append group records"),
        }
    }
    out
}
