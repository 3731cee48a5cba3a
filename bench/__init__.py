"""The statekeeper benchmark harness (``make bench``; ``python -m bench --help``).

Not part of the product: it starts its own servers (statekeeper on each backend, a bench-only
echo server on the same stack, redis-server, etcd) on free ports of 127.0.0.1, drives them from
several client processes and writes a markdown table, JSON and a PNG chart to
``bench/results/``.
"""
