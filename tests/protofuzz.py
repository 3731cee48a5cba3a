"""Every RPC of every registered service, and random request messages built from descriptors
(with :mod:`random`, or as hypothesis strategies by :func:`message_strategy`)."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

import msgpack
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st
from statekeeper.v1 import state_service_pb2  # noqa: F401  (registers the descriptors)
from statekeeper_server.services import SERVICES

_F = descriptor.FieldDescriptor


@dataclass(frozen=True)
class Rpc:
    """One RPC: its full method name, request class and whether it streams responses."""

    service: str
    name: str
    request: type[Message]
    response: type[Message]
    server_streaming: bool

    @property
    def path(self) -> str:
        """The ``/package.Service/Method`` name."""
        return f"/{self.service}/{self.name}"


def _service_descriptor(full_name: str) -> descriptor.ServiceDescriptor:
    from google.protobuf import descriptor_pool

    return descriptor_pool.Default().FindServiceByName(full_name)


def all_rpcs() -> list[Rpc]:
    """Every RPC of every service in the server's registry."""
    rpcs = []
    for spec in SERVICES:
        service = _service_descriptor(spec.name)
        for method in service.methods:
            rpcs.append(
                Rpc(
                    spec.name,
                    method.name,
                    message_factory.GetMessageClass(method.input_type),
                    message_factory.GetMessageClass(method.output_type),
                    method.server_streaming,
                )
            )
    return rpcs


#: Strings that look like ids, keys and patterns, and strings that are wrong in many ways.
STRINGS = [
    "",
    "a",
    "a1",
    "k1",
    "key/with/slash",
    "*",
    "a*",
    "[",
    "x" * 600,
    "\x00",
    "\n",
    "é✓",
    "../etc",
    "tenants/other/kv/a",
]


def random_message(cls: type[Message], rng: random.Random, depth: int = 0) -> Message:
    """A message of ``cls`` with random field values (some set, some not)."""
    message = cls()
    for field in cls.DESCRIPTOR.fields:
        if rng.random() < 0.4:
            continue
        if field.is_repeated:
            for _ in range(rng.randint(0, 2)):
                _append(message, field, rng, depth)
        else:
            _assign(message, field, rng, depth)
    return message


def _scalar(field: descriptor.FieldDescriptor, rng: random.Random) -> Any:
    kind = field.type
    if kind == _F.TYPE_STRING:
        return rng.choice(STRINGS)
    if kind == _F.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 12))
    if kind == _F.TYPE_BOOL:
        return rng.random() < 0.5
    if kind in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e308, float("nan"), float("inf"), 0.5])
    if kind == _F.TYPE_ENUM:
        values = [v.number for v in field.enum_type.values]
        return rng.choice([*values, 99])
    if kind in (_F.TYPE_UINT32, _F.TYPE_FIXED32):
        return rng.choice([0, 1, 2**32 - 1])
    if kind in (_F.TYPE_UINT64, _F.TYPE_FIXED64):
        return rng.choice([0, 1, 2**64 - 1])
    if kind in (_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_SFIXED32):
        return rng.choice([0, 1, -1, 2**31 - 1, -(2**31)])
    return rng.choice([0, 1, -1, 10**6, 2**63 - 1, -(2**63)])


def _assign(message: Message, field: descriptor.FieldDescriptor, rng: random.Random, depth: int):
    if field.type == _F.TYPE_MESSAGE:
        if field.message_type.GetOptions().map_entry or depth > 3:
            return
        sub = random_message(message_factory.GetMessageClass(field.message_type), rng, depth + 1)
        getattr(message, field.name).CopyFrom(sub)
        return
    setattr(message, field.name, _scalar(field, rng))


def _append(message: Message, field: descriptor.FieldDescriptor, rng: random.Random, depth: int):
    container = getattr(message, field.name)
    if field.type == _F.TYPE_MESSAGE:
        if depth > 3:
            return
        if field.message_type.GetOptions().map_entry:
            key_field = field.message_type.fields_by_name["key"]
            value_field = field.message_type.fields_by_name["value"]
            key = _scalar(key_field, rng)
            if value_field.type == _F.TYPE_MESSAGE:
                container[key].CopyFrom(
                    random_message(
                        message_factory.GetMessageClass(value_field.message_type), rng, depth + 1
                    )
                )
            else:
                container[key] = _scalar(value_field, rng)
            return
        container.add().CopyFrom(
            random_message(message_factory.GetMessageClass(field.message_type), rng, depth + 1)
        )
        return
    container.append(_scalar(field, rng))


