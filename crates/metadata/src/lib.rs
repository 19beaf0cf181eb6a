//! Cluster metadata as a log of records applied to immutable images.
//!
//! - [`MetadataRecord`]: what can change (topics, partitions, configs, removals).
//! - [`MetadataImage`]: an immutable snapshot; [`MetadataImage::apply`] builds the
//!   next one from records, sharing unchanged topics (`Arc`).
//! - [`quorum`]: the metadata log replicated by Raft (openraft) across the
//!   controllers; every node applies committed batches and publishes them.
//! - `meta.properties` (cluster id, node id), and the pre-quorum log
//!   `__cluster_metadata/metadata.log` (`[length][crc32c][JSON record]` frames),
//!   which an upgraded single node imports once.
#![deny(unsafe_code)]

pub mod image;
pub mod quorum;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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

/// Reads the pre-quorum metadata log (`<dir>/__cluster_metadata/metadata.log`),
/// if there is one: its records, up to the first torn or corrupt frame.
pub fn read_legacy_log(data_dir: &Path) -> Result<Vec<MetadataRecord>, MetadataError> {
    let path = data_dir.join("__cluster_metadata").join("metadata.log");
    let mut raw = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut raw)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    }
    let (records, good) = decode_frames(&raw);
    if good < raw.len() {
        tracing::warn!(path = %path.display(), at = good, len = raw.len(), "ignoring a torn tail of the pre-quorum metadata log");
    }
    Ok(records)
}

/// Appends records to a pre-quorum metadata log (tests of the upgrade path use it).
pub fn write_legacy_log(data_dir: &Path, records: &[MetadataRecord]) -> Result<(), MetadataError> {
    let dir = data_dir.join("__cluster_metadata");
    std::fs::create_dir_all(&dir)?;
    let mut f = OpenOptions::new().create(true).append(true).open(dir.join("metadata.log"))?;
    for r in records {
        let payload = serde_json::to_vec(r)?;
        f.write_all(&(payload.len() as u32).to_be_bytes())?;
        f.write_all(&crc32c::crc32c(&payload).to_be_bytes())?;
        f.write_all(&payload)?;
    }
    f.sync_all()?;
    Ok(())
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

/// What `meta.properties` says: (cluster id, node id).
pub type Properties = (Option<String>, Option<i32>);

/// `meta.properties` of a data directory, if written.
pub fn read_properties(dir: &Path) -> Result<Option<Properties>, MetadataError> {
    let path = properties_path(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut cluster = None;
    let mut node = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("cluster.id=") {
            cluster = Some(v.trim().to_string()).filter(|v| !v.is_empty());
        }
        if let Some(v) = line.strip_prefix("node.id=") {
            node = v.trim().parse::<i32>().ok();
        }
    }
    Ok(Some((cluster, node)))
}

/// Checks that `dir` belongs to `node_id`; returns its cluster id if it has one.
pub fn check_properties(dir: &Path, node_id: i32) -> Result<Option<String>, MetadataError> {
    match read_properties(dir)? {
        None => Ok(None),
        Some((cluster, node)) => {
            if node.is_some_and(|n| n != node_id) {
                return Err(MetadataError::Properties(format!(
                    "{} belongs to node.id {}, but this node is node.id {node_id}",
                    properties_path(dir).display(),
                    node.unwrap_or(-1)
                )));
            }
            Ok(cluster)
        }
    }
}

/// Writes `meta.properties` atomically (temp file, fsync, rename, fsync the directory).
pub fn write_properties(dir: &Path, node_id: i32, cluster: &str) -> Result<(), MetadataError> {
    std::fs::create_dir_all(dir)?;
    let text = format!("version=1\nnode.id={node_id}\ncluster.id={cluster}\n");
    let tmp = dir.join("meta.properties.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, properties_path(dir))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn legacy_log_and_properties() {
        let d = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        assert!(read_legacy_log(d.path()).unwrap().is_empty());
        write_legacy_log(
            d.path(),
            &[
                MetadataRecord::Topic { name: "a".into(), id },
                MetadataRecord::TopicConfig { topic_id: id, key: "retention.ms".into(), value: Some("5".into()) },
            ],
        )
        .unwrap();
        let log = d.path().join("__cluster_metadata/metadata.log");
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&[0, 0, 0, 50, 1, 2]).unwrap();
        drop(f);
        assert_eq!(read_legacy_log(d.path()).unwrap().len(), 2);
        assert_eq!(check_properties(d.path(), 1).unwrap(), None);
        write_properties(d.path(), 1, "abc").unwrap();
        assert_eq!(check_properties(d.path(), 1).unwrap().as_deref(), Some("abc"));
        assert!(check_properties(d.path(), 2).is_err());
    }
}
