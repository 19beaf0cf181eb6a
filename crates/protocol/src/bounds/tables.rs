//! Field layouts of the request bodies Strom accepts, one `Schema` per message and
//! nested struct, with the versions each field appears in. They restate the Kafka
//! protocol's message definitions in the order the `kafka-protocol` 0.18.0 codec
//! decodes them; `tests.rs` checks them against that codec.

use kafka_protocol::messages::ApiKey;

use super::{Field, Schema, Tagged, Ty, MAX};

const fn f(lo: i16, hi: i16, ty: Ty) -> Field {
    Field { lo, hi, ty }
}

const fn t(tag: u32, lo: i16, hi: i16, ty: Ty) -> Tagged {
    Tagged { tag, lo, hi, ty }
}

/// The root layout for each accepted API.
pub(super) fn request(api: ApiKey) -> Option<&'static Schema> {
    Some(match api {
        ApiKey::Produce => &PRODUCE_REQUEST,
        ApiKey::Fetch => &FETCH_REQUEST,
        ApiKey::ListOffsets => &LIST_OFFSETS_REQUEST,
        ApiKey::Metadata => &METADATA_REQUEST,
        ApiKey::ApiVersions => &API_VERSIONS_REQUEST,
        ApiKey::CreateTopics => &CREATE_TOPICS_REQUEST,
        ApiKey::DeleteTopics => &DELETE_TOPICS_REQUEST,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID_REQUEST,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS_REQUEST,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER_REQUEST,
        ApiKey::FindCoordinator => &FIND_COORDINATOR_REQUEST,
        ApiKey::JoinGroup => &JOIN_GROUP_REQUEST,
        ApiKey::SyncGroup => &SYNC_GROUP_REQUEST,
        ApiKey::Heartbeat => &HEARTBEAT_REQUEST,
        ApiKey::LeaveGroup => &LEAVE_GROUP_REQUEST,
        ApiKey::OffsetCommit => &OFFSET_COMMIT_REQUEST,
        ApiKey::OffsetFetch => &OFFSET_FETCH_REQUEST,
        ApiKey::TxnOffsetCommit => &TXN_OFFSET_COMMIT_REQUEST,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS_REQUEST,
        ApiKey::ListGroups => &LIST_GROUPS_REQUEST,
        ApiKey::DeleteGroups => &DELETE_GROUPS_REQUEST,
        ApiKey::OffsetDelete => &OFFSET_DELETE_REQUEST,
        ApiKey::DeleteRecords => &DELETE_RECORDS_REQUEST,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS_REQUEST,
        ApiKey::AlterConfigs => &ALTER_CONFIGS_REQUEST,
        ApiKey::DescribeLogDirs => &DESCRIBE_LOG_DIRS_REQUEST,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS_REQUEST,
        ApiKey::DescribeQuorum => &DESCRIBE_QUORUM_REQUEST,
        ApiKey::DescribeTopicPartitions => &DESCRIBE_TOPIC_PARTITIONS_REQUEST,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH_REQUEST,
        ApiKey::ElectLeaders => &ELECT_LEADERS_REQUEST,
        ApiKey::AlterPartitionReassignments => &ALTER_PARTITION_REASSIGNMENTS_REQUEST,
        ApiKey::ListPartitionReassignments => &LIST_PARTITION_REASSIGNMENTS_REQUEST,
        ApiKey::AddPartitionsToTxn => &ADD_PARTITIONS_TO_TXN_REQUEST,
        ApiKey::AddOffsetsToTxn => &ADD_OFFSETS_TO_TXN_REQUEST,
        ApiKey::EndTxn => &END_TXN_REQUEST,
        ApiKey::DescribeTransactions => &DESCRIBE_TRANSACTIONS_REQUEST,
        ApiKey::ListTransactions => &LIST_TRANSACTIONS_REQUEST,
        ApiKey::WriteTxnMarkers => &WRITE_TXN_MARKERS_REQUEST,
        ApiKey::DescribeProducers => &DESCRIBE_PRODUCERS_REQUEST,
        ApiKey::AlterReplicaLogDirs => &ALTER_REPLICA_LOG_DIRS_REQUEST,
        _ => return None,
    })
}

static PARTITION_PRODUCE_DATA: Schema = Schema {
    flexible: Some(9),
    fields: &[
        f(0, MAX, Ty::I32),    // index
        f(9, MAX, Ty::CBytes), // records
        f(0, 8, Ty::Bytes),    // records
    ],
    tagged: &[],
};

static PRODUCE_REQUEST: Schema = Schema {
    flexible: Some(9),
    fields: &[
        f(9, MAX, Ty::CStr),                                   // transactional_id
        f(0, 8, Ty::Str),                                      // transactional_id
        f(0, MAX, Ty::I16),                                    // acks
        f(0, MAX, Ty::I32),                                    // timeout_ms
        f(9, MAX, Ty::CArr(&Ty::Struct(&TOPIC_PRODUCE_DATA))), // topic_data
        f(0, 8, Ty::Arr(&Ty::Struct(&TOPIC_PRODUCE_DATA))),    // topic_data
    ],
    tagged: &[],
};

