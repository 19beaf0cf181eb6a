//! What replication needs from a log, on real files: follower appends that keep
//! the leader's offsets and epochs, truncation, the leader-epoch cache, the high
//! watermark and its checkpoint, reads bounded by it, and sticky failure.

use bytes::Bytes;
use strom_protocol::batch::{patch_offsets, BatchIter};
use strom_protocol::compression::Codec;
use strom_protocol::records::{BatchBuilder, Record};
use strom_storage::epoch::CHECKPOINT;
use strom_storage::{Log, LogConfig, LogManager, StorageError};

/// A batch of `n` records at `base` in leader epoch `epoch`, with timestamp `ts`.
fn batch_at(base: i64, epoch: i32, n: usize, ts: i64) -> Bytes {
    let mut b = BatchBuilder::new(ts);
    for i in 0..n {
        b.push(Record {
            key: Some(format!("k{base}-{i}").into_bytes().into()),
            value: Some(vec![b'v'; 60].into()),
            timestamp: ts,
            ..Default::default()
        });
    }
    let mut v = b.build(Codec::None).unwrap().to_vec();
    patch_offsets(&mut v, base, epoch);
    v.into()
}

fn concat(parts: &[Bytes]) -> Bytes {
    parts.iter().flat_map(|b| b.iter().copied()).collect::<Vec<u8>>().into()
}

/// (base offset, last offset, epoch) of each batch.
fn batches(bytes: &[u8]) -> Vec<(i64, i64, i32)> {
    BatchIter::new(bytes).map(|b| b.unwrap()).map(|b| (b.base_offset(), b.last_offset(), b.leader_epoch())).collect()
}

/// Every byte of the log, batch after batch.
fn all_bytes(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 20).unwrap();
        let Some(last) = batches(&r.records).last().map(|b| b.1) else { break };
        out.extend_from_slice(&r.records);
        next = last + 1;
    }
    out
}

/// Reads at every offset of the log and checks that the first batch returned
/// holds it (or is the next one after a gap), as `expected` lists.
fn check_reads(log: &Log, expected: &[(i64, i64, i32)]) {
    assert_eq!(batches(&all_bytes(log)), expected);
    for o in log.log_start_offset()..log.log_end_offset() {
        let want = expected.iter().find(|b| b.1 >= o).copied();
        let got = batches(&log.read(o, 1).unwrap().records).first().copied();
        assert_eq!(got, want, "read at {o}");
    }
}

fn segment_bases(dir: &std::path::Path) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok()?.strip_suffix(".log")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

fn small_segments() -> LogConfig {
    LogConfig { segment_bytes: 700, index_interval_bytes: 1, ..Default::default() }
}

#[test]
fn replica_append_keeps_the_leaders_bytes() {
    let d = tempfile::tempdir().unwrap();
    let leader = Log::open(&d.path().join("leader"), LogConfig::default(), true, 0, 0).unwrap();
    leader.assign_leader_epoch(3).unwrap();
    for n in [2, 1, 4] {
        leader.append(batch_at(0, 0, n, 1_000)).unwrap();
    }
    leader.assign_leader_epoch(5).unwrap();
    leader.append(batch_at(0, 0, 3, 2_000)).unwrap();
    let shipped = Bytes::from(all_bytes(&leader));
    assert_eq!(batches(&shipped), vec![(0, 1, 3), (2, 2, 3), (3, 6, 3), (7, 9, 5)]);

    let follower = Log::open(&d.path().join("follower"), LogConfig::default(), true, 0, 0).unwrap();
    let info = follower.append_replica(shipped.clone()).unwrap().unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.log_append_time), (0, 9, -1));
    assert_eq!(follower.log_end_offset(), 10);
    assert_eq!(all_bytes(&follower), shipped.to_vec());
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.epoch_entries(), vec![(3, 0), (5, 7)]);
    assert_eq!(follower.latest_epoch(), Some(5));
    // Segment files hold the leader's bytes too.
    assert_eq!(std::fs::read(d.path().join("follower").join(strom_storage::segment::file_name(0, "log"))).unwrap(), shipped.to_vec());
    assert!(follower.append_replica(Bytes::new()).unwrap().is_none());
}

