// Shared (reader) locks, -s: any number of readers or one writer; a writer queued before
// later readers is served before them; each reader has its record, and --list shows it.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { BusyError, acquire, tryAcquire } from "../src/index";
import { BIN, alive, held, listJson, lockDir, queuedInKernel, run, sh, start, startSh, waitFor, wl } from "./helpers";
import { needs, tool } from "./needs";

/** A reader (or, with `mode` ""), running a command that touches $D/TAG and waits for its stdin to end. */
const holder = (d: string, name: string, tag: string, mode = "-s") =>
  startSh(`exec "$WL" -d "$D" ${mode} ${name} --exec sh -c 'touch "$D/${tag}"; read -r _'`, d);

describe("shared holders", () => {
  test("two readers hold at once; a writer is excluded while they hold, and gets in once they have gone", async () => {
    const d = lockDir();
    const r1 = holder(d, "rw", "r1");
    await waitFor("the first reader", () => existsSync(`${d}/r1`));
    // Negative control: without -s the same request is busy.
    expect((await wl(["-d", d, "-t", "0", "rw", "--exec", "true"])).code).toBe(1);
    const r2 = holder(d, "rw", "r2");
    await waitFor("the second reader, while the first holds", () => existsSync(`${d}/r2`));
    expect([alive(r1.pid), alive(r2.pid)]).toEqual([true, true]);

    const rows = await listJson(d);
    expect(rows.map((r) => [r.descriptor, r.status, r.mode]).sort()).toEqual([["rw", "active", "shared"], ["rw", "active", "shared"]]);
    expect(new Set(rows.map((r) => r.pid)).size).toBe(2);
    expect(await wl(["-d", d, "-t", "0", "rw", "--exec", "echo", "writer"])).toMatchObject({ code: 1, stdout: "" });
    expect((await wl(["-d", d, "--check", "rw"])).code).toBe(1);
    expect((await wl(["-d", d, "--check", "-s", "rw"])).code).toBe(0);

    r1.stdin!.end();
    await r1.exited;
    expect((await wl(["-d", d, "-t", "0", "rw", "--exec", "true"])).code).toBe(1);
    r2.stdin!.end();
    await r2.exited;
    expect(await wl(["-d", d, "-t", "0", "rw", "--exec", "echo", "writer"])).toMatchObject({ code: 0, stdout: "writer\n" });
    expect(readdirSync(d).filter((f) => f.startsWith("rw."))).toEqual([]);
  });

  test("a reader waits while a writer holds, and is let in by its release", async () => {
    const d = lockDir();
    const w = holder(d, "wr", "w", "");
    await waitFor("the writer", () => existsSync(`${d}/w`));
    expect((await wl(["-d", d, "-s", "-t", "0", "wr", "--exec", "true"])).code).toBe(1);
    expect((await wl(["-d", d, "--check", "-s", "wr"])).code).toBe(1);
    const reader = start([BIN, "-d", d, "-s", "wr", "--exec", "true"]);
    await waitFor("the reader in the kernel's queue", () => queuedInKernel(reader.pid));
    w.stdin!.end();
    expect(await reader.exited).toBe(0);
  });

  needs(tool("flock"))("a writer queued before a later reader is served before it (no writer starvation), round after round", async () => {
    for (let round = 0; round < 5; round++) {
      const d = lockDir();
      const r1 = holder(d, "q", "r1");
      await waitFor("the first reader", () => existsSync(`${d}/r1`));
      const writer = start([BIN, "-d", d, "q", "--exec", "sh", "-c", `echo W >> "$0/order"`, d]);
      await waitFor("the writer asleep in the kernel's queue", () => queuedInKernel(writer.pid));
      const r2 = start([BIN, "-d", d, "-s", "q", "--exec", "sh", "-c", `echo R >> "$0/order"`, d]);
      await waitFor("the later reader queued behind the writer", () => queuedInKernel(r2.pid));
      if (round === 0) {
        // The control: the kernel alone lets a reader past a waiting writer (flock(1) -s on
        // the slot file, going round the turnstile, gets in at once).
        expect((await run(["flock", "-s", "-n", `${d}/q.slot0.lock`, "true"])).code).toBe(0);
        expect(existsSync(`${d}/order`)).toBe(false);
      }
      r1.stdin!.end();
      expect([await writer.exited, await r2.exited]).toEqual([0, 0]);
      expect(readFileSync(`${d}/order`, "utf8")).toBe("W\nR\n");
    }
  }, 60_000);
});

