//! Broker and topic configuration under Kafka's own names.
//!
//! Every accepted key is listed in [`BROKER_DEFS`] with its type and Kafka's
//! default. Topic-level keys ([`TOPIC_DEFS`]) take their defaults from a broker
//! synonym, as in Kafka (`retention.ms` ← `log.retention.ms` ← `log.retention.hours`).
//! Unknown keys and values that do not parse are errors, so a typo stops start-up.
//!
//! DescribeConfigs reads the layers as Kafka reports them ([`BrokerConfig::describe_broker`],
//! [`BrokerConfig::describe_topic`]): a value's source is the highest layer that sets
//! the key itself, synonyms are listed per layer in Kafka's order, and values Strom
//! derives internally (`advertised.listeners` from `listeners`, say) are not shown as set.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Short,
    Long,
    Bool,
    Str,
    Double,
    Enum(&'static [&'static str]),
    List,
    /// A comma-separated list whose items come from the given set; may be empty.
    ListOf(&'static [&'static str]),
}

/// DescribeConfigs `config_type` of a kind (Kafka's ConfigDef type ids).
pub fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Bool => 1,
        Kind::Str | Kind::Enum(_) => 2,
        Kind::Int => 3,
        Kind::Short => 4,
        Kind::Long => 5,
        Kind::Double => 6,
        Kind::List | Kind::ListOf(_) => 7,
    }
}

pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Option<&'static str>,
}

const fn d(name: &'static str, kind: Kind, default: Option<&'static str>) -> Def {
    Def { name, kind, default }
}

const CLEANUP: &[&str] = &["compact", "delete"];
const COMPRESSION: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
const TS_TYPE: &[&str] = &["CreateTime", "LogAppendTime"];

pub const BROKER_DEFS: &[Def] = &[
    d("node.id", Kind::Int, Some("1")),
    d("broker.id", Kind::Int, None),
    d("listeners", Kind::Str, Some("PLAINTEXT://127.0.0.1:9092")),
    d("advertised.listeners", Kind::Str, None),
    d("log.dirs", Kind::Str, None),
    d("log.dir", Kind::Str, Some("./strom-data")),
    d("metadata.log.dir", Kind::Str, None),
    d("num.partitions", Kind::Int, Some("1")),
    d("default.replication.factor", Kind::Int, Some("1")),
    d("auto.create.topics.enable", Kind::Bool, Some("true")),
    d("delete.topic.enable", Kind::Bool, Some("true")),
    d("message.max.bytes", Kind::Int, Some("1048588")),
    d("log.segment.bytes", Kind::Int, Some("1073741824")),
    d("log.roll.ms", Kind::Long, None),
    d("log.roll.hours", Kind::Int, Some("168")),
    d("log.retention.ms", Kind::Long, None),
    d("log.retention.minutes", Kind::Int, None),
    d("log.retention.hours", Kind::Int, Some("168")),
    d("log.retention.bytes", Kind::Long, Some("-1")),
    d("log.retention.check.interval.ms", Kind::Long, Some("300000")),
    d("log.flush.interval.messages", Kind::Long, Some("9223372036854775807")),
    d("log.flush.interval.ms", Kind::Long, None),
    d("log.flush.scheduler.interval.ms", Kind::Long, Some("9223372036854775807")),
    d("log.index.interval.bytes", Kind::Int, Some("4096")),
    d("log.fd.cache.size", Kind::Int, Some("0")),
    d("metadata.log.max.record.bytes.between.snapshots", Kind::Long, Some("20971520")),
    d("max.broker.partitions", Kind::Int, Some("200000")),
    d("log.index.size.max.bytes", Kind::Int, Some("10485760")),
    d("log.cleanup.policy", Kind::ListOf(CLEANUP), Some("delete")),
    d("log.cleaner.delete.retention.ms", Kind::Long, Some("86400000")),
    d("log.cleaner.backoff.ms", Kind::Long, Some("15000")),
    d("log.cleaner.min.cleanable.ratio", Kind::Double, Some("0.5")),
    d("log.cleaner.min.compaction.lag.ms", Kind::Long, Some("0")),
    d("log.cleaner.max.compaction.lag.ms", Kind::Long, Some("9223372036854775807")),
    d("log.message.timestamp.type", Kind::Enum(TS_TYPE), Some("CreateTime")),
    d("log.message.timestamp.before.max.ms", Kind::Long, Some("9223372036854775807")),
    d("log.message.timestamp.after.max.ms", Kind::Long, Some("3600000")),
    d("log.segment.delete.delay.ms", Kind::Long, Some("60000")),
    d("compression.type", Kind::Enum(COMPRESSION), Some("producer")),
    d("min.insync.replicas", Kind::Int, Some("1")),
    d("unclean.leader.election.enable", Kind::Bool, Some("false")),
    d("socket.request.max.bytes", Kind::Int, Some("104857600")),
    d("queued.max.requests", Kind::Int, Some("500")),
    d("connections.max.idle.ms", Kind::Long, Some("600000")),
    d("max.connections", Kind::Int, Some("2147483647")),
    d("max.connections.per.ip", Kind::Int, Some("2147483647")),
    d("offsets.topic.num.partitions", Kind::Int, Some("50")),
    d("offsets.topic.replication.factor", Kind::Short, Some("1")),
    // Kafka's dynamic SASL setting; accepted so admin tools that set it keep
    // working. Strom has no SASL yet, so it has no effect.
    d("sasl.kerberos.min.time.before.relogin", Kind::Long, Some("60000")),
    d("group.initial.rebalance.delay.ms", Kind::Int, Some("3000")),
    d("group.min.session.timeout.ms", Kind::Int, Some("6000")),
    d("group.max.session.timeout.ms", Kind::Int, Some("1800000")),
    d("group.max.size", Kind::Int, Some("2147483647")),
    d("offsets.retention.minutes", Kind::Int, Some("10080")),
    d("offsets.retention.check.interval.ms", Kind::Long, Some("600000")),
    d("offset.metadata.max.bytes", Kind::Int, Some("4096")),
    // Transactions and producer ids (Kafka's defaults).
    d("transaction.state.log.num.partitions", Kind::Int, Some("50")),
    d("transaction.state.log.replication.factor", Kind::Short, Some("3")),
    d("transaction.state.log.min.isr", Kind::Int, Some("2")),
    d("transaction.state.log.segment.bytes", Kind::Int, Some("104857600")),
    d("transaction.max.timeout.ms", Kind::Int, Some("900000")),
    d("transactional.id.expiration.ms", Kind::Int, Some("604800000")),
    d("transaction.abort.timed.out.transaction.cleanup.interval.ms", Kind::Int, Some("10000")),
    d("transaction.remove.expired.transaction.cleanup.interval.ms", Kind::Int, Some("3600000")),
    d("transaction.partition.verification.enable", Kind::Bool, Some("true")),
    d("producer.id.expiration.ms", Kind::Int, Some("86400000")),
    d("producer.id.expiration.check.interval.ms", Kind::Int, Some("600000")),
    // The cluster (KRaft) settings, under Kafka's names.
    d("process.roles", Kind::List, Some("broker,controller")),
    d("controller.quorum.voters", Kind::List, None),
    d("controller.quorum.bootstrap.servers", Kind::List, None),
    d("controller.listener.names", Kind::Str, Some("CONTROLLER")),
    d("listener.security.protocol.map", Kind::Str, None),
    d("inter.broker.listener.name", Kind::Str, None),
    d("controller.quorum.election.timeout.ms", Kind::Int, Some("1000")),
    d("controller.quorum.fetch.timeout.ms", Kind::Int, Some("2000")),
    d("controller.quorum.request.timeout.ms", Kind::Int, Some("2000")),
    d("broker.heartbeat.interval.ms", Kind::Int, Some("2000")),
    d("broker.session.timeout.ms", Kind::Int, Some("9000")),
    d("broker.rack", Kind::Str, None),
    d("controlled.shutdown.enable", Kind::Bool, Some("true")),
    // Replication (Kafka's ISR protocol).
    d("replica.lag.time.max.ms", Kind::Long, Some("30000")),
    d("replica.fetch.wait.max.ms", Kind::Int, Some("500")),
    d("replica.fetch.min.bytes", Kind::Int, Some("1")),
    d("replica.fetch.max.bytes", Kind::Int, Some("1048576")),
    d("replica.fetch.response.max.bytes", Kind::Int, Some("10485760")),
    d("replica.fetch.backoff.ms", Kind::Int, Some("1000")),
    d("replica.socket.timeout.ms", Kind::Int, Some("30000")),
    d("replica.high.watermark.checkpoint.interval.ms", Kind::Long, Some("5000")),
    d("auto.leader.rebalance.enable", Kind::Bool, Some("true")),
    d("leader.imbalance.check.interval.seconds", Kind::Long, Some("300")),
    d("leader.imbalance.per.broker.percentage", Kind::Int, Some("10")),
];

