// Command interop runs the cross-language interoperability cases of statekeeper against a
// live server. The pytest suite (tests/test_interop.py) drives it, and the TypeScript runner
// (clients/ts/src/interop.ts) implements the same cases with the same output, one JSON
// document per line on stdout:
//
//	interop save --address HOST:PORT --key K --value '{"count": 3}' [--json]
//	interop get --address HOST:PORT --key K [--json]
//	interop cas-conflict --address HOST:PORT --key K
//	interop not-found --address HOST:PORT --key K
//	interop list --address HOST:PORT --pattern 'p/*' --page-size 2
//	interop watch --address HOST:PORT --pattern 'p/*' --count 3 [--start-revision R]
//	interop range --address HOST:PORT --prefix p/ [--reverse] [--page-size 2] [--revision R]
//
// Numbers in printed documents keep their kind: floats always have a fraction or exponent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
	"unicode"

	"github.com/statekeeper/statekeeper/clients/go/statekeeper"
	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

type runner struct {
	flags   *flag.FlagSet
	address *string
	json    *bool
	ca      *string
	cert    *string
	key     *string
	token   *string
	ns      *string
}

func newRunner(name string) *runner {
	flags := flag.NewFlagSet(name, flag.ExitOnError)
	return &runner{
		flags:   flags,
		address: flags.String("address", "127.0.0.1:50051", "server host:port"),
		json:    flags.Bool("json", false, "send and read values in the JSON form"),
		ca:      flags.String("ca", "", "CA file for TLS (plaintext when empty)"),
		cert:    flags.String("cert", "", "client certificate for mutual TLS"),
		key:     flags.String("client-key", "", "client private key for mutual TLS"),
		token:   flags.String("token", "", "bearer token"),
		ns:      flags.String("namespace", "", "namespace of the token to work in"),
	}
}

func (r *runner) dial() *statekeeper.Client {
	var options []statekeeper.Option
	if *r.json {
		options = append(options, statekeeper.WithEncoding(statekeeper.EncodingJSON))
	}
	if *r.token != "" {
		options = append(options, statekeeper.WithToken(*r.token))
	}
	if *r.ns != "" {
		options = append(options, statekeeper.WithNamespace(*r.ns))
	}
	if *r.ca != "" {
		options = append(options, statekeeper.WithTLS(statekeeper.TLSConfig{
			CAFile: *r.ca, CertFile: *r.cert, KeyFile: *r.key,
		}))
	}
	client, err := statekeeper.Dial(*r.address, options...)
	check(err)
	return client
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop:", err)
		os.Exit(1)
	}
}

func emit(document map[string]any) {
	text, err := statekeeper.FormatDocument(document)
	check(err)
	fmt.Println(string(text))
}

func describe(err error) map[string]any {
	var skErr *statekeeper.Error
	if !errors.As(err, &skErr) {
		check(fmt.Errorf("want a statekeeper error, got %v", err))
	}
	return map[string]any{
		"code":   codeName(skErr.Code.String()),
		"reason": skErr.Reason,
	}
}

// codeName spells a gRPC code the way the other runners print it ("NotFound" -> "NOT_FOUND").
func codeName(camel string) string {
	var out []rune
	for i, c := range camel {
		if i > 0 && unicode.IsUpper(c) {
			out = append(out, '_')
		}
		out = append(out, unicode.ToUpper(c))
	}
	return string(out)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: interop <case> --address HOST:PORT ...")
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	r := newRunner(name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run, ok := cases[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "interop: unknown case %q\n", name)
		os.Exit(2)
	}
	run(ctx, r, args)
}

var cases = map[string]func(context.Context, *runner, []string){
	"save":         runSave,
	"get":          runGet,
	"cas-conflict": runCASConflict,
	"not-found":    runNotFound,
	"list":         runList,
	"watch":        runWatch,
	"range":        runRange,
}

// runRange prints {"entries": [{"key", "value", "mod_revision"}...]} of a Range read (every
// page of --page-size entries).
func runRange(ctx context.Context, r *runner, args []string) {
	prefix := r.flags.String("prefix", "", "only keys starting with this")
	reverse := r.flags.Bool("reverse", false, "descending key order")
	pageSize := r.flags.Int("page-size", 0, "entries per page")
	revision := r.flags.Int64("revision", 0, "read at this revision (0: now)")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	entries := []any{}
	request := &pb.RangeRequest{
		Prefix: *prefix, Reverse: *reverse, PageSize: int32(*pageSize), Revision: *revision,
	}
	for entry, err := range client.Range(ctx, request) {
		check(err)
		entries = append(entries, map[string]any{
			"key": entry.Key, "value": entry.Value, "mod_revision": entry.ModRevision,
		})
	}
	emit(map[string]any{"entries": entries})
}

