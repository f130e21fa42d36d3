#!/usr/bin/env python3
"""Failover time of a 3-node cluster: leader killed (kill -9) until the first
acks=all produce to the new leader succeeds, Strom beside Apache Kafka.

The same procedure runs against each system, one after the other, on
loopback:

  1. start 3 nodes, every node a broker and a controller voter (Strom's
     3-voter quorum; Kafka KRaft in combined mode), with the same
     broker.session.timeout.ms and broker.heartbeat.interval.ms on both;
  2. wait until Metadata lists the 3 brokers; start one idempotent acks=all
     producer (librdkafka through confluent-kafka, default client settings)
     that sends a small record every --interval-ms and timestamps each send
     and each delivery report;
  3. each round: pick the node to kill — odd rounds a node that is not the
     active controller, even rounds the active controller (read from the
     nodes' logs) — and create a fresh topic (1 partition, replication factor
     3, min.insync.replicas=2) with that node first in its replica list, so
     it leads; switch the producer to it; once deliveries flow, kill -9 the
     node at t_kill (after a random wait spreading kills over the heartbeat
     cycle), then take
       failover = (delivery of the first record *sent after* t_kill) - t_kill
       metadata = (first Metadata answer from a survivor naming another
                   leader) - t_kill        (the broker-side part: fencing
                   after the session timeout, then the leader election)
     then restart the killed node on its data dir and wait until it is back
     in the ISR.

A broker detects a dead peer only when its session expires, so failover is at
least broker.session.timeout.ms minus the time since the dead broker's last
heartbeat; the rest is the election and the client finding the new leader.

Prints a table per setting, scenario and system and the ratios Strom/Kafka of
the medians; writes every round to DIR/results.json. Node and client logs stay
in DIR.
"""

import argparse
import json
import logging
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "failover"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
NODES = 3
START_TIMEOUT = 180.0
FAILOVER_TIMEOUT = 120.0
REJOIN_TIMEOUT = 180.0


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One broker process; its pid is the broker's own (run-kafka.sh execs the JVM)."""

    def __init__(self, node_id, argv, env, log_path, kafka_port):
        self.node_id = node_id
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.kafka_port = kafka_port
        self.proc = None

    def start(self):
        out = open(self.log_path, "ab")
        out.write(f"===== {time.strftime('%FT%T')} starting node {self.node_id} =====\n".encode())
        out.flush()
        # Own process group, so cleanup also reaches a format step still running.
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        # For run.sh's last-resort cleanup should this script itself be killed.
        Path(self.log_path).with_suffix(".pid").write_text(f"{self.proc.pid}\n")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        Path(self.log_path).with_suffix(".pid").unlink(missing_ok=True)

    def log_tail(self, n=20):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class Cluster:
    name = "?"
    # Matches a log line saying which node became the controller quorum's leader; group 1 the node id.
    controller_line = None

    def __init__(self, nodes):
        self.nodes = nodes

    def bootstrap(self, exclude=None):
        return ",".join(f"127.0.0.1:{n.kafka_port}" for n in self.nodes if n.node_id != exclude)

    def node(self, node_id):
        return next(n for n in self.nodes if n.node_id == node_id)

    def start(self):
        for n in self.nodes:
            n.start()

    def cleanup(self):
        for n in self.nodes:
            n.cleanup()

    def check_alive(self):
        for n in self.nodes:
            if not n.alive():
                raise RuntimeError(f"{self.name} node {n.node_id} exited; end of {n.log_path}:\n{n.log_tail()}")

    def controller_leader(self):
        """The node that most recently logged becoming the quorum leader (None if unknown)."""
        if self.controller_line is None:
            return None
        latest = None
        for n in self.nodes:
            try:
                text = Path(n.log_path).read_text(errors="replace")
            except OSError:
                continue
            for m in self.controller_line.finditer(ANSI.sub("", text)):
                term, leader = self.term_and_leader(m)
                if latest is None or term > latest[0]:
                    latest = (term, leader)
        return None if latest is None else latest[1]

    def term_and_leader(self, m):
        raise NotImplementedError


