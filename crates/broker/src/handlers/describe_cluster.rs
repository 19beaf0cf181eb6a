//! DescribeCluster (key 60): the live brokers with their racks, and the controller.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeClusterRequest) -> Outcome {
    let mut resp = DescribeClusterResponse::default();
    let image = b.metadata.image();
    resp.cluster_id = s(b.metadata.cluster_id());
    resp.controller_id = BrokerId(super::metadata::controller_id(b));
    resp.endpoint_type = 1;
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations { super::ops::CLUSTER } else { i32::MIN };
    resp.brokers = super::metadata::live_brokers(b, &image)
        .into_iter()
        .map(|(id, host, port, rack)| {
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = BrokerId(id);
            broker.host = s(host);
            broker.port = port;
            broker.rack = rack.map(s);
            broker
        })
        .collect();
    if req.include_fenced_brokers && reply.version >= 2 {
        // v2: registered brokers that are fenced or shutting down, flagged.
        for x in image.brokers.values().filter(|x| !x.is_live()) {
            if resp.brokers.iter().any(|r| r.broker_id.0 == x.id) {
                continue;
            }
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = BrokerId(x.id);
            broker.host = s(x.host.clone());
            broker.port = x.port as i32;
            broker.rack = x.rack.clone().map(s);
            broker.is_fenced = true;
            resp.brokers.push(broker);
        }
        resp.brokers.sort_by_key(|r| r.broker_id.0);
    }
    reply.ready(&resp)
}