static TOPIC_PRODUCE_DATA: Schema = Schema {
    flexible: Some(9),
    fields: &[
        f(9, 12, Ty::CStr),                                        // name
        f(0, 8, Ty::Str),                                          // name
        f(13, MAX, Ty::Uuid),                                      // topic_id
        f(9, MAX, Ty::CArr(&Ty::Struct(&PARTITION_PRODUCE_DATA))), // partition_data
        f(0, 8, Ty::Arr(&Ty::Struct(&PARTITION_PRODUCE_DATA))),    // partition_data
    ],
    tagged: &[],
};

static FETCH_PARTITION: Schema = Schema {
    flexible: Some(12),
    fields: &[
        f(0, MAX, Ty::I32),  // partition
        f(9, MAX, Ty::I32),  // current_leader_epoch
        f(0, MAX, Ty::I64),  // fetch_offset
        f(12, MAX, Ty::I32), // last_fetched_epoch
        f(5, MAX, Ty::I64),  // log_start_offset
        f(0, MAX, Ty::I32),  // partition_max_bytes
    ],
    tagged: &[t(0, 17, MAX, Ty::Uuid), t(1, 18, MAX, Ty::I64)],
};

static FETCH_REQUEST: Schema = Schema {
    flexible: Some(12),
    fields: &[
        f(0, 14, Ty::I32),                                   // replica_id
        f(0, MAX, Ty::I32),                                  // max_wait_ms
        f(0, MAX, Ty::I32),                                  // min_bytes
        f(0, MAX, Ty::I32),                                  // max_bytes
        f(0, MAX, Ty::I8),                                   // isolation_level
        f(7, MAX, Ty::I32),                                  // session_id
        f(7, MAX, Ty::I32),                                  // session_epoch
        f(12, MAX, Ty::CArr(&Ty::Struct(&FETCH_TOPIC))),     // topics
        f(0, 11, Ty::Arr(&Ty::Struct(&FETCH_TOPIC))),        // topics
        f(12, MAX, Ty::CArr(&Ty::Struct(&FORGOTTEN_TOPIC))), // forgotten_topics_data
        f(7, 11, Ty::Arr(&Ty::Struct(&FORGOTTEN_TOPIC))),    // forgotten_topics_data
        f(12, MAX, Ty::CStr),                                // rack_id
        f(11, 11, Ty::Str),                                  // rack_id
    ],
    tagged: &[t(0, 12, MAX, Ty::CStr), t(1, 15, MAX, Ty::Struct(&REPLICA_STATE))],
};

static FETCH_TOPIC: Schema = Schema {
    flexible: Some(12),
    fields: &[
        f(12, 12, Ty::CStr),                                 // topic
        f(0, 11, Ty::Str),                                   // topic
        f(13, MAX, Ty::Uuid),                                // topic_id
        f(12, MAX, Ty::CArr(&Ty::Struct(&FETCH_PARTITION))), // partitions
        f(0, 11, Ty::Arr(&Ty::Struct(&FETCH_PARTITION))),    // partitions
    ],
    tagged: &[],
};

static FORGOTTEN_TOPIC: Schema = Schema {
    flexible: Some(12),
    fields: &[
        f(12, 12, Ty::CStr),            // topic
        f(7, 11, Ty::Str),              // topic
        f(13, MAX, Ty::Uuid),           // topic_id
        f(12, MAX, Ty::CArr(&Ty::I32)), // partitions
        f(7, 11, Ty::Arr(&Ty::I32)),    // partitions
    ],
    tagged: &[],
};

static REPLICA_STATE: Schema = Schema {
    flexible: Some(12),
    fields: &[
        f(15, MAX, Ty::I32), // replica_id
        f(15, MAX, Ty::I64), // replica_epoch
    ],
    tagged: &[],
};

static LIST_OFFSETS_PARTITION: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(0, MAX, Ty::I32), // partition_index
        f(4, MAX, Ty::I32), // current_leader_epoch
        f(0, MAX, Ty::I64), // timestamp
    ],
    tagged: &[],
};

static LIST_OFFSETS_REQUEST: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(0, MAX, Ty::I32),                                    // replica_id
        f(2, MAX, Ty::I8),                                     // isolation_level
        f(6, MAX, Ty::CArr(&Ty::Struct(&LIST_OFFSETS_TOPIC))), // topics
        f(0, 5, Ty::Arr(&Ty::Struct(&LIST_OFFSETS_TOPIC))),    // topics
        f(10, MAX, Ty::I32),                                   // timeout_ms
    ],
    tagged: &[],
};

static LIST_OFFSETS_TOPIC: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(6, MAX, Ty::CStr),                                       // name
        f(0, 5, Ty::Str),                                          // name
        f(6, MAX, Ty::CArr(&Ty::Struct(&LIST_OFFSETS_PARTITION))), // partitions
        f(0, 5, Ty::Arr(&Ty::Struct(&LIST_OFFSETS_PARTITION))),    // partitions
    ],
    tagged: &[],
};

static METADATA_REQUEST: Schema = Schema {
    flexible: Some(9),
    fields: &[
        f(9, MAX, Ty::CArr(&Ty::Struct(&METADATA_REQUEST_TOPIC))), // topics
        f(0, 8, Ty::Arr(&Ty::Struct(&METADATA_REQUEST_TOPIC))),    // topics
        f(4, MAX, Ty::Bool),                                       // allow_auto_topic_creation
        f(8, 10, Ty::Bool),                                        // include_cluster_authorized_operations
        f(8, MAX, Ty::Bool),                                       // include_topic_authorized_operations
    ],
    tagged: &[],
};

