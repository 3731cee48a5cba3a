package statekeeper

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every statekeeper error.
const ErrorDomain = "statekeeper.dev"

// Stable error reasons (the google.rpc.ErrorInfo reason the server sends). The server may send
// reasons that are not listed here (each service adds its own); Error.Reason carries them as
// they are.
const (
	ReasonInvalidKey         = "INVALID_KEY"
	ReasonInvalidPattern     = "INVALID_PATTERN"
	ReasonInvalidValue       = "INVALID_VALUE"
	ReasonValueTooLarge      = "VALUE_TOO_LARGE"
	ReasonInvalidArgument    = "INVALID_ARGUMENT"
	ReasonKeyNotFound        = "KEY_NOT_FOUND"
	ReasonNotFound           = "NOT_FOUND"
	ReasonAlreadyExists      = "ALREADY_EXISTS"
	ReasonRevisionConflict   = "REVISION_CONFLICT"
	ReasonFailedPrecondition = "FAILED_PRECONDITION"
	ReasonHistoryCompacted   = "HISTORY_COMPACTED"
	ReasonResourceExhausted  = "RESOURCE_EXHAUSTED"
	ReasonUnavailable        = "UNAVAILABLE"
	ReasonUnauthenticated    = "UNAUTHENTICATED"
	ReasonPermissionDenied   = "PERMISSION_DENIED"
	ReasonInternal           = "INTERNAL"
	// ReasonBatchResponseTooLarge marks a get of a Batch whose value did not fit the response;
	// the client sends such a call again alone, so callers do not see it.
	ReasonBatchResponseTooLarge = "BATCH_RESPONSE_TOO_LARGE"
)

// FieldViolation is one problem with one request field (from google.rpc.BadRequest).
type FieldViolation struct {
	// Field is the path of the offending field, e.g. "key".
	Field string
	// Description says what is wrong with it.
	Description string
}

// Error is a failed statekeeper call: the gRPC code, the stable ErrorInfo reason, the message,
// the ErrorInfo metadata and any field violations.
//
// Match a kind of failure with errors.Is against the sentinels (errors.Is(err, ErrConflict)),
// or read the reason with errors.As:
//
//	var skErr *statekeeper.Error
//	if errors.As(err, &skErr) && skErr.Reason == statekeeper.ReasonKeyNotFound { ... }
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Reason is the stable machine-readable reason, e.g. "REVISION_CONFLICT".
	Reason string
	// Message is the human-readable status message.
	Message string
	// Metadata is the ErrorInfo metadata (e.g. "compact_revision" of HISTORY_COMPACTED).
	Metadata map[string]string
	// Violations are the field violations of an INVALID_ARGUMENT error.
	Violations []FieldViolation
}

// Error renders the code, reason and message.
func (e *Error) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("statekeeper: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("statekeeper: %s (%s): %s", e.Code, e.Reason, e.Message)
}

// Is reports whether target is a sentinel of the same kind: a sentinel matches every error with
// its gRPC code; an *Error with a Reason matches errors with that reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t.Reason != "" {
		return t.Reason == e.Reason
	}
	return t.Code == e.Code
}

// Unwrap makes errors.Is(err, context.Canceled) and errors.Is(err, context.DeadlineExceeded)
// hold for calls that ended that way.
func (e *Error) Unwrap() error {
	switch e.Code {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return nil
}

// CompactRevision is the oldest revision that can still be watched, for a HISTORY_COMPACTED
// error (0 otherwise).
func (e *Error) CompactRevision() int64 {
	revision, _ := strconv.ParseInt(e.Metadata["compact_revision"], 10, 64)
	return revision
}

// GRPCStatus returns the status this error stands for, so status.Code(err) keeps working.
func (e *Error) GRPCStatus() *status.Status {
	return status.New(e.Code, e.Message)
}

// Sentinels, one per kind of failure; use them with errors.Is.
var (
	ErrInvalidArgument    = &Error{Code: codes.InvalidArgument, Message: "invalid argument"}
	ErrNotFound           = &Error{Code: codes.NotFound, Message: "not found"}
	ErrAlreadyExists      = &Error{Code: codes.AlreadyExists, Message: "already exists"}
	ErrConflict           = &Error{Code: codes.Aborted, Message: "revision conflict"}
	ErrFailedPrecondition = &Error{Code: codes.FailedPrecondition, Message: "failed precondition"}
	ErrHistoryCompacted   = &Error{Code: codes.OutOfRange, Message: "watch history compacted"}
	ErrResourceExhausted  = &Error{Code: codes.ResourceExhausted, Message: "resource exhausted"}
	ErrUnavailable        = &Error{Code: codes.Unavailable, Message: "unavailable"}
	ErrUnauthenticated    = &Error{Code: codes.Unauthenticated, Message: "unauthenticated"}
	ErrPermissionDenied   = &Error{Code: codes.PermissionDenied, Message: "permission denied"}
	ErrInternal           = &Error{Code: codes.Internal, Message: "internal error"}
)

// FromError turns a gRPC error into an *Error (reason and violations read from the status
// details). A nil error stays nil; an error that carries no gRPC status (a context error, for
// instance) is returned unchanged.
func FromError(err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	result := &Error{Code: st.Code(), Message: st.Message(), Metadata: map[string]string{}}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			result.Reason = d.GetReason()
			for key, value := range d.GetMetadata() {
				result.Metadata[key] = value
			}
		case *errdetails.BadRequest:
			for _, violation := range d.GetFieldViolations() {
				result.Violations = append(result.Violations, FieldViolation{
					Field: violation.GetField(), Description: violation.GetDescription(),
				})
			}
		}
	}
	return result
}
