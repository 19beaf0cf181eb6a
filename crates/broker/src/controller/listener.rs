//! The CONTROLLER listener: Raft traffic between voters, broker registration and
//! heartbeats, forwarded controller requests, DescribeQuorum and ApiVersions.
//!
//! Frames are Kafka's (`[length][header][body]`), each bounded by
//! [`MAX_CONTROLLER_BYTES`] before anything is allocated. Raft messages use the
//! quorum's private key, forwarded controller requests [`CONTROLLER_API_KEY`];
//! any other key closes the connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerRegistrationRequest, BrokerRegistrationResponse,
    DescribeQuorumRequest, RequestHeader,
};
use kafka_protocol::protocol::Decodable;
use strom_metadata::quorum::QUORUM_API_KEY;
use strom_protocol::frame;
use strom_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::client::{CONTROLLER_API_KEY, MAX_CONTROLLER_BYTES};
use super::service::{ControllerService, Reply};
use super::{Answer, Request};

pub async fn serve(listener: TcpListener, svc: Arc<ControllerService>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let svc = svc.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_stream(stream, peer, svc).await {
                        tracing::debug!(%peer, error = %e, "controller connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Serves one CONTROLLER connection (any byte stream: a TCP socket, or a simulated one) until it
/// closes or sends something it must not.
pub async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    peer: SocketAddr,
    svc: Arc<ControllerService>,
) -> std::io::Result<()> {
    loop {
        let len = match s.read_i32().await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if len < 8 || len as usize > MAX_CONTROLLER_BYTES {
            return Err(invalid(format!("frame of {len} bytes")));
        }
        let mut buf = vec![0u8; len as usize];
        s.read_exact(&mut buf).await?;
        let frame = Bytes::from(buf);
        let out = answer(frame, peer, &svc).await?;
        s.write_all(&out).await?;
        s.flush().await?;
    }
}

/// `[length][correlation id][body]` for the private keys.
fn private_response(corr: i32, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(body.len() + 8);
    b.put_i32(body.len() as i32 + 4);
    b.put_i32(corr);
    b.extend_from_slice(body);
    b.freeze()
}

async fn answer(frame: Bytes, peer: SocketAddr, svc: &ControllerService) -> std::io::Result<Bytes> {
    let mut b = frame.clone();
    let api = b.get_i16();
    let version = b.get_i16();
    let corr = b.get_i32();
    if api == QUORUM_API_KEY || api == CONTROLLER_API_KEY {
        let client_len = b.get_i16();
        if client_len > 0 {
            if b.remaining() < client_len as usize {
                return Err(invalid("truncated header"));
            }
            b.advance(client_len as usize);
        }
        if api == QUORUM_API_KEY {
            let out = svc.quorum().handle_rpc(&b).await;
            return Ok(private_response(corr, &out));
        }
        let reply = match serde_json::from_slice::<Request>(&b) {
            Ok(Request::Register { .. } | Request::Heartbeat { .. }) => return Err(invalid("registration must use BrokerRegistration")),
            Ok(req) => svc.handle(req).await,
            Err(e) => return Err(invalid(format!("bad controller request: {e}"))),
        };
        let body = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
        return Ok(private_response(corr, &body));
    }
    let key = ApiKey::try_from(api).map_err(|_| invalid(format!("unknown api key {api}")))?;
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version)).map_err(|e| invalid(e.to_string()))?;
    let corr = header.correlation_id;
    let enc = |r: Result<Bytes, frame::FrameError>| r.map_err(|e| std::io::Error::other(e.to_string()));
    match key {
        ApiKey::ApiVersions => {
            let mut resp = ApiVersionsResponse::default();
            for (k, max) in
                [(ApiKey::ApiVersions, 3), (ApiKey::BrokerRegistration, 4), (ApiKey::BrokerHeartbeat, 1), (ApiKey::DescribeQuorum, 2)]
            {
                let mut v = ApiVersion::default();
                v.api_key = k as i16;
                v.min_version = 0;
                v.max_version = max;
                resp.api_keys.push(v);
            }
            enc(frame::encode_response(key, version.min(3), corr, &resp))
        }
        ApiKey::BrokerRegistration => {
            let req = BrokerRegistrationRequest::decode(&mut body, version).map_err(|e| invalid(e.to_string()))?;
            let Some(l) = req.listeners.first() else {
                return Err(invalid("registration without listeners"));
            };
            let cluster = req.cluster_id.to_string();
            let r = Request::Register {
                id: req.broker_id.0,
                incarnation: req.incarnation_id,
                cluster_id: if cluster.is_empty() { None } else { Some(cluster) },
                host: l.host.to_string(),
                port: l.port,
                rack: req.rack.as_ref().map(|r| r.to_string()),
            };
            let mut resp = BrokerRegistrationResponse::default();
            match svc.handle(r).await {
                Reply { answer: Answer::Register(Ok(epoch)), .. } => resp.broker_epoch = epoch,
                Reply { answer: Answer::Register(Err(f)), .. } => {
                    tracing::warn!(%peer, broker = req.broker_id.0, error = %f.message, "registration refused");
                    resp.error_code = f.code;
                    resp.broker_epoch = -1;
                }
                _ => {
                    resp.error_code = ErrorCode::NotController.code();
                    resp.broker_epoch = -1;
                }
            }
            enc(frame::encode_response(key, version, corr, &resp))
        }
        ApiKey::BrokerHeartbeat => {
            let req = BrokerHeartbeatRequest::decode(&mut body, version).map_err(|e| invalid(e.to_string()))?;
            let r = Request::Heartbeat {
                id: req.broker_id.0,
                epoch: req.broker_epoch,
                metadata_offset: req.current_metadata_offset.max(0) as u64,
                want_fence: req.want_fence,
                want_shutdown: req.want_shut_down,
            };
            let mut resp = BrokerHeartbeatResponse::default();
            match svc.handle(r).await {
                Reply { answer: Answer::Heartbeat(h), .. } => {
                    resp.error_code = h.error;
                    resp.is_caught_up = h.is_caught_up;
                    resp.is_fenced = h.is_fenced;
                    resp.should_shut_down = h.should_shutdown;
                }
                _ => {
                    resp.error_code = ErrorCode::NotController.code();
                    resp.is_fenced = true;
                }
            }
            enc(frame::encode_response(key, version, corr, &resp))
        }
        ApiKey::DescribeQuorum => {
            let _req = DescribeQuorumRequest::decode(&mut body, version).map_err(|e| invalid(e.to_string()))?;
            let resp = crate::handlers::describe_quorum::response(&svc.describe(), version);
            enc(frame::encode_response(key, version, corr, &resp))
        }
        other => Err(invalid(format!("{other:?} is not served on the controller listener"))),
    }
}
