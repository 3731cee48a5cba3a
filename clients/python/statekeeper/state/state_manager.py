"""``StateManager`` and ``StateConfig``: the core key-value state API of the reference.

Values are JSON-like documents (see :mod:`statekeeper.values`); they travel in the exact
MessagePack form, so an ``int`` comes back an ``int``. ``get`` returns the stored document, or
``None`` for a missing or expired key (use :meth:`StateManager.get_entry` for revisions).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from statekeeper import values
from statekeeper.errors import (
    STATUS_CODES,
    InternalError,
    NotFoundError,
    StateKeeperError,
    from_status,
)
from statekeeper.state.changes import ChangeType, StateChange, StateEntry
from statekeeper.state.client import MAX_RECONNECT_DELAY as MAX_RECONNECT_DELAY
from statekeeper.state.client import MSGPACK, ServiceClient, paginate
from statekeeper.state.live import LiveStream, RevisionFeed
from statekeeper.timestamps import optional_datetime, to_duration
from statekeeper.transport import Coalescer, ConnectionOptions, Queued, Transport, unary
from statekeeper.v1 import common_pb2, state_service_pb2_grpc
from statekeeper.v1 import state_service_pb2 as pb

log = logging.getLogger("statekeeper.state")

_SERVICE = "statekeeper.v1.StateService"

#: The field of a BatchOperation (and BatchResult) for each RPC a batch can carry.
BATCH_FIELDS = {"Save": "save", "Get": "get", "Delete": "delete", "Transact": "transact"}

Callback = Callable[[str, Any, Any], Any]
ErrorCallback = Callable[[StateKeeperError], Any]


@dataclass(frozen=True)
class StateStats:
    """Storage statistics of the store behind a StateManager (the reference's "Monitor State
    Size"): live keys, value bytes, the current revision, the oldest revision a watch can
    start from, and the backend's name. ``keys`` counts every stored record (the managers'
    records and every namespace included); ``user_keys`` only this namespace's keys, the ones
    ``list_keys("*")`` lists."""

    keys: int
    bytes: int
    revision: int
    oldest_revision: int
    backend: str
    user_keys: int = 0


@dataclass
class StateConfig:
    """Where the StateManager keeps state and how it behaves.

    ``backend`` is ``"memory"``, ``"file"`` or ``"redis"`` (embedded: the engine runs in this
    process) or ``"grpc"`` (remote: calls go to the server at ``address``). Every write is
    persisted when it is acknowledged, so ``auto_save`` and ``save_interval`` are accepted for
    compatibility and change nothing: there is never unsaved state to flush. ``file_path`` is
    the file backend's directory (a ``.json`` / ``.msgpack`` suffix is dropped and chooses the
    format). ``key_prefix`` is put before every key this manager uses (and removed from keys it
    returns), so several applications can share one store. ``ttl`` is the default time-to-live
    in seconds of saved keys (None: keys never expire).

    Remote (``backend="grpc"``) security: ``tls`` / ``tls_ca_file`` (trusted CA of the server
    certificate), ``tls_cert_file`` + ``tls_key_file`` (client certificate for mutual TLS),
    ``tls_server_name`` (name to check in the server certificate), ``token`` (bearer token) and
    ``namespace`` (which of the token's namespaces to use). ``batching`` (remote, on by
    default) sends the saves, gets, deletes and transactions issued while another is in flight
    together, in one ``Batch`` call (docs/batching.md); False sends each alone.
    """

    backend: str = "memory"
    auto_save: bool = True
    save_interval: float = 30.0
    file_path: str | None = None
    redis_url: str | None = None
    key_prefix: str = ""
    ttl: float | None = None
    address: str | None = None
    timeout: float | None = None
    compression: bool = False
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_server_name: str | None = None
    token: str | None = field(default=None, repr=False)
    namespace: str | None = None
    batching: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def connection(self) -> ConnectionOptions:
        """The transport options this configuration stands for."""
        path, file_format = split_file_path(self.file_path)
        return ConnectionOptions(
            persistence=self.backend,
            address=self.address,
            file_path=path,
            file_format=file_format,
            compression=self.compression,
            redis_url=self.redis_url,
            timeout=self.timeout,
            tls=self.tls,
            tls_ca_file=self.tls_ca_file,
            tls_cert_file=self.tls_cert_file,
            tls_key_file=self.tls_key_file,
            tls_server_name=self.tls_server_name,
            token=self.token,
            namespace=self.namespace,
            batching=self.batching,
            **self.options,
        )


def split_file_path(file_path: str | None) -> tuple[str | None, str | None]:
    """The store directory and format for a reference-style ``file_path``."""
    if file_path is None:
        return None, None
    for suffix, file_format in ((".json", "json"), (".msgpack", "msgpack")):
        if file_path.endswith(suffix):
            return file_path[: -len(suffix)], file_format
    return file_path, None


def escape_glob(text: str) -> str:
    """``text`` as a glob pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _entry(kv: common_pb2.KeyValue, prefix: str) -> StateEntry:
    return StateEntry(
        key=kv.key[len(prefix) :],
        value=values.wire_to_python(kv.value),
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        expires_at=optional_datetime(kv, "expire_time"),
    )


