//! Protocol edges against a real broker on 127.0.0.1:0, over TCP.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strom_broker::BrokerConfig;
use strom_protocol::compression::Codec;
use strom_protocol::frame;
use strom_protocol::records::{BatchBuilder, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    addr: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let cfg = BrokerConfig::from_pairs([
            ("log.dirs".to_string(), dir.path().display().to_string()),
            ("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string()),
        ])
        .unwrap();
        let node = strom_broker::Node::start(cfg).await.unwrap();
        let port = node.client_addr.unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(node.serve(async {
            let _ = rx.await;
        }));
        Server { addr: format!("127.0.0.1:{port}"), _dir: dir, stop: Some(tx), task: Some(task) }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
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

    async fn send<R: Encodable>(&mut self, api: ApiKey, v: i16, req: &R) {
        self.cid += 1;
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = v;
        h.correlation_id = self.cid;
        h.client_id = Some(StrBytes::from_static_str("test"));
        let bytes = frame::encode_request(&h, req).unwrap();
        self.s.write_all(&bytes).await.unwrap();
    }

    async fn recv_raw(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(20), self.s.read_exact(&mut len)).await.ok()?.ok()?;
        let mut buf = BytesMut::zeroed(i32::from_be_bytes(len) as usize);
        self.s.read_exact(&mut buf).await.ok()?;
        Some(buf.freeze())
    }

    async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, v: i16, req: &Req) -> Resp {
        self.send(api, v, req).await;
        let raw = self.recv_raw().await.expect("response");
        let (cid, resp) = frame::decode_response(api, v, raw).unwrap();
        assert_eq!(cid, self.cid);
        resp
    }

    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)))
    }
}

fn all_topics() -> MetadataRequest {
    let mut r = MetadataRequest::default();
    r.topics = None;
    r
}

fn batch(values: &[&str]) -> Bytes {
    let mut b = BatchBuilder::new(1_000);
    for v in values {
        b.push(Record { value: Some(Bytes::copy_from_slice(v.as_bytes())), ..Default::default() });
    }
    b.build(Codec::None).unwrap()
}

fn produce_req(topic: &str, records: Bytes, acks: i16) -> ProduceRequest {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.into()));
    td.partition_data = vec![pd];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 5000;
    r.topic_data = vec![td];
    r
}

async fn create(addr: &str, name: &str) {
    let mut c = strom_client::Client::connect(addr).await.unwrap();
    let t = strom_client::NewTopic { name: name.into(), partitions: 1, replication_factor: 1, configs: vec![], assignments: vec![] };
    c.create_topic(&t, false).await.unwrap();
}

#[tokio::test]
async fn unknown_api_versions_version_gets_v0_error_with_table() {
    let s = Server::start().await;
    let mut c = Conn::open(&s.addr).await;
    // Header v1 by hand: api 18, version 99, correlation 1, null client id.
    c.s.write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff]).await.unwrap();
    let raw = c.recv_raw().await.unwrap();
    let (_, resp): (i32, ApiVersionsResponse) = frame::decode_response(ApiKey::ApiVersions, 0, raw).unwrap();
    assert_eq!(resp.error_code, 35);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 11));
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let s = Server::start().await;
    // Garbage after a valid-looking length.
    let mut bad = Conn::open(&s.addr).await;
    bad.s.write_all(&[0, 0, 0, 10, 0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff]).await.unwrap();
    assert!(bad.closed().await);
    // A frame larger than socket.request.max.bytes.
    let mut big = Conn::open(&s.addr).await;
    big.s.write_all(&0x7fff_fff0i32.to_be_bytes()).await.unwrap();
    assert!(big.closed().await);
    // An unknown API key.
    let mut unk = Conn::open(&s.addr).await;
    unk.s.write_all(&[0, 0, 0, 8, 0x7f, 0x00, 0, 0, 0, 0, 0, 1]).await.unwrap();
    assert!(unk.closed().await);
    // A Produce v2 request: advertised for old librdkafka, refused when it arrives.
    let mut old = Conn::open(&s.addr).await;
    old.s.write_all(&[0, 0, 0, 10, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0]).await.unwrap();
    assert!(old.closed().await);
    // Everyone else is still served.
    let mut good = Conn::open(&s.addr).await;
    let resp: MetadataResponse = good.call(ApiKey::Metadata, 12, &all_topics()).await;
    assert_eq!(resp.brokers.len(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn produce_errors_are_per_partition() {
    let s = Server::start().await;
    create(&s.addr, "p").await;
    let mut c = Conn::open(&s.addr).await;
    // Bad CRC.
    let mut corrupt = batch(&["a", "b"]).to_vec();
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_req("p", Bytes::from(corrupt), 1)).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 2);
    // Unknown topic and a good write in one request.
    let mut req = produce_req("p", batch(&["ok"]), -1);
    let mut other = req.topic_data[0].clone();
    other.name = TopicName(StrBytes::from_static_str("missing"));
    req.topic_data.push(other);
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(resp.responses[0].partition_responses[0].base_offset, 0);
    assert_eq!(resp.responses[1].partition_responses[0].error_code, 3);
    // Invalid acks.
    let resp: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_req("p", batch(&["x"]), 2)).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 21);
    // acks=0 gets no response: the next request's answer is the next thing read.
    c.send(ApiKey::Produce, 9, &produce_req("p", batch(&["silent"]), 0)).await;
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &all_topics()).await;
    assert_eq!(md.topics.len(), 1);
    let mut lc = strom_client::Client::connect(&s.addr).await.unwrap();
    assert_eq!(lc.list_offset("p", 0, -1).await.unwrap(), 2);
    s.shutdown().await;
}

