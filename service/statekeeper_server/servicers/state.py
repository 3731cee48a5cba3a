"""The StateService servicer: validate the request, call the StateEngine, build the response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message
from statekeeper import values
from statekeeper.errors import (
    InvalidArgumentError,
    Reason,
    ResourceExhaustedError,
    StateKeeperError,
    status_details,
)
from statekeeper.v1 import common_pb2, state_service_pb2_grpc
from statekeeper.v1 import state_service_pb2 as pb

from statekeeper_server.engine.domains.state import Planned, PutRequest, StateEngine
from statekeeper_server.engine.storage.backend import (
    Compare,
    Delete,
    Entry,
    Event,
    WatchUpdate,
)
from statekeeper_server.engine.tenancy import authorize, tenant_prefix
from statekeeper_server.servicers.batching import RESPONSE_OVERHEAD, field_bytes, pieces
from statekeeper_server.servicers.boundary import check_times
from statekeeper_server.servicers.convert import (
    event_to_proto,
    fill_kv,
    kv_to_proto,
    optional_revision,
    optional_seconds,
    revision_watch,
)
from statekeeper_server.servicers.fanout import MERGE_BYTES, WatchGroups

if TYPE_CHECKING:
    from statekeeper_server.core import Core

#: Response bytes set aside per get of a batch for the status it carries when its value does
#: not fit the response.
GET_ERROR_RESERVE = 512
#: How many converted watch events are kept for other watchers of the same change.
EVENT_CACHE_SIZE = 4096


def _created(revision: int) -> pb.WatchResponse:
    """The first message of a watch stream that starts after ``revision``."""
    return pb.WatchResponse(created=True, revision=revision)


def _merged(responses: list[pb.WatchResponse]) -> pb.WatchResponse:
    """One watch message with the events of consecutive ``responses``."""
    events = [event for response in responses for event in response.events]
    if not events:
        return responses[-1]
    return pb.WatchResponse(revision=responses[-1].revision, events=events)


def _batch_status(error: StateKeeperError) -> pb.BatchStatus:
    """The status of a failed batch operation: what the same call alone would fail with."""
    return pb.BatchStatus(
        code=error.code.value[0], message=error.message, details=status_details(error)
    )


def _too_large(index: int) -> ResourceExhaustedError:
    """The error of a get whose result does not fit the batch's response message."""
    return ResourceExhaustedError(
        f"operations[{index}]: the batch's results do not fit one response message; "
        "send this get alone",
        reason=Reason.BATCH_RESPONSE_TOO_LARGE,
        metadata={"operation": str(index)},
    )


def _fill_save(response: pb.SaveResponse, request: pb.SaveRequest, entry: Entry) -> None:
    """A save's response: the entry's key and revisions, without its value."""
    fill_kv(response.kv, entry, None)


def _fill_get(response: pb.GetResponse, request: pb.GetRequest, read: tuple[Entry, int]) -> None:
    """A get's response: the entry in the requested encoding and the read's revision."""
    entry, revision = read
    response.revision = revision
    fill_kv(response.kv, entry, request.value_encoding)


def _fill_delete(
    response: pb.DeleteResponse, request: pb.DeleteRequest, outcome: tuple[bool, int]
) -> None:
    """A delete's response: whether the key existed and the revision after the call."""
    response.deleted, response.revision = outcome


def _fill_transact(
    response: pb.TransactResponse, request: pb.TransactRequest, revision: int
) -> None:
    """A transaction's response: its commit revision."""
    response.revision = revision


#: A batch operation kind: (method name, plan, response message, fill); see StateServicer.
_Kind = tuple[str, Callable[[Any], Planned[Any]], type[Message], Callable[[Any, Any, Any], None]]


def _guard(request: pb.DeleteRangeRequest | pb.CopyRangeRequest) -> Compare | None:
    """The request's guard comparison, when it has one."""
    if not request.HasField("guard"):
        return None
    return Compare(request.guard.key, request.guard.expected_revision)


