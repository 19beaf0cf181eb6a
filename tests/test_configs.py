"""Live topic configuration and partition growth, with real clients and the CLI."""

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions

from conftest import create_topic


def describe(admin, topic):
    res = admin.describe_configs([ConfigResource("topic", topic)])
    return list(res.values())[0].result(10)


def test_incremental_alter_configs_apply_at_once_and_survive_restart(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    list(admin.incremental_alter_configs([res]).values())[0].result(10)
    cfg = describe(admin, topic_name)
    assert cfg["max.message.bytes"].value == "2000" and cfg["max.message.bytes"].source == 1
    assert cfg["cleanup.policy"].value == "delete,compact"
    # Takes effect at once: a 5000-byte message is now too large.
    p = Producer({"bootstrap.servers": broker.bootstrap})
    errs = []
    p.produce(topic_name, value=b"x" * 5000, on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs and errs[0] is not None and errs[0].name() == "MSG_SIZE_TOO_LARGE"
    # Survives a restart.
    broker.restart(hard=True)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert describe(admin, topic_name)["max.message.bytes"].value == "2000"
    # DELETE and SUBTRACT.
    res = ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("max.message.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT),
    ])
    list(admin.incremental_alter_configs([res]).values())[0].result(10)
    cfg = describe(admin, topic_name)
    assert cfg["max.message.bytes"].value == "1048588" and cfg["max.message.bytes"].is_default
    assert cfg["cleanup.policy"].value == "delete"
    p = Producer({"bootstrap.servers": broker.bootstrap})
    errs = []
    p.produce(topic_name, value=b"x" * 5000, on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs == [None]
    # Invalid values and names are refused with INVALID_CONFIG.
    for entry in [ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("no.such.thing", "1", incremental_operation=AlterConfigOpType.SET),
                  ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)]:
        with pytest.raises(KafkaException) as e:
            list(admin.incremental_alter_configs([ConfigResource("topic", topic_name, incremental_configs=[entry])]).values())[0].result(10)
        assert e.value.args[0].code() == 40  # INVALID_CONFIG


def test_legacy_alter_configs_replaces_overrides(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"retention.ms": "1000", "segment.bytes": "100000"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    list(admin.alter_configs([ConfigResource("topic", topic_name, set_config={"retention.ms": "5000"})]).values())[0].result(10)
    cfg = describe(admin, topic_name)
    assert cfg["retention.ms"].value == "5000"
    assert cfg["segment.bytes"].is_default, "AlterConfigs replaces the whole set"


def test_create_partitions(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 2)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_partitions([NewPartitions(topic_name, 5)])[topic_name].result(10)
    assert len(admin.list_topics(timeout=10).topics[topic_name].partitions) == 5
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic_name, value=b"new", partition=4)
    assert p.flush(10) == 0
    with pytest.raises(KafkaException) as e:
        admin.create_partitions([NewPartitions(topic_name, 3)])[topic_name].result(10)
    assert e.value.args[0].code() == 37  # INVALID_PARTITIONS
    broker.restart(hard=True)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert len(admin.list_topics(timeout=10).topics[topic_name].partitions) == 5


def test_cli_config_and_topic_alter(broker, topic_name):
    broker.cli("topic", "create", topic_name, "-p", "1")
    out = broker.cli("config", "set", "--topic", topic_name, "retention.ms=60000", "segment.bytes=500000")
    assert out.returncode == 0, out.stderr
    got = broker.cli("config", "get", "--topic", topic_name).stdout
    assert "retention.ms=60000\t(topic)" in got and "segment.bytes=500000\t(topic)" in got
    assert "flush.ms=9223372036854775807\t(default)" in got
    out = broker.cli("config", "delete", "--topic", topic_name, "retention.ms")
    assert out.returncode == 0, out.stderr
    assert f"retention.ms={168 * 3600 * 1000}\t(default)" in broker.cli("config", "get", "--topic", topic_name).stdout
    out = broker.cli("config", "set", "--topic", topic_name, "retention.ms=never")
    assert out.returncode != 0 and "INVALID_CONFIG" in out.stderr
    assert "num.partitions=1\t(default)" in broker.cli("config", "get", "--broker", "1").stdout
    out = broker.cli("topic", "alter", topic_name, "--partitions", "3")
    assert out.returncode == 0, out.stderr
    assert "PartitionCount: 3" in broker.cli("topic", "describe", topic_name).stdout


def test_dynamic_broker_settings(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    res = ConfigResource("broker", "1", incremental_configs=[ConfigEntry("message.max.bytes", "3000", incremental_operation=AlterConfigOpType.SET)])
    list(admin.incremental_alter_configs([res]).values())[0].result(10)
    bcfg = list(admin.describe_configs([ConfigResource("broker", "1")]).values())[0].result(10)
    assert bcfg["message.max.bytes"].value == "3000" and bcfg["message.max.bytes"].source == 2  # DYNAMIC_BROKER_CONFIG
    # The topic has no override, so it follows the broker at once.
    tcfg = describe(admin, topic_name)
    assert tcfg["max.message.bytes"].value == "3000" and tcfg["max.message.bytes"].source == 2
    p = Producer({"bootstrap.servers": broker.bootstrap})
    errs = []
    p.produce(topic_name, value=b"x" * 5000, on_delivery=lambda e, m: errs.append(e))
    p.flush(10)
    assert errs[0] is not None and errs[0].name() == "MSG_SIZE_TOO_LARGE"
    # Static-only settings cannot change at run time.
    bad = ConfigResource("broker", "1", incremental_configs=[ConfigEntry("num.partitions", "3", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        list(admin.incremental_alter_configs([bad]).values())[0].result(10)
    assert e.value.args[0].code() == 42  # INVALID_REQUEST
    # Survives a restart; the CLI sees and changes it too.
    broker.restart(hard=True)
    out = broker.cli("config", "get", "--broker", "1")
    assert "message.max.bytes=3000\t(dynamic broker)" in out.stdout
    out = broker.cli("config", "set", "--broker-default", "log.retention.ms=120000")
    assert out.returncode == 0, out.stderr
    assert "retention.ms=120000\t(dynamic broker)" in broker.cli("config", "get", "--topic", topic_name).stdout
    out = broker.cli("config", "delete", "--broker", "1", "message.max.bytes")
    assert out.returncode == 0, out.stderr
    assert "message.max.bytes=1048588\t(default)" in broker.cli("config", "get", "--broker", "1").stdout
