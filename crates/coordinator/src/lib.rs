//! Group coordination as a state machine that does no I/O.
//!
//! - [`group`]: the classic group protocol (JoinGroup/SyncGroup/Heartbeat/
//!   LeaveGroup), committed offsets and group administration. Every call takes the
//!   request and the current time and returns an [`Output`]: records to append to
//!   `__consumer_offsets` and responses to deliver once they are durable. Timers
//!   (session expiry, rebalance timeouts, the initial rebalance delay, offset
//!   retention) advance only through [`group::GroupCoordinator::tick`].
//! - [`records`]: the key/value encoding of group metadata and offset commits in
//!   `__consumer_offsets`, and replay of those records into coordinator state.
//! - [`txn`]: the transaction coordinator (transactional InitProducerId,
//!   AddPartitionsToTxn, EndTxn, timeouts, id expiration) in the same shape;
//!   [`txn_records`] is the encoding of `__transaction_state`.
//!
//! The broker owns tokens: a request that must wait (JoinGroup, SyncGroup) is
//! identified by a [`Token`], and the coordinator answers it in a later `Output`.
//!
//! **State only from durable records.** Records leave a step as [`group::Write`]s,
//! one per `__consumer_offsets` partition, each with a [`WriteId`]. What depends on
//! them (committed offsets, deleted offsets and groups, a leader's assignment, a
//! static member's new id) changes only when the broker reports the write appended
//! and fsynced with [`GroupCoordinator::complete_write`]; writes of one partition
//! take effect in the order they were made. A failed write changes nothing and its
//! waiting requests get Kafka's error for the append error.
//!
//! **Ownership.** The coordinator serves only the groups of the partitions it has
//! loaded ([`GroupCoordinator::begin_load`], [`GroupCoordinator::finish_load`],
//! [`GroupCoordinator::unload`]); other groups answer NOT_COORDINATOR, or
//! COORDINATOR_LOAD_IN_PROGRESS while their partition is being replayed.
#![deny(unsafe_code)]

pub mod group;
pub mod records;
pub mod txn;
pub mod txn_records;
mod write_queue;

pub use group::{GroupConfig, GroupCoordinator, PartitionStatus, Write};

/// Identifies a waiting request; chosen by the caller.
pub type Token = u64;

/// Identifies a write of records to `__consumer_offsets`; chosen by the coordinator.
pub type WriteId = u64;

/// Kafka error codes the coordinator returns.
pub mod errors {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_FETCH_SIZE: i16 = 4;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = 28;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;

    /// The answer for a request whose group records could not be written, given
    /// the append's error (Kafka's `GroupMetadataManager` mapping): the partition
    /// is gone or under-replicated → COORDINATOR_NOT_AVAILABLE; this broker no
    /// longer leads it or its disk failed → NOT_COORDINATOR; anything else →
    /// UNKNOWN_SERVER_ERROR. Either of the first two sends clients back to
    /// FindCoordinator.
    pub fn write_error(append_error: i16) -> i16 {
        match append_error {
            NONE => NONE,
            UNKNOWN_TOPIC_OR_PARTITION | NOT_ENOUGH_REPLICAS | NOT_ENOUGH_REPLICAS_AFTER_APPEND | COORDINATOR_NOT_AVAILABLE => {
                COORDINATOR_NOT_AVAILABLE
            }
            NOT_LEADER_OR_FOLLOWER | KAFKA_STORAGE_ERROR | NOT_COORDINATOR => NOT_COORDINATOR,
            _ => UNKNOWN_SERVER_ERROR,
        }
    }

    /// OffsetCommit's answer for a failed write: as [`write_error`], except that
    /// records too large for the log are INVALID_COMMIT_OFFSET_SIZE.
    pub fn commit_error(append_error: i16) -> i16 {
        match append_error {
            MESSAGE_TOO_LARGE | RECORD_LIST_TOO_LARGE | INVALID_FETCH_SIZE => INVALID_COMMIT_OFFSET_SIZE,
            e => write_error(e),
        }
    }

    /// SyncGroup's (and a static member's JoinGroup's) answer for a failed group
    /// metadata write: as [`write_error`], except that a timeout is
    /// REBALANCE_IN_PROGRESS.
    pub fn group_write_error(append_error: i16) -> i16 {
        match append_error {
            REQUEST_TIMED_OUT => REBALANCE_IN_PROGRESS,
            e => write_error(e),
        }
    }
}

/// Java's `String.hashCode`, which Kafka uses to map a group to a partition of
/// `__consumer_offsets`.
pub fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// The `__consumer_offsets` partition that stores a group (Kafka's rule).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group);
    // Kafka's Utils.abs maps MIN_VALUE to 0.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(
            java_string_hash("console-consumer-12345"),
            "console-consumer-12345".chars().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
        );
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
    }
}
