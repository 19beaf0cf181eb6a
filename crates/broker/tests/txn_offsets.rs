//! Offsets committed in a transaction, against a real broker over TCP: pending
//! (UNSTABLE_OFFSET_COMMIT for require_stable) until the transaction's marker,
//! then visible; an abort drops them; a restart replays both.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strom_broker::BrokerConfig;
use strom_protocol::frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const OFFSETS_PARTITIONS: i32 = 3;

struct Server {
    addr: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// A broker on `dir`; verification is off so a test can commit for a
    /// producer id without a transaction coordinator's bookkeeping.
    async fn start(dir: &std::path::Path) -> Server {
        let cfg = BrokerConfig::from_pairs([
            ("log.dirs".to_string(), dir.display().to_string()),
            ("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string()),
            ("offsets.topic.num.partitions".to_string(), OFFSETS_PARTITIONS.to_string()),
            ("transaction.partition.verification.enable".to_string(), "false".to_string()),
        ])
        .unwrap();
        let node = strom_broker::Node::start(cfg).await.unwrap();
        let port = node.client_addr.unwrap().port();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(node.serve(async {
            let _ = rx.await;
        }));
        Server { addr: format!("127.0.0.1:{port}"), stop, task }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

struct Conn {
    s: TcpStream,
    cid: i32,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        Conn { s: TcpStream::connect(addr).await.unwrap(), cid: 0 }
    }

    async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, v: i16, req: &Req) -> Resp {
        self.cid += 1;
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = v;
        h.correlation_id = self.cid;
        h.client_id = Some(StrBytes::from_static_str("test"));
        self.s.write_all(&frame::encode_request(&h, req).unwrap()).await.unwrap();
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(20), self.s.read_exact(&mut len)).await.unwrap().unwrap();
        let mut buf = BytesMut::zeroed(i32::from_be_bytes(len) as usize);
        self.s.read_exact(&mut buf).await.unwrap();
        let (cid, resp) = frame::decode_response(api, v, Bytes::from(buf)).unwrap();
        assert_eq!(cid, self.cid);
        resp
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create(addr: &str, name: &str) {
    let mut c = strom_client::Client::connect(addr).await.unwrap();
    let t = strom_client::NewTopic { name: name.into(), partitions: 2, replication_factor: 1, configs: vec![], assignments: vec![] };
    c.create_topic(&t, false).await.unwrap();
}

async fn txn_commit(c: &mut Conn, v: i16, group: &str, pid: i64, offsets: &[(i32, i64)]) -> Vec<i16> {
    let mut t = TxnOffsetCommitRequestTopic::default();
    t.name = TopicName(s("t"));
    for &(p, o) in offsets {
        let mut x = TxnOffsetCommitRequestPartition::default();
        x.partition_index = p;
        x.committed_offset = o;
        x.committed_metadata = Some(s("m"));
        t.partitions.push(x);
    }
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = TransactionalId(s("tx"));
    req.group_id = GroupId(s(group));
    req.producer_id = ProducerId(pid);
    req.producer_epoch = 0;
    if v >= 3 {
        req.generation_id = -1;
    }
    req.topics = vec![t];
    let resp: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, v, &req).await;
    resp.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

/// (error, offset) of `t`-`partition` in `group`, by OffsetFetch v7 or v8.
async fn fetch(c: &mut Conn, v: i16, group: &str, partition: i32, require_stable: bool) -> (i16, i64) {
    let mut req = OffsetFetchRequest::default();
    req.require_stable = require_stable;
    if v >= 8 {
        let mut t = offset_fetch_request::OffsetFetchRequestTopics::default();
        t.name = TopicName(s("t"));
        t.partition_indexes = vec![partition];
        let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
        g.group_id = GroupId(s(group));
        g.topics = Some(vec![t]);
        req.groups = vec![g];
        let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req).await;
        if resp.groups[0].error_code != 0 {
            return (resp.groups[0].error_code, -1);
        }
        let p = &resp.groups[0].topics[0].partitions[0];
        return (p.error_code, p.committed_offset);
    }
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(s("t"));
    t.partition_indexes = vec![partition];
    req.group_id = GroupId(s(group));
    req.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req).await;
    if resp.error_code != 0 {
        return (resp.error_code, -1);
    }
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// Asks for the group's coordinator (which creates `__consumer_offsets`) until
/// it answers and has loaded the group's partition.
async fn ready(c: &mut Conn, group: &str) {
    for _ in 0..200 {
        let mut fc = FindCoordinatorRequest::default();
        fc.key = s(group);
        let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &fc).await;
        if resp.error_code == 0 && fetch(c, 8, group, 0, false).await.0 == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no coordinator for {group}");
}

/// The group's `__consumer_offsets` partition, as FindCoordinator places it.
fn offsets_partition(group: &str) -> i32 {
    strom_coordinator::partition_for(group, OFFSETS_PARTITIONS)
}

async fn marker(c: &mut Conn, group: &str, pid: i64, commit: bool) {
    let mut t = WritableTxnMarkerTopic::default();
    t.name = TopicName(s("__consumer_offsets"));
    t.partition_indexes = vec![offsets_partition(group)];
    let mut m = WritableTxnMarker::default();
    m.producer_id = ProducerId(pid);
    m.producer_epoch = 0;
    m.transaction_result = commit;
    m.coordinator_epoch = 0;
    m.topics = vec![t];
    let mut req = WriteTxnMarkersRequest::default();
    req.markers = vec![m];
    let resp: WriteTxnMarkersResponse = c.call(ApiKey::WriteTxnMarkers, 1, &req).await;
    assert_eq!(resp.markers[0].topics[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn txn_offsets_pending_until_the_marker_and_replayed_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    create(&server.addr, "t").await;
    let mut c = Conn::open(&server.addr).await;
    ready(&mut c, "g").await;
    ready(&mut c, "h").await;

    // Committed in a transaction: stable reads see UNSTABLE, others nothing yet.
    assert_eq!(txn_commit(&mut c, 3, "g", 1000, &[(0, 10), (1, 11)]).await, vec![0, 0]);
    assert_eq!(fetch(&mut c, 8, "g", 0, true).await, (UNSTABLE_OFFSET_COMMIT, -1));
    assert_eq!(fetch(&mut c, 7, "g", 0, true).await, (UNSTABLE_OFFSET_COMMIT, -1));
    assert_eq!(fetch(&mut c, 8, "g", 0, false).await, (0, -1));
    marker(&mut c, "g", 1000, true).await;
    assert_eq!(fetch(&mut c, 8, "g", 0, true).await, (0, 10));
    assert_eq!(fetch(&mut c, 7, "g", 1, true).await, (0, 11));

    // An aborted transaction's offsets never show; one left open stays pending.
    assert_eq!(txn_commit(&mut c, 0, "g", 1001, &[(0, 20)]).await, vec![0]);
    marker(&mut c, "g", 1001, false).await;
    assert_eq!(fetch(&mut c, 8, "g", 0, true).await, (0, 10));
    assert_eq!(txn_commit(&mut c, 4, "h", 1002, &[(0, 30)]).await, vec![0]);
    // Unknown topics are refused per partition.
    let mut req = TxnOffsetCommitRequest::default();
    req.group_id = GroupId(s("g"));
    req.producer_id = ProducerId(1000);
    let mut t = TxnOffsetCommitRequestTopic::default();
    t.name = TopicName(s("nope"));
    t.partitions = vec![TxnOffsetCommitRequestPartition::default()];
    req.topics = vec![t];
    let resp: TxnOffsetCommitResponse = c.call(ApiKey::TxnOffsetCommit, 3, &req).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 3);
    server.shutdown().await;

    // The replay rebuilds the same view from the log and its markers.
    let server = Server::start(dir.path()).await;
    let mut c = Conn::open(&server.addr).await;
    let mut loaded = false;
    for _ in 0..100 {
        let (e, _) = fetch(&mut c, 8, "g", 0, false).await;
        if e == 0 {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(loaded, "group coordinator loads after restart");
    assert_eq!(fetch(&mut c, 8, "g", 0, true).await, (0, 10));
    assert_eq!(fetch(&mut c, 8, "g", 1, true).await, (0, 11));
    assert_eq!(fetch(&mut c, 8, "h", 0, true).await, (UNSTABLE_OFFSET_COMMIT, -1));
    marker(&mut c, "h", 1002, true).await;
    assert_eq!(fetch(&mut c, 8, "h", 0, true).await, (0, 30));
    server.shutdown().await;
}