/// Integer settings that must be at least 1.
const AT_LEAST_ONE: &[&str] = &[
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.state.log.segment.bytes",
    "transaction.max.timeout.ms",
    "transactional.id.expiration.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "producer.id.expiration.ms",
    "producer.id.expiration.check.interval.ms",
];

/// (topic config, broker synonym, kind)
pub const TOPIC_DEFS: &[(&str, &str, Kind)] = &[
    ("cleanup.policy", "log.cleanup.policy", Kind::ListOf(CLEANUP)),
    ("compression.type", "compression.type", Kind::Enum(COMPRESSION)),
    ("delete.retention.ms", "log.cleaner.delete.retention.ms", Kind::Long),
    ("file.delete.delay.ms", "log.segment.delete.delay.ms", Kind::Long),
    ("flush.messages", "log.flush.interval.messages", Kind::Long),
    ("flush.ms", "log.flush.interval.ms", Kind::Long),
    ("index.interval.bytes", "log.index.interval.bytes", Kind::Int),
    ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", Kind::Long),
    ("max.message.bytes", "message.max.bytes", Kind::Int),
    ("message.timestamp.after.max.ms", "log.message.timestamp.after.max.ms", Kind::Long),
    ("message.timestamp.before.max.ms", "log.message.timestamp.before.max.ms", Kind::Long),
    ("message.timestamp.type", "log.message.timestamp.type", Kind::Enum(TS_TYPE)),
    ("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", Kind::Double),
    ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", Kind::Long),
    ("min.insync.replicas", "min.insync.replicas", Kind::Int),
    ("retention.bytes", "log.retention.bytes", Kind::Long),
    ("retention.ms", "log.retention.ms", Kind::Long),
    ("segment.bytes", "log.segment.bytes", Kind::Int),
    ("segment.index.bytes", "log.index.size.max.bytes", Kind::Int),
    ("segment.ms", "log.roll.ms", Kind::Long),
    ("unclean.leader.election.enable", "unclean.leader.election.enable", Kind::Bool),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown configuration '{0}'")]
    Unknown(String),
    #[error("invalid value '{value}' for configuration '{name}': {reason}")]
    Invalid { name: String, value: String, reason: String },
    #[error("cannot read config file {path}: {reason}")]
    File { path: String, reason: String },
}

pub fn check_value(name: &str, kind: Kind, value: &str) -> Result<(), ConfigError> {
    let bad = |reason: &str| Err(ConfigError::Invalid { name: name.into(), value: value.into(), reason: reason.into() });
    match kind {
        Kind::Int => value.trim().parse::<i32>().map(|_| ()).or_else(|_| bad("expected a 32-bit integer")),
        Kind::Short => value.trim().parse::<i16>().map(|_| ()).or_else(|_| bad("expected a 16-bit integer")),
        Kind::Long => value.trim().parse::<i64>().map(|_| ()).or_else(|_| bad("expected a 64-bit integer")),
        Kind::Double => value.trim().parse::<f64>().map(|_| ()).or_else(|_| bad("expected a number")),
        Kind::Bool => match value.trim() {
            "true" | "false" => Ok(()),
            _ => bad("expected true or false"),
        },
        Kind::Enum(allowed) => {
            if allowed.contains(&value.trim()) {
                Ok(())
            } else {
                bad(&format!("expected one of {}", allowed.join(", ")))
            }
        }
        // An empty list is allowed: for `cleanup.policy` it means neither
        // deletion nor compaction, so the data is kept.
        Kind::ListOf(allowed) => match value.trim() {
            "" => Ok(()),
            v if v.split(',').all(|item| allowed.contains(&item.trim())) => Ok(()),
            _ => bad(&format!("expected a comma-separated list of {} (or nothing)", allowed.join(", "))),
        },
        Kind::Str | Kind::List => Ok(()),
    }
}

/// Whether a key's value is a comma-separated list (IncrementalAlterConfigs
/// APPEND and SUBTRACT apply only to these).
pub fn is_list(name: &str) -> bool {
    let kind = TOPIC_DEFS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, k)| *k)
        .or_else(|| BROKER_DEFS.iter().find(|d| d.name == name).map(|d| d.kind));
    matches!(kind, Some(Kind::List | Kind::ListOf(_)))
}

