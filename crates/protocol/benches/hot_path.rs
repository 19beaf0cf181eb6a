//! Micro-benchmarks of the produce/fetch hot path: batch validation (CRC32C),
//! Produce request decode, and Fetch response encode. `cargo bench -p strom-protocol`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use strom_protocol::batch;
use strom_protocol::compression::Codec;
use strom_protocol::frame;
use strom_protocol::records::{BatchBuilder, Record};

/// ~1 MiB record set: 16 batches of 64 × 1 KiB messages, as librdkafka sends them.
fn record_set() -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..16 {
        let mut b = BatchBuilder::new(1_700_000_000_000);
        for i in 0..64u32 {
            b.push(Record {
                key: Some(Bytes::from(i.to_be_bytes().to_vec())),
                value: Some(Bytes::from(vec![7u8; 1024])),
                ..Default::default()
            });
        }
        out.extend_from_slice(&b.build(Codec::None).unwrap());
    }
    out
}

fn validation(c: &mut Criterion) {
    let set = record_set();
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(set.len() as u64));
    g.bench_function("validate_crc32c_1MiB", |b| b.iter(|| batch::validate(&set, 1 << 20).unwrap()));
    g.finish();
}

fn request_decode(c: &mut Criterion) {
    let set = Bytes::from(record_set());
    let mut pd = PartitionProduceData::default();
    pd.records = Some(set.clone());
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str("bench"));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = 1;
    req.topic_data = vec![td];
    let mut h = RequestHeader::default();
    h.request_api_key = ApiKey::Produce as i16;
    h.request_api_version = 9;
    let frame = frame::encode_request(&h, &req).unwrap().slice(4..);
    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("decode_produce_v9_1MiB", |b| {
        b.iter(|| {
            let mut body = frame.clone();
            frame::decode_header(ApiKey::Produce, 9, &mut body).unwrap();
            ProduceRequest::decode(&mut body, 9).unwrap()
        })
    });
    g.finish();
}

fn fetch_encode(c: &mut Criterion) {
    let set = Bytes::from(record_set());
    let mut g = c.benchmark_group("response");
    g.throughput(Throughput::Bytes(set.len() as u64 * 8));
    g.bench_function("encode_fetch_v12_8x1MiB", |b| {
        b.iter(|| {
            let mut t = FetchableTopicResponse::default();
            t.topic = TopicName(StrBytes::from_static_str("bench"));
            t.partitions = (0..8)
                .map(|p| {
                    let mut pd = PartitionData::default();
                    pd.partition_index = p;
                    pd.records = Some(set.clone());
                    pd
                })
                .collect();
            let mut resp = FetchResponse::default();
            resp.responses = vec![t];
            frame::encode_response(ApiKey::Fetch, 12, 1, &resp).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, validation, request_decode, fetch_encode);
criterion_main!(benches);
