// Command strom-e2e-go is the franz-go client driven by broker/tests/e2e_go.rs.
//
// It proves nothing by itself: it is the real Go client (github.com/twmb/franz-go
// pkg/kgo and pkg/kadm) that the Rust tests run as separate processes against a
// Strom broker, so that keyed producing, group membership (franz-go's default
// cooperative-sticky balancer), offset commits and record delivery are checked
// as a Go application sees them.
//
// Subcommands (all print JSON lines on stdout, one event per line):
//
//	produce   -bootstrap B -topic T -count N [-start S] [-keys K]
//	          Produces records value-<i> with key key-<i % K> for i in S..S+N
//	          (acks=all, idempotent: franz-go's defaults) and waits for every ack.
//	          -> {"event":"produced","count":N}
//	consume   -bootstrap B -topic T -group G [-session-timeout-ms MS]
//	          [-max-records K] [-commit-on-stop] [-commit-on-revoke]
//	          [-group-protocol classic|consumer]
//	          A group member. Events: assigned / revoked / lost (partitions),
//	          record (partition, offset, key, value), committed (offsets), closed.
//	          Reads commands from stdin: "commit" commits the positions of the
//	          records it has processed; "stop" (or end of input) stops it,
//	          committing first with -commit-on-stop; -commit-on-revoke commits a
//	          partition's position before giving it up (blocking rebalances while
//	          a poll's records are processed); -group-protocol consumer
//	          is KIP-848 (kgo.ServerSideBalancer). With -max-records it stops
//	          by itself after K records.
//	committed -bootstrap B -topic T -group G -partitions P
//	          -> {"event":"committed","offsets":{"0":5,...}} (-1: none)
//	roundtrip -bootstrap B -topic T -group G -count N [-partitions P]
//	          Creates T (admin), produces N records, consumes them in group G,
//	          commits and reads the commit back.
//	          -> {"event":"roundtrip","produced":N,"consumed":N,"committed":N}
//	ctp       -bootstrap B -input I -output O -group G -transactional-id T
//	          A consume-transform-produce worker (GroupTransactSession): copies
//	          each record of I to the same partition of O in transactions
//	          that also commit the consumed offsets. Events: assigned,
//	          revoked, lost, txn, client_error, closed; "stop" on stdin stops it.
//
// Every subcommand takes the client's security settings, named as Kafka
// clients name them: -security-protocol PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL,
// -sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512 with -username and
// -password, -ca-file (PEM, the CA to trust) and -cert-file/-key-file (PEM,
// a client certificate).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

var stdoutMu sync.Mutex

// emit prints one JSON event line; callbacks run on franz-go's goroutines, so
// lines are serialised.
func emit(event string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["event"] = event
	line, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

func fatal(format string, args ...any) {
	emit("error", map[string]any{"message": fmt.Sprintf(format, args...)})
	os.Exit(1)
}

type common struct {
	bootstrap string
	topic     string
	protocol  string
	mechanism string
	username  string
	password  string
	caFile    string
	certFile  string
	keyFile   string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.bootstrap, "bootstrap", "", "bootstrap servers, comma-separated")
	fs.StringVar(&c.topic, "topic", "", "topic")
	fs.StringVar(&c.protocol, "security-protocol", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
	fs.StringVar(&c.mechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&c.username, "username", "", "SASL user")
	fs.StringVar(&c.password, "password", "", "SASL password")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM file of the CA to trust (SSL, SASL_SSL)")
	fs.StringVar(&c.certFile, "cert-file", "", "PEM client certificate (SSL)")
	fs.StringVar(&c.keyFile, "key-file", "", "PEM key of the client certificate (SSL)")
}

// opts are the client options every subcommand starts from: the seed
// brokers and the security settings.
func (c *common) opts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(c.bootstrap, ",")...)}
	useTLS, useSASL := false, false
	switch c.protocol {
	case "PLAINTEXT":
	case "SSL":
		useTLS = true
	case "SASL_PLAINTEXT":
		useSASL = true
	case "SASL_SSL":
		useTLS, useSASL = true, true
	default:
		fatal("-security-protocol %q: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", c.protocol)
	}
	if useTLS {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.caFile != "" {
			pem, err := os.ReadFile(c.caFile)
			if err != nil {
				fatal("read -ca-file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				fatal("-ca-file %s holds no PEM certificate", c.caFile)
			}
			config.RootCAs = pool
		}
		if c.certFile != "" {
			pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
			if err != nil {
				fatal("load -cert-file/-key-file: %v", err)
			}
			config.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(config))
	}
	if useSASL {
		switch c.mechanism {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: c.username, Pass: c.password}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.username, Pass: c.password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: c.username, Pass: c.password}.AsSha512Mechanism()))
		default:
			fatal("-sasl-mechanism %q: expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.mechanism)
		}
	}
	return opts
}

