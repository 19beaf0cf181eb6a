//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz
//! harnesses, so every input the fuzzer kept stays covered by the normal test run.
//! `cargo test -p strom-protocol --test fuzz_corpus -- --ignored write_seeds`
//! writes the seed inputs the corpus started from.

use std::path::PathBuf;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Message, StrBytes};
use strom_protocol::compression::{self, Codec};
use strom_protocol::fuzzing;
use strom_protocol::records::{BatchBuilder, Record};
use strom_protocol::versions;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "{target}: input {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: empty corpus");
    n
}

#[test]
fn corpus_frame() {
    replay("frame", fuzzing::frame);
}

#[test]
fn corpus_request() {
    replay("request", fuzzing::request);
}

#[test]
fn corpus_batch() {
    replay("batch", fuzzing::batch);
}

#[test]
fn corpus_decompress() {
    replay("decompress", fuzzing::decompress);
}

fn enc<R: Encodable>(r: &R, v: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    r.encode(&mut b, v).unwrap();
    b.to_vec()
}

fn sample_batch(codec: Codec, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for i in 0..n {
        b.push(Record {
            key: Some(format!("key-{i}").into()),
            value: Some(format!("value {i} of the seed batch").into()),
            headers: vec![("h".into(), Some(vec![1u8, 2].into()))],
            ..Default::default()
        });
    }
    b.build(codec).unwrap().to_vec()
}

/// Populated requests (beyond the defaults) for the APIs with nested arrays.
fn populated(api: ApiKey, v: i16) -> Option<Vec<u8>> {
    let name = |s: &'static str| TopicName(StrBytes::from_static_str(s));
    Some(match api {
        ApiKey::Produce => {
            let mut p = produce_request::PartitionProduceData::default();
            p.records = Some(sample_batch(Codec::None, 3).into());
            let mut t = produce_request::TopicProduceData::default();
            t.name = name("seed");
            t.partition_data = vec![p];
            let mut r = ProduceRequest::default();
            r.acks = 1;
            r.timeout_ms = 1000;
            r.topic_data = vec![t];
            enc(&r, v)
        }
        ApiKey::Fetch => {
            let mut p = fetch_request::FetchPartition::default();
            p.partition_max_bytes = 1 << 20;
            let mut t = fetch_request::FetchTopic::default();
            t.topic = name("seed");
            t.partitions = vec![p.clone(), p];
            let mut r = FetchRequest::default();
            r.max_bytes = 1 << 20;
            r.topics = vec![t];
            enc(&r, v)
        }
        ApiKey::Metadata => {
            let mut t = metadata_request::MetadataRequestTopic::default();
            t.name = Some(name("seed"));
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![t.clone(), t]);
            enc(&r, v)
        }
        ApiKey::CreateTopics => {
            let mut c = create_topics_request::CreatableTopicConfig::default();
            c.name = StrBytes::from_static_str("cleanup.policy");
            c.value = Some(StrBytes::from_static_str("compact"));
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = name("seed");
            t.num_partitions = 3;
            t.replication_factor = 1;
            t.configs = vec![c];
            let mut r = CreateTopicsRequest::default();
            r.topics = vec![t];
            enc(&r, v)
        }
        ApiKey::JoinGroup => {
            let mut p = join_group_request::JoinGroupRequestProtocol::default();
            p.name = StrBytes::from_static_str("range");
            p.metadata = vec![0u8, 1, 0, 0, 0, 1, 0, 4, b's', b'e', b'e', b'd'].into();
            let mut r = JoinGroupRequest::default();
            r.group_id = GroupId(StrBytes::from_static_str("g"));
            r.protocol_type = StrBytes::from_static_str("consumer");
            r.protocols = vec![p];
            enc(&r, v)
        }
        ApiKey::OffsetCommit => {
            let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
            p.committed_offset = 42;
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = name("seed");
            t.partitions = vec![p];
            let mut r = OffsetCommitRequest::default();
            r.group_id = GroupId(StrBytes::from_static_str("g"));
            r.topics = vec![t];
            enc(&r, v)
        }
        ApiKey::DescribeTopicPartitions => {
            let mut t = describe_topic_partitions_request::TopicRequest::default();
            t.name = name("seed");
            let mut c = describe_topic_partitions_request::Cursor::default();
            c.topic_name = name("seed");
            c.partition_index = 2;
            let mut r = DescribeTopicPartitionsRequest::default();
            r.topics = vec![t];
            r.response_partition_limit = 10;
            r.cursor = Some(c);
            enc(&r, v)
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            p.current_leader_epoch = 3;
            p.leader_epoch = 2;
            let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            t.topic = name("seed");
            t.partitions = vec![p.clone(), p];
            let mut r = OffsetForLeaderEpochRequest::default();
            r.topics = vec![t];
            enc(&r, v)
        }
        ApiKey::ElectLeaders => {
            let mut t = elect_leaders_request::TopicPartitions::default();
            t.topic = name("seed");
            t.partitions = vec![0, 1];
            let mut r = ElectLeadersRequest::default();
            r.topic_partitions = Some(vec![t]);
            enc(&r, v)
        }
        ApiKey::AlterPartitionReassignments => {
            let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
            p.replicas = Some(vec![BrokerId(1), BrokerId(2)]);
            let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
            t.name = name("seed");
            t.partitions = vec![p];
            let mut r = AlterPartitionReassignmentsRequest::default();
            r.topics = vec![t];
            enc(&r, v)
        }
        ApiKey::ListPartitionReassignments => {
            let mut t = list_partition_reassignments_request::ListPartitionReassignmentsTopics::default();
            t.name = name("seed");
            t.partition_indexes = vec![0, 3];
            let mut r = ListPartitionReassignmentsRequest::default();
            r.topics = Some(vec![t]);
            enc(&r, v)
        }
        ApiKey::AlterReplicaLogDirs => {
            let mut t = alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default();
            t.name = name("seed");
            t.partitions = vec![0, 2];
            let mut d = alter_replica_log_dirs_request::AlterReplicaLogDir::default();
            d.path = StrBytes::from_static_str("/data/d2");
            d.topics = vec![t];
            let mut r = AlterReplicaLogDirsRequest::default();
            r.dirs = vec![d];
            enc(&r, v)
        }
        _ => return None,
    })
}

