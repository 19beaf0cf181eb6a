//! A minimal Kafka-protocol client for broker-to-broker requests (the replica
//! fetcher's Fetch). One request in flight per connection.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response accepted from a peer.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

pub struct PeerConn {
    stream: TcpStream,
    next_correlation: i32,
    pub addr: String,
}

fn bad(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

impl PeerConn {
    pub async fn connect(addr: &str, timeout: Duration) -> std::io::Result<PeerConn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, format!("connect to {addr} timed out")))??;
        let _ = stream.set_nodelay(true);
        Ok(PeerConn { stream, next_correlation: 1, addr: addr.to_string() })
    }

    /// Sends one request and decodes its response.
    pub async fn call<Req: Encodable, Resp: Decodable>(&mut self, api: ApiKey, version: i16, req: &Req) -> std::io::Result<Resp> {
        let corr = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = version;
        h.correlation_id = corr;
        h.client_id = Some(StrBytes::from_static_str("strom-replica"));
        h.encode(&mut frame, api.request_header_version(version)).map_err(bad)?;
        req.encode(&mut frame, version).map_err(bad)?;
        let len = (frame.len() - 4) as i32;
        frame[0..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame).await?;
        let len = self.stream.read_i32().await?;
        if len < 4 || len as usize > MAX_RESPONSE_BYTES {
            return Err(bad(format!("bad response length {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf).await?;
        let mut body = Bytes::from(buf);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).map_err(bad)?;
        if header.correlation_id != corr {
            return Err(bad("correlation id mismatch"));
        }
        let resp = Resp::decode(&mut body, version).map_err(bad)?;
        if body.has_remaining() {
            tracing::debug!(left = body.remaining(), "trailing bytes in a peer response");
        }
        Ok(resp)
    }
}
