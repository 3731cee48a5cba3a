// The resuming watch against an in-process fake StateService whose first stream breaks.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import { connect, HistoryCompactedError, StatekeeperError } from "../index.js";
import { toValue } from "../values.js";
import {
  EventSchema,
  EventType,
  StateService,
  WatchResponseSchema,
  type WatchResponse,
} from "../gen/statekeeper/v1/state_service_pb.js";
import { KeyValueSchema } from "../gen/statekeeper/v1/common_pb.js";

function put(revision: bigint, n: number): WatchResponse {
  return create(WatchResponseSchema, {
    revision,
    events: [
      create(EventSchema, {
        type: EventType.PUT,
        kv: create(KeyValueSchema, { key: "k", modRevision: revision, value: toValue({ n }) }),
      }),
    ],
  });
}

async function startFake(compact: boolean): Promise<{ address: string; starts: bigint[]; close: () => void }> {
  const starts: bigint[] = [];
  const routes = (router: ConnectRouter) =>
    router.service(StateService, {
      async *watch(request, context) {
        starts.push(request.startRevision);
        if (compact) {
          yield create(WatchResponseSchema, { canceled: true, compactRevision: 7n, cancelReason: "compacted" });
          return;
        }
        if (starts.length === 1) {
          yield create(WatchResponseSchema, { created: true, revision: 10n });
          yield put(11n, 1);
          yield put(12n, 2);
          throw new ConnectError("restarting", Code.Unavailable);
        }
        yield create(WatchResponseSchema, { created: true, revision: 12n });
        yield put(13n, 3);
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
      },
    });
  const server = http2.createServer(connectNodeAdapter({ routes, grpc: true }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    starts,
    close: () => server.close(),
  };
}

test("watch resumes after the last delivered revision", async () => {
  const fake = await startFake(false);
  const client = connect(fake.address);
  const controller = new AbortController();
  const seen: [bigint, unknown][] = [];
  try {
    for await (const change of client.watch("k*", { signal: controller.signal, maxBackoffMs: 10 })) {
      seen.push([change.revision, change.value]);
      if (seen.length === 3) {
        controller.abort();
        break;
      }
    }
  } finally {
    client.close();
    fake.close();
  }
  assert.deepEqual(seen, [
    [11n, { n: 1 }],
    [12n, { n: 2 }],
    [13n, { n: 3 }],
  ]);
  assert.deepEqual(fake.starts, [0n, 13n]);
});

test("watch reports compaction with the revision to resume from", async () => {
  const fake = await startFake(true);
  const client = connect(fake.address);
  try {
    await assert.rejects(
      async () => {
        for await (const _ of client.watch("*", { startRevision: 1 })) {
          // no change is expected
        }
      },
      (error: unknown) => error instanceof HistoryCompactedError && error.compactRevision === 7n,
    );
  } finally {
    client.close();
    fake.close();
  }
});

function keyed(revision: bigint, key: string, size: number, fragment = false): WatchResponse {
  return create(WatchResponseSchema, {
    revision,
    fragment,
    events: [
      create(EventSchema, {
        type: EventType.PUT,
        kv: create(KeyValueSchema, { key, modRevision: revision, value: toValue({ s: "x".repeat(size) }) }),
      }),
    ],
  });
}

/** A fake whose first stream ends with server_shutdown in the middle of a fragmented revision. */
async function startFragmentFake(big: number): Promise<{ address: string; starts: bigint[]; close: () => void }> {
  const starts: bigint[] = [];
  const routes = (router: ConnectRouter) =>
    router.service(StateService, {
      async *watch(request, context) {
        starts.push(request.startRevision);
        if (starts.length === 1) {
          yield create(WatchResponseSchema, { created: true, revision: 10n });
          yield keyed(11n, "a", big);
          yield keyed(12n, "b", 1, true);
          yield create(WatchResponseSchema, { canceled: true, cancelReason: "server_shutdown: stopping" });
          return;
        }
        yield create(WatchResponseSchema, { created: true, revision: 11n });
        yield keyed(12n, "b", 1, true);
        yield keyed(12n, "c", 1);
        yield keyed(13n, "d", 1);
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
      },
    });
  const server = http2.createServer(connectNodeAdapter({ routes, grpc: true }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { address: `127.0.0.1:${port}`, starts, close: () => server.close() };
}

test("watch delivers a fragmented revision once whole and resumes before it", async () => {
  const fake = await startFragmentFake(6 * 1024 * 1024);
  const client = connect(fake.address);
  const controller = new AbortController();
  const seen: string[] = [];
  try {
    for await (const change of client.watch("*", { signal: controller.signal, maxBackoffMs: 10 })) {
      seen.push(`${change.revision}${change.key}`);
      if (seen.length === 4) {
        controller.abort();
        break;
      }
    }
  } finally {
    client.close();
    fake.close();
  }
  assert.deepEqual(seen, ["11a", "12b", "12c", "13d"]);
  assert.deepEqual(fake.starts, [0n, 12n]);
});

test("the receive limit is configurable", async () => {
  const fake = await startFragmentFake(2 * 1024 * 1024);
  const client = connect(fake.address, { maxReceiveMessageBytes: 1024 * 1024 });
  try {
    await assert.rejects(
      async () => {
        for await (const _ of client.watch("*")) {
          // the first change is over the limit
        }
      },
      (error: unknown) => error instanceof StatekeeperError && error.code === Code.ResourceExhausted,
    );
  } finally {
    client.close();
    fake.close();
  }
});