static METADATA_REQUEST_TOPIC: Schema = Schema {
    flexible: Some(9),
    fields: &[
        f(10, MAX, Ty::Uuid), // topic_id
        f(9, MAX, Ty::CStr),  // name
        f(0, 8, Ty::Str),     // name
    ],
    tagged: &[],
};

static API_VERSIONS_REQUEST: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(3, MAX, Ty::CStr), // client_software_name
        f(3, MAX, Ty::CStr), // client_software_version
    ],
    tagged: &[],
};

static CREATABLE_REPLICA_ASSIGNMENT: Schema = Schema {
    flexible: Some(5),
    fields: &[
        f(0, MAX, Ty::I32),            // partition_index
        f(5, MAX, Ty::CArr(&Ty::I32)), // broker_ids
        f(0, 4, Ty::Arr(&Ty::I32)),    // broker_ids
    ],
    tagged: &[],
};

static CREATABLE_TOPIC: Schema = Schema {
    flexible: Some(5),
    fields: &[
        f(5, MAX, Ty::CStr),                                             // name
        f(0, 4, Ty::Str),                                                // name
        f(0, MAX, Ty::I32),                                              // num_partitions
        f(0, MAX, Ty::I16),                                              // replication_factor
        f(5, MAX, Ty::CArr(&Ty::Struct(&CREATABLE_REPLICA_ASSIGNMENT))), // assignments
        f(0, 4, Ty::Arr(&Ty::Struct(&CREATABLE_REPLICA_ASSIGNMENT))),    // assignments
        f(5, MAX, Ty::CArr(&Ty::Struct(&CREATABLE_TOPIC_CONFIG))),       // configs
        f(0, 4, Ty::Arr(&Ty::Struct(&CREATABLE_TOPIC_CONFIG))),          // configs
    ],
    tagged: &[],
};

static CREATABLE_TOPIC_CONFIG: Schema = Schema {
    flexible: Some(5),
    fields: &[
        f(5, MAX, Ty::CStr), // name
        f(0, 4, Ty::Str),    // name
        f(5, MAX, Ty::CStr), // value
        f(0, 4, Ty::Str),    // value
    ],
    tagged: &[],
};

static CREATE_TOPICS_REQUEST: Schema = Schema {
    flexible: Some(5),
    fields: &[
        f(5, MAX, Ty::CArr(&Ty::Struct(&CREATABLE_TOPIC))), // topics
        f(0, 4, Ty::Arr(&Ty::Struct(&CREATABLE_TOPIC))),    // topics
        f(0, MAX, Ty::I32),                                 // timeout_ms
        f(0, MAX, Ty::Bool),                                // validate_only
    ],
    tagged: &[],
};

static DELETE_TOPIC_STATE: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(6, MAX, Ty::CStr), // name
        f(6, MAX, Ty::Uuid), // topic_id
    ],
    tagged: &[],
};

static DELETE_TOPICS_REQUEST: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(6, MAX, Ty::CArr(&Ty::Struct(&DELETE_TOPIC_STATE))), // topics
        f(4, 5, Ty::CArr(&Ty::CStr)),                          // topic_names
        f(0, 3, Ty::Arr(&Ty::Str)),                            // topic_names
        f(0, MAX, Ty::I32),                                    // timeout_ms
    ],
    tagged: &[],
};

static INIT_PRODUCER_ID_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr), // transactional_id
        f(0, 1, Ty::Str),    // transactional_id
        f(0, MAX, Ty::I32),  // transaction_timeout_ms
        f(3, MAX, Ty::I64),  // producer_id
        f(3, MAX, Ty::I16),  // producer_epoch
    ],
    tagged: &[],
};

static DESCRIBE_CONFIGS_REQUEST: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(4, MAX, Ty::CArr(&Ty::Struct(&DESCRIBE_CONFIGS_RESOURCE))), // resources
        f(0, 3, Ty::Arr(&Ty::Struct(&DESCRIBE_CONFIGS_RESOURCE))),    // resources
        f(0, MAX, Ty::Bool),                                          // include_synonyms
        f(3, MAX, Ty::Bool),                                          // include_documentation
    ],
    tagged: &[],
};

static DESCRIBE_CONFIGS_RESOURCE: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(0, MAX, Ty::I8),              // resource_type
        f(4, MAX, Ty::CStr),            // resource_name
        f(0, 3, Ty::Str),               // resource_name
        f(4, MAX, Ty::CArr(&Ty::CStr)), // configuration_keys
        f(0, 3, Ty::Arr(&Ty::Str)),     // configuration_keys
    ],
    tagged: &[],
};

static DESCRIBE_CLUSTER_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::Bool), // include_cluster_authorized_operations
        f(1, MAX, Ty::I8),   // endpoint_type
        f(2, MAX, Ty::Bool), // include_fenced_brokers
    ],
    tagged: &[],
};

static FIND_COORDINATOR_REQUEST: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(3, 3, Ty::CStr),              // key
        f(0, 2, Ty::Str),               // key
        f(1, MAX, Ty::I8),              // key_type
        f(4, MAX, Ty::CArr(&Ty::CStr)), // coordinator_keys
    ],
    tagged: &[],
};

