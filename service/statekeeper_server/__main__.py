"""``python -m statekeeper_server`` runs the ``statekeeper`` command."""

from statekeeper_server.cli import main

if __name__ == "__main__":  # not when a worker process (spawn) imports this module again
    main()
