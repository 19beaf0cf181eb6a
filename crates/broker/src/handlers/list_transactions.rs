//! ListTransactions (key 66): the transactional ids this broker coordinates,
//! filtered by state, producer id and (v1) how long their transaction has run.
//! Admin clients ask every broker and merge the answers.

use std::sync::Arc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: ListTransactionsRequest) -> Outcome {
    let mut resp = ListTransactionsResponse::default();
    let states: Vec<String> = req.state_filters.iter().map(|f| f.to_string()).collect();
    let pids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if reply.version >= 1 { req.duration_filter } else { -1 };
    match b.txns.lock().list(&states, &pids, duration, strom_storage::now_ms()) {
        Err(code) => resp.error_code = code,
        Ok((rows, unknown)) => {
            resp.unknown_state_filters = unknown.into_iter().map(s).collect();
            resp.transaction_states = rows
                .into_iter()
                .map(|r| {
                    let mut t = TransactionState::default();
                    t.transactional_id = TransactionalId(s(r.transactional_id));
                    t.producer_id = ProducerId(r.producer_id);
                    t.transaction_state = s(r.state.name());
                    t
                })
                .collect();
        }
    }
    reply.ready(&resp)
}
