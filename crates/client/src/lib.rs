//! Strom's own Kafka client: admin calls, a producer and a partition reader,
//! used by the `strom` CLI and by tests. It speaks only the Kafka protocol and
//! depends on no broker crate.
//!
//! One connection, one request in flight at a time. Versions are negotiated with
//! ApiVersions: each call uses the highest version both sides know.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strom_protocol::batch::BatchIter;
use strom_protocol::compression::Codec;
use strom_protocol::error::error_name;
use strom_protocol::frame;
use strom_protocol::records::{decode_batch, BatchBuilder, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use strom_protocol::records::Record as ClientRecord;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("broker error {name} ({code}){}", .message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker { code: i16, name: &'static str, message: Option<String> },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl ClientError {
    pub fn broker(code: i16, message: Option<String>) -> Self {
        ClientError::Broker { code, name: error_name(code), message }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Largest response frame the client accepts.
const MAX_RESPONSE: usize = 256 << 20;

pub struct Client {
    stream: TcpStream,
    correlation: i32,
    versions: HashMap<i16, (i16, i16)>,
    client_id: String,
    timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: uuid::Uuid,
    pub error: i16,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on brokers that are down (fenced or not registered).
    pub offline: Vec<i32>,
}

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
    pub assignments: Vec<Vec<i32>>,
}

#[derive(Debug, Clone)]
pub struct FetchResult {
    pub records: Vec<Record>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The offset to fetch next.
    pub next_offset: i64,
}

#[derive(Debug, Clone)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster_id: String,
    pub controller: i32,
    pub brokers: Vec<BrokerInfo>,
}

#[derive(Debug, Clone)]
pub struct VoterInfo {
    pub id: i32,
    pub log_end_offset: i64,
    /// Milliseconds since the epoch, or -1.
    pub last_fetch_ms: i64,
}

#[derive(Debug, Clone)]
pub struct QuorumInfo {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<VoterInfo>,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl Client {
    pub async fn connect(addr: &str) -> Result<Client> {
        let stream = TcpStream::connect(addr).await.map_err(|source| ClientError::Connect { addr: addr.to_string(), source })?;
        stream.set_nodelay(true)?;
        let mut c =
            Client { stream, correlation: 0, versions: HashMap::new(), client_id: "strom-cli".into(), timeout: Duration::from_secs(30) };
        let resp: ApiVersionsResponse = c.call_at(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, None));
        }
        c.versions = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(c)
    }

    fn version(&self, api: ApiKey, ours: i16) -> Result<i16> {
        let (lo, hi) =
            self.versions.get(&(api as i16)).copied().ok_or_else(|| ClientError::Protocol(format!("broker does not support {api:?}")))?;
        let v = ours.min(hi);
        if v < lo {
            return Err(ClientError::Protocol(format!("no common version of {api:?}")));
        }
        Ok(v)
    }

    async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, ours: i16, req: &Req) -> Result<Resp> {
        let v = self.version(api, ours)?;
        self.call_at(api, v, req).await
    }

    async fn send<Req: Encodable>(&mut self, api: ApiKey, version: i16, req: &Req) -> Result<i32> {
        self.correlation = self.correlation.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(sb(&self.client_id));
        let bytes = frame::encode_request(&header, req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.stream.write_all(&bytes).await?;
        Ok(self.correlation)
    }

    async fn call_at<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, req: &Req) -> Result<Resp> {
        let cid = self.send(api, version, req).await?;
        let timeout = self.timeout;
        let payload = tokio::time::timeout(timeout, self.read_frame()).await.map_err(|_| ClientError::Timeout(timeout))??;
        let (got, resp) = frame::decode_response(api, version, payload).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if got != cid {
            return Err(ClientError::Protocol(format!("correlation id {got}, expected {cid}")));
        }
        Ok(resp)
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await?;
        let n = i32::from_be_bytes(len);
        if n < 0 || n as usize > MAX_RESPONSE {
            return Err(ClientError::Protocol(format!("response frame of {n} bytes")));
        }
        let mut buf = BytesMut::zeroed(n as usize);
        self.stream.read_exact(&mut buf).await?;
        Ok(buf.freeze())
    }

    /// A connection to the leader of `topic`/`partition`, found through this
    /// connection's Metadata (this connection itself when it is the leader).
    /// Retries briefly while the partition has no leader (a failover).
    pub async fn leader_for(&mut self, topic: &str, partition: i32) -> Result<Option<Client>> {
        let mut tries = 0;
        loop {
            let (brokers, _, topics) = self.metadata(Some(&[topic]), false).await?;
            let leader = topics
                .iter()
                .find(|t| t.name == topic)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == partition))
                .map(|p| p.leader);
            let Some(leader) = leader.filter(|l| *l >= 0) else {
                tries += 1;
                if tries > 50 {
                    return Err(ClientError::broker(5, Some(format!("{topic}-{partition} has no leader"))));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Some((_, host, port)) = brokers.iter().find(|b| b.0 == leader) else {
                return Err(ClientError::Protocol(format!("leader {leader} of {topic}-{partition} is not among the brokers")));
            };
            let addr = format!("{host}:{port}");
            let here = self.stream.peer_addr().ok().map(|a| a.to_string());
            if here.as_deref() == Some(addr.as_str()) {
                return Ok(None);
            }
            return Client::connect(&addr).await.map(Some);
        }
    }

    /// DescribeCluster v2: cluster id, controller, and every broker (fenced ones too).
    pub async fn describe_cluster(&mut self) -> Result<ClusterInfo> {
        let mut req = DescribeClusterRequest::default();
        req.include_fenced_brokers = true;
        let v = self.version(ApiKey::DescribeCluster, 2)?;
        let resp: DescribeClusterResponse = self.call_at(ApiKey::DescribeCluster, v, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, resp.error_message.map(|m| m.to_string())));
        }
        Ok(ClusterInfo {
            cluster_id: resp.cluster_id.to_string(),
            controller: resp.controller_id.0,
            brokers: resp
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                    fenced: b.is_fenced,
                })
                .collect(),
        })
    }

    /// DescribeQuorum: the metadata quorum's leader, epoch, high watermark and voters.
    pub async fn describe_quorum(&mut self) -> Result<QuorumInfo> {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        let mut p = PartitionData::default();
        p.partition_index = 0;
        let mut t = TopicData::default();
        t.topic_name = TopicName(sb("__cluster_metadata"));
        t.partitions = vec![p];
        let mut req = DescribeQuorumRequest::default();
        req.topics = vec![t];
        let resp: DescribeQuorumResponse = self.call(ApiKey::DescribeQuorum, 1, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, resp.error_message.map(|m| m.to_string())));
        }
        let part = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("DescribeQuorum answered no partition".into()))?;
        if part.error_code != 0 {
            return Err(ClientError::broker(part.error_code, part.error_message.as_ref().map(|m| m.to_string())));
        }
        Ok(QuorumInfo {
            leader: part.leader_id.0,
            epoch: part.leader_epoch,
            high_watermark: part.high_watermark,
            voters: part
                .current_voters
                .iter()
                .map(|v| VoterInfo { id: v.replica_id.0, log_end_offset: v.log_end_offset, last_fetch_ms: v.last_fetch_timestamp })
                .collect(),
        })
    }

    /// Metadata for the named topics, or all topics when `topics` is `None`.
    pub async fn metadata(
        &mut self,
        topics: Option<&[&str]>,
        auto_create: bool,
    ) -> Result<(Vec<(i32, String, i32)>, String, Vec<TopicInfo>)> {
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    let mut m = MetadataRequestTopic::default();
                    m.name = Some(TopicName(sb(t)));
                    m
                })
                .collect()
        });
        req.allow_auto_topic_creation = auto_create;
        let resp: MetadataResponse = self.call(ApiKey::Metadata, 12, &req).await?;
        let brokers = resp.brokers.iter().map(|b| (b.node_id.0, b.host.to_string(), b.port)).collect();
        let topics = resp
            .topics
            .iter()
            .map(|t| TopicInfo {
                name: t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                id: t.topic_id,
                error: t.error_code,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionInfo {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    })
                    .collect(),
            })
            .collect();
        Ok((brokers, resp.cluster_id.map(|c| c.to_string()).unwrap_or_default(), topics))
    }

    pub async fn topic(&mut self, name: &str, auto_create: bool) -> Result<TopicInfo> {
        let (_, _, topics) = self.metadata(Some(&[name]), auto_create).await?;
        let t = topics.into_iter().next().ok_or_else(|| ClientError::Protocol("empty metadata".into()))?;
        if t.error != 0 {
            return Err(ClientError::broker(t.error, Some(format!("topic '{name}'"))));
        }
        Ok(t)
    }

    pub async fn create_topic(&mut self, t: &NewTopic, validate_only: bool) -> Result<uuid::Uuid> {
        let mut ct = CreatableTopic::default();
        ct.name = TopicName(sb(&t.name));
        ct.num_partitions = t.partitions;
        ct.replication_factor = t.replication_factor;
        ct.assignments = t
            .assignments
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut a = CreatableReplicaAssignment::default();
                a.partition_index = i as i32;
                a.broker_ids = r.iter().map(|&b| BrokerId(b)).collect();
                a
            })
            .collect();
        ct.configs = t
            .configs
            .iter()
            .map(|(k, v)| {
                let mut c = CreatableTopicConfig::default();
                c.name = sb(k);
                c.value = Some(sb(v));
                c
            })
            .collect();
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![ct];
        req.timeout_ms = 30_000;
        req.validate_only = validate_only;
        let resp: CreateTopicsResponse = self.call(ApiKey::CreateTopics, 7, &req).await?;
        let r = resp.topics.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::broker(r.error_code, r.error_message.map(|m| m.to_string())));
        }
        Ok(r.topic_id)
    }

    pub async fn delete_topic(&mut self, name: &str) -> Result<()> {
        let mut req = DeleteTopicsRequest::default();
        let mut st = DeleteTopicState::default();
        st.name = Some(TopicName(sb(name)));
        req.topics = vec![st];
        req.topic_names = vec![TopicName(sb(name))];
        req.timeout_ms = 30_000;
        let resp: DeleteTopicsResponse = self.call(ApiKey::DeleteTopics, 6, &req).await?;
        let r = resp.responses.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::broker(r.error_code, r.error_message.map(|m| m.to_string())));
        }
        Ok(())
    }

    /// Sends one batch to a partition; returns its base offset (or -1 with acks=0).
    pub async fn produce(&mut self, topic: &str, partition: i32, records: Vec<Record>, acks: i16, codec: Codec) -> Result<i64> {
        let now = now_ms();
        let mut b = BatchBuilder::new(now);
        for r in records {
            b.push(r);
        }
        let batch = b.build(codec).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut pd = PartitionProduceData::default();
        pd.index = partition;
        pd.records = Some(batch);
        let mut td = TopicProduceData::default();
        td.name = TopicName(sb(topic));
        td.partition_data = vec![pd];
        let mut req = ProduceRequest::default();
        req.acks = acks;
        req.timeout_ms = 30_000;
        req.topic_data = vec![td];
        let v = self.version(ApiKey::Produce, 9)?;
        if acks == 0 {
            self.send(ApiKey::Produce, v, &req).await?;
            return Ok(-1);
        }
        let resp: ProduceResponse = self.call_at(ApiKey::Produce, v, &req).await?;
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| ClientError::Protocol("empty produce response".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::broker(p.error_code, p.error_message.as_ref().map(|m| m.to_string())));
        }
        Ok(p.base_offset)
    }

    /// ListOffsets for one partition: -2 earliest, -1 latest, or a timestamp.
    pub async fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> Result<i64> {
        let mut p = ListOffsetsPartition::default();
        p.partition_index = partition;
        p.timestamp = timestamp;
        p.current_leader_epoch = -1;
        let mut t = ListOffsetsTopic::default();
        t.name = TopicName(sb(topic));
        t.partitions = vec![p];
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        req.topics = vec![t];
        let resp: ListOffsetsResponse = self.call(ApiKey::ListOffsets, 7, &req).await?;
        let p = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("empty list offsets response".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::broker(p.error_code, None));
        }
        Ok(p.offset)
    }

    /// Fetches from one partition starting at `offset`, waiting up to `max_wait`.
    pub async fn fetch(&mut self, topic: &str, partition: i32, offset: i64, max_wait: Duration, max_bytes: i32) -> Result<FetchResult> {
        let mut fp = FetchPartition::default();
        fp.partition = partition;
        fp.fetch_offset = offset;
        fp.partition_max_bytes = max_bytes;
        fp.current_leader_epoch = -1;
        fp.log_start_offset = -1;
        fp.last_fetched_epoch = -1;
        let mut ft = FetchTopic::default();
        ft.topic = TopicName(sb(topic));
        ft.partitions = vec![fp];
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(-1);
        req.max_wait_ms = max_wait.as_millis() as i32;
        req.min_bytes = 1;
        req.max_bytes = max_bytes;
        req.session_epoch = -1;
        req.topics = vec![ft];
        let resp: FetchResponse = self.call(ApiKey::Fetch, 12, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, None));
        }
        let p = resp
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("empty fetch response".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::broker(p.error_code, None));
        }
        let mut records = Vec::new();
        let mut next = offset;
        if let Some(bytes) = &p.records {
            for b in BatchIter::new(bytes) {
                let b = b.map_err(|e| ClientError::Protocol(e.to_string()))?;
                next = next.max(b.last_offset() + 1);
                if b.is_control() {
                    continue;
                }
                let recs = decode_batch(&b, 256 << 20).map_err(|e| ClientError::Protocol(e.to_string()))?;
                records.extend(recs.into_iter().filter(|r| r.offset >= offset));
            }
        }
        Ok(FetchResult { records, high_watermark: p.high_watermark, log_start_offset: p.log_start_offset, next_offset: next })
    }

    /// DescribeConfigs for a topic (resource type 2) or broker (4): (name, value, source).
    pub async fn describe_configs(&mut self, resource_type: i8, name: &str) -> Result<Vec<(String, Option<String>, i8)>> {
        let mut r = kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = sb(name);
        r.configuration_keys = None;
        let mut req = DescribeConfigsRequest::default();
        req.resources = vec![r];
        let resp: DescribeConfigsResponse = self.call(ApiKey::DescribeConfigs, 4, &req).await?;
        let res = resp.results.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if res.error_code != 0 {
            return Err(ClientError::broker(res.error_code, res.error_message.map(|m| m.to_string())));
        }
        Ok(res.configs.into_iter().map(|c| (c.name.to_string(), c.value.map(|v| v.to_string()), c.config_source)).collect())
    }
}

