//! The controller step without sockets: requests in, records and answers out.

use strom_metadata::{MetadataImage, MetadataRecord};
use uuid::Uuid;

use super::*;

fn config() -> ControllerConfig {
    ControllerConfig {
        session_timeout_ms: 9000,
        num_partitions: 1,
        default_replication_factor: 1,
        offsets_replication_factor: 3,
        auto_leader_rebalance: false,
        ..ControllerConfig::default()
    }
}

/// Applies a step's records, as the quorum would once committed.
fn run(c: &mut Controller, img: &mut MetadataImage, req: Request, now: i64) -> Answer {
    let (records, answer) = c.step(img, req, now);
    *img = img.apply(&records);
    img.offset += 1;
    answer
}

fn register(c: &mut Controller, img: &mut MetadataImage, id: i32, rack: Option<&str>, now: i64) -> i64 {
    let req = Request::Register {
        id,
        incarnation: Uuid::new_v4(),
        cluster_id: None,
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
        rack: rack.map(String::from),
    };
    let Answer::Register(Ok(epoch)) = run(c, img, req, now) else { panic!("registration failed") };
    let offset = img.offset;
    let hb = Request::Heartbeat { id, epoch, metadata_offset: offset, want_fence: false, want_shutdown: false };
    let Answer::Heartbeat(h) = run(c, img, hb, now) else { panic!() };
    assert!(!h.is_fenced && h.is_caught_up);
    epoch
}

fn cluster(n: i32) -> (Controller, MetadataImage, Vec<i64>) {
    let mut c = Controller::new(config(), 7);
    let mut img = MetadataImage::default().apply(&c.bootstrap(&MetadataImage::default(), || "cid".into()));
    let epochs = (1..=n).map(|id| register(&mut c, &mut img, id, None, 0)).collect();
    (c, img, epochs)
}

