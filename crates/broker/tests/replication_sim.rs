//! Seeded, deterministic simulation of the replication data plane with the
//! controller: three brokers' real [`Partition`]s over real logs in temporary
//! directories, the pure [`Controller`] deciding fencing, elections and ISR
//! changes, and a seeded schedule of faults.
//!
//! Each step is one of: a producer appends (acks=all, sometimes acks=1) on the
//! broker that believes it leads; a follower fetches from the broker it believes
//! leads (the real leader-side [`Partition::serve_fetch`] and follower-side
//! [`Partition::apply_fetched`]); time passes (heartbeats, the controller's tick
//! fences silent brokers and elects, leaders shrink lagging followers out of the
//! ISR); a broker is killed (its objects dropped, its files kept, as after kill -9)
//! or restarted (it first applies its own stale metadata, then registers anew);
//! a broker is cut off from everyone (no metadata, no heartbeats, no fetches in
//! or out — while it may still believe it leads and take writes) or healed; the
//! clock jumps forward.
//!
//! A write counts as acknowledged when its broker still leads at the epoch it
//! appended in and the high watermark has passed it, as `wait_replicated` answers.
//! Checked after every step: every acknowledged record is in the log of the
//! controller's current leader at its acknowledged offset (when that leader is
//! up). At the end, with every broker healed and up, the replicas converge: each
//! has the same records at the same offsets as the leader, every acknowledged
//! record is there once at its offset, and the high watermarks agree.
//!
//! Seeds: 1..=150 by default; `REPLICATION_SIM_SEEDS=n` for more,
//! `REPLICATION_SIM_SEED=a,b` for some. Everything is single-threaded and
//! seeded (time is a counter), so a failing seed replays exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strom_broker::controller::{Answer, Controller, ControllerConfig, NewTopic, Request};
use strom_broker::partition::{CommittedIsr, Partition};
use strom_metadata::{MetadataImage, MetadataRecord};
use strom_protocol::batch::{BatchIter, BatchView};
use strom_protocol::compression::Codec;
use strom_protocol::records::{decode_batch, BatchBuilder, Record};
use strom_storage::{LogConfig, LogManager};
use uuid::Uuid;

const TOPIC: &str = "sim";
const MIN_ISR: usize = 2;
const LAG_MS: i64 = 3_000;
const SESSION_MS: i64 = 2_000;

struct Node {
    id: i32,
    dir: PathBuf,
    up: bool,
    logs: Option<LogManager>,
    part: Option<Arc<Partition>>,
    /// The metadata this broker has applied.
    image: MetadataImage,
    epoch: i64,
    incarnation: Uuid,
}

struct Pending {
    node: i32,
    part: Arc<Partition>,
    epoch: i32,
    end: i64,
    values: Vec<(i64, String)>,
}

struct Sim {
    rng: StdRng,
    now: i64,
    ctrl: Controller,
    image: MetadataImage,
    nodes: BTreeMap<i32, Node>,
    cut: BTreeSet<i32>,
    pending: Vec<Pending>,
    /// value -> acknowledged offset
    acked: BTreeMap<String, i64>,
    next_value: u64,
    topic_id: Uuid,
    _tmp: tempfile::TempDir,
}

