//! Fetch (key 1): reads stored batches as they are, with long polling and
//! incremental fetch sessions.
//!
//! - Honours `max_wait_ms` and `min_bytes`: if the first read yields fewer than
//!   `min_bytes`, it waits for an append (or the deadline) and reads again.
//! - `max_bytes` bounds the response and `partition_max_bytes` each partition;
//!   the first partition with data always gets at least one whole batch (KIP-74).
//! - Sessions (KIP-227) are planned in [`crate::fetch_session`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use strom_protocol::ErrorCode;
use strom_storage::StorageError;
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
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: FetchRequest) -> Outcome {
    let image = b.metadata.image();
    let by_id = reply.version >= 13;
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
    // Reads run on the blocking pool: a slow disk must not stall the runtime's threads.
    let read = move |b: &Arc<Broker>, plan: &Arc<Plan>| {
        let (b, plan) = (b.clone(), plan.clone());
        async move { tokio::task::spawn_blocking(move || read_all(&b, &plan, max_bytes)).await.unwrap_or_default() }
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
        let all = results.into_iter().chain(unknown.into_iter().map(|(key, topic_id, code)| PartResult {
            key,
            topic_id,
            code,
            hw: -1,
            log_start: -1,
            records: Bytes::new(),
        }));
        for r in all {
            let news = !r.records.is_empty() || r.code != ErrorCode::None;
            if !b.sessions.note_sent(plan.session_id, &r.key, r.hw, r.log_start, news, plan.incremental) {
                continue;
            }
            let mut pd = PartitionData::default();
            pd.partition_index = r.key.1;
            pd.error_code = r.code.code();
            pd.high_watermark = r.hw;
            pd.last_stable_offset = r.hw;
            pd.log_start_offset = r.log_start;
            pd.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
            pd.aborted_transactions = if read_committed { Some(Vec::new()) } else { None };
            pd.records = Some(r.records);
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
        reply.encode(&resp)
    }))
}

fn read_all(b: &Broker, plan: &Plan, max_bytes: usize) -> Vec<PartResult> {
    let image = b.metadata.image();
    let mut left = max_bytes;
    let mut out = Vec::with_capacity(plan.parts.len());
    let mut first = true;
    for (key, st) in &plan.parts {
        let mut r =
            PartResult { key: key.clone(), topic_id: st.topic_id, code: ErrorCode::None, hw: -1, log_start: -1, records: Bytes::new() };
        let topic = image.topic(&key.0);
        let log = match b.leader_log(&image, &key.0, key.1) {
            Ok(l) => l,
            Err(ErrorCode::UnknownTopicOrPartition) => {
                r.code = if st.topic_id.is_nil() { ErrorCode::UnknownTopicOrPartition } else { ErrorCode::UnknownTopicId };
                out.push(r);
                continue;
            }
            Err(code) => {
                r.code = code;
                out.push(r);
                continue;
            }
        };
        if let Some(t) = topic {
            r.topic_id = t.id;
        }
        let part_max = (st.max_bytes.max(0) as usize).min(left);
        // Once the response is full, later partitions are reported without data.
        let budget = if left == 0 && !first { 0 } else { part_max };
        let res = if budget == 0 && !first { Ok(None) } else { log.read(st.fetch_offset, budget.max(1)).map(Some) };
        match res {
            Ok(Some(info)) => {
                r.hw = info.high_watermark;
                r.log_start = info.log_start_offset;
                if !info.records.is_empty() {
                    first = false;
                    left = left.saturating_sub(info.records.len());
                }
                r.records = info.records;
            }
            Ok(None) => {
                r.hw = log.log_end_offset();
                r.log_start = log.log_start_offset();
            }
            Err(StorageError::OffsetOutOfRange { .. }) => r.code = ErrorCode::OffsetOutOfRange,
            Err(e) => {
                tracing::error!(topic = %key.0, partition = key.1, error = %e, "read failed");
                r.code = ErrorCode::KafkaStorageError;
            }
        }
        out.push(r);
    }
    out
}
