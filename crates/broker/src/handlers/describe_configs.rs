//! DescribeConfigs (key 32) for topics (resource type 2) and brokers (type 4),
//! as Kafka reports them: each value's source, the synonym chain on request,
//! `read_only` for broker keys that cannot change while running, the type (v3+)
//! and, on request, a line of documentation. The broker resource "" is the
//! cluster-wide dynamic default and lists only the keys set there.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::config::{broker_read_only, config_type, documentation, Described, Kind, BROKER_DEFS, TOPIC_DEFS};
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// What the request asked to include.
#[derive(Clone, Copy)]
struct Include {
    synonyms: bool,
    documentation: bool,
}

fn entry(name: &str, d: Described, kind: Kind, read_only: bool, include: Include) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    e.name = s(name);
    e.value = d.value.map(s);
    e.config_source = d.source as i8;
    e.read_only = read_only;
    e.config_type = config_type(kind);
    e.documentation = if include.documentation { documentation(name).map(s) } else { None };
    if include.synonyms {
        e.synonyms = d
            .synonyms
            .into_iter()
            .map(|syn| {
                let mut out = DescribeConfigsSynonym::default();
                out.name = s(syn.name);
                out.value = Some(s(syn.value));
                out.source = syn.source as i8;
                out
            })
            .collect();
    }
    e
}

fn wanted(keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str) -> bool {
    keys.as_ref().is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeConfigsRequest) -> Outcome {
    let image = b.metadata.image();
    let include = Include { synonyms: req.include_synonyms, documentation: reply.version >= 3 && req.include_documentation };
    let mut resp = DescribeConfigsResponse::default();
    for r in req.resources {
        // Kafka leaves a successful result's message empty (not null) here.
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
                    for (name, _, kind) in TOPIC_DEFS {
                        if !wanted(&r.configuration_keys, name) {
                            continue;
                        }
                        if let Some(d) = b.config.describe_topic(&t.configs, name) {
                            out.configs.push(entry(name, d, *kind, false, include));
                        }
                    }
                }
            },
            BROKER => {
                let name = r.resource_name.as_str();
                if name.is_empty() {
                    let set = b.config.cluster_default_names();
                    for def in BROKER_DEFS.iter().filter(|d| set.iter().any(|k| k == d.name)) {
                        if !wanted(&r.configuration_keys, def.name) {
                            continue;
                        }
                        if let Some(d) = b.config.describe_cluster_default(def.name) {
                            out.configs.push(entry(def.name, d, def.kind, broker_read_only(def.name), include));
                        }
                    }
                } else if name.parse::<i32>().ok() != Some(b.node_id) {
                    out.error_code = ErrorCode::InvalidRequest.code();
                    out.error_message = Some(s(format!("Broker {name} is not this broker ({})", b.node_id)));
                } else {
                    for def in BROKER_DEFS {
                        if !wanted(&r.configuration_keys, def.name) {
                            continue;
                        }
                        let d = b.config.describe_broker(def.name);
                        out.configs.push(entry(def.name, d, def.kind, broker_read_only(def.name), include));
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