static JOIN_GROUP_REQUEST: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(6, MAX, Ty::CStr),                                            // group_id
        f(0, 5, Ty::Str),                                               // group_id
        f(0, MAX, Ty::I32),                                             // session_timeout_ms
        f(1, MAX, Ty::I32),                                             // rebalance_timeout_ms
        f(6, MAX, Ty::CStr),                                            // member_id
        f(0, 5, Ty::Str),                                               // member_id
        f(6, MAX, Ty::CStr),                                            // group_instance_id
        f(5, 5, Ty::Str),                                               // group_instance_id
        f(6, MAX, Ty::CStr),                                            // protocol_type
        f(0, 5, Ty::Str),                                               // protocol_type
        f(6, MAX, Ty::CArr(&Ty::Struct(&JOIN_GROUP_REQUEST_PROTOCOL))), // protocols
        f(0, 5, Ty::Arr(&Ty::Struct(&JOIN_GROUP_REQUEST_PROTOCOL))),    // protocols
        f(8, MAX, Ty::CStr),                                            // reason
    ],
    tagged: &[],
};

static JOIN_GROUP_REQUEST_PROTOCOL: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(6, MAX, Ty::CStr),   // name
        f(0, 5, Ty::Str),      // name
        f(6, MAX, Ty::CBytes), // metadata
        f(0, 5, Ty::Bytes),    // metadata
    ],
    tagged: &[],
};

static SYNC_GROUP_REQUEST: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(4, MAX, Ty::CStr),                                              // group_id
        f(0, 3, Ty::Str),                                                 // group_id
        f(0, MAX, Ty::I32),                                               // generation_id
        f(4, MAX, Ty::CStr),                                              // member_id
        f(0, 3, Ty::Str),                                                 // member_id
        f(4, MAX, Ty::CStr),                                              // group_instance_id
        f(3, 3, Ty::Str),                                                 // group_instance_id
        f(5, MAX, Ty::CStr),                                              // protocol_type
        f(5, MAX, Ty::CStr),                                              // protocol_name
        f(4, MAX, Ty::CArr(&Ty::Struct(&SYNC_GROUP_REQUEST_ASSIGNMENT))), // assignments
        f(0, 3, Ty::Arr(&Ty::Struct(&SYNC_GROUP_REQUEST_ASSIGNMENT))),    // assignments
    ],
    tagged: &[],
};

static SYNC_GROUP_REQUEST_ASSIGNMENT: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(4, MAX, Ty::CStr),   // member_id
        f(0, 3, Ty::Str),      // member_id
        f(4, MAX, Ty::CBytes), // assignment
        f(0, 3, Ty::Bytes),    // assignment
    ],
    tagged: &[],
};

static HEARTBEAT_REQUEST: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(4, MAX, Ty::CStr), // group_id
        f(0, 3, Ty::Str),    // group_id
        f(0, MAX, Ty::I32),  // generation_id
        f(4, MAX, Ty::CStr), // member_id
        f(0, 3, Ty::Str),    // member_id
        f(4, MAX, Ty::CStr), // group_instance_id
        f(3, 3, Ty::Str),    // group_instance_id
    ],
    tagged: &[],
};

static LEAVE_GROUP_REQUEST: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(4, MAX, Ty::CStr),                                // group_id
        f(0, 3, Ty::Str),                                   // group_id
        f(0, 2, Ty::Str),                                   // member_id
        f(4, MAX, Ty::CArr(&Ty::Struct(&MEMBER_IDENTITY))), // members
        f(3, 3, Ty::Arr(&Ty::Struct(&MEMBER_IDENTITY))),    // members
    ],
    tagged: &[],
};

static MEMBER_IDENTITY: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(4, MAX, Ty::CStr), // member_id
        f(3, 3, Ty::Str),    // member_id
        f(4, MAX, Ty::CStr), // group_instance_id
        f(3, 3, Ty::Str),    // group_instance_id
        f(5, MAX, Ty::CStr), // reason
    ],
    tagged: &[],
};

static OFFSET_COMMIT_REQUEST: Schema = Schema {
    flexible: Some(8),
    fields: &[
        f(8, MAX, Ty::CStr),                                            // group_id
        f(0, 7, Ty::Str),                                               // group_id
        f(0, MAX, Ty::I32),                                             // generation_id_or_member_epoch
        f(8, MAX, Ty::CStr),                                            // member_id
        f(0, 7, Ty::Str),                                               // member_id
        f(8, MAX, Ty::CStr),                                            // group_instance_id
        f(7, 7, Ty::Str),                                               // group_instance_id
        f(0, 4, Ty::I64),                                               // retention_time_ms
        f(8, MAX, Ty::CArr(&Ty::Struct(&OFFSET_COMMIT_REQUEST_TOPIC))), // topics
        f(0, 7, Ty::Arr(&Ty::Struct(&OFFSET_COMMIT_REQUEST_TOPIC))),    // topics
    ],
    tagged: &[],
};

static OFFSET_COMMIT_REQUEST_PARTITION: Schema = Schema {
    flexible: Some(8),
    fields: &[
        f(0, MAX, Ty::I32),  // partition_index
        f(0, MAX, Ty::I64),  // committed_offset
        f(6, MAX, Ty::I32),  // committed_leader_epoch
        f(8, MAX, Ty::CStr), // committed_metadata
        f(0, 7, Ty::Str),    // committed_metadata
    ],
    tagged: &[],
};

