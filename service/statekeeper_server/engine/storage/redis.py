"""The Redis backend: the Backend contract on a shared Redis, for many server instances at once.

Layout (``P`` is ``key_prefix``, ``statekeeper:`` by default; use a standalone Redis):

* ``P rev`` - the store revision (a string holding an integer).
* ``P k:<key>`` - one hash per live entry: ``v`` value bytes, ``c`` create revision, ``m`` mod
  revision, ``n`` version and, for an entry with a TTL, ``x`` its expiry time (Unix seconds).
* ``P idx`` - a sorted set of every key at score 0, so that ``ZRANGEBYLEX`` lists keys in byte
  order (UTF-8 byte order is code point order) from a prefix, one page at a time.
* ``P exp`` - a sorted set of the keys that have a TTL, scored by expiry time.
* ``P bytes`` - the total size of the stored values.
* ``P log`` - the change log: a Redis Stream with one entry per revision, whose id is
  ``<revision>-0`` and whose field ``e`` holds that revision's events (MessagePack), trimmed to
  the last ``history_revisions`` revisions and to ``history_bytes`` of packed events.
* ``P logbytes`` - the size of the change log's packed events.
* ``P hist`` - the history index: a sorted set at score 0 with one member per event of the
  change log, ``<key>\\0<revision as 8 bytes big-endian>``, added and trimmed with the log, so
  that a key's first change after a revision is one ``ZRANGEBYLEX`` seek.
* ``P histfrom`` - every change-log entry from this revision on is in ``P hist`` (0: all; a
  store written before the index has none until a read at an earlier revision indexes it).

Every transaction is one Lua script (``EVALSHA``: one round trip): it checks the comparisons,
writes the entries and indexes, advances the revision and appends the change-log entry, all
atomically with respect to every other client of the Redis server; the calls that arrive while
one script call is in flight share the next one (:mod:`.redis_batch`). Watches are served from the
stream by one reader task per process that fans out to local watchers, so a watcher on one
instance sees every write made through any other. A reaper task on every instance expires due
keys through another script (safe when several run at once) that logs ``EXPIRE`` events at a
revision of their own. When Redis cannot be reached, calls fail fast with
:class:`~statekeeper.errors.UnavailableError` (reason ``BACKEND_UNAVAILABLE``); connections are
re-established on the next call, and open watches keep retrying from the last revision they
delivered, so they lose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import hiredis
import msgpack
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from statekeeper.errors import (
    ConflictError,
    HistoryCompactedError,
    Reason,
    StateKeeperError,
    UnavailableError,
)

from statekeeper_server.engine.storage.backend import (
    DEFAULT_HISTORY_BYTES,
    DEFAULT_HISTORY_REVISIONS,
    SCAN_BUDGET,
    Backend,
    BackendStats,
    BatchItem,
    BatchOutcome,
    Compare,
    Delete,
    Entry,
    Event,
    HistoryPage,
    KeyRange,
    Operation,
    Put,
    Read,
    ScanPage,
    Transaction,
    TxnResult,
    WatchUpdate,
    compacted_error,
    conflict,
    future_revision,
    range_span,
)
from statekeeper_server.engine.storage.glob import GlobPattern
from statekeeper_server.engine.storage.redis_batch import GATHER_BYTES, Gatherer, item_args
from statekeeper_server.engine.storage.redis_codec import (
    ENTRY_FIELDS,
    decode_events,
    entry_of,
    expire_value,
    flat_entry,
    stream_revision,
    text_of,
)
from statekeeper_server.engine.storage.redis_connection import (
    COMMAND_TIMEOUT,
    TAIL_BLOCK_MS,
    open_pools,
    redact,
    tail_read,
)
from statekeeper_server.engine.storage.redis_scripts import (
    BATCH_SCRIPT,
    HISTORY_SCRIPT,
    REAP_SCRIPT,
    SCAN_SCRIPT,
)
from statekeeper_server.engine.storage.watchers import WatcherIndex

log = logging.getLogger("statekeeper.redis")

T = TypeVar("T")

#: How often (seconds) a reaper with nothing due locally looks for keys other instances wrote.
REAPER_POLL = 1.0
#: Keys one reaper step expires at most (one revision each step), and none after the one that
#: brings their values to :data:`GATHER_BYTES` (measured: 128 keys of 100 KB took 95 ms).
REAP_BATCH = 128
#: Keys one call of the scan script examines at most: small enough that a call holds Redis for
#: a few milliseconds only, whatever the pattern (a page takes more calls).
SCRIPT_BUDGET = 1024
#: The same for a glob the script matches in Lua code (a set with a non-ASCII character), about
#: ten times slower per key than the Lua patterns of the other globs.
SLOW_MATCH_BUDGET = 128
#: Entries one call of the scan script reads at most (each a hash read or, at an earlier
#: revision, a seek of the history index and perhaps a change-log entry).
SCRIPT_READS = 256
#: Bytes of packed change-log entries one script call unpacks at most (past the last entry it
#: needed): about 1 ms of Lua a 256 KiB (measured: a page at an earlier revision through log
#: entries of 127 puts of 1 KB took 6.8 ms a script call with 1 MiB).
UNPACK_BYTES = 256 * 1024
#: Change-log entries, and bytes of their packed events, one call of the history script indexes
#: at most (for a store written before the history index).
HISTORY_BATCH = (64, UNPACK_BYTES)
#: Stream entries one read of the change log fetches at most.
READ_BATCH = 512
#: Bytes one reply carries about: a scan script call stops after the entry that brings its keys
#: and values there, and a read of the change log fetches about that many of packed events
#: (measured: one scan call returning 100 values of 500 KB took 94 ms, an XREAD of 260
#: entries, 67 MB, 58 ms).
REPLY_BYTES = 1 << 20
#: The longest pause (seconds) between two attempts to reach Redis again in background tasks.
MAX_BACKOFF = 1.0

#: The batch script's SHA1, as EVALSHA names it.
BATCH_SHA = hashlib.sha1(BATCH_SCRIPT.encode()).hexdigest()

_ERRORS = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError, TimeoutError)


def _lua_patterns(pattern: GlobPattern | None) -> bytes:
    """The scan script's argument for ``pattern``'s Lua patterns ('' when it has none)."""
    patterns = pattern.lua_patterns() if pattern is not None else None
    # As msgpack strings (not bin), which is what the scripts' cmsgpack reads as Lua strings.
    return b"" if patterns is None else msgpack.packb(patterns, use_bin_type=False)


def _log_count(entries: int, size: int) -> int:
    """How many change-log entries the next read fetches: about :data:`REPLY_BYTES` at the
    average size of the ``entries`` read before (``size`` bytes of packed events), at most
    :data:`READ_BATCH`."""
    return max(1, min(READ_BATCH, entries * REPLY_BYTES // max(size, 1)))


def _bounds(span: KeyRange, after: str | None, reverse: bool) -> list[bytes | int]:
    """The scan script's arguments low, low inclusive, high, high set: ``span`` strictly after
    the cursor ``after`` (None: from its start) in the scan's direction."""
    low, low_incl, high = span.low, True, span.high
    if after is not None and not reverse and after >= low:
        low, low_incl = after, False
    if after is not None and reverse and (high is None or after < high):
        high = after
    encoded = (high or "").encode("utf-8", "surrogatepass")
    return [low.encode("utf-8", "surrogatepass"), int(low_incl), encoded, int(high is not None)]


