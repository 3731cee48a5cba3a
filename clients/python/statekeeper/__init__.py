"""statekeeper: a state service for AI agents.

The documented API lives in :mod:`statekeeper.state`; typed errors in :mod:`statekeeper.errors`;
the generated protobuf and gRPC stubs in :mod:`statekeeper.v1`.
"""

__version__ = "0.1.0"
