// Documents on the wire: the JSON form of statekeeper.v1.Value.
//
// A document is null, a boolean, a number, a string, an array of documents or an object with
// document values. JavaScript has one number type, so this client sends and reads the JSON
// form (google.protobuf.Value), and the server applies its documented rule: a number that is
// integral and within +/-2^53 is stored as an integer, every other number as a float. A
// document written here is therefore read in Python with `int` for 3 and `float` for 0.5.
// (Python's float 2.0 reads back here as the number 2: JavaScript cannot tell them apart.)
//
// Binary data is a Uint8Array here. The JSON form has no bytes, so it carries them as the
// object {"$bytes": "<standard, padded base64>"} (docs/values.md): toValue writes that object
// and fromValue turns it back into a Uint8Array. An object whose only member is "$bytes" is
// therefore reserved for binary data and refused as a document.

import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema as JsonValueSchema } from "@bufbuild/protobuf/wkt";
import { ValueSchema, type Value } from "./gen/statekeeper/v1/common_pb.js";

/** A JSON-like state document. */
export type Document =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | Document[]
  | { [key: string]: Document };

/** The only member of the JSON-form object that stands for binary data. */
export const BYTES_MEMBER = "$bytes";

function isBytesObject(value: object): boolean {
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === BYTES_MEMBER;
}

/** The deepest nesting of arrays and objects the server accepts. */
export const MAX_DEPTH = 64;

/** Throws a TypeError unless `document` fits the document model (finite numbers, no cycles). */
export function validateDocument(document: unknown, depth = 0): asserts document is Document {
  if (depth > MAX_DEPTH) {
    throw new TypeError(`document nested deeper than ${MAX_DEPTH} levels`);
  }
  if (document === null || typeof document === "boolean" || typeof document === "string") {
    return;
  }
  if (typeof document === "number") {
    if (!Number.isFinite(document)) {
      throw new TypeError("NaN and infinity are not allowed in a document");
    }
    if (Number.isInteger(document) && !Number.isSafeInteger(document)) {
      throw new TypeError(`integer ${document} is beyond +/-2^53 and cannot be sent exactly`);
    }
    return;
  }
  if (document instanceof Uint8Array) {
    return;
  }
  if (Array.isArray(document)) {
    for (const item of document) validateDocument(item, depth + 1);
    return;
  }
  if (typeof document === "object" && Object.getPrototypeOf(document) === Object.prototype) {
    if (isBytesObject(document)) {
      throw new TypeError(`an object whose only member is "${BYTES_MEMBER}" is reserved for bytes`);
    }
    for (const item of Object.values(document as object)) validateDocument(item, depth + 1);
    return;
  }
  throw new TypeError(`unsupported document type ${typeof document}`);
}

/** The document as plain JSON: every Uint8Array becomes {"$bytes": "<base64>"}. */
export function documentToJson(document: Document): JsonValue {
  if (document instanceof Uint8Array) {
    return { [BYTES_MEMBER]: Buffer.from(document).toString("base64") };
  }
  if (Array.isArray(document)) return document.map(documentToJson);
  if (document !== null && typeof document === "object") {
    return Object.fromEntries(Object.entries(document).map(([k, v]) => [k, documentToJson(v)]));
  }
  return document;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The inverse of documentToJson: every {"$bytes": "<base64>"} object becomes a Uint8Array. */
export function documentFromJson(json: JsonValue): Document {
  if (Array.isArray(json)) return json.map(documentFromJson);
  if (json !== null && typeof json === "object") {
    if (isBytesObject(json)) {
      const text = json[BYTES_MEMBER];
      if (typeof text !== "string" || !BASE64.test(text)) {
        throw new TypeError(`"${BYTES_MEMBER}" must be a string of standard, padded base64`);
      }
      return new Uint8Array(Buffer.from(text, "base64"));
    }
    return Object.fromEntries(
      Object.entries(json).map(([k, v]) => [k, documentFromJson(v as JsonValue)]),
    );
  }
  return json;
}

/** Converts a document into the wire Value (the JSON form). */
export function toValue(document: Document): Value {
  validateDocument(document);
  return create(ValueSchema, {
    kind: { case: "json", value: fromJson(JsonValueSchema, documentToJson(document)) },
  });
}

/**
 * Converts a wire Value into a document; an unset Value is null. The msgpack form is not
 * decoded by this client (it never asks for it) and raises a TypeError.
 */
export function fromValue(value: Value | undefined): Document {
  if (value === undefined || value.kind.case === undefined) {
    return null;
  }
  if (value.kind.case === "json") {
    return documentFromJson(toJson(JsonValueSchema, value.kind.value));
  }
  throw new TypeError("the msgpack form is not supported by the TypeScript client");
}