fn config() -> ControllerConfig {
    ControllerConfig {
        session_timeout_ms: SESSION_MS,
        num_partitions: 1,
        default_replication_factor: 3,
        offsets_replication_factor: 3,
        ..ControllerConfig::default()
    }
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut ctrl = Controller::new(config(), seed);
        let image = MetadataImage::default().apply(&ctrl.bootstrap(&MetadataImage::default(), || "sim".into()));
        let mut nodes = BTreeMap::new();
        for id in 1..=3 {
            let dir = tmp.path().join(format!("node{id}"));
            nodes.insert(
                id,
                Node { id, dir, up: false, logs: None, part: None, image: MetadataImage::default(), epoch: 0, incarnation: Uuid::nil() },
            );
        }
        let _ = &mut ctrl;
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(seed),
            now: 1_000,
            ctrl,
            image,
            nodes,
            cut: BTreeSet::new(),
            pending: Vec::new(),
            acked: BTreeMap::new(),
            next_value: 0,
            topic_id: Uuid::nil(),
            _tmp: tmp,
        };
        for id in 1..=3 {
            sim.start(id);
        }
        let t = NewTopic {
            name: TOPIC.into(),
            partitions: 1,
            replication_factor: 3,
            assignments: Default::default(),
            configs: [("min.insync.replicas".to_string(), MIN_ISR.to_string())].into(),
        };
        match sim.step(Request::CreateTopics { topics: vec![t], validate_only: false }) {
            Answer::CreateTopics(v) => {
                sim.topic_id = v.into_iter().next().and_then(|r| r.ok()).map(|c| c.id).expect("topic created");
            }
            other => panic!("{other:?}"),
        }
        // The partition objects learn the topic id now that it exists.
        for n in sim.nodes.values_mut() {
            if let Some(old) = n.part.take() {
                n.part = Some(Arc::new(Partition::new(TOPIC, 0, sim.topic_id, old.log().clone(), n.id)));
            }
        }
        sim.publish();
        sim
    }

    /// One controller step, committed at once (the quorum is simulated elsewhere).
    fn step(&mut self, req: Request) -> Answer {
        let (records, answer) = self.ctrl.step(&self.image, req, self.now);
        self.commit(records);
        answer
    }

    fn commit(&mut self, records: Vec<MetadataRecord>) {
        if records.is_empty() {
            return;
        }
        self.image = self.image.apply(&records);
        self.image.offset += 1;
    }

    /// Every reachable, running broker applies the controller's image.
    fn publish(&mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            if !self.cut.contains(&id) {
                self.apply_to(id, self.image.clone());
            }
        }
    }

    fn apply_to(&mut self, id: i32, image: MetadataImage) {
        let now = self.now;
        let n = self.nodes.get_mut(&id).expect("node");
        if !n.up {
            return;
        }
        n.image = image;
        if let (Some(part), Some(p)) = (&n.part, n.image.partition(TOPIC, 0)) {
            part.apply(p, MIN_ISR, now);
        }
    }

    /// Starts (or restarts) a broker: opens its log, applies the metadata it had,
    /// registers with a new incarnation and heartbeats until unfenced.
    fn start(&mut self, id: i32) {
        let now = self.now;
        let topic_id = self.topic_id;
        let n = self.nodes.get_mut(&id).expect("node");
        let logs = LogManager::open(&n.dir).expect("open data dir");
        let log = logs.open_log(TOPIC, 0, LogConfig { segment_bytes: 4096, ..LogConfig::default() }).expect("open log");
        let part = Arc::new(Partition::new(TOPIC, 0, topic_id, log, id));
        if let Some(p) = n.image.partition(TOPIC, 0) {
            // Start-up: the broker's own, possibly stale, metadata.
            part.apply(p, MIN_ISR, now);
        }
        n.logs = Some(logs);
        n.part = Some(part);
        n.up = true;
        n.incarnation = Uuid::from_u128(self.rng.gen());
        let req = Request::Register {
            id,
            incarnation: n.incarnation,
            cluster_id: None,
            host: "127.0.0.1".into(),
            port: 9000 + id as u16,
            rack: None,
        };
        if self.cut.contains(&id) {
            return;
        }
        if let Answer::Register(Ok(epoch)) = self.step(req) {
            self.nodes.get_mut(&id).expect("node").epoch = epoch;
        }
        self.publish();
        self.heartbeat(id);
        self.publish();
    }

    fn kill(&mut self, id: i32) {
        let n = self.nodes.get_mut(&id).expect("node");
        n.up = false;
        n.part = None;
        n.logs = None;
        self.pending.retain(|p| p.node != id);
    }

    fn heartbeat(&mut self, id: i32) {
        let n = &self.nodes[&id];
        if !n.up || self.cut.contains(&id) {
            return;
        }
        let req = Request::Heartbeat { id, epoch: n.epoch, metadata_offset: n.image.offset, want_fence: false, want_shutdown: false };
        self.step(req);
    }

    fn leader_view(&self, id: i32) -> Option<Arc<Partition>> {
        let n = &self.nodes[&id];
        n.part.clone().filter(|p| n.up && p.is_leader())
    }

    fn produce(&mut self) {
        let leaders: Vec<i32> = self.nodes.keys().copied().filter(|id| self.leader_view(*id).is_some()).collect();
        if leaders.is_empty() {
            return;
        }
        let id = leaders[self.rng.gen_range(0..leaders.len())];
        let Some(part) = self.leader_view(id) else { return };
        let count = self.rng.gen_range(1..=3);
        let mut b = BatchBuilder::new(self.now);
        let mut values = Vec::new();
        for _ in 0..count {
            self.next_value += 1;
            let v = format!("v{}", self.next_value);
            b.push(Record { value: Some(Bytes::from(v.clone())), timestamp: self.now, ..Default::default() });
            values.push(v);
        }
        let acks = if self.rng.gen_bool(0.8) { -1 } else { 1 };
        let Ok(batch) = b.build(Codec::None) else { return };
        if let Ok((info, epoch)) = part.append_leader(batch, acks) {
            if acks == -1 {
                let values = values.into_iter().enumerate().map(|(i, v)| (info.base_offset + i as i64, v)).collect();
                self.pending.push(Pending { node: id, part, epoch, end: info.last_offset + 1, values });
            }
        }
    }

    /// A follower fetches once from the broker it believes leads.
    fn fetch(&mut self, follower: i32) {
        let n = &self.nodes[&follower];
        let Some(part) = n.part.clone().filter(|_| n.up) else { return };
        let Some((leader, epoch)) = part.following() else { return };
        if self.cut.contains(&follower) || self.cut.contains(&leader) {
            return;
        }
        let Some(lpart) = self.nodes.get(&leader).and_then(|l| l.part.clone().filter(|_| l.up)) else { return };
        let offset = part.log().log_end_offset();
        let last = part.log().latest_epoch().unwrap_or(-1);
        let max = self.rng.gen_range(1..=3000);
        let (f, proposal) = lpart.serve_fetch(follower, offset, epoch, last, Some(max), false, self.now);
        part.apply_fetched(leader, epoch, f).expect("follower append");
        if let Some(p) = proposal {
            self.propose(leader, lpart, p);
        }
    }

    fn propose(&mut self, leader: i32, part: Arc<Partition>, p: strom_broker::partition::IsrProposal) {
        if self.cut.contains(&leader) {
            part.proposal_done(&p, None, self.now);
            return;
        }
        let req = Request::AlterPartition {
            broker: leader,
            broker_epoch: self.nodes[&leader].epoch,
            topic_id: p.topic_id,
            partition: p.partition,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: p.isr.clone(),
        };
        let answer = self.step(req);
        let committed = match answer {
            Answer::AlterPartition(Ok(s)) => {
                Some(CommittedIsr { leader_epoch: s.leader_epoch, partition_epoch: s.partition_epoch, isr: s.isr })
            }
            _ => None,
        };
        part.proposal_done(&p, committed, self.now);
        self.publish();
    }

    fn pass_time(&mut self, ms: i64) {
        self.now += ms;
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in &ids {
            self.heartbeat(*id);
        }
        let records = self.ctrl.tick(&self.image, self.now);
        self.commit(records);
        self.publish();
        for id in ids {
            if let Some(part) = self.leader_view(id) {
                if let Some(p) = part.check_lagging(self.now, LAG_MS) {
                    self.propose(id, part, p);
                }
            }
        }
    }

    /// Acknowledges pending acks=all writes the way `wait_replicated` would.
    fn settle(&mut self) {
        let mut still = Vec::new();
        for p in std::mem::take(&mut self.pending) {
            let alive = self.nodes[&p.node].part.as_ref().is_some_and(|x| Arc::ptr_eq(x, &p.part));
            if !alive || !p.part.is_leader() || p.part.leader_epoch() != p.epoch {
                continue; // NOT_LEADER_OR_FOLLOWER: never acknowledged
            }
            if p.part.log().high_watermark() >= p.end {
                for (offset, v) in p.values {
                    self.acked.insert(v, offset);
                }
            } else if p.part.isr_size().0 >= MIN_ISR {
                still.push(p);
            }
        }
        self.pending = still;
    }

    /// Every acknowledged record is in the controller's leader's log at its offset.
    fn check_leader(&self, seed: u64, step: usize) {
        let Some(p) = self.image.partition(TOPIC, 0) else { return };
        let Some(n) = self.nodes.get(&p.leader).filter(|n| n.up) else { return };
        let Some(part) = &n.part else { return };
        if !part.is_leader() {
            return;
        }
        let log = read_all(part);
        for (v, off) in &self.acked {
            assert_eq!(log.get(off), Some(v), "seed {seed} step {step}: acknowledged {v}@{off} missing on leader {}", p.leader);
        }
    }
}

