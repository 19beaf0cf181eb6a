//! The metadata quorum: the cluster metadata log replicated with Raft ([openraft] 0.9).
//!
//! - Voters run [`Quorum`]: openraft over a durable log ([`log_store`]: `raft-log`, `raft-state`)
//!   and a state machine ([`state_machine`]: the [`MetadataImage`], `raft-snapshot`). Every applied
//!   batch of records yields a [`Publication`].
//! - Brokers that are not voters run [`MetadataFollower`], which long-polls a voter for committed
//!   batches (Kafka's observers pull the same way).
//! - Nodes talk Kafka-style frames with the private API key [`QUORUM_API_KEY`] and JSON bodies, so
//!   one CONTROLLER listener can carry them next to Kafka's own controller APIs; see [`rpc`] for the
//!   layout, [`Quorum::handle_rpc`] and [`serve_connection`] for the server side.
//!
//! The files live in `<log.dir>/__cluster_metadata` under names of their own (`raft-*`); a
//! pre-quorum `metadata.log` there is left alone.
//!
//! Blocking file I/O (writes, fsyncs, renames, snapshot reads) goes through `blocking`: on a
//! multi-threaded tokio runtime (the server) it runs on `spawn_blocking` threads, off the async
//! workers; on a current-thread runtime (unit tests, the turmoil simulation, which must stay on one
//! thread to be reproducible) it runs inline.
//!
//! Raft timing: elections start after a random timeout in `[election_timeout_ms, 2 *
//! election_timeout_ms)` without a heartbeat; a leader heartbeats every `heartbeat_interval_ms`.
//! After a leader dies, a new one is usually elected within about `2 * election_timeout_ms` plus a
//! round trip (a split vote costs another timeout).
//!
//! Outcome of [`Quorum::propose`]: `Ok(index)` means committed by a majority and applied here.
//! `Timeout` and `NotLeader` do not mean "not written": the batch may still commit later (for
//! example if leadership moved after it was appended). Records carry whole states, so callers
//! re-derive from the image and retry rather than assume.

mod client;
mod follower;
mod log_store;
mod network;
mod rpc;
mod runtime;
mod state_machine;

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, Snapshot, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use client::QuorumClient;
pub use follower::MetadataFollower;
pub use network::{Connector, TcpConnector};
pub use rpc::{MAX_RPC_BYTES, QUORUM_API_KEY};
pub use runtime::{seed_election_rng, QuorumRuntime};

use crate::{MetadataDelta, MetadataImage, MetadataRecord};
use log_store::LogStore;
use network::{Contacts, NetworkFactory};
use rpc::{FetchBody, FetchReply, Request, Response};
use state_machine::{Fetched, SmShared, StateMachine};

/// One Raft log entry's worth of metadata records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Vec<MetadataRecord>);

/// The payload of a snapshot: records that rebuild the image from empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotData {
    pub records: Vec<MetadataRecord>,
}

openraft::declare_raft_types!(
    /// openraft's types for the metadata quorum.
    pub TypeConfig:
        D = Batch,
        R = (),
        NodeId = i32,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = SnapshotData,
        AsyncRuntime = QuorumRuntime,
);

#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub node_id: i32,
    /// voter node id -> "host:port" of its CONTROLLER listener
    pub voters: BTreeMap<i32, String>,
    /// directory for the Raft state: `<log.dir>/__cluster_metadata`
    pub dir: PathBuf,
    /// Kafka's `controller.quorum.election.timeout.ms` (default 1000).
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// `controller.quorum.request.timeout.ms` (default 2000): per RPC, and how long `propose` waits.
    pub request_timeout_ms: u64,
}

/// Knobs with sensible defaults that tests turn down.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot (so lagging voters catch up without one).
    pub keep_after_snapshot: u64,
    /// Recent batches kept in memory for observers.
    pub window: usize,
    /// Cap on a FetchMetadata long poll.
    pub max_fetch_wait_ms: u64,
    /// Also snapshot, and drop the log behind the snapshot, once this many
    /// bytes of records (as serialized) were applied since the last one:
    /// Kafka's `metadata.log.max.record.bytes.between.snapshots`. A few
    /// entries can hold 100,000 partition changes each.
    pub snapshot_bytes: u64,
    /// The window of recent batches holds at most this many records.
    pub window_records: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            snapshot_every: 5000,
            keep_after_snapshot: 1000,
            window: 10_000,
            max_fetch_wait_ms: 500,
            snapshot_bytes: 20 << 20,
            window_records: 200_000,
        }
    }
}

