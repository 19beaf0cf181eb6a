//! The replica manager: every partition replica this node hosts, keyed by topic
//! and partition, made leader or follower as the metadata image says; the
//! replica fetchers; and the leader's periodic ISR check.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::controller::{Answer, Request};
use crate::partition::{CommittedIsr, IsrProposal, Partition};
use crate::server::Broker;

type Key = (String, i32);

#[derive(Default)]
pub struct ReplicaManager {
    parts: RwLock<HashMap<Key, Arc<Partition>>>,
    /// Leaders with a running fetcher task.
    fetchers: Mutex<HashSet<i32>>,
    /// Woken when a partition starts following someone.
    wake: tokio::sync::Notify,
}

impl ReplicaManager {
    pub fn new() -> Self {
        ReplicaManager::default()
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let parts = self.parts.read().unwrap_or_else(|p| p.into_inner());
        parts.get(&(topic.to_string(), partition)).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.parts.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// The partition object for a log, created on first use.
    pub fn ensure(&self, make: impl FnOnce() -> Partition, topic: &str, partition: i32) -> Arc<Partition> {
        if let Some(p) = self.get(topic, partition) {
            return p;
        }
        let mut parts = self.parts.write().unwrap_or_else(|p| p.into_inner());
        parts.entry((topic.to_string(), partition)).or_insert_with(|| Arc::new(make())).clone()
    }

    pub fn remove(&self, topic: &str, partition: i32) {
        let removed = self.parts.write().unwrap_or_else(|p| p.into_inner()).remove(&(topic.to_string(), partition));
        if let Some(p) = removed {
            p.stop();
        }
    }

    /// Partitions following `leader`, with the leader epoch they follow at.
    pub fn following(&self, leader: i32) -> Vec<(Arc<Partition>, i32)> {
        let mut out: Vec<(Arc<Partition>, i32)> = self
            .all()
            .into_iter()
            .filter_map(|p| match p.following() {
                Some((l, epoch)) if l == leader => Some((p, epoch)),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| (&a.0.topic, a.0.index).cmp(&(&b.0.topic, b.0.index)));
        out
    }

    /// A fetcher with nothing to follow asks to stop; false if something arrived meanwhile.
    pub fn fetcher_done(&self, leader: i32) -> bool {
        let mut f = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        if !self.following(leader).is_empty() {
            return false;
        }
        f.remove(&leader);
        true
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Starts fetchers for leaders that need one, shrinks ISRs of lagging followers,
/// and checkpoints high watermarks. Runs for the broker's lifetime.
pub async fn run(b: Arc<Broker>) {
    let lag_ms = b.config.int("replica.lag.time.max.ms").max(1);
    let check_every = Duration::from_millis((lag_ms / 2).clamp(10, 5_000) as u64);
    let checkpoint_every =
        Duration::from_millis(b.config.int("replica.high.watermark.checkpoint.interval.ms").clamp(100, 3_600_000) as u64);
    let mut last_check = tokio::time::Instant::now();
    let mut last_checkpoint = tokio::time::Instant::now();
    let mut last_scan: Option<tokio::time::Instant> = None;
    loop {
        let woken = tokio::time::timeout(Duration::from_millis(50).min(check_every), b.replicas.wake.notified()).await.is_ok();
        // Roles change only with metadata, which wakes this loop; the walk over
        // every partition runs then (or, as a safety net, every few seconds).
        if woken || last_scan.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            last_scan = Some(tokio::time::Instant::now());
            let mut leaders: Vec<i32> = b.replicas.all().iter().filter_map(|p| p.following().map(|(l, _)| l)).collect();
            leaders.sort_unstable();
            leaders.dedup();
            for leader in leaders {
                let start = b.replicas.fetchers.lock().unwrap_or_else(|p| p.into_inner()).insert(leader);
                if start {
                    tokio::spawn(crate::fetcher::run(b.clone(), leader));
                }
            }
        }
        if last_check.elapsed() >= check_every {
            last_check = tokio::time::Instant::now();
            let now = strom_storage::now_ms();
            for p in b.replicas.all() {
                if let Some(proposal) = p.check_lagging(now, lag_ms) {
                    tokio::spawn(propose(b.clone(), p, proposal));
                }
            }
        }
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = tokio::time::Instant::now();
            let b2 = b.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = b2.logs.write_checkpoints() {
                    tracing::warn!(error = %e, "checkpoint write failed");
                }
            })
            .await;
        }
    }
}

/// Sends an ISR change to the controller (AlterPartition) and applies its answer.
pub async fn propose(b: Arc<Broker>, p: Arc<Partition>, proposal: IsrProposal) {
    let req = Request::AlterPartition {
        broker: b.node_id,
        broker_epoch: b.lifecycle.epoch(),
        topic_id: proposal.topic_id,
        partition: proposal.partition,
        leader_epoch: proposal.leader_epoch,
        partition_epoch: proposal.partition_epoch,
        isr: proposal.isr.clone(),
    };
    let timeout = b.controller.request_timeout;
    let result = match b.controller.call(req, timeout).await {
        Ok(reply) => match reply.answer {
            Answer::AlterPartition(Ok(s)) => {
                tracing::info!(topic = %p.topic, partition = p.index, isr = ?s.isr, epoch = s.partition_epoch, "ISR changed");
                Some(CommittedIsr { leader_epoch: s.leader_epoch, partition_epoch: s.partition_epoch, isr: s.isr })
            }
            Answer::AlterPartition(Err(f)) => {
                tracing::info!(topic = %p.topic, partition = p.index, error = %f.message, "ISR change refused");
                None
            }
            _ => None,
        },
        Err(f) => {
            tracing::debug!(topic = %p.topic, partition = p.index, error = %f.message, "ISR change not sent");
            None
        }
    };
    p.proposal_done(&proposal, result, strom_storage::now_ms());
}
