//! Offsets committed inside a transaction (TxnOffsetCommit): pending until the
//! transaction's marker, then committed or dropped; live and on replay.

use bytes::Bytes;
use strom_coordinator::errors::*;
use strom_coordinator::group::{CommitRequest, JoinRequest, Output, SyncRequest, TxnCommitRequest};
use strom_coordinator::records::{GroupRecord, OffsetValue, ReplayBatch};
use strom_coordinator::{GroupConfig, GroupCoordinator};

const PID: i64 = 7;

fn coord_with(config: GroupConfig) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(config);
    for p in 0..c.config.offsets_partitions {
        let (ticket, _) = c.begin_load(p);
        assert!(c.finish_load(p, ticket));
    }
    c
}

fn coord() -> GroupCoordinator {
    coord_with(GroupConfig { initial_rebalance_delay_ms: 0, ..Default::default() })
}

fn durable(c: &mut GroupCoordinator, out: &Output, now: i64) {
    for w in &out.writes {
        c.complete_write(w.id, NONE, now);
    }
}

fn txn_req(group: &str, offsets: &[(i32, i64)]) -> TxnCommitRequest {
    TxnCommitRequest {
        group_id: group.into(),
        producer_id: PID,
        producer_epoch: 3,
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: offsets.iter().map(|&(p, o)| ("t".to_string(), p, o, 0, None)).collect(),
    }
}

fn plain(c: &mut GroupCoordinator, group: &str, partition: i32, offset: i64, now: i64) -> Output {
    let req = CommitRequest {
        group_id: group.into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![("t".into(), partition, offset, 0, None)],
    };
    let (codes, out) = c.commit(req, now);
    assert_eq!(codes, vec![NONE]);
    out
}

fn plain_durable(c: &mut GroupCoordinator, group: &str, partition: i32, offset: i64, now: i64) {
    let out = plain(c, group, partition, offset, now);
    durable(c, &out, now);
}

fn committed(c: &GroupCoordinator, group: &str, partition: i32) -> Option<i64> {
    c.fetch_offsets(group, Some(&[("t".to_string(), vec![partition])]))[0].2.as_ref().map(|v| v.offset)
}

/// A txn commit made durable at once; returns its output.
fn txn_durable(c: &mut GroupCoordinator, group: &str, offsets: &[(i32, i64)], now: i64) -> Output {
    let (codes, out) = c.txn_commit(txn_req(group, offsets), now);
    assert!(codes.iter().all(|&e| e == NONE), "{codes:?}");
    durable(c, &out, now);
    out
}

#[test]
fn txn_offsets_are_written_as_the_producers_batch_and_pending_until_commit() {
    let mut c = coord();
    let (codes, out) = c.txn_commit(txn_req("g", &[(0, 10), (1, 20)]), 5);
    assert_eq!(codes, vec![NONE, NONE]);
    assert_eq!(out.writes.len(), 1, "one batch");
    assert_eq!(out.writes[0].producer, Some((PID, 3)));
    assert_eq!(out.writes[0].partition, c.partition_for("g"));
    assert_eq!(out.records().count(), 2);
    assert!(c.has_pending_commit("g", "t", 0), "in flight counts as pending");
    durable(&mut c, &out, 5);
    assert_eq!(committed(&c, "g", 0), None, "invisible until the transaction commits");
    assert!(c.has_pending_commit("g", "t", 0));
    assert!(!c.has_pending_commit("g", "t", 2));
    assert_eq!(c.open_txns("g"), vec![PID]);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert_eq!(committed(&c, "g", 0), Some(10));
    assert_eq!(committed(&c, "g", 1), Some(20));
    assert!(!c.has_pending_commit("g", "t", 0));
    assert!(c.open_txns("g").is_empty());
}

#[test]
fn plain_commits_have_no_producer() {
    let mut c = coord();
    let out = plain(&mut c, "g", 0, 1, 0);
    assert_eq!(out.writes[0].producer, None);
    assert!(c.has_pending_commit("g", "t", 0), "a plain commit in flight is not stable either");
    durable(&mut c, &out, 0);
    assert!(!c.has_pending_commit("g", "t", 0));
}

