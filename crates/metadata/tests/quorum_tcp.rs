//! The metadata quorum over real TCP on 127.0.0.1: a quorum of one across restarts, and an observer
//! (`MetadataFollower`) following three voters.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use strom_metadata::quorum::{serve_connection, MetadataFollower, ProposeError, Quorum, QuorumConfig, TcpConnector, Tuning};
use strom_metadata::MetadataRecord;
use tokio::net::TcpListener;
use uuid::Uuid;

fn config(node_id: i32, voters: &BTreeMap<i32, String>, dir: &Path) -> QuorumConfig {
    QuorumConfig {
        node_id,
        voters: voters.clone(),
        dir: dir.to_path_buf(),
        election_timeout_ms: 300,
        heartbeat_interval_ms: 50,
        request_timeout_ms: 2000,
    }
}

fn serve(listener: TcpListener, q: Quorum) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve_connection(s, q.clone()));
        }
    })
}

fn topic(name: &str) -> Vec<MetadataRecord> {
    vec![MetadataRecord::Topic { name: name.into(), id: Uuid::new_v4() }]
}

/// Proposes through whichever voter leads, retrying while there is none.
async fn propose_any(qs: &[Quorum], records: Vec<MetadataRecord>) -> u64 {
    for _ in 0..200 {
        for q in qs {
            match q.propose(records.clone()).await {
                Ok(i) => return i,
                Err(ProposeError::NotLeader { .. }) | Err(ProposeError::Timeout) => {}
                Err(e) => panic!("{e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader accepted a proposal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_voter_restart_has_its_image_before_start_returns() {
    let d = tempfile::tempdir().unwrap();
    let voters: BTreeMap<i32, String> = [(1, "127.0.0.1:9".to_string())].into_iter().collect();
    let mut last = 0;
    {
        let (q, _rx) = Quorum::start(config(1, &voters, d.path()), TcpConnector).await.unwrap();
        for i in 0..20 {
            last = propose_any(std::slice::from_ref(&q), topic(&format!("t{i}"))).await;
        }
        assert_eq!(q.image().offset, last);
        assert!(q.is_leader());
        q.shutdown().await;
    }
    // A node that is not among the voters cannot start one.
    assert!(Quorum::start(config(2, &voters, d.path()), TcpConnector).await.is_err());

    let (q, mut rx) = Quorum::start(config(1, &voters, d.path()), TcpConnector).await.unwrap();
    let image = q.image();
    assert_eq!(image.offset, last, "image must be replayed before start returns");
    for i in 0..20 {
        assert!(image.topic(&format!("t{i}")).is_some(), "t{i} missing after restart");
    }
    // The replay was published too, in log order.
    let mut seen = Vec::new();
    while let Ok(p) = rx.try_recv() {
        seen.push(p.image.offset);
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&last));
    // And it keeps working.
    let next = propose_any(std::slice::from_ref(&q), topic("after-restart")).await;
    assert!(next > last);
    q.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_tracks_three_voters_over_tcp() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut listeners = Vec::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        voters.insert(id, l.local_addr().unwrap().to_string());
        listeners.push(l);
    }
    // A tiny window so that a late follower first gets a snapshot, then batches.
    let tuning = Tuning { window: 4, snapshot_every: 10, keep_after_snapshot: 2, ..Tuning::default() };
    let mut qs = Vec::new();
    let mut servers = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let id = i as i32 + 1;
        let (q, _rx) = Quorum::start_with(config(id, &voters, dirs[i].path()), TcpConnector, tuning.clone()).await.unwrap();
        servers.push(serve(l, q.clone()));
        qs.push(q);
    }
    for i in 0..15 {
        propose_any(&qs, topic(&format!("early{i}"))).await;
    }
    let (follower, mut rx) = MetadataFollower::start(voters.clone(), TcpConnector).await;
    for i in 0..15 {
        propose_any(&qs, topic(&format!("late{i}"))).await;
    }
    let want = propose_any(&qs, topic("last")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while follower.image().offset < want {
        assert!(tokio::time::Instant::now() < deadline, "follower stuck at {}", follower.image().offset);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let image = follower.image();
    for i in 0..15 {
        assert!(image.topic(&format!("early{i}")).is_some());
        assert!(image.topic(&format!("late{i}")).is_some());
    }
    assert!(image.topic("last").is_some());
    let leader = qs.iter().find(|q| q.is_leader()).map(|q| q.node_id());
    assert!(follower.leader().is_some());
    if let Some(l) = leader {
        let leader_image = qs[(l - 1) as usize].image();
        assert_eq!(leader_image.to_records(), image.to_records());
    }
    // Publications arrive in order; the first one of a late follower replaces the whole image.
    let mut offsets = Vec::new();
    let mut first_full = None;
    while let Ok(p) = rx.try_recv() {
        first_full.get_or_insert(p.delta.full);
        offsets.push(p.image.offset);
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert_eq!(first_full, Some(true));
    assert_eq!(offsets.last(), Some(&want));

    let state = qs.iter().find(|q| q.is_leader()).map(|q| q.describe());
    if let Some(s) = state {
        assert_eq!(s.voters.len(), 3);
        assert!(s.high_watermark >= want);
    }
    for q in &qs {
        q.shutdown().await;
    }
    for s in servers {
        s.abort();
    }
}
