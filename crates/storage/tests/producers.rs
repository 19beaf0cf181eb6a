//! Producer state on real files: idempotent appends (duplicates, sequences,
//! epochs), transactions (markers, the transaction index, the last stable
//! offset, read_committed), and how the state survives restarts, crashes,
//! replication, truncation, retention, expiration and compaction.

use std::path::Path;

use bytes::Bytes;
use strom_protocol::batch::BatchIter;
use strom_protocol::compression::Codec;
use strom_protocol::records::{decode_batch, BatchBuilder, Record};
use strom_storage::{AbortedTxn, Log, LogConfig, ProducerInfo, StorageError};

const TS: i64 = 1_700_000_000_000;

/// A batch of `n` records from producer `pid` at `epoch`, first sequence `seq`.
fn pbatch(pid: i64, epoch: i16, seq: i32, n: usize, txn: bool) -> Bytes {
    keyed_pbatch(pid, epoch, seq, &vec!["k"; n], txn)
}

fn keyed_pbatch(pid: i64, epoch: i16, seq: i32, keys: &[&str], txn: bool) -> Bytes {
    let mut b = BatchBuilder::new(TS).producer(pid, epoch, seq).transactional(txn);
    for k in keys {
        b.push(Record { key: Some(Bytes::copy_from_slice(k.as_bytes())), value: Some(vec![b'v'; 100].into()), ..Default::default() });
    }
    b.build(Codec::None).unwrap()
}

fn plain(n: usize) -> Bytes {
    let mut b = BatchBuilder::new(TS);
    for _ in 0..n {
        b.push(Record { key: Some("p".into()), value: Some(vec![b'x'; 100].into()), ..Default::default() });
    }
    b.build(Codec::None).unwrap()
}

fn open(dir: &Path, cfg: LogConfig) -> Log {
    Log::open(dir, cfg, true, 0, 0).unwrap()
}

fn producer(log: &Log, pid: i64) -> Option<ProducerInfo> {
    log.producers().into_iter().find(|p| p.producer_id == pid)
}

/// Every batch of the log as stored.
fn all_batches(log: &Log) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 20).unwrap();
        let mut last = None;
        for b in BatchIter::new(&r.records) {
            let b = b.unwrap();
            out.push(Bytes::copy_from_slice(b.bytes()));
            last = Some(b.last_offset());
        }
        let Some(last) = last else { break };
        next = last + 1;
    }
    out
}

/// The aborted transactions read_committed reports over the whole log.
fn all_aborted(log: &Log) -> Vec<AbortedTxn> {
    log.set_high_watermark(log.log_end_offset());
    let mut out: Vec<AbortedTxn> = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let (info, aborted) = log.read_committed(next, 1 << 30).unwrap();
        let Some(last) = BatchIter::new(&info.records).map(|b| b.unwrap().last_offset()).last() else { break };
        for a in aborted {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        next = last + 1;
    }
    out
}

/// A mix of idempotent, transactional (committed, aborted, open) and plain
/// writes, with the offsets the leader gave them.
fn workload(log: &Log) {
    log.append(pbatch(1, 0, 0, 3, false)).unwrap();
    log.append(plain(2)).unwrap();
    log.append(pbatch(2, 5, 0, 2, true)).unwrap();
    log.append(pbatch(1, 0, 3, 1, false)).unwrap();
    log.append(pbatch(3, 0, 0, 1, true)).unwrap();
    log.append(pbatch(2, 5, 2, 2, true)).unwrap();
    log.append_marker(2, 5, 7, false).unwrap();
    log.append(pbatch(3, 0, 1, 1, true)).unwrap();
    log.append_marker(3, 0, 7, true).unwrap();
    log.append(pbatch(4, 1, 0, 2, true)).unwrap();
    log.append(plain(1)).unwrap();
}

