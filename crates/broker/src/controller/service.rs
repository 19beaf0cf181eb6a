//! The controller service on a controller node: feeds requests to the pure
//! [`Controller`] one at a time while this node leads the quorum, proposes the
//! records, and answers once they are committed.
//!
//! One task owns the controller, so every step sees the image that includes the
//! previous step's records (a proposal returns once applied on this node). On
//! becoming leader it first commits a batch (the cluster id on a fresh quorum,
//! the pre-quorum metadata log on an upgraded single node, else nothing), which
//! also guarantees its image holds everything the old leader committed.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strom_metadata::quorum::{ProposeError, Quorum};
use strom_metadata::MetadataRecord;
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};

use super::{Answer, Controller, ControllerConfig, Failure, Request};

/// An answer and the metadata offset its records were committed at (0: none).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub answer: Answer,
    pub offset: u64,
}

/// A voter's replication state, as DescribeQuorum reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VoterState {
    pub id: i32,
    pub log_end_offset: Option<u64>,
    pub last_contact_ms_ago: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuorumInfo {
    pub leader_id: Option<i32>,
    pub term: u64,
    pub high_watermark: u64,
    pub voters: Vec<VoterState>,
}

type Job = (Request, oneshot::Sender<Reply>);

/// Milliseconds on the controller's clock: wall-clock in a server, simulated time in a test.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub struct ControllerService {
    quorum: Quorum,
    jobs: mpsc::Sender<Job>,
}

/// What the service needs to bootstrap a quorum.
pub struct Bootstrap {
    /// The cluster id from this node's `meta.properties`, if it has one.
    pub cluster_id: Option<String>,
    /// Records of a pre-quorum `metadata.log`, imported once.
    pub legacy: Vec<MetadataRecord>,
}

impl ControllerService {
    pub fn start(quorum: Quorum, config: ControllerConfig, boot: Bootstrap) -> Arc<ControllerService> {
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        Self::start_with(quorum, config, boot, seed, Arc::new(strom_storage::now_ms))
    }

    /// [`start`](Self::start) with the controller's seed and clock handed in (a simulation passes
    /// a fixed seed and its simulated time).
    pub fn start_with(quorum: Quorum, config: ControllerConfig, boot: Bootstrap, seed: u64, now: Clock) -> Arc<ControllerService> {
        let (tx, rx) = mpsc::channel(1024);
        let svc = Arc::new(ControllerService { quorum: quorum.clone(), jobs: tx });
        tokio::spawn(run(quorum, Controller::new(config, seed), boot, rx, now));
        svc
    }

    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// Runs one request on the active controller, or answers NotController.
    pub async fn handle(&self, req: Request) -> Reply {
        if let Request::DescribeQuorum = req {
            return Reply { answer: Answer::Quorum(self.describe()), offset: 0 };
        }
        if !self.quorum.is_leader() {
            return Reply { answer: Answer::NotController { leader: self.quorum.leader() }, offset: 0 };
        }
        let (tx, rx) = oneshot::channel();
        if self.jobs.send((req, tx)).await.is_err() {
            return Reply { answer: Answer::NotController { leader: None }, offset: 0 };
        }
        rx.await.unwrap_or(Reply { answer: Answer::NotController { leader: None }, offset: 0 })
    }

    pub fn describe(&self) -> QuorumInfo {
        let d = self.quorum.describe();
        QuorumInfo {
            leader_id: d.leader_id,
            term: d.term,
            high_watermark: d.high_watermark,
            voters: d
                .voters
                .into_iter()
                .map(|v| VoterState { id: v.id, log_end_offset: v.log_end_offset, last_contact_ms_ago: v.last_contact_ms_ago })
                .collect(),
        }
    }
}