/// Where an effective value came from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    TopicOverride = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// The broker's static configuration: values the operator set, over Kafka's defaults.
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {
    set: BTreeMap<String, String>,
    /// Dynamic settings from the metadata log: (this node's, cluster default's).
    /// Shared by clones, so every holder sees a change at once.
    dynamic: std::sync::Arc<std::sync::RwLock<DynamicLayer>>,
}

/// (this node's settings, the cluster default's)
type DynamicLayer = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Broker keys that may change while running: the broker synonyms of topic
/// settings (and the hour/minute forms of retention and roll).
pub fn is_dynamic(name: &str) -> bool {
    TOPIC_DEFS.iter().any(|(_, syn, _)| *syn == name)
        || matches!(
            name,
            "log.retention.hours"
                | "log.retention.minutes"
                | "log.roll.hours"
                | "sasl.kerberos.min.time.before.relogin"
                | "max.connections"
                | "max.connections.per.ip"
        )
}

impl BrokerConfig {
    /// Builds a config from `(key, value)` pairs, validating every one.
    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Result<BrokerConfig, ConfigError> {
        let mut set = BTreeMap::new();
        for (k, v) in pairs {
            let def = BROKER_DEFS.iter().find(|d| d.name == k).ok_or_else(|| ConfigError::Unknown(k.clone()))?;
            check_value(&k, def.kind, &v)?;
            set.insert(k, v.trim().to_string());
        }
        let c = BrokerConfig { set, dynamic: Default::default() };
        c.check_listeners()?;
        c.check_minimums()?;
        Ok(c)
    }

    /// Settings Kafka requires to be at least 1 (a zero partition count or
    /// interval cannot work).
    fn check_minimums(&self) -> Result<(), ConfigError> {
        for name in AT_LEAST_ONE {
            let value = self.get(name);
            if value.parse::<i64>().is_ok_and(|v| v < 1) {
                return Err(ConfigError::Invalid { name: name.to_string(), value, reason: "must be at least 1".into() });
            }
        }
        Ok(())
    }

