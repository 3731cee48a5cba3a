"""Typed errors of statekeeper, and the one place that maps them to and from gRPC statuses.

Every error carries a gRPC status code, a stable ``reason`` (the ``google.rpc.ErrorInfo`` reason
on the wire), optional string ``metadata`` and optional field violations (a
``google.rpc.BadRequest`` on the wire). The engine raises these classes; the server turns them
into rich statuses with :func:`to_grpc_status`; the Python client turns a failed call back into
the same class with :func:`from_rpc_error`, so embedded and remote mode raise identical errors.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

#: The ErrorInfo domain of every statekeeper error.
ERROR_DOMAIN = "statekeeper.dev"


class Reason(enum.StrEnum):
    """Stable machine-readable error reasons (the ``ErrorInfo.reason`` values)."""

    INVALID_KEY = "INVALID_KEY"
    KEY_TOO_LONG = "KEY_TOO_LONG"
    INVALID_PATTERN = "INVALID_PATTERN"
    INVALID_VALUE = "INVALID_VALUE"
    VALUE_TOO_LARGE = "VALUE_TOO_LARGE"
    INVALID_TTL = "INVALID_TTL"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    INVALID_DURATION = "INVALID_DURATION"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
    INVALID_REVISION = "INVALID_REVISION"
    INVALID_TRANSACTION = "INVALID_TRANSACTION"
    TOO_MANY_OPERATIONS = "TOO_MANY_OPERATIONS"
    BATCH_RESPONSE_TOO_LARGE = "BATCH_RESPONSE_TOO_LARGE"
    RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    KEY_NOT_FOUND = "KEY_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    REVISION_CONFLICT = "REVISION_CONFLICT"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    HISTORY_COMPACTED = "HISTORY_COMPACTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INTERNAL = "INTERNAL"
    EXECUTION_NOT_FOUND = "EXECUTION_NOT_FOUND"
    EXECUTION_ENDED = "EXECUTION_ENDED"
    PARAMETERS_HASH_MISMATCH = "PARAMETERS_HASH_MISMATCH"
    RETRY_NOT_FOUND = "RETRY_NOT_FOUND"
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    SESSION_ENDED = "SESSION_ENDED"
    INVALID_STATUS_TRANSITION = "INVALID_STATUS_TRANSITION"
    TEAM_NOT_FOUND = "TEAM_NOT_FOUND"
    AGENT_NOT_FOUND = "AGENT_NOT_FOUND"
    TASK_NOT_FOUND = "TASK_NOT_FOUND"
    INVALID_PRIORITY = "INVALID_PRIORITY"
    AGENT_BUSY = "AGENT_BUSY"
    AGENT_OFFLINE = "AGENT_OFFLINE"
    TASK_NOT_PENDING = "TASK_NOT_PENDING"
    TASK_NOT_IN_PROGRESS = "TASK_NOT_IN_PROGRESS"
    MISSING_CAPABILITY = "MISSING_CAPABILITY"
    NOT_TASK_OWNER = "NOT_TASK_OWNER"
    KNOWLEDGE_BASE_NOT_FOUND = "KNOWLEDGE_BASE_NOT_FOUND"
    PROGRESS_REGRESSED = "PROGRESS_REGRESSED"
    TOO_MANY_WATCHERS = "TOO_MANY_WATCHERS"
    TOO_MANY_STREAMS = "TOO_MANY_STREAMS"
    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
    CHECKPOINT_NOT_FOUND = "CHECKPOINT_NOT_FOUND"
    SNAPSHOT_NOT_FOUND = "SNAPSHOT_NOT_FOUND"
    INVALID_WORKFLOW_TRANSITION = "INVALID_WORKFLOW_TRANSITION"
    NO_RECOVERABLE_CHECKPOINT = "NO_RECOVERABLE_CHECKPOINT"
    RECOVERY_ATTEMPTS_EXHAUSTED = "RECOVERY_ATTEMPTS_EXHAUSTED"
    WORKFLOW_ACTIVE = "WORKFLOW_ACTIVE"


class StateKeeperError(Exception):
    """Base class of every statekeeper error."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    default_reason: ClassVar[str] = Reason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = str(reason or self.default_reason)
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: list[tuple[str, str]] = list(violations)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgumentError(StateKeeperError, ValueError):
    """The request is malformed (INVALID_ARGUMENT)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = Reason.INVALID_ARGUMENT


class NotFoundError(StateKeeperError, LookupError):
    """The addressed key or record does not exist (NOT_FOUND)."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = Reason.NOT_FOUND


