//! Wire format of the quorum RPCs: Kafka-style frames around JSON bodies.
//!
//! Request: `[i32 length][i16 api_key = QUORUM_API_KEY][i16 api_version = 0][i32 correlation_id]
//! [i16 client_id length = -1][body]`. Response: `[i32 length][i32 correlation_id][body]`.
//! `length` counts the bytes after itself.

use std::io;

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{ProposeError, SnapshotData, TypeConfig};
use crate::MetadataRecord;

/// The private API key of quorum frames (Kafka's own keys stay below 100).
pub const QUORUM_API_KEY: i16 = 9000;
/// Frames longer than this are refused by both sides.
pub const MAX_RPC_BYTES: usize = 128 << 20;

/// Bytes of the request header after the length: api key, version, correlation id, client id length.
const REQUEST_HEADER: usize = 2 + 2 + 4 + 2;

#[derive(Serialize, Deserialize)]
pub(crate) enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<i32>),
    InstallSnapshot {
        vote: Vote<i32>,
        meta: SnapshotMeta<i32, BasicNode>,
        data: SnapshotData,
    },
    FetchMetadata {
        after: u64,
        max_wait_ms: u64,
    },
    /// Append a batch through this voter (it must lead).
    Propose {
        records: Vec<MetadataRecord>,
    },
}

#[derive(Serialize, Deserialize)]
pub(crate) enum Response {
    AppendEntries(AppendEntriesResponse<i32>),
    Vote(VoteResponse<i32>),
    InstallSnapshot(SnapshotResponse<i32>),
    Metadata(FetchReply),
    Proposed(Result<u64, ProposeError>),
    Error(String),
}

/// The answer to a FetchMetadata request.
#[derive(Serialize, Deserialize)]
pub(crate) struct FetchReply {
    /// The leader as the answering voter sees it.
    pub leader: Option<i32>,
    pub term: u64,
    pub body: FetchBody,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum FetchBody {
    /// Committed batches after the requested offset, in log order; every batch of the log in
    /// `(after, complete_to]` is included, so the follower's offset may advance to `complete_to`.
    Batches { batches: Vec<(u64, Vec<MetadataRecord>)>, complete_to: u64 },
    /// The requested offset is older than the voter's window: the whole image.
    Snapshot { offset: u64, records: Vec<MetadataRecord> },
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain data types to a Vec cannot fail (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_else(|e| serde_json::to_vec(&Response::Error(format!("encode: {e}"))).unwrap_or_default())
}

pub(crate) fn error_response(msg: impl Into<String>) -> Vec<u8> {
    encode(&Response::Error(msg.into()))
}

/// Reads one length-prefixed frame (without the length). `Ok(None)` on a clean end of stream.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, min: usize) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || (len as usize) < min || len as usize > MAX_RPC_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad quorum frame length {len}")));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

pub(crate) fn request_frame(correlation_id: i32, body: &[u8]) -> io::Result<Vec<u8>> {
    let len = REQUEST_HEADER + body.len();
    if len > MAX_RPC_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("quorum request of {len} bytes is too large")));
    }
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as i32).to_be_bytes());
    out.extend_from_slice(&QUORUM_API_KEY.to_be_bytes());
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

pub(crate) fn response_frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let body: std::borrow::Cow<[u8]> =
        if 4 + body.len() > MAX_RPC_BYTES { error_response("response too large").into() } else { body.into() };
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&((4 + body.len()) as i32).to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A parsed request frame.
pub(crate) struct RequestHeader {
    pub api_key: i16,
    pub correlation_id: i32,
    /// Offset of the body in the frame.
    pub body_at: usize,
}

pub(crate) fn parse_request(frame: &[u8]) -> Option<RequestHeader> {
    let api_key = i16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
    let correlation_id = i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    let client_len = i16::from_be_bytes(frame.get(8..10)?.try_into().ok()?);
    let body_at = if client_len < 0 { 10 } else { 10 + client_len as usize };
    if body_at > frame.len() {
        return None;
    }
    Some(RequestHeader { api_key, correlation_id, body_at })
}

/// Writes a request and reads its response body on `stream`.
pub(crate) async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, correlation_id: i32, body: &[u8]) -> io::Result<Vec<u8>> {
    let frame = request_frame(correlation_id, body)?;
    stream.write_all(&frame).await?;
    stream.flush().await?;
    let resp =
        read_frame(stream, 4).await?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "quorum peer closed the connection"))?;
    let got = i32::from_be_bytes([resp[0], resp[1], resp[2], resp[3]]);
    if got != correlation_id {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("correlation id {got}, expected {correlation_id}")));
    }
    let mut resp = resp;
    resp.drain(..4);
    Ok(resp)
}
