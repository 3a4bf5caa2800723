// waitlock --serve and the shell functions of --shell-init: one process holding many locks
// for its client, driven through real pipes, real shells and real contention.
import { expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { BIN, alive, held, listJson, lockDir, queuedInKernel, run, start, startSh, waitFor } from "./helpers";

/** A --serve process with a line-at-a-time client. */
function server(env: Record<string, string> = {}) {
  const p = start([BIN, "--serve"], { stdin: "pipe", stdout: "pipe", env });
  const lines: string[] = [];
  const decoder = new TextDecoder();
  let partial = "";
  const reading = (async () => {
    for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
      partial += decoder.decode(chunk, { stream: true });
      const parts = partial.split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
    }
  })();
  const stdin = p.stdin as { write(s: string): unknown; flush(): unknown; end(): unknown };
  return {
    p,
    lines,
    reading,
    send(line: string) {
      stdin.write(`${line}\n`);
      stdin.flush();
    },
    end: () => stdin.end(),
    /** The answer to request `id` (fields after the ID). */
    async answer(id: string): Promise<string> {
      let found: string | undefined;
      await waitFor(`the answer to request ${id}`, () => (found = lines.find((l) => l.startsWith(`${id} `))) !== undefined);
      return found!.slice(id.length + 1);
    },
  };
}

test("requests are answered with the CLI's exit statuses and slots; an acquire that waits does not hold up the others", async () => {
  const d = lockDir();
  const s = server();
  s.send(`1 acquire -d ${d} a`);
  expect(await s.answer("1")).toBe("0 0");
  s.send(`2 acquire -d ${d} -m 3 WAITLOCK_SLOT=2 sem`);
  // The client's environment comes first, as a shell writes it.
  expect(await s.answer("2")).toBe("3 - sem: unexpected argument (one NAME only; commands go after --exec)");
  s.send(`3 acquire WAITLOCK_SLOT=2 -d ${d} -m 3 sem`);
  expect(await s.answer("3")).toBe("0 2");
  s.send(`4 acquire -d ${d} a`);
  expect(await s.answer("4")).toBe("0 0");
  s.send(`5 check -d ${d} a`);
  expect(await s.answer("5")).toBe("1 -");
  s.send(`6 acquire -d ${d} bad%20name`);
  expect(await s.answer("6")).toBe("3 - lock name: 'bad name' may contain only letters, digits, '.', '_' and '-'");
  s.send(`7 release -d ${d} nothing`);
  expect(await s.answer("7")).toBe("1 - nothing: not held through this coprocess");
  s.send(`8 frobnicate`);
  expect(await s.answer("8")).toBe("3 - frobnicate: unknown request (acquire, release, check, list, cancel)");

  // A lock held by another process: the acquire waits, the next requests are answered meanwhile.
  const other = startSh(`exec "$WL" -d "$D" busy --exec sh -c 'touch "$D/held"; read -r _'`, d);
  await waitFor("the other holder", () => existsSync(`${d}/held`));
  s.send(`9 acquire -d ${d} -t 0 busy`);
  expect(await s.answer("9")).toBe("1 -");
  s.send(`10 acquire -d ${d} busy`);
  await waitFor("the wait in the kernel's queue", () => queuedInKernel(s.p.pid));
  s.send(`11 release -d ${d} a`);
  expect(await s.answer("11")).toBe("0 0");
  s.send(`12 list -d ${d} sem`);
  const rows = JSON.parse((await s.answer("12")).slice("0 - ".length));
  expect(rows).toMatchObject([{ descriptor: "sem", slot: 2, pid: s.p.pid, owner: process.pid, status: "active" }]);
  expect(s.lines.some((l) => l.startsWith("10 "))).toBe(false);
  (other.stdin as { end(): unknown }).end();
  expect(await s.answer("10")).toBe("0 0");
  expect(s.lines.indexOf(s.lines.find((l) => l.startsWith("10 "))!)).toBeGreaterThan(s.lines.indexOf(s.lines.find((l) => l.startsWith("12 "))!));

  s.send(`13 acquire -d ${d} -t 0.2 busy2`);
  const blocker = start([BIN, "-d", d, "late", "--exec", "sleep", "30"]);
  await waitFor("late holder", () => held(d, "late"));
  s.send(`14 acquire -d ${d} -t 0.2 late`);
  expect(await s.answer("14")).toBe("2 - late: timed out after 0.2 seconds");
  blocker.kill("SIGKILL");
  expect(await s.answer("13")).toBe("0 0");

  // End of input: everything is released and the process exits.
  s.end();
  expect(await s.p.exited).toBe(0);
  for (const name of ["sem", "busy", "busy2"]) expect(await held(d, name)).toBe(false);
});

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  test(`${signal} releases every lock the coprocess holds`, async () => {
    const d = lockDir();
    const s = server();
    s.send(`1 acquire -d ${d} one`);
    s.send(`2 acquire -d ${d} -m 2 two`);
    expect([await s.answer("1"), await s.answer("2")]).toEqual(["0 0", "0 0"]);
    expect(await held(d, "one")).toBe(true);
    s.p.kill(signal);
    await s.p.exited;
    expect(await held(d, "one")).toBe(false);
    expect(await held(d, "two", 1)).toBe(false);
  });
}

