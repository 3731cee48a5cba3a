"""The fields of a dataclass as the record conversions see them, read from its type hints once.

Both conversions of a record, to and from protobuf messages (:mod:`statekeeper.messages`) and
to and from the bytes the server stores (its record codec), start from the same description of
a dataclass: each field's name, its type hint without ``| None``, and whether it admits None.
:func:`fields_of` computes that description once per class, so no call reads type hints.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Field:
    """One field of a dataclass: its name, its hint without ``| None`` and whether it admits
    None."""

    name: str
    hint: Any
    optional: bool


def without_none(hint: Any) -> tuple[Any, bool]:
    """``(X, True)`` for the hint ``X | None`` (or ``Optional[X]``), else ``(hint, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        arguments = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(arguments) == 1:
            return arguments[0], True
    return hint, False


@functools.cache
def fields_of(cls: type) -> tuple[Field, ...]:
    """The fields of dataclass ``cls`` in definition order, with their resolved type hints."""
    hints = typing.get_type_hints(cls)
    described = []
    for field in dataclasses.fields(cls):
        hint, optional = without_none(hints[field.name])
        described.append(Field(field.name, hint, optional))
    return tuple(described)
