//! Decodes a request frame and matches its API key to a handler. Nothing else.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use strom_protocol::frame::{self, FrameError};
use strom_protocol::versions;

use crate::handlers;
use crate::server::Broker;

pub type Later = Pin<Box<dyn Future<Output = Option<Bytes>> + Send + 'static>>;

/// A handler's answer: the response now, or a future that produces it.
/// `None` means no response is sent (acks=0).
pub enum Outcome {
    Ready(Option<Bytes>),
    Later(Later),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("{api:?} v{version} is not supported; closing as Kafka does")]
    Unsupported { api: ApiKey, version: i16 },
}

/// Where a response goes: the request's API, version and correlation id.
#[derive(Debug, Clone)]
pub struct Reply {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
    pub peer: SocketAddr,
}

impl Reply {
    /// Encodes a response. If that fails, returns an empty frame, which tells the
    /// connection to close: a client waiting for an answer that never comes would hang.
    pub fn encode<R: Encodable>(&self, body: &R) -> Option<Bytes> {
        match frame::encode_response(self.api, self.version, self.correlation_id, body) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::error!(api = ?self.api, version = self.version, error = %e, "response encoding failed");
                Some(Bytes::new())
            }
        }
    }

    pub fn ready<R: Encodable>(&self, body: &R) -> Outcome {
        Outcome::Ready(self.encode(body))
    }
}

fn decode<R: Decodable>(api: ApiKey, version: i16, body: &mut Bytes) -> Result<R, FrameError> {
    frame::decode_body(api, version, body)
}

/// Test hook: requests whose client id equals `STROM_TEST_PANIC_CLIENT_ID` (read
/// once at start) panic here, so tests can prove a panic stays inside its connection.
fn panic_hook_matches(client_id: &Option<String>) -> bool {
    static HOOK: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let hook = HOOK.get_or_init(|| std::env::var("STROM_TEST_PANIC_CLIENT_ID").ok().filter(|s| !s.is_empty()));
    hook.is_some() && hook == client_id
}

pub async fn dispatch(broker: &Arc<Broker>, frame: Bytes, peer: SocketAddr) -> Result<Outcome, DispatchError> {
    let prefix = frame::peek_prefix(&frame)?;
    let api = ApiKey::try_from(prefix.api_key).map_err(|_| FrameError::UnknownApiKey(prefix.api_key))?;
    if api == ApiKey::ApiVersions && !versions::is_accepted(api, prefix.api_version) {
        return Ok(handlers::api_versions::unsupported(prefix.correlation_id));
    }
    if !versions::is_accepted(api, prefix.api_version) {
        return Err(DispatchError::Unsupported { api, version: prefix.api_version });
    }
    let v = prefix.api_version;
    let mut body = frame;
    let header: RequestHeader = frame::decode_header(api, v, &mut body)?;
    let reply =
        Reply { api, version: v, correlation_id: header.correlation_id, client_id: header.client_id.as_ref().map(|s| s.to_string()), peer };
    if panic_hook_matches(&reply.client_id) {
        panic!("STROM_TEST_PANIC_CLIENT_ID matched client id {:?}", reply.client_id);
    }
    let b = broker;
    Ok(match api {
        ApiKey::ApiVersions => handlers::api_versions::handle(&reply, decode(api, v, &mut body)?),
        ApiKey::Metadata => handlers::metadata::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::CreateTopics => handlers::create_topics::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DeleteTopics => handlers::delete_topics::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::Produce => handlers::produce::handle(b, &reply, decode(api, v, &mut body)?).await,
        ApiKey::Fetch => handlers::fetch::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::ListOffsets => handlers::list_offsets::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeCluster => handlers::describe_cluster::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeConfigs => handlers::describe_configs::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::InitProducerId => handlers::init_producer_id::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::FindCoordinator => handlers::find_coordinator::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::JoinGroup => handlers::join_group::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::SyncGroup => handlers::sync_group::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::Heartbeat => handlers::heartbeat::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::LeaveGroup => handlers::leave_group::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::OffsetCommit => handlers::offset_commit::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::OffsetFetch => handlers::offset_fetch::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::TxnOffsetCommit => handlers::txn_offset_commit::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeGroups => handlers::describe_groups::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::ListGroups => handlers::list_groups::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DeleteGroups => handlers::delete_groups::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::OffsetDelete => handlers::offset_delete::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DeleteRecords => handlers::delete_records::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::CreatePartitions => handlers::create_partitions::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::AlterConfigs => handlers::alter_configs::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::IncrementalAlterConfigs => handlers::incremental_alter_configs::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeLogDirs => handlers::describe_log_dirs::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::AlterReplicaLogDirs => handlers::alter_replica_log_dirs::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::WriteTxnMarkers => handlers::write_txn_markers::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeProducers => handlers::describe_producers::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeQuorum => handlers::describe_quorum::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeTopicPartitions => handlers::describe_topic_partitions::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::OffsetForLeaderEpoch => handlers::offset_for_leader_epoch::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::ElectLeaders => handlers::elect_leaders::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::AlterPartitionReassignments => handlers::alter_partition_reassignments::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::ListPartitionReassignments => handlers::list_partition_reassignments::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::AddPartitionsToTxn => handlers::add_partitions_to_txn::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::AddOffsetsToTxn => handlers::add_offsets_to_txn::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::EndTxn => handlers::end_txn::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::DescribeTransactions => handlers::describe_transactions::handle(b, &reply, decode(api, v, &mut body)?),
        ApiKey::ListTransactions => handlers::list_transactions::handle(b, &reply, decode(api, v, &mut body)?),
        _ => return Err(DispatchError::Unsupported { api, version: v }),
    })
}
