"""``python -m statekeeper_server`` runs the ``statekeeper`` command."""

from statekeeper_server.cli import main

main()
