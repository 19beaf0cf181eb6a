//! OffsetFetch (key 9): one group (v1-7) or several (v8+). Partitions without a
//! commit answer offset -1; a null topic list means every committed partition.
//! Only durable commits are visible, and offsets committed in a transaction
//! only once it commits. With `require_stable` (v7+, sent by read_committed
//! consumers) a partition whose offset is not final yet (a transaction's commit
//! awaits its marker, or a commit is being written) answers
//! UNSTABLE_OFFSET_COMMIT, per partition as Kafka does, so the consumer retries.
//! Groups this broker does not coordinate get NOT_COORDINATOR
//! (COORDINATOR_LOAD_IN_PROGRESS while loading): per group in v8+, at the top in
//! v2-7, per partition in v1.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use strom_coordinator::errors::NONE;
use strom_coordinator::records::OffsetValue;
use strom_coordinator::GroupCoordinator;
use strom_protocol::ErrorCode;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

/// One partition's answer: its committed offset or nothing, and its error.
struct Row {
    topic: String,
    partition: i32,
    value: Option<OffsetValue>,
    error: i16,
}

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// The answers for a group this coordinator serves; `require_stable` turns
/// partitions whose offset is not final into UNSTABLE_OFFSET_COMMIT.
fn rows(coord: &GroupCoordinator, group: &str, wanted: Option<&[(String, Vec<i32>)]>, require_stable: bool) -> Vec<Row> {
    coord
        .fetch_offsets(group, wanted)
        .into_iter()
        .map(|(topic, partition, value)| {
            if require_stable && coord.has_pending_commit(group, &topic, partition) {
                return Row { topic, partition, value: None, error: ErrorCode::UnstableOffsetCommit.code() };
            }
            Row { topic, partition, value, error: NONE }
        })
        .collect()
}

/// Rows by topic, in the order topics first appear.
fn grouped(rows: Vec<Row>) -> Vec<(String, Vec<Row>)> {
    let mut out: Vec<(String, Vec<Row>)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|(n, _)| *n == r.topic) {
            Some((_, ps)) => ps.push(r),
            None => out.push((r.topic.clone(), vec![r])),
        }
    }
    out
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: OffsetFetchRequest) -> Outcome {
    let coord = b.groups.lock();
    let resp = if reply.version >= 8 { by_groups(&coord, &req) } else { one_group(&coord, reply.version, &req) };
    reply.ready(&resp)
}

/// v8+: several groups, each with its own error.
fn by_groups(coord: &GroupCoordinator, req: &OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    for g in &req.groups {
        let wanted: Wanted = g.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
        let mut rg = OffsetFetchResponseGroup::default();
        rg.group_id = g.group_id.clone();
        rg.error_code = coord.check(&g.group_id);
        if rg.error_code != NONE {
            resp.groups.push(rg);
            continue;
        }
        let rows = rows(coord, &g.group_id, wanted.as_deref(), req.require_stable);
        rg.topics = grouped(rows)
            .into_iter()
            .map(|(t, ps)| {
                let mut rt = OffsetFetchResponseTopics::default();
                rt.name = TopicName(s(t));
                rt.partitions = ps
                    .into_iter()
                    .map(|r| {
                        let mut rp = OffsetFetchResponsePartitions::default();
                        rp.partition_index = r.partition;
                        rp.error_code = r.error;
                        rp.committed_offset = r.value.as_ref().map(|x| x.offset).unwrap_or(-1);
                        rp.committed_leader_epoch = r.value.as_ref().map(|x| x.leader_epoch).unwrap_or(-1);
                        rp.metadata = Some(s(r.value.map(|x| x.metadata).unwrap_or_default()));
                        rp
                    })
                    .collect();
                rt
            })
            .collect();
        resp.groups.push(rg);
    }
    resp
}

/// v1-7: one group; its error at the top (v2+) or on every partition (v1).
fn one_group(coord: &GroupCoordinator, v: i16, req: &OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    let wanted: Wanted = req.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
    let error = coord.check(&req.group_id);
    if error != NONE && v >= 2 {
        resp.error_code = error;
        return resp;
    }
    let rows = if error != NONE {
        // v1 has no top-level error: every partition asked for carries it.
        wanted
            .iter()
            .flatten()
            .flat_map(|(t, ps)| ps.iter().map(move |p| Row { topic: t.clone(), partition: *p, value: None, error }))
            .collect()
    } else {
        rows(coord, &req.group_id, wanted.as_deref(), v >= 7 && req.require_stable)
    };
    resp.topics = grouped(rows)
        .into_iter()
        .map(|(t, ps)| {
            let mut rt = OffsetFetchResponseTopic::default();
            rt.name = TopicName(s(t));
            rt.partitions = ps
                .into_iter()
                .map(|r| {
                    let mut rp = OffsetFetchResponsePartition::default();
                    rp.partition_index = r.partition;
                    rp.error_code = r.error;
                    rp.committed_offset = r.value.as_ref().map(|x| x.offset).unwrap_or(-1);
                    if v >= 5 {
                        rp.committed_leader_epoch = r.value.as_ref().map(|x| x.leader_epoch).unwrap_or(-1);
                    }
                    rp.metadata = Some(s(r.value.map(|x| x.metadata).unwrap_or_default()));
                    rp
                })
                .collect();
            rt
        })
        .collect();
    resp
}
