//! Metadata (key 3): brokers, cluster id, controller and topic leadership.
//!
//! Unknown topics named by a client are created with broker defaults when
//! `auto.create.topics.enable` is true and the request allows it (v4+ flag;
//! earlier versions always allow). Creation goes through the controller and
//! waits until this node has applied it, so the topic is returned ready to use.
//!
//! Brokers are the live ones (registered, unfenced, not shutting down). A
//! partition whose leader is gone answers LEADER_NOT_AVAILABLE with leader -1;
//! replicas on brokers that are down are listed as offline (v5+).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use strom_metadata::{MetadataImage, TopicImage};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::replica::validate_topic_name;
use crate::server::Broker;

const AUTHORIZED_OPS_OMITTED: i32 = i32::MIN;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: MetadataRequest) -> Outcome {
    let image = b.metadata.image();
    let may_create = b.config.bool("auto.create.topics.enable") && (reply.version < 4 || req.allow_auto_topic_creation);
    let missing: Vec<String> = match &req.topics {
        Some(ts) if may_create => ts
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .filter(|n| image.topic(n).is_none() && validate_topic_name(n).is_ok())
            .collect(),
        _ => Vec::new(),
    };
    if missing.is_empty() {
        return reply.ready(&respond(b, reply, req, &BTreeMap::new()));
    }
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut failed = BTreeMap::new();
        for name in missing {
            if let Err(e) = b.auto_create(&name).await {
                failed.insert(name, e.code);
            }
        }
        reply.encode(&respond(&b, &reply, req, &failed))
    }))
}

/// Brokers clients may talk to: live ones, in id order.
pub fn live_brokers(b: &Broker, image: &MetadataImage) -> Vec<(i32, String, i32, Option<String>)> {
    let mut out: Vec<_> = image.live_brokers().map(|x| (x.id, x.host.clone(), x.port as i32, x.rack.clone())).collect();
    if out.is_empty() || !out.iter().any(|x| x.0 == b.node_id) {
        // Before our own registration is visible, still name ourselves so clients can retry here.
        if image.brokers.get(&b.node_id).is_none_or(|x| x.is_live()) && out.iter().all(|x| x.0 != b.node_id) && !b.lifecycle.is_fenced() {
            out.push((b.node_id, b.advertised.0.clone(), b.advertised.1 as i32, None));
            out.sort();
        }
    }
    out
}

/// The controller as clients see it. Clients send admin requests there, so it
/// must be a broker they can reach and that stays reachable while the quorum
/// fails over: this broker, which forwards to the active controller. (KRaft
/// brokers also name a live broker, not a controller.) The quorum's real
/// leader is in DescribeQuorum and `strom cluster quorum`.
pub fn controller_id(b: &Broker) -> i32 {
    b.node_id
}

fn respond(b: &Arc<Broker>, reply: &Reply, req: MetadataRequest, failed: &BTreeMap<String, ErrorCode>) -> MetadataResponse {
    let image = b.metadata.image();
    let mut resp = MetadataResponse::default();
    resp.brokers = live_brokers(b, &image)
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut broker = MetadataResponseBroker::default();
            broker.node_id = BrokerId(id);
            broker.host = s(host);
            broker.port = port;
            broker.rack = rack.map(s);
            broker
        })
        .collect();
    resp.cluster_id = Some(s(b.metadata.cluster_id()));
    resp.controller_id = BrokerId(controller_id(b));
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
        resp.topics = image.topics.values().map(|t| topic_entry(&image, topic_ops, t)).collect();
        return resp;
    }
    for t in req.topics.unwrap_or_default() {
        let entry = match (&t.name, t.topic_id) {
            (Some(name), _) => {
                let name = name.to_string();
                match image.topic(&name) {
                    Some(topic) => topic_entry(&image, topic_ops, topic),
                    None => match validate_topic_name(&name) {
                        Err(_) => error_entry(Some(name), Uuid::nil(), ErrorCode::InvalidTopicException),
                        Ok(()) => {
                            let code = failed.get(&name).copied().unwrap_or(ErrorCode::UnknownTopicOrPartition);
                            error_entry(Some(name), Uuid::nil(), code)
                        }
                    },
                }
            }
            (None, id) => match image.topic_by_id(&id) {
                Some(topic) => topic_entry(&image, topic_ops, topic),
                None => error_entry(None, id, ErrorCode::UnknownTopicId),
            },
        };
        resp.topics.push(entry);
    }
    resp
}

fn error_entry(name: Option<String>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    let mut e = MetadataResponseTopic::default();
    e.error_code = code.code();
    e.name = name.map(|n| TopicName(s(n)));
    e.topic_id = id;
    e.topic_authorized_operations = AUTHORIZED_OPS_OMITTED;
    e
}

fn topic_entry(image: &MetadataImage, ops: i32, t: &TopicImage) -> MetadataResponseTopic {
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
            let live = p.leader >= 0 && image.is_live(p.leader);
            mp.leader_id = BrokerId(if live { p.leader } else { -1 });
            if !live {
                mp.error_code = ErrorCode::LeaderNotAvailable.code();
            }
            mp.leader_epoch = p.leader_epoch;
            mp.replica_nodes = p.replicas.iter().map(|&r| BrokerId(r)).collect();
            mp.isr_nodes = p.isr.iter().map(|&r| BrokerId(r)).collect();
            // Fenced, or in an offline log directory there.
            mp.offline_replicas = p
                .replicas
                .iter()
                .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced) || image.is_replica_offline(**r, t.id, p.partition))
                .map(|&r| BrokerId(r))
                .collect();
            mp
        })
        .collect();
    e
}
