import { expect, test } from "bun:test";
import type { Row, WaiterRow } from "../../src/format";
import { FAMILIES, helpText, labelValue, prometheusText } from "../../src/prometheus";

const row = (over: Partial<Row>): Row => ({
  descriptor: "n", slot: 0, status: "active", file: "/d/n.slot0.lock", pid: 10, owner: 9, uid: 0, user: "root",
  acquired: 1000, type: "semaphore", maxHolders: 3, hostname: "h", command: "cmd", format: "binary", mode: "exclusive", ...over,
});
const waiter = (over: Partial<WaiterRow>): WaiterRow => ({
  descriptor: "n", status: "waiting", position: 1, file: "/d/n.queue.lock", pid: 20, uid: 0, user: "root",
  waitingSince: 1050.5, hostname: "h", command: "waitlock n", ...over,
});

test("label values escape backslash, double quote and line feed; HELP text backslash and line feed", () => {
  expect(labelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
  expect(helpText('a\\b"c\nd')).toBe('a\\\\b"c\\nd');
});

test("metric names: waitlock_ prefix, snake_case, seconds as the unit of time", () => {
  for (const f of FAMILIES) expect(f.name).toMatch(/^waitlock_[a-z]+(_[a-z]+)*$/);
  expect(FAMILIES.filter((f) => /age/.test(f.name)).map((f) => f.name.endsWith("_seconds"))).toEqual([true, true]);
});

test("per lock: slots, held slots, holders, waiters, ages at `now`, stale and corrupt records", () => {
  const text = prometheusText(
    {
      holders: [
        row({}),
        row({ slot: 1, acquired: 900 }),
        // a slot whose recorded holder is gone: two processes the kernel names hold it
        row({ slot: 2, acquired: null, maxHolders: null, pid: 11 }),
        row({ slot: 2, acquired: null, maxHolders: null, pid: 12 }),
        row({ descriptor: "old", status: "stale" }),
        row({ descriptor: "old", slot: 1, status: "corrupt", maxHolders: null }),
      ],
      waiters: [waiter({}), waiter({ position: 2, waitingSince: 1070 })],
    },
    1100,
    '/run/lock/"x"',
  );
  const samples = text.split("\n").filter((l) => l && !l.startsWith("#"));
  const label = (lock: string) => `{lock_dir="/run/lock/\\"x\\"",lock="${lock}"}`;
  expect(samples).toEqual([
    `waitlock_slots${label("n")} 3`,
    `waitlock_held_slots${label("n")} 3`,
    `waitlock_held_slots${label("old")} 0`,
    `waitlock_holders${label("n")} 4`,
    `waitlock_holders${label("old")} 0`,
    `waitlock_waiters${label("n")} 2`,
    `waitlock_waiters${label("old")} 0`,
    `waitlock_oldest_holder_age_seconds${label("n")} 200`,
    `waitlock_oldest_waiter_age_seconds${label("n")} 49.5`,
    `waitlock_stale_records${label("n")} 0`,
    `waitlock_stale_records${label("old")} 1`,
    `waitlock_corrupt_records${label("n")} 0`,
    `waitlock_corrupt_records${label("old")} 1`,
  ]);
  // Every family announces itself, with or without samples.
  for (const f of FAMILIES) expect(text).toContain(`# HELP ${f.name} `);
  expect(text.split("\n").filter((l) => l.startsWith("# TYPE")).every((l) => l.endsWith(" gauge"))).toBe(true);
  expect(prometheusText({ holders: [], waiters: [] }, 0, undefined).split("\n").filter((l) => l && !l.startsWith("#"))).toEqual([]);
});

test("on an engine, a lock nobody described (another program's, listed as corrupt) is held all the same", () => {
  const text = prometheusText(
    { holders: [row({ descriptor: "other", status: "corrupt", maxHolders: null, acquired: null, pid: null })], waiters: [], network: true },
    1100,
    undefined,
  );
  const samples = text.split("\n").filter((l) => l && !l.startsWith("#"));
  expect(samples).toContain('waitlock_held_slots{lock="other"} 1');
  expect(samples).toContain('waitlock_holders{lock="other"} 1');
  expect(samples).toContain('waitlock_corrupt_records{lock="other"} 1');
});
