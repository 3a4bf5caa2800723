// The library API (src/index.ts): the same locks as the CLI, from inside a Bun program.
import { expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { AlreadyHeldError, BusyError, CancelledError, TimeoutError, UsageError, acquire, acquireAsync, tryAcquire } from "../src/index";
import { BIN, held, listJson, lockDir, queuedInKernel, start, startSh, waitFor, wl } from "./helpers";

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

test("acquireAsync waits off the event loop: a 10 ms timer keeps ticking, and the slot comes when it is let go", async () => {
  const d = lockDir();
  const holder = startSh(`exec "$WL" -d "$D" busy --exec sh -c 'touch "$D/held"; read -r _'`, d);
  await waitFor("holder", () => existsSync(`${d}/held`));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  try {
    let settled = false;
    const pending = acquireAsync("busy", { lockDir: d, timeout: 30 }).finally(() => (settled = true));
    await waitFor("the wait in the kernel's queue", () => queuedInKernel(process.pid));
    const before = ticks;
    await waitFor("20 ticks while waiting", () => ticks >= before + 20);
    expect(settled).toBe(false);
    (holder.stdin as { end(): unknown }).end();
    await using lock = await pending;
    expect(lock).toMatchObject({ name: "busy", slot: 0, released: false });
    expect((await listJson(d))[0]).toMatchObject({ descriptor: "busy", pid: process.pid, status: "active" });
  } finally {
    clearInterval(timer);
  }
  expect(await held(d, "busy")).toBe(false);
});

test("the synchronous acquire does block the event loop (negative control for the test above)", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "blocked", "--exec", "sleep", "30"]);
  await waitFor("holder", () => held(d, "blocked"));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  expect(() => acquire("blocked", { lockDir: d, timeout: 0.3 })).toThrow(TimeoutError);
  clearInterval(timer);
  expect(ticks).toBe(0);
});

test("acquireAsync: an abort withdraws the queued request, a timeout is TimeoutError, both name the lock", async () => {
  const d = lockDir();
  const holder = startSh(`exec "$WL" -d "$D" gate --exec sh -c 'touch "$D/held"; read -r _'`, d);
  await waitFor("holder", () => existsSync(`${d}/held`));
  const abort = new AbortController();
  const pending = acquireAsync("gate", { lockDir: d, signal: abort.signal });
  await waitFor("the wait in the kernel's queue", () => queuedInKernel(process.pid));
  abort.abort();
  const error = await pending.then(() => null, (e) => e);
  expect(error).toBeInstanceOf(CancelledError);
  expect(error).toMatchObject({ context: "gate", exitCode: 2 });
  await waitFor("the request to leave the kernel's queue", () => !queuedInKernel(process.pid));
  // Let go: the abandoned request must not be granted later.
  (holder.stdin as { end(): unknown }).end();
  await holder.exited;
  expect(await held(d, "gate")).toBe(false);
  // The promise rejects at the abort; the waiting thread leaves the queue just after, and,
  // last to leave, removes the slot file the holder left while it was still queued.
  await waitFor("the withdrawn request's files to go", () => readdirSync(d).filter((f) => f.startsWith("gate.")).length === 0);

  start([BIN, "-d", d, "gate", "--exec", "sleep", "30"]);
  await waitFor("a new holder", () => held(d, "gate"));
  const t0 = performance.now();
  const late = await acquireAsync("gate", { lockDir: d, timeout: 0.2 }).then(() => null, (e) => e);
  expect(late).toBeInstanceOf(TimeoutError);
  expect(late.context).toBe("gate");
  expect(performance.now() - t0).toBeGreaterThanOrEqual(200);
  expect(await acquireAsync("gate", { lockDir: d, timeout: 0 }).then(() => null, (e) => e)).toBeInstanceOf(BusyError);
  const aborted = new AbortController();
  aborted.abort();
  expect(await acquireAsync("gate", { lockDir: d, signal: aborted.signal }).then(() => null, (e) => e)).toBeInstanceOf(CancelledError);
});

test("a NAME this process holds every slot of is refused at once, naming the lock (no self-deadlock)", async () => {
  const d = lockDir();
  await using mutex = await acquireAsync("self", { lockDir: d });
  expect(() => acquire("self", { lockDir: d })).toThrow(AlreadyHeldError);
  const e = await acquireAsync("self", { lockDir: d, timeout: 5 }).then(() => null, (x) => x);
  expect(e).toBeInstanceOf(AlreadyHeldError);
  expect(e.context).toBe("self");
  expect(e.message).toContain("already held by this process");
  // Trying once is only busy; a semaphore with a slot left is served.
  expect(tryAcquire("self", { lockDir: d })).toBeNull();
  using first = acquire("pair", { lockDir: d, slots: 2 });
  await using second = await acquireAsync("pair", { lockDir: d, slots: 2 });
  expect([first.slot, second.slot]).toEqual([0, 1]);
  expect(() => acquire("pair", { lockDir: d, slots: 2, timeout: 1 })).toThrow(AlreadyHeldError);
  expect(mutex.released).toBe(false);
});
