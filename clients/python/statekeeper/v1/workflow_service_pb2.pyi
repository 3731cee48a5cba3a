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

class WorkflowStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKFLOW_STATUS_UNSPECIFIED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_PENDING: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_RUNNING: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_PAUSED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_COMPLETED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_FAILED: _ClassVar[WorkflowStatus]
    WORKFLOW_STATUS_CANCELLED: _ClassVar[WorkflowStatus]

class StepStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATUS_UNSPECIFIED: _ClassVar[StepStatus]
    STEP_STATUS_PENDING: _ClassVar[StepStatus]
    STEP_STATUS_RUNNING: _ClassVar[StepStatus]
    STEP_STATUS_COMPLETED: _ClassVar[StepStatus]
    STEP_STATUS_FAILED: _ClassVar[StepStatus]
    STEP_STATUS_SKIPPED: _ClassVar[StepStatus]

class WorkflowEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKFLOW_EVENT_TYPE_UNSPECIFIED: _ClassVar[WorkflowEventType]
    WORKFLOW_EVENT_TYPE_STATUS_CHANGED: _ClassVar[WorkflowEventType]
    WORKFLOW_EVENT_TYPE_STEP_UPDATED: _ClassVar[WorkflowEventType]
    WORKFLOW_EVENT_TYPE_CHECKPOINT_CREATED: _ClassVar[WorkflowEventType]
    WORKFLOW_EVENT_TYPE_RESUMED_FROM_CHECKPOINT: _ClassVar[WorkflowEventType]
    WORKFLOW_EVENT_TYPE_DELETED: _ClassVar[WorkflowEventType]
WORKFLOW_STATUS_UNSPECIFIED: WorkflowStatus
WORKFLOW_STATUS_PENDING: WorkflowStatus
WORKFLOW_STATUS_RUNNING: WorkflowStatus
WORKFLOW_STATUS_PAUSED: WorkflowStatus
WORKFLOW_STATUS_COMPLETED: WorkflowStatus
WORKFLOW_STATUS_FAILED: WorkflowStatus
WORKFLOW_STATUS_CANCELLED: WorkflowStatus
STEP_STATUS_UNSPECIFIED: StepStatus
STEP_STATUS_PENDING: StepStatus
STEP_STATUS_RUNNING: StepStatus
STEP_STATUS_COMPLETED: StepStatus
STEP_STATUS_FAILED: StepStatus
STEP_STATUS_SKIPPED: StepStatus
WORKFLOW_EVENT_TYPE_UNSPECIFIED: WorkflowEventType
WORKFLOW_EVENT_TYPE_STATUS_CHANGED: WorkflowEventType
WORKFLOW_EVENT_TYPE_STEP_UPDATED: WorkflowEventType
WORKFLOW_EVENT_TYPE_CHECKPOINT_CREATED: WorkflowEventType
WORKFLOW_EVENT_TYPE_RESUMED_FROM_CHECKPOINT: WorkflowEventType
WORKFLOW_EVENT_TYPE_DELETED: WorkflowEventType

class StepState(_message.Message):
    __slots__ = ("step_number", "name", "status", "result", "duration_ms", "error", "timestamp", "sequence", "superseded")
    STEP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    step_number: int
    name: str
    status: StepStatus
    result: _common_pb2.Value
    duration_ms: int
    error: str
    timestamp: _timestamp_pb2.Timestamp
    sequence: int
    superseded: bool
    def __init__(self, step_number: _Optional[int] = ..., name: _Optional[str] = ..., status: _Optional[_Union[StepStatus, str]] = ..., result: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., duration_ms: _Optional[int] = ..., error: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ..., superseded: _Optional[bool] = ...) -> None: ...

class WorkflowResume(_message.Message):
    __slots__ = ("checkpoint_id", "step", "timestamp", "history_sequence")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    step: int
    timestamp: _timestamp_pb2.Timestamp
    history_sequence: int
    def __init__(self, checkpoint_id: _Optional[str] = ..., step: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history_sequence: _Optional[int] = ...) -> None: ...

