"""The live web console: a small ASGI app that is a client of the statekeeper gRPC API.

``statekeeper ui --address HOST:PORT`` serves it (``statekeeper serve --ui-listen`` runs it beside
the server). The browser reads JSON from an allow-list of read RPCs, makes the few writes a
person expects (pause, resume, cancel a workflow; delete a key) with the revision it showed, and
follows watches as server-sent events whose ``id`` is the revision or sequence, so a reconnecting
page resumes where it stopped. The console keeps no state of its own. Needs the ``console`` extra.
"""

from statekeeper.console.app import create_app, run_console

__all__ = ["create_app", "run_console"]
