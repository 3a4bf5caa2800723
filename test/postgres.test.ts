// The PostgreSQL backend against real throwaway servers (test/servers/postgres.ts): on
// loopback from this process, and across simulated hosts (test/hosts.ts) through the
// waitlock binary (test/backend-fixture.ts).
import { SQL } from "bun";
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { connectPostgres, type Lease } from "../src/backends/postgres";
import { CLASSID, lockKey } from "../src/backends/postgres/sql";
import { dirs } from "./cleanup";
import { expectWaitersOfEveryHost, fixture } from "./backend-fixture";
import { alive, BIN, start, waitFor } from "./helpers";
import { createHosts, netnsMissing } from "./hosts";
import { pgbouncerMissing, startPgbouncer } from "./servers/pgbouncer";
import { postgresMissing, startPostgres, type PostgresServer } from "./servers/postgres";
import { skipping } from "./servers/skip";

const noPostgres = skipping("PostgreSQL backend tests", postgresMissing());
const noHosts = noPostgres || skipping("PostgreSQL tests across simulated hosts", netnsMissing());
const noPgbouncer = noPostgres || skipping("the PgBouncer test", pgbouncerMissing());

const holder = { host: "tester", pid: process.pid, owner: process.ppid, uid: 0, user: "test", command: "bun test" };

/** The parent of `pid` (/proc/PID/stat), or 0. */
function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return 0;
  }
}

/** `waitlock --backend URL --list -f json`, parsed. */
async function wlList(url: string): Promise<{ descriptor: string; command: string; token: string }[]> {
  const p = Bun.spawn([BIN, "--backend", url, "--list", "-f", "json"], { stdout: "pipe", stderr: "inherit" });
  const text = await new Response(p.stdout).text();
  expect(await p.exited).toBe(0);
  return JSON.parse(text);
}

