"""Google ADK sessions kept in statekeeper: ``StatekeeperSessionService`` is a
``BaseSessionService`` (create, get, list, delete, append_event, get_user_state).

Swap it in where ``InMemorySessionService`` or ``DatabaseSessionService`` was::

    service = StatekeeperSessionService(StateManager(StateConfig(backend="grpc",
                                        address="localhost:50051")))
    runner = Runner(agent=agent, app_name="my_app", session_service=service)

Layout (every key under ``key_prefix``, each id percent-encoded into one key segment):

- ``app/<app>`` and ``user/<app>/<user>``: the app- and user-scoped state (without their
  ``app:`` / ``user:`` prefixes); ``temp:`` keys are never stored.
- ``session/<app>/<user>/<session>``: the session's head: its own state, create and update
  times, the number of events and a generation (a fresh token per creation of that id).
- ``event/<app>/<user>/<session>/<generation>/n/<seq>``: the events, one key each, in append
  order; ``.../i/<event id>`` maps an event id to its number (appends are idempotent on it).
- ``recent/<app>/<user>/<update time>/<session>`` and ``recent-app/<app>/<update time>/<user>/
  <session>``: the listing indexes, in last-update order. Each entry holds what a listed
  session shows (its ids, own state and update time) and is written in the head's
  transaction, so it carries the head's revision: ``list_sessions`` is one Range call per
  page and reads no head.

``append_event`` is one transaction guarded by the head's revision (the session's
``_storage_update_marker``, which ADK keeps for exactly this): a writer holding an older copy of
the session gets ADK's ``StaleSessionError`` and nothing is written. App and user state are
written in the same transaction, guarded by their own revisions, so concurrent sessions of one
app never lose each other's updates (they retry; only the session's own revision is a conflict
the caller must resolve). A state delta replaces the value of each key it names (``None`` is
stored as a value, not a deletion), as ADK's own services do.

``delete_session`` removes the head and its index entries in one transaction (the session is
gone at once) and then deletes the events in batches; a delete that is interrupted leaves only
events of a dead generation, which nothing reads and the next ``delete_session`` of that id
removes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import (
    BaseSessionService,
    GetSessionConfig,
    ListSessionsResponse,
)
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from pydantic_core import to_jsonable_python

from statekeeper.errors import ConflictError
from statekeeper.integrations.storage import (
    RANGE_PAGE,
    delete_matching,
    segment,
)
from statekeeper.state import StateEntry, StateManager

log = logging.getLogger("statekeeper.integrations.adk")

#: The key prefix of the session service when none is given.
DEFAULT_KEY_PREFIX = "adk/"
_STALE = (
    "The session has been modified in storage since it was loaded (another writer appended "
    "to it). Reload it with get_session() and apply the change again."
)


def _json_safe(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` as JSON-like values; a value that has no JSON form is stored as its repr
    (with a warning), as ADK's database service does."""

    def fallback(value: Any) -> str:
        log.warning("state value of type %s has no JSON form; storing its repr", type(value))
        return repr(value)

    return dict(to_jsonable_python(dict(state), fallback=fallback))


def _split_scopes(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict]:
    """``(app, user, session)`` deltas of a state dict: prefixes removed, ``temp:`` dropped."""
    app: dict[str, Any] = {}
    user: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(State.APP_PREFIX):
            app[key.removeprefix(State.APP_PREFIX)] = value
        elif key.startswith(State.USER_PREFIX):
            user[key.removeprefix(State.USER_PREFIX)] = value
        elif not key.startswith(State.TEMP_PREFIX):
            own[key] = value
    return app, user, own


def _merged(app: Mapping[str, Any], user: Mapping[str, Any], own: Mapping[str, Any]) -> dict:
    """The state an ADK session shows: its own keys plus the prefixed app and user keys."""
    state = dict(own)
    state.update({State.APP_PREFIX + key: value for key, value in app.items()})
    state.update({State.USER_PREFIX + key: value for key, value in user.items()})
    return state


