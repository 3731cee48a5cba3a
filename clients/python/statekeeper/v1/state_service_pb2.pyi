import datetime

from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from statekeeper.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_PUT: _ClassVar[EventType]
    EVENT_TYPE_DELETE: _ClassVar[EventType]
    EVENT_TYPE_EXPIRE: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_PUT: EventType
EVENT_TYPE_DELETE: EventType
EVENT_TYPE_EXPIRE: EventType

class SaveRequest(_message.Message):
    __slots__ = ("key", "value", "expected_revision", "ttl")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: _common_pb2.Value
    expected_revision: int
    ttl: _duration_pb2.Duration
    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., expected_revision: _Optional[int] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SaveResponse(_message.Message):
    __slots__ = ("kv",)
    KV_FIELD_NUMBER: _ClassVar[int]
    kv: _common_pb2.KeyValue
    def __init__(self, kv: _Optional[_Union[_common_pb2.KeyValue, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key", "value_encoding")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    key: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, key: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("kv", "revision")
    KV_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    kv: _common_pb2.KeyValue
    revision: int
    def __init__(self, kv: _Optional[_Union[_common_pb2.KeyValue, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("key", "patch", "expected_revision", "ttl", "value_encoding")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    key: str
    patch: _common_pb2.Value
    expected_revision: int
    ttl: _duration_pb2.Duration
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, key: _Optional[str] = ..., patch: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., expected_revision: _Optional[int] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class UpdateResponse(_message.Message):
    __slots__ = ("kv",)
    KV_FIELD_NUMBER: _ClassVar[int]
    kv: _common_pb2.KeyValue
    def __init__(self, kv: _Optional[_Union[_common_pb2.KeyValue, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("key", "expected_revision")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    key: str
    expected_revision: int
    def __init__(self, key: _Optional[str] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "revision")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    revision: int
    def __init__(self, deleted: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("pattern", "page_size", "page_token")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    page_size: int
    page_token: str
    def __init__(self, pattern: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys", "next_page_token", "revision")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    revision: int
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class Comparison(_message.Message):
    __slots__ = ("key", "expected_revision")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    key: str
    expected_revision: int
    def __init__(self, key: _Optional[str] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class PutOperation(_message.Message):
    __slots__ = ("key", "value", "ttl")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: _common_pb2.Value
    ttl: _duration_pb2.Duration
    def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class DeleteOperation(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("put", "delete")
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    put: PutOperation
    delete: DeleteOperation
    def __init__(self, put: _Optional[_Union[PutOperation, _Mapping]] = ..., delete: _Optional[_Union[DeleteOperation, _Mapping]] = ...) -> None: ...

class TransactRequest(_message.Message):
    __slots__ = ("comparisons", "operations")
    COMPARISONS_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    comparisons: _containers.RepeatedCompositeFieldContainer[Comparison]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    def __init__(self, comparisons: _Optional[_Iterable[_Union[Comparison, _Mapping]]] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ...) -> None: ...

class TransactResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("pattern", "start_revision", "prev_kv", "value_encoding", "progress_interval")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    PREV_KV_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    start_revision: int
    prev_kv: bool
    value_encoding: _common_pb2.ValueEncoding
    progress_interval: _duration_pb2.Duration
    def __init__(self, pattern: _Optional[str] = ..., start_revision: _Optional[int] = ..., prev_kv: _Optional[bool] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ..., progress_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("type", "kv", "prev_kv")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KV_FIELD_NUMBER: _ClassVar[int]
    PREV_KV_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    kv: _common_pb2.KeyValue
    prev_kv: _common_pb2.KeyValue
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., kv: _Optional[_Union[_common_pb2.KeyValue, _Mapping]] = ..., prev_kv: _Optional[_Union[_common_pb2.KeyValue, _Mapping]] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("created", "revision", "events", "progress_notify", "canceled", "compact_revision", "cancel_reason", "fragment")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_NOTIFY_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    FRAGMENT_FIELD_NUMBER: _ClassVar[int]
    created: bool
    revision: int
    events: _containers.RepeatedCompositeFieldContainer[Event]
    progress_notify: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
    fragment: bool
    def __init__(self, created: _Optional[bool] = ..., revision: _Optional[int] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., progress_notify: _Optional[bool] = ..., canceled: _Optional[bool] = ..., compact_revision: _Optional[int] = ..., cancel_reason: _Optional[str] = ..., fragment: _Optional[bool] = ...) -> None: ...

class RangeRequest(_message.Message):
    __slots__ = ("start_key", "end_key", "prefix", "pattern", "reverse", "keys_only", "page_size", "page_token", "revision", "value_encoding")
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    REVERSE_FIELD_NUMBER: _ClassVar[int]
    KEYS_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    start_key: str
    end_key: str
    prefix: str
    pattern: str
    reverse: bool
    keys_only: bool
    page_size: int
    page_token: str
    revision: int
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, start_key: _Optional[str] = ..., end_key: _Optional[str] = ..., prefix: _Optional[str] = ..., pattern: _Optional[str] = ..., reverse: _Optional[bool] = ..., keys_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., revision: _Optional[int] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class RangeResponse(_message.Message):
    __slots__ = ("kvs", "next_page_token", "revision")
    KVS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    kvs: _containers.RepeatedCompositeFieldContainer[_common_pb2.KeyValue]
    next_page_token: str
    revision: int
    def __init__(self, kvs: _Optional[_Iterable[_Union[_common_pb2.KeyValue, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class DeleteRangeRequest(_message.Message):
    __slots__ = ("start_key", "end_key", "prefix", "guard")
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    start_key: str
    end_key: str
    prefix: str
    guard: Comparison
    def __init__(self, start_key: _Optional[str] = ..., end_key: _Optional[str] = ..., prefix: _Optional[str] = ..., guard: _Optional[_Union[Comparison, _Mapping]] = ...) -> None: ...

class DeleteRangeResponse(_message.Message):
    __slots__ = ("deleted", "revision")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    revision: int
    def __init__(self, deleted: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...

class CopyRangeRequest(_message.Message):
    __slots__ = ("source_prefix", "target_prefix", "guard")
    SOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    TARGET_PREFIX_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    source_prefix: str
    target_prefix: str
    guard: Comparison
    def __init__(self, source_prefix: _Optional[str] = ..., target_prefix: _Optional[str] = ..., guard: _Optional[_Union[Comparison, _Mapping]] = ...) -> None: ...

class CopyRangeResponse(_message.Message):
    __slots__ = ("copied", "revision", "source_revision")
    COPIED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    copied: int
    revision: int
    source_revision: int
    def __init__(self, copied: _Optional[int] = ..., revision: _Optional[int] = ..., source_revision: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("keys", "bytes", "revision", "oldest_revision", "backend", "user_keys")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    OLDEST_REVISION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    USER_KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: int
    bytes: int
    revision: int
    oldest_revision: int
    backend: str
    user_keys: int
    def __init__(self, keys: _Optional[int] = ..., bytes: _Optional[int] = ..., revision: _Optional[int] = ..., oldest_revision: _Optional[int] = ..., backend: _Optional[str] = ..., user_keys: _Optional[int] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("operations",)
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[BatchOperation]
    def __init__(self, operations: _Optional[_Iterable[_Union[BatchOperation, _Mapping]]] = ...) -> None: ...

class BatchOperation(_message.Message):
    __slots__ = ("save", "get", "delete", "transact")
    SAVE_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    TRANSACT_FIELD_NUMBER: _ClassVar[int]
    save: SaveRequest
    get: GetRequest
    delete: DeleteRequest
    transact: TransactRequest
    def __init__(self, save: _Optional[_Union[SaveRequest, _Mapping]] = ..., get: _Optional[_Union[GetRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteRequest, _Mapping]] = ..., transact: _Optional[_Union[TransactRequest, _Mapping]] = ...) -> None: ...

class BatchStatus(_message.Message):
    __slots__ = ("code", "message", "details")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    details: _containers.RepeatedCompositeFieldContainer[_any_pb2.Any]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., details: _Optional[_Iterable[_Union[_any_pb2.Any, _Mapping]]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("status", "save", "get", "delete", "transact")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SAVE_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    TRANSACT_FIELD_NUMBER: _ClassVar[int]
    status: BatchStatus
    save: SaveResponse
    get: GetResponse
    delete: DeleteResponse
    transact: TransactResponse
    def __init__(self, status: _Optional[_Union[BatchStatus, _Mapping]] = ..., save: _Optional[_Union[SaveResponse, _Mapping]] = ..., get: _Optional[_Union[GetResponse, _Mapping]] = ..., delete: _Optional[_Union[DeleteResponse, _Mapping]] = ..., transact: _Optional[_Union[TransactResponse, _Mapping]] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ...) -> None: ...
