import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from statekeeper.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ToolExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ToolExecutionStatus]
    TOOL_EXECUTION_STATUS_PENDING: _ClassVar[ToolExecutionStatus]
    TOOL_EXECUTION_STATUS_RUNNING: _ClassVar[ToolExecutionStatus]
    TOOL_EXECUTION_STATUS_COMPLETED: _ClassVar[ToolExecutionStatus]
    TOOL_EXECUTION_STATUS_FAILED: _ClassVar[ToolExecutionStatus]
    TOOL_EXECUTION_STATUS_TIMEOUT: _ClassVar[ToolExecutionStatus]
    TOOL_EXECUTION_STATUS_CANCELLED: _ClassVar[ToolExecutionStatus]
TOOL_EXECUTION_STATUS_UNSPECIFIED: ToolExecutionStatus
TOOL_EXECUTION_STATUS_PENDING: ToolExecutionStatus
TOOL_EXECUTION_STATUS_RUNNING: ToolExecutionStatus
TOOL_EXECUTION_STATUS_COMPLETED: ToolExecutionStatus
TOOL_EXECUTION_STATUS_FAILED: ToolExecutionStatus
TOOL_EXECUTION_STATUS_TIMEOUT: ToolExecutionStatus
TOOL_EXECUTION_STATUS_CANCELLED: ToolExecutionStatus