describe("plain acquire, records and release", () => {
  test("waitlock -s holds for the script; asking again takes no second hold; --list shows each holder and its mode", async () => {
    const d = lockDir();
    const a = startSh(`"$WL" -d "$D" -s db || exit 9; "$WL" -d "$D" -s db || exit 8; echo $$ > "$D/a"; read -r _`, d);
    const b = startSh(`"$WL" -d "$D" -s db || exit 9; echo $$ > "$D/b"; read -r _`, d);
    await waitFor("both scripts", () => existsSync(`${d}/a`) && existsSync(`${d}/b`));
    const [ownerA, ownerB] = [Number(readFileSync(`${d}/a`, "utf8")), Number(readFileSync(`${d}/b`, "utf8"))];
    let rows = await listJson(d);
    expect(rows.map((r) => r.owner).sort()).toEqual([ownerA, ownerB].sort());
    expect(rows.every((r) => r.mode === "shared" && r.status === "active")).toBe(true);
    const human = (await wl(["-d", d, "--list"])).stdout.split("\n");
    expect(human[0]).toMatch(/^DESCRIPTOR\s+SLOT\s+MODE\s+PID/);
    expect(human.filter((l) => /^db\s+0\/1\s+shared\s+\d+/.test(l))).toHaveLength(2);
    // Each reader's record is a holder file of its own beside the slot file.
    expect(readdirSync(d).filter((f) => /^db\.slot0\.[0-9a-f]{8}\.holder$/.test(f))).toHaveLength(2);
    expect((await wl(["-d", d, "-t", "0", "db"])).code).toBe(1);

    a.stdin!.end();
    await a.exited;
    await waitFor("the first script's hold to go", async () => (await listJson(d)).length === 1);
    rows = await listJson(d);
    expect(rows[0]!.owner).toBe(ownerB);
    b.stdin!.end();
    await b.exited;
    await waitFor("the lock to be free", async () => !(await held(d, "db")));
    await waitFor("the last reader to tidy up", () => readdirSync(d).filter((f) => f.startsWith("db.")).length === 0);
  });

  test("a writer that already holds the lock asking for -s gets 0 at once; a reader asking to write waits", async () => {
    const d = lockDir();
    const r = await sh(`"$WL" -d "$D" m && "$WL" -d "$D" -s -t 0 m && echo ok; "$WL" -d "$D" --list -f csv | grep -c '^m,'`, d);
    expect(r.stdout).toBe("ok\n1\n");
    const s = await sh(`"$WL" -d "$D" -s n && "$WL" -d "$D" -t 0 n; echo "upgrade=$?"`, d);
    expect(s.stdout).toBe("upgrade=1\n");
  });

  test("a reader killed with SIGKILL leaves a stale record, removed when the last reader lets go", async () => {
    const d = lockDir();
    const keeper = holder(d, "k", "keeper");
    await waitFor("a reader that stays", () => existsSync(`${d}/keeper`));
    const victim = startSh(`"$WL" -d "$D" -s k || exit 9; touch "$D/victim"; read -r _`, d);
    await waitFor("the victim's hold", async () => existsSync(`${d}/victim`) && (await listJson(d)).length === 2);
    const holderPid = (await listJson(d)).find((r) => r.owner === victim.pid)!.pid!;
    process.kill(holderPid, "SIGKILL");
    await waitFor("the victim's holder to die", () => !alive(holderPid));
    const all = await listJson(d, ["--all"]);
    expect(all.map((r) => r.status).sort()).toEqual(["active", "stale"]);
    expect(all.find((r) => r.status === "stale")!.pid).toBe(holderPid);
    expect((await listJson(d)).map((r) => r.status)).toEqual(["active"]);
    keeper.stdin!.end();
    await keeper.exited;
    expect(readdirSync(d).filter((f) => f.startsWith("k."))).toEqual([]);
  });

  test("a reader's command that leaves a child with the descriptor keeps the lock (the releaser is not alone)", async () => {
    const d = lockDir();
    const r = await sh(`"$WL" -d "$D" -s o --exec sh -c 'sleep 30 >/dev/null 2>&1 & echo $! > "$D/orphan"'`, d);
    expect(r.code).toBe(0);
    const orphan = Number(readFileSync(`${d}/orphan`, "utf8"));
    expect(existsSync(`${d}/o.slot0.lock`)).toBe(true);
    expect((await wl(["-d", d, "-t", "0", "o", "--exec", "true"])).code).toBe(1);
    expect((await wl(["-d", d, "-s", "-t", "0", "o", "--exec", "true"])).code).toBe(0);
    const rows = await listJson(d);
    expect(rows.map((row) => [row.pid, row.command, row.mode])).toEqual([[orphan, "sleep 30", "shared"]]);
    expect((await wl(["-d", d, "--done", "o"])).code).toBe(0);
    await waitFor("the orphan to stop", () => !alive(orphan));
    expect((await wl(["-d", d, "-t", "0", "o", "--exec", "true"])).code).toBe(0);
  });

  test("a symbolic link or FIFO planted under a holder file's name is never followed, read or hung on", async () => {
    const d = lockDir();
    const { symlinkSync } = await import("node:fs");
    symlinkSync("/etc/passwd", `${d}/p.slot0.0badf00d.holder`);
    Bun.spawnSync(["mkfifo", `${d}/p.slot0.0badfeed.holder`]);
    const reader = holder(d, "p", "r");
    await waitFor("a reader", () => existsSync(`${d}/r`));
    const r = await wl(["-d", d, "--list", "--all", "-f", "json"], { deadlineMs: 5000 });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("root:");
    expect(JSON.parse(r.stdout).filter((row: { status: string }) => row.status === "active")).toHaveLength(1);
    reader.stdin!.end();
    await reader.exited;
    // The last reader sweeps holder files that are its NAME's by their names: the planted ones too.
    expect(readdirSync(d).filter((f) => f.startsWith("p."))).toEqual([]);
  });

  test("a reader whose record cannot be written is warned, as a writer is", async () => {
    // A 240-byte NAME (the longest allowed) leaves no room in a file name for the holder
    // file's suffix: the lock is held, but nothing names its holder.
    const d = lockDir();
    const name = "r".repeat(240);
    const r = await wl(["-d", d, "-s", name, "--exec", "true"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("lock held, but its record cannot be written");
  });

  test("-s with more than one slot is a usage error", async () => {
    for (const args of [["-s", "-m", "2", "x"], ["-s", "-c", "x"], ["-s", "--done", "x"], ["-s", "--list"]]) {
      const r = await wl(["-d", lockDir(), ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 3 });
    }
    expect((await wl(["-d", lockDir(), "-s", "-m", "1", "x", "--exec", "true"])).code).toBe(0);
  });
});

test("the library: shared locks in one process, excluded writers, release", async () => {
  const d = lockDir();
  const a = acquire("lib", { lockDir: d, shared: true, command: "reader a" });
  const b = acquire("lib", { lockDir: d, shared: true, timeout: 0, command: "reader b" });
  expect([a.shared, b.shared]).toEqual([true, true]);
  expect(tryAcquire("lib", { lockDir: d })).toBeNull();
  expect(() => acquire("lib", { lockDir: d, slots: 2, shared: true })).toThrow("one slot");
  const rows = await listJson(d);
  expect(rows.map((r) => r.command).sort()).toEqual(["reader a", "reader b"]);
  expect((await wl(["-d", d, "-s", "-t", "0", "lib", "--exec", "true"])).code).toBe(0);
  a.release();
  expect(() => acquire("lib", { lockDir: d, timeout: 0 })).toThrow(BusyError);
  b.release();
  const w = acquire("lib", { lockDir: d, timeout: 0 });
  expect(w.shared).toBe(false);
  w.release();
  expect(readdirSync(d)).toEqual([]);
});
