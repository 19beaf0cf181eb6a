//! The log directories of one broker (`log.dirs`, one per disk).
//!
//! - **Placement.** A partition's log lives in one directory. At start-up each
//!   usable directory is scanned for partition directories; a partition found
//!   nowhere goes to the online directory that holds the fewest partitions
//!   (ties: the first in `log.dirs` order).
//! - **Checkpoints and the clean-shutdown marker** are kept per directory, for
//!   the logs in it.
//! - **Failure.** A directory goes offline for good (until a restart) when a
//!   write or fsync of any log in it fails ([`DirHealth`]), or a checkpoint
//!   cannot be written there. Every log in it then refuses reads and writes
//!   (`StorageError::Offline`); the other directories keep serving. A directory
//!   that cannot be used at start-up (missing when `create_missing` is off, not
//!   a directory, not writable) is offline from the start, and partitions the
//!   caller expects but finds nowhere are treated as lost with it rather than
//!   recreated empty.
//! - **Moves** between directories (AlterReplicaLogDirs): the caller copies a
//!   log into a `-future` directory ([`crate::Log::copy_to`]) and swaps it in
//!   with [`LogManager::replace_with_future`]. The copy being replaced is
//!   marked superseded first, so a crash part-way through a swap leaves a
//!   state the next start resolves: of two copies of one partition, the
//!   superseded one is deleted; an unfinished `-future` directory is deleted.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::watch;

use crate::log::{Log, LogConfig};
use crate::{now_ms, read_checkpoint, sync_dir, write_checkpoint, StorageError, TopicPartition};

const CLEAN_MARKER: &str = ".strom_clean_shutdown";
const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
const START_CHECKPOINT: &str = "log-start-offset-checkpoint";
const HW_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Left in a partition directory whose copy in another directory replaces it.
const SUPERSEDED: &str = ".strom_superseded";

/// Whether a log directory still works. Shared by every log in it: the first
/// failed write or fsync in any of them takes the whole directory offline.
pub struct DirHealth {
    offline: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Bumped when any directory of the manager goes offline.
    events: Arc<watch::Sender<u64>>,
}

impl DirHealth {
    fn new(events: Arc<watch::Sender<u64>>) -> Self {
        DirHealth { offline: AtomicBool::new(false), reason: Mutex::new(None), events }
    }

    /// The health of a log opened outside a [`LogManager`].
    pub fn standalone() -> Arc<DirHealth> {
        Arc::new(DirHealth::new(Arc::new(watch::channel(0).0)))
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// Why it went offline.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the directory offline. True the first time.
    pub fn mark_offline(&self, reason: &str) -> bool {
        if self.offline.swap(true, Ordering::AcqRel) {
            return false;
        }
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
        self.events.send_modify(|n| *n = n.wrapping_add(1));
        true
    }
}

struct LogDir {
    path: PathBuf,
    health: Arc<DirHealth>,
    clean: bool,
    recovery_points: HashMap<TopicPartition, i64>,
    start_offsets: HashMap<TopicPartition, i64>,
    high_watermarks: HashMap<TopicPartition, i64>,
}

/// One directory as reported (DescribeLogDirs).
pub struct DirView {
    pub path: PathBuf,
    /// The filesystem's (total, available) bytes, when it can be asked.
    pub space: Option<(u64, u64)>,
    /// Why the directory is offline, if it is.
    pub offline: Option<String>,
    /// The open logs in it (none when offline).
    pub logs: Vec<(TopicPartition, Arc<Log>)>,
}

/// Owns every partition log in the broker's log directories.
pub struct LogManager {
    dirs: Vec<LogDir>,
    /// Open logs and the directory (index into `dirs`) each lives in.
    logs: RwLock<HashMap<TopicPartition, (usize, Arc<Log>)>>,
    /// Partition directories found at start-up and not opened (yet).
    found: Mutex<HashMap<TopicPartition, usize>>,
    /// Some directory could not be used at start-up.
    missing_at_start: bool,
    /// Partitions expected but found in no usable directory at start-up
    /// (see [`LogManager::mark_lost`]).
    lost: Mutex<HashSet<TopicPartition>>,
    events: Arc<watch::Sender<u64>>,
    /// One checkpoint writer at a time: they share temp file names.
    checkpointing: Mutex<()>,
    /// Partitions per directory, for placement; recounted after a removal or
    /// a move (`None`), kept up to date by placement itself.
    counts: Mutex<Option<Vec<usize>>>,
    /// The logs with a time-based flush (`flush.ms` set): the only ones the
    /// periodic flush check visits.
    timed: RwLock<HashMap<TopicPartition, Arc<Log>>>,
    /// A hash of each checkpoint file as last written (directory, name): an
    /// unchanged one is not rewritten.
    written: Mutex<HashMap<(usize, &'static str), u64>>,
}

impl LogManager {
    /// One data directory (created if missing).
    pub fn open(dir: &Path) -> Result<LogManager, StorageError> {
        Self::open_dirs(&[dir.to_path_buf()], true)
    }

