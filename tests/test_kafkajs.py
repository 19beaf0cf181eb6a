"""kafkajs against a real strom server (node + tests/js/roundtrip.js)."""

import json
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"


def node(*args):
    out = subprocess.run(["node", str(JS / "roundtrip.js"), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("codec", ["none", "gzip"])
def test_kafkajs_produce_and_read(broker, topic_name, codec):
    res = node("produce", broker.bootstrap, topic_name, 100, codec)
    assert res["res"][0]["errorCode"] == 0
    assert res["offsets"][0]["high"] == "100"
    got = node("read", broker.bootstrap, topic_name, 0, 100)
    assert [m["value"] for m in got] == [f"value-{i}" for i in range(100)]
    assert [m["offset"] for m in got] == [str(i) for i in range(100)]
    assert got[5]["key"] is None and got[6]["key"] == "k6"
    assert got[7]["headers"] == {"i": "7"}
