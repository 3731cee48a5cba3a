import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IndexingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEXING_STATUS_UNSPECIFIED: _ClassVar[IndexingStatus]
    INDEXING_STATUS_PENDING: _ClassVar[IndexingStatus]
    INDEXING_STATUS_IN_PROGRESS: _ClassVar[IndexingStatus]
    INDEXING_STATUS_COMPLETED: _ClassVar[IndexingStatus]
    INDEXING_STATUS_FAILED: _ClassVar[IndexingStatus]
    INDEXING_STATUS_PAUSED: _ClassVar[IndexingStatus]
    INDEXING_STATUS_CANCELLED: _ClassVar[IndexingStatus]

class SyncStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SYNC_STATUS_UNSPECIFIED: _ClassVar[SyncStatus]
    SYNC_STATUS_PENDING: _ClassVar[SyncStatus]
    SYNC_STATUS_SYNCING: _ClassVar[SyncStatus]
    SYNC_STATUS_SYNCED: _ClassVar[SyncStatus]
    SYNC_STATUS_FAILED: _ClassVar[SyncStatus]
INDEXING_STATUS_UNSPECIFIED: IndexingStatus
INDEXING_STATUS_PENDING: IndexingStatus
INDEXING_STATUS_IN_PROGRESS: IndexingStatus
INDEXING_STATUS_COMPLETED: IndexingStatus
INDEXING_STATUS_FAILED: IndexingStatus
INDEXING_STATUS_PAUSED: IndexingStatus
INDEXING_STATUS_CANCELLED: IndexingStatus
SYNC_STATUS_UNSPECIFIED: SyncStatus
SYNC_STATUS_PENDING: SyncStatus
SYNC_STATUS_SYNCING: SyncStatus
SYNC_STATUS_SYNCED: SyncStatus
SYNC_STATUS_FAILED: SyncStatus

class IndexingProgress(_message.Message):
    __slots__ = ("knowledge_base_id", "status", "total_documents", "processed_documents", "failed_documents", "start_time", "completion_time", "embedding_count", "storage_bytes", "error_message", "update_time")
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PROCESSED_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    FAILED_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TIME_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    status: IndexingStatus
    total_documents: int
    processed_documents: int
    failed_documents: int
    start_time: _timestamp_pb2.Timestamp
    completion_time: _timestamp_pb2.Timestamp
    embedding_count: int
    storage_bytes: int
    error_message: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, knowledge_base_id: _Optional[str] = ..., status: _Optional[_Union[IndexingStatus, str]] = ..., total_documents: _Optional[int] = ..., processed_documents: _Optional[int] = ..., failed_documents: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completion_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., embedding_count: _Optional[int] = ..., storage_bytes: _Optional[int] = ..., error_message: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SourceState(_message.Message):
    __slots__ = ("source_id", "knowledge_base_id", "sync_status", "last_sync_time", "documents_synced", "documents_pending", "error_message", "update_time")
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    SYNC_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_TIME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_SYNCED_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_PENDING_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    source_id: str
    knowledge_base_id: str
    sync_status: SyncStatus
    last_sync_time: _timestamp_pb2.Timestamp
    documents_synced: int
    documents_pending: int
    error_message: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, source_id: _Optional[str] = ..., knowledge_base_id: _Optional[str] = ..., sync_status: _Optional[_Union[SyncStatus, str]] = ..., last_sync_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., documents_synced: _Optional[int] = ..., documents_pending: _Optional[int] = ..., error_message: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KnowledgeBaseState(_message.Message):
    __slots__ = ("knowledge_base_id", "total_documents", "total_embeddings", "last_update_time", "storage_size_mb", "indexing_status", "source_count", "failed_documents", "documents_pending", "documents_synced")
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STORAGE_SIZE_MB_FIELD_NUMBER: _ClassVar[int]
    INDEXING_STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_PENDING_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_SYNCED_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    total_documents: int
    total_embeddings: int
    last_update_time: _timestamp_pb2.Timestamp
    storage_size_mb: float
    indexing_status: IndexingStatus
    source_count: int
    failed_documents: int
    documents_pending: int
    documents_synced: int
    def __init__(self, knowledge_base_id: _Optional[str] = ..., total_documents: _Optional[int] = ..., total_embeddings: _Optional[int] = ..., last_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., storage_size_mb: _Optional[float] = ..., indexing_status: _Optional[_Union[IndexingStatus, str]] = ..., source_count: _Optional[int] = ..., failed_documents: _Optional[int] = ..., documents_pending: _Optional[int] = ..., documents_synced: _Optional[int] = ...) -> None: ...

class UpdateIndexingProgressRequest(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: IndexingProgress
    def __init__(self, progress: _Optional[_Union[IndexingProgress, _Mapping]] = ...) -> None: ...

class UpdateIndexingProgressResponse(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: IndexingProgress
    def __init__(self, progress: _Optional[_Union[IndexingProgress, _Mapping]] = ...) -> None: ...

class GetIndexingProgressRequest(_message.Message):
    __slots__ = ("knowledge_base_id",)
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    def __init__(self, knowledge_base_id: _Optional[str] = ...) -> None: ...

class GetIndexingProgressResponse(_message.Message):
    __slots__ = ("progress",)
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    progress: IndexingProgress
    def __init__(self, progress: _Optional[_Union[IndexingProgress, _Mapping]] = ...) -> None: ...

class UpdateSourceStateRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: SourceState
    def __init__(self, source: _Optional[_Union[SourceState, _Mapping]] = ...) -> None: ...

class UpdateSourceStateResponse(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: SourceState
    def __init__(self, source: _Optional[_Union[SourceState, _Mapping]] = ...) -> None: ...

class ListSourcesRequest(_message.Message):
    __slots__ = ("knowledge_base_id", "page_size", "page_token")
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    page_size: int
    page_token: str
    def __init__(self, knowledge_base_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSourcesResponse(_message.Message):
    __slots__ = ("sources", "next_page_token")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[SourceState]
    next_page_token: str
    def __init__(self, sources: _Optional[_Iterable[_Union[SourceState, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetKnowledgeBaseStateRequest(_message.Message):
    __slots__ = ("knowledge_base_id",)
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    def __init__(self, knowledge_base_id: _Optional[str] = ...) -> None: ...

class GetKnowledgeBaseStateResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: KnowledgeBaseState
    def __init__(self, state: _Optional[_Union[KnowledgeBaseState, _Mapping]] = ...) -> None: ...

class DeleteKnowledgeBaseRequest(_message.Message):
    __slots__ = ("knowledge_base_id",)
    KNOWLEDGE_BASE_ID_FIELD_NUMBER: _ClassVar[int]
    knowledge_base_id: str
    def __init__(self, knowledge_base_id: _Optional[str] = ...) -> None: ...

class DeleteKnowledgeBaseResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...