const waitingRequests = async (s: PostgresServer) =>
  (await s.admin`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)[0].n as number;

describe.skipIf(noPostgres)("PostgreSQL backend on loopback", () => {
  test("the library: acquireAsync({ backend }) holds a lease with a token; another holder is busy; acquire() refuses a backend", async () => {
    const s = await startPostgres();
    const lib = await import("../src/index");
    const first = await lib.acquireAsync("lib", { backend: s.url(), command: "library test" });
    expect(first.token).toMatch(/^\d+$/);
    expect(first.path).not.toContain("secret");
    await expect(lib.acquireAsync("lib", { backend: s.url(), timeout: 0 })).rejects.toMatchObject({ exitCode: 1 });
    const listed = await wlList(s.url());
    expect(listed.map((r) => [r.descriptor, r.command, r.token])).toEqual([["lib", "library test", first.token!]]);
    await first[Symbol.asyncDispose]();
    const second = await lib.acquireAsync("lib", { backend: s.url(), timeout: 0 });
    expect(BigInt(second.token!)).toBeGreaterThan(BigInt(first.token!));
    await second[Symbol.asyncDispose]();
    expect(() => lib.acquire("lib", { backend: s.url() })).toThrow("use acquireAsync");
  }, 30_000);

  test("the library: aborting a waiting acquireAsync rejects with CancelledError and withdraws the request from the server at once", async () => {
    const s = await startPostgres();
    const lib = await import("../src/index");
    const first = await lib.acquireAsync("abort", { backend: s.url() });
    const giveUp = new AbortController();
    const waiting = lib.acquireAsync("abort", { backend: s.url(), signal: giveUp.signal });
    await waitFor("the request to wait on the server", async () => (await waitingRequests(s)) === 1);
    giveUp.abort();
    await expect(waiting).rejects.toBeInstanceOf(lib.CancelledError);
    // Withdrawn by the cancel request, not when the server finds the session gone (~1 s later).
    expect(await waitingRequests(s)).toBe(0);
    await first[Symbol.asyncDispose]();
    const next = await lib.acquireAsync("abort", { backend: s.url(), timeout: 0 });
    await next[Symbol.asyncDispose]();
  }, 30_000);

  test("the library: an abort while the session is still being opened is heard too (no request left queued, no promise left pending)", async () => {
    const s = await startPostgres();
    const lib = await import("../src/index");
    const first = await lib.acquireAsync("early", { backend: s.url() });
    // Aborts 0-12 ms after the call land in the login (which takes longer here) or just after.
    for (let ms = 0; ms <= 12; ms += 2) {
      const giveUp = new AbortController();
      const waiting = lib.acquireAsync("early", { backend: s.url(), signal: giveUp.signal });
      setTimeout(() => giveUp.abort(), ms);
      const settled = await Promise.race([waiting.then(() => "taken", (e) => (e instanceof lib.CancelledError ? "cancelled" : String(e))), Bun.sleep(3_000).then(() => "pending")]);
      expect({ ms, settled }).toEqual({ ms, settled: "cancelled" });
    }
    await waitFor("no request left on the server", async () => (await waitingRequests(s)) === 0, 2_000);
    await first[Symbol.asyncDispose]();
  }, 60_000);

  test("a slot is the documented advisory lock: another program taking it in SQL excludes waitlock, and the other way round", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    const other = await s.admin.reserve();
    try {
      const key = lockKey("shared-name.slot0");
      await other`SELECT pg_advisory_lock(${CLASSID}, ${key})`;
      await expect(b.acquire("shared-name", { holder, timeout: 0 })).rejects.toMatchObject({ exitCode: 1 });
      await other`SELECT pg_advisory_unlock(${CLASSID}, ${key})`;
      const lease = await b.acquire("shared-name", { holder, timeout: 0 });
      const [row] = await other`SELECT classid::bigint AS classid, objid::bigint AS objid, objsubid FROM pg_locks WHERE locktype = 'advisory' AND granted`;
      expect(row).toEqual({ classid: String(CLASSID), objid: String(key), objsubid: 2 });
      expect((await other`SELECT pg_try_advisory_lock(${CLASSID}, ${key}) AS got`)[0].got).toBe(false);
      const [sql] = await other`SELECT (('x' || left(md5('shared-name.slot0'), 8))::bit(32)::int & 2147483647) AS k`;
      expect(sql.k).toBe(key);
      await lease.release();
    } finally {
      other.release();
      await b.close();
    }
  }, 30_000);

  test("-t 0 answers busy, a timeout of 0.3 s expires within 0.1 s and leaves no request in pg_locks (mutex and semaphore)", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    const held = await b.acquire("t", { holder });
    const sem = await Promise.all([0, 1].map(() => b.acquire("sem", { holder, slots: 2 })));
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
      expect(await waitingRequests(s)).toBe(0);
    }
    // Withdrawn, not granted later: once the holder lets go, nobody else holds the slot.
    await held.release();
    expect(await b.check("t", 1)).toBe(1);
    for (const l of sem) await l.release();
    await b.close();
  }, 30_000);

  test("a waiter is served when the holder releases; tokens increase; --list shows host, PID, command, since and token", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    const first = await b.acquire("q", { holder: { ...holder, host: "alpha", pid: 111, command: "first --job" } });
    const [row] = await b.list({ name: "q" });
    expect(row).toMatchObject({ status: "active", name: "q", slot: 0, slots: 1, token: first.token, host: "alpha", pid: 111, command: "first --job", shared: false });
    expect(Math.abs(row!.acquired! - Date.now() / 1000)).toBeLessThan(5);
    const waiting = b.acquire("q", { holder: { ...holder, host: "beta" } });
    await waitFor("the waiter to queue", async () => (await waitingRequests(s)) === 1);
    await first.release();
    const second = await waiting;
    expect(BigInt(second.token)).toBeGreaterThan(BigInt(first.token));
    expect((await b.list({ name: "q" })).map((r) => r.host)).toEqual(["beta"]);
    await second.release();
    expect(await b.list({ name: "q" })).toEqual([]);
    await b.close();
  }, 30_000);

  test("a semaphore gives N slots, the preferred one first, and queues the N+1st until one is released", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    const a = await b.acquire("pool", { holder, slots: 3, preferred: 2 });
    expect(a.slot).toBe(2);
    const rest = [await b.acquire("pool", { holder, slots: 3 }), await b.acquire("pool", { holder, slots: 3 })];
    expect(rest.map((l) => l.slot)).toEqual([0, 1]);
    expect(await b.check("pool", 3)).toBe(0);
    let fourth: Lease | undefined;
    const waiting = b.acquire("pool", { holder, slots: 3, preferred: 0 }).then((l) => (fourth = l));
    await Bun.sleep(300);
    expect(fourth).toBeUndefined();
    const t0 = performance.now();
    await rest[1]!.release();
    await waiting;
    expect(fourth!.slot).toBe(1);
    // woken by the release's notification, not by the periodic look
    expect(performance.now() - t0).toBeLessThan(200);
    for (const l of [a, rest[0]!, fourth!]) await l.release();
    await b.close();
  }, 30_000);

  test("shared locks: readers together, a writer alone, and a writer queued before a reader is served first", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    const r1 = await b.acquire("rw", { holder, shared: true });
    const r2 = await b.acquire("rw", { holder, shared: true, timeout: 0 });
    const order: string[] = [];
    const writer = b.acquire("rw", { holder }).then((l) => (order.push("writer"), l));
    await waitFor("the writer to queue", async () => (await waitingRequests(s)) === 1);
    const reader = b.acquire("rw", { holder, shared: true }).then((l) => (order.push("reader"), l));
    await waitFor("the reader to queue", async () => (await waitingRequests(s)) === 2);
    await r1.release();
    await r2.release();
    const w = await writer;
    expect(order).toEqual(["writer"]);
    await w.release();
    await (await reader).release();
    expect(order).toEqual(["writer", "reader"]);
    expect((await b.list({ name: "rw" })).length).toBe(0);
    await b.close();
  }, 30_000);

  test("a holder killed with SIGKILL frees its lock at once (< 0.5 s) and its description goes stale; a waiter killed with SIGKILL leaves the queue within about a second", async () => {
    const s = await startPostgres();
    const h = fixture(undefined, "hold", { url: s.url(), name: "k" });
    await h.event("acquired");
    const w = fixture(undefined, "hold", { url: s.url(), name: "k" }, ["true"]);
    await waitFor("the waiter to queue", async () => (await waitingRequests(s)) === 1);
    const killedAt = Date.now();
    h.killHolder();
    const got = await w.event("acquired");
    expect(got.at - killedAt).toBeLessThan(500);
    expect(await w.exited()).toBe(0);
    // the killed holder's description is gone too: the next release of the name dropped it
    const b = connectPostgres(s.url());
    expect(await b.list({ name: "k", all: true })).toEqual([]);
    const lone = fixture(undefined, "hold", { url: s.url(), name: "lone" });
    await lone.event("acquired");
    lone.killHolder();
    await waitFor("the killed holder's slot to be free", async () => (await b.check("lone", 1)) === 1);
    expect((await b.list({ name: "lone", all: true })).map((r) => [r.status, r.pid])).toEqual([["stale", lone.p.pid]]);
    expect(await b.list({ name: "lone" })).toEqual([]);

    const held = await b.acquire("k", { holder });
    const dead = fixture(undefined, "hold", { url: s.url(), name: "k" }, ["true"]);
    await waitFor("the waiter to queue", async () => (await waitingRequests(s)) === 1);
    const t0 = performance.now();
    dead.p.kill("SIGKILL");
    await waitFor("the killed waiter's request to go", async () => (await waitingRequests(s)) === 0, 3000);
    expect(performance.now() - t0).toBeLessThan(1500);
    await held.release();
    await b.close();
  }, 30_000);

  test("the command inherits the session: waitlock killed with SIGKILL leaves the lock held until the command exits", async () => {
    const s = await startPostgres();
    const dir = mkdtempSync(join(tmpdir(), "waitlock-pg-"));
    dirs.push(dir);
    const h = fixture(undefined, "hold", { url: s.url(), name: "inherit" }, ["sh", "-c", `echo $$ > ${dir}/pid; exec sleep 60`]);
    expect((await h.event("acquired")).fd).toBeGreaterThan(2);
    await waitFor("the command to start", () => existsSync(`${dir}/pid`) && readFileSync(`${dir}/pid`, "utf8").trim() !== "");
    const command = Number(readFileSync(`${dir}/pid`, "utf8"));
    h.p.kill("SIGKILL");
    await h.p.exited;
    const b = connectPostgres(s.url());
    await Bun.sleep(200);
    expect(await b.check("inherit", 1)).toBe(0);
    process.kill(command, "SIGKILL");
    await waitFor("the lock to be free once the command is gone", async () => (await b.check("inherit", 1)) === 1, 3000);
    await b.close();
  }, 30_000);

  test("pg_terminate_backend of the holder's session: the lease is lost at once, its command stopped, exit 7", async () => {
    const s = await startPostgres();
    const h = fixture(undefined, "hold", { url: s.url(), name: "term", grace: 1 }, ["sleep", "60"]);
    await h.event("started");
    const [row] = await s.admin`SELECT backend_pid FROM waitlock.holders WHERE name = 'term'`;
    const t0 = Date.now();
    await s.admin`SELECT pg_terminate_backend(${row.backend_pid})`;
    const lost = await h.event("lost");
    expect(lost.at - t0).toBeLessThan(500);
    expect(lost.message).toContain("session ended");
    expect(await h.exited()).toBe(7);
    expect(h.events.some((e) => e.event === "stopped")).toBe(true);
    expect(h.stderr()).toContain("waitlock: term: lock lost");
  }, 30_000);

  test("a plain acquire whose session is terminated: the owner script gets SIGTERM", async () => {
    const s = await startPostgres();
    const script = start(["/bin/sh", "-c", `"$WL" --backend "$URL" plain && echo held && exec sleep 60`], { env: { WL: BIN, URL: s.url() }, stdout: "pipe" });
    let out = "";
    (async () => {
      for await (const chunk of script.stdout as ReadableStream<Uint8Array>) out += new TextDecoder().decode(chunk);
    })();
    await waitFor("the script to hold the lock", () => out.includes("held"), 15_000);
    const [row] = await s.admin`SELECT backend_pid FROM waitlock.holders WHERE name = 'plain'`;
    await s.admin`SELECT pg_terminate_backend(${row.backend_pid})`;
    expect(await script.exited).toBe(143);
  }, 30_000);

  test("a server restart: holders lose their lock (exit 7), waiters reconnect and keep waiting, tokens keep increasing", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    const before = await b.acquire("restart", { holder });
    // A waiter without -t reconnects for connect_timeout: long enough for a restart on a loaded machine.
    const h = fixture(undefined, "hold", { url: s.url({ connect_timeout: "20" }), name: "restart", grace: 1 }, ["sleep", "60"]);
    await waitFor("the waiter to queue", async () => (await waitingRequests(s)) === 1);
    await s.stop();
    const lost = await before.lost;
    expect(lost.exitCode).toBe(7);
    await s.start();
    await h.event("started", 20_000);
    const got = await h.event("acquired");
    expect(BigInt(got.token)).toBeGreaterThan(BigInt(before.token));
    h.p.kill("SIGTERM");
    expect(await h.exited()).toBe(143);
    await b.close();
  }, 30_000);

  test("tokens keep increasing across a crash of the server (immediate shutdown, then crash recovery)", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    const tokens: bigint[] = [];
    for (let i = 0; i < 3; i++) {
      const lease = await b.acquire("crash", { holder });
      tokens.push(BigInt(lease.token));
      await s.stop(true);
      expect((await lease.lost).exitCode).toBe(7);
      await s.start();
      await b.close();
    }
    expect(tokens).toEqual([...tokens].sort((x, y) => (x < y ? -1 : 1)));
    expect(new Set(tokens).size).toBe(3);
  }, 60_000);

  test("a holder that was stopped (SIGSTOP) longer than confirm_timeout keeps its lock: its session survived", async () => {
    const s = await startPostgres();
    const h = fixture(undefined, "hold", { url: s.url(), name: "paused" }, ["sleep", "60"]);
    await h.event("started");
    h.p.kill("SIGSTOP");
    await Bun.sleep(3000);
    h.p.kill("SIGCONT");
    const b = connectPostgres(s.url());
    // two heartbeats later it still holds the lock, and has not reported a loss
    await Bun.sleep(2500);
    expect(h.events.map((e) => e.event)).toEqual(["acquired", "started"]);
    expect(await b.check("paused", 1)).toBe(0);
    await b.close();
  }, 30_000);

  test("--done from the holder's own owner only releases: the command keeps running, the slot is free", async () => {
    const s = await startPostgres();
    const h = fixture(undefined, "hold", { url: s.url(), name: "own" }, ["sleep", "60"]);
    await h.event("started");
    const b = connectPostgres(s.url());
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
    const s = await startPostgres();
    const h = fixture(undefined, "hold", { url: s.url(), name: "job" }, ["sleep", "60"]);
    await h.event("started");
    const d = fixture(undefined, "done", { url: s.url(), name: "job" });
    expect(await d.exited()).toBe(0);
    expect((await h.event("requested")).request).toBe("stop");
    expect(await h.exited()).toBe(143);
    const nobody = fixture(undefined, "done", { url: s.url(), name: "job" });
    expect(await nobody.exited()).toBe(1);
  }, 30_000);

  test("sslmode is honoured: require and verify-full use TLS, disable does not; an unknown CA or a server without TLS fail", async () => {
    const s = await startPostgres({ tls: true });
    const usesTls = async (params: Record<string, string>) => {
      const b = connectPostgres(s.url(params));
      try {
        const lease = await b.acquire("tls", { holder });
        const [row] = await b.list({ name: "tls" });
        const [stat] = await s.admin`SELECT ssl FROM pg_stat_ssl WHERE pid = ${row!.backendPid}`;
        await lease.release();
        return stat.ssl as boolean;
      } finally {
        await b.close();
      }
    };
    expect(await usesTls({ sslmode: "require" })).toBe(true);
    expect(await usesTls({ sslmode: "verify-full", sslrootcert: s.certificate! })).toBe(true);
    expect(await usesTls({ sslmode: "disable" })).toBe(false);
    const unknownCa = await connectPostgres(s.url({ sslmode: "verify-full" })).acquire("tls", { holder }).catch((e) => e);
    expect(unknownCa).toMatchObject({ exitCode: 4, context: `127.0.0.1:${s.port}` });
    const plain = await startPostgres();
    const noTls = await connectPostgres(plain.url({ sslmode: "require" })).acquire("tls", { holder }).catch((e) => e);
    expect(noTls).toMatchObject({ exitCode: 4, context: `127.0.0.1:${plain.port}` });
    expect(`${unknownCa.message} / ${noTls.message}`).toMatch(/connecting: .*certificate.* \/ connecting: .*SSL/i);
  }, 30_000);

  test.skipIf(noPgbouncer)("PgBouncer in transaction pooling is refused, whether it rejects waitlock's session settings or drops them", async () => {
    const s = await startPostgres();
    const settings = ["application_name", "tcp_user_timeout", "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "client_connection_check_interval", "statement_timeout", "lock_timeout", "idle_session_timeout", "idle_in_transaction_session_timeout", "synchronous_commit"];
    for (const ignore of [[], settings]) {
      const url = await startPgbouncer(s, ignore);
      const e = await connectPostgres(url).acquire("pooled", { holder }).catch((err) => err);
      expect({ ignore: ignore.length, exitCode: e.exitCode, message: e.message }).toMatchObject({ ignore: ignore.length, exitCode: 4, message: expect.stringContaining("connection pooler (PgBouncer?)") });
    }
    expect(await waitingRequests(s)).toBe(0);
    expect((await s.admin`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'`)[0].n).toBe(0);
  }, 30_000);

  test("a role that may not create waitlock's table gets 5; the documented setup SQL and grants make it work", async () => {
    const s = await startPostgres();
    await s.admin.unsafe("CREATE ROLE app LOGIN PASSWORD 'apppw'");
    await s.admin.unsafe("CREATE DATABASE restricted");
    const url = `postgres://app:apppw@127.0.0.1:${s.port}/restricted`;
    const refused = await connectPostgres(url).acquire("x", { holder }).catch((e) => e);
    expect(refused).toMatchObject({ exitCode: 5, context: `127.0.0.1:${s.port}` });
    expect(refused.message).toMatch(/permission denied.*waitlock\.holders.*man page/);
    const readme = readFileSync(join(import.meta.dir, "../README.md"), "utf8");
    const setup = readme.match(/```sql\n(CREATE SCHEMA waitlock;[^`]*)```/)![1]!;
    const owner = new SQL(`postgres://postgres@localhost:${s.port}/restricted`, { path: s.dir, max: 1 });
    await owner.unsafe(setup).simple();
    await owner.close();
    const lease = await connectPostgres(url).acquire("x", { holder });
    expect(lease.token).toMatch(/^[0-9]+$/);
    await lease.release();
  }, 30_000);

  test("an older waitlock's setup (no privileges on waitlock.waiters, or no such table and no right to make it): a waiter waits undescribed and is served with a token; a timed-out one is withdrawn; --list works", async () => {
    const s = await startPostgres();
    await s.admin.unsafe("CREATE ROLE app LOGIN PASSWORD 'apppw'");
    const readme = readFileSync(join(import.meta.dir, "../README.md"), "utf8");
    const setup = readme.match(/```sql\n(CREATE SCHEMA waitlock;[^`]*)```/)![1]!;
    const older: Record<string, string> = {
      revoked: "REVOKE ALL ON waitlock.waiters FROM app",
      // (the database's CREATE revoked too: the waiter cannot make the table either)
      missing: "DROP TABLE waitlock.waiters; REVOKE CREATE ON DATABASE missing FROM PUBLIC; REVOKE CREATE ON SCHEMA waitlock FROM app",
    };
    for (const [db, change] of Object.entries(older)) {
      await s.admin.unsafe(`CREATE DATABASE ${db}`);
      const owner = new SQL(`postgres://postgres@localhost:${s.port}/${db}`, { path: s.dir, max: 1 });
      await owner.unsafe(setup).simple();
      await owner.unsafe(change).simple();
      await owner.close();
      const b = connectPostgres(`postgres://app:apppw@127.0.0.1:${s.port}/${db}`);
      const first = await b.acquire("old", { holder });
      await expect(b.acquire("old", { holder, timeout: 0.2 })).rejects.toMatchObject({ exitCode: 2 });
      const waiting = b.acquire("old", { holder: { ...holder, command: "the waiter" } });
      await waitFor(`the waiter to queue (${db})`, async () => (await waitingRequests(s)) === 1);
      // Waiters the role cannot see are none, not a failed listing.
      expect({ db, waiters: await b.waiters({ name: "old" }) }).toEqual({ db, waiters: [] });
      await first.release();
      const second = await waiting;
      expect(BigInt(second.token)).toBeGreaterThan(BigInt(first.token));
      expect((await b.list({ name: "old" })).map((h) => h.command)).toEqual(["the waiter"]);
      await second.release();
      expect(await b.list({ name: "old", all: true })).toEqual([]);
      await b.close();
    }
  }, 60_000);

  test("a server that hangs (stopped with SIGSTOP): -t 0 and a check with a 1 s bound give 75 (the CLI's --check 2) within about a second", async () => {
    const s = await startPostgres();
    const b = connectPostgres(s.url());
    await (await b.acquire("warm", { holder })).release();
    await b.close();
    process.kill(s.pid, "SIGSTOP");
    try {
      const t0 = performance.now();
      const e = await b.acquire("x", { holder, timeout: 0 }).catch((err) => err);
      expect({ exitCode: e.exitCode, ms: performance.now() - t0 < 1500 }).toEqual({ exitCode: 75, ms: true });
      const t1 = performance.now();
      const c = await b.check("x", 1, { timeout: 1 }).catch((err) => err);
      expect({ exitCode: c.exitCode, ms: performance.now() - t1 < 1500 }).toEqual({ exitCode: 75, ms: true });
      // The CLI: -t 0 of --exec and of a plain acquire (its same-owner look included) 75, --check 2 (cannot tell).
      for (const [args, code] of [
        [["-t", "0", "x", "--exec", "true"], 75],
        [["-t", "0", "x"], 75],
        [["--check", "x"], 2],
      ] as const) {
        const t = performance.now();
        const p = Bun.spawn([BIN, "--backend", s.url(), ...args], { stdout: "ignore", stderr: "pipe" });
        const stderr = await new Response(p.stderr).text();
        expect({ args, code: await p.exited, quick: performance.now() - t < 2000 }).toEqual({ args, code, quick: true });
        expect(stderr).toContain(`127.0.0.1:${s.port}`);
      }
    } finally {
      process.kill(s.pid, "SIGCONT");
    }
  }, 30_000);

  test("-t bounds a wait when the server stops answering during it: 75 about a second after the deadline", async () => {
    const s = await startPostgres();
    const h = fixture(undefined, "hold", { url: s.url(), name: "mute" });
    await h.event("acquired");
    const t0 = performance.now();
    const w = Bun.spawn([BIN, "--backend", s.url(), "-t", "2", "mute", "--exec", "true"], { stdout: "ignore", stderr: "pipe" });
    await waitFor("the waiter to queue", async () => (await waitingRequests(s)) === 1);
    // Every process of the server: the postmaster and its backends.
    const all = [s.pid, ...readdirSync("/proc").filter((e) => /^\d+$/.test(e) && parentOf(Number(e)) === s.pid).map(Number)];
    for (const pid of all) process.kill(pid, "SIGSTOP");
    try {
      const stderr = await new Response(w.stderr).text();
      expect(await w.exited).toBe(75);
      const ms = performance.now() - t0;
      expect(ms).toBeGreaterThan(2000);
      expect(ms).toBeLessThan(4000);
      expect(stderr).toContain(`127.0.0.1:${s.port}`);
    } finally {
      for (const pid of all) process.kill(pid, "SIGCONT");
    }
  }, 30_000);

  test("errors: unreachable 75 naming host:port, failed login 5, malformed URL 3; the password is never shown", async () => {
    const s = await startPostgres();
    const closed = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = closed.port;
    closed.stop(true);
    const unreachable = connectPostgres(`postgres://waitlock:hunter2@127.0.0.1:${port}/waitlock`);
    const e75 = await unreachable.acquire("x", { holder, timeout: 0 }).catch((e) => e);
    expect(e75).toMatchObject({ exitCode: 75, context: `127.0.0.1:${port}` });
    const badLogin = connectPostgres(s.url({}, "waitlock", "hunter2"));
    const e5 = await badLogin.acquire("x", { holder }).catch((e) => e);
    expect(e5).toMatchObject({ exitCode: 5, context: `127.0.0.1:${s.port}` });
    expect(e5.message).toContain("password authentication failed");
    for (const url of ["postgres://waitlock:hunter2@127.0.0.1:99999/w", "postgres://waitlock:hunter2@/w", "postgres://waitlock:hunter2@h/w?keepalives_idle=3", "postgres://waitlock:hunter2@h/w?heartbeat=5", "postgres://waitlock:hunter2@[bad/w"]) {
      let e: any;
      try {
        connectPostgres(url);
      } catch (err) {
        e = err;
      }
      expect({ url, exitCode: e?.exitCode }).toEqual({ url, exitCode: 3 });
      expect(e.message).not.toContain("hunter2");
    }
    for (const e of [e75, e5]) expect(`${e.context} ${e.message}`).not.toContain("hunter2");
  }, 30_000);
});

