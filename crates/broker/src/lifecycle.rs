//! A broker's life with the controller: register, heartbeat, shut down.
//!
//! - **Register** (BrokerRegistration) with a fresh incarnation id; the answer is
//!   the broker epoch. INCONSISTENT_CLUSTER_ID stops the process.
//! - **Heartbeat** (BrokerHeartbeat) every `broker.heartbeat.interval.ms`, faster
//!   while fenced, carrying the metadata offset applied here. The controller
//!   unfences the broker once that offset has caught up; from then on it serves
//!   clients. A stale epoch (the controller fenced and forgot us) re-registers.
//! - **Controlled shutdown** (SIGTERM): heartbeats that want to shut down, until
//!   the controller has moved this broker's leaderships away.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::ErrorCode;
use tokio::sync::watch;
use uuid::Uuid;

use crate::controller::service::Reply;
use crate::controller::{Answer, HeartbeatAnswer, Request};
use crate::server::Broker;

pub struct Lifecycle {
    epoch: AtomicI64,
    incarnation: Uuid,
    serving: watch::Sender<bool>,
    fenced: watch::Sender<bool>,
    stopping: watch::Sender<bool>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    pub fn new() -> Self {
        Lifecycle {
            epoch: AtomicI64::new(-1),
            incarnation: Uuid::new_v4(),
            serving: watch::channel(false).0,
            fenced: watch::channel(true).0,
            stopping: watch::channel(false).0,
        }
    }

    /// -1 until registered.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Becomes true once, when the broker is first unfenced.
    pub fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    pub fn is_fenced(&self) -> bool {
        *self.fenced.borrow()
    }
}

/// Registers and heartbeats until the broker stops.
pub async fn run(b: Arc<Broker>) {
    let interval = Duration::from_millis(b.config.int("broker.heartbeat.interval.ms").max(10) as u64);
    let timeout = b.controller.request_timeout;
    let mut stopping = b.lifecycle.stopping.subscribe();
    let mut dir_failures = b.logs.subscribe_failures();
    'register: loop {
        if *stopping.borrow() {
            return;
        }
        let (host, port) = b.advertised.clone();
        let rack = Some(b.config.get("broker.rack")).filter(|r| !r.is_empty());
        let cluster_id = Some(b.metadata.cluster_id()).filter(|c| !c.is_empty());
        let req = Request::Register { id: b.node_id, incarnation: b.lifecycle.incarnation, cluster_id, host, port, rack };
        let epoch = match b.controller.call(req, timeout).await {
            Ok(Reply { answer: Answer::Register(Ok(epoch)), .. }) => epoch,
            Ok(Reply { answer: Answer::Register(Err(f)), .. }) if f.error_code() == ErrorCode::InconsistentClusterId => {
                tracing::error!(error = %f.message, "the controller refused this broker: wrong cluster; stopping");
                std::process::exit(1);
            }
            Ok(Reply { answer: Answer::Register(Err(f)), .. }) => {
                tracing::warn!(error = %f.message, "registration refused; retrying");
                pause(&mut stopping, Duration::from_millis(500)).await;
                continue;
            }
            Ok(_) | Err(_) => {
                pause(&mut stopping, Duration::from_millis(100)).await;
                continue;
            }
        };
        b.lifecycle.epoch.store(epoch, Ordering::Relaxed);
        tracing::info!(epoch, "registered with the controller");
        loop {
            if *stopping.borrow() {
                return;
            }
            report_offline(&b, epoch, timeout).await;
            let req = Request::Heartbeat {
                id: b.node_id,
                epoch,
                metadata_offset: b.metadata.image().offset,
                want_fence: false,
                want_shutdown: false,
            };
            match b.controller.call(req, timeout).await {
                Ok(Reply { answer: Answer::Heartbeat(h), offset }) => {
                    if h.error == ErrorCode::StaleBrokerEpoch.code() || h.error == ErrorCode::BrokerIdNotRegistered.code() {
                        tracing::warn!(epoch, "the controller no longer knows this registration; registering again");
                        continue 'register;
                    }
                    if h.error == 0 {
                        if !h.is_fenced && b.lifecycle.is_fenced() {
                            // Serve only once our own image shows us unfenced, so Metadata lists us.
                            b.metadata.wait_for(offset, timeout).await;
                        }
                        note_state(&b, &h);
                    }
                }
                Ok(_) => {}
                Err(f) => tracing::debug!(error = %f.message, "heartbeat failed"),
            }
            let wait = if b.lifecycle.is_fenced() { interval.min(Duration::from_millis(50)) } else { interval };
            // A failed log directory is reported at once, not at the next beat.
            tokio::select! {
                _ = pause(&mut stopping, wait) => {}
                _ = dir_failures.changed() => {}
            }
        }
    }
}