fn create(c: &mut Controller, img: &mut MetadataImage, name: &str, partitions: i32, rf: i16) -> Result<CreatedTopic, Failure> {
    let t =
        NewTopic { name: name.into(), partitions, replication_factor: rf, assignments: Default::default(), configs: Default::default() };
    match run(c, img, Request::CreateTopics { topics: vec![t], validate_only: false }, 0) {
        Answer::CreateTopics(mut v) => v.remove(0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn brokers_start_fenced_and_unfence_once_caught_up() {
    let mut c = Controller::new(config(), 7);
    let mut img = MetadataImage::default();
    let req = Request::Register { id: 1, incarnation: Uuid::new_v4(), cluster_id: None, host: "h".into(), port: 1, rack: None };
    let Answer::Register(Ok(epoch)) = run(&mut c, &mut img, req, 0) else { panic!() };
    assert!(img.brokers[&1].fenced);
    // Behind the registration: stays fenced.
    let Answer::Heartbeat(h) =
        run(&mut c, &mut img, Request::Heartbeat { id: 1, epoch, metadata_offset: 0, want_fence: false, want_shutdown: false }, 1)
    else {
        panic!()
    };
    assert!(h.is_fenced && !h.is_caught_up);
    let offset = img.offset;
    let Answer::Heartbeat(h) =
        run(&mut c, &mut img, Request::Heartbeat { id: 1, epoch, metadata_offset: offset, want_fence: false, want_shutdown: false }, 2)
    else {
        panic!()
    };
    assert!(!h.is_fenced);
    assert!(img.is_live(1));
    // A stale epoch is refused.
    let Answer::Heartbeat(h) = run(
        &mut c,
        &mut img,
        Request::Heartbeat { id: 1, epoch: epoch + 7, metadata_offset: 9, want_fence: false, want_shutdown: false },
        3,
    ) else {
        panic!()
    };
    assert_eq!(h.error, ErrorCode::StaleBrokerEpoch.code());
}

#[test]
fn wrong_cluster_id_is_refused() {
    let (mut c, mut img, _) = cluster(1);
    let req =
        Request::Register { id: 2, incarnation: Uuid::new_v4(), cluster_id: Some("other".into()), host: "h".into(), port: 2, rack: None };
    let Answer::Register(Err(f)) = run(&mut c, &mut img, req, 0) else { panic!() };
    assert_eq!(f.error_code(), ErrorCode::InconsistentClusterId);
    assert!(f.message.contains("other") && f.message.contains("cid"));
}

#[test]
fn topics_spread_replicas_and_leaders() {
    let (mut c, mut img, _) = cluster(3);
    let created = create(&mut c, &mut img, "t", 6, 3).unwrap();
    assert_eq!((created.partitions, created.replication_factor), (6, 3));
    let t = img.topic("t").unwrap();
    let mut leaders = std::collections::BTreeMap::new();
    for p in t.partitions.values() {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.len(), 3, "{leaders:?}");
    // More replicas than brokers is refused; defaults larger than the cluster fall back.
    let err = create(&mut c, &mut img, "u", 1, 4).unwrap_err();
    assert_eq!(err.error_code(), ErrorCode::InvalidReplicationFactor);
    let (mut c1, mut img1, _) = cluster(1);
    let offsets = create(&mut c1, &mut img1, crate::groups::OFFSETS_TOPIC, 2, -1).unwrap();
    assert_eq!(offsets.replication_factor, 1);
    assert!(offsets.note.as_deref().is_some_and(|n| n.contains("offsets.topic.replication.factor is 3")));
    assert_eq!(create(&mut c, &mut img, "t", 1, 1).unwrap_err().error_code(), ErrorCode::TopicAlreadyExists);
}

#[test]
fn a_silent_broker_is_fenced_and_its_leaderships_move() {
    let (mut c, mut img, epochs) = cluster(3);
    create(&mut c, &mut img, "t", 3, 3).unwrap();
    // Brokers 1 and 2 keep heartbeating; 3 falls silent.
    for now in [3000, 6000, 9000, 10_000] {
        for id in [1, 2] {
            let offset = img.offset;
            let hb =
                Request::Heartbeat { id, epoch: epochs[id as usize - 1], metadata_offset: offset, want_fence: false, want_shutdown: false };
            run(&mut c, &mut img, hb, now);
        }
        let recs = c.tick(&img, now);
        img = img.apply(&recs);
    }
    assert!(img.brokers[&3].fenced);
    for p in img.topic("t").unwrap().partitions.values() {
        assert_ne!(p.leader, 3);
        assert!(p.leader == 1 || p.leader == 2);
    }
    let moved = img.topic("t").unwrap().partitions.values().filter(|p| p.leader_epoch == 1).count();
    assert_eq!(moved, 1, "exactly the partition 3 led moved, with a new epoch");
}

#[test]
fn controlled_shutdown_moves_leadership_and_return_takes_offline_partitions_back() {
    let (mut c, mut img, epochs) = cluster(2);
    create(&mut c, &mut img, "r2", 2, 2).unwrap();
    create(&mut c, &mut img, "r1", 2, 1).unwrap();
    let offset = img.offset;
    let hb = Request::Heartbeat { id: 1, epoch: epochs[0], metadata_offset: offset, want_fence: false, want_shutdown: true };
    let Answer::Heartbeat(h) = run(&mut c, &mut img, hb, 5) else { panic!() };
    assert!(h.should_shutdown);
    assert!(!img.is_live(1));
    for p in img.topic("r2").unwrap().partitions.values() {
        assert_eq!(p.leader, 2);
    }
    let r1 = img.topic("r1").unwrap().partitions.values().find(|p| p.replicas == vec![1]).unwrap().clone();
    assert_eq!(r1.leader, -1, "no other replica: offline");
    // Broker 1 comes back with a new registration and takes its partition back.
    let epoch = register(&mut c, &mut img, 1, None, 6);
    assert!(epoch > epochs[1]);
    let again = img.topic("r1").unwrap().partitions[&r1.partition].clone();
    assert_eq!(again.leader, 1);
    assert!(again.leader_epoch > r1.leader_epoch);
}

#[test]
fn partitions_are_added_and_producer_ids_never_repeat() {
    let (mut c, mut img, epochs) = cluster(2);
    create(&mut c, &mut img, "t", 1, 2).unwrap();
    let req = Request::CreatePartitions { topic: "t".into(), count: 3, assignments: None, validate_only: false };
    assert!(matches!(run(&mut c, &mut img, req, 0), Answer::Done(Ok(()))));
    assert_eq!(img.topic("t").unwrap().partitions.len(), 3);
    let req = Request::CreatePartitions { topic: "t".into(), count: 2, assignments: None, validate_only: false };
    let Answer::Done(Err(f)) = run(&mut c, &mut img, req, 0) else { panic!() };
    assert_eq!(f.error_code(), ErrorCode::InvalidPartitions);
    let mut starts = Vec::new();
    for id in [1, 2, 1] {
        let Answer::ProducerIds(Ok((start, len))) =
            run(&mut c, &mut img, Request::AllocateProducerIds { id, epoch: epochs[id as usize - 1] }, 0)
        else {
            panic!()
        };
        assert_eq!(len, PRODUCER_ID_BLOCK);
        starts.push(start);
    }
    assert_eq!(starts, vec![1000, 2000, 3000]);
}

#[test]
fn delete_and_configs() {
    let (mut c, mut img, _) = cluster(1);
    let id = create(&mut c, &mut img, "t", 1, 1).unwrap().id;
    let req =
        Request::AlterTopicConfigs { topic: "t".into(), changes: vec![("retention.ms".into(), Some("5".into()))], validate_only: false };
    assert!(matches!(run(&mut c, &mut img, req, 0), Answer::Done(Ok(()))));
    assert_eq!(img.topic("t").unwrap().configs["retention.ms"], "5");
    let req = Request::AlterTopicConfigs { topic: "t".into(), changes: vec![("nope".into(), Some("5".into()))], validate_only: false };
    let Answer::Done(Err(f)) = run(&mut c, &mut img, req, 0) else { panic!() };
    assert_eq!(f.error_code(), ErrorCode::InvalidConfig);
    let Answer::DeleteTopics(r) = run(&mut c, &mut img, Request::DeleteTopics { ids: vec![id, Uuid::new_v4()] }, 0) else { panic!() };
    assert!(r[0].is_ok());
    assert_eq!(r[1].as_ref().unwrap_err().error_code(), ErrorCode::UnknownTopicId);
    assert!(img.topic("t").is_none());
    let _ = MetadataRecord::Imported;
}

#[test]
fn a_second_incarnation_waits_only_while_the_first_is_heard() {
    let (mut c, mut img, _) = cluster(1);
    let other = |c: &mut Controller, img: &mut MetadataImage, now| {
        let req =
            Request::Register { id: 1, incarnation: Uuid::new_v4(), cluster_id: None, host: "127.0.0.1".into(), port: 9001, rack: None };
        run(c, img, req, now)
    };
    // The first incarnation heartbeats to this controller: a duplicate is refused.
    let Answer::Register(Err(f)) = other(&mut c, &mut img, 1000) else { panic!() };
    assert_eq!(f.error_code(), ErrorCode::DuplicateBrokerRegistration);
    // A new controller (say, this node restarted) has heard nothing yet: accepted at once.
    let mut fresh = Controller::new(config(), 8);
    fresh.activate(&img, 2000);
    assert!(matches!(other(&mut fresh, &mut img, 2000), Answer::Register(Ok(_))));
}

// ---- ISR changes (AlterPartition), fencing and elections ----

fn heartbeat(c: &mut Controller, img: &mut MetadataImage, id: i32, epoch: i64, now: i64) -> HeartbeatAnswer {
    let offset = img.offset;
    let hb = Request::Heartbeat { id, epoch, metadata_offset: offset, want_fence: false, want_shutdown: false };
    let Answer::Heartbeat(h) = run(c, img, hb, now) else { panic!() };
    h
}

/// Fences a broker the way a broker asks for it (want_fence), returning the step's records.
fn want_fence(c: &mut Controller, img: &mut MetadataImage, id: i32, epoch: i64) -> Vec<MetadataRecord> {
    let offset = img.offset;
    let hb = Request::Heartbeat { id, epoch, metadata_offset: offset, want_fence: true, want_shutdown: false };
    let (records, answer) = c.step(img, hb, 0);
    assert!(matches!(answer, Answer::Heartbeat(HeartbeatAnswer { error: 0, is_fenced: true, .. })), "{answer:?}");
    *img = img.apply(&records);
    img.offset += 1;
    records
}

fn part(img: &MetadataImage, topic: &str, p: i32) -> PartitionImage {
    img.partition(topic, p).unwrap().clone()
}

fn partition_records(records: &[MetadataRecord]) -> usize {
    records.iter().filter(|r| matches!(r, MetadataRecord::Partition { .. })).count()
}

/// Sends AlterPartition from the partition's current leader with its current epochs, changed by `tweak`.
fn alter(
    c: &mut Controller,
    img: &mut MetadataImage,
    topic: &str,
    isr: Vec<i32>,
    tweak: impl FnOnce(&mut Request),
) -> (Vec<MetadataRecord>, Result<PartitionState, Failure>) {
    let t = img.topic(topic).unwrap().clone();
    let p = &t.partitions[&0];
    let broker = p.leader;
    let mut req = Request::AlterPartition {
        broker,
        broker_epoch: img.brokers[&broker].epoch,
        topic_id: t.id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        isr,
    };
    tweak(&mut req);
    let (records, answer) = c.step(img, req, 0);
    *img = img.apply(&records);
    img.offset += 1;
    let Answer::AlterPartition(r) = answer else { panic!("{answer:?}") };
    (records, r)
}

fn code_of<T: std::fmt::Debug>(r: Result<T, Failure>) -> i16 {
    r.unwrap_err().code
}

#[test]
fn alter_partition_validates_in_kafkas_order() {
    let (mut c, mut img, epochs) = cluster(4);
    create(&mut c, &mut img, "t", 1, 3).unwrap();
    let p = part(&img, "t", 0);
    let (leader, f1, f2) = (p.replicas[0], p.replicas[1], p.replicas[2]);
    let outsider = (1..=4).find(|b| !p.replicas.contains(b)).unwrap();

    // Stale (or unknown) broker epoch comes first, even for a partition that does not exist.
    let (recs, r) = alter(&mut c, &mut img, "t", vec![leader], |r| {
        if let Request::AlterPartition { broker_epoch, partition, .. } = r {
            *broker_epoch -= 1;
            *partition = 9;
        }
    });
    assert!(recs.is_empty());
    assert_eq!(code_of(r), ErrorCode::StaleBrokerEpoch.code());
    // Unknown topic id, unknown partition.
    let (_, r) = alter(&mut c, &mut img, "t", vec![leader], |r| {
        if let Request::AlterPartition { topic_id, .. } = r {
            *topic_id = Uuid::new_v4();
        }
    });
    assert_eq!(code_of(r), ErrorCode::UnknownTopicId.code());
    let (_, r) = alter(&mut c, &mut img, "t", vec![leader], |r| {
        if let Request::AlterPartition { partition, .. } = r {
            *partition = 1;
        }
    });
    assert_eq!(code_of(r), ErrorCode::UnknownTopicOrPartition.code());
    // A follower asking (with its own, valid broker epoch).
    let follower_epoch = epochs[f1 as usize - 1];
    let (_, r) = alter(&mut c, &mut img, "t", vec![f1, leader], |r| {
        if let Request::AlterPartition { broker, broker_epoch, .. } = r {
            *broker = f1;
            *broker_epoch = follower_epoch;
        }
    });
    assert_eq!(code_of(r), ErrorCode::NotLeaderOrFollower.code());
    // Leader epochs: older is fenced, newer is unknown to the controller.
    let (_, r) = alter(&mut c, &mut img, "t", vec![leader], |r| {
        if let Request::AlterPartition { leader_epoch, .. } = r {
            *leader_epoch -= 1;
        }
    });
    assert_eq!(code_of(r), ErrorCode::FencedLeaderEpoch.code());
    let (_, r) = alter(&mut c, &mut img, "t", vec![leader], |r| {
        if let Request::AlterPartition { leader_epoch, .. } = r {
            *leader_epoch += 1;
        }
    });
    assert_eq!(code_of(r), ErrorCode::NotLeaderOrFollower.code());
    // Partition epoch either way.
    for d in [-1, 1] {
        let (_, r) = alter(&mut c, &mut img, "t", vec![leader], |r| {
            if let Request::AlterPartition { partition_epoch, .. } = r {
                *partition_epoch += d;
            }
        });
        assert_eq!(code_of(r), ResponseError::InvalidUpdateVersion.code());
    }
    // The ISR must hold the leader, only replicas, each once.
    for bad in [vec![f1, f2], vec![leader, outsider], vec![leader, f1, f1], vec![]] {
        let (recs, r) = alter(&mut c, &mut img, "t", bad.clone(), |_| {});
        assert!(recs.is_empty());
        assert_eq!(code_of(r), ErrorCode::InvalidRequest.code(), "{bad:?}");
    }
    // Nothing failed so far changed anything.
    assert_eq!(part(&img, "t", 0), p);
    // The same ISR (in any order): the current state, no records.
    let (recs, r) = alter(&mut c, &mut img, "t", vec![f2, f1, leader], |_| {});
    assert!(recs.is_empty());
    assert_eq!(r.unwrap(), PartitionState::of(&p));

    // Shrink: one record, partition epoch + 1, leader and leader epoch unchanged.
    let (recs, r) = alter(&mut c, &mut img, "t", vec![leader, f1], |_| {});
    assert_eq!(recs.len(), 1);
    let state = r.unwrap();
    assert_eq!(
        state,
        PartitionState { leader, leader_epoch: p.leader_epoch, isr: vec![leader, f1], partition_epoch: p.partition_epoch + 1 }
    );
    assert_eq!(PartitionState::of(&part(&img, "t", 0)), state);
    // Removing a member that is fenced is fine; adding one is not (nor one shutting down).
    want_fence(&mut c, &mut img, f2, epochs[f2 as usize - 1]);
    let (_, r) = alter(&mut c, &mut img, "t", vec![leader, f1, f2], |_| {});
    assert_eq!(code_of(r), ResponseError::IneligibleReplica.code());
    let offset = img.offset;
    let shut = Request::Heartbeat { id: f1, epoch: follower_epoch, metadata_offset: offset, want_fence: false, want_shutdown: true };
    run(&mut c, &mut img, shut, 0);
    assert_eq!(part(&img, "t", 0).isr, vec![leader], "shutting down leaves the ISR");
    let (_, r) = alter(&mut c, &mut img, "t", vec![leader, f1], |_| {});
    assert_eq!(code_of(r), ResponseError::IneligibleReplica.code());
    // Back and unfenced: it may join again.
    let e2 = register(&mut c, &mut img, f2, None, 0);
    assert!(e2 > epochs[f2 as usize - 1]);
    let before = part(&img, "t", 0);
    let (recs, r) = alter(&mut c, &mut img, "t", vec![leader, f2], |_| {});
    assert_eq!(recs.len(), 1);
    assert_eq!(r.unwrap().isr, vec![leader, f2]);
    let after = part(&img, "t", 0);
    assert_eq!((after.leader_epoch, after.partition_epoch), (before.leader_epoch, before.partition_epoch + 1));
}

#[test]
fn alter_partition_travels_as_json() {
    let req = Request::AlterPartition {
        broker: 3,
        broker_epoch: 17,
        topic_id: Uuid::new_v4(),
        partition: 2,
        leader_epoch: 4,
        partition_epoch: 9,
        isr: vec![3, 1],
    };
    let back: Request = serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
    assert_eq!(format!("{back:?}"), format!("{req:?}"));
    for a in [
        Answer::AlterPartition(Ok(PartitionState { leader: 3, leader_epoch: 4, isr: vec![3], partition_epoch: 10 })),
        Answer::AlterPartition(Err(Failure::kafka(ResponseError::IneligibleReplica, "no"))),
    ] {
        let back: Answer = serde_json::from_slice(&serde_json::to_vec(&a).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{a:?}"));
    }
    // A commit that failed fails the answer.
    let f = Failure::new(ErrorCode::RequestTimedOut, "late");
    assert!(matches!(
        Answer::AlterPartition(Ok(PartitionState { leader: 1, leader_epoch: 0, isr: vec![1], partition_epoch: 0 })).failed(f),
        Answer::AlterPartition(Err(_))
    ));
}

#[test]
fn fencing_shrinks_isrs_and_moves_leaders_in_one_record_per_partition() {
    let (mut c, mut img, epochs) = cluster(3);
    create(&mut c, &mut img, "t", 3, 3).unwrap();
    let before = img.topic("t").unwrap().clone();
    let b = 2;
    let records = want_fence(&mut c, &mut img, b, epochs[1]);
    // The fence, then exactly one record for each partition (all three have 2 in the ISR).
    assert!(matches!(records[0], MetadataRecord::BrokerFence { id: 2, fenced: true, .. }));
    assert_eq!(partition_records(&records), 3);
    for (n, was) in &before.partitions {
        let now = part(&img, "t", *n);
        assert_eq!(now.isr, was.isr.iter().copied().filter(|r| *r != b).collect::<Vec<_>>());
        assert_eq!(now.partition_epoch, was.partition_epoch + 1);
        if was.leader == b {
            // The next live ISR member in replica order.
            let next = was.replicas.iter().copied().find(|r| *r != b).unwrap();
            assert_eq!((now.leader, now.leader_epoch), (next, was.leader_epoch + 1));
        } else {
            assert_eq!((now.leader, now.leader_epoch), (was.leader, was.leader_epoch));
        }
    }
    // Unfencing it again does not put it back in the ISR (the leader does, with AlterPartition)
    // and, as every partition has a leader, writes no partition record.
    let offset = img.offset;
    let (records, _) =
        c.step(&img, Request::Heartbeat { id: b, epoch: epochs[1], metadata_offset: offset, want_fence: false, want_shutdown: false }, 1);
    assert_eq!(partition_records(&records), 0, "{records:?}");
}

#[test]
fn a_tick_that_fences_two_brokers_writes_one_record_per_partition() {
    let (mut c, mut img, epochs) = cluster(3);
    create(&mut c, &mut img, "t", 3, 3).unwrap();
    // Only broker 1 keeps heartbeating.
    heartbeat(&mut c, &mut img, 1, epochs[0], 9000);
    let records = c.tick(&img, 9000);
    img = img.apply(&records);
    assert_eq!(records.iter().filter(|r| matches!(r, MetadataRecord::BrokerFence { fenced: true, .. })).count(), 2);
    assert_eq!(partition_records(&records), 3, "{records:?}");
    for p in img.topic("t").unwrap().partitions.values() {
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1]));
        assert_eq!(p.partition_epoch, 1, "one change per partition");
        assert_eq!(p.leader_epoch, i32::from(p.replicas[0] != 1));
    }
}

#[test]
fn the_last_replica_standing_is_the_only_one_to_lead_again() {
    let (mut c, mut img, mut epochs) = cluster(3);
    create(&mut c, &mut img, "t", 1, 3).unwrap();
    let p = part(&img, "t", 0);
    let (a, b, last) = (p.replicas[0], p.replicas[1], p.replicas[2]);
    let epoch_of = |epochs: &Vec<i64>, id: i32| epochs[id as usize - 1];
    // a dies (session lapse): b leads, ISR shrinks.
    let mut now = 1000;
    for id in [b, last] {
        heartbeat(&mut c, &mut img, id, epoch_of(&epochs, id), 9000);
    }
    now += 9000;
    let recs = c.tick(&img, now);
    img = img.apply(&recs);
    let s = part(&img, "t", 0);
    assert_eq!((s.leader, s.isr.clone(), s.leader_epoch), (b, vec![b, last], 1));
    // b asks to be fenced: last leads alone.
    want_fence(&mut c, &mut img, b, epoch_of(&epochs, b));
    let s = part(&img, "t", 0);
    assert_eq!((s.leader, s.isr.clone(), s.leader_epoch), (last, vec![last], 2));
    // a and b come back: they are out of sync, so nothing changes for the partition.
    for id in [a, b] {
        now += 10;
        let before = part(&img, "t", 0);
        epochs[id as usize - 1] = register(&mut c, &mut img, id, None, now);
        assert_eq!(part(&img, "t", 0), before);
    }
    // last dies too: no leader, the ISR keeps it, although a and b are live (unclean is off).
    let recs = want_fence(&mut c, &mut img, last, epoch_of(&epochs, last));
    assert_eq!(partition_records(&recs), 1);
    let s = part(&img, "t", 0);
    assert_eq!((s.leader, s.isr.clone(), s.leader_epoch), (-1, vec![last], 3));
    // A tick does not elect an out-of-sync replica either.
    let recs = c.tick(&img, now + 1);
    assert_eq!(partition_records(&recs), 0, "{recs:?}");
    // last returns as a new incarnation: registration changes nothing, unfencing elects it.
    now += 10;
    let req = Request::Register { id: last, incarnation: Uuid::new_v4(), cluster_id: None, host: "h".into(), port: 1, rack: None };
    let (recs, answer) = c.step(&img, req, now);
    assert_eq!(partition_records(&recs), 0, "{recs:?}");
    img = img.apply(&recs);
    img.offset += 1;
    let Answer::Register(Ok(e)) = answer else { panic!() };
    let h = heartbeat(&mut c, &mut img, last, e, now);
    assert!(!h.is_fenced);
    let s = part(&img, "t", 0);
    assert_eq!((s.leader, s.isr.clone(), s.leader_epoch), (last, vec![last], 4));
}

#[test]
fn unclean_election_only_where_the_topic_allows_it() {
    let (mut c, mut img, epochs) = cluster(2);
    create_assigned(&mut c, &mut img, "clean", &[&[1, 2]], &[]);
    create_assigned(&mut c, &mut img, "unclean", &[&[1, 2]], &[(UNCLEAN_ELECTION, "true")]);
    for name in ["clean", "unclean"] {
        // The leader drops the follower from the ISR.
        alter(&mut c, &mut img, name, vec![1], |_| {}).1.unwrap();
    }
    // The only in-sync replica, 1, is fenced.
    want_fence(&mut c, &mut img, 1, epochs[0]);
    let clean = part(&img, "clean", 0);
    assert_eq!((clean.leader, clean.isr.clone()), (-1, vec![1]));
    let unclean = part(&img, "unclean", 0);
    assert_eq!((unclean.leader, unclean.isr.clone(), unclean.leader_epoch), (2, vec![2], 1));
    // Allowing it later (here as the dynamic cluster default) elects at the next tick.
    let req =
        Request::AlterBrokerConfigs { node: None, changes: vec![(UNCLEAN_ELECTION.into(), Some("true".into()))], validate_only: false };
    assert!(matches!(run(&mut c, &mut img, req, 0), Answer::Done(Ok(()))));
    heartbeat(&mut c, &mut img, 2, epochs[1], 1);
    let recs = c.tick(&img, 2);
    img = img.apply(&recs);
    let clean = part(&img, "clean", 0);
    assert_eq!((clean.leader, clean.isr.clone()), (2, vec![2]));
}

/// Creates a topic with one partition per assignment.
fn create_assigned(c: &mut Controller, img: &mut MetadataImage, name: &str, assignments: &[&[i32]], configs: &[(&str, &str)]) {
    let t = NewTopic {
        name: name.into(),
        partitions: -1,
        replication_factor: -1,
        assignments: assignments.iter().enumerate().map(|(i, a)| (i as i32, a.to_vec())).collect(),
        configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let Answer::CreateTopics(r) = run(c, img, Request::CreateTopics { topics: vec![t], validate_only: false }, 0) else { panic!() };
    assert!(r[0].is_ok(), "{r:?}");
}

#[test]
fn a_restart_costs_one_leader_epoch_per_leader_change() {
    let (mut c, mut img, epochs) = cluster(3);
    create_assigned(&mut c, &mut img, "r3", &[&[2, 1, 3]], &[]);
    create_assigned(&mut c, &mut img, "r1", &[&[1]], &[]);
    // Brokers 2 (leads r3) and then 1 (follows r3, leads r1) restart, each registering anew after
    // its old incarnation's session ran out but before a tick fenced it.
    for (id, touched) in [(2, 1), (1, 2)] {
        let req = Request::Register { id, incarnation: Uuid::new_v4(), cluster_id: None, host: "h".into(), port: 1, rack: None };
        let (recs, answer) = c.step(&img, req, 20_000);
        img = img.apply(&recs);
        img.offset += 1;
        let Answer::Register(Ok(e)) = answer else { panic!("{answer:?}") };
        assert!(e > epochs[2]);
        // Registration: out of the ISRs, leaderships moved, one record per partition it was in.
        assert_eq!(partition_records(&recs), touched, "{recs:?}");
        let h = heartbeat(&mut c, &mut img, id, e, 20_001);
        assert!(!h.is_fenced);
    }
    // RF 3: broker 1 took over when 2 re-registered (one leader change), and 3 when 1 did.
    let r3 = part(&img, "r3", 0);
    assert_eq!((r3.leader, r3.leader_epoch, r3.isr.clone(), r3.partition_epoch), (3, 2, vec![3], 2));
    // RF 1: no leader while it re-registered, its own again once unfenced: two leader changes.
    let r1 = part(&img, "r1", 0);
    assert_eq!((r1.leader, r1.leader_epoch, r1.isr.clone(), r1.partition_epoch), (1, 2, vec![1], 2));
}

// ---- reassignment, ElectLeaders, automatic leader rebalance ----

fn cluster_with(config: ControllerConfig, n: i32) -> (Controller, MetadataImage, Vec<i64>) {
    let mut c = Controller::new(config, 7);
    let mut img = MetadataImage::default().apply(&c.bootstrap(&MetadataImage::default(), || "cid".into()));
    let epochs = (1..=n).map(|id| register(&mut c, &mut img, id, None, 0)).collect();
    (c, img, epochs)
}

fn reassign_req(
    c: &mut Controller,
    img: &mut MetadataImage,
    items: Vec<(Uuid, i32, Option<Vec<i32>>)>,
) -> (Vec<MetadataRecord>, Vec<Result<(), Failure>>) {
    let (records, answer) = c.step(img, Request::AlterReassignments { items }, 0);
    *img = img.apply(&records);
    img.offset += 1;
    let Answer::AlterReassignments(r) = answer else { panic!("{answer:?}") };
    (records, r)
}

fn elect_req(c: &mut Controller, img: &mut MetadataImage, election_type: i8, partitions: Vec<(Uuid, i32)>) -> Vec<Result<(), Failure>> {
    let (records, answer) = c.step(img, Request::ElectLeaders { election_type, partitions }, 0);
    *img = img.apply(&records);
    img.offset += 1;
    let Answer::ElectLeaders(r) = answer else { panic!("{answer:?}") };
    r
}

#[test]
fn a_reassignment_completes_once_the_new_replicas_are_in_sync() {
    let (mut c, mut img, _) = cluster(4);
    create_assigned(&mut c, &mut img, "t", &[&[1, 2, 3]], &[]);
    let id = img.topic("t").unwrap().id;
    // Validation.
    let (recs, r) = reassign_req(
        &mut c,
        &mut img,
        vec![
            (id, 0, Some(vec![])),
            (id, 0, Some(vec![2, 2])),
            (id, 0, Some(vec![2, 9])),
            (id, 0, None),
            (id, 7, Some(vec![1])),
            (Uuid::new_v4(), 0, Some(vec![1])),
            (id, 0, Some(vec![1, 2, 3])),
        ],
    );
    assert!(recs.is_empty(), "{recs:?}");
    let codes: Vec<i16> = r.iter().map(|r| r.as_ref().err().map_or(0, |f| f.code)).collect();
    let bad = ErrorCode::InvalidReplicaAssignment.code();
    let unknown = ErrorCode::UnknownTopicOrPartition.code();
    assert_eq!(codes, vec![bad, bad, bad, ResponseError::NoReassignmentInProgress.code(), unknown, unknown, 0]);

    // Move from [1, 2, 3] to [2, 3, 4]: 4 joins, 1 (the leader) leaves once 4 is in sync.
    let (recs, r) = reassign_req(&mut c, &mut img, vec![(id, 0, Some(vec![2, 3, 4]))]);
    assert!(r[0].is_ok());
    assert_eq!(partition_records(&recs), 1);
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas.clone(), p.adding_replicas.clone(), p.removing_replicas.clone()), (vec![2, 3, 4, 1], vec![4], vec![1]));
    assert_eq!((p.leader, p.isr.clone(), p.leader_epoch, p.partition_epoch), (1, vec![1, 2, 3], 0, 1));
    // The leader shrinking the ISR does not complete it.
    alter(&mut c, &mut img, "t", vec![1, 2], |_| {}).1.unwrap();
    assert!(part(&img, "t", 0).is_reassigning());
    // 4 catches up: the reassignment completes in the same record, and 2 takes over from 1.
    let (recs, r) = alter(&mut c, &mut img, "t", vec![1, 2, 4], |_| {});
    assert_eq!(recs.len(), 1);
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader), (vec![2, 3, 4], vec![2, 4], 2));
    assert!(!p.is_reassigning());
    assert_eq!((p.leader_epoch, p.partition_epoch), (1, 3));
    assert_eq!(r.unwrap(), PartitionState::of(&p));

    // Only removing a replica completes at once (the ISR keeps a member).
    reassign_req(&mut c, &mut img, vec![(id, 0, Some(vec![2, 4]))]).1[0].clone().unwrap();
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.is_reassigning()), (vec![2, 4], vec![2, 4], 2, false));
    // Reordering changes the preferred leader only.
    reassign_req(&mut c, &mut img, vec![(id, 0, Some(vec![4, 2]))]).1[0].clone().unwrap();
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.is_reassigning()), (vec![4, 2], vec![2, 4], 2, false));
}