class WorkflowState(_message.Message):
    __slots__ = ("workflow_id", "status", "total_steps", "current_step", "context", "state", "metadata", "steps", "resumes", "cancel_reason", "error", "checkpoint_interval", "keep_checkpoints", "create_time", "update_time", "revision")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    KEEP_CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    status: WorkflowStatus
    total_steps: int
    current_step: int
    context: _common_pb2.Value
    state: _common_pb2.Value
    metadata: _common_pb2.Value
    steps: _containers.RepeatedCompositeFieldContainer[StepState]
    resumes: _containers.RepeatedCompositeFieldContainer[WorkflowResume]
    cancel_reason: str
    error: str
    checkpoint_interval: int
    keep_checkpoints: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, workflow_id: _Optional[str] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ..., total_steps: _Optional[int] = ..., current_step: _Optional[int] = ..., context: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., metadata: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[StepState, _Mapping]]] = ..., resumes: _Optional[_Iterable[_Union[WorkflowResume, _Mapping]]] = ..., cancel_reason: _Optional[str] = ..., error: _Optional[str] = ..., checkpoint_interval: _Optional[int] = ..., keep_checkpoints: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class WorkflowCheckpoint(_message.Message):
    __slots__ = ("workflow_id", "checkpoint_id", "step", "state", "context", "timestamp", "automatic", "sequence")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    AUTOMATIC_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    checkpoint_id: str
    step: int
    state: _common_pb2.Value
    context: _common_pb2.Value
    timestamp: _timestamp_pb2.Timestamp
    automatic: bool
    sequence: int
    def __init__(self, workflow_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., step: _Optional[int] = ..., state: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., context: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., automatic: _Optional[bool] = ..., sequence: _Optional[int] = ...) -> None: ...