fn fetch_req(topic: &str, offset: i64, session_id: i32, epoch: i32, wait_ms: i32, min_bytes: i32) -> FetchRequest {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_string(topic.into()));
    ft.partitions = vec![fp];
    let mut r = FetchRequest::default();
    r.max_wait_ms = wait_ms;
    r.min_bytes = min_bytes;
    r.max_bytes = 1 << 20;
    r.session_id = session_id;
    r.session_epoch = epoch;
    r.topics = if offset < 0 { vec![] } else { vec![ft] };
    r
}

#[tokio::test]
async fn fetch_sessions_and_long_poll() {
    let s = Server::start().await;
    create(&s.addr, "f").await;
    let mut c = Conn::open(&s.addr).await;
    let _: ProduceResponse = c.call(ApiKey::Produce, 9, &produce_req("f", batch(&["1", "2"]), 1)).await;
    // Open a session with a full fetch.
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 0, 0, 0, 0, 0)).await;
    let sid = resp.session_id;
    assert!(sid > 0);
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 2);
    assert!(!resp.responses[0].partitions[0].records.as_ref().unwrap().is_empty());
    // Incremental, position moved to the end: the partition has no news, so it is left out.
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 2, sid, 1, 0, 0)).await;
    assert_eq!(resp.error_code, 0);
    assert!(resp.responses.is_empty(), "{:?}", resp.responses);
    // Long poll: waits for data produced meanwhile by another connection.
    let addr = s.addr.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut w = Conn::open(&addr).await;
        let _: ProduceResponse = w.call(ApiKey::Produce, 9, &produce_req("f", batch(&["3"]), 1)).await;
    });
    let started = Instant::now();
    let mut req = fetch_req("f", -1, sid, 2, 10_000, 1);
    req.forgotten_topics_data = vec![];
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    writer.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(9), "the fetch should wake on the append");
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 3);
    // Stale epoch, unknown session.
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 0, sid, 2, 0, 0)).await;
    assert_eq!(resp.error_code, 71);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 0, 424242, 1, 0, 0)).await;
    assert_eq!(resp.error_code, 70);
    // Forget the partition: the session now fetches nothing.
    let mut req = fetch_req("f", -1, sid, 3, 0, 0);
    let mut ft = ForgottenTopic::default();
    ft.topic = TopicName(StrBytes::from_static_str("f"));
    ft.partitions = vec![0];
    req.forgotten_topics_data = vec![ft];
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
    assert!(resp.responses.is_empty());
    // Out of range.
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 99, 0, -1, 0, 0)).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 1);
    // Max wait honoured with no data: returns empty after about max_wait.
    let started = Instant::now();
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 3, 0, -1, 200, 1)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(resp.responses[0].partitions[0].records.as_ref().is_none_or(|r| r.is_empty()));
    s.shutdown().await;
}

#[tokio::test]
async fn delete_by_topic_id() {
    let s = Server::start().await;
    create(&s.addr, "d").await;
    let mut c = Conn::open(&s.addr).await;
    let md: MetadataResponse = c.call(ApiKey::Metadata, 12, &all_topics()).await;
    let id = md.topics[0].topic_id;
    let mut st = kafka_protocol::messages::delete_topics_request::DeleteTopicState::default();
    st.topic_id = id;
    let mut req = DeleteTopicsRequest::default();
    req.topics = vec![st];
    let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 6, &req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[0].name.as_ref().map(|n| n.to_string()), Some("d".to_string()));
    let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, 6, &req).await;
    assert_eq!(resp.responses[0].error_code, 100);
    s.shutdown().await;
}

