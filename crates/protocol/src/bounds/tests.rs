use super::*;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

fn body<R: Encodable>(r: &R, v: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    r.encode(&mut b, v).unwrap();
    b.to_vec()
}

#[test]
fn every_accepted_api_has_a_layout() {
    for &(api, _, _) in crate::versions::SUPPORTED {
        assert!(request_schema(api).is_some(), "{api:?}");
    }
}

fn default_passes<R: Encodable + Default + kafka_protocol::protocol::Message>(
    api: ApiKey,
    lo: i16,
    hi: i16,
) -> Result<(), crate::frame::FrameError> {
    for v in lo.max(R::VERSIONS.min)..=hi {
        let b = body(&R::default(), v);
        assert_eq!(check_request(api, v, &b), Ok(b.len()), "{api:?} v{v}");
    }
    Ok(())
}

#[test]
fn default_requests_pass_at_every_accepted_version() {
    for &(api, lo, hi) in crate::versions::SUPPORTED {
        crate::with_request_type!(api, default_passes, api, lo, hi).unwrap();
    }
}

#[test]
fn nested_fetch_passes_and_consumes_everything() {
    for v in 4..=16i16 {
        let mut p = fetch_request::FetchPartition::default();
        p.partition = 3;
        p.fetch_offset = 42;
        let mut t = fetch_request::FetchTopic::default();
        t.topic = TopicName(StrBytes::from_static_str("orders"));
        t.partitions = vec![p.clone(), p];
        let mut r = FetchRequest::default();
        r.topics = vec![t.clone(), t];
        let b = body(&r, v);
        assert_eq!(check_request(ApiKey::Fetch, v, &b), Ok(b.len()), "v{v}");
        // Every byte short of the end is a truncation, never a pass.
        assert!(check_request(ApiKey::Fetch, v, &b[..b.len() - 1]).is_err(), "v{v}");
    }
}

#[test]
fn huge_counts_are_refused_before_any_walk() {
    // Metadata v0: topics array claiming i32::MAX entries, no bytes behind it.
    let mut b = vec![];
    b.put_i32(i32::MAX);
    assert!(matches!(check_request(ApiKey::Metadata, 0, &b), Err(BoundsError::ImpossibleCount { .. })));
    // Metadata v12 (compact): the largest varint.
    let b = [0xff, 0xff, 0xff, 0xff, 0x0f];
    assert!(matches!(check_request(ApiKey::Metadata, 12, &b), Err(BoundsError::ImpossibleCount { .. })));
    // Produce v3: one topic claiming 2^31-1 partitions.
    let mut b = vec![];
    b.put_i16(-1);
    b.put_i16(1);
    b.put_i32(1000);
    b.put_i32(1);
    b.put_i16(1);
    b.put_u8(b't');
    b.put_i32(i32::MAX);
    assert!(matches!(check_request(ApiKey::Produce, 3, &b), Err(BoundsError::ImpossibleCount { .. })));
}

#[test]
fn min_sizes_follow_versions() {
    // FetchPartition v4: partition, fetch_offset, partition_max_bytes = 16 bytes.
    let fetch = request_schema(ApiKey::Fetch).unwrap();
    let Ty::Arr(Ty::Struct(topic)) = fetch.fields.iter().find(|f| f.lo == 0 && f.hi == 11 && matches!(f.ty, Ty::Arr(_))).unwrap().ty else {
        panic!("layout changed")
    };
    assert_eq!(min_size(&Ty::Struct(topic), 4), 2 + 4);
}
