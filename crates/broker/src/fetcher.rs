//! Replica fetchers: one task per leader broker this node follows partitions of.
//!
//! Each round sends one Fetch (with this node's replica id) for every partition
//! following that leader, at the log end offset, with the latest local leader
//! epoch as `last_fetched_epoch`. The leader answers records, or the point where
//! the logs diverge; the follower then truncates there (never just to the high
//! watermark) and fetches again. Fetched batches are appended as they are: same
//! bytes, same offsets, same epochs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use crate::partition::{Applied, Fetched, Partition};
use crate::peer::PeerConn;
use crate::server::Broker;

/// Fetch v12: replica id in the body, last fetched epoch and diverging epoch, topic names.
const FETCH_VERSION: i16 = 12;

/// What to do after one partition's answer.
enum Next {
    Fine,
    /// Leadership news is on its way; wait a little before asking again.
    Backoff,
}

pub async fn run(b: Arc<Broker>, leader: i32) {
    let backoff = Duration::from_millis(b.config.int("replica.fetch.backoff.ms").clamp(10, 60_000) as u64);
    let socket_timeout = Duration::from_millis(b.config.int("replica.socket.timeout.ms").clamp(100, 300_000) as u64);
    let mut conn: Option<PeerConn> = None;
    tracing::info!(leader, "replica fetcher started");
    loop {
        let parts = b.replicas.following(leader);
        if parts.is_empty() && b.replicas.fetcher_done(leader) {
            tracing::info!(leader, "replica fetcher stopped: nothing left to follow");
            return;
        }
        let image = b.metadata.image();
        let Some(addr) = image.brokers.get(&leader).map(|x| format!("{}:{}", x.host, x.port)) else {
            tokio::time::sleep(backoff).await;
            continue;
        };
        if conn.as_ref().is_some_and(|c| c.addr != addr) {
            conn = None;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match PeerConn::connect(&addr, socket_timeout).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::debug!(leader, %addr, error = %e, "cannot reach the leader");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
        };
        let wait_ms = b.config.int("replica.fetch.wait.max.ms").clamp(0, 30_000) as i32;
        let req = request(&b, &parts, wait_ms);
        let sent = tokio::time::timeout(
            socket_timeout + Duration::from_millis(wait_ms as u64),
            c.call::<_, FetchResponse>(ApiKey::Fetch, FETCH_VERSION, &req),
        )
        .await;
        let resp = match sent {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(leader, error = %e, "fetch from the leader failed");
                conn = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
            Err(_) => {
                tracing::debug!(leader, "fetch from the leader timed out");
                conn = None;
                continue;
            }
        };
        if resp.error_code != 0 {
            tracing::warn!(leader, error = resp.error_code, "fetch refused by the leader");
            tokio::time::sleep(backoff).await;
            continue;
        }
        let by_key: HashMap<(String, i32), Arc<Partition>> = parts.into_iter().map(|(p, _)| ((p.topic.clone(), p.index), p)).collect();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut back_off = false;
            let mut appended = false;
            for t in resp.responses {
                for pd in t.partitions {
                    let Some(p) = by_key.get(&(t.topic.to_string(), pd.partition_index)) else { continue };
                    match handle(p, leader, pd, &mut appended) {
                        Next::Fine => {}
                        Next::Backoff => back_off = true,
                    }
                }
            }
            (back_off, appended)
        })
        .await;
        match outcome {
            Ok((back_off, appended)) => {
                if appended {
                    b.appended.send_modify(|v| *v = v.wrapping_add(1));
                }
                if back_off {
                    tokio::time::sleep(backoff.min(Duration::from_millis(200))).await;
                }
            }
            Err(e) => {
                tracing::error!(leader, error = %e, "applying fetched data failed");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

fn request(b: &Broker, parts: &[(Arc<Partition>, i32)], wait_ms: i32) -> FetchRequest {
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(b.node_id);
    req.max_wait_ms = wait_ms;
    req.min_bytes = b.config.int("replica.fetch.min.bytes").clamp(0, i32::MAX as i64) as i32;
    req.max_bytes = b.config.int("replica.fetch.response.max.bytes").clamp(1, i32::MAX as i64) as i32;
    req.isolation_level = 0;
    req.session_id = 0;
    req.session_epoch = -1;
    let part_max = b.config.int("replica.fetch.max.bytes").clamp(1, i32::MAX as i64) as i32;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (p, epoch) in parts {
        let mut fp = FetchPartition::default();
        fp.partition = p.index;
        fp.current_leader_epoch = *epoch;
        fp.fetch_offset = p.log().log_end_offset();
        fp.last_fetched_epoch = p.log().latest_epoch().unwrap_or(-1);
        fp.log_start_offset = p.log().log_start_offset();
        fp.partition_max_bytes = part_max;
        match topics.last_mut() {
            Some(t) if t.topic.as_str() == p.topic => t.partitions.push(fp),
            _ => {
                let mut t = FetchTopic::default();
                t.topic = TopicName(StrBytes::from_string(p.topic.clone()));
                t.partitions.push(fp);
                topics.push(t);
            }
        }
    }
    req.topics = topics;
    req
}

/// Applies one partition's answer while the replica still follows `leader` at the
/// epoch it fetched with. Blocking disk work.
fn handle(p: &Partition, leader: i32, pd: PartitionData, appended: &mut bool) -> Next {
    let Some((_, epoch)) = p.following().filter(|(l, _)| *l == leader) else { return Next::Fine };
    let diverging = (pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0)
        .then_some((pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset));
    let records = pd.records.unwrap_or_default();
    let had_records = !records.is_empty();
    let f = Fetched {
        code: (pd.error_code != 0).then(|| ErrorCode::from_code(pd.error_code)),
        records,
        high_watermark: pd.high_watermark,
        log_start: pd.log_start_offset,
        diverging,
        ..Fetched::default()
    };
    match p.apply_fetched(leader, epoch, f) {
        Ok(Applied::Fine) => {
            *appended |= had_records;
            Next::Fine
        }
        Ok(Applied::Backoff) => Next::Backoff,
        Err(e) => {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "replica append failed");
            Next::Backoff
        }
    }
}
