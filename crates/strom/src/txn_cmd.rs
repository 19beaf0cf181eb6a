//! `strom txn list|describe` and `strom producers <topic>`: transactions as
//! their coordinators see them, and the producers partition leaders track.

use strom_client::Client;

pub async fn list(c: &mut Client) -> anyhow::Result<()> {
    let txns = c.list_transactions().await?;
    println!("TRANSACTIONAL_ID\tPRODUCER_ID\tSTATE");
    for (id, pid, state) in txns {
        println!("{id}\t{pid}\t{state}");
    }
    Ok(())
}

pub async fn describe(c: &mut Client, id: &str) -> anyhow::Result<()> {
    let t = c.describe_transaction(id).await?;
    println!("TransactionalId: {}", t.transactional_id);
    println!("State: {}", t.state);
    println!("ProducerId: {}\tProducerEpoch: {}", t.producer_id, t.producer_epoch);
    println!("TimeoutMs: {}", t.timeout_ms);
    let start = if t.start_time_ms < 0 { "-".to_string() } else { t.start_time_ms.to_string() };
    println!("StartTimeMs: {start}");
    let parts: Vec<String> = t.partitions.iter().map(|(topic, p)| format!("{topic}-{p}")).collect();
    println!("Partitions: {}", if parts.is_empty() { "-".to_string() } else { parts.join(",") });
    Ok(())
}

/// One row per producer per partition (all partitions unless one is given).
pub async fn producers(c: &mut Client, topic: &str, partition: Option<i32>) -> anyhow::Result<()> {
    let partitions: Vec<i32> = match partition {
        Some(p) => vec![p],
        None => {
            let info = c.topic(topic, false).await?;
            info.partitions.iter().map(|p| p.partition).collect()
        }
    };
    println!("PARTITION\tPRODUCER_ID\tEPOCH\tLAST_SEQUENCE\tLAST_TIMESTAMP\tCOORDINATOR_EPOCH\tTXN_START_OFFSET");
    for p in partitions {
        for x in c.describe_producers(topic, p).await? {
            let txn = if x.current_txn_start_offset < 0 { "-".to_string() } else { x.current_txn_start_offset.to_string() };
            println!(
                "{p}\t{}\t{}\t{}\t{}\t{}\t{txn}",
                x.producer_id, x.producer_epoch, x.last_sequence, x.last_timestamp, x.coordinator_epoch
            );
        }
    }
    Ok(())
}
