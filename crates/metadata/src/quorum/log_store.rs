//! The durable Raft log, vote and committed index.
//!
//! Files in the quorum directory:
//! - `raft-log`: entries as frames `[u32 len][u32 crc32c(payload)][payload = JSON entry]`, in index
//!   order. Replay stops at the first torn or corrupt frame and truncates the file there.
//! - `raft-state`: one frame holding `{vote, committed, purged}`, replaced atomically (temp file,
//!   fsync, rename, fsync of the directory).
//!
//! Appends are written and fsynced before openraft's flush callback fires. Truncating a conflicting
//! suffix cuts the file at the first removed entry's frame (`set_len` + fsync). Purging first records
//! the new purge point in `raft-state`, then rewrites `raft-log` without the purged entries (temp
//! file + rename): a crash in between leaves entries at or below the purge point in the log, and
//! replay skips them. All entries after the purge point are also kept in memory; readers never
//! touch the disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};

use super::{blocking, TypeConfig};

pub(crate) const LOG_FILE: &str = "raft-log";
pub(crate) const STATE_FILE: &str = "raft-state";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HardState {
    vote: Option<Vote<i32>>,
    committed: Option<LogId<i32>>,
    purged: Option<LogId<i32>>,
}

/// Entries after the purge point, shared with readers.
#[derive(Default)]
struct Mem {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    purged: Option<LogId<i32>>,
}

struct Disk {
    dir: PathBuf,
    file: File,
    /// Byte offset of each entry's frame in `raft-log`.
    offsets: BTreeMap<u64, u64>,
    end: u64,
    state: HardState,
}

pub(crate) struct LogStore {
    mem: Arc<RwLock<Mem>>,
    disk: Arc<Mutex<Disk>>,
}

#[derive(Clone)]
pub(crate) struct LogReader {
    mem: Arc<RwLock<Mem>>,
}

fn io_err(e: io::Error) -> StorageError<i32> {
    StorageError::IO { source: StorageIOError::write_logs(&e) }
}

pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The next intact frame at `at`: `(payload, frame length)`.
pub(crate) fn next_frame(raw: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let head = raw.get(at..at.checked_add(8)?)?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let payload = raw.get(at + 8..(at + 8).checked_add(len)?)?;
    (crc32c::crc32c(payload) == crc).then_some((payload, 8 + len))
}

/// Fsyncs a directory so a rename or a new file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` with `bytes`: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Reads a single-frame file; `Ok(None)` if it does not exist. A corrupt file is an error: these
/// files are only ever replaced atomically, so damage is not a torn write.
pub(crate) fn read_single_frame(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let raw = match std::fs::read(path) {
        Ok(r) => r,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match next_frame(&raw, 0) {
        Some((payload, n)) if n == raw.len() => Ok(Some(payload.to_vec())),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} is corrupt", path.display()))),
    }
}

impl Disk {
    fn save_state(&self) -> io::Result<()> {
        let payload = serde_json::to_vec(&self.state).map_err(io::Error::other)?;
        write_atomic(&self.dir, STATE_FILE, &frame(&payload))
    }

    /// Rewrites `raft-log` keeping only the frames of entries in `offsets` from `first` on.
    fn rewrite_from(&mut self, first: Option<u64>) -> io::Result<()> {
        let start = first.and_then(|i| self.offsets.get(&i).copied()).unwrap_or(self.end);
        let mut tail = Vec::with_capacity((self.end - start) as usize);
        self.file.seek(SeekFrom::Start(start))?;
        (&mut self.file).take(self.end - start).read_to_end(&mut tail)?;
        write_atomic(&self.dir, LOG_FILE, &tail)?;
        self.file = open_log(&self.dir)?;
        let keep = match first {
            Some(i) => self.offsets.split_off(&i),
            None => BTreeMap::new(),
        };
        self.offsets = keep.into_iter().map(|(i, o)| (i, o - start)).collect();
        self.end = tail.len() as u64;
        Ok(())
    }
}

