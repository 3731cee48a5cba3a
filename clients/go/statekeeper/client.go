// Package statekeeper is the Go client of statekeeper, the state service for AI agents.
//
// Dial connects to a server (plaintext or TLS, with optional client certificates for mutual
// TLS). The Client saves, reads, merges, deletes, lists and watches JSON-like documents
// (map[string]any and friends, see ToValue and FromValue), turns failures into *Error values
// that errors.Is matches against sentinels such as ErrConflict, and resumes watches after a
// disconnect from the last delivered revision. The generated stubs of every service are in
// the statekeeperv1 package; Client.Conn shares the connection with them.
package statekeeper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"iter"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// TLSConfig describes a TLS connection. CAFile verifies the server (the system roots when
// empty); CertFile and KeyFile present a client certificate for mutual TLS; ServerName
// overrides the name checked in the server certificate.
type TLSConfig struct {
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
}

// DefaultMaxReceiveMessageBytes is the client's default receive limit: twice the server's
// default --max-message-bytes (4 MiB), so every response of a default server fits.
const DefaultMaxReceiveMessageBytes = 8 << 20

type dialSettings struct {
	tls             *TLSConfig
	tlsConfig       *tls.Config
	encoding        Encoding
	grpcOptions     []grpc.DialOption
	metadata        []string
	maxReceiveBytes int
	noBatching      bool
}

// Option configures Dial.
type Option func(*dialSettings)

// WithTLS connects over TLS with the given files (the default is plaintext).
func WithTLS(config TLSConfig) Option {
	return func(s *dialSettings) { s.tls = &config }
}

// WithTLSConfig connects over TLS with a ready crypto/tls configuration.
func WithTLSConfig(config *tls.Config) Option {
	return func(s *dialSettings) { s.tlsConfig = config }
}

// WithEncoding chooses the value form the client sends and asks for (EncodingMsgpack, the
// exact form, by default; EncodingJSON for the google.protobuf.Value form).
func WithEncoding(encoding Encoding) Option {
	return func(s *dialSettings) { s.encoding = encoding }
}

// WithToken sends "authorization: Bearer <token>" with every call (for servers started with a
// tokens file).
func WithToken(token string) Option {
	return func(s *dialSettings) { s.metadata = append(s.metadata, "authorization", "Bearer "+token) }
}

// WithNamespace sends "x-statekeeper-namespace: <namespace>" with every call, choosing which of
// the token's namespaces the calls work in.
func WithNamespace(namespace string) Option {
	return func(s *dialSettings) { s.metadata = append(s.metadata, "x-statekeeper-namespace", namespace) }
}

// WithMaxReceiveMessageBytes sets the largest message the client accepts
// (DefaultMaxReceiveMessageBytes when not set); keep it at least the server's
// --max-message-bytes, which bounds every response the server sends.
func WithMaxReceiveMessageBytes(limit int) Option {
	return func(s *dialSettings) { s.maxReceiveBytes = limit }
}

// WithoutBatching sends every call alone. By default the client coalesces the Save, Get, Delete
// and Transact calls issued while another is in flight into one StateService.Batch call (see
// docs/batching.md); each call keeps its own result, error, deadline and cancellation.
func WithoutBatching() Option {
	return func(s *dialSettings) { s.noBatching = true }
}

// WithGRPCOptions adds raw grpc dial options (interceptors, per-RPC credentials, ...).
func WithGRPCOptions(options ...grpc.DialOption) Option {
	return func(s *dialSettings) { s.grpcOptions = append(s.grpcOptions, options...) }
}

// Client is a connection to a statekeeper server with the StateService operations.
type Client struct {
	conn      *grpc.ClientConn
	state     pb.StateServiceClient
	encoding  Encoding
	coalescer *coalescer
}

