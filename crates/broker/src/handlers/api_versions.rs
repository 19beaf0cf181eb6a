//! ApiVersions (key 18): the table in `strom_protocol::versions`.
//!
//! A request at a version Strom does not know is still answered, in v0 format,
//! with UNSUPPORTED_VERSION and the full table, so the client can retry lower.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use strom_protocol::{versions, ErrorCode};

use crate::dispatch::{Outcome, Reply};

fn table() -> Vec<ApiVersion> {
    versions::SUPPORTED
        .iter()
        .map(|&(api, lo, hi)| {
            let mut v = ApiVersion::default();
            v.api_key = api as i16;
            v.min_version = lo;
            v.max_version = hi;
            v
        })
        .collect()
}

pub fn handle(reply: &Reply, _req: ApiVersionsRequest) -> Outcome {
    let mut resp = ApiVersionsResponse::default();
    resp.api_keys = table();
    reply.ready(&resp)
}

pub fn unsupported(correlation_id: i32) -> Outcome {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = ErrorCode::UnsupportedVersion.code();
    resp.api_keys = table();
    let bytes = strom_protocol::frame::encode_response(ApiKey::ApiVersions, 0, correlation_id, &resp).ok();
    Outcome::Ready(bytes)
}
