use super::*;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

fn body<R: Encodable>(r: &R, v: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    r.encode(&mut b, v).unwrap();
    b.to_vec()
}

#[test]
fn every_accepted_api_has_a_layout() {
    for &(api, _, _) in crate::versions::SUPPORTED {
        assert!(request_schema(api).is_some(), "{api:?}");
    }
}

fn default_passes<R: Encodable + Default + kafka_protocol::protocol::Message>(
    api: ApiKey,
    lo: i16,
    hi: i16,
) -> Result<(), crate::frame::FrameError> {
    for v in lo.max(R::VERSIONS.min)..=hi {
        let b = body(&R::default(), v);
        assert_eq!(check_request(api, v, &b), Ok(b.len()), "{api:?} v{v}");
    }
    Ok(())
}

#[test]
fn default_requests_pass_at_every_accepted_version() {
    for &(api, lo, hi) in crate::versions::SUPPORTED {
        crate::with_request_type!(api, default_passes, api, lo, hi).unwrap();
    }
}

#[test]
fn nested_fetch_passes_and_consumes_everything() {
    for v in 4..=16i16 {
        let mut p = fetch_request::FetchPartition::default();
        p.partition = 3;
        p.fetch_offset = 42;
        let mut t = fetch_request::FetchTopic::default();
        t.topic = TopicName(StrBytes::from_static_str("orders"));
        t.partitions = vec![p.clone(), p];
        let mut r = FetchRequest::default();
        r.topics = vec![t.clone(), t];
        let b = body(&r, v);
        assert_eq!(check_request(ApiKey::Fetch, v, &b), Ok(b.len()), "v{v}");
        // Every byte short of the end is a truncation, never a pass.
        assert!(check_request(ApiKey::Fetch, v, &b[..b.len() - 1]).is_err(), "v{v}");
    }
}

#[test]
fn huge_counts_are_refused_before_any_walk() {
    // Metadata v0: topics array claiming i32::MAX entries, no bytes behind it.
    let mut b = vec![];
    b.put_i32(i32::MAX);
    assert!(matches!(check_request(ApiKey::Metadata, 0, &b), Err(BoundsError::ImpossibleCount { .. })));
    // Metadata v12 (compact): the largest varint.
    let b = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(check_request(ApiKey::Metadata, 12, &b), Err(BoundsError::ImpossibleCount { .. })));
    // Produce v3: one topic claiming 2^31-1 partitions.
    let mut b = vec![];
    b.put_i16(-1);
    b.put_i16(1);
    b.put_i32(1000);
    b.put_i32(1);
    b.put_i16(1);
    b.put_u8(b't');
    b.put_i32(i32::MAX);
    assert!(matches!(check_request(ApiKey::Produce, 3, &b), Err(BoundsError::ImpossibleCount { .. })));
}

#[test]
fn min_sizes_follow_versions() {
    // FetchPartition v4: partition, fetch_offset, partition_max_bytes = 16 bytes.
    let fetch = request_schema(ApiKey::Fetch).unwrap();
    let Ty::Arr(Ty::Struct(topic)) = fetch.fields.iter().find(|f| f.lo == 0 && f.hi == 11 && matches!(f.ty, Ty::Arr(_))).unwrap().ty else {
        panic!("layout changed")
    };
    assert_eq!(min_size(&Ty::Struct(topic), 4), 2 + 4);
}

/// Walks `r` encoded at `v`: the walk must read exactly what the codec reads (the
/// whole body), and every shorter prefix must fail.
fn walks_exactly<R: Encodable + kafka_protocol::protocol::Decodable>(api: ApiKey, r: &R, v: i16) {
    let b = body(r, v);
    assert_eq!(check_request(api, v, &b), Ok(b.len()), "{api:?} v{v}");
    let mut bytes = bytes::Bytes::from(b.clone());
    R::decode(&mut bytes, v).unwrap();
    assert!(bytes.is_empty(), "{api:?} v{v}: codec left {} bytes", bytes.len());
    for n in 0..b.len() {
        assert!(check_request(api, v, &b[..n]).is_err(), "{api:?} v{v}: prefix of {n} bytes passes");
    }
}

fn name(s: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(s))
}