    /// Opens the log directories. A directory that is missing (and
    /// `create_missing` is off), is not a directory, or cannot be written is
    /// offline from the start; it is an error only when none is usable.
    /// Consumes each directory's clean-shutdown marker: if the process dies
    /// before the next clean shutdown, the next start recovers.
    pub fn open_dirs(paths: &[PathBuf], create_missing: bool) -> Result<LogManager, StorageError> {
        if paths.is_empty() {
            return Err(StorageError::Io(std::io::Error::other("no log directory configured")));
        }
        let events = Arc::new(watch::channel(0).0);
        let mut dirs = Vec::new();
        for path in paths {
            let health = Arc::new(DirHealth::new(events.clone()));
            let mut dir = LogDir {
                path: path.clone(),
                health,
                clean: false,
                recovery_points: HashMap::new(),
                start_offsets: HashMap::new(),
                high_watermarks: HashMap::new(),
            };
            match prepare(path, create_missing) {
                Ok(clean) => {
                    dir.clean = clean;
                    dir.recovery_points = read_checkpoint(&path.join(RECOVERY_CHECKPOINT));
                    dir.start_offsets = read_checkpoint(&path.join(START_CHECKPOINT));
                    dir.high_watermarks = read_checkpoint(&path.join(HW_CHECKPOINT));
                }
                Err(reason) => {
                    tracing::error!(dir = %path.display(), reason = %reason, "log directory is offline");
                    dir.health.mark_offline(&reason);
                }
            }
            dirs.push(dir);
        }
        if dirs.iter().all(|d| d.health.is_offline()) {
            let why: Vec<String> =
                dirs.iter().map(|d| format!("{}: {}", d.path.display(), d.health.reason().unwrap_or_default())).collect();
            return Err(StorageError::Io(std::io::Error::other(format!("no usable log directory ({})", why.join("; ")))));
        }
        let missing_at_start = dirs.iter().any(|d| d.health.is_offline());
        let found = scan(&dirs);
        // The events so far are the start-up state, not news.
        events.send_modify(|_| {});
        Ok(LogManager {
            dirs,
            logs: RwLock::new(HashMap::new()),
            found: Mutex::new(found),
            missing_at_start,
            lost: Mutex::new(HashSet::new()),
            events,
            checkpointing: Mutex::new(()),
            counts: Mutex::new(None),
            timed: RwLock::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        })
    }

    /// The configured directories, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// The index of the directory named `path` (as configured, or the same directory).
    pub fn dir_index(&self, path: &Path) -> Option<usize> {
        let canon = |p: &Path| std::fs::canonicalize(p).ok();
        self.dirs.iter().position(|d| d.path == path).or_else(|| {
            let want = canon(path)?;
            self.dirs.iter().position(|d| canon(&d.path).as_deref() == Some(want.as_path()))
        })
    }

    pub fn is_dir_offline(&self, index: usize) -> bool {
        self.dirs.get(index).is_none_or(|d| d.health.is_offline())
    }

    /// Whether some directory could not be used at start-up: partitions found
    /// in no usable directory may have been in it.
    pub fn missing_at_start(&self) -> bool {
        self.missing_at_start
    }

