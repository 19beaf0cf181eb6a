//! Starting a node: the same path for a single node and for a cluster member.
//!
//! 1. Read the roles and voters. Without `controller.quorum.voters` the node is a
//!    single combined broker and controller: a quorum of one, whose Raft never
//!    talks to anyone.
//! 2. A controller starts the metadata quorum (openraft) from
//!    `<log.dir>/__cluster_metadata`, its controller service, and its CONTROLLER
//!    listener. A broker that is not a voter follows the metadata by fetching it
//!    from the voters.
//! 3. A broker opens the logs its image assigns to it, starts the publisher
//!    (which applies every later metadata batch), registers and heartbeats, and
//!    serves clients once unfenced.
//!
//! The first committed cluster id is written to `meta.properties`; a data
//! directory whose `meta.properties` names another cluster stops the node.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::quorum::{MetadataFollower, Publication, Quorum, QuorumConfig, TcpConnector};
use strom_metadata::MetadataImage;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::BrokerConfig;
use crate::controller::client::ControllerChannel;
use crate::controller::service::{Bootstrap, ControllerService};
use crate::controller::ControllerConfig;
use crate::server::{Broker, StartError};

/// A started node. `serve` runs it until `shutdown` resolves.
pub struct Node {
    pub broker: Option<Arc<Broker>>,
    pub controller: Option<Arc<ControllerService>>,
    client_listener: Option<TcpListener>,
    /// Publications for a controller-only node (cluster-id checks only).
    idle_publications: Option<UnboundedReceiver<Publication>>,
    /// How a broker that is not a voter follows the metadata.
    _follower: Option<MetadataFollower>,
    data_dir: PathBuf,
    node_id: i32,
    /// (host, port) of the client listener actually bound.
    pub client_addr: Option<std::net::SocketAddr>,
    pub controller_addr: Option<std::net::SocketAddr>,
}

fn controller_config(c: &BrokerConfig) -> ControllerConfig {
    ControllerConfig {
        session_timeout_ms: c.int("broker.session.timeout.ms").max(1),
        num_partitions: c.int("num.partitions").max(1) as i32,
        default_replication_factor: c.int("default.replication.factor").clamp(1, i16::MAX as i64) as i16,
        offsets_replication_factor: c.int("offsets.topic.replication.factor").clamp(1, i16::MAX as i64) as i16,
        unclean_leader_election: c.bool("unclean.leader.election.enable"),
        auto_leader_rebalance: c.bool("auto.leader.rebalance.enable"),
        leader_imbalance_check_interval_ms: c.int("leader.imbalance.check.interval.seconds").max(1).saturating_mul(1000),
        leader_imbalance_per_broker_percentage: c.int("leader.imbalance.per.broker.percentage").max(0),
        max_broker_partitions: c.int("max.broker.partitions").max(0),
    }
}

impl Node {
    pub async fn start(config: BrokerConfig) -> Result<Node, StartError> {
        let roles = config.roles().map_err(StartError::Config)?;
        let limit = crate::limits::raise_open_files();
        if let Some((before, now)) = limit {
            if now > before {
                tracing::info!(from = before, to = now, "raised the open-file limit to the hard limit");
            } else {
                tracing::info!(limit = now, "open-file limit");
            }
        }
        let cache = crate::limits::log_file_cache_size(config.int("log.fd.cache.size"), limit.map(|(_, now)| now));
        strom_storage::files::set_capacity(cache);
        tracing::info!(files = cache, "segment files kept open at most (log.fd.cache.size)");
        let node_id = config.node_id();
        let data_dir = PathBuf::from(config.data_dir());
        std::fs::create_dir_all(&data_dir).map_err(|e| StartError::DataDir(data_dir.display().to_string(), e))?;
        let known_cluster = strom_metadata::check_properties(&data_dir, node_id)?;
        let single = config.voters().map_err(StartError::Config)?.is_none();

        // The controller listener is bound first: its real port is this voter's address.
        let mut controller_listener = None;
        if roles.controller {
            if let Some(l) = config.controller_listener() {
                let bound = TcpListener::bind((l.host.as_str(), l.port))
                    .await
                    .map_err(|e| StartError::Listen(format!("{}:{}", l.host, l.port), e))?;
                controller_listener = Some(bound);
            }
        }
        let controller_addr = controller_listener.as_ref().and_then(|l| l.local_addr().ok());
        let voters: BTreeMap<i32, String> = match config.voters().map_err(StartError::Config)? {
            Some(v) => v,
            None => {
                let addr = controller_addr.map(|a| a.to_string()).unwrap_or_else(|| "127.0.0.1:0".to_string());
                [(node_id, addr)].into()
            }
        };
        let request_timeout = Duration::from_millis(config.int("controller.quorum.request.timeout.ms").max(100) as u64);

        let mut quorum_pubs = None;
        let mut service = None;
        if roles.controller {
            let qc = QuorumConfig {
                node_id,
                voters: voters.clone(),
                dir: data_dir.join("__cluster_metadata"),
                election_timeout_ms: config.int("controller.quorum.election.timeout.ms").max(10) as u64,
                heartbeat_interval_ms: (config.int("controller.quorum.election.timeout.ms").max(10) as u64 / 10).clamp(5, 500),
                request_timeout_ms: request_timeout.as_millis() as u64,
            };
            let tuning = strom_metadata::quorum::Tuning {
                snapshot_bytes: config.int("metadata.log.max.record.bytes.between.snapshots").max(1) as u64,
                ..Default::default()
            };
            let (quorum, pubs) = Quorum::start_with(qc, TcpConnector, tuning).await.map_err(|e| StartError::Quorum(e.to_string()))?;
            let legacy = strom_metadata::read_legacy_log(&data_dir)?;
            let boot = Bootstrap { cluster_id: known_cluster.clone(), legacy };
            let svc = ControllerService::start(quorum, controller_config(&config), boot);
            if let Some(l) = controller_listener.take() {
                tokio::spawn(crate::controller::listener::serve(l, svc.clone()));
            }
            quorum_pubs = Some(pubs);
            service = Some(svc);
        }
        let controller = ControllerChannel::new(node_id, voters.clone(), service.clone(), request_timeout);

        if !roles.broker {
            tracing::info!(node = node_id, controller = ?controller_addr, "strom controller started");
            return Ok(Node {
                broker: None,
                controller: service,
                client_listener: None,
                idle_publications: quorum_pubs,
                _follower: None,
                data_dir,
                node_id,
                client_addr: None,
                controller_addr,
            });
        }

        // The metadata this broker starts from.
        let mut follower_kept = None;
        let (image, pubs): (Arc<MetadataImage>, UnboundedReceiver<Publication>) = match (quorum_pubs, &service) {
            (Some(p), Some(svc)) => {
                let q = svc.quorum().clone();
                if single {
                    // A quorum of one elects itself at once; wait for our own bootstrap batch
                    // so the image has the cluster id and imported records before logs open.
                    wait_until(&q, |i| i.cluster_id.is_some(), Duration::from_secs(30)).await;
                }
                (q.image(), p)
            }
            _ => {
                let (follower, p) = MetadataFollower::start(voters.clone(), TcpConnector).await;
                let mut waited = 0u64;
                while follower.image().cluster_id.is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    waited += 20;
                    if waited.is_multiple_of(5000) {
                        tracing::info!(voters = ?voters, "waiting for the controllers' metadata");
                    }
                }
                let image = follower.image();
                follower_kept = Some(follower);
                (image, p)
            }
        };
        check_cluster_id(&data_dir, node_id, &image)?;