_CHANGE_TYPES = {
    pb.EVENT_TYPE_PUT: ChangeType.PUT,
    pb.EVENT_TYPE_DELETE: ChangeType.DELETE,
    pb.EVENT_TYPE_EXPIRE: ChangeType.EXPIRE,
}


class StateManager(ServiceClient):
    """Save, read, merge, delete, list and watch JSON-like state under string keys.

    Making one opens nothing: it binds to the running event loop on its first call (see
    :class:`~statekeeper.transport.Transport`). A ``transport`` given here is shared and left
    open by :meth:`close`; otherwise the manager opens its own from ``config``.
    """

    _STUB = state_service_pb2_grpc.StateServiceStub
    _SERVICE = _SERVICE

    def __init__(
        self, config: StateConfig | None = None, *, transport: Transport | None = None
    ) -> None:
        self.config = config or StateConfig()
        self._attach(transport, self.config.timeout, lambda: Transport(self.config.connection()))
        self._prefix = self.config.key_prefix
        self._subscriptions: dict[tuple[str, Callback], _Subscription] = {}
        self._starting: set[asyncio.Future[None]] = set()
        self._failure: StateKeeperError | None = None

    async def _call(self, method: str, request: Any) -> Any:
        self._before_call()
        if self._starting:
            await self._wait_for_subscriptions()
        if method in BATCH_FIELDS:
            coalescer = self._transport.coalescer(_SERVICE, self._coalescer)
            if coalescer is not None:
                return await coalescer.call(method, request, self.timeout)
        return await super()._call(method, request)

    def _coalescer(self) -> Coalescer:
        """The coalescer of this manager's channel: single calls and Batch calls of its stub."""
        stub = self._stub

        async def send_one(method: str, request: Any, timeout: float | None) -> Any:
            return await unary(getattr(stub, method), request, timeout)

        async def send_batch(calls: list[Queued], timeout: float | None) -> list[Any]:
            request = pb.BatchRequest()
            operations = request.operations
            for call in calls:  # each request is copied once, into its operation
                getattr(operations.add(), BATCH_FIELDS[call.method]).CopyFrom(call.request)
            response = await unary(stub.Batch, request, timeout)
            return [
                _batch_outcome(result, BATCH_FIELDS[call.method])
                for call, result in zip(calls, response.results, strict=True)
            ]

        return Coalescer(send_one, send_batch)

    def _before_call(self) -> None:
        """Raise the failure of a subscription without an error callback (once), and start
        the subscriptions made outside this event loop."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure
        for subscription in self._subscriptions.values():
            subscription.start(self)

    async def _wait_for_subscriptions(self) -> None:
        starting = list(self._starting)
        self._starting.clear()
        await asyncio.gather(*starting, return_exceptions=True)

    # -- documents ----------------------------------------------------------------------------

    async def save(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        expected_revision: int | None = None,
    ) -> int:
        """Create or replace the document under ``key``; returns its new mod_revision.

        ``ttl`` (seconds) overrides the configured default; ``expected_revision`` makes the
        write conditional (0: the key must not exist) and raises ConflictError on mismatch.
        """
        request = pb.SaveRequest(
            key=self._prefix + key,
            value=values.document_to_wire(value),
            expected_revision=expected_revision,
            ttl=to_duration(ttl if ttl is not None else self.config.ttl),
        )
        response = await self._call("Save", request)
        return int(response.kv.mod_revision)

    async def get(self, key: str, default: Any = None) -> Any:
        """The document under ``key``, or ``default`` (None) when it is missing or expired."""
        found = await self._get(key)
        return default if found is None else values.wire_to_python(found.value)

    async def get_entry(self, key: str) -> StateEntry | None:
        """The document with its revisions (for compare-and-set), or None when missing."""
        found = await self._get(key)
        return None if found is None else _entry(found, self._prefix)

    async def _get(self, key: str) -> common_pb2.KeyValue | None:
        """The stored KeyValue of ``key`` (its value in the exact form), or None when
        missing: ``get`` decodes only the value, ``get_entry`` the whole entry."""
        try:
            response = await self._call(
                "Get", pb.GetRequest(key=self._prefix + key, value_encoding=MSGPACK)
            )
        except NotFoundError:
            return None
        return response.kv

    async def update(
        self,
        key: str,
        partial: Mapping[str, Any],
        *,
        expected_revision: int | None = None,
        ttl: float | None = None,
    ) -> Any:
        """Merge ``partial`` into the stored document (RFC 7396: ``None`` removes a member,
        nested dicts merge, anything else replaces) and return the merged document.
        Raises NotFoundError when the key does not exist."""
        request = pb.UpdateRequest(
            key=self._prefix + key,
            patch=values.document_to_wire(partial),
            expected_revision=expected_revision,
            ttl=to_duration(ttl),
            value_encoding=MSGPACK,
        )
        response = await self._call("Update", request)
        return values.wire_to_python(response.kv.value)

    async def delete(self, key: str, *, expected_revision: int | None = None) -> bool:
        """Delete ``key``; True when it existed."""
        request = pb.DeleteRequest(key=self._prefix + key, expected_revision=expected_revision)
        response = await self._call("Delete", request)
        return bool(response.deleted)

    async def transaction(
        self,
        *,
        compare: Mapping[str, int] | None = None,
        put: Mapping[str, Any] | None = None,
        delete: Iterable[str] = (),
        ttl: float | None = None,
    ) -> int:
        """Write ``put`` and remove ``delete`` atomically, only if every key in ``compare``
        still has the given mod_revision (0: must not exist); returns the commit revision.
        Raises ConflictError (nothing written) when a comparison fails."""
        prefix = self._prefix
        operations = [
            pb.Operation(
                put=pb.PutOperation(
                    key=prefix + key, value=values.document_to_wire(doc), ttl=to_duration(ttl)
                )
            )
            for key, doc in (put or {}).items()
        ]
        operations += [pb.Operation(delete=pb.DeleteOperation(key=prefix + k)) for k in delete]
        request = pb.TransactRequest(
            comparisons=[
                pb.Comparison(key=prefix + key, expected_revision=revision)
                for key, revision in (compare or {}).items()
            ],
            operations=operations,
        )
        response = await self._call("Transact", request)
        return int(response.revision)

    async def iter_keys(self, pattern: str = "*", page_size: int = 0) -> AsyncIterator[str]:
        """Every key matching the glob ``pattern``, in key order, fetched page by page."""
        keys = paginate(
            self._call,
            "ListKeys",
            pb.ListKeysRequest,
            "keys",
            pattern=escape_glob(self._prefix) + pattern,
            page_size=page_size,
        )
        async for key in keys:
            yield key[len(self._prefix) :]

    async def list_keys(self, pattern: str = "*") -> list[str]:
        """All keys matching the glob ``pattern`` (``*``, ``?``, ``[...]``), in key order."""
        return [key async for key in self.iter_keys(pattern)]

    async def range(
        self,
        prefix: str = "",
        *,
        start: str = "",
        end: str = "",
        pattern: str = "",
        reverse: bool = False,
        keys_only: bool = False,
        limit: int | None = None,
        revision: int = 0,
        page_size: int = 0,
    ) -> AsyncIterator[StateEntry]:
        """Every entry whose key starts with ``prefix``, lies in [``start``, ``end``) and
        matches the glob ``pattern`` (each optional), in key order (descending with
        ``reverse``), fetched page by page (RPC ``Range``), at most ``limit`` of them.

        ``keys_only`` leaves ``value`` None. ``revision`` reads the store as it was then (every
        page at that revision; ``HistoryCompactedError`` once the history is gone); with 0 each
        page reads the store as it is.
        """
        own = self._prefix
        fields = {
            "prefix": own + prefix,
            "start_key": own + start if start else "",
            "end_key": own + end if end else "",
            "pattern": escape_glob(own) + pattern if pattern else "",
            "reverse": reverse,
            "keys_only": keys_only,
            "revision": revision,
            "value_encoding": MSGPACK,
            "page_size": min(page_size or 100, limit) if limit else page_size,
        }
        if limit is not None and limit <= 0:
            return
        count = 0
        async for kv in paginate(self._call, "Range", pb.RangeRequest, "kvs", **fields):
            yield _entry(kv, own)
            count += 1
            if count == limit:
                return

    async def delete_range(
        self,
        prefix: str = "",
        *,
        start: str = "",
        end: str = "",
        guard: tuple[str, int] | None = None,
    ) -> int:
        """Remove every key starting with ``prefix`` in [``start``, ``end``) (at least one
        given) on the server, in atomic batches (RPC ``DeleteRange``, docs/range.md); returns
        how many went. ``guard=(key, revision)`` requires that key's mod_revision in every
        batch (ConflictError otherwise)."""
        own = self._prefix
        request = pb.DeleteRangeRequest(
            prefix=own + prefix,
            start_key=own + start if start else "",
            end_key=own + end if end else "",
            guard=self._comparison(guard),
        )
        return int((await self._call("DeleteRange", request)).deleted)

    async def copy_range(
        self, source_prefix: str, target_prefix: str, *, guard: tuple[str, int] | None = None
    ) -> int:
        """Copy every entry under ``source_prefix`` (one snapshot) to the same key under
        ``target_prefix``, in atomic batches (RPC ``CopyRange``); returns how many were copied."""
        request = pb.CopyRangeRequest(
            source_prefix=self._prefix + source_prefix,
            target_prefix=self._prefix + target_prefix,
            guard=self._comparison(guard),
        )
        return int((await self._call("CopyRange", request)).copied)

    def _comparison(self, guard: tuple[str, int] | None) -> pb.Comparison | None:
        if guard is None:
            return None
        return pb.Comparison(key=self._prefix + guard[0], expected_revision=guard[1])

    # -- statistics ---------------------------------------------------------------------------

    async def get_stats(self) -> StateStats:
        """Size and history figures of the whole store (every namespace, not only this
        manager's ``key_prefix``)."""
        response = await self._call("GetStats", pb.GetStatsRequest())
        return StateStats(
            keys=int(response.keys),
            bytes=int(response.bytes),
            revision=int(response.revision),
            oldest_revision=int(response.oldest_revision),
            backend=str(response.backend),
            user_keys=int(response.user_keys),
        )

    # -- watching -----------------------------------------------------------------------------

    def watch(
        self,
        pattern: str = "*",
        start_revision: int = 0,
        *,
        _started: asyncio.Future[None] | None = None,
    ) -> AsyncIterator[StateChange]:
        """Every change of the keys matching ``pattern``, in revision order, from
        ``start_revision`` (0: changes after now).

        When the stream breaks (server restart, network, an unavailable backend, the server
        dropping a slow consumer) it reconnects with backoff and resumes after the last
        delivered revision, so no change is lost or repeated (see :mod:`statekeeper.state.live`
        for the rule and its log lines). If the server no longer has that history it raises
        HistoryCompactedError (read the keys again, then watch from ``error.compact_revision``).
        """
        return self._watch(self._feed(pattern, start_revision), pattern, _started)

    async def _watch(
        self, feed: RevisionFeed[StateChange], pattern: str, started: asyncio.Future[None] | None
    ) -> AsyncIterator[StateChange]:
        if started is None:  # a watch of the caller (a subscription's own starts itself)
            self._before_call()
            if self._starting:
                await self._wait_for_subscriptions()
        changes = LiveStream(self, "Watch", feed, f"watch of {pattern!r}")
        if started is not None:
            changes.on_started(lambda: None if started.done() else started.set_result(None))
        try:
            async for change in changes:
                yield change
        finally:
            await changes.aclose()

    def _feed(self, pattern: str, start_revision: int) -> RevisionFeed[StateChange]:
        full_pattern = escape_glob(self._prefix) + pattern

        def request(revision: int) -> pb.WatchRequest:
            return pb.WatchRequest(
                pattern=full_pattern,
                start_revision=revision,
                prev_kv=True,
                value_encoding=MSGPACK,
            )

        return RevisionFeed(request, self._changes, start_revision, _last_revision)

    def _changes(self, message: pb.WatchResponse) -> list[StateChange]:
        return [self._change(event) for event in message.events]

    def _change(self, event: pb.Event) -> StateChange:
        prefix_length = len(self._prefix)
        return StateChange(
            type=_CHANGE_TYPES[event.type],
            key=event.kv.key[prefix_length:],
            revision=event.kv.mod_revision,
            old_value=values.wire_to_python(event.prev_kv.value)
            if event.HasField("prev_kv")
            else None,
            new_value=values.wire_to_python(event.kv.value)
            if event.type == pb.EVENT_TYPE_PUT
            else None,
        )

    def subscribe(
        self, pattern: str, callback: Callback, on_error: ErrorCallback | None = None
    ) -> None:
        """Call ``callback(key, old_value, new_value)`` for every change of the keys matching
        ``pattern``, in revision order (``new_value`` is None after a delete or expiry).

        The callback may be a coroutine function. The subscription covers every write this
        manager makes after ``subscribe`` returns; it survives reconnects without losing or
        repeating a change (see :meth:`watch`), and follows the manager into a later event
        loop, resuming where it stopped. Called outside a running loop, it starts with the
        manager's next call. A callback that raises is logged and the subscription goes on.

        A subscription never ends silently: when it ends with an error (its history was
        compacted away, the pattern is refused, access is denied) the error is logged, then
        passed to ``on_error(error)`` (which may be a coroutine function); without
        ``on_error``, the manager's next call raises it.
        """
        if (pattern, callback) in self._subscriptions:
            return
        subscription = _Subscription(pattern, callback, on_error, self._feed(pattern, 0))
        self._subscriptions[(pattern, callback)] = subscription
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        subscription.start(self)

    def unsubscribe(self, pattern: str, callback: Callback) -> None:
        """Stop calling ``callback`` for ``pattern``."""
        subscription = self._subscriptions.pop((pattern, callback), None)
        if subscription is not None:
            subscription.stop()

    def _failed(self, subscription: _Subscription, error: StateKeeperError) -> None:
        """A subscription ended with ``error``: report it (see :meth:`subscribe`)."""
        self._subscriptions.pop((subscription.pattern, subscription.callback), None)
        if subscription.on_error is None:
            self._failure = error

    async def close(self) -> None:
        """End every subscription and close the connection this manager opened."""
        subscriptions = list(self._subscriptions.values())
        self._subscriptions.clear()
        tasks = [task for s in subscriptions if (task := s.stop()) is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await super().close()


def _batch_outcome(result: pb.BatchResult, name: str) -> Any:
    """The response of one batch operation, or the typed error its status stands for."""
    status = result.status
    if status.code:
        code = STATUS_CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        return from_status(code, status.message, status.details)
    return getattr(result, name)


def _last_revision(message: pb.WatchResponse) -> int:
    """The last revision a complete watch message delivers (its events', or the revision a
    progress notification reports)."""
    if message.events:
        return int(message.events[-1].kv.mod_revision)
    return int(message.revision)


class _Subscription:
    """One ``subscribe``: its callbacks, its resume position (the feed) and the task that
    delivers its changes in the event loop the manager is used from."""

    def __init__(
        self,
        pattern: str,
        callback: Callback,
        on_error: ErrorCallback | None,
        feed: RevisionFeed[StateChange],
    ) -> None:
        self.pattern = pattern
        self.callback = callback
        self.on_error = on_error
        self.feed = feed
        self.task: asyncio.Task[None] | None = None

    def start(self, manager: StateManager) -> None:
        """Start delivering in the running loop, unless already delivering there."""
        loop = asyncio.get_running_loop()
        if self.task is not None and self.task.get_loop() is loop and not self.task.done():
            return
        started: asyncio.Future[None] = loop.create_future()
        manager._starting.add(started)
        self.task = loop.create_task(
            self._deliver(manager, started), name=f"statekeeper-subscribe-{self.pattern}"
        )
        self.task.add_done_callback(lambda _: None if started.done() else started.set_result(None))

    def stop(self) -> asyncio.Task[None] | None:
        """Cancel the delivery task; returns it when it runs in the current loop."""
        task, self.task = self.task, None
        if task is None or task.done():
            return None
        try:
            same_loop = task.get_loop() is asyncio.get_running_loop()
        except RuntimeError:
            same_loop = False
        if not same_loop:
            return None
        task.cancel()
        return task

    async def _deliver(self, manager: StateManager, started: asyncio.Future[None]) -> None:
        try:
            async for change in manager._watch(self.feed, self.pattern, started):
                await self._call_back(change)
        except asyncio.CancelledError:
            raise
        except StateKeeperError as error:
            await self._report(manager, error)
        except Exception as error:
            await self._report(manager, InternalError(f"{type(error).__name__}: {error}"))

    async def _report(self, manager: StateManager, error: StateKeeperError) -> None:
        failure = type(error)(
            f"the subscription to {self.pattern!r} ended: {error.message}",
            reason=error.reason,
            metadata=error.metadata,
            violations=error.violations,
        )
        log.error("%s", failure.message)
        manager._failed(self, failure)
        if self.on_error is not None:
            try:
                result = self.on_error(failure)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("the error callback of the subscription to %r failed", self.pattern)

    async def _call_back(self, change: StateChange) -> None:
        try:
            result = self.callback(change.key, change.old_value, change.new_value)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("subscriber callback for %r failed", self.pattern)


__all__ = ["StateConfig", "StateManager", "StateStats", "split_file_path"]
