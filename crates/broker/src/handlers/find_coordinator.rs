//! FindCoordinator (key 10): a group's coordinator is the leader of its
//! `__consumer_offsets` partition, a transactional id's (key type 1) the leader
//! of its `__transaction_state` partition (`abs(javaHash(key)) % partitions`,
//! as Kafka). The first lookup of each kind creates its topic through the
//! controller, as in Kafka. v4+ batches keys.
//!
//! Messages as Kafka sends them: before v4 a found coordinator carries the
//! error name "NONE"; from v4 a found key's message is empty. A key with no
//! coordinator answers node -1, port -1.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use strom_protocol::ErrorCode;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::groups::OFFSETS_TOPIC;
use crate::server::Broker;
use crate::txns::TXN_TOPIC;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// (node, host, port) of the live leader of `key`'s partition of `topic`, or the error.
fn locate(b: &Broker, topic: &str, key: &str) -> Result<(i32, String, i32), ErrorCode> {
    let image = b.metadata.image();
    let topic = image.topic(topic).ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let p = strom_coordinator::partition_for(key, topic.partitions.len().max(1) as i32);
    let leader = topic.partitions.get(&p).map(|p| p.leader).unwrap_or(-1);
    match image.brokers.get(&leader).filter(|x| x.is_live()) {
        Some(x) => Ok((x.id, x.host.clone(), x.port as i32)),
        None if leader == b.node_id && !b.lifecycle.is_fenced() => Ok((b.node_id, b.advertised.0.clone(), b.advertised.1 as i32)),
        None => Err(ErrorCode::CoordinatorNotAvailable),
    }
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: FindCoordinatorRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let (topic, ready) = match req.key_type {
            GROUP => (OFFSETS_TOPIC, b.ensure_offsets_topic().await),
            TRANSACTION => (TXN_TOPIC, b.ensure_txn_topic().await),
            _ => (OFFSETS_TOPIC, false),
        };
        let invalid_type = !matches!(req.key_type, GROUP | TRANSACTION);
        let keys: Vec<String> =
            if reply.version >= 4 { req.coordinator_keys.iter().map(|k| k.to_string()).collect() } else { vec![req.key.to_string()] };
        let found: Vec<Result<(i32, String, i32), ErrorCode>> = keys
            .iter()
            .map(|k| {
                if invalid_type {
                    Err(ErrorCode::InvalidRequest)
                } else if ready {
                    locate(&b, topic, k)
                } else {
                    Err(ErrorCode::CoordinatorNotAvailable)
                }
            })
            .collect();
        let mut resp = FindCoordinatorResponse::default();
        let message =
            |code: ErrorCode| s(if code == ErrorCode::CoordinatorNotAvailable { "The coordinator is not available." } else { "" });
        if reply.version >= 4 {
            resp.coordinators = keys
                .iter()
                .zip(found)
                .map(|(k, f)| {
                    let mut c = Coordinator::default();
                    c.key = s(k.clone());
                    match f {
                        Ok((id, host, port)) => {
                            c.node_id = BrokerId(id);
                            c.host = s(host);
                            c.port = port;
                        }
                        Err(code) => {
                            c.error_code = code.code();
                            c.node_id = BrokerId(-1);
                            c.port = -1;
                            c.error_message = Some(message(code));
                        }
                    }
                    c
                })
                .collect();
        } else {
            match found.into_iter().next().unwrap_or(Err(ErrorCode::CoordinatorNotAvailable)) {
                Ok((id, host, port)) => {
                    resp.node_id = BrokerId(id);
                    resp.host = s(host);
                    resp.port = port;
                    if reply.version >= 1 {
                        resp.error_message = Some(s("NONE"));
                    }
                }
                Err(code) => {
                    resp.error_code = code.code();
                    resp.node_id = BrokerId(-1);
                    resp.port = -1;
                    if reply.version >= 1 {
                        resp.error_message = Some(message(code));
                    }
                }
            }
        }
        reply.encode(&resp)
    }))
}
