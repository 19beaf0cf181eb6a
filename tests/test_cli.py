"""The strom CLI (built on the workspace's own client) against a real server."""

import json
import subprocess

from conftest import STROM


def test_topic_lifecycle(broker, topic_name):
    r = broker.cli("topic", "create", topic_name, "--partitions", "3", "--config", "retention.ms=60000")
    assert r.returncode == 0, r.stderr
    assert topic_name in broker.cli("topic", "list").stdout.split()
    d = broker.cli("topic", "describe", topic_name)
    assert d.returncode == 0, d.stderr
    assert "PartitionCount: 3" in d.stdout and "retention.ms=60000" in d.stdout
    r = broker.cli("topic", "create", topic_name)
    assert r.returncode != 0 and "TOPIC_ALREADY_EXISTS" in r.stderr
    r = broker.cli("topic", "create", "bad name")
    assert r.returncode != 0 and "INVALID_TOPIC_EXCEPTION" in r.stderr
    r = broker.cli("topic", "delete", topic_name)
    assert r.returncode == 0, r.stderr
    assert topic_name not in broker.cli("topic", "list").stdout.split()
    r = broker.cli("topic", "describe", topic_name)
    assert r.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr


def test_produce_consume(broker, topic_name):
    broker.cli("topic", "create", topic_name, "-p", "1")
    lines = "".join(f"key{i}=value {i}\n" for i in range(10))
    r = broker.cli("produce", topic_name, "--key-separator", "=", "--header", "app=cli", "--compression", "zstd", input=lines)
    assert r.returncode == 0, r.stderr
    r = broker.cli("consume", topic_name, "--offset", "beginning", "--count", "10", "--format", "json")
    assert r.returncode == 0, r.stderr
    msgs = [json.loads(l) for l in r.stdout.splitlines()]
    assert [(m["offset"], m["key"], m["value"], m["headers"]) for m in msgs] == [
        (i, f"key{i}", f"value {i}", {"app": "cli"}) for i in range(10)
    ]
    r = broker.cli("consume", topic_name, "--offset", "7", "-n", "2")
    assert r.stdout.splitlines() == ["value 7", "value 8"]
    r = broker.cli("consume", topic_name, "--offset", "end", "--timeout-ms", "300")
    assert r.returncode == 0 and r.stdout == ""
    r = broker.cli("consume", topic_name, "--offset", "4", "-n", "1", "--format", "key-value")
    assert r.stdout == "key4\tvalue 4\n"


def test_unknown_or_invalid_setting_stops_startup(tmp_path):
    for bad, words in [("num.partitionz=3", "unknown configuration 'num.partitionz'"), ("num.partitions=lots", "invalid value 'lots'")]:
        r = subprocess.run([STROM, "server", "--set", f"log.dirs={tmp_path}", "--set", bad], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert words in r.stderr
    cfg = tmp_path / "strom.toml"
    cfg.write_text('"num.partitions" = "x"\n')
    r = subprocess.run([STROM, "server", "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "num.partitions" in r.stderr


def test_toml_config_file(make_broker, tmp_path, topic_name):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    cfg = tmp_path / "strom.toml"
    cfg.write_text('"num.partitions" = 4\n')
    b = make_broker(config_file=cfg).start()
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce(topic_name, value=b"x")
    assert p.flush(20) == 0
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10)
    assert len(md.topics[topic_name].partitions) == 4
