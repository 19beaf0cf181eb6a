//! DescribeCluster (key 60): this node as the only broker and the controller.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeClusterRequest) -> Outcome {
    let mut resp = DescribeClusterResponse::default();
    resp.cluster_id = s(b.metadata.cluster_id.clone());
    resp.controller_id = BrokerId(b.node_id);
    resp.endpoint_type = 1;
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations { super::ops::CLUSTER } else { i32::MIN };
    let mut broker = DescribeClusterBroker::default();
    broker.broker_id = BrokerId(b.node_id);
    broker.host = s(b.advertised.0.clone());
    broker.port = b.advertised.1 as i32;
    resp.brokers = vec![broker];
    reply.ready(&resp)
}
