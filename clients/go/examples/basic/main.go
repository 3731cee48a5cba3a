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
	"time"

	"github.com/statekeeper/statekeeper/clients/go/statekeeper"
)

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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Start a watch first, so that the writes below are seen.
	started := make(chan int64, 1)
	changes := make(chan statekeeper.Change)
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
				log.Printf("watch: %v", err)
				return
			}
			changes <- change
		}
	}()
	<-started

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

	change := <-changes
	fmt.Printf("watched: %s %s at revision %d\n", change.Type, change.Key, change.Revision)
	if _, err := client.Delete(ctx, "example/agent"); err != nil {
		log.Fatal(err)
	}
}
