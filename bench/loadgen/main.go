// Command fanout-subscribers is the Go load generator of the watch fan-out benchmark: it opens
// many Watch streams on a statekeeper server and records, for every delivered event, the time
// from the writer's send time (the document's "t" field, Unix seconds) to its receipt here.
//
// It prints "ready" on a line of its own once every stream has its `created` message, then a
// JSON summary when every stream has the expected number of events or the deadline passes.
// The latencies go to -latencies as little-endian int64 nanoseconds, in receipt order.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// summary is what the benchmark harness reads from standard output.
type summary struct {
	Received    int64   `json:"received"`
	Messages    int64   `json:"messages"`
	LastReceipt float64 `json:"last_receipt"`
	CPUSeconds  float64 `json:"cpu_s"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error"`
}

// recorder collects the figures of every stream.
type recorder struct {
	mu        sync.Mutex
	latencies []int64
	out       summary
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.Errors++
	if r.out.FirstError == "" {
		r.out.FirstError = err.Error()
	}
}

func (r *recorder) message(receipt time.Time, sent []float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out.Messages++
	r.out.Received += int64(len(sent))
	at := float64(receipt.UnixNano()) / 1e9
	for _, t := range sent {
		r.latencies = append(r.latencies, int64((at-t)*1e9))
	}
	if at > r.out.LastReceipt {
		r.out.LastReceipt = at
	}
}

// sendTime reads the writer's send time from an event's document: the "t" entry of its map,
// which the writer puts first, so that only the map header and one entry are decoded.
func sendTime(event *pb.Event) (float64, error) {
	decoder := msgpack.NewDecoder(bytes.NewReader(event.GetKv().GetValue().GetMsgpack()))
	entries, err := decoder.DecodeMapLen()
	if err != nil {
		return 0, fmt.Errorf("document of %q: %w", event.GetKv().GetKey(), err)
	}
	for range entries {
		name, err := decoder.DecodeString()
		if err != nil {
			return 0, err
		}
		if name == "t" {
			return decoder.DecodeFloat64()
		}
		if err := decoder.Skip(); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("document of %q has no t", event.GetKv().GetKey())
}

// subscribe runs one Watch stream until it has `expected` events or ctx ends.
func subscribe(ctx context.Context, client pb.StateServiceClient, pattern string, expected int64,
	ready *sync.WaitGroup, rec *recorder) {
	signalled := false
	defer func() {
		if !signalled {
			ready.Done()
		}
	}()
	stream, err := client.Watch(ctx, &pb.WatchRequest{
		Pattern:       pattern,
		PrevKv:        true,
		ValueEncoding: pb.ValueEncoding_VALUE_ENCODING_MSGPACK,
	})
	if err != nil {
		rec.fail(err)
		return
	}
	var received int64
	for received < expected {
		response, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				rec.fail(err)
			}
			return
		}
		if response.GetCreated() {
			signalled = true
			ready.Done()
			continue
		}
		if len(response.GetEvents()) == 0 {
			continue
		}
		receipt := time.Now()
		sent := make([]float64, 0, len(response.GetEvents()))
		for _, event := range response.GetEvents() {
			t, err := sendTime(event)
			if err != nil {
				rec.fail(err)
				return
			}
			sent = append(sent, t)
		}
		rec.message(receipt, sent)
		received += int64(len(sent))
	}
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}

func main() {
	address := flag.String("address", "127.0.0.1:50051", "the server address")
	pattern := flag.String("pattern", "*", "the key pattern every stream watches")
	subscribers := flag.Int("subscribers", 100, "the number of Watch streams")
	connections := flag.Int("connections", 4, "the number of connections the streams share")
	expected := flag.Int64("expected", 0, "events each stream waits for before it ends")
	deadline := flag.Float64("deadline", 0, "Unix time at which every stream ends regardless")
	latencyPath := flag.String("latencies", "", "file for the latencies (int64 ns, little-endian)")
	flag.Parse()

	ctx, cancel := context.WithDeadline(context.Background(),
		time.Unix(0, int64(*deadline*1e9)))
	defer cancel()
	clients := make([]pb.StateServiceClient, *connections)
	for i := range clients {
		conn, err := grpc.NewClient(*address,
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatalf("connect: %v", err)
		}
		defer conn.Close()
		clients[i] = pb.NewStateServiceClient(conn)
	}

	rec := &recorder{}
	var ready, done sync.WaitGroup
	ready.Add(*subscribers)
	done.Add(*subscribers)
	cpuBefore := cpuSeconds()
	for i := 0; i < *subscribers; i++ {
		go func(client pb.StateServiceClient) {
			defer done.Done()
			subscribe(ctx, client, *pattern, *expected, &ready, rec)
		}(clients[i%len(clients)])
	}
	ready.Wait()
	fmt.Println("ready")
	done.Wait()
	rec.out.CPUSeconds = cpuSeconds() - cpuBefore

	if *latencyPath != "" {
		file, err := os.Create(*latencyPath)
		if err != nil {
			log.Fatalf("latencies: %v", err)
		}
		if err := binary.Write(file, binary.LittleEndian, rec.latencies); err != nil {
			log.Fatalf("latencies: %v", err)
		}
		if err := file.Close(); err != nil {
			log.Fatalf("latencies: %v", err)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(rec.out); err != nil {
		log.Fatalf("summary: %v", err)
	}
}
