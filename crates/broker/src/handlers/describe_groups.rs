//! DescribeGroups (key 15): state, protocol and members. Unknown groups are
//! reported as `Dead` with no error, as Kafka does; groups this broker does not
//! coordinate get NOT_COORDINATOR (COORDINATOR_LOAD_IN_PROGRESS while loading).

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeGroupsRequest) -> Outcome {
    let coord = b.groups.lock();
    let mut resp = DescribeGroupsResponse::default();
    for g in req.groups {
        let mut dg = DescribedGroup::default();
        dg.group_id = g.clone();
        if req.include_authorized_operations && reply.version >= 3 {
            dg.authorized_operations = super::ops::GROUP;
        }
        dg.error_code = coord.check(&g);
        if dg.error_code != 0 {
            resp.groups.push(dg);
            continue;
        }
        match coord.describe(&g) {
            None => dg.group_state = s("Dead"),
            Some(d) => {
                dg.group_state = s(d.state.name());
                dg.protocol_type = s(d.protocol_type);
                dg.protocol_data = s(d.protocol);
                dg.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_id = s(m.member_id);
                        if reply.version >= 4 {
                            dm.group_instance_id = m.group_instance_id.map(s);
                        }
                        dm.client_id = s(m.client_id);
                        dm.client_host = s(m.client_host);
                        dm.member_metadata = m.metadata;
                        dm.member_assignment = m.assignment;
                        dm
                    })
                    .collect();
            }
        }
        resp.groups.push(dg);
    }
    reply.ready(&resp)
}
