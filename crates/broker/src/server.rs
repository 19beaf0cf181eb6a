//! The broker's shared state and its accept loop.
//!
//! `run(listener, broker, shutdown)` owns the listening socket; tests bind
//! `127.0.0.1:0` and pass their own shutdown future. On shutdown the accept loop
//! stops, connections are told to close, and storage writes its clean-shutdown
//! checkpoints.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use strom_metadata::MetadataImage;
use strom_storage::LogManager;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::controller::client::ControllerChannel;
use crate::fetch_session::FetchSessions;

/// Everything a handler can reach.
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    /// The metadata image this node has applied, published by `publisher.rs`.
    pub metadata: MetadataHandle,
    pub logs: LogManager,
    /// Partition replicas hosted here: role, ISR, high watermark.
    pub replicas: crate::replicas::ReplicaManager,
    pub sessions: FetchSessions,
    /// (host, port) given to clients in Metadata.
    pub advertised: (String, u16),
    /// The way to the active controller.
    pub controller: ControllerChannel,
    /// This broker's registration: epoch and whether it may serve.
    pub lifecycle: crate::lifecycle::Lifecycle,
    /// The current block of producer ids: (next, end).
    pub(crate) producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Bumped after every append; fetches waiting for data watch it.
    pub(crate) appended: watch::Sender<u64>,
    /// Consumer groups and committed offsets.
    pub groups: crate::groups::GroupManager,
    /// The transaction coordinator of the `__transaction_state` partitions led here.
    pub txns: crate::txns::TxnManager,
    /// Replica moves between log directories in progress.
    pub moves: crate::log_dirs::Moves,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Metadata(#[from] strom_metadata::MetadataError),
    #[error(transparent)]
    Storage(#[from] strom_storage::StorageError),
    #[error("cannot use data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("metadata quorum: {0}")]
    Quorum(String),
}

impl Broker {
    /// Opens the partition logs this node hosts in `image` (recovering them if the
    /// last stop was unclean). `bound_port` is the port the client listener got,
    /// used when the advertised port is 0. On the `first_start` of a node every
    /// log directory is created; later a missing one is reported offline.
    pub fn open(
        config: BrokerConfig,
        bound_port: u16,
        image: Arc<MetadataImage>,
        controller: ControllerChannel,
        first_start: bool,
    ) -> Result<Broker, StartError> {
        let dirs: Vec<std::path::PathBuf> = config.log_dirs().into_iter().map(std::path::PathBuf::from).collect();
        let node_id = config.node_id();
        let logs = LogManager::open_dirs(&dirs, first_start)?;
        let (host, port) = config.advertised();
        let port = if port == 0 { bound_port } else { port };
        let host = if host == "0.0.0.0" { "127.0.0.1".to_string() } else { host };
        let config_for_groups = config.clone();
        let broker = Broker {
            config,
            node_id,
            metadata: MetadataHandle::new(image),
            logs,
            replicas: crate::replicas::ReplicaManager::new(),
            sessions: FetchSessions::new(1000),
            advertised: (host, port),
            controller,
            lifecycle: crate::lifecycle::Lifecycle::new(),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            appended: watch::channel(0).0,
            groups: crate::groups::GroupManager::new(crate::groups::group_config(&config_for_groups)),
            txns: crate::txns::TxnManager::new(&config_for_groups),
            moves: crate::log_dirs::Moves::default(),
        };
        broker.apply_dynamic_config();
        let clean = broker.logs.was_clean();
        let started = std::time::Instant::now();
        broker.note_lost_replicas();
        broker.sync_logs()?;
        tracing::info!(clean, logs = broker.logs.all().len(), ms = started.elapsed().as_millis() as u64, "logs loaded");
        broker.load_coordinators();
        Ok(broker)
    }

    /// Flushes logs, writes checkpoints and the clean-shutdown marker.
    pub fn close(&self) {
        match self.logs.shutdown() {
            Ok(()) => tracing::info!("clean shutdown complete"),
            Err(e) => {
                tracing::error!(error = %e, "shutdown could not flush; next start will recover")
            }
        }
    }
}

/// The applied metadata image, shared by every handler, and a way to wait for an offset.
pub struct MetadataHandle {
    image: RwLock<Arc<MetadataImage>>,
    offset: watch::Sender<u64>,
}

impl MetadataHandle {
    pub fn new(image: Arc<MetadataImage>) -> Self {
        let offset = image.offset;
        MetadataHandle { image: RwLock::new(image), offset: watch::channel(offset).0 }
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn cluster_id(&self) -> String {
        self.image().cluster_id.clone().unwrap_or_default()
    }

    pub fn set(&self, image: Arc<MetadataImage>) {
        let offset = image.offset;
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image;
        self.offset.send_replace(offset);
    }

    /// Waits until this node has applied `offset`; false on timeout.
    pub async fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.offset.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|o| *o >= offset)).await.is_ok_and(|r| r.is_ok())
    }
}

