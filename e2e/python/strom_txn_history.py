#!/usr/bin/env python3
"""confluent-kafka (librdkafka) transactions recorded as a history, driven by
broker/tests/cluster_txn_history.rs.

Proves nothing by itself: it runs librdkafka's transactional producer and a
read_committed consumer as separate processes, so that the test can kill and
pause brokers under them, and prints what each saw as JSON lines on stdout.
Times are time.monotonic() (CLOCK_MONOTONIC, one clock for every process on
the machine), so the test can order a read against a commit.

  produce --bootstrap B --topics T1,T2 --partitions N --transactional-id T
          --producer P --seed S
       Runs transactions until "stop" (or end of input) on stdin. Each writes
       1-3 unique values ("P-<txn>-<i>") to each of 2-4 random partitions of
       the topics, then commits or aborts at random (seeded). Events:
       transaction (producer, txn, values as [topic, partition, value] in send
       order, outcome, ending_at: the time just before the commit or abort
       call), preceded by begin (producer, txn, values, at) before anything
       of the transaction is sent. The outcome is what the client saw: "committed" when
       commit_transaction returned, "aborted" when the test chose to abort or
       an error aborted it before the commit call (a fatal error replaces the
       producer, whose init aborts what the old one left open), "unknown" when
       commit_transaction itself failed. Then closed.
  read --bootstrap B --topics T1,T2 --partitions N [--until-end] [--group G]
       A read_committed consumer of every partition from the beginning
       (assigned, no group membership; with --group a member of group G
       instead, subscribed, committing what it read after each batch).
       Events: read (topic, partition, offset, value, at), committed (after
       a commit). With --until-end it exits (event "end") once every
       partition reached its end; otherwise it reads until "stop".
  txn --bootstrap B --topic T --partition P --transactional-id T
      --values V1,V2,... (--commit | --hang)
       One transaction writing the values to T-P: committed (then exits), or
       left open with the values written ("written"), waiting until the
       test kills the process (a long transaction.timeout.ms keeps it open).
"""

import argparse
import json
import random
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def fatal(message):
    emit("error", message=message)
    sys.exit(1)


def on_client_error(err):
    # Transient conditions too (a broker killed, a coordinator moving); shown on failure.
    emit("client_error", message=str(err))


def stop_on_input():
    stop = threading.Event()

    def read():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=read, daemon=True).start()
    return stop


def retrying(call):
    """Runs call again while librdkafka calls its error retriable; other errors are raised."""
    while True:
        try:
            return call()
        except KafkaException as e:
            error = e.args[0]
            if not error.retriable() or error.txn_requires_abort() or error.fatal():
                raise
            emit("client_error", message=f"retrying: {error}")


def produce(args):
    topics = args.topics.split(",")
    rng = random.Random(args.seed)

    def new_producer():
        p = Producer(
            {
                "bootstrap.servers": args.bootstrap,
                "transactional.id": args.transactional_id,
                "transaction.timeout.ms": args.transaction_timeout_ms,
                "error_cb": on_client_error,
            }
        )
        retrying(lambda: p.init_transactions(120))
        return p

    def on_delivery(err, msg):
        # Why a transaction failed, shown with the test's diagnostics.
        if err is not None:
            emit("client_error", message=f"delivery of {msg.value().decode()} to {msg.topic()}-{msg.partition()} failed: {err}")

    producer = new_producer()
    stop = stop_on_input()
    txn = 0
    while not stop.is_set():
        txn += 1
        targets = rng.sample([(t, p) for t in topics for p in range(args.partitions)], rng.randint(2, 4))
        values = []
        for topic, partition in targets:
            for i in range(rng.randint(1, 3)):
                values.append([topic, partition, f"{args.producer}-{txn}-{len(values)}"])
        commit = rng.random() < 0.7
        # Before anything is sent: a producer killed mid-transaction leaves
        # its values known to the test, their outcome unknown.
        emit("begin", producer=args.producer, txn=txn, values=values, at=time.monotonic())
        ending_at = None
        outcome = "aborted"
        try:
            producer.begin_transaction()
            for topic, partition, value in values:
                producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
            producer.poll(0)
            ending_at = time.monotonic()
            if commit:
                try:
                    retrying(lambda: producer.commit_transaction(60))
                    outcome = "committed"
                except KafkaException:
                    outcome = "unknown"
                    raise
            else:
                retrying(lambda: producer.abort_transaction(60))
        except KafkaException as e:
            error = e.args[0]
            emit("client_error", message=f"transaction {txn} ({outcome}): {error}")
            if error.txn_requires_abort():
                try:
                    retrying(lambda: producer.abort_transaction(60))
                except KafkaException as e:
                    if not e.args[0].fatal():
                        fatal(f"abort after {error} failed: {e}")
                    error = e.args[0]
            if error.fatal():
                producer = new_producer()
            elif not error.txn_requires_abort():
                fatal(f"transaction {txn} failed: {error}")
        emit(
            "transaction",
            producer=args.producer,
            txn=txn,
            values=values,
            outcome=outcome,
            ending_at=ending_at if ending_at is not None else time.monotonic(),
        )
    emit("closed")


