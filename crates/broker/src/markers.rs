//! Transaction markers: writing them on this broker's partitions, and sending
//! them to the leaders of a transaction's partitions on behalf of the
//! transaction coordinator.
//!
//! The coordinator retries partitions that fail with a retriable code; a
//! partition that no longer exists (UNKNOWN_TOPIC_OR_PARTITION) needs no marker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use strom_protocol::ErrorCode;

use crate::groups::OFFSETS_TOPIC;
use crate::handlers::produce::storage_error_code;
use crate::partition::{AppendError, NotDurable};
use crate::peer::PeerConn;
use crate::server::Broker;

/// How long a marker waits for the in-sync replicas (Kafka's `request.timeout.ms`).
const MARKER_TIMEOUT: Duration = Duration::from_secs(30);
/// The WriteTxnMarkers version brokers send each other.
const PEER_VERSION: i16 = 1;

/// One transaction's outcome, as written to each of its partitions.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

/// Writes `marker` on each of `partitions` this broker leads: appended, fsynced
/// and on every in-sync replica before it answers NONE. Offsets committed in the
/// transaction become visible (or are dropped) once its `__consumer_offsets`
/// marker is in.
pub async fn write_local(b: &Arc<Broker>, marker: &Marker, partitions: Vec<(String, i32)>) -> Vec<((String, i32), ErrorCode)> {
    let image = b.metadata.image();
    let mut waits = Vec::with_capacity(partitions.len());
    for (topic, p) in partitions {
        let result = b.leader_partition(&image, &topic, p).and_then(|part| {
            match part.append_marker(marker.producer_id, marker.producer_epoch, marker.coordinator_epoch, marker.commit) {
                Ok((info, epoch)) => Ok((part, info.last_offset + 1, epoch)),
                Err(AppendError::Code(code)) => Err(code),
                Err(AppendError::NotEnough(..)) => Err(ErrorCode::NotEnoughReplicas),
                Err(AppendError::Storage(e)) => {
                    let code = storage_error_code(&e);
                    tracing::warn!(topic = %topic, partition = p, error = %e, "transaction marker refused");
                    Err(code)
                }
            }
        });
        let key = (topic, p);
        waits.push(async move {
            let code = match result {
                Err(code) => code,
                Ok((part, end, epoch)) => match part.durable(end, epoch, MARKER_TIMEOUT).await {
                    Ok(()) => ErrorCode::None,
                    Err(NotDurable::Flush(_)) => ErrorCode::KafkaStorageError,
                    Err(NotDurable::Replicate(code)) => code,
                },
            };
            (key, code)
        });
    }
    // Every marker is appended already; the waits (fsync, replication) progress
    // on their own, so awaiting them in turn costs no more than the slowest.
    let mut results = Vec::with_capacity(waits.len());
    for w in waits {
        results.push(w.await);
    }
    for ((topic, p), code) in &results {
        if *code == ErrorCode::None && topic == OFFSETS_TOPIC {
            b.groups.complete_txn(*p, marker.producer_id, marker.commit);
        }
    }
    results
}

/// Sends a transaction's marker to the leaders of `partitions` (this broker's
/// own are written directly) and returns each partition's code.
pub async fn send(
    b: &Arc<Broker>,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
    partitions: Vec<(String, i32)>,
) -> Vec<((String, i32), ErrorCode)> {
    let marker = Marker { producer_id, producer_epoch, coordinator_epoch, commit };
    let image = b.metadata.image();
    let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let mut out = Vec::with_capacity(partitions.len());
    for (topic, p) in partitions {
        match image.partition(&topic, p) {
            None => out.push(((topic, p), ErrorCode::UnknownTopicOrPartition)),
            Some(pi) if pi.leader < 0 => out.push(((topic, p), ErrorCode::LeaderNotAvailable)),
            Some(pi) => by_leader.entry(pi.leader).or_default().push((topic, p)),
        }
    }
    for (leader, parts) in by_leader {
        if leader == b.node_id {
            out.extend(write_local(b, &marker, parts).await);
            continue;
        }
        let Some(addr) = image.brokers.get(&leader).map(|x| format!("{}:{}", x.host, x.port)) else {
            out.extend(parts.into_iter().map(|k| (k, ErrorCode::LeaderNotAvailable)));
            continue;
        };
        match send_remote(&addr, &marker, &parts).await {
            Ok(resp) => {
                let mut answered: BTreeMap<(String, i32), ErrorCode> = BTreeMap::new();
                for m in resp.markers {
                    for t in m.topics {
                        for pr in t.partitions {
                            answered.insert((t.name.to_string(), pr.partition_index), ErrorCode::from_code(pr.error_code));
                        }
                    }
                }
                for k in parts {
                    let code = answered.get(&k).copied().unwrap_or(ErrorCode::UnknownServerError);
                    out.push((k, code));
                }
            }
            Err(e) => {
                tracing::debug!(leader, error = %e, "sending transaction markers failed");
                out.extend(parts.into_iter().map(|k| (k, ErrorCode::NetworkException)));
            }
        }
    }
    out
}

async fn send_remote(addr: &str, marker: &Marker, parts: &[(String, i32)]) -> std::io::Result<WriteTxnMarkersResponse> {
    let mut conn = PeerConn::connect(addr, Duration::from_secs(5)).await?;
    let mut m = WritableTxnMarker::default();
    m.producer_id = ProducerId(marker.producer_id);
    m.producer_epoch = marker.producer_epoch;
    m.transaction_result = marker.commit;
    m.coordinator_epoch = marker.coordinator_epoch;
    for (topic, p) in parts {
        if m.topics.last().is_none_or(|t: &WritableTxnMarkerTopic| t.name.as_str() != topic) {
            let mut t = WritableTxnMarkerTopic::default();
            t.name = TopicName(crate::handlers::s(topic.clone()));
            m.topics.push(t);
        }
        if let Some(t) = m.topics.last_mut() {
            t.partition_indexes.push(*p);
        }
    }
    let mut req = WriteTxnMarkersRequest::default();
    req.markers.push(m);
    let call = conn.call(ApiKey::WriteTxnMarkers, PEER_VERSION, &req);
    match tokio::time::timeout(MARKER_TIMEOUT + Duration::from_secs(5), call).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "WriteTxnMarkers timed out")),
    }
}