// ---------------------------------------------------------------- the shells

const SHELLS = ["bash", "zsh"] as const;

function shellPath(shell: string): string | undefined {
  return Bun.which(shell) ?? undefined;
}

for (const shell of SHELLS) {
  const path = shellPath(shell);
  const ci = !!process.env.CI;
  if (!path && !ci) console.log(`skipping the ${shell} tests: ${shell} is not installed (apt-get install -y ${shell})`);
  const shellTest = path || ci ? test : test.skip;

  /** A script run by this shell with the functions loaded and `set -euo pipefail`; $WL, $D as in helpers. */
  const script = (body: string) => `set -euo pipefail
eval "$("$WL" --shell-init ${shell})"
export WAITLOCK_DIR="$D"
${body}`;
  const runShell = (body: string, d: string, deadlineMs = 20_000) => run([path ?? shell, "-c", script(body)], { env: { WL: BIN, D: d }, deadlineMs });
  const startShell = (body: string, d: string) => start([path ?? shell, "-c", script(body)], { env: { WL: BIN, D: d }, stdin: "pipe" });

  shellTest(`${shell}: 8 shells x 25 increments through waitlock_acquire/waitlock_release lose no update`, async () => {
    const d = lockDir();
    writeFileSync(`${d}/counter`, "0\n");
    const worker = `for i in $(seq 25); do
      waitlock_acquire counter
      n=$(cat "$D/counter"); sleep 0.001; echo $((n + 1)) > "$D/counter"
      waitlock_release counter
    done`;
    const shells = Array.from({ length: 8 }, () => startShell(worker, d));
    expect(await Promise.all(shells.map((s) => s.exited))).toEqual(Array(8).fill(0));
    expect(readFileSync(`${d}/counter`, "utf8").trim()).toBe("200");
  }, 120_000);

  shellTest(`${shell}: a 3-slot semaphore never has a 4th holder; WAITLOCK_SLOT names each holder's slot`, async () => {
    const d = lockDir();
    const worker = `for i in 1 2 3 4 5 6; do
      waitlock_acquire -m 3 pool
      echo "+$WAITLOCK_SLOT" >> "$D/log"; sleep 0.02; echo "-$WAITLOCK_SLOT" >> "$D/log"
      waitlock_release pool
    done`;
    const shells = Array.from({ length: 8 }, () => startShell(worker, d));
    expect(await Promise.all(shells.map((s) => s.exited))).toEqual(Array(8).fill(0));
    let now = 0;
    let peak = 0;
    const busy = new Set<string>();
    const lines = readFileSync(`${d}/log`, "utf8").trim().split("\n");
    expect(lines).toHaveLength(8 * 6 * 2);
    for (const line of lines) {
      if (line.startsWith("+")) {
        expect(busy.has(line.slice(1))).toBe(false);
        busy.add(line.slice(1));
        peak = Math.max(peak, ++now);
      } else {
        busy.delete(line.slice(1));
        now--;
      }
    }
    expect(peak).toBe(3);
    expect([...new Set(lines.map((l) => l.slice(1)))].sort()).toEqual(["0", "1", "2"]);
  }, 120_000);

  shellTest(`${shell}: the locks are released when the shell is killed with SIGKILL; the record names the shell as owner`, async () => {
    const d = lockDir();
    const sh = startShell(`waitlock_acquire job; waitlock_acquire -m 2 other; touch "$D/locked"; read -r _`, d);
    await waitFor("the shell to take its locks", () => existsSync(`${d}/locked`));
    const rows = await listJson(d);
    expect(rows.map((r) => r.descriptor).sort()).toEqual(["job", "other"]);
    expect(rows.every((r) => r.owner === sh.pid && r.pid !== sh.pid)).toBe(true);
    const coprocess = rows[0]!.pid!;
    expect(alive(coprocess)).toBe(true);
    process.kill(sh.pid, "SIGKILL");
    await waitFor("release after the shell's death", async () => !(await held(d, "job")) && !(await held(d, "other", 1)), 5000);
    await waitFor("the coprocess to exit", () => !alive(coprocess), 5000);
  });

  shellTest(`${shell}: exit statuses, timeouts and messages are the plain form's, under set -euo pipefail`, async () => {
    const d = lockDir();
    start([BIN, "-d", d, "taken", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "taken"));
    const r = await runShell(
      `rc=0; waitlock_acquire -t 0 taken || rc=$?; echo "busy=$rc"
      rc=0; waitlock_acquire -t 0.3 taken || rc=$?; echo "timeout=$rc"
      rc=0; waitlock_acquire 'bad name' || rc=$?; echo "usage=$rc"
      rc=0; waitlock_release never || rc=$?; echo "release=$rc"
      rc=0; waitlock_acquire -q -t 0.1 taken || rc=$?; echo "quiet=$rc"
      waitlock_acquire -m 4 pool; echo "slot=$WAITLOCK_SLOT"
      export WAITLOCK_SLOT=3; waitlock_acquire -m 4 pool2; echo "preferred=$WAITLOCK_SLOT"; unset WAITLOCK_SLOT
      waitlock_acquire -m 4 pool; echo "again=$WAITLOCK_SLOT"
      waitlock_acquire mutex; echo "mutex=$WAITLOCK_SLOT"
      "$WL" --check mutex || echo "held=$?"
      waitlock_release mutex; "$WL" --check mutex && echo "free"
      echo end`,
      d,
    );
    expect(r.stdout).toBe("busy=1\ntimeout=2\nusage=3\nrelease=1\nquiet=2\nslot=0\npreferred=3\nagain=0\nmutex=0\nheld=1\nfree\nend\n");
    expect(r.stderr).toBe(
      "waitlock: taken: timed out after 0.3 seconds\n" +
        "waitlock: lock name: 'bad name' may contain only letters, digits, '.', '_' and '-'\n" +
        "waitlock: never: not held through this coprocess\n",
    );
    expect(r.code).toBe(0);
    // set -e: a failed acquire ends the script with its status.
    expect((await runShell(`waitlock_acquire -t 0 taken; echo not reached`, d)).code).toBe(1);
  });

  shellTest(`${shell}: a subshell has a coprocess of its own, whose locks go when the subshell ends`, async () => {
    const d = lockDir();
    const r = await runShell(
      `waitlock_acquire outer
      ( waitlock_acquire inner; "$WL" --check inner || echo "inner held=$?"; rc=0; waitlock_release outer || rc=$?; echo "outer from subshell=$rc" )
      # The subshell's coprocess lets go once it has seen the end of its input: soon, not at once.
      for i in $(seq 100); do if "$WL" --check inner; then echo "inner free after the subshell"; break; fi; sleep 0.05; done
      "$WL" --check outer || echo "outer still held=$?"`,
      d,
    );
    expect(r.stdout).toBe("inner held=1\nouter from subshell=1\ninner free after the subshell\nouter still held=1\n");
    expect(r.code).toBe(0);
  });

  shellTest(`${shell}: a dead coprocess is a clear error (status 4), never a hang; the next call starts a new one`, async () => {
    const d = lockDir();
    const r = await runShell(
      `waitlock_acquire first
      pid=$("$WL" --list -f json first | sed -n 's/.*"pid": \\([0-9]*\\).*/\\1/p')
      kill -9 "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
      rc=0; waitlock_acquire second || rc=$?; echo "dead=$rc"
      "$WL" --check first && echo "first released"
      waitlock_acquire third; echo "third=$WAITLOCK_SLOT"`,
      d,
      10_000,
    );
    expect(r.stdout).toBe("dead=4\nfirst released\nthird=0\n");
    // (bash adds its own notice of the killed job.)
    expect(r.stderr).toMatch(/^waitlock: coprocess \d+ (has exited|exited without answering): the locks it held are released$/m);
  });
}
