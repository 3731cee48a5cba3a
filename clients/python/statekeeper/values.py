"""State documents on the wire: the exact MessagePack form and the JSON form.

A document is ``None``, ``bool``, ``int`` (64-bit signed), ``float`` (finite), ``str``,
``bytes``, a ``list`` of documents or a ``dict`` with ``str`` keys and document values, nested at
most :data:`MAX_DEPTH` deep. The canonical stored encoding is MessagePack (``bytes`` are its
``bin`` type); :func:`pack` and :func:`unpack` convert it, :func:`validate` rejects anything
outside the model.

The JSON form (``google.protobuf.Value``) has one number type. Reading it, a number that is
integral and within +/-2**53 becomes an ``int``; every other number stays a ``float``. It has no
bytes either: binary data is the object ``{"$bytes": "<standard base64, padded>"}``, so a map
whose only member is ``$bytes`` is reserved for it in every form (see docs/values.md).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import msgpack
from google.protobuf import struct_pb2

from statekeeper.errors import InvalidArgumentError, Reason
from statekeeper.v1 import common_pb2

#: The deepest nesting of lists and maps a document may have.
MAX_DEPTH = 64
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_EXACT_FLOAT_INT = 2**53
#: The only member of the JSON-form object that stands for binary data.
BYTES_MEMBER = "$bytes"

Document = Any


def pack(document: Document) -> bytes:
    """Encode a document as canonical MessagePack bytes (validating it first)."""
    validate(document)
    return msgpack.packb(document, use_bin_type=True)


def unpack(data: bytes) -> Document:
    """Decode MessagePack bytes that the store holds (already validated when written)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def unpack_untrusted(data: bytes, field: str = "value") -> Document:
    """Decode and validate MessagePack bytes received from a client."""
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise InvalidArgumentError(
            f"{field} is not valid MessagePack: {exc}",
            reason=Reason.INVALID_VALUE,
            violations=[(field, "not valid MessagePack")],
        ) from None
    validate(document, field)
    return document


def validate(document: Document, field: str = "value") -> None:
    """Raise InvalidArgumentError unless ``document`` fits the document model."""
    if _fits(document, 0):
        return
    problem = _find_problem(document, 0)
    if problem is not None:
        raise InvalidArgumentError(
            f"{field} is not a valid state document: {problem}",
            reason=Reason.INVALID_VALUE,
            violations=[(field, problem)],
        )


def _fits(document: Document, depth: int) -> bool:
    """Whether ``document`` (at nesting ``depth``) fits the model: the hot path of
    :func:`validate`, True exactly when :func:`_find_problem` finds nothing. Scalar members
    are checked inline (no call per member); a failing document is then walked by
    :func:`_find_problem` for the message."""
    kind = type(document)
    if kind is dict:
        if len(document) == 1 and BYTES_MEMBER in document:
            return False
        for key in document:
            if type(key) is not str:
                return False
        items: Any = document.values()
    elif kind is list or kind is tuple:
        items = document
    else:
        return _find_problem(document, depth) is None
    if depth >= MAX_DEPTH:
        return not items
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not _INT_MIN <= item <= _INT_MAX:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind is dict or kind is list or kind is tuple:
            if not _fits(item, depth + 1):
                return False
        elif kind is not bytes and kind is not bytearray:
            return False
    return True


def _find_problem(document: Document, depth: int) -> str | None:
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    kind = type(document)
    if document is None or kind is bool or kind is str:
        return None
    if kind is int:
        if not _INT_MIN <= document <= _INT_MAX:
            return "integer out of the 64-bit range"
        return None
    if kind is float:
        return None if math.isfinite(document) else "NaN and infinity are not allowed"
    if kind is bytes or kind is bytearray:
        return None
    if kind is dict:
        if len(document) == 1 and BYTES_MEMBER in document:
            return f'a map whose only member is "{BYTES_MEMBER}" is reserved for binary data'
        for key, item in document.items():
            if type(key) is not str:
                return "map keys must be strings"
            problem = _find_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    if kind is list or kind is tuple:
        for item in document:
            problem = _find_problem(item, depth + 1)
            if problem is not None:
                return problem
        return None
    return f"unsupported type {kind.__name__}"


def to_json_value(document: Document) -> struct_pb2.Value:
    """Convert a document to a google.protobuf.Value (integers become JSON numbers)."""
    value = struct_pb2.Value()
    _fill_json_value(value, document)
    return value


def _fill_json_value(target: struct_pb2.Value, document: Document) -> None:
    if document is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(document, bool):
        target.bool_value = document
    elif isinstance(document, (int, float)):
        target.number_value = float(document)
    elif isinstance(document, str):
        target.string_value = document
    elif isinstance(document, (bytes, bytearray)):
        target.struct_value.fields[BYTES_MEMBER].string_value = base64.b64encode(document).decode()
    elif isinstance(document, dict):
        fields = target.struct_value.fields
        target.struct_value.SetInParent()
        for key, item in document.items():
            _fill_json_value(fields[key], item)
    else:
        target.list_value.SetInParent()
        values = target.list_value.values
        for item in document:
            _fill_json_value(values.add(), item)


