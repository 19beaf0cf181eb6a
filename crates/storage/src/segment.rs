//! One segment of a partition log: `<base>.log`, `<base>.index`, `<base>.timeindex`.
//!
//! - `.log` holds v2 record batches exactly as stored (offsets patched in place).
//! - `.index` is sparse: 8-byte entries `(relative offset: u32, position: u32)`,
//!   one per `index.interval.bytes` of log, each pointing at a batch start. The
//!   relative offset is the batch's base offset minus the segment's base offset.
//! - `.timeindex` is sparse too: 12-byte entries `(max timestamp so far: i64,
//!   relative offset: u32)`, written when the segment's max timestamp grows at an
//!   index point. Every batch before the entry's batch has a smaller-or-equal max
//!   timestamp, so a search can start at the last entry below its target.
//!
//! - `.txnindex` (only once a transaction was aborted in the segment) lists the
//!   aborted transactions whose ABORT marker lies in this segment, 34-byte
//!   entries as in Kafka's `TransactionIndex`: `(version: i16 = 0, producer id:
//!   i64, first offset: i64, last offset (the marker): i64, last stable offset
//!   after the marker: i64)`, in marker order.
//!
//! The indexes live in memory. Their files are written only when the segment
//! rolls, is flushed whole (shutdown) or copied ([`Segment::persist_indexes`]),
//! so an idle segment holds no descriptor for them; the `.log` is opened
//! through the bounded descriptor cache ([`crate::files`]). The indexes are a
//! cache of the `.log`: recovery rebuilds them from it (the transaction index
//! by replaying producer state, see [`crate::producers`]), and a segment whose
//! index files are missing or short is re-indexed from its batch headers.
//!
//! Thread safety: a `Segment` is owned by its `Log`'s mutex; the `.log` file
//! handle is shared (`Arc<File>`) so reads (`pread`) happen outside that mutex.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use strom_protocol::batch::{BatchView, ATTR_CONTROL, HEADER_LEN, LOG_OVERHEAD};

use crate::files::LogFile;
use crate::producers::{AbortedTxn, TxnIndexEntry, CONTROL_PREFIX};

pub const INDEX_ENTRY: usize = 8;
pub const TIME_ENTRY: usize = 12;
pub const TXN_ENTRY: usize = 34;
/// Every file a segment may have, the `.log` first: a segment exists for
/// `open` as long as its `.log` does.
pub const EXTENSIONS: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

pub fn file_name(base: i64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub log: LogFile,
    pub size: u64,
    /// (relative offset, position)
    pub index: Vec<(u32, u32)>,
    /// (max timestamp so far, relative offset)
    pub time_index: Vec<(i64, u32)>,
    bytes_since_index: usize,
    pub max_timestamp: i64,
    /// Offset after the last batch in this segment.
    pub next_offset: i64,
    /// Wall-clock ms when the segment was created or loaded (for `segment.ms`).
    pub created_ms: i64,
    /// The transaction index: aborted transactions whose marker is here.
    pub aborted: Vec<TxnIndexEntry>,
    txn_path: PathBuf,
    /// Entries of `index` and `time_index` already in their files.
    index_written: usize,
    time_written: usize,
    /// The files may hold more entries than memory (a truncation, a rebuild,
    /// a new segment over stale files): the next persist cuts them.
    index_cut: bool,
}

