"""The one conversion between protobuf messages and dataclass records, by field name.

Shared by the server (engine records <-> request and response messages) and the client (the
API's dataclasses <-> messages), so no message needs a hand-written mapper. A dataclass field
converts to the message field of the same name (or the name ``renames`` gives it); fields that
exist on one side only are left alone. Which fields pair up, and how each converts, is planned
once per (dataclass, message type, renames), from the dataclass's fields as
:mod:`statekeeper.fields` reads them. The type hint of the dataclass field chooses the form:

* ``google.protobuf.Timestamp``: ``float`` (Unix seconds) or ``datetime`` (naive local time on
  the way out, like ``datetime.now()``); times stored out of range read as the nearest end.
* ``google.protobuf.Duration``: ``float`` seconds or ``timedelta``.
* enums: a Python :class:`enum.Enum` whose member names are the proto value names without their
  common prefix (``INDEXING_STATUS_IN_PROGRESS`` <-> ``IndexingStatus.IN_PROGRESS``); the
  ``..._UNSPECIFIED`` value is ``None``. An ``int`` hint keeps the number.
* nested messages: nested dataclasses; ``google.protobuf.Struct`` / ``Value``: plain documents.
* ``statekeeper.v1.Value`` (a document): any document; written in ``encoding`` (a
  ``ValueEncoding`` number; None: the exact MessagePack form), read (and validated) from either
  form. An unset document field reads as ``None``.
* repeated fields: lists; maps: dicts. A field with presence that is unset reads as ``None``,
  and so does an empty string for a ``str | None`` field (proto3 strings have no presence).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from statekeeper import values
from statekeeper.errors import InvalidArgumentError
from statekeeper.fields import fields_of, without_none
from statekeeper.timestamps import (
    clamped_duration,
    clamped_timestamp,
    from_duration,
    unix_from_timestamp,
)

R = TypeVar("R")
M = TypeVar("M", bound=Message)

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
_DOCUMENTS = ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue")
DOCUMENT = "statekeeper.v1.Value"


@functools.cache
def enum_prefix(descriptor: EnumDescriptor) -> str:
    """The common prefix of an enum's value names (``INDEXING_STATUS_`` for IndexingStatus)."""
    for value in descriptor.values:
        if value.number == 0 and value.name.endswith("UNSPECIFIED"):
            return value.name[: -len("UNSPECIFIED")]
    return ""


#: The number an unknown enum name is sent as: no proto enum of statekeeper.v1 defines it.
NO_SUCH_VALUE = -1


def enum_to_number(value: enum.Enum | str | int, descriptor: EnumDescriptor) -> int:
    """The proto number of a Python enum member (by name), of a member's name or string value
    (``"in_progress"``), or of a number. A string that names no value is sent as
    :data:`NO_SUCH_VALUE`, a number no value has, so the receiver refuses it with its own
    error, also where UNSPECIFIED means something (a list filter's "any"); a client does not
    re-check the server's rules."""
    if isinstance(value, enum.Enum):
        name = value.name
    elif isinstance(value, str):
        name = value.upper()
    else:
        return int(value)
    number = descriptor.values_by_name.get(enum_prefix(descriptor) + name)
    return int(number.number) if number is not None else NO_SUCH_VALUE


def enum_from_number(number: int, descriptor: EnumDescriptor, cls: Any) -> Any:
    """The member of Python enum ``cls`` for a proto number (None for unspecified; an unknown
    number is INVALID_ARGUMENT); an ``int`` hint keeps the number."""
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        return number
    if number == 0:
        return None
    value = descriptor.values_by_number.get(number)
    if value is None:
        raise InvalidArgumentError(
            f"{number} is not a {descriptor.name} value",
            violations=[(descriptor.name, "unknown value")],
        )
    return cls[value.name[len(enum_prefix(descriptor)) :]]


# -- record -> message ------------------------------------------------------------------------


