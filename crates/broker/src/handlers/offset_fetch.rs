//! OffsetFetch (key 9): one group (v1-7) or several (v8+). Partitions without a
//! commit answer offset -1; a null topic list means every committed partition.
//! Only durable commits are visible. Groups this broker does not coordinate get
//! NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS while loading): per group in
//! v8+, at the top in v2-7, per partition in v1.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use strom_coordinator::records::OffsetValue;

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

type Row = (String, i32, Option<OffsetValue>);
type TopicRows = (String, Vec<(i32, Option<OffsetValue>)>);

fn grouped(rows: Vec<Row>) -> Vec<TopicRows> {
    let mut out: Vec<TopicRows> = Vec::new();
    for (t, p, v) in rows {
        match out.iter_mut().find(|(n, _)| *n == t) {
            Some((_, ps)) => ps.push((p, v)),
            None => out.push((t, vec![(p, v)])),
        }
    }
    out
}

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: OffsetFetchRequest) -> Outcome {
    let v = reply.version;
    let coord = b.groups.lock();
    let mut resp = OffsetFetchResponse::default();
    if v >= 8 {
        for g in &req.groups {
            let wanted: Option<Vec<(String, Vec<i32>)>> =
                g.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
            let mut rg = OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id.clone();
            rg.error_code = coord.check(&g.group_id);
            if rg.error_code != 0 {
                resp.groups.push(rg);
                continue;
            }
            let rows = coord.fetch_offsets(&g.group_id, wanted.as_deref());
            rg.topics = grouped(rows)
                .into_iter()
                .map(|(t, ps)| {
                    let mut rt = OffsetFetchResponseTopics::default();
                    rt.name = TopicName(s(t));
                    rt.partitions = ps
                        .into_iter()
                        .map(|(p, val)| {
                            let mut rp = OffsetFetchResponsePartitions::default();
                            rp.partition_index = p;
                            rp.committed_offset = val.as_ref().map(|x| x.offset).unwrap_or(-1);
                            rp.committed_leader_epoch = val.as_ref().map(|x| x.leader_epoch).unwrap_or(-1);
                            rp.metadata = Some(s(val.map(|x| x.metadata).unwrap_or_default()));
                            rp
                        })
                        .collect();
                    rt
                })
                .collect();
            resp.groups.push(rg);
        }
        return reply.ready(&resp);
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> =
        req.topics.as_ref().map(|ts| ts.iter().map(|t| (t.name.to_string(), t.partition_indexes.clone())).collect());
    let error = coord.check(&req.group_id);
    if error != 0 && v >= 2 {
        resp.error_code = error;
        return reply.ready(&resp);
    }
    let rows = if error != 0 {
        // v1 has no top-level error: every partition asked for carries it.
        wanted.iter().flatten().flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p, None))).collect()
    } else {
        coord.fetch_offsets(&req.group_id, wanted.as_deref())
    };
    resp.topics = grouped(rows)
        .into_iter()
        .map(|(t, ps)| {
            let mut rt = OffsetFetchResponseTopic::default();
            rt.name = TopicName(s(t));
            rt.partitions = ps
                .into_iter()
                .map(|(p, val)| {
                    let mut rp = OffsetFetchResponsePartition::default();
                    rp.partition_index = p;
                    rp.error_code = error;
                    rp.committed_offset = val.as_ref().map(|x| x.offset).unwrap_or(-1);
                    if v >= 5 {
                        rp.committed_leader_epoch = val.as_ref().map(|x| x.leader_epoch).unwrap_or(-1);
                    }
                    rp.metadata = Some(s(val.map(|x| x.metadata).unwrap_or_default()));
                    rp
                })
                .collect();
            rt
        })
        .collect();
    reply.ready(&resp)
}