static OFFSET_COMMIT_REQUEST_TOPIC: Schema = Schema {
    flexible: Some(8),
    fields: &[
        f(8, MAX, Ty::CStr),                                                // name
        f(0, 7, Ty::Str),                                                   // name
        f(8, MAX, Ty::CArr(&Ty::Struct(&OFFSET_COMMIT_REQUEST_PARTITION))), // partitions
        f(0, 7, Ty::Arr(&Ty::Struct(&OFFSET_COMMIT_REQUEST_PARTITION))),    // partitions
    ],
    tagged: &[],
};

static OFFSET_FETCH_REQUEST: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(6, 7, Ty::CStr),                                             // group_id
        f(0, 5, Ty::Str),                                              // group_id
        f(6, 7, Ty::CArr(&Ty::Struct(&OFFSET_FETCH_REQUEST_TOPIC))),   // topics
        f(0, 5, Ty::Arr(&Ty::Struct(&OFFSET_FETCH_REQUEST_TOPIC))),    // topics
        f(8, MAX, Ty::CArr(&Ty::Struct(&OFFSET_FETCH_REQUEST_GROUP))), // groups
        f(7, MAX, Ty::Bool),                                           // require_stable
    ],
    tagged: &[],
};

static OFFSET_FETCH_REQUEST_GROUP: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(8, MAX, Ty::CStr),                                            // group_id
        f(9, MAX, Ty::CStr),                                            // member_id
        f(9, MAX, Ty::I32),                                             // member_epoch
        f(8, MAX, Ty::CArr(&Ty::Struct(&OFFSET_FETCH_REQUEST_TOPICS))), // topics
    ],
    tagged: &[],
};

static OFFSET_FETCH_REQUEST_TOPIC: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(6, 7, Ty::CStr),           // name
        f(0, 5, Ty::Str),            // name
        f(6, 7, Ty::CArr(&Ty::I32)), // partition_indexes
        f(0, 5, Ty::Arr(&Ty::I32)),  // partition_indexes
    ],
    tagged: &[],
};

static OFFSET_FETCH_REQUEST_TOPICS: Schema = Schema {
    flexible: Some(6),
    fields: &[
        f(8, MAX, Ty::CStr),           // name
        f(8, MAX, Ty::CArr(&Ty::I32)), // partition_indexes
    ],
    tagged: &[],
};

static DESCRIBE_GROUPS_REQUEST: Schema = Schema {
    flexible: Some(5),
    fields: &[
        f(5, MAX, Ty::CArr(&Ty::CStr)), // groups
        f(0, 4, Ty::Arr(&Ty::Str)),     // groups
        f(3, MAX, Ty::Bool),            // include_authorized_operations
    ],
    tagged: &[],
};

static LIST_GROUPS_REQUEST: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(4, MAX, Ty::CArr(&Ty::CStr)), // states_filter
        f(5, MAX, Ty::CArr(&Ty::CStr)), // types_filter
    ],
    tagged: &[],
};

static DELETE_GROUPS_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CArr(&Ty::CStr)), // groups_names
        f(0, 1, Ty::Arr(&Ty::Str)),     // groups_names
    ],
    tagged: &[],
};

static OFFSET_DELETE_REQUEST: Schema = Schema {
    flexible: None,
    fields: &[
        f(0, MAX, Ty::Str),                                            // group_id
        f(0, MAX, Ty::Arr(&Ty::Struct(&OFFSET_DELETE_REQUEST_TOPIC))), // topics
    ],
    tagged: &[],
};

static OFFSET_DELETE_REQUEST_PARTITION: Schema = Schema {
    flexible: None,
    fields: &[
        f(0, MAX, Ty::I32), // partition_index
    ],
    tagged: &[],
};

static OFFSET_DELETE_REQUEST_TOPIC: Schema = Schema {
    flexible: None,
    fields: &[
        f(0, MAX, Ty::Str),                                                // name
        f(0, MAX, Ty::Arr(&Ty::Struct(&OFFSET_DELETE_REQUEST_PARTITION))), // partitions
    ],
    tagged: &[],
};

static DELETE_RECORDS_PARTITION: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(0, MAX, Ty::I32), // partition_index
        f(0, MAX, Ty::I64), // offset
    ],
    tagged: &[],
};

static DELETE_RECORDS_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CArr(&Ty::Struct(&DELETE_RECORDS_TOPIC))), // topics
        f(0, 1, Ty::Arr(&Ty::Struct(&DELETE_RECORDS_TOPIC))),    // topics
        f(0, MAX, Ty::I32),                                      // timeout_ms
    ],
    tagged: &[],
};

static DELETE_RECORDS_TOPIC: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr),                                         // name
        f(0, 1, Ty::Str),                                            // name
        f(2, MAX, Ty::CArr(&Ty::Struct(&DELETE_RECORDS_PARTITION))), // partitions
        f(0, 1, Ty::Arr(&Ty::Struct(&DELETE_RECORDS_PARTITION))),    // partitions
    ],
    tagged: &[],
};

static CREATE_PARTITIONS_ASSIGNMENT: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CArr(&Ty::I32)), // broker_ids
        f(0, 1, Ty::Arr(&Ty::I32)),    // broker_ids
    ],
    tagged: &[],
};

static CREATE_PARTITIONS_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CArr(&Ty::Struct(&CREATE_PARTITIONS_TOPIC))), // topics
        f(0, 1, Ty::Arr(&Ty::Struct(&CREATE_PARTITIONS_TOPIC))),    // topics
        f(0, MAX, Ty::I32),                                         // timeout_ms
        f(0, MAX, Ty::Bool),                                        // validate_only
    ],
    tagged: &[],
};