fn open_log(dir: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).truncate(false).read(true).append(true).open(dir.join(LOG_FILE))
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, repairing a torn tail.
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let state = match read_single_frame(&dir.join(STATE_FILE))? {
            Some(p) => serde_json::from_slice::<HardState>(&p).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            None => HardState::default(),
        };
        let mut file = open_log(dir)?;
        let mut raw = Vec::new();
        file.read_to_end(&mut raw)?;
        let purged_index = state.purged.map(|l| l.index);
        let mut entries = BTreeMap::new();
        let mut offsets = BTreeMap::new();
        let mut at = 0usize;
        let mut dirty = false;
        while let Some((payload, n)) = next_frame(&raw, at) {
            let Ok(entry) = serde_json::from_slice::<Entry<TypeConfig>>(payload) else {
                break;
            };
            let index = entry.log_id.index;
            if purged_index.is_some_and(|p| index <= p) {
                // Left over from a purge that crashed before the rewrite.
                dirty = true;
                at += n;
                continue;
            }
            let expected = entries.keys().next_back().map(|l| l + 1).or(purged_index.map(|p| p + 1));
            if let Some(exp) = expected {
                if index > exp {
                    tracing::error!(dir = %dir.display(), index, expected = exp, "gap in raft log; dropping the rest");
                    break;
                }
                if index < exp {
                    // Stale suffix superseded by a later write: drop it (never happens with durable truncation).
                    entries.split_off(&index);
                    offsets.split_off(&index);
                    dirty = true;
                }
            }
            entries.insert(index, entry);
            offsets.insert(index, at as u64);
            at += n;
        }
        if at < raw.len() {
            tracing::warn!(dir = %dir.display(), at, len = raw.len(), "truncating torn raft log tail");
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        let mut disk = Disk { dir: dir.to_path_buf(), file, offsets, end: at as u64, state: state.clone() };
        if dirty {
            let first = disk.offsets.keys().next().copied();
            disk.rewrite_from(first)?;
        }
        let mem = Mem { entries, purged: state.purged };
        Ok(LogStore { mem: Arc::new(RwLock::new(mem)), disk: Arc::new(Mutex::new(disk)) })
    }

    /// The committed log id saved last (what a restart replays up to).
    pub(crate) fn saved_committed(&self) -> Option<LogId<i32>> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner()).state.committed
    }

    fn mem_read(&self) -> std::sync::RwLockReadGuard<'_, Mem> {
        self.mem.read().unwrap_or_else(|p| p.into_inner())
    }

    fn mem_write(&self) -> std::sync::RwLockWriteGuard<'_, Mem> {
        self.mem.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn with_disk<R: Send + 'static>(&self, f: impl FnOnce(&mut Disk) -> io::Result<R> + Send + 'static) -> io::Result<R> {
        let disk = self.disk.clone();
        blocking(move || {
            let mut d = disk.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut d)
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<i32>> {
        let mem = self.mem.read().unwrap_or_else(|p| p.into_inner());
        Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<i32>> {
        Ok(self.mem_read().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<i32>> {
        let mem = self.mem_read();
        let last = mem.entries.values().next_back().map(|e| *e.get_log_id()).or(mem.purged);
        Ok(LogState { last_purged_log_id: mem.purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader { mem: self.mem.clone() }
    }

    async fn save_vote(&mut self, vote: &Vote<i32>) -> Result<(), StorageError<i32>> {
        let vote = *vote;
        self.with_disk(move |d| {
            d.state.vote = Some(vote);
            d.save_state()
        })
        .await
        .map_err(|e| StorageError::IO { source: StorageIOError::write_vote(&e) })
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<i32>>, StorageError<i32>> {
        Ok(self.disk.lock().unwrap_or_else(|p| p.into_inner()).state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<i32>>) -> Result<(), StorageError<i32>> {
        self.with_disk(move |d| {
            if d.state.committed == committed {
                return Ok(());
            }
            d.state.committed = committed;
            d.save_state()
        })
        .await
        .map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<i32>>, StorageError<i32>> {
        Ok(self.saved_committed())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<i32>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        {
            let mut mem = self.mem_write();
            for e in entries {
                let payload = serde_json::to_vec(&e).map_err(|e| io_err(io::Error::other(e)))?;
                frames.push((e.log_id.index, buf.len() as u64));
                buf.extend_from_slice(&frame(&payload));
                mem.entries.insert(e.log_id.index, e);
            }
        }
        let res = self
            .with_disk(move |d| {
                let base = d.end;
                d.file.write_all(&buf)?;
                d.file.sync_data()?;
                for (i, o) in frames {
                    d.offsets.insert(i, base + o);
                }
                d.end = base + buf.len() as u64;
                Ok(())
            })
            .await;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.log_io_completed(Err(e));
                Err(io_err(io::Error::other(msg)))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<i32>) -> Result<(), StorageError<i32>> {
        let from = log_id.index;
        self.mem_write().entries.split_off(&from);
        self.with_disk(move |d| {
            let Some((_, &off)) = d.offsets.range(from..).next() else {
                return Ok(());
            };
            d.file.set_len(off)?;
            d.file.sync_all()?;
            d.offsets.split_off(&from);
            d.end = off;
            Ok(())
        })
        .await
        .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<i32>) -> Result<(), StorageError<i32>> {
        {
            let mut mem = self.mem_write();
            if mem.purged.is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            mem.purged = Some(log_id);
            let keep = mem.entries.split_off(&(log_id.index + 1));
            mem.entries = keep;
        }
        self.with_disk(move |d| {
            d.state.purged = Some(log_id);
            d.save_state()?;
            let first = d.offsets.range(log_id.index + 1..).next().map(|(i, _)| *i);
            d.rewrite_from(first)
        })
        .await
        .map_err(io_err)
    }
}