    /// Reads a TOML file whose keys are Kafka config names (nested tables join with '.').
    pub fn toml_pairs(text: &str, path: &str) -> Result<Vec<(String, String)>, ConfigError> {
        let value: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::File { path: path.into(), reason: e.to_string() })?;
        let mut out = Vec::new();
        flatten("", &toml::Value::Table(value), &mut out);
        Ok(out)
    }

    fn check_listeners(&self) -> Result<(), ConfigError> {
        let invalid = |name: &str, reason: String| ConfigError::Invalid { name: name.into(), value: self.get(name), reason };
        let listeners = self.listeners().map_err(|r| invalid("listeners", r))?;
        if let Some(v) = self.set.get("advertised.listeners") {
            parse_listeners(v, &self.get("listener.security.protocol.map")).map_err(|r| invalid("advertised.listeners", r))?;
        }
        let roles = self.roles().map_err(|r| invalid("process.roles", r))?;
        let voters = self.voters().map_err(|r| invalid("controller.quorum.voters", r))?;
        let controller_names = self.controller_listener_names();
        if !roles.broker && !roles.controller {
            return Err(invalid("process.roles", "give broker, controller or both".into()));
        }
        if roles.broker && !listeners.iter().any(|l| !controller_names.contains(&l.name)) {
            return Err(invalid("listeners", "a broker needs a listener that is not in controller.listener.names".into()));
        }
        if let Some(voters) = &voters {
            if roles.controller {
                if !voters.contains_key(&self.node_id()) {
                    return Err(invalid(
                        "controller.quorum.voters",
                        format!("process.roles includes controller, but node.id {} is not a voter", self.node_id()),
                    ));
                }
                if !listeners.iter().any(|l| controller_names.contains(&l.name)) {
                    return Err(invalid(
                        "listeners",
                        format!("a controller needs a listener named in controller.listener.names ({})", controller_names.join(",")),
                    ));
                }
            }
        } else if !roles.controller || !roles.broker {
            return Err(invalid("controller.quorum.voters", "required unless the node is a single combined broker and controller".into()));
        }
        Ok(())
    }

    /// Every listener, named, with its (host, port).
    pub fn listeners(&self) -> Result<Vec<Listener>, String> {
        parse_listeners(&self.get("listeners"), &self.get("listener.security.protocol.map"))
    }

    pub fn controller_listener_names(&self) -> Vec<String> {
        self.get("controller.listener.names").split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    }

    /// The listener that serves clients: `inter.broker.listener.name` if set, else
    /// the first listener that is not a controller listener.
    fn client_listener(&self) -> Option<Listener> {
        let names = self.controller_listener_names();
        let all = self.listeners().ok()?;
        let wanted = self.set.get("inter.broker.listener.name");
        all.iter().find(|l| wanted.is_some_and(|w| *w == l.name)).or_else(|| all.iter().find(|l| !names.contains(&l.name))).cloned()
    }

    /// This node's controller listener, if it has one.
    pub fn controller_listener(&self) -> Option<Listener> {
        let names = self.controller_listener_names();
        self.listeners().ok()?.into_iter().find(|l| names.contains(&l.name))
    }

    pub fn roles(&self) -> Result<Roles, String> {
        let mut r = Roles { broker: false, controller: false };
        for role in self.get("process.roles").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match role {
                "broker" => r.broker = true,
                "controller" => r.controller = true,
                other => return Err(format!("unknown role '{other}'; use broker, controller or both")),
            }
        }
        Ok(r)
    }

    /// `controller.quorum.voters` as id → host:port; `None` when not set (a single node).
    pub fn voters(&self) -> Result<Option<BTreeMap<i32, String>>, String> {
        let Some(v) = self.set.get("controller.quorum.voters").filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        for entry in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, addr) = entry.split_once('@').ok_or_else(|| format!("'{entry}' is not id@host:port"))?;
            let id: i32 = id.trim().parse().map_err(|_| format!("'{id}' is not a node id"))?;
            let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("'{addr}' is not host:port"))?;
            port.parse::<u16>().map_err(|_| format!("bad port '{port}'"))?;
            if out.insert(id, format!("{}:{port}", host.trim_matches(|c| c == '[' || c == ']'))).is_some() {
                return Err(format!("voter {id} is listed twice"));
            }
        }
        if out.is_empty() {
            return Err("no voters".into());
        }
        Ok(Some(out))
    }

    /// Replaces the dynamic layer (from the metadata image).
    pub fn set_dynamic(&self, node: BTreeMap<String, String>, default: BTreeMap<String, String>) {
        *self.dynamic.write().unwrap_or_else(|p| p.into_inner()) = (node, default);
    }

    /// The effective value and its source: dynamic per-node, dynamic cluster
    /// default, static (file or --set), then Kafka's default.
    pub fn get_with_source(&self, name: &str) -> Option<(String, Source)> {
        {
            let d = self.dynamic.read().unwrap_or_else(|p| p.into_inner());
            if let Some(v) = d.0.get(name) {
                return Some((v.clone(), Source::DynamicBroker));
            }
            if let Some(v) = d.1.get(name) {
                return Some((v.clone(), Source::DynamicDefaultBroker));
            }
        }
        if let Some(v) = self.set.get(name) {
            return Some((v.clone(), Source::StaticBroker));
        }
        // Derived from a synonym, as Kafka resolves them: the value (scaled) and
        // the source of the synonym that supplies it.
        let scaled = |syn: &str, factor: i64| {
            self.get_with_source(syn).and_then(|(v, src)| v.trim().parse::<i64>().ok().map(|n| (n.saturating_mul(factor).to_string(), src)))
        };
        match name {
            "log.retention.ms" => return scaled("log.retention.minutes", 60_000).or_else(|| scaled("log.retention.hours", 3_600_000)),
            "log.roll.ms" => return scaled("log.roll.hours", 3_600_000),
            "log.flush.interval.ms" => return self.get_with_source("log.flush.scheduler.interval.ms"),
            "log.dirs" => return self.get_with_source("log.dir"),
            "advertised.listeners" => return self.get_with_source("listeners"),
            "node.id" => {
                if let Some(v) = self.set.get("broker.id") {
                    return Some((v.clone(), Source::StaticBroker));
                }
            }
            _ => {}
        }
        BROKER_DEFS.iter().find(|d| d.name == name).and_then(|d| d.default).map(|v| (v.to_string(), Source::Default))
    }

    pub fn get(&self, name: &str) -> String {
        self.get_with_source(name).map(|(v, _)| v).unwrap_or_default()
    }

    pub fn int(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn bool(&self, name: &str) -> bool {
        self.get(name) == "true"
    }

    pub fn node_id(&self) -> i32 {
        self.int("node.id") as i32
    }

    /// Where the node keeps its metadata (`meta.properties`, the quorum's log):
    /// `metadata.log.dir`, else the first of `log.dirs`, as Kafka.
    pub fn data_dir(&self) -> String {
        let meta = self.get("metadata.log.dir");
        if !meta.trim().is_empty() {
            return meta.trim().to_string();
        }
        self.log_dirs().into_iter().next().unwrap_or_else(|| "./strom-data".to_string())
    }

    /// The partition log directories: `log.dirs` (comma-separated), else `log.dir`.
    pub fn log_dirs(&self) -> Vec<String> {
        self.get("log.dirs").split(',').map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).collect()
    }

    /// (host, port) to bind for clients.
    pub fn listener(&self) -> (String, u16) {
        self.client_listener().map(|l| (l.host, l.port)).unwrap_or_else(|| ("127.0.0.1".into(), 9092))
    }

    /// (host, port) clients are told to connect to: the advertised listener of the
    /// client listener's name, else the client listener itself.
    pub fn advertised(&self) -> (String, u16) {
        let name = self.client_listener().map(|l| l.name);
        self.set
            .get("advertised.listeners")
            .and_then(|v| parse_listeners(v, &self.get("listener.security.protocol.map")).ok())
            .and_then(|ls| ls.into_iter().find(|l| Some(&l.name) == name.as_ref()))
            .map(|l| (l.host, l.port))
            .unwrap_or_else(|| self.listener())
    }

    /// Names of all broker keys, for DescribeConfigs.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        BROKER_DEFS.iter().map(|d| d.name)
    }

    /// The effective topic config: overrides, else the broker synonym's value.
    pub fn topic_value(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<(String, Source)> {
        if let Some(v) = overrides.get(name) {
            return Some((v.clone(), Source::TopicOverride));
        }
        let (_, synonym, _) = TOPIC_DEFS.iter().find(|(n, _, _)| *n == name)?;
        self.get_with_source(synonym)
    }

    /// The value a broker key has in one layer, as set there (nothing derived).
    /// `node.id` and `broker.id` stand for each other, as in Kafka.
    fn layer_value(&self, dynamic: &DynamicLayer, source: Source, name: &str) -> Option<String> {
        let twin = match name {
            "node.id" => Some("broker.id"),
            "broker.id" => Some("node.id"),
            _ => None,
        };
        let own_or_twin = |map: &BTreeMap<String, String>| map.get(name).or_else(|| twin.and_then(|t| map.get(t))).cloned();
        match source {
            Source::DynamicBroker => dynamic.0.get(name).cloned(),
            Source::DynamicDefaultBroker => dynamic.1.get(name).cloned(),
            Source::StaticBroker => own_or_twin(&self.set),
            Source::Default => {
                let def = |n: &str| BROKER_DEFS.iter().find(|d| d.name == n).and_then(|d| d.default);
                def(name).or_else(|| twin.and_then(def)).map(str::to_string)
            }
            Source::TopicOverride => None,
        }
    }

    /// Kafka's synonym chain for a broker key: every synonym set in each layer,
    /// layer by layer (dynamic per-broker, dynamic cluster default, static,
    /// default), starting at the first entry for `name` itself.
    pub fn synonyms(&self, name: &str) -> Vec<Synonym> {
        let names = broker_synonyms(name);
        let dynamic = self.dynamic.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for source in [Source::DynamicBroker, Source::DynamicDefaultBroker, Source::StaticBroker, Source::Default] {
            for n in &names {
                if let Some(value) = self.layer_value(&dynamic, source, n) {
                    out.push(Synonym { name: n.to_string(), value, source });
                }
            }
        }
        let first = out.iter().position(|s| s.name == name).unwrap_or(out.len());
        out.split_off(first)
    }

    /// A broker key as DescribeConfigs reports it for this broker: the value the
    /// key itself has (none when unset and without a default), its source and
    /// its synonyms.
    pub fn describe_broker(&self, name: &str) -> Described {
        let synonyms = self.synonyms(name);
        let (value, source) = synonyms.first().map(|s| (Some(s.value.clone()), s.source)).unwrap_or((None, Source::Default));
        Described { value, source, synonyms }
    }

    /// A key of the cluster-wide dynamic default as DescribeConfigs reports it
    /// for the broker resource "": only keys set there, with only that layer's synonyms.
    pub fn describe_cluster_default(&self, name: &str) -> Option<Described> {
        let value = self.dynamic.read().unwrap_or_else(|p| p.into_inner()).1.get(name).cloned()?;
        let synonyms: Vec<Synonym> = self.synonyms(name).into_iter().filter(|s| s.source == Source::DynamicDefaultBroker).collect();
        let source = synonyms.first().map(|s| s.source).unwrap_or(Source::Default);
        Some(Described { value: Some(value), source, synonyms })
    }

    /// The keys set in the cluster-wide dynamic default.
    pub fn cluster_default_names(&self) -> Vec<String> {
        self.dynamic.read().unwrap_or_else(|p| p.into_inner()).1.keys().cloned().collect()
    }

    /// A topic key as DescribeConfigs reports it: the effective value, and the
    /// chain of the topic override (if any) followed by its broker synonym's chain.
    pub fn describe_topic(&self, overrides: &BTreeMap<String, String>, name: &str) -> Option<Described> {
        let (_, synonym, _) = TOPIC_DEFS.iter().find(|(n, _, _)| *n == name)?;
        let (value, _) = self.topic_value(overrides, name)?;
        let mut synonyms = self.synonyms(synonym);
        if let Some(v) = overrides.get(name) {
            synonyms.insert(0, Synonym { name: name.to_string(), value: v.clone(), source: Source::TopicOverride });
        }
        let source = synonyms.first().map(|s| s.source).unwrap_or(Source::Default);
        Some(Described { value: Some(value), source, synonyms })
    }
}

