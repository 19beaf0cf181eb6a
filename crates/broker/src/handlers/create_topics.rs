//! CreateTopics (key 19): validate-only, per-topic configs, explicit assignments.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::config::TOPIC_DEFS;
use crate::dispatch::{Outcome, Reply};
use crate::replica::NewTopic;
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: CreateTopicsRequest) -> Outcome {
    let mut resp = CreateTopicsResponse::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    for t in req.topics {
        let name = t.name.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        r.num_partitions = -1;
        r.replication_factor = -1;
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            r.error_code = ErrorCode::InvalidRequest.code();
            r.error_message = Some(s(format!("Create topics request from client contains a duplicate topic: {name}")));
            resp.topics.push(r);
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
        let outcome =
            if req.validate_only { b.check_new_topic(&b.metadata.image(), &new).map(|_| None) } else { b.create_topic(&new).map(Some) };
        match outcome {
            Ok(created) => {
                let partitions = match &created {
                    Some(t) => t.partitions.len() as i32,
                    None if new.partitions == -1 && new.assignments.is_empty() => b.config.int("num.partitions") as i32,
                    None if !new.assignments.is_empty() => new.assignments.len() as i32,
                    None => new.partitions,
                };
                r.num_partitions = partitions;
                r.replication_factor = 1;
                if let Some(t) = &created {
                    r.topic_id = t.id;
                }
                let overrides: BTreeMap<String, String> = new.configs.clone();
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
    reply.ready(&resp)
}
