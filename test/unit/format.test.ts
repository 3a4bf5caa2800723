import { expect, test } from "bun:test";
import { byName, csvField, formatRows, humanLines, type Row, type WaiterRow } from "../../src/format";
import { duration } from "../../src/statusline";

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

const waiter = (over: Partial<WaiterRow>): WaiterRow => ({
  descriptor: "n", status: "waiting", position: 1, file: "/d/n.queue.lock", pid: 20, uid: 0, user: "root",
  waitingSince: 1_795_000_010.37, hostname: "h", command: "waitlock n", ...over,
});

test("waiting rows keep the seven fields: position for slot, whole seconds waited since for acquired", () => {
  const text = formatRows([row({})], "csv", false, [waiter({}), waiter({ position: 2, pid: 21, command: "a,b" })]);
  expect(text).toBe(
    'descriptor,pid,slot,user,acquired,status,command\nn,10,0,root,1795000000,active,cmd\nn,20,1,root,1795000010,waiting,waitlock n\nn,21,2,root,1795000010,waiting,"a,b"\n',
  );
  expect(formatRows([], "null", false, [waiter({ pid: null, user: null, waitingSince: null, command: null })])).toBe("n\u0000\u00001\u0000\u0000\u0000waiting\u0000\u0000");
  expect(JSON.parse(formatRows([row({})], "json", false, [waiter({})]))).toEqual([row({}), waiter({})]);
});

test("each NAME's holders, then its waiters; a NAME nobody holds where its name sorts", () => {
  const listing = {
    holders: [row({ descriptor: "b" }), row({ descriptor: "b", slot: 1 }), row({ descriptor: "d" })],
    waiters: [waiter({ descriptor: "a" }), waiter({ descriptor: "b" }), waiter({ descriptor: "b", position: 2 }), waiter({ descriptor: "c" }), waiter({ descriptor: "e" })],
  };
  expect(byName(listing).map((r) => `${r.descriptor}${r.status === "waiting" ? `w${r.position}` : `s${r.slot}`}`)).toEqual(["aw1", "bs0", "bs1", "bw1", "bw2", "cw1", "ds0", "ew1"]);
});

test("human: a second table for waiters; with a time, HELD and WAITED columns", () => {
  const lines = humanLines({ holders: [row({})], waiters: [waiter({})] }, { now: 1_795_000_100 });
  expect(lines[0]).toMatch(/^DESCRIPTOR\s+SLOT\s+MODE\s+PID\s+OWNER\s+USER\s+ACQUIRED\s+HELD\s+COMMAND$/);
  expect(lines[1]).toMatch(/\s1m40s\s+cmd$/);
  expect(lines[2]).toBe("");
  expect(lines[3]).toMatch(/^DESCRIPTOR\s+POSITION\s+PID\s+USER\s+WAITING SINCE\s+WAITED\s+COMMAND$/);
  expect(lines[4]).toMatch(/^n\s+1\s+20\s+root\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+1m29s\s+waitlock n$/);
  expect(humanLines({ holders: [], waiters: [waiter({})] })[0]).toMatch(/^DESCRIPTOR\s+POSITION/);
  expect(humanLines({ holders: [], waiters: [] })).toHaveLength(1);
});

test("durations read at a glance", () => {
  expect([0, 59.9, 60, 3599, 3600, 86399, 86400 * 3 + 3600 * 4].map(duration)).toEqual(["0s", "59s", "1m00s", "59m59s", "1h00m", "23h59m", "3d04h"]);
});
