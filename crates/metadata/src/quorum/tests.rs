use std::fs::OpenOptions;
use std::io::Write;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use uuid::Uuid;

use super::log_store::{LogStore, LOG_FILE, STATE_FILE};
use super::state_machine::{Fetched, StateMachine, SNAPSHOT_FILE};
use super::*;

fn log_id(term: u64, index: u64) -> LogId<i32> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic { name: name.into(), id: Uuid::new_v4() }
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(Batch(vec![topic(&format!("t{index}"))])) }
}

fn entries(term: u64, range: std::ops::Range<u64>) -> Vec<Entry<TypeConfig>> {
    range.map(|i| entry(term, i)).collect()
}

async fn indexes(s: &mut LogStore) -> Vec<(u64, u64)> {
    s.try_get_log_entries(0..u64::MAX).await.unwrap().iter().map(|e| (e.log_id.leader_id.term, e.log_id.index)).collect()
}

#[tokio::test]
async fn log_reopens_after_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    {
        let mut s = LogStore::open(d.path()).unwrap();
        s.blocking_append(entries(1, 0..5)).await.unwrap();
        s.save_vote(&Vote::new(3, 2)).await.unwrap();
        s.save_committed(Some(log_id(1, 3))).await.unwrap();
    }
    let path = d.path().join(LOG_FILE);
    let good = std::fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    // A torn frame: a length and part of a crc.
    f.write_all(&[0, 0, 0, 40, 9, 9]).unwrap();
    drop(f);
    let mut s = LogStore::open(d.path()).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
    assert_eq!(indexes(&mut s).await, (0..5).map(|i| (1, i)).collect::<Vec<_>>());
    assert_eq!(s.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 3)));
    // A corrupt frame in the middle: everything from it on is dropped.
    drop(s);
    let mut raw = std::fs::read(&path).unwrap();
    let n = raw.len();
    raw[n - 3] ^= 0xff;
    std::fs::write(&path, &raw).unwrap();
    let mut s = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut s).await, (0..4).map(|i| (1, i)).collect::<Vec<_>>());
    let st = s.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, Some(log_id(1, 3)));
    // Appending after the repair works and survives.
    s.blocking_append(entries(2, 4..6)).await.unwrap();
    drop(s);
    let mut s = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut s).await.last(), Some(&(2, 5)));
    assert_eq!(indexes(&mut s).await.len(), 6);
}

#[tokio::test]
async fn log_truncates_conflicting_suffix() {
    let d = tempfile::tempdir().unwrap();
    let mut s = LogStore::open(d.path()).unwrap();
    s.blocking_append(entries(1, 0..10)).await.unwrap();
    s.truncate(log_id(1, 6)).await.unwrap();
    assert_eq!(s.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 5)));
    s.blocking_append(entries(2, 6..8)).await.unwrap();
    drop(s);
    let mut s = LogStore::open(d.path()).unwrap();
    let want: Vec<(u64, u64)> = (0..6).map(|i| (1, i)).chain((6..8).map(|i| (2, i))).collect();
    assert_eq!(indexes(&mut s).await, want);
    // Truncating everything.
    s.truncate(log_id(1, 0)).await.unwrap();
    assert!(indexes(&mut s).await.is_empty());
    assert_eq!(s.get_log_state().await.unwrap().last_log_id, None);
    drop(s);
    let mut s = LogStore::open(d.path()).unwrap();
    assert!(indexes(&mut s).await.is_empty());
    assert_eq!(std::fs::metadata(d.path().join(LOG_FILE)).unwrap().len(), 0);
}

