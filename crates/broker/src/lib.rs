//! The Strom broker: listener, connections, dispatch and one handler per Kafka API.
//!
//! A request's path:
//! `server` (accept) → `connection` (framing, size cap, pipelining, ordered
//! responses) → `dispatch` (match on the API key only) → `handlers/<api>.rs`
//! (validate, fan out per partition) → `replica` (partition → log) →
//! `strom_storage::Log` (append / read).
//!
//! Handlers answer in two stages: the part that must follow request order on the
//! connection (appends) runs before the next request is read; the waiting part
//! (fsync for acks=all, long-poll fetches) runs as its own task, and the
//! connection writes responses in request order.

mod admin;
pub mod config;
pub mod connection;
pub mod controller;
mod coord_log;
pub mod dispatch;
pub mod fetch_session;
pub mod fetcher;
pub mod groups;
pub mod handlers;
pub mod lifecycle;
pub mod limits;
pub mod log_dirs;
pub mod markers;
pub mod node;
pub mod partition;
pub mod peer;
pub mod publisher;
pub mod replica;
pub mod replicas;
pub mod server;
pub mod txns;

use std::sync::Arc;

pub use config::{BrokerConfig, ConfigError};
pub use node::Node;
pub use server::{run, Broker};

pub type Shared = Arc<Broker>;