impl Client {
    /// DeleteRecords: moves a partition's log start offset to `before` (-1: the
    /// end). Returns the new log start offset.
    pub async fn delete_records(&mut self, topic: &str, partition: i32, before: i64) -> Result<i64> {
        use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
        let mut p = DeleteRecordsPartition::default();
        p.partition_index = partition;
        p.offset = before;
        let mut t = DeleteRecordsTopic::default();
        t.name = TopicName(sb(topic));
        t.partitions = vec![p];
        let mut req = DeleteRecordsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 30_000;
        let resp: DeleteRecordsResponse = self.call(ApiKey::DeleteRecords, 2, &req).await?;
        let r = resp.topics.first().and_then(|t| t.partitions.first()).ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::broker(r.error_code, Some(format!("{topic} [{partition}]"))));
        }
        Ok(r.low_watermark)
    }
}

impl Client {
    /// Grows a topic to `count` partitions.
    pub async fn create_partitions(&mut self, topic: &str, count: i32) -> Result<()> {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        let mut t = CreatePartitionsTopic::default();
        t.name = TopicName(sb(topic));
        t.count = count;
        t.assignments = None;
        let mut req = CreatePartitionsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 30_000;
        let resp: CreatePartitionsResponse = self.call(ApiKey::CreatePartitions, 3, &req).await?;
        let r = resp.results.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::broker(r.error_code, r.error_message.map(|m| m.to_string())));
        }
        Ok(())
    }

    /// IncrementalAlterConfigs on a topic: `Some(value)` sets, `None` deletes.
    pub async fn alter_topic_configs(&mut self, topic: &str, changes: &[(String, Option<String>)]) -> Result<()> {
        self.alter_configs(2, topic, changes).await
    }

    /// IncrementalAlterConfigs on any resource (2 topic, 4 broker; "" is the
    /// cluster-wide broker default).
    pub async fn alter_configs(&mut self, resource_type: i8, name: &str, changes: &[(String, Option<String>)]) -> Result<()> {
        use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let mut r = AlterConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = sb(name);
        r.configs = changes
            .iter()
            .map(|(k, v)| {
                let mut c = AlterableConfig::default();
                c.name = sb(k);
                c.config_operation = if v.is_some() { 0 } else { 1 };
                c.value = v.as_deref().map(sb);
                c
            })
            .collect();
        let mut req = IncrementalAlterConfigsRequest::default();
        req.resources = vec![r];
        let resp: IncrementalAlterConfigsResponse = self.call(ApiKey::IncrementalAlterConfigs, 1, &req).await?;
        let r = resp.responses.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::broker(r.error_code, r.error_message.map(|m| m.to_string())));
        }
        Ok(())
    }
}

