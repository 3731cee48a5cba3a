package statekeeper

import (
	"context"
	"errors"
	"os"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The live tests run against the server at STATEKEEPER_TEST_ADDRESS. tests/test_interop.py
// runs them (go test -run Live) against its test server; `make test-clients` leaves them out
// with -skip Live, so that no run reports a skipped test.
func liveClient(t *testing.T, options ...Option) *Client {
	t.Helper()
	address := os.Getenv("STATEKEEPER_TEST_ADDRESS")
	if address == "" {
		t.Fatal("STATEKEEPER_TEST_ADDRESS is not set (run these tests through tests/test_interop.py)")
	}
	client, err := Dial(address, options...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestLiveDocumentLifecycle(t *testing.T) {
	client := liveClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prefix := "go-live-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/"

	revision, err := client.Save(ctx, prefix+"doc", map[string]any{"a": 1, "b": map[string]any{"c": 2.0}},
		WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	entry, err := client.Get(ctx, prefix+"doc")
	if err != nil {
		t.Fatal(err)
	}
	if entry.ModRevision != revision || entry.Version != 1 || entry.ExpireTime.IsZero() {
		t.Fatalf("entry %+v", entry)
	}
	want := map[string]any{"a": int64(1), "b": map[string]any{"c": 2.0}}
	if !reflect.DeepEqual(entry.Value, want) {
		t.Fatalf("value %#v", entry.Value)
	}

	merged, err := client.Update(ctx, prefix+"doc", map[string]any{"a": nil, "b": map[string]any{"d": "x"}},
		IfRevision(revision))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(merged.Value, map[string]any{"b": map[string]any{"c": 2.0, "d": "x"}}) {
		t.Fatalf("merged %#v", merged.Value)
	}
	if _, err := client.Update(ctx, prefix+"doc", map[string]any{"z": 1}, IfRevision(revision)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if _, err := client.Save(ctx, prefix+"bad\x00key", 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad key: %v", err)
	} else {
		var skErr *Error
		errors.As(err, &skErr)
		if skErr.Reason == "" || len(skErr.Violations) == 0 {
			t.Fatalf("want a reason and field violations: %+v", skErr)
		}
	}
	deleted, err := client.Delete(ctx, prefix+"doc")
	if err != nil || !deleted {
		t.Fatalf("delete: %v %v", deleted, err)
	}
	if _, err := client.Get(ctx, prefix+"doc"); !errors.Is(err, ErrNotFound) ||
		!errors.Is(err, &Error{Reason: ReasonKeyNotFound}) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestLiveKeysAndWatch(t *testing.T) {
	for _, encoding := range []Encoding{EncodingMsgpack, EncodingJSON} {
		client := liveClient(t, WithEncoding(encoding))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		prefix := "go-live-watch-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/"

		started := make(chan int64, 1)
		changes := make(chan Change, 10)
		go func() {
			defer close(changes)
			for change, err := range client.Watch(ctx, prefix+"*", WatchOptions{
				PrevValue: true,
				Started: func(revision int64) {
					select {
					case started <- revision:
					default:
					}
				},
			}) {
				if err != nil {
					return
				}
				changes <- change
			}
		}()
		<-started
		for i := range 5 {
			if _, err := client.Save(ctx, prefix+strconv.Itoa(i), map[string]any{"i": i}); err != nil {
				t.Fatal(err)
			}
		}
		var keys []string
		for key, err := range client.Keys(ctx, prefix+"*", 2) {
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, key)
		}
		if len(keys) != 5 || !slices.IsSorted(keys) {
			t.Fatalf("keys %v", keys)
		}
		for i := range 5 {
			change := <-changes
			if change.Type != ChangePut || change.Key != prefix+strconv.Itoa(i) ||
				!reflect.DeepEqual(change.Value, map[string]any{"i": int64(i)}) {
				t.Fatalf("change %d: %+v", i, change)
			}
		}
		cancel()
	}
}
