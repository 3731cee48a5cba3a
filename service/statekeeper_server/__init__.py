"""The statekeeper server: engine (backends and managers), servicers, runtime and CLI."""