/// One entry of a DescribeConfigs synonym chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: String,
    pub source: Source,
}

/// A key as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub value: Option<String>,
    pub source: Source,
    pub synonyms: Vec<Synonym>,
}

/// The broker keys that name the same setting, highest precedence first
/// (Kafka's: `log.retention.ms` over `log.retention.minutes` over `log.retention.hours`).
pub fn broker_synonyms(name: &str) -> Vec<&str> {
    match name {
        "log.roll.ms" | "log.roll.hours" => vec!["log.roll.ms", "log.roll.hours"],
        "log.flush.interval.ms" => vec!["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => {
            vec!["log.retention.ms", "log.retention.minutes", "log.retention.hours"]
        }
        other => vec![other],
    }
}

/// DescribeConfigs `read_only` for a broker key: true unless it can change
/// while running. Topic keys are never read-only.
pub fn broker_read_only(name: &str) -> bool {
    !is_dynamic(name)
}

/// Validates a topic-level config.
pub fn check_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let (_, _, kind) = TOPIC_DEFS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| ConfigError::Unknown(name.into()))?;
    check_value(name, *kind, value)
}

/// DescribeConfigs `documentation`: one line per key, in Strom's words.
pub fn documentation(name: &str) -> Option<&'static str> {
    Some(match name {
        // Topic keys.
        "cleanup.policy" => "What happens to old segments: delete, compact, both, or neither (empty: keep everything).",
        "delete.retention.ms" => "How long a tombstone survives in a compacted topic before compaction drops it.",
        "file.delete.delay.ms" => "How long a segment file lingers after it leaves the log before it is removed from disk.",
        "flush.messages" => "Force an fsync after this many messages have been appended.",
        "flush.ms" => "Force an fsync once this many milliseconds have passed since the last one.",
        "index.interval.bytes" => "Bytes of log between two entries of the offset index.",
        "max.compaction.lag.ms" => "Longest time a record may stay uncompacted in a compacted topic.",
        "max.message.bytes" => "Largest record batch the topic accepts, after compression.",
        "message.timestamp.after.max.ms" => "How far into the future a CreateTime timestamp may be before the batch is refused.",
        "message.timestamp.before.max.ms" => "How far into the past a CreateTime timestamp may be before the batch is refused.",
        "message.timestamp.type" => "Whether records keep the producer's timestamp (CreateTime) or get the append time (LogAppendTime).",
        "min.cleanable.dirty.ratio" => "Share of uncompacted data in the log above which compaction runs.",
        "min.compaction.lag.ms" => "Shortest time a record stays uncompacted in a compacted topic.",
        "retention.bytes" => "Largest size of one partition before old segments are deleted (-1: no limit).",
        "retention.ms" => "Age after which old segments are deleted (-1: no limit).",
        "segment.bytes" => "Size at which the active segment is closed and a new one started.",
        "segment.index.bytes" => "Largest size of a segment's offset index.",
        "segment.ms" => "Age at which the active segment is closed and a new one started.",
        // Keys that are both topic and broker settings.
        "compression.type" => "Codec batches are stored with; producer keeps the producer's choice.",
        "min.insync.replicas" => "Fewest in-sync replicas that must hold a write for acks=all to succeed.",
        "unclean.leader.election.enable" => "Whether a replica that is not in sync may become leader, at the cost of lost records.",
        // Broker keys.
        "node.id" => "This node's id in the cluster.",
        "broker.id" => "Older name of node.id; when set, it must equal node.id.",
        "listeners" => "Addresses this node binds, as NAME://host:port, comma-separated.",
        "advertised.listeners" => "Addresses clients are told to use, per listener name; unset means those of listeners.",
        "log.dirs" => "Directories holding partition data, comma-separated; new partitions go to the one holding fewest.",
        "metadata.log.dir" => "Directory of the node's metadata log and meta.properties; unset means the first of log.dirs.",
        "log.dir" => "Data directory used when log.dirs is not set.",
        "num.partitions" => "Partition count of topics created without one.",
        "default.replication.factor" => "Replication factor of topics created without one.",
        "auto.create.topics.enable" => "Whether producing to or asking metadata for an unknown topic creates it.",
        "delete.topic.enable" => "Whether DeleteTopics may delete topics.",
        "message.max.bytes" => "Default for topics' max.message.bytes: largest record batch accepted.",
        "log.segment.bytes" => "Default for topics' segment.bytes: size at which a segment is rolled.",
        "log.roll.ms" => "Default for topics' segment.ms, in milliseconds; wins over log.roll.hours.",
        "log.roll.hours" => "Default for topics' segment.ms, in hours, when log.roll.ms is not set.",
        "log.retention.ms" => "Default for topics' retention.ms; wins over the minutes and hours forms.",
        "log.retention.minutes" => "Default for topics' retention.ms, in minutes, when log.retention.ms is not set.",
        "log.retention.hours" => "Default for topics' retention.ms, in hours, when neither finer form is set.",
        "log.retention.bytes" => "Default for topics' retention.bytes: partition size limit before deletion.",
        "log.retention.check.interval.ms" => "How often the broker looks for segments to delete under the retention rules.",
        "log.flush.interval.messages" => "Default for topics' flush.messages.",
        "log.flush.interval.ms" => "Default for topics' flush.ms; unset means log.flush.scheduler.interval.ms.",
        "log.flush.scheduler.interval.ms" => "How often logs are checked for a time-based flush.",
        "log.index.interval.bytes" => "Default for topics' index.interval.bytes.",
        "log.fd.cache.size" => {
            "Strom: how many segment .log files may be open at once (a least-recently-used cache); 0 means a quarter of the open-file limit."
        }
        "metadata.log.max.record.bytes.between.snapshots" => {
            "Bytes of metadata records after which the quorum snapshots its state and drops the log behind the snapshot."
        }
        "max.broker.partitions" => {
            "The most partition replicas this broker may hold; CreateTopics and CreatePartitions that would exceed it are refused whole (KIP-578)."
        }
        "log.index.size.max.bytes" => "Default for topics' segment.index.bytes.",
        "log.cleanup.policy" => "Default for topics' cleanup.policy: delete, compact, both, or neither.",
        "log.cleaner.delete.retention.ms" => "Default for topics' delete.retention.ms.",
        "log.cleaner.backoff.ms" => "Pause between two rounds of the log cleaner.",
        "log.cleaner.min.cleanable.ratio" => "Default for topics' min.cleanable.dirty.ratio.",
        "log.cleaner.min.compaction.lag.ms" => "Default for topics' min.compaction.lag.ms.",
        "log.cleaner.max.compaction.lag.ms" => "Default for topics' max.compaction.lag.ms.",
        "log.message.timestamp.type" => "Default for topics' message.timestamp.type.",
        "log.message.timestamp.before.max.ms" => "Default for topics' message.timestamp.before.max.ms.",
        "log.message.timestamp.after.max.ms" => "Default for topics' message.timestamp.after.max.ms.",
        "log.segment.delete.delay.ms" => "Default for topics' file.delete.delay.ms.",
        "socket.request.max.bytes" => "Largest request the broker reads from a connection.",
        "queued.max.requests" => "Requests that may wait for processing before the broker stops reading more.",
        "connections.max.idle.ms" => "Idle time after which the broker closes a client connection.",
        "max.connections" => "Most client connections the broker accepts at once.",
        "max.connections.per.ip" => "Most client connections accepted from one address.",
        "offsets.topic.num.partitions" => "Partition count of __consumer_offsets when it is created.",
        "offsets.topic.replication.factor" => "Replication factor of __consumer_offsets when it is created.",
        "sasl.kerberos.min.time.before.relogin" => "Accepted for tool compatibility; Strom has no SASL, so it has no effect.",
        "group.initial.rebalance.delay.ms" => "How long a new group's first rebalance waits for more members to join.",
        "group.min.session.timeout.ms" => "Shortest session timeout a group member may ask for.",
        "group.max.session.timeout.ms" => "Longest session timeout a group member may ask for.",
        "group.max.size" => "Most members one consumer group may have.",
        "offsets.retention.minutes" => "How long committed offsets of an empty group are kept.",
        "offsets.retention.check.interval.ms" => "How often expired committed offsets are looked for.",
        "offset.metadata.max.bytes" => "Largest metadata string an offset commit may carry.",
        "transaction.state.log.num.partitions" => "Partition count of __transaction_state when it is created.",
        "transaction.state.log.replication.factor" => "Replication factor of __transaction_state when it is created.",
        "transaction.state.log.min.isr" => "min.insync.replicas of __transaction_state.",
        "transaction.state.log.segment.bytes" => "segment.bytes of __transaction_state.",
        "transaction.max.timeout.ms" => "Longest transaction timeout a producer may ask for.",
        "transactional.id.expiration.ms" => "How long an idle transactional id is remembered.",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
            "How often transactions past their timeout are looked for and aborted."
        }
        "transaction.remove.expired.transaction.cleanup.interval.ms" => "How often expired transactional ids are looked for and removed.",
        "transaction.partition.verification.enable" => {
            "Whether a transactional write is checked against the partitions its transaction added."
        }
        "producer.id.expiration.ms" => "How long a partition remembers an idle producer id for de-duplication.",
        "producer.id.expiration.check.interval.ms" => "How often idle producer ids are looked for.",
        "process.roles" => "What this node is: broker, controller, or both.",
        "controller.quorum.voters" => "The metadata quorum's voters, as id@host:port, comma-separated.",
        "controller.quorum.bootstrap.servers" => "Controller addresses to find the metadata quorum through.",
        "controller.listener.names" => "Names of the listeners that serve the controller protocol.",
        "listener.security.protocol.map" => "Security protocol of each listener name, as NAME:PROTOCOL, comma-separated.",
        "inter.broker.listener.name" => "Listener that brokers use to reach each other.",
        "controller.quorum.election.timeout.ms" => "How long a voter waits for a leader before it starts an election.",
        "controller.quorum.fetch.timeout.ms" => "How long a follower goes without fetching from the leader before it starts an election.",
        "controller.quorum.request.timeout.ms" => "How long a node waits for a controller's answer.",
        "broker.heartbeat.interval.ms" => "Time between two broker heartbeats to the controller.",
        "broker.session.timeout.ms" => "Time without heartbeats after which the controller fences a broker.",
        "broker.rack" => "Rack of this broker, used to spread replicas.",
        "controlled.shutdown.enable" => "Whether a stopping broker first hands its leaderships to other replicas.",
        "replica.lag.time.max.ms" => "Time a follower may lag behind before it leaves the in-sync replicas.",
        "replica.fetch.wait.max.ms" => "Longest time a follower's fetch waits at the leader for new data.",
        "replica.fetch.min.bytes" => "Data a follower's fetch waits for before the leader answers.",
        "replica.fetch.max.bytes" => "Bytes a follower fetches per partition at most.",
        "replica.fetch.response.max.bytes" => "Bytes one follower fetch response carries at most.",
        "replica.fetch.backoff.ms" => "Pause before a follower retries after a failed fetch.",
        "replica.socket.timeout.ms" => "How long a follower waits for a fetch response.",
        "replica.high.watermark.checkpoint.interval.ms" => "How often high watermarks are written to disk.",
        "auto.leader.rebalance.enable" => "Whether leadership moves back to preferred replicas on its own.",
        "leader.imbalance.check.interval.seconds" => "How often the controller checks for leadership imbalance.",
        "leader.imbalance.per.broker.percentage" => "Share of a broker's partitions led elsewhere above which leadership is rebalanced.",
        _ => return None,
    })
}

