//! Partitions hosted by this broker: the topic → log mapping, and the metadata
//! publisher's local effects.
//!
//! Topic and config changes go to the active controller, which commits them to
//! the metadata quorum. Every node, the proposer included, learns the result
//! from the published batch ([`Broker::publish`]): it opens or removes its
//! partition logs, pushes settings and moves coordinators. A crash in between
//! is repaired at start-up by [`Broker::sync_logs`], which makes the logs on
//! disk match the image.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::{MetadataDelta, MetadataImage, PartitionImage, TopicImage};
use strom_protocol::ErrorCode;
use strom_storage::{Log, LogConfig, StorageError};

use crate::partition::Partition;
use uuid::Uuid;

use crate::controller::{Answer, Failure, Request};
pub use crate::controller::{ConfigChange, CreatedTopic, NewTopic};
use crate::groups::OFFSETS_TOPIC;
use crate::server::Broker;

/// A topic creation that failed, with Kafka's code and a message.
#[derive(Debug, Clone)]
pub struct TopicError {
    pub code: ErrorCode,
    pub message: String,
}

impl TopicError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        TopicError { code, message: message.into() }
    }
}

/// Kafka's topic name rule: 1-249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return Err(format!("topic name is {} characters, the limit is 249", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("topic name '{name}' contains '{c}'; allowed are ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

impl Broker {
    pub fn log_config(&self, topic: &TopicImage) -> LogConfig {
        let get = |k: &str| self.config.topic_value(&topic.configs, k).map(|(v, _)| v).unwrap_or_default();
        let long = |k: &str, dflt: i64| get(k).parse::<i64>().unwrap_or(dflt);
        LogConfig {
            segment_bytes: long("segment.bytes", 1 << 30).max(1) as u64,
            segment_ms: long("segment.ms", i64::MAX),
            max_message_bytes: long("max.message.bytes", 1_048_588).max(0) as usize,
            index_interval_bytes: long("index.interval.bytes", 4096).max(1) as usize,
            flush_messages: long("flush.messages", i64::MAX).max(1),
            flush_ms: long("flush.ms", i64::MAX),
            retention_ms: long("retention.ms", 7 * 24 * 3_600_000),
            retention_bytes: long("retention.bytes", -1),
            delete_enabled: get("cleanup.policy").split(',').any(|p| p.trim() == "delete"),
            compact: get("cleanup.policy").split(',').any(|p| p.trim() == "compact"),
            min_cleanable_ratio: get("min.cleanable.dirty.ratio").parse().unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: long("message.timestamp.before.max.ms", i64::MAX),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms", i64::MAX),
            recompress: match get("compression.type").as_str() {
                "producer" | "" => None,
                other => strom_protocol::compression::Codec::parse(other),
            },
        }
    }

    /// The log of a partition this broker leads.
    pub fn partition_log(&self, topic: &str, partition: i32) -> Option<Arc<Log>> {
        self.logs.get(topic, partition)
    }

    /// Whether this node holds a replica of the partition.
    pub fn hosts(&self, p: &PartitionImage) -> bool {
        p.replicas.contains(&self.node_id)
    }

    /// The partition this broker leads, or Kafka's error: NOT_LEADER_OR_FOLLOWER
    /// when another broker leads it, LEADER_NOT_AVAILABLE when none does,
    /// UNKNOWN_TOPIC_OR_PARTITION when it does not exist.
    pub fn leader_partition(&self, image: &MetadataImage, topic: &str, partition: i32) -> Result<Arc<Partition>, ErrorCode> {
        let p = image.partition(topic, partition).ok_or(ErrorCode::UnknownTopicOrPartition)?;
        match self.replicas.get(topic, partition) {
            Some(part) if part.is_leader() => Ok(part),
            None if self.logs.is_offline(topic, partition) => Err(ErrorCode::KafkaStorageError),
            _ if p.leader < 0 => Err(ErrorCode::LeaderNotAvailable),
            _ => Err(ErrorCode::NotLeaderOrFollower),
        }
    }

    /// The log of a partition this broker leads, or Kafka's error (see [`Broker::leader_partition`]).
    pub fn leader_log(&self, image: &MetadataImage, topic: &str, partition: i32) -> Result<Arc<Log>, ErrorCode> {
        self.leader_partition(image, topic, partition).map(|p| p.log().clone())
    }

    /// The topic's effective `min.insync.replicas`.
    pub fn min_isr(&self, topic: &TopicImage) -> usize {
        self.config.topic_value(&topic.configs, "min.insync.replicas").and_then(|(v, _)| v.parse::<i64>().ok()).unwrap_or(1).max(1) as usize
    }

