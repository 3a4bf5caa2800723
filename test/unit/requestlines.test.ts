// The coprocess's request reader (src/modes/serve.ts RequestLines): lines cut from a byte
// stream whatever the reads' boundaries, and a line over the limit refused by its start.
import { expect, test } from "bun:test";
import { RequestLines, decodeField, rawFields } from "../../src/modes/serve";

function reader(max: number) {
  const got: string[] = [];
  const lines = new RequestLines(max, (l) => got.push(`line ${l}`), (head) => got.push(`long ${head}`));
  return { got, lines };
}

const bytes = (s: string) => new TextEncoder().encode(s);

test("lines are cut at newlines, across reads, with a character split between two reads", () => {
  const { got, lines } = reader(100);
  const all = bytes("1 acquire a\n2 check é\n3 list\n4 end");
  for (const [from, to] of [[0, 5], [5, 20], [20, 21], [21, all.length]]) lines.push(all.subarray(from, to));
  lines.end();
  expect(got).toEqual(["line 1 acquire a", "line 2 check é", "line 3 list", "line 4 end"]);
});

test("a line over the limit is reported once by its start and skipped to its newline; the next line is read", () => {
  const { got, lines } = reader(10);
  lines.push(bytes("9 acquire xxxxxxxx"));
  lines.push(bytes("yyyyyyyyyyyyyyyyyyyy"));
  lines.push(bytes("zz\n1 ok\n"));
  lines.push(bytes("0123456789\n"));
  lines.end();
  expect(got).toEqual(["long 9 acquire xxxxxxxx", "line 1 ok", "line 0123456789"]);
});

test("fields: empty ones dropped, %XX decoded, a lone % empty, a bad escape a usage error naming the field", () => {
  expect(rawFields(" 1  acquire %20a ")).toEqual(["1", "acquire", "%20a"]);
  expect(["%20a", "%", "b%25"].map(decodeField)).toEqual([" a", "", "b%"]);
  expect(() => decodeField("x%zz")).toThrow(expect.objectContaining({ exitCode: 3, context: "x%zz" }));
});
