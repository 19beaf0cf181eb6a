//! The state machine: committed batches folded into [`MetadataImage`]s, snapshots, and the window
//! of recent batches that observers fetch.
//!
//! The snapshot file `raft-snapshot` is one frame `[u32 len][u32 crc32c][JSON {meta, records}]`,
//! where `records` is [`MetadataImage::to_records`]; it is replaced atomically and never by an
//! older snapshot (a build racing with an install cannot move it backwards).

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::log_store::{frame, read_single_frame, write_atomic};
use super::{blocking, Publication, SnapshotData, TypeConfig};
use crate::{MetadataDelta, MetadataImage, MetadataRecord};

pub(crate) const SNAPSHOT_FILE: &str = "raft-snapshot";

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<i32, BasicNode>,
    records: Vec<MetadataRecord>,
}

pub(crate) struct Applied {
    pub image: Arc<MetadataImage>,
    pub last_applied: Option<LogId<i32>>,
    pub membership: StoredMembership<i32, BasicNode>,
    /// Recent batches `(index, records)`; every batch of the log after `window_start` is here.
    window: VecDeque<(u64, Arc<Vec<MetadataRecord>>)>,
    window_start: u64,
    /// Records in `window`.
    window_records: u64,
}

pub(crate) struct SmShared {
    dir: PathBuf,
    pub applied: Mutex<Applied>,
    /// The index of the last applied entry, for long polls.
    pub applied_tx: watch::Sender<u64>,
    publications: mpsc::UnboundedSender<Publication>,
    window_cap: usize,
    /// Bytes of records at which to ask for a snapshot (see `compact_log`).
    snapshot_bytes: u64,
    /// The most records the window holds.
    window_records: u64,
    /// Bytes of records applied since the last snapshot was built.
    since_snapshot: AtomicU64,
    /// Woken when `since_snapshot` reaches `snapshot_bytes`.
    pub compact_wanted: tokio::sync::Notify,
    /// The last log id of the snapshot on disk; the lock also serialises snapshot writes.
    on_disk: Mutex<Option<LogId<i32>>>,
    snapshot_seq: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct StateMachine {
    pub shared: Arc<SmShared>,
}

/// What a FetchMetadata finds.
pub(crate) enum Fetched {
    Nothing,
    Batches { batches: Vec<(u64, Vec<MetadataRecord>)>, complete_to: u64 },
    Snapshot(Arc<MetadataImage>),
}

fn sm_err(e: io::Error) -> StorageError<i32> {
    StorageError::IO { source: StorageIOError::write_state_machine(&e) }
}

fn snap_err(e: io::Error) -> StorageError<i32> {
    StorageError::IO { source: StorageIOError::write_snapshot(None, &e) }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StateMachine {
    /// Loads the snapshot in `dir`, if any. Publications go to `publications`.
    pub(crate) fn open(
        dir: &Path,
        window_cap: usize,
        (snapshot_bytes, window_records): (u64, u64),
        publications: mpsc::UnboundedSender<Publication>,
    ) -> io::Result<StateMachine> {
        let (image, meta) = match read_single_frame(&dir.join(SNAPSHOT_FILE))? {
            Some(p) => {
                let f: SnapshotFile = serde_json::from_slice(&p).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let mut image = MetadataImage::default().apply(&f.records);
                image.offset = f.meta.last_log_id.map_or(0, |l| l.index);
                (image, Some(f.meta))
            }
            None => (MetadataImage::default(), None),
        };
        let image = Arc::new(image);
        let last_applied = meta.as_ref().and_then(|m| m.last_log_id);
        let membership = meta.as_ref().map(|m| m.last_membership.clone()).unwrap_or_default();
        if meta.is_some() {
            let delta = MetadataDelta { full: true, ..Default::default() };
            let _ = publications.send(Publication { records: Vec::new(), delta, image: image.clone() });
        }
        let applied = Applied { window_start: image.offset, image, last_applied, membership, window: VecDeque::new(), window_records: 0 };
        let (applied_tx, _) = watch::channel(last_applied.map_or(0, |l| l.index));
        Ok(StateMachine {
            shared: Arc::new(SmShared {
                dir: dir.to_path_buf(),
                applied: Mutex::new(applied),
                applied_tx,
                publications,
                window_cap: window_cap.max(1),
                snapshot_bytes,
                window_records,
                since_snapshot: AtomicU64::new(0),
                compact_wanted: tokio::sync::Notify::new(),
                on_disk: Mutex::new(last_applied),
                snapshot_seq: AtomicU64::new(0),
            }),
        })
    }
}

impl SmShared {
    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        lock(&self.applied).image.clone()
    }

    pub(crate) fn last_applied(&self) -> Option<LogId<i32>> {
        lock(&self.applied).last_applied
    }

    /// Committed batches after `after`, at most `max` of them; `Nothing` if there is nothing new.
    pub(crate) fn fetch(&self, after: u64, max: usize) -> Fetched {
        let a = lock(&self.applied);
        if after < a.window_start {
            return Fetched::Snapshot(a.image.clone());
        }
        let from = a.window.partition_point(|(i, _)| *i <= after);
        let batches: Vec<(u64, Vec<MetadataRecord>)> =
            a.window.iter().skip(from).take(max).map(|(i, r)| (*i, r.as_ref().clone())).collect();
        let complete_to = if from + batches.len() < a.window.len() { batches.last().map_or(after, |b| b.0) } else { a.image.offset };
        if batches.is_empty() && complete_to <= after {
            return Fetched::Nothing;
        }
        Fetched::Batches { batches, complete_to }
    }

    fn publish(&self, p: Publication) {
        // The receiver may be gone; publications are a courtesy then.
        let _ = self.publications.send(p);
    }

    /// Writes a snapshot unless the one on disk is as new.
    fn write_snapshot(&self, meta: &SnapshotMeta<i32, BasicNode>, records: &[MetadataRecord]) -> io::Result<bool> {
        let mut on_disk = lock(&self.on_disk);
        if *on_disk >= meta.last_log_id {
            return Ok(false);
        }
        let file = SnapshotFile { meta: meta.clone(), records: records.to_vec() };
        let payload = serde_json::to_vec(&file).map_err(io::Error::other)?;
        write_atomic(&self.dir, SNAPSHOT_FILE, &frame(&payload))?;
        *on_disk = meta.last_log_id;
        Ok(true)
    }

    fn read_snapshot(&self) -> io::Result<Option<Snapshot<TypeConfig>>> {
        let _guard = lock(&self.on_disk);
        let Some(p) = read_single_frame(&self.dir.join(SNAPSHOT_FILE))? else {
            return Ok(None);
        };
        let f: SnapshotFile = serde_json::from_slice(&p).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Some(Snapshot { meta: f.meta, snapshot: Box::new(SnapshotData { records: f.records }) }))
    }
}