/// One committed batch of records as applied on this node, in log order.
#[derive(Debug, Clone)]
pub struct Publication {
    pub records: Vec<MetadataRecord>,
    pub delta: MetadataDelta,
    pub image: Arc<MetadataImage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeError {
    NotLeader { leader: Option<i32> },
    Timeout,
    Fatal(String),
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader { leader: Some(l) } => write!(f, "not the metadata quorum leader (leader is {l})"),
            ProposeError::NotLeader { leader: None } => write!(f, "not the metadata quorum leader (no leader known)"),
            ProposeError::Timeout => write!(f, "metadata proposal timed out"),
            ProposeError::Fatal(m) => write!(f, "metadata quorum failed: {m}"),
        }
    }
}

impl std::error::Error for ProposeError {}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("metadata quorum i/o: {0}")]
    Io(#[from] io::Error),
    #[error("metadata quorum config: {0}")]
    Config(String),
    #[error("metadata quorum: {0}")]
    Raft(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    pub leader_id: Option<i32>,
    pub term: u64,
    /// The committed (and applied) index on this node.
    pub high_watermark: u64,
    /// On the leader every voter; elsewhere the voters with only this node's own figures filled in.
    pub voters: Vec<ReplicaState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub id: i32,
    /// The last log index known to be replicated on this voter.
    pub log_end_offset: Option<u64>,
    pub last_contact_ms_ago: Option<u64>,
}

/// A running voter of the metadata quorum. Cheap to clone.
#[derive(Clone)]
pub struct Quorum {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: i32,
    raft: Raft<TypeConfig>,
    sm: Arc<SmShared>,
    leader_rx: watch::Receiver<(Option<i32>, u64)>,
    contacts: Contacts,
    request_timeout: Duration,
    max_fetch_wait: Duration,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Runs blocking file I/O: on `spawn_blocking` in a multi-threaded runtime, inline otherwise.
pub(crate) async fn blocking<R: Send + 'static>(f: impl FnOnce() -> io::Result<R> + Send + 'static) -> io::Result<R> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => match tokio::task::spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(io::Error::other(e)),
        },
        _ => f(),
    }
}

impl Quorum {
    /// Opens the durable state in `cfg.dir` and starts Raft; see the module docs. Returns once the
    /// image reflects everything this node had committed before.
    pub async fn start<C: Connector>(
        cfg: QuorumConfig,
        connector: C,
    ) -> Result<(Quorum, mpsc::UnboundedReceiver<Publication>), QuorumError> {
        Self::start_with(cfg, connector, Tuning::default()).await
    }

