//! Kafka error codes, as numbered by the protocol guide.

/// A Kafka protocol error code. Only the codes Strom produces are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
#[non_exhaustive]
pub enum ErrorCode {
    UnknownServerError = -1,
    None = 0,
    OffsetOutOfRange = 1,
    CorruptMessage = 2,
    UnknownTopicOrPartition = 3,
    InvalidFetchSize = 4,
    LeaderNotAvailable = 5,
    NotLeaderOrFollower = 6,
    RequestTimedOut = 7,
    MessageTooLarge = 10,
    InvalidTopicException = 17,
    RecordListTooLarge = 18,
    NotEnoughReplicas = 19,
    InvalidRequiredAcks = 21,
    InvalidTimestamp = 32,
    UnsupportedForMessageFormat = 43,
    UnsupportedVersion = 35,
    TopicAlreadyExists = 36,
    InvalidPartitions = 37,
    InvalidReplicationFactor = 38,
    InvalidReplicaAssignment = 39,
    InvalidConfig = 40,
    InvalidRequest = 42,
    PolicyViolation = 44,
    KafkaStorageError = 56,
    UnknownTopicId = 100,
    FetchSessionIdNotFound = 70,
    InvalidFetchSessionEpoch = 71,
    FetchSessionTopicIdError = 106,
    InconsistentTopicId = 103,
    UnknownLeaderEpoch = 75,
    FencedLeaderEpoch = 74,
    TopicDeletionDisabled = 73,
    GroupAuthorizationFailed = 30,
    CoordinatorNotAvailable = 15,
    InvalidRecord = 87,
    CoordinatorLoadInProgress = 14,
    NotCoordinator = 16,
    NotController = 41,
    StaleBrokerEpoch = 77,
    BrokerIdNotRegistered = 102,
    DuplicateBrokerRegistration = 101,
    InconsistentClusterId = 104,
    NotEnoughReplicasAfterAppend = 20,
    PreferredLeaderNotAvailable = 80,
    EligibleLeadersNotAvailable = 83,
    ElectionNotNeeded = 84,
    NoReassignmentInProgress = 85,
    IneligibleReplica = 107,
    InvalidUpdateVersion = 95,
    OffsetNotAvailable = 78,
    NetworkException = 13,
    IllegalGeneration = 22,
    UnknownMemberId = 25,
    OutOfOrderSequenceNumber = 45,
    DuplicateSequenceNumber = 46,
    InvalidProducerEpoch = 47,
    InvalidTxnState = 48,
    InvalidProducerIdMapping = 49,
    InvalidTransactionTimeout = 50,
    ConcurrentTransactions = 51,
    TransactionCoordinatorFenced = 52,
    TransactionalIdAuthorizationFailed = 53,
    UnknownProducerId = 59,
    GroupIdNotFound = 69,
    FencedInstanceId = 82,
    UnstableOffsetCommit = 88,
    ProducerFenced = 90,
    TransactionalIdNotFound = 105,
    TransactionAbortable = 120,
    ReplicaNotAvailable = 9,
    LogDirNotFound = 57,
}