    /// Changes whenever a directory goes offline.
    pub fn subscribe_failures(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Every usable directory was shut down cleanly.
    pub fn was_clean(&self) -> bool {
        self.dirs.iter().filter(|d| !d.health.is_offline()).all(|d| d.clean)
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Log>> {
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        logs.get(&(topic.to_string(), partition)).map(|(_, l)| l.clone())
    }

    /// The directory a partition's log is in (open, or found at start-up).
    pub fn dir_of(&self, topic: &str, partition: i32) -> Option<usize> {
        let key = (topic.to_string(), partition);
        if let Some((i, _)) = self.logs.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Some(*i);
        }
        self.found.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied()
    }

    /// Whether the partition's log is in an offline directory.
    pub fn is_offline(&self, topic: &str, partition: i32) -> bool {
        if self.lost.lock().unwrap_or_else(|p| p.into_inner()).contains(&(topic.to_string(), partition)) {
            return true;
        }
        self.dir_of(topic, partition).is_some_and(|i| self.is_dir_offline(i))
    }

    /// Partitions the caller expects here but no usable directory holds, while
    /// a directory is missing ([`LogManager::missing_at_start`]): they may be
    /// in it, so they are offline rather than created anew.
    pub fn mark_lost(&self, partitions: Vec<TopicPartition>) {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).extend(partitions);
    }

    /// Opens the log of a partition, creating it in the least used online
    /// directory if it exists nowhere. `Offline` when its directory is, or
    /// when it is one of the partitions lost with a missing directory.
    pub fn open_log(&self, topic: &str, partition: i32, config: LogConfig) -> Result<Arc<Log>, StorageError> {
        let key = (topic.to_string(), partition);
        let open = self.logs.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        if let Some((index, log)) = open {
            return if self.is_dir_offline(index) { Err(StorageError::Offline) } else { Ok(log) };
        }
        if self.lost.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
            return Err(StorageError::Offline);
        }
        let located = self.found.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied();
        let index = match located {
            Some(i) => i,
            None => self.place().ok_or(StorageError::Offline)?,
        };
        let d = &self.dirs[index];
        if d.health.is_offline() {
            return Err(StorageError::Offline);
        }
        let rp = d.recovery_points.get(&key).copied().unwrap_or(0);
        let start = d.start_offsets.get(&key).copied().unwrap_or(0);
        let hw = d.high_watermarks.get(&key).copied().unwrap_or(0);
        let dir = d.path.join(format!("{topic}-{partition}"));
        let fresh = !dir.exists();
        let opened = Log::open_with_high_watermark(&dir, config, d.clean || fresh, rp, start, hw);
        let log = match opened {
            Ok(log) => {
                if fresh {
                    // The new directory entries become durable with the log's
                    // first flush, not one fsync per partition created.
                    log.sync_later(vec![dir.clone(), d.path.clone()]);
                }
                Arc::new(log.with_health(d.health.clone()))
            }
            Err(StorageError::Io(e)) => {
                if located.is_none() {
                    self.recount();
                }
                if !crate::is_exhausted(&e) {
                    self.fail_dir(index, &format!("opening {}: {e}", dir.display()));
                }
                return Err(StorageError::Io(e));
            }
            Err(e) => return Err(e),
        };
        let log = {
            let mut logs = self.logs.write().unwrap_or_else(|p| p.into_inner());
            logs.entry(key.clone()).or_insert((index, log)).1.clone()
        };
        self.found.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        self.note_timed(key, &log);
        Ok(log)
    }

    /// Gives a partition's open log new settings.
    pub fn set_config(&self, topic: &str, partition: i32, config: LogConfig) {
        if let Some(log) = self.get(topic, partition) {
            log.set_config(config);
            self.note_timed((topic.to_string(), partition), &log);
        }
    }

    fn note_timed(&self, key: TopicPartition, log: &Arc<Log>) {
        let timed = log.config().flush_ms < i64::MAX;
        let mut map = self.timed.write().unwrap_or_else(|p| p.into_inner());
        if timed {
            map.insert(key, log.clone());
        } else {
            map.remove(&key);
        }
    }

