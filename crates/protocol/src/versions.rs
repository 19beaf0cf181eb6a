//! The APIs and versions Strom answers, as advertised in ApiVersions.
//!
//! Every range here lies within what the `kafka-protocol` codec can decode, with one
//! deliberate exception: Produce is advertised from v0 because librdkafka before 2.x
//! turns compression off when a broker does not list Produce v0-v2. Such requests
//! are refused when they actually arrive (see [`is_accepted`]).

use kafka_protocol::messages::ApiKey;

/// (api, advertised min, advertised max).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    // v5 is KIP-890 part 2 (an epoch bump per transaction), not implemented.
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeProducers, 0, 0),
    // v1-2 as Kafka 4.x and the codec (v0 was removed in 4.0); v2 is the flexible encoding.
    (ApiKey::AlterReplicaLogDirs, 1, 2),
];

/// The lowest Produce version whose requests are actually served.
pub const PRODUCE_MIN_ACCEPTED: i16 = 3;

/// The advertised range for an API, if Strom serves it at all.
pub fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|(k, _, _)| *k == api).map(|&(_, lo, hi)| (lo, hi))
}

/// Whether a request of this API and version is served (rather than refused).
pub fn is_accepted(api: ApiKey, version: i16) -> bool {
    match advertised(api) {
        Some((lo, hi)) => {
            let lo = if api == ApiKey::Produce { lo.max(PRODUCE_MIN_ACCEPTED) } else { lo };
            version >= lo && version <= hi
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_decodable_by_the_codec() {
        for &(api, lo, hi) in SUPPORTED {
            let valid = api.valid_versions();
            let lo = if api == ApiKey::Produce { PRODUCE_MIN_ACCEPTED } else { lo };
            assert!(lo >= valid.min && hi <= valid.max, "{api:?} {lo}..{hi} outside codec {valid:?}");
        }
    }

    #[test]
    fn produce_v2_is_advertised_but_refused() {
        assert_eq!(advertised(ApiKey::Produce), Some((0, 11)));
        assert!(!is_accepted(ApiKey::Produce, 2));
        assert!(is_accepted(ApiKey::Produce, 3));
    }
}
