//! Metadata records and the immutable image they build.
//!
//! A record is one change; [`MetadataImage::apply`] folds records into the next
//! image and [`MetadataDelta`] says what changed, for publishers. Records carry
//! whole states (a partition record names its replicas, leader, epoch and ISR),
//! so applying one twice is harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// Written once, by the first quorum leader.
    ClusterId {
        id: String,
    },
    Topic {
        name: String,
        id: Uuid,
    },
    /// The whole state of one partition (created or changed).
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        /// In-sync replicas. Empty in records written before clusters existed: then all replicas.
        #[serde(default)]
        isr: Vec<i32>,
        /// Bumped on every change of the partition (leader, ISR, replicas).
        #[serde(default)]
        partition_epoch: i32,
        /// During a reassignment: replicas joining (in `replicas`, not in the target yet caught up).
        /// Absent in records written before reassignments existed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        /// During a reassignment: replicas leaving once every adding replica is in the ISR.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
    },
    /// `value: None` removes the override.
    TopicConfig {
        topic_id: Uuid,
        key: String,
        value: Option<String>,
    },
    RemoveTopic {
        id: Uuid,
    },
    /// Reserves producer ids below `next`.
    ProducerIds {
        next: i64,
    },
    /// A dynamic broker setting for one node, or (`node: None`) the cluster default.
    /// `value: None` removes it.
    BrokerConfig {
        node: Option<i32>,
        key: String,
        value: Option<String>,
    },
    /// A broker (re)registered. It starts fenced.
    RegisterBroker {
        id: i32,
        epoch: i64,
        incarnation: Uuid,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// A broker was fenced (stopped heartbeating, or shut down) or unfenced.
    BrokerFence {
        id: i32,
        epoch: i64,
        fenced: bool,
    },
    /// A broker started a controlled shutdown: it leads nothing from now on.
    BrokerShuttingDown {
        id: i32,
        epoch: i64,
    },
    /// The records of a pre-quorum `metadata.log` were imported.
    Imported,
    /// The replicas (topic id, partition) of a broker whose log directory is
    /// offline, as its heartbeats report them (the whole set: it replaces the
    /// last one). A new registration starts with none.
    BrokerReplicasOffline {
        id: i32,
        epoch: i64,
        replicas: Vec<(Uuid, i32)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    /// -1: no leader (every replica is offline).
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
    /// A reassignment in progress: `replicas` is the target followed by the replicas that leave;
    /// these join (not in the original replicas) ...
    pub adding_replicas: Vec<i32>,
    /// ... and these leave (not in the target) once every adding replica is in sync.
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas a reassignment in progress leads to (all replicas when there is none).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas.iter().copied().filter(|r| !self.removing_replicas.contains(r)).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    pub id: i32,
    pub epoch: i64,
    pub incarnation: Uuid,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    pub fenced: bool,
    pub shutting_down: bool,
    /// Replicas on this broker that are in an offline log directory: they can
    /// neither lead nor be in sync.
    pub offline_replicas: std::collections::BTreeSet<(Uuid, i32)>,
}

impl BrokerImage {
    /// Can lead partitions and appears in client Metadata.
    pub fn is_live(&self) -> bool {
        !self.fenced && !self.shutting_down
    }
}

#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    pub cluster_id: Option<String>,
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub topic_names: BTreeMap<Uuid, String>,
    pub next_producer_id: i64,
    /// Dynamic broker settings: (node or None for the cluster default) → key → value.
    pub broker_configs: BTreeMap<Option<i32>, BTreeMap<String, String>>,
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// The epoch the next registering broker gets.
    pub next_broker_epoch: i64,
    pub imported: bool,
    /// Number of records applied so far.
    pub records: u64,
    /// The metadata log offset (Raft log index) this image reflects.
    pub offset: u64,
}

/// What a batch of records changed, for publishers.
#[derive(Debug, Clone, Default)]
pub struct MetadataDelta {
    /// Topics created, or whose partitions changed (by name, in the new image).
    pub changed_partitions: BTreeMap<String, BTreeSet<i32>>,
    /// Topics whose configs changed.
    pub changed_configs: BTreeSet<String>,
    /// Topics removed, with the image they had.
    pub removed_topics: Vec<Arc<TopicImage>>,
    pub brokers_changed: bool,
    pub broker_configs_changed: bool,
    /// The whole image was replaced (snapshot): publishers reconcile everything.
    pub full: bool,
}

