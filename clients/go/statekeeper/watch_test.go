package statekeeper

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// fakeState is a StateService whose Watch breaks the first stream after two events.
type fakeState struct {
	pb.UnimplementedStateServiceServer
	mu       sync.Mutex
	requests []int64
	compact  bool
}

func (f *fakeState) Watch(request *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchResponse]) error {
	f.mu.Lock()
	f.requests = append(f.requests, request.GetStartRevision())
	call := len(f.requests)
	f.mu.Unlock()
	event := func(revision int64, n int) *pb.Event {
		value, _ := ToValue(map[string]any{"n": n}, EncodingMsgpack)
		return &pb.Event{Type: pb.EventType_EVENT_TYPE_PUT,
			Kv: &pb.KeyValue{Key: "k", ModRevision: revision, Value: value}}
	}
	if f.compact {
		return stream.Send(&pb.WatchResponse{Canceled: true, CompactRevision: 7, CancelReason: "compacted"})
	}
	if call == 1 {
		_ = stream.Send(&pb.WatchResponse{Created: true, Revision: 10})
		_ = stream.Send(&pb.WatchResponse{Revision: 11, Events: []*pb.Event{event(11, 1)}})
		_ = stream.Send(&pb.WatchResponse{Revision: 12, Events: []*pb.Event{event(12, 2)}})
		return status.Error(codes.Unavailable, "server restarting")
	}
	_ = stream.Send(&pb.WatchResponse{Created: true, Revision: 12})
	_ = stream.Send(&pb.WatchResponse{Revision: 13, Events: []*pb.Event{event(13, 3)}})
	<-stream.Context().Done()
	return nil
}

func startFake(t *testing.T, fake pb.StateServiceServer, options ...Option) *Client {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	pb.RegisterStateServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	options = append(options, WithGRPCOptions(grpc.WithContextDialer(
		func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })))
	client, err := Dial("passthrough:///bufnet", options...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestWatchResumesAfterTheLastDeliveredRevision(t *testing.T) {
	fake := &fakeState{}
	client := startFake(t, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var revisions []int64
	var values []any
	for change, err := range client.Watch(ctx, "k*", WatchOptions{MaxBackoff: 10 * time.Millisecond}) {
		if err != nil {
			t.Fatal(err)
		}
		revisions = append(revisions, change.Revision)
		values = append(values, change.Value.(map[string]any)["n"])
		if len(revisions) == 3 {
			break
		}
	}
	if len(revisions) != 3 || revisions[0] != 11 || revisions[1] != 12 || revisions[2] != 13 {
		t.Fatalf("revisions %v", revisions)
	}
	if values[2] != int64(3) {
		t.Fatalf("values %v", values)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.requests) != 2 || fake.requests[0] != 0 || fake.requests[1] != 13 {
		t.Fatalf("start revisions asked: %v (want [0 13])", fake.requests)
	}
}

func TestWatchReportsCompaction(t *testing.T) {
	client := startFake(t, &fakeState{compact: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got error
	for _, err := range client.Watch(ctx, "*", WatchOptions{StartRevision: 1}) {
		got = err
	}
	var skErr *Error
	if !errors.Is(got, ErrHistoryCompacted) || !errors.As(got, &skErr) || skErr.CompactRevision() != 7 {
		t.Fatalf("got %v", got)
	}
}

func TestWatchEndsQuietlyWhenTheContextEnds(t *testing.T) {
	client := startFake(t, &fakeState{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	count := 0
	for _, err := range client.Watch(ctx, "*", WatchOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		count++
		if count == 3 {
			cancel()
		}
	}
	if count != 3 {
		t.Fatalf("got %d changes", count)
	}
}

// fragmentState is a StateService whose first Watch stream ends with server_shutdown in the
// middle of a revision sent in fragments; the second stream sends that revision again, whole.
type fragmentState struct {
	pb.UnimplementedStateServiceServer
	mu       sync.Mutex
	requests []int64
	big      int
}

func (f *fragmentState) Watch(request *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchResponse]) error {
	f.mu.Lock()
	f.requests = append(f.requests, request.GetStartRevision())
	call := len(f.requests)
	f.mu.Unlock()
	event := func(revision int64, key string, size int) *pb.Event {
		value, _ := ToValue(map[string]any{"s": string(make([]byte, size))}, EncodingMsgpack)
		return &pb.Event{Type: pb.EventType_EVENT_TYPE_PUT,
			Kv: &pb.KeyValue{Key: key, ModRevision: revision, Value: value}}
	}
	if call == 1 {
		_ = stream.Send(&pb.WatchResponse{Created: true, Revision: 10})
		_ = stream.Send(&pb.WatchResponse{Revision: 11, Events: []*pb.Event{event(11, "a", f.big)}})
		_ = stream.Send(&pb.WatchResponse{Revision: 12, Fragment: true, Events: []*pb.Event{event(12, "b", 1)}})
		return stream.Send(&pb.WatchResponse{Canceled: true, CancelReason: "server_shutdown: stopping"})
	}
	_ = stream.Send(&pb.WatchResponse{Created: true, Revision: 11})
	_ = stream.Send(&pb.WatchResponse{Revision: 12, Fragment: true, Events: []*pb.Event{event(12, "b", 1)}})
	_ = stream.Send(&pb.WatchResponse{Revision: 12, Events: []*pb.Event{event(12, "c", 1)}})
	_ = stream.Send(&pb.WatchResponse{Revision: 13, Events: []*pb.Event{event(13, "d", 1)}})
	<-stream.Context().Done()
	return nil
}

func TestWatchDeliversAFragmentedRevisionOnceWholeAndResumesBeforeIt(t *testing.T) {
	fake := &fragmentState{big: 6 << 20} // more than gRPC's 4 MiB default, within the client's 8 MiB
	client := startFake(t, fake)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []string
	for change, err := range client.Watch(ctx, "*", WatchOptions{MaxBackoff: 10 * time.Millisecond}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d%s", change.Revision, change.Key))
		if len(got) == 4 {
			break
		}
	}
	if strings.Join(got, " ") != "11a 12b 12c 13d" {
		t.Fatalf("delivered %v", got)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.requests) != 2 || fake.requests[1] != 12 {
		t.Fatalf("start revisions asked: %v (want [0 12])", fake.requests)
	}
}

func TestWatchReceiveLimitIsConfigurable(t *testing.T) {
	client := startFake(t, &fragmentState{big: 2 << 20}, WithMaxReceiveMessageBytes(1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, err := range client.Watch(ctx, "*", WatchOptions{}) {
		var skErr *Error
		if !errors.As(err, &skErr) || skErr.Code != codes.ResourceExhausted {
			t.Fatalf("got %v, want RESOURCE_EXHAUSTED for a 2 MiB message over a 1 MiB limit", err)
		}
		break
	}
}