#[test]
fn replica_append_checks_order_and_integrity() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig { max_message_bytes: 100, ..Default::default() }, true, 0, 0).unwrap();
    log.append_replica(concat(&[batch_at(0, 1, 3, 0), batch_at(3, 1, 2, 0)])).unwrap();
    // A gap (the leader compacted) is fine, and max.message.bytes does not apply.
    let info = log.append_replica(batch_at(10, 2, 2, 0)).unwrap().unwrap();
    assert_eq!((info.base_offset, info.last_offset), (10, 11));
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 10)]);
    // Reading inside the gap returns the next batch.
    assert_eq!(batches(&log.read(6, 1).unwrap().records), vec![(10, 11, 2)]);
    // Below the log end, at it within the set, or out of order: refused.
    for bad in [
        batch_at(11, 2, 1, 0),
        batch_at(5, 2, 1, 0),
        concat(&[batch_at(12, 2, 2, 0), batch_at(13, 2, 1, 0)]),
        concat(&[batch_at(14, 2, 1, 0), batch_at(12, 2, 1, 0)]),
    ] {
        assert!(matches!(log.append_replica(bad), Err(StorageError::Corrupt(_))));
    }
    // A bad CRC or a partial first batch is refused; a trailing partial one is left out.
    let mut corrupt = batch_at(12, 2, 1, 0).to_vec();
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    assert!(matches!(log.append_replica(corrupt.into()), Err(StorageError::Corrupt(_))));
    let whole = batch_at(12, 2, 1, 0);
    assert!(matches!(log.append_replica(whole.slice(..whole.len() - 3)), Err(StorageError::Corrupt(_))));
    let next = batch_at(13, 2, 1, 0);
    let info = log.append_replica(concat(&[whole.clone(), next.slice(..20)])).unwrap().unwrap();
    assert_eq!((info.base_offset, info.last_offset), (12, 12));
    assert_eq!(log.log_end_offset(), 13);
    assert!(!log.is_failed());
}

#[test]
fn truncate_inside_a_segment_then_append_again() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { index_interval_bytes: 1, ..Default::default() };
    let log = Log::open(d.path(), cfg.clone(), true, 0, 0).unwrap();
    log.append_replica(concat(&[batch_at(0, 1, 3, 100), batch_at(3, 1, 3, 900), batch_at(6, 2, 3, 300), batch_at(9, 3, 3, 400)])).unwrap();
    log.set_high_watermark(12);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 6), (3, 9)]);
    // At or past the end: nothing happens.
    assert_eq!(log.truncate_to(12).unwrap(), 12);
    assert_eq!(log.truncate_to(50).unwrap(), 12);
    // Inside batch 3..=5: the whole batch goes.
    assert_eq!(log.truncate_to(4).unwrap(), 3);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.high_watermark(), 3);
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    check_reads(&log, &[(0, 2, 1)]);
    // The max timestamp went with its batch.
    assert!(log.find_by_timestamp(500).unwrap().is_none());
    assert_eq!(batches(&log.max_timestamp_batch().unwrap().unwrap()), vec![(0, 2, 1)]);
    // Appends continue from the new end; indexes find the new batches.
    log.append_replica(concat(&[batch_at(3, 4, 2, 200), batch_at(5, 4, 5, 250)])).unwrap();
    log.assign_leader_epoch(6).unwrap();
    log.append(batch_at(0, 0, 2, 260)).unwrap();
    let expected = [(0, 2, 1), (3, 4, 4), (5, 9, 4), (10, 11, 6)];
    check_reads(&log, &expected);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (4, 3), (6, 10)]);
    assert_eq!(batches(&log.find_by_timestamp(201).unwrap().unwrap()), vec![(5, 9, 4)]);
    // Exactly at a batch boundary.
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    check_reads(&log, &[(0, 2, 1), (3, 4, 4)]);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (4, 3)]);
    drop(log);
    // Both a trusted and a recovering reopen see the truncated log.
    for clean in [true, false] {
        let log = Log::open(d.path(), cfg.clone(), clean, 0, 0).unwrap();
        check_reads(&log, &[(0, 2, 1), (3, 4, 4)]);
        assert_eq!(log.epoch_entries(), vec![(1, 0), (4, 3)]);
    }
}

