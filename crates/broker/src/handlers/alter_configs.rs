//! AlterConfigs (key 33, legacy): replaces the whole set of a topic's overrides,
//! or of a broker's (or the cluster default's) dynamic settings; keys not named
//! go back to their defaults.

use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub const TOPIC: i8 = 2;
pub const BROKER: i8 = 4;

/// AlterConfigs replaces the whole set: keys not given are removed.
fn with_removals<'a>(mut given: Vec<(String, Option<String>)>, current: impl Iterator<Item = &'a String>) -> Vec<(String, Option<String>)> {
    for k in current {
        if !given.iter().any(|(n, _)| n == k) {
            given.push((k.clone(), None));
        }
    }
    given
}

/// A broker resource name: "" is the cluster default, a number is one node.
pub fn broker_scope(b: &Broker, name: &str) -> Result<Option<i32>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    match name.parse::<i32>() {
        Ok(id) if id == b.node_id => Ok(Some(id)),
        Ok(id) => Err(format!("Broker {id} is not this broker ({})", b.node_id)),
        Err(_) => Err(format!("Invalid broker id '{name}'")),
    }
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: AlterConfigsRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let b = &b;
        let mut resp = AlterConfigsResponse::default();
        for r in req.resources {
            let mut out = AlterConfigsResourceResponse::default();
            out.error_message = None; // null on success, as Kafka sends it
            out.resource_type = r.resource_type;
            out.resource_name = r.resource_name.clone();
            let given: Vec<(String, Option<String>)> =
                r.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect();
            let result = match r.resource_type {
                TOPIC => {
                    let name = r.resource_name.to_string();
                    let current = b.metadata.image().topic(&name).map(|t| t.configs.clone()).unwrap_or_default();
                    b.alter_topic_configs(&name, with_removals(given, current.keys()), req.validate_only)
                        .await
                        .map_err(|e| (e.code, e.message))
                }
                BROKER => match broker_scope(b, r.resource_name.as_str()) {
                    Err(msg) => Err((ErrorCode::InvalidRequest, msg)),
                    Ok(scope) => {
                        let current = b.metadata.image().broker_configs.get(&scope).cloned().unwrap_or_default();
                        b.alter_broker_configs(scope, with_removals(given, current.keys()), req.validate_only)
                            .await
                            .map_err(|e| (e.code, e.message))
                    }
                },
                other => Err((ErrorCode::InvalidRequest, format!("Unsupported resource type {other}"))),
            };
            if let Err((code, msg)) = result {
                out.error_code = code.code();
                out.error_message = Some(s(msg));
            }
            resp.responses.push(out);
        }
        reply.encode(&resp)
    }))
}
