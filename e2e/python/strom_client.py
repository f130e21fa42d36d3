#!/usr/bin/env python3
"""confluent-kafka (librdkafka) client driven by broker/tests/e2e_python.rs.

Proves nothing by itself: it is the real Python client the Rust tests run as
separate processes against a Strom broker, so that group membership, offset
commits and record delivery are checked as a Python application sees them.

Subcommands (all print JSON lines on stdout, one event per line):

  produce    --bootstrap B --topic T --count N [--start S] [--keys K]
             Produces records value-<i> (key key-<i % K>) for i in S..S+N with
             acks=all and waits for every delivery report.
             -> {"event":"produced","count":N}

  consume    --bootstrap B --topic T --group G [--session-timeout-ms MS]
             [--max-records K] [--commit-on-stop] [--commit-on-revoke]
             [--group-protocol classic|consumer]
             A group member (subscribe). Events: assigned / revoked / lost
             (partitions), record (partition, offset, key, value), committed
             (offsets), closed. Reads commands from stdin: "commit" commits the
             positions of the records it has processed; "stop" (or end of
             input) stops it, committing first with --commit-on-stop. With
             --max-records it stops by itself after K records. With
             --commit-on-revoke it commits a partition's position before giving
             it up; --group-protocol consumer is KIP-848 (the broker's
             group.consumer.* settings then time the session).

  committed  --bootstrap B --topic T --group G --partitions P
             -> {"event":"committed","offsets":{"0":5,...}} (-1: none)

Each subcommand takes --config JSON: more client settings (security, for
one), applied over the defaults above; "strom.oauth.token": T makes the
client's OAUTHBEARER token callback answer T.
"""

import argparse
import json
import queue
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def fatal(message):
    emit("error", message=message)
    sys.exit(1)


def on_client_error(err):
    # librdkafka reports transient conditions here too (a coordinator still
    # loading, a connection closed); the Rust test shows them on failure.
    emit("client_error", message=str(err))


def settings(args, defaults):
    """The client settings: the defaults, then --config over them."""
    extra = json.loads(args.config)
    if not isinstance(extra, dict):
        fatal(f"--config must be a JSON object, not {args.config!r}")
    token = extra.pop("strom.oauth.token", None)
    if token is not None:
        # SASL OAUTHBEARER with this bearer token (valid for an hour as far
        # as the client is concerned; the broker checks its own exp claim).
        extra["oauth_cb"] = lambda _config: (token, time.time() + 3600)
    return {**defaults, **extra}


def produce(args):
    producer = Producer(
        settings(
            args,
            {
                "bootstrap.servers": args.bootstrap,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 60000,
                "error_cb": on_client_error,
            },
        )
    )
    failures = []
    delivered = [0]

    def on_delivery(err, msg):
        if err is not None:
            failures.append(f"{msg.value()!r}: {err}")
        else:
            delivered[0] += 1

    keys = args.keys or args.count
    for i in range(args.start, args.start + args.count):
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=f"key-{i % keys}",
                    value=f"value-{i}",
                    on_delivery=on_delivery,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(90)
    if remaining or failures:
        fatal(f"{remaining} records undelivered, {len(failures)} failed: {failures[:5]}")
    if delivered[0] != args.count:
        fatal(f"{delivered[0]} delivery reports for {args.count} records")
    emit("produced", count=args.count)


def stdin_commands(commands):
    for line in sys.stdin:
        commands.put(line.strip())
    commands.put("stop")


