import { test } from "node:test";
import assert from "node:assert/strict";

import { fromValue, toValue, validateDocument } from "../values.js";

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