#[test]
fn truncate_at_a_segment_boundary_and_across_segments() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), small_segments(), true, 0, 0).unwrap();
    let mut expected = Vec::new();
    for i in 0..20i64 {
        let epoch = 1 + (i / 5) as i32;
        log.append_replica(batch_at(i * 2, epoch, 2, 1_000 + i)).unwrap();
        expected.push((i * 2, i * 2 + 1, epoch));
    }
    let bases = segment_bases(d.path());
    assert!(bases.len() >= 5, "expected several segments, got {bases:?}");
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 10), (3, 20), (4, 30)]);
    // At the base of the last-but-one segment: it stays, empty, as the active one.
    let boundary = bases[bases.len() - 2];
    assert_eq!(log.truncate_to(boundary).unwrap(), boundary);
    assert_eq!(segment_bases(d.path()), bases[..bases.len() - 1].to_vec());
    expected.retain(|b| b.0 < boundary);
    check_reads(&log, &expected);
    // Into the second segment, removing several.
    let mid = bases[1] + 1;
    let end = log.truncate_to(mid).unwrap();
    assert!(end <= mid);
    assert_eq!(segment_bases(d.path()), bases[..2].to_vec());
    expected.retain(|b| b.1 < mid);
    assert_eq!(end, expected.last().unwrap().1 + 1);
    check_reads(&log, &expected);
    assert!(log.epoch_entries().iter().all(|e| e.1 < end));
    // Rolling and reading work after the truncation.
    for next in end..end + 12 {
        log.append_replica(batch_at(next, 9, 1, 5_000 + next)).unwrap();
        expected.push((next, next, 9));
    }
    assert!(segment_bases(d.path()).len() > 3);
    check_reads(&log, &expected);
    assert_eq!(log.epoch_entries().last(), Some(&(9, end)));
    drop(log);
    let log = Log::open(d.path(), small_segments(), false, 0, 0).unwrap();
    check_reads(&log, &expected);
}

#[test]
fn truncate_below_the_first_segment_and_fully() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), small_segments(), true, 0, 0).unwrap();
    for i in 0..10i64 {
        log.append_replica(batch_at(i, 1, 1, 0)).unwrap();
    }
    log.set_high_watermark(8);
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset(), log.high_watermark()), (100, 100, 100));
    assert_eq!(log.recovery_point(), 100);
    assert!(log.epoch_entries().is_empty());
    assert_eq!(segment_bases(d.path()), vec![100]);
    assert!(matches!(log.read(50, 100), Err(StorageError::OffsetOutOfRange { .. })));
    assert!(log.read(100, 100).unwrap().records.is_empty());
    assert!(matches!(log.append_replica(batch_at(99, 2, 1, 0)), Err(StorageError::Corrupt(_))));
    log.append_replica(concat(&[batch_at(100, 2, 2, 0), batch_at(102, 2, 1, 0)])).unwrap();
    check_reads(&log, &[(100, 101, 2), (102, 102, 2)]);
    assert_eq!(log.epoch_entries(), vec![(2, 100)]);
    drop(log);
    let log = Log::open(d.path(), small_segments(), false, 0, 0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 103));
    assert_eq!(log.epoch_entries(), vec![(2, 100)]);
    // Truncating below the first segment starts over there.
    assert_eq!(log.truncate_to(40).unwrap(), 40);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    assert!(log.epoch_entries().is_empty());
}

