//! The group state machine driven directly: no sockets, no clocks.

use bytes::Bytes;
use strom_coordinator::errors::*;
use strom_coordinator::group::{CommitRequest, JoinRequest, JoinResponse, Output, State, SyncRequest};
use strom_coordinator::records::{GroupRecord, OffsetValue};
use strom_coordinator::{GroupConfig, GroupCoordinator, PartitionStatus};

/// A coordinator that owns every partition of `__consumer_offsets`.
fn owning(config: GroupConfig) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(config);
    for p in 0..c.config.offsets_partitions {
        let (ticket, _) = c.begin_load(p);
        assert!(c.finish_load(p, ticket));
    }
    c
}

fn coord() -> GroupCoordinator {
    owning(GroupConfig { initial_rebalance_delay_ms: 100, ..Default::default() })
}

/// Reports every write of `out` durable; returns `out` with what that resolved.
fn durable(c: &mut GroupCoordinator, mut out: Output, now: i64) -> Output {
    let ids: Vec<u64> = out.writes.iter().map(|w| w.id).collect();
    for id in ids {
        let more = c.complete_write(id, NONE, now);
        out.extend(more);
    }
    out
}

fn join_req(member: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: instance.map(String::from),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"meta")), ("roundrobin".into(), Bytes::new())],
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: true,
    }
}

fn only_join(out: &Output, token: u64) -> JoinResponse {
    out.joins.iter().find(|(t, _)| *t == token).map(|(_, r)| r.clone()).expect("join answered")
}

/// Joins with KIP-394's two steps; returns the member id. The join stays pending.
fn join_two_step(c: &mut GroupCoordinator, token: u64, now: i64, instance: Option<&str>) -> (String, Output) {
    if instance.is_some() {
        let out = c.join(join_req("", instance), token, now);
        let id = c.group("g").unwrap().members.keys().last().unwrap().clone();
        return (id, out);
    }
    let out = c.join(join_req("", None), token, now);
    let r = only_join(&out, token);
    assert_eq!(r.error, MEMBER_ID_REQUIRED);
    let out = c.join(join_req(&r.member_id, None), token, now);
    (r.member_id, out)
}

/// SyncGroup whose writes are made durable at once.
fn sync(c: &mut GroupCoordinator, member: &str, generation: i32, token: u64, assignments: Vec<(String, Bytes)>, now: i64) -> Output {
    let out = sync_req(c, member, generation, token, assignments, now);
    durable(c, out, now)
}

fn sync_req(c: &mut GroupCoordinator, member: &str, generation: i32, token: u64, assignments: Vec<(String, Bytes)>, now: i64) -> Output {
    c.sync(
        SyncRequest {
            group_id: "g".into(),
            generation,
            member_id: member.into(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments,
        },
        token,
        now,
    )
}

#[test]
fn two_members_form_a_group_after_the_initial_delay() {
    let mut c = coord();
    let (a, out) = join_two_step(&mut c, 1, 0, None);
    assert!(out.joins.is_empty(), "waits for the initial delay");
    let (b, out) = join_two_step(&mut c, 2, 50, None);
    assert!(out.joins.is_empty());
    assert!(c.tick(120).joins.is_empty(), "a new member extended the delay");
    let out = c.tick(150);
    let ra = only_join(&out, 1);
    let rb = only_join(&out, 2);
    assert_eq!((ra.error, rb.error), (NONE, NONE));
    assert_eq!(ra.generation, 1);
    assert_eq!(ra.protocol_name.as_deref(), Some("range"));
    assert_eq!(ra.leader, a);
    assert_eq!(ra.members.len(), 2, "the leader sees every member");
    assert!(rb.members.is_empty());
    // Follower syncs first and waits; the leader's sync answers both.
    let out = sync(&mut c, &b, 1, 3, vec![], 160);
    assert!(out.syncs.is_empty());
    let out = sync(&mut c, &a, 1, 4, vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))], 170);
    assert_eq!(out.syncs.len(), 2);
    assert!(out.syncs.iter().any(|(t, r)| *t == 3 && r.assignment == Bytes::from_static(b"B")));
    assert_eq!(out.records().count(), 1, "group metadata is persisted");
    assert_eq!(c.group("g").unwrap().state, State::Stable);
    assert_eq!(c.heartbeat("g", 1, &a, None, 200), NONE);
    assert_eq!(c.heartbeat("g", 0, &a, None, 200), ILLEGAL_GENERATION);
    assert_eq!(c.heartbeat("g", 1, "nobody", None, 200), UNKNOWN_MEMBER_ID);
}