func runSave(ctx context.Context, r *runner, args []string) {
	key := r.flags.String("key", "", "the key")
	value := r.flags.String("value", "null", "the document as JSON text")
	check(r.flags.Parse(args))
	document, err := statekeeper.ParseDocument([]byte(*value))
	check(err)
	client := r.dial()
	defer client.Close()
	revision, err := client.Save(ctx, *key, document)
	check(err)
	emit(map[string]any{"revision": revision})
}

func runGet(ctx context.Context, r *runner, args []string) {
	key := r.flags.String("key", "", "the key")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	entry, err := client.Get(ctx, *key)
	check(err)
	emit(map[string]any{"value": entry.Value, "mod_revision": entry.ModRevision,
		"version": entry.Version})
}

// runCASConflict writes a key twice, then writes it with the first (stale) revision and
// creates it with "must not exist": both must fail with a revision conflict.
func runCASConflict(ctx context.Context, r *runner, args []string) {
	key := r.flags.String("key", "", "the key")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	first, err := client.Save(ctx, *key, map[string]any{"step": 1})
	check(err)
	_, err = client.Save(ctx, *key, map[string]any{"step": 2}, statekeeper.IfRevision(first))
	check(err)
	_, stale := client.Save(ctx, *key, map[string]any{"step": 3}, statekeeper.IfRevision(first))
	_, exists := client.Save(ctx, *key, map[string]any{"step": 3}, statekeeper.IfRevision(0))
	_, staleDelete := client.Delete(ctx, *key, statekeeper.IfRevision(first))
	result := map[string]any{
		"stale_save":   describe(stale),
		"create":       describe(exists),
		"stale_delete": describe(staleDelete),
		"is_conflict": errors.Is(stale, statekeeper.ErrConflict) &&
			errors.Is(exists, statekeeper.ErrConflict) && errors.Is(staleDelete, statekeeper.ErrConflict),
	}
	emit(result)
}

func runNotFound(ctx context.Context, r *runner, args []string) {
	key := r.flags.String("key", "", "the key")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	_, err := client.Get(ctx, *key)
	result := describe(err)
	result["is_not_found"] = errors.Is(err, statekeeper.ErrNotFound)
	emit(result)
}

func runList(ctx context.Context, r *runner, args []string) {
	pattern := r.flags.String("pattern", "*", "the glob pattern")
	pageSize := r.flags.Int("page-size", 0, "keys per page")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	pages := []any{}
	token := ""
	for {
		keys, next, err := client.ListPage(ctx, *pattern, int32(*pageSize), token)
		check(err)
		page := make([]any, len(keys))
		for i, key := range keys {
			page[i] = key
		}
		pages = append(pages, page)
		if next == "" {
			break
		}
		token = next
	}
	all := []any{}
	for key, err := range client.Keys(ctx, *pattern, int32(*pageSize)) {
		check(err)
		all = append(all, key)
	}
	emit(map[string]any{"pages": pages, "keys": all})
}

// runWatch prints {"started": revision} once the watch is registered, then one line per
// change, and exits after --count changes.
func runWatch(ctx context.Context, r *runner, args []string) {
	pattern := r.flags.String("pattern", "*", "the glob pattern")
	count := r.flags.Int("count", 1, "changes to print before exiting")
	start := r.flags.Int64("start-revision", 0, "first revision (0: from now)")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	seen := 0
	started := false
	options := statekeeper.WatchOptions{
		StartRevision: *start,
		PrevValue:     true,
		Started: func(revision int64) {
			if !started {
				started = true
				emit(map[string]any{"started": revision})
			}
		},
	}
	for change, err := range client.Watch(ctx, *pattern, options) {
		check(err)
		emit(map[string]any{
			"type": change.Type.String(), "key": change.Key, "revision": change.Revision,
			"value": change.Value, "prev_value": change.PrevValue,
		})
		seen++
		if seen >= *count {
			return
		}
	}
	check(ctx.Err())
}