// Dial creates a client for the server at address ("host:port"). The connection is made
// lazily, on the first call; Close releases it.
func Dial(address string, options ...Option) (*Client, error) {
	settings := dialSettings{maxReceiveBytes: DefaultMaxReceiveMessageBytes}
	for _, option := range options {
		option(&settings)
	}
	transport := insecure.NewCredentials()
	switch {
	case settings.tlsConfig != nil:
		transport = credentials.NewTLS(settings.tlsConfig)
	case settings.tls != nil:
		config, err := settings.tls.build()
		if err != nil {
			return nil, err
		}
		transport = credentials.NewTLS(config)
	}
	dialOptions := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(settings.maxReceiveBytes)),
	}
	var batching *coalescer
	if !settings.noBatching {
		// Outermost, so that a Batch passes the interceptors below (token, namespace) as
		// the calls it carries would have.
		batching = &coalescer{}
		dialOptions = append(dialOptions, grpc.WithChainUnaryInterceptor(batching.intercept))
	}
	if len(settings.metadata) > 0 {
		pairs := settings.metadata
		dialOptions = append(dialOptions,
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any,
				cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(metadata.AppendToOutgoingContext(ctx, pairs...), method, req, reply, cc, opts...)
			}),
			grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc,
				cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(metadata.AppendToOutgoingContext(ctx, pairs...), desc, cc, method, opts...)
			}))
	}
	dialOptions = append(dialOptions, settings.grpcOptions...)
	conn, err := grpc.NewClient(address, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("statekeeper: dialing %s: %w", address, err)
	}
	return &Client{
		conn: conn, state: pb.NewStateServiceClient(conn), encoding: settings.encoding, coalescer: batching,
	}, nil
}

func (c TLSConfig) build() (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("statekeeper: reading the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("statekeeper: no PEM certificate in %s", c.CAFile)
		}
		config.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		certificate, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("statekeeper: loading the client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{certificate}
	}
	return config, nil
}

// Conn is the underlying connection, for the generated clients of the other services, e.g.
// statekeeperv1.NewWorkflowServiceClient(client.Conn()).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// State is the generated StateService client on this connection.
func (c *Client) State() pb.StateServiceClient { return c.state }

// Encoding is the value form this client sends and asks for.
func (c *Client) Encoding() Encoding { return c.encoding }

// BatchStats reports how many Batch calls the client sent for coalesced calls and how many
// calls they carried (both 0 WithoutBatching).
func (c *Client) BatchStats() (batches, calls int64) {
	if c.coalescer == nil {
		return 0, 0
	}
	return c.coalescer.batches.Load(), c.coalescer.batchedCalls.Load()
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Value converts a document into the wire form this client uses (for the generated stubs).
func (c *Client) Value(document any) (*pb.Value, error) { return ToValue(document, c.encoding) }

// ValueEncoding is the value_encoding to put in requests of the generated stubs, so that their
// responses come in the form FromValue reads exactly (msgpack, or JSON with EncodingJSON).
func (c *Client) ValueEncoding() pb.ValueEncoding {
	if c.encoding == EncodingJSON {
		return pb.ValueEncoding_VALUE_ENCODING_JSON
	}
	return pb.ValueEncoding_VALUE_ENCODING_MSGPACK
}

// Entry is a stored document with its revision metadata.
type Entry struct {
	Key            string
	Value          any
	CreateRevision int64
	ModRevision    int64
	Version        int64
	// ExpireTime is the instant the key expires; the zero time when it never expires.
	ExpireTime time.Time
}

func entryFrom(kv *pb.KeyValue) (*Entry, error) {
	value, err := FromValue(kv.GetValue())
	if err != nil {
		return nil, err
	}
	entry := &Entry{
		Key:            kv.GetKey(),
		Value:          value,
		CreateRevision: kv.GetCreateRevision(),
		ModRevision:    kv.GetModRevision(),
		Version:        kv.GetVersion(),
	}
	if kv.GetExpireTime() != nil {
		entry.ExpireTime = kv.GetExpireTime().AsTime()
	}
	return entry, nil
}

// WriteOption makes a write conditional or gives it a time-to-live.
type WriteOption func(*writeSettings)

type writeSettings struct {
	expected *int64
	ttl      time.Duration
}

// IfRevision makes the write happen only if the key's mod_revision is revision (0: the key
// must not exist); otherwise the call fails with an error matching ErrConflict.
func IfRevision(revision int64) WriteOption {
	return func(s *writeSettings) { s.expected = &revision }
}

// WithTTL makes the key expire after ttl.
func WithTTL(ttl time.Duration) WriteOption {
	return func(s *writeSettings) { s.ttl = ttl }
}

func collect(options []WriteOption) (writeSettings, *durationpb.Duration) {
	settings := writeSettings{}
	for _, option := range options {
		option(&settings)
	}
	var ttl *durationpb.Duration
	if settings.ttl > 0 {
		ttl = durationpb.New(settings.ttl)
	}
	return settings, ttl
}

// Save creates or replaces the document under key and returns its new mod_revision.
func (c *Client) Save(ctx context.Context, key string, document any, options ...WriteOption) (int64, error) {
	value, err := c.Value(document)
	if err != nil {
		return 0, err
	}
	settings, ttl := collect(options)
	response, err := c.state.Save(ctx, &pb.SaveRequest{
		Key: key, Value: value, ExpectedRevision: settings.expected, Ttl: ttl,
	})
	if err != nil {
		return 0, FromError(err)
	}
	return response.GetKv().GetModRevision(), nil
}

// Get reads the entry under key; a missing key is an error matching ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) (*Entry, error) {
	response, err := c.state.Get(ctx, &pb.GetRequest{Key: key, ValueEncoding: c.ValueEncoding()})
	if err != nil {
		return nil, FromError(err)
	}
	return entryFrom(response.GetKv())
}