static CREATE_PARTITIONS_TOPIC: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr),                                             // name
        f(0, 1, Ty::Str),                                                // name
        f(0, MAX, Ty::I32),                                              // count
        f(2, MAX, Ty::CArr(&Ty::Struct(&CREATE_PARTITIONS_ASSIGNMENT))), // assignments
        f(0, 1, Ty::Arr(&Ty::Struct(&CREATE_PARTITIONS_ASSIGNMENT))),    // assignments
    ],
    tagged: &[],
};

static ALTER_CONFIGS_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CArr(&Ty::Struct(&ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE))), // resources
        f(0, 1, Ty::Arr(&Ty::Struct(&ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE))),    // resources
        f(0, MAX, Ty::Bool),                                                     // validate_only
    ],
    tagged: &[],
};

static ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(0, MAX, Ty::I8),                                                 // resource_type
        f(2, MAX, Ty::CStr),                                               // resource_name
        f(0, 1, Ty::Str),                                                  // resource_name
        f(2, MAX, Ty::CArr(&Ty::Struct(&ALTER_CONFIGS_ALTERABLE_CONFIG))), // configs
        f(0, 1, Ty::Arr(&Ty::Struct(&ALTER_CONFIGS_ALTERABLE_CONFIG))),    // configs
    ],
    tagged: &[],
};

static ALTER_CONFIGS_ALTERABLE_CONFIG: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr), // name
        f(0, 1, Ty::Str),    // name
        f(2, MAX, Ty::CStr), // value
        f(0, 1, Ty::Str),    // value
    ],
    tagged: &[],
};

static DESCRIBABLE_LOG_DIR_TOPIC: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr),           // topic
        f(0, 1, Ty::Str),              // topic
        f(2, MAX, Ty::CArr(&Ty::I32)), // partitions
        f(0, 1, Ty::Arr(&Ty::I32)),    // partitions
    ],
    tagged: &[],
};

static DESCRIBE_LOG_DIRS_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CArr(&Ty::Struct(&DESCRIBABLE_LOG_DIR_TOPIC))), // topics
        f(0, 1, Ty::Arr(&Ty::Struct(&DESCRIBABLE_LOG_DIR_TOPIC))),    // topics
    ],
    tagged: &[],
};

static INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE: Schema = Schema {
    flexible: Some(1),
    fields: &[
        f(0, MAX, Ty::I8),                                                             // resource_type
        f(1, MAX, Ty::CStr),                                                           // resource_name
        f(0, 0, Ty::Str),                                                              // resource_name
        f(1, MAX, Ty::CArr(&Ty::Struct(&INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG))), // configs
        f(0, 0, Ty::Arr(&Ty::Struct(&INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG))),    // configs
    ],
    tagged: &[],
};

static INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG: Schema = Schema {
    flexible: Some(1),
    fields: &[
        f(1, MAX, Ty::CStr), // name
        f(0, 0, Ty::Str),    // name
        f(0, MAX, Ty::I8),   // config_operation
        f(1, MAX, Ty::CStr), // value
        f(0, 0, Ty::Str),    // value
    ],
    tagged: &[],
};

static INCREMENTAL_ALTER_CONFIGS_REQUEST: Schema = Schema {
    flexible: Some(1),
    fields: &[
        f(1, MAX, Ty::CArr(&Ty::Struct(&INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE))), // resources
        f(0, 0, Ty::Arr(&Ty::Struct(&INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE))),    // resources
        f(0, MAX, Ty::Bool),                                                                 // validate_only
    ],
    tagged: &[],
};

static DESCRIBE_QUORUM_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CArr(&Ty::Struct(&DESCRIBE_QUORUM_TOPIC))), // topics
    ],
    tagged: &[],
};

static DESCRIBE_QUORUM_TOPIC: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CStr),                                          // topic_name
        f(0, MAX, Ty::CArr(&Ty::Struct(&DESCRIBE_QUORUM_PARTITION))), // partitions
    ],
    tagged: &[],
};

static DESCRIBE_QUORUM_PARTITION: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::I32), // partition_index
    ],
    tagged: &[],
};

static DESCRIBE_TOPIC_PARTITIONS_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CArr(&Ty::Struct(&DESCRIBE_TOPIC_PARTITIONS_TOPIC))), // topics
        f(0, MAX, Ty::I32),                                                 // response_partition_limit
        f(0, MAX, Ty::OptStruct(&DESCRIBE_TOPIC_PARTITIONS_CURSOR)),        // cursor
    ],
    tagged: &[],
};

static DESCRIBE_TOPIC_PARTITIONS_TOPIC: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CStr), // name
    ],
    tagged: &[],
};

static DESCRIBE_TOPIC_PARTITIONS_CURSOR: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CStr), // topic_name
        f(0, MAX, Ty::I32),  // partition_index
    ],
    tagged: &[],
};

static OFFSET_FOR_LEADER_EPOCH_REQUEST: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(3, MAX, Ty::I32),                                         // replica_id
        f(4, MAX, Ty::CArr(&Ty::Struct(&OFFSET_FOR_LEADER_TOPIC))), // topics
        f(0, 3, Ty::Arr(&Ty::Struct(&OFFSET_FOR_LEADER_TOPIC))),    // topics
    ],
    tagged: &[],
};