class StromCluster(Cluster):
    name = "Strom"
    # openraft: "vote is changing from T3-N1:uncommitted to T3-N1:committed" (colours stripped).
    controller_line = re.compile(r"vote is changing from \S+ to T(\d+)-N(\d+):committed")

    def __init__(self, binary, root, settings):
        ports = [(free_port(), free_port(), free_port()) for _ in range(NODES)]
        voters = ",".join(f"{i}@127.0.0.1:{q}" for i, (_, q, _) in enumerate(ports))
        env = {k: v for k, v in os.environ.items() if not k.startswith("STROM_")}
        # Info level: the active controller is read from openraft's log lines.
        env["RUST_LOG"] = "info"
        nodes = []
        for i, (p, q, h) in enumerate(ports):
            argv = [
                binary,
                "--node-id", str(i),
                "--data-dir", str(root / f"broker-{i}"),
                "--listen", f"127.0.0.1:{p}",
                "--advertise", f"127.0.0.1:{p}",
                "--internal-listen", f"127.0.0.1:{q}",
                "--internal-advertise", f"127.0.0.1:{q}",
                "--http-listen", f"127.0.0.1:{h}",
                "--voters", voters,
                # Plain internal plane (no certificates in this benchmark).
                "--internal-insecure",
                "--set", "default.replication.factor=3",
                "--set", "min.insync.replicas=2",
            ]
            for kv in settings:
                argv += ["--set", kv]
            nodes.append(Node(i, argv, env, str(root / f"broker-{i}.log"), p))
        super().__init__(nodes)

    def term_and_leader(self, m):
        return int(m.group(1)), int(m.group(2))


class KafkaCluster(Cluster):
    name = "Kafka"
    # "[QuorumController id=1] Becoming the active controller at epoch 3, ..."
    controller_line = re.compile(r"\[QuorumController id=(\d+)\] Becoming the active controller at epoch (\d+)")

    def __init__(self, script, root, settings, heap):
        ports = [(free_port(), free_port()) for _ in range(NODES)]
        voters = ",".join(f"{i}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        cid = subprocess.run(["bash", script, "cluster-id"], check=True, capture_output=True, text=True).stdout.strip()
        env = dict(os.environ, KAFKA_HEAP_OPTS=heap)
        nodes = []
        for i, (p, c) in enumerate(ports):
            argv = [
                "bash", script, "start",
                "--node-id", str(i), "--voters", voters, "--cluster-id", cid,
                str(root / f"broker-{i}"), str(p), str(c),
                "default.replication.factor=3",
                "min.insync.replicas=2",
            ] + list(settings)
            nodes.append(Node(i, argv, env, str(root / f"broker-{i}.log"), p))
        super().__init__(nodes)

    def term_and_leader(self, m):
        return int(m.group(2)), int(m.group(1))


class Load:
    """An idempotent acks=all producer sending one small record every `interval` seconds.

    Runs on its own thread and produces to whatever topic `use_topic` last
    named; delivery reports are timestamped when poll() serves them, at most a
    poll step (1 ms) after librdkafka has them."""

    def __init__(self, bootstrap, interval, client_log, debug):
        self.interval = interval
        conf = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "logger": client_log,
        }
        if debug:
            conf["debug"] = debug
        self.producer = Producer(conf)
        self.lock = threading.Lock()
        self.topic = None
        self.topic_first_seq = 0
        self.sent = []  # send time by sequence number
        self.acked = 0
        self.last_ack_seq = -1
        self.errors = []
        self.watch_after = None  # when set: the first record sent after this time...
        self.first_after = None  # ...is (ack time, sequence) once delivered
        self.first_after_event = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        now = time.monotonic()
        seq = int(msg.key())
        with self.lock:
            if err is not None:
                self.errors.append((now, seq, str(err)))
                return
            self.acked += 1
            self.last_ack_seq = max(self.last_ack_seq, seq)
            if self.watch_after is not None and self.first_after is None and self.sent[seq] > self.watch_after:
                self.first_after = (now, seq)
                self.first_after_event.set()

    def run(self):
        next_send = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_send:
                with self.lock:
                    topic, seq = self.topic, len(self.sent)
                    if topic is not None:
                        self.sent.append(now)
                if topic is not None:
                    self.producer.produce(topic, key=str(seq).encode(), value=b"x" * 100, on_delivery=self.on_delivery)
                next_send = max(next_send + self.interval, now)
            self.producer.poll(min(0.001, max(0.0, next_send - time.monotonic())))
        self.producer.flush(10)

    def use_topic(self, topic):
        with self.lock:
            self.topic = topic
            self.topic_first_seq = len(self.sent)

    def watch(self, t):
        with self.lock:
            self.first_after = None
            self.first_after_event.clear()
            self.watch_after = t

    def steady(self, lag, min_acked):
        """True once `min_acked` records of the current topic are delivered and
        every record sent more than `lag` seconds ago is."""
        with self.lock:
            now = time.monotonic()
            i = len(self.sent) - 1
            while i >= 0 and self.sent[i] > now - lag:
                i -= 1
            return self.last_ack_seq >= max(i, self.topic_first_seq + min_acked - 1)


