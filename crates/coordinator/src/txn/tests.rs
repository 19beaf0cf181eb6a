use super::*;

const T0: i64 = 1_000_000;

fn coord() -> TxnCoordinator {
    let mut c = TxnCoordinator::new(TxnConfig { max_timeout_ms: 900_000, id_expiration_ms: 3_600_000, state_partitions: 4 });
    for p in 0..4 {
        let (ticket, _) = c.begin_load(p, 7);
        assert!(c.finish_load(p, ticket).is_some());
    }
    c
}

fn req(id: &str) -> InitPidRequest {
    InitPidRequest { transactional_id: id.into(), timeout_ms: 60_000, expected: None }
}

/// Completes every write of `out` with `result`, returning all the answers and outputs.
fn settle_out(c: &mut TxnCoordinator, out: TxnOutput, result: i16, now: i64) -> TxnOutput {
    let mut all = TxnOutput::default();
    let mut queue = vec![out];
    while let Some(mut o) = queue.pop() {
        let writes = std::mem::take(&mut o.writes);
        all.extend(o);
        for w in writes {
            queue.push(c.complete_write(w.id, result, now));
        }
    }
    all
}

fn answer(out: &TxnOutput, token: Token) -> TxnAnswer {
    out.answers.iter().find(|(t, _)| *t == token).map(|(_, a)| a.clone()).expect("answered")
}

macro_rules! settle {
    ($c:expr, $out:expr, $r:expr, $now:expr) => {{
        let o = $out;
        settle_out(&mut $c, o, $r, $now)
    }};
}

/// InitProducerId through the NeedProducerId round trip, settled.
fn init(c: &mut TxnCoordinator, id: &str, fresh: i64, now: i64) -> TxnAnswer {
    let out = c.init_producer_id(req(id), None, 1, now);
    let out = if out.answers.contains(&(1, TxnAnswer::NeedProducerId)) { c.init_producer_id(req(id), Some(fresh), 1, now) } else { out };
    let out = settle_out(c, out, NONE, now);
    answer(&out, 1)
}

fn tp(t: &str, p: i32) -> (String, i32) {
    (t.to_string(), p)
}

#[test]
fn new_id_needs_a_producer_id_and_starts_at_epoch_zero() {
    let mut c = coord();
    let out = c.init_producer_id(req("tx"), None, 1, T0);
    assert_eq!(out.answers, vec![(1, TxnAnswer::NeedProducerId)]);
    assert!(out.writes.is_empty());
    let out = c.init_producer_id(req("tx"), Some(1000), 1, T0);
    assert!(out.answers.is_empty(), "answered only once durable");
    assert_eq!(out.writes.len(), 1);
    assert_eq!(out.writes[0].partition, c.partition_for("tx"));
    assert!(c.metadata("tx").is_none(), "nothing changes before the write is durable");
    let out = settle!(c, out, NONE, T0);
    assert_eq!(answer(&out, 1), TxnAnswer::InitProducerId { error: NONE, producer_id: 1000, producer_epoch: 0 });
    // Again: the epoch is bumped, no new id.
    assert_eq!(init(&mut c, "tx", 2000, T0), TxnAnswer::InitProducerId { error: NONE, producer_id: 1000, producer_epoch: 1 });
}

#[test]
fn bad_timeouts_and_empty_ids() {
    let mut c = coord();
    for t in [0, -5, 900_001] {
        let out = c.init_producer_id(InitPidRequest { timeout_ms: t, ..req("tx") }, Some(1), 1, T0);
        assert_eq!(answer(&out, 1), TxnAnswer::init_error(INVALID_TRANSACTION_TIMEOUT));
    }
    let out = c.init_producer_id(req(""), Some(1), 1, T0);
    assert_eq!(answer(&out, 1), TxnAnswer::init_error(INVALID_REQUEST));
}

