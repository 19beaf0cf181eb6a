//! `strom log-dirs` and `strom log-dirs move`: each broker's log directories
//! (DescribeLogDirs) and moving a replica between the directories of its broker
//! (AlterReplicaLogDirs).

use std::time::Duration;

use anyhow::{bail, Context};
use strom_client::Client;
use strom_protocol::error::error_name;

/// The brokers to ask: the one given, else every broker in the cluster.
async fn brokers(c: &mut Client, broker: Option<i32>) -> anyhow::Result<Vec<i32>> {
    if let Some(b) = broker {
        return Ok(vec![b]);
    }
    let (brokers, _, _) = c.metadata(Some(&[]), false).await?;
    let mut ids: Vec<i32> = brokers.into_iter().map(|b| b.0).collect();
    ids.sort();
    Ok(ids)
}

fn bytes(n: i64) -> String {
    if n < 0 {
        "-".to_string()
    } else {
        n.to_string()
    }
}

/// Two tables: each directory (state, filesystem size and free space, replica
/// count), then each replica in it. `topics` limits the replicas to those topics.
pub async fn describe(c: &mut Client, broker: Option<i32>, topics: &[String]) -> anyhow::Result<()> {
    let wanted = if topics.is_empty() {
        None
    } else {
        let mut w = Vec::new();
        for t in topics {
            let info = c.topic(t, false).await?;
            w.push((t.clone(), info.partitions.iter().map(|p| p.partition).collect::<Vec<i32>>()));
        }
        Some(w)
    };
    let mut rows = Vec::new();
    println!("BROKER\tDIR\tSTATE\tTOTAL_BYTES\tUSABLE_BYTES\tREPLICAS");
    for id in brokers(c, broker).await? {
        let mut b = c.connect_broker(id).await.with_context(|| format!("broker {id}"))?;
        for d in b.describe_log_dirs(wanted.as_deref()).await.with_context(|| format!("broker {id}"))? {
            let state = if d.error == 0 { "online".to_string() } else { format!("offline ({})", error_name(d.error)) };
            println!("{id}\t{}\t{state}\t{}\t{}\t{}", d.path, bytes(d.total_bytes), bytes(d.usable_bytes), d.replicas.len());
            for r in d.replicas {
                rows.push((id, d.path.clone(), r));
            }
        }
    }
    println!();
    println!("BROKER\tDIR\tTOPIC\tPARTITION\tSIZE\tOFFSET_LAG\tFUTURE");
    for (id, dir, r) in rows {
        let future = if r.is_future { "yes" } else { "no" };
        println!("{id}\t{dir}\t{}\t{}\t{}\t{}\t{future}", r.topic, r.partition, r.size_bytes, r.offset_lag);
    }
    Ok(())
}

/// Starts moving `topic`-`partition` to `dir` on the given broker, else on every
/// broker holding a replica of it; with `wait`, returns once every move is done.
pub async fn move_replica(c: &mut Client, topic: &str, partition: i32, dir: &str, broker: Option<i32>, wait: bool) -> anyhow::Result<()> {
    let on: Vec<i32> = match broker {
        Some(b) => vec![b],
        None => {
            let info = c.topic(topic, false).await?;
            let p = info
                .partitions
                .iter()
                .find(|p| p.partition == partition)
                .with_context(|| format!("{topic} has no partition {partition}"))?;
            p.replicas.clone()
        }
    };
    let mut conns = Vec::new();
    for id in on {
        let mut b = c.connect_broker(id).await.with_context(|| format!("broker {id}"))?;
        b.alter_replica_log_dir(topic, partition, dir).await.with_context(|| format!("broker {id}"))?;
        println!("broker {id}: moving {topic}-{partition} to {dir}");
        conns.push((id, b));
    }
    if !wait {
        return Ok(());
    }
    let wanted = [(topic.to_string(), vec![partition])];
    // The broker names its directories by absolute path; `dir` may be relative.
    let absolute = std::fs::canonicalize(dir).map(|p| p.display().to_string()).unwrap_or_else(|_| dir.to_string());
    let same = |path: &str| path == dir || path == absolute;
    for (id, b) in conns.iter_mut() {
        loop {
            let dirs = b.describe_log_dirs(Some(&wanted)).await?;
            let Some(there) = dirs.iter().find(|d| same(&d.path)) else {
                bail!("broker {id} reports no log directory {dir}");
            };
            if there.error != 0 {
                bail!("broker {id}: {dir} is offline ({})", error_name(there.error));
            }
            let done = there.replicas.iter().any(|r| !r.is_future) && dirs.iter().filter(|d| !same(&d.path)).all(|d| d.replicas.is_empty());
            if done {
                println!("broker {id}: {topic}-{partition} is in {dir}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
