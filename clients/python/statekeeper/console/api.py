"""The part of the gRPC API the console's page may use, as JSON, and its failures as messages.

The page names an RPC (``service``, ``method``) and sends its request as the proto's JSON form;
the answer is the response's JSON form (field names as in the proto, enums by name, 64-bit
integers as strings, documents in the ``json`` form of ``Value``). Only the RPCs listed in
:data:`READS`, :data:`WRITES` and :data:`STREAMS` can be called, so the console can never do
more than show state and make the few writes a person expects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from statekeeper.errors import Reason, StateKeeperError, from_rpc_error
from statekeeper.transport import ConnectionOptions, open_channel
from statekeeper.v1 import (
    agent_service_pb2,
    agent_service_pb2_grpc,
    knowledge_service_pb2,
    knowledge_service_pb2_grpc,
    orchestration_service_pb2,
    orchestration_service_pb2_grpc,
    speech_service_pb2,
    speech_service_pb2_grpc,
    state_service_pb2,
    state_service_pb2_grpc,
    tool_service_pb2,
    tool_service_pb2_grpc,
    workflow_service_pb2,
    workflow_service_pb2_grpc,
)

#: Each service the console talks to: its messages module and its stub class.
SERVICES: dict[str, tuple[ModuleType, type]] = {
    "StateService": (state_service_pb2, state_service_pb2_grpc.StateServiceStub),
    "AgentService": (agent_service_pb2, agent_service_pb2_grpc.AgentServiceStub),
    "WorkflowService": (workflow_service_pb2, workflow_service_pb2_grpc.WorkflowServiceStub),
    "OrchestrationService": (
        orchestration_service_pb2,
        orchestration_service_pb2_grpc.OrchestrationServiceStub,
    ),
    "KnowledgeService": (knowledge_service_pb2, knowledge_service_pb2_grpc.KnowledgeServiceStub),
    "ToolService": (tool_service_pb2, tool_service_pb2_grpc.ToolServiceStub),
    "SpeechService": (speech_service_pb2, speech_service_pb2_grpc.SpeechServiceStub),
    "Health": (health_pb2, health_pb2_grpc.HealthStub),
}

#: The read RPCs the page may call.
READS = {
    "StateService": {"Get", "ListKeys", "GetStats"},
    "AgentService": {"ListSnapshots", "ListCheckpoints", "GetRecoveryStatus"},
    "WorkflowService": {
        "GetWorkflow",
        "ListWorkflowSteps",
        "ListWorkflows",
        "ListWorkflowCheckpoints",
    },
    "OrchestrationService": {"GetTeam", "GetQueueStatus"},
    "KnowledgeService": {"GetKnowledgeBaseState", "GetIndexingProgress", "ListSources"},
    "ToolService": {"GetToolStats", "GetExecutionHistory", "GetPendingRetries"},
    "SpeechService": {"GetSession"},
    "Health": {"Check"},
}

#: The writes a person makes from the page; each is sent with the revision the page showed (a
#: requeue holds only for a task that is still dead-lettered).
WRITES = {
    "StateService": {"Delete"},
    "WorkflowService": {"PauseWorkflow", "ResumeWorkflow", "CancelWorkflow"},
    "OrchestrationService": {"RequeueTask"},
}


def _revision(response: Any) -> int:
    return int(response.revision)


def _session_sequence(response: Any) -> int:
    if response.HasField("started"):
        return int(response.started.last_sequence)
    return int(response.event.sequence)


@dataclass(frozen=True)
class StreamKind:
    """How one watch RPC resumes: the request field of the first position to deliver (None
    when the stream restarts with a snapshot) and the position a response brings it to."""

    resume_field: str | None
    position: Callable[[Any], int] | None


#: The watch RPCs the page may follow as server-sent events.
STREAMS = {
    ("StateService", "Watch"): StreamKind("start_revision", _revision),
    ("WorkflowService", "WatchWorkflow"): StreamKind("start_revision", _revision),
    ("AgentService", "WatchCheckpoints"): StreamKind("start_revision", _revision),
    ("SpeechService", "WatchSession"): StreamKind("from_sequence", _session_sequence),
    ("OrchestrationService", "WatchTeam"): StreamKind(None, _revision),
    ("Health", "Watch"): StreamKind(None, None),
}

#: gRPC channel settings of the console: after a server restart it reconnects within seconds
#: (the default backoff grows to two minutes), and it reads messages up to 8 MiB.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
)

#: The HTTP status the console answers for each gRPC status code.
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


@dataclass(frozen=True)
class Failure(Exception):
    """A failure shown in the page: a gRPC status code name, a stable reason and a sentence."""

    code: str
    reason: str
    message: str
    http_status: int = 500

    def to_json(self) -> dict[str, str]:
        """The failure as the page receives it."""
        return {"code": self.code, "reason": self.reason, "message": self.message}


def describe(error: StateKeeperError, address: str) -> Failure:
    """The readable failure of a failed call to the server at ``address``."""
    code = error.code
    if code == grpc.StatusCode.UNAVAILABLE:
        text = f"The statekeeper server at {address} is unreachable ({error.message})."
    elif code == grpc.StatusCode.PERMISSION_DENIED:
        text = f"Permission denied: {error.message}"
    elif code == grpc.StatusCode.UNAUTHENTICATED:
        text = f"The server refused the console's credentials: {error.message}"
    elif code == grpc.StatusCode.NOT_FOUND:
        text = f"Not found: {error.message}"
    elif error.reason == Reason.REVISION_CONFLICT:
        text = (
            "Conflict: this changed after the page showed it, so nothing was changed. "
            "Look at the current state and try again."
        )
    else:
        text = error.message
    return Failure(code.name, str(error.reason), text, _HTTP_STATUS.get(code, 500))


def bad_request(text: str) -> Failure:
    """A failure of the page's own request (nothing reached the server)."""
    return Failure("INVALID_ARGUMENT", "INVALID_ARGUMENT", text, 400)


