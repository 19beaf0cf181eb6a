//! The metadata publisher: applies every committed metadata batch on this node.
//!
//! Batches arrive in log order from the quorum (a controller) or the metadata
//! follower (a broker that is not a voter). Whatever has queued up is applied in
//! one blocking task, off the async runtime, because opening and deleting logs
//! and loading coordinators touch the disk.

use std::path::PathBuf;
use std::sync::Arc;

use strom_metadata::quorum::Publication;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::server::Broker;

pub async fn run(b: Arc<Broker>, mut rx: UnboundedReceiver<Publication>, data_dir: PathBuf) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        let b2 = b.clone();
        let dir = data_dir.clone();
        let applied = tokio::task::spawn_blocking(move || {
            for p in batch {
                if p.image.offset < b2.metadata.image().offset && !p.delta.full {
                    continue;
                }
                if let Err(e) = crate::node::check_cluster_id(&dir, b2.node_id, &p.image) {
                    tracing::error!(error = %e, "stopping");
                    std::process::exit(1);
                }
                b2.publish(&p.delta, p.image);
            }
        })
        .await;
        if let Err(e) = applied {
            tracing::error!(error = %e, "applying metadata failed");
        }
    }
}
