"""Details where Strom answers as Kafka 4.x does, seen through real clients.

- Error messages: null on success where Kafka sends null (CreateTopics,
  CreatePartitions, AlterConfigs, IncrementalAlterConfigs, the reassignment
  APIs), empty where Kafka leaves the field at its empty default
  (DescribeConfigs), "NONE" where Kafka writes the error's name
  (FindCoordinator before v4).
- An empty `cleanup.policy`: accepted, shown empty, and it keeps the data
  (no deletion, no compaction).
- DescribeConfigs: sources, `read_only`, the synonym chain in Kafka's layer
  order, `config_type` and documentation.
"""

import asyncio
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic

from conftest import create_topic
from test_retention import fill, watermarks


def run(coro):
    return asyncio.run(coro)


def kp_admin(bootstrap):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)


def kp_raw(admin, request):
    """Sends one request as kafka-python builds it and returns the decoded response."""
    return admin._manager.run(admin._send_request_to_controller, request)


def test_aiokafka_admin_messages_are_null_on_success(broker, topic_name):
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
    from aiokafka.admin import NewTopic as AioNewTopic
    from aiokafka.admin.config_resource import ConfigResource as AioResource
    from aiokafka.admin.config_resource import ConfigResourceType

    async def go():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            resp = await admin.create_topics([AioNewTopic(topic_name, 1, 1)])
            assert resp.topic_errors == [(topic_name, 0, None)]
            resp = await admin.create_partitions({topic_name: NewPartitions(total_count=2)})
            assert [tuple(t) for t in resp.topic_errors] == [(topic_name, 0, None)]
            resps = await admin.alter_configs([AioResource(ConfigResourceType.TOPIC, topic_name, {"retention.ms": "60000"})])
            results = [r for resp in resps for r in resp.resources]
            assert [(r[0], r[1]) for r in results] == [(0, None)]
            # Kafka leaves DescribeConfigs' per-resource message at its empty default.
            resps = await admin.describe_configs([AioResource(ConfigResourceType.TOPIC, topic_name)])
            error_code, error_message, *_ = resps[0].resources[0]
            assert (error_code, error_message) == (0, "")
            # An error keeps its message.
            resps = await admin.describe_configs([AioResource(ConfigResourceType.TOPIC, topic_name + "-missing")])
            error_code, error_message, *_ = resps[0].resources[0]
            assert error_code == 3 and error_message
            resp = await admin.delete_topics([topic_name])
            assert [tuple(t)[:2] for t in resp.topic_error_codes] == [(topic_name, 0)]
        finally:
            await admin.close()

    run(go())


def test_kafka_python_admin_messages_are_null_on_success(broker, topic_name):
    from kafka.protocol.admin import (
        AlterPartitionReassignmentsRequest,
        IncrementalAlterConfigsRequest,
        ListPartitionReassignmentsRequest,
    )

    admin = kp_admin(broker.bootstrap)
    try:
        created = admin.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}})
        assert [(t["error_code"], t["error_message"]) for t in created["topics"]] == [(0, None)]
        # A failure still explains itself.
        again = admin.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}}, raise_errors=False)
        assert again["topics"][0]["error_code"] == 36 and "already exists" in again["topics"][0]["error_message"]
        parts = admin.create_partitions({topic_name: 3})
        assert [(r.error_code, r.error_message) for r in parts.results] == [(0, None)]
        # IncrementalAlterConfigs, as kafka-python encodes it.
        req = IncrementalAlterConfigsRequest(
            resources=[(2, topic_name, [("retention.ms", 0, "120000")])], validate_only=False)
        resp = kp_raw(admin, req)
        assert [(r.error_code, r.error_message) for r in resp.responses] == [(0, None)]
        bad = IncrementalAlterConfigsRequest(resources=[(2, topic_name, [("retention.ms", 0, "soon")])], validate_only=False)
        resp = kp_raw(admin, bad)
        assert resp.responses[0].error_code == 40 and "soon" in resp.responses[0].error_message
        # The reassignment APIs: top-level and per-partition messages.
        _Topic = AlterPartitionReassignmentsRequest.ReassignableTopic
        req = AlterPartitionReassignmentsRequest(
            timeout_ms=30000,
            topics=[_Topic(name=topic_name, partitions=[_Topic.ReassignablePartition(partition_index=0, replicas=[1])])])
        resp = kp_raw(admin, req)
        assert (resp.error_code, resp.error_message) == (0, None)
        assert [(p.error_code, p.error_message) for t in resp.responses for p in t.partitions] == [(0, None)]
        resp = kp_raw(admin, ListPartitionReassignmentsRequest(timeout_ms=30000, topics=None))
        assert (resp.error_code, resp.error_message) == (0, None)
        deleted = admin.delete_topics([topic_name])
        assert [(t["error_code"], t.get("error_message")) for t in deleted["topics"]] == [(0, None)]
    finally:
        admin.close()