def read(args):
    topics = args.topics.split(",")
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            # librdkafka refuses assign() without a group.id; without --group it never joins nor commits.
            "group.id": args.group or "strom-txn-history-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "error_cb": on_client_error,
        }
    )
    partitions = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(args.partitions)]
    if args.group:
        consumer.subscribe(topics, on_assign=lambda _c, ps: emit("assigned", partitions=[p.partition for p in ps]))
    else:
        consumer.assign(partitions)
    at_end = set()
    stop = stop_on_input()
    while not stop.is_set():
        batch = consumer.consume(num_messages=500, timeout=0.5)
        if args.group and any(m.error() is None for m in batch):
            consumer.commit(asynchronous=False)
            emit("committed")
        for m in batch:
            at = time.monotonic()
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add((m.topic(), m.partition()))
                else:
                    on_client_error(m.error())
                continue
            at_end.discard((m.topic(), m.partition()))
            emit(
                "read",
                topic=m.topic(),
                partition=m.partition(),
                offset=m.offset(),
                value=m.value().decode(),
                at=at,
            )
        if args.until_end and len(at_end) == len(partitions):
            emit("end")
            break
    consumer.close()
    emit("closed")


def txn(args):
    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.transactional_id,
            "transaction.timeout.ms": 900000 if args.hang else 60000,
            "error_cb": on_client_error,
        }
    )
    retrying(lambda: p.init_transactions(120))
    p.begin_transaction()
    for value in args.values.split(","):
        p.produce(args.topic, value=value, partition=args.partition)
    if args.commit:
        retrying(lambda: p.commit_transaction(60))
        emit("committed")
        return
    if p.flush(60) != 0:
        fatal("the open transaction's values were not all delivered")
    emit("written")
    stop_on_input().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topics", required=True)
    p.add_argument("--partitions", type=int, required=True)
    p.add_argument("--transactional-id", required=True)
    p.add_argument("--producer", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--transaction-timeout-ms", type=int, default=10000)
    r = sub.add_parser("read")
    r.add_argument("--bootstrap", required=True)
    r.add_argument("--topics", required=True)
    r.add_argument("--partitions", type=int, required=True)
    r.add_argument("--until-end", action="store_true")
    r.add_argument("--group")
    t = sub.add_parser("txn")
    t.add_argument("--bootstrap", required=True)
    t.add_argument("--topic", required=True)
    t.add_argument("--partition", type=int, required=True)
    t.add_argument("--transactional-id", required=True)
    t.add_argument("--values", required=True)
    end = t.add_mutually_exclusive_group(required=True)
    end.add_argument("--commit", action="store_true")
    end.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    try:
        {"produce": produce, "read": read, "txn": txn}[args.command](args)
    except KafkaException as e:
        fatal(f"{e}")


if __name__ == "__main__":
    main()
