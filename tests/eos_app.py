"""A consume-transform-produce application with confluent-kafka's transactions API,
run as a subprocess by test_transactions.py (which kills it with kill -9 and restarts it).

    python eos_app.py BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP TRANSACTIONAL_ID LOG INSTANCE [--batch N] [--assign P]
                      [--abort-every N]

It reads IN_TOPIC read_committed in the consumer group GROUP and copies each record
to the same partition of OUT_TOPIC as `<input value>@<txn>`, a few records per
transaction, committing the consumed offsets in the same transaction
(`send_offsets_to_transaction`). The transactional id is fixed, so a restarted
instance fences the one it replaces. With `--assign P` it assigns partitions
0..P-1 itself instead of subscribing (offsets are still committed for GROUP).
With `--abort-every N` every Nth transaction is written in full and then
aborted on purpose, so the log holds aborted records for readers to skip.

Every step is appended to LOG as a JSON line, before (`txn`: what it is about to
write) and after (`commit`, `abort`, `write` delivery reports), so the test can
tell committed, aborted and undecided transactions apart after any kill:

    {"op": "txn", "txn": "2-17", "records": [[0, "in-00042@2-17"], ...], "t": ...}
    {"op": "write", "txn": "2-17", "value": "in-00042@2-17", "partition": 0, "offset": 80, "error": null, "t": ...}
    {"op": "commit" | "abort", "txn": "2-17", "t": ..., "error": ...}

Errors follow the transactions API's rules: retriable ones are retried, abortable
ones abort the transaction and rewind the consumer to its committed offsets, and
fatal ones end the process with status 3 (the test restarts it).
"""

import argparse
import json
import os
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)  # a line reaches the kernel as soon as it is written

    def note(self, op, **fields):
        self.f.write(json.dumps({"op": op, "t": time.time(), **fields}) + "\n")


def retrying(what, fn, log, attempts=50):
    """Calls fn until it succeeds or fails with something that is not retriable."""
    for attempt in range(attempts):
        try:
            return fn()
        except KafkaException as e:
            err = e.args[0]
            if not err.retriable() or attempt == attempts - 1:
                raise
            log.note("retry", what=what, error=str(err))
    return None


def rewind(consumer, assignment):
    """Back to the committed offsets, so an aborted transaction's input is read again."""
    committed = consumer.committed(assignment, timeout=30)
    for tp in committed:
        tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        consumer.seek(tp)


def main():
    ap = argparse.ArgumentParser()
    for a in ("bootstrap", "in_topic", "out_topic", "group", "transactional_id", "log", "instance"):
        ap.add_argument(a)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--assign", type=int, default=0)
    ap.add_argument("--abort-every", type=int, default=0, help="abort every Nth transaction on purpose")
    ap.add_argument("--stall-s", type=float, default=20.0, help="exit (status 4) when one transaction takes longer")
    args = ap.parse_args()
    log = Log(args.log)
    log.note("start", instance=args.instance)
    # EOS_APP_DEBUG=eos,protocol turns on librdkafka's debug log (to stderr) for a failing run.
    debug = {"debug": os.environ["EOS_APP_DEBUG"], "log_level": 7} if os.environ.get("EOS_APP_DEBUG") else {}
    # librdkafka 2.16 "re-bootstraps" when it loses every broker (the one node was killed) and can then
    # wedge: the transaction's TxnOffsetCommit goes to a decommissioned broker handle that never
    # connects, and send_offsets_to_transaction never returns. Kafka clients on one node hit the same.
    common = {"metadata.recovery.strategy": "none", "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 500,
              "log_level": 2, **debug}

    consumer = Consumer({
        "bootstrap.servers": args.bootstrap, "group.id": args.group, "isolation.level": "read_committed",
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "group.instance.id": f"{args.group}-app",
        "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 50, **common,
    })
    producer = Producer({
        "bootstrap.servers": args.bootstrap, "transactional.id": args.transactional_id,
        "transaction.timeout.ms": 20000, "message.timeout.ms": 20000, "linger.ms": 1,
        # CONCURRENT_TRANSACTIONS answers AddOffsetsToTxn until the last commit's markers are written:
        # a short backoff keeps the pipeline from idling.
        "retry.backoff.ms": 10, **common,
    })
    retrying("init", lambda: producer.init_transactions(30), log)
    log.note("ready")

    if args.assign:
        tps = [TopicPartition(args.in_topic, p) for p in range(args.assign)]
        committed = consumer.committed(tps, timeout=30)
        for tp in committed:
            tp.offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
        consumer.assign(committed)
    else:
        consumer.subscribe([args.in_topic])

    k = 0
    while True:
        msgs = [m for m in consumer.consume(args.batch, 0.1) if m.error() is None]
        if not msgs:
            continue
        txn = f"{args.instance}-{k}"
        k += 1
        records = [[m.partition(), f"{m.value().decode()}@{txn}"] for m in msgs]
        log.note("txn", txn=txn, records=records)
        watchdog = stall_watchdog(args.stall_s, txn, log)
        try:
            if args.abort_every and k % args.abort_every == 0:
                transact(producer, consumer, args.out_topic, txn, records, log, commit=False)
                log.note("abort", txn=txn, error="on purpose")
                rewind(consumer, consumer.assignment())
                continue
            transact(producer, consumer, args.out_topic, txn, records, log)
            log.note("commit", txn=txn)
        except KafkaException as e:
            err = e.args[0]
            if err.fatal() or not err.txn_requires_abort():
                log.note("fatal", txn=txn, error=str(err))
                sys.exit(3)
            retrying("abort", lambda: producer.abort_transaction(10), log)
            log.note("abort", txn=txn, error=str(err))
            rewind(consumer, consumer.assignment())
        finally:
            watchdog.cancel()


def stall_watchdog(seconds, txn, log):
    """Ends the process if a transaction is stuck. librdkafka 2.16 can queue a request on the
    handle of a broker it has decommissioned (one that left the metadata while it was down);
    the request never completes and the transactional API call never returns, whatever its
    timeout. A real application's liveness check would restart it; so does the test, and
    the next instance fences this one."""
    def stalled():
        log.note("stalled", txn=txn)
        os._exit(4)

    t = threading.Timer(seconds, stalled)
    t.daemon = True
    t.start()
    return t


def transact(producer, consumer, out_topic, txn, records, log, commit=True):
    def report(err, m):
        log.note("write", txn=txn, value=m.value().decode(), partition=m.partition(),
                 offset=m.offset() if err is None else None, error=str(err) if err else None)

    producer.begin_transaction()
    for partition, value in records:
        producer.produce(out_topic, value=value.encode(), partition=partition, on_delivery=report)
    positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
    retrying("send_offsets",
             lambda: producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 10), log)
    if commit:
        retrying("commit", lambda: producer.commit_transaction(10), log)
    else:
        assert producer.flush(10) == 0  # the records reach the log before the abort
        retrying("abort", lambda: producer.abort_transaction(10), log)


if __name__ == "__main__":
    main()