#[test]
fn an_expired_member_is_removed_and_the_group_rebalances() {
    let mut c = coord();
    let (a, _) = join_two_step(&mut c, 1, 0, None);
    let (b, _) = join_two_step(&mut c, 2, 0, None);
    c.tick(200);
    sync(&mut c, &a, 1, 3, vec![], 200);
    sync(&mut c, &b, 1, 4, vec![], 200);
    // a keeps heartbeating, b goes silent.
    for t in (1_000..12_000).step_by(1_000) {
        let code = c.heartbeat("g", 1, &a, None, t);
        assert!(code == NONE || code == REBALANCE_IN_PROGRESS);
        c.tick(t);
    }
    let g = c.group("g").unwrap();
    assert!(!g.members.contains_key(&b));
    assert_eq!(g.state, State::PreparingRebalance);
    assert_eq!(c.heartbeat("g", 1, &a, None, 12_000), REBALANCE_IN_PROGRESS);
    let out = c.join(join_req(&a, None), 5, 12_001);
    let r = only_join(&out, 5);
    assert_eq!((r.error, r.generation, r.members.len()), (NONE, 2, 1));
}

#[test]
fn a_rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut c = coord();
    let (a, _) = join_two_step(&mut c, 1, 0, None);
    let (b, _) = join_two_step(&mut c, 2, 0, None);
    c.tick(200);
    sync(&mut c, &a, 1, 3, vec![], 200);
    sync(&mut c, &b, 1, 4, vec![], 200);
    // a rejoins (the leader always triggers a rebalance); b never does.
    let out = c.join(join_req(&a, None), 5, 300);
    assert!(out.joins.is_empty());
    c.heartbeat("g", 1, &b, None, 5_000);
    let out = c.tick(20_301);
    let r = only_join(&out, 5);
    assert_eq!((r.generation, r.members.len()), (2, 1));
}

#[test]
fn static_member_rejoin_in_stable_causes_no_rebalance() {
    let mut c = coord();
    let (a, _) = join_two_step(&mut c, 1, 0, Some("inst-a"));
    let (b, _) = join_two_step(&mut c, 2, 0, Some("inst-b"));
    c.tick(200);
    sync(&mut c, &a, 1, 3, vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))], 200);
    sync(&mut c, &b, 1, 4, vec![], 200);
    // b restarts: a new process joins with the same instance id and no member id.
    let out = c.join(join_req("", Some("inst-b")), 5, 1_000);
    assert!(out.joins.is_empty(), "answered once the new member id is durable");
    let out = durable(&mut c, out, 1_000);
    let r = only_join(&out, 5);
    assert_eq!(r.error, NONE);
    assert_eq!(r.generation, 1, "same generation: no rebalance");
    assert_ne!(r.member_id, b);
    assert_eq!(c.group("g").unwrap().state, State::Stable);
    let out = sync(&mut c, &r.member_id, 1, 6, vec![], 1_001);
    assert_eq!(out.syncs[0].1.assignment, Bytes::from_static(b"B"));
    // The old member id is fenced.
    assert_eq!(c.heartbeat("g", 1, &b, Some("inst-b"), 1_002), FENCED_INSTANCE_ID);
}

#[test]
fn group_max_size_and_protocol_checks() {
    let mut c = owning(GroupConfig { initial_rebalance_delay_ms: 0, max_size: 1, ..Default::default() });
    let (_a, _) = join_two_step(&mut c, 1, 0, None);
    let out = c.join(join_req("", None), 2, 1);
    let id = only_join(&out, 2).member_id;
    let out = c.join(join_req(&id, None), 3, 1);
    assert_eq!(only_join(&out, 3).error, GROUP_MAX_SIZE_REACHED);
    let mut other = join_req("", None);
    other.protocol_type = "connect".into();
    other.require_known_member_id = false;
    let out = c.join(other, 4, 2);
    assert_eq!(only_join(&out, 4).error, INCONSISTENT_GROUP_PROTOCOL);
    let mut bad = join_req("", None);
    bad.session_timeout_ms = 10;
    assert_eq!(only_join(&c.join(bad, 5, 3), 5).error, INVALID_SESSION_TIMEOUT);
}

