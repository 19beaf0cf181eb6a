//! Partitions hosted by this broker: topic lifecycle and the topic → log mapping.
//!
//! Topic creation and deletion are metadata records first (committed to the
//! metadata log), then local effects (opening or removing partition logs). A
//! crash between the two is repaired at start-up by [`Broker::sync_logs`], which
//! makes the logs on disk match the image.

use std::collections::BTreeMap;
use std::sync::Arc;

use strom_metadata::{MetadataImage, MetadataRecord, TopicImage};
use strom_protocol::ErrorCode;
use strom_storage::{Log, LogConfig};
use uuid::Uuid;

use crate::config::{check_topic_config, ConfigError};
use crate::server::Broker;

/// A topic creation that failed, with Kafka's code and a message.
#[derive(Debug, Clone)]
pub struct TopicError {
    pub code: ErrorCode,
    pub message: String,
}

impl TopicError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        TopicError { code, message: message.into() }
    }
}

pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub assignments: BTreeMap<i32, Vec<i32>>,
    pub configs: BTreeMap<String, String>,
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

    /// Opens logs for every partition in the image and removes logs of topics
    /// that no longer exist.
    pub fn sync_logs(&self) -> Result<(), strom_storage::StorageError> {
        let image = self.metadata.image();
        for t in image.topics.values() {
            let cfg = self.log_config(t);
            for p in t.partitions.keys() {
                self.logs.open_log(&t.name, *p, cfg.clone())?;
            }
        }
        self.logs.remove_stray_deletes();
        if let Ok(rd) = std::fs::read_dir(self.logs.dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !e.path().is_dir() || name.starts_with("__cluster_metadata") {
                    continue;
                }
                let Some((topic, p)) = name.rsplit_once('-') else {
                    continue;
                };
                let Ok(p) = p.parse::<i32>() else { continue };
                let live = image.topic(topic).is_some_and(|t| t.partitions.contains_key(&p));
                if !live {
                    tracing::info!(dir = %name, "removing log of a deleted topic");
                    let _ = self.logs.delete_log(topic, p);
                }
            }
        }
        Ok(())
    }

    /// Checks a creation request without changing anything.
    pub fn check_new_topic(&self, image: &MetadataImage, t: &NewTopic) -> Result<(), TopicError> {
        validate_topic_name(&t.name).map_err(|m| TopicError::new(ErrorCode::InvalidTopicException, m))?;
        if image.topic(&t.name).is_some() {
            return Err(TopicError::new(ErrorCode::TopicAlreadyExists, format!("Topic '{}' already exists.", t.name)));
        }
        let norm = t.name.replace('.', "_");
        if let Some(other) = image.topics.keys().find(|n| n.replace('.', "_") == norm) {
            return Err(TopicError::new(
                ErrorCode::InvalidTopicException,
                format!("Topic '{}' collides with existing topic: {other}", t.name),
            ));
        }
        let brokers = 1;
        if !t.assignments.is_empty() {
            if t.partitions != -1 || t.replication_factor != -1 {
                return Err(TopicError::new(
                    ErrorCode::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set.",
                ));
            }
            for (i, (p, replicas)) in t.assignments.iter().enumerate() {
                if *p != i as i32 {
                    return Err(TopicError::new(ErrorCode::InvalidReplicaAssignment, "partitions must be numbered 0..n-1"));
                }
                if replicas.is_empty() || replicas.iter().any(|&b| b != self.node_id) {
                    return Err(TopicError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        format!("replica assignment {replicas:?} names brokers that do not exist"),
                    ));
                }
                if replicas.len() > brokers {
                    return Err(TopicError::new(ErrorCode::InvalidReplicationFactor, "replicas repeat a broker"));
                }
            }
        } else {
            if t.partitions == 0 || t.partitions < -1 {
                return Err(TopicError::new(ErrorCode::InvalidPartitions, "Number of partitions must be larger than 0."));
            }
            if t.replication_factor == 0 || t.replication_factor < -1 {
                return Err(TopicError::new(ErrorCode::InvalidReplicationFactor, "Replication factor must be larger than 0."));
            }
            let rf = if t.replication_factor == -1 { self.config.int("default.replication.factor") } else { t.replication_factor as i64 };
            if rf > brokers as i64 {
                return Err(TopicError::new(
                    ErrorCode::InvalidReplicationFactor,
                    format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {brokers} broker(s) are registered."),
                ));
            }
        }
        for (k, v) in &t.configs {
            check_topic_config(k, v).map_err(|e| invalid_config(k, e))?;
        }
        Ok(())
    }

    /// Creates a topic: commits its records, then opens its logs.
    pub fn create_topic(&self, t: &NewTopic) -> Result<Arc<TopicImage>, TopicError> {
        let _guard = self.topic_lock.lock().unwrap_or_else(|p| p.into_inner());
        let image = self.metadata.image();
        self.check_new_topic(&image, t)?;
        let id = Uuid::new_v4();
        let count = if t.assignments.is_empty() {
            if t.partitions == -1 {
                self.config.int("num.partitions") as i32
            } else {
                t.partitions
            }
        } else {
            t.assignments.len() as i32
        };
        let mut records = vec![MetadataRecord::Topic { name: t.name.clone(), id }];
        for (k, v) in &t.configs {
            records.push(MetadataRecord::TopicConfig { topic_id: id, key: k.clone(), value: Some(v.clone()) });
        }
        for p in 0..count {
            records.push(MetadataRecord::Partition {
                topic_id: id,
                partition: p,
                replicas: vec![self.node_id],
                leader: self.node_id,
                leader_epoch: 0,
                isr: vec![self.node_id],
                partition_epoch: 0,
            });
        }
        let image = self.metadata.commit(records).map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        let topic = image.topic(&t.name).cloned().ok_or_else(|| TopicError::new(ErrorCode::UnknownServerError, "topic vanished"))?;
        let cfg = self.log_config(&topic);
        for p in topic.partitions.keys() {
            self.logs.open_log(&topic.name, *p, cfg.clone()).map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        }
        tracing::info!(topic = %t.name, partitions = count, %id, "created topic");
        Ok(topic)
    }

    /// Creates a topic with broker defaults because a client asked for it.
    pub fn auto_create(&self, name: &str) -> Result<Arc<TopicImage>, TopicError> {
        let t = NewTopic {
            name: name.to_string(),
            partitions: -1,
            replication_factor: -1,
            assignments: BTreeMap::new(),
            configs: BTreeMap::new(),
        };
        match self.create_topic(&t) {
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => self.metadata.image().topic(name).cloned().ok_or(e),
            other => other,
        }
    }

    /// Deletes a topic: commits the removal, then deletes its logs.
    pub fn delete_topic(&self, id: Uuid) -> Result<(), TopicError> {
        let _guard = self.topic_lock.lock().unwrap_or_else(|p| p.into_inner());
        let image = self.metadata.image();
        let topic = image.topic_by_id(&id).cloned().ok_or_else(|| TopicError::new(ErrorCode::UnknownTopicId, "unknown topic id"))?;
        self.metadata
            .commit(vec![MetadataRecord::RemoveTopic { id }])
            .map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        for p in topic.partitions.keys() {
            if let Err(e) = self.logs.delete_log(&topic.name, *p) {
                tracing::warn!(topic = %topic.name, partition = p, error = %e, "could not remove log; removed at next start");
            }
        }
        self.sessions.forget_topic(&topic.name);
        tracing::info!(topic = %topic.name, %id, "deleted topic");
        Ok(())
    }
}