/// Every named code, for [`ErrorCode::from_code`].
const ALL: &[ErrorCode] = &[
    ErrorCode::UnknownServerError,
    ErrorCode::None,
    ErrorCode::OffsetOutOfRange,
    ErrorCode::CorruptMessage,
    ErrorCode::UnknownTopicOrPartition,
    ErrorCode::InvalidFetchSize,
    ErrorCode::LeaderNotAvailable,
    ErrorCode::NotLeaderOrFollower,
    ErrorCode::RequestTimedOut,
    ErrorCode::MessageTooLarge,
    ErrorCode::InvalidTopicException,
    ErrorCode::RecordListTooLarge,
    ErrorCode::NotEnoughReplicas,
    ErrorCode::InvalidRequiredAcks,
    ErrorCode::InvalidTimestamp,
    ErrorCode::UnsupportedForMessageFormat,
    ErrorCode::UnsupportedVersion,
    ErrorCode::TopicAlreadyExists,
    ErrorCode::InvalidPartitions,
    ErrorCode::InvalidReplicationFactor,
    ErrorCode::InvalidReplicaAssignment,
    ErrorCode::InvalidConfig,
    ErrorCode::InvalidRequest,
    ErrorCode::PolicyViolation,
    ErrorCode::KafkaStorageError,
    ErrorCode::UnknownTopicId,
    ErrorCode::FetchSessionIdNotFound,
    ErrorCode::InvalidFetchSessionEpoch,
    ErrorCode::FetchSessionTopicIdError,
    ErrorCode::InconsistentTopicId,
    ErrorCode::UnknownLeaderEpoch,
    ErrorCode::FencedLeaderEpoch,
    ErrorCode::TopicDeletionDisabled,
    ErrorCode::GroupAuthorizationFailed,
    ErrorCode::CoordinatorNotAvailable,
    ErrorCode::InvalidRecord,
    ErrorCode::CoordinatorLoadInProgress,
    ErrorCode::NotCoordinator,
    ErrorCode::NotController,
    ErrorCode::StaleBrokerEpoch,
    ErrorCode::BrokerIdNotRegistered,
    ErrorCode::DuplicateBrokerRegistration,
    ErrorCode::InconsistentClusterId,
    ErrorCode::NotEnoughReplicasAfterAppend,
    ErrorCode::PreferredLeaderNotAvailable,
    ErrorCode::EligibleLeadersNotAvailable,
    ErrorCode::ElectionNotNeeded,
    ErrorCode::NoReassignmentInProgress,
    ErrorCode::IneligibleReplica,
    ErrorCode::InvalidUpdateVersion,
    ErrorCode::OffsetNotAvailable,
    ErrorCode::NetworkException,
    ErrorCode::IllegalGeneration,
    ErrorCode::UnknownMemberId,
    ErrorCode::OutOfOrderSequenceNumber,
    ErrorCode::DuplicateSequenceNumber,
    ErrorCode::InvalidProducerEpoch,
    ErrorCode::InvalidTxnState,
    ErrorCode::InvalidProducerIdMapping,
    ErrorCode::InvalidTransactionTimeout,
    ErrorCode::ConcurrentTransactions,
    ErrorCode::TransactionCoordinatorFenced,
    ErrorCode::TransactionalIdAuthorizationFailed,
    ErrorCode::UnknownProducerId,
    ErrorCode::GroupIdNotFound,
    ErrorCode::FencedInstanceId,
    ErrorCode::UnstableOffsetCommit,
    ErrorCode::ProducerFenced,
    ErrorCode::TransactionalIdNotFound,
    ErrorCode::TransactionAbortable,
    ErrorCode::ReplicaNotAvailable,
    ErrorCode::LogDirNotFound,
];

impl ErrorCode {
    pub fn code(self) -> i16 {
        self as i16
    }

    /// The named code for a number; codes Strom does not name become UNKNOWN_SERVER_ERROR.
    pub fn from_code(code: i16) -> ErrorCode {
        ALL.iter().copied().find(|c| c.code() == code).unwrap_or(ErrorCode::UnknownServerError)
    }

    /// Whether a client should retry the request that got this code.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::CorruptMessage
                | ErrorCode::UnknownTopicOrPartition
                | ErrorCode::LeaderNotAvailable
                | ErrorCode::NotLeaderOrFollower
                | ErrorCode::RequestTimedOut
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend
                | ErrorCode::UnknownLeaderEpoch
                | ErrorCode::FencedLeaderEpoch
                | ErrorCode::OffsetNotAvailable
                | ErrorCode::NetworkException
                | ErrorCode::ConcurrentTransactions
                | ErrorCode::UnstableOffsetCommit
                | ErrorCode::PreferredLeaderNotAvailable
                | ErrorCode::EligibleLeadersNotAvailable
                | ErrorCode::KafkaStorageError
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::UnknownTopicId
                | ErrorCode::NotController
                | ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorLoadInProgress
        )
    }
}