        let (host, port) = config.listener();
        let listener = TcpListener::bind((host.as_str(), port)).await.map_err(|e| StartError::Listen(format!("{host}:{port}"), e))?;
        let client_addr = listener.local_addr().ok();
        let bound = client_addr.map(|a| a.port()).unwrap_or(port);
        let cfg = config.clone();
        // On a node's first start every log directory is created; later a missing one is offline.
        let first_start = known_cluster.is_none();
        let broker = tokio::task::spawn_blocking(move || Broker::open(cfg, bound, image, controller, first_start))
            .await
            .map_err(|e| StartError::Quorum(format!("start-up task failed: {e}")))??;
        let broker = Arc::new(broker);
        tokio::spawn(crate::publisher::run(broker.clone(), pubs, data_dir.clone()));
        tokio::spawn(crate::lifecycle::run(broker.clone()));
        tokio::spawn(crate::replicas::run(broker.clone()));
        tokio::spawn(crate::log_dirs::watch(broker.clone()));
        tracing::info!(
            listener = %format!("{host}:{bound}"),
            controller = ?controller_addr,
            data = %broker.config.data_dir(),
            node = node_id,
            cluster = %broker.metadata.cluster_id(),
            "strom broker started"
        );
        Ok(Node {
            broker: Some(broker),
            controller: service,
            client_listener: Some(listener),
            idle_publications: None,
            _follower: follower_kept,
            data_dir,
            node_id,
            client_addr,
            controller_addr,
        })
    }

    /// Serves until `shutdown`, then shuts down cleanly (controlled shutdown first).
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) {
        if let (Some(b), Some(l)) = (self.broker.clone(), self.client_listener.take()) {
            crate::server::run(l, b, shutdown).await;
        } else {
            let dir = self.data_dir.clone();
            let node = self.node_id;
            let mut pubs = self.idle_publications.take();
            let watch = async move {
                while let Some(p) = match pubs.as_mut() {
                    Some(r) => r.recv().await,
                    None => None,
                } {
                    if let Err(e) = check_cluster_id(&dir, node, &p.image) {
                        tracing::error!(error = %e, "stopping");
                        std::process::exit(1);
                    }
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = shutdown => {}
                _ = watch => {}
            }
        }
        if let Some(svc) = &self.controller {
            svc.quorum().shutdown().await;
        }
    }
}

async fn wait_until(q: &Quorum, f: impl Fn(&MetadataImage) -> bool, timeout: Duration) {
    let start = std::time::Instant::now();
    while !f(&q.image()) && start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Writes the cluster id to `meta.properties` the first time it is known; refuses
/// a data directory that belongs to another cluster.
pub fn check_cluster_id(dir: &Path, node_id: i32, image: &MetadataImage) -> Result<(), StartError> {
    let Some(cluster) = &image.cluster_id else { return Ok(()) };
    match strom_metadata::check_properties(dir, node_id)? {
        Some(ours) if &ours != cluster => Err(StartError::Config(format!(
            "{} holds cluster id {ours}, but the controllers' cluster id is {cluster}: this data directory belongs to another cluster",
            dir.join("meta.properties").display()
        ))),
        Some(_) => Ok(()),
        None => {
            strom_metadata::write_properties(dir, node_id, cluster)?;
            tracing::info!(cluster = %cluster, "wrote meta.properties");
            Ok(())
        }
    }
}
