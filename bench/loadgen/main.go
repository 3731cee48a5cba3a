// Command fanout-subscribers is the Go load generator of the watch fan-out benchmark: it opens
// many Watch streams on a statekeeper server and records, for every delivered event, the time
// from the writer's send time (the document's "t" field, Unix seconds) to its receipt here.
//
// It prints "ready" on a line of its own once every stream has its `created` message, then a
// JSON summary when every stream has the expected number of events or the deadline passes.
// The latencies go to -latencies as little-endian int64 nanoseconds, stream after stream.
//
// A load generator must cost less than what it measures: the responses are read as raw bytes
// and walked with protowire, so that of each event only its kv's mod_revision and the send
// time in its value are read (prev_kv and the rest of the document are skipped, never copied
// or allocated). Each stream checks that its events' revisions only increase (every event
// delivered once, in order) and keeps its own figures, merged at the end.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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

// stream is the figures of one Watch stream.
type stream struct {
	latencies   []int64
	received    int64
	messages    int64
	lastReceipt float64
	err         error
}

// rawCodec sends requests as protobuf and hands each response over as its bytes, copied into
// the stream's reused buffer.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	data, err := proto.Marshal(v.(proto.Message))
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(data)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	buffer := (*v.(*[]byte))[:0]
	for _, piece := range data {
		buffer = append(buffer, piece.ReadOnlyData()...)
	}
	*v.(*[]byte) = buffer
	return nil
}

var errMalformed = errors.New("malformed response")

// fields calls visit(number, wire type, value bytes or varint) for each field of message.
func fields(message []byte, visit func(protowire.Number, protowire.Type, []byte, uint64) error) error {
	for len(message) > 0 {
		number, kind, n := protowire.ConsumeTag(message)
		if n < 0 {
			return errMalformed
		}
		message = message[n:]
		var bytes []byte
		var varint uint64
		switch kind {
		case protowire.BytesType:
			bytes, n = protowire.ConsumeBytes(message)
		case protowire.VarintType:
			varint, n = protowire.ConsumeVarint(message)
		default:
			n = protowire.ConsumeFieldValue(number, kind, message)
		}
		if n < 0 {
			return errMalformed
		}
		message = message[n:]
		if err := visit(number, kind, bytes, varint); err != nil {
			return err
		}
	}
	return nil
}

// event is what the benchmark reads of one event: its revision and the writer's send time.
type event struct {
	revision int64
	sent     float64
}

// parseEvent reads an Event's kv.mod_revision and the "t" entry of its msgpack value.
func parseEvent(data []byte) (event, error) {
	var found event
	var document []byte
	err := fields(data, func(number protowire.Number, _ protowire.Type, kv []byte, _ uint64) error {
		if number != 2 { // Event.kv; prev_kv (3) is skipped
			return nil
		}
		return fields(kv, func(number protowire.Number, _ protowire.Type, b []byte, v uint64) error {
			switch number {
			case 2: // KeyValue.value
				return fields(b, func(number protowire.Number, _ protowire.Type, b []byte, _ uint64) error {
					if number == 2 { // Value.msgpack
						document = b
					}
					return nil
				})
			case 4: // KeyValue.mod_revision
				found.revision = int64(v)
			}
			return nil
		})
	})
	if err != nil {
		return found, err
	}
	found.sent, err = sendTime(document)
	return found, err
}

// sendTime reads the writer's send time from a msgpack document: the "t" entry of its map,
// which the writer puts first (a map header, "t", a float64), read in place; any other layout
// goes through the msgpack decoder.
func sendTime(document []byte) (float64, error) {
	header := 1
	if len(document) > 0 && document[0] == 0xde {
		header = 3
	} else if len(document) > 0 && document[0] == 0xdf {
		header = 5
	}
	if len(document) >= header+11 && document[header] == 0xa1 && document[header+1] == 't' &&
		document[header+2] == 0xcb {
		bits := binary.BigEndian.Uint64(document[header+3 : header+11])
		return math.Float64frombits(bits), nil
	}
	var decoded struct {
		T *float64 `msgpack:"t"`
	}
	if err := msgpack.Unmarshal(document, &decoded); err != nil {
		return 0, err
	}
	if decoded.T == nil {
		return 0, errors.New("document has no t")
	}
	return *decoded.T, nil
}

