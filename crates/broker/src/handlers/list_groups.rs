//! ListGroups (key 16), with the state filter of v4+ and the type filter of v5.
//! Lists the groups of the `__consumer_offsets` partitions this broker
//! coordinates; COORDINATOR_LOAD_IN_PROGRESS while some are still loading (the
//! loaded ones are listed anyway, as Kafka does).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: ListGroupsRequest) -> Outcome {
    let states: Vec<String> = req.states_filter.iter().map(|x| x.to_lowercase()).collect();
    let mut resp = ListGroupsResponse::default();
    let (groups, loading) = {
        let coord = b.groups.lock();
        (coord.list(), coord.loading())
    };
    if loading {
        resp.error_code = strom_coordinator::errors::COORDINATOR_LOAD_IN_PROGRESS;
    }
    for (id, protocol_type, state) in groups {
        if !states.is_empty() && !states.contains(&state.name().to_lowercase()) {
            continue;
        }
        if !req.types_filter.is_empty() && !req.types_filter.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = GroupId(s(id));
        g.protocol_type = s(protocol_type);
        if reply.version >= 4 {
            g.group_state = s(state.name());
        }
        if reply.version >= 5 {
            g.group_type = s("classic");
        }
        resp.groups.push(g);
    }
    reply.ready(&resp)
}
