package statekeeper

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// Coalescing bounds: the calls and the request bytes one Batch carries at most. A larger
// request always goes alone.
const (
	MaxBatchCalls = 128
	MaxBatchBytes = 1 << 20
)

const batchMethod = "/statekeeper.v1.StateService/Batch"

// batchable maps the StateService methods a Batch can carry to the operation each becomes.
var batchable = map[string]func(proto.Message) *pb.BatchOperation{
	"/statekeeper.v1.StateService/Save": func(m proto.Message) *pb.BatchOperation {
		return &pb.BatchOperation{Kind: &pb.BatchOperation_Save{Save: m.(*pb.SaveRequest)}}
	},
	"/statekeeper.v1.StateService/Get": func(m proto.Message) *pb.BatchOperation {
		return &pb.BatchOperation{Kind: &pb.BatchOperation_Get{Get: m.(*pb.GetRequest)}}
	},
	"/statekeeper.v1.StateService/Delete": func(m proto.Message) *pb.BatchOperation {
		return &pb.BatchOperation{Kind: &pb.BatchOperation_Delete{Delete: m.(*pb.DeleteRequest)}}
	},
	"/statekeeper.v1.StateService/Transact": func(m proto.Message) *pb.BatchOperation {
		return &pb.BatchOperation{Kind: &pb.BatchOperation_Transact{Transact: m.(*pb.TransactRequest)}}
	},
}

// queued is one call waiting in a coalescer.
type queued struct {
	ctx    context.Context
	method string
	req    proto.Message
	reply  proto.Message
	size   int
	opts   []grpc.CallOption
	done   chan error
	sent   bool
}

// coalescer is the unary interceptor that coalesces the Save, Get, Delete and Transact calls
// of one connection: a call issued while none is in flight goes at once, alone; calls issued
// while one is in flight wait, and go together as one Batch when it returns (no timer, so a
// lone call is never delayed). Each call keeps its own result, error, deadline and
// cancellation (a call whose context ends while it waits is never sent). Calls with their own
// outgoing metadata go alone; a batch is sent without the call options of the calls it carries
// (the generated stubs pass none but grpc.StaticMethod). A server without Batch (UNIMPLEMENTED) turns
// coalescing off for the connection.
type coalescer struct {
	mu    sync.Mutex
	busy  bool
	queue []*queued
	off   atomic.Bool
	// batches and batchedCalls count the Batch calls sent and the calls they carried.
	batches      atomic.Int64
	batchedCalls atomic.Int64
}

func (c *coalescer) intercept(ctx context.Context, method string, req, reply any,
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	request, ok := req.(proto.Message)
	_, known := batchable[method]
	if !ok || !known || c.off.Load() || hasOutgoingMetadata(ctx) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c.mu.Lock()
	if !c.busy {
		c.busy = true
		c.mu.Unlock()
		err := invoker(ctx, method, req, reply, cc, opts...)
		c.mu.Lock()
		if len(c.queue) == 0 { // nothing waits: the caller's next call goes alone as well
			c.busy = false
			c.mu.Unlock()
		} else {
			c.mu.Unlock()
			go c.drain(cc, invoker)
		}
		return err
	}
	size := proto.Size(request)
	if size > MaxBatchBytes {
		c.mu.Unlock()
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	call := &queued{ctx: ctx, method: method, req: request, reply: reply.(proto.Message), size: size,
		opts: opts, done: make(chan error, 1)}
	c.queue = append(c.queue, call)
	c.mu.Unlock()
	select {
	case err := <-call.done:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		if !call.sent {
			for i, other := range c.queue {
				if other == call {
					c.queue = append(c.queue[:i], c.queue[i+1:]...)
					break
				}
			}
		}
		c.mu.Unlock()
		return status.FromContextError(ctx.Err()).Err()
	}
}

func hasOutgoingMetadata(ctx context.Context) bool {
	md, ok := metadata.FromOutgoingContext(ctx)
	return ok && md.Len() > 0
}

// drain sends what queued while a call was in flight, batch after batch, until the queue is
// empty.
func (c *coalescer) drain(cc *grpc.ClientConn, invoker grpc.UnaryInvoker) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.busy = false
			c.mu.Unlock()
			return
		}
		var calls []*queued
		size := 0
		for len(c.queue) > 0 && len(calls) < MaxBatchCalls {
			next := c.queue[0]
			if len(calls) > 0 && size+next.size > MaxBatchBytes {
				break
			}
			c.queue = c.queue[1:]
			next.sent = true
			calls = append(calls, next)
			size += next.size
		}
		c.mu.Unlock()
		c.send(calls, cc, invoker)
	}
}

func alone(call *queued, cc *grpc.ClientConn, invoker grpc.UnaryInvoker) {
	call.done <- invoker(call.ctx, call.method, call.req, call.reply, cc, call.opts...)
}

// send sends calls as one Batch (one call alone) and answers each.
func (c *coalescer) send(calls []*queued, cc *grpc.ClientConn, invoker grpc.UnaryInvoker) {
	if len(calls) == 1 {
		alone(calls[0], cc, invoker)
		return
	}
	request := &pb.BatchRequest{Operations: make([]*pb.BatchOperation, len(calls))}
	for i, call := range calls {
		request.Operations[i] = batchable[call.method](call.req)
	}
	ctx, cancel := batchContext(calls)
	defer cancel()
	response := &pb.BatchResponse{}
	err := invoker(ctx, batchMethod, request, response, cc)
	if status.Code(err) == codes.Unimplemented {
		c.off.Store(true)
		var wait sync.WaitGroup
		for _, call := range calls {
			wait.Go(func() { alone(call, cc, invoker) })
		}
		wait.Wait()
		return
	}
	if err == nil && len(response.GetResults()) != len(calls) {
		err = status.Errorf(codes.Internal, "the batch returned %d results for %d operations",
			len(response.GetResults()), len(calls))
	}
	c.batches.Add(1)
	c.batchedCalls.Add(int64(len(calls)))
	var again sync.WaitGroup
	for i, call := range calls {
		if err != nil {
			call.done <- err
			continue
		}
		result := response.GetResults()[i]
		if code := result.GetStatus().GetCode(); code != 0 {
			callErr := status.FromProto(&spb.Status{
				Code: code, Message: result.GetStatus().GetMessage(), Details: result.GetStatus().GetDetails(),
			}).Err()
			var typed *Error
			if errors.As(FromError(callErr), &typed) && typed.Reason == ReasonBatchResponseTooLarge {
				again.Go(func() { alone(call, cc, invoker) })
				continue
			}
			call.done <- callErr
			continue
		}
		answer := resultResponse(result)
		if answer == nil {
			call.done <- status.Error(codes.Internal, "the batch returned a result without a response")
			continue
		}
		proto.Merge(call.reply, answer)
		call.done <- nil
	}
	again.Wait()
}

// resultResponse is the response message a successful batch result carries.
func resultResponse(result *pb.BatchResult) proto.Message {
	switch kind := result.GetKind().(type) {
	case *pb.BatchResult_Save:
		return kind.Save
	case *pb.BatchResult_Get:
		return kind.Get
	case *pb.BatchResult_Delete:
		return kind.Delete
	case *pb.BatchResult_Transact:
		return kind.Transact
	}
	return nil
}

// batchContext is the context of a Batch: the latest deadline of its calls (none when one of
// them has none); each call still ends at its own deadline.
func batchContext(calls []*queued) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, call := range calls {
		deadline, ok := call.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if deadline.After(latest) {
			latest = deadline
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