#[test]
fn commits_fetch_replay_and_delete() {
    let mut c = coord();
    let (codes, out) = c.commit(
        CommitRequest {
            group_id: "g".into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![("t".into(), 0, 10, 0, Some("m".into())), ("t".into(), 1, 20, 0, None)],
        },
        5,
    );
    assert_eq!(codes, vec![NONE, NONE]);
    assert_eq!(out.records().count(), 2);
    let out = durable(&mut c, out, 5);
    let fetched = c.fetch_offsets("g", Some(&[("t".to_string(), vec![0, 2])]));
    assert_eq!(fetched[0].2.as_ref().map(|v| v.offset), Some(10));
    assert!(fetched[1].2.is_none());
    // Replaying the records into a fresh coordinator restores the offsets.
    let mut d = GroupCoordinator::new(GroupConfig::default());
    let p = d.partition_for("g");
    let (ticket, _) = d.begin_load(p);
    for r in out.records() {
        let (k, v) = r.encode();
        d.load(GroupRecord::decode(&k, v.as_deref()).unwrap().unwrap(), 100);
    }
    assert!(d.finish_load(p, ticket));
    assert_eq!(d.fetch_offsets("g", None).len(), 2);
    // A group with members cannot be deleted; an empty one can.
    let (_a, _) = join_two_step(&mut c, 1, 10, None);
    assert_eq!(c.delete_group("g").0, NON_EMPTY_GROUP);
    let (code, out) = d.delete_group("g");
    assert_eq!(code, NONE);
    assert_eq!(d.describe("g").unwrap().state, State::Dead, "dead while its tombstone is in flight");
    assert_eq!(d.delete_group("g").0, GROUP_ID_NOT_FOUND);
    durable(&mut d, out, 101);
    assert!(d.describe("g").is_none());
    assert_eq!(d.delete_group("g").0, GROUP_ID_NOT_FOUND);
}

#[test]
fn offsets_of_empty_groups_expire() {
    let mut c = owning(GroupConfig { offsets_retention_ms: 1_000, ..Default::default() });
    let (_, out) = c.commit(
        CommitRequest {
            group_id: "g".into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![("t".into(), 0, 1, 0, None)],
        },
        0,
    );
    durable(&mut c, out, 0);
    assert_eq!(c.tick(500).records().count(), 0);
    let out = c.tick(1_000);
    assert_eq!(out.records().count(), 1);
    assert_eq!(c.tick(1_100).records().count(), 0, "no second tombstone while the first is in flight");
    assert_eq!(c.fetch_offsets("g", None).len(), 1, "still there until the tombstone is durable");
    durable(&mut c, out, 1_200);
    assert!(c.fetch_offsets("g", None).is_empty());
}

fn simple_commit(c: &mut GroupCoordinator, group: &str, offset: i64, now: i64) -> (Vec<i16>, Output) {
    c.commit(
        CommitRequest {
            group_id: group.into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![("t".into(), 0, offset, 0, None)],
        },
        now,
    )
}

fn committed(c: &GroupCoordinator, group: &str) -> Option<i64> {
    c.fetch_offsets(group, Some(&[("t".to_string(), vec![0])]))[0].2.as_ref().map(|v| v.offset)
}

#[test]
fn a_commit_is_invisible_until_its_write_is_durable() {
    let mut c = coord();
    let (codes, out) = simple_commit(&mut c, "g", 10, 0);
    assert_eq!(codes, vec![NONE]);
    assert_eq!(out.writes.len(), 1);
    assert_eq!(out.writes[0].partition, c.partition_for("g"));
    assert_eq!(committed(&c, "g"), None, "not durable yet");
    assert!(c.fetch_offsets("g", None).is_empty());
    let done = c.complete_write(out.writes[0].id, NONE, 1);
    assert_eq!(done.resolved, vec![(out.writes[0].id, NONE)]);
    assert_eq!(committed(&c, "g"), Some(10));
}