static OFFSET_FOR_LEADER_TOPIC: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(4, MAX, Ty::CStr),                                            // topic
        f(0, 3, Ty::Str),                                               // topic
        f(4, MAX, Ty::CArr(&Ty::Struct(&OFFSET_FOR_LEADER_PARTITION))), // partitions
        f(0, 3, Ty::Arr(&Ty::Struct(&OFFSET_FOR_LEADER_PARTITION))),    // partitions
    ],
    tagged: &[],
};

static OFFSET_FOR_LEADER_PARTITION: Schema = Schema {
    flexible: Some(4),
    fields: &[
        f(0, MAX, Ty::I32), // partition
        f(2, MAX, Ty::I32), // current_leader_epoch
        f(0, MAX, Ty::I32), // leader_epoch
    ],
    tagged: &[],
};

static ELECT_LEADERS_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(1, MAX, Ty::I8),                                                 // election_type
        f(2, MAX, Ty::CArr(&Ty::Struct(&ELECT_LEADERS_TOPIC_PARTITIONS))), // topic_partitions
        f(0, 1, Ty::Arr(&Ty::Struct(&ELECT_LEADERS_TOPIC_PARTITIONS))),    // topic_partitions
        f(0, MAX, Ty::I32),                                                // timeout_ms
    ],
    tagged: &[],
};

static ELECT_LEADERS_TOPIC_PARTITIONS: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr),           // topic
        f(0, 1, Ty::Str),              // topic
        f(2, MAX, Ty::CArr(&Ty::I32)), // partitions
        f(0, 1, Ty::Arr(&Ty::I32)),    // partitions
    ],
    tagged: &[],
};

static ALTER_PARTITION_REASSIGNMENTS_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::I32),                                    // timeout_ms
        f(1, MAX, Ty::Bool),                                   // allow_replication_factor_change
        f(0, MAX, Ty::CArr(&Ty::Struct(&REASSIGNABLE_TOPIC))), // topics
    ],
    tagged: &[],
};

static REASSIGNABLE_TOPIC: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CStr),                                       // name
        f(0, MAX, Ty::CArr(&Ty::Struct(&REASSIGNABLE_PARTITION))), // partitions
    ],
    tagged: &[],
};

static REASSIGNABLE_PARTITION: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::I32),            // partition_index
        f(0, MAX, Ty::CArr(&Ty::I32)), // replicas (null: cancel)
    ],
    tagged: &[],
};

static LIST_PARTITION_REASSIGNMENTS_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::I32),                                                    // timeout_ms
        f(0, MAX, Ty::CArr(&Ty::Struct(&LIST_PARTITION_REASSIGNMENTS_TOPIC))), // topics (null: all)
    ],
    tagged: &[],
};

static LIST_PARTITION_REASSIGNMENTS_TOPIC: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CStr),           // name
        f(0, MAX, Ty::CArr(&Ty::I32)), // partition_indexes
    ],
    tagged: &[],
};

static WRITE_TXN_MARKERS_REQUEST: Schema = Schema {
    flexible: Some(1),
    fields: &[
        f(1, MAX, Ty::CArr(&Ty::Struct(&WRITABLE_TXN_MARKER))), // markers (v0 is gone from Kafka 4)
    ],
    tagged: &[],
};

static WRITABLE_TXN_MARKER: Schema = Schema {
    flexible: Some(1),
    fields: &[
        f(0, MAX, Ty::I64),                                           // producer_id
        f(0, MAX, Ty::I16),                                           // producer_epoch
        f(0, MAX, Ty::Bool),                                          // transaction_result
        f(1, MAX, Ty::CArr(&Ty::Struct(&WRITABLE_TXN_MARKER_TOPIC))), // topics
        f(0, MAX, Ty::I32),                                           // coordinator_epoch
    ],
    tagged: &[],
};

static WRITABLE_TXN_MARKER_TOPIC: Schema = Schema {
    flexible: Some(1),
    fields: &[
        f(1, MAX, Ty::CStr),           // name
        f(1, MAX, Ty::CArr(&Ty::I32)), // partition_indexes
    ],
    tagged: &[],
};

static DESCRIBE_PRODUCERS_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CArr(&Ty::Struct(&DESCRIBE_PRODUCERS_TOPIC))), // topics
    ],
    tagged: &[],
};

static DESCRIBE_PRODUCERS_TOPIC: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CStr),           // name
        f(0, MAX, Ty::CArr(&Ty::I32)), // partition_indexes
    ],
    tagged: &[],
};

static ALTER_REPLICA_LOG_DIRS_REQUEST: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CArr(&Ty::Struct(&ALTER_REPLICA_LOG_DIR))), // dirs
        f(0, 1, Ty::Arr(&Ty::Struct(&ALTER_REPLICA_LOG_DIR))),    // dirs
    ],
    tagged: &[],
};

static ALTER_REPLICA_LOG_DIR: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr),                                            // path
        f(0, 1, Ty::Str),                                               // path
        f(2, MAX, Ty::CArr(&Ty::Struct(&ALTER_REPLICA_LOG_DIR_TOPIC))), // topics
        f(0, 1, Ty::Arr(&Ty::Struct(&ALTER_REPLICA_LOG_DIR_TOPIC))),    // topics
    ],
    tagged: &[],
};

static ALTER_REPLICA_LOG_DIR_TOPIC: Schema = Schema {
    flexible: Some(2),
    fields: &[
        f(2, MAX, Ty::CStr),           // name
        f(0, 1, Ty::Str),              // name
        f(2, MAX, Ty::CArr(&Ty::I32)), // partitions
        f(0, 1, Ty::Arr(&Ty::I32)),    // partitions
    ],
    tagged: &[],
};