def to_json(message: Message) -> dict[str, Any]:
    """A response in the JSON form the page reads."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class Api:
    """The console's connection to one server: JSON calls and watches over one channel."""

    def __init__(self, options: ConnectionOptions) -> None:
        assert options.address is not None
        self.options = options
        self._channel: grpc.aio.Channel | None = None
        self._stubs: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        """Where the console connects, for the server page (never the token itself)."""
        return {
            "address": self.options.address,
            "tls": self.options.secure,
            "namespace": self.options.namespace,
            "token": self.options.token is not None,
        }

    def _stub(self, service: str) -> Any:
        if self._channel is None:
            self._channel = open_channel(self.options, CHANNEL_OPTIONS)
        if service not in self._stubs:
            self._stubs[service] = SERVICES[service][1](self._channel)
        return self._stubs[service]

    def _request(self, service: str, method: str, body: Any) -> tuple[Any, Message]:
        if service not in SERVICES:
            raise bad_request(f"unknown service {service!r}")
        module = SERVICES[service][0]
        descriptor = module.DESCRIPTOR.services_by_name.get(service)
        if service == "Health":
            descriptor = health_pb2.DESCRIPTOR.services_by_name["Health"]
        rpc = descriptor.methods_by_name.get(method) if descriptor else None
        if rpc is None:
            raise bad_request(f"unknown method {service}.{method}")
        request = getattr(module, rpc.input_type.name)()
        if not isinstance(body, dict):
            raise bad_request("the request must be a JSON object")
        try:
            json_format.ParseDict(body, request)
        except json_format.ParseError as error:
            raise bad_request(f"bad request for {service}.{method}: {error}") from None
        return getattr(self._stub(service), method), request

    async def call(self, service: str, method: str, body: Any, timeout: float) -> dict[str, Any]:
        """Call an allowed unary RPC with a JSON request; its JSON response."""
        if method not in READS.get(service, ()) and method not in WRITES.get(service, ()):
            raise bad_request(f"the console does not call {service}.{method}")
        rpc, request = self._request(service, method, body)
        try:
            return to_json(await rpc(request, timeout=timeout))
        except grpc.RpcError as error:
            raise describe(from_rpc_error(error), str(self.options.address)) from None

    def watch(
        self, service: str, method: str, body: Any, after: int | None
    ) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
        """Follow an allowed watch RPC from the position after ``after`` (when it resumes);
        yields (position, JSON response). Raises :class:`Failure` when the call fails."""
        kind = STREAMS.get((service, method))
        if kind is None:
            raise bad_request(f"the console does not watch {service}.{method}")
        rpc, request = self._request(service, method, body)
        if after is not None and kind.resume_field is not None:
            setattr(request, kind.resume_field, after + 1)
        resumed = after is not None and kind.resume_field is not None
        return self._follow(rpc, request, kind, resumed)

    async def _follow(
        self, rpc: Any, request: Message, kind: StreamKind, resumed: bool
    ) -> AsyncIterator[tuple[int | None, dict[str, Any]]]:
        call = rpc(request)
        partial: list[Any] = []
        first = True
        try:
            async for response in call:
                if getattr(response, "fragment", False):
                    # Part of one revision: delivered with the rest of it, never on its own, so
                    # the page's position always stands after a whole revision.
                    partial.extend(response.events)
                    continue
                if partial:
                    partial.extend(response.events)
                    del response.events[:]
                    response.events.extend(partial)
                    partial = []
                position = kind.position(response) if kind.position else None
                if first and resumed:
                    # A resumed watch's first message (created / started) names the latest
                    # position, whose events may be still to come: the page's position stays
                    # where it was until they arrive.
                    position = None
                first = False
                yield position, to_json(response)
        except grpc.RpcError as error:
            raise describe(from_rpc_error(error), str(self.options.address)) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