#[test]
fn epoch_cache_assignment_and_persistence() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
    log.assign_leader_epoch(2).unwrap();
    log.assign_leader_epoch(2).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 0)]);
    log.append(batch_at(0, 0, 3, 0)).unwrap();
    // Appends stamp the epoch.
    assert_eq!(batches(&log.read(0, 100).unwrap().records), vec![(0, 2, 2)]);
    log.assign_leader_epoch(4).unwrap();
    log.append(batch_at(0, 0, 2, 0)).unwrap();
    log.assign_leader_epoch(7).unwrap();
    log.append(batch_at(0, 0, 1, 0)).unwrap();
    log.assign_leader_epoch(4).unwrap(); // older: the cache keeps its entries
    assert_eq!(log.epoch_entries(), vec![(2, 0), (4, 3), (7, 5)]);
    assert_eq!(log.latest_epoch(), Some(7));
    assert_eq!(log.end_offset_for_epoch(7), (7, 6));
    assert_eq!(log.end_offset_for_epoch(8), (-1, -1));
    assert_eq!(log.end_offset_for_epoch(4), (4, 5));
    assert_eq!(log.end_offset_for_epoch(5), (4, 5));
    assert_eq!(log.end_offset_for_epoch(2), (2, 3));
    assert_eq!(log.end_offset_for_epoch(1), (1, 0));
    // A new epoch with no data yet ends at the log end.
    log.assign_leader_epoch(9).unwrap();
    assert_eq!(log.end_offset_for_epoch(9), (9, 6));
    assert_eq!(log.end_offset_for_epoch(7), (7, 6));
    drop(log);
    // Epoch 9 has no batch yet: it is not written (every open would cut it).
    let text = std::fs::read_to_string(d.path().join(CHECKPOINT)).unwrap();
    assert_eq!(text, "0\n3\n2 0\n4 3\n7 5\n");
    // Reopened: the empty epoch at the log end is dropped (as Kafka does).
    let log = Log::open(d.path(), LogConfig::default(), false, 0, 0).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 0), (4, 3), (7, 5)]);
    // The leader epoch to stamp restarts from the latest cached one.
    log.append(batch_at(0, 0, 1, 0)).unwrap();
    assert_eq!(batches(&log.read(6, 100).unwrap().records), vec![(6, 6, 7)]);
    drop(log);
    // A log from before the cache existed: rebuilt from batch headers, once.
    std::fs::remove_file(d.path().join(CHECKPOINT)).unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 0), (4, 3), (7, 5)]);
    assert!(d.path().join(CHECKPOINT).exists());
    // A garbled checkpoint is rebuilt too.
    drop(log);
    std::fs::write(d.path().join(CHECKPOINT), "0\n7\n1 2\n").unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 0), (4, 3), (7, 5)]);
    // Truncation drops entries and persists that.
    assert_eq!(log.truncate_to(5).unwrap(), 5);
    assert_eq!(log.epoch_entries(), vec![(2, 0), (4, 3)]);
    drop(log);
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    assert_eq!(log.epoch_entries(), vec![(2, 0), (4, 3)]);
    // An epoch taken as leader without data goes at a no-op truncation (Kafka).
    log.assign_leader_epoch(8).unwrap();
    assert_eq!(log.truncate_to(log.log_end_offset()).unwrap(), 5);
    assert_eq!(log.epoch_entries(), vec![(2, 0), (4, 3)]);
}

#[test]
fn recovery_after_a_crash_cuts_the_epoch_cache() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    log.append_replica(concat(&[batch_at(0, 1, 2, 0), batch_at(2, 3, 2, 0)])).unwrap();
    drop(log);
    // The tail batch (epoch 3) is torn.
    let seg = d.path().join(strom_storage::segment::file_name(0, "log"));
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 5).unwrap();
    let log = Log::open(d.path(), LogConfig::default(), false, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
}

#[test]
fn retention_moves_the_epoch_cache_and_high_watermark_with_the_log_start() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), small_segments(), true, 0, 0).unwrap();
    for i in 0..20i64 {
        log.append_replica(batch_at(i, 1 + (i / 4) as i32, 1, 0)).unwrap();
    }
    log.set_high_watermark(2);
    let start = log.advance_log_start(9).unwrap();
    assert_eq!(start, 9);
    assert_eq!(log.high_watermark(), 9);
    assert_eq!(log.epoch_entries(), vec![(3, 9), (4, 12), (5, 16)]);
}

#[test]
fn high_watermark_is_clamped_and_published() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    assert_eq!(log.high_watermark(), 0);
    let mut rx = log.subscribe_hw();
    log.set_high_watermark(5);
    assert_eq!(log.high_watermark(), 0, "never above the log end");
    assert!(!rx.has_changed().unwrap());
    log.append(batch_at(0, 0, 10, 0)).unwrap();
    log.set_high_watermark(5);
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 5);
    log.set_high_watermark(5);
    assert!(!rx.has_changed().unwrap(), "unchanged: no wake-up");
    log.set_high_watermark(3);
    assert_eq!(log.high_watermark(), 3, "may go down");
    log.set_high_watermark(99);
    assert_eq!(log.high_watermark(), 10);
    log.advance_log_start(4).unwrap();
    log.set_high_watermark(1);
    assert_eq!(log.high_watermark(), 4, "never below the log start");
    // Opening clamps the saved value too.
    drop(log);
    let log = Log::open_with_high_watermark(d.path(), LogConfig::default(), true, 0, 4, 1_000).unwrap();
    assert_eq!(log.high_watermark(), 10);
    drop(log);
    let log = Log::open_with_high_watermark(d.path(), LogConfig::default(), true, 0, 4, 1).unwrap();
    assert_eq!(log.high_watermark(), 4);
}

