#!/usr/bin/env python3
"""confluent-kafka (librdkafka) transactions, driven by broker/tests/e2e_eos_workers.rs.

Proves nothing by itself: it is librdkafka's transactional producer and a
read_committed group consumer in a consume-transform-produce loop, run as
separate processes against Strom brokers so that the test can kill brokers
and workers under it. Prints JSON lines on stdout, one event per line.

  ctp  --bootstrap B --input I --output O --group G --transactional-id T
       A member of group G reads I (read_committed, no auto commit) and, per
       batch it consumes, in one transaction copies each record to the same
       partition of O (same key, value "<partition>:<offset>" of the input
       record) and commits the consumed positions with
       send_offsets_to_transaction (with the group's metadata, so a member of
       an older generation is fenced). A retriable error retries the call; an
       abortable one aborts the transaction, a fatal one replaces the
       producer (same transactional id), and both rewind to the committed
       offsets; any other error exits 1. Events: assigned / revoked / lost (partitions), txn (records
       copied by each commit), client_error, closed. Reads stdin: "stop" (or
       end of input) stops it.
"""

import argparse
import json
import sys
import threading

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING, OFFSET_INVALID


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def fatal(message):
    emit("error", message=message)
    sys.exit(1)


def on_client_error(err):
    # Transient conditions too (a coordinator moving, a connection closed); shown on failure.
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


def rewind(consumer):
    """Seeks every assigned partition back to the group's committed offset."""
    assignment = consumer.assignment()
    if not assignment:
        return
    for tp in consumer.committed(assignment, timeout=60):
        offset = tp.offset if tp.offset != OFFSET_INVALID else OFFSET_BEGINNING
        consumer.seek(TopicPartition(tp.topic, tp.partition, offset))


def ctp(args):
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "error_cb": on_client_error,
        }
    )
    def new_producer():
        p = Producer(
            {
                "bootstrap.servers": args.bootstrap,
                "transactional.id": args.transactional_id,
                # A killed worker's open transaction is aborted by the coordinator after 10 s.
                "transaction.timeout.ms": 10000,
                "error_cb": on_client_error,
            }
        )
        retrying(lambda: p.init_transactions(120))
        return p

    producer = new_producer()

    def on_assign(_consumer, partitions):
        emit("assigned", partitions=sorted(p.partition for p in partitions))

    def on_revoke(_consumer, partitions):
        emit("revoked", partitions=sorted(p.partition for p in partitions))

    def on_lost(_consumer, partitions):
        emit("lost", partitions=sorted(p.partition for p in partitions))

    consumer.subscribe([args.input], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    stop = stop_on_input()
    while not stop.is_set():
        batch = consumer.consume(num_messages=200, timeout=0.5)
        records = [m for m in batch if m.error() is None]
        for m in batch:
            if m.error() is not None:
                on_client_error(m.error())
        if not records:
            continue
        try:
            producer.begin_transaction()
            for m in records:
                producer.produce(args.output, key=m.key(), value=f"{m.partition()}:{m.offset()}", partition=m.partition())
            # Positions only of partitions read from (a fresh assignment has none yet).
            positions = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
            metadata = consumer.consumer_group_metadata()
            retrying(lambda: producer.send_offsets_to_transaction(positions, metadata, 60))
            retrying(lambda: producer.commit_transaction(60))
            emit("txn", count=len(records))
        except KafkaException as e:
            error = e.args[0]
            if error.txn_requires_abort():
                emit("client_error", message=f"aborting the transaction: {error}")
                try:
                    retrying(lambda: producer.abort_transaction(60))
                except KafkaException as e:
                    if not e.args[0].fatal():
                        raise
                    error = e.args[0]
            if error.fatal():
                # librdkafka gives up on this producer (fenced, or an abort the coordinator
                # refused: an EndTxn for partitions whose registration it never saw is
                # INVALID_TXN_STATE, as in Kafka). A new one with the same transactional id
                # aborts whatever the old one left open.
                emit("client_error", message=f"recreating the producer after: {error}")
                producer = new_producer()
            elif not error.txn_requires_abort():
                fatal(f"transaction failed: {error}")
            retrying(lambda: rewind(consumer))
    consumer.close()
    emit("closed")


def retrying(call):
    """Runs call again while it fails with an error librdkafka calls retriable
    (a coordinator moving, a request timing out); other errors are raised."""
    while True:
        try:
            return call()
        except KafkaException as e:
            error = e.args[0]
            if not error.retriable() or error.txn_requires_abort() or error.fatal():
                raise
            emit("client_error", message=f"retrying: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ctp")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--transactional-id", required=True)
    args = parser.parse_args()
    try:
        ctp(args)
    except KafkaException as e:
        fatal(f"{e}")


if __name__ == "__main__":
    main()
