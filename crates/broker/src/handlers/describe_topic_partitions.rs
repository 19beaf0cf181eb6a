//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions from the
//! metadata image, paged by a partition limit and a cursor.
//!
//! As Kafka: topics come in name order; a request naming no topics describes all
//! of them (and then skips nothing but missing ones); named topics that do not
//! exist answer UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an invalid
//! name). At most `min(response_partition_limit, 2000)` partitions are returned;
//! when more remain, `next_cursor` names the first partition left out. A limit of
//! zero or less means the default, 2000. A cursor whose topic is not among the
//! named topics, or whose partition is negative, is an INVALID_REQUEST.
//!
//! Partitions are described as Metadata does: a leader that is not live is
//! reported as -1 with LEADER_NOT_AVAILABLE, and replicas on brokers that are
//! fenced or unregistered are offline. Strom has no ELR (KIP-966's eligible
//! leader replicas), so both ELR lists are empty.

use std::collections::BTreeSet;
use std::sync::Arc;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName};
use strom_metadata::{MetadataImage, PartitionImage, TopicImage};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::replica::validate_topic_name;
use crate::server::Broker;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response carries.
pub const MAX_PARTITIONS: i32 = 2000;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeTopicPartitionsRequest) -> Outcome {
    let image = b.metadata.image();
    reply.ready(&describe(&image, &req))
}

/// The whole answer, from one image.
pub fn describe(image: &MetadataImage, req: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let all = req.topics.is_empty();
    let cursor = req.cursor.as_ref().map(|c| (c.topic_name.to_string(), c.partition_index));
    let from = cursor.as_ref().map(|(t, _)| t.as_str()).unwrap_or("");
    let names: BTreeSet<String> = if all {
        image.topics.keys().filter(|n| n.as_str() >= from).cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.to_string()).filter(|n| n.as_str() >= from).collect()
    };
    if let Some((topic, partition)) = &cursor {
        if (!all && !names.contains(topic)) || *partition < 0 {
            return invalid(req);
        }
    }
    let mut remaining = if req.response_partition_limit <= 0 { MAX_PARTITIONS } else { req.response_partition_limit.min(MAX_PARTITIONS) };
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            // Every partition before this topic fitted; the next page starts here.
            resp.next_cursor = Some(cursor_at(&name, 0));
            break;
        }
        let Some(topic) = image.topic(&name) else {
            if !all {
                let code =
                    if validate_topic_name(&name).is_ok() { ErrorCode::UnknownTopicOrPartition } else { ErrorCode::InvalidTopicException };
                resp.topics.push(error_entry(&name, code));
            }
            continue;
        };
        let start = match &cursor {
            Some((t, p)) if *t == name => *p,
            _ => 0,
        };
        let mut entry = topic_entry(topic);
        let mut parts = topic.partitions.range(start..);
        for (_, p) in parts.by_ref().take(remaining as usize) {
            entry.partitions.push(partition_entry(image, topic.id, p));
        }
        remaining -= entry.partitions.len() as i32;
        let next = parts.next().map(|(&i, _)| i);
        resp.topics.push(entry);
        if let Some(i) = next {
            resp.next_cursor = Some(cursor_at(&name, i));
            break;
        }
    }
    resp
}

fn cursor_at(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = TopicName(s(topic));
    c.partition_index = partition;
    c
}

/// Kafka's error response: every named topic with the error and no partitions.
fn invalid(req: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    let mut resp = DescribeTopicPartitionsResponse::default();
    resp.topics = req.topics.iter().map(|t| error_entry(&t.name, ErrorCode::InvalidRequest)).collect();
    resp
}

fn error_entry(name: &str, code: ErrorCode) -> DescribeTopicPartitionsResponseTopic {
    let mut e = DescribeTopicPartitionsResponseTopic::default();
    e.error_code = code.code();
    e.name = Some(TopicName(s(name)));
    e.topic_id = Uuid::nil();
    e.is_internal = name.starts_with("__");
    e.topic_authorized_operations = super::ops::TOPIC;
    e
}

fn topic_entry(t: &TopicImage) -> DescribeTopicPartitionsResponseTopic {
    let mut e = DescribeTopicPartitionsResponseTopic::default();
    e.name = Some(TopicName(s(t.name.clone())));
    e.topic_id = t.id;
    e.is_internal = t.name.starts_with("__");
    e.topic_authorized_operations = super::ops::TOPIC;
    e
}

