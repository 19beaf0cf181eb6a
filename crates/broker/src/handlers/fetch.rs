//! Fetch (key 1): reads stored batches as they are, with long polling and
//! incremental fetch sessions.
//!
//! - Honours `max_wait_ms` and `min_bytes`: if the first read yields fewer than
//!   `min_bytes`, it waits for an append (or the deadline) and reads again.
//! - `max_bytes` bounds the response and `partition_max_bytes` each partition;
//!   the first partition with data always gets at least one whole batch (KIP-74).
//! - Sessions (KIP-227) are planned in [`crate::fetch_session`].
//! - Consumers read up to the high watermark. A follower (a replica id >= 0)
//!   reads up to the log end; its fetch offset tells the leader how far it has
//!   replicated ([`crate::partition::Partition::follower_fetched`]).
//! - `current_leader_epoch` is checked (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH),
//!   and from v12 a `last_fetched_epoch` that the leader's log does not agree
//!   with gets the diverging epoch and its end offset instead of records.
//! - `isolation_level` 1 (read_committed) reads up to the last stable offset and
//!   lists the aborted transactions of the range, which the client drops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::fetch_session::{Key, Plan, Requested};
use crate::server::Broker;

/// Longest wait Strom allows a fetch, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

struct PartResult {
    key: Key,
    topic_id: Uuid,
    code: ErrorCode,
    hw: i64,
    log_start: i64,
    records: Bytes,
    /// (epoch, end offset) where the fetcher's log parts from ours.
    diverging: Option<(i32, i64)>,
    /// KIP-951: (leader, leader epoch) when this broker is not the leader.
    leader_hint: Option<(i32, i32)>,
    last_stable: i64,
    aborted: Vec<strom_storage::AbortedTxn>,
}

impl PartResult {
    fn new(key: Key, topic_id: Uuid) -> Self {
        PartResult {
            key,
            topic_id,
            code: ErrorCode::None,
            hw: -1,
            log_start: -1,
            records: Bytes::new(),
            diverging: None,
            leader_hint: None,
            last_stable: -1,
            aborted: Vec::new(),
        }
    }
}

/// A partition's leader-epoch fields from the request: (current_leader_epoch, last_fetched_epoch).
type Epochs = HashMap<Key, (i32, i32)>;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: FetchRequest) -> Outcome {
    let image = b.metadata.image();
    let by_id = reply.version >= 13;
    let replica = if reply.version >= 15 { req.replica_state.replica_id.0 } else { req.replica_id.0 };
    let mut epochs: Epochs = HashMap::new();
    let mut unknown: Vec<(Key, Uuid, ErrorCode)> = Vec::new();
    let mut requested: Vec<Requested> = Vec::new();
    for t in &req.topics {
        let name = if by_id {
            match image.topic_by_id(&t.topic_id) {
                Some(topic) => topic.name.clone(),
                None => {
                    for p in &t.partitions {
                        unknown.push(((String::new(), p.partition), t.topic_id, ErrorCode::UnknownTopicId));
                    }
                    continue;
                }
            }
        } else {
            t.topic.to_string()
        };
        for p in &t.partitions {
            let last_fetched = if reply.version >= 12 { p.last_fetched_epoch } else { -1 };
            epochs.insert((name.clone(), p.partition), (p.current_leader_epoch, last_fetched));
            requested.push(((name.clone(), p.partition), t.topic_id, p.fetch_offset, p.partition_max_bytes));
        }
    }
    let forgotten: Vec<Key> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|f| {
            let name = if by_id { image.topic_by_id(&f.topic_id).map(|t| t.name.clone()).unwrap_or_default() } else { f.topic.to_string() };
            f.partitions.iter().map(move |&p| (name.clone(), p))
        })
        .collect();
    let plan = match b.sessions.plan(req.session_id, req.session_epoch, requested, forgotten) {
        Ok(plan) => plan,
        Err(code) => {
            let mut resp = FetchResponse::default();
            resp.error_code = code.code();
            return reply.ready(&resp);
        }
    };
    let b = b.clone();
    let reply = reply.clone();
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if req.max_bytes <= 0 { i32::MAX as usize } else { req.max_bytes as usize };
    let read_committed = req.isolation_level == 1;
    let plan = Arc::new(plan);
    let epochs = Arc::new(epochs);
    // Reads run on the blocking pool: a slow disk must not stall the runtime's threads.
    let read = move |b: &Arc<Broker>, plan: &Arc<Plan>| {
        let (b, plan, epochs) = (b.clone(), plan.clone(), epochs.clone());
        async move {
            tokio::task::spawn_blocking(move || read_all(&b, &plan, &epochs, replica, max_bytes, read_committed)).await.unwrap_or_default()
        }
    };
    Outcome::Later(Box::pin(async move {
        let deadline = Instant::now() + wait;
        let mut appended = b.appended.subscribe();
        let results = loop {
            appended.borrow_and_update();
            let results = read(&b, &plan).await;
            let bytes: usize = results.iter().map(|r| r.records.len()).sum();
            let errors = results.iter().any(|r| r.code != ErrorCode::None);
            let now = Instant::now();
            if bytes >= min_bytes || errors || now >= deadline || bytes > 0 && min_bytes == 0 {
                break results;
            }
            if tokio::time::timeout(deadline - now, appended.changed()).await.is_err() {
                break read(&b, &plan).await;
            }
        };
        let mut resp = FetchResponse::default();
        resp.session_id = plan.session_id;
        let mut topics: Vec<FetchableTopicResponse> = Vec::new();
        let mut hinted: Vec<i32> = Vec::new();
        let image = b.metadata.image();
        let all = results
            .into_iter()
            .chain(unknown.into_iter().map(|(key, topic_id, code)| PartResult { code, ..PartResult::new(key, topic_id) }));
        for r in all {
            let news = !r.records.is_empty() || r.code != ErrorCode::None;
            if !b.sessions.note_sent(plan.session_id, &r.key, r.hw, r.log_start, news, plan.incremental) {
                continue;
            }
            let mut pd = PartitionData::default();
            pd.partition_index = r.key.1;
            pd.error_code = r.code.code();
            pd.high_watermark = r.hw;
            pd.last_stable_offset = if r.last_stable >= 0 { r.last_stable } else { r.hw };
            pd.log_start_offset = r.log_start;
            pd.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
            pd.aborted_transactions = read_committed.then(|| {
                r.aborted
                    .iter()
                    .map(|a| {
                        let mut x = AbortedTransaction::default();
                        x.producer_id = ProducerId(a.producer_id);
                        x.first_offset = a.first_offset;
                        x
                    })
                    .collect()
            });
            pd.records = Some(r.records);
            if let (Some((leader, epoch)), true) = (r.leader_hint, reply.version >= 12) {
                pd.current_leader.leader_id = kafka_protocol::messages::BrokerId(leader);
                pd.current_leader.leader_epoch = epoch;
                if !hinted.contains(&leader) {
                    hinted.push(leader);
                }
            }
            if let Some((epoch, end)) = r.diverging {
                pd.diverging_epoch.epoch = epoch;
                pd.diverging_epoch.end_offset = end;
            }
            let same = topics.last().is_some_and(|t| t.topic.as_str() == r.key.0 && t.topic_id == r.topic_id);
            if !same {
                let mut t = FetchableTopicResponse::default();
                t.topic = TopicName(s(r.key.0.clone()));
                t.topic_id = r.topic_id;
                topics.push(t);
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(pd);
            }
        }
        resp.responses = topics;
        if reply.version >= 16 {
            resp.node_endpoints = hinted
                .iter()
                .filter_map(|id| image.brokers.get(id))
                .map(|br| {
                    let mut e = kafka_protocol::messages::fetch_response::NodeEndpoint::default();
                    e.node_id = kafka_protocol::messages::BrokerId(br.id);
                    e.host = s(br.host.clone());
                    e.port = br.port as i32;
                    e.rack = br.rack.clone().map(s);
                    e
                })
                .collect();
        }
        reply.encode(&resp)
    }))
}

