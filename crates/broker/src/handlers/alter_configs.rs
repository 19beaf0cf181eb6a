//! AlterConfigs (key 33, legacy): replaces a topic's whole set of overrides;
//! keys not named go back to their defaults. Dynamic broker settings are not
//! supported yet and get INVALID_REQUEST.

use std::sync::Arc;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub const TOPIC: i8 = 2;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: AlterConfigsRequest) -> Outcome {
    let mut resp = AlterConfigsResponse::default();
    for r in req.resources {
        let mut out = AlterConfigsResourceResponse::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        let result = if r.resource_type != TOPIC {
            Err((ErrorCode::InvalidRequest, "Only topic configurations can be altered so far.".to_string()))
        } else {
            let name = r.resource_name.to_string();
            let current = b.metadata.image().topic(&name).map(|t| t.configs.clone()).unwrap_or_default();
            let mut changes: Vec<(String, Option<String>)> =
                r.configs.iter().map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))).collect();
            for k in current.keys() {
                if !changes.iter().any(|(n, _)| n == k) {
                    changes.push((k.clone(), None));
                }
            }
            b.alter_topic_configs(&name, changes, req.validate_only).map_err(|e| (e.code, e.message))
        };
        if let Err((code, msg)) = result {
            out.error_code = code.code();
            out.error_message = Some(s(msg));
        }
        resp.responses.push(out);
    }
    reply.ready(&resp)
}