/// Open connections, in all and per client address, for `max.connections` and
/// `max.connections.per.ip`.
#[derive(Default)]
struct OpenConnections {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one connection's place in [`OpenConnections`] until dropped.
struct Slot {
    open: Arc<OpenConnections>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self.open.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Admits a new connection or refuses it (it is then closed at once, and the
/// refusal logged). Both limits are read per connection, so changes apply live.
fn admit(broker: &Broker, open: &Arc<OpenConnections>, ip: IpAddr) -> Option<Slot> {
    let max_total = broker.config.int("max.connections").max(0) as usize;
    let max_ip = broker.config.int("max.connections.per.ip").max(0) as usize;
    let mut m = open.per_ip.lock().unwrap_or_else(|p| p.into_inner());
    let total: usize = m.values().sum();
    let here = m.get(&ip).copied().unwrap_or(0);
    if total >= max_total {
        tracing::warn!(%ip, open = total, "refusing connection: max.connections reached");
        return None;
    }
    if here >= max_ip {
        tracing::warn!(%ip, open = here, "refusing connection: max.connections.per.ip reached");
        return None;
    }
    *m.entry(ip).or_insert(0) += 1;
    Some(Slot { open: open.clone(), ip })
}

/// Accepts connections until `shutdown` resolves, then closes the broker cleanly.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let background = tokio::spawn(background_tasks(broker.clone(), stop_rx.clone()));
    tokio::pin!(shutdown);
    let mut conns = tokio::task::JoinSet::new();
    let open = Arc::new(OpenConnections::default());
    // Serve once registered and unfenced, as a KRaft broker does; until then
    // connections wait in the listen backlog.
    let mut serving = broker.lifecycle.serving();
    tokio::select! {
        _ = &mut shutdown => {}
        _ = serving.wait_for(|s| *s) => tracing::info!("broker is unfenced and serving"),
    }
    loop {
        if !*serving.borrow() {
            break;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = admit(&broker, &open, peer.ip()) else { continue };
                    let _ = stream.set_nodelay(true);
                    let (b, stop) = (broker.clone(), stop_rx.clone());
                    conns.spawn(async move {
                        crate::connection::serve(stream, peer, b, stop).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    tracing::info!("shutting down");
    crate::lifecycle::controlled_shutdown(&broker).await;
    let _ = stop_tx.send(true);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(5), drain).await.is_err() {
        conns.abort_all();
    }
    background.abort();
    let b = broker.clone();
    let _ = tokio::task::spawn_blocking(move || b.close()).await;
}

/// `flush.ms` and periodic recovery-point checkpoints.
async fn background_tasks(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_checkpoint = std::time::Instant::now();
    // Kafka's first retention pass runs 30 s after start-up, then every interval.
    let mut first_retention = Duration::from_secs(30);
    let mut last_retention = std::time::Instant::now();
    let mut last_clean = std::time::Instant::now();
    let clean_every = Duration::from_millis(broker.config.int("log.cleaner.backoff.ms").max(100) as u64);
    let retention_every = Duration::from_millis(broker.config.int("log.retention.check.interval.ms").max(100) as u64);
    let mut last_files: Option<std::time::Instant> = None;
    let mut last_expiry = std::time::Instant::now();
    let expiry_every = Duration::from_millis(broker.config.int("producer.id.expiration.check.interval.ms").max(100) as u64);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = strom_storage::now_ms();
        for log in broker.logs.timed_flush() {
            if log.flush_time_due(now) {
                if let Err(e) = log.flush_all().await {
                    tracing::error!(dir = %log.dir().display(), error = %e, "flush failed");
                }
            }
        }
        if last_files.is_none_or(|t| t.elapsed() >= Duration::from_secs(300)) {
            last_files = Some(std::time::Instant::now());
            crate::limits::log_descriptors();
        }
        broker.sessions.expire(Duration::from_secs(120));
        broker.groups.tick(&broker).await;
        broker.txns.tick(&broker).await;
        let retention_due = if first_retention.is_zero() { retention_every } else { first_retention.min(retention_every) };
        if last_retention.elapsed() >= retention_due {
            last_retention = std::time::Instant::now();
            first_retention = Duration::ZERO;
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let now = strom_storage::now_ms();
                for (_, log) in b.logs.all() {
                    if let Err(e) = log.delete_old_segments(now) {
                        tracing::warn!(dir = %log.dir().display(), error = %e, "retention pass failed");
                    }
                }
            })
            .await;
        }
        if last_expiry.elapsed() >= expiry_every {
            last_expiry = std::time::Instant::now();
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let (now, ttl) = (strom_storage::now_ms(), b.config.int("producer.id.expiration.ms"));
                let expired: usize = b.logs.all().iter().map(|(_, log)| log.expire_producers(now, ttl)).sum();
                if expired > 0 {
                    tracing::info!(expired, "producer ids expired (producer.id.expiration.ms)");
                }
            })
            .await;
        }
        if last_clean.elapsed() >= clean_every {
            last_clean = std::time::Instant::now();
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let now = strom_storage::now_ms();
                for (_, log) in b.logs.all() {
                    if let Err(e) = log.compact(now) {
                        tracing::warn!(dir = %log.dir().display(), error = %e, "compaction failed");
                    }
                }
            })
            .await;
        }
        if last_checkpoint.elapsed() >= Duration::from_secs(60) {
            last_checkpoint = std::time::Instant::now();
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = b.logs.write_checkpoints() {
                    tracing::warn!(error = %e, "checkpoint write failed");
                }
            })
            .await;
        }
    }
}
