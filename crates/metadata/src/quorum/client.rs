//! Proposing from another node: sends a batch to a voter, which appends it if it leads.

use std::collections::BTreeMap;
use std::time::Duration;

use super::network::{CallError, Connector, RpcClient};
use super::rpc::{self, Request, Response};
use super::ProposeError;
use crate::MetadataRecord;

/// Proposes batches to voters over the quorum protocol, one connection per voter.
pub struct QuorumClient<C: Connector> {
    clients: BTreeMap<i32, RpcClient<C>>,
    timeout: Duration,
    leader: Option<i32>,
}

impl<C: Connector> QuorumClient<C> {
    /// `request_timeout` should exceed the voters' `request_timeout_ms` (they time out proposals).
    pub fn new(voters: &BTreeMap<i32, String>, connector: C, request_timeout: Duration) -> Self {
        let clients = voters.iter().map(|(id, a)| (*id, RpcClient::new(a.clone(), connector.clone()))).collect();
        QuorumClient { clients, timeout: request_timeout, leader: None }
    }

    /// The leader the last answer named.
    pub fn leader(&self) -> Option<i32> {
        self.leader
    }

    /// Asks `voter` to append `records`. A voter that cannot be reached answers
    /// `NotLeader { leader: None }` (nothing was sent); a lost answer is `Timeout` (outcome unknown).
    pub async fn propose_to(&mut self, voter: i32, records: Vec<MetadataRecord>) -> Result<u64, ProposeError> {
        let Some(client) = self.clients.get_mut(&voter) else {
            return Err(ProposeError::NotLeader { leader: self.leader });
        };
        let body = rpc::encode(&Request::Propose { records });
        let res = match client.call(&body, self.timeout).await {
            Ok(b) => match serde_json::from_slice::<Response>(&b) {
                Ok(Response::Proposed(r)) => r,
                Ok(Response::Error(e)) => Err(ProposeError::Fatal(e)),
                Ok(_) => Err(ProposeError::Fatal("unexpected answer to Propose".into())),
                Err(e) => Err(ProposeError::Fatal(e.to_string())),
            },
            Err(CallError::Connect(_)) => Err(ProposeError::NotLeader { leader: None }),
            Err(CallError::Io(_)) => Err(ProposeError::Timeout),
        };
        match &res {
            Ok(_) => self.leader = Some(voter),
            Err(ProposeError::NotLeader { leader }) => self.leader = *leader,
            Err(_) => {}
        }
        res
    }
}
