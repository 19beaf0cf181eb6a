//! `strom bench produce|consume|e2e`: load generation on Strom's own client,
//! with a progress bar, HDR histograms and a summary table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use strom_client::{Client, NewTopic};
use strom_protocol::compression::Codec;
use strom_protocol::records::Record;

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    let style = ProgressStyle::with_template(&format!("{what} [{{bar:40}}] {{pos}}/{{len}} msgs  {{per_sec}}  eta {{eta}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?)
}

/// Prints the summary table; latencies in microseconds.
fn summary(title: &str, msgs: u64, bytes: u64, elapsed: Duration, lat: Option<&Histogram<u64>>) {
    let s = elapsed.as_secs_f64().max(1e-9);
    println!("\n{title}");
    println!("  {:<14} {msgs}", "messages");
    println!("  {:<14} {:.1} MB", "data", bytes as f64 / 1e6);
    println!("  {:<14} {:.3} s", "elapsed", s);
    println!("  {:<14} {:.0} msg/s", "throughput", msgs as f64 / s);
    println!("  {:<14} {:.1} MB/s", "", bytes as f64 / 1e6 / s);
    if let Some(h) = lat {
        if !h.is_empty() {
            println!(
                "  {:<14} p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
                "latency",
                h.value_at_quantile(0.50) as f64 / 1000.0,
                h.value_at_quantile(0.99) as f64 / 1000.0,
                h.value_at_quantile(0.999) as f64 / 1000.0,
                h.max() as f64 / 1000.0
            );
        }
    }
}

async fn ensure_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<i32> {
    let mut c = Client::connect(bootstrap).await?;
    let t = NewTopic { name: topic.into(), partitions, replication_factor: 1, configs: vec![], assignments: vec![] };
    let _ = c.create_topic(&t, false).await; // exists already: fine
    Ok(c.topic(topic, false).await?.partitions.len() as i32)
}

#[allow(clippy::too_many_arguments)]
pub async fn produce(
    bootstrap: &str,
    topic: &str,
    messages: u64,
    size: usize,
    acks: i16,
    batch: usize,
    connections: usize,
    partitions: i32,
) -> anyhow::Result<()> {
    let parts = ensure_topic(bootstrap, topic, partitions).await?;
    let pb = bar(messages, "produce");
    let hist = Arc::new(Mutex::new(histogram()?));
    let next = Arc::new(AtomicU64::new(0));
    let payload = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for conn in 0..connections.max(1) {
        let (bootstrap, topic, hist, next, pb, payload) =
            (bootstrap.to_string(), topic.to_string(), hist.clone(), next.clone(), pb.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&bootstrap).await?;
            let mut round = conn as i32;
            loop {
                let start = next.fetch_add(batch as u64, Ordering::Relaxed);
                if start >= messages {
                    return anyhow::Ok(());
                }
                let n = (messages - start).min(batch as u64);
                let recs: Vec<Record> = (0..n).map(|_| Record { value: Some(payload.clone()), ..Default::default() }).collect();
                let t = Instant::now();
                c.produce(&topic, round % parts, recs, acks, Codec::None).await?;
                round += 1;
                let us = t.elapsed().as_micros() as u64;
                if let Ok(mut h) = hist.lock() {
                    let _ = h.record(us.max(1));
                }
                pb.inc(n);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    pb.finish_and_clear();
    let h = hist.lock().map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?;
    summary(
        &format!("produce: {size} B messages, acks={acks}, {connections} connection(s), {batch} per request (latency = per request)"),
        messages,
        messages * size as u64,
        started.elapsed(),
        Some(&h),
    );
    Ok(())
}

pub async fn consume(bootstrap: &str, topic: &str, messages: u64) -> anyhow::Result<()> {
    let mut c = Client::connect(bootstrap).await?;
    let parts: Vec<i32> = c.topic(topic, false).await?.partitions.iter().map(|p| p.partition).collect();
    let pb = bar(messages, "consume");
    let count = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in parts {
        let (bootstrap, topic, count, bytes, pb) = (bootstrap.to_string(), topic.to_string(), count.clone(), bytes.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&bootstrap).await?;
            let mut next = c.list_offset(&topic, p, -2).await?;
            let end = c.list_offset(&topic, p, -1).await?;
            while next < end && count.load(Ordering::Relaxed) < messages {
                let r = c.fetch(&topic, p, next, Duration::from_millis(100), 8 << 20).await?;
                let n = r.records.len() as u64;
                bytes.fetch_add(r.records.iter().map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64).sum(), Ordering::Relaxed);
                count.fetch_add(n, Ordering::Relaxed);
                pb.inc(n);
                next = r.next_offset;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    pb.finish_and_clear();
    let n = count.load(Ordering::Relaxed);
    summary(&format!("consume: {topic} from the beginning"), n, bytes.load(Ordering::Relaxed), started.elapsed(), None);
    Ok(())
}

/// Open loop: send times are fixed in advance (one message every 1/rate s), and
/// latency runs from the scheduled send time to receipt, so a slow response
/// cannot hide the wait behind it.
pub async fn e2e(bootstrap: &str, topic: &str, rate: u64, duration: Duration, size: usize) -> anyhow::Result<()> {
    ensure_topic(bootstrap, topic, 1).await?;
    let mut probe = Client::connect(bootstrap).await?;
    let start_offset = probe.list_offset(topic, 0, -1).await?;
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let origin = Instant::now() + Duration::from_millis(200);
    let consumer = {
        let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
        tokio::spawn(async move {
            let mut c = Client::connect(&bootstrap).await?;
            let mut h = histogram()?;
            let mut next = start_offset;
            let deadline = Instant::now() + duration + Duration::from_secs(10);
            while (h.len() as u64) < total && Instant::now() < deadline {
                let r = c.fetch(&topic, 0, next, Duration::from_millis(50), 4 << 20).await?;
                let now = Instant::now();
                for rec in &r.records {
                    let Some(v) = &rec.value else { continue };
                    if v.len() < 8 {
                        continue;
                    }
                    let scheduled_us = u64::from_be_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
                    let at = origin + Duration::from_micros(scheduled_us);
                    let _ = h.record(now.saturating_duration_since(at).as_micros().max(1) as u64);
                }
                next = r.next_offset;
            }
            anyhow::Ok(h)
        })
    };
    let mut c = Client::connect(bootstrap).await?;
    let pb = bar(total, "e2e");
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut i = 0u64;
    while i < total {
        // Everything scheduled up to now goes out in one request.
        let due = ((origin.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64 + 1).min(total);
        if due <= i {
            tokio::time::sleep_until((origin + interval.mul_f64(i as f64)).into()).await;
            continue;
        }
        let recs: Vec<Record> = (i..due)
            .map(|k| {
                let mut v = (interval.mul_f64(k as f64).as_micros() as u64).to_be_bytes().to_vec();
                v.resize(size.max(8), b'x');
                Record { value: Some(Bytes::from(v)), ..Default::default() }
            })
            .collect();
        c.produce(topic, 0, recs, 1, Codec::None).await?;
        pb.inc(due - i);
        i = due;
    }
    pb.finish_and_clear();
    let h = consumer.await??;
    summary(
        &format!("e2e: open loop at {rate} msg/s, {size} B, acks=1 (latency = scheduled send → received)"),
        h.len(),
        h.len() * size as u64,
        duration,
        Some(&h),
    );
    Ok(())
}
