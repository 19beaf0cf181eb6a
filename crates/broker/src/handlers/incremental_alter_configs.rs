//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on topic
//! and broker configs. APPEND/SUBTRACT apply to list-valued settings
//! (`cleanup.policy`); subtracting every item leaves an empty list, which for
//! `cleanup.policy` means neither deletion nor compaction, as in Kafka.

use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::handlers::alter_configs::{broker_scope, BROKER, TOPIC};
use crate::server::Broker;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

type Alterable = kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

/// Turns SET/DELETE/APPEND/SUBTRACT into plain set-or-remove changes.
fn changes_for(configs: &[Alterable], current: impl Fn(&str) -> String) -> Result<Vec<(String, Option<String>)>, String> {
    let list = |v: String| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>();
    let mut changes = Vec::new();
    for c in configs {
        let key = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        match c.config_operation {
            SET => changes.push((key, Some(value))),
            DELETE => changes.push((key, None)),
            APPEND | SUBTRACT if !crate::config::is_list(&key) => {
                return Err(format!("Config value append/subtract is not allowed for config key {key}"));
            }
            APPEND => {
                let mut items = list(current(&key));
                for v in list(value) {
                    if !items.contains(&v) {
                        items.push(v);
                    }
                }
                changes.push((key, Some(items.join(","))));
            }
            SUBTRACT => {
                let drop = list(value);
                let items: Vec<String> = list(current(&key)).into_iter().filter(|x| !drop.contains(x)).collect();
                changes.push((key, Some(items.join(","))));
            }
            op => return Err(format!("Unknown config operation {op}")),
        }
    }
    Ok(changes)
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: IncrementalAlterConfigsRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let b = &b;
        let mut resp = IncrementalAlterConfigsResponse::default();
        for r in req.resources {
            let mut out = AlterConfigsResourceResponse::default();
            out.error_message = None; // null on success, as Kafka sends it
            out.resource_type = r.resource_type;
            out.resource_name = r.resource_name.clone();
            let name = r.resource_name.to_string();
            let image = b.metadata.image();
            let overrides = image.topic(&name).map(|t| t.configs.clone()).unwrap_or_default();
            let scope = if r.resource_type == BROKER { broker_scope(b, &name) } else { Ok(None) };
            let current = |key: &str| -> String {
                if r.resource_type == TOPIC {
                    b.config.topic_value(&overrides, key).map(|(v, _)| v).unwrap_or_default()
                } else {
                    b.config.get(key)
                }
            };
            let result = match (r.resource_type, scope) {
                (_, Err(msg)) => Err((ErrorCode::InvalidRequest, msg)),
                (TOPIC | BROKER, Ok(scope)) => match changes_for(&r.configs, current) {
                    Err(msg) => Err((ErrorCode::InvalidConfig, msg)),
                    Ok(changes) if r.resource_type == TOPIC => {
                        b.alter_topic_configs(&name, changes, req.validate_only).await.map_err(|e| (e.code, e.message))
                    }
                    Ok(changes) => b.alter_broker_configs(scope, changes, req.validate_only).await.map_err(|e| (e.code, e.message)),
                },
                (other, _) => Err((ErrorCode::InvalidRequest, format!("Unsupported resource type {other}"))),
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
