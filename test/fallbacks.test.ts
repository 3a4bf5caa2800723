// The fallback paths, exercised on Linux: polling instead of inotify and pidfd
// (WAITLOCK_POLL=1, and what platforms without them do), and watches that cannot go
// through /proc.
import { describe, expect, test } from "bun:test";
import { closeSync, existsSync, readFileSync, readdirSync, readlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { commandLine, exitWatch } from "../src/procinfo";
import { createWaker } from "../src/waker";
import { BIN, countUnderLock, held, listJson, lockDir, needs, queuedInKernel, sh, start, startSh, stderrOf, userName, waitFor, wl } from "./helpers";

const POLL = { WAITLOCK_POLL: "1" };

describe("WAITLOCK_POLL=1: no inotify, no pidfd", () => {
  test("mutual exclusion holds: 4 processes x 10 increments lose no update", async () => {
    expect(await countUnderLock(lockDir(), 4, 10, POLL)).toBe(40);
  }, 60_000);

  test("a semaphore's waiter polls, says so, has no inotify descriptor, and gets a slot after a holder", async () => {
    const d = lockDir();
    const holders = [0, 1].map(() => startSh(`exec "$WL" -d "$D" -m 2 p --exec sh -c 'read -r _ || true'`, d));
    await waitFor("holders", () => held(d, "p", 2));
    const waiter = start([BIN, "-v", "-d", d, "-m", "2", "p", "--exec", "true"], { env: POLL });
    const log = stderrOf(waiter);
    await log.until(/waiting by polling/);
    const fds = readdirSync(`/proc/${waiter.pid}/fd`).map((fd) => readlinkSync(`/proc/${waiter.pid}/fd/${fd}`));
    expect(fds).not.toContain("anon_inode:inotify");
    holders[1]!.stdin!.end();
    expect(await waiter.exited).toBe(0);
  });

  test("a mutex's waiter needs no inotify at all: it sleeps in the kernel's queue for the file", async () => {
    const d = lockDir();
    const holder = startSh(`exec "$WL" -d "$D" q --exec sh -c 'read -r _ || true'`, d);
    await waitFor("holder", () => held(d, "q"));
    const waiter = start([BIN, "-d", d, "q", "--exec", "true"], { env: POLL });
    await waitFor("the waiter in the kernel's queue", () => queuedInKernel(waiter.pid));
    holder.stdin!.end();
    expect(await waiter.exited).toBe(0);
  });

  test("timeouts still fire within 0.1 s", async () => {
    const d = lockDir();
    start([BIN, "-d", d, "t", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "t"));
    const base = (await wl(["-d", d, "-t", "0", "t", "--exec", "true"], { env: POLL })).ms;
    const r = await wl(["-d", d, "-t", "0.6", "t", "--exec", "true"], { env: POLL });
    expect(r.code).toBe(2);
    expect(r.ms - base - 600).toBeLessThan(100);
  });

  test("the holder polls its owner (no pidfd) and releases when the owner is killed", async () => {
    const d = lockDir();
    const script = startSh(`"$WL" -d "$D" owned || exit 9; touch "$D/locked"; exec sleep 60`, d, POLL);
    await waitFor("lock", () => existsSync(`${d}/locked`));
    const [row] = await listJson(d);
    const fds = readdirSync(`/proc/${row!.pid}/fd`).map((fd) => readlinkSync(`/proc/${row!.pid}/fd/${fd}`));
    expect(fds.some((t) => t.includes("pidfd"))).toBe(false);
    process.kill(script.pid, "SIGKILL");
    await waitFor("release by the polling holder", async () => !(await held(d, "owned")), 3000);
  });
});

describe("without /proc entries", () => {
  test("a watch that cannot go through /proc/self/fd is put on the path, and still wakes the waiter", () => {
    const d = lockDir();
    const path = `${d}/w.slot0.lock`;
    writeFileSync(path, "");
    const waker = createWaker("inotify");
    // Descriptor -1 has no /proc/self/fd entry: the watch must fall back to the path.
    waker.watch(0, -1, path);
    unlinkSync(path);
    const t0 = performance.now();
    waker.sleep(5000);
    expect(performance.now() - t0).toBeLessThan(1000);
    waker.close();
  });

  test("an unreadable command line is empty, and a gone owner is reported as gone", () => {
    expect(commandLine(2 ** 22 + 12345)).toBe("");
    expect(exitWatch(2 ** 22 + 12345)).toEqual({ kind: "gone" });
    const self = exitWatch(process.pid);
    expect(self.kind).toBe("pidfd");
    if (self.kind === "pidfd") closeSync(self.fd);
  });

  // --owner of a process whose command line is empty: a kernel thread, PID 2 (kthreadd).
  const kthread = existsSync("/proc/2/cmdline") && readFileSync("/proc/2/cmdline").length === 0;
  needs(kthread ? undefined : "no kernel thread at PID 2 (a PID namespace of its own)")("a record without a command line still lists", async () => {
    const d = lockDir();
    const r = await sh(`"$WL" -d "$D" --owner 2 kthread && "$WL" -d "$D" --list -f csv`, d);
    expect(r.stdout).toContain(`\nkthread,`);
    expect(r.stdout.split("\n")[1]).toMatch(new RegExp(`^kthread,\\d+,0,${userName()},\\d+,active,$`));
    await wl(["-d", d, "--done", "kthread"]);
  });
});