class CreateWorkflowRequest(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: WorkflowState
    def __init__(self, workflow: _Optional[_Union[WorkflowState, _Mapping]] = ...) -> None: ...

class CreateWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: WorkflowState
    def __init__(self, workflow: _Optional[_Union[WorkflowState, _Mapping]] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "include_steps", "value_encoding")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_STEPS_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    include_steps: bool
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, workflow_id: _Optional[str] = ..., include_steps: _Optional[bool] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: WorkflowState
    def __init__(self, workflow: _Optional[_Union[WorkflowState, _Mapping]] = ...) -> None: ...

class ListWorkflowStepsRequest(_message.Message):
    __slots__ = ("workflow_id", "page_size", "page_token", "value_encoding")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    page_size: int
    page_token: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, workflow_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class ListWorkflowStepsResponse(_message.Message):
    __slots__ = ("steps", "next_page_token")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[StepState]
    next_page_token: str
    def __init__(self, steps: _Optional[_Iterable[_Union[StepState, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetWorkflowStatusRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class GetWorkflowStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("status", "page_size", "page_token", "value_encoding")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    page_size: int
    page_token: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows", "next_page_token")
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowState]
    next_page_token: str
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowState, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateStepRequest(_message.Message):
    __slots__ = ("workflow_id", "step", "state_patch", "context_patch", "value_encoding")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_PATCH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_PATCH_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    step: StepState
    state_patch: _common_pb2.Value
    context_patch: _common_pb2.Value
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, workflow_id: _Optional[str] = ..., step: _Optional[_Union[StepState, _Mapping]] = ..., state_patch: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., context_patch: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class UpdateStepResponse(_message.Message):
    __slots__ = ("step", "status", "current_step", "checkpoint_id")
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    step: StepState
    status: WorkflowStatus
    current_step: int
    checkpoint_id: str
    def __init__(self, step: _Optional[_Union[StepState, _Mapping]] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ..., current_step: _Optional[int] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class StartWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class StartWorkflowResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class PauseWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "expected_revision")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    expected_revision: int
    def __init__(self, workflow_id: _Optional[str] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class PauseWorkflowResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class ResumeWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "expected_revision")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    expected_revision: int
    def __init__(self, workflow_id: _Optional[str] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class ResumeWorkflowResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "reason", "expected_revision")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    reason: str
    expected_revision: int
    def __init__(self, workflow_id: _Optional[str] = ..., reason: _Optional[str] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class CancelWorkflowResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class CompleteWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "state_patch")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_PATCH_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    state_patch: _common_pb2.Value
    def __init__(self, workflow_id: _Optional[str] = ..., state_patch: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...

class CompleteWorkflowResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class FailWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "error")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    error: str
    def __init__(self, workflow_id: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class FailWorkflowResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: WorkflowStatus
    def __init__(self, status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class CreateCheckpointRequest(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: WorkflowCheckpoint
    def __init__(self, checkpoint: _Optional[_Union[WorkflowCheckpoint, _Mapping]] = ...) -> None: ...

class CreateCheckpointResponse(_message.Message):
    __slots__ = ("sequence", "timestamp")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetWorkflowCheckpointRequest(_message.Message):
    __slots__ = ("workflow_id", "checkpoint_id", "value_encoding")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    checkpoint_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, workflow_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetWorkflowCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint",)
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    checkpoint: WorkflowCheckpoint
    def __init__(self, checkpoint: _Optional[_Union[WorkflowCheckpoint, _Mapping]] = ...) -> None: ...

class ListWorkflowCheckpointsRequest(_message.Message):
    __slots__ = ("workflow_id", "page_size", "page_token", "value_encoding")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    page_size: int
    page_token: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, workflow_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class ListWorkflowCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints", "next_page_token")
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[WorkflowCheckpoint]
    next_page_token: str
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[WorkflowCheckpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResumeFromCheckpointRequest(_message.Message):
    __slots__ = ("workflow_id", "checkpoint_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    checkpoint_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ...) -> None: ...

class ResumeFromCheckpointResponse(_message.Message):
    __slots__ = ("resume", "status")
    RESUME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    resume: WorkflowResume
    status: WorkflowStatus
    def __init__(self, resume: _Optional[_Union[WorkflowResume, _Mapping]] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ...) -> None: ...

class WatchWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "start_revision", "value_encoding", "progress_interval")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    start_revision: int
    value_encoding: _common_pb2.ValueEncoding
    progress_interval: _duration_pb2.Duration
    def __init__(self, workflow_id: _Optional[str] = ..., start_revision: _Optional[int] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ..., progress_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WorkflowEvent(_message.Message):
    __slots__ = ("type", "status", "previous_status", "step", "checkpoint_id", "revision")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    type: WorkflowEventType
    status: WorkflowStatus
    previous_status: WorkflowStatus
    step: StepState
    checkpoint_id: str
    revision: int
    def __init__(self, type: _Optional[_Union[WorkflowEventType, str]] = ..., status: _Optional[_Union[WorkflowStatus, str]] = ..., previous_status: _Optional[_Union[WorkflowStatus, str]] = ..., step: _Optional[_Union[StepState, _Mapping]] = ..., checkpoint_id: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class WatchWorkflowResponse(_message.Message):
    __slots__ = ("created", "revision", "events", "canceled", "compact_revision", "cancel_reason")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    COMPACT_REVISION_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    created: bool
    revision: int
    events: _containers.RepeatedCompositeFieldContainer[WorkflowEvent]
    canceled: bool
    compact_revision: int
    cancel_reason: str
    def __init__(self, created: _Optional[bool] = ..., revision: _Optional[int] = ..., events: _Optional[_Iterable[_Union[WorkflowEvent, _Mapping]]] = ..., canceled: _Optional[bool] = ..., compact_revision: _Optional[int] = ..., cancel_reason: _Optional[str] = ...) -> None: ...

class DeleteWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "force", "expected_revision")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    force: bool
    expected_revision: int
    def __init__(self, workflow_id: _Optional[str] = ..., force: _Optional[bool] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class DeleteWorkflowResponse(_message.Message):
    __slots__ = ("deleted", "revision")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    revision: int
    def __init__(self, deleted: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...
