"""Glob patterns over keys, with one meaning on every backend.

The syntax and matching are those of Python's ``fnmatch.fnmatchcase``: ``*`` matches any run of
characters (``/`` and ``:`` included), ``?`` one character, ``[abc]`` / ``[a-z]`` a set and
``[!abc]`` its complement; matching is case-sensitive and covers the whole key. A pattern is
invalid when it is empty, longer than :data:`MAX_PATTERN_LENGTH`, holds a control character
(C0 or C1, as no key can), or opens a ``[`` set that never closes (``fnmatch`` would silently
read that ``[`` as a literal, which hides typos).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from statekeeper.errors import InvalidArgumentError, Reason

from statekeeper_server.engine.identifiers import has_control_characters

#: The longest accepted pattern, in characters.
MAX_PATTERN_LENGTH = 1024
_META = "*?["


@dataclass(frozen=True)
class GlobPattern:
    """A validated glob pattern, compiled once."""

    text: str
    literal_prefix: str = field(init=False)
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        end = len(self.text)
        for index, char in enumerate(self.text):
            if char in _META:
                end = index
                break
        object.__setattr__(self, "literal_prefix", self.text[:end])
        object.__setattr__(self, "_regex", re.compile(fnmatch.translate(self.text), re.DOTALL))

    @property
    def is_literal(self) -> bool:
        """True when the pattern has no wildcard and so matches exactly one key."""
        return self.literal_prefix == self.text

    def matches(self, key: str) -> bool:
        """True when ``key`` matches the whole pattern."""
        return self._regex.match(key) is not None


def parse_pattern(text: str, field_name: str = "pattern") -> GlobPattern:
    """Validate ``text`` (empty means ``*``) and compile it, or raise INVALID_PATTERN."""
    if text == "":
        text = "*"
    problem = _find_problem(text)
    if problem is not None:
        raise InvalidArgumentError(
            f"invalid glob pattern {text[:80]!r}: {problem}",
            reason=Reason.INVALID_PATTERN,
            violations=[(field_name, problem)],
        )
    return GlobPattern(text)


def _find_problem(text: str) -> str | None:
    if len(text) > MAX_PATTERN_LENGTH:
        return f"longer than {MAX_PATTERN_LENGTH} characters"
    if has_control_characters(text):
        return "contains a control character"
    index, length = 0, len(text)
    while index < length:
        if text[index] == "[":
            end = index + 1
            if end < length and text[end] == "!":
                end += 1
            if end < length and text[end] == "]":
                end += 1
            while end < length and text[end] != "]":
                end += 1
            if end >= length:
                return f"'[' at position {index} is never closed"
            index = end
        index += 1
    return None
