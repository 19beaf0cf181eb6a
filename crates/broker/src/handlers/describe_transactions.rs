//! DescribeTransactions (key 65): the state, producer id and epoch, timeout,
//! start time and partitions of transactional ids this broker coordinates
//! (others get NOT_COORDINATOR; admin clients ask each id's coordinator).

use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName};

use super::s;
use crate::dispatch::{Outcome, Reply};
use crate::server::Broker;

pub fn handle(b: &Arc<Broker>, reply: &Reply, req: DescribeTransactionsRequest) -> Outcome {
    let mut resp = DescribeTransactionsResponse::default();
    let coord = b.txns.lock();
    for id in req.transactional_ids {
        let mut st = TransactionState::default();
        st.producer_id = ProducerId(-1);
        st.producer_epoch = -1;
        st.transaction_start_time_ms = -1;
        match coord.describe(&id) {
            Err(code) => st.error_code = code,
            Ok(m) => {
                st.transaction_state = s(m.state.name());
                st.transaction_timeout_ms = m.timeout_ms;
                st.transaction_start_time_ms = m.start_ms;
                st.producer_id = ProducerId(m.producer_id);
                st.producer_epoch = m.producer_epoch;
                for (topic, p) in &m.partitions {
                    if st.topics.last().is_none_or(|t: &TopicData| t.topic.as_str() != topic) {
                        let mut t = TopicData::default();
                        t.topic = TopicName(s(topic.clone()));
                        st.topics.push(t);
                    }
                    if let Some(t) = st.topics.last_mut() {
                        t.partitions.push(*p);
                    }
                }
            }
        }
        st.transactional_id = id;
        resp.transaction_states.push(st);
    }
    drop(coord);
    reply.ready(&resp)
}
