"""Metrics (Prometheus), structured logs with request ids, and an instrumented Backend.

Series (every name starts with ``statekeeper_``; see docs/operations.md):

* ``statekeeper_requests_total{service,method,code}`` — finished calls by gRPC status code.
* ``statekeeper_request_duration_seconds{service,method}`` — call latency (for a streaming
  call: the stream's lifetime).
* ``statekeeper_active_streams{service,method}`` — server-streaming calls open right now.
* ``statekeeper_backend_operation_duration_seconds{backend,operation}`` — backend call latency.
* ``statekeeper_backend_operation_errors_total{backend,operation}`` — backend calls that raised.
* ``statekeeper_store_keys``, ``statekeeper_store_bytes``, ``statekeeper_store_revision``,
  ``statekeeper_store_oldest_revision`` — from ``Backend.stats()`` at scrape time.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import datetime
import functools
import inspect
import itertools
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from statekeeper_server.engine.storage.backend import (
    Backend,
)

#: The request id of the call being served ("" outside calls).
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "statekeeper_request_id", default=""
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Latency:
    """One latency histogram child: bucket counts and a sum, observed on the event loop with
    no lock and no label lookup (a scrape reads them from its thread)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        """Count one observation of ``seconds``."""
        self.counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative counts by upper bound, as the exposition format wants them."""
        bounds = [*(floatToGoString(b) for b in _LATENCY_BUCKETS), "+Inf"]
        return list(zip(bounds, itertools.accumulate(self.counts), strict=True))


class CallSeries:
    """The series of one RPC method: finished calls by status code, and their latency.
    The call wrapper looks it up once per method, so a call only counts."""

    __slots__ = ("codes", "labels", "latency")

    def __init__(self, method: str) -> None:
        self.labels = split_method(method)
        self.codes: dict[str, int] = {}
        self.latency = Latency()

    def observe(self, code: str, seconds: float) -> None:
        """Count one finished call."""
        self.codes[code] = self.codes.get(code, 0) + 1
        self.latency.observe(seconds)


class _CallCollector(Collector):
    """Exports the call and backend series of :class:`ServerMetrics` at scrape time."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        """The request counter and the request and backend latency histograms."""
        requests = CounterMetricFamily(
            "statekeeper_requests",
            "Finished gRPC calls by service, method and status code.",
            labels=["service", "method", "code"],
        )
        latency = HistogramMetricFamily(
            "statekeeper_request_duration_seconds",
            "gRPC call latency in seconds (a streaming call: its lifetime).",
            labels=["service", "method"],
        )
        for series in list(self.metrics.calls.values()):
            for code, count in list(series.codes.items()):
                requests.add_metric([*series.labels, code], count)
            latency.add_metric(list(series.labels), series.latency.buckets(), series.latency.total)
        backend = HistogramMetricFamily(
            "statekeeper_backend_operation_duration_seconds",
            "Backend operation latency in seconds.",
            labels=["backend", "operation"],
        )
        for labels, child in list(self.metrics.backend_calls.items()):
            backend.add_metric(list(labels), child.buckets(), child.total)
        yield from (requests, latency, backend)

    def describe(self) -> list[Any]:
        """No description: collect at scrape time only."""
        return []


class ServerMetrics:
    """The Prometheus series of one server, in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        #: Per RPC method (``/pkg.Service/Rpc``): its calls by code and their latency.
        self.calls: dict[str, CallSeries] = {}
        #: Per (backend, operation): the backend call latency.
        self.backend_calls: dict[tuple[str, str], Latency] = {}
        self.registry.register(_CallCollector(self))
        self.active_streams = Gauge(
            "statekeeper_active_streams",
            "Server-streaming calls (watches) open right now.",
            ["service", "method"],
            registry=self.registry,
        )
        self.backend_errors = Counter(
            "statekeeper_backend_operation_errors",
            "Backend operations that raised an error.",
            ["backend", "operation"],
            registry=self.registry,
        )
        self._http: Any = None

    def call_series(self, method: str) -> CallSeries:
        """The series of ``method``, made on first use."""
        series = self.calls.get(method)
        if series is None:
            series = self.calls[method] = CallSeries(method)
        return series

    def observe_call(self, method: str, code: str, seconds: float) -> None:
        """Count one finished call of ``method`` and its latency."""
        self.call_series(method).observe(code, seconds)

    def backend_series(self, labels: tuple[str, str]) -> Latency:
        """The latency histogram child of one backend operation."""
        series = self.backend_calls.get(labels)
        if series is None:
            series = self.backend_calls[labels] = Latency()
        return series

    def stream_opened(self, method: str) -> None:
        """A server-streaming call started."""
        self.active_streams.labels(*split_method(method)).inc()

    def stream_closed(self, method: str) -> None:
        """A server-streaming call ended."""
        self.active_streams.labels(*split_method(method)).dec()

    def watch_store(self, backend: Backend, loop: asyncio.AbstractEventLoop) -> None:
        """Report ``backend.stats()`` as the store gauges at every scrape."""
        self.registry.register(StoreCollector(backend, loop))

    def serve_http(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on host:port (0 picks a free port); returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_address[1])

    def close(self) -> None:
        """Stop the metrics HTTP server."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def split_method(method: str) -> tuple[str, str]:
    """``/pkg.Service/Rpc`` -> (``pkg.Service``, ``Rpc``)."""
    service, _, rpc = method.strip("/").rpartition("/")
    return service, rpc


class StoreCollector(Collector):
    """Store size gauges read from ``Backend.stats()`` on the server's event loop."""

    def __init__(self, backend: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.loop = loop

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the store gauges (nothing when the loop is gone or the backend fails)."""
        try:
            future = asyncio.run_coroutine_threadsafe(self.backend.stats(), self.loop)
            stats = future.result(timeout=5)
        except Exception:  # the scrape must not fail because the store is unavailable
            logging.getLogger("statekeeper.metrics").warning("store stats unavailable")
            return
        for name, help_text, value in (
            ("statekeeper_store_keys", "Live keys in the store.", stats.keys),
            ("statekeeper_store_bytes", "Bytes of stored values.", stats.bytes),
            ("statekeeper_store_revision", "Current store revision.", stats.revision),
            (
                "statekeeper_store_oldest_revision",
                "Oldest revision a watch can start from.",
                stats.oldest_revision,
            ),
        ):
            family = GaugeMetricFamily(name, help_text, labels=["backend"])
            family.add_metric([stats.backend], float(value))
            yield family

    def describe(self) -> list[Any]:
        """No description: collect at scrape time only (not at registration)."""
        return []


#: The operation a method is timed as, where it is not the method's name (a read is a get).
_OPERATIONS = {"read": "get"}


def _delegate(name: str, template: Any) -> Any:
    if inspect.iscoroutinefunction(template):
        operation = _OPERATIONS.get(name, name)

        @functools.wraps(template)
        async def timed(self: InstrumentedBackend, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await getattr(self.inner, name)(*args, **kwargs)
            except BaseException:
                self._failed(operation)
                raise
            finally:
                series = self._series.get(operation) or self._latency(operation)
                series.observe(time.perf_counter() - start)

        return timed

    @functools.wraps(template)
    def plain(self: InstrumentedBackend, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    return plain


class InstrumentedBackend(Backend):
    """A Backend that times every operation of the backend it wraps.

    Every public method of :class:`Backend` (those added later included) is delegated, each
    coroutine timed into its operation's series (see :func:`_delegate`); other attributes of
    the wrapped backend (such as the memory backend's test helpers) are reached through
    ``__getattr__``.
    """

    def __init__(self, inner: Backend, metrics: ServerMetrics) -> None:
        self.inner = inner
        self.metrics = metrics
        self.name = inner.name
        #: The latency series of each operation, looked up once.
        self._series: dict[str, Latency] = {}

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.inner, attribute)

    def _latency(self, operation: str) -> Latency:
        """The latency series of ``operation`` (kept in ``_series`` for the next call)."""
        series = self._series[operation] = self.metrics.backend_series((self.inner.name, operation))
        return series

    def _failed(self, operation: str) -> None:
        self.metrics.backend_errors.labels(self.inner.name, operation).inc()

    # The abstract methods are delegated here, so that type checkers see a concrete class;
    # the other public methods are delegated below the class.
    get = _delegate("get", Backend.get)
    history = _delegate("history", Backend.history)
    revision = _delegate("revision", Backend.revision)
    scan = _delegate("scan", Backend.scan)
    stats = _delegate("stats", Backend.stats)
    txn = _delegate("txn", Backend.txn)
    watch = _delegate("watch", Backend.watch)


for _name, _member in inspect.getmembers(Backend, inspect.isfunction):
    if not _name.startswith("_") and _name not in InstrumentedBackend.__dict__:
        setattr(InstrumentedBackend, _name, _delegate(_name, _member))
# The delegates copy the templates' abstract flag (functools.wraps); every one is concrete.
InstrumentedBackend.__abstractmethods__ = frozenset()


# -- logs -------------------------------------------------------------------------------------

#: Attributes of a LogRecord that are not "extra" fields.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (of the call being served, or "") to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the attribute; never drops a record."""
        if not getattr(record, "request_id", ""):
            record.request_id = current_request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        data: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            data["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines, with the request id and extra fields as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one text line (plus a traceback when there is one)."""
        text = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        request_id = getattr(record, "request_id", "")
        suffix = "".join(f" {k}={v}" for k, v in extras.items() if not k.startswith("_"))
        if request_id:
            suffix = f" request_id={request_id}" + suffix
        if not suffix:
            return text
        first, newline, rest = text.partition("\n")
        return first + suffix + newline + rest


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """Log to stderr in ``text`` or ``json`` format, with request ids."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