    /// The open logs with `flush.ms` set, in online directories.
    pub fn timed_flush(&self) -> Vec<Arc<Log>> {
        self.timed.read().unwrap_or_else(|p| p.into_inner()).values().filter(|l| !l.is_failed()).cloned().collect()
    }

    /// The online directory holding the fewest partitions, counting the new
    /// one there.
    fn place(&self) -> Option<usize> {
        let mut cached = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let counts = cached.get_or_insert_with(|| {
            let mut counts = vec![0usize; self.dirs.len()];
            for (i, _) in self.logs.read().unwrap_or_else(|p| p.into_inner()).values() {
                counts[*i] += 1;
            }
            for i in self.found.lock().unwrap_or_else(|p| p.into_inner()).values() {
                counts[*i] += 1;
            }
            counts
        });
        let best = (0..self.dirs.len()).filter(|i| !self.dirs[*i].health.is_offline()).min_by_key(|i| (counts[*i], *i))?;
        counts[best] += 1;
        Some(best)
    }

    /// Makes the next placement count the partitions per directory afresh.
    fn recount(&self) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Takes a directory offline (a failed write, fsync or checkpoint there).
    pub fn fail_dir(&self, index: usize, reason: &str) {
        if let Some(d) = self.dirs.get(index) {
            if d.health.mark_offline(reason) {
                tracing::error!(dir = %d.path.display(), reason = %reason,
                    "log directory failed: its partitions are offline until a restart; the other directories keep serving");
            }
        }
    }

    /// Removes a partition's log and its files (in an offline directory, only
    /// from memory).
    pub fn delete_log(&self, topic: &str, partition: i32) -> Result<(), StorageError> {
        let key = (topic.to_string(), partition);
        self.recount();
        self.timed.write().unwrap_or_else(|p| p.into_inner()).remove(&key);
        let removed = self.logs.write().unwrap_or_else(|p| p.into_inner()).remove(&key);
        let found = self.found.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
        let Some(index) = removed.as_ref().map(|(i, _)| *i).or(found) else {
            return Ok(());
        };
        drop(removed);
        let d = &self.dirs[index];
        if d.health.is_offline() {
            return Ok(());
        }
        remove_partition_dir(&d.path, &d.path.join(format!("{topic}-{partition}")), topic, partition)?;
        Ok(())
    }