#[test]
fn a_failed_commit_changes_nothing() {
    let mut c = coord();
    let (_, out) = simple_commit(&mut c, "g", 10, 0);
    durable(&mut c, out, 0);
    let (codes, out) = simple_commit(&mut c, "g", 20, 1);
    assert_eq!(codes, vec![NONE]);
    let id = out.writes[0].id;
    let done = c.complete_write(id, KAFKA_STORAGE_ERROR, 2);
    assert_eq!(done.resolved, vec![(id, KAFKA_STORAGE_ERROR)]);
    assert_eq!(committed(&c, "g"), Some(10), "the failed commit is not visible");
    // Reporting it again changes nothing either.
    assert!(c.complete_write(id, NONE, 3).resolved.is_empty());
    assert_eq!(committed(&c, "g"), Some(10));
    // A simple commit that fails for a new group leaves no group behind.
    let (_, out) = simple_commit(&mut c, "fresh", 5, 4);
    c.complete_write(out.writes[0].id, KAFKA_STORAGE_ERROR, 4);
    assert_eq!(committed(&c, "fresh"), None);
    assert!(c.tick(5).writes.is_empty());
    assert!(c.describe("fresh").is_none());
}

#[test]
fn writes_of_a_partition_take_effect_in_order() {
    let mut c = coord();
    let (_, first) = simple_commit(&mut c, "g", 10, 0);
    let (_, second) = simple_commit(&mut c, "g", 20, 1);
    let (a, b) = (first.writes[0].id, second.writes[0].id);
    // The later write is reported first: it waits for the earlier one.
    assert!(c.complete_write(b, NONE, 2).resolved.is_empty());
    assert_eq!(committed(&c, "g"), None);
    let done = c.complete_write(a, NONE, 3);
    assert_eq!(done.resolved, vec![(a, NONE), (b, NONE)]);
    assert_eq!(committed(&c, "g"), Some(20), "the later commit wins, as on replay");
    // An earlier failure does not hold back or undo a later success.
    let (_, third) = simple_commit(&mut c, "g", 30, 4);
    let (_, fourth) = simple_commit(&mut c, "g", 40, 5);
    c.complete_write(fourth.writes[0].id, NONE, 6);
    let done = c.complete_write(third.writes[0].id, KAFKA_STORAGE_ERROR, 6);
    assert_eq!(done.resolved, vec![(third.writes[0].id, KAFKA_STORAGE_ERROR), (fourth.writes[0].id, NONE)]);
    assert_eq!(committed(&c, "g"), Some(40));
}

#[test]
fn append_errors_map_as_kafka() {
    assert_eq!(commit_error(KAFKA_STORAGE_ERROR), NOT_COORDINATOR);
    assert_eq!(commit_error(NOT_LEADER_OR_FOLLOWER), NOT_COORDINATOR);
    assert_eq!(commit_error(NOT_ENOUGH_REPLICAS), COORDINATOR_NOT_AVAILABLE);
    assert_eq!(commit_error(UNKNOWN_TOPIC_OR_PARTITION), COORDINATOR_NOT_AVAILABLE);
    assert_eq!(commit_error(RECORD_LIST_TOO_LARGE), INVALID_COMMIT_OFFSET_SIZE);
    assert_eq!(commit_error(MESSAGE_TOO_LARGE), INVALID_COMMIT_OFFSET_SIZE);
    assert_eq!(commit_error(87), UNKNOWN_SERVER_ERROR);
    assert_eq!(group_write_error(RECORD_LIST_TOO_LARGE), UNKNOWN_SERVER_ERROR);
    assert_eq!(group_write_error(REQUEST_TIMED_OUT), REBALANCE_IN_PROGRESS);
    assert_eq!(write_error(NONE), NONE);
}

/// Two members joined and past the initial delay; returns (leader, follower).
fn formed(c: &mut GroupCoordinator) -> (String, String) {
    let (a, _) = join_two_step(c, 1, 0, None);
    let (b, _) = join_two_step(c, 2, 0, None);
    let out = c.tick(200);
    assert_eq!(out.joins.len(), 2);
    (a, b)
}

