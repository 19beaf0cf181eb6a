//! OffsetFetch (key 9): one group (v1-7) or several (v8+). Partitions without a
//! commit answer offset -1; a null topic list means every committed partition.

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
            let rows = coord.fetch_offsets(&g.group_id, wanted.as_deref());
            let mut rg = OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id.clone();
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
    let rows = coord.fetch_offsets(&req.group_id, wanted.as_deref());
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