#[test]
fn an_aborted_transaction_drops_its_offsets() {
    let mut c = coord();
    plain_durable(&mut c, "g", 0, 5, 0);
    txn_durable(&mut c, "g", &[(0, 10)], 1);
    c.complete_txn(c.partition_for("g"), PID, false);
    assert_eq!(committed(&c, "g", 0), Some(5));
    assert!(!c.has_pending_commit("g", "t", 0));
    // Another producer's marker, or a marker on another partition, changes nothing.
    txn_durable(&mut c, "g", &[(0, 11)], 2);
    c.complete_txn(c.partition_for("g"), PID + 1, true);
    c.complete_txn(c.partition_for("g") + 1, PID, true);
    assert_eq!(committed(&c, "g", 0), Some(5));
    assert!(c.has_pending_commit("g", "t", 0));
}

#[test]
fn a_later_plain_commit_wins_over_an_earlier_transactional_one() {
    let mut c = coord();
    txn_durable(&mut c, "g", &[(0, 10), (1, 10)], 1);
    plain_durable(&mut c, "g", 0, 50, 2);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert_eq!(committed(&c, "g", 0), Some(50), "the plain commit is later in the log");
    assert_eq!(committed(&c, "g", 1), Some(10));
    // And a transactional commit written after a plain one replaces it.
    plain_durable(&mut c, "g", 2, 1, 3);
    txn_durable(&mut c, "g", &[(2, 2)], 4);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert_eq!(committed(&c, "g", 2), Some(2));
}

#[test]
fn a_marker_while_the_write_is_in_flight_applies_when_it_lands() {
    let mut c = coord();
    let (_, out) = c.txn_commit(txn_req("g", &[(0, 10)]), 1);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert_eq!(committed(&c, "g", 0), None);
    durable(&mut c, &out, 2);
    assert_eq!(committed(&c, "g", 0), Some(10));
    assert!(!c.has_pending_commit("g", "t", 0));

    let (_, out) = c.txn_commit(txn_req("g", &[(0, 20)]), 3);
    c.complete_txn(c.partition_for("g"), PID, false);
    durable(&mut c, &out, 4);
    assert_eq!(committed(&c, "g", 0), Some(10));
    assert!(!c.has_pending_commit("g", "t", 0), "aborted before it landed: never pending");
}

#[test]
fn a_failed_write_leaves_nothing_pending() {
    let mut c = coord();
    let (_, out) = c.txn_commit(txn_req("g", &[(0, 10)]), 1);
    c.complete_write(out.writes[0].id, KAFKA_STORAGE_ERROR, 1);
    assert!(!c.has_pending_commit("g", "t", 0));
    assert!(c.open_txns("g").is_empty());
}

#[test]
fn validation_follows_kafkas_classic_group_rules() {
    let mut c = coord();
    let mut req = txn_req("", &[(0, 1)]);
    assert_eq!(c.txn_commit(req.clone(), 0).0, vec![INVALID_GROUP_ID]);
    req.group_id = "new".into();
    req.generation = 3;
    req.member_id = "m".into();
    assert_eq!(c.txn_commit(req.clone(), 0).0, vec![ILLEGAL_GENERATION], "unknown group with a generation");
    assert!(c.group("new").is_none());
    let mut big = txn_req("new", &[(0, 1), (1, 2)]);
    big.offsets[1].4 = Some("x".repeat(5000));
    let (codes, out) = c.txn_commit(big, 0);
    assert_eq!(codes, vec![NONE, OFFSET_METADATA_TOO_LARGE], "a simple group is created");
    assert_eq!(out.records().count(), 1);

    // A real group: member checks apply when member fields are given.
    let (member, generation) = stable_group(&mut c, "g");
    let with = |generation: i32, member: &str, instance: Option<&str>| TxnCommitRequest {
        generation,
        member_id: member.into(),
        group_instance_id: instance.map(String::from),
        ..txn_req("g", &[(0, 1)])
    };
    assert_eq!(c.txn_commit(with(generation, "nobody", None), 1).0, vec![UNKNOWN_MEMBER_ID]);
    assert_eq!(c.txn_commit(with(generation + 1, &member, None), 1).0, vec![ILLEGAL_GENERATION]);
    assert_eq!(c.txn_commit(with(generation, &member, Some("i")), 1).0, vec![UNKNOWN_MEMBER_ID], "unknown instance");
    assert_eq!(c.txn_commit(with(generation, &member, None), 1).0, vec![NONE]);
    // Old clients (v0-2) send no member fields: accepted even by a non-empty group.
    assert_eq!(c.txn_commit(with(-1, "", None), 1).0, vec![NONE]);
    // A group being deleted is not available.
    let mut other = coord();
    txn_durable(&mut other, "d", &[(0, 1)], 0);
    other.complete_txn(other.partition_for("d"), PID, true);
    let (code, _) = other.delete_group("d");
    assert_eq!(code, NONE);
    assert_eq!(other.txn_commit(txn_req("d", &[(0, 1)]), 1).0, vec![COORDINATOR_NOT_AVAILABLE]);
}

