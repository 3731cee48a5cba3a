package statekeeper

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func liveContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func livePrefix(name string) string {
	return "go-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/"
}

func TestLiveBatchingCoalescesConcurrentCalls(t *testing.T) {
	client := liveClient(t)
	ctx := liveContext(t)
	prefix := livePrefix("coalesce")
	const count = 64
	revisions := make([]int64, count)
	failures := make([]error, count)
	var wait sync.WaitGroup
	for n := range count {
		wait.Go(func() {
			revisions[n], failures[n] = client.Save(ctx, fmt.Sprintf("%sk%d", prefix, n), map[string]any{"n": n})
		})
	}
	wait.Wait()
	seen := map[int64]bool{}
	for n := range count {
		if failures[n] != nil {
			t.Fatal(failures[n])
		}
		seen[revisions[n]] = true
	}
	if len(seen) != count {
		t.Fatalf("%d distinct revisions for %d saves", len(seen), count)
	}
	batches, calls := client.BatchStats()
	if batches == 0 || calls <= batches {
		t.Fatalf("batches %d carrying %d calls: concurrent saves were not coalesced", batches, calls)
	}
	for n := range count {
		entry, err := client.Get(ctx, fmt.Sprintf("%sk%d", prefix, n))
		if err != nil {
			t.Fatal(err)
		}
		if entry.ModRevision != revisions[n] || !reflect.DeepEqual(entry.Value, map[string]any{"n": int64(n)}) {
			t.Fatalf("entry %d: %+v (saved at %d)", n, entry, revisions[n])
		}
	}
}

// Every call gets the error it gets without batching: the same code, reason, message,
// metadata and violations.
func TestLiveBatchingKeepsEachCallsOwnError(t *testing.T) {
	batched := liveClient(t)
	alone := liveClient(t, WithoutBatching())
	ctx := liveContext(t)
	prefix := livePrefix("errors")
	if _, err := alone.Save(ctx, prefix+"taken", 1); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(*Client) error{
		"conflict": func(c *Client) error {
			_, err := c.Save(ctx, prefix+"taken", 2, IfRevision(0))
			return err
		},
		"missing": func(c *Client) error {
			_, err := c.Get(ctx, prefix+"missing")
			return err
		},
		"bad key": func(c *Client) error {
			_, err := c.Save(ctx, "", 1)
			return err
		},
	}
	for name, call := range calls {
		want := call(alone)
		// Many at once, so that most go through a Batch.
		errs := make([]error, 16)
		var wait sync.WaitGroup
		for i := range errs {
			wait.Go(func() { errs[i] = call(batched) })
		}
		wait.Wait()
		for _, got := range errs {
			var wantErr, gotErr *Error
			if !errors.As(want, &wantErr) || !errors.As(got, &gotErr) {
				t.Fatalf("%s: errors %v and %v", name, want, got)
			}
			if !reflect.DeepEqual(wantErr, gotErr) {
				t.Fatalf("%s: batched %+v, alone %+v", name, gotErr, wantErr)
			}
		}
	}
	if batches, _ := batched.BatchStats(); batches == 0 {
		t.Fatal("no call went through a Batch")
	}
	if batches, _ := alone.BatchStats(); batches != 0 {
		t.Fatalf("WithoutBatching sent %d batches", batches)
	}
}

// A call whose context ends is cancelled, whether it waits in the queue or not, and what it
// would have written is not there.
func TestLiveBatchingCallsKeepTheirOwnCancellation(t *testing.T) {
	client := liveClient(t)
	ctx := liveContext(t)
	prefix := livePrefix("cancel")
	var wait sync.WaitGroup
	for n := range 8 {
		wait.Go(func() {
			if _, err := client.Save(ctx, fmt.Sprintf("%sbusy%d", prefix, n), n); err != nil {
				t.Error(err)
			}
		})
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := client.Save(cancelled, prefix+"cancelled", 1)
	wait.Wait()
	var typed *Error
	if !errors.As(FromError(err), &typed) || typed.Code != codes.Canceled {
		t.Fatalf("a cancelled call returned %v", err)
	}
	if _, err := client.Get(ctx, prefix+"cancelled"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the cancelled save was written (get: %v)", err)
	}
}