describe.skipIf(noHosts)("PostgreSQL backend across simulated hosts", () => {
  async function setUp() {
    const hosts = createHosts(["db", "a", "b"]);
    const server = await startPostgres({ netns: hosts.db!.netns, host: hosts.db!.address });
    return { hosts, server, url: server.url() };
  }

  test("8 processes on 2 hosts, 25 increments each under a mutex: no update is lost", async () => {
    const { hosts, url } = await setUp();
    const dir = mkdtempSync(join(tmpdir(), "waitlock-pg-"));
    dirs.push(dir);
    writeFileSync(`${dir}/counter`, "0\n");
    const workers = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => fixture(i % 2 ? hosts.a : hosts.b, "count", { url, name: "counter", file: `${dir}/counter`, rounds: 25 }));
    for (const w of workers) expect({ code: await w.exited(), stderr: w.stderr() }).toEqual({ code: 0, stderr: "" });
    expect(readFileSync(`${dir}/counter`, "utf8").trim()).toBe("200");
  }, 120_000);

  test("-m 3 on 2 hosts: never a 4th holder at once (and 3 are seen)", async () => {
    const { hosts, url } = await setUp();
    const dir = mkdtempSync(join(tmpdir(), "waitlock-pg-"));
    dirs.push(dir);
    writeFileSync(`${dir}/counter`, "0\n");
    const active = mkdtempSync(join(dir, "active-"));
    const workers = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => fixture(i % 2 ? hosts.a : hosts.b, "count", { url, name: "pool", slots: 3, file: `${dir}/counter-${i}`, rounds: 15, active }));
    for (let i = 0; i < 8; i++) writeFileSync(`${dir}/counter-${i}`, "0\n");
    const most: number[] = [];
    for (const w of workers) {
      expect({ code: await w.exited(), stderr: w.stderr() }).toEqual({ code: 0, stderr: "" });
      most.push((await w.event("counted")).most);
    }
    expect(Math.max(...most)).toBe(3);
  }, 120_000);

  test("SIGKILL of a holder on one host frees its lock for a waiter on the other in < 0.5 s", async () => {
    const { hosts, url } = await setUp();
    const h = fixture(hosts.a, "hold", { url, name: "k" });
    await h.event("acquired");
    const w = fixture(hosts.b, "hold", { url, name: "k" }, ["true"]);
    await Bun.sleep(300);
    expect(w.events).toEqual([]);
    const killedAt = Date.now();
    h.killHolder();
    expect((await w.event("acquired")).at - killedAt).toBeLessThan(500);
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
    // the documented bounds: lost within confirm_timeout (2 s), freed within release_timeout (9 s)
    expect(lost.at - cut).toBeLessThan(2500);
    expect(second.at - cut).toBeLessThan(9500);
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

  test("a server that does not answer: -t 0 gives 75 within about a second", async () => {
    const { hosts, url } = await setUp();
    hosts.db!.partition();
    const t0 = Date.now();
    const h = fixture(hosts.a, "hold", { url, name: "x", timeout: 0 });
    expect(await h.exited()).toBe(75);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(h.stderr()).toMatch(/^waitlock: 127\.1\.0\.1:5432: connecting: no answer within 1\.0 seconds/);
  }, 60_000);
});

