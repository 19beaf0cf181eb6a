"""A confluent-kafka group member run as its own process by test_groups.py.

Prints one line per message ("partition offset value"), commits each message
synchronously after printing it, and runs until killed or until --idle seconds
pass without a message.
"""

import argparse
import sys
import time

from confluent_kafka import Consumer

ap = argparse.ArgumentParser()
ap.add_argument("bootstrap")
ap.add_argument("topic")
ap.add_argument("group")
ap.add_argument("--idle", type=float, default=8.0)
ap.add_argument("--delay", type=float, default=0.0)
a = ap.parse_args()

c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": a.group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
c.subscribe([a.topic])
last = time.time()
while time.time() - last < a.idle:
    m = c.poll(0.2)
    if m is None or m.error():
        continue
    last = time.time()
    print(m.partition(), m.offset(), m.value().decode(), flush=True)
    if a.delay:
        time.sleep(a.delay)
    c.commit(m, asynchronous=False)
c.close()
sys.exit(0)
