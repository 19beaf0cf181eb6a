"""kcat (librdkafka's CLI) against a real strom server."""

import subprocess

import pytest

from conftest import create_topic


def kcat(*args, input=None):
    out = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_kcat_produce_consume(broker, topic_name, codec):
    create_topic(broker.bootstrap, topic_name, 1)
    lines = "".join(f"k{i}:v{i}\n" for i in range(50))
    kcat("-b", broker.bootstrap, "-P", "-t", topic_name, "-K:", "-z", codec, "-H", "src=kcat", input=lines.encode())
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic_name, "-e", "-f", "%k|%s|%o|%h\n")
    assert out.splitlines() == [f"k{i}|v{i}|{i}|src=kcat" for i in range(50)]
    # From a given offset, with a count.
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic_name, "-o", "45", "-c", "3", "-f", "%s\n")
    assert out.splitlines() == ["v45", "v46", "v47"]
    # From the end: nothing, then exit.
    out = kcat("-b", broker.bootstrap, "-C", "-t", topic_name, "-o", "end", "-e", "-f", "%s\n")
    assert out == ""


def test_kcat_metadata(broker, topic_name):
    create_topic(broker.bootstrap, topic_name, 3)
    out = kcat("-b", broker.bootstrap, "-L", "-t", topic_name)
    assert f'topic "{topic_name}" with 3 partitions' in out
    assert "broker 1 at 127.0.0.1" in out