#[test]
fn a_retried_duplicate_gets_its_original_offsets() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    let first = log.append(pbatch(1, 0, 0, 3, false)).unwrap();
    assert_eq!((first.base_offset, first.last_offset, first.duplicate), (0, 2, false));
    log.append(plain(1)).unwrap();
    assert_eq!(log.append(pbatch(1, 0, 3, 2, false)).unwrap().base_offset, 4);
    let dup = log.append(pbatch(1, 0, 0, 3, false)).unwrap();
    assert_eq!((dup.base_offset, dup.last_offset, dup.duplicate), (0, 2, true));
    let dup = log.append(pbatch(1, 0, 3, 2, false)).unwrap();
    assert_eq!((dup.base_offset, dup.last_offset, dup.duplicate), (4, 5, true));
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(producer(&log, 1).unwrap().last_sequence, 4);
    // Only the last five batches are remembered.
    for i in 0..5 {
        log.append(pbatch(1, 0, 5 + i, 1, false)).unwrap();
    }
    assert!(matches!(log.append(pbatch(1, 0, 0, 3, false)), Err(StorageError::OutOfOrderSequence(_))));
}

#[test]
fn a_duplicate_on_a_log_append_time_topic_keeps_its_original_time() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig { log_append_time: true, ..Default::default() });
    let first = log.append(pbatch(1, 0, 0, 1, false)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let dup = log.append(pbatch(1, 0, 0, 1, false)).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.log_append_time, first.log_append_time);
}

#[test]
fn out_of_order_sequences_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(pbatch(1, 0, 0, 3, false)).unwrap();
    assert!(matches!(log.append(pbatch(1, 0, 5, 1, false)), Err(StorageError::OutOfOrderSequence(_))));
    assert!(matches!(log.append(pbatch(1, 0, 2, 1, false)), Err(StorageError::OutOfOrderSequence(_))));
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.append(pbatch(1, 0, 3, 1, false)).unwrap().base_offset, 3);
}

#[test]
fn sequences_wrap_past_i32_max() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(pbatch(1, 0, i32::MAX - 1, 2, false)).unwrap();
    assert_eq!(log.append(pbatch(1, 0, 0, 1, false)).unwrap().base_offset, 2);
}

#[test]
fn a_stale_epoch_is_fenced_and_a_new_epoch_starts_at_zero() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(pbatch(1, 1, 0, 2, false)).unwrap();
    assert!(matches!(log.append(pbatch(1, 0, 2, 1, false)), Err(StorageError::InvalidProducerEpoch(_))));
    assert!(matches!(log.append(pbatch(1, 2, 2, 1, false)), Err(StorageError::OutOfOrderSequence(_))));
    log.append(pbatch(1, 2, 0, 1, false)).unwrap();
    let p = producer(&log, 1).unwrap();
    assert_eq!((p.producer_epoch, p.last_sequence), (2, 0));
    // The old epoch's batches are no longer duplicates: they are fenced.
    assert!(matches!(log.append(pbatch(1, 1, 0, 2, false)), Err(StorageError::InvalidProducerEpoch(_))));
}

#[test]
fn an_unknown_producer_may_start_at_any_sequence() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    assert_eq!(log.append(pbatch(9, 3, 42, 2, false)).unwrap().base_offset, 0);
    assert_eq!(log.append(pbatch(9, 3, 44, 1, false)).unwrap().base_offset, 2);
}

#[test]
fn batches_without_sequence_skip_sequence_checks_but_not_epochs() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    assert!(!log.append(pbatch(5, 2, -1, 1, true)).unwrap().duplicate);
    assert!(!log.append(pbatch(5, 2, -1, 1, true)).unwrap().duplicate);
    assert_eq!(log.log_end_offset(), 2);
    assert!(matches!(log.append(pbatch(5, 1, -1, 1, true)), Err(StorageError::InvalidProducerEpoch(_))));
    assert_eq!(producer(&log, 5).unwrap().current_txn_start_offset, 0);
}

#[test]
fn clients_may_not_write_control_batches() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    let mut b = BatchBuilder::new(TS).producer(1, 0, -1).transactional(true).control(true);
    b.push(Record { key: Some(vec![0, 0, 0, 1].into()), value: Some(vec![0, 0, 0, 0, 0, 0].into()), ..Default::default() });
    assert!(matches!(log.append(b.build(Codec::None).unwrap()), Err(StorageError::InvalidRecord { .. })));
}

