//! CreateTopics (key 19): validate-only, per-topic configs, explicit assignments.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
use strom_protocol::ErrorCode;

use super::s;
use crate::config::TOPIC_DEFS;
use crate::dispatch::{Outcome, Reply};
use crate::replica::{NewTopic, TopicError};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: CreateTopicsRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for t in &req.topics {
            *seen.entry(t.name.to_string()).or_default() += 1;
        }
        // Topics named twice are refused alone; the rest go to the controller in one request.
        let mut asked = Vec::new();
        let mut slots = Vec::new();
        for t in &req.topics {
            let name = t.name.to_string();
            if seen.get(&name).copied().unwrap_or(0) > 1 {
                slots.push((name, None));
                continue;
            }
            let new = NewTopic {
                name: name.clone(),
                partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                assignments: t
                    .assignments
                    .iter()
                    .map(|a| (a.partition_index, a.broker_ids.iter().map(|b| b.0).collect()))
                    .collect::<BTreeMap<_, _>>(),
                configs: t.configs.iter().filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string()))).collect(),
            };
            slots.push((name, Some(asked.len())));
            asked.push(new);
        }
        let results = if asked.is_empty() { Vec::new() } else { b.create_topics(asked.clone(), req.validate_only).await };
        let mut resp = CreateTopicsResponse::default();
        for (name, slot) in slots {
            let mut r = CreatableTopicResult::default();
            r.error_message = None; // null on success, as Kafka sends it
            r.name = TopicName(s(name.clone()));
            r.num_partitions = -1;
            r.replication_factor = -1;
            let Some(i) = slot else {
                r.error_code = ErrorCode::InvalidRequest.code();
                r.error_message = Some(s(format!("Create topics request from client contains a duplicate topic: {name}")));
                resp.topics.push(r);
                continue;
            };
            match results.get(i).cloned().unwrap_or_else(|| Err(TopicError::new(ErrorCode::UnknownServerError, "no answer"))) {
                Ok(created) => {
                    r.num_partitions = created.partitions;
                    r.replication_factor = created.replication_factor;
                    if !req.validate_only {
                        r.topic_id = created.id;
                    }
                    let overrides: BTreeMap<String, String> = asked[i].configs.clone();
                    r.configs = Some(
                        TOPIC_DEFS
                            .iter()
                            .filter_map(|(k, _, _)| {
                                let (v, src) = b.config.topic_value(&overrides, k)?;
                                let mut c = CreatableTopicConfigs::default();
                                c.name = s(*k);
                                c.value = Some(s(v));
                                c.config_source = src as i8;
                                Some(c)
                            })
                            .collect(),
                    );
                }
                Err(e) => {
                    r.error_code = e.code.code();
                    r.error_message = Some(s(e.message));
                }
            }
            resp.topics.push(r);
        }
        reply.encode(&resp)
    }))
}
