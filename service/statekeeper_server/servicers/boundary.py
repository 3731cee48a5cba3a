"""The checks every request passes before its servicer method runs, read from its descriptor.

Every ``google.protobuf.Timestamp`` and ``google.protobuf.Duration`` anywhere in a request
(nested messages, repeated fields and map values included) must be within the range the
well-known types define; otherwise the call is refused with INVALID_ARGUMENT, reason
``INVALID_TIMESTAMP`` or ``INVALID_DURATION`` and a field violation naming the field path
(``checkpoint.timestamp``, ``tasks[2].deadline``), before anything is stored:

* a Timestamp lies from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z, its ``nanos``
  from 0 to 999,999,999;
* a Duration lies within +-315,576,000,000 seconds (about 10,000 years), its ``nanos`` within
  +-999,999,999 and of the same sign as ``seconds``.

:func:`guard_servicer` wraps the RPC methods of a servicer whose requests can hold such a field;
the runtime applies it to every registered servicer, so the gRPC server and the embedded mode
check alike and a new RPC or field is covered without editing anything here. A method marked
``checks_own_times`` (StateService's Batch) calls :func:`check_times` on each part itself.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from google.protobuf import descriptor, descriptor_pool
from google.protobuf.message import Message
from statekeeper.errors import InvalidArgumentError, Reason
from statekeeper.timestamps import (
    MAX_DURATION_SECONDS,
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
)

#: The full names of the well-known types checked here.
TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
_MAX_NANOS = 999_999_999


def timestamp_problem(seconds: int, nanos: int) -> str | None:
    """What makes (``seconds``, ``nanos``) an invalid Timestamp, or None."""
    if not 0 <= nanos <= _MAX_NANOS:
        return f"nanos must be from 0 to {_MAX_NANOS}, got {nanos}"
    if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
        return (
            f"seconds must be from {MIN_TIMESTAMP_SECONDS} (0001-01-01T00:00:00Z) to "
            f"{MAX_TIMESTAMP_SECONDS} (9999-12-31T23:59:59Z), got {seconds}"
        )
    return None


def duration_problem(seconds: int, nanos: int) -> str | None:
    """What makes (``seconds``, ``nanos``) an invalid Duration, or None."""
    if abs(seconds) > MAX_DURATION_SECONDS:
        return f"seconds must be within +-{MAX_DURATION_SECONDS}, got {seconds}"
    if abs(nanos) > _MAX_NANOS:
        return f"nanos must be within +-{_MAX_NANOS}, got {nanos}"
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        return f"seconds ({seconds}) and nanos ({nanos}) must not have opposite signs"
    return None


_PROBLEMS = {
    TIMESTAMP: (timestamp_problem, Reason.INVALID_TIMESTAMP, "Timestamp"),
    DURATION: (duration_problem, Reason.INVALID_DURATION, "Duration"),
}


@functools.cache
def _holds_time(message_type: descriptor.Descriptor) -> bool:
    """Whether a message of this type can contain a Timestamp or a Duration at any depth."""
    seen: set[str] = set()
    pending = [message_type]
    while pending:
        current = pending.pop()
        if current.full_name in _PROBLEMS:
            return True
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        pending.extend(f.message_type for f in current.fields if f.message_type is not None)
    return False


#: How a message field holds values: one (when set), a list, or a map's values.
_ONE, _LIST, _MAP = 0, 1, 2


@functools.cache
def _plan(message_type: descriptor.Descriptor) -> tuple[tuple[str, int], ...]:
    """(name, how it holds values) of each field of this message type that can hold a
    Timestamp or a Duration (maps whose values can included), read once per type."""
    plan = []
    for field in message_type.fields:
        target = field.message_type
        shape = _LIST if field.is_repeated else _ONE
        if target is not None and target.GetOptions().map_entry:
            target = target.fields_by_name["value"].message_type
            shape = _MAP
        if target is not None and _holds_time(target):
            plan.append((field.name, shape))
    return tuple(plan)


def _items(message: Message, name: str, shape: int, path: str) -> Iterator[Any]:
    """(path, value) of each value a field holds: one if set, each element of a repeated
    field, each value of a map."""
    value = getattr(message, name)
    if shape == _MAP:
        for key in sorted(value):
            yield f"{path}[{key!r}]", value[key]
    elif shape == _LIST:
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item
    elif message.HasField(name):
        yield path, value


#: The plan of each message class, found by one dictionary lookup per call.
_PLANS: dict[type, tuple[tuple[str, int], ...]] = {}


def check_times(message: Message, path: str = "") -> None:
    """Raise INVALID_ARGUMENT for the first Timestamp or Duration in ``message`` (at any
    depth) that is out of its range; ``path`` is the message's own field path."""
    plan = _PLANS.get(type(message))
    if plan is None:
        plan = _PLANS[type(message)] = _plan(message.DESCRIPTOR)
    for name, shape in plan:
        if shape == _ONE and not message.HasField(name):
            continue  # the common case, without a generator
        for where, value in _items(message, name, shape, path + name):
            kind = value.DESCRIPTOR.full_name
            if kind not in _PROBLEMS:
                check_times(value, where + ".")
                continue
            problem_of, reason, label = _PROBLEMS[kind]
            problem = problem_of(value.seconds, value.nanos)
            if problem is not None:
                raise InvalidArgumentError(
                    f"{where} is not a valid {label}: {problem}",
                    reason=reason,
                    metadata={"field": where},
                    violations=[(where, problem)],
                )


async def _refused(error: InvalidArgumentError) -> AsyncIterator[Any]:
    """A response stream that fails at once with ``error``."""
    raise error
    yield  # pragma: no cover  (makes this an async generator)


def _guard_unary(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def checked(request: Any, context: Any) -> Any:
        if isinstance(request, Message):
            check_times(request)
        return await method(request, context)

    return checked


def _guard_stream(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def checked(request: Any, context: Any) -> Any:
        if isinstance(request, Message):
            try:
                check_times(request)
            except InvalidArgumentError as error:
                return _refused(error)
        return method(request, context)

    return checked


def guard_servicer(servicer: Any, service_name: str) -> Any:
    """Check the requests of every RPC of ``service_name`` (a full service name) that can hold
    a Timestamp or a Duration before ``servicer`` sees them; returns ``servicer``."""
    service = descriptor_pool.Default().FindServiceByName(service_name)
    for method in service.methods:
        if method.client_streaming or not _holds_time(method.input_type):
            continue
        if getattr(getattr(servicer, method.name), "checks_own_times", False):
            continue  # the method checks the parts of its request itself
        guard = _guard_stream if method.server_streaming else _guard_unary
        setattr(servicer, method.name, guard(getattr(servicer, method.name)))
    return servicer