/// One partition's answer to an admin request (ElectLeaders, AlterPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error: i16,
    pub message: Option<String>,
}

/// An ongoing reassignment as `ListPartitionReassignments` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Client {
    /// Whether the broker advertises `api` at all.
    pub fn supports(&self, api: ApiKey) -> bool {
        self.versions.contains_key(&(api as i16))
    }

    /// Topics with their partitions: DescribeTopicPartitions (paged with its
    /// cursor) when the broker has it, else Metadata. `None`: every topic.
    /// Topics come sorted by name; unknown named topics carry their error.
    pub async fn describe_topics(&mut self, topics: Option<&[&str]>) -> Result<Vec<TopicInfo>> {
        if !self.supports(ApiKey::DescribeTopicPartitions) {
            let (_, _, mut out) = self.metadata(topics, false).await?;
            out.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(out);
        }
        use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
        let mut req = DescribeTopicPartitionsRequest::default();
        req.topics = topics
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let mut r = TopicRequest::default();
                r.name = TopicName(sb(t));
                r
            })
            .collect();
        req.response_partition_limit = 2000;
        let mut out: Vec<TopicInfo> = Vec::new();
        loop {
            let resp: DescribeTopicPartitionsResponse = self.call(ApiKey::DescribeTopicPartitions, 0, &req).await?;
            for t in resp.topics {
                let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                let parts = t.partitions.iter().map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                });
                // A topic split over pages continues the previous entry.
                match out.last_mut().filter(|last| last.name == name && t.error_code == 0) {
                    Some(last) => last.partitions.extend(parts),
                    None => out.push(TopicInfo { name, id: t.topic_id, error: t.error_code, partitions: parts.collect() }),
                }
            }
            let Some(next) = resp.next_cursor else { break };
            let at = (next.topic_name.to_string(), next.partition_index);
            if req.cursor.as_ref().is_some_and(|c| (c.topic_name.to_string(), c.partition_index) >= at) {
                return Err(ClientError::Protocol(format!("DescribeTopicPartitions cursor does not advance: {at:?}")));
            }
            let mut c = Cursor::default();
            c.topic_name = next.topic_name;
            c.partition_index = next.partition_index;
            req.cursor = Some(c);
        }
        Ok(out)
    }

    /// OffsetForLeaderEpoch for one partition (sent to its leader): the
    /// (epoch, end offset) of `epoch`, or (-1, -1) when the leader does not know it.
    pub async fn offset_for_leader_epoch(&mut self, topic: &str, partition: i32, current_epoch: i32, epoch: i32) -> Result<(i32, i64)> {
        use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
        let mut p = OffsetForLeaderPartition::default();
        p.partition = partition;
        p.current_leader_epoch = current_epoch;
        p.leader_epoch = epoch;
        let mut t = OffsetForLeaderTopic::default();
        t.topic = TopicName(sb(topic));
        t.partitions = vec![p];
        let mut req = OffsetForLeaderEpochRequest::default();
        req.replica_id = BrokerId(-1);
        req.topics = vec![t];
        let resp: OffsetForLeaderEpochResponse = self.call(ApiKey::OffsetForLeaderEpoch, 4, &req).await?;
        let r = resp.topics.first().and_then(|t| t.partitions.first()).ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::broker(r.error_code, Some(format!("{topic} [{partition}]"))));
        }
        Ok((r.leader_epoch, r.end_offset))
    }

    /// ElectLeaders: `election_type` 0 preferred, 1 unclean; `partitions: None`
    /// elects for every partition (the answer then leaves out those that need
    /// no election). One result per partition answered.
    pub async fn elect_leaders(&mut self, election_type: i8, partitions: Option<&[(String, i32)]>) -> Result<Vec<PartitionResult>> {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        let mut req = ElectLeadersRequest::default();
        req.election_type = election_type;
        req.timeout_ms = 30_000;
        req.topic_partitions = partitions.map(|ps| {
            let mut topics: Vec<TopicPartitions> = Vec::new();
            for (t, p) in ps {
                match topics.iter_mut().find(|x| x.topic.as_str() == t) {
                    Some(x) => x.partitions.push(*p),
                    None => {
                        let mut x = TopicPartitions::default();
                        x.topic = TopicName(sb(t));
                        x.partitions = vec![*p];
                        topics.push(x);
                    }
                }
            }
            topics
        });
        let v = self.version(ApiKey::ElectLeaders, 2)?;
        if v == 0 && election_type != 0 {
            return Err(ClientError::Protocol("the broker only knows preferred elections (ElectLeaders v0)".into()));
        }
        let resp: ElectLeadersResponse = self.call_at(ApiKey::ElectLeaders, v, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, None));
        }
        Ok(resp
            .replica_election_results
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.to_string();
                t.partition_result.into_iter().map(move |p| PartitionResult {
                    topic: topic.clone(),
                    partition: p.partition_id,
                    error: p.error_code,
                    message: p.error_message.map(|m| m.to_string()),
                })
            })
            .collect())
    }

    /// AlterPartitionReassignments: `Some(replicas)` moves a partition to those
    /// brokers, `None` cancels its ongoing reassignment.
    pub async fn alter_partition_reassignments(&mut self, items: &[(String, i32, Option<Vec<i32>>)]) -> Result<Vec<PartitionResult>> {
        use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
        let mut topics: Vec<ReassignableTopic> = Vec::new();
        for (t, p, replicas) in items {
            let mut rp = ReassignablePartition::default();
            rp.partition_index = *p;
            rp.replicas = replicas.as_ref().map(|r| r.iter().map(|&b| BrokerId(b)).collect());
            match topics.iter_mut().find(|x| x.name.as_str() == t) {
                Some(x) => x.partitions.push(rp),
                None => {
                    let mut x = ReassignableTopic::default();
                    x.name = TopicName(sb(t));
                    x.partitions = vec![rp];
                    topics.push(x);
                }
            }
        }
        let mut req = AlterPartitionReassignmentsRequest::default();
        req.timeout_ms = 30_000;
        req.allow_replication_factor_change = true;
        req.topics = topics;
        let resp: AlterPartitionReassignmentsResponse = self.call(ApiKey::AlterPartitionReassignments, 1, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, resp.error_message.map(|m| m.to_string())));
        }
        Ok(resp
            .responses
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.to_string();
                t.partitions.into_iter().map(move |p| PartitionResult {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    error: p.error_code,
                    message: p.error_message.map(|m| m.to_string()),
                })
            })
            .collect())
    }

    /// ListPartitionReassignments: every ongoing reassignment.
    pub async fn list_partition_reassignments(&mut self) -> Result<Vec<Reassignment>> {
        let mut req = ListPartitionReassignmentsRequest::default();
        req.timeout_ms = 30_000;
        req.topics = None;
        let resp: ListPartitionReassignmentsResponse = self.call(ApiKey::ListPartitionReassignments, 0, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, resp.error_message.map(|m| m.to_string())));
        }
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        let mut out: Vec<Reassignment> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| Reassignment {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// DescribeConfigs of several topics at once, only the keys named:
    /// topic → (key → value). Topics that fail are left out.
    pub async fn topic_configs(&mut self, topics: &[&str], keys: &[&str]) -> Result<HashMap<String, HashMap<String, String>>> {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        let mut req = DescribeConfigsRequest::default();
        req.resources = topics
            .iter()
            .map(|t| {
                let mut r = DescribeConfigsResource::default();
                r.resource_type = 2;
                r.resource_name = sb(t);
                r.configuration_keys = Some(keys.iter().map(|k| sb(k)).collect());
                r
            })
            .collect();
        let resp: DescribeConfigsResponse = self.call(ApiKey::DescribeConfigs, 4, &req).await?;
        Ok(resp
            .results
            .into_iter()
            .filter(|r| r.error_code == 0)
            .map(|r| {
                let kv = r.configs.into_iter().filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string()))).collect();
                (r.resource_name.to_string(), kv)
            })
            .collect())
    }
}

