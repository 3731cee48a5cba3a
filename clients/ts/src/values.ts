// Documents on the wire: the JSON form of statekeeper.v1.Value.
//
// A document is null, a boolean, a number, a string, an array of documents or an object with
// document values. JavaScript has one number type, so this client sends and reads the JSON
// form (google.protobuf.Value), and the server applies its documented rule: a number that is
// integral and within +/-2^53 is stored as an integer, every other number as a float. A
// document written here is therefore read in Python with `int` for 3 and `float` for 0.5.
// (Python's float 2.0 reads back here as the number 2: JavaScript cannot tell them apart.)

import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema as JsonValueSchema } from "@bufbuild/protobuf/wkt";
import { ValueSchema, type Value } from "./gen/statekeeper/v1/common_pb.js";

/** A JSON-like state document. */
export type Document = null | boolean | number | string | Document[] | { [key: string]: Document };

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
  if (Array.isArray(document)) {
    for (const item of document) validateDocument(item, depth + 1);
    return;
  }
  if (typeof document === "object" && Object.getPrototypeOf(document) === Object.prototype) {
    for (const item of Object.values(document as object)) validateDocument(item, depth + 1);
    return;
  }
  throw new TypeError(`unsupported document type ${typeof document}`);
}

/** Converts a document into the wire Value (the JSON form). */
export function toValue(document: Document): Value {
  validateDocument(document);
  return create(ValueSchema, {
    kind: { case: "json", value: fromJson(JsonValueSchema, document as JsonValue) },
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
    return toJson(JsonValueSchema, value.kind.value) as Document;
  }
  throw new TypeError("the msgpack form is not supported by the TypeScript client");
}
