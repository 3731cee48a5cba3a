"""The registry of services: each manager's servicer, its proto service and how to add it.

A new manager adds one :class:`ServiceSpec` here; the server, health checking, reflection and
the Python client's embedded mode all read this list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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

from statekeeper_server.core import Core
from statekeeper_server.servicers.agents import AgentServicer
from statekeeper_server.servicers.boundary import guard_servicer
from statekeeper_server.servicers.knowledge import KnowledgeServicer
from statekeeper_server.servicers.orchestration import OrchestrationServicer
from statekeeper_server.servicers.speech import SpeechServicer
from statekeeper_server.servicers.state import StateServicer
from statekeeper_server.servicers.tools import ToolServicer
from statekeeper_server.servicers.workflows import WorkflowServicer


@dataclass(frozen=True)
class ServiceSpec:
    """One gRPC service: its full name, servicer class and generated registration function."""

    name: str
    servicer: Callable[[Any], Any]
    add_to_server: Callable[[Any, Any], None]


SERVICES: list[ServiceSpec] = [
    ServiceSpec(
        state_service_pb2.DESCRIPTOR.services_by_name["StateService"].full_name,
        StateServicer,
        state_service_pb2_grpc.add_StateServiceServicer_to_server,
    ),
    ServiceSpec(
        tool_service_pb2.DESCRIPTOR.services_by_name["ToolService"].full_name,
        ToolServicer,
        tool_service_pb2_grpc.add_ToolServiceServicer_to_server,
    ),
    ServiceSpec(
        speech_service_pb2.DESCRIPTOR.services_by_name["SpeechService"].full_name,
        SpeechServicer,
        speech_service_pb2_grpc.add_SpeechServiceServicer_to_server,
    ),
    ServiceSpec(
        orchestration_service_pb2.DESCRIPTOR.services_by_name["OrchestrationService"].full_name,
        OrchestrationServicer,
        orchestration_service_pb2_grpc.add_OrchestrationServiceServicer_to_server,
    ),
    ServiceSpec(
        knowledge_service_pb2.DESCRIPTOR.services_by_name["KnowledgeService"].full_name,
        KnowledgeServicer,
        knowledge_service_pb2_grpc.add_KnowledgeServiceServicer_to_server,
    ),
    ServiceSpec(
        agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
        AgentServicer,
        agent_service_pb2_grpc.add_AgentServiceServicer_to_server,
    ),
    ServiceSpec(
        workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name,
        WorkflowServicer,
        workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server,
    ),
]


def build_servicers(core: Core) -> dict[str, Any]:
    """A servicer of every registered service over ``core``, by full service name, each with
    the boundary checks of its requests (:mod:`statekeeper_server.servicers.boundary`)."""
    return {spec.name: guard_servicer(spec.servicer(core), spec.name) for spec in SERVICES}
