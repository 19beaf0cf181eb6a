//! The broker's channel to the active controller.
//!
//! A request goes to the node believed to lead the quorum: in-process when that
//! is this node, else over TCP to its CONTROLLER listener. BrokerRegistration and
//! BrokerHeartbeat travel as Kafka's own messages (keys 62 and 63); the other
//! controller requests (topic and config changes, producer-id blocks, quorum
//! description) as JSON under a private key. NOT_CONTROLLER and connection
//! errors move on to the next voter until the deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::broker_registration_request::Listener as RegListener;
use kafka_protocol::messages::{
    ApiKey, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest, BrokerRegistrationResponse,
    RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use strom_metadata::quorum::{Connector, TcpConnector};
use strom_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::service::{ControllerService, Reply};
use super::{Answer, Failure, HeartbeatAnswer, Request};

/// Private API key for JSON controller requests on the CONTROLLER listener.
pub const CONTROLLER_API_KEY: i16 = 9001;
/// The largest controller message accepted either way.
pub const MAX_CONTROLLER_BYTES: usize = 64 << 20;

const REGISTRATION_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 1;

/// Generic over how it reaches other voters: TCP in a server, simulated streams in tests.
pub struct ControllerChannel<C: Connector = TcpConnector> {
    node_id: i32,
    voters: BTreeMap<i32, String>,
    local: Option<Arc<ControllerService>>,
    /// Who leads, as last learned; tried first.
    hint: Mutex<Option<i32>>,
    connector: C,
    conns: tokio::sync::Mutex<HashMap<i32, C::Stream>>,
    next_correlation: std::sync::atomic::AtomicI32,
    pub request_timeout: Duration,
}

impl ControllerChannel {
    pub fn new(node_id: i32, voters: BTreeMap<i32, String>, local: Option<Arc<ControllerService>>, request_timeout: Duration) -> Self {
        ControllerChannel::with_connector(node_id, voters, local, request_timeout, TcpConnector)
    }
}

impl<C: Connector> ControllerChannel<C> {
    pub fn with_connector(
        node_id: i32,
        voters: BTreeMap<i32, String>,
        local: Option<Arc<ControllerService>>,
        request_timeout: Duration,
        connector: C,
    ) -> Self {
        ControllerChannel {
            node_id,
            voters,
            local,
            hint: Mutex::new(None),
            connector,
            conns: tokio::sync::Mutex::new(HashMap::new()),
            next_correlation: std::sync::atomic::AtomicI32::new(1),
            request_timeout,
        }
    }

    pub fn local(&self) -> Option<&Arc<ControllerService>> {
        self.local.as_ref()
    }

    pub fn voters(&self) -> &BTreeMap<i32, String> {
        &self.voters
    }

    /// The controller this broker last reached or was pointed to.
    pub fn last_leader(&self) -> Option<i32> {
        self.hint()
    }

    fn set_hint(&self, leader: Option<i32>) {
        *self.hint.lock().unwrap_or_else(|p| p.into_inner()) = leader;
    }

    fn hint(&self) -> Option<i32> {
        if let Some(l) = self.local.as_ref().and_then(|s| s.quorum().leader()) {
            return Some(l);
        }
        *self.hint.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `req` to the active controller, retrying until `timeout` passes.
    /// A timeout answers REQUEST_TIMED_OUT (retriable), never hangs.
    pub async fn call(&self, req: Request, timeout: Duration) -> Result<Reply, Failure> {
        let deadline = Instant::now() + timeout;
        let ids: Vec<i32> = self.voters.keys().copied().collect();
        let mut round = 0usize;
        let mut last = String::from("no controller answered");
        loop {
            let target = match self.hint() {
                Some(l) if round.is_multiple_of(2) => l,
                _ => ids[round % ids.len().max(1)],
            };
            round += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::new(
                    ErrorCode::RequestTimedOut,
                    format!("no active controller within {} ms: {last}", timeout.as_millis()),
                ));
            }
            let attempt = tokio::time::timeout(left.min(self.request_timeout), self.send_to(target, req.clone())).await;
            match attempt {
                Ok(Ok(Reply { answer: Answer::NotController { leader }, .. })) => {
                    last = format!("node {target} is not the controller");
                    self.set_hint(leader.filter(|l| *l != target));
                }
                Ok(Ok(reply)) => {
                    self.set_hint(Some(target));
                    return Ok(reply);
                }
                Ok(Err(e)) => {
                    last = format!("node {target}: {e}");
                    self.set_hint(None);
                }
                Err(_) => {
                    last = format!("node {target} did not answer");
                    self.conns.lock().await.remove(&target);
                    self.set_hint(None);
                }
            }
            let pause = Duration::from_millis(if round < ids.len() * 2 { 20 } else { 100 });
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    async fn send_to(&self, target: i32, req: Request) -> std::io::Result<Reply> {
        if target == self.node_id {
            if let Some(svc) = &self.local {
                return Ok(svc.handle(req).await);
            }
        }
        let addr = self.voters.get(&target).cloned().ok_or_else(|| std::io::Error::other(format!("{target} is not a voter")))?;
        let (api, version, body) = encode_request(&req)?;
        let mut conns = self.conns.lock().await;
        let stream = match conns.remove(&target) {
            Some(s) => s,
            None => self.connector.connect(&addr).await?,
        };
        let corr = self.next_correlation.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stream, bytes) = roundtrip(stream, api, version, corr, body).await?;
        conns.insert(target, stream);
        drop(conns);
        decode_reply(&req, api, version, bytes)
    }
}

/// (api key, version, body) of a request on the wire.
fn encode_request(req: &Request) -> std::io::Result<(i16, i16, Bytes)> {
    let mut buf = BytesMut::new();
    match req {
        Request::Register { id, incarnation, cluster_id, host, port, rack } => {
            let mut r = BrokerRegistrationRequest::default();
            r.broker_id = BrokerId(*id);
            r.cluster_id = kafka_protocol::protocol::StrBytes::from_string(cluster_id.clone().unwrap_or_default());
            r.incarnation_id = *incarnation;
            let mut l = RegListener::default();
            l.name = kafka_protocol::protocol::StrBytes::from_static_str("PLAINTEXT");
            l.host = kafka_protocol::protocol::StrBytes::from_string(host.clone());
            l.port = *port;
            l.security_protocol = 0;
            r.listeners = vec![l];
            r.rack = rack.clone().map(kafka_protocol::protocol::StrBytes::from_string);
            r.encode(&mut buf, REGISTRATION_VERSION).map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok((ApiKey::BrokerRegistration as i16, REGISTRATION_VERSION, buf.freeze()))
        }
        Request::Heartbeat { id, epoch, metadata_offset, want_fence, want_shutdown } => {
            let mut r = BrokerHeartbeatRequest::default();
            r.broker_id = BrokerId(*id);
            r.broker_epoch = *epoch;
            r.current_metadata_offset = *metadata_offset as i64;
            r.want_fence = *want_fence;
            r.want_shut_down = *want_shutdown;
            r.encode(&mut buf, HEARTBEAT_VERSION).map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok((ApiKey::BrokerHeartbeat as i16, HEARTBEAT_VERSION, buf.freeze()))
        }
        other => {
            let body = serde_json::to_vec(other).map_err(std::io::Error::other)?;
            Ok((CONTROLLER_API_KEY, 0, Bytes::from(body)))
        }
    }
}

fn decode_reply(req: &Request, api: i16, version: i16, mut body: Bytes) -> std::io::Result<Reply> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    if api == ApiKey::BrokerRegistration as i16 {
        let r = BrokerRegistrationResponse::decode(&mut body, version).map_err(|e| bad(e.to_string()))?;
        let answer = match ErrorCode::from_code(r.error_code) {
            ErrorCode::None => Answer::Register(Ok(r.broker_epoch)),
            ErrorCode::NotController => Answer::NotController { leader: None },
            code => Answer::Register(Err(Failure::new(
                code,
                format!("registration refused: {}", strom_protocol::error::error_name(r.error_code)),
            ))),
        };
        return Ok(Reply { answer, offset: 0 });
    }
    if api == ApiKey::BrokerHeartbeat as i16 {
        let r = BrokerHeartbeatResponse::decode(&mut body, version).map_err(|e| bad(e.to_string()))?;
        if r.error_code == ErrorCode::NotController.code() {
            return Ok(Reply { answer: Answer::NotController { leader: None }, offset: 0 });
        }
        let answer = Answer::Heartbeat(HeartbeatAnswer {
            error: r.error_code,
            is_caught_up: r.is_caught_up,
            is_fenced: r.is_fenced,
            should_shutdown: r.should_shut_down,
        });
        return Ok(Reply { answer, offset: 0 });
    }
    let _ = req;
    serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))
}