#[test]
fn describe_topic_partitions_with_and_without_cursor() {
    let mut t = describe_topic_partitions_request::TopicRequest::default();
    t.name = name("orders");
    let mut r = DescribeTopicPartitionsRequest::default();
    r.topics = vec![t.clone(), t];
    r.response_partition_limit = 7;
    walks_exactly(ApiKey::DescribeTopicPartitions, &r, 0);
    let mut c = describe_topic_partitions_request::Cursor::default();
    c.topic_name = name("orders");
    c.partition_index = 3;
    r.cursor = Some(c);
    walks_exactly(ApiKey::DescribeTopicPartitions, &r, 0);
    // Any marker other than 1 is a null cursor to the codec, and to the walk.
    let mut b = body(&DescribeTopicPartitionsRequest::default(), 0);
    let at = b.len() - 2;
    assert_eq!(b[at], 0xff);
    b[at] = 0;
    assert_eq!(check_request(ApiKey::DescribeTopicPartitions, 0, &b), Ok(b.len()));
    // A topics count far beyond the body.
    let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 1, 0xff, 0];
    assert!(matches!(check_request(ApiKey::DescribeTopicPartitions, 0, &huge), Err(BoundsError::ImpossibleCount { .. })));
}

#[test]
fn offset_for_leader_epoch_nested() {
    for v in 2..=4i16 {
        let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
        p.partition = 1;
        p.current_leader_epoch = 4;
        p.leader_epoch = 3;
        let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
        t.topic = name("orders");
        t.partitions = vec![p.clone(), p];
        let mut r = OffsetForLeaderEpochRequest::default();
        r.replica_id = BrokerId(-1);
        r.topics = vec![t.clone(), t];
        walks_exactly(ApiKey::OffsetForLeaderEpoch, &r, v);
    }
    // v2: one topic claiming i32::MAX partitions.
    let mut b = vec![];
    b.put_i32(1);
    b.put_i16(1);
    b.put_u8(b't');
    b.put_i32(i32::MAX);
    assert!(matches!(check_request(ApiKey::OffsetForLeaderEpoch, 2, &b), Err(BoundsError::ImpossibleCount { .. })));
}

#[test]
fn elect_leaders_nested_and_null() {
    for v in 0..=2i16 {
        let mut t = elect_leaders_request::TopicPartitions::default();
        t.topic = name("orders");
        t.partitions = vec![0, 1, 2];
        let mut r = ElectLeadersRequest::default();
        r.election_type = if v >= 1 { 1 } else { 0 };
        r.topic_partitions = Some(vec![t.clone(), t]);
        r.timeout_ms = 1000;
        walks_exactly(ApiKey::ElectLeaders, &r, v);
        r.topic_partitions = None;
        walks_exactly(ApiKey::ElectLeaders, &r, v);
    }
    let mut b = vec![0u8];
    b.put_i32(i32::MAX);
    assert!(matches!(check_request(ApiKey::ElectLeaders, 1, &b), Err(BoundsError::ImpossibleCount { .. })));
}

