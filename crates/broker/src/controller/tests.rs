//! The controller step without sockets: requests in, records and answers out.

use strom_metadata::{MetadataImage, MetadataRecord};
use uuid::Uuid;

use super::*;

fn config() -> ControllerConfig {
    ControllerConfig { session_timeout_ms: 9000, num_partitions: 1, default_replication_factor: 1, offsets_replication_factor: 3 }
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
