// The statekeeper TypeScript client in a few lines: connect, save, read, compare-and-set,
// list and watch.
//
//   npm run build && node dist/examples/basic.js 127.0.0.1:50051

import { connect, ConflictError } from "../index.js";

/** How long the example waits for the server before it gives up. */
const CONNECT_TIMEOUT_MS = 10_000;

/** No server answered at the address within CONNECT_TIMEOUT_MS. */
class NoServerError extends Error {
  constructor(address: string) {
    super(
      `no statekeeper server answered at ${address} within ${CONNECT_TIMEOUT_MS / 1000} s ` +
        `(start one with "make run", or pass its address)`,
    );
  }
}

async function main(address: string): Promise<void> {
  const client = connect(address);
  const controller = new AbortController();
  try {
    // Start a watch first and wait until it is registered, so the writes below are seen. The
    // watch retries with backoff until the server answers, for at most CONNECT_TIMEOUT_MS.
    console.error(`waiting for the statekeeper server at ${address} (up to ${CONNECT_TIMEOUT_MS / 1000} s)`);
    let ready!: () => void;
    const started = new Promise<void>((resolve) => (ready = resolve));
    const changes = client.watch("example/*", { signal: controller.signal, onStarted: () => ready() });
    const first = changes.next();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NoServerError(address)), CONNECT_TIMEOUT_MS);
    });
    try {
      await Promise.race([started, timedOut, first]);
    } finally {
      clearTimeout(timer);
    }

    const revision = await client.save("example/agent", { count: 3, ratio: 0.5 });
    const entry = await client.get("example/agent");
    console.log(`saved at revision ${revision}:`, entry.value);

    try {
      await client.save("example/agent", { count: 4 }, { ifRevision: revision - 1n });
    } catch (error) {
      if (error instanceof ConflictError) console.log(`conflict detected: reason ${error.reason}`);
      else throw error;
    }

    for await (const key of client.keys("example/*", 100)) console.log("key:", key);

    const change = (await first).value;
    if (change) console.log(`watched: ${change.type} ${change.key} at revision ${change.revision}`);
    await client.delete("example/agent");
  } finally {
    controller.abort();
    client.close();
  }
}

main(process.argv[2] ?? "127.0.0.1:50051").catch((error: unknown) => {
  console.error(error instanceof NoServerError ? error.message : error);
  process.exitCode = 1;
});
