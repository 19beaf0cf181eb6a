//! Several log directories on real files: placement, a failed or missing
//! directory, moving a log between directories and a swap cut short by a crash.

use std::path::{Path, PathBuf};

use strom_protocol::batch::BatchIter;
use strom_protocol::compression::Codec;
use strom_protocol::records::{BatchBuilder, Record};
use strom_storage::{CopyState, LogConfig, LogManager, StorageError};

fn batch(n: usize, tag: &str) -> bytes::Bytes {
    let mut b = BatchBuilder::new(1_700_000_000_000);
    for i in 0..n {
        b.push(Record { key: Some(format!("{tag}-{i}").into_bytes().into()), value: Some(vec![b'x'; 100].into()), ..Default::default() });
    }
    b.build(Codec::None).unwrap()
}

fn keys(log: &strom_storage::Log) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let r = log.read(offset, 1 << 20).unwrap();
        for b in BatchIter::new(&r.records) {
            let b = b.unwrap();
            for rec in strom_protocol::records::decode_batch(&b, 1 << 24).unwrap() {
                out.push(String::from_utf8(rec.key.unwrap().to_vec()).unwrap());
            }
            offset = b.last_offset() + 1;
        }
    }
    out
}

fn dirs(root: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| root.join(format!("d{i}"))).collect()
}

/// Two directories, t-0 (keys a-0..a-2) in the first and t-1 (b-0..b-2) in the second, shut down cleanly.
fn two_dirs_two_logs(root: &Path) -> Vec<PathBuf> {
    let ds = dirs(root, 2);
    let m = LogManager::open_dirs(&ds, true).unwrap();
    m.open_log("t", 0, LogConfig::default()).unwrap().append(batch(3, "a")).unwrap();
    m.open_log("t", 1, LogConfig::default()).unwrap().append(batch(3, "b")).unwrap();
    m.shutdown().unwrap();
    ds
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0)
}

#[test]
fn new_partitions_go_to_the_directory_holding_fewest() {
    let root = tempfile::tempdir().unwrap();
    let ds = dirs(root.path(), 3);
    let m = LogManager::open_dirs(&ds, true).unwrap();
    for p in 0..9 {
        m.open_log("t", p, LogConfig::default()).unwrap();
    }
    assert_eq!(ds.iter().map(|d| count(d)).collect::<Vec<_>>(), vec![3, 3, 3]);
    assert!(ds[1].join("t-1").is_dir() && ds[2].join("t-5").is_dir() && ds[0].join("t-6").is_dir());
    m.open_log("t", 0, LogConfig::default()).unwrap().append(batch(2, "a")).unwrap();
    m.shutdown().unwrap();
    drop(m);

    // A restart finds each log where it is, and fills the emptiest directory next.
    std::fs::remove_dir_all(ds[2].join("t-2")).unwrap();
    let m = LogManager::open_dirs(&ds, false).unwrap();
    assert!(m.was_clean());
    assert_eq!(m.open_log("t", 0, LogConfig::default()).unwrap().log_end_offset(), 2);
    assert_eq!(m.dir_of("t", 0), Some(0));
    m.open_log("u", 0, LogConfig::default()).unwrap();
    assert_eq!(m.dir_of("u", 0), Some(2));
}

#[test]
fn a_failed_directory_takes_only_its_logs_offline() {
    let root = tempfile::tempdir().unwrap();
    let ds = dirs(root.path(), 2);
    let m = LogManager::open_dirs(&ds, true).unwrap();
    let a = m.open_log("t", 0, LogConfig::default()).unwrap();
    let b = m.open_log("t", 1, LogConfig::default()).unwrap();
    a.append(batch(1, "a")).unwrap();
    b.append(batch(1, "b")).unwrap();
    let failures = m.subscribe_failures();
    assert!(!failures.has_changed().unwrap());

    m.fail_dir(0, "test");
    assert!(failures.has_changed().unwrap());
    assert!(matches!(a.append(batch(1, "a")), Err(StorageError::Offline)));
    assert!(matches!(a.read(0, 1 << 20), Err(StorageError::Offline)));
    assert!(m.is_offline("t", 0) && !m.is_offline("t", 1));
    assert_eq!(m.offline_partitions(), vec![("t".to_string(), 0)]);
    assert_eq!(b.append(batch(1, "b")).unwrap().base_offset, 1);
    assert_eq!(m.all().len(), 1);
    assert!(matches!(m.open_log("t", 0, LogConfig::default()), Err(StorageError::Offline)));
    // New partitions avoid it; checkpoints and shutdown skip it.
    m.open_log("t", 2, LogConfig::default()).unwrap();
    assert_eq!(m.dir_of("t", 2), Some(1));
    m.shutdown().unwrap();
    assert!(!ds[0].join(".strom_clean_shutdown").exists());
    assert!(ds[1].join(".strom_clean_shutdown").exists());
    let views = m.dirs();
    assert!(views[0].offline.is_some() && views[0].logs.is_empty());
    assert!(views[1].offline.is_none() && views[1].space.is_some());
}