def _update_time_segment(update_time: float) -> str:
    """A key segment that sorts like the update time (seconds, microsecond precision)."""
    return f"{max(update_time, 0.0):020.6f}"


class _Keys:
    """The keys of one session (see the module docstring)."""

    def __init__(self, prefix: str, app_name: str, user_id: str, session_id: str) -> None:
        self.prefix = prefix
        app, user, sid = segment(app_name), segment(user_id), segment(session_id)
        self.app_state = f"{prefix}app/{app}"
        self.user_state = f"{prefix}user/{app}/{user}"
        self.head = f"{prefix}session/{app}/{user}/{sid}"
        self.events = f"{prefix}event/{app}/{user}/{sid}/"
        self._by_user = f"{prefix}recent/{app}/{user}/"
        self._by_app = f"{prefix}recent-app/{app}/"
        self._user = user
        self._sid = sid

    def event(self, generation: str, seq: int) -> str:
        return f"{self.events}{generation}/n/{seq:012d}"

    def event_id(self, generation: str, event_id: str) -> str:
        return f"{self.events}{generation}/i/{segment(event_id)}"

    def indexes(self, update_time: float) -> list[str]:
        """The two listing-index keys of the session at ``update_time``."""
        at = _update_time_segment(update_time)
        return [f"{self._by_user}{at}/{self._sid}", f"{self._by_app}{at}/{self._user}/{self._sid}"]


@dataclass(frozen=True)
class _Append:
    """One event to append: its stored document and its state delta split by scope."""

    keys: _Keys
    user_id: str
    session_id: str
    event_id: str
    timestamp: float
    document: dict[str, Any]
    app_delta: dict[str, Any]
    user_delta: dict[str, Any]
    own_delta: dict[str, Any]

    @classmethod
    def of(cls, keys: Callable[[str, str, str], _Keys], session: Session, event: Event) -> _Append:
        """The append of ``event`` to ``session`` (``keys`` makes the session's keys)."""
        delta = event.actions.state_delta if event.actions else {}
        app_delta, user_delta, own_delta = _split_scopes(_json_safe(delta or {}))
        return cls(
            keys=keys(session.app_name, session.user_id, session.id),
            user_id=session.user_id,
            session_id=session.id,
            event_id=event.id,
            timestamp=event.timestamp,
            document=event.model_dump(mode="json", exclude_none=True),
            app_delta=app_delta,
            user_delta=user_delta,
            own_delta=own_delta,
        )

    def writes(
        self,
        head_entry: StateEntry,
        app_entry: StateEntry | None,
        user_entry: StateEntry | None,
        new_id: bool,
    ) -> tuple[dict[str, int], dict[str, Any], list[str]]:
        """The transaction's ``(compare, put, delete)`` that appends the event after
        ``head_entry``: the event, the new head, the scoped states it changes (each guarded by
        the revision read), the listing indexes moved to the event's time, and, when
        ``new_id``, the event id's entry guarded to be new."""
        keys, head = self.keys, head_entry.value
        generation, seq = str(head["generation"]), int(head["events"])
        new_head = {
            **head,
            "state": {**head["state"], **self.own_delta},
            "update_time": self.timestamp,
            "events": seq + 1,
        }
        compare = {keys.head: head_entry.mod_revision}
        put: dict[str, Any] = {keys.head: new_head, keys.event(generation, seq): self.document}
        if new_id:
            id_key = keys.event_id(generation, self.event_id)
            compare[id_key] = 0
            put[id_key] = {"seq": seq}
        _apply(app_entry, self.app_delta, keys.app_state, compare, put)
        _apply(user_entry, self.user_delta, keys.user_state, compare, put)
        old_indexes = keys.indexes(float(head["update_time"]))
        new_indexes = keys.indexes(self.timestamp)
        listed = _listed_form(self.user_id, self.session_id, new_head)
        put.update({index: listed for index in new_indexes})
        return compare, put, [index for index in old_indexes if index not in new_indexes]


