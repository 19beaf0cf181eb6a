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
        Ok(c)
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
        for key in ["listeners", "advertised.listeners"] {
            if let Some(v) = self.set.get(key) {
                parse_listener(v).map_err(|reason| ConfigError::Invalid { name: key.into(), value: v.clone(), reason })?;
            }
        }
        Ok(())
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

    pub fn data_dir(&self) -> String {
        // log.dirs may list several; Strom uses the first.
        self.get("log.dirs").split(',').next().unwrap_or("./strom-data").trim().to_string()
    }

    /// (host, port) to bind.
    pub fn listener(&self) -> (String, u16) {
        parse_listener(&self.get("listeners")).unwrap_or_else(|_| ("127.0.0.1".into(), 9092))
    }

    /// (host, port) clients are told to connect to.
    pub fn advertised(&self) -> (String, u16) {
        parse_listener(&self.get("advertised.listeners")).unwrap_or_else(|_| self.listener())
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

/// Parses `PLAINTEXT://host:port` (or `host:port`) into (host, port).
pub fn parse_listener(v: &str) -> Result<(String, u16), String> {
    let first = v.split(',').next().unwrap_or("").trim();
    let addr = match first.split_once("://") {
        Some((proto, rest)) => {
            if proto != "PLAINTEXT" {
                return Err(format!("only PLAINTEXT listeners are supported, got {proto}"));
            }
            rest
        }
        None => first,
    };
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port '{port}'"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.trim_matches(|c| c == '[' || c == ']').to_string(), port))
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
}
