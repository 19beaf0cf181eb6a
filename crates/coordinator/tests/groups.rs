//! The group state machine driven directly: no sockets, no clocks.

use bytes::Bytes;
use strom_coordinator::errors::*;
use strom_coordinator::group::{CommitRequest, JoinRequest, JoinResponse, Output, State, SyncRequest};
use strom_coordinator::records::GroupRecord;
use strom_coordinator::{GroupConfig, GroupCoordinator};

fn coord() -> GroupCoordinator {
    GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 100, ..Default::default() })
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

fn sync(c: &mut GroupCoordinator, member: &str, generation: i32, token: u64, assignments: Vec<(String, Bytes)>, now: i64) -> Output {
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
    assert_eq!(out.records.len(), 1, "group metadata is persisted");
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
    let mut c = GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 0, max_size: 1, ..Default::default() });
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
    assert_eq!(out.records.len(), 2);
    let fetched = c.fetch_offsets("g", Some(&[("t".to_string(), vec![0, 2])]));
    assert_eq!(fetched[0].2.as_ref().map(|v| v.offset), Some(10));
    assert!(fetched[1].2.is_none());
    // Replaying the records into a fresh coordinator restores the offsets.
    let mut d = coord();
    for (_, r) in &out.records {
        let (k, v) = r.encode();
        d.load(GroupRecord::decode(&k, v.as_deref()).unwrap().unwrap(), 100);
    }
    assert_eq!(d.fetch_offsets("g", None).len(), 2);
    // A group with members cannot be deleted; an empty one can.
    let (_a, _) = join_two_step(&mut c, 1, 10, None);
    assert_eq!(c.delete_group("g").0, NON_EMPTY_GROUP);
    assert_eq!(d.delete_group("g").0, NONE);
    assert_eq!(d.delete_group("g").0, GROUP_ID_NOT_FOUND);
}

#[test]
fn offsets_of_empty_groups_expire() {
    let mut c = GroupCoordinator::new(GroupConfig { offsets_retention_ms: 1_000, ..Default::default() });
    c.commit(
        CommitRequest {
            group_id: "g".into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![("t".into(), 0, 1, 0, None)],
        },
        0,
    );
    assert!(c.tick(500).records.is_empty());
    let out = c.tick(1_000);
    assert_eq!(out.records.len(), 1);
    assert!(c.fetch_offsets("g", None).is_empty());
}
