//! Request headers and response framing.
//!
//! A frame on the wire is a 4-byte big-endian length followed by that many bytes.
//! The connection layer reads whole frames (with a size cap) and hands the payload
//! here. Nothing in this module sizes an allocation from a length read off the wire,
//! and request bodies reach the codec only after the bounds check.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Why a frame could not be turned into a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// The first eight bytes of every request header, readable even when the rest is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads the fixed prefix of a request header without consuming anything.
pub fn peek_prefix(frame: &[u8]) -> Result<HeaderPrefix, FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let mut b = &frame[..8];
    Ok(HeaderPrefix { api_key: b.get_i16(), api_version: b.get_i16(), correlation_id: b.get_i32() })
}

/// Decodes the request header of a known API and leaves `body` positioned after it.
pub fn decode_header(api: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestHeader, FrameError> {
    let header_version = api.request_header_version(version);
    RequestHeader::decode(body, header_version).map_err(|e| FrameError::Malformed { api, version, reason: format!("header: {e}") })
}

/// Decodes a request body (after its header). The body first passes
/// [`crate::bounds::check_request`], so the codec never sizes an allocation from a
/// count the bytes cannot back.
pub fn decode_body<R: Decodable>(api: ApiKey, version: i16, body: &mut Bytes) -> Result<R, FrameError> {
    crate::bounds::check_request(api, version, body).map_err(|e| FrameError::Malformed { api, version, reason: e.to_string() })?;
    R::decode(body, version).map_err(|e| FrameError::Malformed { api, version, reason: e.to_string() })
}

/// Encodes a response frame: length prefix, response header, body.
pub fn encode_response<R: Encodable>(api: ApiKey, version: i16, correlation_id: i32, body: &R) -> Result<Bytes, FrameError> {
    let header_version = api.response_header_version(version);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let header_len = header.compute_size(header_version).map_err(|e| FrameError::Encode(e.to_string()))?;
    let body_len = body.compute_size(version).map_err(|e| FrameError::Encode(e.to_string()))?;
    let total = header_len + body_len;
    let mut buf = BytesMut::with_capacity(4 + total);
    buf.put_i32(total as i32);
    header.encode(&mut buf, header_version).map_err(|e| FrameError::Encode(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| FrameError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Encodes a request frame (used by the client).
pub fn encode_request<R: Encodable>(header: &RequestHeader, body: &R) -> Result<Bytes, FrameError> {
    let api = ApiKey::try_from(header.request_api_key).map_err(|_| FrameError::UnknownApiKey(header.request_api_key))?;
    let version = header.request_api_version;
    let header_version = api.request_header_version(version);
    let header_len = header.compute_size(header_version).map_err(|e| FrameError::Encode(e.to_string()))?;
    let body_len = body.compute_size(version).map_err(|e| FrameError::Encode(e.to_string()))?;
    let total = header_len + body_len;
    let mut buf = BytesMut::with_capacity(4 + total);
    buf.put_i32(total as i32);
    header.encode(&mut buf, header_version).map_err(|e| FrameError::Encode(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| FrameError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Decodes a response frame payload (without the length prefix) for the client.
pub fn decode_response<R: Decodable>(api: ApiKey, version: i16, mut payload: Bytes) -> Result<(i32, R), FrameError> {
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::decode(&mut payload, header_version).map_err(|e| FrameError::Malformed {
        api,
        version,
        reason: format!("response header: {e}"),
    })?;
    let body = R::decode(&mut payload, version).map_err(|e| FrameError::Malformed { api, version, reason: e.to_string() })?;
    Ok((header.correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn request_round_trips_through_frame() {
        let mut header = RequestHeader::default();
        header.request_api_key = ApiKey::Metadata as i16;
        header.request_api_version = 12;
        header.correlation_id = 77;
        header.client_id = Some(StrBytes::from_static_str("t"));
        let frame = encode_request(&header, &MetadataRequest::default()).unwrap();
        let payload = frame.slice(4..);
        let p = peek_prefix(&payload).unwrap();
        assert_eq!(p, HeaderPrefix { api_key: 3, api_version: 12, correlation_id: 77 });
        let mut body = payload.clone();
        let h = decode_header(ApiKey::Metadata, 12, &mut body).unwrap();
        assert_eq!(h, header);
        let req = MetadataRequest::decode(&mut body, 12).unwrap();
        assert_eq!(req, MetadataRequest::default());
    }

    #[test]
    fn response_round_trips() {
        let resp = MetadataResponse::default();
        let frame = encode_response(ApiKey::Metadata, 9, 5, &resp).unwrap();
        let (cid, back): (i32, MetadataResponse) = decode_response(ApiKey::Metadata, 9, frame.slice(4..)).unwrap();
        assert_eq!(cid, 5);
        assert_eq!(back, resp);
    }

    #[test]
    fn short_frame_is_an_error() {
        assert!(matches!(peek_prefix(&[0, 1, 2]), Err(FrameError::TooShort(3))));
    }
}
