"""Adapters that put statekeeper under the agent frameworks' own storage interfaces.

Each lives in its own module behind an optional extra (``pip install 'statekeeper[adk]'``, ...)
and is written against the public async API of :mod:`statekeeper.state` only.
"""