    /// Opens the log of a hosted replica and makes it leader or follower as `p` says.
    fn host(&self, t: &TopicImage, p: &PartitionImage, cfg: &LogConfig) -> Result<(), strom_storage::StorageError> {
        let log = self.logs.open_log(&t.name, p.partition, cfg.clone())?;
        let part = self.replicas.ensure(
            || Partition::new(&t.name, p.partition, t.id, log, self.node_id).with_wake(self.appended.clone()),
            &t.name,
            p.partition,
        );
        part.apply(p, self.min_isr(t), strom_storage::now_ms());
        Ok(())
    }

    /// Opens logs for every partition this node hosts in the image and removes
    /// logs of partitions it no longer hosts. A replica in an offline log
    /// directory is left out (it answers KAFKA_STORAGE_ERROR).
    pub fn sync_logs(&self) -> Result<(), strom_storage::StorageError> {
        let image = self.metadata.image();
        let mut work = Vec::new();
        for t in image.topics.values() {
            let cfg = Arc::new(self.log_config(t));
            work.extend(t.partitions.values().filter(|p| self.hosts(p)).map(|p| (t, p, cfg.clone())));
        }
        let first_error = std::sync::Mutex::new(None);
        par_each(&work, |(t, p, cfg)| match self.host(t, p, cfg) {
            Ok(()) => {}
            Err(StorageError::Offline | StorageError::Io(_)) if self.logs.is_offline(&t.name, p.partition) => {
                tracing::warn!(topic = %t.name, partition = p.partition, "replica is in an offline log directory");
            }
            Err(e) => {
                first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        self.logs.remove_stray_deletes();
        for (topic, p) in self.logs.on_disk() {
            let live = image.partition(&topic, p).is_some_and(|p| self.hosts(p));
            if !live {
                tracing::info!(topic = %topic, partition = p, "removing log of a partition this node no longer hosts");
                self.replicas.remove(&topic, p);
                let _ = self.logs.delete_log(&topic, p);
            }
        }
        Ok(())
    }

    /// At start-up with a log directory missing: the replicas this node hosts
    /// that no usable directory holds may have been in it. They count as
    /// offline (not recreated empty) until a restart finds them.
    pub(crate) fn note_lost_replicas(&self) {
        if !self.logs.missing_at_start() {
            return;
        }
        let image = self.metadata.image();
        let on_disk: std::collections::HashSet<(String, i32)> = self.logs.on_disk().into_iter().collect();
        let lost: Vec<(String, i32)> = image
            .topics
            .values()
            .flat_map(|t| t.partitions.values().filter(|p| self.hosts(p)).map(|p| (t.name.clone(), p.partition)))
            .filter(|tp| !on_disk.contains(tp))
            .collect();
        if !lost.is_empty() {
            tracing::warn!(replicas = lost.len(), "replicas found in no usable log directory: offline until the missing directory is back");
        }
        self.logs.mark_lost(lost);
    }

    /// Applies one published metadata batch on this node: opens the logs of new
    /// partitions before handlers can see them, publishes the image, then removes
    /// what is gone and pushes changed settings. Blocking: run it off the runtime.
    pub fn publish(&self, delta: &MetadataDelta, image: Arc<MetadataImage>) {
        let before = self.metadata.image();
        if delta.full {
            self.move_coordinators(&before, &image, None, true);
            self.metadata.set(image.clone());
            if let Err(e) = self.sync_logs() {
                tracing::error!(error = %e, "could not open logs after a metadata snapshot");
            }
            self.apply_dynamic_config();
            self.refresh_log_configs();
            self.move_coordinators(&before, &image, None, false);
            self.replicas.wake();
            return;
        }
        let mut work = Vec::new();
        for (name, parts) in &delta.changed_partitions {
            let Some(t) = image.topic(name) else { continue };
            let cfg = Arc::new(self.log_config(t));
            work.extend(parts.iter().filter_map(|p| t.partitions.get(p)).filter(|p| self.hosts(p)).map(|p| (t, p, cfg.clone())));
        }
        par_each(&work, |(t, p, cfg)| match self.host(t, p, cfg) {
            Ok(()) => {}
            Err(StorageError::Offline) => {
                tracing::debug!(topic = %t.name, partition = p.partition, "replica is in an offline log directory")
            }
            Err(e) => tracing::error!(topic = %t.name, partition = p.partition, error = %e, "cannot open partition log"),
        });
        // Groups of partitions this node now leads load before FindCoordinator can name it.
        self.move_coordinators(&before, &image, Some(delta), true);
        self.metadata.set(image.clone());
        for t in &delta.removed_topics {
            for p in t.partitions.keys() {
                self.replicas.remove(&t.name, *p);
                if let Err(e) = self.logs.delete_log(&t.name, *p) {
                    tracing::warn!(topic = %t.name, partition = p, error = %e, "could not remove log; removed at next start");
                }
            }
            self.sessions.forget_topic(&t.name);
            tracing::info!(topic = %t.name, "deleted topic");
        }
        for (name, parts) in &delta.changed_partitions {
            let Some(t) = image.topic(name) else { continue };
            for p in parts.iter().filter_map(|p| t.partitions.get(p)) {
                if !self.hosts(p) && self.logs.get(name, p.partition).is_some() {
                    tracing::info!(topic = %name, partition = p.partition, "no longer a replica; removing the log");
                    self.replicas.remove(name, p.partition);
                    let _ = self.logs.delete_log(name, p.partition);
                }
            }
            if !before.topics.contains_key(name) {
                tracing::info!(topic = %name, partitions = t.partitions.len(), id = %t.id, "created topic");
            }
        }
        for name in &delta.changed_configs {
            if let Some(t) = image.topic(name) {
                self.apply_log_config(t);
                let now = strom_storage::now_ms();
                for p in t.partitions.values().filter(|p| self.hosts(p)) {
                    if let Some(part) = self.replicas.get(&t.name, p.partition) {
                        part.apply(p, self.min_isr(t), now);
                    }
                }
            }
        }
        if delta.broker_configs_changed {
            self.apply_dynamic_config();
            self.refresh_log_configs();
        }
        self.move_coordinators(&before, &image, Some(delta), false);
        self.replicas.wake();
    }

    /// Loads the group coordinators of the `__consumer_offsets` partitions this
    /// node leads in `image` (`gain`), or unloads those it no longer leads; the
    /// same for the transaction coordinators of `__transaction_state`.
    fn move_coordinators(&self, before: &MetadataImage, image: &MetadataImage, delta: Option<&MetadataDelta>, gain: bool) {
        let txn_touched = delta.is_none_or(|d| {
            d.changed_partitions.contains_key(crate::txns::TXN_TOPIC) || d.removed_topics.iter().any(|t| t.name == crate::txns::TXN_TOPIC)
        });
        if txn_touched {
            self.move_txn_coordinators(image, gain);
        }
        if let Some(d) = delta {
            let touched = d.changed_partitions.contains_key(OFFSETS_TOPIC) || d.removed_topics.iter().any(|t| t.name == OFFSETS_TOPIC);
            if !touched {
                return;
            }
        }
        let leads = |img: &MetadataImage, p: i32| img.partition(OFFSETS_TOPIC, p).is_some_and(|p| p.leader == self.node_id);
        let count = image.topic(OFFSETS_TOPIC).map(|t| t.partitions.len()).max(before.topic(OFFSETS_TOPIC).map(|t| t.partitions.len()));
        for p in 0..count.unwrap_or(0) as i32 {
            let now = leads(image, p);
            if gain && now && !self.groups.owns(p) {
                self.groups.load_partition(self, p);
            } else if !gain && !now && self.groups.owns(p) {
                self.groups.unload_partition(p);
            }
        }
    }

    /// At start-up: load the coordinators of the offsets partitions this node leads.
    pub fn load_coordinators(&self) {
        let image = self.metadata.image();
        self.move_coordinators(&MetadataImage::default(), &image, None, true);
    }

    /// Sends a request to the active controller and waits until this node has
    /// applied its records, so the caller reads its own writes.
    pub(crate) async fn ask_controller(&self, req: Request) -> Result<Answer, Failure> {
        let timeout = self.controller.request_timeout.max(Duration::from_secs(5));
        let reply = self.controller.call(req, timeout).await?;
        if reply.offset > 0 && !self.metadata.wait_for(reply.offset, timeout).await {
            tracing::warn!(offset = reply.offset, "committed metadata not applied here in time");
        }
        Ok(reply.answer)
    }

    /// CreateTopics through the controller: one result per topic, in order.
    pub async fn create_topics(&self, topics: Vec<NewTopic>, validate_only: bool) -> Vec<Result<CreatedTopic, TopicError>> {
        let n = topics.len();
        match self.ask_controller(Request::CreateTopics { topics, validate_only }).await {
            Ok(Answer::CreateTopics(v)) if v.len() == n => v
                .into_iter()
                .map(|r| {
                    if let Ok(CreatedTopic { note: Some(note), .. }) = &r {
                        tracing::warn!("{note}");
                    }
                    r.map_err(TopicError::from)
                })
                .collect(),
            Ok(_) => vec![Err(TopicError::new(ErrorCode::UnknownServerError, "unexpected controller answer")); n],
            Err(f) => vec![Err(f.into()); n],
        }
    }

    /// Creates a topic with broker defaults because a client asked for it.
    pub async fn auto_create(&self, name: &str) -> Result<Arc<TopicImage>, TopicError> {
        let t = NewTopic {
            name: name.to_string(),
            partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        let result = self
            .create_topics(vec![t], false)
            .await
            .pop()
            .unwrap_or_else(|| Err(TopicError::new(ErrorCode::UnknownServerError, "no answer")));
        match result {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.metadata.image().topic(name).cloned().ok_or_else(|| TopicError::new(ErrorCode::LeaderNotAvailable, "topic is being created"))
    }

    /// DeleteTopics through the controller.
    pub async fn delete_topic(&self, id: Uuid) -> Result<(), TopicError> {
        match self.ask_controller(Request::DeleteTopics { ids: vec![id] }).await {
            Ok(Answer::DeleteTopics(mut v)) if v.len() == 1 => v.remove(0).map_err(TopicError::from),
            Ok(_) => Err(TopicError::new(ErrorCode::UnknownServerError, "unexpected controller answer")),
            Err(f) => Err(f.into()),
        }
    }

    async fn done(&self, req: Request) -> Result<(), TopicError> {
        match self.ask_controller(req).await {
            Ok(Answer::Done(r)) => r.map_err(TopicError::from),
            Ok(_) => Err(TopicError::new(ErrorCode::UnknownServerError, "unexpected controller answer")),
            Err(f) => Err(f.into()),
        }
    }

    /// Creates `__consumer_offsets` (compacted, `offsets.topic.num.partitions`,
    /// `offsets.topic.replication.factor`) if it does not exist yet, as Kafka
    /// does on the first group request. True once it exists here.
    pub async fn ensure_offsets_topic(&self) -> bool {
        if self.metadata.image().topic(OFFSETS_TOPIC).is_some() {
            return true;
        }
        let t = NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions: self.config.int("offsets.topic.num.partitions").max(1) as i32,
            replication_factor: -1,
            assignments: BTreeMap::new(),
            configs: [("cleanup.policy".to_string(), "compact".to_string()), ("segment.bytes".to_string(), "104857600".to_string())].into(),
        };
        match self.create_topics(vec![t], false).await.pop() {
            Some(Ok(_)) => true,
            Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => self.metadata.image().topic(OFFSETS_TOPIC).is_some(),
            Some(Err(e)) => {
                tracing::warn!(error = %e.message, "cannot create __consumer_offsets");
                false
            }
            None => false,
        }
    }

    /// CreatePartitions: grows a topic to `count` partitions (never shrinks).
    pub async fn add_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        self.done(Request::CreatePartitions { topic: name.to_string(), count, assignments, validate_only }).await
    }

    /// Topic config changes, validated and committed by the controller; every
    /// node's publisher hands the new settings to its logs.
    pub async fn alter_topic_configs(&self, name: &str, changes: Vec<ConfigChange>, validate_only: bool) -> Result<(), TopicError> {
        self.done(Request::AlterTopicConfigs { topic: name.to_string(), changes, validate_only }).await
    }

    /// Dynamic broker settings for one node (`Some(id)`) or the cluster default (`None`).
    pub async fn alter_broker_configs(&self, node: Option<i32>, changes: Vec<ConfigChange>, validate_only: bool) -> Result<(), TopicError> {
        self.done(Request::AlterBrokerConfigs { node, changes, validate_only }).await
    }
}

impl From<Failure> for TopicError {
    fn from(f: Failure) -> Self {
        TopicError { code: f.error_code(), message: f.message }
    }
}

impl Broker {
    /// Loads the dynamic broker settings of the current image into the config.
    pub fn apply_dynamic_config(&self) {
        let image = self.metadata.image();
        let node = image.broker_configs.get(&Some(self.node_id)).cloned().unwrap_or_default();
        let default = image.broker_configs.get(&None).cloned().unwrap_or_default();
        self.config.set_dynamic(node, default);
    }

    /// Re-derives every open log's settings (after a broker default changed).
    pub fn refresh_log_configs(&self) {
        let image = self.metadata.image();
        for t in image.topics.values() {
            self.apply_log_config(t);
        }
    }

    /// Hands a topic's current settings to its open partition logs.
    fn apply_log_config(&self, t: &TopicImage) {
        let cfg = self.log_config(t);
        for p in t.partitions.keys() {
            self.logs.set_config(&t.name, *p, cfg.clone());
        }
    }
}

/// Runs `f` on every item, on a few threads when there are many: opening
/// thousands of logs (at start-up, or for a large new topic) is mostly
/// waiting on the file system, which several threads overlap.
fn par_each<T: Sync>(items: &[T], f: impl Fn(&T) + Sync) {
    const PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8) * 2;
    let threads = threads.min(items.len().div_ceil(PER_THREAD));
    if threads <= 1 {
        items.iter().for_each(f);
        return;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let at = next.fetch_add(64, std::sync::atomic::Ordering::Relaxed);
                if at >= items.len() {
                    break;
                }
                items[at..(at + 64).min(items.len())].iter().for_each(&f);
            });
        }
    });
}