/// A topic config change: set a value, or remove the override (`None`).
pub type ConfigChange = (String, Option<String>);

impl Broker {
    /// CreatePartitions: grows a topic to `count` partitions (never shrinks).
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.topic_lock.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self.existing_topic(name)?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            let msg = if count == current {
                format!("Topic already has {current} partitions.")
            } else {
                format!("Topic currently has {current} partitions, which is higher than the requested {count}.")
            };
            return Err(TopicError::new(ErrorCode::InvalidPartitions, msg));
        }
        if let Some(a) = &assignments {
            if a.len() as i32 != count - current {
                return Err(TopicError::new(
                    ErrorCode::InvalidReplicaAssignment,
                    format!("Increasing the number of partitions by {} but {} assignments provided.", count - current, a.len()),
                ));
            }
            if a.iter().any(|r| r.is_empty() || r.iter().any(|&b| b != self.node_id)) {
                return Err(TopicError::new(ErrorCode::InvalidReplicaAssignment, "The assignment names brokers that do not exist."));
            }
        }
        if validate_only {
            return Ok(());
        }
        let records = (current..count)
            .map(|p| MetadataRecord::Partition {
                topic_id: topic.id,
                partition: p,
                replicas: vec![self.node_id],
                leader: self.node_id,
                leader_epoch: 0,
                isr: vec![self.node_id],
                partition_epoch: 0,
            })
            .collect();
        let image = self.metadata.commit(records).map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        if let Some(t) = image.topic(name) {
            let cfg = self.log_config(t);
            for p in current..count {
                self.logs.open_log(name, p, cfg.clone()).map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
            }
        }
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Applies topic config changes: validates every one, commits them, and
    /// hands the new settings to the topic's open logs so they apply at once.
    pub fn alter_topic_configs(&self, name: &str, changes: Vec<ConfigChange>, validate_only: bool) -> Result<(), TopicError> {
        let _guard = self.topic_lock.lock().unwrap_or_else(|p| p.into_inner());
        let topic = self.existing_topic(name)?;
        for (k, v) in &changes {
            let check = match v {
                Some(v) => check_topic_config(k, v),
                None => check_topic_config(k, &self.config.topic_value(&BTreeMap::new(), k).map(|(d, _)| d).unwrap_or_default()),
            };
            check.map_err(|e| invalid_config(k, e))?;
        }
        if validate_only || changes.is_empty() {
            return Ok(());
        }
        let records = changes.into_iter().map(|(key, value)| MetadataRecord::TopicConfig { topic_id: topic.id, key, value }).collect();
        let image = self.metadata.commit(records).map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        if let Some(t) = image.topic(name) {
            self.apply_log_config(t);
        }
        tracing::info!(topic = name, "topic configuration changed");
        Ok(())
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
            if let Some(log) = self.logs.get(&t.name, *p) {
                log.set_config(cfg.clone());
            }
        }
    }

    /// The topic named, or UNKNOWN_TOPIC_OR_PARTITION.
    fn existing_topic(&self, name: &str) -> Result<Arc<TopicImage>, TopicError> {
        self.metadata
            .image()
            .topic(name)
            .cloned()
            .ok_or_else(|| TopicError::new(ErrorCode::UnknownTopicOrPartition, format!("The topic '{name}' does not exist.")))
    }

    /// Changes dynamic broker settings for one node (`Some(id)`) or the cluster
    /// default (`None`): validated, committed to the metadata log, applied at once.
    pub fn alter_broker_configs(&self, node: Option<i32>, changes: Vec<ConfigChange>, validate_only: bool) -> Result<(), TopicError> {
        for (k, v) in &changes {
            let def = crate::config::BROKER_DEFS
                .iter()
                .find(|d| d.name == k)
                .ok_or_else(|| TopicError::new(ErrorCode::InvalidConfig, format!("Unknown broker config name: {k}")))?;
            if !crate::config::is_dynamic(k) {
                return Err(TopicError::new(ErrorCode::InvalidRequest, format!("Cannot update these configs dynamically: {k}")));
            }
            if let Some(v) = v {
                crate::config::check_value(k, def.kind, v).map_err(|e| TopicError::new(ErrorCode::InvalidConfig, e.to_string()))?;
            }
        }
        if validate_only || changes.is_empty() {
            return Ok(());
        }
        let records = changes.into_iter().map(|(key, value)| MetadataRecord::BrokerConfig { node, key, value }).collect();
        self.metadata.commit(records).map_err(|e| TopicError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        self.apply_dynamic_config();
        self.refresh_log_configs();
        tracing::info!(?node, "dynamic broker configuration changed");
        Ok(())
    }
}

/// A topic-config validation failure as Kafka reports it: INVALID_CONFIG.
fn invalid_config(key: &str, e: ConfigError) -> TopicError {
    match e {
        ConfigError::Unknown(_) => TopicError::new(ErrorCode::InvalidConfig, format!("Unknown topic config name: {key}")),
        other => TopicError::new(ErrorCode::InvalidConfig, other.to_string()),
    }
}
