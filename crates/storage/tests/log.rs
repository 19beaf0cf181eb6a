//! Storage tests on real files: append, read, roll, recovery from torn tails.

use std::io::Write;

use strom_protocol::batch::BatchIter;
use strom_protocol::compression::Codec;
use strom_protocol::records::{BatchBuilder, Record};
use strom_storage::{Log, LogConfig, LogManager, StorageError};

fn batch(n: usize, tag: &str) -> bytes::Bytes {
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for i in 0..n {
        b.push(Record { key: Some(format!("{tag}-{i}").into_bytes().into()), value: Some(vec![b'x'; 100].into()), ..Default::default() });
    }
    b.build(Codec::None).unwrap()
}

fn offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    BatchIter::new(bytes).map(|b| b.unwrap()).map(|b| (b.base_offset(), b.last_offset())).collect()
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    assert_eq!(log.append(batch(3, "a")).unwrap().base_offset, 0);
    assert_eq!(log.append(batch(2, "b")).unwrap().base_offset, 3);
    assert_eq!(log.log_end_offset(), 5);
    let r = log.read(0, 1 << 20).unwrap();
    assert_eq!(offsets(&r.records), vec![(0, 2), (3, 4)]);
    // Reading from inside a batch returns that batch.
    let r = log.read(4, 1 << 20).unwrap();
    assert_eq!(offsets(&r.records), vec![(3, 4)]);
    assert!(log.read(5, 100).unwrap().records.is_empty());
    assert!(matches!(log.read(6, 100), Err(StorageError::OffsetOutOfRange { .. })));
}

#[test]
fn read_returns_at_least_one_whole_batch() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    log.append(batch(10, "a")).unwrap();
    log.append(batch(10, "b")).unwrap();
    let r = log.read(0, 10).unwrap();
    assert_eq!(offsets(&r.records), vec![(0, 9)]);
}

#[test]
fn segments_roll_and_reads_cross_them() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 2_000, index_interval_bytes: 100, ..Default::default() };
    let log = Log::open(d.path(), cfg.clone(), true, 0, 0).unwrap();
    for i in 0..50 {
        log.append(batch(3, &i.to_string())).unwrap();
    }
    let logs = std::fs::read_dir(d.path()).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log")).count();
    assert!(logs > 5, "expected several segments, got {logs}");
    let mut next = 0;
    while next < 150 {
        let r = log.read(next, 500).unwrap();
        let o = offsets(&r.records);
        assert_eq!(o[0].0, next);
        next = o.last().unwrap().1 + 1;
    }
    drop(log);
    // Reopen trusting the indexes, as after a clean shutdown.
    let log = Log::open(d.path(), cfg, true, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 150);
    assert_eq!(offsets(&log.read(77, 1).unwrap().records), vec![(75, 77)]);
}

#[test]
fn recovery_truncates_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    log.append(batch(3, "a")).unwrap();
    log.append(batch(3, "b")).unwrap();
    drop(log);
    let seg = d.path().join(strom_storage::segment::file_name(0, "log"));
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    let partial = batch(3, "c");
    f.write_all(&partial[..partial.len() / 2]).unwrap();
    drop(f);
    let log = Log::open(d.path(), LogConfig::default(), false, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.append(batch(1, "d")).unwrap().base_offset, 6);
    assert_eq!(offsets(&log.read(0, 1 << 20).unwrap().records), vec![(0, 2), (3, 5), (6, 6)]);
}

#[test]
fn recovery_truncates_at_a_bad_crc() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    log.append(batch(3, "a")).unwrap();
    let second = log.append(batch(3, "b")).unwrap();
    assert_eq!(second.base_offset, 3);
    drop(log);
    let seg = d.path().join(strom_storage::segment::file_name(0, "log"));
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    let log = Log::open(d.path(), LogConfig::default(), false, 0, 0).unwrap();
    assert_eq!(log.log_end_offset(), 3);
}