/// One log directory of a broker, as DescribeLogDirs reports it.
#[derive(Debug, Clone)]
pub struct LogDirInfo {
    pub path: String,
    /// 0, or the directory's error (KAFKA_STORAGE_ERROR when it is offline).
    pub error: i16,
    /// The filesystem's size and free space; -1 when unknown.
    pub total_bytes: i64,
    pub usable_bytes: i64,
    pub replicas: Vec<LogDirReplica>,
}

/// One replica in a log directory.
#[derive(Debug, Clone)]
pub struct LogDirReplica {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: i64,
    /// For a move's future copy: how far it is behind the current one.
    pub offset_lag: i64,
    /// The destination copy of a move in progress.
    pub is_future: bool,
}

impl Client {
    /// A connection to broker `id`, found through this connection's Metadata.
    pub async fn connect_broker(&mut self, id: i32) -> Result<Client> {
        let (brokers, _, _) = self.metadata(Some(&[]), false).await?;
        let (_, host, port) =
            brokers.into_iter().find(|b| b.0 == id).ok_or_else(|| ClientError::Protocol(format!("no broker {id} in the cluster")))?;
        Client::connect(&format!("{host}:{port}")).await
    }

    /// DescribeLogDirs, asked of this connection's broker: its log directories and
    /// the replicas in them, every partition when `topics` is `None`, else only the
    /// (topic, partitions) listed.
    pub async fn describe_log_dirs(&mut self, topics: Option<&[(String, Vec<i32>)]>) -> Result<Vec<LogDirInfo>> {
        use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
        let mut req = DescribeLogDirsRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    let mut d = DescribableLogDirTopic::default();
                    d.topic = TopicName(sb(t));
                    d.partitions = ps.clone();
                    d
                })
                .collect()
        });
        let resp: DescribeLogDirsResponse = self.call(ApiKey::DescribeLogDirs, 4, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, None));
        }
        Ok(resp
            .results
            .into_iter()
            .map(|r| LogDirInfo {
                path: r.log_dir.to_string(),
                error: r.error_code,
                total_bytes: r.total_bytes,
                usable_bytes: r.usable_bytes,
                replicas: r
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| LogDirReplica {
                            topic: t.name.to_string(),
                            partition: p.partition_index,
                            size_bytes: p.partition_size,
                            offset_lag: p.offset_lag,
                            is_future: p.is_future_key,
                        })
                    })
                    .collect(),
            })
            .collect())
    }

    /// AlterReplicaLogDirs, asked of this connection's broker: starts moving its
    /// replica of `topic`/`partition` to the log directory `path`. The move runs in
    /// the background; DescribeLogDirs shows when it is done.
    pub async fn alter_replica_log_dir(&mut self, topic: &str, partition: i32, path: &str) -> Result<()> {
        use kafka_protocol::messages::alter_replica_log_dirs_request::{AlterReplicaLogDir, AlterReplicaLogDirTopic};
        let mut t = AlterReplicaLogDirTopic::default();
        t.name = TopicName(sb(topic));
        t.partitions = vec![partition];
        let mut d = AlterReplicaLogDir::default();
        d.path = sb(path);
        d.topics = vec![t];
        let mut req = AlterReplicaLogDirsRequest::default();
        req.dirs = vec![d];
        let resp: AlterReplicaLogDirsResponse = self.call(ApiKey::AlterReplicaLogDirs, 2, &req).await?;
        let p = resp
            .results
            .iter()
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| ClientError::Protocol("AlterReplicaLogDirs answered no partition".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::broker(p.error_code, Some(format!("{topic}-{partition} to '{path}'"))));
        }
        Ok(())
    }
}

