//! Cluster metadata as a log of records applied to immutable images.
//!
//! - [`MetadataRecord`]: what can change (topics, partitions, configs, removals).
//! - [`MetadataImage`]: an immutable snapshot; [`MetadataImage::apply`] builds the
//!   next one from records, sharing unchanged topics (`Arc`).
//! - [`MetadataStore`]: the durable log plus the current image. Records are
//!   appended and fsynced before they are applied, so an image never shows what
//!   a crash could lose.
//!
//! The log file is `__cluster_metadata/metadata.log`: a sequence of frames
//! `[length: u32][crc32c of payload: u32][payload: JSON record]`. Replay stops at
//! the first torn or corrupt frame and truncates there.
//!
//! A single node is a quorum of one: `commit` appends locally. Replicating this
//! log through Raft (openraft) across controllers is the clustering step still
//! to come; the record/image split is what it plugs into.
#![deny(unsafe_code)]

pub mod image;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use uuid::Uuid;

pub use image::{BrokerImage, MetadataDelta, MetadataImage, MetadataRecord, PartitionImage, TopicImage};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error("metadata i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("bad meta.properties: {0}")]
    Properties(String),
}

/// The durable metadata log and the current image.
pub struct MetadataStore {
    file: Mutex<File>,
    image: RwLock<Arc<MetadataImage>>,
    pub cluster_id: String,
    pub node_id: i32,
}

impl MetadataStore {
    /// Opens `data_dir`, creating `meta.properties` (cluster id, node id) on first
    /// start and replaying the metadata log.
    pub fn open(data_dir: &Path, node_id: i32) -> Result<MetadataStore, MetadataError> {
        let cluster_id = load_or_create_properties(data_dir, node_id)?;
        let dir = data_dir.join("__cluster_metadata");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("metadata.log");
        let mut file = OpenOptions::new().create(true).truncate(false).read(true).append(true).open(&path)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let (records, good) = decode_frames(&raw);
        if good < raw.len() {
            tracing::warn!(path = %path.display(), at = good, len = raw.len(), "truncating torn metadata log tail");
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        let image = MetadataImage::default().apply(&records);
        Ok(MetadataStore { file: Mutex::new(file), image: RwLock::new(Arc::new(image)), cluster_id, node_id })
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Appends and fsyncs `records`, then publishes the new image.
    pub fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, MetadataError> {
        let mut buf = Vec::new();
        for r in &records {
            let payload = serde_json::to_vec(r)?;
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
        }
        // The file lock also serialises image updates, so images apply in log order.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&buf)?;
        file.sync_data()?;
        let next = Arc::new(self.image().apply(&records));
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        Ok(next)
    }
}

fn decode_frames(raw: &[u8]) -> (Vec<MetadataRecord>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while raw.len() - at >= 8 {
        let len = u32::from_be_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]) as usize;
        let crc = u32::from_be_bytes([raw[at + 4], raw[at + 5], raw[at + 6], raw[at + 7]]);
        let Some(payload) = raw.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        at += 8 + len;
    }
    (out, at)
}

fn properties_path(dir: &Path) -> PathBuf {
    dir.join("meta.properties")
}

fn load_or_create_properties(dir: &Path, node_id: i32) -> Result<String, MetadataError> {
    std::fs::create_dir_all(dir)?;
    let path = properties_path(dir);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut cluster = None;
        let mut node = None;
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("cluster.id=") {
                cluster = Some(v.trim().to_string());
            }
            if let Some(v) = line.strip_prefix("node.id=") {
                node = v.trim().parse::<i32>().ok();
            }
        }
        let cluster = cluster.ok_or_else(|| MetadataError::Properties("no cluster.id".into()))?;
        if node != Some(node_id) {
            return Err(MetadataError::Properties(format!(
                "{} belongs to node.id {:?}, but this broker is node.id {node_id}",
                path.display(),
                node
            )));
        }
        return Ok(cluster);
    }
    use base64::Engine;
    let cluster = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes());
    let text = format!("version=1\nnode.id={node_id}\ncluster.id={cluster}\n");
    let tmp = dir.join("meta.properties.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let cluster;
        {
            let s = MetadataStore::open(d.path(), 1).unwrap();
            cluster = s.cluster_id.clone();
            assert_eq!(cluster.len(), 22);
            s.commit(vec![
                MetadataRecord::Topic { name: "a".into(), id },
                MetadataRecord::Partition { topic_id: id, partition: 0, replicas: vec![1], leader: 1, leader_epoch: 0, isr: vec![1], partition_epoch: 0 },
                MetadataRecord::TopicConfig { topic_id: id, key: "retention.ms".into(), value: Some("5".into()) },
            ])
            .unwrap();
        }
        let log = d.path().join("__cluster_metadata/metadata.log");
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(f);
        let s = MetadataStore::open(d.path(), 1).unwrap();
        assert_eq!(s.cluster_id, cluster);
        let img = s.image();
        let t = img.topic("a").unwrap();
        assert_eq!(t.id, id);
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.configs.get("retention.ms").map(String::as_str), Some("5"));
        s.commit(vec![MetadataRecord::RemoveTopic { id }]).unwrap();
        assert!(s.image().topic("a").is_none());
        assert!(MetadataStore::open(d.path(), 2).is_err());
    }
}
