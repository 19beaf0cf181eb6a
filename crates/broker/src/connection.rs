//! One client connection: framing, pipelining and in-order responses.
//!
//! The reader reads a frame (rejecting sizes over `socket.request.max.bytes`
//! before allocating), runs the handler's ordered stage inline, and queues the
//! handler's waiting stage as a task. The writer awaits those tasks in queue order
//! and writes their responses, so responses leave in request order while many
//! requests are in flight. The queue bound caps in-flight requests.
//!
//! A malformed frame closes this connection with a logged reason. A panic in a
//! handler ends only this connection's task; the broker keeps serving.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::dispatch::{self, Outcome};
use crate::server::Broker;

const MAX_IN_FLIGHT: usize = 64;

pub async fn serve(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let (mut rd, wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<JoinHandle<Option<Bytes>>>(MAX_IN_FLIGHT);
    let writer = tokio::spawn(async move {
        let mut wr = BufWriter::with_capacity(64 * 1024, wr);
        while let Some(task) = rx.recv().await {
            let out = match task.await {
                Ok(out) => out,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "request handler failed; closing connection");
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
    let reason = loop {
        let mut len = [0u8; 4];
        let read = tokio::select! {
            r = rd.read_exact(&mut len) => r,
            _ = stop.changed() => break "broker shutting down".to_string(),
        };
        if read.is_err() {
            break "peer closed".to_string();
        }
        let size = i32::from_be_bytes(len);
        if size < 0 || size as usize > max_frame {
            break format!("frame size {size} outside 0..={max_frame} (socket.request.max.bytes)");
        }
        let mut frame = BytesMut::zeroed(size as usize);
        if rd.read_exact(&mut frame).await.is_err() {
            break "peer closed mid-frame".to_string();
        }
        match dispatch::dispatch(&broker, frame.freeze(), peer).await {
            Ok(Outcome::Ready(bytes)) => {
                let task = tokio::spawn(async move { bytes });
                if tx.send(task).await.is_err() {
                    break "writer closed".to_string();
                }
            }
            Ok(Outcome::Later(fut)) => {
                if tx.send(tokio::spawn(fut)).await.is_err() {
                    break "writer closed".to_string();
                }
            }
            Err(e) => break e.to_string(),
        }
    };
    match reason.as_str() {
        "peer closed" | "broker shutting down" => {
            tracing::debug!(%peer, %reason, "connection closed")
        }
        _ => tracing::info!(%peer, %reason, "closing connection"),
    }
    drop(tx);
    let _ = writer.await;
}