#[test]
fn corrupt_input_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap();
    let mut b = batch(2, "a").to_vec();
    let n = b.len();
    b[n - 1] ^= 1;
    assert!(matches!(log.append(b.into()), Err(StorageError::Corrupt(_))));
    let cfg = LogConfig { max_message_bytes: 100, ..Default::default() };
    log.set_config(cfg);
    assert!(matches!(log.append(batch(5, "a")), Err(StorageError::MessageTooLarge { .. })));
    assert_eq!(log.log_end_offset(), 0);
}

#[tokio::test]
async fn group_commit_flush_advances_recovery_point() {
    let d = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(Log::open(d.path(), LogConfig::default(), true, 0, 0).unwrap());
    let mut waits = Vec::new();
    for i in 0..20 {
        let info = log.append(batch(1, &i.to_string())).unwrap();
        let l = log.clone();
        waits.push(tokio::spawn(async move { l.flush_to(info.last_offset + 1).await }));
    }
    for w in waits {
        w.await.unwrap().unwrap();
    }
    assert_eq!(log.recovery_point(), 20);
}

#[test]
fn manager_checkpoints_and_clean_marker() {
    let d = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(d.path()).unwrap();
        assert!(!m.was_clean());
        let log = m.open_log("t", 0, LogConfig::default()).unwrap();
        log.append(batch(4, "a")).unwrap();
        m.shutdown().unwrap();
    }
    let m = LogManager::open(d.path()).unwrap();
    assert!(m.was_clean());
    let log = m.open_log("t", 0, LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.recovery_point(), 4);
    m.delete_log("t", 0).unwrap();
    assert!(!d.path().join("t-0").exists());
}

#[test]
fn find_by_timestamp_uses_batch_max_timestamps() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open(d.path(), LogConfig { index_interval_bytes: 1, ..Default::default() }, true, 0, 0).unwrap();
    for t in [100i64, 200, 300] {
        let mut b = BatchBuilder::new(t);
        b.push(Record { value: Some(vec![1].into()), timestamp: t, ..Default::default() });
        log.append(b.build(Codec::None).unwrap()).unwrap();
    }
    let hit = log.find_by_timestamp(150).unwrap().unwrap();
    assert_eq!(offsets(&hit), vec![(1, 1)]);
    assert!(log.find_by_timestamp(301).unwrap().is_none());
    assert_eq!(offsets(&log.max_timestamp_batch().unwrap().unwrap()), vec![(2, 2)]);
}

#[test]
fn timestamp_lookup_sees_maxima_between_index_points() {
    let d = tempfile::tempdir().unwrap();
    // Index every ~2 batches; the high timestamp sits on a batch between index points.
    let cfg = LogConfig { index_interval_bytes: 250, ..Default::default() };
    let log = Log::open(d.path(), cfg.clone(), true, 0, 0).unwrap();
    for t in [100i64, 900, 200, 300, 400, 500] {
        let mut b = BatchBuilder::new(t);
        b.push(Record { value: Some(vec![1; 100].into()), timestamp: t, ..Default::default() });
        log.append(b.build(Codec::None).unwrap()).unwrap();
    }
    drop(log);
    let log = Log::open(d.path(), cfg, true, 0, 0).unwrap();
    assert_eq!(offsets(&log.find_by_timestamp(850).unwrap().unwrap()), vec![(1, 1)]);
    assert_eq!(offsets(&log.find_by_timestamp(350).unwrap().unwrap()), vec![(1, 1)]);
    assert_eq!(offsets(&log.max_timestamp_batch().unwrap().unwrap()), vec![(1, 1)]);
}

#[tokio::test]
async fn flush_messages_and_flush_ms_ask_for_flushes() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { flush_messages: 5, flush_ms: 50, ..Default::default() };
    let log = Log::open(d.path(), cfg, true, 0, 0).unwrap();
    assert!(!log.append(batch(2, "a")).unwrap().flush_due);
    assert!(!log.append(batch(2, "b")).unwrap().flush_due);
    assert!(log.append(batch(1, "c")).unwrap().flush_due);
    assert_eq!(log.recovery_point(), 0);
    let now = strom_storage::now_ms();
    assert!(!log.flush_time_due(now));
    assert!(log.flush_time_due(now + 60));
    log.flush_all().await.unwrap();
    assert_eq!(log.recovery_point(), 5);
    assert!(!log.flush_time_due(now + 60));
}