#[test]
fn a_reassignment_is_cancelled_or_replaced() {
    let (mut c, mut img, epochs) = cluster(4);
    create_assigned(&mut c, &mut img, "t", &[&[1, 2, 3]], &[]);
    let id = img.topic("t").unwrap().id;
    reassign_req(&mut c, &mut img, vec![(id, 0, Some(vec![1, 2, 4]))]).1[0].clone().unwrap();
    alter(&mut c, &mut img, "t", vec![1, 2, 3], |_| {}).1.unwrap();
    // A new target while one is in progress starts from the current replicas (original and adding).
    reassign_req(&mut c, &mut img, vec![(id, 0, Some(vec![4, 3]))]).1[0].clone().unwrap();
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas.clone(), p.adding_replicas.clone(), p.removing_replicas.clone()), (vec![4, 3, 1, 2], vec![4], vec![1, 2]));
    // Cancelled: back to the original replicas (the adding one leaves the replicas and the ISR).
    let (recs, r) = reassign_req(&mut c, &mut img, vec![(id, 0, None)]);
    assert!(r[0].is_ok());
    assert_eq!(partition_records(&recs), 1);
    let p = part(&img, "t", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.is_reassigning()), (vec![3, 1, 2], vec![1, 2, 3], 1, false));

    // The leader is an adding replica when the reassignment is cancelled: it leaves, and with
    // only adding replicas in sync the original replicas are all there is.
    create_assigned(&mut c, &mut img, "u", &[&[1]], &[]);
    let u = img.topic("u").unwrap().id;
    reassign_req(&mut c, &mut img, vec![(u, 0, Some(vec![2, 3]))]).1[0].clone().unwrap();
    alter(&mut c, &mut img, "u", vec![1, 2], |_| {}).1.unwrap();
    assert!(part(&img, "u", 0).is_reassigning(), "3 is not in sync yet");
    want_fence(&mut c, &mut img, 1, epochs[0]);
    assert_eq!((part(&img, "u", 0).leader, part(&img, "u", 0).isr.clone()), (2, vec![2]));
    reassign_req(&mut c, &mut img, vec![(u, 0, None)]).1[0].clone().unwrap();
    let p = part(&img, "u", 0);
    assert_eq!((p.replicas.clone(), p.isr.clone(), p.leader, p.is_reassigning()), (vec![1], vec![1], -1, false));
}

