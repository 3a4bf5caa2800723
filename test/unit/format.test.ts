import { expect, test } from "bun:test";
import { csvField, formatRows, type Row } from "../../src/format";

const row = (over: Partial<Row>): Row => ({
  descriptor: "n", slot: 0, status: "active", file: "/d/n.slot0.lock", mode: "exclusive", pid: 10, owner: 9, uid: 0, user: "root",
  acquired: 1_795_000_000, type: "mutex", maxHolders: 1, hostname: "h", command: "cmd", format: "binary", ...over,
});

test("csv quotes commas, quotes and line breaks (RFC 4180)", () => {
  expect(csvField("plain")).toBe("plain");
  expect(csvField("a,b")).toBe('"a,b"');
  expect(csvField('say "hi"')).toBe('"say ""hi"""');
  expect(csvField("two\nlines")).toBe('"two\nlines"');
});

test("csv and null carry the same seven fields", () => {
  const rows = [row({ command: "x, y" }), row({ descriptor: "m", status: "corrupt", pid: null, user: null, acquired: null, command: null })];
  expect(formatRows(rows, "csv")).toBe('descriptor,pid,slot,user,acquired,status,command\nn,10,0,root,1795000000,active,"x, y"\nm,,0,,,corrupt,\n');
  expect(formatRows(rows, "null")).toBe("n\u000010\u00000\u0000root\u00001795000000\u0000active\u0000x, y\u0000m\u0000\u00000\u0000\u0000\u0000corrupt\u0000\u0000");
});

test("human has a header, aligned columns, a MODE column, and a STATUS column only when asked", () => {
  const text = formatRows([row({ command: "multi\nline" }), row({ mode: "shared", pid: 11 }), row({ mode: null, pid: 12 })], "human");
  const [header, line, reader, unknown] = text.trimEnd().split("\n");
  expect(header).toMatch(/^DESCRIPTOR  SLOT  MODE\s+PID  OWNER  USER  ACQUIRED\s+COMMAND$/);
  expect(line).toMatch(/^n\s+0\/1\s+exclusive\s+10\s+9\s+root\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+multi line$/);
  expect(reader).toMatch(/^n\s+0\/1\s+shared\s+11\s/);
  expect(unknown).toMatch(/^n\s+0\/1\s+-\s+12\s/);
  expect(formatRows([row({})], "human", true).split("\n")[0]).toContain("STATUS");
  expect(JSON.parse(formatRows([row({})], "json"))).toEqual([row({})]);
});