/// A node's roles (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

/// One entry of `listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Parses `NAME://host:port,…` (or a bare `host:port`, named PLAINTEXT). A name's
/// security protocol comes from `protocol_map` (`NAME:PROTOCOL,…`); without an
/// entry, a name that is itself a protocol is that protocol, and any other name
/// (CONTROLLER, say) is PLAINTEXT. Only PLAINTEXT exists so far.
pub fn parse_listeners(v: &str, protocol_map: &str) -> Result<Vec<Listener>, String> {
    let mut map = BTreeMap::new();
    for e in protocol_map.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (n, p) = e.split_once(':').ok_or_else(|| format!("listener.security.protocol.map entry '{e}' is not NAME:PROTOCOL"))?;
        map.insert(n.trim().to_string(), p.trim().to_string());
    }
    let mut out: Vec<Listener> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = match item.split_once("://") {
            Some((n, rest)) => (n.to_string(), rest),
            None => ("PLAINTEXT".to_string(), item),
        };
        let protocol = map.get(&name).cloned().unwrap_or_else(|| match name.as_str() {
            "SSL" | "SASL_PLAINTEXT" | "SASL_SSL" => name.clone(),
            _ => "PLAINTEXT".to_string(),
        });
        if protocol != "PLAINTEXT" {
            return Err(format!("listener {name} uses {protocol}; only PLAINTEXT listeners are supported so far"));
        }
        let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
        let port: u16 = port.parse().map_err(|_| format!("bad port '{port}'"))?;
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener name {name} is used twice"));
        }
        out.push(Listener { name, host: host.trim_matches(|c| c == '[' || c == ']').to_string(), port });
    }
    if out.is_empty() {
        return Err("no listeners".into());
    }
    Ok(out)
}