#[test]
fn high_watermark_checkpoint_round_trip() {
    let d = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(d.path()).unwrap();
        let a = m.open_log("a", 0, LogConfig::default()).unwrap();
        let b = m.open_log("b", 1, LogConfig::default()).unwrap();
        a.append(batch_at(0, 0, 10, 0)).unwrap();
        b.append(batch_at(0, 0, 4, 0)).unwrap();
        a.set_high_watermark(7);
        b.set_high_watermark(4);
        m.shutdown().unwrap();
        let text = std::fs::read_to_string(d.path().join("replication-offset-checkpoint")).unwrap();
        assert!(text.starts_with("0\n2\n") && text.contains("a 0 7\n") && text.contains("b 1 4\n"), "{text}");
    }
    {
        // After a clean shutdown the checkpointed value, not the log end.
        let m = LogManager::open(d.path()).unwrap();
        assert!(m.was_clean());
        let a = m.open_log("a", 0, LogConfig::default()).unwrap();
        assert_eq!((a.log_end_offset(), a.high_watermark()), (10, 7));
        assert_eq!(m.open_log("b", 1, LogConfig::default()).unwrap().high_watermark(), 4);
        assert_eq!(m.open_log("c", 0, LogConfig::default()).unwrap().high_watermark(), 0);
        a.set_high_watermark(9);
        m.write_checkpoints().unwrap();
        // No clean shutdown: a crash.
    }
    let m = LogManager::open(d.path()).unwrap();
    assert!(!m.was_clean());
    assert_eq!(m.open_log("a", 0, LogConfig::default()).unwrap().high_watermark(), 9);
}

#[test]
fn read_upto_stops_below_the_bound() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    log.append_replica(concat(&[batch_at(0, 1, 3, 0), batch_at(3, 1, 2, 0), batch_at(5, 1, 4, 0)])).unwrap();
    log.set_high_watermark(5);
    let r = log.read_upto(0, 1 << 20, log.high_watermark()).unwrap();
    assert_eq!(batches(&r.records), vec![(0, 2, 1), (3, 4, 1)]);
    assert_eq!((r.high_watermark, r.log_start_offset), (5, 0));
    // A batch that starts below the bound comes whole.
    assert_eq!(batches(&log.read_upto(0, 1 << 20, 4).unwrap().records), vec![(0, 2, 1), (3, 4, 1)]);
    assert_eq!(batches(&log.read_upto(4, 1 << 20, 5).unwrap().records), vec![(3, 4, 1)]);
    assert!(log.read_upto(5, 1 << 20, 5).unwrap().records.is_empty());
    assert!(log.read_upto(7, 1 << 20, 5).unwrap().records.is_empty());
    assert!(log.read_upto(9, 1 << 20, 5).unwrap().records.is_empty());
    assert!(matches!(log.read_upto(10, 1 << 20, 5), Err(StorageError::OffsetOutOfRange { .. })));
    // max_bytes still limits (at least one batch).
    assert_eq!(batches(&log.read_upto(0, 1, 9).unwrap().records), vec![(0, 2, 1)]);
    // Plain reads still report the log end.
    assert_eq!(log.read(0, 1).unwrap().high_watermark, 9);
}

#[tokio::test]
async fn a_failed_write_fails_the_log_for_good() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("p-0");
    let log = Log::open(&dir, LogConfig { segment_bytes: 400, ..Default::default() }, true, 0, 0).unwrap();
    log.append(batch_at(0, 0, 3, 0)).unwrap();
    log.flush_all().await.unwrap();
    // The directory vanishes: the next roll cannot create its segment.
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(log.append(batch_at(0, 0, 3, 0)), Err(StorageError::Io(_))));
    assert!(log.is_failed());
    assert!(matches!(log.append(batch_at(0, 0, 1, 0)), Err(StorageError::Offline)));
    assert!(matches!(log.append_replica(batch_at(3, 0, 1, 0)), Err(StorageError::Offline)));
    assert!(matches!(log.truncate_to(1), Err(StorageError::Offline)));
    assert!(matches!(log.truncate_fully_and_start_at(5), Err(StorageError::Offline)));
    assert!(matches!(log.flush_to(1).await, Err(StorageError::Offline)));
    assert!(log.flush_blocking().is_err());
    // So do reads: the log's directory is offline (Kafka answers KAFKA_STORAGE_ERROR too).
    assert!(matches!(log.read(0, 100), Err(StorageError::Offline)));
}

#[test]
fn a_failed_epoch_checkpoint_fails_the_log() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("p-0");
    let log = Log::open(&dir, LogConfig::default(), true, 0, 0).unwrap();
    log.append_replica(batch_at(0, 1, 1, 0)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(log.append_replica(batch_at(1, 2, 1, 0)), Err(StorageError::Io(_))));
    assert!(log.is_failed());
    assert!(matches!(log.assign_leader_epoch(3), Err(StorageError::Offline)));
}
