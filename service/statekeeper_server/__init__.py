"""The statekeeper server: engine (backends and managers), servicers, runtime and CLI.

Importing this package (the ``statekeeper`` command and ``python -m statekeeper_server`` do it
before anything imports ``grpc``) keeps gRPC C-core's own informational lines (such as
``chttp2_transport.cc ... Got goaway``) out of the logs: unless the user set ``GRPC_VERBOSITY``
or ``GRPC_TRACE``, C-core logs errors only.
"""

import os

if "GRPC_VERBOSITY" not in os.environ and "GRPC_TRACE" not in os.environ:
    os.environ["GRPC_VERBOSITY"] = "ERROR"
