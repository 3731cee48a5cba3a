"""Where the LangGraph checkpoint saver keeps what, as statekeeper keys.

Every key starts with the saver's prefix, then a kind, then percent-encoded segments (see
:func:`~statekeeper.integrations.storage.segment`: no segment holds ``/`` or a glob character,
so one thread's keys never match another thread's patterns):

========================================================  ==================================
``<p>head/<thread>/<ns>``                                 ``{"id": newest checkpoint id}``
``<p>ckpt/<thread>/<ns>/<checkpoint id>``                 the checkpoint without its channel
                                                          values, its metadata, its parent
``<p>blob/<thread>/<ns>/<channel>/<version>``             one channel value at one version
``<p>write/<thread>/<ns>/<checkpoint id>/<task>/<idx>``   one pending write
========================================================  ==================================

Checkpoint ids are UUIDv6 strings, which sort by creation time, so a thread's checkpoints are
in key order oldest first (read them in reverse for LangGraph's newest-first listing, and end
the range at a checkpoint's key for ``before``). A channel value is stored once per version,
where it changed, so no single value holds a whole state and a super-step writes only the
channels it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from statekeeper.integrations.storage import segment


@dataclass(frozen=True)
class Layout:
    """The keys and key patterns of a saver whose keys start with ``prefix``."""

    prefix: str

    def _key(self, kind: str, *parts: str) -> str:
        return self.prefix + kind + "/" + "/".join(segment(part) for part in parts)

    def _prefix(self, kind: str, *parts: str) -> str:
        return self._key(kind, *parts) + "/"

    def head(self, thread: str, ns: str) -> str:
        """The head document of a thread's namespace."""
        return self._key("head", thread, ns)

    def checkpoint(self, thread: str, ns: str, checkpoint_id: str) -> str:
        """One checkpoint's record."""
        return self._key("ckpt", thread, ns, checkpoint_id)

    def blob(self, thread: str, ns: str, channel: str, version: str | int | float) -> str:
        """One channel value at one version."""
        return self._key("blob", thread, ns, channel, str(version))

    def write(self, thread: str, ns: str, checkpoint_id: str, task: str, idx: int) -> str:
        """One pending write of a task on a checkpoint."""
        return self._key("write", thread, ns, checkpoint_id, task, str(idx))

    def writes(self, thread: str, ns: str, checkpoint_id: str) -> str:
        """The key prefix of a checkpoint's pending writes."""
        return self._prefix("write", thread, ns, checkpoint_id)

    def thread(self, kind: str, thread: str | None = None, ns: str | None = None) -> str:
        """The key prefix of every ``kind`` key (of a thread, and of one of its namespaces)."""
        parts = [part for part in (thread, ns) if part is not None]
        if not parts:
            return self.prefix + kind + "/"
        return self._prefix(kind, *parts)

    def parts(self, kind: str, key: str) -> list[str]:
        """The decoded segments of a ``kind`` key (thread, namespace, ...)."""
        return [unquote(part) for part in key[len(self.prefix) + len(kind) + 1 :].split("/")]