#[test]
fn retention_deletes_old_segments_but_never_the_active_one() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 1_000, retention_ms: 1_000, ..Default::default() };
    let log = Log::open(d.path(), cfg.clone(), true, 0, 0).unwrap();
    // Old timestamps, then new ones.
    for (i, ts) in [(0, 1_000i64), (1, 1_000), (2, 1_000), (3, 50_000), (4, 50_000)] {
        let mut b = BatchBuilder::new(ts);
        b.push(Record { value: Some(vec![i as u8; 900].into()), timestamp: ts, ..Default::default() });
        log.append(b.build(Codec::None).unwrap()).unwrap();
    }
    assert_eq!(log.delete_old_segments(50_500).unwrap(), 3);
    assert_eq!(log.log_start_offset(), 3);
    assert!(matches!(log.read(0, 100), Err(StorageError::OffsetOutOfRange { .. })));
    assert_eq!(offsets(&log.read(3, 100).unwrap().records), vec![(3, 3)]);
    // Everything is old now, but the active segment stays.
    assert_eq!(log.delete_old_segments(1_000_000).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.log_end_offset(), 5);
    // Size retention: keep at most ~1 segment's worth.
    let d2 = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 1_000, retention_ms: -1, retention_bytes: 1_000, ..Default::default() };
    let log = Log::open(d2.path(), cfg, true, 0, 0).unwrap();
    for _ in 0..5 {
        log.append(batch(1, "x")).unwrap();
        let mut b = BatchBuilder::new(0);
        b.push(Record { value: Some(vec![0; 900].into()), ..Default::default() });
        log.append(b.build(Codec::None).unwrap()).unwrap();
    }
    let before = log.size_bytes();
    assert!(log.delete_old_segments(0).unwrap() > 0);
    assert!(log.size_bytes() < before);
    assert!(log.size_bytes() as i64 - 1_000 < 1_000);
    // DeleteRecords.
    let start = log.log_start_offset();
    assert_eq!(log.advance_log_start(start + 1).unwrap(), start + 1);
    assert!(log.advance_log_start(1_000).is_err());
}

fn keyed(key: &str, value: Option<&str>, ts: i64) -> bytes::Bytes {
    let mut b = BatchBuilder::new(ts);
    b.push(Record {
        key: Some(key.as_bytes().to_vec().into()),
        value: value.map(|v| v.as_bytes().to_vec().into()),
        timestamp: ts,
        ..Default::default()
    });
    b.build(Codec::None).unwrap()
}

fn all_records(log: &Log) -> Vec<strom_protocol::records::Record> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let r = log.read(next, 1 << 20).unwrap();
        if r.records.is_empty() {
            break;
        }
        for b in BatchIter::new(&r.records) {
            let b = b.unwrap();
            next = b.last_offset() + 1;
            out.extend(strom_protocol::records::decode_batch(&b, 1 << 20).unwrap());
        }
    }
    out
}

