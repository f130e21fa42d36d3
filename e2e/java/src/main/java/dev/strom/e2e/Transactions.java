// The Java client's transactions (org.apache.kafka:kafka-clients 4.x) driven
// by broker/tests/e2e_java_transactions.rs.
//
// Proves nothing by itself: it is the real transactional KafkaProducer and a
// KafkaConsumer with isolation.level set, run as separate processes against
// Strom brokers. Prints JSON lines on stdout, one event per line.
//
//   txn   --bootstrap B --transactional-id ID --targets t:p,t:p,... --count N
//         --prefix P --end commit|abort
//         initTransactions, beginTransaction, N records "<P>-<t>-<p>-<i>" to
//         each target partition, then commitTransaction or abortTransaction.
//         -> {"event":"ended","end":"commit"}
//   read  --bootstrap B --topics t1,t2 --isolation read_committed|read_uncommitted
//         Reads every partition of the topics from the start to the end
//         offsets the consumer sees at its isolation level (the last stable
//         offset for read_committed). -> {"event":"record","topic":..,"partition":..,"value":..}...
//         then {"event":"end","count":N}
//   fence --bootstrap B --transactional-id ID --topic T
//         A producer opens a transaction and writes "zombie-0"; a second
//         producer with the same transactional.id initializes (fencing the
//         first and aborting its transaction); the first then tries to write
//         and commit. -> {"event":"fenced","exception":<class>} and the
//         successor commits "successor-0" -> {"event":"ended","end":"commit"}
//   ctp   --bootstrap B --input I --output O --group G --transactional-id ID --count N
//         Consume-transform-produce: a read_committed group member reads I
//         and, per poll, in one transaction writes "out-<value>" to O and the
//         consumed positions with sendOffsetsToTransaction. The first such
//         transaction is aborted and its records consumed again. Stops after
//         N records are committed. -> {"event":"ctp-done","aborted":1,"committed":N}
//   epochs --bootstrap B --transactional-id ID --topic T --transactions N
//         One producer runs N transactions (commit, abort, commit, ...) of
//         one record "<ID>-<i>" each to partition 0 of T; after each ends,
//         an Admin describes the transactional id.
//         -> {"event":"epoch","end":"commit","producerId":P,"producerEpoch":E} per transaction
package dev.strom.e2e;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Transactions {
    private Transactions() {}

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            fatal("usage: Transactions txn|read|fence --bootstrap B ...");
        }
        Map<String, String> args = new HashMap<>();
        for (int i = 1; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                fatal("unexpected argument " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        switch (argv[0]) {
            case "txn" -> txn(args);
            case "read" -> read(args);
            case "fence" -> fence(args);
            case "ctp" -> ctp(args);
            case "epochs" -> epochs(args);
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

    private static KafkaProducer<String, String> producer(String bootstrap, String transactionalId) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "120000");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(props);
    }

    private static void txn(Map<String, String> args) {
        int count = Integer.parseInt(required(args, "count"));
        String prefix = required(args, "prefix");
        String end = required(args, "end");
        List<TopicPartition> targets = new ArrayList<>();
        for (String t : required(args, "targets").split(",")) {
            int colon = t.lastIndexOf(':');
            targets.add(new TopicPartition(t.substring(0, colon), Integer.parseInt(t.substring(colon + 1))));
        }
        try (KafkaProducer<String, String> p = producer(required(args, "bootstrap"), required(args, "transactional-id"))) {
            p.initTransactions();
            p.beginTransaction();
            for (TopicPartition tp : targets) {
                for (int i = 0; i < count; i++) {
                    String value = prefix + "-" + tp.topic() + "-" + tp.partition() + "-" + i;
                    p.send(new ProducerRecord<>(tp.topic(), tp.partition(), "k" + i, value));
                }
            }
            p.flush();
            if (end.equals("commit")) {
                p.commitTransaction();
            } else {
                p.abortTransaction();
            }
        } catch (KafkaException e) {
            fatal("transaction failed: " + e);
        }
        emit("ended", "\"end\":" + quote(end));
    }

    private static void read(Map<String, String> args) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, required(args, "bootstrap"));
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, required(args, "isolation"));
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        int count = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
            List<TopicPartition> all = new ArrayList<>();
            for (String topic : required(args, "topics").split(",")) {
                for (PartitionInfo info : c.partitionsFor(topic, Duration.ofSeconds(60))) {
                    all.add(new TopicPartition(topic, info.partition()));
                }
            }
            c.assign(all);
            c.seekToBeginning(all);
            Map<TopicPartition, Long> ends = c.endOffsets(all, Duration.ofSeconds(60));
            long deadline = System.currentTimeMillis() + 120_000;
            while (all.stream().anyMatch(tp -> c.position(tp, Duration.ofSeconds(60)) < ends.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    fatal("did not reach the end offsets " + ends + " within 120 s");
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    emit("record", "\"topic\":" + quote(r.topic()) + ",\"partition\":" + r.partition() + ",\"value\":"
                            + quote(r.value()));
                    count++;
                }
            }
        }
        emit("end", "\"count\":" + count);
    }

    private static void fence(Map<String, String> args) {
        String bootstrap = required(args, "bootstrap");
        String id = required(args, "transactional-id");
        String topic = required(args, "topic");
        KafkaProducer<String, String> zombie = producer(bootstrap, id);
        zombie.initTransactions();
        zombie.beginTransaction();
        zombie.send(new ProducerRecord<>(topic, 0, "k", "zombie-0"));
        zombie.flush();
        try (KafkaProducer<String, String> successor = producer(bootstrap, id)) {
            successor.initTransactions();
            String fenced = "none";
            try {
                zombie.send(new ProducerRecord<>(topic, 0, "k", "zombie-1"));
                zombie.commitTransaction();
            } catch (KafkaException e) {
                fenced = e.getClass().getSimpleName();
            }
            emit("fenced", "\"exception\":" + quote(fenced));
            zombie.close(Duration.ZERO);
            successor.beginTransaction();
            successor.send(new ProducerRecord<>(topic, 0, "k", "successor-0"));
            successor.commitTransaction();
        } catch (KafkaException e) {
            fatal("the successor failed: " + e);
        }
        emit("ended", "\"end\":\"commit\"");
    }

    private static void ctp(Map<String, String> args) {
        String bootstrap = required(args, "bootstrap");
        String input = required(args, "input");
        String output = required(args, "output");
        int count = Integer.parseInt(required(args, "count"));
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, required(args, "group"));
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        int committed = 0;
        int aborted = 0;
        long deadline = System.currentTimeMillis() + 150_000;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props);
                KafkaProducer<String, String> producer = producer(bootstrap, required(args, "transactional-id"))) {
            producer.initTransactions();
            consumer.subscribe(List.of(input));
            while (committed < count) {
                if (System.currentTimeMillis() > deadline) {
                    fatal("only " + committed + " of " + count + " records committed within 150 s");
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) {
                    continue;
                }
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                Map<TopicPartition, Long> first = new HashMap<>();
                producer.beginTransaction();
                for (ConsumerRecord<String, String> r : records) {
                    producer.send(new ProducerRecord<>(output, r.key(), "out-" + r.value()));
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    first.putIfAbsent(tp, r.offset());
                    next.put(tp, new OffsetAndMetadata(r.offset() + 1));
                }
                producer.sendOffsetsToTransaction(next, consumer.groupMetadata());
                if (aborted == 0) {
                    producer.abortTransaction();
                    aborted++;
                    first.forEach(consumer::seek);
                    emit("aborted", "\"records\":" + records.count());
                } else {
                    producer.commitTransaction();
                    committed += records.count();
                }
            }
        } catch (KafkaException e) {
            fatal("consume-transform-produce failed: " + e);
        }
        emit("ctp-done", "\"aborted\":" + aborted + ",\"committed\":" + committed);
    }

    private static void epochs(Map<String, String> args) {
        String bootstrap = required(args, "bootstrap");
        String id = required(args, "transactional-id");
        String topic = required(args, "topic");
        int n = Integer.parseInt(required(args, "transactions"));
        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (KafkaProducer<String, String> p = producer(bootstrap, id); Admin admin = Admin.create(adminProps)) {
            p.initTransactions();
            for (int i = 0; i < n; i++) {
                p.beginTransaction();
                p.send(new ProducerRecord<>(topic, 0, "k", id + "-" + i));
                p.flush();
                String end = i % 2 == 0 ? "commit" : "abort";
                if (end.equals("commit")) {
                    p.commitTransaction();
                } else {
                    p.abortTransaction();
                }
                TransactionDescription d = admin.describeTransactions(List.of(id)).description(id).get();
                emit("epoch", "\"end\":" + quote(end) + ",\"producerId\":" + d.producerId() + ",\"producerEpoch\":"
                        + d.producerEpoch());
            }
        } catch (Exception e) {
            fatal("epochs failed: " + e);
        }
        emit("ended", "\"end\":\"commit\"");
    }
}