def to_message(
    record: Any,
    message_class: type[M],
    renames: Mapping[str, str] | None = None,
    *,
    encoding: int | None = None,
) -> M:
    """A ``message_class`` message holding ``record``'s fields (documents in ``encoding``)."""
    message = message_class()
    fill(message, record, renames, encoding=encoding)
    return message


def fill(
    message: Message,
    record: Any,
    renames: Mapping[str, str] | None = None,
    *,
    encoding: int | None = None,
) -> None:
    """Set ``message``'s fields from the same-named fields of dataclass ``record``."""
    plan = _plan(typing.cast(type, type(record)), message.DESCRIPTOR, _key(renames))
    for step in plan:
        value = getattr(record, step.name)
        if value is not None:
            step.write(message, value, encoding)


def _key(renames: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(renames.items()) if renames else ()


@dataclasses.dataclass(frozen=True, slots=True)
class _Step:
    """How one dataclass field converts to and from its message field, planned once."""

    name: str
    field: FieldDescriptor
    optional: bool
    write: Callable[[Message, Any, int | None], None]
    read: Callable[[Any], Any] | None


@functools.cache
def _plan(
    cls: type, descriptor: Descriptor, renames: tuple[tuple[str, str], ...]
) -> tuple[_Step, ...]:
    """The fields of dataclass ``cls`` that have a field in message ``descriptor`` (the same
    name, or the one ``renames`` gives), each with its writer and reader."""
    names = dict(renames)
    fields = typing.cast(Mapping[str, FieldDescriptor], descriptor.fields_by_name)
    plan = []
    for described in fields_of(cls):
        field = fields.get(names.get(described.name, described.name))
        if field is not None:
            read = _reader(field, described.hint)
            plan.append(_Step(described.name, field, described.optional, _writer(field), read))
    return tuple(plan)


def _writer(field: FieldDescriptor) -> Callable[[Message, Any, int | None], None]:
    """How a (not None) value is set on ``field``: scalars and enums directly."""
    name = field.name
    if _is_map(field) or field.is_repeated:
        return lambda message, value, encoding: _set(message, field, value, encoding)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return lambda message, value, encoding: _fill_message(
            getattr(message, name), field, value, encoding
        )
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_type = _enum_type(field)
        return lambda message, value, _: setattr(message, name, enum_to_number(value, enum_type))
    return lambda message, value, _: setattr(message, name, value)


def _reader(field: FieldDescriptor, hint: Any) -> Callable[[Any], Any] | None:
    """How the value of ``field`` becomes the dataclass field's; None when it is taken as is (a
    plain scalar)."""
    plain = field.type not in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_ENUM)
    if plain and not field.is_repeated:
        return None
    return lambda value: _get(value, field, hint)


def _set(message: Message, field: FieldDescriptor, value: Any, encoding: int | None) -> None:
    if _is_map(field):
        target = getattr(message, field.name)
        value_field = _message_type(field).fields_by_name["value"]
        for key, item in value.items():
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                _fill_message(target[key], value_field, item, encoding)
            else:
                target[key] = _scalar_out(value_field, item)
        return
    if field.is_repeated:
        target = getattr(message, field.name)
        for item in value:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _fill_message(target.add(), field, item, encoding)
            else:
                target.append(_scalar_out(field, item))
        return
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _fill_message(getattr(message, field.name), field, value, encoding)
    else:
        setattr(message, field.name, _scalar_out(field, value))


def _fill_message(target: Any, field: FieldDescriptor, value: Any, encoding: int | None) -> None:
    name = _message_type(field).full_name
    if name == TIMESTAMP:
        if isinstance(value, datetime):
            value = value.timestamp()
        target.CopyFrom(clamped_timestamp(float(value)))
    elif name == DURATION:
        if isinstance(value, timedelta):
            value = value.total_seconds()
        target.CopyFrom(clamped_duration(float(value)))
    elif name == DOCUMENT:
        target.CopyFrom(_document_out(value, encoding))
    elif name in _DOCUMENTS:
        json_format.ParseDict(value, target)
    elif isinstance(value, Message):
        target.CopyFrom(value)
    else:
        fill(target, value, encoding=encoding)


