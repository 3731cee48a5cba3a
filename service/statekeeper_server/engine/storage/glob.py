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

    def tokens(self) -> list[list[int]]:
        """The pattern as code-point tokens, for matchers outside Python (the Redis scripts):
        ``[0, c]`` the character ``c``, ``[1]`` any one character, ``[2]`` any run, and
        ``[3, negated, low1, high1, ...]`` a set of inclusive code-point ranges. The sets mean
        what ``fnmatch.translate`` makes of them (ranges running backwards are dropped together
        with their ends, an empty set matches nothing, ``[!]`` any character)."""
        out: list[list[int]] = []
        text, index = self.text, 0
        while index < len(text):
            char = text[index]
            if char == "*":
                if not out or out[-1] != [2]:
                    out.append([2])
            elif char == "?":
                out.append([1])
            elif char == "[":
                end = _set_end(text, index + 1)
                out.append(_set_token(text[index + 1 : end]))
                index = end
            else:
                out.append([0, ord(char)])
            index += 1
        return out

    def lua_patterns(self) -> list[bytes] | None:
        """The pattern as Lua patterns over UTF-8 bytes, one per run between two ``*``, for the
        Redis scripts (``string.find`` runs in C, many times faster than a matcher written in
        Lua), or None when a set holds a character outside ASCII (the scripts then match
        :meth:`tokens`). A key matches when each piece is found after the previous one: the
        first anchored at the start (``^``), the last at the end (``$``), each middle one at
        its earliest place, which leaves the most room to the rest (no backtracking, so the
        time stays linear in the key). ``?`` is one lead byte and its continuation bytes, and
        every element starts on a lead byte, so a piece always begins and ends between two
        characters."""
        pieces: list[list[bytes]] = [[]]
        for token in self.tokens():
            if token[0] == 0:
                pieces[-1].append(_lua_literal(chr(token[1])))
            elif token[0] == 1:
                pieces[-1].append(_LUA_ANY_CHAR)
            elif token[0] == 2:
                pieces.append([])
            else:
                lua_set = _lua_set(token[1] == 1, token[2:])
                if lua_set is None:
                    return None
                pieces[-1].append(lua_set)
        patterns = [b"".join(piece) for piece in pieces]
        patterns[0] = b"^" + patterns[0]
        patterns[-1] += b"$"
        return patterns


#: One UTF-8 encoded character, as a Lua pattern: a byte that is not a continuation byte, then
#: any continuation bytes.
_LUA_ANY_CHAR = b"[^\x80-\xbf][\x80-\xbf]*"


def _lua_literal(char: str) -> bytes:
    """``char`` as a Lua pattern item: punctuation escaped with ``%``, the rest as is."""
    encoded = char.encode()
    return b"%" + encoded if char.isascii() and not char.isalnum() else encoded


def _lua_set(negated: bool, ranges: list[int]) -> bytes | None:
    """A set token as a Lua pattern item (every member spelled out, punctuation escaped, since
    a Lua range cannot have an escaped end), or None when it holds a non-ASCII character."""
    if any(bound > 0x7F for bound in ranges):
        return None
    if not ranges:
        return _LUA_ANY_CHAR if negated else None
    members = b"".join(
        _lua_literal(chr(code))
        for low, high in zip(ranges[::2], ranges[1::2], strict=True)
        for code in range(low, high + 1)
    )
    if negated:
        return b"[^" + members + _LUA_ANY_CHAR[2:]
    return b"[" + members + b"]"


def _set_end(text: str, start: int) -> int:
    """The index of the ``]`` that closes the set whose contents start at ``start``."""
    end = start
    if end < len(text) and text[end] == "!":
        end += 1
    if end < len(text) and text[end] == "]":
        end += 1
    while text[end] != "]":
        end += 1
    return end


def _set_token(body: str) -> list[int]:
    """The token of one set ``[body]``, with fnmatch's reading of ``!`` and ``-``."""
    # Split at the hyphens that make ranges: the first one may not follow "[" or "[!" directly,
    # and each later one needs two characters after the previous one.
    chunks: list[str] = []
    begin, search = 0, 2 if body.startswith("!") else 1
    while (hyphen := body.find("-", search)) >= 0:
        chunks.append(body[begin:hyphen])
        begin, search = hyphen + 1, hyphen + 3
    if begin < len(body):
        chunks.append(body[begin:])
    elif chunks:
        chunks[-1] += "-"
    else:
        chunks.append(body)
    for k in range(len(chunks) - 1, 0, -1):
        if chunks[k - 1][-1] > chunks[k][0]:  # a backwards range: dropped with its ends
            chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
            del chunks[k]
    joined = "-".join(chunks)
    if joined in ("", "!"):  # fnmatch: an empty set matches nothing, "[!]" any character
        return [3, 1] if joined else [3, 0]
    negated = joined.startswith("!")
    if negated:
        chunks[0] = chunks[0][1:]
    if not chunks[0] and len(chunks) > 1:  # a hyphen first in the set is a literal hyphen
        chunks[0:2] = ["-" + chunks[1]]
    ranges: list[int] = []
    for k, chunk in enumerate(chunks):
        inner = chunk[1 if k > 0 else 0 : -1 if k < len(chunks) - 1 else len(chunk)]
        for char in inner:
            ranges += [ord(char), ord(char)]
        if k < len(chunks) - 1:
            ranges += [ord(chunk[-1]), ord(chunks[k + 1][0])]
    return [3, int(negated), *ranges]


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
