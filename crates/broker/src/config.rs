//! Broker and topic configuration under Kafka's own names.
//!
//! Every accepted key is listed in [`BROKER_DEFS`] with its type and Kafka's
//! default. Topic-level keys ([`TOPIC_DEFS`]) take their defaults from a broker
//! synonym, as in Kafka (`retention.ms` ← `log.retention.ms` ← `log.retention.hours`).
//! Unknown keys and values that do not parse are errors, so a typo stops start-up.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Long,
    Bool,
    Str,
    Double,
    Enum(&'static [&'static str]),
    List,
}

pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Option<&'static str>,
}

const fn d(name: &'static str, kind: Kind, default: Option<&'static str>) -> Def {
    Def { name, kind, default }
}

const CLEANUP: &[&str] = &["delete", "compact", "compact,delete", "delete,compact"];
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
    d("log.index.size.max.bytes", Kind::Int, Some("10485760")),
    d("log.cleanup.policy", Kind::Enum(CLEANUP), Some("delete")),
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
    d("offsets.topic.replication.factor", Kind::Int, Some("1")),
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
    d("transaction.state.log.replication.factor", Kind::Int, Some("3")),
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
    d("controller.quorum.voters", Kind::Str, None),
    d("controller.quorum.bootstrap.servers", Kind::Str, None),
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
    ("cleanup.policy", "log.cleanup.policy", Kind::Enum(CLEANUP)),
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
        Kind::Str | Kind::List => Ok(()),
    }
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
        // Derived defaults, as Kafka resolves them.
        let derived = match name {
            "log.retention.ms" => self
                .set
                .get("log.retention.minutes")
                .and_then(|m| m.parse::<i64>().ok())
                .map(|m| m * 60_000)
                .or_else(|| Some(self.int("log.retention.hours") * 3_600_000)),
            "log.roll.ms" => Some(self.int("log.roll.hours") * 3_600_000),
            "log.flush.interval.ms" => Some(self.int("log.flush.scheduler.interval.ms")),
            "log.dirs" => return self.get_with_source("log.dir"),
            "node.id" => self.set.get("broker.id").and_then(|v| v.parse::<i64>().ok()),
            "advertised.listeners" => return self.get_with_source("listeners"),
            _ => None,
        };
        if let Some(v) = derived {
            let src = if self.set.contains_key(match name {
                "log.retention.ms" => "log.retention.hours",
                "log.roll.ms" => "log.roll.hours",
                _ => "",
            }) || (name == "log.retention.ms" && self.set.contains_key("log.retention.minutes"))
                || (name == "node.id" && self.set.contains_key("broker.id"))
            {
                Source::StaticBroker
            } else {
                Source::Default
            };
            return Some((v.to_string(), src));
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
}

/// Validates a topic-level config.
pub fn check_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let (_, _, kind) = TOPIC_DEFS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| ConfigError::Unknown(name.into()))?;
    check_value(name, *kind, value)
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