class RedisBackend(Backend):
    """Distributed storage on Redis: many server instances share one store and its watches.

    ``url`` names the Redis server (a database number in its path wins over ``db``),
    ``key_prefix`` is put before every Redis key this store uses (stores with different
    prefixes or databases are independent; a prefix must not be a prefix of another store's),
    ``connection_pool_size`` bounds the connections of this process (calls wait for a free
    one), and ``history_revisions`` and ``history_bytes`` (0: none) bound the change log kept
    for watchers.
    """

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379",
        db: int = 0,
        key_prefix: str = "statekeeper:",
        connection_pool_size: int = 10,
        history_revisions: int = DEFAULT_HISTORY_REVISIONS,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        if history_revisions < 1:
            raise ValueError("history_revisions must be at least 1")
        if history_bytes < 0:
            raise ValueError("history_bytes must not be negative")
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self.url = url
        self.db = db
        self.key_prefix = key_prefix
        self.connection_pool_size = connection_pool_size
        self.history_revisions = history_revisions
        self.history_bytes = history_bytes
        self._where = redact(url)
        self._open_pools()
        p = key_prefix
        self._rev_key = p + "rev"
        self._idx_key = p + "idx"
        self._exp_key = p + "exp"
        self._bytes_key = p + "bytes"
        self._log_key = p + "log"
        self._watchers = WatcherIndex()
        self._reader: asyncio.Task[None] | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._reaper_wakeup: asyncio.Event | None = None
        self._next_local_expiry: float | None = None
        self._closed = False

    def _open_pools(self) -> None:
        """The connection pools and scripts (connections open on first use)."""
        self._pool, self._tail_pool = open_pools(self.url, self.db, self.connection_pool_size)
        self._redis: Any = aioredis.Redis(connection_pool=self._pool)
        self._tail_redis: Any = aioredis.Redis(connection_pool=self._tail_pool)
        self._reap: Any = self._redis.register_script(REAP_SCRIPT)
        self._scan: Any = self._redis.register_script(SCAN_SCRIPT)
        self._index: Any = self._redis.register_script(HISTORY_SCRIPT)
        self._batches = Gatherer(self._send_batch)

    # -- plumbing ------------------------------------------------------------------------------

    def _unavailable(self, error: BaseException) -> UnavailableError:
        detail = str(error) or type(error).__name__
        return UnavailableError(
            f"the Redis backend at {self._where} is unavailable: {detail}; retry when Redis is"
            " reachable again",
            reason=Reason.BACKEND_UNAVAILABLE,
            metadata={"backend": "redis"},
        )

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis command, turning connection failures into UnavailableError."""
        if self._closed:
            raise UnavailableError("the Redis backend is closed", reason=Reason.BACKEND_UNAVAILABLE)
        self._start_reaper()
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                return await make()
        except _ERRORS as error:
            raise self._unavailable(error) from None

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper_wakeup = asyncio.Event()
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap_loop(), name="statekeeper-redis-reaper"
            )

    def _wake_reaper(self, expire_at: float) -> None:
        if self._next_local_expiry is None or expire_at < self._next_local_expiry:
            self._next_local_expiry = expire_at
            if self._reaper_wakeup is not None:
                self._reaper_wakeup.set()

    async def _reap_loop(self) -> None:
        backoff = 0.05
        while not self._closed:
            delay = REAPER_POLL
            try:
                now = time.time()
                revision, first = await self._reap(args=self._reap_args(now))
                backoff = 0.05
                if int(revision):
                    continue
                if first:
                    delay = min(delay, max(0.0, float(first) - time.time()))
                local = self._next_local_expiry
                if local is not None:
                    if local <= now:
                        self._next_local_expiry = None
                    else:
                        delay = min(delay, local - time.time())
            except _ERRORS as error:
                log.debug("reaper cannot reach Redis: %s", error)
                delay = backoff
                backoff = min(backoff * 2, MAX_BACKOFF)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Redis reaper step failed")
                delay = MAX_BACKOFF
            wakeup = self._reaper_wakeup
            assert wakeup is not None
            wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=max(delay, 0.0))

    def _reap_args(self, now: float) -> list[Any]:
        """The arguments of the reap script at ``now``."""
        return [
            self.key_prefix,
            repr(now),
            self.history_revisions,
            REAP_BATCH,
            self.history_bytes,
            GATHER_BYTES,
        ]

    # -- Backend -------------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        """The live entry under ``key`` (one HMGET), or None when missing or expired."""
        fields = await self._call(
            lambda: self._redis.hmget(self.key_prefix + "k:" + key, *ENTRY_FIELDS)
        )
        return entry_of(key, fields)

    async def read(self, key: str) -> tuple[Entry | None, int]:
        """The entry and the store revision, read at one instant (as a batch of one read)."""
        outcome = await self._alone(Read(key))
        assert isinstance(outcome, tuple)
        return outcome

    async def _alone(self, item: BatchItem) -> BatchOutcome:
        """The outcome of ``item`` run as a batch of one; its error raised."""
        (outcome,) = await self.batch([item])
        if isinstance(outcome, StateKeeperError):
            raise outcome
        return outcome

    def _txn_result(self, operations: Sequence[Operation], reply: list[Any]) -> TxnResult:
        """The result of a transaction script's reply (ConflictError for a failed compare)."""
        if int(reply[0]) == 0:
            raise conflict(text_of(reply[1]), int(reply[2]), int(reply[3]))
        revision = int(reply[1])
        results: list[Entry | None] = []
        for operation, result in zip(operations, reply[2], strict=True):
            if isinstance(operation, Put):
                key, value, expire_at = operation.key, operation.value, operation.expire_at
                results.append(
                    Entry(key, value, int(result[0]), revision, int(result[1]), expire_at)
                )
                if operation.expire_at is not None:
                    self._wake_reaper(operation.expire_at)
            elif isinstance(operation, Delete) and result:
                value, create, mod, version, expire = result
                old = (bytes(value), int(create), int(mod), int(version), expire_value(expire))
                results.append(Entry(operation.key, *old))
            else:
                results.append(None)
        return TxnResult(revision, tuple(results))

    async def txn(self, compares: Sequence[Compare], operations: Sequence[Operation]) -> TxnResult:
        """Compare and write in one Lua script, atomic across instances (as a batch of one)."""
        outcome = await self._alone(Transaction(tuple(compares), tuple(operations)))
        assert isinstance(outcome, TxnResult)
        return outcome

    async def batch(self, items: Sequence[BatchItem]) -> list[BatchOutcome]:
        """Every item (a read, or a transaction at a revision of its own, atomic alone) in
        calls of the batch script, in order, together with the batches of other callers that
        arrived while the previous call was in flight, each call bounded in operations and
        bytes (see :mod:`.redis_batch`)."""
        try:
            replies = await self._call(lambda: self._batches.run(items))
        except UnavailableError as error:
            return [error for _ in items]
        outcomes: list[BatchOutcome] = []
        for item, reply in zip(items, replies, strict=True):
            if isinstance(reply, BaseException):  # a later call of a split batch failed
                if not isinstance(reply, _ERRORS):
                    raise reply
                outcomes.append(self._unavailable(reply))
            elif isinstance(item, Read):
                outcomes.append((entry_of(item.key, reply[1:]), int(reply[0])))
            else:
                try:
                    outcomes.append(self._txn_result(item.operations, reply))
                except ConflictError as error:
                    outcomes.append(error)
        return outcomes

    async def _send_batch(self, items: list[BatchItem]) -> list[Any]:
        """The replies of one call of the batch script for ``items`` (loading the script
        first when Redis lost it)."""
        args: list[Any] = [self.key_prefix, repr(time.time())]
        args += (self.history_revisions, self.history_bytes)
        for item in items:
            args += item_args(item)
        command = hiredis.pack_command(("EVALSHA", BATCH_SHA, 0, *args))
        async with asyncio.timeout(COMMAND_TIMEOUT):
            try:
                return list(await self._command(self._pool, command))
            except NoScriptError:
                await self._redis.script_load(BATCH_SCRIPT)
                return list(await self._command(self._pool, command))

    async def _command(self, pool: Any, packed: bytes) -> Any:
        """The reply to one command packed by hiredis, on a connection of ``pool`` (redis-py's
        own packing costs more than the script call's work does on the server)."""
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(packed, check_health=False)
            return await connection.read_response()
        except ResponseError:
            raise
        except BaseException:
            # Failed or cancelled mid-call: its reply must never reach the next command.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)

    async def scan(
        self,
        span: KeyRange,
        *,
        after: str | None = None,
        reverse: bool = False,
        limit: int = 100,
        revision: int = 0,
        keys_only: bool = False,
        max_bytes: int | None = None,
    ) -> ScanPage:
        """One page, read at one instant in calls of the scan script that each examine at most
        :data:`SCRIPT_BUDGET` keys (:data:`SLOW_MATCH_BUDGET` for a glob with a non-ASCII set),
        read at most :data:`SCRIPT_READS` entries and return about :data:`REPLY_BYTES`, so no
        call holds Redis for more than a few milliseconds; the calls after the first read at
        its revision (an earlier one through the history index: one seek per key). The glob is
        matched in the script with :meth:`GlobPattern.tokens`. A page examines at most
        :data:`SCAN_BUDGET` keys (or ``limit``), so a sparse glob may return a short page, even
        an empty one, with a cursor; so may a page whose revision left the history while it
        was read."""
        tokens = b"" if span.pattern is None else msgpack.packb(span.pattern.tokens())
        patterns = _lua_patterns(span.pattern)
        per_call = SCRIPT_BUDGET if patterns or not tokens else SLOW_MATCH_BUDGET
        entries: list[Entry] = []
        budget, size, now, live = max(SCAN_BUDGET, limit), 0, repr(time.time()), ""
        fixed = [len(span.prefix.encode()), tokens, int(keys_only)]
        while True:
            bounds = _bounds(span, after, reverse)
            rest = [limit - len(entries), min(per_call, budget), SCRIPT_READS, revision, *fixed]
            room = min(REPLY_BYTES, max_bytes - size) if max_bytes else REPLY_BYTES
            extra = [room, patterns, live, UNPACK_BYTES]
            args = [self.key_prefix, now, *bounds, int(reverse), *rest, *extra]
            reply = await self._call(functools.partial(self._scan, args=args))
            status = int(reply[0])
            if status == -3:
                await self._index_history(revision)
                continue
            if status == -1 and live == "1":  # the page's revision left the history meanwhile
                return ScanPage(entries, revision, True, after or "")
            if status == -1:
                raise compacted_error(int(reply[1]), revision)
            if status == -2:
                raise future_revision(revision, int(reply[1]))
            entries += [flat_entry(reply, index) for index in range(6, len(reply), 6)]
            revision, cursor, live = status, text_of(reply[2]), str(int(reply[4]))
            budget, size = budget - int(reply[3]), size + int(reply[5])
            if not int(reply[1]):
                return ScanPage(entries, revision, False, "")
            if len(entries) >= limit or budget <= 0 or (max_bytes and size >= max_bytes):
                return ScanPage(entries, revision, True, cursor)
            after = cursor

    async def _index_history(self, revision: int) -> None:
        """Index the change log's entries after ``revision`` that the history index lacks (a
        store written before it), at most :data:`HISTORY_BATCH` to a script call."""
        while True:
            indexed = await self._call(lambda: self._index(args=[self.key_prefix, *HISTORY_BATCH]))
            if int(indexed) <= revision + 1:
                return

    async def revision(self) -> int:
        """The current store revision."""
        raw = await self._call(lambda: self._redis.get(self._rev_key))
        return int(raw or 0)

    async def stats(self) -> BackendStats:
        """Key count, value bytes, current and oldest watchable revision (expires what is due
        first, in as many reaper steps as that takes, so expired keys are not counted)."""
        while int((await self._call(lambda: self._reap(args=self._reap_args(time.time()))))[0]):
            pass

        async def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zcard(self._idx_key)
            pipe.get(self._bytes_key)
            pipe.get(self._rev_key)
            pipe.xrange(self._log_key, count=1)
            return list(await pipe.execute())

        keys, size, rev, first = await self._call(read)
        revision = int(rev or 0)
        return BackendStats(
            keys=int(keys),
            bytes=int(size or 0),
            revision=revision,
            oldest_revision=stream_revision(first[0][0]) if first else revision + 1,
            backend=self.name,
        )

    # -- watch ---------------------------------------------------------------------------------

    async def _position(self) -> tuple[int, int]:
        """The current revision and the oldest watchable one, read atomically."""

        async def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.get(self._rev_key)
            pipe.xrange(self._log_key, count=1)
            return list(await pipe.execute())

        rev, first = await self._call(read)
        revision = int(rev or 0)
        return revision, stream_revision(first[0][0]) if first else revision + 1

    @property
    def watchers(self) -> WatcherIndex:
        """This process's index of its open watches (see :mod:`.watchers`)."""
        return self._watchers

    def _start_reader(self, current: int) -> None:
        """Make sure the change-log reader runs; a new one starts at ``current`` when no watch
        waits for changes before it."""
        if self._reader is not None and not self._reader.done():
            return
        if not self._watchers:
            self._watchers.reposition(current)
        self._reader = asyncio.get_running_loop().create_task(
            self._read_log(), name="statekeeper-redis-log-reader"
        )

    async def _read_log(self) -> None:
        """Follow the change log and publish every entry to this process's watch index."""
        index = self._watchers
        backoff, count = 0.05, 1
        try:
            while not self._closed and index:
                try:
                    if not index.healthy:
                        async with asyncio.timeout(COMMAND_TIMEOUT):
                            current = int(await self._tail_redis.get(self._rev_key) or 0)
                        if current < index.revision:
                            index.fail(
                                HistoryCompactedError(
                                    f"the Redis store went back from revision {index.revision}"
                                    f" to {current} (it lost its data): read the current state"
                                    " again and watch from there",
                                    metadata={"compact_revision": str(current + 1)},
                                )
                            )
                            return
                        index.healthy = True
                        log.info("change log reader reconnected to Redis at %s", self._where)
                    read = tail_read(self._log_key, index.revision, count)
                    async with asyncio.timeout(COMMAND_TIMEOUT + TAIL_BLOCK_MS / 1000):
                        reply = await self._command(self._tail_pool, read)
                    backoff = 0.05
                except _ERRORS as error:
                    if index.healthy:
                        log.warning("change log reader lost Redis at %s: %s", self._where, error)
                    index.healthy = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                for _, entries in reply or ():
                    size = 0
                    for entry_id, fields in entries:
                        revision = stream_revision(entry_id)
                        packed = fields[fields.index(b"e") + 1]  # [field, value, ...]
                        size += len(packed)
                        events = decode_events(revision, packed, index.concerns)
                        index.publish(revision, events)
                    count = _log_count(len(entries), size)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            index.fail(error)
            raise

    async def history(self, span: KeyRange, first: int, last: int, limit: int) -> HistoryPage:
        """A page of the change log (see Backend.history); only the entries of ``span``'s keys
        are decoded into entries. The log is read a few entries at a time (1, then 4, 16, ...
        up to ``limit``, and about :data:`REPLY_BYTES` a read), so a page of large revisions
        fetches about what it returns."""
        if first > last:
            return HistoryPage((), last)
        events: list[Event] = []
        examined, size, start, count = 0, 0, first, 1
        while True:
            want = min(count, limit - examined)

            async def read(start: int = start, want: int = want) -> list[Any]:
                return list(
                    await self._redis.xrange(
                        self._log_key, min=f"{start}-0", max=f"{last}-0", count=want
                    )
                )

            reply = await self._call(read)
            if start == first and (not reply or stream_revision(reply[0][0]) != first):
                _, oldest = await self._position()
                raise compacted_error(max(oldest, first + 1), first)
            for entry_id, fields in reply:
                revision = stream_revision(entry_id)
                events.extend(decode_events(revision, fields[b"e"], span.matches))
                examined, size = examined + 1, size + len(fields[b"e"])
                if len(events) >= limit or examined == limit:
                    return HistoryPage(tuple(events), revision)
            if len(reply) < want:
                return HistoryPage(tuple(events), last)
            start, count = revision + 1, min(count * 4, _log_count(examined, size))

    async def watch(
        self,
        prefix: str,
        pattern: GlobPattern | None = None,
        *,
        start_revision: int = 0,
        progress_interval: float | None = None,
    ) -> AsyncIterator[WatchUpdate]:
        """Serve the watch through this process's watch index, fed by one change-log reader,
        replaying older revisions from the stream."""
        current, oldest = await self._position()
        if 0 < start_revision < oldest:
            raise compacted_error(oldest, start_revision)
        self._start_reader(current)
        updates = self._watchers.watch(
            self.history, range_span(prefix, pattern), current, start_revision, progress_interval
        )
        try:
            async for update in updates:
                yield update
        finally:
            await updates.aclose()

    # -- lifecycle -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the background tasks and close every connection."""
        self._closed = True
        self._watchers.close()
        await self._batches.close()
        tasks = [self._reaper, self._reader]
        for task in tasks:
            if task is not None and not task.done():
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._reaper = None
        self._reader = None
        with contextlib.suppress(Exception):
            await self._redis.aclose()
        with contextlib.suppress(Exception):
            await self._tail_redis.aclose()
        with contextlib.suppress(Exception):
            await self._pool.disconnect()
        with contextlib.suppress(Exception):
            await self._tail_pool.disconnect()

    def rebind(self) -> None:
        """Forget the old loop's tasks and connections; new ones open on the next call."""
        self.discard()
        self._open_pools()
        self._closed = False

    def discard(self) -> None:
        """Forget tasks and connections of an event loop that is gone."""
        self._closed = True
        self._batches.discard()
        for task in (self._reaper, self._reader):
            if task is not None:
                with contextlib.suppress(Exception):
                    task.cancel()
        self._reaper = None
        self._reader = None
        self._watchers.clear()