impl Segment {
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        Self::open_files(dir, base_offset, now_ms, true)
    }

    /// Opens an existing segment and loads its indexes from their files without
    /// reading the log, except for the tail after the last index entry (to learn
    /// the next offset). Falls back to a full rebuild if the indexes look wrong.
    pub fn open_trusted(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let mut seg = Self::open_files(dir, base_offset, now_ms, false)?;
        let index_ok = seg.load_indexes()?;
        if !index_ok {
            tracing::info!(segment = %seg.log.path().display(), "index missing or inconsistent, rebuilding");
            seg.rebuild(false)?;
            return Ok(seg);
        }
        // Walk batch headers from the last index point to find the end.
        let start = seg.index.last().map(|&(_, p)| p as u64).unwrap_or(0);
        let (end, next, max_ts, _) = seg.scan(start, false, |_, _| {})?;
        if end != seg.size {
            // A torn tail despite a clean marker: treat like recovery.
            seg.truncate_to(end)?;
        }
        seg.next_offset = next.max(seg.base_offset);
        seg.max_timestamp = seg.max_timestamp.max(max_ts);
        Ok(seg)
    }

    /// Opens an existing segment and rebuilds everything by scanning the log,
    /// checking each batch's CRC and truncating at the first bad or torn batch.
    /// Returns the segment and whether it was truncated.
    pub fn open_recover(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<(Segment, bool)> {
        let mut seg = Self::open_files(dir, base_offset, now_ms, false)?;
        let truncated = seg.rebuild(true)?;
        Ok((seg, truncated))
    }

    /// Opens a segment's `.log`: an existing one, or (`create`) a new, empty
    /// one. Its index files are read later ([`Segment::load_indexes`]) and
    /// written only by [`Segment::persist_indexes`].
    fn open_files(dir: &Path, base_offset: i64, now_ms: i64, create: bool) -> io::Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let (log, size) = if create { (LogFile::create(&log_path)?, 0) } else { LogFile::open(&log_path)? };
        let txn_path = dir.join(file_name(base_offset, "txnindex"));
        let aborted = if create {
            match std::fs::remove_file(&txn_path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => Vec::new(),
            }
        } else {
            load_txn_index(&txn_path)?
        };
        Ok(Segment {
            base_offset,
            log,
            size,
            index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            max_timestamp: -1,
            next_offset: base_offset,
            created_ms: now_ms,
            aborted,
            txn_path,
            index_written: 0,
            time_written: 0,
            index_cut: create,
        })
    }

    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Loads the index files. `false` if they are missing (while the log is
    /// not empty) or inconsistent: the caller rebuilds them.
    fn load_indexes(&mut self) -> io::Result<bool> {
        let Some(raw) = read_path(&self.index_path())? else {
            return Ok(self.size == 0);
        };
        let mut last: Option<(u32, u32)> = None;
        for e in raw.chunks_exact(INDEX_ENTRY) {
            let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if pos as u64 >= self.size || last.is_some_and(|(r, p)| rel <= r || pos <= p) {
                return Ok(false);
            }
            last = Some((rel, pos));
            self.index.push((rel, pos));
        }
        if raw.len() % INDEX_ENTRY != 0 {
            self.index_cut = true;
        }
        let raw = read_path(&self.time_path())?.unwrap_or_default();
        if raw.len() % TIME_ENTRY != 0 {
            self.index_cut = true;
        }
        for e in raw.chunks_exact(TIME_ENTRY) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            self.time_index.push((ts, rel));
            self.max_timestamp = self.max_timestamp.max(ts);
        }
        self.index_written = self.index.len();
        self.time_written = self.time_index.len();
        Ok(true)
    }

    fn index_path(&self) -> PathBuf {
        self.log.path().with_extension("index")
    }

    fn time_path(&self) -> PathBuf {
        self.log.path().with_extension("timeindex")
    }

    /// Whether memory holds index entries (or a cut) the files lack.
    pub fn indexes_dirty(&self) -> bool {
        self.index_cut || self.index_written != self.index.len() || self.time_written != self.time_index.len()
    }

    /// Writes the index entries the files lack (and cuts entries they should
    /// no longer have). Returns the files written, for the caller to fsync;
    /// none if nothing changed. Each file is opened only for this.
    pub fn persist_indexes(&mut self) -> io::Result<Vec<PathBuf>> {
        if !self.indexes_dirty() {
            return Ok(Vec::new());
        }
        let (index_path, time_path) = (self.index_path(), self.time_path());
        let mut written = Vec::with_capacity(2);
        if write_tail(&index_path, &self.index_bytes(), self.index_written * INDEX_ENTRY, self.index_cut)? {
            written.push(index_path);
        }
        if write_tail(&time_path, &self.time_bytes(), self.time_written * TIME_ENTRY, self.index_cut)? {
            written.push(time_path);
        }
        self.index_written = self.index.len();
        self.time_written = self.time_index.len();
        self.index_cut = false;
        Ok(written)
    }

    fn index_bytes(&self) -> Vec<u8> {
        self.index.iter().flat_map(|&(rel, pos)| rel.to_be_bytes().into_iter().chain(pos.to_be_bytes())).collect()
    }

    fn time_bytes(&self) -> Vec<u8> {
        self.time_index.iter().flat_map(|&(ts, rel)| ts.to_be_bytes().into_iter().chain(rel.to_be_bytes())).collect()
    }

    /// Writes this segment's complete index files into `dir` (a copy of the
    /// log being made there). Returns their paths.
    pub fn write_indexes_to(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let paths = [dir.join(file_name(self.base_offset, "index")), dir.join(file_name(self.base_offset, "timeindex"))];
        std::fs::write(&paths[0], self.index_bytes())?;
        std::fs::write(&paths[1], self.time_bytes())?;
        Ok(paths.into())
    }

    /// Scans batches from `start`. Returns (end position of the last good batch,
    /// next offset, max timestamp, whether a bad batch stopped the scan).
    /// `on_batch(position, view)` sees each good batch.
    fn scan(&self, start: u64, check_crc: bool, mut on_batch: impl FnMut(u64, &BatchView<'_>)) -> io::Result<(u64, i64, i64, bool)> {
        const CHUNK: usize = 1 << 20;
        let mut pos = start;
        let mut next = self.base_offset;
        let mut max_ts = -1;
        let mut buf = Vec::new();
        let mut last_offset = self.base_offset - 1;
        let file = self.log.get()?;
        while pos < self.size {
            let want = ((self.size - pos) as usize).min(CHUNK);
            buf.resize(want, 0);
            file.read_exact_at(&mut buf, pos)?;
            let mut at = 0usize;
            loop {
                let rest = &buf[at..];
                if rest.len() < LOG_OVERHEAD {
                    break;
                }
                let len = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < 49 {
                    return Ok((pos + at as u64, next, max_ts, true));
                }
                let total = LOG_OVERHEAD + len as usize;
                if total > rest.len() {
                    if at == 0 {
                        // A single batch larger than the chunk: read it whole.
                        if pos + total as u64 > self.size {
                            return Ok((pos, next, max_ts, true));
                        }
                        buf.resize(total, 0);
                        file.read_exact_at(&mut buf, pos)?;
                        continue;
                    }
                    break;
                }
                let view = match BatchView::parse(rest) {
                    Ok(v) => v,
                    Err(_) => return Ok((pos + at as u64, next, max_ts, true)),
                };
                let bad_crc = check_crc && view.crc() != view.computed_crc();
                if bad_crc || view.magic() != 2 || view.base_offset() <= last_offset {
                    return Ok((pos + at as u64, next, max_ts, true));
                }
                on_batch(pos + at as u64, &view);
                last_offset = view.last_offset();
                next = view.last_offset() + 1;
                max_ts = max_ts.max(view.max_timestamp());
                at += total;
            }
            if at == 0 {
                break;
            }
            pos += at as u64;
        }
        Ok((pos, next, max_ts, pos < self.size))
    }

    /// Rebuilds the indexes from the log. With `check_crc`, truncates at the first
    /// invalid batch. Returns whether anything was truncated.
    fn rebuild(&mut self, check_crc: bool) -> io::Result<bool> {
        let mut entries = Vec::new();
        let (end, next, _, _) = self.scan(0, check_crc, |pos, v| entries.push((pos, v.base_offset(), v.max_timestamp(), v.total_len())))?;
        let truncated = end != self.size;
        if truncated {
            self.truncate_to(end)?;
        }
        self.index.clear();
        self.time_index.clear();
        self.index_written = 0;
        self.time_written = 0;
        self.index_cut = true;
        self.bytes_since_index = usize::MAX;
        self.max_timestamp = -1;
        for (pos, base, max_ts, len) in entries {
            self.note_batch(pos, base, max_ts, len, 4096);
        }
        self.next_offset = next.max(self.base_offset);
        Ok(truncated)
    }

    fn truncate_to(&mut self, end: u64) -> io::Result<()> {
        tracing::warn!(segment = %self.log.path().display(), from = self.size, to = end, "truncating torn or invalid tail");
        self.log.get()?.set_len(end)?;
        self.size = end;
        Ok(())
    }

    /// Records a batch written at `pos` in the sparse indexes (in memory). A
    /// time entry holds the max timestamp over every batch up to and including
    /// this one, so a search for `t` may start at the last entry below `t`.
    pub fn note_batch(&mut self, pos: u64, base: i64, max_ts: i64, len: usize, interval: usize) {
        let rel = (base - self.base_offset) as u32;
        let running_max = self.max_timestamp.max(max_ts);
        if self.bytes_since_index >= interval || self.index.is_empty() {
            self.index.push((rel, pos as u32));
            self.bytes_since_index = 0;
            if self.time_index.last().is_none_or(|&(t, _)| running_max > t) {
                self.time_index.push((running_max, rel));
            }
        }
        self.bytes_since_index = self.bytes_since_index.saturating_add(len);
        self.max_timestamp = running_max;
    }

    /// Appends already-validated, offset-patched batches. `batches` lists
    /// (position within `data`, base offset, max timestamp, length).
    ///
    /// All or nothing: if a write fails (a full disk, say), the segment's state is
    /// as before the call, and the next append writes over whatever part landed.
    /// `heads[i]` replaces the first bytes of batch `i` (its patched offsets), so
    /// the caller never copies `data` to patch it.
    pub fn append(
        &mut self,
        data: &[u8],
        heads: &[[u8; crate::log::PATCHED_HEAD]],
        batches: &[(usize, i64, i64, usize)],
        next_offset: i64,
        interval: usize,
    ) -> io::Result<()> {
        self.append_with(data, Some(heads), batches, next_offset, interval)
    }

    /// Appends batches exactly as given (a follower's copy of the leader's
    /// batches), in one write. Same contract as [`Segment::append`].
    pub fn append_raw(&mut self, data: &[u8], batches: &[(usize, i64, i64, usize)], next_offset: i64, interval: usize) -> io::Result<()> {
        self.append_with(data, None, batches, next_offset, interval)
    }

    fn append_with(
        &mut self,
        data: &[u8],
        heads: Option<&[[u8; crate::log::PATCHED_HEAD]]>,
        batches: &[(usize, i64, i64, usize)],
        next_offset: i64,
        interval: usize,
    ) -> io::Result<()> {
        let start = self.size;
        let before = (self.index.len(), self.time_index.len(), self.bytes_since_index, self.max_timestamp);
        let write = |file: &File| -> io::Result<()> {
            let Some(heads) = heads else {
                return file.write_all_at(data, start);
            };
            for (head, &(at, _, _, len)) in heads.iter().zip(batches) {
                file.write_all_at(head, start + at as u64)?;
                file.write_all_at(&data[at + head.len()..at + len], start + (at + head.len()) as u64)?;
            }
            Ok(())
        };
        if let Err(e) = self.log.get().and_then(|f| write(&f)) {
            self.size = start;
            self.index.truncate(before.0);
            self.time_index.truncate(before.1);
            self.bytes_since_index = before.2;
            self.max_timestamp = before.3;
            return Err(e);
        }
        self.size += data.len() as u64;
        for &(at, base, ts, len) in batches {
            self.note_batch(start + at as u64, base, ts, len, interval);
        }
        self.next_offset = next_offset;
        Ok(())
    }

    /// The position of the last indexed batch at or before `offset`.
    pub fn lookup(&self, offset: i64) -> u64 {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        match self.index.partition_point(|&(r, _)| r <= rel) {
            0 => 0,
            i => self.index[i - 1].1 as u64,
        }
    }

    /// The position to start searching for the first batch with a timestamp >= ts.
    pub fn lookup_time(&self, ts: i64) -> u64 {
        match self.time_index.partition_point(|&(t, _)| t < ts) {
            0 => 0,
            i => self.lookup(self.base_offset + self.time_index[i - 1].1 as i64),
        }
    }

    /// The header of the batch at `pos` in `file` (this segment's), or `None`
    /// at the end of the segment.
    fn head_at(&self, file: &File, pos: u64) -> io::Result<Option<Head>> {
        if pos >= self.size {
            return Ok(None);
        }
        if pos + HEADER_LEN as u64 > self.size {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: partial batch at {pos}", self.log.path().display())));
        }
        let mut h = [0u8; HEADER_LEN];
        file.read_exact_at(&mut h, pos)?;
        let v = parse_head(&h);
        let total = v.total as u64;
        if v.len < (HEADER_LEN - LOG_OVERHEAD) as i32 || pos + total > self.size {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: bad batch length at {pos}", self.log.path().display())));
        }
        Ok(Some(v))
    }

    /// Calls `f(base offset, partition leader epoch)` for each batch, reading
    /// only headers.
    pub fn for_each_batch_head(&self, mut f: impl FnMut(i64, i32)) -> io::Result<()> {
        let file = self.log.get()?;
        let mut pos = 0;
        while let Some(h) = self.head_at(&file, pos)? {
            f(h.base, h.epoch);
            pos += h.total as u64;
        }
        Ok(())
    }

    /// Removes every batch at or after `offset`, including the one holding
    /// `offset`, from the log file and both indexes. Returns the segment's new
    /// next offset: `offset`, or the base offset of the batch that held it.
    pub fn truncate_at_offset(&mut self, offset: i64) -> io::Result<i64> {
        let file = self.log.get()?;
        let mut pos = self.lookup(offset);
        let mut next = offset;
        while let Some(h) = self.head_at(&file, pos)? {
            if h.base + h.delta as i64 >= offset {
                next = next.min(h.base);
                break;
            }
            pos += h.total as u64;
        }
        file.set_len(pos)?;
        self.size = pos;
        let keep = self.index.partition_point(|&(_, p)| (p as u64) < pos);
        self.index.truncate(keep);
        let base = self.base_offset;
        let keep_time = self.time_index.partition_point(|&(_, rel)| base + (rel as i64) < next);
        self.time_index.truncate(keep_time);
        if keep < self.index_written || keep_time < self.time_written {
            self.index_written = self.index_written.min(keep);
            self.time_written = self.time_written.min(keep_time);
            self.index_cut = true;
        }
        // The last time entry holds the running max up to the last index point;
        // the batches from that point on may raise it.
        let mut max_ts = self.time_index.last().map(|&(t, _)| t).unwrap_or(-1);
        let from = self.index.last().map(|&(_, p)| p as u64).unwrap_or(0);
        let mut at = from;
        while at < pos {
            let Some(h) = self.head_at(&file, at)? else { break };
            max_ts = max_ts.max(h.max_ts);
            at += h.total as u64;
        }
        self.max_timestamp = max_ts;
        self.bytes_since_index = if self.index.is_empty() { 0 } else { (pos - from) as usize };
        self.next_offset = next.max(self.base_offset);
        self.truncate_aborted(self.next_offset)?;
        Ok(self.next_offset)
    }

    /// Calls `f` with the bytes of each batch from position `pos` on whose
    /// last offset is at or after `from`: its header, plus (control batches
    /// only) the start of its records, enough to read a transaction marker.
    /// Reads no data records.
    pub fn for_each_batch_from(&self, pos: u64, from: i64, mut f: impl FnMut(&[u8])) -> io::Result<()> {
        if pos >= self.size {
            return Ok(());
        }
        let file = self.log.get()?;
        let mut pos = pos;
        let mut buf = [0u8; HEADER_LEN + CONTROL_PREFIX];
        while let Some(h) = self.head_at(&file, pos)? {
            if h.base + h.delta as i64 >= from {
                let extra = if h.attributes & ATTR_CONTROL != 0 { (h.total - HEADER_LEN).min(CONTROL_PREFIX) } else { 0 };
                file.read_exact_at(&mut buf[..HEADER_LEN + extra], pos)?;
                f(&buf[..HEADER_LEN + extra]);
            }
            pos += h.total as u64;
        }
        Ok(())
    }

    /// Adds an aborted transaction to the transaction index (in memory and in
    /// `.txnindex`). Returns what the caller must fsync with the log: the
    /// file, and the directory if the file is new.
    pub fn append_aborted(&mut self, entry: TxnIndexEntry) -> io::Result<Vec<PathBuf>> {
        let mut to_sync = Vec::with_capacity(2);
        if self.aborted.is_empty() {
            if let Some(dir) = self.txn_path.parent() {
                to_sync.push(dir.to_path_buf());
            }
        }
        let file = open_rw(&self.txn_path, false)?;
        let mut e = [0u8; TXN_ENTRY];
        e[2..10].copy_from_slice(&entry.txn.producer_id.to_be_bytes());
        e[10..18].copy_from_slice(&entry.txn.first_offset.to_be_bytes());
        e[18..26].copy_from_slice(&entry.txn.last_offset.to_be_bytes());
        e[26..34].copy_from_slice(&entry.last_stable_offset.to_be_bytes());
        file.write_all_at(&e, (self.aborted.len() * TXN_ENTRY) as u64)?;
        to_sync.push(self.txn_path.clone());
        self.aborted.push(entry);
        Ok(to_sync)
    }

    /// Drops transaction-index entries whose marker is at or after `offset`.
    pub fn truncate_aborted(&mut self, offset: i64) -> io::Result<()> {
        let keep = self.aborted.partition_point(|e| e.txn.last_offset < offset);
        if keep == self.aborted.len() {
            return Ok(());
        }
        self.aborted.truncate(keep);
        open_rw(&self.txn_path, false)?.set_len((keep * TXN_ENTRY) as u64)
    }
}