class ToolExecution(_message.Message):
    __slots__ = ("execution_id", "tool_name", "status", "started_at", "parameters", "parameters_hash", "completed_at", "result", "error", "duration", "metadata")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_HASH_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    tool_name: str
    status: ToolExecutionStatus
    started_at: _timestamp_pb2.Timestamp
    parameters: _common_pb2.Value
    parameters_hash: str
    completed_at: _timestamp_pb2.Timestamp
    result: _common_pb2.Value
    error: str
    duration: _duration_pb2.Duration
    metadata: _common_pb2.Value
    def __init__(self, execution_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., status: _Optional[_Union[ToolExecutionStatus, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., parameters: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., parameters_hash: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., error: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., metadata: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...

class StartExecutionRequest(_message.Message):
    __slots__ = ("execution", "value_encoding")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    execution: ToolExecution
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, execution: _Optional[_Union[ToolExecution, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class StartExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: ToolExecution
    def __init__(self, execution: _Optional[_Union[ToolExecution, _Mapping]] = ...) -> None: ...

class CompleteExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "result", "duration", "cache_ttl", "value_encoding", "cache_result")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    CACHE_RESULT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    result: _common_pb2.Value
    duration: _duration_pb2.Duration
    cache_ttl: _duration_pb2.Duration
    value_encoding: _common_pb2.ValueEncoding
    cache_result: bool
    def __init__(self, execution_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cache_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ..., cache_result: _Optional[bool] = ...) -> None: ...

class CompleteExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: ToolExecution
    def __init__(self, execution: _Optional[_Union[ToolExecution, _Mapping]] = ...) -> None: ...

class FailExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "error", "duration", "status", "value_encoding")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    error: str
    duration: _duration_pb2.Duration
    status: ToolExecutionStatus
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, execution_id: _Optional[str] = ..., error: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., status: _Optional[_Union[ToolExecutionStatus, str]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class FailExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: ToolExecution
    def __init__(self, execution: _Optional[_Union[ToolExecution, _Mapping]] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "value_encoding")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, execution_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetExecutionResponse(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: ToolExecution
    def __init__(self, execution: _Optional[_Union[ToolExecution, _Mapping]] = ...) -> None: ...

class GetExecutionHistoryRequest(_message.Message):
    __slots__ = ("tool_name", "page_size", "page_token", "value_encoding")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    page_size: int
    page_token: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, tool_name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetExecutionHistoryResponse(_message.Message):
    __slots__ = ("executions", "next_page_token")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[ToolExecution]
    next_page_token: str
    def __init__(self, executions: _Optional[_Iterable[_Union[ToolExecution, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ToolCacheEntry(_message.Message):
    __slots__ = ("tool_name", "parameters_hash", "result", "created_at", "ttl", "expire_time")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_HASH_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    parameters_hash: str
    result: _common_pb2.Value
    created_at: _timestamp_pb2.Timestamp
    ttl: _duration_pb2.Duration
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, tool_name: _Optional[str] = ..., parameters_hash: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CacheResultRequest(_message.Message):
    __slots__ = ("entry", "parameters")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    entry: ToolCacheEntry
    parameters: _common_pb2.Value
    def __init__(self, entry: _Optional[_Union[ToolCacheEntry, _Mapping]] = ..., parameters: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...

class CacheResultResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: ToolCacheEntry
    def __init__(self, entry: _Optional[_Union[ToolCacheEntry, _Mapping]] = ...) -> None: ...

class GetCachedResultRequest(_message.Message):
    __slots__ = ("tool_name", "parameters", "parameters_hash", "value_encoding")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_HASH_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    parameters: _common_pb2.Value
    parameters_hash: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, tool_name: _Optional[str] = ..., parameters: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., parameters_hash: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetCachedResultResponse(_message.Message):
    __slots__ = ("found", "entry")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    found: bool
    entry: ToolCacheEntry
    def __init__(self, found: _Optional[bool] = ..., entry: _Optional[_Union[ToolCacheEntry, _Mapping]] = ...) -> None: ...

class InvalidateCachedResultRequest(_message.Message):
    __slots__ = ("tool_name", "parameters", "parameters_hash")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_HASH_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    parameters: _common_pb2.Value
    parameters_hash: str
    def __init__(self, tool_name: _Optional[str] = ..., parameters: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., parameters_hash: _Optional[str] = ...) -> None: ...

class InvalidateCachedResultResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class RetryState(_message.Message):
    __slots__ = ("execution_id", "tool_name", "attempts", "max_attempts", "last_error", "next_retry_at", "backoff_factor", "base_delay", "max_delay", "jitter", "updated_at")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_RETRY_AT_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_FACTOR_FIELD_NUMBER: _ClassVar[int]
    BASE_DELAY_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    tool_name: str
    attempts: int
    max_attempts: int
    last_error: str
    next_retry_at: _timestamp_pb2.Timestamp
    backoff_factor: float
    base_delay: _duration_pb2.Duration
    max_delay: _duration_pb2.Duration
    jitter: float
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, execution_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., attempts: _Optional[int] = ..., max_attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., next_retry_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backoff_factor: _Optional[float] = ..., base_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., jitter: _Optional[float] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpdateRetryStateRequest(_message.Message):
    __slots__ = ("retry_state",)
    RETRY_STATE_FIELD_NUMBER: _ClassVar[int]
    retry_state: RetryState
    def __init__(self, retry_state: _Optional[_Union[RetryState, _Mapping]] = ...) -> None: ...

class UpdateRetryStateResponse(_message.Message):
    __slots__ = ("retry_state",)
    RETRY_STATE_FIELD_NUMBER: _ClassVar[int]
    retry_state: RetryState
    def __init__(self, retry_state: _Optional[_Union[RetryState, _Mapping]] = ...) -> None: ...

class GetRetryStateRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class GetRetryStateResponse(_message.Message):
    __slots__ = ("retry_state",)
    RETRY_STATE_FIELD_NUMBER: _ClassVar[int]
    retry_state: RetryState
    def __init__(self, retry_state: _Optional[_Union[RetryState, _Mapping]] = ...) -> None: ...

class DeleteRetryStateRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class DeleteRetryStateResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class GetPendingRetriesRequest(_message.Message):
    __slots__ = ("due_before", "page_size", "page_token")
    DUE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    due_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, due_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetPendingRetriesResponse(_message.Message):
    __slots__ = ("retries", "next_page_token")
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    retries: _containers.RepeatedCompositeFieldContainer[RetryState]
    next_page_token: str
    def __init__(self, retries: _Optional[_Iterable[_Union[RetryState, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ToolStats(_message.Message):
    __slots__ = ("tool_name", "total_executions", "successful_executions", "failed_executions", "success_rate", "error_rate", "average_duration", "cache_hits", "cache_misses", "cache_hit_rate", "last_execution_at", "running_executions")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    SUCCESSFUL_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    FAILED_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_DURATION_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_MISSES_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTION_AT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    total_executions: int
    successful_executions: int
    failed_executions: int
    success_rate: float
    error_rate: float
    average_duration: _duration_pb2.Duration
    cache_hits: int
    cache_misses: int
    cache_hit_rate: float
    last_execution_at: _timestamp_pb2.Timestamp
    running_executions: int
    def __init__(self, tool_name: _Optional[str] = ..., total_executions: _Optional[int] = ..., successful_executions: _Optional[int] = ..., failed_executions: _Optional[int] = ..., success_rate: _Optional[float] = ..., error_rate: _Optional[float] = ..., average_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cache_hits: _Optional[int] = ..., cache_misses: _Optional[int] = ..., cache_hit_rate: _Optional[float] = ..., last_execution_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., running_executions: _Optional[int] = ...) -> None: ...

class GetToolStatsRequest(_message.Message):
    __slots__ = ("tool_name",)
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    def __init__(self, tool_name: _Optional[str] = ...) -> None: ...

class GetToolStatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: ToolStats
    def __init__(self, stats: _Optional[_Union[ToolStats, _Mapping]] = ...) -> None: ...