#[tokio::test]
async fn group_admin_api_forms() {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;

    let s = Server::start().await;
    create(&s.addr, "gt").await;
    let mut c = Conn::open(&s.addr).await;
    // Batched FindCoordinator (v4): every key answered, all by this node.
    let mut fc = FindCoordinatorRequest::default();
    fc.coordinator_keys = vec![StrBytes::from_static_str("a"), StrBytes::from_static_str("b")];
    let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 4, &fc).await;
    assert_eq!(resp.coordinators.len(), 2);
    assert!(resp.coordinators.iter().all(|k| k.error_code == 0 && k.node_id.0 == 1));
    // Simple (generation -1) commits for two groups.
    for (g, off) in [("a", 5i64), ("b", 7)] {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = off;
        p.committed_metadata = Some(StrBytes::from_static_str("meta"));
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(StrBytes::from_static_str("gt"));
        t.partitions = vec![p];
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(StrBytes::from_string(g.into()));
        req.generation_id_or_member_epoch = -1;
        req.topics = vec![t];
        let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &req).await;
        assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    }
    // Multi-group OffsetFetch (v8), all topics.
    let mut req = OffsetFetchRequest::default();
    req.groups = ["a", "b", "nobody"]
        .iter()
        .map(|g| {
            let mut x = OffsetFetchRequestGroup::default();
            x.group_id = GroupId(StrBytes::from_string(g.to_string()));
            x.topics = None;
            x
        })
        .collect();
    let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &req).await;
    let got: Vec<(String, Vec<i64>)> = resp
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.committed_offset)).collect()))
        .collect();
    assert_eq!(got, vec![("a".into(), vec![5]), ("b".into(), vec![7]), ("nobody".into(), vec![])]);
    // ListGroups with a state filter (v4).
    let mut lg = ListGroupsRequest::default();
    lg.states_filter = vec![StrBytes::from_static_str("Empty")];
    let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, 4, &lg).await;
    let mut names: Vec<String> = resp.groups.iter().map(|g| g.group_id.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    lg.states_filter = vec![StrBytes::from_static_str("Stable")];
    let resp: ListGroupsResponse = c.call(ApiKey::ListGroups, 4, &lg).await;
    assert!(resp.groups.is_empty());
    // DescribeGroups: an unknown group is Dead without an error.
    let mut dg = DescribeGroupsRequest::default();
    dg.groups = vec![GroupId(StrBytes::from_static_str("nobody")), GroupId(StrBytes::from_static_str("a"))];
    let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, 5, &dg).await;
    assert_eq!(resp.groups[0].group_state.as_str(), "Dead");
    assert_eq!(resp.groups[1].group_state.as_str(), "Empty");
    // OffsetDelete on an empty group removes the offset.
    let mut od = OffsetDeleteRequest::default();
    od.group_id = GroupId(StrBytes::from_static_str("a"));
    let mut t = OffsetDeleteRequestTopic::default();
    t.name = TopicName(StrBytes::from_static_str("gt"));
    let mut p = OffsetDeleteRequestPartition::default();
    p.partition_index = 0;
    t.partitions = vec![p];
    od.topics = vec![t];
    let resp: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &od).await;
    assert_eq!((resp.error_code, resp.topics[0].partitions[0].error_code), (0, 0));
    // DeleteGroups: b is empty; a second delete finds nothing.
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![GroupId(StrBytes::from_static_str("b")), GroupId(StrBytes::from_static_str("zzz"))];
    let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(resp.results.iter().map(|r| r.error_code).collect::<Vec<_>>(), vec![0, 69]);
    // JoinGroup v4 without a member id: MEMBER_ID_REQUIRED with an id to use.
    let mut jg = JoinGroupRequest::default();
    jg.group_id = GroupId(StrBytes::from_static_str("j"));
    jg.session_timeout_ms = 10_000;
    jg.rebalance_timeout_ms = 10_000;
    jg.protocol_type = StrBytes::from_static_str("consumer");
    let mut proto = kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol::default();
    proto.name = StrBytes::from_static_str("range");
    jg.protocols = vec![proto];
    let resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &jg).await;
    assert_eq!(resp.error_code, 79);
    assert!(!resp.member_id.is_empty());
    s.shutdown().await;
}
