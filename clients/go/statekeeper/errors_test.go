package statekeeper

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func richStatus(t *testing.T, code codes.Code, reason string) error {
	t.Helper()
	st, err := status.New(code, "boom").WithDetails(
		&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: map[string]string{"k": "v"}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "key", Description: "empty"},
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestFromErrorReadsReasonMetadataAndViolations(t *testing.T) {
	err := FromError(richStatus(t, codes.Aborted, ReasonRevisionConflict))
	var skErr *Error
	if !errors.As(err, &skErr) {
		t.Fatalf("want *Error, got %T", err)
	}
	if skErr.Code != codes.Aborted || skErr.Reason != ReasonRevisionConflict || skErr.Message != "boom" {
		t.Fatalf("got %+v", skErr)
	}
	if skErr.Metadata["k"] != "v" || len(skErr.Violations) != 1 || skErr.Violations[0].Field != "key" {
		t.Fatalf("got %+v", skErr)
	}
	if !errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
		t.Fatal("errors.Is must match by code")
	}
	if !errors.Is(err, &Error{Reason: ReasonRevisionConflict}) {
		t.Fatal("errors.Is must match by reason")
	}
	if status.Code(err) != codes.Aborted {
		t.Fatal("status.Code must still work")
	}
	wrapped := fmt.Errorf("saving: %w", err)
	if !errors.Is(wrapped, ErrConflict) {
		t.Fatal("wrapped errors must match too")
	}
}

func TestFromErrorLeavesOtherErrorsAlone(t *testing.T) {
	if FromError(nil) != nil {
		t.Fatal("nil stays nil")
	}
	plain := errors.New("plain")
	if FromError(plain) != plain {
		t.Fatal("an error without a status is returned unchanged")
	}
	canceled := FromError(status.Error(codes.Canceled, "gone"))
	if !errors.Is(canceled, context.Canceled) {
		t.Fatal("a canceled call matches context.Canceled")
	}
}

func TestCompactRevision(t *testing.T) {
	err := &Error{Code: codes.OutOfRange, Reason: ReasonHistoryCompacted,
		Metadata: map[string]string{"compact_revision": "42"}}
	if err.CompactRevision() != 42 || !errors.Is(err, ErrHistoryCompacted) {
		t.Fatalf("got %d", err.CompactRevision())
	}
}