static TXN_OFFSET_COMMIT_REQUEST: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(3, MAX, Ty::CStr),                                                // transactional_id
        f(0, 2, Ty::Str),                                                   // transactional_id
        f(3, MAX, Ty::CStr),                                                // group_id
        f(0, 2, Ty::Str),                                                   // group_id
        f(0, MAX, Ty::I64),                                                 // producer_id
        f(0, MAX, Ty::I16),                                                 // producer_epoch
        f(3, MAX, Ty::I32),                                                 // generation_id
        f(3, MAX, Ty::CStr),                                                // member_id
        f(3, MAX, Ty::CStr),                                                // group_instance_id
        f(3, MAX, Ty::CArr(&Ty::Struct(&TXN_OFFSET_COMMIT_REQUEST_TOPIC))), // topics
        f(0, 2, Ty::Arr(&Ty::Struct(&TXN_OFFSET_COMMIT_REQUEST_TOPIC))),    // topics
    ],
    tagged: &[],
};

static TXN_OFFSET_COMMIT_REQUEST_TOPIC: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(3, MAX, Ty::CStr),                                                    // name
        f(0, 2, Ty::Str),                                                       // name
        f(3, MAX, Ty::CArr(&Ty::Struct(&TXN_OFFSET_COMMIT_REQUEST_PARTITION))), // partitions
        f(0, 2, Ty::Arr(&Ty::Struct(&TXN_OFFSET_COMMIT_REQUEST_PARTITION))),    // partitions
    ],
    tagged: &[],
};

static TXN_OFFSET_COMMIT_REQUEST_PARTITION: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(0, MAX, Ty::I32),  // partition_index
        f(0, MAX, Ty::I64),  // committed_offset
        f(2, MAX, Ty::I32),  // committed_leader_epoch
        f(3, MAX, Ty::CStr), // committed_metadata
        f(0, 2, Ty::Str),    // committed_metadata
    ],
    tagged: &[],
};

static ADD_PARTITIONS_TO_TXN_REQUEST: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(4, MAX, Ty::CArr(&Ty::Struct(&ADD_PARTITIONS_TO_TXN_TRANSACTION))), // transactions
        f(3, 3, Ty::CStr),                                                    // v3_and_below_transactional_id
        f(0, 2, Ty::Str),                                                     // v3_and_below_transactional_id
        f(0, 3, Ty::I64),                                                     // v3_and_below_producer_id
        f(0, 3, Ty::I16),                                                     // v3_and_below_producer_epoch
        f(3, 3, Ty::CArr(&Ty::Struct(&ADD_PARTITIONS_TO_TXN_TOPIC))),         // v3_and_below_topics
        f(0, 2, Ty::Arr(&Ty::Struct(&ADD_PARTITIONS_TO_TXN_TOPIC))),          // v3_and_below_topics
    ],
    tagged: &[],
};

static ADD_PARTITIONS_TO_TXN_TRANSACTION: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(4, MAX, Ty::CStr),                                            // transactional_id
        f(4, MAX, Ty::I64),                                             // producer_id
        f(4, MAX, Ty::I16),                                             // producer_epoch
        f(4, MAX, Ty::Bool),                                            // verify_only
        f(4, MAX, Ty::CArr(&Ty::Struct(&ADD_PARTITIONS_TO_TXN_TOPIC))), // topics
    ],
    tagged: &[],
};

static ADD_PARTITIONS_TO_TXN_TOPIC: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(3, MAX, Ty::CStr),           // name
        f(0, 2, Ty::Str),              // name
        f(3, MAX, Ty::CArr(&Ty::I32)), // partitions
        f(0, 2, Ty::Arr(&Ty::I32)),    // partitions
    ],
    tagged: &[],
};

static ADD_OFFSETS_TO_TXN_REQUEST: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(3, MAX, Ty::CStr), // transactional_id
        f(0, 2, Ty::Str),    // transactional_id
        f(0, MAX, Ty::I64),  // producer_id
        f(0, MAX, Ty::I16),  // producer_epoch
        f(3, MAX, Ty::CStr), // group_id
        f(0, 2, Ty::Str),    // group_id
    ],
    tagged: &[],
};

static END_TXN_REQUEST: Schema = Schema {
    flexible: Some(3),
    fields: &[
        f(3, MAX, Ty::CStr), // transactional_id
        f(0, 2, Ty::Str),    // transactional_id
        f(0, MAX, Ty::I64),  // producer_id
        f(0, MAX, Ty::I16),  // producer_epoch
        f(0, MAX, Ty::Bool), // committed
    ],
    tagged: &[],
};

static DESCRIBE_TRANSACTIONS_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CArr(&Ty::CStr)), // transactional_ids
    ],
    tagged: &[],
};

static LIST_TRANSACTIONS_REQUEST: Schema = Schema {
    flexible: Some(0),
    fields: &[
        f(0, MAX, Ty::CArr(&Ty::CStr)), // state_filters
        f(0, MAX, Ty::CArr(&Ty::I64)),  // producer_id_filters
        f(1, MAX, Ty::I64),             // duration_filter
        f(2, MAX, Ty::CStr),            // transactional_id_pattern
    ],
    tagged: &[],
};