#[test]
fn a_static_member_with_another_id_is_fenced() {
    let mut c = coord();
    let join = JoinRequest { group_instance_id: Some("i".into()), ..join_req("g") };
    let out = c.join(join, 1, 0);
    let out2 = c.tick(1);
    let r = out.joins.iter().chain(out2.joins.iter()).find(|(t, _)| *t == 1).map(|(_, r)| r.clone()).expect("joined");
    let req = TxnCommitRequest {
        generation: r.generation,
        member_id: "someone-else".into(),
        group_instance_id: Some("i".into()),
        ..txn_req("g", &[(0, 1)])
    };
    assert_eq!(c.txn_commit(req, 2).0, vec![FENCED_INSTANCE_ID]);
}

fn join_req(group: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: String::new(),
        group_instance_id: None,
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: false,
    }
}

/// A one-member Stable group; returns (member id, generation).
fn stable_group(c: &mut GroupCoordinator, group: &str) -> (String, i32) {
    let mut out = c.join(join_req(group), 1, 0);
    out.extend(c.tick(1));
    let r = out.joins.iter().find(|(t, _)| *t == 1).map(|(_, r)| r.clone()).expect("joined");
    let sync = SyncRequest {
        group_id: group.into(),
        generation: r.generation,
        member_id: r.member_id.clone(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![],
    };
    let out = c.sync(sync, 2, 1);
    durable(c, &out, 1);
    (r.member_id, r.generation)
}

#[test]
fn open_transactions_keep_offsets_and_groups_from_expiring() {
    let mut c = coord_with(GroupConfig { offsets_retention_ms: 1_000, ..Default::default() });
    plain_durable(&mut c, "g", 0, 5, 0);
    txn_durable(&mut c, "g", &[(0, 10)], 0);
    txn_durable(&mut c, "h", &[(0, 10)], 0);
    let out = c.tick(10_000);
    assert_eq!(out.records().count(), 0, "nothing expires while a transaction is open");
    assert!(c.group("h").is_some(), "a group with only pending offsets stays");
    c.complete_txn(c.partition_for("h"), PID, false);
    c.complete_txn(c.partition_for("g"), PID, false);
    let out = c.tick(10_001);
    assert_eq!(out.records().count(), 1, "g's offset expires now");
    assert!(c.group("h").is_none(), "h had never a generation: forgotten");
}

#[test]
fn deleting_a_group_removes_its_pending_offsets() {
    let mut c = coord();
    txn_durable(&mut c, "g", &[(0, 10)], 0);
    let (code, out) = c.delete_group("g");
    assert_eq!(code, NONE);
    assert_eq!(out.records().filter(|r| matches!(r, GroupRecord::Offset { value: None, .. })).count(), 1);
    durable(&mut c, &out, 1);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert!(c.group("g").is_none());
    assert_eq!(committed(&c, "g", 0), None);
}

#[test]
fn offset_delete_tombstones_a_pending_partition() {
    let mut c = coord();
    txn_durable(&mut c, "g", &[(0, 10)], 0);
    let (code, codes, out) = c.delete_offsets("g", &[("t".into(), 0)]);
    assert_eq!((code, codes), (NONE, vec![NONE]));
    assert_eq!(out.records().count(), 1);
    durable(&mut c, &out, 1);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert_eq!(committed(&c, "g", 0), None);
}

// ----- Replay ---------------------------------------------------------------

fn offset(group: &str, partition: i32, offset: i64) -> GroupRecord {
    let value = OffsetValue { offset, leader_epoch: 0, metadata: String::new(), commit_timestamp: 0 };
    GroupRecord::Offset { group: group.into(), topic: "t".into(), partition, value: Some(value) }
}

fn txn_batch(pid: i64, records: Vec<GroupRecord>) -> ReplayBatch {
    ReplayBatch::Records { producer_id: pid, transactional: true, records }
}

fn plain_batch(records: Vec<GroupRecord>) -> ReplayBatch {
    ReplayBatch::Records { producer_id: -1, transactional: false, records }
}

fn replay(batches: Vec<ReplayBatch>) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    let p = c.partition_for("g");
    let (ticket, _) = c.begin_load(p);
    for b in batches {
        c.load_batch(p, b, 0);
    }
    assert!(c.finish_load(p, ticket));
    c
}