pub(crate) struct SnapshotBuilder {
    shared: Arc<SmShared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<i32>> {
        let (image, last, membership) = {
            let a = lock(&self.shared.applied);
            (a.image.clone(), a.last_applied, a.membership.clone())
        };
        self.shared.since_snapshot.store(0, Ordering::Relaxed);
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta { last_log_id: last, last_membership: membership, snapshot_id };
        let shared = self.shared.clone();
        let m = meta.clone();
        let records = blocking(move || {
            let records = image.to_records();
            shared.write_snapshot(&m, &records)?;
            Ok(records)
        })
        .await
        .map_err(snap_err)?;
        tracing::info!(last = ?last, records = records.len(), "built metadata snapshot");
        Ok(Snapshot { meta, snapshot: Box::new(SnapshotData { records }) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<i32>>, StoredMembership<i32, BasicNode>), StorageError<i32>> {
        let a = lock(&self.shared.applied);
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<i32>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut last = None;
        for e in entries {
            let index = e.log_id.index;
            let mut a = lock(&self.shared.applied);
            if a.last_applied.is_some_and(|l| l.index >= index) {
                // Already reflected (replay after a snapshot); never apply twice.
                out.push(());
                continue;
            }
            a.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {
                    let mut next = (*a.image).clone();
                    next.offset = index;
                    a.image = Arc::new(next);
                }
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                    let mut next = (*a.image).clone();
                    next.offset = index;
                    a.image = Arc::new(next);
                }
                EntryPayload::Normal(batch) => {
                    let (mut next, delta) = a.image.apply_with_delta(&batch.0);
                    next.offset = index;
                    let next = Arc::new(next);
                    a.image = next.clone();
                    let records = Arc::new(batch.0);
                    let n = records.len() as u64;
                    a.window.push_back((index, records.clone()));
                    a.window_records += n;
                    // Observers further behind than the window get the image instead.
                    while a.window.len() > self.shared.window_cap || (a.window.len() > 1 && a.window_records > self.shared.window_records) {
                        if let Some((i, r)) = a.window.pop_front() {
                            a.window_start = i;
                            a.window_records -= r.len() as u64;
                        }
                    }
                    drop(a);
                    let bytes = serialized_len(records.as_ref());
                    let since = self.shared.since_snapshot.fetch_add(bytes, Ordering::Relaxed) + bytes;
                    if since >= self.shared.snapshot_bytes {
                        self.shared.compact_wanted.notify_one();
                    }
                    self.shared.publish(Publication { records: records.as_ref().clone(), delta, image: next });
                }
            }
            last = Some(index);
            out.push(());
        }
        if let Some(i) = last {
            self.shared.applied_tx.send_replace(i);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError<i32>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<i32, BasicNode>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError<i32>> {
        let records = snapshot.records;
        let shared = self.shared.clone();
        let m = meta.clone();
        let image = blocking(move || {
            shared.write_snapshot(&m, &records)?;
            let mut image = MetadataImage::default().apply(&records);
            image.offset = m.last_log_id.map_or(0, |l| l.index);
            Ok(image)
        })
        .await
        .map_err(sm_err)?;
        let image = Arc::new(image);
        {
            let mut a = lock(&self.shared.applied);
            a.image = image.clone();
            a.last_applied = meta.last_log_id;
            a.membership = meta.last_membership.clone();
            a.window.clear();
            a.window_start = image.offset;
        }
        self.shared.applied_tx.send_replace(image.offset);
        tracing::info!(last = ?meta.last_log_id, "installed metadata snapshot");
        let delta = MetadataDelta { full: true, ..Default::default() };
        self.shared.publish(Publication { records: Vec::new(), delta, image });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<i32>> {
        let shared = self.shared.clone();
        blocking(move || shared.read_snapshot()).await.map_err(|e| StorageError::IO { source: StorageIOError::read_snapshot(None, &e) })
    }
}

/// The length of `records` as JSON, counted without building it.
fn serialized_len(records: &[MetadataRecord]) -> u64 {
    struct Count(u64);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, records);
    c.0
}
