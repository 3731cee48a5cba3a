"""A descriptor pool view for server reflection that also resolves method names.

``grpcurl describe statekeeper.v1.StateService.Save`` asks the reflection service for the file
containing the symbol ``statekeeper.v1.StateService.Save``. The C++ (upb) descriptor pool of
protobuf finds services and messages by name but not methods, so reflection answered "symbol
not found". This wrapper falls back to the method lookup and answers with the service's file.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pool


class MethodAwarePool:
    """Delegates to a descriptor pool; FindFileContainingSymbol also accepts method names."""

    def __init__(self, pool: descriptor_pool.DescriptorPool | None = None) -> None:
        self._pool = pool or descriptor_pool.Default()

    def FindFileContainingSymbol(self, symbol: str) -> Any:
        """The file that defines ``symbol`` (a message, enum, service or service method)."""
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            try:
                method = self._pool.FindMethodByName(symbol)
            except KeyError:
                raise KeyError(f"Couldn't find symbol {symbol}") from None
            return method.containing_service.file

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)