/// offset -> value for the whole log.
fn read_all(part: &Partition) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    let mut offset = part.log().log_start_offset();
    let end = part.log().log_end_offset();
    while offset < end {
        let Ok(r) = part.log().read(offset, 1 << 20) else { break };
        if r.records.is_empty() {
            break;
        }
        for b in BatchIter::new(&r.records) {
            let b: BatchView<'_> = b.expect("stored batch");
            for rec in decode_batch(&b, 1 << 20).expect("decodable") {
                if let Some(v) = rec.value {
                    out.insert(rec.offset, String::from_utf8_lossy(&v).to_string());
                }
            }
            offset = b.last_offset() + 1;
        }
    }
    out
}

fn run(seed: u64) -> usize {
    let mut sim = Sim::new(seed);
    let steps = 300;
    for step in 0..steps {
        let r: f64 = sim.rng.gen();
        let ids: Vec<i32> = sim.nodes.keys().copied().collect();
        let pick = ids[sim.rng.gen_range(0..ids.len())];
        if r < 0.30 {
            sim.produce();
        } else if r < 0.70 {
            sim.fetch(pick);
        } else if r < 0.82 {
            let ms = sim.rng.gen_range(50..700);
            sim.pass_time(ms);
        } else if r < 0.86 {
            if sim.nodes[&pick].up && sim.nodes.values().filter(|n| n.up).count() > 1 {
                sim.kill(pick);
            }
        } else if r < 0.91 {
            if !sim.nodes[&pick].up {
                sim.start(pick);
            }
        } else if r < 0.95 {
            if sim.cut.is_empty() {
                sim.cut.insert(pick);
            } else {
                sim.cut.clear();
                sim.publish();
            }
        } else {
            // A clock jump: sessions lapse, followers look lagging.
            let ms = sim.rng.gen_range(3_000..20_000);
            sim.pass_time(ms);
        }
        sim.settle();
        sim.check_leader(seed, step);
    }
    // Heal everything and let the cluster settle.
    sim.cut.clear();
    for id in 1..=3 {
        if !sim.nodes[&id].up {
            sim.start(id);
        }
    }
    sim.publish();
    for round in 0..400 {
        for id in 1..=3 {
            sim.fetch(id);
        }
        if round % 5 == 0 {
            sim.pass_time(300);
        }
        sim.settle();
    }
    sim.check_leader(seed, steps);
    let p = sim.image.partition(TOPIC, 0).expect("partition").clone();
    assert!(p.leader >= 0, "seed {seed}: no leader after healing: {p:?}");
    if p.isr.len() != 3 {
        for (id, n) in &sim.nodes {
            let part = n.part.as_ref().expect("up");
            eprintln!(
                "node {id}: up {} role {:?} epoch {} leo {} hw {} epochs {:?} broker {:?}",
                n.up,
                part.role(),
                part.leader_epoch(),
                part.log().log_end_offset(),
                part.log().high_watermark(),
                part.log().epoch_entries(),
                sim.image.brokers.get(id)
            );
        }
    }
    assert_eq!(p.isr.len(), 3, "seed {seed}: ISR did not recover: {p:?}");
    let leader = sim.nodes[&p.leader].part.clone().expect("leader up");
    let want = read_all(&leader);
    for (v, off) in &sim.acked {
        assert_eq!(want.get(off), Some(v), "seed {seed}: acknowledged {v}@{off} lost");
    }
    let mut seen = BTreeSet::new();
    for v in want.values() {
        assert!(seen.insert(v.clone()), "seed {seed}: {v} twice in the log");
    }
    for id in 1..=3 {
        let part = sim.nodes[&id].part.clone().expect("up");
        assert_eq!(part.log().log_end_offset(), leader.log().log_end_offset(), "seed {seed}: node {id} did not catch up");
        assert_eq!(read_all(&part), want, "seed {seed}: node {id} differs from the leader");
        assert_eq!(part.log().high_watermark(), leader.log().high_watermark(), "seed {seed}: node {id} high watermark");
    }
    sim.acked.len()
}

#[test]
fn replication_survives_crashes_partitions_and_clock_jumps() {
    let seeds: Vec<u64> = match std::env::var("REPLICATION_SIM_SEED") {
        Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => {
            let n = std::env::var("REPLICATION_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(150u64);
            (1..=n).collect()
        }
    };
    let mut acked = 0usize;
    let started = std::time::Instant::now();
    let n = seeds.len();
    for seed in seeds {
        acked += run(seed);
    }
    println!("{n} seeds, {acked} acknowledged records checked, {:?}", started.elapsed());
    assert!(acked > 0, "the schedule never acknowledged a write");
}