#[test]
fn commit_goes_through_prepare_markers_and_complete() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    let out = c.add_partitions("tx", 1000, 0, &[tp("a", 0), tp("b", 1)], 2, T0 + 1);
    assert_eq!(c.verify("tx", 1000, 0, &[tp("a", 0)]), vec![INVALID_TXN_STATE], "not yet durable");
    let out = settle!(c, out, NONE, T0 + 1);
    assert_eq!(answer(&out, 2), TxnAnswer::Code(NONE));
    let m = c.metadata("tx").unwrap();
    assert_eq!((m.state, m.start_ms), (TxnState::Ongoing, T0 + 1));
    assert_eq!(c.verify("tx", 1000, 0, &[tp("a", 0), tp("c", 0)]), vec![NONE, INVALID_TXN_STATE]);
    assert_eq!(c.verify("tx", 1000, 1, &[tp("a", 0)]), vec![PRODUCER_FENCED]);
    assert_eq!(c.verify("tx", 999, 0, &[tp("a", 0)]), vec![INVALID_PRODUCER_ID_MAPPING]);
    // Adding what is there already writes nothing.
    let out = c.add_partitions("tx", 1000, 0, &[tp("a", 0)], 3, T0 + 2);
    assert!(out.writes.is_empty());
    assert_eq!(answer(&out, 3), TxnAnswer::Code(NONE));

    let out = c.end_txn("tx", 1000, 0, true, 4, T0 + 3);
    assert!(out.answers.is_empty());
    let out = settle!(c, out, NONE, T0 + 3);
    assert_eq!(answer(&out, 4), TxnAnswer::Code(NONE));
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::PrepareCommit);
    assert_eq!(out.markers.len(), 1);
    let job = out.markers[0].clone();
    assert!(job.commit);
    assert_eq!((job.producer_id, job.producer_epoch, job.coordinator_epoch), (1000, 0, 7));
    assert_eq!(job.partitions, vec![tp("a", 0), tp("b", 1)]);
    assert!(c.marker_job_live(&job));
    assert_eq!(c.verify("tx", 1000, 0, &[tp("a", 0)]), vec![CONCURRENT_TRANSACTIONS]);
    // The client retries while the markers are out.
    assert_eq!(answer(&c.end_txn("tx", 1000, 0, true, 5, T0 + 4), 5), TxnAnswer::Code(CONCURRENT_TRANSACTIONS));
    assert_eq!(answer(&c.end_txn("tx", 1000, 0, false, 5, T0 + 4), 5), TxnAnswer::Code(INVALID_TXN_STATE));
    assert_eq!(answer(&c.init_producer_id(req("tx"), None, 6, T0 + 4), 6), TxnAnswer::init_error(CONCURRENT_TRANSACTIONS));

    let out = c.markers_done(&job, T0 + 5);
    assert_eq!(out.writes.len(), 1);
    settle!(c, out, NONE, T0 + 5);
    let m = c.metadata("tx").unwrap();
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
    assert!(!c.marker_job_live(&job));
    assert_eq!(answer(&c.end_txn("tx", 1000, 0, true, 7, T0 + 6), 7), TxnAnswer::Code(NONE));
    assert_eq!(answer(&c.end_txn("tx", 1000, 0, false, 7, T0 + 6), 7), TxnAnswer::Code(INVALID_TXN_STATE));
    // A new transaction starts from CompleteCommit.
    let out = settle!(c, c_add(&mut c, "tx", 1000, 0, ("a", 2), 8, T0 + 7), NONE, T0 + 7);
    assert_eq!(answer(&out, 8), TxnAnswer::Code(NONE));
    assert_eq!(c.metadata("tx").unwrap().start_ms, T0 + 7);
}

fn c_add(c: &mut TxnCoordinator, id: &str, pid: i64, epoch: i16, (topic, p): (&str, i32), token: Token, now: i64) -> TxnOutput {
    c.add_partitions(id, pid, epoch, &[tp(topic, p)], token, now)
}

