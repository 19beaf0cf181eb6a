//! Client side of the quorum RPCs: connectors, one connection per peer client, openraft's network.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory, Snapshot, Vote};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::rpc::{self, Request, Response};
use super::TypeConfig;

/// Opens byte streams to peers ("host:port"). [`TcpConnector`] for real sockets; tests bring their own.
pub trait Connector: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn connect(&self, addr: &str) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain tokio TCP.
#[derive(Clone, Debug, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    type Stream = tokio::net::TcpStream;
    async fn connect(&self, addr: &str) -> io::Result<tokio::net::TcpStream> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// One connection to one address, opened on first use and reopened after any error.
pub(crate) struct RpcClient<C: Connector> {
    addr: String,
    connector: C,
    /// Only ever used through `&mut self` (`get_mut`); the mutex just makes the client `Sync`,
    /// which openraft requires of its network, without asking streams to be `Sync`.
    conn: Mutex<Option<C::Stream>>,
    next_correlation: i32,
}

impl<C: Connector> RpcClient<C> {
    pub fn new(addr: String, connector: C) -> Self {
        RpcClient { addr, connector, conn: Mutex::new(None), next_correlation: 0 }
    }

    /// Sends `body` and returns the response body, giving up after `timeout`. `Err` kinds:
    /// `ConnectionRefused`-like errors while connecting, `TimedOut`, anything else from the stream.
    pub async fn call(&mut self, body: &[u8], timeout: Duration) -> Result<Vec<u8>, CallError> {
        let res = tokio::time::timeout(timeout, self.call_inner(body)).await;
        match res {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) => {
                *self.conn_mut() = None;
                Err(e)
            }
            Err(_) => {
                *self.conn_mut() = None;
                Err(CallError::Io(io::Error::new(io::ErrorKind::TimedOut, format!("quorum rpc to {} timed out", self.addr))))
            }
        }
    }

    fn conn_mut(&mut self) -> &mut Option<C::Stream> {
        self.conn.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    async fn call_inner(&mut self, body: &[u8]) -> Result<Vec<u8>, CallError> {
        if self.conn_mut().is_none() {
            let s = self.connector.connect(&self.addr).await.map_err(CallError::Connect)?;
            *self.conn_mut() = Some(s);
        }
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let correlation = self.next_correlation;
        let Some(conn) = self.conn_mut().as_mut() else {
            return Err(CallError::Connect(io::Error::new(io::ErrorKind::NotConnected, "no connection")));
        };
        rpc::round_trip(conn, correlation, body).await.map_err(CallError::Io)
    }
}

#[derive(Debug)]
pub(crate) enum CallError {
    Connect(io::Error),
    Io(io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "connect: {e}"),
            CallError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CallError {}

/// When each peer last answered an AppendEntries (for DescribeQuorum).
pub(crate) type Contacts = Arc<Mutex<HashMap<i32, Instant>>>;

pub(crate) struct NetworkFactory<C: Connector> {
    pub connector: C,
    /// Configured addresses; they win over the addresses stored in the membership.
    pub addrs: Arc<BTreeMap<i32, String>>,
    pub request_timeout: Duration,
    pub contacts: Contacts,
}

impl<C: Connector> RaftNetworkFactory<TypeConfig> for NetworkFactory<C> {
    type Network = PeerNetwork<C>;

    async fn new_client(&mut self, target: i32, node: &BasicNode) -> PeerNetwork<C> {
        let addr = self.addrs.get(&target).cloned().unwrap_or_else(|| node.addr.clone());
        PeerNetwork {
            target,
            client: RpcClient::new(addr, self.connector.clone()),
            request_timeout: self.request_timeout,
            contacts: self.contacts.clone(),
        }
    }
}

pub(crate) struct PeerNetwork<C: Connector> {
    target: i32,
    client: RpcClient<C>,
    request_timeout: Duration,
    contacts: Contacts,
}

impl<C: Connector> PeerNetwork<C> {
    async fn send(&mut self, req: &Request, timeout: Duration) -> Result<Response, CallError> {
        let body = rpc::encode(req);
        let resp = self.client.call(&body, timeout).await?;
        serde_json::from_slice(&resp).map_err(|e| CallError::Io(io::Error::new(io::ErrorKind::InvalidData, e)))
    }
}

fn rpc_error<E: std::error::Error>(e: CallError) -> RPCError<i32, BasicNode, E> {
    match e {
        CallError::Connect(e) => RPCError::Unreachable(Unreachable::new(&e)),
        CallError::Io(e) => RPCError::Network(NetworkError::new(&e)),
    }
}

fn unexpected(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unexpected quorum response: {what}"))
}

impl<C: Connector> RaftNetwork<TypeConfig> for PeerNetwork<C> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<i32>, RPCError<i32, BasicNode, RaftError<i32>>> {
        let n = rpc.entries.len() as u64;
        let req = Request::AppendEntries(rpc);
        let body = rpc::encode(&req);
        if body.len() + 64 > rpc::MAX_RPC_BYTES && n > 1 {
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(n / 2)));
        }
        let timeout = option.hard_ttl().min(self.request_timeout);
        let resp = self.client.call(&body, timeout).await.map_err(rpc_error)?;
        match serde_json::from_slice::<Response>(&resp) {
            Ok(Response::AppendEntries(r)) => {
                if let Ok(mut c) = self.contacts.lock() {
                    c.insert(self.target, Instant::now());
                }
                Ok(r)
            }
            Ok(Response::Error(m)) => Err(RPCError::Network(NetworkError::new(&io::Error::other(m)))),
            Ok(_) => Err(RPCError::Network(NetworkError::new(&unexpected("not AppendEntries")))),
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<i32>,
        option: RPCOption,
    ) -> Result<VoteResponse<i32>, RPCError<i32, BasicNode, RaftError<i32>>> {
        let timeout = option.hard_ttl().min(self.request_timeout);
        match self.send(&Request::Vote(rpc), timeout).await.map_err(rpc_error)? {
            Response::Vote(r) => Ok(r),
            Response::Error(m) => Err(RPCError::Network(NetworkError::new(&io::Error::other(m)))),
            _ => Err(RPCError::Network(NetworkError::new(&unexpected("not Vote")))),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<i32>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<i32>, StreamingError<TypeConfig, Fatal<i32>>> {
        let req = Request::InstallSnapshot { vote, meta: snapshot.meta, data: *snapshot.snapshot };
        let timeout = option.hard_ttl().max(self.request_timeout);
        let res = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            res = self.send(&req, timeout) => res,
        };
        let resp = res.map_err(|e| match e {
            CallError::Connect(e) => StreamingError::Unreachable(Unreachable::new(&e)),
            CallError::Io(e) => StreamingError::Network(NetworkError::new(&e)),
        })?;
        match resp {
            Response::InstallSnapshot(r) => Ok(r),
            Response::Error(m) => Err(StreamingError::Network(NetworkError::new(&io::Error::other(m)))),
            _ => Err(StreamingError::Network(NetworkError::new(&unexpected("not InstallSnapshot")))),
        }
    }
}