#[test]
fn reassignment_requests_travel_as_json() {
    let req = Request::AlterReassignments { items: vec![(Uuid::new_v4(), 1, Some(vec![1, 2])), (Uuid::new_v4(), 0, None)] };
    let back: Request = serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
    assert_eq!(format!("{back:?}"), format!("{req:?}"));
    let req = Request::ElectLeaders { election_type: 1, partitions: vec![(Uuid::new_v4(), 3)] };
    let back: Request = serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
    assert_eq!(format!("{back:?}"), format!("{req:?}"));
    let a = Answer::ElectLeaders(vec![Ok(()), Err(Failure::kafka(ResponseError::ElectionNotNeeded, "x"))]);
    let back: Answer = serde_json::from_slice(&serde_json::to_vec(&a).unwrap()).unwrap();
    assert_eq!(format!("{back:?}"), format!("{a:?}"));
    let f = Failure::new(ErrorCode::RequestTimedOut, "late");
    let Answer::AlterReassignments(v) = Answer::AlterReassignments(vec![Ok(()), Ok(())]).failed(f) else { panic!() };
    assert!(v.iter().all(|r| r.is_err()));
}

#[test]
fn elect_leaders_preferred_and_unclean() {
    let (mut c, mut img, epochs) = cluster(3);
    create_assigned(&mut c, &mut img, "t", &[&[1, 2, 3]], &[]);
    let id = img.topic("t").unwrap().id;
    let code = |r: &Result<(), Failure>| r.as_ref().err().map_or(0, |f| f.code);
    let r = elect_req(&mut c, &mut img, 0, vec![(id, 0), (id, 5), (Uuid::new_v4(), 0)]);
    let unknown = ErrorCode::UnknownTopicOrPartition.code();
    assert_eq!(r.iter().map(code).collect::<Vec<_>>(), vec![ResponseError::ElectionNotNeeded.code(), unknown, unknown]);
    assert_eq!(code(&elect_req(&mut c, &mut img, 7, vec![(id, 0)])[0]), ErrorCode::InvalidRequest.code());
    // 1 is fenced and comes back out of sync: not available as the preferred leader.
    want_fence(&mut c, &mut img, 1, epochs[0]);
    assert_eq!(part(&img, "t", 0).leader, 2);
    heartbeat(&mut c, &mut img, 1, epochs[0], 1);
    assert!(img.is_live(1));
    assert_eq!(code(&elect_req(&mut c, &mut img, 0, vec![(id, 0)])[0]), ResponseError::PreferredLeaderNotAvailable.code());
    // Back in sync: preferred election moves leadership to it.
    alter(&mut c, &mut img, "t", vec![2, 3, 1], |_| {}).1.unwrap();
    let before = part(&img, "t", 0);
    assert!(elect_req(&mut c, &mut img, 0, vec![(id, 0)])[0].is_ok());
    let p = part(&img, "t", 0);
    assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (1, before.leader_epoch + 1, before.partition_epoch + 1));

    // Unclean: not needed while there is a leader.
    assert_eq!(code(&elect_req(&mut c, &mut img, 1, vec![(id, 0)])[0]), ResponseError::ElectionNotNeeded.code());
    // The ISR shrinks to 1, which then goes: no leader (unclean is off for the topic) ...
    alter(&mut c, &mut img, "t", vec![1], |_| {}).1.unwrap();
    want_fence(&mut c, &mut img, 1, epochs[0]);
    assert_eq!(part(&img, "t", 0).leader, -1);
    // ... until an unclean election is asked for: the first live replica leads alone.
    assert!(elect_req(&mut c, &mut img, 1, vec![(id, 0)])[0].is_ok());
    let p = part(&img, "t", 0);
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    // With no live replica at all: no eligible leader.
    create_assigned(&mut c, &mut img, "u", &[&[3]], &[]);
    let u = img.topic("u").unwrap().id;
    want_fence(&mut c, &mut img, 3, epochs[2]);
    assert_eq!(code(&elect_req(&mut c, &mut img, 1, vec![(u, 0)])[0]), ResponseError::EligibleLeadersNotAvailable.code());
}