# -- hypothesis strategies from descriptors ----------------------------------------------------

#: Integers at the edges: int64 and int32 limits, around the Timestamp and Duration ranges,
#: zero and small counts.
EDGE_INTEGERS = [
    0,
    1,
    -1,
    2,
    3,
    1000,
    2**31 - 1,
    -(2**31),
    2**63 - 1,
    -(2**63),
    253_402_300_799,
    253_402_300_800,
    -62_135_596_800,
    -62_135_596_801,
    315_576_000_000,
    315_576_000_001,
    999_999_999,
    1_000_000_000,
]
#: Texts: plain ids and keys (most often, so that requests get past validation), patterns,
#: control characters (C0 and C1), an empty and a huge string, and whatever hypothesis draws.
_PLAIN = st.sampled_from(["a", "a1", "k1", "c", "t"])
_TEXTS = st.one_of(
    _PLAIN,
    _PLAIN,
    st.sampled_from([*STRINGS, "\x85", "a\x9fb", "\x7f", "latest", "x" * 70_000, "kv/a"]),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
)
_DOCUMENTS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
#: Bytes: valid MessagePack documents (so that values pass and deeper rules run) and noise.
_BYTES = st.one_of(
    _DOCUMENTS.map(lambda doc: msgpack.packb(doc, use_bin_type=True)), st.binary(max_size=24)
)


def _range(bits: int, signed: bool) -> st.SearchStrategy[int]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    edges = [n for n in EDGE_INTEGERS if low <= n <= high] + [low, high]
    return st.sampled_from(edges) | st.integers(low, high)


def _scalar_strategy(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == _F.TYPE_STRING:
        return _TEXTS
    if kind == _F.TYPE_BYTES:
        return _BYTES
    if kind == _F.TYPE_BOOL:
        return st.booleans()
    if kind in (_F.TYPE_DOUBLE, _F.TYPE_FLOAT):
        return st.floats(width=32 if kind == _F.TYPE_FLOAT else 64)
    if kind == _F.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.sampled_from([*known, 99, -1, 2**31 - 1])  # unknown values too
    if kind in (_F.TYPE_UINT32, _F.TYPE_FIXED32):
        return _range(32, False)
    if kind in (_F.TYPE_UINT64, _F.TYPE_FIXED64):
        return _range(64, False)
    if kind in (_F.TYPE_INT32, _F.TYPE_SINT32, _F.TYPE_SFIXED32):
        return _range(32, True)
    return _range(64, True)


@functools.cache
def message_strategy(message_type: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of ``message_type``: each field set or not, repeated and map fields with up to
    three entries, nested messages down to depth 3 (recursive types such as
    ``google.protobuf.Value`` end there)."""
    cls = message_factory.GetMessageClass(message_type)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in message_type.fields:
        target = field.message_type
        if target is not None and target.GetOptions().map_entry:
            key = _scalar_strategy(target.fields_by_name["key"])
            value_field = target.fields_by_name["value"]
            if value_field.message_type is not None:
                if depth >= 3:
                    continue
                value = message_strategy(value_field.message_type, depth + 1)
            else:
                value = _scalar_strategy(value_field)
            parts[field.name] = st.dictionaries(key, value, max_size=3)
            continue
        if target is not None:
            if depth >= 3:
                continue
            one = message_strategy(target, depth + 1)
        else:
            one = _scalar_strategy(field)
        parts[field.name] = st.lists(one, max_size=3) if field.is_repeated else one
    return st.fixed_dictionaries({}, optional=parts).map(functools.partial(_build, cls))


def _build(cls: type[Message], values: dict[str, Any]) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        target = field.message_type
        container = getattr(message, name)
        if target is not None and target.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, Message):
                    container[key].CopyFrom(item)
                else:
                    container[key] = item
        elif field.is_repeated:
            if target is not None:
                for item in value:
                    container.add().CopyFrom(item)
            else:
                container.extend(value)
        elif target is not None:
            container.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


class InProcessContext:
    """The servicer context of a call made in process (no metadata, never cancelled)."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def peer(self) -> str:
        return "in-process"

    def cancelled(self) -> bool:
        return False