    pub async fn start_with<C: Connector>(
        cfg: QuorumConfig,
        connector: C,
        tuning: Tuning,
    ) -> Result<(Quorum, mpsc::UnboundedReceiver<Publication>), QuorumError> {
        if !cfg.voters.contains_key(&cfg.node_id) {
            return Err(QuorumError::Config(format!("node {} is not among the voters {:?}", cfg.node_id, cfg.voters)));
        }
        let election = cfg.election_timeout_ms.max(2);
        let config = Config {
            cluster_name: "strom-metadata".into(),
            election_timeout_min: election,
            election_timeout_max: election * 2,
            heartbeat_interval: cfg.heartbeat_interval_ms.clamp(1, election - 1),
            install_snapshot_timeout: cfg.request_timeout_ms.max(10_000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: tuning.keep_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;

        let (pub_tx, pub_rx) = mpsc::unbounded_channel();
        let dir = cfg.dir.clone();
        let log = blocking(move || LogStore::open(&dir)).await?;
        let dir = cfg.dir.clone();
        let window = tuning.window;
        let limits = (tuning.snapshot_bytes.max(1), tuning.window_records.max(1));
        let sm = blocking(move || StateMachine::open(&dir, window, limits, pub_tx)).await?;
        let shared = sm.shared.clone();
        let request_timeout = Duration::from_millis(cfg.request_timeout_ms.max(1));
        let contacts = Contacts::default();
        let net = NetworkFactory { connector, addrs: Arc::new(cfg.voters.clone()), request_timeout, contacts: contacts.clone() };
        // Raft::new replays the log up to the saved committed index into the state machine.
        let raft = Raft::new(cfg.node_id, Arc::new(config), net, log, sm).await.map_err(|e| QuorumError::Raft(e.to_string()))?;
        let initialized = raft.is_initialized().await.map_err(|e| QuorumError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<i32, BasicNode> = cfg.voters.iter().map(|(id, addr)| (*id, BasicNode::new(addr))).collect();
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(QuorumError::Raft(e.to_string())),
            }
        }

        let mut metrics = raft.metrics();
        let first = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term)
        };
        let (leader_tx, leader_rx) = watch::channel(first);
        let watcher = tokio::spawn(async move {
            while metrics.changed().await.is_ok() {
                let now = {
                    let m = metrics.borrow_and_update();
                    (m.current_leader, m.current_term)
                };
                leader_tx.send_if_modified(|cur| {
                    let changed = *cur != now;
                    *cur = now;
                    changed
                });
            }
        });
        let raft_for_nudge = raft.clone();
        let compactor = tokio::spawn(compact_log(raft.clone(), shared.clone()));
        let inner = Inner {
            node_id: cfg.node_id,
            raft,
            sm: shared,
            leader_rx,
            contacts,
            request_timeout,
            max_fetch_wait: Duration::from_millis(tuning.max_fetch_wait_ms),
            tasks: Mutex::new(vec![watcher, tokio::spawn(unstick_elections(raft_for_nudge, election)), compactor]),
        };
        Ok((Quorum { inner: Arc::new(inner) }, pub_rx))
    }

    pub fn node_id(&self) -> i32 {
        self.inner.node_id
    }

    /// Appends one batch through Raft; returns its log index once committed and applied here.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64, ProposeError> {
        let write = self.inner.raft.client_write(Batch(records));
        match tokio::time::timeout(self.inner.request_timeout, write).await {
            Err(_) => Err(ProposeError::Timeout),
            Ok(Ok(resp)) => Ok(resp.log_id.index),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(ProposeError::NotLeader { leader: f.leader_id }),
            Ok(Err(RaftError::APIError(e))) => Err(ProposeError::Fatal(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(ProposeError::Fatal(e.to_string())),
        }
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.sm.image()
    }

    pub fn leader(&self) -> Option<i32> {
        self.inner.raft.metrics().borrow().current_leader
    }

    pub fn is_leader(&self) -> bool {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_leader == Some(self.inner.node_id)
    }

    /// The term this node leads, if it leads. A node leads a term at most once, so the same
    /// answer twice means it led without interruption in between.
    pub fn leader_term(&self) -> Option<u64> {
        let m = self.inner.raft.metrics();
        let m = m.borrow();
        (m.state == ServerState::Leader && m.current_leader == Some(self.inner.node_id)).then_some(m.current_term)
    }

    /// `(leader, term)`, updated on every change.
    pub fn watch_leader(&self) -> watch::Receiver<(Option<i32>, u64)> {
        self.inner.leader_rx.clone()
    }

    pub fn describe(&self) -> QuorumState {
        let m = self.inner.raft.metrics().borrow().clone();
        let me = self.inner.node_id;
        let high_watermark = self.inner.sm.last_applied().map_or(0, |l| l.index);
        let contacts = self.inner.contacts.lock().map(|c| c.clone()).unwrap_or_default();
        let now = Instant::now();
        let voters = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| {
                if id == me {
                    return ReplicaState { id, log_end_offset: m.last_log_index, last_contact_ms_ago: Some(0) };
                }
                match &m.replication {
                    Some(r) if m.state == ServerState::Leader => ReplicaState {
                        id,
                        log_end_offset: r.get(&id).copied().flatten().map(|l| l.index),
                        last_contact_ms_ago: contacts.get(&id).map(|t| now.saturating_duration_since(*t).as_millis() as u64),
                    },
                    _ => ReplicaState { id, log_end_offset: None, last_contact_ms_ago: None },
                }
            })
            .collect();
        QuorumState { leader_id: m.current_leader, term: m.current_term, high_watermark, voters }
    }

    /// Server side of the quorum RPCs: one request body in, one response body out.
    pub async fn handle_rpc(&self, body: &[u8]) -> Vec<u8> {
        let req: Request = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return rpc::error_response(format!("bad quorum request: {e}")),
        };
        let raft = &self.inner.raft;
        let resp = match req {
            Request::AppendEntries(r) => {
                let first = r.prev_log_id.map_or(0, |l| l.index + 1);
                if r.entries.iter().zip(first..).any(|(e, want)| e.log_id.index != want) {
                    return rpc::error_response("append entries are not consecutive");
                }
                match raft.append_entries(r).await {
                    Ok(r) => Response::AppendEntries(r),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::Vote(r) => match raft.vote(r).await {
                Ok(r) => Response::Vote(r),
                Err(e) => Response::Error(e.to_string()),
            },
            Request::InstallSnapshot { vote, meta, data } => {
                match raft.install_full_snapshot(vote, Snapshot { meta, snapshot: Box::new(data) }).await {
                    Ok(r) => Response::InstallSnapshot(r),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::FetchMetadata { after, max_wait_ms } => Response::Metadata(self.fetch(after, max_wait_ms).await),
            Request::Propose { records } => Response::Proposed(self.propose(records).await),
        };
        rpc::encode(&resp)
    }

    async fn fetch(&self, after: u64, max_wait_ms: u64) -> FetchReply {
        let deadline = Instant::now() + Duration::from_millis(max_wait_ms).min(self.inner.max_fetch_wait);
        let mut applied = self.inner.sm.applied_tx.subscribe();
        let body = loop {
            applied.borrow_and_update();
            match self.inner.sm.fetch(after, 1000) {
                Fetched::Batches { batches, complete_to } => break FetchBody::Batches { batches, complete_to },
                Fetched::Snapshot(image) => {
                    break FetchBody::Snapshot { offset: image.offset, records: image.to_records() };
                }
                Fetched::Nothing => {}
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => continue,
                _ => break FetchBody::Batches { batches: Vec::new(), complete_to: after },
            }
        };
        let (leader, term) = *self.inner.leader_rx.borrow();
        FetchReply { leader, term, body }
    }

    /// Stops Raft and the background tasks. The durable state stays as it is.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        for t in tasks {
            t.abort();
        }
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum shutdown");
        }
    }
}

