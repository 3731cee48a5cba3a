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

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_IN_PROGRESS: _ClassVar[TaskState]
    TASK_STATE_COMPLETED: _ClassVar[TaskState]
    TASK_STATE_DEAD_LETTERED: _ClassVar[TaskState]

class TeamChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEAM_CHANGE_TYPE_UNSPECIFIED: _ClassVar[TeamChangeType]
    TEAM_CHANGE_TYPE_AGENT_UPDATED: _ClassVar[TeamChangeType]
    TEAM_CHANGE_TYPE_TASK_UPDATED: _ClassVar[TeamChangeType]
    TEAM_CHANGE_TYPE_TASK_REMOVED: _ClassVar[TeamChangeType]
    TEAM_CHANGE_TYPE_TEAM_DELETED: _ClassVar[TeamChangeType]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_IN_PROGRESS: TaskState
TASK_STATE_COMPLETED: TaskState
TASK_STATE_DEAD_LETTERED: TaskState
TEAM_CHANGE_TYPE_UNSPECIFIED: TeamChangeType
TEAM_CHANGE_TYPE_AGENT_UPDATED: TeamChangeType
TEAM_CHANGE_TYPE_TASK_UPDATED: TeamChangeType
TEAM_CHANGE_TYPE_TASK_REMOVED: TeamChangeType
TEAM_CHANGE_TYPE_TEAM_DELETED: TeamChangeType