    /// Deletes directories left by an interrupted delete.
    pub fn remove_stray_deletes(&self) {
        for d in self.dirs.iter().filter(|d| !d.health.is_offline()) {
            if let Ok(rd) = std::fs::read_dir(&d.path) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().ends_with("-delete") {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
    }

    /// The open logs in online directories.
    pub fn all(&self) -> Vec<(TopicPartition, Arc<Log>)> {
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        logs.iter().filter(|(_, (i, _))| !self.dirs[*i].health.is_offline()).map(|(k, (_, v))| (k.clone(), v.clone())).collect()
    }

    /// Every partition with a log in some directory (open or found on disk).
    pub fn on_disk(&self) -> Vec<TopicPartition> {
        let mut out: Vec<TopicPartition> = self.logs.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        out.extend(self.found.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned());
        out
    }

    /// Whether any directory is offline or any partition lost with one: when
    /// not, [`LogManager::offline_partitions`] is empty without looking at logs.
    pub fn any_offline(&self) -> bool {
        self.dirs.iter().any(|d| d.health.is_offline()) || !self.lost.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Partitions whose log is in an offline directory.
    pub fn offline_partitions(&self) -> Vec<TopicPartition> {
        if !self.any_offline() {
            return Vec::new();
        }
        let mut out: Vec<TopicPartition> = {
            let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
            logs.iter().filter(|(_, (i, _))| self.dirs[*i].health.is_offline()).map(|(k, _)| k.clone()).collect()
        };
        let found = self.found.lock().unwrap_or_else(|p| p.into_inner());
        out.extend(found.iter().filter(|(_, i)| self.dirs[**i].health.is_offline()).map(|(k, _)| k.clone()));
        out.extend(self.lost.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        out
    }

    /// Every directory with its state and open logs.
    pub fn dirs(&self) -> Vec<DirView> {
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        self.dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let offline = d.health.is_offline().then(|| d.health.reason().unwrap_or_else(|| "offline".into()));
                let logs = if offline.is_some() {
                    Vec::new()
                } else {
                    logs.iter().filter(|(_, (j, _))| *j == i).map(|(k, (_, l))| (k.clone(), l.clone())).collect()
                };
                let space = if offline.is_some() { None } else { space(&d.path) };
                DirView { path: d.path.clone(), space, offline, logs }
            })
            .collect()
    }

    /// A fresh directory for a move of `topic`-`partition` into directory `to`.
    pub fn future_dir(&self, topic: &str, partition: i32, to: usize) -> Option<PathBuf> {
        let d = self.dirs.get(to)?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        Some(d.path.join(format!("{topic}-{partition}.{nanos:x}-future")))
    }

    /// A move's last step, with every append to the partition stopped by the
    /// caller and `future` holding a complete copy of the current log (see
    /// [`crate::Log::copy_to`]): marks the current copy superseded, renames
    /// `future` into place in directory `to`, opens it there and makes it the
    /// partition's log, then deletes the old copy (in the background). Returns the new log. On
    /// failure before the new log is open, the current one stays.
    pub fn replace_with_future(
        &self,
        topic: &str,
        partition: i32,
        future: &Path,
        to: usize,
        config: LogConfig,
    ) -> Result<Arc<Log>, StorageError> {
        let key = (topic.to_string(), partition);
        let Some((from, old)) = self.logs.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned() else {
            return Err(StorageError::Offline);
        };
        let target = &self.dirs[to];
        if target.health.is_offline() || self.dirs[from].health.is_offline() {
            return Err(StorageError::Offline);
        }
        let marker = old.dir().join(SUPERSEDED);
        std::fs::File::create(&marker)?.sync_all()?;
        sync_dir(old.dir())?;
        let undo_marker = || {
            let _ = std::fs::remove_file(&marker);
        };
        let final_dir = target.path.join(format!("{topic}-{partition}"));
        if let Err(e) = std::fs::rename(future, &final_dir).and_then(|_| sync_dir(&target.path)) {
            undo_marker();
            return Err(e.into());
        }
        let opened =
            Log::open_with_high_watermark(&final_dir, config, true, old.log_end_offset(), old.log_start_offset(), old.high_watermark());
        let log = match opened {
            Ok(log) => Arc::new(log.with_health(target.health.clone())),
            Err(e) => {
                let _ = std::fs::rename(&final_dir, future);
                undo_marker();
                return Err(e);
            }
        };
        self.logs.write().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), (to, log.clone()));
        self.recount();
        self.note_timed(key, &log);
        // Renamed away now; its files are deleted on another thread, so that the
        // caller (whose appends are stopped) does not wait for that.
        match retire_partition_dir(&self.dirs[from].path, old.dir(), topic, partition) {
            Ok(Some(doomed)) => {
                std::thread::spawn(move || {
                    if let Err(e) = std::fs::remove_dir_all(&doomed) {
                        tracing::warn!(dir = %doomed.display(), error = %e, "could not remove a moved log's old copy; the next start removes it");
                    }
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(dir = %old.dir().display(), error = %e, "could not remove the moved log's old copy; the next start removes it")
            }
        }
        Ok(log)
    }

    /// Writes each online directory's recovery-point, log-start and
    /// high-watermark checkpoint files, each atomically (temp file, fsync,
    /// rename). A directory where that fails goes offline (unless it is only
    /// full); the first error is returned after trying every directory.
    pub fn write_checkpoints(&self) -> Result<(), StorageError> {
        let _one = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        let logs: Vec<(usize, TopicPartition, Arc<Log>)> = {
            let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
            logs.iter().map(|(k, (i, l))| (*i, k.clone(), l.clone())).collect()
        };
        let mut first = None;
        for (i, _) in self.dirs.iter().enumerate().filter(|(_, d)| !d.health.is_offline()) {
            let mine: Vec<_> = logs.iter().filter(|(j, _, _)| *j == i).collect();
            let rps: Vec<_> = mine.iter().map(|(_, k, l)| (k.clone(), l.recovery_point())).collect();
            let starts: Vec<_> = mine.iter().map(|(_, k, l)| (k.clone(), l.log_start_offset())).collect();
            let hws: Vec<_> = mine.iter().map(|(_, k, l)| (k.clone(), l.high_watermark())).collect();
            let written = self
                .write_checkpoint_if_changed(i, RECOVERY_CHECKPOINT, &rps)
                .and_then(|_| self.write_checkpoint_if_changed(i, START_CHECKPOINT, &starts))
                .and_then(|_| self.write_checkpoint_if_changed(i, HW_CHECKPOINT, &hws));
            if let Err(e) = written {
                // A full disk (or no free descriptor) is not a failure: the next checkpoint retries.
                if !crate::is_exhausted(&e) {
                    self.fail_dir(i, &format!("writing checkpoints: {e}"));
                }
                first.get_or_insert(StorageError::Io(e));
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Writes a checkpoint file unless it already holds exactly `entries`
    /// (idle partitions make the same file every few seconds).
    fn write_checkpoint_if_changed(&self, dir: usize, name: &'static str, entries: &[(TopicPartition, i64)]) -> std::io::Result<()> {
        use std::hash::{Hash, Hasher};
        let mut sorted: Vec<&(TopicPartition, i64)> = entries.iter().collect();
        sorted.sort_unstable();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sorted.hash(&mut h);
        let hash = h.finish();
        if self.written.lock().unwrap_or_else(|p| p.into_inner()).get(&(dir, name)) == Some(&hash) {
            return Ok(());
        }
        self.written.lock().unwrap_or_else(|p| p.into_inner()).remove(&(dir, name));
        write_checkpoint(&self.dirs[dir].path, name, entries)?;
        self.written.lock().unwrap_or_else(|p| p.into_inner()).insert((dir, name), hash);
        Ok(())
    }

    /// Flushes every log, writes checkpoints and each online directory's
    /// clean-shutdown marker.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        let mut first = None;
        let mut failed_dirs = Vec::new();
        for (i, _) in self.dirs.iter().enumerate().filter(|(_, d)| !d.health.is_offline()) {
            let logs: Vec<Arc<Log>> = {
                let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
                logs.values().filter(|(j, _)| *j == i).map(|(_, l)| l.clone()).collect()
            };
            for log in logs {
                if let Err(e) = log.flush_blocking() {
                    failed_dirs.push(i);
                    first.get_or_insert(e);
                    break;
                }
                // Only a shortcut for the next start (which can replay the log).
                if let Err(e) = log.checkpoint_producers() {
                    tracing::warn!(dir = %log.dir().display(), error = %e, "could not write a producer snapshot at shutdown");
                }
            }
        }
        if let Err(e) = self.write_checkpoints() {
            first.get_or_insert(e);
        }
        for (i, d) in self.dirs.iter().enumerate().filter(|(_, d)| !d.health.is_offline()) {
            if failed_dirs.contains(&i) {
                continue;
            }
            let marked = (|| -> std::io::Result<()> {
                let mut f = std::fs::File::create(d.path.join(CLEAN_MARKER))?;
                f.write_all(b"clean\n")?;
                f.sync_all()?;
                sync_dir(&d.path)
            })();
            if let Err(e) = marked {
                first.get_or_insert(StorageError::Io(e));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Makes a directory usable: creates it if allowed, checks it can be written,
/// consumes its clean-shutdown marker. Returns whether the last stop was clean,
/// or why the directory cannot be used.
fn prepare(path: &Path, create_missing: bool) -> Result<bool, String> {
    if !path.exists() {
        if !create_missing {
            return Err("the directory does not exist".into());
        }
        std::fs::create_dir_all(path).map_err(|e| format!("cannot create it: {e}"))?;
    }
    if !path.is_dir() {
        return Err("not a directory".into());
    }
    let probe = path.join(".strom_probe");
    std::fs::File::create(&probe)
        .and_then(|f| f.sync_all())
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot write to it: {e}"))?;
    let marker = path.join(CLEAN_MARKER);
    let clean = marker.exists();
    if clean {
        std::fs::remove_file(&marker).and_then(|_| sync_dir(path)).map_err(|e| format!("cannot update it: {e}"))?;
    }
    Ok(clean)
}

/// The filesystem's total and available bytes.
fn space(path: &Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some((st.f_blocks.saturating_mul(st.f_frsize), st.f_bavail.saturating_mul(st.f_frsize)))
}

/// `<topic>-<partition>` → (topic, partition).
fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, p) = name.rsplit_once('-')?;
    let p = p.parse::<i32>().ok().filter(|p| *p >= 0)?;
    (!topic.is_empty()).then(|| (topic.to_string(), p))
}

/// Finds the partition directories of the usable directories, removing
/// leftovers of interrupted deletes and moves, and resolving a swap that a
/// crash interrupted (the superseded copy loses).
fn scan(dirs: &[LogDir]) -> HashMap<TopicPartition, usize> {
    let mut found: HashMap<TopicPartition, (usize, bool)> = HashMap::new();
    for (i, d) in dirs.iter().enumerate().filter(|(_, d)| !d.health.is_offline()) {
        let Ok(rd) = std::fs::read_dir(&d.path) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !e.path().is_dir() {
                continue;
            }
            if name.ends_with("-delete") {
                let _ = std::fs::remove_dir_all(e.path());
                continue;
            }
            if name.ends_with("-future") {
                tracing::warn!(dir = %e.path().display(), "removing the copy of an unfinished move between log directories");
                let _ = std::fs::remove_dir_all(e.path());
                continue;
            }
            let Some(tp) = parse_partition_dir(&name) else { continue };
            let superseded = e.path().join(SUPERSEDED).exists();
            match found.get(&tp).copied() {
                None => {
                    found.insert(tp, (i, superseded));
                }
                Some((j, other_superseded)) => {
                    let (keep, drop) = if superseded && !other_superseded {
                        (j, i)
                    } else if other_superseded && !superseded {
                        (i, j)
                    } else {
                        tracing::error!(partition = %name, first = %dirs[j].path.display(), second = %d.path.display(),
                            "a partition's log is in two directories; using the first (delete the wrong one by hand)");
                        continue;
                    };
                    let gone = dirs[drop].path.join(&name);
                    tracing::warn!(dir = %gone.display(), "removing the old copy of a partition moved to another directory");
                    let _ = remove_partition_dir(&dirs[drop].path, &gone, &tp.0, tp.1);
                    found.insert(tp, (keep, false));
                }
            }
        }
    }
    found
        .into_iter()
        .map(|(tp, (i, superseded))| {
            if superseded {
                // The swap never happened: this is the only copy.
                let _ = std::fs::remove_file(dirs[i].path.join(format!("{}-{}", tp.0, tp.1)).join(SUPERSEDED));
            }
            (tp, i)
        })
        .collect()
}

/// Renames a partition directory out of the way (`<tp>.<ms>-delete`) and
/// syncs its parent, so a crash never leaves a half-deleted log under the live
/// name. Returns the new name, for [`std::fs::remove_dir_all`]; None if there
/// was nothing.
fn retire_partition_dir(parent: &Path, dir: &Path, topic: &str, partition: i32) -> std::io::Result<Option<PathBuf>> {
    if !dir.exists() {
        return Ok(None);
    }
    let doomed = parent.join(format!("{topic}-{partition}.{}-delete", now_ms()));
    std::fs::rename(dir, &doomed)?;
    sync_dir(parent)?;
    Ok(Some(doomed))
}

/// Removes a partition directory (see [`retire_partition_dir`]).
fn remove_partition_dir(parent: &Path, dir: &Path, topic: &str, partition: i32) -> std::io::Result<()> {
    match retire_partition_dir(parent, dir, topic, partition)? {
        Some(doomed) => std::fs::remove_dir_all(doomed),
        None => Ok(()),
    }
}