fn read_all(b: &Arc<Broker>, plan: &Plan, epochs: &Epochs, replica: i32, max_bytes: usize, read_committed: bool) -> Vec<PartResult> {
    let image = b.metadata.image();
    let mut left = max_bytes;
    let mut out = Vec::with_capacity(plan.parts.len());
    let mut first = true;
    let now = strom_storage::now_ms();
    let mut hw_moved = false;
    for (key, st) in &plan.parts {
        let mut r = PartResult::new(key.clone(), st.topic_id);
        let topic = image.topic(&key.0);
        let part = match b.leader_partition(&image, &key.0, key.1) {
            Ok(p) => p,
            Err(ErrorCode::UnknownTopicOrPartition) => {
                r.code = if st.topic_id.is_nil() { ErrorCode::UnknownTopicOrPartition } else { ErrorCode::UnknownTopicId };
                out.push(r);
                continue;
            }
            Err(code) => {
                r.code = code;
                if code == ErrorCode::NotLeaderOrFollower {
                    r.leader_hint = image.partition(&key.0, key.1).filter(|p| p.leader >= 0).map(|p| (p.leader, p.leader_epoch));
                }
                out.push(r);
                continue;
            }
        };
        if let Some(t) = topic {
            r.topic_id = t.id;
        }
        let (current_epoch, last_fetched) = epochs.get(key).copied().unwrap_or((-1, -1));
        let part_max = (st.max_bytes.max(0) as usize).min(left);
        // Once the response is full, later partitions are reported without data.
        let budget = if left == 0 && !first { None } else { Some(part_max) };
        let before = part.log().high_watermark();
        let (f, proposal) = part.serve_fetch(replica, st.fetch_offset, current_epoch, last_fetched, budget, read_committed, now);
        if let Some(proposal) = proposal {
            tokio::spawn(crate::replicas::propose(b.clone(), part.clone(), proposal));
        }
        hw_moved |= part.log().high_watermark() != before;
        r.code = f.code.unwrap_or(ErrorCode::None);
        r.hw = f.high_watermark;
        r.log_start = f.log_start;
        r.diverging = f.diverging;
        r.last_stable = f.last_stable_offset;
        r.aborted = f.aborted;
        if !f.records.is_empty() {
            first = false;
            left = left.saturating_sub(f.records.len());
        }
        r.records = f.records;
        out.push(r);
    }
    if hw_moved {
        // Consumers waiting on this partition may now see more.
        b.appended.send_modify(|v| *v = v.wrapping_add(1));
    }
    out
}