#[test]
fn wrong_ids_and_epochs_are_refused() {
    let mut c = coord();
    assert_eq!(answer(&c_add(&mut c, "nope", 1, 0, ("a", 0), 1, T0), 1), TxnAnswer::Code(INVALID_PRODUCER_ID_MAPPING));
    init(&mut c, "tx", 1000, T0);
    assert_eq!(answer(&c_add(&mut c, "tx", 1001, 0, ("a", 0), 1, T0), 1), TxnAnswer::Code(INVALID_PRODUCER_ID_MAPPING));
    assert_eq!(answer(&c_add(&mut c, "tx", 1000, 1, ("a", 0), 1, T0), 1), TxnAnswer::Code(PRODUCER_FENCED));
    assert_eq!(answer(&c.end_txn("tx", 1000, 0, true, 1, T0), 1), TxnAnswer::Code(INVALID_TXN_STATE), "Empty");
    assert_eq!(answer(&c.end_txn("", 1000, 0, true, 1, T0), 1), TxnAnswer::Code(INVALID_REQUEST));
}

#[test]
fn a_second_request_while_a_write_is_in_flight_is_concurrent() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    let first = c_add(&mut c, "tx", 1000, 0, ("a", 0), 1, T0);
    assert_eq!(answer(&c_add(&mut c, "tx", 1000, 0, ("b", 0), 2, T0), 2), TxnAnswer::Code(CONCURRENT_TRANSACTIONS));
    assert_eq!(answer(&c.init_producer_id(req("tx"), None, 3, T0), 3), TxnAnswer::init_error(CONCURRENT_TRANSACTIONS));
    let out = settle!(c, first, NONE, T0);
    assert_eq!(answer(&out, 1), TxnAnswer::Code(NONE));
}

#[test]
fn failed_writes_change_nothing_and_map_errors() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    let out = c_add(&mut c, "tx", 1000, 0, ("a", 0), 1, T0);
    let out = settle!(c, out, NOT_ENOUGH_REPLICAS, T0);
    assert_eq!(answer(&out, 1), TxnAnswer::Code(COORDINATOR_NOT_AVAILABLE));
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::Empty);
    let out = c.init_producer_id(req("tx"), None, 2, T0);
    let out = settle!(c, out, NOT_LEADER_OR_FOLLOWER, T0);
    assert_eq!(answer(&out, 2), TxnAnswer::init_error(NOT_COORDINATOR));
    assert_eq!(c.metadata("tx").unwrap().producer_epoch, 0);
    let out = c.init_producer_id(req("new"), Some(5), 3, T0);
    let out = settle!(c, out, KAFKA_STORAGE_ERROR, T0);
    assert_eq!(answer(&out, 3), TxnAnswer::init_error(NOT_COORDINATOR));
    assert!(c.metadata("new").is_none());
    assert_eq!(txn_write_error(REQUEST_TIMED_OUT), COORDINATOR_NOT_AVAILABLE);
    assert_eq!(txn_write_error(MESSAGE_TOO_LARGE), UNKNOWN_SERVER_ERROR);
}

#[test]
fn failed_complete_write_is_retried_by_the_tick() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    settle!(c, c_add(&mut c, "tx", 1000, 0, ("a", 0), 1, T0), NONE, T0);
    let out = settle!(c, c.end_txn("tx", 1000, 0, false, 2, T0), NONE, T0);
    let job = out.markers[0].clone();
    assert!(!job.commit);
    settle!(c, c.markers_done(&job, T0), NOT_ENOUGH_REPLICAS, T0);
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::PrepareAbort);
    assert!(!c.marker_job_live(&job));
    let out = c.abort_timed_out(T0 + 1);
    assert_eq!(out.markers.len(), 1);
    let job = out.markers[0].clone();
    settle!(c, c.markers_done(&job, T0 + 1), NONE, T0 + 1);
    assert_eq!(c.metadata("tx").unwrap().state, TxnState::CompleteAbort);
}