def from_json_value(value: struct_pb2.Value, field: str = "value") -> Document:
    """Convert a google.protobuf.Value to a document, applying the integer rule."""
    kind = value.WhichOneof("kind")
    if kind == "null_value" or kind is None:
        return None
    if kind == "bool_value":
        return value.bool_value
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidArgumentError(
                f"{field} holds a number that is NaN or infinite",
                reason=Reason.INVALID_VALUE,
                violations=[(field, "NaN and infinity are not allowed")],
            )
        if number.is_integer() and -_EXACT_FLOAT_INT <= number <= _EXACT_FLOAT_INT:
            return int(number)
        return number
    if kind == "struct_value":
        fields = value.struct_value.fields
        if len(fields) == 1 and BYTES_MEMBER in fields:
            return _bytes_from_json(fields[BYTES_MEMBER], field)
        return {k: from_json_value(v, field) for k, v in fields.items()}
    return [from_json_value(v, field) for v in value.list_value.values]


def _bytes_from_json(member: struct_pb2.Value, field: str) -> bytes:
    """The binary data of a ``{"$bytes": "<base64>"}`` object of the JSON form."""
    text = member.string_value if member.WhichOneof("kind") == "string_value" else None
    try:
        if text is None:
            raise ValueError
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (ValueError, UnicodeEncodeError):
        problem = f'"{BYTES_MEMBER}" must be a string of standard, padded base64'
        raise InvalidArgumentError(
            f"{field} holds binary data that is not valid: {problem}",
            reason=Reason.INVALID_VALUE,
            violations=[(field, problem)],
        ) from None


def wire_to_bytes(value: common_pb2.Value, field: str = "value") -> bytes:
    """Validate a received Value and return the canonical bytes to store.

    The msgpack form is stored as received once it validates; the JSON form is converted.
    An unset Value is rejected.
    """
    if value.WhichOneof("kind") == "msgpack":
        data = value.msgpack  # each read of the field copies the bytes
        unpack_untrusted(data, field)
        return data
    return msgpack.packb(wire_to_document(value, field), use_bin_type=True)


def wire_to_document(value: common_pb2.Value, field: str = "value") -> Document:
    """Validate a received Value and return it as a document."""
    kind = value.WhichOneof("kind")
    if kind == "msgpack":
        return unpack_untrusted(value.msgpack, field)
    if kind == "json":
        document = from_json_value(value.json, field)
        validate(document, field)
        return document
    raise InvalidArgumentError(
        f"{field} is required",
        reason=Reason.INVALID_VALUE,
        violations=[(field, "required: set json or msgpack")],
    )


def bytes_to_wire(data: bytes, encoding: int) -> common_pb2.Value:
    """Wrap stored bytes as a Value in the requested encoding (msgpack is forwarded as is)."""
    if encoding == common_pb2.VALUE_ENCODING_MSGPACK:
        return common_pb2.Value(msgpack=data)
    return common_pb2.Value(json=to_json_value(unpack(data)))


def document_to_wire(document: Document) -> common_pb2.Value:
    """Encode a document in the exact (msgpack) form, as the Python client sends it.

    The document is not validated here: the servicer that receives it does that, once, in
    either mode (:func:`wire_to_bytes`). Only a document MessagePack cannot encode at all is
    refused here, with the error the servicer would give."""
    try:
        return common_pb2.Value(msgpack=msgpack.packb(document, use_bin_type=True))
    except (TypeError, ValueError, OverflowError):
        validate(document)
        raise


def wire_to_python(value: common_pb2.Value) -> Document:
    """Decode a Value received from the server (either form) into a document."""
    kind = value.WhichOneof("kind")
    if kind == "msgpack":
        return unpack(value.msgpack)
    if kind == "json":
        return from_json_value(value.json)
    return None


def json_text_default(document: Any) -> Any:
    """The ``default=`` of :func:`json.dumps` for documents: bytes in their JSON form."""
    if isinstance(document, (bytes, bytearray)):
        return {BYTES_MEMBER: base64.b64encode(document).decode()}
    raise TypeError(f"{type(document).__name__} is not part of the document model")


def json_text_object(members: dict[str, Any]) -> Any:
    """The ``object_hook`` of :func:`json.loads` for documents: ``{"$bytes": ...}`` is bytes."""
    if len(members) == 1 and BYTES_MEMBER in members:
        member = members[BYTES_MEMBER]
        text = struct_pb2.Value()
        if isinstance(member, str):
            text.string_value = member
        return _bytes_from_json(text, "value")
    return members
