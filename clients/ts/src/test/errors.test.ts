import { test } from "node:test";
import assert from "node:assert/strict";

import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

import {
  ConflictError,
  decodeBadRequest,
  decodeErrorInfo,
  fromError,
  HistoryCompactedError,
  InternalError,
  NotFoundError,
  StatekeeperError,
} from "../errors.js";

function errorInfo(reason: string, metadata: Record<string, string>): Uint8Array {
  const writer = new BinaryWriter();
  writer.tag(1, 2).string(reason).tag(2, 2).string("statekeeper.dev");
  for (const [key, value] of Object.entries(metadata)) {
    writer.tag(3, 2).bytes(new BinaryWriter().tag(1, 2).string(key).tag(2, 2).string(value).finish());
  }
  return writer.finish();
}

function badRequest(field: string, description: string): Uint8Array {
  const violation = new BinaryWriter().tag(1, 2).string(field).tag(2, 2).string(description).finish();
  return new BinaryWriter().tag(1, 2).bytes(violation).finish();
}

test("ErrorInfo and BadRequest details are decoded", () => {
  assert.deepEqual(decodeErrorInfo(errorInfo("KEY_NOT_FOUND", { key: "a" })), {
    reason: "KEY_NOT_FOUND",
    domain: "statekeeper.dev",
    metadata: { key: "a" },
  });
  assert.deepEqual(decodeBadRequest(badRequest("key", "empty")), [
    { field: "key", description: "empty" },
  ]);
});

test("a failed call becomes the typed error of its code, with reason and violations", () => {
  const wire = new ConnectError("stale revision", Code.Aborted);
  wire.details.push(
    { type: "google.rpc.ErrorInfo", value: errorInfo("REVISION_CONFLICT", {}) },
    { type: "google.rpc.BadRequest", value: badRequest("expected_revision", "stale") },
  );
  const error = fromError(wire);
  assert.ok(error instanceof ConflictError);
  assert.ok(error instanceof StatekeeperError);
  assert.equal(error.reason, "REVISION_CONFLICT");
  assert.equal(error.codeName, "ABORTED");
  assert.equal(error.message, "stale revision");
  assert.deepEqual(error.violations, [{ field: "expected_revision", description: "stale" }]);
  assert.ok(fromError(new ConnectError("x", Code.NotFound)) instanceof NotFoundError);
  assert.ok(fromError(new ConnectError("x", Code.DataLoss)) instanceof InternalError);
  const plain = new Error("plain");
  assert.equal(fromError(plain), plain);
});

test("a compaction error carries the revision to resume from", () => {
  const wire = new ConnectError("gone", Code.OutOfRange);
  wire.details.push({
    type: "google.rpc.ErrorInfo",
    value: errorInfo("HISTORY_COMPACTED", { compact_revision: "42" }),
  });
  const error = fromError(wire);
  assert.ok(error instanceof HistoryCompactedError);
  assert.equal(error.compactRevision, 42n);
});