def client_logger(path):
    """librdkafka's log lines go to `path`, not the terminal."""
    logger = logging.getLogger(f"rdkafka.{path}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    return logger


def admin_client(bootstrap, logger):
    return AdminClient({"bootstrap.servers": bootstrap, "logger": logger})


def partition0(md, topic):
    t = md.topics.get(topic)
    if t is None or t.error is not None or 0 not in t.partitions:
        return None
    return t.partitions[0]


def wait_for(what, cond, timeout, cluster, step=0.2):
    deadline = time.monotonic() + timeout
    last_err = None
    while True:
        cluster.check_alive()
        try:
            v = cond()
            if v:
                return v
        except KafkaException as e:
            last_err = e
        if time.monotonic() > deadline:
            raise RuntimeError(f"{cluster.name}: {what} not within {timeout:.0f}s (last error: {last_err})")
        time.sleep(step)


LEADER = "leader"
LEADER_AND_CONTROLLER = "leader+controller"


def run_system(cluster, rounds, interval, heartbeat_ms, root, debug):
    """Runs the rounds against a started cluster; returns one dict per round.

    Odd rounds kill a partition leader that is not the active controller, even
    rounds one that is. Each round has a fresh topic whose replica list starts
    with the node to kill, so that node leads it (both systems make the first
    live replica of a new partition its leader)."""
    admin_log = client_logger(str(root / "admin-client.log"))
    admin = admin_client(cluster.bootstrap(), admin_log)

    def three_brokers():
        return len(admin.list_topics(timeout=2).brokers) == NODES

    t0 = time.monotonic()
    wait_for("3 brokers in Metadata", three_brokers, START_TIMEOUT, cluster)
    log(f"{cluster.name}: 3 brokers in Metadata after {time.monotonic() - t0:.1f}s")
    wait_for("an active controller in the node logs", lambda: cluster.controller_leader() is not None, 60, cluster)

    def full_isr(topic, leader=None):
        p = partition0(admin.list_topics(topic=topic, timeout=2), topic)
        ok = p is not None and p.leader >= 0 and len(p.isrs) == NODES and (leader is None or p.leader == leader)
        return ok and p

    def create(topic, replicas):
        fs = admin.create_topics(
            [NewTopic(topic, num_partitions=1, replica_assignment=[replicas], config={"min.insync.replicas": "2"})],
            operation_timeout=30,
        )
        try:
            fs[topic].result(timeout=60)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
        return True

    load = Load(cluster.bootstrap(), interval, client_logger(str(root / "producer.log")), debug)
    load.thread.start()
    results = []
    try:
        for r in range(rounds):
            scenario = LEADER if r % 2 == 0 else LEADER_AND_CONTROLLER
            controller = cluster.controller_leader()
            if scenario == LEADER_AND_CONTROLLER:
                victim_id = controller
            else:
                victim_id = random.choice([n.node_id for n in cluster.nodes if n.node_id != controller])
            others = [n.node_id for n in cluster.nodes if n.node_id != victim_id]
            random.shuffle(others)
            topic = f"{TOPIC}-{r + 1}"
            wait_for(f"creating {topic}", lambda: create(topic, [victim_id] + others), 60, cluster, step=1.0)
            wait_for(f"{topic} led by node {victim_id} with an ISR of 3", lambda: full_isr(topic, victim_id), 60, cluster)
            load.use_topic(topic)
            wait_for(f"deliveries to {topic}", lambda: load.steady(0.5, 50), 60, cluster)
            # Spread the kill over the heartbeat cycle.
            time.sleep(1.0 + random.uniform(0, heartbeat_ms / 1000.0))
            wait_for(f"{topic} led by node {victim_id} with an ISR of 3", lambda: full_isr(topic, victim_id), 30, cluster)
            wait_for("a producer without backlog", lambda: load.steady(0.5, 50), 30, cluster)
            controller = cluster.controller_leader()
            victim = cluster.node(victim_id)
            errors_before = len(load.errors)
            survivors = admin_client(cluster.bootstrap(exclude=victim_id), admin_log)

            t_kill = time.monotonic()
            load.watch(t_kill)
            victim.kill9()

            # Broker side: the first Metadata answer from a survivor naming another leader.
            t_meta, new_leader = None, None
            deadline = t_kill + FAILOVER_TIMEOUT
            while time.monotonic() < deadline and not load.first_after_event.is_set():
                try:
                    q = partition0(survivors.list_topics(topic=topic, timeout=1), topic)
                except KafkaException:
                    q = None
                if q is not None and q.leader >= 0 and q.leader != victim_id:
                    t_meta, new_leader = time.monotonic(), q.leader
                    break
                time.sleep(0.02)
            if not load.first_after_event.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(f"{cluster.name}: no delivery within {FAILOVER_TIMEOUT:.0f}s of killing node {victim_id}")
            with load.lock:
                t_ack, seq = load.first_after
                sent_at = load.sent[seq]
                new_errors = load.errors[errors_before:]
            row = {
                "round": r + 1,
                "scenario": LEADER_AND_CONTROLLER if controller == victim_id else LEADER,
                "killed": victim_id,
                "controller_before": controller,
                "new_leader": new_leader,
                "failover_ms": (t_ack - t_kill) * 1000,
                "metadata_ms": None if t_meta is None else (t_meta - t_kill) * 1000,
                "first_record_sent_after_kill_ms": (sent_at - t_kill) * 1000,
                "delivery_errors": [e[2] for e in new_errors],
            }
            results.append(row)
            meta = "-" if row["metadata_ms"] is None else f"{row['metadata_ms']:.0f} ms"
            log(
                f"{cluster.name} round {r + 1}: killed node {victim_id} ({row['scenario']}), "
                f"new leader {new_leader} in Metadata after {meta}, failover {row['failover_ms']:.0f} ms, "
                f"delivery errors {len(new_errors)}"
            )

            victim.start()

            def rejoined():
                md = admin.list_topics(topic=topic, timeout=2)
                q = partition0(md, topic)
                return len(md.brokers) == NODES and q is not None and q.leader >= 0 and len(q.isrs) == NODES

            t_restart = time.monotonic()
            wait_for(f"node {victim_id} back in the ISR", rejoined, REJOIN_TIMEOUT, cluster)
            log(f"{cluster.name}: node {victim_id} back in the ISR after {time.monotonic() - t_restart:.1f}s")
    finally:
        load.stop.set()
        load.thread.join(30)
    with load.lock:
        total_errors = len(load.errors)
    log(f"{cluster.name}: {len(load.sent)} records sent, {load.acked} delivered, {total_errors} delivery errors")
    return results


def summarize(rows, key):
    vals = [r[key] for r in rows if r[key] is not None]
    if not vals:
        return None, None
    return statistics.median(vals), max(vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="run directory: node data and logs, results.json")
    ap.add_argument("--strom-bin", help="strom-broker binary")
    ap.add_argument("--run-kafka", help="bench/kafka/run-kafka.sh")
    ap.add_argument("--systems", default="strom,kafka")
    ap.add_argument(
        "--timeouts",
        action="append",
        help="SESSION_MS/HEARTBEAT_MS: broker.session.timeout.ms / broker.heartbeat.interval.ms "
        "for both systems; repeat for more rows (default 9000/2000)",
    )
    ap.add_argument("--rounds", type=int, default=10, help="rounds per system and setting; odd ones kill a leader, even ones a leader that is the controller")
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--kafka-heap", default="-Xmx512m -Xms512m")
    ap.add_argument("--client-debug", default="", help="librdkafka debug contexts for the producer's log, e.g. topic,metadata")
    args = ap.parse_args()

    root = Path(args.dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    timeouts = [tuple(int(x) for x in t.split("/")) for t in (args.timeouts or ["9000/2000"])]

    current = []

    def on_signal(signum, _frame):
        # Once: a second signal must not cut the cleanup short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    report = {"date": time.strftime("%F %T"), "rounds": args.rounds, "interval_ms": args.interval_ms, "runs": []}
    try:
        for session_ms, heartbeat_ms in timeouts:
            settings = [f"broker.session.timeout.ms={session_ms}", f"broker.heartbeat.interval.ms={heartbeat_ms}"]
            for system in systems:
                d = root / f"{system}-{session_ms}-{heartbeat_ms}"
                d.mkdir(parents=True, exist_ok=True)
                if system == "strom":
                    cluster = StromCluster(args.strom_bin, d, settings)
                elif system == "kafka":
                    cluster = KafkaCluster(args.run_kafka, d, settings, args.kafka_heap)
                else:
                    raise SystemExit(f"unknown system {system}")
                log(f"{cluster.name}: starting 3 nodes in {d} ({', '.join(settings)})")
                current.append(cluster)
                cluster.start()
                entry = {"system": cluster.name, "session_ms": session_ms, "heartbeat_ms": heartbeat_ms, "dir": str(d)}
                try:
                    entry["rounds"] = run_system(cluster, args.rounds, args.interval_ms / 1000.0, heartbeat_ms, d, args.client_debug)
                except RuntimeError as e:
                    log(f"{cluster.name} failed: {e}")
                    entry["error"] = str(e)
                    entry["rounds"] = []
                finally:
                    cluster.cleanup()
                    current.remove(cluster)
                report["runs"].append(entry)
                (root / "results.json").write_text(json.dumps(report, indent=2))
    finally:
        for c in current:
            c.cleanup()

    print_table(report)
    return 0 if all(not r.get("error") for r in report["runs"]) else 1


def print_table(report):
    print()
    print(
        "Failover: kill -9 of a partition's leader until the first acks=all delivery of a record sent after the kill "
        f"({report['rounds']} rounds per system, half of them killing the active controller too; "
        "3 nodes, RF=3, min.insync.replicas=2)"
    )
    print()
    print(
        "| session / heartbeat ms | killed | system | rounds | failover median ms | max ms "
        "| median / session timeout | new leader in Metadata, median ms | delivery errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    medians = {}
    for run in report["runs"]:
        s, h, system = run["session_ms"], run["heartbeat_ms"], run["system"]
        if run.get("error"):
            print(f"| {s} / {h} | | {system} | failed: {run['error'].splitlines()[0]} | | | | | |")
            continue
        for scenario in (LEADER, LEADER_AND_CONTROLLER, "all"):
            rows = [r for r in run["rounds"] if scenario in ("all", r["scenario"])]
            if not rows:
                continue
            med, mx = summarize(rows, "failover_ms")
            mmed, _ = summarize(rows, "metadata_ms")
            medians[(s, h, scenario, system)] = (med, mmed)
            errs = sum(len(r["delivery_errors"]) for r in rows)
            print(
                f"| {s} / {h} | {scenario} | {system} | {len(rows)} | {med:.0f} | {mx:.0f} | {med / s:.2f} | "
                f"{'-' if mmed is None else f'{mmed:.0f}'} | {errs} |"
            )
    print()
    print("Strom/Kafka, ratio of medians (failover; new leader in Metadata):")
    for (s, h, scenario, system), (med, mmed) in medians.items():
        k = medians.get((s, h, scenario, "Kafka"))
        if system != "Strom" or k is None:
            continue
        line = f"  {s} / {h} ms, {scenario}: failover {med / k[0]:.2f}"
        if mmed is not None and k[1] is not None:
            line += f"; new leader in Metadata {mmed / k[1]:.2f}"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