#[test]
fn init_during_an_ongoing_transaction_fences_and_aborts_it() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    settle!(c, c_add(&mut c, "tx", 1000, 0, ("a", 0), 1, T0), NONE, T0);
    let out = c.init_producer_id(req("tx"), None, 2, T0 + 1);
    let out = settle!(c, out, NONE, T0 + 1);
    assert_eq!(answer(&out, 2), TxnAnswer::init_error(CONCURRENT_TRANSACTIONS));
    let m = c.metadata("tx").unwrap();
    assert_eq!((m.state, m.producer_epoch), (TxnState::PrepareAbort, 1));
    assert_eq!(out.markers.len(), 1);
    assert_eq!(out.markers[0].producer_epoch, 1, "markers carry the bumped epoch, fencing the zombie");
    // The zombie is fenced.
    assert_eq!(answer(&c.end_txn("tx", 1000, 0, true, 3, T0 + 1), 3), TxnAnswer::Code(PRODUCER_FENCED));
    let job = out.markers[0].clone();
    settle!(c, c.markers_done(&job, T0 + 2), NONE, T0 + 2);
    // The retried InitProducerId bumps once more.
    assert_eq!(init(&mut c, "tx", 9, T0 + 3), TxnAnswer::InitProducerId { error: NONE, producer_id: 1000, producer_epoch: 2 });
}

#[test]
fn timed_out_transactions_are_aborted_with_a_bumped_epoch() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    settle!(c, c_add(&mut c, "tx", 1000, 0, ("a", 0), 1, T0), NONE, T0);
    assert!(c.abort_timed_out(T0 + 60_000).writes.is_empty(), "not past the timeout yet");
    let out = settle!(c, c.abort_timed_out(T0 + 60_001), NONE, T0 + 60_001);
    let m = c.metadata("tx").unwrap();
    assert_eq!((m.state, m.producer_epoch), (TxnState::PrepareAbort, 1));
    assert_eq!(out.markers.len(), 1);
    assert!(!out.markers[0].commit);
    assert_eq!(answer(&c.end_txn("tx", 1000, 0, true, 2, T0), 2), TxnAnswer::Code(PRODUCER_FENCED));
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    init(&mut c, "busy", 2000, T0);
    settle!(c, c_add(&mut c, "busy", 2000, 0, ("a", 0), 1, T0), NONE, T0);
    assert!(c.expire_ids(T0 + 3_599_999).writes.is_empty());
    let out = c.expire_ids(T0 + 3_600_000);
    assert_eq!(out.writes.len(), 1);
    assert_eq!(out.writes[0].records, vec![TxnRecord { transactional_id: "tx".into(), value: None }]);
    settle!(c, out, NONE, T0 + 3_600_000);
    assert!(c.metadata("tx").is_none());
    assert_eq!(c.describe("tx"), Err(TRANSACTIONAL_ID_NOT_FOUND));
    assert!(c.metadata("busy").is_some(), "an ongoing transaction does not expire");
}

#[test]
fn exhausted_epochs_rotate_the_producer_id() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    let mut m = c.metadata("tx").unwrap().clone();
    m.producer_epoch = i16::MAX - 1;
    let p = c.partition_for("tx");
    let (ticket, _) = c.begin_load(p, 8);
    c.load(p, m.record());
    c.finish_load(p, ticket).unwrap();
    let out = c.init_producer_id(req("tx"), None, 1, T0);
    assert_eq!(answer(&out, 1), TxnAnswer::NeedProducerId);
    // A KIP-360 client that knows its exhausted epoch.
    let r = InitPidRequest { expected: Some((1000, i16::MAX - 1)), ..req("tx") };
    let out = settle!(c, c.init_producer_id(r.clone(), Some(3000), 1, T0), NONE, T0);
    assert_eq!(answer(&out, 1), TxnAnswer::InitProducerId { error: NONE, producer_id: 3000, producer_epoch: 0 });
    assert_eq!(c.metadata("tx").unwrap().previous_producer_id, 1000);
    // Its retry (the answer was lost) with the old id and exhausted epoch gets the same answer.
    let out = settle!(c, c.init_producer_id(r, None, 2, T0), NONE, T0);
    assert_eq!(answer(&out, 2), TxnAnswer::InitProducerId { error: NONE, producer_id: 3000, producer_epoch: 0 });
}