/// openraft 0.9 draws a node's election timeout once, when it starts, and checks it on a fixed tick.
/// Voters whose timeouts round to the same tick and whose ticks run in phase (a simulation; processes
/// started together) can split every vote forever. While no leader is known, this starts an election
/// after a delay drawn afresh each time, which breaks the symmetry. Elsewhere it never fires.
async fn unstick_elections(raft: Raft<TypeConfig>, election_ms: u64) {
    use rand::Rng;
    let metrics = raft.metrics();
    loop {
        let wait = runtime::ElectionRng.gen_range(election_ms * 2..election_ms * 4);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let leaderless = {
            let m = metrics.borrow();
            m.current_leader.is_none() && matches!(m.state, ServerState::Candidate | ServerState::Follower)
        };
        if leaderless && raft.trigger().elect().await.is_err() {
            return;
        }
    }
}

/// Serves quorum frames on `stream` until it closes or sends anything else (then it is dropped).
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, quorum: Quorum) {
    loop {
        let frame = match rpc::read_frame(&mut stream, 10).await {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "quorum connection closed");
                return;
            }
        };
        let Some(h) = rpc::parse_request(&frame) else {
            return;
        };
        if h.api_key != QUORUM_API_KEY {
            tracing::debug!(api_key = h.api_key, "not a quorum frame; closing");
            return;
        }
        let body = quorum.handle_rpc(&frame[h.body_at..]).await;
        let out = rpc::response_frame(h.correlation_id, &body);
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;

/// Snapshots the state machine when many bytes of records were applied since
/// the last snapshot, then drops the log behind it: openraft's own policy counts
/// entries, and a handful of entries can hold hundreds of thousands of
/// partition changes (creating a 100,000-partition topic, or a restart that
/// moves all their leaders), which would otherwise stay in memory and on disk.
async fn compact_log(raft: Raft<TypeConfig>, sm: Arc<SmShared>) {
    loop {
        sm.compact_wanted.notified().await;
        let Some(upto) = sm.last_applied().map(|l| l.index) else { continue };
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        let mut metrics = raft.metrics();
        let built = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                if metrics.borrow_and_update().snapshot.is_some_and(|s| s.index >= upto) {
                    return true;
                }
                if metrics.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        if built == Ok(true) && raft.trigger().purge_log(upto).await.is_err() {
            return;
        }
    }
}