/// A readable name for an error code a peer returned.
pub fn error_name(code: i16) -> &'static str {
    match code {
        -1 => "UNKNOWN_SERVER_ERROR",
        0 => "NONE",
        1 => "OFFSET_OUT_OF_RANGE",
        2 => "CORRUPT_MESSAGE",
        3 => "UNKNOWN_TOPIC_OR_PARTITION",
        4 => "INVALID_FETCH_SIZE",
        5 => "LEADER_NOT_AVAILABLE",
        6 => "NOT_LEADER_OR_FOLLOWER",
        7 => "REQUEST_TIMED_OUT",
        10 => "MESSAGE_TOO_LARGE",
        12 => "OFFSET_METADATA_TOO_LARGE",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        17 => "INVALID_TOPIC_EXCEPTION",
        18 => "RECORD_LIST_TOO_LARGE",
        19 => "NOT_ENOUGH_REPLICAS",
        9 => "REPLICA_NOT_AVAILABLE",
        57 => "LOG_DIR_NOT_FOUND",
        21 => "INVALID_REQUIRED_ACKS",
        22 => "ILLEGAL_GENERATION",
        23 => "INCONSISTENT_GROUP_PROTOCOL",
        24 => "INVALID_GROUP_ID",
        25 => "UNKNOWN_MEMBER_ID",
        26 => "INVALID_SESSION_TIMEOUT",
        27 => "REBALANCE_IN_PROGRESS",
        32 => "INVALID_TIMESTAMP",
        35 => "UNSUPPORTED_VERSION",
        36 => "TOPIC_ALREADY_EXISTS",
        37 => "INVALID_PARTITIONS",
        38 => "INVALID_REPLICATION_FACTOR",
        39 => "INVALID_REPLICA_ASSIGNMENT",
        40 => "INVALID_CONFIG",
        42 => "INVALID_REQUEST",
        43 => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        44 => "POLICY_VIOLATION",
        56 => "KAFKA_STORAGE_ERROR",
        68 => "NON_EMPTY_GROUP",
        69 => "GROUP_ID_NOT_FOUND",
        70 => "FETCH_SESSION_ID_NOT_FOUND",
        71 => "INVALID_FETCH_SESSION_EPOCH",
        79 => "MEMBER_ID_REQUIRED",
        81 => "GROUP_MAX_SIZE_REACHED",
        82 => "FENCED_INSTANCE_ID",
        86 => "GROUP_SUBSCRIBED_TO_TOPIC",
        41 => "NOT_CONTROLLER",
        77 => "STALE_BROKER_EPOCH",
        100 => "UNKNOWN_TOPIC_ID",
        101 => "DUPLICATE_BROKER_REGISTRATION",
        102 => "BROKER_ID_NOT_REGISTERED",
        104 => "INCONSISTENT_CLUSTER_ID",
        20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        74 => "FENCED_LEADER_EPOCH",
        75 => "UNKNOWN_LEADER_EPOCH",
        78 => "OFFSET_NOT_AVAILABLE",
        80 => "PREFERRED_LEADER_NOT_AVAILABLE",
        83 => "ELIGIBLE_LEADERS_NOT_AVAILABLE",
        84 => "ELECTION_NOT_NEEDED",
        85 => "NO_REASSIGNMENT_IN_PROGRESS",
        107 => "INELIGIBLE_REPLICA",
        95 => "INVALID_UPDATE_VERSION",
        13 => "NETWORK_EXCEPTION",
        45 => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        46 => "DUPLICATE_SEQUENCE_NUMBER",
        47 => "INVALID_PRODUCER_EPOCH",
        48 => "INVALID_TXN_STATE",
        49 => "INVALID_PRODUCER_ID_MAPPING",
        50 => "INVALID_TRANSACTION_TIMEOUT",
        51 => "CONCURRENT_TRANSACTIONS",
        52 => "TRANSACTION_COORDINATOR_FENCED",
        53 => "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        59 => "UNKNOWN_PRODUCER_ID",
        88 => "UNSTABLE_OFFSET_COMMIT",
        90 => "PRODUCER_FENCED",
        105 => "TRANSACTIONAL_ID_NOT_FOUND",
        120 => "TRANSACTION_ABORTABLE",
        _ => "UNKNOWN_ERROR_CODE",
    }
}