#[test]
fn partition_reassignments_nested_and_null() {
    for v in 0..=1i16 {
        let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
        p.partition_index = 2;
        p.replicas = Some(vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
        let mut cancel = p.clone();
        cancel.replicas = None;
        let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
        t.name = name("orders");
        t.partitions = vec![p, cancel];
        let mut r = AlterPartitionReassignmentsRequest::default();
        r.timeout_ms = 1000;
        r.topics = vec![t.clone(), t];
        walks_exactly(ApiKey::AlterPartitionReassignments, &r, v);
    }
    let mut t = list_partition_reassignments_request::ListPartitionReassignmentsTopics::default();
    t.name = name("orders");
    t.partition_indexes = vec![0, 5];
    let mut r = ListPartitionReassignmentsRequest::default();
    r.topics = Some(vec![t.clone(), t]);
    walks_exactly(ApiKey::ListPartitionReassignments, &r, 0);
    r.topics = None;
    walks_exactly(ApiKey::ListPartitionReassignments, &r, 0);
    // A replica list claiming 2^28 brokers.
    let b = [0, 0, 0, 0, 0, 2, 2, b't', 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
    assert!(matches!(check_request(ApiKey::AlterPartitionReassignments, 1, &b), Err(BoundsError::ImpossibleCount { .. })));
}

#[test]
fn transaction_marker_and_producer_requests_walk_exactly() {
    for v in 1..=1i16 {
        let mut t = write_txn_markers_request::WritableTxnMarkerTopic::default();
        t.name = name("orders");
        t.partition_indexes = vec![0, 1, 2];
        let mut m = write_txn_markers_request::WritableTxnMarker::default();
        m.producer_id = ProducerId(7);
        m.producer_epoch = 3;
        m.transaction_result = true;
        m.coordinator_epoch = 2;
        m.topics = vec![t.clone(), t];
        let mut r = WriteTxnMarkersRequest::default();
        r.markers = vec![m.clone(), m];
        walks_exactly(ApiKey::WriteTxnMarkers, &r, v);
    }
    let mut t = describe_producers_request::TopicRequest::default();
    t.name = name("orders");
    t.partition_indexes = vec![0, 5];
    let mut r = DescribeProducersRequest::default();
    r.topics = vec![t.clone(), t];
    walks_exactly(ApiKey::DescribeProducers, &r, 0);
}

#[test]
fn alter_replica_log_dirs_nested_at_every_version() {
    for v in 1..=2i16 {
        let mut t = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
        t.name = name("orders");
        t.partitions = vec![0, 3, 7];
        let mut d = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
        d.path = StrBytes::from_static_str("/var/lib/strom/d2");
        d.topics = vec![t.clone(), t];
        let mut r = AlterReplicaLogDirsRequest::default();
        r.dirs = vec![d.clone(), d];
        walks_exactly(ApiKey::AlterReplicaLogDirs, &r, v);
    }
    // v1: one directory whose topic claims 2^31-1 partitions.
    let mut b = vec![];
    b.put_i32(1);
    b.put_i16(1);
    b.put_u8(b'd');
    b.put_i32(1);
    b.put_i16(1);
    b.put_u8(b't');
    b.put_i32(i32::MAX);
    assert!(matches!(check_request(ApiKey::AlterReplicaLogDirs, 1, &b), Err(BoundsError::ImpossibleCount { .. })));
}

#[test]
fn txn_offset_commit_nested_at_every_version() {
    for v in 0..=4i16 {
        let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
        p.partition_index = 3;
        p.committed_offset = 42;
        p.committed_leader_epoch = if v >= 2 { 5 } else { -1 };
        p.committed_metadata = Some(StrBytes::from_static_str("meta"));
        let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
        t.name = name("orders");
        t.partitions = vec![p.clone(), p];
        let mut r = TxnOffsetCommitRequest::default();
        r.transactional_id = TransactionalId(StrBytes::from_static_str("txn"));
        r.group_id = GroupId(StrBytes::from_static_str("g"));
        r.producer_id = ProducerId(7);
        r.producer_epoch = 2;
        if v >= 3 {
            r.generation_id = 4;
            r.member_id = StrBytes::from_static_str("m");
            r.group_instance_id = Some(StrBytes::from_static_str("i"));
        }
        r.topics = vec![t.clone(), t];
        walks_exactly(ApiKey::TxnOffsetCommit, &r, v);
    }
}

#[test]
fn transaction_apis_nested_at_every_version() {
    let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    t.name = name("orders");
    t.partitions = vec![0, 3];
    let txid = || TransactionalId(StrBytes::from_static_str("txn"));
    for v in 0..=5i16 {
        let mut r = AddPartitionsToTxnRequest::default();
        if v <= 3 {
            r.v3_and_below_transactional_id = txid();
            r.v3_and_below_producer_id = ProducerId(7);
            r.v3_and_below_producer_epoch = 2;
            r.v3_and_below_topics = vec![t.clone(), t.clone()];
        } else {
            let mut tx = add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default();
            tx.transactional_id = txid();
            tx.producer_id = ProducerId(7);
            tx.verify_only = true;
            tx.topics = vec![t.clone(), t.clone()];
            r.transactions = vec![tx.clone(), tx];
        }
        walks_exactly(ApiKey::AddPartitionsToTxn, &r, v);
    }
    for v in 0..=4i16 {
        let mut r = AddOffsetsToTxnRequest::default();
        r.transactional_id = txid();
        r.group_id = GroupId(StrBytes::from_static_str("g"));
        walks_exactly(ApiKey::AddOffsetsToTxn, &r, v);
        let mut e = EndTxnRequest::default();
        e.transactional_id = txid();
        e.committed = true;
        walks_exactly(ApiKey::EndTxn, &e, v);
    }
    let mut d = DescribeTransactionsRequest::default();
    d.transactional_ids = vec![txid(), txid()];
    walks_exactly(ApiKey::DescribeTransactions, &d, 0);
    for v in 0..=1i16 {
        let mut l = ListTransactionsRequest::default();
        l.state_filters = vec![StrBytes::from_static_str("Ongoing")];
        l.producer_id_filters = vec![ProducerId(1), ProducerId(2)];
        l.duration_filter = if v >= 1 { 1000 } else { -1 };
        walks_exactly(ApiKey::ListTransactions, &l, v);
    }
}