func (c *common) check() {
	if c.bootstrap == "" || c.topic == "" {
		fatal("-bootstrap and -topic are required")
	}
}

func main() {
	if len(os.Args) < 2 {
		fatal("usage: strom-e2e-go produce|consume|committed|roundtrip|ctp [flags]")
	}
	switch os.Args[1] {
	case "produce":
		produce(os.Args[2:])
	case "consume":
		consume(os.Args[2:])
	case "committed":
		committed(os.Args[2:])
	case "roundtrip":
		roundtrip(os.Args[2:])
	case "ctp":
		ctp(os.Args[2:])
	default:
		fatal("unknown subcommand %q", os.Args[1])
	}
}

func produce(argv []string) {
	var c common
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	c.register(fs)
	count := fs.Int("count", 0, "records to produce")
	start := fs.Int("start", 0, "first record number")
	keys := fs.Int("keys", 0, "distinct keys (default: one per record)")
	fs.Parse(argv)
	c.check()
	if *keys <= 0 {
		*keys = *count
	}
	cl, err := kgo.NewClient(append(c.opts(),
		kgo.DefaultProduceTopic(c.topic),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(60*time.Second),
	)...)
	if err != nil {
		fatal("create client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i := *start; i < *start+*count; i++ {
		record := &kgo.Record{
			Key:   []byte(fmt.Sprintf("key-%d", i%*keys)),
			Value: []byte(fmt.Sprintf("value-%d", i)),
		}
		wg.Add(1)
		cl.Produce(ctx, record, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %v", r.Value, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		fatal("%d of %d records failed, first: %v", len(failures), *count, failures[0])
	}
	emit("produced", map[string]any{"count": *count})
}

func sortedPartitions(assigned map[string][]int32, topic string) []int32 {
	ps := append([]int32{}, assigned[topic]...)
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func consume(argv []string) {
	var c common
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	c.register(fs)
	group := fs.String("group", "", "consumer group")
	sessionTimeoutMs := fs.Int("session-timeout-ms", 6000, "session timeout")
	maxRecords := fs.Int("max-records", 0, "stop after this many records (0: no limit)")
	commitOnStop := fs.Bool("commit-on-stop", false, "commit processed positions before leaving")
	commitOnRevoke := fs.Bool("commit-on-revoke", false, "commit a partition's processed position before giving it up")
	groupProtocol := fs.String("group-protocol", "classic", "classic, or consumer (KIP-848: kgo.ServerSideBalancer)")
	fs.Parse(argv)
	c.check()
	if *group == "" {
		fatal("-group is required")
	}

	// Next offset to commit per partition (one past the last record processed),
	// with the leader epoch of that record.
	var posMu sync.Mutex
	positions := map[int32]kgo.EpochOffset{}
	drop := func(assigned map[string][]int32) {
		posMu.Lock()
		defer posMu.Unlock()
		for _, p := range assigned[c.topic] {
			delete(positions, p)
		}
	}

	// Commits the processed positions (of `only`'s partitions when not nil).
	var commit func(only []int32)
	groupOpts := []kgo.Opt{
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(c.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	}
	switch *groupProtocol {
	case "classic":
		groupOpts = append(groupOpts,
			kgo.SessionTimeout(time.Duration(*sessionTimeoutMs)*time.Millisecond),
			kgo.HeartbeatInterval(time.Duration(max(500, *sessionTimeoutMs/6))*time.Millisecond))
	case "consumer":
		// KIP-848: the broker assigns and its group.consumer.* settings time the session.
		groupOpts = append(groupOpts, kgo.ServerSideBalancer())
	default:
		fatal("-group-protocol must be classic or consumer, not %q", *groupProtocol)
	}
	if *commitOnRevoke {
		// A revocation then waits until the records of the last poll are
		// processed (AllowRebalance below), so its commit covers them and no
		// record of a revoked partition is processed after it.
		groupOpts = append(groupOpts, kgo.BlockRebalanceOnPoll())
	}
	cl, err := kgo.NewClient(append(append(c.opts(), groupOpts...),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			emit("assigned", map[string]any{"partitions": sortedPartitions(assigned, c.topic)})
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
			if *commitOnRevoke && len(revoked[c.topic]) > 0 {
				commit(revoked[c.topic])
			}
			drop(revoked)
			emit("revoked", map[string]any{"partitions": sortedPartitions(revoked, c.topic)})
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			drop(lost)
			emit("lost", map[string]any{"partitions": sortedPartitions(lost, c.topic)})
		}),
	)...)
	if err != nil {
		fatal("create client: %v", err)
	}

	commit = func(only []int32) {
		posMu.Lock()
		offsets := map[int32]kgo.EpochOffset{}
		for p, o := range positions {
			if only == nil || slices.Contains(only, p) {
				offsets[p] = o
			}
		}
		posMu.Unlock()
		if len(offsets) == 0 {
			emit("committed", map[string]any{"offsets": map[string]int64{}})
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var commitErr error
		done := map[string]int64{}
		cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{c.topic: offsets},
			func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				if err != nil {
					commitErr = err
					return
				}
				for _, t := range resp.Topics {
					for _, p := range t.Partitions {
						if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil {
							commitErr = fmt.Errorf("partition %d: %w", p.Partition, perr)
							continue
						}
						done[strconv.Itoa(int(p.Partition))] = offsets[p.Partition].Offset
					}
				}
			})
		if commitErr != nil {
			fatal("commit of %v failed: %v", offsets, commitErr)
		}
		emit("committed", map[string]any{"offsets": done})
	}

	commands := make(chan string, 16)
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			commands <- strings.TrimSpace(scanner.Text())
		}
		commands <- "stop"
	}()

	processed := 0
	stopping := false
	for !stopping {
		select {
		case command := <-commands:
			switch command {
			case "commit":
				commit(nil)
			case "stop":
				stopping = true
			case "":
			default:
				fatal("unknown command %q", command)
			}
			continue
		default:
		}
		limit := -1
		if *maxRecords > 0 {
			limit = *maxRecords - processed
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		fetches := cl.PollRecords(ctx, limit)
		cancel()
		if fetches.IsClientClosed() {
			fatal("client closed while polling")
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			emit("client_error", map[string]any{"message": fmt.Sprintf("%s-%d: %v", topic, partition, err)})
		})
		fetches.EachRecord(func(r *kgo.Record) {
			emit("record", map[string]any{
				"partition": r.Partition,
				"offset":    r.Offset,
				"key":       string(r.Key),
				"value":     string(r.Value),
			})
			posMu.Lock()
			positions[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
			posMu.Unlock()
			processed++
		})
		if *commitOnRevoke {
			cl.AllowRebalance()
		}
		if *maxRecords > 0 && processed >= *maxRecords {
			stopping = true
		}
	}
	if *commitOnStop {
		commit(nil)
	}
	// LeaveGroup, then close.
	cl.Close()
	emit("closed", nil)
}

