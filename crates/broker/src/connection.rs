//! One client connection: framing, pipelining and in-order responses.
//!
//! The reader reads a frame, runs the handler's ordered stage inline, and queues
//! the handler's waiting stage as a task. The writer awaits those tasks in queue
//! order and writes their responses, so responses leave in request order while many
//! requests are in flight. The queue bound caps in-flight requests per connection.
//!
//! Limits on what one peer can hold:
//! - a declared frame size over `socket.request.max.bytes` closes the connection
//!   before anything is allocated;
//! - frames are read into one buffer per connection, reused from frame to frame;
//!   it grows with the bytes that actually arrive (from 64 KiB, to at most four
//!   times what was received), so a peer that declares a large frame and stalls
//!   holds little;
//! - a connection with no request in flight that sends nothing for
//!   `connections.max.idle.ms` is closed, as is one that stalls mid-frame that long.
//!
//! A malformed frame closes this connection with a logged reason. A panic while
//! handling a request is caught, logged with the peer, and closes only this
//! connection; the broker keeps serving everyone else.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::dispatch::{self, Outcome};
use crate::server::Broker;

/// Requests one connection may have in flight before the reader stops reading.
pub const MAX_IN_FLIGHT: usize = 64;
/// The first allocation for a frame's body, whatever size it declares.
pub const FIRST_CHUNK: usize = 64 * 1024;
/// A connection keeps its read buffer for reuse up to this size.
const KEEP_BUFFER: usize = 16 << 20;

/// A response in the writer's queue: ready now, or the task that will produce it.
enum Queued {
    Ready(Option<Bytes>),
    Later(JoinHandle<Option<Bytes>>),
}

pub async fn serve(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let (mut rd, wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Queued>(MAX_IN_FLIGHT);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let pending = in_flight.clone();
    let writer = tokio::spawn(async move {
        let mut wr = BufWriter::with_capacity(64 * 1024, wr);
        while let Some(queued) = rx.recv().await {
            let out = match queued {
                Queued::Ready(bytes) => Ok(bytes),
                Queued::Later(task) => task.await,
            };
            pending.fetch_sub(1, Ordering::Relaxed);
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "request handler panicked; closing this connection");
                    break;
                }
            };
            if let Some(bytes) = out {
                if bytes.is_empty() {
                    tracing::error!(%peer, "closing connection after a response could not be encoded");
                    break;
                }
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            // Write through when nothing else is ready, so responses are not held back.
            if rx.is_empty() && wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.flush().await;
    });
    let max_frame = broker.config.int("socket.request.max.bytes").clamp(1024, i32::MAX as i64) as usize;
    let idle = Duration::from_millis(broker.config.int("connections.max.idle.ms").clamp(1, i64::MAX / 2) as u64);
    let mut frames = FrameReader { buf: BytesMut::new(), max_frame, idle };
    let reason = loop {
        let frame = tokio::select! {
            r = frames.next(&mut rd, &in_flight) => r,
            _ = stop.changed() => break "broker shutting down".to_string(),
        };
        let frame = match frame {
            Ok(f) => f,
            Err(reason) => break reason,
        };
        in_flight.fetch_add(1, Ordering::Relaxed);
        let handled = CatchUnwind(std::pin::pin!(dispatch::dispatch(&broker, frame, peer))).await;
        let task = match handled {
            Ok(Ok(Outcome::Ready(bytes))) => Queued::Ready(bytes),
            Ok(Ok(Outcome::Later(fut))) => Queued::Later(tokio::spawn(fut)),
            Ok(Err(e)) => break e.to_string(),
            Err(msg) => break format!("request handler panicked: {msg}"),
        };
        if tx.send(task).await.is_err() {
            break "writer closed".to_string();
        }
    };
    match reason.as_str() {
        "peer closed" | "broker shutting down" => tracing::debug!(%peer, %reason, "connection closed"),
        r if r.starts_with("request handler panicked") => tracing::error!(%peer, %reason, "closing connection"),
        _ => tracing::info!(%peer, %reason, "closing connection"),
    }
    drop(tx);
    let _ = writer.await;
}

/// Reads frames from one connection into a buffer that is reused from frame to
/// frame: once the previous frame's bytes are dropped, `reserve` reclaims the
/// same allocation, so steady traffic neither allocates nor faults in fresh pages.
/// One read may bring in several small frames.
struct FrameReader {
    buf: BytesMut,
    max_frame: usize,
    idle: Duration,
}

impl FrameReader {
    /// The next frame's payload. The error is the reason to close the connection.
    async fn next(&mut self, rd: &mut OwnedReadHalf, in_flight: &AtomicUsize) -> Result<Bytes, String> {
        loop {
            if self.buf.len() >= 4 {
                let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if size < 0 || size as usize > self.max_frame {
                    return Err(format!("frame size {size} outside 0..={} (socket.request.max.bytes)", self.max_frame));
                }
                let need = 4 + size as usize;
                if self.buf.len() >= need {
                    let mut frame = self.buf.split_to(need);
                    frame.advance(4);
                    if self.buf.is_empty() && frame.capacity() > KEEP_BUFFER {
                        // Do not hold an outsized buffer for the rest of the connection.
                        self.buf = BytesMut::new();
                    }
                    return Ok(frame.freeze());
                }
                // Room for more of this frame, in proportion to what has arrived:
                // a declared size alone never sizes the buffer.
                if self.buf.capacity() - self.buf.len() < 4096 {
                    let grow = (self.buf.len() * 3).max(FIRST_CHUNK).min(need - self.buf.len());
                    self.buf.reserve(grow);
                }
            } else if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(FIRST_CHUNK);
            }
            let mid_frame = !self.buf.is_empty();
            match tokio::time::timeout(self.idle, rd.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) if mid_frame => return Err("peer closed mid-frame".into()),
                Ok(Ok(0)) | Ok(Err(_)) => return Err("peer closed".into()),
                Ok(Ok(_)) => {}
                Err(_) if mid_frame => {
                    return Err(format!("stalled mid-frame for {} ms (connections.max.idle.ms)", self.idle.as_millis()));
                }
                // Between requests, idle time counts only while nothing is in flight
                // (a long-polling fetch is not idleness). `read_buf` is cancel-safe.
                Err(_) if in_flight.load(Ordering::Relaxed) == 0 => {
                    return Err(format!("idle for {} ms (connections.max.idle.ms)", self.idle.as_millis()));
                }
                Err(_) => {}
            }
        }
    }
}

/// Runs a future, turning a panic inside it into an error carrying the message.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic payload".into());
                Poll::Ready(Err(msg))
            }
        }
    }
}
