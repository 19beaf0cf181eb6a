//! Fuzz harnesses. The `cargo fuzz` targets under `fuzz/` are one-line wrappers
//! around these functions, and `tests/fuzz_corpus.rs` replays the checked-in corpus
//! through them in every test run. Each returns normally for any input; a panic is a
//! finding.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use crate::batch::{self, BatchIter, BatchView};
use crate::bounds::{self, BoundsError};
use crate::compression::{self, Codec};
use crate::frame::{self, FrameError};
use crate::records;
use crate::versions;

const LIMIT: usize = 1 << 20;

/// Calls the generic function `$f::<RequestType>(args…)` for the request type of
/// API `$api`; for an API Strom does not accept, evaluates to
/// `Err(FrameError::UnknownApiKey(..))`. Used by the harnesses and their tests.
#[doc(hidden)]
#[macro_export]
macro_rules! with_request_type {
    ($api:expr, $f:ident, $($arg:expr),*) => {{
        use $crate::messages::*;
        match $api {
            ApiKey::Produce => $f::<ProduceRequest>($($arg),*),
            ApiKey::Fetch => $f::<FetchRequest>($($arg),*),
            ApiKey::ListOffsets => $f::<ListOffsetsRequest>($($arg),*),
            ApiKey::Metadata => $f::<MetadataRequest>($($arg),*),
            ApiKey::ApiVersions => $f::<ApiVersionsRequest>($($arg),*),
            ApiKey::CreateTopics => $f::<CreateTopicsRequest>($($arg),*),
            ApiKey::DeleteTopics => $f::<DeleteTopicsRequest>($($arg),*),
            ApiKey::InitProducerId => $f::<InitProducerIdRequest>($($arg),*),
            ApiKey::DescribeConfigs => $f::<DescribeConfigsRequest>($($arg),*),
            ApiKey::DescribeCluster => $f::<DescribeClusterRequest>($($arg),*),
            ApiKey::FindCoordinator => $f::<FindCoordinatorRequest>($($arg),*),
            ApiKey::JoinGroup => $f::<JoinGroupRequest>($($arg),*),
            ApiKey::SyncGroup => $f::<SyncGroupRequest>($($arg),*),
            ApiKey::Heartbeat => $f::<HeartbeatRequest>($($arg),*),
            ApiKey::LeaveGroup => $f::<LeaveGroupRequest>($($arg),*),
            ApiKey::OffsetCommit => $f::<OffsetCommitRequest>($($arg),*),
            ApiKey::OffsetFetch => $f::<OffsetFetchRequest>($($arg),*),
            ApiKey::TxnOffsetCommit => $f::<TxnOffsetCommitRequest>($($arg),*),
            ApiKey::DescribeGroups => $f::<DescribeGroupsRequest>($($arg),*),
            ApiKey::ListGroups => $f::<ListGroupsRequest>($($arg),*),
            ApiKey::DeleteGroups => $f::<DeleteGroupsRequest>($($arg),*),
            ApiKey::OffsetDelete => $f::<OffsetDeleteRequest>($($arg),*),
            ApiKey::DeleteRecords => $f::<DeleteRecordsRequest>($($arg),*),
            ApiKey::CreatePartitions => $f::<CreatePartitionsRequest>($($arg),*),
            ApiKey::AlterConfigs => $f::<AlterConfigsRequest>($($arg),*),
            ApiKey::DescribeLogDirs => $f::<DescribeLogDirsRequest>($($arg),*),
            ApiKey::IncrementalAlterConfigs => $f::<IncrementalAlterConfigsRequest>($($arg),*),
            ApiKey::DescribeQuorum => $f::<DescribeQuorumRequest>($($arg),*),
            ApiKey::DescribeTopicPartitions => $f::<DescribeTopicPartitionsRequest>($($arg),*),
            ApiKey::OffsetForLeaderEpoch => $f::<OffsetForLeaderEpochRequest>($($arg),*),
            ApiKey::ElectLeaders => $f::<ElectLeadersRequest>($($arg),*),
            ApiKey::AlterPartitionReassignments => $f::<AlterPartitionReassignmentsRequest>($($arg),*),
            ApiKey::ListPartitionReassignments => $f::<ListPartitionReassignmentsRequest>($($arg),*),
            ApiKey::AddPartitionsToTxn => $f::<AddPartitionsToTxnRequest>($($arg),*),
            ApiKey::AddOffsetsToTxn => $f::<AddOffsetsToTxnRequest>($($arg),*),
            ApiKey::EndTxn => $f::<EndTxnRequest>($($arg),*),
            ApiKey::DescribeTransactions => $f::<DescribeTransactionsRequest>($($arg),*),
            ApiKey::ListTransactions => $f::<ListTransactionsRequest>($($arg),*),
            ApiKey::WriteTxnMarkers => $f::<WriteTxnMarkersRequest>($($arg),*),
            ApiKey::DescribeProducers => $f::<DescribeProducersRequest>($($arg),*),
            ApiKey::AlterReplicaLogDirs => $f::<AlterReplicaLogDirsRequest>($($arg),*),
            _ => Err($crate::frame::FrameError::UnknownApiKey($api as i16)),
        }
    }};
}