#[test]
fn kip360_recovery_with_the_expected_epoch() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    init(&mut c, "tx", 1000, T0); // epoch 1
    let r = |pid, e| InitPidRequest { expected: Some((pid, e)), ..req("tx") };
    let out = settle!(c, c.init_producer_id(r(1000, 1), None, 1, T0), NONE, T0);
    assert_eq!(answer(&out, 1), TxnAnswer::InitProducerId { error: NONE, producer_id: 1000, producer_epoch: 2 });
    // The same request again (the answer was lost): the same epoch, no bump.
    let out = settle!(c, c.init_producer_id(r(1000, 1), None, 2, T0), NONE, T0);
    assert_eq!(answer(&out, 2), TxnAnswer::InitProducerId { error: NONE, producer_id: 1000, producer_epoch: 2 });
    assert_eq!(answer(&c.init_producer_id(r(1000, 0), None, 3, T0), 3), TxnAnswer::init_error(PRODUCER_FENCED));
    assert_eq!(answer(&c.init_producer_id(r(77, 2), None, 4, T0), 4), TxnAnswer::init_error(PRODUCER_FENCED));
}

#[test]
fn loading_replays_records_and_resumes_markers() {
    let mut c = coord();
    let mut log: Vec<TxnRecord> = Vec::new();
    let run = |c: &mut TxnCoordinator, out: TxnOutput, log: &mut Vec<TxnRecord>| {
        for w in &out.writes {
            log.extend(w.records.iter().cloned());
        }
        settle_out(c, out, NONE, T0)
    };
    let o = c.init_producer_id(req("tx"), Some(1000), 1, T0);
    run(&mut c, o, &mut log);
    let o = c_add(&mut c, "tx", 1000, 0, ("a", 3), 2, T0);
    run(&mut c, o, &mut log);
    let o = c.end_txn("tx", 1000, 0, true, 3, T0);
    let out = run(&mut c, o, &mut log);
    assert_eq!(out.markers.len(), 1);

    let mut d = TxnCoordinator::new(c.config.clone());
    let p = d.partition_for("tx");
    let (ticket, _) = d.begin_load(p, 12);
    assert_eq!(d.check("tx"), COORDINATOR_LOAD_IN_PROGRESS);
    for r in &log {
        // Encode and decode, as a replay from the log does.
        let (k, v) = r.encode();
        d.load(p, TxnRecord::decode(&k, v.as_deref()).unwrap().unwrap());
    }
    let out = d.finish_load(p, ticket).unwrap();
    let mut a = c.metadata("tx").unwrap().clone();
    a.last_producer_epoch = NO_PRODUCER_EPOCH;
    assert_eq!(d.metadata("tx"), Some(&a));
    assert_eq!(out.markers.len(), 1);
    assert_eq!(out.markers[0].coordinator_epoch, 12);
    assert!(out.markers[0].commit);
    // A stale ticket does nothing.
    assert!(d.finish_load(p, ticket).is_none());
}

#[test]
fn unloading_answers_waiting_requests_and_kills_marker_jobs() {
    let mut c = coord();
    init(&mut c, "tx", 1000, T0);
    settle!(c, c_add(&mut c, "tx", 1000, 0, ("a", 0), 1, T0), NONE, T0);
    let out = settle!(c, c.end_txn("tx", 1000, 0, true, 2, T0), NONE, T0);
    let job = out.markers[0].clone();
    init(&mut c, "other", 2000, T0);
    let p = c.partition_for("other");
    let pending = c_add(&mut c, "other", 2000, 0, ("a", 0), 3, T0);
    let out = c.unload(p);
    if p == c.partition_for("tx") {
        assert!(!c.marker_job_live(&job));
    }
    assert_eq!(answer(&out, 3), TxnAnswer::Code(NOT_COORDINATOR));
    assert_eq!(c.check("other"), NOT_COORDINATOR);
    // The write reported later is ignored.
    let out = c.complete_write(pending.writes[0].id, NONE, T0);
    assert!(out.answers.is_empty() && out.resolved.is_empty());
}