#[test]
fn a_committed_transaction_becomes_stable() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(plain(2)).unwrap();
    let txn = pbatch(7, 0, 0, 2, true);
    assert_eq!(log.needs_verification(&txn), Some((7, 0)));
    assert_eq!(log.needs_verification(&plain(1)), None);
    log.append(txn).unwrap();
    assert_eq!(log.needs_verification(&pbatch(7, 0, 2, 1, true)), None);
    assert_eq!(log.needs_verification(&pbatch(7, 1, 0, 1, true)), Some((7, 1)));
    assert!(matches!(log.append(pbatch(7, 0, 2, 1, false)), Err(StorageError::InvalidTxnState(_))));
    log.append(plain(1)).unwrap();
    log.set_high_watermark(5);
    assert_eq!(log.last_stable_offset(), 2);
    assert_eq!(producer(&log, 7).unwrap().current_txn_start_offset, 2);
    let (info, aborted) = log.read_committed(0, 1 << 20).unwrap();
    assert_eq!(info.last_stable_offset, 2);
    assert_eq!(BatchIter::new(&info.records).map(|b| b.unwrap().last_offset()).last(), Some(1));
    assert!(aborted.is_empty());
    assert_eq!(log.read_upto(0, 1 << 20, 5).unwrap().last_stable_offset, 2);
    let marker = log.append_marker(7, 0, 3, true).unwrap();
    assert_eq!((marker.base_offset, marker.last_offset), (5, 5));
    // The marker is not replicated yet: the transaction still holds the LSO.
    assert_eq!(log.last_stable_offset(), 2);
    log.set_high_watermark(6);
    assert_eq!(log.last_stable_offset(), 6);
    let p = producer(&log, 7).unwrap();
    assert_eq!((p.current_txn_start_offset, p.coordinator_epoch), (-1, 3));
    let (info, aborted) = log.read_committed(0, 1 << 20).unwrap();
    assert_eq!(BatchIter::new(&info.records).map(|b| b.unwrap().last_offset()).last(), Some(5));
    assert!(aborted.is_empty());
    assert!(!d.path().join("00000000000000000000.txnindex").exists());
    // The marker batch is a control batch with a COMMIT key.
    let stored = all_batches(&log);
    let m = strom_protocol::batch::BatchView::parse(&stored[3]).unwrap();
    assert!(m.is_control() && m.is_transactional());
    assert_eq!((m.producer_id(), m.base_sequence()), (7, -1));
    let rec = decode_batch(&m, 1 << 20).unwrap();
    assert_eq!(rec[0].key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
    assert_eq!(rec[0].value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 3][..]));
}

#[test]
fn an_aborted_transaction_goes_into_the_txn_index() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(pbatch(7, 0, 0, 2, true)).unwrap();
    log.append(pbatch(8, 0, 0, 1, true)).unwrap();
    log.append(pbatch(7, 0, 2, 1, true)).unwrap();
    log.append_marker(7, 0, 1, false).unwrap();
    let idx = std::fs::read(d.path().join("00000000000000000000.txnindex")).unwrap();
    assert_eq!(idx.len(), 34);
    assert_eq!(&idx[0..2], &[0, 0]);
    assert_eq!(i64::from_be_bytes(idx[2..10].try_into().unwrap()), 7);
    assert_eq!(i64::from_be_bytes(idx[10..18].try_into().unwrap()), 0);
    assert_eq!(i64::from_be_bytes(idx[18..26].try_into().unwrap()), 4);
    // Producer 8's transaction is still open at 2.
    assert_eq!(i64::from_be_bytes(idx[26..34].try_into().unwrap()), 2);
    log.set_high_watermark(5);
    assert_eq!(log.last_stable_offset(), 2);
    log.append_marker(8, 0, 1, false).unwrap();
    log.set_high_watermark(6);
    assert_eq!(log.last_stable_offset(), 6);
    let (_, aborted) = log.read_committed(0, 1 << 20).unwrap();
    assert_eq!(
        aborted,
        vec![
            AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 4 },
            AbortedTxn { producer_id: 8, first_offset: 2, last_offset: 5 }
        ]
    );
    // Only transactions overlapping the fetched range.
    assert_eq!(log.read_committed(5, 1 << 20).unwrap().1, vec![AbortedTxn { producer_id: 8, first_offset: 2, last_offset: 5 }]);
    assert_eq!(log.read_committed(0, 1).unwrap().1, vec![AbortedTxn { producer_id: 7, first_offset: 0, last_offset: 4 }]);
}

