//! DeleteRecords (key 21): moves a partition's log start offset forward.
//! Offset -1 means the high watermark. Whole segments below the new start are
//! deleted; consumers below it get OFFSET_OUT_OF_RANGE.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::dispatch::{Outcome, Reply};
use crate::handlers::produce::storage_error_code;
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DeleteRecordsRequest) -> Outcome {
    let image = b.metadata.image();
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let mut rt = DeleteRecordsTopicResult::default();
        rt.name = t.name.clone();
        let topic = image.topic(&t.name);
        for p in t.partitions {
            let mut rp = DeleteRecordsPartitionResult::default();
            rp.partition_index = p.partition_index;
            rp.low_watermark = -1;
            let _ = topic;
            match b.leader_log(&image, &t.name, p.partition_index) {
                Err(code) => rp.error_code = code.code(),
                Ok(log) => {
                    // Only what every in-sync replica holds can be deleted: -1 means the high watermark.
                    let hw = log.high_watermark();
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target > hw || target < 0 {
                        rp.error_code = strom_protocol::ErrorCode::OffsetOutOfRange.code();
                        rt.partitions.push(rp);
                        continue;
                    }
                    match log.advance_log_start(target) {
                        Ok(start) => rp.low_watermark = start,
                        Err(e) => rp.error_code = storage_error_code(&e).code(),
                    }
                }
            }
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    // The new log start offsets must survive a crash.
    if let Err(e) = b.logs.write_checkpoints() {
        tracing::warn!(error = %e, "checkpoint write after DeleteRecords failed");
    }
    reply.ready(&resp)
}
