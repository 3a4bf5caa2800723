// The Redis backend against real throwaway servers (test/servers/redis.ts): on loopback
// from this process, and across simulated hosts (test/hosts.ts) through the waitlock
// binary (test/backend-fixture.ts).
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { Lease } from "../src/backend";
import { connectRedis } from "../src/backends/redis";
import { EXTEND } from "../src/backends/redis/scripts";
import { expectWaitersOfEveryHost, fixture } from "./backend-fixture";
import { dirs } from "./cleanup";
import { alive, BIN, run, start, waitFor, wl } from "./helpers";
import { createHosts, netnsMissing } from "./hosts";
import { redisMissing, startRedis, type RedisServer } from "./servers/redis";
import { skipping } from "./servers/skip";

const noRedis = skipping("Redis backend tests", redisMissing());
const noHosts = noRedis || skipping("Redis tests across simulated hosts", netnsMissing());

const holder = { host: "tester", pid: process.pid, owner: process.ppid, uid: 0, user: "test", command: "bun test" };

/** Every key in the server's database `db`, sorted. */
async function keys(s: RedisServer, db = 0): Promise<string[]> {
  return ((await s.admin(["KEYS", "*"], db)) as string[]).sort();
}

describe.skipIf(noRedis)("Redis backend on loopback", () => {
  test("the library: aborting a waiting acquireAsync rejects with CancelledError and leaves the queue at once", async () => {
    const s = await startRedis();
    const lib = await import("../src/index");
    const first = await lib.acquireAsync("abort", { backend: s.url() });
    const giveUp = new AbortController();
    const waiting = lib.acquireAsync("abort", { backend: s.url(), signal: giveUp.signal });
    await waitFor("the request to be queued", async () => (await s.admin(["ZCARD", "waitlock:{abort}:queue"])) === 1);
    giveUp.abort();
    await expect(waiting).rejects.toBeInstanceOf(lib.CancelledError);
    // Left, not lapsed a second later.
    expect(await s.admin(["ZCARD", "waitlock:{abort}:queue"])).toBe(0);
    await first[Symbol.asyncDispose]();
    const next = await lib.acquireAsync("abort", { backend: s.url(), timeout: 0 });
    await next[Symbol.asyncDispose]();
  }, 30_000);

  test("a slot is the documented key: a hash waitlock:{NAME}:slotK with a time to live, never a key equal to NAME; the db number is part of the lock space", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url({ ttl: "5", confirm_timeout: "2", grace: "1" }));
    const lease = await b.acquire("shared-name", { holder, timeout: 0 });
    expect(await s.admin(["TYPE", "waitlock:{shared-name}:slot0"])).toBe("hash");
    expect(await s.admin(["HGET", "waitlock:{shared-name}:slot0", "token"])).toBe(lease.token);
    const pttl = (await s.admin(["PTTL", "waitlock:{shared-name}:slot0"])) as number;
    expect(pttl).toBeGreaterThan(4000);
    expect(pttl).toBeLessThanOrEqual(5000);
    expect(await keys(s)).toEqual(["waitlock:{shared-name}:slot0", "waitlock:{shared-name}:token"]);
    // another database is another lock space
    const other = connectRedis(s.url({}, undefined, 1));
    const there = await other.acquire("shared-name", { holder, timeout: 0 });
    await expect(b.acquire("shared-name", { holder, timeout: 0 })).rejects.toMatchObject({ exitCode: 1 });
    await there.release();
    await lease.release();
    expect(await keys(s)).toEqual(["waitlock:{shared-name}:token"]);
    await b.close();
    await other.close();
  }, 30_000);

  test("another program's SET waitlock:{NAME}:slot0 ID NX PX excludes waitlock and is listed as unknown with -a; waitlock's holder makes that SET fail", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url());
    expect(await s.admin(["SET", "waitlock:{other}:slot0", "their-id", "NX", "PX", "5000"])).toBe("OK");
    await expect(b.acquire("other", { holder, timeout: 0 })).rejects.toMatchObject({ exitCode: 1 });
    expect(await b.list({ name: "other" })).toEqual([]);
    const [row] = await b.list({ name: "other", all: true });
    expect(row).toMatchObject({ status: "unknown", name: "other", slot: 0, token: null, host: null });
    expect(row!.expiresIn).toBeGreaterThan(3);
    expect((await b.done("other", { host: "x", ancestors: [], timeout: 1 })).asked).toEqual([]);
    expect(await s.admin(["DEL", "waitlock:{other}:slot0"])).toBe(1);
    const lease = await b.acquire("other", { holder, timeout: 0 });
    expect(await s.admin(["SET", "waitlock:{other}:slot0", "their-id", "NX", "PX", "5000"])).toBeNull();
    await lease.release();
    await b.close();
  }, 30_000);

  test("-t 0 answers busy, a timeout of 0.3 s expires within 0.1 s and leaves nothing behind (mutex and semaphore)", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url());
    const held = await b.acquire("t", { holder });
    const sem = await Promise.all([0, 1].map(() => b.acquire("sem", { holder, slots: 2 })));
    const before = await keys(s);
    for (const slots of [1, 2]) {
      const name = slots === 1 ? "t" : "sem";
      const t0 = performance.now();
      await expect(b.acquire(name, { holder, slots, timeout: 0 })).rejects.toMatchObject({ exitCode: 1 });
      expect(performance.now() - t0).toBeLessThan(1000);
      const t1 = performance.now();
      await expect(b.acquire(name, { holder, slots, timeout: 0.3 })).rejects.toMatchObject({ exitCode: 2 });
      const ms = performance.now() - t1;
      expect(ms).toBeGreaterThanOrEqual(300);
      expect(ms).toBeLessThan(400);
      expect(await keys(s)).toEqual(before);
    }
    // Withdrawn, not granted later: once the holder lets go, nobody else holds the slot.
    await held.release();
    expect(await b.check("t", 1)).toBe(1);
    for (const l of sem) await l.release();
    await b.close();
  }, 30_000);

  test("a waiter is woken by the release; tokens increase; --list shows host, PID, command, since, token and the lease's time left", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url());
    const first = await b.acquire("q", { holder: { ...holder, host: "alpha", pid: 111, command: "first --job" } });
    const [row] = await b.list({ name: "q" });
    expect(row).toMatchObject({ status: "active", name: "q", slot: 0, slots: 1, token: first.token, host: "alpha", pid: 111, command: "first --job", shared: false });
    expect(Math.abs(row!.acquired! - Date.now() / 1000)).toBeLessThan(5);
    expect(row!.expiresIn).toBeGreaterThan(8);
    expect(row!.expiresIn).toBeLessThanOrEqual(10);
    expect(row!.backendPid).toBeGreaterThan(0);
    expect((await b.list()).map((r) => r.name)).toEqual(["q"]);
    const waiting = b.acquire("q", { holder: { ...holder, host: "beta" } });
    await waitFor("the waiter to queue", async () => (await keys(s)).includes("waitlock:{q}:queue"));
    const t0 = performance.now();
    await first.release();
    const second = await waiting;
    // woken by the release's publication, not by the periodic look
    expect(performance.now() - t0).toBeLessThan(100);
    expect(BigInt(second.token)).toBeGreaterThan(BigInt(first.token));
    expect((await b.list({ name: "q" })).map((r) => r.host)).toEqual(["beta"]);
    await second.release();
    expect(await b.list({ name: "q" })).toEqual([]);
    await b.close();
  }, 30_000);

  test("waiters on a mutex are served in the order they arrived", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url());
    const first = await b.acquire("fifo", { holder });
    const order: number[] = [];
    const waiters: Promise<Lease>[] = [];
    for (let i = 0; i < 4; i++) {
      waiters.push(b.acquire("fifo", { holder }).then((l) => (order.push(i), l)));
      await waitFor(`waiter ${i} to queue`, async () => (await s.admin(["ZCARD", "waitlock:{fifo}:queue"])) === i + 1);
    }
    await first.release();
    for (const w of waiters) await (await w).release();
    expect(order).toEqual([0, 1, 2, 3]);
    await b.close();
  }, 30_000);

  test("a semaphore gives N slots, the preferred one first, and queues the N+1st until one is released", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url());
    const a = await b.acquire("pool", { holder, slots: 3, preferred: 2 });
    expect(a.slot).toBe(2);
    const rest = [await b.acquire("pool", { holder, slots: 3 }), await b.acquire("pool", { holder, slots: 3 })];
    expect(rest.map((l) => l.slot)).toEqual([0, 1]);
    expect(await b.check("pool", 3)).toBe(0);
    let fourth: Lease | undefined;
    const waiting = b.acquire("pool", { holder, slots: 3, preferred: 0 }).then((l) => (fourth = l));
    await Bun.sleep(300);
    expect(fourth).toBeUndefined();
    await rest[1]!.release();
    await waiting;
    expect(fourth!.slot).toBe(1);
    for (const l of [a, rest[0]!, fourth!]) await l.release();
    await b.close();
  }, 30_000);

  test("shared locks: readers together, a writer alone, a writer queued before a reader is served first; a reader's lease is extended and listed", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url());
    const r1 = await b.acquire("rw", { holder, shared: true });
    const r2 = await b.acquire("rw", { holder, shared: true, timeout: 0 });
    expect([r1.shared, r1.slot, BigInt(r2.token) > BigInt(r1.token)]).toEqual([true, 0, true]);
    await expect(b.acquire("rw", { holder, timeout: 0 })).rejects.toMatchObject({ exitCode: 1 });
    expect(await b.check("rw", 1)).toBe(0);
    const rows = await b.list({ name: "rw" });
    expect(rows.map((r) => [r.shared, r.slot, r.token])).toEqual(expect.arrayContaining([[true, 0, r1.token], [true, 0, r2.token]]));
    const order: string[] = [];
    const writer = b.acquire("rw", { holder }).then((l) => (order.push("writer"), l));
    await waitFor("the writer to queue", async () => (await s.admin(["ZCARD", "waitlock:{rw}:queue"])) === 1);
    const reader = b.acquire("rw", { holder, shared: true }).then((l) => (order.push("reader"), l));
    await waitFor("the reader to queue", async () => (await s.admin(["ZCARD", "waitlock:{rw}:queue"])) === 2);
    // the readers' leases are extended like any other: still held after a few heartbeats
    await Bun.sleep(1500);
    expect(order).toEqual([]);
    await r1.release();
    await r2.release();
    const w = await writer;
    expect(order).toEqual(["writer"]);
    await w.release();
    const r3 = await reader;
    expect(order).toEqual(["writer", "reader"]);
    await r3.release();
    expect(await keys(s)).toEqual(["waitlock:{rw}:token"]);
    await expect(b.acquire("rw", { holder, shared: true, slots: 2 })).rejects.toMatchObject({ exitCode: 3 });
    await b.close();
  }, 30_000);

  test("a shared holder killed with SIGKILL: its lease runs out within the ttl, then a writer gets the lock", async () => {
    const s = await startRedis();
    const url = s.url({ ttl: "3", confirm_timeout: "1", heartbeat: "0.5", grace: "1" });
    const h = fixture(undefined, "hold", { url, name: "rk", shared: true });
    await h.event("acquired");
    const w = fixture(undefined, "hold", { url, name: "rk" }, ["true"]);
    await waitFor("the writer to queue", async () => (await s.admin(["ZCARD", "waitlock:{rk}:queue"])) === 1);
    const killedAt = Date.now();
    h.killHolder();
    const freedIn = (await w.event("acquired")).at - killedAt;
    expect(freedIn).toBeGreaterThan(2000);
    expect(freedIn).toBeLessThan(3300);
    expect(await w.exited()).toBe(0);
  }, 30_000);

  test("a holder killed with SIGKILL: its lease runs out within the ttl (measured); a waiter killed with SIGKILL leaves the queue within about a second", async () => {
    const s = await startRedis();
    const url = s.url({ ttl: "3", confirm_timeout: "1", heartbeat: "0.5", grace: "1" });
    const h = fixture(undefined, "hold", { url, name: "k" });
    await h.event("acquired");
    const w = fixture(undefined, "hold", { url, name: "k" }, ["true"]);
    await waitFor("the waiter to queue", async () => (await s.admin(["ZCARD", "waitlock:{k}:queue"])) === 1);
    const killedAt = Date.now();
    h.killHolder();
    const freedIn = (await w.event("acquired")).at - killedAt;
    console.log(`redis: a SIGKILLed holder's slot was taken ${freedIn} ms after the kill (ttl 3 s, heartbeat 0.5 s)`);
    expect(freedIn).toBeGreaterThan(2000);
    expect(freedIn).toBeLessThan(3300);
    expect(await w.exited()).toBe(0);

    const b = connectRedis(url);
    const held = await b.acquire("k", { holder });
    const dead = fixture(undefined, "hold", { url, name: "k" }, ["true"]);
    const live = b.acquire("k", { holder });
    await waitFor("both waiters to queue", async () => (await s.admin(["ZCARD", "waitlock:{k}:queue"])) === 2);
    dead.p.kill("SIGKILL");
    await dead.p.exited;
    await Bun.sleep(1500);
    const t0 = performance.now();
    await held.release();
    // the killed waiter, first in line, holds nobody up
    await (await live).release();
    expect(performance.now() - t0).toBeLessThan(100);
    expect(await keys(s)).toEqual(["waitlock:{k}:token"]);
    await b.close();
  }, 30_000);

  test("a lease the server no longer holds for us (the key deleted): lost at the next extension, command stopped, exit 7", async () => {
    const s = await startRedis();
    const h = fixture(undefined, "hold", { url: s.url(), name: "gone", grace: 1 }, ["sleep", "60"]);
    await h.event("started");
    const t0 = Date.now();
    await s.admin(["DEL", "waitlock:{gone}:slot0"]);
    const lost = await h.event("lost");
    expect(lost.at - t0).toBeLessThan(1500);
    expect(lost.message).toContain("no longer holds it");
    expect(await h.exited()).toBe(7);
    expect(h.events.some((e) => e.event === "stopped")).toBe(true);
    expect(h.stderr()).toContain("waitlock: gone: lock lost");
  }, 30_000);

  test("compare-and-extend refuses a lease whose last extension is older than the confirm window (left in place), and a key that is not its hash", async () => {
    const s = await startRedis();
    const extend = (key: string) => s.admin(["EVAL", EXTEND, "2", key, "waitlock:{x}", "L", "4000", "1000"]);
    await s.admin(["HSET", "waitlock:{x}:slot0", "lease", "L"]);
    await s.admin(["PEXPIRE", "waitlock:{x}:slot0", "3500"]);
    expect(await extend("waitlock:{x}:slot0")).toEqual([1, ""]);
    expect((await s.admin(["PTTL", "waitlock:{x}:slot0"])) as number).toBeGreaterThan(3900);
    await s.admin(["PEXPIRE", "waitlock:{x}:slot0", "2500"]);
    expect(await extend("waitlock:{x}:slot0")).toEqual([2, ""]);
    expect((await s.admin(["PTTL", "waitlock:{x}:slot0"])) as number).toBeLessThanOrEqual(2500);
    expect(await s.admin(["HGET", "waitlock:{x}:slot0", "lease"])).toBe("L");
    await s.admin(["SET", "waitlock:{x}:slot1", "L", "PX", "3000"]);
    expect(await extend("waitlock:{x}:slot1")).toEqual([0, ""]);
  }, 30_000);

  /**
   * A holder (ttl 4, confirm_timeout 1) and a queued waiter; `stall` for 1.5 s, then
   * `resume`: the holder exits 7, its command stopped before the waiter is served. Returns
   * the ms from the resume until the waiter got the lock.
   */
  /** A shell that takes NAME with a plain `waitlock --backend URL NAME`, says "held", and sleeps. */
  function fixtureScript(url: string, name: string) {
    const p = start(["/bin/sh", "-c", `"$WL" --backend "$URL" ${name} && echo held && exec sleep 60`], { env: { WL: BIN, URL: url }, stdout: "pipe" });
    let text = "";
    (async () => {
      for await (const c of p.stdout as ReadableStream<Uint8Array>) text += new TextDecoder().decode(c);
    })();
    return { p, out: () => text };
  }

  async function servedAfterStall(s: RedisServer, name: string, stall: (holder: number) => void, resume: (holder: number) => void): Promise<number> {
    const url = s.url({ ttl: "4", confirm_timeout: "1", heartbeat: "0.3", grace: "1" });
    const h = fixture(undefined, "hold", { url, name }, ["sleep", "60"]);
    await h.event("started");
    const w = fixture(undefined, "hold", { url, name }, ["true"]);
    await waitFor("the waiter to queue", async () => (await s.admin(["ZCARD", `waitlock:{${name}}:queue`])) === 1);
    stall(h.p.pid);
    let resumed: number;
    try {
      await Bun.sleep(1500);
    } finally {
      resume(h.p.pid);
      resumed = Date.now();
    }
    const got = await w.event("acquired");
    expect(await h.exited()).toBe(7);
    expect((await h.event("stopped")).at).toBeLessThan(got.at);
    expect(await w.exited()).toBe(0);
    return got.at - resumed;
  }

  test("a plain acquire's holder paused longer than confirm_timeout: the owner script is stopped, and the lock is free once it is gone, not a ttl later", async () => {
    const s = await startRedis();
    const url = s.url({ ttl: "4", confirm_timeout: "1", heartbeat: "0.3", grace: "1" });
    const script = fixtureScript(url, "plainpause");
    await waitFor("the script to hold the lock", () => script.out().includes("held"), 15_000);
    const listed = JSON.parse((await wl(["--backend", url, "--list", "-f", "json", "plainpause"])).stdout);
    const holderPid = listed[0].pid as number;
    const w = fixture(undefined, "hold", { url, name: "plainpause" }, ["true"]);
    await waitFor("the waiter to queue", async () => (await s.admin(["ZCARD", "waitlock:{plainpause}:queue"])) === 1);
    process.kill(holderPid, "SIGSTOP");
    let resumed: number;
    try {
      await Bun.sleep(1500);
    } finally {
      process.kill(holderPid, "SIGCONT");
      resumed = Date.now();
    }
    expect(await script.p.exited).toBe(143);
    const got = await w.event("acquired");
    console.log(`redis: a plain acquire's holder paused 1.5 s (ttl 4): the waiter got the lock ${got.at - resumed} ms after it resumed`);
    expect(got.at - resumed).toBeLessThan(1500);
    expect(await w.exited()).toBe(0);
  }, 30_000);

  test("a server that hangs longer than confirm_timeout: the lost holder's extension that runs when it resumes is refused, and the lock is free once the command is gone, not a ttl later", async () => {
    const s = await startRedis();
    const ms = await servedAfterStall(s, "late", () => process.kill(s.pid, "SIGSTOP"), () => process.kill(s.pid, "SIGCONT"));
    console.log(`redis: server hung 1.5 s (confirm_timeout 1, ttl 4): the waiter got the lock ${ms} ms after the server resumed`);
    expect(ms).toBeLessThan(1500);
  }, 30_000);

  test("a holder paused (SIGSTOP) longer than confirm_timeout: lost on resuming, its command stopped, and the lock free once the command is gone, not a ttl later", async () => {
    const s = await startRedis();
    const ms = await servedAfterStall(s, "paused", (pid) => process.kill(pid, "SIGSTOP"), (pid) => process.kill(pid, "SIGCONT"));
    console.log(`redis: holder paused 1.5 s (confirm_timeout 1, ttl 4): the waiter got the lock ${ms} ms after the holder resumed`);
    expect(ms).toBeLessThan(1500);
  }, 30_000);

  /** A holder under --exec whose command runs until go() is called, then ends with 0. */
  async function holdUntilGo(s: RedisServer, name: string) {
    const dir = mkdtempSync(join(tmpdir(), "waitlock-redis-"));
    dirs.push(dir);
    const file = join(dir, "go");
    const h = fixture(undefined, "hold", { url: s.url(), name }, ["sh", "-c", `while [ ! -e ${file} ]; do sleep 0.01; done`]);
    await h.event("started");
    return { h, go: () => writeFileSync(file, "") };
  }

  test("a lease lost within the last heartbeat interval (the key deleted): the command ends normally, the release finds the key not ours, and waitlock exits 7, not 0", async () => {
    const s = await startRedis();
    const { h, go } = await holdUntilGo(s, "last");
    expect(await s.admin(["DEL", "waitlock:{last}:slot0"])).toBe(1);
    go();
    expect(await h.exited()).toBe(7);
    expect(h.stderr()).toContain("waitlock: last: lock lost: when released, the server no longer held it for us");
    expect(h.events.some((e) => e.event === "stopped")).toBe(false);
  }, 30_000);

  test("an acquire whose PEXPIRE is refused (an ACL) fails with 5 and leaves no key without an expiry but the token (holder and waiter alike)", async () => {
    const s = await startRedis();
    await s.admin(["ACL", "SETUSER", "nopx", "on", ">pw", "~*", "&*", "+@all", "-pexpire"]);
    const url = `redis://nopx:pw@127.0.0.1:${s.port}/0`;
    const persistent = async () => {
      const out: string[] = [];
      for (const k of await keys(s)) if ((await s.admin(["PTTL", k])) === -1) out.push(k);
      return out;
    };
    const taking = await wl(["--backend", url, "-t", "0", "acl", "--exec", "true"]);
    expect([taking.code, taking.stderr]).toEqual([5, expect.stringContaining("can't run this command")]);
    expect(await persistent()).toEqual(["waitlock:{acl}:token"]);
    await s.admin(["SET", "waitlock:{busy}:slot0", "x", "PX", "20000"]);
    expect((await wl(["--backend", url, "-t", "1", "busy", "--exec", "true"])).code).toBe(5);
    expect(await persistent()).toEqual(["waitlock:{acl}:token"]);
  }, 30_000);

  test("an ACL user with exactly the rights README lists: acquire, wait, release, --exec, --list, --check, --done, shared, another db", async () => {
    const s = await startRedis();
    const line = /^ACL SETUSER waitlock .*$/m.exec(readFileSync(join(import.meta.dir, "../README.md"), "utf8"))![0];
    expect(await s.admin(line.replace(">PASSWORD", ">pw").split(" "))).toBe("OK");
    const url = `redis://waitlock:pw@127.0.0.1:${s.port}/0`;
    const inside = `"$WL" --backend "$URL" --list -f csv n | grep -c '^n,'; "$WL" --backend "$URL" --check n; echo check=$?; "$WL" --backend "$URL" -t 0.3 n; echo wait=$?`;
    const r = await run([BIN, "--backend", url, "n", "--exec", "sh", "-c", inside], { env: { WL: BIN, URL: url } });
    expect([r.code, r.stdout.trim().split("\n"), r.stderr]).toEqual([0, ["1", "check=1", "wait=2"], expect.stringContaining("timed out")]);
    expect(await keys(s)).toEqual(["waitlock:{n}:token"]);
    const h = fixture(undefined, "hold", { url, name: "job" }, ["sleep", "60"]);
    await h.event("started");
    expect(await fixture(undefined, "done", { url, name: "job" }).exited()).toBe(0);
    expect(await h.exited()).toBe(143);
    // a plain acquire's holder lives for its caller: a shell that exits at once (the test
    // runner as the owner would be sent SIGTERM once the server is gone)
    const plain = await run(["sh", "-c", '"$WL" --backend "$URL" -t 0 plain'], { env: { WL: BIN, URL: url } });
    expect([plain.code, plain.stderr]).toEqual([0, ""]);
    expect((await wl(["--backend", url, "-s", "r", "--exec", "true"])).code).toBe(0);
    expect((await wl(["--backend", url.replace(/\/0$/, "/1"), "d1", "--exec", "true"])).code).toBe(0);
    expect((await wl(["--backend", url, "--list"])).code).toBe(0);
  }, 30_000);

  test("a slot taken over by another program's plain SET: the holder loses it at its next extension as not ours (no WRONGTYPE, no timeout), and a release finds it not ours (exit 7)", async () => {
    const s = await startRedis();
    const h = fixture(undefined, "hold", { url: s.url(), name: "plain", grace: 1 }, ["sleep", "60"]);
    await h.event("started");
    const t0 = Date.now();
    await s.admin(["SET", "waitlock:{plain}:slot0", "theirs", "PX", "20000"]);
    const lost = await h.event("lost");
    expect(lost.at - t0).toBeLessThan(1200);
    expect(lost.message).toContain("no longer holds it");
    expect(await h.exited()).toBe(7);
    expect(await s.admin(["GET", "waitlock:{plain}:slot0"])).toBe("theirs");
    const r = await wl(["--backend", s.url(), "plain2", "--exec", "sh", "-c", `redis-cli -p ${s.port} -a secret --no-auth-warning SET 'waitlock:{plain2}:slot0' theirs PX 20000 >/dev/null`]);
    expect([r.code, r.stderr]).toEqual([7, expect.stringContaining("when released, the server no longer held it for us")]);
    expect(await s.admin(["GET", "waitlock:{plain2}:slot0"])).toBe("theirs");
  }, 30_000);

  test("an extension the server refuses (EVAL taken from the holder's ACL user): lost at once, saying why, not after confirm_timeout", async () => {
    const s = await startRedis();
    await s.admin(["ACL", "SETUSER", "u", "on", ">pw", "~*", "&*", "+@all"]);
    const h = fixture(undefined, "hold", { url: `redis://u:pw@127.0.0.1:${s.port}/0`, name: "refused", grace: 1 }, ["sleep", "60"]);
    await h.event("started");
    const t0 = Date.now();
    await s.admin(["ACL", "SETUSER", "u", "-eval"]);
    const lost = await h.event("lost");
    expect(lost.at - t0).toBeLessThan(1200);
    expect(lost.message).toContain("the server refused to extend it");
    expect(await h.exited()).toBe(7);
  }, 30_000);

  test("a release when the server stops answering takes about a second, not connect_timeout: waitlock exits with the command's status and the key is left to its ttl", async () => {
    const s = await startRedis();
    const { h, go } = await holdUntilGo(s, "rel");
    process.kill(s.pid, "SIGSTOP");
    try {
      const t0 = Date.now();
      go();
      expect(await h.exited()).toBe(0);
      const ms = Date.now() - t0;
      console.log(`redis: a release to a server that does not answer ended after ${ms} ms`);
      expect(ms).toBeLessThan(1600);
    } finally {
      process.kill(s.pid, "SIGCONT");
    }
    // gone (the release sent ran once the server resumed) or running out: never kept
    expect(await s.admin(["PTTL", "waitlock:{rel}:slot0"])).not.toBe(-1);
  }, 30_000);

  test("nothing of killed waiters and killed readers stays on the server: the queue lapses about a second after its last waiter, the readers set with the last reader's lease; only the token key is kept", async () => {
    const s = await startRedis();
    const url = s.url({ ttl: "3", confirm_timeout: "1", heartbeat: "0.5", grace: "1" });
    const b = connectRedis(url);
    const held = await b.acquire("gone", { holder });
    const w = fixture(undefined, "hold", { url, name: "gone" }, ["true"]);
    await waitFor("the waiter to queue", async () => (await s.admin(["ZCARD", "waitlock:{gone}:queue"])) === 1);
    w.p.kill("SIGKILL");
    await w.p.exited;
    const killed = performance.now();
    await waitFor("the queue to lapse", async () => (await s.admin(["EXISTS", "waitlock:{gone}:queue"])) === 0, 5000);
    expect(performance.now() - killed).toBeLessThan(2000);
    await held.release();
    await b.close();
    const r = fixture(undefined, "hold", { url, name: "readers", shared: true });
    await r.event("acquired");
    r.killHolder();
    await waitFor("the readers set to lapse", async () => (await s.admin(["EXISTS", "waitlock:{readers}:readers"])) === 0, 5000);
    expect(await keys(s)).toEqual(["waitlock:{gone}:token", "waitlock:{readers}:token"]);
  }, 30_000);

  test("as documented: README's 3-second ttl URL is accepted (ttl=3 alone is refused, 3); a refused login is --check 2 and --list 1; --list shows EXPIRES IN and json expiresIn", async () => {
    const s = await startRedis();
    const readme = readFileSync(join(import.meta.dir, "../README.md"), "utf8");
    const fast = /`redis:\/\/HOST\/0(\?ttl=3&[^`]*)`/.exec(readme)![1]!;
    expect((await wl(["--backend", s.url() + fast, "fast", "--exec", "true"])).code).toBe(0);
    expect((await wl(["--backend", s.url({ ttl: "3" }), "fast", "--exec", "true"])).code).toBe(3);
    const refused = s.url({}, "wrong");
    expect([(await wl(["--backend", refused, "--check", "x"])).code, (await wl(["--backend", refused, "--list"])).code]).toEqual([2, 1]);
    const inside = `"$WL" --backend "$URL" --list; "$WL" --backend "$URL" --list -f json`;
    const r = await run([BIN, "--backend", s.url(), "n", "--exec", "sh", "-c", inside], { env: { WL: BIN, URL: s.url() } });
    expect(r.stdout).toMatch(/EXPIRES IN[\s\S]*\b(9|10)\.\ds\b/);
    expect(r.stdout).toMatch(/"expiresIn": (9|10)(\.\d+)?\b/);
  }, 30_000);

  test("a connection closed under a holder (CLIENT KILL) is not a loss: it reconnects, finds the key still its own, and extends it", async () => {
    const s = await startRedis();
    const h = fixture(undefined, "hold", { url: s.url({ heartbeat: "0.2", confirm_timeout: "1" }), name: "kept" }, ["sleep", "60"]);
    await h.event("started");
    const id = await s.admin(["HGET", "waitlock:{kept}:slot0", "client"]);
    expect(await s.admin(["CLIENT", "KILL", "ID", String(id)])).toBe(1);
    await Bun.sleep(1500);
    expect(h.events.map((e) => e.event)).toEqual(["acquired", "started"]);
    expect((await s.admin(["PTTL", "waitlock:{kept}:slot0"])) as number).toBeGreaterThan(9000);
  }, 30_000);

  test("a server that hangs (SIGSTOP): the holder's lease is lost within confirm_timeout, before its ttl runs out; -t 0 and a check with a 1 s bound give 75 (the CLI's --check 2) within about a second", async () => {
    const s = await startRedis();
    const h = fixture(undefined, "hold", { url: s.url(), name: "hang", grace: 1 }, ["sleep", "60"]);
    await h.event("started");
    const b = connectRedis(s.url());
    await (await b.acquire("warm", { holder })).release();
    await b.close();
    const t0 = Date.now();
    process.kill(s.pid, "SIGSTOP");
    try {
      const lost = await h.event("lost");
      expect(lost.at - t0).toBeLessThan(2200);
      expect(lost.message).toContain("not confirmed by the server within 2 seconds");
      expect(await h.exited()).toBe(7);
      expect((await h.event("stopped")).at - t0).toBeLessThan(10_000);
      const t1 = performance.now();
      const e = await b.acquire("x", { holder, timeout: 0 }).catch((err) => err);
      expect({ exitCode: e.exitCode, ms: performance.now() - t1 < 1500 }).toEqual({ exitCode: 75, ms: true });
      const t2 = performance.now();
      const c = await b.check("x", 1, { timeout: 1 }).catch((err) => err);
      expect({ exitCode: c.exitCode, ms: performance.now() - t2 < 1500 }).toEqual({ exitCode: 75, ms: true });
      // The CLI: -t 0 of --exec and of a plain acquire 75, --check 2 (cannot tell).
      for (const [args, code] of [
        [["-t", "0", "x", "--exec", "true"], 75],
        [["-t", "0", "x"], 75],
        [["--check", "x"], 2],
      ] as const) {
        const t = performance.now();
        const r = await wl(["--backend", s.url(), ...args]);
        expect({ args, code: r.code, quick: performance.now() - t < 2000 }).toEqual({ args, code, quick: true });
        expect(r.stderr).toContain(`127.0.0.1:${s.port}`);
      }
    } finally {
      process.kill(s.pid, "SIGCONT");
    }
  }, 30_000);

  test("a server restart: the holder loses its lease (exit 7) at its next extension, a waiter connects again and keeps waiting, and is granted a larger token", async () => {
    const s = await startRedis();
    const b = connectRedis(s.url());
    const before = await b.acquire("restart", { holder });
    const w = fixture(undefined, "hold", { url: s.url(), name: "restart" }, ["true"]);
    await waitFor("the waiter to queue", async () => (await s.admin(["ZCARD", "waitlock:{restart}:queue"])) === 1);
    await s.stop();
    await s.start();
    expect((await before.lost).message).toMatch(/no longer holds it|not confirmed/);
    const got = await w.event("acquired", 20_000);
    expect(BigInt(got.token)).toBeGreaterThan(BigInt(before.token));
    expect(await w.exited()).toBe(0);
    await b.close();
  }, 30_000);

  test("tokens keep increasing across a restart of a server without persistence", async () => {
    const s = await startRedis();
    const tokens: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const b = connectRedis(s.url());
      for (let j = 0; j < 3; j++) {
        const lease = await b.acquire("restart", { holder });
        tokens.push(BigInt(lease.token));
        await lease.release();
      }
      await b.close();
      await s.stop();
      await s.start();
      expect(await keys(s)).toEqual([]);
    }
    expect(tokens).toEqual([...tokens].sort((x, y) => (x < y ? -1 : 1)));
    expect(new Set(tokens).size).toBe(9);
  }, 30_000);

  test("--done from the holder's own owner only releases: the command keeps running, the slot is free", async () => {
    const s = await startRedis();
    const h = fixture(undefined, "hold", { url: s.url(), name: "own" }, ["sleep", "60"]);
    await h.event("started");
    const b = connectRedis(s.url());
    // --exec's waitlock describes itself as the owner: its command's --done spares it
    const r = await b.done("own", { host: hostname(), ancestors: [h.p.pid], timeout: 5 });
    expect(r.asked.map((x) => x.pid)).toEqual([h.p.pid]);
    expect(r.remaining).toEqual([]);
    expect((await h.event("requested")).request).toBe("release");
    expect(await b.check("own", 1)).toBe(1);
    expect(alive(h.p.pid)).toBe(true);
    await b.close();
  }, 30_000);

  test("--done asks the holder to stop its command; the lock is free when it answers", async () => {
    const s = await startRedis();
    const h = fixture(undefined, "hold", { url: s.url(), name: "job" }, ["sleep", "60"]);
    await h.event("started");
    const d = fixture(undefined, "done", { url: s.url(), name: "job" });
    expect(await d.exited()).toBe(0);
    expect((await h.event("requested")).request).toBe("stop");
    expect(await h.exited()).toBe(143);
    const nobody = fixture(undefined, "done", { url: s.url(), name: "job" });
    expect(await nobody.exited()).toBe(1);
  }, 30_000);

  test("rediss:// is TLS, verified against cacert; an unknown CA fails with 4, plain redis:// to a TLS port with 75", async () => {
    const s = await startRedis({ tls: true });
    const b = connectRedis(s.url({ cacert: s.certificate! }));
    const lease = await b.acquire("tls", { holder });
    expect(lease.token).toMatch(/^[0-9]+$/);
    await lease.release();
    await b.close();
    const unknownCa = await connectRedis(s.url()).acquire("tls", { holder }).catch((e) => e);
    expect(unknownCa).toMatchObject({ exitCode: 4, context: `127.0.0.1:${s.port}` });
    expect(unknownCa.message).toMatch(/TLS|certificate/i);
    const plain = await connectRedis(s.url().replace("rediss:", "redis:")).acquire("tls", { holder, timeout: 1 }).catch((e) => e);
    expect(plain).toMatchObject({ exitCode: 75, context: `127.0.0.1:${s.port}` });
    // A refused login is 5 over TLS too, at once (it was 75 after connect_timeout).
    const started = performance.now();
    const refused = await connectRedis(s.url({ cacert: s.certificate! }, "hunter2")).acquire("tls", { holder }).catch((e) => e);
    expect(refused).toMatchObject({ exitCode: 5, context: `127.0.0.1:${s.port}` });
    expect(refused.message).toContain("WRONGPASS");
    expect(performance.now() - started).toBeLessThan(2_000);
  }, 30_000);

  test("errors: unreachable 75 naming host:port, wrong or missing password 5, malformed URL 3; the password is never shown", async () => {
    const s = await startRedis();
    const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = closed.port;
    closed.stop(true);
    const e75 = await connectRedis(`redis://:hunter2@127.0.0.1:${port}/0`).acquire("x", { holder, timeout: 0 }).catch((e) => e);
    expect(e75).toMatchObject({ exitCode: 75, context: `127.0.0.1:${port}` });
    const e5 = await connectRedis(s.url({}, "hunter2")).acquire("x", { holder }).catch((e) => e);
    expect(e5).toMatchObject({ exitCode: 5, context: `127.0.0.1:${s.port}` });
    expect(e5.message).toContain("WRONGPASS");
    const none = await connectRedis(`redis://127.0.0.1:${s.port}`, {}).acquire("x", { holder }).catch((e) => e);
    expect(none).toMatchObject({ exitCode: 5, context: `127.0.0.1:${s.port}` });
    expect(none.message).toContain("NOAUTH");
    const fromEnv = await connectRedis(`redis://127.0.0.1:${s.port}`, { REDISCLI_AUTH: "secret" }).acquire("x", { holder });
    await fromEnv.release();
    for (const url of ["redis://:hunter2@127.0.0.1:99999/0", "redis://:hunter2@/0", "redis://:hunter2@h/0?keepalive=3", "redis://:hunter2@h/0?heartbeat=5", "redis://:hunter2@h/0?ttl=2", "redis://:hunter2@h/db", "redis://:hunter2@[bad/0", "redis://:hunter2@h/0?cacert=/etc/hostname"]) {
      let e: any;
      try {
        connectRedis(url);
      } catch (err) {
        e = err;
      }
      expect({ url, exitCode: e?.exitCode }).toEqual({ url, exitCode: 3 });
      expect(e.message).not.toContain("hunter2");
    }
    for (const e of [e75, e5]) expect(`${e.context} ${e.message}`).not.toContain("hunter2");
    expect(connectRedis(s.url({}, "hunter2")).url).toBe(`redis://127.0.0.1:${s.port}/0`);
    // nor in the binary's debug lines, with the right password or a refused one
    const ok = await wl(["-v", "--backend", s.url({}, "secret"), "pw", "--exec", "true"]);
    const refused = await wl(["-v", "--backend", s.url({}, "hunter2"), "pw", "--exec", "true"]);
    expect([ok.code, refused.code]).toEqual([0, 5]);
    expect(ok.stderr).toContain("DEBUG");
    expect(`${ok.stderr}${refused.stderr}`).not.toMatch(/secret|hunter2/);
  }, 30_000);
});

