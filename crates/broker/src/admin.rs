//! Admin requests the controller decides on behalf of a client: leader
//! elections and partition reassignments. Each waits, as every forwarded
//! request does, until this node has applied the controller's records.

use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::controller::{Answer, Failure, Request};
use crate::server::Broker;

/// One result per item asked, in order; `Err` for the whole call when the
/// controller could not be asked (no quorum, timeout) or answered oddly.
pub type ItemResults = Result<Vec<Result<(), Failure>>, Failure>;

impl Broker {
    /// ElectLeaders (`election_type` 0 preferred, 1 unclean) for partitions by topic id.
    pub async fn elect_leaders(&self, election_type: i8, partitions: Vec<(Uuid, i32)>) -> ItemResults {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let n = partitions.len();
        match self.ask_controller(Request::ElectLeaders { election_type, partitions }).await? {
            Answer::ElectLeaders(v) if v.len() == n => Ok(v),
            _ => Err(Failure::new(ErrorCode::UnknownServerError, "unexpected controller answer")),
        }
    }

    /// AlterPartitionReassignments: `Some(target replicas)` starts a
    /// reassignment, `None` cancels the one in progress.
    pub async fn alter_reassignments(&self, items: Vec<(Uuid, i32, Option<Vec<i32>>)>) -> ItemResults {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let n = items.len();
        match self.ask_controller(Request::AlterReassignments { items }).await? {
            Answer::AlterReassignments(v) if v.len() == n => Ok(v),
            _ => Err(Failure::new(ErrorCode::UnknownServerError, "unexpected controller answer")),
        }
    }
}
