//! The leader-epoch cache of a partition log: for each leader epoch, the first
//! offset written in it, as in Kafka's `LeaderEpochFileCache`.
//!
//! Followers use it to find where their log diverges from the leader's
//! (OffsetsForLeaderEpoch): the end offset of epoch `e` is the start offset of
//! the first epoch after `e`, or the log end offset for the latest epoch.
//!
//! Persisted as `leader-epoch-checkpoint` in the partition directory, in Kafka's
//! text format: a version line (`0`), a count line, then `epoch startOffset`
//! lines in ascending order. Written atomically (temp file, fsync, rename, fsync
//! of the directory).
//!
//! Invariants: epochs strictly increase and start offsets strictly increase.

use std::io;
use std::path::{Path, PathBuf};

/// The checkpoint file's name in the partition directory.
pub const CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_OFFSET: i64 = -1;

/// (epoch, start offset) pairs, ascending, with their checkpoint file.
#[derive(Debug, Clone)]
pub struct EpochCache {
    dir: PathBuf,
    entries: Vec<(i32, i64)>,
    /// What the checkpoint file holds, when known: a persist that would
    /// write the same is skipped.
    on_disk: Option<Vec<(i32, i64)>>,
}

impl EpochCache {
    /// An empty cache for the log in `dir` (nothing is written).
    pub fn new(dir: &Path) -> EpochCache {
        EpochCache { dir: dir.to_path_buf(), entries: Vec::new(), on_disk: None }
    }