describe.skipIf(noHosts)("Redis backend across simulated hosts", () => {
  async function setUp(params: Record<string, string> = {}) {
    const hosts = createHosts(["db", "a", "b"]);
    const server = await startRedis({ netns: hosts.db!.netns, host: hosts.db!.address });
    return { hosts, server, url: server.url(params) };
  }

  test("8 processes on 2 hosts, 25 increments each under a mutex: no update is lost", async () => {
    const { hosts, url } = await setUp();
    const dir = mkdtempSync(join(tmpdir(), "waitlock-redis-"));
    dirs.push(dir);
    writeFileSync(`${dir}/counter`, "0\n");
    const workers = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => fixture(i % 2 ? hosts.a : hosts.b, "count", { url, name: "counter", file: `${dir}/counter`, rounds: 25 }));
    for (const w of workers) expect({ code: await w.exited(), stderr: w.stderr() }).toEqual({ code: 0, stderr: "" });
    expect(readFileSync(`${dir}/counter`, "utf8").trim()).toBe("200");
  }, 120_000);

  test("-m 3 on 2 hosts: never a 4th holder at once (and 3 are seen)", async () => {
    const { hosts, url } = await setUp();
    const dir = mkdtempSync(join(tmpdir(), "waitlock-redis-"));
    dirs.push(dir);
    const active = mkdtempSync(join(dir, "active-"));
    for (let i = 0; i < 8; i++) writeFileSync(`${dir}/counter-${i}`, "0\n");
    const workers = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => fixture(i % 2 ? hosts.a : hosts.b, "count", { url, name: "pool", slots: 3, file: `${dir}/counter-${i}`, rounds: 15, active }));
    const most: number[] = [];
    for (const w of workers) {
      expect({ code: await w.exited(), stderr: w.stderr() }).toEqual({ code: 0, stderr: "" });
      most.push((await w.event("counted")).most);
    }
    expect(Math.max(...most)).toBe(3);
  }, 120_000);

  test("SIGKILL of a holder on one host frees its lock for a waiter on the other within the ttl (measured)", async () => {
    const { hosts, url } = await setUp({ ttl: "3", confirm_timeout: "1", heartbeat: "0.5", grace: "1" });
    const h = fixture(hosts.a, "hold", { url, name: "k" });
    await h.event("acquired");
    const w = fixture(hosts.b, "hold", { url, name: "k" }, ["true"]);
    await Bun.sleep(300);
    expect(w.events).toEqual([]);
    const killedAt = Date.now();
    h.killHolder();
    const freedIn = (await w.event("acquired")).at - killedAt;
    console.log(`redis across hosts: a SIGKILLed holder's slot was taken ${freedIn} ms after the kill (ttl 3 s, heartbeat 0.5 s)`);
    expect(freedIn).toBeLessThan(3300);
    expect(await w.exited()).toBe(0);
  }, 60_000);

  test("a silent partition of the holder's host: its command is stopped (exit 7) before the other host's waiter acquires, with a larger token", async () => {
    const { hosts, url } = await setUp();
    const h = fixture(hosts.a, "hold", { url, name: "part" }, ["sleep", "60"]);
    const first = await h.event("started");
    const w = fixture(hosts.b, "hold", { url, name: "part" }, ["true"]);
    await Bun.sleep(500);
    expect(w.events).toEqual([]);
    const cut = Date.now();
    hosts.a!.partition();
    expect(await h.exited()).toBe(7);
    const lost = await h.event("lost");
    const stopped = await h.event("stopped");
    const second = await w.event("acquired", 20_000);
    expect(await w.exited()).toBe(0);
    expect(stopped.at).toBeLessThan(second.at);
    expect(BigInt(second.token)).toBeGreaterThan(BigInt(h.events.find((e) => e.event === "acquired")!.token));
    console.log(`redis across hosts: partition → lost after ${lost.at - cut} ms, command stopped after ${stopped.at - cut} ms, the other host served after ${second.at - cut} ms`);
    // the documented bounds: lost within confirm_timeout (2 s), freed within the ttl (10 s)
    expect(lost.at - cut).toBeLessThan(2500);
    expect(second.at - cut).toBeLessThan(10_500);
    expect(first.at).toBeLessThan(cut);
  }, 60_000);

  test("--list from one host shows the waiters of every host in queue order; a waiter killed on another host drops out within about a second", async () => {
    const { hosts, url } = await setUp();
    await expectWaitersOfEveryHost(hosts, url);
  }, 60_000);

  test("--done from another host stops the holder's command", async () => {
    const { hosts, url } = await setUp();
    const h = fixture(hosts.a, "hold", { url, name: "job" }, ["sleep", "60"]);
    await h.event("started");
    const d = fixture(hosts.b, "done", { url, name: "job" });
    expect(await d.exited()).toBe(0);
    expect((await h.event("requested")).request).toBe("stop");
    expect(await h.exited()).toBe(143);
  }, 60_000);

  test("a timeout of 0.3 s across hosts expires within 0.1 s and leaves nothing behind", async () => {
    const { hosts, server, url } = await setUp();
    const h = fixture(hosts.a, "hold", { url, name: "busy" });
    await h.event("acquired");
    const before = ((await server.admin(["KEYS", "*"])) as string[]).sort();
    const w = fixture(hosts.b, "hold", { url, name: "busy", timeout: 0.3 }, ["true"]);
    expect(await w.exited()).toBe(2);
    expect(w.stderr()).toContain("timed out after 0.3 seconds");
    expect(((await server.admin(["KEYS", "*"])) as string[]).sort()).toEqual(before);
  }, 60_000);

  test("a server that does not answer: -t 0 gives 75 within about a second", async () => {
    const { hosts, url } = await setUp();
    hosts.db!.partition();
    const t0 = Date.now();
    const h = fixture(hosts.a, "hold", { url, name: "x", timeout: 0 });
    expect(await h.exited()).toBe(75);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(h.stderr()).toMatch(/^waitlock: 127\.1\.0\.1:6379: connecting: no answer within 1\.0 seconds/);
  }, 60_000);
});