fn partition_entry(image: &MetadataImage, topic_id: uuid::Uuid, p: &PartitionImage) -> DescribeTopicPartitionsResponsePartition {
    let ids = |v: &[i32]| v.iter().map(|&r| BrokerId(r)).collect::<Vec<_>>();
    let mut e = DescribeTopicPartitionsResponsePartition::default();
    e.partition_index = p.partition;
    let live = p.leader >= 0 && image.is_live(p.leader);
    e.leader_id = BrokerId(if live { p.leader } else { -1 });
    if !live {
        e.error_code = ErrorCode::LeaderNotAvailable.code();
    }
    e.leader_epoch = p.leader_epoch;
    e.replica_nodes = ids(&p.replicas);
    e.isr_nodes = ids(&p.isr);
    e.eligible_leader_replicas = Some(Vec::new());
    e.last_known_elr = Some(Vec::new());
    e.offline_replicas = p
        .replicas
        .iter()
        .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced) || image.is_replica_offline(**r, topic_id, p.partition))
        .map(|&r| BrokerId(r))
        .collect();
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor as ReqCursor, TopicRequest};
    use strom_metadata::MetadataRecord;

    fn image() -> MetadataImage {
        let mut recs = Vec::new();
        for id in [1, 2] {
            recs.push(MetadataRecord::RegisterBroker {
                id,
                epoch: id as i64,
                incarnation: Uuid::new_v4(),
                host: "h".into(),
                port: 9000,
                rack: None,
            });
        }
        recs.push(MetadataRecord::BrokerFence { id: 1, epoch: 1, fenced: false });
        // "a": 3 partitions on 1,2 (2 fenced) and 3 (never registered); "b": 2 partitions led by 2 (fenced).
        for (name, n, leader) in [("a", 3, 1), ("b", 2, 2)] {
            let id = Uuid::new_v4();
            recs.push(MetadataRecord::Topic { name: name.into(), id });
            for p in 0..n {
                recs.push(MetadataRecord::Partition {
                    topic_id: id,
                    partition: p,
                    replicas: vec![leader, 3 - leader, 3],
                    leader,
                    leader_epoch: 5 + p,
                    isr: vec![leader],
                    partition_epoch: 0,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                });
            }
        }
        MetadataImage::default().apply(&recs)
    }

    fn req(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
        let mut r = DescribeTopicPartitionsRequest::default();
        r.topics = topics
            .iter()
            .map(|t| {
                let mut x = TopicRequest::default();
                x.name = TopicName(s(*t));
                x
            })
            .collect();
        r.response_partition_limit = limit;
        r.cursor = cursor.map(|(t, p)| {
            let mut c = ReqCursor::default();
            c.topic_name = TopicName(s(t));
            c.partition_index = p;
            c
        });
        r
    }

    /// (name, error, partitions) per topic, and the next cursor.
    type Shape = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

    fn shape(r: &DescribeTopicPartitionsResponse) -> Shape {
        (
            r.topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                        t.error_code,
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    )
                })
                .collect(),
            r.next_cursor.as_ref().map(|c| (c.topic_name.to_string(), c.partition_index)),
        )
    }

    #[test]
    fn partitions_describe_leader_isr_and_offline_replicas() {
        let img = image();
        let r = describe(&img, &req(&["a", "b"], 0, None));
        let a = &r.topics[0];
        let p0 = &a.partitions[0];
        assert_eq!((p0.leader_id.0, p0.leader_epoch, p0.error_code), (1, 5, 0));
        assert_eq!(p0.replica_nodes, vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
        assert_eq!(p0.isr_nodes, vec![BrokerId(1)]);
        assert_eq!(p0.offline_replicas, vec![BrokerId(2), BrokerId(3)]);
        assert_eq!(p0.eligible_leader_replicas, Some(vec![]));
        // "b" is led by fenced broker 2: no leader.
        let b0 = &r.topics[1].partitions[0];
        assert_eq!((b0.leader_id.0, b0.error_code), (-1, ErrorCode::LeaderNotAvailable.code()));
        assert!(r.next_cursor.is_none());
    }

    #[test]
    fn names_are_sorted_deduplicated_and_unknown_ones_reported() {
        let img = image();
        let r = describe(&img, &req(&["b", "zz", "a", "b", "bad name!"], 2000, None));
        let (topics, next) = shape(&r);
        let unknown = ErrorCode::UnknownTopicOrPartition.code();
        let invalid = ErrorCode::InvalidTopicException.code();
        assert_eq!(
            topics,
            vec![
                ("a".into(), 0, vec![0, 1, 2]),
                ("b".into(), 0, vec![0, 1]),
                ("bad name!".into(), invalid, vec![]),
                ("zz".into(), unknown, vec![])
            ]
        );
        assert_eq!(next, None);
    }

    #[test]
    fn limit_and_cursor_page_through_everything() {
        let img = image();
        // All topics, two partitions a page.
        let (t, next) = shape(&describe(&img, &req(&[], 2, None)));
        assert_eq!((t, next.clone()), (vec![("a".into(), 0, vec![0, 1])], Some(("a".into(), 2))));
        let (t, next) = shape(&describe(&img, &req(&[], 2, Some(("a", 2)))));
        assert_eq!((t, next.clone()), (vec![("a".into(), 0, vec![2]), ("b".into(), 0, vec![0])], Some(("b".into(), 1))));
        let (t, next) = shape(&describe(&img, &req(&[], 2, Some(("b", 1)))));
        assert_eq!((t, next), (vec![("b".into(), 0, vec![1])], None));
        // A page that ends exactly at a topic's end points at the next topic.
        let (t, next) = shape(&describe(&img, &req(&["a", "b"], 3, None)));
        assert_eq!((t, next), (vec![("a".into(), 0, vec![0, 1, 2])], Some(("b".into(), 0))));
        // Named topics before the cursor are skipped.
        let (t, _) = shape(&describe(&img, &req(&["a", "b"], 10, Some(("b", 0)))));
        assert_eq!(t, vec![("b".into(), 0, vec![0, 1])]);
    }

    #[test]
    fn bad_cursors_are_invalid_requests() {
        let img = image();
        let bad = ErrorCode::InvalidRequest.code();
        let (t, _) = shape(&describe(&img, &req(&["a"], 10, Some(("b", 0)))));
        assert_eq!(t, vec![("a".into(), bad, vec![])]);
        let (t, _) = shape(&describe(&img, &req(&["a"], 10, Some(("a", -1)))));
        assert_eq!(t, vec![("a".into(), bad, vec![])]);
    }

    #[test]
    fn the_response_encodes_at_v0() {
        let img = image();
        let r = describe(&img, &req(&[], 1, None));
        let mut buf = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&r, &mut buf, 0).unwrap();
    }
}