class AgentCoordinationState(_message.Message):
    __slots__ = ("agent_id", "status", "capabilities", "current_task", "update_time", "max_tasks")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TASK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    status: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    current_task: str
    update_time: _timestamp_pb2.Timestamp
    max_tasks: int
    def __init__(self, agent_id: _Optional[str] = ..., status: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., current_task: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_tasks: _Optional[int] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("task_id", "type", "priority_name", "priority_level", "data", "required_capabilities", "max_retries")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_NAME_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    type: str
    priority_name: str
    priority_level: int
    data: _common_pb2.Value
    required_capabilities: _containers.RepeatedScalarFieldContainer[str]
    max_retries: int
    def __init__(self, task_id: _Optional[str] = ..., type: _Optional[str] = ..., priority_name: _Optional[str] = ..., priority_level: _Optional[int] = ..., data: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., required_capabilities: _Optional[_Iterable[str]] = ..., max_retries: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "type", "priority", "priority_name", "data", "required_capabilities", "state", "agent_id", "delivery_count", "failure_count", "max_retries", "last_error", "result", "sequence", "enqueue_time", "start_time", "lease_expire_time", "finish_time")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ENQUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    type: str
    priority: int
    priority_name: str
    data: _common_pb2.Value
    required_capabilities: _containers.RepeatedScalarFieldContainer[str]
    state: TaskState
    agent_id: str
    delivery_count: int
    failure_count: int
    max_retries: int
    last_error: str
    result: _common_pb2.Value
    sequence: int
    enqueue_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    lease_expire_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, task_id: _Optional[str] = ..., type: _Optional[str] = ..., priority: _Optional[int] = ..., priority_name: _Optional[str] = ..., data: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., required_capabilities: _Optional[_Iterable[str]] = ..., state: _Optional[_Union[TaskState, str]] = ..., agent_id: _Optional[str] = ..., delivery_count: _Optional[int] = ..., failure_count: _Optional[int] = ..., max_retries: _Optional[int] = ..., last_error: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., sequence: _Optional[int] = ..., enqueue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TaskQueueState(_message.Message):
    __slots__ = ("pending", "in_progress", "completed", "dead_lettered")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    pending: _containers.RepeatedCompositeFieldContainer[Task]
    in_progress: _containers.RepeatedCompositeFieldContainer[Task]
    completed: _containers.RepeatedCompositeFieldContainer[Task]
    dead_lettered: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, pending: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., in_progress: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., completed: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., dead_lettered: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class QueueCounts(_message.Message):
    __slots__ = ("pending", "in_progress", "completed", "dead_lettered")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    pending: int
    in_progress: int
    completed: int
    dead_lettered: int
    def __init__(self, pending: _Optional[int] = ..., in_progress: _Optional[int] = ..., completed: _Optional[int] = ..., dead_lettered: _Optional[int] = ...) -> None: ...

class TeamSettings(_message.Message):
    __slots__ = ("completed_retention", "default_max_retries", "max_deliveries")
    COMPLETED_RETENTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    completed_retention: int
    default_max_retries: int
    max_deliveries: int
    def __init__(self, completed_retention: _Optional[int] = ..., default_max_retries: _Optional[int] = ..., max_deliveries: _Optional[int] = ...) -> None: ...

class TeamState(_message.Message):
    __slots__ = ("team_id", "agents", "task_queue", "settings", "create_time", "queue_counts")
    class AgentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: AgentCoordinationState
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[AgentCoordinationState, _Mapping]] = ...) -> None: ...
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    QUEUE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    agents: _containers.MessageMap[str, AgentCoordinationState]
    task_queue: TaskQueueState
    settings: TeamSettings
    create_time: _timestamp_pb2.Timestamp
    queue_counts: QueueCounts
    def __init__(self, team_id: _Optional[str] = ..., agents: _Optional[_Mapping[str, AgentCoordinationState]] = ..., task_queue: _Optional[_Union[TaskQueueState, _Mapping]] = ..., settings: _Optional[_Union[TeamSettings, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., queue_counts: _Optional[_Union[QueueCounts, _Mapping]] = ...) -> None: ...

class CreateTeamRequest(_message.Message):
    __slots__ = ("team_id", "agents", "initial_tasks", "settings", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_TASKS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    agents: _containers.RepeatedCompositeFieldContainer[AgentCoordinationState]
    initial_tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    settings: TeamSettings
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., agents: _Optional[_Iterable[_Union[AgentCoordinationState, _Mapping]]] = ..., initial_tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., settings: _Optional[_Union[TeamSettings, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class CreateTeamResponse(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: TeamState
    def __init__(self, team: _Optional[_Union[TeamState, _Mapping]] = ...) -> None: ...

class GetTeamRequest(_message.Message):
    __slots__ = ("team_id", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetTeamResponse(_message.Message):
    __slots__ = ("team",)
    TEAM_FIELD_NUMBER: _ClassVar[int]
    team: TeamState
    def __init__(self, team: _Optional[_Union[TeamState, _Mapping]] = ...) -> None: ...

class DeleteTeamRequest(_message.Message):
    __slots__ = ("team_id",)
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    def __init__(self, team_id: _Optional[str] = ...) -> None: ...

class DeleteTeamResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class AddAgentRequest(_message.Message):
    __slots__ = ("team_id", "agent")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    agent: AgentCoordinationState
    def __init__(self, team_id: _Optional[str] = ..., agent: _Optional[_Union[AgentCoordinationState, _Mapping]] = ...) -> None: ...

class AddAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: AgentCoordinationState
    def __init__(self, agent: _Optional[_Union[AgentCoordinationState, _Mapping]] = ...) -> None: ...

class UpdateAgentStatusRequest(_message.Message):
    __slots__ = ("team_id", "agent_id", "status", "current_task")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TASK_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    agent_id: str
    status: str
    current_task: str
    def __init__(self, team_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., status: _Optional[str] = ..., current_task: _Optional[str] = ...) -> None: ...

class UpdateAgentStatusResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: AgentCoordinationState
    def __init__(self, agent: _Optional[_Union[AgentCoordinationState, _Mapping]] = ...) -> None: ...

class GetAvailableAgentsRequest(_message.Message):
    __slots__ = ("team_id", "capability")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    capability: str
    def __init__(self, team_id: _Optional[str] = ..., capability: _Optional[str] = ...) -> None: ...

class GetAvailableAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentCoordinationState]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentCoordinationState, _Mapping]]] = ...) -> None: ...

class EnqueueTaskRequest(_message.Message):
    __slots__ = ("team_id", "task", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    task: TaskSpec
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., task: _Optional[_Union[TaskSpec, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class EnqueueTaskResponse(_message.Message):
    __slots__ = ("task", "created")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    task: Task
    created: bool
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("team_id", "task_id", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    task_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., task_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class AssignTaskRequest(_message.Message):
    __slots__ = ("team_id", "task_id", "agent_id", "lease", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    task_id: str
    agent_id: str
    lease: _duration_pb2.Duration
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class AssignTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class ClaimNextTaskRequest(_message.Message):
    __slots__ = ("team_id", "agent_id", "lease", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    agent_id: str
    lease: _duration_pb2.Duration
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class ClaimNextTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("team_id", "task_id", "agent_id", "lease", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    task_id: str
    agent_id: str
    lease: _duration_pb2.Duration
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., lease: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("team_id", "task_id", "result", "agent_id", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    task_id: str
    result: _common_pb2.Value
    agent_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., task_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Value, _Mapping]] = ..., agent_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class FailTaskRequest(_message.Message):
    __slots__ = ("team_id", "task_id", "reason", "agent_id", "retry_limit", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    task_id: str
    reason: str
    agent_id: str
    retry_limit: int
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., task_id: _Optional[str] = ..., reason: _Optional[str] = ..., agent_id: _Optional[str] = ..., retry_limit: _Optional[int] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class FailTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class RequeueTaskRequest(_message.Message):
    __slots__ = ("team_id", "task_id", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    task_id: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., task_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class RequeueTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class GetQueueStatusRequest(_message.Message):
    __slots__ = ("team_id", "value_encoding", "page_size")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    value_encoding: _common_pb2.ValueEncoding
    page_size: int
    def __init__(self, team_id: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ..., page_size: _Optional[int] = ...) -> None: ...

class GetQueueStatusResponse(_message.Message):
    __slots__ = ("queue", "counts", "next_page_tokens")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    queue: TaskQueueState
    counts: QueueCounts
    next_page_tokens: QueuePageTokens
    def __init__(self, queue: _Optional[_Union[TaskQueueState, _Mapping]] = ..., counts: _Optional[_Union[QueueCounts, _Mapping]] = ..., next_page_tokens: _Optional[_Union[QueuePageTokens, _Mapping]] = ...) -> None: ...

class QueuePageTokens(_message.Message):
    __slots__ = ("pending", "in_progress", "completed", "dead_lettered")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    pending: str
    in_progress: str
    completed: str
    dead_lettered: str
    def __init__(self, pending: _Optional[str] = ..., in_progress: _Optional[str] = ..., completed: _Optional[str] = ..., dead_lettered: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("team_id", "state", "page_size", "page_token", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    state: TaskState
    page_size: int
    page_token: str
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchTeamRequest(_message.Message):
    __slots__ = ("team_id", "progress_interval", "value_encoding")
    TEAM_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    VALUE_ENCODING_FIELD_NUMBER: _ClassVar[int]
    team_id: str
    progress_interval: _duration_pb2.Duration
    value_encoding: _common_pb2.ValueEncoding
    def __init__(self, team_id: _Optional[str] = ..., progress_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., value_encoding: _Optional[_Union[_common_pb2.ValueEncoding, str]] = ...) -> None: ...

class TeamChange(_message.Message):
    __slots__ = ("type", "agent", "task", "task_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    type: TeamChangeType
    agent: AgentCoordinationState
    task: Task
    task_id: str
    def __init__(self, type: _Optional[_Union[TeamChangeType, str]] = ..., agent: _Optional[_Union[AgentCoordinationState, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., task_id: _Optional[str] = ...) -> None: ...

class WatchTeamResponse(_message.Message):
    __slots__ = ("snapshot", "changes", "revision")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    snapshot: TeamState
    changes: _containers.RepeatedCompositeFieldContainer[TeamChange]
    revision: int
    def __init__(self, snapshot: _Optional[_Union[TeamState, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[TeamChange, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...