#[tokio::test]
async fn log_purges_and_survives_a_crash_mid_purge() {
    let d = tempfile::tempdir().unwrap();
    let mut s = LogStore::open(d.path()).unwrap();
    s.blocking_append(entries(1, 0..10)).await.unwrap();
    let before = std::fs::read(d.path().join(LOG_FILE)).unwrap();
    s.purge(log_id(1, 4)).await.unwrap();
    let st = s.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(st.last_log_id, Some(log_id(1, 9)));
    assert_eq!(indexes(&mut s).await, (5..10).map(|i| (1, i)).collect::<Vec<_>>());
    // Truncation after a purge uses the rewritten file's offsets.
    s.truncate(log_id(1, 8)).await.unwrap();
    s.blocking_append(entries(3, 8..9)).await.unwrap();
    drop(s);
    let mut s = LogStore::open(d.path()).unwrap();
    let want: Vec<(u64, u64)> = vec![(1, 5), (1, 6), (1, 7), (3, 8)];
    assert_eq!(indexes(&mut s).await, want);
    assert_eq!(s.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(1, 4)));
    drop(s);

    // A crash after the purge point was saved but before the log was rewritten.
    std::fs::write(d.path().join(LOG_FILE), &before).unwrap();
    let mut s = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut s).await, (5..10).map(|i| (1, i)).collect::<Vec<_>>());

    // Purging past the end (after installing a snapshot) empties the log.
    s.purge(log_id(4, 20)).await.unwrap();
    let st = s.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, Some(log_id(4, 20)));
    assert!(indexes(&mut s).await.is_empty());
    s.blocking_append(entries(4, 21..23)).await.unwrap();
    drop(s);
    let mut s = LogStore::open(d.path()).unwrap();
    assert_eq!(indexes(&mut s).await, vec![(4, 21), (4, 22)]);
    assert_eq!(s.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(4, 20)));
    assert!(d.path().join(STATE_FILE).exists());
}

#[tokio::test]
async fn log_leaves_legacy_metadata_log_alone() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("metadata.log"), b"legacy").unwrap();
    let mut s = LogStore::open(d.path()).unwrap();
    s.blocking_append(entries(1, 0..3)).await.unwrap();
    s.purge(log_id(1, 1)).await.unwrap();
    assert_eq!(std::fs::read(d.path().join("metadata.log")).unwrap(), b"legacy");
}

fn membership() -> Membership<i32, BasicNode> {
    let nodes: BTreeMap<i32, BasicNode> = [(1, BasicNode::new("a:1")), (2, BasicNode::new("b:1"))].into_iter().collect();
    Membership::new(vec![nodes.keys().copied().collect()], nodes)
}

#[tokio::test]
async fn state_machine_snapshot_round_trip() {
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sm = StateMachine::open(d1.path(), 3, (1 << 40, 1_000_000), tx).unwrap();
    let mut batch = vec![Entry { log_id: log_id(1, 0), payload: EntryPayload::Membership(membership()) }];
    batch.push(Entry { log_id: log_id(1, 1), payload: EntryPayload::Blank });
    batch.extend(entries(1, 2..7));
    sm.apply(batch).await.unwrap();
    let image = sm.shared.image();
    assert_eq!(image.offset, 6);
    assert_eq!(image.topics.len(), 5);
    for i in 2..7 {
        let p = rx.try_recv().unwrap();
        assert_eq!(p.image.offset, i);
        assert!(p.image.topic(&format!("t{i}")).is_some());
    }
    assert!(rx.try_recv().is_err());
    // The window keeps the last 3 batches: older offsets get the whole image.
    assert!(matches!(sm.shared.fetch(1, 100), Fetched::Snapshot(_)));
    match sm.shared.fetch(4, 100) {
        Fetched::Batches { batches, complete_to } => {
            assert_eq!(batches.iter().map(|b| b.0).collect::<Vec<_>>(), vec![5, 6]);
            assert_eq!(complete_to, 6);
        }
        _ => panic!("expected batches"),
    }
    assert!(matches!(sm.shared.fetch(6, 100), Fetched::Nothing));

    let snap = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 6)));
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);
    assert_eq!(current.snapshot.records, image.to_records());

    // Install on another node.
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let mut other = StateMachine::open(d2.path(), 3, (1 << 40, 1_000_000), tx2).unwrap();
    other.apply(entries(1, 0..2)).await.unwrap();
    while rx2.try_recv().is_ok() {}
    other.install_snapshot(&snap.meta, snap.snapshot.clone()).await.unwrap();
    let p = rx2.try_recv().unwrap();
    assert!(p.delta.full);
    assert_eq!(p.image.offset, 6);
    assert_eq!(other.shared.image().to_records(), image.to_records());
    let (applied, m) = other.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 6)));
    assert_eq!(m.membership(), &membership());
    assert!(matches!(other.shared.fetch(2, 100), Fetched::Snapshot(_)));

    // An older snapshot never replaces a newer one on disk.
    let mut old_meta = snap.meta.clone();
    old_meta.last_log_id = Some(log_id(1, 3));
    other.install_snapshot(&old_meta, Box::default()).await.unwrap();
    let (tx3, mut rx3) = mpsc::unbounded_channel();
    let reopened = StateMachine::open(d2.path(), 3, (1 << 40, 1_000_000), tx3).unwrap();
    let img = reopened.shared.image();
    assert_eq!(img.offset, 6);
    assert_eq!(img.to_records(), image.to_records());
    assert!(rx3.try_recv().unwrap().delta.full);
    assert!(d2.path().join(SNAPSHOT_FILE).exists());
}