/// A consumer group as `DescribeGroups` reports it.
/// One producer a partition leader tracks (DescribeProducers).
#[derive(Debug, Clone)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_start_offset: i64,
}

/// A transaction as its coordinator describes it.
#[derive(Debug, Clone)]
pub struct TxnInfo {
    pub transactional_id: String,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_time_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMemberInfo>,
}

#[derive(Debug, Clone)]
pub struct GroupMemberInfo {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// (topic, partitions) from the consumer-protocol assignment.
    pub assignment: Vec<(String, Vec<i32>)>,
}

impl Client {
    /// (group id, protocol type, state) of every group.
    pub async fn list_groups(&mut self) -> Result<Vec<(String, String, String)>> {
        let resp: ListGroupsResponse = self.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, None));
        }
        Ok(resp.groups.into_iter().map(|g| (g.group_id.to_string(), g.protocol_type.to_string(), g.group_state.to_string())).collect())
    }

    pub async fn describe_group(&mut self, group: &str) -> Result<GroupInfo> {
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(sb(group))];
        let resp: DescribeGroupsResponse = self.call(ApiKey::DescribeGroups, 5, &req).await?;
        let g = resp.groups.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if g.error_code != 0 {
            return Err(ClientError::broker(g.error_code, None));
        }
        Ok(GroupInfo {
            group_id: g.group_id.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMemberInfo {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: consumer_assignment(&m.member_assignment),
                })
                .collect(),
        })
    }

    /// Committed offsets of a group: (topic, partition, offset, metadata).
    pub async fn fetch_offsets(&mut self, group: &str) -> Result<Vec<(String, i32, i64, String)>> {
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(sb(group));
        req.topics = None;
        let resp: OffsetFetchResponse = self.call(ApiKey::OffsetFetch, 7, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, None));
        }
        let mut out = Vec::new();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(ClientError::broker(p.error_code, None));
                }
                out.push((
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.map(|m| m.to_string()).unwrap_or_default(),
                ));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Commits offsets outside any generation (the group must have no members).
    pub async fn commit_offsets(&mut self, group: &str, offsets: &[(String, i32, i64)]) -> Result<()> {
        use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(sb(group));
        req.generation_id_or_member_epoch = -1;
        req.retention_time_ms = -1;
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (t, p, o) in offsets {
            let mut cp = OffsetCommitRequestPartition::default();
            cp.partition_index = *p;
            cp.committed_offset = *o;
            cp.committed_leader_epoch = -1;
            cp.committed_metadata = Some(sb(""));
            match topics.iter_mut().find(|x| x.name.as_str() == t) {
                Some(x) => x.partitions.push(cp),
                None => {
                    let mut ct = OffsetCommitRequestTopic::default();
                    ct.name = TopicName(sb(t));
                    ct.partitions = vec![cp];
                    topics.push(ct);
                }
            }
        }
        req.topics = topics;
        let resp: OffsetCommitResponse = self.call(ApiKey::OffsetCommit, 7, &req).await?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    return Err(ClientError::broker(p.error_code, Some(format!("{} [{}]", t.name.as_str(), p.partition_index))));
                }
            }
        }
        Ok(())
    }

    /// The producers the leader of `topic`/`partition` tracks (DescribeProducers).
    pub async fn describe_producers(&mut self, topic: &str, partition: i32) -> Result<Vec<ProducerInfo>> {
        let mut t = kafka_protocol::messages::describe_producers_request::TopicRequest::default();
        t.name = TopicName(sb(topic));
        t.partition_indexes = vec![partition];
        let mut req = DescribeProducersRequest::default();
        req.topics = vec![t];
        let mut leader = self.leader_for(topic, partition).await?;
        let c = leader.as_mut().unwrap_or(self);
        let resp: DescribeProducersResponse = c.call(ApiKey::DescribeProducers, 0, &req).await?;
        let p = resp.topics.into_iter().flat_map(|t| t.partitions).next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::broker(p.error_code, p.error_message.map(|m| m.to_string())));
        }
        Ok(p.active_producers
            .into_iter()
            .map(|x| ProducerInfo {
                producer_id: x.producer_id.0,
                producer_epoch: x.producer_epoch,
                last_sequence: x.last_sequence,
                last_timestamp: x.last_timestamp,
                coordinator_epoch: x.coordinator_epoch,
                current_txn_start_offset: x.current_txn_start_offset,
            })
            .collect())
    }

    /// A connection to the coordinator of `key` (key_type 0: group, 1: transaction),
    /// or None when it is this connection's broker.
    pub async fn coordinator(&mut self, key: &str, key_type: i8) -> Result<Option<Client>> {
        let mut req = FindCoordinatorRequest::default();
        req.key = sb(key);
        req.key_type = key_type;
        let resp: FindCoordinatorResponse = self.call(ApiKey::FindCoordinator, 3, &req).await?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(resp.error_code, resp.error_message.map(|m| m.to_string())));
        }
        let addr = format!("{}:{}", resp.host.as_str(), resp.port);
        let here = self.stream.peer_addr().ok().map(|a| a.to_string());
        if here.as_deref() == Some(addr.as_str()) {
            return Ok(None);
        }
        Client::connect(&addr).await.map(Some)
    }

    /// DescribeTransactions for one transactional id, asked of its coordinator.
    pub async fn describe_transaction(&mut self, id: &str) -> Result<TxnInfo> {
        let mut coord = self.coordinator(id, 1).await?;
        let c = coord.as_mut().unwrap_or(self);
        let mut req = DescribeTransactionsRequest::default();
        req.transactional_ids = vec![TransactionalId(sb(id))];
        let resp: DescribeTransactionsResponse = c.call(ApiKey::DescribeTransactions, 0, &req).await?;
        let t = resp.transaction_states.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if t.error_code != 0 {
            return Err(ClientError::broker(t.error_code, Some(format!("transactional id '{id}'"))));
        }
        let mut partitions: Vec<(String, i32)> =
            t.topics.iter().flat_map(|x| x.partitions.iter().map(move |p| (x.topic.to_string(), *p))).collect();
        partitions.sort();
        Ok(TxnInfo {
            transactional_id: t.transactional_id.to_string(),
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions,
        })
    }

    /// ListTransactions on every broker (each answers for the transactional ids it
    /// coordinates): (transactional id, producer id, state), sorted.
    pub async fn list_transactions(&mut self) -> Result<Vec<(String, i64, String)>> {
        let (brokers, _, _) = self.metadata(Some(&[]), false).await?;
        let mut out = Vec::new();
        for (_, host, port) in brokers {
            let mut c = Client::connect(&format!("{host}:{port}")).await?;
            let resp: ListTransactionsResponse = c.call(ApiKey::ListTransactions, 0, &ListTransactionsRequest::default()).await?;
            if resp.error_code != 0 {
                return Err(ClientError::broker(resp.error_code, Some(format!("broker {host}:{port}"))));
            }
            out.extend(
                resp.transaction_states
                    .into_iter()
                    .map(|t| (t.transactional_id.to_string(), t.producer_id.0, t.transaction_state.to_string())),
            );
        }
        out.sort();
        Ok(out)
    }

    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(sb(group))];
        let resp: DeleteGroupsResponse = self.call(ApiKey::DeleteGroups, 2, &req).await?;
        let r = resp.results.into_iter().next().ok_or_else(|| ClientError::Protocol("empty response".into()))?;
        if r.error_code != 0 {
            return Err(ClientError::broker(r.error_code, Some(format!("group '{group}'"))));
        }
        Ok(())
    }
}