#[test]
fn markers_check_epochs() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(pbatch(7, 2, 0, 1, true)).unwrap();
    assert!(matches!(log.append_marker(7, 1, 0, true), Err(StorageError::InvalidProducerEpoch(_))));
    log.append_marker(7, 2, 5, false).unwrap();
    assert!(matches!(log.append_marker(7, 2, 4, false), Err(StorageError::CoordinatorFenced(_))));
    // A marker without an open transaction is written and completes nothing.
    log.append_marker(7, 3, 5, false).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(all_aborted(&log).len(), 1);
    assert_eq!(producer(&log, 7).unwrap().producer_epoch, 3);
}

#[test]
fn the_lso_is_bounded_by_the_high_watermark() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(plain(5)).unwrap();
    log.set_high_watermark(2);
    assert_eq!(log.last_stable_offset(), 2);
    let (info, _) = log.read_committed(0, 1 << 20).unwrap();
    assert!(info.records.is_empty() || BatchIter::new(&info.records).all(|b| b.unwrap().base_offset() < 2));
    log.append(pbatch(1, 0, 0, 1, true)).unwrap();
    log.set_high_watermark(6);
    assert_eq!(log.last_stable_offset(), 5);
}

#[test]
fn state_after_a_crash_is_rebuilt_from_the_log() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 400, ..Default::default() };
    let (producers, aborted, lso) = {
        let log = open(d.path(), cfg.clone());
        workload(&log);
        (log.producers(), all_aborted(&log), log.last_stable_offset())
    };
    assert_eq!(aborted.len(), 1);
    // Lose every snapshot and transaction index: a crash right after writing.
    for e in std::fs::read_dir(d.path()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".snapshot") || name.ends_with(".txnindex") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let log = Log::open_with_high_watermark(d.path(), cfg.clone(), false, 0, 0, 0).unwrap();
    assert_eq!(log.producers(), producers);
    assert_eq!(all_aborted(&log), aborted);
    assert_eq!(log.last_stable_offset(), lso);
    // And the rebuilt state keeps checking: the next sequences are accepted, duplicates detected.
    assert!(log.append(pbatch(1, 0, 3, 1, false)).unwrap().duplicate);
    assert!(!log.append(pbatch(1, 0, 4, 1, false)).unwrap().duplicate);
    drop(log);
    // A crash with snapshots in place (from rolls) replays only after them.
    let log = Log::open_with_high_watermark(d.path(), cfg, false, 0, 0, 0).unwrap();
    assert_eq!(producer(&log, 1).unwrap().last_sequence, 4);
    assert_eq!(all_aborted(&log), aborted);
}

#[test]
fn a_clean_restart_uses_the_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    workload(&log);
    let producers = log.producers();
    let aborted = all_aborted(&log);
    log.flush_blocking().unwrap();
    log.checkpoint_producers().unwrap();
    let end = log.log_end_offset();
    assert!(d.path().join(format!("{end:020}.snapshot")).exists());
    drop(log);
    let log = open(d.path(), LogConfig::default());
    assert_eq!(log.producers(), producers);
    assert_eq!(all_aborted(&log), aborted);
    // Proof that the snapshot, not a replay, is used: a snapshot of an
    // emptied state comes back empty.
    assert_eq!(log.expire_producers(i64::MAX, 0), 3);
    log.append(plain(1)).unwrap();
    log.checkpoint_producers().unwrap();
    assert!(d.path().join(format!("{:020}.snapshot", end + 1)).exists());
    drop(log);
    let log = open(d.path(), LogConfig::default());
    assert_eq!(log.producers().len(), 1, "only the producer with an open transaction");
}

