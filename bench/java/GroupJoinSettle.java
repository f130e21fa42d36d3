package dev.strom.bench;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Scenario 9 of strom-bench (bench/harness/src/group_join.rs): how long one
 * member's join into a stable consumer group takes to settle, with the Java
 * client's classic protocol or KIP-848's consumer protocol.
 *
 * <p>MEMBERS consumers subscribe to TOPIC (PARTITIONS partitions) in the
 * fresh group GROUP, each polling on its own thread, until the group is
 * stable: every member owns at least one partition, no partition is owned
 * twice or not at all, the counts differ by at most one, and no member's
 * rebalance listener has seen a non-empty revocation, assignment or loss for
 * QUIET_MS. Then one more consumer subscribes; the settle time is from just
 * before its subscribe() to the last listener event before the group (now
 * MEMBERS+1) is stable again by the same rule. The clients keep their
 * defaults but for group.protocol, auto-commit (off: the topic stays empty)
 * and auto.offset.reset=latest.
 *
 * <p>Usage: GroupJoinSettle BOOTSTRAP TOPIC GROUP classic|consumer MEMBERS
 * PARTITIONS QUIET_MS TIMEOUT_MS. Prints one line, {@code initial_ms=...
 * settle_ms=... events=... owned=3,3,3,3}; exits 1 (with the state it saw)
 * if a phase does not settle within TIMEOUT_MS, 2 on bad arguments.
 */
public final class GroupJoinSettle {
    /** Non-empty listener events of all members: how many, and the last one's time. */
    static final class Events {
        final AtomicInteger count = new AtomicInteger();
        final AtomicLong lastNanos = new AtomicLong(System.nanoTime());

        void record() {
            count.incrementAndGet();
            lastNanos.set(System.nanoTime());
        }

        void reset() {
            count.set(0);
            lastNanos.set(System.nanoTime());
        }
    }

    /** One consumer on its own thread; publishes what it owns after every poll. */
    static final class Member implements Runnable {
        final Properties props;
        final String topic;
        final Events events;
        volatile Set<Integer> owned = Set.of();
        volatile boolean stop;
        volatile Throwable error;
        /** System.nanoTime() just before subscribe(). */
        volatile long subscribedNanos;

        Member(Properties props, String topic, Events events) {
            this.props = props;
            this.topic = topic;
            this.events = events;
        }

        @Override
        public void run() {
            ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    if (!partitions.isEmpty()) {
                        events.record();
                    }
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    if (!partitions.isEmpty()) {
                        events.record();
                    }
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    if (!partitions.isEmpty()) {
                        events.record();
                    }
                }
            };
            try (KafkaConsumer<byte[], byte[]> consumer =
                    new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                subscribedNanos = System.nanoTime();
                consumer.subscribe(List.of(topic), listener);
                while (!stop) {
                    consumer.poll(Duration.ofMillis(50));
                    Set<Integer> now = new TreeSet<>();
                    for (TopicPartition tp : consumer.assignment()) {
                        now.add(tp.partition());
                    }
                    owned = now;
                }
            } catch (Throwable t) {
                error = t;
            }
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 8 || !(args[3].equals("classic") || args[3].equals("consumer"))) {
            System.err.println(
                    "usage: GroupJoinSettle BOOTSTRAP TOPIC GROUP classic|consumer MEMBERS PARTITIONS QUIET_MS TIMEOUT_MS");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        String protocol = args[3];
        int members = Integer.parseInt(args[4]);
        int partitions = Integer.parseInt(args[5]);
        long quietMs = Long.parseLong(args[6]);
        long timeoutMs = Long.parseLong(args[7]);

        Events events = new Events();
        List<Member> live = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        int exit = 0;
        try {
            long start = System.nanoTime();
            for (int i = 0; i < members; i++) {
                startMember(props(bootstrap, group, protocol, i), topic, events, live, threads);
            }
            if (!awaitStable(live, partitions, events, quietMs, timeoutMs)) {
                System.err.println("the first " + members + " members did not settle within " + timeoutMs
                        + " ms; owned: " + describe(live));
                exit = 1;
                return;
            }
            long initialMs = (events.lastNanos.get() - start) / 1_000_000;

            events.reset();
            Member joining = startMember(props(bootstrap, group, protocol, members), topic, events, live, threads);
            if (!awaitStable(live, partitions, events, quietMs, timeoutMs)) {
                System.err.println("the join did not settle within " + timeoutMs + " ms; owned: " + describe(live));
                exit = 1;
                return;
            }
            long settleMs = Math.max(0, (events.lastNanos.get() - joining.subscribedNanos) / 1_000_000);
            System.out.println("initial_ms=" + initialMs + " settle_ms=" + settleMs + " events="
                    + events.count.get() + " owned=" + describe(live));
        } finally {
            for (Member m : live) {
                m.stop = true;
            }
            for (Thread t : threads) {
                t.join(60_000);
            }
            System.out.flush();
            System.exit(exit);
        }
    }

    static Properties props(String bootstrap, String group, String protocol, int i) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("group.protocol", protocol);
        p.put("client.id", group + "-" + i);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "latest");
        return p;
    }

    static Member startMember(Properties props, String topic, Events events, List<Member> group,
            List<Thread> threads) {
        Member m = new Member(props, topic, events);
        Thread t = new Thread(m, "member-" + group.size());
        group.add(m);
        threads.add(t);
        t.start();
        return m;
    }

    /** Waits until the group is stable (see the class comment); false on timeout or a member's error. */
    static boolean awaitStable(List<Member> group, int partitions, Events events, long quietMs, long timeoutMs)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        while (System.nanoTime() < deadline) {
            for (Member m : group) {
                if (m.error != null) {
                    System.err.println("a member failed: " + m.error);
                    return false;
                }
            }
            boolean quiet = System.nanoTime() - events.lastNanos.get() >= quietMs * 1_000_000;
            if (quiet && balanced(group, partitions)) {
                return true;
            }
            Thread.sleep(20);
        }
        return false;
    }

    static boolean balanced(List<Member> group, int partitions) {
        Set<Integer> all = new HashSet<>();
        int total = 0;
        int min = Integer.MAX_VALUE;
        int max = 0;
        for (Member m : group) {
            Set<Integer> owned = m.owned;
            all.addAll(owned);
            total += owned.size();
            min = Math.min(min, owned.size());
            max = Math.max(max, owned.size());
        }
        boolean everyoneOwns = partitions < group.size() || min >= 1;
        return all.size() == partitions && total == partitions && max - min <= 1 && everyoneOwns;
    }

    static String describe(List<Member> group) {
        StringBuilder s = new StringBuilder();
        for (Member m : group) {
            if (s.length() > 0) {
                s.append(',');
            }
            s.append(m.owned.size());
        }
        return s.toString();
    }
}
