"""The sharded map under the memory backend's key table and retained history: it behaves as
one dict, yet no single dict in it holds much more than its share of the keys, so one growth
rehashes a bounded part of a large table. (The retained history's own tests, which read every
version back, run over it too.)"""

from __future__ import annotations

import random

from statekeeper_server.engine.storage.backend import Entry
from statekeeper_server.engine.storage.keytable import KeyTable
from statekeeper_server.engine.storage.shardedmap import SHARDS, ShardedMap


def test_a_sharded_map_answers_as_a_dict_does() -> None:
    rng = random.Random(7)
    model: dict[str, int] = {}
    sharded: ShardedMap[int] = ShardedMap()
    assert not sharded and len(sharded) == 0
    for step in range(20_000):
        key = f"k{rng.randrange(3_000)}"
        if key in model and rng.random() < 0.4:
            assert sharded.pop(key) == model.pop(key)
        elif key in model and rng.random() < 0.2:
            del model[key]
            del sharded[key]
        else:
            model[key] = sharded[key] = step
        assert (key in sharded) == (key in model)
        assert sharded.get(key) == model.get(key)
    assert len(sharded) == len(model) and bool(sharded) == bool(model)
    assert sorted(sharded) == sorted(model)
    assert all(sharded[key] == value for key, value in model.items())


def test_a_large_table_is_spread_over_every_shard() -> None:
    sharded: ShardedMap[bytes] = ShardedMap()
    for n in range(64_000):
        sharded[f"agents/{n:07d}/state"] = b"x"
    share = len(sharded) // SHARDS
    assert share == 1_000
    assert sharded.largest_shard() < 1.25 * share  # no dict holds much more than its share


def test_the_key_table_keeps_its_order_and_lookups_over_shards() -> None:
    entries = [Entry(f"k{n:05d}", b"v%d" % n, n + 1, n + 1, 1, None) for n in range(5_000)]
    loaded, written = KeyTable(), KeyTable()
    loaded.load(reversed(entries))
    for entry in random.Random(3).sample(entries, len(entries)):
        written.put(entry)
    for table in (loaded, written):
        assert list(table.entries()) == entries
        assert table.get("k01234") == entries[1234] and table.get("nope") is None
        assert list(table.keys("k00100", "k00103")) == ["k00100", "k00101", "k00102"]
        table.remove("k00101")
        assert "k00101" not in table and len(table) == 4_999
        assert list(table.keys("k00100", "k00103")) == ["k00100", "k00102"]