#[test]
fn an_assignment_takes_effect_only_when_durable() {
    let mut c = coord();
    let (a, b) = formed(&mut c);
    assert!(sync_req(&mut c, &b, 1, 3, vec![], 210).syncs.is_empty());
    let out = sync_req(&mut c, &a, 1, 4, vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))], 220);
    assert!(out.syncs.is_empty(), "answered once the assignment is durable");
    assert_eq!(out.writes.len(), 1);
    assert_eq!(c.group("g").unwrap().state, State::CompletingRebalance);
    // The leader retrying meanwhile writes nothing more.
    let again = sync_req(&mut c, &a, 1, 5, vec![], 230);
    assert!(again.writes.is_empty());
    let done = c.complete_write(out.writes[0].id, NONE, 240);
    assert_eq!(c.group("g").unwrap().state, State::Stable);
    assert!(done.syncs.iter().any(|(t, r)| *t == 3 && r.error == NONE && r.assignment == Bytes::from_static(b"B")));
    assert!(done.syncs.iter().any(|(t, r)| *t == 5 && r.error == NONE && r.assignment == Bytes::from_static(b"A")));
}

#[test]
fn a_failed_assignment_write_answers_the_error_and_rebalances() {
    let mut c = coord();
    let (a, b) = formed(&mut c);
    sync_req(&mut c, &b, 1, 3, vec![], 210);
    let out = sync_req(&mut c, &a, 1, 4, vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))], 220);
    let done = c.complete_write(out.writes[0].id, KAFKA_STORAGE_ERROR, 230);
    assert_eq!(done.syncs.len(), 2);
    assert!(done.syncs.iter().all(|(_, r)| r.error == NOT_COORDINATOR && r.assignment.is_empty()));
    let g = c.group("g").unwrap();
    assert_eq!(g.state, State::PreparingRebalance);
    assert!(g.members.values().all(|m| m.assignment.is_empty()));
}

#[test]
fn a_static_rejoin_whose_write_fails_is_undone() {
    let mut c = coord();
    let (a, _) = join_two_step(&mut c, 1, 0, Some("inst-a"));
    let (b, _) = join_two_step(&mut c, 2, 0, Some("inst-b"));
    c.tick(200);
    sync(&mut c, &a, 1, 3, vec![(a.clone(), Bytes::from_static(b"A")), (b.clone(), Bytes::from_static(b"B"))], 200);
    sync(&mut c, &b, 1, 4, vec![], 200);
    let out = c.join(join_req("", Some("inst-b")), 5, 1_000);
    assert!(out.joins.is_empty());
    let done = c.complete_write(out.writes[0].id, NOT_LEADER_OR_FOLLOWER, 1_001);
    let r = only_join(&done, 5);
    assert_eq!(r.error, NOT_COORDINATOR);
    let g = c.group("g").unwrap();
    assert!(g.members.contains_key(&b), "the old member id is back");
    assert_eq!(g.members.len(), 2);
    assert_eq!(g.members[&b].assignment, Bytes::from_static(b"B"));
    assert_eq!(c.heartbeat("g", 1, &b, Some("inst-b"), 1_002), NONE);
}

#[test]
fn a_failed_group_deletion_leaves_the_group() {
    let mut c = coord();
    let (_, out) = simple_commit(&mut c, "g", 10, 0);
    durable(&mut c, out, 0);
    let (code, out) = c.delete_group("g");
    assert_eq!(code, NONE);
    assert_eq!(out.records().count(), 2, "offset and group tombstones");
    c.complete_write(out.writes[0].id, KAFKA_STORAGE_ERROR, 1);
    assert_eq!(c.describe("g").unwrap().state, State::Empty);
    assert_eq!(committed(&c, "g"), Some(10));
}

#[test]
fn a_group_deletion_also_tombstones_commits_in_flight() {
    let mut c = coord();
    let (_, commit) = simple_commit(&mut c, "g", 10, 0);
    let (code, delete) = c.delete_group("g");
    assert_eq!(code, NONE);
    assert!(delete.records().any(|r| matches!(r, GroupRecord::Offset { value: None, .. })));
    assert_eq!(simple_commit(&mut c, "g", 11, 1).0, vec![COORDINATOR_NOT_AVAILABLE], "no commits to a dying group");
    durable(&mut c, commit, 2);
    durable(&mut c, delete, 2);
    assert!(c.describe("g").is_none());
    assert_eq!(committed(&c, "g"), None);
}