fn checked<R: Decodable>(api: ApiKey, version: i16, body: &mut Bytes) -> Result<(), FrameError> {
    frame::decode_body::<R>(api, version, body).map(drop)
}

/// The broker's decode path for a whole frame payload (after the length prefix):
/// header prefix, API and version gate, header, bounds check, body.
pub fn frame(data: &[u8]) {
    let Ok(prefix) = frame::peek_prefix(data) else { return };
    let Ok(api) = ApiKey::try_from(prefix.api_key) else { return };
    if !versions::is_accepted(api, prefix.api_version) {
        return;
    }
    let mut body = Bytes::copy_from_slice(data);
    if frame::decode_header(api, prefix.api_version, &mut body).is_err() {
        return;
    }
    let _ = with_request_type!(api, checked, api, prefix.api_version, &mut body);
}

/// Picks an accepted API and version from the first three bytes, then checks the
/// bounds walk against the codec: whenever the codec decodes a body, the walk must
/// have passed it and consumed exactly as many bytes.
pub fn request(data: &[u8]) {
    let Some((&[sel, v0, v1], body)) = data.split_first_chunk::<3>() else { return };
    let (api, lo, hi) = versions::SUPPORTED[sel as usize % versions::SUPPORTED.len()];
    let lo = if api == ApiKey::Produce { versions::PRODUCE_MIN_ACCEPTED } else { lo };
    let version = lo + (u16::from_be_bytes([v0, v1]) % (hi - lo + 1) as u16) as i16;
    request_at(api, version, body);
}

/// [`request`] for a given API and version.
fn request_at(api: ApiKey, version: i16, body: &[u8]) {
    let walked = bounds::check_request(api, version, body);
    if matches!(walked, Err(BoundsError::ImpossibleCount { .. })) {
        // The codec would size an allocation from this count: that is what the
        // check is for, so the codec is not run.
        return;
    }
    let mut b = Bytes::copy_from_slice(body);
    let decoded = with_request_type!(api, raw, version, &mut b);
    if decoded.is_ok() {
        let consumed = body.len() - b.len();
        assert_eq!(walked, Ok(consumed), "{api:?} v{version}: codec read {consumed} bytes, bounds walk says {walked:?}");
    }
}

fn raw<R: Decodable>(version: i16, body: &mut Bytes) -> Result<(), FrameError> {
    R::decode(body, version).map(drop).map_err(|e| FrameError::Encode(e.to_string()))
}

/// Record-set validation as Produce runs it, then the in-place patches the broker
/// makes on a validated set, which must leave it valid, then record decoding.
///
/// Random bytes almost never carry a correct CRC, so when the first byte is odd the
/// rest has each batch's CRC set right first: that lets the fuzzer past the CRC
/// into the checks behind it.
pub fn batch(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut fixed;
    let data = if mode & 1 == 1 {
        fixed = rest.to_vec();
        fix_crcs(&mut fixed);
        &fixed[..]
    } else {
        rest
    };
    let Ok(set) = batch::validate(data, LIMIT) else {
        for b in BatchIter::new(data).take(64) {
            let Ok(b) = b else { break };
            let _ = records::decode_batch(&b, LIMIT);
        }
        return;
    };
    let mut owned = data.to_vec();
    let mut at = 0;
    let mut n = 0;
    while at < owned.len() {
        let len = BatchView::parse(&owned[at..]).map(|v| v.total_len()).expect("validated set re-parses");
        batch::patch_offsets(&mut owned[at..at + len], 1_000 + n, 7);
        batch::set_log_append_time(&mut owned[at..at + len], 1_700_000_000_000);
        at += len;
        n += 1;
    }
    let again = batch::validate(&owned, LIMIT).expect("patched set stays valid");
    assert_eq!(again.batches, set.batches);
    for b in BatchIter::new(&owned) {
        let b = b.expect("validated batch parses");
        let recs = records::decode_batch(&b, LIMIT);
        if let Ok(recs) = recs {
            assert_eq!(recs.len(), b.record_count() as usize);
        }
    }
}

/// Sets the CRC of every complete batch in `set` (batch length at 8..12, CRC at
/// 17..21 covering everything after it).
fn fix_crcs(set: &mut [u8]) {
    let mut at = 0usize;
    while set.len() >= at + 21 {
        let len = i32::from_be_bytes([set[at + 8], set[at + 9], set[at + 10], set[at + 11]]);
        let Some(end) = usize::try_from(len).ok().and_then(|l| (at + 12).checked_add(l)).filter(|&e| e <= set.len() && e >= at + 21) else {
            return;
        };
        let crc = crc32c::crc32c(&set[at + 21..end]);
        set[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// Decompression with the cap, for a codec chosen by the first byte; also a round
/// trip through the compressor.
pub fn decompress(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return };
    let codec = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd][sel as usize % 5];
    if let Ok(out) = compression::decompress(codec, rest, LIMIT) {
        assert!(out.len() <= LIMIT, "{codec:?} produced {} bytes past the cap", out.len());
    }
    if sel & 0x80 != 0 {
        let packed = compression::compress(codec, rest).expect("compression of any bytes succeeds");
        let back = compression::decompress(codec, &packed, rest.len().max(1)).expect("round trip");
        assert_eq!(back, rest);
    }
}