impl MetadataDelta {
    pub fn is_empty(&self) -> bool {
        self.changed_partitions.is_empty()
            && self.changed_configs.is_empty()
            && self.removed_topics.is_empty()
            && !self.brokers_changed
            && !self.broker_configs_changed
            && !self.full
    }
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics.get(topic).and_then(|t| t.partitions.get(&partition))
    }

    /// Brokers that are registered, unfenced and not shutting down.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerImage> {
        self.brokers.values().filter(|b| b.is_live())
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(BrokerImage::is_live)
    }

    /// Whether broker `id` is live and its replica of the partition is not in
    /// an offline log directory.
    pub fn can_lead(&self, id: i32, topic_id: Uuid, partition: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| b.is_live() && !b.offline_replicas.contains(&(topic_id, partition)))
    }

    /// Whether broker `id` reports its replica of the partition offline.
    pub fn is_replica_offline(&self, id: i32, topic_id: Uuid, partition: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| b.offline_replicas.contains(&(topic_id, partition)))
    }

    /// Builds the next image. Topics no record touches are shared with `self`.
    pub fn apply(&self, records: &[MetadataRecord]) -> MetadataImage {
        self.apply_with_delta(records).0
    }

    /// Builds the next image and says what changed.
    pub fn apply_with_delta(&self, records: &[MetadataRecord]) -> (MetadataImage, MetadataDelta) {
        let mut next = self.clone();
        let mut delta = MetadataDelta::default();
        for r in records {
            next.replay(r, &mut delta);
        }
        (next, delta)
    }

    /// Records that rebuild this image from an empty one (a snapshot).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if let Some(id) = &self.cluster_id {
            out.push(MetadataRecord::ClusterId { id: id.clone() });
        }
        if self.imported {
            out.push(MetadataRecord::Imported);
        }
        out.push(MetadataRecord::ProducerIds { next: self.next_producer_id });
        for (node, kvs) in &self.broker_configs {
            for (k, v) in kvs {
                out.push(MetadataRecord::BrokerConfig { node: *node, key: k.clone(), value: Some(v.clone()) });
            }
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                id: b.id,
                epoch: b.epoch,
                incarnation: b.incarnation,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
            });
            out.push(MetadataRecord::BrokerFence { id: b.id, epoch: b.epoch, fenced: b.fenced });
            if b.shutting_down {
                out.push(MetadataRecord::BrokerShuttingDown { id: b.id, epoch: b.epoch });
            }
            if !b.offline_replicas.is_empty() {
                out.push(MetadataRecord::BrokerReplicasOffline {
                    id: b.id,
                    epoch: b.epoch,
                    replicas: b.offline_replicas.iter().copied().collect(),
                });
            }
        }
        for t in self.topics.values() {
            out.push(MetadataRecord::Topic { name: t.name.clone(), id: t.id });
            for (k, v) in &t.configs {
                out.push(MetadataRecord::TopicConfig { topic_id: t.id, key: k.clone(), value: Some(v.clone()) });
            }
            for p in t.partitions.values() {
                out.push(p.to_record(t.id));
            }
        }
        out
    }

    fn touch(&mut self, id: &Uuid) -> Option<&mut TopicImage> {
        let name = self.topic_names.get(id)?.clone();
        self.topics.get_mut(&name).map(Arc::make_mut)
    }

    fn replay(&mut self, r: &MetadataRecord, delta: &mut MetadataDelta) {
        self.records += 1;
        match r {
            MetadataRecord::ClusterId { id } => {
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(id.clone());
                }
            }
            MetadataRecord::Imported => self.imported = true,
            MetadataRecord::Topic { name, id } => {
                if self.topic_names.get(id) == Some(name) {
                    return;
                }
                self.topic_names.insert(*id, name.clone());
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage { name: name.clone(), id: *id, partitions: BTreeMap::new(), configs: BTreeMap::new() }),
                );
                delta.changed_partitions.entry(name.clone()).or_default();
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                leader,
                leader_epoch,
                isr,
                partition_epoch,
                adding_replicas,
                removing_replicas,
            } => {
                if let Some(t) = self.touch(topic_id) {
                    let isr = if isr.is_empty() { replicas.clone() } else { isr.clone() };
                    t.partitions.insert(
                        *partition,
                        PartitionImage {
                            partition: *partition,
                            replicas: replicas.clone(),
                            leader: *leader,
                            leader_epoch: *leader_epoch,
                            isr,
                            partition_epoch: *partition_epoch,
                            adding_replicas: adding_replicas.clone(),
                            removing_replicas: removing_replicas.clone(),
                        },
                    );
                    let name = t.name.clone();
                    delta.changed_partitions.entry(name).or_default().insert(*partition);
                }
            }
            MetadataRecord::TopicConfig { topic_id, key, value } => {
                if let Some(t) = self.touch(topic_id) {
                    match value {
                        Some(v) => t.configs.insert(key.clone(), v.clone()),
                        None => t.configs.remove(key),
                    };
                    delta.changed_configs.insert(t.name.clone());
                }
            }
            MetadataRecord::RemoveTopic { id } => {
                if let Some(name) = self.topic_names.remove(id) {
                    if let Some(t) = self.topics.remove(&name) {
                        delta.changed_partitions.remove(&name);
                        delta.changed_configs.remove(&name);
                        delta.removed_topics.push(t);
                    }
                }
            }
            MetadataRecord::ProducerIds { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
            MetadataRecord::BrokerConfig { node, key, value } => {
                let scope = self.broker_configs.entry(*node).or_default();
                match value {
                    Some(v) => scope.insert(key.clone(), v.clone()),
                    None => scope.remove(key),
                };
                delta.broker_configs_changed = true;
            }
            MetadataRecord::RegisterBroker { id, epoch, incarnation, host, port, rack } => {
                self.brokers.insert(
                    *id,
                    BrokerImage {
                        id: *id,
                        epoch: *epoch,
                        incarnation: *incarnation,
                        host: host.clone(),
                        port: *port,
                        rack: rack.clone(),
                        fenced: true,
                        shutting_down: false,
                        offline_replicas: Default::default(),
                    },
                );
                self.next_broker_epoch = self.next_broker_epoch.max(epoch + 1);
                delta.brokers_changed = true;
            }
            MetadataRecord::BrokerFence { id, epoch, fenced } => {
                if let Some(b) = self.brokers.get_mut(id).filter(|b| b.epoch == *epoch) {
                    b.fenced = *fenced;
                    if !*fenced {
                        b.shutting_down = false;
                    }
                    delta.brokers_changed = true;
                }
            }
            MetadataRecord::BrokerShuttingDown { id, epoch } => {
                if let Some(b) = self.brokers.get_mut(id).filter(|b| b.epoch == *epoch) {
                    b.shutting_down = true;
                    delta.brokers_changed = true;
                }
            }
            MetadataRecord::BrokerReplicasOffline { id, epoch, replicas } => {
                if let Some(b) = self.brokers.get_mut(id).filter(|b| b.epoch == *epoch) {
                    b.offline_replicas = replicas.iter().copied().collect();
                    delta.brokers_changed = true;
                }
            }
        }
    }
}