/// 20 partitions on [1, 2], led by 2 after 1 was fenced and back in sync; `back` of them are then
/// moved to 1 by preferred election. Returns how many 1 leads after the rebalance check.
fn rebalance_with(back: usize) -> (usize, usize) {
    let config = ControllerConfig { auto_leader_rebalance: true, leader_imbalance_check_interval_ms: 1000, ..config() };
    let (mut c, mut img, epochs) = cluster_with(config, 2);
    let assignment: Vec<&[i32]> = (0..20).map(|_| &[1, 2][..]).collect();
    create_assigned(&mut c, &mut img, "t", &assignment, &[]);
    let id = img.topic("t").unwrap().id;
    want_fence(&mut c, &mut img, 1, epochs[0]);
    heartbeat(&mut c, &mut img, 1, epochs[0], 0);
    let t = img.topic("t").unwrap().clone();
    for p in t.partitions.values() {
        let req = Request::AlterPartition {
            broker: 2,
            broker_epoch: epochs[1],
            topic_id: id,
            partition: p.partition,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![2, 1],
        };
        assert!(matches!(run(&mut c, &mut img, req, 0), Answer::AlterPartition(Ok(_))));
    }
    let moved = elect_req(&mut c, &mut img, 0, (0..back as i32).map(|p| (id, p)).collect());
    assert!(moved.iter().all(|r| r.is_ok()));
    let led = |img: &MetadataImage| img.topic("t").unwrap().partitions.values().filter(|p| p.leader == 1).count();
    // Not before the check interval has passed.
    let first = c.tick(&img, 100);
    assert_eq!(partition_records(&first), 0);
    let recs = c.tick(&img, 1100);
    img = img.apply(&recs);
    (led(&img), partition_records(&recs))
}

