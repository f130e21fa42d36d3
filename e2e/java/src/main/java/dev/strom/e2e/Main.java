// The Java client (org.apache.kafka:kafka-clients 4.x) driven by broker/tests/e2e_java.rs.
//
// Proves nothing by itself: it is the real Java producer (with its DEFAULT
// settings: idempotence on, acks=all) and KafkaConsumer (classic group
// protocol by default, KIP-848's with --group-protocol consumer) that the
// Rust tests run as separate processes against a Strom broker, so that
// idempotent producing, group membership, offset commits and record delivery
// are checked as a Java application sees them.
//
// Subcommands (all print JSON lines on stdout, one event per line):
//
//   produce   --bootstrap B --topic T --count N [--start S] [--keys K]
//             Produces records value-<i> with key key-<i % K> for i in S..S+N
//             with the producer's default settings and waits for every ack.
//             -> {"event":"produced","count":N}
//   consume   --bootstrap B --topic T --group G [--session-timeout-ms MS]
//             [--max-records K] [--commit-on-stop] [--group-protocol classic|consumer]
//             [--pattern RE2] [--instance-id ID]
//             A group member. Events: assigned / revoked / lost (partitions),
//             record (partition, offset, key, value), committed (offsets),
//             closed. Reads commands from stdin: "commit" commits the
//             positions of the records it has processed; "stop" (or end of
//             input) stops it, committing first with --commit-on-stop. With
//             --max-records it stops by itself after K records. With
//             --group-protocol consumer (KIP-848) the broker assigns and its
//             group.consumer.* settings time the session: --session-timeout-ms
//             is then ignored (the client refuses it). With --pattern (needs
//             --group-protocol consumer) it subscribes with a SubscriptionPattern:
//             the broker resolves the regex (KIP-848), record events then carry
//             their topic, and commit/committed cover --topic's partitions only.
//             --instance-id sets group.instance.id (a static member).
//             --commit-on-revoke commits a partition's position before giving it up.
//   committed --bootstrap B --topic T --group G --partitions P
//             -> {"event":"committed","offsets":{"0":5,...}} (-1: none)
package dev.strom.e2e;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Main {
    private Main() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            fatal("usage: Main produce|consume|committed --bootstrap B --topic T ...");
        }
        Map<String, String> args = parseArgs(argv);
        switch (argv[0]) {
            case "produce" -> produce(args);
            case "consume" -> consume(args);
            case "committed" -> committed(args);
            default -> fatal("unknown subcommand " + argv[0]);
        }
        System.exit(0);
    }

    // ---- output ----

    private static synchronized void emit(String event, String fields) {
        String line = "{\"event\":\"" + event + "\"" + (fields.isEmpty() ? "" : "," + fields) + "}";
        System.out.println(line);
        System.out.flush();
    }

    private static void fatal(String message) {
        emit("error", "\"message\":" + quote(message));
        System.exit(1);
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    private static String partitionList(Collection<TopicPartition> partitions) {
        return "\"partitions\":["
                + partitions.stream().map(TopicPartition::partition).sorted().map(String::valueOf)
                        .collect(Collectors.joining(","))
                + "]";
    }

    private static String offsetMap(Map<Integer, Long> offsets) {
        return "\"offsets\":{"
                + new TreeMap<>(offsets).entrySet().stream().map(e -> "\"" + e.getKey() + "\":" + e.getValue())
                        .collect(Collectors.joining(","))
                + "}";
    }

    // ---- arguments ----

    private static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 1; i < argv.length; i++) {
            String name = argv[i];
            if (!name.startsWith("--")) {
                fatal("unexpected argument " + name);
            }
            if (name.equals("--commit-on-stop") || name.equals("--commit-on-revoke")) {
                args.put(name.substring(2), "true");
            } else if (i + 1 < argv.length) {
                args.put(name.substring(2), argv[++i]);
            } else {
                fatal(name + " needs a value");
            }
        }
        return args;
    }

    private static String required(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            fatal("--" + name + " is required");
        }
        return value;
    }

    private static int intArg(Map<String, String> args, String name, int fallback) {
        String value = args.get(name);
        return value == null ? fallback : Integer.parseInt(value);
    }

    // ---- produce ----

    private static void produce(Map<String, String> args) throws Exception {
        String topic = required(args, "topic");
        int count = Integer.parseInt(required(args, "count"));
        int start = intArg(args, "start", 0);
        int keys = intArg(args, "keys", count);
        Properties props = new Properties();
        // Nothing else: the producer's defaults (enable.idempotence=true, acks=all) are what is tested.
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        List<String> failures = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (int i = start; i < start + count; i++) {
                String value = "value-" + i;
                producer.send(new ProducerRecord<>(topic, "key-" + (i % keys), value), (metadata, e) -> {
                    if (e != null) {
                        synchronized (failures) {
                            failures.add(value + ": " + e);
                        }
                    }
                });
            }
            producer.flush();
        }
        if (!failures.isEmpty()) {
            fatal(failures.size() + " of " + count + " records failed, first: " + failures.get(0));
        }
        emit("produced", "\"count\":" + count);
    }

    // ---- consume ----

    private static void consume(Map<String, String> args) throws Exception {
        String topic = required(args, "topic");
        int sessionTimeoutMs = intArg(args, "session-timeout-ms", 6000);
        int maxRecords = intArg(args, "max-records", 0);
        boolean commitOnStop = args.containsKey("commit-on-stop");
        boolean commitOnRevoke = args.containsKey("commit-on-revoke");
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, required(args, "group"));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        String groupProtocol = args.getOrDefault("group-protocol", "classic");
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, groupProtocol);
        if (groupProtocol.equals("classic")) {
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, String.valueOf(sessionTimeoutMs));
            props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, String.valueOf(Math.max(500, sessionTimeoutMs / 6)));
        }

        String pattern = args.get("pattern");
        if (args.containsKey("instance-id")) {
            props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, args.get("instance-id"));
        }
        // Next offset to commit per partition: one past the last record processed.
        Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
        LinkedBlockingQueue<String> commands = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    commands.add(line.trim());
                }
            } catch (Exception e) {
                emit("client_error", "\"message\":" + quote("stdin: " + e));
            }
            commands.add("stop");
        });
        reader.setDaemon(true);
        reader.start();

        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    emit("assigned", partitionList(partitions));
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    if (commitOnRevoke) {
                        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                        partitions.stream().filter(positions::containsKey).forEach(p -> offsets.put(p, positions.get(p)));
                        try {
                            if (!offsets.isEmpty()) {
                                consumer.commitSync(offsets, Duration.ofSeconds(60));
                            }
                        } catch (Exception e) {
                            fatal("commit of " + offsets + " on revocation failed: " + e);
                        }
                    }
                    partitions.forEach(positions::remove);
                    emit("revoked", partitionList(partitions));
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> partitions) {
                    partitions.forEach(positions::remove);
                    emit("lost", partitionList(partitions));
                }
            };
            if (pattern != null) {
                consumer.subscribe(new SubscriptionPattern(pattern), listener);
            } else {
                consumer.subscribe(List.of(topic), listener);
            }
            Runnable commit = () -> {
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                positions.forEach((tp, o) -> {
                    if (tp.topic().equals(topic)) {
                        offsets.put(tp, o);
                    }
                });
                try {
                    if (!offsets.isEmpty()) {
                        consumer.commitSync(offsets, Duration.ofSeconds(60));
                    }
                } catch (Exception e) {
                    fatal("commit of " + offsets + " failed: " + e);
                }
                Map<Integer, Long> done = new HashMap<>();
                offsets.forEach((tp, o) -> done.put(tp.partition(), o.offset()));
                emit("committed", offsetMap(done));
            };

            int processed = 0;
            boolean stopping = false;
            while (!stopping) {
                String command;
                while ((command = commands.poll()) != null) {
                    switch (command) {
                        case "commit" -> commit.run();
                        case "stop" -> stopping = true;
                        case "" -> { }
                        default -> fatal("unknown command " + command);
                    }
                }
                if (stopping) {
                    break;
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(100))) {
                    if (maxRecords > 0 && processed >= maxRecords) {
                        break;
                    }
                    emit("record", "\"topic\":" + quote(r.topic()) + ",\"partition\":" + r.partition()
                            + ",\"offset\":" + r.offset() + ",\"key\":"
                            + (r.key() == null ? "null" : quote(r.key())) + ",\"value\":" + quote(r.value()));
                    positions.put(new TopicPartition(r.topic(), r.partition()),
                            new OffsetAndMetadata(r.offset() + 1, r.leaderEpoch(), ""));
                    processed++;
                }
                if (maxRecords > 0 && processed >= maxRecords) {
                    stopping = true;
                }
            }
            if (commitOnStop) {
                commit.run();
            }
        }
        emit("closed", "");
    }

    // ---- committed ----

    private static void committed(Map<String, String> args) {
        String topic = required(args, "topic");
        int partitions = Integer.parseInt(required(args, "partitions"));
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, required(args, "group"));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        Set<TopicPartition> asked = new HashSet<>();
        for (int p = 0; p < partitions; p++) {
            asked.add(new TopicPartition(topic, p));
        }
        Map<Integer, Long> out = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            Map<TopicPartition, OffsetAndMetadata> result = consumer.committed(asked, Duration.ofSeconds(60));
            for (TopicPartition tp : asked) {
                OffsetAndMetadata o = result.get(tp);
                out.put(tp.partition(), o == null ? -1L : o.offset());
            }
        }
        emit("committed", offsetMap(out));
    }
}
