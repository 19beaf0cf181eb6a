//! One file per Kafka API. Each exposes `handle(broker, reply, request) -> Outcome`.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod write_txn_markers;

use kafka_protocol::protocol::StrBytes;

pub(crate) fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Authorized-operation bitfields (bit n = ACL operation n). Strom has no
/// authorizer yet, so, as Kafka without one, every operation is allowed.
pub(crate) mod ops {
    const fn bits(ops: &[i32]) -> i32 {
        let mut b = 0;
        let mut i = 0;
        while i < ops.len() {
            b |= 1 << ops[i];
            i += 1;
        }
        b
    }
    // READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
    // DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12
    pub const CLUSTER: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);
    pub const TOPIC: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
    pub const GROUP: i32 = bits(&[3, 6, 8]);
}

/// One partition of a request forwarded to the controller in a batch: its index
/// in the batch, or the error it already got here.
pub(crate) enum Slot {
    Asked(usize),
    Local(crate::controller::Failure),
}

impl Slot {
    /// This partition's result, given the controller's answer to the batch.
    pub(crate) fn outcome(
        &self,
        results: &Result<Vec<Result<(), crate::controller::Failure>>, crate::controller::Failure>,
    ) -> Result<(), crate::controller::Failure> {
        match (self, results) {
            (Slot::Local(f), _) | (Slot::Asked(_), Err(f)) => Err(f.clone()),
            (Slot::Asked(i), Ok(v)) => v
                .get(*i)
                .cloned()
                .unwrap_or_else(|| Err(crate::controller::Failure::new(strom_protocol::ErrorCode::UnknownServerError, "no answer"))),
        }
    }
}
