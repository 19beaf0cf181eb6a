//! `strom cluster health | reassign | elect-leaders`: partition health from
//! DescribeTopicPartitions (or Metadata) and DescribeConfigs, and the
//! reassignment and leader-election admin APIs.

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;

use anyhow::{bail, Context};
use strom_client::{Client, PartitionResult};
use strom_protocol::error::error_name;

const ELECTION_NOT_NEEDED: i16 = 84;

/// `topic:partition`. The topic is everything before the last `:`.
pub fn parse_partition(s: &str) -> anyhow::Result<(String, i32)> {
    let (t, p) = s.rsplit_once(':').with_context(|| format!("expected TOPIC:PARTITION, got '{s}'"))?;
    let p: i32 = p.trim().parse().with_context(|| format!("bad partition in '{s}'"))?;
    if t.is_empty() || p < 0 {
        bail!("expected TOPIC:PARTITION, got '{s}'");
    }
    Ok((t.to_string(), p))
}

/// `topic:partition=1,2,3`.
pub fn parse_assignment(s: &str) -> anyhow::Result<(String, i32, Vec<i32>)> {
    let (tp, replicas) = s.split_once('=').with_context(|| format!("expected TOPIC:PARTITION=B1,B2,..., got '{s}'"))?;
    let (t, p) = parse_partition(tp)?;
    let replicas = replicas
        .split(',')
        .map(|b| b.trim().parse::<i32>().with_context(|| format!("bad broker id '{b}' in '{s}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((t, p, replicas))
}

/// Kafka's reassignment file (`kafka-reassign-partitions --reassignment-json-file`):
/// `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}`.
/// `log_dirs` is accepted and ignored. Without `replicas` (allowed with `--cancel`)
/// the list is empty.
pub fn parse_plan(text: &str) -> anyhow::Result<Vec<(String, i32, Vec<i32>)>> {
    let v: serde_json::Value = serde_json::from_str(text).context("reassignment file is not JSON")?;
    let parts = v.get("partitions").and_then(|p| p.as_array()).context("reassignment file has no \"partitions\" array")?;
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let topic = p.get("topic").and_then(|t| t.as_str()).with_context(|| format!("partitions[{i}]: no \"topic\""))?;
        let partition = p
            .get("partition")
            .and_then(|x| x.as_i64())
            .and_then(|x| i32::try_from(x).ok())
            .filter(|x| *x >= 0)
            .with_context(|| format!("partitions[{i}]: no valid \"partition\""))?;
        let replicas = match p.get("replicas") {
            None => Vec::new(),
            Some(r) => r
                .as_array()
                .with_context(|| format!("partitions[{i}]: \"replicas\" is not an array"))?
                .iter()
                .map(|b| b.as_i64().and_then(|b| i32::try_from(b).ok()).with_context(|| format!("partitions[{i}]: bad broker id {b}")))
                .collect::<anyhow::Result<Vec<_>>>()?,
        };
        out.push((topic.to_string(), partition, replicas));
    }
    Ok(out)
}

fn describe_error(r: &PartitionResult) -> String {
    let name = error_name(r.error);
    match &r.message {
        Some(m) if !m.is_empty() => format!("{name}: {m}"),
        _ => name.to_string(),
    }
}

/// One partition's health, as `strom cluster health` judges it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub topics: usize,
    pub partitions: usize,
    /// (topic, partition, replicas, isr)
    pub under_replicated: Vec<(String, i32, Vec<i32>, Vec<i32>)>,
    /// (topic, partition, isr, min.insync.replicas)
    pub under_min_isr: Vec<(String, i32, Vec<i32>, usize)>,
    /// (topic, partition, replicas)
    pub offline: Vec<(String, i32, Vec<i32>)>,
}

impl Health {
    pub fn healthy(&self) -> bool {
        self.under_replicated.is_empty() && self.under_min_isr.is_empty() && self.offline.is_empty()
    }

    pub fn summary(&self) -> String {
        format!(
            "{}: {} partitions in {} topics; {} under-replicated, {} under min ISR, {} offline",
            if self.healthy() { "HEALTHY" } else { "UNHEALTHY" },
            self.partitions,
            self.topics,
            self.under_replicated.len(),
            self.under_min_isr.len(),
            self.offline.len()
        )
    }
}

/// Judges partitions: under-replicated when the ISR is smaller than the
/// replicas, under min ISR when it is smaller than the topic's
/// `min.insync.replicas`, offline when there is no leader.
pub fn judge(topics: &[strom_client::TopicInfo], min_isr: &HashMap<String, usize>) -> Health {
    let mut h = Health { topics: topics.len(), ..Default::default() };
    for t in topics {
        let min = min_isr.get(&t.name).copied().unwrap_or(1);
        for p in &t.partitions {
            h.partitions += 1;
            if p.isr.len() < p.replicas.len() {
                h.under_replicated.push((t.name.clone(), p.partition, p.replicas.clone(), p.isr.clone()));
            }
            if p.isr.len() < min {
                h.under_min_isr.push((t.name.clone(), p.partition, p.isr.clone(), min));
            }
            if p.leader < 0 {
                h.offline.push((t.name.clone(), p.partition, p.replicas.clone()));
            }
        }
    }
    h
}

pub async fn health(c: &mut Client) -> anyhow::Result<ExitCode> {
    let topics = c.describe_topics(None).await?;
    for t in topics.iter().filter(|t| t.error != 0) {
        eprintln!("warning: topic '{}': {}", t.name, error_name(t.error));
    }
    let topics: Vec<_> = topics.into_iter().filter(|t| t.error == 0).collect();
    let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    let configs = if names.is_empty() { HashMap::new() } else { c.topic_configs(&names, &["min.insync.replicas"]).await? };
    let min_isr: HashMap<String, usize> = configs
        .iter()
        .filter_map(|(t, kv)| kv.get("min.insync.replicas").and_then(|v| v.parse::<usize>().ok()).map(|v| (t.clone(), v)))
        .collect();
    let h = judge(&topics, &min_isr);
    if !h.under_replicated.is_empty() {
        println!("Under-replicated partitions (ISR smaller than replicas):");
        for (t, p, replicas, isr) in &h.under_replicated {
            println!("\t{t} [{p}]\tReplicas: {replicas:?}\tIsr: {isr:?}");
        }
    }
    if !h.under_min_isr.is_empty() {
        println!("Under-min-ISR partitions (ISR smaller than min.insync.replicas):");
        for (t, p, isr, min) in &h.under_min_isr {
            println!("\t{t} [{p}]\tIsr: {isr:?}\tmin.insync.replicas: {min}");
        }
    }
    if !h.offline.is_empty() {
        println!("Offline partitions (no leader):");
        for (t, p, replicas) in &h.offline {
            println!("\t{t} [{p}]\tReplicas: {replicas:?}");
        }
    }
    println!("{}", h.summary());
    Ok(if h.healthy() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub async fn reassign(c: &mut Client, file: Option<String>, args: Vec<String>, cancel: bool, list: bool) -> anyhow::Result<ExitCode> {
    if list {
        if file.is_some() || cancel {
            bail!("--list takes no plan");
        }
        let filter: Vec<(String, Option<i32>)> = args
            .iter()
            .map(|a| match parse_partition(a) {
                Ok((t, p)) => (t, Some(p)),
                Err(_) => (a.clone(), None),
            })
            .collect();
        let all = c.list_partition_reassignments().await?;
        let shown: Vec<_> = all
            .into_iter()
            .filter(|r| filter.is_empty() || filter.iter().any(|(t, p)| *t == r.topic && p.is_none_or(|p| p == r.partition)))
            .collect();
        if shown.is_empty() {
            println!("No reassignment in progress.");
        }
        for r in shown {
            println!("{} [{}]\tReplicas: {:?}\tAdding: {:?}\tRemoving: {:?}", r.topic, r.partition, r.replicas, r.adding, r.removing);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut items: Vec<(String, i32, Option<Vec<i32>>)> = Vec::new();
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        for (t, p, r) in parse_plan(&text).with_context(|| path.clone())? {
            if !cancel && r.is_empty() {
                bail!("{path}: {t}:{p} has no replicas");
            }
            items.push((t, p, if cancel { None } else { Some(r) }));
        }
    }
    for a in &args {
        if cancel {
            let tp = a.split_once('=').map(|x| x.0).unwrap_or(a);
            let (t, p) = parse_partition(tp)?;
            items.push((t, p, None));
        } else {
            let (t, p, r) = parse_assignment(a)?;
            items.push((t, p, Some(r)));
        }
    }
    if items.is_empty() {
        bail!("nothing to do: give TOPIC:PARTITION=B1,B2,... arguments or --file PLAN.json (or --list)");
    }
    let results = c.alter_partition_reassignments(&items).await?;
    let mut failed = 0;
    for r in &results {
        let what = if cancel { "reassignment cancelled" } else { "reassignment started" };
        if r.error == 0 {
            println!("{} [{}]: {what}", r.topic, r.partition);
        } else {
            failed += 1;
            println!("{} [{}]: {}", r.topic, r.partition, describe_error(r));
        }
    }
    println!("{} of {} partition(s) accepted.", results.len() - failed, results.len());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub async fn elect_leaders(c: &mut Client, unclean: bool, args: Vec<String>) -> anyhow::Result<ExitCode> {
    let partitions = if args.is_empty() {
        None
    } else {
        let mut ps = Vec::new();
        let mut whole: Vec<&str> = Vec::new();
        for a in &args {
            match parse_partition(a) {
                Ok(tp) => ps.push(tp),
                Err(_) => whole.push(a.as_str()),
            }
        }
        if !whole.is_empty() {
            // A bare topic name: every partition of it.
            for t in c.describe_topics(Some(&whole)).await? {
                if t.error != 0 {
                    bail!(strom_client::ClientError::broker(t.error, Some(format!("topic '{}'", t.name))));
                }
                ps.extend(t.partitions.iter().map(|p| (t.name.clone(), p.partition)));
            }
        }
        Some(ps)
    };
    let results = c.elect_leaders(if unclean { 1 } else { 0 }, partitions.as_deref()).await?;
    let mut by_topic: BTreeMap<(String, i32), &PartitionResult> = BTreeMap::new();
    for r in &results {
        by_topic.insert((r.topic.clone(), r.partition), r);
    }
    let mut failed = 0;
    let mut elected = 0;
    for ((t, p), r) in &by_topic {
        match r.error {
            0 => {
                elected += 1;
                println!("{t} [{p}]: leader elected");
            }
            ELECTION_NOT_NEEDED => println!("{t} [{p}]: no election needed"),
            _ => {
                failed += 1;
                println!("{t} [{p}]: {}", describe_error(r));
            }
        }
    }
    println!("{elected} leader(s) elected, {failed} failed.");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_client::{PartitionInfo, TopicInfo};

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_partition("orders:3").unwrap(), ("orders".into(), 3));
        assert_eq!(parse_assignment("a.b-c:0=1, 2,3").unwrap(), ("a.b-c".into(), 0, vec![1, 2, 3]));
        assert!(parse_partition("orders").is_err());
        assert!(parse_partition("orders:-1").is_err());
        assert!(parse_assignment("orders:1").is_err());
        assert!(parse_assignment("orders:1=1,x").is_err());
    }

    #[test]
    fn kafka_plan_files_parse() {
        let plan = r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]},
                      {"topic":"u","partition":4,"replicas":[3]}]}"#;
        assert_eq!(parse_plan(plan).unwrap(), vec![("t".into(), 0, vec![1, 2]), ("u".into(), 4, vec![3])]);
        assert!(parse_plan(r#"{"partitions":[{"topic":"t"}]}"#).is_err());
        assert!(parse_plan(r#"{"partitions":[{"topic":"t","partition":0,"replicas":["x"]}]}"#).is_err());
        assert!(parse_plan("[]").is_err());
    }

    fn part(partition: i32, leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionInfo {
        PartitionInfo { partition, leader, leader_epoch: 0, replicas: replicas.to_vec(), isr: isr.to_vec(), offline: vec![] }
    }

    #[test]
    fn health_finds_each_kind_of_trouble() {
        let topics = vec![
            TopicInfo {
                name: "a".into(),
                id: Default::default(),
                error: 0,
                partitions: vec![part(0, 1, &[1, 2, 3], &[1, 2, 3]), part(1, 2, &[1, 2, 3], &[2]), part(2, -1, &[1], &[1])],
            },
            TopicInfo { name: "b".into(), id: Default::default(), error: 0, partitions: vec![part(0, 1, &[1, 2], &[1, 2])] },
        ];
        let min: HashMap<String, usize> = [("a".to_string(), 2), ("b".to_string(), 2)].into();
        let h = judge(&topics, &min);
        assert_eq!(h.under_replicated, vec![("a".into(), 1, vec![1, 2, 3], vec![2])]);
        assert_eq!(h.under_min_isr, vec![("a".into(), 1, vec![2], 2), ("a".into(), 2, vec![1], 2)]);
        assert_eq!(h.offline, vec![("a".into(), 2, vec![1])]);
        assert!(!h.healthy());
        assert!(h.summary().starts_with("UNHEALTHY: 4 partitions in 2 topics; 1 under-replicated, 2 under min ISR, 1 offline"));
        let ok = judge(&topics[1..], &min);
        assert!(ok.healthy() && ok.summary().starts_with("HEALTHY"));
    }
}