/// Decodes a consumer-protocol assignment: version, then (topic, partitions)
/// pairs. Returns what it could read; malformed bytes give an empty list.
pub fn consumer_assignment(b: &[u8]) -> Vec<(String, Vec<i32>)> {
    fn i16_at(b: &[u8], at: usize) -> Option<i16> {
        b.get(at..at + 2).map(|x| i16::from_be_bytes([x[0], x[1]]))
    }
    fn i32_at(b: &[u8], at: usize) -> Option<i32> {
        b.get(at..at + 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    let mut out = Vec::new();
    let Some(n) = i32_at(b, 2) else { return out };
    let mut at = 6usize;
    for _ in 0..n.max(0) {
        let Some(len) = i16_at(b, at).filter(|l| *l >= 0) else {
            return out;
        };
        let Some(name) = b.get(at + 2..at + 2 + len as usize) else {
            return out;
        };
        at += 2 + len as usize;
        let Some(count) = i32_at(b, at) else {
            return out;
        };
        at += 4;
        let mut parts = Vec::new();
        for _ in 0..count.max(0) {
            let Some(p) = i32_at(b, at) else { return out };
            parts.push(p);
            at += 4;
        }
        out.push((String::from_utf8_lossy(name).into_owned(), parts));
    }
    out
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Kafka's murmur2 hash, as the Java client's default partitioner uses it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_known_values() {
        // Values from Kafka's own partitioner tests.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }
}