#[test]
fn replay_commits_on_a_commit_marker() {
    let c = replay(vec![
        plain_batch(vec![offset("g", 0, 1)]),
        txn_batch(PID, vec![offset("g", 0, 10), offset("g", 1, 11)]),
        ReplayBatch::Marker { producer_id: PID, commit: true },
    ]);
    assert_eq!(committed(&c, "g", 0), Some(10));
    assert_eq!(committed(&c, "g", 1), Some(11));
    assert!(!c.has_pending_commit("g", "t", 0));
}

#[test]
fn replay_drops_on_an_abort_marker() {
    let c = replay(vec![
        plain_batch(vec![offset("g", 0, 1)]),
        txn_batch(PID, vec![offset("g", 0, 10)]),
        ReplayBatch::Marker { producer_id: PID, commit: false },
    ]);
    assert_eq!(committed(&c, "g", 0), Some(1));
    assert!(!c.has_pending_commit("g", "t", 0));
}

#[test]
fn replay_without_a_marker_leaves_offsets_pending_for_a_live_marker() {
    let mut c = replay(vec![txn_batch(PID, vec![offset("g", 0, 10)]), txn_batch(PID + 1, vec![offset("g", 1, 20)])]);
    assert_eq!(committed(&c, "g", 0), None);
    assert!(c.has_pending_commit("g", "t", 0));
    assert_eq!(c.open_txns("g"), vec![PID, PID + 1]);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert_eq!(committed(&c, "g", 0), Some(10));
    assert!(c.has_pending_commit("g", "t", 1));
}

#[test]
fn replay_keeps_a_later_plain_commit_over_an_earlier_transactional_one() {
    let c = replay(vec![
        txn_batch(PID, vec![offset("g", 0, 10)]),
        plain_batch(vec![offset("g", 0, 50)]),
        ReplayBatch::Marker { producer_id: PID, commit: true },
    ]);
    assert_eq!(committed(&c, "g", 0), Some(50));
}

#[test]
fn replay_of_a_tombstone_drops_pending_offsets() {
    let c = replay(vec![
        txn_batch(PID, vec![offset("g", 0, 10)]),
        plain_batch(vec![GroupRecord::Offset { group: "g".into(), topic: "t".into(), partition: 0, value: None }]),
        ReplayBatch::Marker { producer_id: PID, commit: true },
    ]);
    assert_eq!(committed(&c, "g", 0), None);
}

#[test]
fn live_writes_after_a_replay_are_later_in_log_order() {
    let mut c = replay(vec![txn_batch(PID, vec![offset("g", 0, 10)])]);
    plain_durable(&mut c, "g", 0, 50, 1);
    c.complete_txn(c.partition_for("g"), PID, true);
    assert_eq!(committed(&c, "g", 0), Some(50));
}