func committed(argv []string) {
	var c common
	fs := flag.NewFlagSet("committed", flag.ExitOnError)
	c.register(fs)
	group := fs.String("group", "", "consumer group")
	partitions := fs.Int("partitions", 0, "partitions of the topic")
	fs.Parse(argv)
	c.check()
	cl, err := kgo.NewClient(c.opts()...)
	if err != nil {
		fatal("create client: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fetched, err := adm.FetchOffsets(ctx, *group)
	if err != nil {
		fatal("fetch offsets of group %s: %v", *group, err)
	}
	if err := fetched.Error(); err != nil {
		fatal("fetch offsets of group %s: %v", *group, err)
	}
	out := map[string]int64{}
	for p := 0; p < *partitions; p++ {
		out[strconv.Itoa(p)] = -1
		if o, ok := fetched.Lookup(c.topic, int32(p)); ok {
			out[strconv.Itoa(p)] = o.At
		}
	}
	emit("committed", map[string]any{"offsets": out})
}

// roundtrip is one application's whole life on a secured listener: it
// creates its topic, produces, consumes in a group and commits, then reads
// its commit back.
func roundtrip(argv []string) {
	var c common
	fs := flag.NewFlagSet("roundtrip", flag.ExitOnError)
	c.register(fs)
	group := fs.String("group", "", "consumer group")
	count := fs.Int("count", 0, "records to produce and consume")
	partitions := fs.Int("partitions", 3, "partitions of the topic created")
	fs.Parse(argv)
	c.check()
	if *group == "" || *count <= 0 {
		fatal("-group and a positive -count are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	admin, err := kgo.NewClient(c.opts()...)
	if err != nil {
		fatal("create admin client: %v", err)
	}
	defer admin.Close()
	created, err := kadm.NewClient(admin).CreateTopics(ctx, int32(*partitions), 1, nil, c.topic)
	if err != nil {
		fatal("create topic %s: %v", c.topic, err)
	}
	if err := created.Error(); err != nil {
		fatal("create topic %s: %v", c.topic, err)
	}

	producer, err := kgo.NewClient(append(c.opts(), kgo.DefaultProduceTopic(c.topic))...)
	if err != nil {
		fatal("create producer: %v", err)
	}
	records := make([]*kgo.Record, *count)
	for i := range records {
		records[i] = &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte(fmt.Sprintf("value-%d", i))}
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		fatal("produce: %v", err)
	}
	producer.Close()

	consumer, err := kgo.NewClient(append(c.opts(),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(c.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)...)
	if err != nil {
		fatal("create consumer: %v", err)
	}
	seen := map[string]bool{}
	for len(seen) < *count {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			fatal("consumed %d of %d records before the deadline", len(seen), *count)
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			fatal("fetch %s-%d: %v", topic, partition, err)
		})
		fetches.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		fatal("commit: %v", err)
	}
	consumer.Close()

	fetched, err := kadm.NewClient(admin).FetchOffsets(ctx, *group)
	if err != nil {
		fatal("fetch offsets of group %s: %v", *group, err)
	}
	if err := fetched.Error(); err != nil {
		fatal("fetch offsets of group %s: %v", *group, err)
	}
	var committed int64
	for p := 0; p < *partitions; p++ {
		if o, ok := fetched.Lookup(c.topic, int32(p)); ok {
			committed += o.At
		}
	}
	emit("roundtrip", map[string]any{"produced": *count, "consumed": len(seen), "committed": committed})
}

// ctp is a consume-transform-produce worker with franz-go's
// GroupTransactSession: a member of -group reading -input read_committed
// copies, per batch and in one transaction that also commits the consumed
// offsets, each record to the same partition of -output (same key, value
// "<partition>:<offset>" of the input record). Events: assigned / revoked /
// lost (partitions), txn (records copied by each commit), client_error,
// closed. Reads stdin: "stop" (or end of input) stops it.
func ctp(argv []string) {
	var c common
	fs := flag.NewFlagSet("ctp", flag.ExitOnError)
	c.register(fs)
	input := fs.String("input", "", "topic to read")
	output := fs.String("output", "", "topic to write")
	group := fs.String("group", "", "consumer group")
	txnID := fs.String("transactional-id", "", "transactional id")
	fs.Parse(argv)
	if c.bootstrap == "" || *input == "" || *output == "" || *group == "" || *txnID == "" {
		fatal("-bootstrap, -input, -output, -group and -transactional-id are required")
	}
	partitionsEvent := func(event string) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			emit(event, map[string]any{"partitions": sortedPartitions(m, *input)})
		}
	}
	sess, err := kgo.NewGroupTransactSession(append(c.opts(),
		kgo.TransactionalID(*txnID),
		// A killed worker's open transaction is aborted by the coordinator after 10 s.
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*input),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.OnPartitionsAssigned(partitionsEvent("assigned")),
		kgo.OnPartitionsRevoked(partitionsEvent("revoked")),
		kgo.OnPartitionsLost(partitionsEvent("lost")),
	)...)
	if err != nil {
		fatal("create the session: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		for scanner.Scan() {
			if strings.TrimSpace(scanner.Text()) == "stop" {
				break
			}
		}
		cancel()
	}()
	for ctx.Err() == nil {
		fetches := sess.PollFetches(ctx)
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				emit("client_error", map[string]any{"message": fmt.Sprintf("fetch %s-%d: %v", t, p, err)})
			}
		})
		var records []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) { records = append(records, r) })
		if len(records) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			fatal("begin a transaction: %v", err)
		}
		// franz-go leaves failed records to the application: a record the
		// broker refused is not in the transaction, so committing would
		// commit its input offset without its copy. The first failure
		// aborts what is still buffered, and the transaction is aborted.
		produced := kgo.AbortingFirstErrPromise(sess.Client())
		for _, r := range records {
			copied := &kgo.Record{
				Topic:     *output,
				Partition: r.Partition,
				Key:       r.Key,
				Value:     []byte(fmt.Sprintf("%d:%d", r.Partition, r.Offset)),
			}
			sess.Produce(ctx, copied, produced.Promise())
		}
		produceErr := produced.Err() // waits for every record's outcome
		if produceErr != nil {
			emit("client_error", map[string]any{"message": fmt.Sprintf("produce: %v", produceErr)})
		}
		// End flushes, commits the consumed offsets with the transaction
		// (or aborts it when a record failed or the group moved on) and
		// rewinds after an abort.
		committed, err := sess.End(ctx, kgo.TransactionEndTry(produceErr == nil))
		switch {
		case err != nil:
			emit("client_error", map[string]any{"message": fmt.Sprintf("ending the transaction: %v", err)})
		case committed:
			emit("txn", map[string]any{"count": len(records)})
		default:
			emit("client_error", map[string]any{"message": "aborting the transaction: the group rebalanced or a record failed"})
		}
	}
	sess.Close()
	emit("closed", nil)
}
