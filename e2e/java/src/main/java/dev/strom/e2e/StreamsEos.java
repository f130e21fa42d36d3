// A Kafka Streams application (org.apache.kafka:kafka-streams 4.x) with
// processing.guarantee=exactly_once_v2, driven by
// broker/tests/e2e_java_streams_eos.rs.
//
// Proves nothing by itself: it is the real Streams runtime (transactional
// producer per thread, read_committed consumers, a repartition topic, a
// state store with its changelog, offsets committed in the transactions)
// run as separate processes against Strom brokers, so that the test can kill
// brokers and instances under it and check what a read_committed reader of
// the output sees. Prints JSON lines on stdout, one event per line.
//
//   run     --bootstrap B --application-id A --input I --output O --state-dir D
//           The topology: input records (key rec-<i>, value user-<j>) are
//           grouped by their value — a repartition through
//           <A>-by-user-repartition — and counted in the store "counts"
//           (changelog <A>-counts-changelog), with the record cache off so
//           every update is forwarded; each new count goes to O as
//           (user-<j>, "<count>"). Events: state (every state change),
//           client_error (an exception a stream thread died of; the thread
//           is replaced). Reads stdin: "stop" (or end of input) closes the
//           instance cleanly -> closed.
//   produce --bootstrap B --topic I --count N --users U --per-second R
//           An idempotent producer (acks=all) writes records rec-<i> ->
//           user-<i % U> for i in 0..N, R a second. -> acked (count, every
//           100 acknowledged), then produced (count) once all are acknowledged.
//   watch   --bootstrap B --topic O
//           A read_committed consumer of every partition of O from the
//           beginning (assigned, no group): record (partition, offset, key,
//           value) for each committed record, in each partition's order.
//           Runs until "stop" (or end of input) on stdin.
package dev.strom.e2e;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.Stores;

public final class StreamsEos {
    private StreamsEos() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            fatal("usage: StreamsEos run|produce|watch --bootstrap B ...");
        }
        Map<String, String> args = new HashMap<>();
        for (int i = 1; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                fatal("unexpected argument " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        switch (argv[0]) {
            case "run" -> run(args);
            case "produce" -> produce(args);
            case "watch" -> watch(args);
            default -> fatal("unknown subcommand " + argv[0]);
        }
        System.exit(0);
    }

    private static synchronized void emit(String event, String fields) {
        System.out.println("{\"event\":\"" + event + "\"" + (fields.isEmpty() ? "" : "," + fields) + "}");
        System.out.flush();
    }

    private static void fatal(String message) {
        emit("error", "\"message\":" + quote(message));
        System.exit(1);
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    private static String required(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            fatal("--" + name + " is required");
        }
        return value;
    }

    /** Counts down when stdin says "stop" or ends. */
    private static CountDownLatch stopOnInput() {
        CountDownLatch stop = new CountDownLatch(1);
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
                    // Other lines are ignored.
                }
            } catch (Exception e) {
                emit("client_error", "\"message\":" + quote("stdin: " + e));
            }
            stop.countDown();
        });
        reader.setDaemon(true);
        reader.start();
        return stop;
    }

    // ---- run ----

    private static void run(Map<String, String> args) throws Exception {
        String input = required(args, "input");
        String output = required(args, "output");
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, required(args, "application-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.STATE_DIR_CONFIG, required(args, "state-dir"));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        // Every update of a count is forwarded (and so written to the output), none merged in a cache.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        // Internal topics (repartition, changelog) as durable as the test's own: RF 3, 2 in sync.
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 3);
        props.put(StreamsConfig.topicPrefix(TopicConfig.MIN_IN_SYNC_REPLICAS_CONFIG), "2");
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        // A killed instance's tasks move to the other after 6 s (the broker's minimum session).
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        // The admin client of kafka-clients 4.1 caches partition leaders; when a cached leader
        // broker is gone from the cluster's metadata (killed, fenced), listOffsets waits for it
        // until default.api.timeout.ms (KAFKA-20673), which stalls the group leader's assignor
        // (it reads the changelogs' end offsets). 10 s instead of 60 s bounds that stall; a
        // timed-out call drops the cached leader, so the next rebalance looks it up afresh.
        props.put(StreamsConfig.adminClientPrefix(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG), 10000);
        props.put(StreamsConfig.adminClientPrefix(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG), 10000);

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .groupBy((key, user) -> user, Grouped.with("by-user", Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long>as(Stores.inMemoryKeyValueStore("counts"))
                        .withKeySerde(Serdes.String())
                        .withValueSerde(Serdes.Long()))
                .toStream()
                .mapValues(count -> Long.toString(count))
                .to(output, Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        streams.setStateListener((now, before) -> emit("state", "\"state\":" + quote(now.name())));
        streams.setUncaughtExceptionHandler(e -> {
            emit("client_error", "\"message\":" + quote("stream thread died: " + e));
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        CountDownLatch stop = stopOnInput();
        streams.start();
        stop.await();
        boolean closed = streams.close(Duration.ofSeconds(60));
        if (!closed) {
            fatal("KafkaStreams.close did not finish in 60 s");
        }
        emit("closed", "");
    }

    // ---- produce ----

    private static void produce(Map<String, String> args) throws Exception {
        String topic = required(args, "topic");
        int count = Integer.parseInt(required(args, "count"));
        int users = Integer.parseInt(required(args, "users"));
        int perSecond = Integer.parseInt(required(args, "per-second"));
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        // Outlast a broker kill and the new leaders' election.
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "180000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "180000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        AtomicInteger acked = new AtomicInteger();
        List<String> failures = new ArrayList<>();
        int slice = Math.max(1, perSecond / 10);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            long started = System.nanoTime();
            for (int i = 0; i < count; i++) {
                if (i % slice == 0) {
                    // Pace: slice i/slice is due at (i/slice) tenths of a second.
                    long due = started + (long) (i / slice) * 100_000_000L;
                    long wait = due - System.nanoTime();
                    if (wait > 0) {
                        Thread.sleep(wait / 1_000_000L, (int) (wait % 1_000_000L));
                    }
                }
                String key = "rec-" + i;
                producer.send(new ProducerRecord<>(topic, key, "user-" + (i % users)), (metadata, e) -> {
                    if (e != null) {
                        synchronized (failures) {
                            failures.add(key + ": " + e);
                        }
                    } else {
                        int n = acked.incrementAndGet();
                        if (n % 100 == 0) {
                            emit("acked", "\"count\":" + n);
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

    // ---- watch ----

    private static void watch(Map<String, String> args) throws Exception {
        String topic = required(args, "topic");
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, IsolationLevel.READ_COMMITTED.toString());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        CountDownLatch stop = stopOnInput();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo p : consumer.partitionsFor(topic, Duration.ofSeconds(120))) {
                partitions.add(new TopicPartition(topic, p.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            emit("assigned", "\"partitions\":" + partitions.stream().map(tp -> String.valueOf(tp.partition())).toList());
            while (stop.getCount() > 0) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    emit("record", "\"partition\":" + r.partition() + ",\"offset\":" + r.offset()
                            + ",\"key\":" + quote(r.key()) + ",\"value\":" + quote(r.value()));
                }
            }
        }
        emit("closed", "");
    }
}