class StateServicer(state_service_pb2_grpc.StateServiceServicer):
    """gRPC front of :class:`~statekeeper_server.engine.domains.state.StateEngine`."""

    def __init__(self, runtime: Core) -> None:
        self.runtime = runtime
        self.engine = StateEngine(runtime.backend, runtime.limits)
        method = "/statekeeper.v1.StateService/"
        #: Per batch operation kind: its RPC's full method name (for the caller's role), how a
        #: request is planned, the RPC's response message, and how an engine outcome fills it.
        #: A single call and a batch's result are filled alike, in place (a batch's results
        #: are never built apart and copied in).
        self._batch_kinds: dict[str, _Kind] = {
            "save": (method + "Save", self._plan_save, pb.SaveResponse, _fill_save),
            "get": (method + "Get", self._plan_get, pb.GetResponse, _fill_get),
            "delete": (method + "Delete", self._plan_delete, pb.DeleteResponse, _fill_delete),
            "transact": (
                method + "Transact",
                self._plan_transact,
                pb.TransactResponse,
                _fill_transact,
            ),
        }
        self.max_message_bytes = runtime.limits.max_message_bytes
        self._events: dict[tuple[str, int, str, int, bool], tuple[int, pb.Event, int]] = {}
        self._watch_groups: WatchGroups[WatchUpdate, pb.WatchResponse] = WatchGroups(
            lambda update: update.revision,
            _created,
            _merged,
            merge_bytes=min(MERGE_BYTES, self.max_message_bytes - RESPONSE_OVERHEAD),
        )

    def _event_message(
        self, event: Event, encoding: int, with_prev: bool
    ) -> tuple[int, pb.Event, int]:
        """(revision, proto, size in a response) of a watch event, converted and measured once
        for every watcher of the same change (a change of a key at a revision is the same for
        all of them)."""
        cache_key = (tenant_prefix(), event.revision, event.key, encoding, with_prev)
        sized = self._events.get(cache_key)
        if sized is None:
            message = event_to_proto(event, encoding, with_prev)
            sized = (event.revision, message, field_bytes(message.ByteSize()))
            self._events[cache_key] = sized
            if len(self._events) > EVENT_CACHE_SIZE:
                del self._events[next(iter(self._events))]
        return sized

    async def _single(self, kind: str, request: Any) -> Any:
        """The response of one call of the RPC of ``kind`` (save, get, delete, transact)."""
        _, plan, message, fill = self._batch_kinds[kind]
        outcome = await self.engine.run(plan(request))
        response = message()
        fill(response, request, outcome)
        return response

    def _plan_save(self, request: pb.SaveRequest) -> Planned[Entry]:
        data = values.wire_to_bytes(request.value)
        return self.engine.plan_save(
            request.key,
            data,
            expected_revision=optional_revision(request),
            ttl=optional_seconds(request, "ttl"),
        )

    def _plan_get(self, request: pb.GetRequest) -> Planned[tuple[Entry, int]]:
        return self.engine.plan_get(request.key)

    def _plan_delete(self, request: pb.DeleteRequest) -> Planned[tuple[bool, int]]:
        return self.engine.plan_delete(request.key, expected_revision=optional_revision(request))

    async def Save(self, request: pb.SaveRequest, context: object) -> pb.SaveResponse:
        """Create or replace a document."""
        return await self._single("save", request)

    async def Get(self, request: pb.GetRequest, context: object) -> pb.GetResponse:
        """Read a document."""
        return await self._single("get", request)

    async def Update(self, request: pb.UpdateRequest, context: object) -> pb.UpdateResponse:
        """Merge a partial document."""
        patch = values.wire_to_document(request.patch, "patch")
        entry = await self.engine.update(
            request.key,
            patch,
            expected_revision=optional_revision(request),
            ttl=optional_seconds(request, "ttl"),
        )
        response = pb.UpdateResponse()
        fill_kv(response.kv, entry, request.value_encoding)
        return response

    async def Delete(self, request: pb.DeleteRequest, context: object) -> pb.DeleteResponse:
        """Remove a key."""
        return await self._single("delete", request)

    async def ListKeys(self, request: pb.ListKeysRequest, context: object) -> pb.ListKeysResponse:
        """One page of matching keys."""
        page = await self.engine.list_keys(request.pattern, request.page_size, request.page_token)
        return pb.ListKeysResponse(
            keys=page.keys, next_page_token=page.next_page_token, revision=page.revision
        )

    def _plan_transact(self, request: pb.TransactRequest) -> Planned[int]:
        compares = [Compare(c.key, c.expected_revision) for c in request.comparisons]
        operations: list[PutRequest | Delete] = []
        for index, operation in enumerate(request.operations):
            kind = operation.WhichOneof("kind")
            if kind == "put":
                field = f"operations[{index}].put"
                data = values.wire_to_bytes(operation.put.value, f"{field}.value")
                ttl = optional_seconds(operation.put, "ttl")
                operations.append(PutRequest(operation.put.key, data, ttl))
            elif kind == "delete":
                operations.append(Delete(operation.delete.key))
            else:
                raise InvalidArgumentError(
                    f"operations[{index}] sets neither put nor delete",
                    reason=Reason.INVALID_TRANSACTION,
                    violations=[(f"operations[{index}]", "empty operation")],
                )
        return self.engine.plan_transact(compares, operations)

    async def Transact(self, request: pb.TransactRequest, context: object) -> pb.TransactResponse:
        """All-or-nothing multi-key write."""
        return await self._single("transact", request)

    def _plan_operation(self, index: int, operation: pb.BatchOperation) -> Planned[Any]:
        """The planned operation of one batch entry, checked as its own RPC would be (the
        caller's role, times, every rule of the engine)."""
        kind = operation.WhichOneof("kind")
        if kind is None:
            raise InvalidArgumentError(
                f"operations[{index}] sets no operation",
                reason=Reason.INVALID_ARGUMENT,
                violations=[(f"operations[{index}]", "empty operation")],
            )
        method, plan, _, _ = self._batch_kinds[kind]
        authorize(method)
        request = getattr(operation, kind)
        check_times(request)
        return plan(request)

    async def Batch(self, request: pb.BatchRequest, context: object) -> pb.BatchResponse:
        """Independent operations in one call, each with its own result or status."""
        operations = request.operations
        plans: list[Planned[Any] | StateKeeperError] = []
        for index, operation in enumerate(operations):
            try:
                plans.append(self._plan_operation(index, operation))
            except StateKeeperError as error:
                plans.append(error)
        outcomes = await self.engine.batch(plans)
        response = pb.BatchResponse()
        results = response.results
        kinds: list[str | None] = []
        for operation, outcome in zip(operations, outcomes, strict=True):
            result = results.add()
            kind = operation.WhichOneof("kind")
            kinds.append(kind)
            if not isinstance(outcome, StateKeeperError):
                assert kind is not None  # an operation without a kind failed its planning
                target = getattr(result, kind)
                target.SetInParent()  # a result of all defaults is still this kind's
                self._batch_kinds[kind][3](target, getattr(operation, kind), outcome)
            else:
                result.status.CopyFrom(_batch_status(outcome))
        self._fit(response, kinds)
        return response

    def _fit(self, response: pb.BatchResponse, kinds: list[str | None]) -> None:
        """Fail the gets whose values do not fit the response message (those past the limit,
        in order; the writes' results always stay: they were applied). The whole response is
        measured once; only a response near the limit is walked result by result."""
        budget = self.max_message_bytes - RESPONSE_OVERHEAD
        gets = kinds.count("get")
        if response.ByteSize() + GET_ERROR_RESERVE * gets <= budget:
            return
        results = response.results
        sizes = [field_bytes(result.ByteSize()) for result in results]
        budget -= sum(
            size if kind != "get" else GET_ERROR_RESERVE
            for kind, size in zip(kinds, sizes, strict=True)
        )
        for index, (kind, result) in enumerate(zip(kinds, results, strict=True)):
            if kind != "get" or result.HasField("status"):
                continue
            if sizes[index] > budget and index > 0:
                result.Clear()
                result.status.CopyFrom(_batch_status(_too_large(index)))
            else:
                budget -= sizes[index]

    #: Keeps the boundary's whole-request time check off Batch: each operation is checked
    #: alone (see _plan_operation), so its error names its own field as the RPC's would.
    Batch.checks_own_times = True  # type: ignore[attr-defined]

    def Watch(self, request: pb.WatchRequest, context: object) -> AsyncIterator[pb.WatchResponse]:
        """Stream changes; see WatchResponse in the proto for the contract."""
        interval = optional_seconds(request, "progress_interval")
        encoding, with_prev = request.value_encoding, request.prev_kv

        def source(start_revision: int) -> AsyncIterator[WatchUpdate]:
            return self.engine.watch(request.pattern, start_revision, interval)

        def to_responses(
            update: WatchUpdate, first: bool
        ) -> Iterator[tuple[pb.WatchResponse, int]]:
            if first:
                yield _created(update.revision), RESPONSE_OVERHEAD
            elif not update.events:
                progress = pb.WatchResponse(revision=update.revision, progress_notify=True)
                yield progress, RESPONSE_OVERHEAD
            else:
                events = (self._event_message(e, encoding, with_prev) for e in update.events)
                for piece in pieces(events, update.revision, self.max_message_bytes):
                    response = pb.WatchResponse(
                        revision=piece.revision, events=piece.items, fragment=piece.fragment
                    )
                    yield response, piece.size

        key = (tenant_prefix(), request.pattern, encoding, with_prev, interval)
        responses = self._watch_groups.join(key, source, to_responses, request.start_revision)
        return revision_watch(self.runtime, responses, pb.WatchResponse)

    #: Watch yields response objects shared by the streams of a watch group (never changed
    #: once yielded): the server encodes each once (see servicers/fanout.py::encoded_once).
    Watch.shares_responses = True  # type: ignore[attr-defined]

    async def Range(self, request: pb.RangeRequest, context: object) -> pb.RangeResponse:
        """One page of the entries of a key range, now or at an earlier revision."""
        encoding = request.value_encoding
        page = await self.engine.range(
            start_key=request.start_key,
            end_key=request.end_key,
            prefix=request.prefix,
            pattern=request.pattern,
            reverse=request.reverse,
            keys_only=request.keys_only,
            page_size=request.page_size,
            page_token=request.page_token,
            revision=request.revision,
            json_form=encoding != common_pb2.VALUE_ENCODING_MSGPACK,
        )
        kv_encoding = None if request.keys_only else encoding
        return pb.RangeResponse(
            kvs=[kv_to_proto(entry, kv_encoding) for entry in page.entries],
            next_page_token=page.next_page_token,
            revision=page.revision,
        )

    async def DeleteRange(
        self, request: pb.DeleteRangeRequest, context: object
    ) -> pb.DeleteRangeResponse:
        """Remove every key of a key range or prefix, in atomic batches."""
        deleted, revision = await self.engine.delete_range(
            start_key=request.start_key,
            end_key=request.end_key,
            prefix=request.prefix,
            guard=_guard(request),
        )
        return pb.DeleteRangeResponse(deleted=deleted, revision=revision)

    async def CopyRange(
        self, request: pb.CopyRangeRequest, context: object
    ) -> pb.CopyRangeResponse:
        """Copy the entries under one prefix to another, from one snapshot, in atomic batches."""
        copied, revision, snapshot = await self.engine.copy_range(
            request.source_prefix, request.target_prefix, guard=_guard(request)
        )
        return pb.CopyRangeResponse(copied=copied, revision=revision, source_revision=snapshot)

    async def GetStats(self, request: pb.GetStatsRequest, context: object) -> pb.GetStatsResponse:
        """Size and history figures of the whole backend."""
        stats = await self.engine.backend.stats()
        return pb.GetStatsResponse(
            keys=stats.keys,
            bytes=stats.bytes,
            revision=stats.revision,
            oldest_revision=stats.oldest_revision,
            backend=stats.backend,
            user_keys=await self.engine.count_keys(),
        )