class AlreadyExistsError(StateKeeperError):
    """A create found the record already there (ALREADY_EXISTS)."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = Reason.ALREADY_EXISTS


class ConflictError(StateKeeperError):
    """A compare-and-set found another revision than expected (ABORTED); retry after a read."""

    code = grpc.StatusCode.ABORTED
    default_reason = Reason.REVISION_CONFLICT


class FailedPreconditionError(StateKeeperError):
    """The record is in a state that does not allow the operation (FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = Reason.FAILED_PRECONDITION


class HistoryCompactedError(StateKeeperError):
    """A watch asked for history that is no longer retained; resync, then watch from
    ``compact_revision`` (OUT_OF_RANGE)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    default_reason = Reason.HISTORY_COMPACTED

    @property
    def compact_revision(self) -> int:
        """The oldest revision that can still be watched."""
        return int(self.metadata.get("compact_revision", "0"))


class ResourceExhaustedError(StateKeeperError):
    """A size or count limit was reached (RESOURCE_EXHAUSTED)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = Reason.RESOURCE_EXHAUSTED


class UnavailableError(StateKeeperError):
    """The server or its storage cannot be reached right now; retrying may succeed (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = Reason.UNAVAILABLE


class UnauthenticatedError(StateKeeperError):
    """The call carries no valid credentials (UNAUTHENTICATED)."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = Reason.UNAUTHENTICATED


class PermissionDeniedError(StateKeeperError):
    """The credentials do not allow this call (PERMISSION_DENIED)."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = Reason.PERMISSION_DENIED


class InternalError(StateKeeperError):
    """The server failed unexpectedly (INTERNAL)."""


class UnknownError(InternalError):
    """The call failed without saying why (UNKNOWN); treated like an internal error."""

    code = grpc.StatusCode.UNKNOWN
    default_reason = "UNKNOWN"


class DataLossError(InternalError):
    """Stored data was lost or corrupted (DATA_LOSS)."""

    code = grpc.StatusCode.DATA_LOSS
    default_reason = "DATA_LOSS"


class DeadlineExceededError(StateKeeperError, TimeoutError):
    """The call did not finish within its ``timeout`` (DEADLINE_EXCEEDED); also a
    :class:`TimeoutError`, so ``except TimeoutError`` catches it. The call may or may not have
    taken effect: read before retrying a write that is not idempotent."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


class CallCancelledError(StateKeeperError):
    """The call was cancelled before it finished (CANCELLED), for example because the channel
    was closed while it was in flight."""

    code = grpc.StatusCode.CANCELLED
    default_reason = "CANCELLED"


class UnimplementedError(StateKeeperError, NotImplementedError):
    """The server does not offer this RPC (UNIMPLEMENTED): it is older than this client."""

    code = grpc.StatusCode.UNIMPLEMENTED
    default_reason = "UNIMPLEMENTED"


class OutOfRangeError(StateKeeperError):
    """A value lies outside the range the operation accepts (OUT_OF_RANGE)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    default_reason = "OUT_OF_RANGE"


_CLASS_BY_CODE: dict[grpc.StatusCode, type[StateKeeperError]] = {
    cls.code: cls
    for cls in (
        CallCancelledError,
        UnknownError,
        InvalidArgumentError,
        DeadlineExceededError,
        NotFoundError,
        AlreadyExistsError,
        PermissionDeniedError,
        ResourceExhaustedError,
        FailedPreconditionError,
        ConflictError,
        OutOfRangeError,
        UnimplementedError,
        InternalError,
        UnavailableError,
        DataLossError,
        UnauthenticatedError,
    )
}


def error_class(code: grpc.StatusCode, reason: str | None = None) -> type[StateKeeperError]:
    """The typed error of a failed call with status ``code`` (and ErrorInfo ``reason``).

    Every status code but OK has its own class; OUT_OF_RANGE with the reason
    HISTORY_COMPACTED (or without a reason: the watch streams) is a
    :class:`HistoryCompactedError`. A "failure" with OK breaks the protocol and is an
    :class:`InternalError`.
    """
    if code == grpc.StatusCode.OUT_OF_RANGE and reason in (None, Reason.HISTORY_COMPACTED):
        return HistoryCompactedError
    return _CLASS_BY_CODE.get(code, InternalError)


def status_details(error: StateKeeperError) -> list[any_pb2.Any]:
    """The ``google.rpc.Status`` details of an error: its ErrorInfo, and a BadRequest when it
    names field violations."""
    details = []
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in error.violations
            ]
        )
        packed_bad = any_pb2.Any()
        packed_bad.Pack(bad)
        details.append(packed_bad)
    return details


def to_grpc_status(error: StateKeeperError) -> grpc.Status:
    """Build the rich gRPC status (ErrorInfo, and BadRequest when there are violations)."""
    status = status_pb2.Status(
        code=getattr(code_pb2, error.code.name),
        message=error.message,
        details=status_details(error),
    )
    return rpc_status.to_status(status)


def from_status(code: grpc.StatusCode, message: str, details: Sequence[Any]) -> StateKeeperError:
    """The typed error of a status: its code, message and ``google.rpc.Status`` details."""
    reason: str | None = None
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    for detail in details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
            metadata = dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = [(v.field, v.description) for v in bad.field_violations]
    cls = error_class(code, reason)
    if reason is None and code == grpc.StatusCode.UNAVAILABLE:
        reason = Reason.UNAVAILABLE
    return cls(message or code.name, reason=reason, metadata=metadata, violations=violations)


#: gRPC status codes by number (the ``code`` of a ``google.rpc.Status``).
STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def from_rpc_error(error: grpc.RpcError) -> StateKeeperError:
    """Turn a failed gRPC call into the typed error it stands for."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    status = None
    if hasattr(error, "trailing_metadata"):
        try:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
        except ValueError:
            status = None
    return from_status(code, message, status.details if status is not None else ())
