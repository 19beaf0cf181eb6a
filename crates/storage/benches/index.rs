//! Offset-index lookup and a whole `Log::read` from a 64 MiB segment.
//! `cargo bench -p strom-storage`.

use criterion::{criterion_group, criterion_main, Criterion};
use strom_protocol::compression::Codec;
use strom_protocol::records::{BatchBuilder, Record};
use strom_storage::{Log, LogConfig};

fn index(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), true, 0, 0).unwrap();
    let mut b = BatchBuilder::new(0);
    for _ in 0..16 {
        b.push(Record { value: Some(vec![1u8; 1024].into()), ..Default::default() });
    }
    let batch = b.build(Codec::None).unwrap();
    for _ in 0..4096 {
        log.append(batch.clone()).unwrap();
    }
    let end = log.log_end_offset();
    let mut i = 0i64;
    c.bench_function("read_1MiB_at_random_offset_of_64MiB_segment", |bench| {
        bench.iter(|| {
            i = (i * 7919 + 104_729) % end;
            log.read(i, 1 << 20).unwrap()
        })
    });
    c.bench_function("read_16KiB_at_random_offset (index lookup dominated)", |bench| {
        bench.iter(|| {
            i = (i * 7919 + 104_729) % end;
            log.read(i, 16 << 10).unwrap()
        })
    });
}

criterion_group!(benches, index);
criterion_main!(benches);
