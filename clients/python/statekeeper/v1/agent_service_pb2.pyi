import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from statekeeper.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentSnapshot(_message.Message):
    __slots__ = ("agent_id", "snapshot_id", "timestamp", "memory_state", "tool_state", "conversation_history", "metadata", "sequence")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MEMORY_STATE_FIELD_NUMBER: _ClassVar[int]
    TOOL_STATE_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_HISTORY_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    snapshot_id: str
    timestamp: _timestamp_pb2.Timestamp
    memory_state: _common_pb2.Value
    tool_state: _common_pb2.Value
    conversation_history: _common_pb2.Value
    metadata: _common_pb2.Value
    sequence: int
    def __init__(self, agent_id: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., memory_state: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., tool_state: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., conversation_history: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., metadata: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class AgentCheckpoint(_message.Message):
    __slots__ = ("agent_id", "checkpoint_id", "step", "state", "recoverable", "timestamp", "metadata", "sequence")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECOVERABLE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    checkpoint_id: str
    step: int
    state: _common_pb2.Value
    recoverable: bool
    timestamp: _timestamp_pb2.Timestamp
    metadata: _common_pb2.Value
    sequence: int
    def __init__(self, agent_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., step: _Optional[int] = ..., state: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., recoverable: _Optional[bool] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class RecoveryStatus(_message.Message):
    __slots__ = ("agent_id", "attempts", "last_attempt_time", "last_checkpoint_id", "last_success_time", "recoveries")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_TIME_FIELD_NUMBER: _ClassVar[int]
    RECOVERIES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    attempts: int
    last_attempt_time: _timestamp_pb2.Timestamp
    last_checkpoint_id: str
    last_success_time: _timestamp_pb2.Timestamp
    recoveries: int
    def __init__(self, agent_id: _Optional[str] = ..., attempts: _Optional[int] = ..., last_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_checkpoint_id: _Optional[str] = ..., last_success_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recoveries: _Optional[int] = ...) -> None: ...

class SaveSnapshotRequest(_message.Message):
    __slots__ = ("snapshot", "keep_latest")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    KEEP_LATEST_FIELD_NUMBER: _ClassVar[int]
    snapshot: AgentSnapshot
    keep_latest: int
    def __init__(self, snapshot: _Optional[_Union[AgentSnapshot, _Mapping]] = ..., keep_latest: _Optional[int] = ...) -> None: ...

class SaveSnapshotResponse(_message.Message):
    __slots__ = ("snapshot_id", "sequence", "timestamp")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    sequence: int
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, snapshot_id: _Optional[str] = ..., sequence: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSnapshotRequest(_message.Message):
    __slots__ = ("agent_id", "snapshot_id", "value_encoding")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    snapshot_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, agent_id: _Optional[str] = ..., snapshot_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetSnapshotResponse(_message.Message):
    __slots__ = ("snapshot",)
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    snapshot: AgentSnapshot
    def __init__(self, snapshot: _Optional[_Union[AgentSnapshot, _Mapping]] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("agent_id", "page_size", "page_token", "value_encoding")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    page_size: int
    page_token: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots", "next_page_token")
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[AgentSnapshot]
    next_page_token: str
    def __init__(self, snapshots: _Optional[_Iterable[_Union[AgentSnapshot, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SaveCheckpointRequest(_message.Message):
    __slots__ = ("checkpoint", "keep_latest")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    KEEP_LATEST_FIELD_NUMBER: _ClassVar[int]
    checkpoint: AgentCheckpoint
    keep_latest: int
    def __init__(self, checkpoint: _Optional[_Union[AgentCheckpoint, _Mapping]] = ..., keep_latest: _Optional[int] = ...) -> None: ...

class SaveCheckpointResponse(_message.Message):
    __slots__ = ("sequence", "timestamp", "pruned")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PRUNED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    timestamp: _timestamp_pb2.Timestamp
    pruned: int
    def __init__(self, sequence: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pruned: _Optional[int] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("agent_id", "checkpoint_id", "recoverable_only", "value_encoding")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    RECOVERABLE_ONLY_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    checkpoint_id: str
    recoverable_only: bool
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, agent_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., recoverable_only: _Optional[bool] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: AgentCheckpoint
    def __init__(self, checkpoint: _Optional[_Union[AgentCheckpoint, _Mapping]] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("agent_id", "page_size", "page_token", "value_encoding")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    page_size: int
    page_token: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints", "next_page_token")
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[AgentCheckpoint]
    next_page_token: str
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[AgentCheckpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchCheckpointsRequest(_message.Message):
    __slots__ = ("agent_id", "start_revision", "value_encoding")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    start_revision: int
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, agent_id: _Optional[str] = ..., start_revision: _Optional[int] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class WatchCheckpointsResponse(_message.Message):
    __slots__ = ("created", "revision", "checkpoint", "canceled", "compact_revision", "cancel_reason")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    created: bool
    revision: int
    checkpoint: AgentCheckpoint
    canceled: bool
    compact_revision: int
    cancel_reason: str
    def __init__(self, created: _Optional[bool] = ..., revision: _Optional[int] = ..., checkpoint: _Optional[_Union[AgentCheckpoint, _Mapping]] = ..., canceled: _Optional[bool] = ..., compact_revision: _Optional[int] = ..., cancel_reason: _Optional[str] = ...) -> None: ...

class BeginRecoveryRequest(_message.Message):
    __slots__ = ("agent_id", "checkpoint_id", "max_attempts", "value_encoding")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    checkpoint_id: str
    max_attempts: int
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, agent_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., max_attempts: _Optional[int] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class BeginRecoveryResponse(_message.Message):
    __slots__ = ("checkpoint", "attempt")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: AgentCheckpoint
    attempt: int
    def __init__(self, checkpoint: _Optional[_Union[AgentCheckpoint, _Mapping]] = ..., attempt: _Optional[int] = ...) -> None: ...

class CompleteRecoveryRequest(_message.Message):
    __slots__ = ("agent_id", "success")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    success: bool
    def __init__(self, agent_id: _Optional[str] = ..., success: _Optional[bool] = ...) -> None: ...

class CompleteRecoveryResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: RecoveryStatus
    def __init__(self, status: _Optional[_Union[RecoveryStatus, _Mapping]] = ...) -> None: ...

class GetRecoveryStatusRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class GetRecoveryStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: RecoveryStatus
    def __init__(self, status: _Optional[_Union[RecoveryStatus, _Mapping]] = ...) -> None: ...

class DeleteAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class DeleteAgentResponse(_message.Message):
    __slots__ = ("deleted", "revision")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    revision: int
    def __init__(self, deleted: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...
