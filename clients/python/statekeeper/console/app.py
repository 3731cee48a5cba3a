"""The console's ASGI app (Starlette) and how it is served (uvicorn).

Routes: ``/`` the page, ``/static/*`` its assets (shipped in the package, no build step),
``/api/info`` where the console connects, ``POST /api/call/<service>/<method>`` one allowed RPC
with a JSON request, ``GET /api/watch/<service>/<method>?request=<json>&after=<position>`` one
allowed watch as server-sent events (see :mod:`statekeeper.console.streams`). Every failure is a
JSON ``{"error": {code, reason, message}}`` with a matching HTTP status, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from statekeeper.console.api import Api, Failure, bad_request
from statekeeper.console.streams import event_stream, resume_position
from statekeeper.transport import ConnectionOptions

log = logging.getLogger("statekeeper.console")

STATIC = Path(__file__).parent / "static"

#: Seconds one unary call of the page may take.
CALL_TIMEOUT = 10.0


def _failure_response(failure: Failure) -> JSONResponse:
    return JSONResponse({"error": failure.to_json()}, status_code=failure.http_status)


def _api(request: Request) -> Api:
    api: Api = request.app.state.api
    return api


async def _index(request: Request) -> Response:
    """The page (never cached: a new version of the package shows at once)."""
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})


async def _info(request: Request) -> Response:
    """Where the console connects, and the server's metrics URL."""
    return JSONResponse({**_api(request).describe(), "metrics_url": request.app.state.metrics_url})


async def _call(request: Request) -> Response:
    """One allowed unary RPC: the JSON body is its request, the JSON answer its response."""
    try:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise bad_request("the request body is not JSON") from None
        service, method = request.path_params["service"], request.path_params["method"]
        result = await _api(request).call(service, method, body, CALL_TIMEOUT)
    except Failure as failure:
        return _failure_response(failure)
    return JSONResponse(result)


async def _watch(request: Request) -> Response:
    """One allowed watch as server-sent events, resumed after ``Last-Event-ID`` or
    ``?after=`` when given."""
    try:
        body = json.loads(request.query_params.get("request") or "{}")
    except ValueError:
        return _failure_response(bad_request("the request parameter is not JSON"))
    after = resume_position(request.headers.get("last-event-id"), request.query_params.get("after"))
    service, method = request.path_params["service"], request.path_params["method"]
    return StreamingResponse(
        event_stream(_api(request), service, method, body, after),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _failed(request: Request, error: Exception) -> Response:
    """Any unexpected error: logged with its traceback, answered as INTERNAL without it."""
    log.exception("console request %s failed", request.url.path, exc_info=error)
    return _failure_response(
        Failure("INTERNAL", "INTERNAL", "The console failed to answer; see its log.", 500)
    )


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """Close the console's connection to the server when the app stops."""
    yield
    await app.state.api.close()


def create_app(options: ConnectionOptions, metrics_url: str | None = None) -> Starlette:
    """The console app for the server that ``options`` reaches (remote options: ``address``,
    TLS, ``token``, ``namespace``); ``metrics_url`` is linked from the server page."""
    app = Starlette(
        routes=[
            Route("/", _index),
            Route("/api/info", _info),
            Route("/api/call/{service}/{method}", _call, methods=["POST"]),
            Route("/api/watch/{service}/{method}", _watch),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={Exception: _failed},
        lifespan=_lifespan,
    )
    app.state.api = Api(options)
    app.state.metrics_url = metrics_url
    return app


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` as a (host, port) pair; ValueError with a readable message otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def bind(listen: str) -> socket.socket:
    """A listening socket on ``HOST:PORT`` (port 0: any free port); OSError when it is taken."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def console_server(
    app: Any, https_cert: str | None = None, https_key: str | None = None
) -> uvicorn.Server:
    """A uvicorn server for ``app`` (open streams get 2 s at shutdown), serving HTTPS with the
    PEM certificate chain ``https_cert`` and its private key ``https_key`` when given. They are
    loaded here, so a bad pair fails before anything listens: ValueError when only one of them
    is given, OSError (ssl.SSLError included) when they do not load."""
    if bool(https_cert) != bool(https_key):
        raise ValueError("HTTPS needs both a certificate (--https-cert) and its key (--https-key)")
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=2,
        ssl_certfile=https_cert,
        ssl_keyfile=https_key,
    )
    config.load()
    return uvicorn.Server(config)


def _announce(sock: socket.socket, server: uvicorn.Server) -> None:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if server.config.is_ssl else "http"
    print(f"statekeeper console on {scheme}://{shown}:{port}/", flush=True)


async def run_console(
    options: ConnectionOptions,
    listen: str,
    metrics_url: str | None = None,
    *,
    https_cert: str | None = None,
    https_key: str | None = None,
) -> None:
    """Serve the console on ``listen`` (HOST:PORT) until interrupted, over HTTPS when given a
    certificate and key (see :func:`console_server`); prints its URL once it listens."""
    server = console_server(create_app(options, metrics_url), https_cert, https_key)
    sock = bind(listen)
    _announce(sock, server)
    await server.serve(sockets=[sock])


class ConsoleThread:
    """The console served from a thread of its own (beside ``statekeeper serve``), over HTTPS
    when given a certificate and key (see :func:`console_server`)."""

    def __init__(
        self,
        options: ConnectionOptions,
        listen: str,
        metrics_url: str | None = None,
        *,
        https_cert: str | None = None,
        https_key: str | None = None,
    ) -> None:
        self._server = console_server(create_app(options, metrics_url), https_cert, https_key)
        self._sock = bind(listen)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._sock])),
            name="statekeeper-console",
            daemon=True,
        )

    def start(self) -> None:
        """Start serving and print the console's URL."""
        self._thread.start()
        _announce(self._sock, self._server)

    def stop(self) -> None:
        """Stop serving (open streams end) and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