#[test]
fn frames_reject_garbage() {
    assert!(rpc::parse_request(&[0, 1]).is_none());
    // client id length pointing past the end
    assert!(rpc::parse_request(&[35, 40, 0, 0, 0, 0, 0, 1, 0, 50]).is_none());
    let f = rpc::request_frame(7, b"{}").unwrap();
    let h = rpc::parse_request(&f[4..]).unwrap();
    assert_eq!((h.api_key, h.correlation_id, &f[4 + h.body_at..]), (QUORUM_API_KEY, 7, &b"{}"[..]));
}

#[tokio::test]
async fn serve_connection_survives_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let voters: BTreeMap<i32, String> = [(1, "127.0.0.1:1".to_string())].into_iter().collect();
    let cfg = QuorumConfig {
        node_id: 1,
        voters,
        dir: d.path().to_path_buf(),
        election_timeout_ms: 200,
        heartbeat_interval_ms: 50,
        request_timeout_ms: 2000,
    };
    let (q, _rx) = Quorum::start(cfg, TcpConnector).await.unwrap();
    // Garbage bodies get error answers.
    for body in [&b""[..], b"{", b"{\"Vote\":1}", b"\"FetchMetadata\"", &[0xff, 0xfe]] {
        let resp: serde_json::Value = serde_json::from_slice(&q.handle_rpc(body).await).unwrap();
        assert!(resp.get("Error").is_some(), "{resp}");
    }
    // Frames: an oversized length closes the connection; so does another api key.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for bad in [((MAX_RPC_BYTES + 1) as i32).to_be_bytes().to_vec(), (-5i32).to_be_bytes().to_vec(), {
        let mut f = rpc::request_frame(1, b"{}").unwrap();
        f[4..6].copy_from_slice(&18i16.to_be_bytes());
        f
    }] {
        let (mut a, b) = tokio::io::duplex(1024);
        let server = tokio::spawn(serve_connection(b, q.clone()));
        a.write_all(&bad).await.unwrap();
        server.await.unwrap();
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }
    // A good frame gets an answer with its correlation id.
    let (mut a, b) = tokio::io::duplex(1 << 20);
    tokio::spawn(serve_connection(b, q.clone()));
    let body = rpc::encode(&Request::FetchMetadata { after: 0, max_wait_ms: 10 });
    let resp = rpc::round_trip(&mut a, 42, &body).await.unwrap();
    assert!(matches!(serde_json::from_slice::<Response>(&resp).unwrap(), Response::Metadata(_)));
    q.shutdown().await;
}
