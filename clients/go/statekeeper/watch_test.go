package statekeeper

import (
	"context"
	"errors"
	"net"
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

func startFake(t *testing.T, fake *fakeState) *Client {
	t.Helper()
	listener := bufconn.Listen(1 << 20)
	server := grpc.NewServer()
	pb.RegisterStateServiceServer(server, fake)
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	client, err := Dial("passthrough:///bufnet", WithGRPCOptions(grpc.WithContextDialer(
		func(ctx context.Context, _ string) (net.Conn, error) { return listener.DialContext(ctx) })))
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
