import { test } from "node:test";
import assert from "node:assert/strict";

import { toJson } from "@bufbuild/protobuf";
import { ValueSchema as JsonValueSchema } from "@bufbuild/protobuf/wkt";

import { documentFromJson, fromValue, toValue, validateDocument } from "../values.js";

test("documents round trip through the JSON form", () => {
  const document = {
    count: 3,
    ratio: 0.5,
    name: "Zoë 🚀 名前",
    nothing: null,
    flag: false,
    nested: { list: [1, 2.5, "x", null, [true]] },
  };
  const value = toValue(document);
  assert.equal(value.kind.case, "json");
  assert.deepEqual(fromValue(value), document);
});

test("an unset value reads as null", () => {
  assert.equal(fromValue(undefined), null);
});

test("values outside the document model are refused", () => {
  for (const bad of [NaN, Infinity, 2 ** 53 + 2, undefined, () => 1, new Date(), new Map(), 1n]) {
    assert.throws(() => validateDocument({ field: bad }), TypeError, String(bad));
  }
  let deep: unknown = "leaf";
  for (let i = 0; i < 70; i++) deep = [deep];
  assert.throws(() => toValue(deep as never), /nested deeper/);
});

test("bytes travel as {$bytes: base64} in the JSON form and read back as Uint8Array", () => {
  const document = { blob: new Uint8Array([0, 255, 10]), list: [new Uint8Array([])] };
  const value = toValue(document);
  assert.equal(value.kind.case, "json");
  assert.deepEqual(toJson(JsonValueSchema, value.kind.value as never), {
    blob: { $bytes: "AP8K" },
    list: [{ $bytes: "" }],
  });
  const back = fromValue(value) as { blob: Uint8Array; list: Uint8Array[] };
  assert.ok(back.blob instanceof Uint8Array);
  assert.deepEqual([...back.blob], [0, 255, 10]);
  assert.equal(back.list[0].length, 0);
});

test("the $bytes object is reserved and must hold padded base64", () => {
  assert.throws(() => validateDocument({ field: { $bytes: "AA==" } }), /reserved/);
  assert.throws(() => documentFromJson({ $bytes: "A" }), /base64/);
  assert.throws(() => documentFromJson({ $bytes: 3 }), /base64/);
  assert.deepEqual(documentFromJson({ $bytes: "AA==", other: 1 }), { $bytes: "AA==", other: 1 });
});