#[test]
fn leaders_go_back_to_preferred_replicas_beyond_the_imbalance_threshold() {
    // 2 of 20 (10%) away from their preferred leader: within leader.imbalance.per.broker.percentage.
    assert_eq!(rebalance_with(18), (18, 0));
    // 3 of 20 (15%): all three move back, one record each.
    assert_eq!(rebalance_with(17), (20, 3));
}

#[test]
fn replicas_in_an_offline_log_directory_lose_leadership_and_stay_out_of_elections() {
    let (mut c, mut img, epochs) = cluster(3);
    create_assigned(&mut c, &mut img, "a", &[&[1, 2, 3], &[2, 1, 3]], &[]);
    create_assigned(&mut c, &mut img, "solo", &[&[1]], &[]);
    let a = img.topic("a").unwrap().id;
    let solo = img.topic("solo").unwrap().id;
    let report = |c: &mut Controller, img: &mut MetadataImage, replicas: Vec<(Uuid, i32)>| {
        run(c, img, Request::ReplicasOffline { id: 1, epoch: epochs[0], replicas }, 10)
    };
    // Broker 1's directory holding a-0, a-1 and solo-0 fails.
    let Answer::Done(Ok(())) = report(&mut c, &mut img, vec![(a, 0), (a, 1), (solo, 0)]) else { panic!() };
    let p0 = part(&img, "a", 0);
    assert_eq!((p0.leader, p0.isr.clone()), (2, vec![2, 3]));
    assert_eq!(p0.leader_epoch, 1);
    assert_eq!(part(&img, "a", 1).isr, vec![2, 3]);
    // The last replica standing keeps its ISR place but does not lead.
    let s = part(&img, "solo", 0);
    assert_eq!((s.leader, s.isr.clone()), (-1, vec![1]));
    assert!(img.is_replica_offline(1, a, 0));
    // The same report again changes nothing; a preferred election may not pick it.
    let before = img.offset;
    let (records, _) = c.step(&img, Request::ReplicasOffline { id: 1, epoch: epochs[0], replicas: vec![(a, 0), (a, 1), (solo, 0)] }, 11);
    assert!(records.is_empty(), "{before}: {records:?}");
    let results = elect_req(&mut c, &mut img, 0, vec![(a, 0)]);
    assert!(results[0].is_err());
    // A snapshot keeps the offline set.
    assert!(MetadataImage::default().apply(&img.to_records()).is_replica_offline(1, solo, 0));
    // The directory is back (a restart reports none): solo-0 gets its leader again.
    let Answer::Done(Ok(())) = report(&mut c, &mut img, vec![]) else { panic!() };
    assert_eq!(part(&img, "solo", 0).leader, 1);
    // A stale epoch is refused.
    let Answer::Done(Err(f)) = run(&mut c, &mut img, Request::ReplicasOffline { id: 1, epoch: epochs[0] + 100, replicas: vec![] }, 12)
    else {
        panic!()
    };
    assert_eq!(f.error_code(), ErrorCode::StaleBrokerEpoch);
}