def test_find_coordinator_messages_as_kafka_writes_them(broker):
    from kafka.protocol.metadata import FindCoordinatorRequest

    admin = kp_admin(broker.bootstrap)
    try:
        # Before v4 Kafka writes the error's name, "NONE", on success.
        deadline = time.time() + 30
        while True:
            resp = kp_raw(admin, FindCoordinatorRequest(key="g-fidelity", key_type=0, version=3))
            if resp.error_code == 0 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert (resp.error_code, resp.error_message, resp.node_id) == (0, "NONE", 1)
        # From v4 a found key's message stays empty.
        resp = kp_raw(admin, FindCoordinatorRequest(coordinator_keys=["g-fidelity"], key_type=0, version=4))
        assert [(c.error_code, c.error_message, c.node_id) for c in resp.coordinators] == [(0, "", 1)]
        # An unknown key type: no coordinator, node and port -1, a message.
        resp = kp_raw(admin, FindCoordinatorRequest(key="x", key_type=7, version=3))
        assert (resp.error_code, resp.node_id, resp.port) == (42, -1, -1)
    finally:
        admin.close()


def describe_topic(admin, topic):
    return list(admin.describe_configs([ConfigResource("topic", topic)]).values())[0].result(10)


def alter(admin, resource):
    list(admin.incremental_alter_configs([resource]).values())[0].result(10)


def test_subtracting_every_cleanup_policy_leaves_it_empty(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 1, {"cleanup.policy": "delete"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    alter(admin, ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)]))
    entry = describe_topic(admin, topic_name)["cleanup.policy"]
    assert (entry.value, entry.source) == ("", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    # The empty list survives a restart and APPEND starts from it.
    broker.restart(hard=True)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert describe_topic(admin, topic_name)["cleanup.policy"].value == ""
    alter(admin, ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)]))
    assert describe_topic(admin, topic_name)["cleanup.policy"].value == "compact"
    # SET to empty, CreateTopics with an empty policy, and legacy AlterConfigs.
    alter(admin, ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("cleanup.policy", "", incremental_operation=AlterConfigOpType.SET)]))
    assert describe_topic(admin, topic_name)["cleanup.policy"].value == ""
    admin.create_topics([NewTopic(topic_name + "-e", 1, 1, config={"cleanup.policy": ""})])[topic_name + "-e"].result(10)
    assert describe_topic(admin, topic_name + "-e")["cleanup.policy"].value == ""
    list(admin.alter_configs([ConfigResource("topic", topic_name + "-e", set_config={"cleanup.policy": "delete"})]).values())[0].result(10)
    assert describe_topic(admin, topic_name + "-e")["cleanup.policy"].value == "delete"
    list(admin.alter_configs([ConfigResource("topic", topic_name + "-e", set_config={"cleanup.policy": ""})]).values())[0].result(10)
    assert describe_topic(admin, topic_name + "-e")["cleanup.policy"].value == ""
    # Items outside delete/compact are still refused.
    bad = ConfigResource("topic", topic_name, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete,", incremental_operation=AlterConfigOpType.SET)])
    try:
        alter(admin, bad)
        raise AssertionError("a trailing comma was accepted")
    except Exception as e:  # KafkaException
        assert e.args[0].code() == 40  # INVALID_CONFIG


def test_empty_cleanup_policy_keeps_data_past_retention(make_broker, topic_name):
    b = make_broker({"log.retention.check.interval.ms": "200"}).start()
    keep, drop = topic_name + "-keep", topic_name + "-drop"
    tight = {"retention.ms": "100", "retention.bytes": "20000", "segment.bytes": "50000"}
    create_topic(b.bootstrap, keep, 1, {**tight, "cleanup.policy": "delete"})
    create_topic(b.bootstrap, drop, 1, {**tight, "cleanup.policy": "delete"})
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    alter(admin, ConfigResource("topic", keep, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)]))
    fill(b.bootstrap, keep, 30)
    fill(b.bootstrap, drop, 30)
    # The control topic loses its old segments to retention...
    deadline = time.time() + 30
    while time.time() < deadline and watermarks(b.bootstrap, drop)[0] == 0:
        time.sleep(0.2)
    assert watermarks(b.bootstrap, drop)[0] > 0
    # ...while several more passes leave the empty-policy topic whole.
    time.sleep(1.5)
    assert watermarks(b.bootstrap, keep) == (0, 30)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "keep", "enable.auto.commit": False})
    c.assign([TopicPartition(keep, 0, 0)])
    got = []
    deadline = time.time() + 30
    while len(got) < 30 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(int(m.value()[:6]))
    c.close()
    assert got == list(range(30))
    assert "deleting segment out of retention" in b.read_log()


