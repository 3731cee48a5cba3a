// Command basic shows the statekeeper Go client: connect, save, read, compare-and-set, list
// and watch.
//
//	go run ./examples/basic --address 127.0.0.1:50051
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/statekeeper/statekeeper/clients/go/statekeeper"
)

// deadline bounds the whole example, waiting for the server included.
const deadline = 10 * time.Second

func main() {
	address := flag.String("address", "127.0.0.1:50051", "the statekeeper server (host:port)")
	caFile := flag.String("ca", "", "CA certificate (PEM) to verify a TLS server; plaintext when empty")
	flag.Parse()

	var options []statekeeper.Option
	if *caFile != "" {
		options = append(options, statekeeper.WithTLS(statekeeper.TLSConfig{CAFile: *caFile}))
	}
	client, err := statekeeper.Dial(*address, options...)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()

	// Start a watch first, so that the writes below are seen. The watch retries with backoff
	// until the server answers; the deadline bounds the whole example.
	fmt.Fprintf(os.Stderr, "waiting for the statekeeper server at %s (up to %s)\n", *address, deadline)
	started := make(chan int64, 1)
	changes := make(chan statekeeper.Change)
	watchErr := make(chan error, 1)
	go func() {
		defer close(changes)
		watch := client.Watch(ctx, "example/*", statekeeper.WatchOptions{
			Started: func(revision int64) {
				select {
				case started <- revision:
				default:
				}
			},
		})
		for change, err := range watch {
			if err != nil {
				watchErr <- err
				return
			}
			changes <- change
		}
	}()
	select {
	case <-started:
	case err := <-watchErr:
		if ctx.Err() == nil {
			log.Fatalf("watch: %v", err)
		}
		noServer(*address)
	case <-ctx.Done():
		noServer(*address)
	}

	revision, err := client.Save(ctx, "example/agent", map[string]any{"count": 3, "ratio": 0.5})
	if err != nil {
		log.Fatal(err)
	}
	entry, err := client.Get(ctx, "example/agent")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("saved at revision %d: %v (count is %T)\n", revision, entry.Value,
		entry.Value.(map[string]any)["count"])

	// A write with a stale expected revision fails with a typed error.
	_, err = client.Save(ctx, "example/agent", map[string]any{"count": 4},
		statekeeper.IfRevision(revision-1))
	var skErr *statekeeper.Error
	if errors.Is(err, statekeeper.ErrConflict) && errors.As(err, &skErr) {
		fmt.Printf("conflict detected: reason %s\n", skErr.Reason)
	}

	for key, err := range client.Keys(ctx, "example/*", 100) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("key:", key)
	}

	change, ok := <-changes
	if !ok {
		log.Fatalf("watch: %v", <-watchErr)
	}
	fmt.Printf("watched: %s %s at revision %d\n", change.Type, change.Key, change.Revision)
	if _, err := client.Delete(ctx, "example/agent"); err != nil {
		log.Fatal(err)
	}
}

// noServer ends the example when no server answered before the deadline.
func noServer(address string) {
	log.Fatalf("no statekeeper server answered at %s within %s (start one with `make run`, or pass --address)",
		address, deadline)
}
