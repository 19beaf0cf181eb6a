//! Observers: nodes that are not voters pull committed batches from a voter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::network::{Connector, RpcClient};
use super::rpc::{self, FetchBody, FetchReply, Request, Response};
use super::Publication;
use crate::{MetadataDelta, MetadataImage};

const POLL_WAIT_MS: u64 = 500;
const REQUEST_TIMEOUT: Duration = Duration::from_millis(2000);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

struct State {
    image: Arc<MetadataImage>,
    leader: Option<i32>,
}

struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the metadata log of a quorum it is not part of. The polling task stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct MetadataFollower {
    state: Arc<Mutex<State>>,
    _task: Arc<Task>,
}

impl MetadataFollower {
    /// Long-polls any reachable voter (the last known leader first) for committed batches after the
    /// last applied offset.
    pub async fn start<C: Connector>(
        voters: BTreeMap<i32, String>,
        connector: C,
    ) -> (MetadataFollower, mpsc::UnboundedReceiver<Publication>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(State { image: Arc::new(MetadataImage::default()), leader: None }));
        let task = tokio::spawn(run(voters, connector, state.clone(), tx));
        (MetadataFollower { state, _task: Arc::new(Task(task)) }, rx)
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).image.clone()
    }

    /// The leader as last reported by the voter this follower talks to.
    pub fn leader(&self) -> Option<i32> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).leader
    }
}

async fn run<C: Connector>(voters: BTreeMap<i32, String>, connector: C, state: Arc<Mutex<State>>, tx: mpsc::UnboundedSender<Publication>) {
    let ids: Vec<i32> = voters.keys().copied().collect();
    if ids.is_empty() {
        return;
    }
    let mut clients: BTreeMap<i32, RpcClient<C>> =
        voters.iter().map(|(id, addr)| (*id, RpcClient::new(addr.clone(), connector.clone()))).collect();
    let mut target = ids[0];
    let mut next = 0usize;
    loop {
        let after = state.lock().unwrap_or_else(|p| p.into_inner()).image.offset;
        let body = rpc::encode(&Request::FetchMetadata { after, max_wait_ms: POLL_WAIT_MS });
        let Some(client) = clients.get_mut(&target) else {
            return;
        };
        let reply = match client.call(&body, REQUEST_TIMEOUT + Duration::from_millis(POLL_WAIT_MS)).await {
            Ok(b) => match serde_json::from_slice::<Response>(&b) {
                Ok(Response::Metadata(r)) => Some(r),
                Ok(Response::Error(e)) => {
                    tracing::debug!(voter = target, error = %e, "metadata fetch refused");
                    None
                }
                _ => None,
            },
            Err(e) => {
                tracing::debug!(voter = target, error = %e, "metadata fetch failed");
                None
            }
        };
        let Some(reply) = reply else {
            next = (next + 1) % ids.len();
            target = ids[next];
            tokio::time::sleep(RETRY_BACKOFF).await;
            continue;
        };
        let leader = reply.leader;
        apply(&state, &tx, reply);
        if let Some(l) = leader {
            if l != target && clients.contains_key(&l) {
                target = l;
            }
        }
    }
}

fn apply(state: &Mutex<State>, tx: &mpsc::UnboundedSender<Publication>, reply: FetchReply) {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.leader = reply.leader;
    match reply.body {
        FetchBody::Batches { batches, complete_to } => {
            for (index, records) in batches {
                if index <= s.image.offset {
                    continue;
                }
                let (mut next, delta) = s.image.apply_with_delta(&records);
                next.offset = index;
                let next = Arc::new(next);
                s.image = next.clone();
                let _ = tx.send(Publication { records, delta, image: next });
            }
            if complete_to > s.image.offset {
                let mut next = (*s.image).clone();
                next.offset = complete_to;
                s.image = Arc::new(next);
            }
        }
        FetchBody::Snapshot { offset, records } => {
            if offset <= s.image.offset {
                return;
            }
            let mut image = MetadataImage::default().apply(&records);
            image.offset = offset;
            let image = Arc::new(image);
            s.image = image.clone();
            let delta = MetadataDelta { full: true, ..Default::default() };
            let _ = tx.send(Publication { records: Vec::new(), delta, image });
        }
    }
}