/// Tells the controller which of this broker's replicas are in offline log
/// directories, when that differs from what the image records.
async fn report_offline(b: &Broker, epoch: i64, timeout: Duration) {
    let image = b.metadata.image();
    // The usual case, without walking the partitions: nothing offline, nothing recorded.
    if !b.logs.any_offline() && image.brokers.get(&b.node_id).is_none_or(|me| me.offline_replicas.is_empty()) {
        return;
    }
    let mut offline: Vec<(uuid::Uuid, i32)> =
        b.logs.offline_partitions().iter().filter_map(|(t, p)| image.topic(t).map(|t| (t.id, *p))).collect();
    offline.sort_unstable();
    offline.dedup();
    let recorded: Vec<(uuid::Uuid, i32)> = image
        .brokers
        .get(&b.node_id)
        .map(|me| {
            me.offline_replicas
                .iter()
                .copied()
                .filter(|(t, p)| image.topic_by_id(t).is_some_and(|t| t.partitions.contains_key(p)))
                .collect()
        })
        .unwrap_or_default();
    if offline == recorded {
        return;
    }
    tracing::info!(replicas = offline.len(), "reporting replicas in offline log directories to the controller");
    let req = Request::ReplicasOffline { id: b.node_id, epoch, replicas: offline };
    match b.controller.call(req, timeout).await {
        Ok(Reply { answer: Answer::Done(Ok(())), offset }) => {
            b.metadata.wait_for(offset, timeout).await;
        }
        Ok(Reply { answer: Answer::Done(Err(f)), .. }) => tracing::warn!(error = %f.message, "offline replicas not recorded"),
        Ok(_) => {}
        Err(f) => tracing::debug!(error = %f.message, "offline replicas not reported"),
    }
}

fn note_state(b: &Broker, h: &HeartbeatAnswer) {
    let was = b.lifecycle.is_fenced();
    if was != h.is_fenced {
        if h.is_fenced {
            tracing::warn!("this broker is fenced");
        } else {
            tracing::info!("this broker is unfenced");
        }
        b.lifecycle.fenced.send_replace(h.is_fenced);
    }
    if !h.is_fenced {
        b.lifecycle.serving.send_if_modified(|s| !std::mem::replace(s, true));
    }
}

async fn pause(stopping: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stopping.changed() => {}
    }
}

/// Asks the controller to move leadership away, then stops heartbeating.
/// Bounded: after `controller.quorum.request.timeout.ms` × 2 it gives up.
pub async fn controlled_shutdown(b: &Arc<Broker>) {
    let epoch = b.lifecycle.epoch();
    b.lifecycle.stopping.send_replace(true);
    if epoch < 0 || !b.config.bool("controlled.shutdown.enable") {
        return;
    }
    let req =
        Request::Heartbeat { id: b.node_id, epoch, metadata_offset: b.metadata.image().offset, want_fence: false, want_shutdown: true };
    match b.controller.call(req, b.controller.request_timeout * 2).await {
        Ok(Reply { answer: Answer::Heartbeat(h), offset }) if h.should_shutdown => {
            // Let our own image show the moves, so late requests get NOT_LEADER_OR_FOLLOWER.
            b.metadata.wait_for(offset, Duration::from_secs(2)).await;
            tracing::info!("controlled shutdown: leadership moved");
        }
        Ok(_) => tracing::warn!("controlled shutdown: the controller did not confirm"),
        Err(f) => tracing::warn!(error = %f.message, "controlled shutdown: no controller; stopping anyway"),
    }
}
