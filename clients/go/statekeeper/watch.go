package statekeeper

import (
	"context"
	"errors"
	"io"
	"iter"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// ChangeType says what happened to a key.
type ChangeType int

const (
	// ChangePut means the key was created or replaced.
	ChangePut ChangeType = iota + 1
	// ChangeDelete means a client deleted the key.
	ChangeDelete
	// ChangeExpire means the key's time-to-live ran out.
	ChangeExpire
)

// String names the change type ("put", "delete", "expire").
func (t ChangeType) String() string {
	switch t {
	case ChangePut:
		return "put"
	case ChangeDelete:
		return "delete"
	case ChangeExpire:
		return "expire"
	}
	return "unknown"
}

// Change is one change of one key delivered by Watch.
type Change struct {
	Type     ChangeType
	Key      string
	Revision int64
	// Value is the new document after a put (nil after a delete or expiry).
	Value any
	// PrevValue is the document before the change, when WatchOptions.PrevValue asked for it
	// and the key existed.
	PrevValue any
}

// WatchOptions tunes Watch.
type WatchOptions struct {
	// StartRevision is the first revision to deliver; 0 means changes after the current one.
	StartRevision int64
	// PrevValue asks for the previous document of each change.
	PrevValue bool
	// Started, when set, is called with the store revision once the server has registered the
	// watch (every later write is then delivered); it is called again after each reconnect.
	Started func(revision int64)
	// MaxBackoff is the longest pause between reconnection attempts (2 seconds when zero).
	MaxBackoff time.Duration
	// ProgressInterval asks idle streams for progress notifications this often (the server's
	// default when zero).
	ProgressInterval time.Duration
}

// Watch streams the changes of the keys matching the glob pattern, in revision order.
//
// When the stream breaks (server restart, network failure, graceful drain, or the server ending
// the watch with a reason such as "server_shutdown: ...") Watch reconnects with a growing pause
// and resumes after the last delivered revision, so no change is lost or repeated. A revision
// the server sends in fragments (too large for one message) is delivered once all of it has
// arrived; a part received before a break is dropped and read again. It ends when ctx is done (without an error) or with one error: one matching
// ErrHistoryCompacted when the server no longer has the history to resume from (read the keys
// again, then watch from err.(*Error).CompactRevision()), or any other non-transient failure.
func (c *Client) Watch(ctx context.Context, pattern string, options WatchOptions) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		next := options.StartRevision
		maxBackoff := options.MaxBackoff
		if maxBackoff <= 0 {
			maxBackoff = 2 * time.Second
		}
		const firstDelay = 50 * time.Millisecond
		delay := firstDelay
		for {
			received := false
			delivered, err := c.watchOnce(ctx, pattern, options, &next, &received, yield)
			if !delivered {
				return
			}
			if received {
				delay = firstDelay // the server was reachable: start the backoff again
			}
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				if !retryable(err) {
					yield(Change{}, err)
					return
				}
			}
			timer := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			delay = min(delay*2, maxBackoff)
		}
	}
}

// retryable reports whether a broken watch should reconnect.
func retryable(err error) bool {
	var skErr *Error
	if !errors.As(err, &skErr) {
		return false
	}
	return skErr.Code == codes.Unavailable || skErr.Code == codes.Internal && skErr.Reason == "" ||
		skErr.Code == codes.Unknown
}

// watchOnce runs one stream; it returns false when the consumer stopped or the iteration must
// end, and the error that broke the stream (nil when the server ended it cleanly). It sets
// *received once the server sent a message.
func (c *Client) watchOnce(ctx context.Context, pattern string, options WatchOptions, next *int64,
	received *bool, yield func(Change, error) bool) (bool, error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	request := &pb.WatchRequest{
		Pattern:       pattern,
		StartRevision: *next,
		PrevKv:        options.PrevValue,
		ValueEncoding: c.ValueEncoding(),
	}
	if options.ProgressInterval > 0 {
		request.ProgressInterval = durationpb.New(options.ProgressInterval)
	}
	stream, err := c.state.Watch(streamCtx, request)
	if err != nil {
		return true, FromError(err)
	}
	var partial []*pb.Event // the fragments of a revision whose last part is still to come
	for {
		message, err := stream.Recv()
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return true, FromError(err)
		}
		*received = true
		if message.GetCreated() {
			if *next == 0 {
				*next = message.GetRevision() + 1
			}
			if options.Started != nil {
				options.Started(message.GetRevision())
			}
			continue
		}
		if message.GetCanceled() {
			if message.GetCompactRevision() != 0 {
				yield(Change{}, &Error{
					Code:    codes.OutOfRange,
					Reason:  ReasonHistoryCompacted,
					Message: message.GetCancelReason(),
					Metadata: map[string]string{
						"compact_revision": strconv.FormatInt(message.GetCompactRevision(), 10),
					},
				})
				return false, nil
			}
			return true, nil
		}
		events := message.GetEvents()
		if message.GetFragment() {
			partial = append(partial, events...)
			continue
		}
		if partial != nil {
			events, partial = append(partial, events...), nil
		}
		for _, event := range events {
			change, err := changeFrom(event)
			if err != nil {
				yield(Change{}, err)
				return false, nil
			}
			if !yield(change, nil) {
				return false, nil
			}
			*next = change.Revision + 1
		}
		if message.GetProgressNotify() {
			*next = max(*next, message.GetRevision()+1)
		}
	}
}

func changeFrom(event *pb.Event) (Change, error) {
	change := Change{Key: event.GetKv().GetKey(), Revision: event.GetKv().GetModRevision()}
	switch event.GetType() {
	case pb.EventType_EVENT_TYPE_PUT:
		change.Type = ChangePut
		value, err := FromValue(event.GetKv().GetValue())
		if err != nil {
			return change, err
		}
		change.Value = value
	case pb.EventType_EVENT_TYPE_DELETE:
		change.Type = ChangeDelete
	case pb.EventType_EVENT_TYPE_EXPIRE:
		change.Type = ChangeExpire
	}
	if event.GetPrevKv() != nil {
		previous, err := FromValue(event.GetPrevKv().GetValue())
		if err != nil {
			return change, err
		}
		change.PrevValue = previous
	}
	return change, nil
}
