//! Command-line arguments and the thin glue from them to the broker and client.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use strom_broker::BrokerConfig;
use strom_client::{partition_for_key, Client, NewTopic};
use strom_protocol::compression::Codec;
use strom_protocol::records::Record;

#[derive(Parser)]
#[command(name = "strom", version, about = "Strom: a Kafka-compatible event-streaming broker")]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a broker (single node with embedded defaults when given no options).
    Server {
        /// TOML file of Kafka config names, e.g. `"num.partitions" = 3`.
        #[arg(long, short)]
        config: Option<String>,
        /// Override one setting, e.g. `--set log.dirs=/data`. Repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Create, list, describe and delete topics.
    Topic {
        #[command(subcommand)]
        cmd: TopicCmd,
        #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
    },
    /// Produce lines from stdin, one message per line.
    Produce {
        topic: String,
        #[arg(long, short = 'b', default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
        /// Send every message to this partition (default: by key hash, else round robin).
        #[arg(long, short)]
        partition: Option<i32>,
        /// Split each line at the first SEP into key and value.
        #[arg(long, short = 'K')]
        key_separator: Option<String>,
        /// A header `name=value` added to every message. Repeatable.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
        acks: String,
        #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
        compression: String,
        /// Messages per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// The cluster: brokers, controller and the metadata quorum.
    Cluster {
        #[command(subcommand)]
        cmd: ClusterCmd,
        #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
    },
    /// Inspect and manage consumer groups.
    Group {
        #[command(subcommand)]
        cmd: GroupCmd,
        #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
    },
    /// Transactions: list them, or describe one (state, producer, partitions).
    Txn {
        #[command(subcommand)]
        cmd: TxnCmd,
        #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
    },
    /// The idempotent and transactional producers a topic's partition leaders track.
    Producers {
        topic: String,
        #[arg(long, short = 'b', default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
        /// Only this partition.
        #[arg(long, short)]
        partition: Option<i32>,
    },
    /// Each broker's log directories and the replicas in them; `move` moves a
    /// replica to another directory of its broker.
    LogDirs {
        #[command(subcommand)]
        cmd: Option<LogDirsCmd>,
        #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
        /// Only this broker (default: every broker).
        #[arg(long)]
        broker: Option<i32>,
        /// Only the replicas of this topic. Repeatable.
        #[arg(long = "topic", short = 't')]
        topics: Vec<String>,
    },
    /// Read and change topic (or read broker) configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
        #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
    },
    /// Load-test a broker: produce, consume, or end-to-end latency.
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
        #[arg(long, short = 'b', global = true, default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
    },
    /// Read messages from one partition.
    Consume {
        topic: String,
        #[arg(long, short = 'b', default_value = "127.0.0.1:9092", env = "STROM_BOOTSTRAP")]
        bootstrap_server: String,
        #[arg(long, short, default_value_t = 0)]
        partition: i32,
        /// `beginning`, `end`, or an offset.
        #[arg(long, short, default_value = "beginning")]
        offset: String,
        /// Stop after this many messages.
        #[arg(long, short = 'n')]
        count: Option<u64>,
        #[arg(long, short, value_enum, default_value_t = Format::Value)]
        format: Format,
        /// Stop when no message arrives for this long (default: wait forever).
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// The value only.
    Value,
    /// `key<TAB>value`.
    KeyValue,
    /// One JSON object per message with offset, timestamp, key, value, headers.
    Json,
}