#[test]
fn describe_and_list() {
    let mut c = coord();
    init(&mut c, "a", 1, T0);
    init(&mut c, "b", 2, T0);
    settle!(c, c_add(&mut c, "b", 2, 0, ("t", 0), 1, T0 + 10), NONE, T0 + 10);
    let d = c.describe("b").unwrap();
    assert_eq!((d.state, d.start_ms, d.timeout_ms), (TxnState::Ongoing, T0 + 10, 60_000));
    let names = |r: Vec<TxnListing>| r.into_iter().map(|l| l.transactional_id).collect::<Vec<_>>();
    assert_eq!(names(c.list(&[], &[], -1, T0).unwrap().0), vec!["a", "b"]);
    assert_eq!(names(c.list(&["Ongoing".into()], &[], -1, T0).unwrap().0), vec!["b"]);
    assert_eq!(names(c.list(&[], &[1], -1, T0).unwrap().0), vec!["a"]);
    let (rows, unknown) = c.list(&["Bogus".into()], &[], -1, T0).unwrap();
    assert!(rows.is_empty());
    assert_eq!(unknown, vec!["Bogus".to_string()]);
    assert_eq!(names(c.list(&["Ongoing".into()], &[], 5_000, T0 + 5_010).unwrap().0), Vec::<String>::new());
    assert_eq!(names(c.list(&["Ongoing".into()], &[], 5_000, T0 + 5_011).unwrap().0), vec!["b"]);
    c.begin_load(0, 1);
    assert_eq!(c.list(&[], &[], -1, T0), Err(COORDINATOR_LOAD_IN_PROGRESS));
}

#[test]
fn state_bytes_and_names_round_trip() {
    for s in TxnState::ALL {
        assert_eq!(TxnState::from_byte(s.byte()), Some(s));
        assert_eq!(TxnState::from_name(s.name()), Some(s));
    }
}

/// A small deterministic generator (xorshift64*), so failures replay by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random requests, write outcomes, marker completions, timers and failovers
/// over a few ids. Invariants: state only from durable writes (a replay of the
/// successful writes rebuilds the same metadata), epochs of a producer id never go
/// back, and transitions are Kafka's.
#[test]
fn randomized_sequences_keep_the_invariants() {
    let mut reached = BTreeSet::new();
    for seed in 1..=200u64 {
        reached.extend(run_random(seed));
    }
    // The sequences do reach every state a transaction can be in.
    for s in [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ] {
        assert!(reached.contains(&s), "{s:?} never reached");
    }
}

fn allowed(from: TxnState, to: TxnState) -> bool {
    use TxnState::*;
    from == to
        || matches!(
            (from, to),
            (Empty | CompleteCommit | CompleteAbort, Empty | Ongoing)
                | (Ongoing, PrepareCommit | PrepareAbort)
                | (PrepareCommit, CompleteCommit)
                | (PrepareAbort, CompleteAbort)
        )
}

