"""Every RPC of every registered service, and random request messages built from descriptors."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
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