def test_describe_configs_sources_read_only_and_synonyms(make_broker, topic_name):
    b = make_broker({"message.max.bytes": "3000", "log.retention.minutes": "60"}).start()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    alter(admin, ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("message.max.bytes", "5000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)]))
    out = b.cli("config", "set", "--broker-default", "message.max.bytes=4000")
    assert out.returncode == 0, out.stderr
    create_topic(b.bootstrap, topic_name, 1, {"max.message.bytes": "6000", "retention.ms": "1000"})

    # confluent-kafka (librdkafka asks for synonyms): the retention chain spans three broker names.
    cfg = describe_topic(admin, topic_name)
    ret = cfg["retention.ms"]
    assert (ret.value, ret.source, ret.is_read_only) == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value, False)
    chain = [(s.name, s.value, s.source) for s in ret.synonyms.values()]
    assert chain == [
        ("retention.ms", "1000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
        ("log.retention.ms", "7200000", ConfigSource.DYNAMIC_BROKER_CONFIG.value),
        ("log.retention.minutes", "60", ConfigSource.STATIC_BROKER_CONFIG.value),
        ("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG.value),
    ]
    # A topic setting with only Kafka's default shows that one layer.
    seg = cfg["segment.bytes"]
    assert seg.source == ConfigSource.DEFAULT_CONFIG.value and seg.is_default
    assert [(s.name, s.source) for s in seg.synonyms.values()] == [("log.segment.bytes", ConfigSource.DEFAULT_CONFIG.value)]

    bcfg = list(admin.describe_configs([ConfigResource("broker", "1")]).values())[0].result(10)
    # advertised.listeners is not set: Kafka reports its own (unset) value as the
    # default, not the listeners it falls back to, and it cannot change at run time.
    adv = bcfg["advertised.listeners"]
    assert (adv.value, adv.source, adv.is_read_only) == (None, ConfigSource.DEFAULT_CONFIG.value, True)
    lst = bcfg["listeners"]
    assert (lst.source, lst.is_read_only) == (ConfigSource.STATIC_BROKER_CONFIG.value, True)
    mmb = bcfg["message.max.bytes"]
    assert (mmb.value, mmb.source, mmb.is_read_only) == ("5000", ConfigSource.DYNAMIC_BROKER_CONFIG.value, False)
    num = bcfg["num.partitions"]
    assert (num.value, num.source, num.is_read_only) == ("1", ConfigSource.DEFAULT_CONFIG.value, True)
    # log.retention.ms itself is dynamic; log.retention.hours' chain starts at its own default.
    hours = bcfg["log.retention.hours"]
    assert (hours.value, hours.source) == ("168", ConfigSource.DEFAULT_CONFIG.value)

    # kafka-python keeps synonyms as a list: the whole five-layer chain, in order.
    from kafka.admin import ConfigResource as KpResource
    from kafka.admin import ConfigResourceType

    kp = kp_admin(b.bootstrap)
    try:
        got = kp.describe_configs([KpResource(ConfigResourceType.TOPIC, topic_name)], include_synonyms=True, config_filter="all")
        mx = got["topic"][topic_name]["max.message.bytes"]
        assert [(s["name"], s["value"], s["source"]) for s in mx["synonyms"]] == [
            ("max.message.bytes", "6000", "DYNAMIC_TOPIC_CONFIG"),
            ("message.max.bytes", "5000", "DYNAMIC_BROKER_CONFIG"),
            ("message.max.bytes", "4000", "DYNAMIC_DEFAULT_BROKER_CONFIG"),
            ("message.max.bytes", "3000", "STATIC_BROKER_CONFIG"),
            ("message.max.bytes", "1048588", "DEFAULT_CONFIG"),
        ]
        # kafka-python's "dynamic" filter keeps the broker keys that are not read-only.
        dyn = kp.describe_configs([KpResource(ConfigResourceType.BROKER, "1")], config_filter="dynamic")["broker"]["1"]
        assert "message.max.bytes" in dyn and "log.retention.hours" in dyn
        assert "advertised.listeners" not in dyn and "num.partitions" not in dyn
    finally:
        kp.close()


def test_describe_configs_types_and_documentation(broker, topic_name):
    from kafka.protocol.admin import DescribeConfigsRequest as R

    create_topic(broker.bootstrap, topic_name, 1)
    broker.cli("config", "set", "--broker-default", "log.retention.ms=120000")
    kp = kp_admin(broker.bootstrap)
    try:
        def describe(resource_type, name, documentation):
            req = R(resources=[R.DescribeConfigsResource(resource_type=resource_type, resource_name=name, configuration_keys=None)],
                    include_synonyms=False, include_documentation=documentation)
            resp = kp_raw(kp, req)
            assert resp.results[0].error_code == 0
            return {c.name: c for c in resp.results[0].configs}

        topic = describe(2, topic_name, True)
        types = {name: topic[name].config_type for name in
                 ["unclean.leader.election.enable", "compression.type", "max.message.bytes", "retention.ms",
                  "min.cleanable.dirty.ratio", "cleanup.policy"]}
        # BOOLEAN=1, STRING=2, INT=3, LONG=5, DOUBLE=6, LIST=7
        assert types == {"unclean.leader.election.enable": 1, "compression.type": 2, "max.message.bytes": 3,
                         "retention.ms": 5, "min.cleanable.dirty.ratio": 6, "cleanup.policy": 7}
        assert all(c.documentation and "\n" not in c.documentation for c in topic.values())
        assert all(not c.read_only for c in topic.values())
        assert len({c.documentation for c in topic.values()}) == len(topic)
        node = describe(4, "1", True)
        assert node["offsets.topic.replication.factor"].config_type == 4  # SHORT
        assert node["process.roles"].config_type == 7 and node["auto.create.topics.enable"].config_type == 1
        assert all(c.documentation for c in node.values())
        # Without the flag there is no documentation at all (null, not empty).
        plain = describe(2, topic_name, False)
        assert {c.documentation for c in plain.values()} == {None}
        # The cluster-wide default resource ("") lists only the keys set there.
        default = describe(4, "", True)
        assert list(default) == ["log.retention.ms"]
        entry = default["log.retention.ms"]
        assert (entry.value, entry.config_source, entry.read_only, entry.config_type) == ("120000", 3, False, 5)
    finally:
        kp.close()
