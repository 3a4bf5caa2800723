// One test (at least) for each invariant of ARCHITECTURE.md that is not covered where the
// behaviour lives (4: hold.test.ts, 5: exec.test.ts).
import { expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeRecord } from "../src/record";
import { BIN, asleepInPoll, expectWokenByRelease, held, inotifyWatches, lockDir, needs, start, startSh, tool, voluntarySwitches, waitFor, wl } from "./helpers";

needs(tool("flock"))("1. the kernel decides: a flock(1) holder with no record blocks; a record of a live PID without a lock does not", async () => {
  const d = lockDir();
  const outsider = start(["flock", `${d}/k.slot0.lock`, "sleep", "30"]);
  await waitFor("flock(1) to hold the file", () => existsSync(`${d}/k.slot0.lock`));
  await waitFor("the lock", () => held(d, "k"));
  expect((await wl(["-d", d, "-t", "0", "k", "--exec", "true"])).code).toBe(1);
  outsider.kill("SIGKILL");
  const record = encodeRecord({
    pid: process.pid, owner: 1, uid: 0, acquiredAt: Date.now() / 1000, type: "mutex", maxHolders: 1, slot: 0,
    hostname: "elsewhere", descriptor: "r", command: "claims to hold it",
  });
  writeFileSync(`${d}/r.slot0.lock`, record);
  expect((await wl(["-d", d, "-t", "0", "r", "--exec", "true"])).code).toBe(0);
  expect((await wl(["-d", d, "--check", "r"])).code).toBe(0);
});

test("2. unlink only while holding: a holder whose file was replaced leaves the new holder's file alone", async () => {
  const d = lockDir();
  // A's command removes A's slot file while A holds it, then waits.
  const a = startSh(`exec "$WL" -d "$D" u --exec sh -c 'rm "$D/u.slot0.lock"; touch "$D/a"; read -r _ || true'`, d);
  await waitFor("A", () => existsSync(`${d}/a`));
  const b = start([BIN, "-d", d, "u", "--exec", "sleep", "30"]);
  await waitFor("B to hold a new file", () => held(d, "u"));
  const inode = statSync(`${d}/u.slot0.lock`).ino;
  a.stdin!.end();
  expect(await a.exited).toBe(0);
  // A released without deleting B's file: B still holds the lock, nobody else gets in.
  expect(statSync(`${d}/u.slot0.lock`).ino).toBe(inode);
  expect(await held(d, "u")).toBe(true);
  expect((await wl(["-d", d, "-t", "0", "u", "--exec", "true"])).code).toBe(1);
  b.kill("SIGTERM");
});

test("2. under churn (release, re-create, re-lock) no two holders are ever inside at once", async () => {
  const d = lockDir();
  // mkdir is atomic: a second holder inside the section would fail it.
  const worker = `i=0; while [ $i -lt 40 ]; do
      "$WL" -d "$D" churn --exec sh -c 'mkdir "$D/inside" || echo overlap >> "$D/violations"; rmdir "$D/inside"' || exit 9
      i=$((i + 1)); done`;
  const codes = await Promise.all(Array.from({ length: 6 }, () => startSh(worker, d).exited));
  expect(codes).toEqual(Array(6).fill(0));
  expect(existsSync(`${d}/violations`)).toBe(false);
  expect(readdirSync(d).filter((f) => f.endsWith(".lock"))).toEqual([]);
}, 120_000);

/** CPU ticks and voluntary context switches of a process so far. */
function usage(pid: number) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return {
    cpuTicks: Number(stat[11]) + Number(stat[12]),
    switches: voluntarySwitches(pid),
  };
}

test("3. no busy waiting: a waiter sleeps in the kernel, waking a few times a second at most", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "-m", "2", "idle", "--exec", "sleep", "30"]);
  start([BIN, "-d", d, "-m", "2", "idle", "--exec", "sleep", "30"]);
  await waitFor("both slots held", () => held(d, "idle", 2));
  const waiter = start([BIN, "-d", d, "-m", "2", "idle", "--exec", "true"]);
  await waitFor("the waiter asleep on its watches", () => inotifyWatches(waiter.pid) >= 2 && asleepInPoll(waiter.pid));
  const before = usage(waiter.pid);
  // The measurement window: what the waiter does while nothing happens.
  await Bun.sleep(2000);
  const after = usage(waiter.pid);
  // 2 s at one recheck per 250 ms is 8 wake-ups; a spinning or 1 ms-polling waiter makes thousands.
  expect(after.switches - before.switches).toBeLessThan(40);
  expect(after.cpuTicks - before.cpuTicks).toBeLessThan(10);
});

needs(tool("strace"))("3. a semaphore waiter watches every slot and is woken by whichever is released", async () => {
  const d = lockDir();
  const first = startSh(`exec "$WL" -d "$D" -m 2 w --exec sh -c 'touch "$D/one"; read -r _'`, d);
  const second = startSh(`exec "$WL" -d "$D" -m 2 w --exec sh -c 'touch "$D/two"; read -r _'`, d);
  await waitFor("both holders", () => existsSync(`${d}/one`) && existsSync(`${d}/two`));
  for (const release of [second, first]) {
    await expectWokenByRelease(["-d", d, "-m", "2", "w", "--exec", "true"], release, 2);
    await release.exited;
    // Take the released slot back for the next round.
    if (release === second) startSh(`exec "$WL" -d "$D" -m 2 w --exec sh -c 'touch "$D/three"; read -r _'`, d);
    await waitFor("slots held again", () => release === first || existsSync(`${d}/three`));
  }
});

const SRC = join(import.meta.dir, "..");
const sources = (dir: string): string[] =>
  readdirSync(join(SRC, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );

test("6. errors are values: only the entry points print or exit", () => {
  // The holders (of a slot file, of a lease) and the coprocess are processes of their own that end on signals.
  const entryPoints = ["src/main.ts", "src/cli.ts", "src/log.ts", "src/modes/holder.ts", "src/modes/lease-holder.ts", "src/modes/serve.ts"];
  for (const file of [...sources("src"), ...sources("ffi")]) {
    if (entryPoints.includes(file)) continue;
    const text = readFileSync(join(SRC, file), "utf8");
    expect({ file, exits: /process\.exit\(|console\.(log|error)\(/.test(text) }).toEqual({ file, exits: false });
  }
});

test("imports flow one way: cli (and the library entry) -> modes -> engine/record/lockdir/backends -> ffi; no mode imports a backend", () => {
  const rank = (file: string) =>
    file === "src/main.ts" ? 4 : ["src/cli.ts", "src/index.ts"].includes(file) ? 3 : file.startsWith("src/modes/") ? 2 : file.startsWith("src/") ? 1 : 0;
  for (const file of [...sources("src"), ...sources("ffi")]) {
    const text = readFileSync(join(SRC, file), "utf8");
    for (const m of text.matchAll(/from "(\.[^"]+)"/g)) {
      const target = join(file, "..", m[1]!).replace(/\.ts$/, "") + ".ts";
      expect({ file, target, ok: rank(target) <= rank(file) }).toEqual({ file, target, ok: true });
      // Invariant 7: a mode sees the seam (src/backend.ts), never an engine.
      const seam = !file.startsWith("src/modes/") || !target.startsWith("src/backends/");
      expect({ file, target, seam }).toEqual({ file, target, seam: true });
    }
    if (!file.startsWith("ffi/")) expect({ file, ffi: /from "bun:ffi"/.test(text) }).toEqual({ file, ffi: false });
  }
});