#[derive(Subcommand)]
enum LogDirsCmd {
    /// Start moving a partition's replica to another log directory of its broker.
    Move {
        topic: String,
        partition: i32,
        /// The destination: one of the broker's `log.dirs`.
        dir: String,
        /// Only the replica on this broker (default: every replica of the partition).
        #[arg(long)]
        broker: Option<i32>,
        /// Return once the move is done, not as soon as it has started.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum TxnCmd {
    /// Every transactional id with its producer id and state.
    List,
    /// One transaction: state, producer id and epoch, timeout, partitions.
    Describe { transactional_id: String },
}

#[derive(Subcommand)]
enum GroupCmd {
    List,
    /// Members, assignments, and per partition the committed offset, log end offset and lag.
    Describe {
        group: String,
    },
    /// Move a group's committed offsets (dry run unless --execute; the group must be inactive).
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        #[arg(long, group = "target")]
        to_earliest: bool,
        #[arg(long, group = "target")]
        to_latest: bool,
        #[arg(long, group = "target")]
        to_offset: Option<i64>,
        /// `YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]` (UTC without a zone) or epoch ms.
        #[arg(long, group = "target")]
        to_datetime: Option<String>,
        #[arg(long, group = "target", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        #[arg(long)]
        execute: bool,
    },
    Delete {
        group: String,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    Produce {
        #[arg(long, default_value = "strom-bench")]
        topic: String,
        #[arg(long, short = 'n', default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, short = 's', default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value = "1", value_parser = ["0", "1", "all", "-1"])]
        acks: String,
        /// Messages per produce request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Partitions when the topic is created.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
    },
    Consume {
        #[arg(long, default_value = "strom-bench")]
        topic: String,
        #[arg(long, short = 'n', default_value_t = u64::MAX)]
        messages: u64,
    },
    E2e {
        #[arg(long, default_value = "strom-bench-e2e")]
        topic: String,
        /// Messages per second (open loop).
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, short = 's', default_value_t = 1024)]
        size: usize,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Every value with its source (topic, dynamic broker, static broker, default).
    Get {
        #[arg(long, conflicts_with = "broker")]
        topic: Option<String>,
        #[arg(long)]
        broker: Option<i32>,
    },
    /// Set settings: `strom config set --topic T retention.ms=60000 ...`, or a
    /// dynamic broker setting with `--broker ID` (`--broker-default` for all brokers).
    Set {
        #[command(flatten)]
        target: ConfigTarget,
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Remove overrides, back to the next value down (broker, then default).
    Delete {
        #[command(flatten)]
        target: ConfigTarget,
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ConfigTarget {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    broker: Option<i32>,
    #[arg(long)]
    broker_default: bool,
}

impl ConfigTarget {
    /// (resource type, resource name) for the config APIs.
    fn resource(&self) -> (i8, String) {
        match (&self.topic, self.broker) {
            (Some(t), _) => (2, t.clone()),
            (None, Some(b)) => (4, b.to_string()),
            (None, None) => (4, String::new()),
        }
    }
}

#[derive(Subcommand)]
enum TopicCmd {
    Create {
        name: String,
        #[arg(long, short, default_value_t = -1)]
        partitions: i32,
        #[arg(long, short, default_value_t = -1)]
        replication_factor: i16,
        /// A topic config `name=value`. Repeatable.
        #[arg(long = "config", short = 'c')]
        configs: Vec<String>,
        #[arg(long)]
        validate_only: bool,
    },
    List,
    Describe {
        name: Option<String>,
    },
    Delete {
        name: String,
    },
    /// Grow a topic to more partitions (keys may then map elsewhere).
    Alter {
        name: String,
        #[arg(long)]
        partitions: i32,
    },
    /// Delete every record below an offset (moves the log start offset).
    DeleteRecords {
        name: String,
        /// First offset to keep; -1 deletes everything up to the end.
        #[arg(long, allow_hyphen_values = true)]
        before: i64,
        /// Only this partition (default: every partition).
        #[arg(long, short)]
        partition: Option<i32>,
    },
}

fn kv(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s.split_once('=').with_context(|| format!("expected KEY=VALUE, got '{s}'"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Server { config, set } => server(config, set).await,
        Cmd::Topic { cmd, bootstrap_server } => topic(cmd, &bootstrap_server).await,
        Cmd::Group { cmd, bootstrap_server } => group(cmd, &bootstrap_server).await,
        Cmd::Cluster { cmd, bootstrap_server } => cluster(cmd, &bootstrap_server).await,
        Cmd::Config { cmd, bootstrap_server } => config(cmd, &bootstrap_server).await,
        Cmd::Txn { cmd, bootstrap_server } => {
            let mut c = Client::connect(&bootstrap_server).await?;
            match cmd {
                TxnCmd::List => crate::txn_cmd::list(&mut c).await?,
                TxnCmd::Describe { transactional_id } => crate::txn_cmd::describe(&mut c, &transactional_id).await?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::LogDirs { cmd, bootstrap_server, broker, topics } => {
            let mut c = Client::connect(&bootstrap_server).await?;
            match cmd {
                None => crate::log_dirs_cmd::describe(&mut c, broker, &topics).await?,
                Some(LogDirsCmd::Move { topic, partition, dir, broker, wait }) => {
                    crate::log_dirs_cmd::move_replica(&mut c, &topic, partition, &dir, broker, wait).await?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Producers { topic, bootstrap_server, partition } => {
            let mut c = Client::connect(&bootstrap_server).await?;
            crate::txn_cmd::producers(&mut c, &topic, partition).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { cmd, bootstrap_server } => {
            use crate::bench_cmd as b;
            match cmd {
                BenchCmd::Produce { topic, messages, size, acks, batch, connections, partitions } => {
                    let acks: i16 = if acks == "all" { -1 } else { acks.parse()? };
                    b::produce(&bootstrap_server, &topic, messages, size, acks, batch.max(1), connections, partitions).await?
                }
                BenchCmd::Consume { topic, messages } => b::consume(&bootstrap_server, &topic, messages).await?,
                BenchCmd::E2e { topic, rate, seconds, size } => {
                    b::e2e(&bootstrap_server, &topic, rate, Duration::from_secs(seconds), size).await?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Produce { topic, bootstrap_server, partition, key_separator, headers, acks, compression, batch } => {
            let acks: i16 = if acks == "all" { -1 } else { acks.parse()? };
            let codec = Codec::parse(&compression).context("unknown compression")?;
            let headers = headers.iter().map(|h| kv(h)).collect::<anyhow::Result<Vec<_>>>()?;
            produce(&bootstrap_server, &topic, partition, key_separator, headers, acks, codec, batch.max(1)).await
        }
        Cmd::Consume { topic, bootstrap_server, partition, offset, count, format, timeout_ms } => {
            consume(&bootstrap_server, &topic, partition, &offset, count, format, timeout_ms).await
        }
    }
}

async fn server(config: Option<String>, set: Vec<String>) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("STROM_LOG").unwrap_or_else(|_| "info,openraft=warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log that cannot be written (a full disk) must not panic the broker.
        .log_internal_errors(false)
        .init();
    let mut pairs = Vec::new();
    if let Some(path) = &config {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {path}"))?;
        pairs.extend(BrokerConfig::toml_pairs(&text, path)?);
    }
    for s in &set {
        pairs.push(kv(s)?);
    }
    let cfg = BrokerConfig::from_pairs(pairs)?;
    let node = strom_broker::Node::start(cfg).await?;
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    node.serve(shutdown).await;
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Cluster id, active controller, and every broker with its state and rack.
    Info,
    /// The metadata quorum: leader, epoch, high watermark, and each voter's lag.
    Quorum,
    /// Under-replicated, under-min-ISR and offline partitions, then a one-line
    /// summary. Exit code 0 when healthy, 1 otherwise.
    Health,
    /// Move partitions to other brokers: `TOPIC:PARTITION=B1,B2,...` arguments
    /// and/or `--file` with Kafka's reassignment JSON. `--cancel` stops the
    /// named reassignments; `--list` shows those in progress.
    Reassign {
        /// `TOPIC:PARTITION=B1,B2,...` (with --cancel or --list: `TOPIC:PARTITION`).
        partitions: Vec<String>,
        /// `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}`.
        #[arg(long, short)]
        file: Option<String>,
        #[arg(long, conflicts_with = "list")]
        cancel: bool,
        #[arg(long)]
        list: bool,
    },
    /// Elect leaders: the preferred (first) replica, or with --unclean, for a
    /// partition without a leader, any live replica even outside the ISR (may
    /// lose data). Arguments: `TOPIC:PARTITION` or `TOPIC` (all its
    /// partitions); none means every partition.
    ElectLeaders {
        partitions: Vec<String>,
        #[arg(long)]
        unclean: bool,
    },
}

async fn cluster(cmd: ClusterCmd, bootstrap: &str) -> anyhow::Result<ExitCode> {
    use crate::cluster_cmd as cc;
    let mut c = Client::connect(bootstrap).await?;
    match cmd {
        ClusterCmd::Health => return cc::health(&mut c).await,
        ClusterCmd::Reassign { partitions, file, cancel, list } => return cc::reassign(&mut c, file, partitions, cancel, list).await,
        ClusterCmd::ElectLeaders { partitions, unclean } => return cc::elect_leaders(&mut c, unclean, partitions).await,
        ClusterCmd::Info => {
            let info = c.describe_cluster().await?;
            println!("cluster id: {}", info.cluster_id);
            match c.describe_quorum().await {
                Ok(q) => println!("active controller: {}", q.leader),
                Err(e) => println!("active controller: unknown ({e})"),
            }
            println!("{:>6}  {:<24} {:<12} STATE", "BROKER", "ADDRESS", "RACK");
            for b in &info.brokers {
                let state = if b.fenced { "fenced" } else { "live" };
                println!("{:>6}  {:<24} {:<12} {state}", b.id, format!("{}:{}", b.host, b.port), b.rack.as_deref().unwrap_or("-"));
            }
        }
        ClusterCmd::Quorum => {
            let q = c.describe_quorum().await?;
            println!("leader: {}", q.leader);
            println!("epoch: {}", q.epoch);
            println!("high watermark: {}", q.high_watermark);
            println!("{:>6}  {:>14} {:>8} LAST CONTACT", "VOTER", "LOG END OFFSET", "LAG");
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
            for v in &q.voters {
                let lag = if v.log_end_offset >= 0 { (q.high_watermark - v.log_end_offset).max(0).to_string() } else { "?".into() };
                let seen = if v.last_fetch_ms >= 0 { format!("{} ms ago", (now - v.last_fetch_ms).max(0)) } else { "-".into() };
                println!("{:>6}  {:>14} {:>8} {seen}", v.id, v.log_end_offset, lag);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn group(cmd: GroupCmd, bootstrap: &str) -> anyhow::Result<ExitCode> {
    use crate::group_cmd::{self as g, Target};
    let mut c = Client::connect(bootstrap).await?;
    match cmd {
        GroupCmd::List => g::list(&mut c).await?,
        GroupCmd::Describe { group } => g::describe(&mut c, &group).await?,
        GroupCmd::Delete { group } => g::delete(&mut c, &group).await?,
        GroupCmd::ResetOffsets { group, topic, to_earliest, to_latest, to_offset, to_datetime, shift_by, execute } => {
            let target = match (to_earliest, to_latest, to_offset, to_datetime, shift_by) {
                (true, ..) => Target::Earliest,
                (_, true, ..) => Target::Latest,
                (_, _, Some(o), ..) => Target::Offset(o),
                (_, _, _, Some(d), _) => Target::Datetime(g::parse_datetime(&d)?),
                (_, _, _, _, Some(n)) => Target::ShiftBy(n),
                _ => bail!("give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by"),
            };
            g::reset(&mut c, &group, &topic, target, execute).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn config(cmd: ConfigCmd, bootstrap: &str) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(bootstrap).await?;
    let source = |s: i8| match s {
        1 => "topic",
        2 | 3 => "dynamic broker",
        4 => "static broker",
        5 => "default",
        _ => "unknown",
    };
    match cmd {
        ConfigCmd::Get { topic, broker } => {
            let entries = match (topic, broker) {
                (Some(t), _) => c.describe_configs(2, &t).await?,
                (None, Some(b)) => c.describe_configs(4, &b.to_string()).await?,
                (None, None) => bail!("give --topic NAME or --broker ID"),
            };
            for (k, v, s) in entries {
                println!("{k}={}\t({})", v.unwrap_or_default(), source(s));
            }
        }
        ConfigCmd::Set { target, settings } => {
            let changes = settings.iter().map(|s| kv(s).map(|(k, v)| (k, Some(v)))).collect::<anyhow::Result<Vec<_>>>()?;
            let (kind, name) = target.resource();
            c.alter_configs(kind, &name, &changes).await?;
            println!("Updated {} setting(s).", changes.len());
        }
        ConfigCmd::Delete { target, keys } => {
            let changes: Vec<(String, Option<String>)> = keys.into_iter().map(|k| (k, None)).collect();
            let (kind, name) = target.resource();
            c.alter_configs(kind, &name, &changes).await?;
            println!("Removed {} setting(s).", changes.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn topic(cmd: TopicCmd, bootstrap: &str) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(bootstrap).await?;
    match cmd {
        TopicCmd::Create { name, partitions, replication_factor, configs, validate_only } => {
            let configs = configs.iter().map(|s| kv(s)).collect::<anyhow::Result<Vec<_>>>()?;
            let t = NewTopic { name: name.clone(), partitions, replication_factor, configs, assignments: Vec::new() };
            let id = c.create_topic(&t, validate_only).await?;
            if validate_only {
                println!("Topic {name} is valid (not created).");
            } else {
                println!("Created topic {name} (id {id}).");
            }
        }
        TopicCmd::List => {
            let (_, _, topics) = c.metadata(None, false).await?;
            let mut names: Vec<_> = topics.into_iter().map(|t| t.name).collect();
            names.sort();
            for n in names {
                println!("{n}");
            }
        }
        TopicCmd::Describe { name } => {
            let topics = match &name {
                Some(n) => c.describe_topics(Some(&[n.as_str()])).await?,
                None => c.describe_topics(None).await?,
            };
            for t in topics {
                if t.error != 0 {
                    bail!(strom_client::ClientError::broker(t.error, Some(format!("topic '{}'", t.name))));
                }
                let configs = c.describe_configs(2, &t.name).await?;
                let overrides: Vec<String> = configs
                    .iter()
                    .filter(|(_, _, src)| *src == 1)
                    .map(|(k, v, _)| format!("{k}={}", v.clone().unwrap_or_default()))
                    .collect();
                println!(
                    "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                    t.name,
                    t.id,
                    t.partitions.len(),
                    t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0),
                    overrides.join(",")
                );
                for p in &t.partitions {
                    // Offsets come from the partition's leader.
                    let mut leader = c.leader_for(&t.name, p.partition).await.ok().flatten();
                    let lc = leader.as_mut().unwrap_or(&mut c);
                    let end = lc.list_offset(&t.name, p.partition, -1).await.unwrap_or(-1);
                    let start = lc.list_offset(&t.name, p.partition, -2).await.unwrap_or(-1);
                    println!(
                        "\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tReplicas: {:?}\tIsr: {:?}\tOffline: {:?}\tStartOffset: {start}\tEndOffset: {end}",
                        p.partition, p.leader, p.leader_epoch, p.replicas, p.isr, p.offline
                    );
                }
            }
        }
        TopicCmd::Delete { name } => {
            c.delete_topic(&name).await?;
            println!("Deleted topic {name}.");
        }
        TopicCmd::Alter { name, partitions } => {
            c.create_partitions(&name, partitions).await?;
            println!("Topic {name} now has {partitions} partitions.");
        }
        TopicCmd::DeleteRecords { name, before, partition } => {
            let parts: Vec<i32> = match partition {
                Some(p) => vec![p],
                None => c.topic(&name, false).await?.partitions.iter().map(|p| p.partition).collect(),
            };
            for p in parts {
                let start = c.delete_records(&name, p, before).await?;
                println!("{name} [{p}] now starts at offset {start}.");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
async fn produce(
    bootstrap: &str,
    topic: &str,
    partition: Option<i32>,
    sep: Option<String>,
    headers: Vec<(String, String)>,
    acks: i16,
    codec: Codec,
    batch: usize,
) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(bootstrap).await?;
    let partitions = c.topic(topic, true).await?.partitions.len() as i32;
    let mut leaders = Leaders::default();
    let mut pending: std::collections::BTreeMap<i32, Vec<Record>> = Default::default();
    let mut round_robin = 0i32;
    let mut sent = 0u64;
    let stdin = std::io::stdin();
    let headers: Vec<(String, Option<Bytes>)> = headers.into_iter().map(|(k, v)| (k, Some(Bytes::from(v)))).collect();
    for line in stdin.lock().lines() {
        let line = line?;
        let (key, value) = match &sep {
            Some(s) => match line.split_once(s.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let p = match (partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => {
                round_robin = (round_robin + 1) % partitions.max(1);
                round_robin
            }
        };
        let rec = Record { key, value: Some(Bytes::from(value)), headers: headers.clone(), ..Default::default() };
        let q = pending.entry(p).or_default();
        q.push(rec);
        if q.len() >= batch {
            let recs = std::mem::take(q);
            sent += recs.len() as u64;
            leaders.produce(&mut c, topic, p, recs, acks, codec).await?;
        }
    }
    for (p, recs) in pending {
        if !recs.is_empty() {
            sent += recs.len() as u64;
            leaders.produce(&mut c, topic, p, recs, acks, codec).await?;
        }
    }
    eprintln!("produced {sent} messages to {topic}");
    Ok(ExitCode::SUCCESS)
}

/// Connections to partition leaders, for a CLI talking to a cluster.
#[derive(Default)]
struct Leaders {
    by_partition: std::collections::HashMap<i32, Client>,
}

impl Leaders {
    async fn produce(&mut self, boot: &mut Client, topic: &str, p: i32, recs: Vec<Record>, acks: i16, codec: Codec) -> anyhow::Result<i64> {
        for attempt in 0..3 {
            if let std::collections::hash_map::Entry::Vacant(e) = self.by_partition.entry(p) {
                if let Some(l) = boot.leader_for(topic, p).await? {
                    e.insert(l);
                }
            }
            let conn = match self.by_partition.get_mut(&p) {
                Some(l) => l,
                None => &mut *boot,
            };
            match conn.produce(topic, p, recs.clone(), acks, codec).await {
                Ok(o) => return Ok(o),
                Err(e) if attempt < 2 && (e.to_string().contains("NOT_LEADER") || e.to_string().contains("LEADER_NOT_AVAILABLE")) => {
                    self.by_partition.remove(&p);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::bail!("no leader for {topic}-{p}")
    }
}

async fn consume(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    offset: &str,
    count: Option<u64>,
    format: Format,
    timeout_ms: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let mut c = Client::connect(bootstrap).await?;
    c.topic(topic, false).await?;
    if let Some(leader) = c.leader_for(topic, partition).await? {
        c = leader;
    }
    let mut next = match offset {
        "beginning" | "earliest" => c.list_offset(topic, partition, -2).await?,
        "end" | "latest" => c.list_offset(topic, partition, -1).await?,
        n => n.parse::<i64>().with_context(|| format!("--offset takes beginning, end or a number, got '{n}'"))?,
    };
    let mut seen = 0u64;
    let mut idle_since = std::time::Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        if count.is_some_and(|n| seen >= n) {
            break;
        }
        if timeout_ms.is_some_and(|t| idle_since.elapsed() >= Duration::from_millis(t)) {
            break;
        }
        let wait = timeout_ms.map(|t| t.min(500)).unwrap_or(500);
        let r = c.fetch(topic, partition, next, Duration::from_millis(wait), 4 << 20).await?;
        if !r.records.is_empty() {
            idle_since = std::time::Instant::now();
        }
        for rec in r.records {
            if count.is_some_and(|n| seen >= n) {
                break;
            }
            print_record(&mut out, &rec, partition, format)?;
            seen += 1;
        }
        out.flush()?;
        next = r.next_offset;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn text(b: &Option<Bytes>) -> String {
    b.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn print_record(out: &mut impl Write, r: &Record, partition: i32, format: Format) -> std::io::Result<()> {
    match format {
        Format::Value => writeln!(out, "{}", text(&r.value)),
        Format::KeyValue => writeln!(out, "{}\t{}", text(&r.key), text(&r.value)),
        Format::Json => {
            let opt = |b: &Option<Bytes>| match b {
                None => serde_json::Value::Null,
                Some(v) => serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
            };
            let headers: serde_json::Map<String, serde_json::Value> = r.headers.iter().map(|(k, v)| (k.clone(), opt(v))).collect();
            let v = serde_json::json!({
                "partition": partition,
                "offset": r.offset,
                "timestamp": r.timestamp,
                "key": opt(&r.key),
                "value": opt(&r.value),
                "headers": headers,
            });
            writeln!(out, "{v}")
        }
    }
}