// subscribe runs one Watch stream until it has `expected` events or ctx ends.
func subscribe(ctx context.Context, conn *grpc.ClientConn, pattern string, expected int64,
	ready *sync.WaitGroup, figures *stream) {
	signalled := false
	defer func() {
		if !signalled {
			ready.Done()
		}
	}()
	desc := &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}
	call, err := conn.NewStream(ctx, desc, "/statekeeper.v1.StateService/Watch",
		grpc.ForceCodecV2(rawCodec{}))
	if err == nil {
		err = call.SendMsg(&pb.WatchRequest{
			Pattern:       pattern,
			PrevKv:        true,
			ValueEncoding: pb.ValueEncoding_VALUE_ENCODING_MSGPACK,
		})
	}
	if err == nil {
		err = call.CloseSend()
	}
	if err != nil {
		figures.err = err
		return
	}
	var response []byte
	last := int64(-1)
	for figures.received < expected {
		if err := call.RecvMsg(&response); err != nil {
			if ctx.Err() == nil {
				figures.err = err
			}
			return
		}
		receipt := time.Now()
		at := float64(receipt.UnixNano()) / 1e9
		events := 0
		err := fields(response, func(number protowire.Number, _ protowire.Type, b []byte, v uint64) error {
			switch number {
			case 1: // created
				if v != 0 && !signalled {
					signalled = true
					ready.Done()
				}
			case 3: // events
				found, err := parseEvent(b)
				if err != nil {
					return err
				}
				if found.revision <= last {
					return fmt.Errorf("revision %d after %d: out of order", found.revision, last)
				}
				last = found.revision
				figures.latencies = append(figures.latencies, int64((at-found.sent)*1e9))
				events++
			}
			return nil
		})
		if err != nil {
			figures.err = err
			return
		}
		if events > 0 {
			figures.messages++
			figures.received += int64(events)
			figures.lastReceipt = at
		}
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
	window := flag.Int("window", 0, "HTTP/2 flow-control window per stream and per connection "+
		"in bytes (0: gRPC's default, grown from 64 KiB by its bandwidth estimate)")
	flag.Parse()

	ctx, cancel := context.WithDeadline(context.Background(),
		time.Unix(0, int64(*deadline*1e9)))
	defer cancel()
	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		options := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if *window > 0 {
			options = append(options, grpc.WithInitialWindowSize(int32(*window)),
				grpc.WithInitialConnWindowSize(int32(*window)))
		}
		conn, err := grpc.NewClient(*address, options...)
		if err != nil {
			log.Fatalf("connect: %v", err)
		}
		defer conn.Close()
		conns[i] = conn
	}

	streams := make([]stream, *subscribers)
	var ready, done sync.WaitGroup
	ready.Add(*subscribers)
	done.Add(*subscribers)
	cpuBefore := cpuSeconds()
	for i := range streams {
		go func(figures *stream, conn *grpc.ClientConn) {
			defer done.Done()
			subscribe(ctx, conn, *pattern, *expected, &ready, figures)
		}(&streams[i], conns[i%len(conns)])
	}
	ready.Wait()
	fmt.Println("ready")
	done.Wait()

	out := summary{CPUSeconds: cpuSeconds() - cpuBefore}
	var latencies []int64
	for _, figures := range streams {
		out.Received += figures.received
		out.Messages += figures.messages
		out.LastReceipt = max(out.LastReceipt, figures.lastReceipt)
		latencies = append(latencies, figures.latencies...)
		if figures.err != nil {
			out.Errors++
			if out.FirstError == "" {
				out.FirstError = figures.err.Error()
			}
		}
	}
	if *latencyPath != "" {
		file, err := os.Create(*latencyPath)
		if err != nil {
			log.Fatalf("latencies: %v", err)
		}
		if err := binary.Write(file, binary.LittleEndian, latencies); err != nil {
			log.Fatalf("latencies: %v", err)
		}
		if err := file.Close(); err != nil {
			log.Fatalf("latencies: %v", err)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatalf("summary: %v", err)
	}
}
