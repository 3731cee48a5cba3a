// Live tests against the server at STATEKEEPER_TEST_ADDRESS. tests/test_interop.py runs them
// (node --test dist/live/) against its test server; `npm test` covers dist/test/ only, so no
// run reports a skipped test.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  connect,
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  type Change,
  type StatekeeperClient,
} from "../index.js";

function liveClient(): StatekeeperClient {
  const address = process.env.STATEKEEPER_TEST_ADDRESS;
  assert.ok(address, "STATEKEEPER_TEST_ADDRESS is not set (run through tests/test_interop.py)");
  return connect(address, { timeoutMs: 60_000 });
}

const prefix = `ts-live-${Date.now().toString(36)}`;

test("document lifecycle: save, get, merge, compare-and-set, delete", async () => {
  const client = liveClient();
  try {
    const key = `${prefix}/doc`;
    const revision = await client.save(key, { a: 1, b: { c: 2.5 } }, { ttlSeconds: 3600 });
    const entry = await client.get(key);
    assert.equal(entry.modRevision, revision);
    assert.equal(entry.version, 1n);
    assert.ok(entry.expireTime instanceof Date);
    assert.deepEqual(entry.value, { a: 1, b: { c: 2.5 } });

    const merged = await client.update(key, { a: null, b: { d: "x" } }, { ifRevision: revision });
    assert.deepEqual(merged.value, { b: { c: 2.5, d: "x" } });
    await assert.rejects(client.update(key, { z: 1 }, { ifRevision: revision }), ConflictError);
    await assert.rejects(client.save(`${prefix}/bad\u0000key`, 1), (error: unknown) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.ok(error.reason !== "" && error.violations.length > 0);
      return true;
    });
    assert.equal(await client.delete(key), true);
    await assert.rejects(client.get(key), (error: unknown) => {
      assert.ok(error instanceof NotFoundError);
      assert.equal(error.reason, "KEY_NOT_FOUND");
      return true;
    });
  } finally {
    client.close();
  }
});

test("keys page by page and a watch sees every write", async () => {
  const client = liveClient();
  const controller = new AbortController();
  try {
    let ready!: () => void;
    const started = new Promise<void>((resolve) => (ready = resolve));
    const received: Change[] = [];
    const watching = (async () => {
      for await (const change of client.watch(`${prefix}/w/*`, {
        signal: controller.signal,
        onStarted: () => ready(),
      })) {
        received.push(change);
        if (received.length === 5) return;
      }
    })();
    await started;
    for (let i = 0; i < 5; i++) await client.save(`${prefix}/w/${i}`, { i });
    const keys: string[] = [];
    for await (const key of client.keys(`${prefix}/w/*`, 2)) keys.push(key);
    assert.deepEqual(keys, [0, 1, 2, 3, 4].map((i) => `${prefix}/w/${i}`));
    await watching;
    assert.deepEqual(
      received.map((c) => [c.type, c.key, c.value]),
      [0, 1, 2, 3, 4].map((i) => ["put", `${prefix}/w/${i}`, { i }]),
    );
  } finally {
    controller.abort();
    client.close();
  }
});

test("concurrent calls are coalesced into batches, each with its own result and error", async () => {
  const client = liveClient();
  const alone = connect(process.env.STATEKEEPER_TEST_ADDRESS ?? "", { batching: false });
  try {
    const keys = Array.from({ length: 40 }, (_, n) => `${prefix}/batch/${n}`);
    const revisions = await Promise.all(keys.map((key, n) => client.save(key, { n })));
    assert.equal(new Set(revisions).size, keys.length);
    const stats = client.batchStats();
    assert.ok(stats.batches > 0 && stats.calls > stats.batches, JSON.stringify(stats));
    const entries = await Promise.all(keys.map((key) => client.get(key)));
    assert.deepEqual(
      entries.map((entry) => entry.value),
      keys.map((_, n) => ({ n })),
    );
    // A stale compare-and-set fails alike with and without batching.
    const expected = await alone.save(keys[0], 1, { ifRevision: 0 }).catch((error: unknown) => error);
    const batched = await Promise.all(
      keys.map(() => client.save(keys[0], 1, { ifRevision: 0 }).catch((error: unknown) => error)),
    );
    for (const error of batched) {
      assert.ok(error instanceof ConflictError && expected instanceof ConflictError);
      assert.equal(error.reason, expected.reason);
      assert.equal(error.message, expected.message);
      assert.deepEqual(error.metadata, expected.metadata);
    }
    assert.equal(alone.batchStats().batches, 0);
  } finally {
    client.close();
    alone.close();
  }
});
