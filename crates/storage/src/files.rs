//! A bounded cache of open `.log` file descriptors.
//!
//! A broker may hold far more segments than the process may keep files open
//! (100,000 partitions against an open-file limit of 20,000, or of 1,024 on
//! many systems). So a segment does not own a descriptor: it owns a
//! [`LogFile`], a path plus a slot that holds the open file while it is in the
//! cache. [`LogFile::get`] returns the open file, reopening it on a miss;
//! when more than the cache's capacity are open, the least recently used are
//! closed (a CLOCK sweep: a slot used since the hand last passed gets a second
//! chance). Index files are never kept open at all (see [`crate::segment`]).
//!
//! Closing is by dropping the cache's `Arc<File>`: a reader that took the file
//! before keeps it until its read ends, so eviction never breaks a read.
//!
//! Reopening by path is safe because a `.log` file is replaced only under its
//! log's lock, together with the segment that names it (compaction's rename),
//! and a partition directory is renamed only when its log is retired.
//!
//! One cache serves the process, as the limit it guards does; its capacity is
//! set once at start-up ([`set_capacity`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// The capacity until [`set_capacity`] is called (tests, tools).
const DEFAULT_CAPACITY: usize = 1024;

static CACHE: LazyLock<FdCache> = LazyLock::new(|| FdCache::new(DEFAULT_CAPACITY));

/// Sets how many `.log` files may be open at once (at least 16).
pub fn set_capacity(n: usize) {
    CACHE.capacity.store(n.max(16), Ordering::Relaxed);
}

/// The cache's figures: (capacity, open, hits, misses).
pub fn stats() -> CacheStats {
    CACHE.stats()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub capacity: usize,
    pub open: usize,
    pub hits: u64,
    pub misses: u64,
}

struct FdCache {
    capacity: AtomicUsize,
    ring: Mutex<Ring>,
    open: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Ring {
    slots: Vec<Weak<Slot>>,
    hand: usize,
}

#[derive(Debug)]
struct Slot {
    path: PathBuf,
    file: Mutex<Option<Arc<File>>>,
    /// Used since the sweep's hand last passed.
    used: AtomicBool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.file.get_mut().map(|f| f.is_some()).unwrap_or(false) {
            CACHE.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl FdCache {
    fn new(capacity: usize) -> FdCache {
        FdCache {
            capacity: AtomicUsize::new(capacity),
            ring: Mutex::new(Ring::default()),
            open: AtomicUsize::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            capacity: self.capacity.load(Ordering::Relaxed),
            open: self.open.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Puts a slot that just got its file into the ring, closing others while
    /// more than the capacity are open. The caller holds no slot lock; a slot
    /// busy in another thread is skipped (`try_lock`), so this never waits on one.
    fn admit(&self, slot: &Arc<Slot>) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.slots.push(Arc::downgrade(slot));
        let capacity = self.capacity.load(Ordering::Relaxed);
        // Two full turns at most: the first clears the `used` bits.
        let mut budget = ring.slots.len() * 2 + 1;
        while (self.open.load(Ordering::Relaxed) > capacity || ring.slots.len() > capacity * 2) && budget > 0 && !ring.slots.is_empty() {
            budget -= 1;
            if ring.hand >= ring.slots.len() {
                ring.hand = 0;
            }
            let at = ring.hand;
            let Some(s) = ring.slots[at].upgrade() else {
                ring.slots.swap_remove(at);
                continue;
            };
            if s.used.swap(false, Ordering::Relaxed) {
                ring.hand += 1;
                continue;
            }
            let closed = match s.file.try_lock() {
                Ok(mut f) => f.take().is_some(),
                Err(_) => {
                    ring.hand += 1;
                    continue;
                }
            };
            if closed {
                self.open.fetch_sub(1, Ordering::Relaxed);
            }
            ring.slots.swap_remove(at);
        }
    }
}

/// A segment's `.log` file: its path, and its descriptor while cached.
#[derive(Debug, Clone)]
pub struct LogFile {
    slot: Arc<Slot>,
}

impl LogFile {
    /// Creates (or truncates) the file and caches it.
    pub fn create(path: &Path) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(path)?;
        Ok(Self::cached(path, file))
    }

    /// Opens an existing file and caches it. Returns it with its length.
    pub fn open(path: &Path) -> io::Result<(LogFile, u64)> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        Ok((Self::cached(path, file), len))
    }

    fn cached(path: &Path, file: File) -> LogFile {
        let slot = Arc::new(Slot { path: path.to_path_buf(), file: Mutex::new(Some(Arc::new(file))), used: AtomicBool::new(true) });
        CACHE.open.fetch_add(1, Ordering::Relaxed);
        CACHE.admit(&slot);
        LogFile { slot }
    }

    pub fn path(&self) -> &Path {
        &self.slot.path
    }

    /// The open file, reopened if the cache closed it.
    pub fn get(&self) -> io::Result<Arc<File>> {
        {
            let f = self.slot.file.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(f) = f.as_ref() {
                self.slot.used.store(true, Ordering::Relaxed);
                CACHE.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(f.clone());
            }
        }
        CACHE.misses.fetch_add(1, Ordering::Relaxed);
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(&self.slot.path)?);
        {
            let mut f = self.slot.file.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(other) = f.as_ref() {
                // Another thread reopened it meanwhile.
                return Ok(other.clone());
            }
            *f = Some(file.clone());
            self.slot.used.store(true, Ordering::Relaxed);
        }
        CACHE.open.fetch_add(1, Ordering::Relaxed);
        CACHE.admit(&self.slot);
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn reopens_after_eviction_and_stays_within_capacity() {
        let dir = tempfile::tempdir().unwrap();
        set_capacity(16);
        let files: Vec<LogFile> = (0..100)
            .map(|i| {
                let f = LogFile::create(&dir.path().join(format!("{i}.log"))).unwrap();
                f.get().unwrap().write_all_at(format!("file {i}").as_bytes(), 0).unwrap();
                f
            })
            .collect();
        assert!(stats().open <= 16 + 1, "{:?}", stats());
        for (i, f) in files.iter().enumerate() {
            let mut buf = vec![0u8; format!("file {i}").len()];
            f.get().unwrap().read_exact_at(&mut buf, 0).unwrap();
            assert_eq!(buf, format!("file {i}").as_bytes());
        }
        assert!(stats().open <= 16 + 1, "{:?}", stats());
        assert!(stats().misses > 0);
        drop(files);
        set_capacity(DEFAULT_CAPACITY);
    }
}
