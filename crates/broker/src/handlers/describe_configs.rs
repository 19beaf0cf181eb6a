//! DescribeConfigs (key 32) for topics (resource type 2) and brokers (type 4),
//! with each value's source and, on request, its synonyms.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::config::{BrokerConfig, Kind, Source, BROKER_DEFS, TOPIC_DEFS};
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::Str | Kind::Enum(_) => 2,
        Kind::Int => 3,
        Kind::Long => 5,
        Kind::Double => 6,
        Kind::List => 7,
    }
}

fn synonym(name: &str, value: String, source: Source) -> DescribeConfigsSynonym {
    let mut syn = DescribeConfigsSynonym::default();
    syn.name = s(name);
    syn.value = Some(s(value));
    syn.source = source as i8;
    syn
}

fn entry(name: &str, value: String, source: Source, kind: Kind, synonyms: Vec<DescribeConfigsSynonym>) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = s(name);
    e.value = Some(s(value));
    e.config_source = source as i8;
    e.config_type = config_type(kind);
    e.synonyms = synonyms;
    e
}

fn wanted(keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str) -> bool {
    keys.as_ref().is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeConfigsRequest) -> Outcome {
    let image = b.metadata.image();
    let mut resp = DescribeConfigsResponse::default();
    for r in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        match r.resource_type {
            TOPIC => match image.topic(r.resource_name.as_str()) {
                None => {
                    out.error_code = ErrorCode::UnknownTopicOrPartition.code();
                    out.error_message = Some(s(format!("Topic {} does not exist", r.resource_name.as_str())));
                }
                Some(t) => {
                    for (name, syn, kind) in TOPIC_DEFS {
                        if !wanted(&r.configuration_keys, name) {
                            continue;
                        }
                        let Some((value, source)) = b.config.topic_value(&t.configs, name) else {
                            continue;
                        };
                        let synonyms = if req.include_synonyms { topic_synonyms(&b.config, &t.configs, name, syn) } else { Vec::new() };
                        out.configs.push(entry(name, value, source, *kind, synonyms));
                    }
                }
            },
            BROKER => {
                let name = r.resource_name.as_str();
                if !name.is_empty() && name != b.node_id.to_string() {
                    out.error_code = ErrorCode::InvalidRequest.code();
                    out.error_message = Some(s(format!("Broker {name} is not this broker ({})", b.node_id)));
                } else {
                    for def in BROKER_DEFS {
                        if !wanted(&r.configuration_keys, def.name) {
                            continue;
                        }
                        let Some((value, source)) = b.config.get_with_source(def.name) else {
                            continue;
                        };
                        let synonyms = if req.include_synonyms { vec![synonym(def.name, value.clone(), source)] } else { Vec::new() };
                        out.configs.push(entry(def.name, value, source, def.kind, synonyms));
                    }
                }
            }
            other => {
                out.error_code = ErrorCode::InvalidRequest.code();
                out.error_message = Some(s(format!("Unsupported resource type {other}")));
            }
        }
        resp.results.push(out);
    }
    reply.ready(&resp)
}

fn topic_synonyms(c: &BrokerConfig, overrides: &BTreeMap<String, String>, name: &str, broker_name: &str) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    if let Some(v) = overrides.get(name) {
        out.push(synonym(name, v.clone(), Source::TopicOverride));
    }
    if let Some((v, src)) = c.get_with_source(broker_name) {
        out.push(synonym(broker_name, v.clone(), src));
        if src != Source::Default {
            if let Some(d) = BROKER_DEFS.iter().find(|d| d.name == broker_name).and_then(|d| d.default) {
                out.push(synonym(broker_name, d.to_string(), Source::Default));
            }
        }
    }
    out
}