def consume(args):
    base = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": args.client_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "error_cb": on_client_error,
    }
    if args.group_protocol == "consumer":
        # KIP-848: the broker assigns and its group.consumer.* settings time the session.
        base["group.protocol"] = "consumer"
    else:
        base["session.timeout.ms"] = args.session_timeout_ms
        base["heartbeat.interval.ms"] = max(500, args.session_timeout_ms // 6)
    consumer = Consumer(settings(args, base))
    # Next offset to commit per partition: one past the last record processed.
    positions = {}

    def on_assign(_consumer, partitions):
        emit("assigned", partitions=sorted(p.partition for p in partitions))

    def on_revoke(_consumer, partitions):
        if args.commit_on_revoke:
            commit(only={p.partition for p in partitions})
        for p in partitions:
            positions.pop(p.partition, None)
        emit("revoked", partitions=sorted(p.partition for p in partitions))

    def on_lost(_consumer, partitions):
        for p in partitions:
            positions.pop(p.partition, None)
        emit("lost", partitions=sorted(p.partition for p in partitions))

    def commit(only=None):
        chosen = {p: o for p, o in positions.items() if only is None or p in only}
        if not chosen:
            emit("committed", offsets={})
            return
        offsets = [TopicPartition(args.topic, p, o) for p, o in sorted(chosen.items())]
        try:
            results = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            fatal(f"commit of {chosen} failed: {e}")
        errors = [f"{r.partition}: {r.error}" for r in results if r.error is not None]
        if errors:
            fatal(f"commit failed for partitions {errors}")
        emit("committed", offsets={str(r.partition): r.offset for r in results})

    commands = queue.Queue()
    threading.Thread(target=stdin_commands, args=(commands,), daemon=True).start()
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    processed = 0
    stopping = False
    while not stopping:
        while not commands.empty():
            command = commands.get()
            if command == "commit":
                commit()
            elif command == "stop":
                stopping = True
            elif command:
                fatal(f"unknown command {command!r}")
        if stopping:
            break
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            if msg.error().fatal():
                fatal(f"fatal consumer error: {msg.error()}")
            emit("client_error", message=str(msg.error()))
            continue
        key = msg.key()
        emit(
            "record",
            partition=msg.partition(),
            offset=msg.offset(),
            key=key.decode() if key is not None else None,
            value=msg.value().decode(),
        )
        positions[msg.partition()] = msg.offset() + 1
        processed += 1
        if args.max_records and processed >= args.max_records:
            stopping = True
    if args.commit_on_stop:
        commit()
    consumer.close()
    emit("closed")


def committed(args):
    consumer = Consumer(
        settings(
            args,
            {
                "bootstrap.servers": args.bootstrap,
                "group.id": args.group,
                "enable.auto.commit": False,
                "error_cb": on_client_error,
            },
        )
    )
    partitions = [TopicPartition(args.topic, p) for p in range(args.partitions)]
    try:
        result = consumer.committed(partitions, timeout=60)
    except KafkaException as e:
        fatal(f"committed() failed: {e}")
    errors = [f"{r.partition}: {r.error}" for r in result if r.error is not None]
    if errors:
        fatal(f"committed() failed for partitions {errors}")
    # librdkafka says OFFSET_INVALID (-1001) for "no committed offset".
    emit("committed", offsets={str(r.partition): (r.offset if r.offset >= 0 else -1) for r in result})
    consumer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("produce", "consume", "committed"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--topic", required=True)
        p.add_argument("--config", default="{}", help="more client settings, a JSON object")
    p = sub.choices["produce"]
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--keys", type=int, default=0, help="distinct keys (default: one per record)")
    p = sub.choices["consume"]
    p.add_argument("--group", required=True)
    p.add_argument("--client-id", default="strom-e2e-python")
    p.add_argument("--session-timeout-ms", type=int, default=6000)
    p.add_argument("--max-records", type=int, default=0)
    p.add_argument("--commit-on-stop", action="store_true")
    p.add_argument("--commit-on-revoke", action="store_true", help="commit a partition's position before giving it up")
    p.add_argument("--group-protocol", choices=["classic", "consumer"], default="classic")
    p = sub.choices["committed"]
    p.add_argument("--group", required=True)
    p.add_argument("--partitions", type=int, required=True)
    args = parser.parse_args()
    {"produce": produce, "consume": consume, "committed": committed}[args.command](args)


if __name__ == "__main__":
    main()