fn encoded_default<R: Encodable + Default + Message>(v: i16) -> Result<Vec<u8>, strom_protocol::frame::FrameError> {
    Ok(if v < R::VERSIONS.min { vec![] } else { enc(&R::default(), v) })
}

fn default_body(api: ApiKey, v: i16) -> Vec<u8> {
    strom_protocol::with_request_type!(api, encoded_default, v).unwrap_or_default()
}

#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn write_seeds() {
    let write = |target: &str, name: String, data: &[u8]| {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    for (sel, &(api, lo, hi)) in versions::SUPPORTED.iter().enumerate() {
        let lo = if api == ApiKey::Produce { versions::PRODUCE_MIN_ACCEPTED } else { lo };
        for v in lo..=hi {
            let bodies = [Some(default_body(api, v)), populated(api, v)];
            for (k, body) in bodies.into_iter().flatten().enumerate() {
                let mut req = vec![sel as u8];
                req.extend_from_slice(&((v - lo) as u16).to_be_bytes());
                req.extend_from_slice(&body);
                write("request", format!("seed-{api:?}-v{v}-{k}"), &req);
                let mut header = RequestHeader::default();
                header.request_api_key = api as i16;
                header.request_api_version = v;
                header.correlation_id = 7;
                header.client_id = Some(StrBytes::from_static_str("seed"));
                let mut frame = enc(&header, api.request_header_version(v));
                frame.extend_from_slice(&body);
                write("frame", format!("seed-{api:?}-v{v}-{k}"), &frame);
            }
        }
    }
    for (i, codec) in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd].into_iter().enumerate() {
        let mut one = vec![1u8]; // harness mode: CRCs as sent
        one.extend_from_slice(&sample_batch(codec, 4));
        let mut two = one.clone();
        two.extend_from_slice(&sample_batch(codec, 1));
        write("batch", format!("seed-{codec:?}-one"), &one);
        write("batch", format!("seed-{codec:?}-two"), &two);
        let plain = b"seed payload seed payload seed payload".repeat(8);
        let mut d = vec![i as u8 | 0x80];
        d.extend_from_slice(&compression::compress(codec, &plain).unwrap());
        write("decompress", format!("seed-{codec:?}"), &d);
    }
    let mut huge = vec![3u8, 0, 0];
    huge.put_i32(i32::MAX);
    write("request", "seed-huge-count".into(), &huge);
}
