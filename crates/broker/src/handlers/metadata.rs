//! Metadata (key 3): brokers, cluster id, controller and topic leadership.
//!
//! Unknown topics named by a client are created with broker defaults when
//! `auto.create.topics.enable` is true and the request allows it (v4+ flag;
//! earlier versions always allow). Creation is synchronous, so the topic is
//! returned ready to use rather than with LEADER_NOT_AVAILABLE.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strom_metadata::TopicImage;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::replica::validate_topic_name;
use crate::server::Broker;

const AUTHORIZED_OPS_OMITTED: i32 = i32::MIN;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: MetadataRequest) -> Outcome {
    let image = b.metadata.image();
    let mut resp = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(b.node_id);
    broker.host = s(b.advertised.0.clone());
    broker.port = b.advertised.1 as i32;
    resp.brokers = vec![broker];
    resp.cluster_id = Some(s(b.metadata.cluster_id.clone()));
    resp.controller_id = BrokerId(b.node_id);
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations && (8..=10).contains(&reply.version) {
        super::ops::CLUSTER
    } else {
        AUTHORIZED_OPS_OMITTED
    };
    let topic_ops = if req.include_topic_authorized_operations && reply.version >= 8 { super::ops::TOPIC } else { AUTHORIZED_OPS_OMITTED };
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && reply.version == 0,
    };
    if all {
        resp.topics = image.topics.values().map(|t| topic_entry(topic_ops, t)).collect();
        return reply.ready(&resp);
    }
    let may_create = b.config.bool("auto.create.topics.enable") && (reply.version < 4 || req.allow_auto_topic_creation);
    for t in req.topics.unwrap_or_default() {
        let entry = match (&t.name, t.topic_id) {
            (Some(name), _) => {
                let name = name.to_string();
                match image.topic(&name) {
                    Some(topic) => topic_entry(topic_ops, topic),
                    None => match validate_topic_name(&name) {
                        Err(_) => error_entry(Some(name), Uuid::nil(), ErrorCode::InvalidTopicException),
                        Ok(()) if may_create => match b.auto_create(&name) {
                            Ok(topic) => topic_entry(topic_ops, &topic),
                            Err(e) => error_entry(Some(name), Uuid::nil(), e.code),
                        },
                        Ok(()) => error_entry(Some(name), Uuid::nil(), ErrorCode::UnknownTopicOrPartition),
                    },
                }
            }
            (None, id) => match image.topic_by_id(&id) {
                Some(topic) => topic_entry(topic_ops, topic),
                None => error_entry(None, id, ErrorCode::UnknownTopicId),
            },
        };
        resp.topics.push(entry);
    }
    reply.ready(&resp)
}

fn error_entry(name: Option<String>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    let mut e = MetadataResponseTopic::default();
    e.error_code = code.code();
    e.name = name.map(|n| TopicName(s(n)));
    e.topic_id = id;
    e.topic_authorized_operations = AUTHORIZED_OPS_OMITTED;
    e
}

fn topic_entry(ops: i32, t: &TopicImage) -> MetadataResponseTopic {
    let mut e = MetadataResponseTopic::default();
    e.name = Some(TopicName(s(t.name.clone())));
    e.topic_id = t.id;
    e.is_internal = t.name.starts_with("__");
    e.topic_authorized_operations = ops;
    e.partitions = t
        .partitions
        .values()
        .map(|p| {
            let mut mp = MetadataResponsePartition::default();
            mp.partition_index = p.partition;
            mp.leader_id = BrokerId(p.leader);
            mp.leader_epoch = p.leader_epoch;
            mp.replica_nodes = p.replicas.iter().map(|&r| BrokerId(r)).collect();
            mp.isr_nodes = mp.replica_nodes.clone();
            mp
        })
        .collect();
    e
}
