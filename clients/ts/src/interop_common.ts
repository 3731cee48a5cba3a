// Helpers shared by the TypeScript interop cases: output (one JSON document per line, sorted
// keys) and error descriptions in the form every runner prints.

import type { StatekeeperClient } from "./client.js";
import { StatekeeperError } from "./errors.js";
import { documentToJson } from "./values.js";

export type Json =
  | null
  | boolean
  | number
  | string
  | bigint
  | Uint8Array
  | Json[]
  | { [key: string]: Json };

/** JSON text with sorted object keys; bigints are written as plain integers and bytes in
 * their documented JSON form {"$bytes": "<base64>"}. */
export function formatJson(value: Json): string {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return formatJson(documentToJson(value) as Json);
  if (Array.isArray(value)) return `[${value.map(formatJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${formatJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function emit(value: Json): void {
  process.stdout.write(formatJson(value) + "\n");
}

export function describe(error: unknown): { [key: string]: Json } {
  if (!(error instanceof StatekeeperError)) {
    throw new Error(`want a statekeeper error, got ${String(error)}`);
  }
  return { code: error.codeName, reason: error.reason };
}

export async function expectFailure(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error("the call succeeded but should have failed");
}

export type Values = { [key: string]: string | boolean | undefined };
export type Case = (client: StatekeeperClient, values: Values) => Promise<void>;