/// Writes one request frame (header v1 for private keys, the API's own header
/// version otherwise) and reads the response body.
async fn roundtrip<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    api: i16,
    version: i16,
    corr: i32,
    body: Bytes,
) -> std::io::Result<(S, Bytes)> {
    let mut frame = BytesMut::with_capacity(body.len() + 32);
    frame.put_i32(0);
    let flexible_header = match ApiKey::try_from(api) {
        Ok(k) => {
            let mut h = RequestHeader::default();
            h.request_api_key = api;
            h.request_api_version = version;
            h.correlation_id = corr;
            h.client_id = Some(kafka_protocol::protocol::StrBytes::from_static_str("strom-broker"));
            let hv = k.request_header_version(version);
            h.encode(&mut frame, hv).map_err(|e| std::io::Error::other(e.to_string()))?;
            k.response_header_version(version) >= 1
        }
        Err(_) => {
            frame.put_i16(api);
            frame.put_i16(version);
            frame.put_i32(corr);
            frame.put_i16(-1);
            false
        }
    };
    frame.extend_from_slice(&body);
    let len = (frame.len() - 4) as i32;
    frame[0..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&frame).await?;
    s.flush().await?;
    let len = s.read_i32().await?;
    if len < 4 || len as usize > MAX_CONTROLLER_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response length {len}")));
    }
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await?;
    let mut b = Bytes::from(buf);
    let got = b.get_i32();
    if got != corr {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "correlation id mismatch"));
    }
    if flexible_header {
        // Response header v1 carries tagged fields after the correlation id.
        let mut with_id = BytesMut::with_capacity(b.len() + 4);
        with_id.put_i32(corr);
        with_id.extend_from_slice(&b);
        let mut whole = with_id.freeze();
        ResponseHeader::decode(&mut whole, 1).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        b = whole;
    }
    Ok((s, b))
}