def _document_out(document: Any, encoding: int | None) -> Message:
    if encoding is None:
        return values.document_to_wire(document)
    return values.bytes_to_wire(values.pack(document), encoding)


def _scalar_out(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_to_number(value, _enum_type(field))
    return value


# -- message -> record ------------------------------------------------------------------------


def from_message(
    message: Message, cls: type[R], renames: Mapping[str, str] | None = None, *, field: str = ""
) -> R:
    """A ``cls`` record from ``message``'s same-named fields (dataclass defaults elsewhere).

    An enum number that names no value is INVALID_ARGUMENT naming the field (``field.status``
    when ``message`` is the request's ``field``)."""
    known: dict[str, Any] = {}
    for step in _plan(typing.cast(type, cls), message.DESCRIPTOR, _key(renames)):
        source = step.field
        if source.has_presence and not message.HasField(source.name):
            known[step.name] = None
            continue
        value = getattr(message, source.name)
        if step.read is not None:
            try:
                value = step.read(value)
            except InvalidArgumentError as error:
                if source.type != FieldDescriptor.TYPE_ENUM:
                    raise
                name = f"{field}.{source.name}" if field else source.name
                raise InvalidArgumentError(
                    f"{name}: {error.message}", violations=[(name, "unknown value")]
                ) from None
        known[step.name] = None if step.optional and value == "" else value
    return cls(**known)


def read_field(message: Message, name: str, hint: Any) -> Any:
    """One field of ``message`` converted as a dataclass field with type ``hint`` would be."""
    field = _fields(message)[name]
    if field.has_presence and not message.HasField(name):
        return None
    return _get(getattr(message, name), field, without_none(hint)[0])


def _get(value: Any, field: FieldDescriptor, hint: Any) -> Any:
    if _is_map(field):
        value_field = _message_type(field).fields_by_name["value"]
        item_hint = without_none(typing.get_args(hint)[1])[0] if typing.get_args(hint) else Any
        return {k: _get_one(v, value_field, item_hint) for k, v in value.items()}
    if field.is_repeated:
        item_hint = without_none(typing.get_args(hint)[0])[0] if typing.get_args(hint) else Any
        items = [_get_one(v, field, item_hint) for v in value]
        return tuple(items) if typing.get_origin(hint) is tuple else items
    return _get_one(value, field, hint)


def _get_one(value: Any, field: FieldDescriptor, hint: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_from_number(value, _enum_type(field), hint)
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return value
    name = _message_type(field).full_name
    if name == DOCUMENT:
        return values.wire_to_document(value, field.name) if value.WhichOneof("kind") else None
    if name == TIMESTAMP:
        seconds = unix_from_timestamp(value)
        return datetime.fromtimestamp(seconds) if hint is datetime else seconds
    if name == DURATION:
        seconds = from_duration(value)
        return timedelta(seconds=seconds) if hint is timedelta else seconds
    if name in _DOCUMENTS:
        if isinstance(value, struct_pb2.Value) and value.WhichOneof("kind") is None:
            return None
        return json_format.MessageToDict(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_message(value, hint)
    return value


def _fields(message: Message) -> Mapping[str, FieldDescriptor]:
    return typing.cast(Mapping[str, FieldDescriptor], message.DESCRIPTOR.fields_by_name)


def _is_map(field: FieldDescriptor) -> bool:
    message_type: Descriptor | None = field.message_type
    return bool(message_type is not None and message_type.GetOptions().map_entry)


def _message_type(field: FieldDescriptor) -> Descriptor:
    message_type = field.message_type
    assert message_type is not None
    return message_type


def _enum_type(field: FieldDescriptor) -> EnumDescriptor:
    enum_type = field.enum_type
    assert enum_type is not None
    return enum_type