class StatekeeperSessionService(BaseSessionService):
    """ADK sessions, their events and their app/user state in statekeeper.

    ``manager`` is any :class:`~statekeeper.state.StateManager` (embedded or remote; its
    owner closes it); ``key_prefix`` is put before every key of the service."""

    def __init__(self, manager: StateManager, *, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self.manager = manager
        self.key_prefix = key_prefix

    def _keys(self, app_name: str, user_id: str, session_id: str) -> _Keys:
        return _Keys(self.key_prefix, app_name, user_id, session_id)

    async def _scoped_states(self, keys: _Keys) -> tuple[StateEntry | None, StateEntry | None]:
        app, user = await asyncio.gather(
            self.manager.get_entry(keys.app_state), self.manager.get_entry(keys.user_state)
        )
        return app, user

    # -- create / get / list / delete ---------------------------------------------------------

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create a session (``session_id`` generated when not given); the ``app:`` and
        ``user:`` keys of ``state`` go to the app and user state. Raises ADK's
        ``AlreadyExistsError`` when the id is taken."""
        session_id = (session_id or "").strip() or str(uuid.uuid4())
        keys = self._keys(app_name, user_id, session_id)
        app_delta, user_delta, own = _split_scopes(_json_safe(state or {}))
        now = time.time()
        head = {
            "state": own,
            "create_time": now,
            "update_time": now,
            "events": 0,
            "generation": uuid.uuid4().hex[:16],
        }
        while True:
            app_entry, user_entry = await self._scoped_states(keys)
            compare = {keys.head: 0}
            put: dict[str, Any] = {keys.head: head}
            app_state = _apply(app_entry, app_delta, keys.app_state, compare, put)
            user_state = _apply(user_entry, user_delta, keys.user_state, compare, put)
            listed = _listed_form(user_id, session_id, head)
            put.update({index: listed for index in keys.indexes(now)})
            try:
                revision = await self.manager.transaction(compare=compare, put=put)
            except ConflictError:
                if await self.manager.get_entry(keys.head) is not None:
                    raise AlreadyExistsError(
                        f"Session with id {session_id} already exists."
                    ) from None
                continue  # the app or user state changed meanwhile
            return _session(app_name, user_id, session_id, head, revision, app_state, user_state)

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The session with its merged state and events (``config.num_recent_events``: only
        the latest ones; ``config.after_timestamp``: only those from that time on), or None."""
        session_id = session_id.strip()
        keys = self._keys(app_name, user_id, session_id)
        head_entry, app_entry, user_entry = await asyncio.gather(
            self.manager.get_entry(keys.head),
            self.manager.get_entry(keys.app_state),
            self.manager.get_entry(keys.user_state),
        )
        if head_entry is None:
            return None
        head = head_entry.value
        count = int(head["events"])
        limit = count if config is None or config.num_recent_events is None else None
        if limit is None:
            assert config is not None and config.num_recent_events is not None
            limit = min(count, config.num_recent_events)
        after = None if config is None else config.after_timestamp
        events = await self._recent_events(keys, head, limit, after)
        session = _session(
            app_name,
            user_id,
            session_id,
            head,
            head_entry.mod_revision,
            _value(app_entry),
            _value(user_entry),
        )
        session.events = events
        return session

    async def _recent_events(
        self, keys: _Keys, head: Mapping[str, Any], limit: int, after: float | None
    ) -> list[Event]:
        """The latest ``limit`` events, then (scanning back from the newest) only those at or
        after ``after``."""
        count = int(head["events"])
        generation = str(head["generation"])
        newest_first: list[Event] = []
        if limit <= 0:
            return newest_first
        # Newest first, one Range call per page; only the events the head counts (a later
        # append is not part of this read).
        entries = self.manager.range(
            start=keys.event(generation, count - limit),
            end=keys.event(generation, count),
            reverse=True,
            page_size=min(limit, RANGE_PAGE),
        )
        async for entry in entries:
            event = Event.model_validate(entry.value)
            if after is not None and event.timestamp < after:
                break
            newest_first.append(event)
        return newest_first[::-1]

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        """The sessions of ``user_id`` (every user's when None), oldest update first, with
        their merged state and no events: one Range call per page of the update-time index
        (whose entries hold the listed form of each session), plus the app state and the user
        states (one Get, or one Range page per page of the app's users)."""
        app = segment(app_name)
        app_key = f"{self.key_prefix}app/{app}"
        if user_id is None:
            index = f"{self.key_prefix}recent-app/{app}/"
            users_prefix = f"{self.key_prefix}user/{app}/"
            app_entry, user_states = await asyncio.gather(
                self.manager.get_entry(app_key), self._user_states(users_prefix)
            )
        else:
            index = f"{self.key_prefix}recent/{app}/{segment(user_id)}/"
            user_key = self._keys(app_name, user_id, "").user_state
            app_entry, user_entry = await asyncio.gather(
                self.manager.get_entry(app_key), self.manager.get_entry(user_key)
            )
            user_states = {user_id: _value(user_entry)}
        app_state = _value(app_entry)
        sessions = []
        async for entry in self.manager.range(index, page_size=RANGE_PAGE):
            listed, revision = entry.value, entry.mod_revision
            if not isinstance(listed, dict) or "state" not in listed:
                # An index entry written before entries held the listed form: read the head.
                head = await self._head_of(app_name, user_id, entry.key)
                if head is None:
                    continue
                listed, revision = head
            user = str(listed["user_id"])
            sessions.append(
                _session(
                    app_name,
                    user,
                    str(listed["session_id"]),
                    listed,
                    revision,
                    app_state,
                    user_states.get(user, {}),
                )
            )
        return ListSessionsResponse(sessions=sessions)

    async def _head_of(
        self, app_name: str, user_id: str | None, index_key: str
    ) -> tuple[dict[str, Any], int] | None:
        """The listed form and revision of the session an index entry names (from its key:
        ``.../<user>/<session>`` or, in a user's index, ``.../<session>``), None when gone."""
        *_, user, session_id = index_key.split("/")
        user = unquote(user) if user_id is None else user_id
        session_id = unquote(session_id)
        entry = await self.manager.get_entry(self._keys(app_name, user, session_id).head)
        if entry is None:
            return None
        return _listed_form(user, session_id, entry.value), entry.mod_revision

    async def _user_states(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every user state of one app (``prefix``: its user-state keys), by user id."""
        return {
            unquote(entry.key.removeprefix(prefix)): dict(entry.value)
            async for entry in self.manager.range(prefix, page_size=RANGE_PAGE)
        }

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Delete the session and its events (nothing happens for an unknown session)."""
        keys = self._keys(app_name, user_id, session_id.strip())
        while True:
            entry = await self.manager.get_entry(keys.head)
            if entry is None:
                break
            try:
                await self.manager.transaction(
                    compare={keys.head: entry.mod_revision},
                    delete=[keys.head, *keys.indexes(float(entry.value["update_time"]))],
                )
                break
            except ConflictError:
                continue
        # The events of every generation but a live one (the id may have been created again).
        live = await self.manager.get_entry(keys.head)
        keep = None if live is None else f"{keys.events}{live.value['generation']}/"
        await delete_matching(
            self.manager,
            keys.events + "*",
            keep=lambda key: keep is not None and key.startswith(keep),
        )

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user-scoped state of ``user_id`` in ``app_name`` (keys without ``user:``)."""
        return _value(await self.manager.get_entry(self._keys(app_name, user_id, "").user_state))

    # -- append -------------------------------------------------------------------------------

    async def append_event(self, session: Session, event: Event) -> Event:
        """Store ``event`` and its state delta in one transaction guarded by the session's
        revision; raises ADK's ``StaleSessionError`` when ``session`` is an outdated copy and
        ``SessionNotFoundError`` when it does not exist. Appending an event that is already
        stored (same id, same content) changes nothing. Partial events are not stored."""
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        revision = await self._store_event(session, _Append.of(self._keys, session, event))
        if revision is None:
            return event  # already appended (a retried call)
        session.last_update_time = event.timestamp
        session._storage_update_marker = str(revision)
        return self._commit_event_to_session(session, event)

    async def _store_event(self, session: Session, append: _Append) -> int | None:
        """Commit ``append`` after the stored head ``session`` was read from, retrying while
        only the app or user state changed meanwhile: the new revision, or None when the event
        is stored already. StaleSessionError / SessionNotFoundError as in append_event."""
        keys = append.keys
        retry = False
        while True:
            head_entry, app_entry, user_entry = await asyncio.gather(
                self.manager.get_entry(keys.head),
                self.manager.get_entry(keys.app_state) if append.app_delta else _none(),
                self.manager.get_entry(keys.user_state) if append.user_delta else _none(),
            )
            if head_entry is None:
                raise SessionNotFoundError(f"Session {session.id} not found.")
            generation = str(head_entry.value["generation"])
            id_key = keys.event_id(generation, append.event_id)
            fresh = await self._is_fresh(session, keys, head_entry)
            # The first attempt of a fresh session lets the transaction check that the event
            # id is new (one round trip less); otherwise look it up before anything else.
            known = await self.manager.get_entry(id_key) if retry or not fresh else None
            if known is not None:
                stored = await self.manager.get(keys.event(generation, int(known.value["seq"])))
                if stored == append.document:
                    return None
            if not fresh:
                raise StaleSessionError(_STALE)
            compare, put, delete = append.writes(head_entry, app_entry, user_entry, known is None)
            try:
                return await self.manager.transaction(compare=compare, put=put, delete=delete)
            except ConflictError:
                retry = True  # re-read: a stale session fails the check above, else retry

    async def _is_fresh(self, session: Session, keys: _Keys, head: StateEntry) -> bool:
        """Whether ``session`` is the stored revision. A session that carries no revision
        marker (built by hand) is when it has seen the last stored event, as with ADK's
        database service."""
        marker = session._storage_update_marker
        if marker is not None:
            return marker == str(head.mod_revision)
        if float(head.value["update_time"]) <= session.last_update_time:
            return True
        count = int(head.value["events"])
        if count == 0:
            return not session.events
        last = await self.manager.get(keys.event(str(head.value["generation"]), count - 1))
        return bool(session.events) and last is not None and last.get("id") == session.events[-1].id


async def _none() -> None:
    return None


def _value(entry: StateEntry | None) -> dict[str, Any]:
    return {} if entry is None else dict(entry.value)


def _listed_form(user_id: str, session_id: str, head: Mapping[str, Any]) -> dict[str, Any]:
    """The value of a session's listing-index entries: what ``list_sessions`` shows of it."""
    return {
        "user_id": user_id,
        "session_id": session_id,
        "state": head["state"],
        "update_time": head["update_time"],
    }


def _apply(
    entry: StateEntry | None,
    delta: Mapping[str, Any],
    key: str,
    compare: dict[str, int],
    put: dict[str, Any],
) -> dict[str, Any]:
    """The scoped state of ``entry`` with ``delta`` applied (each named key replaced); when
    there is a delta, its write and the guard on ``entry``'s revision join the transaction."""
    state = _value(entry)
    if delta:
        state.update(delta)
        compare[key] = 0 if entry is None else entry.mod_revision
        put[key] = state
    return state


def _session(
    app_name: str,
    user_id: str,
    session_id: str,
    head: Mapping[str, Any],
    revision: int,
    app_state: Mapping[str, Any],
    user_state: Mapping[str, Any],
) -> Session:
    session = Session(
        id=session_id,
        app_name=app_name,
        user_id=user_id,
        state=_merged(app_state, user_state, head["state"]),
        last_update_time=float(head["update_time"]),
    )
    session._storage_update_marker = str(revision)
    return session


__all__ = ["DEFAULT_KEY_PREFIX", "StatekeeperSessionService"]