/// Parses the first listener of `v` into (host, port).
pub fn parse_listener(v: &str) -> Result<(String, u16), String> {
    parse_listeners(v, "").map(|mut ls| {
        let l = ls.remove(0);
        (l.host, l.port)
    })
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut Vec<(String, String)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        toml::Value::Array(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|x| match x {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.push((prefix.to_string(), items.join(",")));
        }
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_derivations() {
        let c = BrokerConfig::default();
        assert_eq!(c.get("num.partitions"), "1");
        assert_eq!(c.get("log.retention.ms"), (168i64 * 3_600_000).to_string());
        assert_eq!(c.listener(), ("127.0.0.1".to_string(), 9092));
        assert_eq!(c.data_dir(), "./strom-data");
        let c = BrokerConfig::from_pairs([("log.retention.hours".to_string(), "1".to_string())]).unwrap();
        assert_eq!(c.get_with_source("log.retention.ms"), Some(("3600000".into(), Source::StaticBroker)));
    }

    #[test]
    fn unknown_and_invalid_are_errors() {
        assert_eq!(
            BrokerConfig::from_pairs([("num.partitionz".to_string(), "1".to_string())]).unwrap_err(),
            ConfigError::Unknown("num.partitionz".into())
        );
        assert!(BrokerConfig::from_pairs([("num.partitions".to_string(), "many".to_string())]).is_err());
        assert!(BrokerConfig::from_pairs([("listeners".to_string(), "SSL://x:1".to_string())]).is_err());
    }

    #[test]
    fn transaction_settings_have_kafka_defaults_and_minimums() {
        let c = BrokerConfig::default();
        assert_eq!(c.int("transaction.state.log.num.partitions"), 50);
        assert_eq!(c.int("transaction.max.timeout.ms"), 900_000);
        assert_eq!(c.int("transactional.id.expiration.ms"), 604_800_000);
        assert!(c.bool("transaction.partition.verification.enable"));
        let set = |k: &str, v: &str| BrokerConfig::from_pairs([(k.to_string(), v.to_string())]);
        assert!(set("transaction.state.log.num.partitions", "0").is_err());
        assert!(set("transaction.max.timeout.ms", "-1").is_err());
        assert_eq!(set("transaction.state.log.min.isr", "1").unwrap().int("transaction.state.log.min.isr"), 1);
    }

    #[test]
    fn toml_keys_are_kafka_names() {
        let pairs = BrokerConfig::toml_pairs("\"num.partitions\" = 3\n[log]\ndirs = \"/tmp/x\"\n", "t").unwrap();
        let c = BrokerConfig::from_pairs(pairs).unwrap();
        assert_eq!(c.int("num.partitions"), 3);
        assert_eq!(c.data_dir(), "/tmp/x");
    }

    #[test]
    fn topic_values_fall_back_to_broker_synonyms() {
        let c = BrokerConfig::from_pairs([("message.max.bytes".to_string(), "2000".to_string())]).unwrap();
        let mut o = BTreeMap::new();
        assert_eq!(c.topic_value(&o, "max.message.bytes"), Some(("2000".into(), Source::StaticBroker)));
        o.insert("max.message.bytes".to_string(), "10".to_string());
        assert_eq!(c.topic_value(&o, "max.message.bytes"), Some(("10".into(), Source::TopicOverride)));
        assert!(check_topic_config("segment.bytes", "x").is_err());
        assert!(check_topic_config("nope", "1").is_err());
    }

    #[test]
    fn cleanup_policy_is_a_list_that_may_be_empty() {
        for ok in ["", " ", "delete", "compact", "compact,delete", "delete, compact"] {
            assert!(check_topic_config("cleanup.policy", ok).is_ok(), "{ok:?}");
        }
        for bad in ["remove", "delete,", ",compact", "delete;compact"] {
            assert!(check_topic_config("cleanup.policy", bad).is_err(), "{bad:?}");
        }
        assert!(BrokerConfig::from_pairs([("log.cleanup.policy".to_string(), String::new())]).is_ok());
        assert!(is_list("cleanup.policy") && is_list("log.cleanup.policy") && !is_list("retention.ms"));
        assert_eq!(config_type(Kind::ListOf(CLEANUP)), 7);
        assert!(BrokerConfig::from_pairs([("offsets.topic.replication.factor".to_string(), "40000".to_string())]).is_err());
    }

    fn set(c: &BrokerConfig, node: &[(&str, &str)], default: &[(&str, &str)]) {
        let m = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        c.set_dynamic(m(node), m(default));
    }

    fn chain(d: &Described) -> Vec<(String, String, Source)> {
        d.synonyms.iter().map(|s| (s.name.clone(), s.value.clone(), s.source)).collect()
    }

    #[test]
    fn synonyms_follow_kafkas_layers() {
        let c = BrokerConfig::from_pairs([("message.max.bytes".to_string(), "3000".to_string())]).unwrap();
        set(&c, &[("message.max.bytes", "5000")], &[("message.max.bytes", "4000")]);
        let mut o = BTreeMap::new();
        o.insert("max.message.bytes".to_string(), "6000".to_string());
        let d = c.describe_topic(&o, "max.message.bytes").unwrap();
        assert_eq!((d.value.as_deref(), d.source), (Some("6000"), Source::TopicOverride));
        let s = |n: &str, v: &str, src| (n.to_string(), v.to_string(), src);
        assert_eq!(
            chain(&d),
            vec![
                s("max.message.bytes", "6000", Source::TopicOverride),
                s("message.max.bytes", "5000", Source::DynamicBroker),
                s("message.max.bytes", "4000", Source::DynamicDefaultBroker),
                s("message.max.bytes", "3000", Source::StaticBroker),
                s("message.max.bytes", "1048588", Source::Default),
            ]
        );
        // Without the override the topic follows the broker's highest layer.
        let d = c.describe_topic(&BTreeMap::new(), "max.message.bytes").unwrap();
        assert_eq!((d.value.as_deref(), d.source, d.synonyms.len()), (Some("5000"), Source::DynamicBroker, 4));
        // The cluster-default resource shows only its own layer.
        let d = c.describe_cluster_default("message.max.bytes").unwrap();
        assert_eq!(chain(&d), vec![s("message.max.bytes", "4000", Source::DynamicDefaultBroker)]);
        assert!(c.describe_cluster_default("num.partitions").is_none());
        assert_eq!(c.cluster_default_names(), vec!["message.max.bytes".to_string()]);
    }

    #[test]
    fn retention_synonyms_start_at_the_key_itself() {
        let s = |n: &str, v: &str, src| (n.to_string(), v.to_string(), src);
        // Only the hours default: the chain of log.retention.ms is empty, so the
        // topic reports DEFAULT_CONFIG with no synonyms (Kafka drops entries
        // before the first one named like the key).
        let c = BrokerConfig::default();
        let d = c.describe_topic(&BTreeMap::new(), "retention.ms").unwrap();
        assert_eq!((d.value.as_deref(), d.source), (Some("604800000"), Source::Default));
        assert!(d.synonyms.is_empty());
        let d = c.describe_broker("log.retention.ms");
        assert_eq!((d.value, d.source), (None, Source::Default));
        let d = c.describe_broker("log.retention.hours");
        assert_eq!(chain(&d), vec![s("log.retention.hours", "168", Source::Default)]);
        // log.retention.ms set dynamically, minutes statically: every layer shows.
        let c = BrokerConfig::from_pairs([("log.retention.minutes".to_string(), "60".to_string())]).unwrap();
        assert_eq!(c.get_with_source("log.retention.ms"), Some(("3600000".into(), Source::StaticBroker)));
        set(&c, &[("log.retention.ms", "1000")], &[]);
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "2000".to_string());
        let d = c.describe_topic(&o, "retention.ms").unwrap();
        assert_eq!(
            chain(&d),
            vec![
                s("retention.ms", "2000", Source::TopicOverride),
                s("log.retention.ms", "1000", Source::DynamicBroker),
                s("log.retention.minutes", "60", Source::StaticBroker),
                s("log.retention.hours", "168", Source::Default),
            ]
        );
        // Minutes set only as a dynamic default still derive the effective value.
        let c = BrokerConfig::default();
        set(&c, &[], &[("log.retention.minutes", "2")]);
        assert_eq!(c.get_with_source("log.retention.ms"), Some(("120000".into(), Source::DynamicDefaultBroker)));
    }

    #[test]
    fn derived_values_are_not_reported_as_set() {
        let c = BrokerConfig::from_pairs([("listeners".to_string(), "PLAINTEXT://127.0.0.1:9999".to_string())]).unwrap();
        assert_eq!(c.get("advertised.listeners"), "PLAINTEXT://127.0.0.1:9999", "still used internally");
        let d = c.describe_broker("advertised.listeners");
        assert_eq!((d.value, d.source, d.synonyms.len()), (None, Source::Default, 0));
        assert!(broker_read_only("advertised.listeners") && broker_read_only("num.partitions"));
        assert!(!broker_read_only("message.max.bytes") && !broker_read_only("log.retention.hours"));
        let d = c.describe_broker("listeners");
        assert_eq!((d.value.as_deref(), d.source), (Some("PLAINTEXT://127.0.0.1:9999"), Source::StaticBroker));
        // node.id and broker.id stand for each other.
        let c = BrokerConfig::from_pairs([("node.id".to_string(), "4".to_string())]).unwrap();
        let d = c.describe_broker("broker.id");
        assert_eq!((d.value.as_deref(), d.source), (Some("4"), Source::StaticBroker));
        let d = BrokerConfig::default().describe_broker("broker.id");
        assert_eq!((d.value.as_deref(), d.source), (Some("1"), Source::Default));
    }

    #[test]
    fn every_key_has_documentation() {
        for d in BROKER_DEFS {
            assert!(documentation(d.name).is_some_and(|s| !s.is_empty() && !s.contains('\n')), "{}", d.name);
        }
        for (n, syn, _) in TOPIC_DEFS {
            assert!(documentation(n).is_some(), "{n}");
            assert!(BROKER_DEFS.iter().any(|d| d.name == *syn), "{syn}");
        }
        assert!(documentation("no.such.key").is_none());
    }

    #[test]
    fn cluster_settings_under_kafka_names() {
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let c = BrokerConfig::from_pairs(pairs(&[
            ("node.id", "2"),
            ("process.roles", "broker,controller"),
            ("controller.quorum.voters", "1@127.0.0.1:9093,2@127.0.0.1:9095,3@[::1]:9097"),
            ("listeners", "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"),
            ("controller.listener.names", "CONTROLLER"),
        ]))
        .unwrap();
        assert_eq!(c.listener(), ("127.0.0.1".to_string(), 9094));
        assert_eq!(c.controller_listener().map(|l| l.port), Some(9095));
        let v = c.voters().unwrap().unwrap();
        assert_eq!(v[&3], "::1:9097");
        assert_eq!(c.roles().unwrap(), Roles { broker: true, controller: true });
        // A controller that is not a voter, a broker with only a controller listener, bad voters.
        let bad = [
            vec![("node.id", "4"), ("controller.quorum.voters", "1@h:1"), ("listeners", "PLAINTEXT://h:2,CONTROLLER://h:3")],
            vec![("process.roles", "broker"), ("controller.quorum.voters", "1@h:1"), ("listeners", "CONTROLLER://h:3")],
            vec![("controller.quorum.voters", "1-h:1")],
            vec![("process.roles", "controller")],
            vec![("listeners", "PLAINTEXT://h:1,PLAINTEXT://h:2")],
        ];
        for b in bad {
            assert!(BrokerConfig::from_pairs(pairs(&b)).is_err(), "{b:?}");
        }
        let broker_only = BrokerConfig::from_pairs(pairs(&[
            ("node.id", "7"),
            ("process.roles", "broker"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("listeners", "PLAINTEXT://127.0.0.1:9099"),
            ("advertised.listeners", "PLAINTEXT://example:19099"),
        ]))
        .unwrap();
        assert_eq!(broker_only.advertised(), ("example".to_string(), 19099));
        assert!(broker_only.controller_listener().is_none());
    }
}
