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
//	          [-max-records K] [-commit-on-stop]
//	          A group member. Events: assigned / revoked / lost (partitions),
//	          record (partition, offset, key, value), committed (offsets), closed.
//	          Reads commands from stdin: "commit" commits the positions of the
//	          records it has processed; "stop" (or end of input) stops it,
//	          committing first with -commit-on-stop. With -max-records it stops
//	          by itself after K records.
//	committed -bootstrap B -topic T -group G -partitions P
//	          -> {"event":"committed","offsets":{"0":5,...}} (-1: none)
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.bootstrap, "bootstrap", "", "bootstrap servers, comma-separated")
	fs.StringVar(&c.topic, "topic", "", "topic")
}

func (c *common) check() {
	if c.bootstrap == "" || c.topic == "" {
		fatal("-bootstrap and -topic are required")
	}
}

func main() {
	if len(os.Args) < 2 {
		fatal("usage: strom-e2e-go produce|consume|committed [flags]")
	}
	switch os.Args[1] {
	case "produce":
		produce(os.Args[2:])
	case "consume":
		consume(os.Args[2:])
	case "committed":
		committed(os.Args[2:])
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
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(c.bootstrap, ",")...),
		kgo.DefaultProduceTopic(c.topic),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(60*time.Second),
	)
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

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(c.bootstrap, ",")...),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(c.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(time.Duration(*sessionTimeoutMs)*time.Millisecond),
		kgo.HeartbeatInterval(time.Duration(max(500, *sessionTimeoutMs/6))*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			emit("assigned", map[string]any{"partitions": sortedPartitions(assigned, c.topic)})
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
			drop(revoked)
			emit("revoked", map[string]any{"partitions": sortedPartitions(revoked, c.topic)})
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			drop(lost)
			emit("lost", map[string]any{"partitions": sortedPartitions(lost, c.topic)})
		}),
	)
	if err != nil {
		fatal("create client: %v", err)
	}

	commit := func() {
		posMu.Lock()
		offsets := map[int32]kgo.EpochOffset{}
		for p, o := range positions {
			offsets[p] = o
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
				commit()
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
		if *maxRecords > 0 && processed >= *maxRecords {
			stopping = true
		}
	}
	if *commitOnStop {
		commit()
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.bootstrap, ",")...))
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