impl PartitionImage {
    pub fn to_record(&self, topic_id: Uuid) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition: self.partition,
            replicas: self.replicas.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            isr: self.isr.clone(),
            partition_epoch: self.partition_epoch,
            adding_replicas: self.adding_replicas.clone(),
            removing_replicas: self.removing_replicas.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_shares_untouched_topics() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let img = MetadataImage::default()
            .apply(&[MetadataRecord::Topic { name: "a".into(), id: a }, MetadataRecord::Topic { name: "b".into(), id: b }]);
        let (next, delta) = img.apply_with_delta(&[MetadataRecord::TopicConfig { topic_id: b, key: "k".into(), value: Some("v".into()) }]);
        assert!(Arc::ptr_eq(&img.topics["a"], &next.topics["a"]));
        assert!(!Arc::ptr_eq(&img.topics["b"], &next.topics["b"]));
        assert!(delta.changed_configs.contains("b"));
        assert!(delta.changed_partitions.is_empty());
    }

    #[test]
    fn snapshot_records_rebuild_the_image() {
        let t = Uuid::new_v4();
        let inc = Uuid::new_v4();
        let img = MetadataImage::default().apply(&[
            MetadataRecord::ClusterId { id: "c1".into() },
            MetadataRecord::RegisterBroker { id: 2, epoch: 0, incarnation: inc, host: "h".into(), port: 9, rack: Some("r".into()) },
            MetadataRecord::BrokerFence { id: 2, epoch: 0, fenced: false },
            MetadataRecord::Topic { name: "a".into(), id: t },
            MetadataRecord::Partition {
                topic_id: t,
                partition: 0,
                replicas: vec![2, 3],
                leader: 2,
                leader_epoch: 4,
                isr: vec![2],
                partition_epoch: 7,
                adding_replicas: vec![3],
                removing_replicas: vec![],
            },
            MetadataRecord::TopicConfig { topic_id: t, key: "retention.ms".into(), value: Some("5".into()) },
            MetadataRecord::ProducerIds { next: 5000 },
            MetadataRecord::BrokerConfig { node: None, key: "k".into(), value: Some("v".into()) },
        ]);
        let again = MetadataImage::default().apply(&img.to_records());
        assert_eq!(again.cluster_id.as_deref(), Some("c1"));
        assert_eq!(again.brokers, img.brokers);
        assert_eq!(again.topics["a"], img.topics["a"]);
        assert_eq!(again.next_producer_id, 5000);
        assert_eq!(again.broker_configs, img.broker_configs);
        assert_eq!(again.next_broker_epoch, 1);
        assert!(again.is_live(2));
    }

    #[test]
    fn legacy_partition_records_mean_all_replicas_in_sync() {
        let t = Uuid::new_v4();
        let json = format!(r#"{{"type":"Partition","topic_id":"{t}","partition":0,"replicas":[1],"leader":1,"leader_epoch":0}}"#);
        let r: MetadataRecord = serde_json::from_str(&json).unwrap();
        let img = MetadataImage::default().apply(&[MetadataRecord::Topic { name: "a".into(), id: t }, r]);
        assert_eq!(img.partition("a", 0).unwrap().isr, vec![1]);
        assert!(!img.partition("a", 0).unwrap().is_reassigning());
        // Records without a reassignment are written as before.
        let again = serde_json::to_string(&img.partition("a", 0).unwrap().to_record(t)).unwrap();
        assert!(!again.contains("adding_replicas") && !again.contains("removing_replicas"), "{again}");
    }
}