#[test]
fn a_follower_builds_the_same_state() {
    let (dl, df) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = LogConfig { segment_bytes: 400, ..Default::default() };
    let leader = open(dl.path(), cfg.clone());
    workload(&leader);
    let follower = open(df.path(), cfg.clone());
    for b in all_batches(&leader) {
        follower.append_replica(b).unwrap();
    }
    assert_eq!(follower.producers(), leader.producers());
    assert_eq!(all_aborted(&follower), all_aborted(&leader));
    assert_eq!(follower.last_stable_offset(), leader.last_stable_offset());
    for e in std::fs::read_dir(dl.path()).unwrap().flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with(".txnindex") {
            assert_eq!(std::fs::read(e.path()).unwrap(), std::fs::read(df.path().join(&name)).unwrap());
        }
    }
    // Restarted after a crash, the follower still agrees.
    let producers = follower.producers();
    drop(follower);
    let follower = Log::open(df.path(), cfg, false, 0, 0).unwrap();
    assert_eq!(follower.producers(), producers);
}

#[test]
fn truncation_rebuilds_state_and_the_txn_index() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 400, ..Default::default() };
    let log = open(d.path(), cfg);
    log.append(pbatch(1, 0, 0, 2, false)).unwrap();
    log.append(pbatch(2, 0, 0, 1, true)).unwrap();
    let cut = log.log_end_offset();
    log.append(pbatch(1, 0, 2, 2, false)).unwrap();
    log.append_marker(2, 0, 0, false).unwrap();
    log.append(pbatch(3, 0, 0, 1, false)).unwrap();
    assert_eq!(all_aborted(&log).len(), 1);
    assert_eq!(log.truncate_to(cut).unwrap(), cut);
    assert_eq!(producer(&log, 1).unwrap().last_sequence, 1);
    assert_eq!(producer(&log, 2).unwrap().current_txn_start_offset, 2);
    assert!(producer(&log, 3).is_none());
    assert!(all_aborted(&log).is_empty());
    assert_eq!(log.last_stable_offset(), 2);
    // The producer continues from its surviving batches.
    assert!(!log.append(pbatch(1, 0, 2, 2, false)).unwrap().duplicate);
    log.truncate_fully_and_start_at(100).unwrap();
    assert!(log.producers().is_empty());
    assert_eq!(log.append(pbatch(1, 0, 77, 1, false)).unwrap().base_offset, 100);
}

#[test]
fn retention_and_delete_records_evict_producers_but_spare_open_transactions() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 300, retention_ms: 1_000, ..Default::default() };
    let log = open(d.path(), cfg);
    log.append(pbatch(1, 0, 0, 1, false)).unwrap();
    log.append(pbatch(2, 0, 0, 1, true)).unwrap();
    for _ in 0..4 {
        log.append(plain(1)).unwrap();
    }
    log.append(pbatch(3, 0, 0, 1, false)).unwrap();
    log.set_high_watermark(log.log_end_offset());
    // Producer 2's open transaction (at 1) pins its segment and everything
    // after; producer 1's segment goes, and producer 1 with it.
    assert_eq!(log.delete_old_segments(TS + 10_000).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 1);
    assert!(producer(&log, 1).is_none());
    assert_eq!(producer(&log, 2).unwrap().current_txn_start_offset, 1);
    log.append_marker(2, 0, 0, true).unwrap();
    log.set_high_watermark(log.log_end_offset());
    assert!(log.delete_old_segments(TS + 10_000).unwrap() > 0);
    // Producer 2's data is gone but its marker (in the active segment) is not.
    assert_eq!(producer(&log, 2).unwrap().current_txn_start_offset, -1);
    assert!(producer(&log, 3).is_some());
    // Evicted: any sequence is accepted again.
    log.append(pbatch(1, 0, 9, 1, false)).unwrap();
    let end = log.log_end_offset();
    log.advance_log_start(end - 1).unwrap();
    assert!(producer(&log, 3).is_none() && producer(&log, 2).is_none());
    assert!(producer(&log, 1).is_some());
}

#[test]
fn idle_producers_expire_unless_in_a_transaction() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), LogConfig::default());
    log.append(pbatch(1, 0, 0, 1, false)).unwrap();
    log.append(pbatch(2, 0, 0, 1, true)).unwrap();
    assert_eq!(log.expire_producers(TS + 500, 1_000), 0);
    assert_eq!(log.expire_producers(TS + 1_000, 1_000), 1);
    assert_eq!(log.producers().iter().map(|p| p.producer_id).collect::<Vec<_>>(), vec![2]);
    assert!(!log.append(pbatch(1, 0, 0, 1, false)).unwrap().duplicate);
}