    /// Reads `dir`'s checkpoint. `Ok(None)` if there is none; an `InvalidData`
    /// error if it is malformed or not monotonic.
    pub fn load(dir: &Path) -> io::Result<Option<EpochCache>> {
        let text = match std::fs::read_to_string(dir.join(CHECKPOINT)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let entries = parse(&text).map_err(|m| io::Error::new(io::ErrorKind::InvalidData, format!("{CHECKPOINT}: {m}")))?;
        Ok(Some(EpochCache { dir: dir.to_path_buf(), on_disk: Some(entries.clone()), entries }))
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start` (Kafka's `assign`). Nothing changes
    /// if `epoch` is already the latest one with a start at or before `start`.
    /// Otherwise trailing entries that the new one would make non-monotonic
    /// (epoch at or above `epoch`, or start at or after `start`) are dropped
    /// first. Negative epochs and offsets are ignored. Returns whether the cache
    /// changed.
    pub fn assign(&mut self, epoch: i32, start: i64) -> bool {
        if epoch < 0 || start < 0 {
            return false;
        }
        if let Some(&(e, s)) = self.entries.last() {
            if e == epoch && s <= start {
                return false;
            }
        }
        while self.entries.last().is_some_and(|&(e, s)| e >= epoch || s >= start) {
            self.entries.pop();
        }
        self.entries.push((epoch, start));
        true
    }

    /// Kafka's `endOffsetFor`: (epoch, end offset) for a requested epoch, where
    /// `log_end` is the log end offset.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        let Some(&(latest, _)) = self.entries.last() else {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        };
        if requested < 0 || requested > latest {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        }
        if requested == latest {
            return (latest, log_end);
        }
        // `requested < latest`, so some entry has a higher epoch.
        let i = self.entries.partition_point(|&(e, _)| e <= requested);
        let higher_start = self.entries.get(i).map(|e| e.1).unwrap_or(log_end);
        match i.checked_sub(1).and_then(|j| self.entries.get(j)) {
            None => (requested, higher_start),
            Some(&(floor, _)) => (floor, higher_start),
        }
    }

    /// Drops entries starting at or after `end` (after the log is truncated to
    /// `end`). Returns whether the cache changed.
    pub fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        while self.entries.last().is_some_and(|&(_, s)| s >= end) {
            self.entries.pop();
        }
        self.entries.len() != before
    }

    /// After the log start moves up to `start`: entries starting at or before it
    /// collapse into one, the latest of them, now starting at `start` (Kafka's
    /// `truncateFromStart`). Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start: i64) -> bool {
        let n = self.entries.partition_point(|&(_, s)| s <= start);
        if n == 0 {
            return false;
        }
        let epoch = self.entries[n - 1].0;
        if n == 1 && self.entries[0].1 == start {
            return false;
        }
        self.entries.drain(..n);
        self.entries.insert(0, (epoch, start));
        true
    }

    /// Empties the cache. Returns whether it changed.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Whether the checkpoint file holds exactly these entries.
    pub fn is_persisted(&self) -> bool {
        self.on_disk.as_ref() == Some(&self.entries)
    }

    /// Writes the checkpoint file atomically, unless it already holds these
    /// entries.
    pub fn persist(&mut self) -> io::Result<()> {
        if self.is_persisted() {
            return Ok(());
        }
        self.on_disk = None;
        crate::write_atomically(&self.dir, CHECKPOINT, self.text().as_bytes())?;
        self.on_disk = Some(self.entries.clone());
        Ok(())
    }

    /// Writes these entries as the checkpoint of a copy of the log in `dir`.
    pub fn write_copy(&self, dir: &Path) -> io::Result<PathBuf> {
        let path = dir.join(CHECKPOINT);
        std::fs::write(&path, self.text())?;
        Ok(path)
    }

    fn text(&self) -> String {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (e, s) in &self.entries {
            text.push_str(&format!("{e} {s}\n"));
        }
        text
    }
}

fn parse(text: &str) -> Result<Vec<(i32, i64)>, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("0") => {}
        other => return Err(format!("unsupported version {other:?}")),
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or("bad entry count")?;
    let mut entries: Vec<(i32, i64)> = Vec::with_capacity(count.min(1 << 16));
    for line in lines.by_ref().take(count) {
        let mut parts = line.split_whitespace();
        let (Some(e), Some(s), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("bad line {line:?}"));
        };
        let (Ok(e), Ok(s)) = (e.parse::<i32>(), s.parse::<i64>()) else {
            return Err(format!("bad line {line:?}"));
        };
        if e < 0 || s < 0 || entries.last().is_some_and(|&(pe, ps)| e <= pe || s <= ps) {
            return Err(format!("entry {e} {s} is not after the previous one"));
        }
        entries.push((e, s));
    }
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("trailing lines".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::new(Path::new("/nonexistent"));
        for &(e, s) in entries {
            assert!(c.assign(e, s));
        }
        c
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let empty = cache(&[]);
        assert_eq!(empty.end_offset_for(0, 10), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        let c = cache(&[(2, 5), (4, 12), (7, 20)]);
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(7, 30), (7, 30));
        // Unknown future epochs and UNDEFINED_EPOCH.
        assert_eq!(c.end_offset_for(8, 30), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        assert_eq!(c.end_offset_for(-1, 30), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        // Known epochs end where the next one starts.
        assert_eq!(c.end_offset_for(2, 30), (2, 12));
        assert_eq!(c.end_offset_for(4, 30), (4, 20));
        // An epoch the cache never saw maps to the largest one below it.
        assert_eq!(c.end_offset_for(3, 30), (2, 12));
        assert_eq!(c.end_offset_for(6, 30), (4, 20));
        // Below the first epoch: the requested epoch, ending at the first start.
        assert_eq!(c.end_offset_for(1, 30), (1, 5));
        assert_eq!(c.end_offset_for(0, 30), (0, 5));
    }

    #[test]
    fn assign_keeps_entries_monotonic() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        assert!(!c.assign(3, 15), "same epoch, later start: no change");
        assert!(c.assign(3, 8), "same epoch, earlier start: moves it");
        assert_eq!(c.entries(), &[(1, 0), (3, 8)]);
        assert!(c.assign(5, 8), "a new epoch at the same start replaces the empty one");
        assert_eq!(c.entries(), &[(1, 0), (5, 8)]);
        assert!(c.assign(4, 9), "a lower epoch drops the higher ones");
        assert_eq!(c.entries(), &[(1, 0), (4, 9)]);
        assert!(!c.assign(-1, 20));
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(5));
        assert_eq!(c.entries(), &[(1, 5), (3, 10)]);
        assert!(c.truncate_from_start(12));
        assert_eq!(c.entries(), &[(3, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(c.clear());
        assert!(c.entries().is_empty());
    }

    #[test]
    fn checkpoint_round_trip_and_malformed_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(EpochCache::load(d.path()).unwrap().is_none());
        let mut c = EpochCache::new(d.path());
        c.assign(0, 0);
        c.assign(3, 42);
        c.persist().unwrap();
        let text = std::fs::read_to_string(d.path().join(CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n3 42\n");
        assert_eq!(EpochCache::load(d.path()).unwrap().unwrap().entries(), &[(0, 0), (3, 42)]);
        for bad in ["1\n0\n", "0\n2\n0 0\n", "0\n1\n0\n", "0\n2\n3 4\n2 5\n", "0\n1\n1 1\n2 2\n", ""] {
            std::fs::write(d.path().join(CHECKPOINT), bad).unwrap();
            assert!(EpochCache::load(d.path()).is_err(), "{bad:?}");
        }
    }
}