async fn run(quorum: Quorum, mut controller: Controller, boot: Bootstrap, mut jobs: mpsc::Receiver<Job>, now_ms: Clock) {
    let mut leader = quorum.watch_leader();
    // The term in which this node became the active controller. Active only while it still leads
    // that term and every batch it proposed has committed: then the image holds everything
    // committed, and every step sees the previous step's records.
    let mut active: Option<u64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut boot = Some(boot);
    loop {
        if active.is_some() && quorum.leader_term() != active {
            tracing::info!("no longer the active controller");
            active = None;
        }
        if active.is_none() && quorum.is_leader() {
            active = activate(&quorum, &mut controller, &mut boot, &now_ms).await;
        }
        // Biased, so that a simulation replays the same order; the first two are rare, so jobs
        // never wait long.
        tokio::select! {
            biased;
            changed = leader.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                if active.is_some() && quorum.leader_term() == active {
                    let image = quorum.image();
                    let records = controller.tick(&image, now_ms());
                    if !records.is_empty() {
                        log_changes(&records);
                        if let Err(e) = quorum.propose(records).await {
                            tracing::warn!(error = %e, "controller could not commit fencing or elections");
                            active = None;
                        }
                    }
                }
            }
            job = jobs.recv() => {
                let Some((req, tx)) = job else { return };
                if active.is_none() || quorum.leader_term() != active {
                    let _ = tx.send(Reply { answer: Answer::NotController { leader: quorum.leader().filter(|_| !quorum.is_leader()) }, offset: 0 });
                    continue;
                }
                let image = quorum.image();
                let (records, answer) = controller.step(&image, req, now_ms());
                let (reply, settled) = commit(&quorum, records, answer).await;
                if !settled {
                    // The records may still commit later: step on no image until a batch
                    // proposed after them has committed (re-activation).
                    active = None;
                }
                let _ = tx.send(reply);
            }
        }
    }
}

/// Commits a batch on becoming leader, then starts broker sessions afresh. Returns the term it
/// leads, once that batch (and so everything before it) has committed and been applied here.
async fn activate(quorum: &Quorum, controller: &mut Controller, boot: &mut Option<Bootstrap>, now_ms: &Clock) -> Option<u64> {
    let term = quorum.leader_term()?;
    let image = quorum.image();
    let mut records = Vec::new();
    if let Some(b) = boot.as_ref() {
        records = controller.bootstrap(&image, || b.cluster_id.clone().unwrap_or_else(new_cluster_id));
        if !image.imported && !b.legacy.is_empty() {
            tracing::info!(records = b.legacy.len(), "importing the pre-quorum metadata log");
            records.extend(b.legacy.iter().cloned());
            records.push(MetadataRecord::Imported);
        }
    }
    match quorum.propose(records).await {
        Ok(offset) => {
            *boot = None;
            let image = quorum.image();
            controller.activate(&image, now_ms());
            tracing::info!(offset, term, "this node is the active controller");
            Some(term)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not take over as controller");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// Proposes a step's records and answers; `false` when their fate is unknown.
async fn commit(quorum: &Quorum, records: Vec<MetadataRecord>, answer: Answer) -> (Reply, bool) {
    if records.is_empty() {
        return (Reply { answer, offset: quorum.image().offset }, true);
    }
    log_changes(&records);
    match quorum.propose(records).await {
        Ok(offset) => (Reply { answer, offset }, true),
        Err(ProposeError::NotLeader { leader }) => (Reply { answer: Answer::NotController { leader }, offset: 0 }, false),
        Err(e) => {
            let f = Failure::new(ErrorCode::RequestTimedOut, format!("the metadata quorum did not commit in time: {e}"));
            (Reply { answer: fail_all(answer, f), offset: 0 }, false)
        }
    }
}

/// The same answer shape, every part failed.
fn fail_all(answer: Answer, f: Failure) -> Answer {
    answer.failed(f)
}

fn log_changes(records: &[MetadataRecord]) {
    for r in records {
        match r {
            MetadataRecord::BrokerFence { id, fenced: true, .. } => tracing::info!(broker = id, "fenced broker"),
            MetadataRecord::BrokerFence { id, fenced: false, .. } => tracing::info!(broker = id, "unfenced broker"),
            MetadataRecord::RegisterBroker { id, epoch, .. } => tracing::info!(broker = id, epoch, "registered broker"),
            MetadataRecord::BrokerShuttingDown { id, .. } => tracing::info!(broker = id, "broker shutting down"),
            MetadataRecord::ClusterId { id } => tracing::info!(cluster = %id, "new cluster"),
            _ => {}
        }
    }
}

/// A cluster id as Kafka makes them: a random UUID in URL-safe base64 without padding.
pub fn new_cluster_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}