#[test]
fn a_missing_directory_is_offline_and_its_partitions_are_not_recreated() {
    let root = tempfile::tempdir().unwrap();
    let ds = two_dirs_two_logs(root.path());
    let moved = root.path().join("away");
    std::fs::rename(&ds[0], &moved).unwrap();
    let m = LogManager::open_dirs(&ds, false).unwrap();
    assert!(!ds[0].exists(), "a missing directory is not recreated");
    assert!(m.missing_at_start() && m.is_dir_offline(0));
    m.mark_lost(vec![("t".to_string(), 0)]);
    assert!(matches!(m.open_log("t", 0, LogConfig::default()), Err(StorageError::Offline)));
    assert!(m.is_offline("t", 0));
    assert_eq!(m.open_log("t", 1, LogConfig::default()).unwrap().log_end_offset(), 3);
    drop(m);

    // Back again: everything is where it was.
    std::fs::rename(&moved, &ds[0]).unwrap();
    let m = LogManager::open_dirs(&ds, false).unwrap();
    assert_eq!(keys(&m.open_log("t", 0, LogConfig::default()).unwrap()), vec!["a-0", "a-1", "a-2"]);

    // No directory usable at all is an error.
    let none = vec![root.path().join("x"), root.path().join("y")];
    assert!(LogManager::open_dirs(&none, false).is_err());
}

#[test]
fn a_log_moves_between_directories_while_it_grows() {
    let root = tempfile::tempdir().unwrap();
    let ds = dirs(root.path(), 2);
    let cfg = LogConfig { segment_bytes: 2048, index_interval_bytes: 256, ..LogConfig::default() };
    let m = LogManager::open_dirs(&ds, true).unwrap();
    let log = m.open_log("t", 0, cfg.clone()).unwrap();
    let mut want = Vec::new();
    for i in 0..30 {
        log.append(batch(3, &format!("a{i}"))).unwrap();
        want.extend((0..3).map(|j| format!("a{i}-{j}")));
    }
    log.assign_leader_epoch(4).unwrap();
    log.set_high_watermark(60);
    let future = m.future_dir("t", 0, 1).unwrap();
    let state = log.copy_to(&future, CopyState::default(), false).unwrap();
    assert_eq!(state.end_offset, 90);
    assert!(state.total_bytes() > 4096);
    // Appends continue between passes; a second pass copies only what is new.
    for i in 30..40 {
        log.append(batch(3, &format!("a{i}"))).unwrap();
        want.extend((0..3).map(|j| format!("a{i}-{j}")));
    }
    let before = state.total_bytes();
    let state = log.copy_to(&future, state, false).unwrap();
    assert!(state.copied_bytes < state.total_bytes() - before + 2048, "{} {}", state.copied_bytes, state.total_bytes());
    log.append(batch(3, "last")).unwrap();
    want.extend((0..3).map(|j| format!("last-{j}")));
    let state = log.copy_to(&future, state, true).unwrap();
    assert_eq!(state.end_offset, 123);
    let new = m.replace_with_future("t", 0, &future, 1, cfg.clone()).unwrap();

    assert_eq!(m.dir_of("t", 0), Some(1));
    assert!(!ds[0].join("t-0").exists() && ds[1].join("t-0").is_dir() && !future.exists());
    assert_eq!(new.log_end_offset(), 123);
    assert_eq!(new.high_watermark(), 60);
    assert_eq!(new.latest_epoch(), Some(4));
    assert_eq!(keys(&new), want);
    assert_eq!(new.append(batch(1, "after")).unwrap().base_offset, 123);
    m.shutdown().unwrap();
    drop((m, new, log));

    let m = LogManager::open_dirs(&ds, false).unwrap();
    let log = m.open_log("t", 0, cfg).unwrap();
    assert_eq!(m.dir_of("t", 0), Some(1));
    assert_eq!(log.log_end_offset(), 124);
}

#[test]
fn a_swap_cut_short_by_a_crash_resolves_at_start() {
    let root = tempfile::tempdir().unwrap();
    let ds = two_dirs_two_logs(root.path());
    // t-0: the copy was renamed into place, the superseded original not yet removed.
    copy_dir(&ds[0].join("t-0"), &ds[1].join("t-0"));
    std::fs::write(ds[0].join("t-0").join(".strom_superseded"), b"").unwrap();
    // t-1: marked superseded, but the copy never got its name: the original stays.
    std::fs::write(ds[1].join("t-1").join(".strom_superseded"), b"").unwrap();
    // An unfinished copy.
    std::fs::create_dir_all(ds[0].join("t-1.1234-future")).unwrap();

    let m = LogManager::open_dirs(&ds, false).unwrap();
    assert_eq!(m.dir_of("t", 0), Some(1));
    assert!(!ds[0].join("t-0").exists());
    assert_eq!(m.dir_of("t", 1), Some(1));
    assert!(!ds[1].join("t-1").join(".strom_superseded").exists());
    assert!(!ds[0].join("t-1.1234-future").exists());
    assert_eq!(keys(&m.open_log("t", 0, LogConfig::default()).unwrap()), vec!["a-0", "a-1", "a-2"]);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