/// Loads a `.txnindex` file's entries (a torn last entry is ignored); none
/// if there is no file.
fn load_txn_index(path: &Path) -> io::Result<Vec<TxnIndexEntry>> {
    let Some(raw) = read_path(path)? else {
        return Ok(Vec::new());
    };
    let i64_at = |e: &[u8], at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&e[at..at + 8]);
        i64::from_be_bytes(b)
    };
    let entries = raw
        .chunks_exact(TXN_ENTRY)
        .map(|e| TxnIndexEntry {
            txn: AbortedTxn { producer_id: i64_at(e, 2), first_offset: i64_at(e, 10), last_offset: i64_at(e, 18) },
            last_stable_offset: i64_at(e, 26),
        })
        .collect();
    Ok(entries)
}

/// The fields of a batch header the segment needs.
struct Head {
    base: i64,
    len: i32,
    total: usize,
    epoch: i32,
    delta: i32,
    max_ts: i64,
    attributes: i16,
}

fn parse_head(h: &[u8; HEADER_LEN]) -> Head {
    let i32_at = |at: usize| i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let i64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        i64::from_be_bytes(b)
    };
    let len = i32_at(8);
    let attributes = i16::from_be_bytes([h[21], h[22]]);
    Head {
        base: i64_at(0),
        len,
        total: LOG_OVERHEAD + len.max(0) as usize,
        epoch: i32_at(12),
        delta: i32_at(23),
        max_ts: i64_at(35),
        attributes,
    }
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new().create(true).truncate(truncate).read(true).write(true).open(path)
}

/// A whole file, or `None` if it does not exist.
fn read_path(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes the file at `path` (created if missing) hold exactly `all`, of
/// which the first `written` bytes are already there unless the file is
/// shorter; with `cut`, the file may hold more and is cut to `all`. An empty
/// index needs no file: a missing one is left missing. Returns whether the
/// file was written (to be fsynced).
fn write_tail(path: &Path, all: &[u8], written: usize, cut: bool) -> io::Result<bool> {
    if all.is_empty() {
        return match std::fs::remove_file(path) {
            Ok(()) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        };
    }
    let f = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let len = f.metadata()?.len() as usize;
    let from = if len >= written { written.min(all.len()) } else { 0 };
    f.write_all_at(&all[from..], from as u64)?;
    if cut || len > all.len() {
        f.set_len(all.len() as u64)?;
    }
    Ok(true)
}
