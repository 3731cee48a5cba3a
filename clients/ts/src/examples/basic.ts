// The statekeeper TypeScript client in a few lines: connect, save, read, compare-and-set,
// list and watch.
//
//   npm run build && node dist/examples/basic.js 127.0.0.1:50051

import { connect, ConflictError } from "../index.js";

async function main(address: string): Promise<void> {
  const client = connect(address);
  const controller = new AbortController();
  try {
    // Start a watch first and wait until it is registered, so the writes below are seen.
    let ready!: () => void;
    const started = new Promise<void>((resolve) => (ready = resolve));
    const changes = client.watch("example/*", { signal: controller.signal, onStarted: () => ready() });
    const first = changes.next();
    await started;

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
  console.error(error);
  process.exitCode = 1;
});