#[test]
fn only_owned_partitions_are_served() {
    let mut c = GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 100, ..Default::default() });
    let p = c.partition_for("g");
    assert_eq!(c.status(p), PartitionStatus::NotOwned);
    assert_eq!(c.check("g"), NOT_COORDINATOR);
    assert_eq!(only_join(&c.join(join_req("", None), 1, 0), 1).error, NOT_COORDINATOR);
    assert_eq!(simple_commit(&mut c, "g", 1, 0).0, vec![NOT_COORDINATOR]);
    assert_eq!(c.heartbeat("g", 1, "m", None, 0), NOT_COORDINATOR);
    assert_eq!(c.delete_group("g").0, NOT_COORDINATOR);
    assert_eq!(c.delete_offsets("g", &[("t".into(), 0)]).0, NOT_COORDINATOR);
    assert_eq!(c.leave("g", &[("m".into(), None)], 0).0, vec![NOT_COORDINATOR]);
    assert_eq!(sync_req(&mut c, "m", 1, 2, vec![], 0).syncs[0].1.error, NOT_COORDINATOR);
    // While loading: COORDINATOR_LOAD_IN_PROGRESS, and the tick leaves its groups alone.
    let (ticket, _) = c.begin_load(p);
    assert_eq!(c.check("g"), COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(only_join(&c.join(join_req("", None), 3, 0), 3).error, COORDINATOR_LOAD_IN_PROGRESS);
    let old = OffsetValue { offset: 7, leader_epoch: 0, metadata: String::new(), commit_timestamp: 0 };
    c.load(GroupRecord::Offset { group: "g".into(), topic: "t".into(), partition: 0, value: Some(old) }, 0);
    let far = 30 * 24 * 3_600_000;
    assert!(c.tick(far).writes.is_empty(), "no expiry for a partition not owned");
    assert!(c.list().is_empty());
    assert!(c.finish_load(p, ticket));
    assert!(!c.finish_load(p, ticket), "a ticket ends one load only");
    assert_eq!(c.check("g"), NONE);
    assert_eq!(committed(&c, "g"), Some(7));
    assert_eq!(c.list().len(), 1);
    assert_eq!(c.tick(far).records().count(), 1, "owned: the old offset expires");
}

#[test]
fn unloading_answers_waiters_and_drops_the_partition() {
    let mut c = coord();
    let p = c.partition_for("g");
    let (_a, _) = join_two_step(&mut c, 1, 0, None);
    let (_, commit) = simple_commit(&mut c, "other-group", 5, 0);
    let out = c.unload(p);
    assert_eq!(only_join(&out, 1).error, NOT_COORDINATOR, "the waiting JoinGroup is answered");
    assert!(c.group("g").is_none());
    assert!(!c.owns(p));
    assert_eq!(c.check("g"), NOT_COORDINATOR);
    // Writes of other partitions are untouched.
    if c.partition_for("other-group") != p {
        durable(&mut c, commit, 1);
        assert_eq!(committed(&c, "other-group"), Some(5));
    }
    // A write in flight when its partition is unloaded resolves as NOT_COORDINATOR.
    let q = c.partition_for("other-group");
    let (_, inflight) = simple_commit(&mut c, "other-group", 6, 2);
    let out = c.unload(q);
    assert_eq!(out.resolved, vec![(inflight.writes[0].id, NOT_COORDINATOR)]);
    assert!(c.complete_write(inflight.writes[0].id, NONE, 3).resolved.is_empty());
}

#[test]
fn reloading_a_partition_replaces_its_groups() {
    let mut c = coord();
    let (_, out) = simple_commit(&mut c, "g", 10, 0);
    durable(&mut c, out, 0);
    let p = c.partition_for("g");
    let (ticket, _) = c.begin_load(p);
    assert!(c.group("g").is_none(), "a fresh load starts empty");
    assert!(c.finish_load(p, ticket));
    assert_eq!(committed(&c, "g"), None);
    // An unload during a load wins: the load does not mark the partition owned.
    let (ticket, _) = c.begin_load(p);
    c.unload(p);
    assert!(!c.finish_load(p, ticket));
    assert!(!c.owns(p));
}