#[test]
fn compaction_keeps_the_latest_value_per_key_with_offset_gaps() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig { segment_bytes: 300, compact: true, min_cleanable_ratio: 0.0, delete_retention_ms: 1_000, ..Default::default() };
    let log = Log::open(d.path(), cfg.clone(), true, 0, 0).unwrap();
    // 0..=9: k0..k4 twice; then a tombstone for k1 (old) and one for k2 (recent).
    for round in 0..2 {
        for k in 0..5 {
            log.append(keyed(&format!("k{k}"), Some(&format!("v{round}")), 100)).unwrap();
        }
    }
    log.append(keyed("k1", None, 100)).unwrap(); // 10
    log.append(keyed("k2", None, 9_500)).unwrap(); // 11
    log.append(keyed("k9", Some("active"), 9_900)).unwrap(); // 12, lands in the active segment
    assert!(matches!(log.append(bytes::Bytes::from_static(b"x")), Err(StorageError::Corrupt(_))));
    let mut b = BatchBuilder::new(0);
    b.push(Record { key: None, value: Some(vec![1].into()), ..Default::default() });
    assert!(matches!(log.append(b.build(Codec::None).unwrap()), Err(StorageError::InvalidRecord { .. })));
    assert!(log.compact(10_000).unwrap() > 0);
    let recs = all_records(&log);
    let got: Vec<(i64, String, Option<String>)> = recs
        .iter()
        .map(|r| {
            (
                r.offset,
                String::from_utf8_lossy(r.key.as_ref().unwrap()).into_owned(),
                r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (5, "k0".into(), Some("v1".into())),
            (8, "k3".into(), Some("v1".into())),
            (9, "k4".into(), Some("v1".into())),
            (11, "k2".into(), None), // recent tombstone stays for delete.retention.ms
            (12, "k9".into(), Some("active".into())),
        ]
    );
    assert_eq!(log.log_end_offset(), 13);
    // Nothing dirty any more: a second pass does nothing.
    assert_eq!(log.compact(10_000).unwrap(), 0);
    drop(log);
    // A leftover from a cleaner killed part-way is discarded; data is intact.
    std::fs::write(d.path().join("00000000000000000000.log.cleaned"), b"partial").unwrap();
    let log = Log::open(d.path(), cfg, false, 0, 0).unwrap();
    assert!(!d.path().join("00000000000000000000.log.cleaned").exists());
    assert_eq!(all_records(&log).len(), 5);
    assert_eq!(log.append(keyed("k0", Some("v2"), 10_000)).unwrap().base_offset, 13);
}

/// More logs than the descriptor cache holds: every append and read reopens
/// what was closed, indexes are written at roll and clean close (and rebuilt
/// when missing), and nothing idle keeps a descriptor.
#[test]
fn many_logs_share_a_small_descriptor_cache() {
    let d = tempfile::tempdir().unwrap();
    strom_storage::files::set_capacity(16);
    let cfg = LogConfig { segment_bytes: 4096, index_interval_bytes: 512, ..LogConfig::default() };
    let open = |i: usize, clean: bool, rp: i64| Log::open(&d.path().join(format!("t-{i}")), cfg.clone(), clean, rp, 0).unwrap();
    let logs: Vec<Log> = (0..64).map(|i| open(i, true, 0)).collect();
    for round in 0..20 {
        for (i, log) in logs.iter().enumerate() {
            assert_eq!(log.append(batch(2, &format!("{i}-{round}"))).unwrap().base_offset, round * 2);
        }
    }
    assert!(strom_storage::files::stats().open <= 16 + 4, "{:?}", strom_storage::files::stats());
    for log in &logs {
        let r = log.read(17, 1 << 20).unwrap();
        assert_eq!(offsets(&r.records).first().map(|o| o.0), Some(16));
        log.flush_blocking().unwrap();
    }
    let dir0 = d.path().join("t-0");
    let segs: Vec<_> = std::fs::read_dir(&dir0).unwrap().flatten().map(|e| e.file_name().into_string().unwrap()).collect();
    let n = |ext: &str| segs.iter().filter(|s| s.ends_with(ext)).count();
    assert!(n(".log") > 1, "{segs:?}");
    assert_eq!(n(".log"), n(".index"), "{segs:?}");
    drop(logs);
    // Clean: loaded from the index files. One index removed: rebuilt from the log.
    std::fs::remove_file(dir0.join(strom_storage::segment::file_name(0, "index"))).unwrap();
    let logs: Vec<Log> = (0..64).map(|i| open(i, true, 40)).collect();
    for (i, log) in logs.iter().enumerate() {
        assert_eq!(log.log_end_offset(), 40, "log {i}");
        let r = log.read(3, 1 << 20).unwrap();
        assert_eq!(offsets(&r.records).first().map(|o| o.0), Some(2), "log {i}");
    }
    strom_storage::files::set_capacity(1024);
}
