//! WriteTxnMarkers (key 27): a transaction coordinator asks the leaders of a
//! transaction's partitions to write its COMMIT or ABORT marker.
//!
//! Each marker is appended by the partition leader as a control batch (with
//! acks=all's ISR check), fsynced and replicated before its partition answers,
//! so a coordinator that sees NONE can write CompleteCommit/CompleteAbort. A
//! marker on a `__consumer_offsets` partition then makes the offsets committed
//! in that transaction visible (or drops them on abort).

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::dispatch::{Outcome, Reply};
use crate::markers::{write_local, Marker};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: WriteTxnMarkersRequest) -> Outcome {
    let (b, reply) = (b.clone(), reply.clone());
    Outcome::Later(Box::pin(async move {
        let mut resp = WriteTxnMarkersResponse::default();
        for m in req.markers {
            let partitions: Vec<(String, i32)> =
                m.topics.iter().flat_map(|t| t.partition_indexes.iter().map(move |&p| (t.name.to_string(), p))).collect();
            let marker = Marker {
                producer_id: m.producer_id.0,
                producer_epoch: m.producer_epoch,
                coordinator_epoch: m.coordinator_epoch,
                commit: m.transaction_result,
            };
            let results = write_local(&b, &marker, partitions).await;
            let mut r = WritableTxnMarkerResult::default();
            r.producer_id = m.producer_id;
            for ((topic, p), code) in results {
                if r.topics.last().is_none_or(|t: &WritableTxnMarkerTopicResult| t.name.as_str() != topic) {
                    let mut t = WritableTxnMarkerTopicResult::default();
                    t.name = kafka_protocol::messages::TopicName(super::s(topic));
                    r.topics.push(t);
                }
                let mut pr = WritableTxnMarkerPartitionResult::default();
                pr.partition_index = p;
                pr.error_code = code.code();
                if let Some(t) = r.topics.last_mut() {
                    t.partitions.push(pr);
                }
            }
            resp.markers.push(r);
        }
        reply.encode(&resp)
    }))
}