#[test]
fn compaction_keeps_markers_and_drops_aborted_data() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 500, compact: true, min_cleanable_ratio: 0.0, ..Default::default() };
    let log = open(d.path(), cfg);
    log.append(keyed_pbatch(1, 0, 0, &["a"], true)).unwrap();
    log.append_marker(1, 0, 0, true).unwrap();
    log.append(keyed_pbatch(1, 0, 1, &["a"], true)).unwrap();
    log.append(keyed_pbatch(1, 0, 2, &["b"], true)).unwrap();
    log.append_marker(1, 0, 0, false).unwrap();
    for i in 0..6 {
        log.append(keyed_pbatch(2, 0, i, &["c"], false)).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    assert!(log.compact(TS + 1).unwrap() > 0);
    let kept: Vec<(i64, bool)> = all_batches(&log)
        .iter()
        .map(|b| {
            let v = strom_protocol::batch::BatchView::parse(b).unwrap();
            (v.base_offset(), v.is_control())
        })
        .collect();
    // The committed "a" survives the aborted one; both markers stay; the
    // aborted batch at 2 goes, producer 1's last batch (3) stays whole.
    assert!(kept.contains(&(0, false)));
    assert!(kept.contains(&(1, true)) && kept.contains(&(4, true)));
    assert!(!kept.iter().any(|&(o, _)| o == 2));
    assert!(kept.contains(&(3, false)));
    assert_eq!(producer(&log, 2).unwrap().last_sequence, 5);
}

#[test]
fn a_crash_after_a_flush_rebuilds_only_the_unflushed_tail() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 400, ..Default::default() };
    let (producers, aborted, rp) = {
        let log = open(d.path(), cfg.clone());
        workload(&log);
        log.append_marker(4, 1, 0, true).unwrap();
        log.flush_blocking().unwrap();
        let rp = log.recovery_point();
        log.append(pbatch(5, 0, 0, 1, true)).unwrap();
        log.append(pbatch(1, 0, 4, 2, false)).unwrap();
        log.append_marker(5, 0, 2, false).unwrap();
        (log.producers(), all_aborted(&log), rp)
    };
    assert_eq!(aborted.len(), 2);
    // The newest transaction index entry never reached the disk.
    let last_index = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txnindex"))
        .max()
        .unwrap();
    let bytes = std::fs::read(&last_index).unwrap();
    std::fs::write(&last_index, &bytes[..bytes.len() - 34]).unwrap();
    let log = Log::open(d.path(), cfg, false, rp, 0).unwrap();
    assert_eq!(log.producers(), producers);
    assert_eq!(all_aborted(&log), aborted);
    assert!(log.append(pbatch(1, 0, 4, 2, false)).unwrap().duplicate);
}

#[test]
fn a_guarded_append_opens_a_transaction_only_when_verified() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    // Not verified: the batch would open a transaction, so it is refused.
    let e = log.append_verified(pbatch(7, 0, 0, 2, true), Some(&[])).unwrap_err();
    assert!(matches!(e, StorageError::InvalidTxnState(_)), "{e:?}");
    assert_eq!(log.log_end_offset(), 0);
    // Verified for another epoch: still refused.
    assert!(log.append_verified(pbatch(7, 0, 0, 2, true), Some(&[(7, 1)])).is_err());
    // Verified: it opens the transaction; later batches of it need no verification.
    log.append_verified(pbatch(7, 0, 0, 2, true), Some(&[(7, 0)])).unwrap();
    log.append_verified(pbatch(7, 0, 2, 2, true), Some(&[])).unwrap();
    // Once the marker is in, a late batch cannot open a new transaction unverified.
    log.append_marker(7, 0, 0, true).unwrap();
    let e = log.append_verified(pbatch(7, 0, 4, 1, true), Some(&[])).unwrap_err();
    assert!(matches!(e, StorageError::InvalidTxnState(_)), "{e:?}");
    // Unguarded appends (verification off) are not checked.
    log.append_verified(pbatch(7, 0, 4, 1, true), None).unwrap();
}
