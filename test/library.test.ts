// The library API (src/index.ts): the same locks as the CLI, from inside a Bun program.
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { BusyError, TimeoutError, UsageError, acquire, tryAcquire } from "../src/index";
import { BIN, held, listJson, lockDir, start, waitFor, wl } from "./helpers";

test("acquire holds the slot for the CLI to see; release frees it and removes the file", async () => {
  const d = lockDir();
  const lock = acquire("lib", { lockDir: d, command: "embedded worker" });
  expect(lock).toMatchObject({ name: "lib", slot: 0, path: `${d}/lib.slot0.lock`, released: false });
  expect(await held(d, "lib")).toBe(true);
  expect((await wl(["-d", d, "-t", "0", "lib", "--exec", "true"])).code).toBe(1);
  expect((await listJson(d))[0]).toMatchObject({ descriptor: "lib", pid: process.pid, owner: process.pid, command: "embedded worker", status: "active" });
  lock.release();
  lock.release();
  expect(lock.released).toBe(true);
  expect(existsSync(lock.path)).toBe(false);
  expect(await held(d, "lib")).toBe(false);
});

test("tryAcquire returns null when busy; acquire with a timeout throws BusyError or TimeoutError", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "taken", "--exec", "sleep", "30"]);
  await waitFor("holder", () => held(d, "taken"));
  expect(tryAcquire("taken", { lockDir: d })).toBeNull();
  expect(() => acquire("taken", { lockDir: d, timeout: 0 })).toThrow(BusyError);
  const t0 = performance.now();
  expect(() => acquire("taken", { lockDir: d, timeout: 0.2 })).toThrow(TimeoutError);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(200);
});

test("semaphores, preferred slots, and `using` releases at the end of the scope", () => {
  const d = lockDir();
  {
    using a = acquire("pool", { lockDir: d, slots: 3, preferredSlot: 2 });
    using b = acquire("pool", { lockDir: d, slots: 3 });
    using c = acquire("pool", { lockDir: d, slots: 3, record: false });
    expect([a.slot, b.slot, c.slot]).toEqual([2, 0, 1]);
    expect(tryAcquire("pool", { lockDir: d, slots: 3 })).toBeNull();
  }
  const again = tryAcquire("pool", { lockDir: d, slots: 3 });
  expect(again?.slot).toBe(0);
  again!.release();
});

test("bad arguments are UsageErrors", () => {
  const d = lockDir();
  expect(() => acquire("bad name", { lockDir: d })).toThrow(UsageError);
  expect(() => acquire("x", { lockDir: d, slots: 0 })).toThrow(UsageError);
  expect(() => acquire("x", { lockDir: d, slots: 2, preferredSlot: 2 })).toThrow(UsageError);
  expect(() => acquire("x", { lockDir: d, timeout: -1 })).toThrow(UsageError);
});
