//! A data directory from before the metadata quorum keeps working: its
//! `metadata.log` is imported once, with its cluster id, topics and configs.

use std::time::Duration;

use strom_broker::{BrokerConfig, Node};
use strom_client::Client;
use strom_metadata::MetadataRecord;
use uuid::Uuid;

async fn start(dir: &std::path::Path) -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let cfg = BrokerConfig::from_pairs([
        ("log.dirs".to_string(), dir.display().to_string()),
        ("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string()),
    ])
    .unwrap();
    let node = Node::start(cfg).await.unwrap();
    let addr = node.client_addr.unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(node.serve(async {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_quorum_data_directory_is_imported_once() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let mut records = vec![MetadataRecord::Topic { name: "old".into(), id }];
    for p in 0..2 {
        // The pre-quorum record shape: no ISR, no partition epoch.
        let json = format!(r#"{{"type":"Partition","topic_id":"{id}","partition":{p},"replicas":[1],"leader":1,"leader_epoch":0}}"#);
        records.push(serde_json::from_str(&json).unwrap());
    }
    records.push(MetadataRecord::TopicConfig { topic_id: id, key: "retention.ms".into(), value: Some("12345".into()) });
    strom_metadata::write_legacy_log(dir.path(), &records).unwrap();
    strom_metadata::write_properties(dir.path(), 1, "LegacyClusterId0000000").unwrap();

    for round in 0..2 {
        let (addr, stop, task) = start(dir.path()).await;
        let mut c = Client::connect(&addr).await.unwrap();
        let (brokers, cluster, topics) = c.metadata(None, false).await.unwrap();
        assert_eq!(cluster, "LegacyClusterId0000000", "round {round}");
        assert_eq!(brokers.len(), 1);
        let old: Vec<_> = topics.iter().filter(|t| t.name == "old").collect();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].id, id, "the topic keeps its id");
        assert_eq!(old[0].partitions.len(), 2);
        let configs = c.describe_configs(2, "old").await.unwrap();
        assert!(configs.iter().any(|(k, v, _)| k == "retention.ms" && v.as_deref() == Some("12345")));
        if round == 0 {
            let rec = strom_protocol::records::Record { value: Some(bytes::Bytes::from_static(b"kept")), ..Default::default() };
            c.produce("old", 1, vec![rec], -1, strom_protocol::compression::Codec::None).await.unwrap();
        } else {
            let f = c.fetch("old", 1, 0, Duration::from_millis(100), 1 << 20).await.unwrap();
            assert_eq!(f.records.len(), 1);
        }
        let _ = stop.send(());
        task.await.unwrap();
    }
}
