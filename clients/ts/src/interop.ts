#!/usr/bin/env node
// The TypeScript runner of the cross-language interoperability cases (tests/test_interop.py
// drives it; clients/go/cmd/interop is the Go runner with the same cases and output): one JSON
// document per line on stdout, object keys sorted.
//
//   node dist/interop.js save --address HOST:PORT --key K --value '{"count": 3}'
//   node dist/interop.js get --address HOST:PORT --key K
//   node dist/interop.js cas-conflict --address HOST:PORT --key K
//   node dist/interop.js not-found --address HOST:PORT --key K
//   node dist/interop.js list --address HOST:PORT --pattern 'p/*' --page-size 2
//   node dist/interop.js watch --address HOST:PORT --pattern 'p/*' --count 3 [--start-revision R]
//   node dist/interop.js range --address HOST:PORT --prefix p/ [--reverse] [--page-size 2] [--revision R]

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { connect, type ConnectOptions } from "./client.js";
import { ConflictError, NotFoundError } from "./errors.js";
import { describe, emit, expectFailure, type Case, type Json } from "./interop_common.js";
import { serviceCases } from "./interop_services.js";
import { documentFromJson } from "./values.js";

const cases: Record<string, Case> = {
  async range(client, values) {
    const entries: Json[] = [];
    const options = {
      prefix: String(values.prefix ?? ""),
      reverse: values.reverse === true,
      pageSize: Number(values["page-size"] ?? 0),
      revision: BigInt(String(values.revision ?? "0")),
    };
    for await (const entry of client.range(options)) {
      entries.push({ key: entry.key, value: entry.value, mod_revision: entry.modRevision });
    }
    emit({ entries });
  },

  async save(client, values) {
    const document = documentFromJson(JSON.parse(String(values.value ?? "null")));
    emit({ revision: await client.save(String(values.key), document) });
  },

  async get(client, values) {
    const entry = await client.get(String(values.key));
    emit({ value: entry.value, mod_revision: entry.modRevision, version: entry.version });
  },

  // Writes a key twice, then writes it with the first (stale) revision, creates it with "must
  // not exist" and deletes it with the stale revision: each must fail with a conflict.
  async "cas-conflict"(client, values) {
    const key = String(values.key);
    const first = await client.save(key, { step: 1 });
    await client.save(key, { step: 2 }, { ifRevision: first });
    const stale = await expectFailure(() => client.save(key, { step: 3 }, { ifRevision: first }));
    const exists = await expectFailure(() => client.save(key, { step: 3 }, { ifRevision: 0 }));
    const staleDelete = await expectFailure(() => client.delete(key, { ifRevision: first }));
    emit({
      stale_save: describe(stale),
      create: describe(exists),
      stale_delete: describe(staleDelete),
      is_conflict: [stale, exists, staleDelete].every((e) => e instanceof ConflictError),
    });
  },

  async "not-found"(client, values) {
    const error = await expectFailure(() => client.get(String(values.key)));
    emit({ ...describe(error), is_not_found: error instanceof NotFoundError });
  },

  async list(client, values) {
    const pattern = String(values.pattern ?? "*");
    const pageSize = Number(values["page-size"] ?? 0);
    const pages: Json[] = [];
    let token = "";
    do {
      const page = await client.listPage(pattern, pageSize, token);
      pages.push(page.keys);
      token = page.nextPageToken;
    } while (token !== "");
    const keys: Json[] = [];
    for await (const key of client.keys(pattern, pageSize)) keys.push(key);
    emit({ pages, keys });
  },

  // Prints {"started": revision} once the watch is registered, then one line per change, and
  // exits after --count changes.
  async watch(client, values) {
    const count = Number(values.count ?? 1);
    const controller = new AbortController();
    let started = false;
    let seen = 0;
    const changes = client.watch(String(values.pattern ?? "*"), {
      startRevision: BigInt(String(values["start-revision"] ?? "0")),
      prevValue: true,
      signal: controller.signal,
      onStarted: (revision) => {
        if (!started) {
          started = true;
          emit({ started: revision });
        }
      },
    });
    for await (const change of changes) {
      emit({
        type: change.type,
        key: change.key,
        revision: change.revision,
        value: change.value,
        prev_value: change.prevValue,
      });
      seen += 1;
      if (seen >= count) {
        controller.abort();
        break;
      }
    }
  },
};

Object.assign(cases, serviceCases);

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const run = name === undefined ? undefined : cases[name];
  if (run === undefined) {
    process.stderr.write(`usage: interop <${Object.keys(cases).join("|")}> --address HOST:PORT ...\n`);
    return 2;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      address: { type: "string", default: "127.0.0.1:50051" },
      key: { type: "string" },
      value: { type: "string" },
      pattern: { type: "string" },
      "page-size": { type: "string" },
      count: { type: "string" },
      "start-revision": { type: "string" },
      prefix: { type: "string" },
      reverse: { type: "boolean" },
      revision: { type: "string" },
      id: { type: "string" },
      team: { type: "string" },
      agent: { type: "string" },
      action: { type: "string" },
      step: { type: "string" },
      name: { type: "string" },
      ca: { type: "string" },
      cert: { type: "string" },
      "client-key": { type: "string" },
      token: { type: "string" },
      namespace: { type: "string" },
    },
  });
  const options: ConnectOptions = {
    timeoutMs: 60_000,
    token: typeof values.token === "string" ? values.token : undefined,
    namespace: typeof values.namespace === "string" ? values.namespace : undefined,
  };
  if (typeof values.ca === "string") {
    options.tls = {
      ca: readFileSync(values.ca),
      cert: typeof values.cert === "string" ? readFileSync(values.cert) : undefined,
      key: typeof values["client-key"] === "string" ? readFileSync(values["client-key"]) : undefined,
    };
  }
  const client = connect(String(values.address), options);
  try {
    await run(client, values);
  } finally {
    client.close();
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`interop: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