// Update merges patch into the stored document (RFC 7396 merge patch: nil removes a member,
// maps merge, everything else replaces) and returns the merged entry.
func (c *Client) Update(ctx context.Context, key string, patch map[string]any, options ...WriteOption) (*Entry, error) {
	value, err := c.Value(patch)
	if err != nil {
		return nil, err
	}
	settings, ttl := collect(options)
	response, err := c.state.Update(ctx, &pb.UpdateRequest{
		Key: key, Patch: value, ExpectedRevision: settings.expected, Ttl: ttl,
		ValueEncoding: c.ValueEncoding(),
	})
	if err != nil {
		return nil, FromError(err)
	}
	return entryFrom(response.GetKv())
}

// Delete removes key and reports whether it existed.
func (c *Client) Delete(ctx context.Context, key string, options ...WriteOption) (bool, error) {
	settings, _ := collect(options)
	response, err := c.state.Delete(ctx, &pb.DeleteRequest{Key: key, ExpectedRevision: settings.expected})
	if err != nil {
		return false, FromError(err)
	}
	return response.GetDeleted(), nil
}

// ListPage reads one page of the keys matching the glob pattern; the returned token is empty
// on the last page.
func (c *Client) ListPage(ctx context.Context, pattern string, pageSize int32, pageToken string) ([]string, string, error) {
	response, err := c.state.ListKeys(ctx, &pb.ListKeysRequest{
		Pattern: pattern, PageSize: pageSize, PageToken: pageToken,
	})
	if err != nil {
		return nil, "", FromError(err)
	}
	return response.GetKeys(), response.GetNextPageToken(), nil
}

// Keys iterates over every key matching the glob pattern, in key order, fetching pages of
// pageSize keys (0: the server's default). An error ends the iteration.
func (c *Client) Keys(ctx context.Context, pattern string, pageSize int32) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		token := ""
		for {
			keys, next, err := c.ListPage(ctx, pattern, pageSize, token)
			if err != nil {
				yield("", err)
				return
			}
			for _, key := range keys {
				if !yield(key, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}

// Range yields the entries of a StateService.Range request page by page, until the last page
// or the first error. The request's PageToken is managed here and ValueEncoding is set to the
// client's encoding; every other field is sent as given (see docs/range.md).
func (c *Client) Range(ctx context.Context, request *pb.RangeRequest) iter.Seq2[*Entry, error] {
	return func(yield func(*Entry, error) bool) {
		page := proto.Clone(request).(*pb.RangeRequest)
		page.ValueEncoding = c.ValueEncoding()
		page.PageToken = ""
		for {
			response, err := c.state.Range(ctx, page)
			if err != nil {
				yield(nil, FromError(err))
				return
			}
			for _, kv := range response.GetKvs() {
				entry, err := entryFrom(kv)
				if !yield(entry, err) || err != nil {
					return
				}
			}
			if response.GetNextPageToken() == "" {
				return
			}
			page.PageToken = response.GetNextPageToken()
		}
	}
}