/// Runs one seeded sequence; returns the states reached.
fn run_random(seed: u64) -> BTreeSet<TxnState> {
    let mut reached = BTreeSet::new();
    let ids = ["t0", "t1", "t2"];
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut c = coord();
    let mut now = T0;
    let mut next_pid = 100i64;
    let mut token = 0u64;
    let mut writes: Vec<TxnWrite> = Vec::new();
    let mut jobs: Vec<MarkerJob> = Vec::new();
    // The durable log of each partition, as replay would see it.
    let mut log: HashMap<i32, Vec<TxnRecord>> = HashMap::new();
    let mut by_write: HashMap<WriteId, (i32, Vec<TxnRecord>)> = HashMap::new();
    let mut seen: HashMap<String, TxnMetadata> = HashMap::new();
    for step in 0..400 {
        now += rng.below(5_000) as i64;
        token += 1;
        let id = ids[rng.below(3) as usize];
        let m = c.metadata(id).cloned();
        let (pid, epoch) = m.as_ref().map(|m| (m.producer_id, m.producer_epoch)).unwrap_or((1, 0));
        let epoch = if rng.below(10) == 0 { epoch.wrapping_sub(1) } else { epoch };
        let out = match rng.below(10) {
            0 | 1 => {
                let out = c.init_producer_id(req(id), None, token, now);
                if out.answers.iter().any(|(_, a)| *a == TxnAnswer::NeedProducerId) {
                    next_pid += 1;
                    c.init_producer_id(req(id), Some(next_pid), token, now)
                } else {
                    out
                }
            }
            2 | 3 => {
                let p = rng.below(3) as i32;
                c.add_partitions(id, pid, epoch, &[tp("x", p)], token, now)
            }
            4 => c.end_txn(id, pid, epoch, rng.below(2) == 0, token, now),
            5 if !writes.is_empty() => {
                let w = writes.remove(rng.below(writes.len() as u64) as usize);
                let result = if rng.below(5) == 0 { NOT_ENOUGH_REPLICAS } else { NONE };
                let mut out = c.complete_write(w.id, result, now);
                for (wid, code) in &out.resolved {
                    if let Some((p, recs)) = by_write.remove(wid) {
                        if *code == NONE {
                            log.entry(p).or_default().extend(recs);
                        }
                    }
                }
                out.resolved.clear();
                out
            }
            6 if !jobs.is_empty() => {
                let j = jobs.remove(rng.below(jobs.len() as u64) as usize);
                c.markers_done(&j, now)
            }
            7 => {
                now += 70_000;
                c.abort_timed_out(now)
            }
            8 if rng.below(4) == 0 => c.expire_ids(now + 3_600_000),
            9 if rng.below(3) == 0 => {
                // Failover: the partition is reloaded from its durable log.
                let p = rng.below(4) as i32;
                let (ticket, mut out) = c.begin_load(p, step);
                for r in log.get(&p).cloned().unwrap_or_default() {
                    c.load(p, r);
                }
                out.extend(c.finish_load(p, ticket).unwrap());
                writes.retain(|w| w.partition != p);
                by_write.retain(|_, (wp, _)| *wp != p);
                out
            }
            _ => TxnOutput::default(),
        };
        for w in out.writes {
            by_write.insert(w.id, (w.partition, w.records.clone()));
            writes.push(w);
        }
        jobs.extend(out.markers);
        jobs.retain(|j| c.marker_job_live(j));
        for id in ids {
            let now_m = c.metadata(id).cloned();
            if let (Some(before), Some(after)) = (seen.get(id), &now_m) {
                assert!(allowed(before.state, after.state), "seed {seed} step {step}: {:?} -> {:?}", before.state, after.state);
                if before.producer_id == after.producer_id {
                    assert!(after.producer_epoch >= before.producer_epoch, "seed {seed} step {step}: epoch went back");
                }
                if after.state == TxnState::Ongoing {
                    assert!(!after.partitions.is_empty());
                }
            }
            match now_m {
                Some(m) => {
                    reached.insert(m.state);
                    seen.insert(id.to_string(), m);
                }
                None => {
                    seen.remove(id);
                }
            }
        }
        // State comes only from durable records: replaying them rebuilds it.
        let mut d = TxnCoordinator::new(c.config.clone());
        for p in 0..4 {
            let (ticket, _) = d.begin_load(p, 0);
            for r in log.get(&p).cloned().unwrap_or_default() {
                d.load(p, r);
            }
            d.finish_load(p, ticket);
        }
        for id in ids {
            let strip = |m: Option<&TxnMetadata>| {
                m.cloned().map(|mut m| {
                    m.last_producer_epoch = NO_PRODUCER_EPOCH;
                    m
                })
            };
            assert_eq!(strip(c.metadata(id)), strip(d.metadata(id)), "seed {seed} step {step}: {id}");
        }
    }
    reached
}
