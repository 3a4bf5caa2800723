// waitlock --serve and the shell functions of --shell-init: one process holding many locks
// for its client, driven through real pipes, real shells and real contention.
import { expect, test } from "bun:test";
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { BIN, alive, held, listJson, lockDir, queuedInKernel, run, start, startSh, waitFor, type ListedRow } from "./helpers";

/** A --serve process with a line-at-a-time client. */
function server(env: Record<string, string> = {}) {
  return serverOf(start([BIN, "--serve"], { stdin: "pipe", stdout: "pipe", env }));
}

/** A line-at-a-time client of the --serve process `p`. */
function serverOf(p: ReturnType<typeof start>) {
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
  // Waiters too, as --list -f json shows them: here the coprocess itself waits for busy.
  s.send(`12w list -d ${d} busy`);
  const busy = JSON.parse((await s.answer("12w")).slice("0 - ".length)) as ListedRow[];
  expect(busy.map((r) => [r.status, r.pid])).toEqual([["active", other.pid], ["waiting", s.p.pid]]);
  expect(busy).toEqual(await listJson(d, ["busy"]));
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

test("a bad %XX escape is answered with the request's ID; a line over the limit is refused by its ID and serving goes on with bounded memory", async () => {
  const d = lockDir();
  const s = server();
  s.send(`1 check -d ${d} free`);
  expect(await s.answer("1")).toBe("0 -");
  const peakKbOf = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
  const before = peakKbOf(s.p.pid);
  s.send(`7 acquire -d ${d} bad%zzname`);
  expect(await s.answer("7")).toBe("3 - bad%zzname: bad %XX escape in request (%XX is two hexadecimal digits; a percent sign is %25)");
  // The ID is echoed as written, %XX and all.
  s.send(`id%20x check -d ${d} free`);
  expect(await s.answer("id%20x")).toBe("0 -");
  const stdin = s.p.stdin as { write(b: string): unknown; flush(): unknown };
  stdin.write(`8 acquire -d ${d} `);
  // 128 MiB without a newline: kept whole, it would cost at least as much memory; read
  // and dropped, what the runtime's buffers and the JIT take meanwhile stays far below.
  const mib = "x".repeat(1 << 20);
  for (let i = 0; i < 128; i++) {
    stdin.write(mib);
    await stdin.flush();
  }
  s.send("");
  expect(await s.answer("8")).toBe("3 - request: longer than 65536 bytes");
  s.send(`9 acquire -d ${d} after`);
  expect(await s.answer("9")).toBe("0 0");
  expect(peakKbOf(s.p.pid) - before).toBeLessThan(64 * 1024);
  s.end();
  expect(await s.p.exited).toBe(0);
}, 60_000);

test("--serve -d DIR (and its WAITLOCK_DIR) is the lock directory of requests that name none", async () => {
  const d = lockDir();
  const other = lockDir();
  const s = start([BIN, "--serve", "-d", d], { stdin: "pipe", stdout: "pipe" });
  const byOption = serverOf(s);
  byOption.send("1 acquire one");
  expect(await byOption.answer("1")).toBe("0 0");
  expect(await held(d, "one")).toBe(true);
  byOption.send(`2 acquire -d ${other} two`);
  expect(await byOption.answer("2")).toBe("0 0");
  expect(await held(other, "two")).toBe(true);
  byOption.send("3 check one");
  expect(await byOption.answer("3")).toBe("1 -");
  const byEnv = server({ WAITLOCK_DIR: other });
  byEnv.send("1 acquire three");
  expect(await byEnv.answer("1")).toBe("0 0");
  expect(await held(other, "three")).toBe(true);
  byOption.end();
  byEnv.end();
  expect([await s.exited, await byEnv.p.exited]).toEqual([0, 0]);
});

test("'cancel' withdraws a waiting acquire: answered with status 2, nothing left queued, never granted later", async () => {
  const d = lockDir();
  const s = server();
  const other = startSh(`exec "$WL" -d "$D" busy --exec sh -c 'touch "$D/held"; read -r _'`, d);
  await waitFor("the other holder", () => existsSync(`${d}/held`));
  s.send(`w1 acquire -d ${d} busy`);
  await waitFor("the wait in the kernel's queue", () => queuedInKernel(s.p.pid));
  s.send("c1 cancel w1");
  expect(await s.answer("c1")).toBe("0 -");
  expect(await s.answer("w1")).toBe("2 - busy: gave up waiting: cancelled");
  s.send("c2 cancel w1");
  expect(await s.answer("c2")).toBe("1 - w1: no acquire with this ID is waiting");
  expect((await listJson(d, ["--all"])).filter((r) => (r as { status?: string }).status === "waiting")).toEqual([]);
  await waitFor("the wait to leave the kernel's queue", () => !queuedInKernel(s.p.pid));
  (other.stdin as { end(): unknown }).end();
  await waitFor("the other holder to go", async () => !(await held(d, "busy")));
  s.send(`2 check -d ${d} busy`);
  expect(await s.answer("2")).toBe("0 -");
  s.end();
  expect(await s.p.exited).toBe(0);
});

test("a check that cannot tell answers 2, as --check does, whatever stopped it", async () => {
  const d = lockDir();
  writeFileSync(`${d}/file`, "");
  symlinkSync("/etc/passwd", `${d}/c.slot0.lock`);
  const s = server();
  s.send(`1 check -d ${d} c`);
  expect(await s.answer("1")).toBe(`2 - ${d}/c.slot0.lock: lock file is a symbolic link; refusing to follow it`);
  // Its lock directory unusable (exit 6 elsewhere).
  s.send(`2 check -d ${d}/file c`);
  expect(await s.answer("2")).toBe(`2 - ${d}/file: lock directory is not a directory`);
  s.end();
  expect(await s.p.exited).toBe(0);
});

test("--list shows a coprocess's waiter waiting since it asked, not since the coprocess started", async () => {
  const d = lockDir();
  const startedMs = Date.now();
  const s = server();
  s.send(`1 check -d ${d} x`);
  expect(await s.answer("1")).toBe("0 -");
  await waitFor("the coprocess to be over a second old", () => Date.now() - startedMs > 1500, 5000);
  const other = startSh(`exec "$WL" -d "$D" busy --exec sh -c 'touch "$D/held"; read -r _'`, d);
  await waitFor("the other holder", () => existsSync(`${d}/held`));
  const askedAt = Date.now() / 1000;
  s.send(`2 acquire -d ${d} busy`);
  await waitFor("the wait in the kernel's queue", () => queuedInKernel(s.p.pid));
  const r = await run([BIN, "-d", d, "--list", "-f", "json"]);
  const waiter = (JSON.parse(r.stdout) as { status: string; pid: number; waitingSince: number }[]).find((w) => w.status === "waiting");
  expect(waiter?.pid).toBe(s.p.pid);
  expect(waiter!.waitingSince).toBeGreaterThanOrEqual(askedAt - 0.05);
  expect(waiter!.waitingSince).toBeLessThanOrEqual(Date.now() / 1000);
  (other.stdin as { end(): unknown }).end();
  expect(await s.answer("2")).toBe("0 0");
  s.end();
  await s.p.exited;
});

test("--serve --owner PID: the end of input releases nothing while PID lives; PID's exit does, and so does SIGTERM meanwhile", async () => {
  const d = lockDir();
  for (const ending of ["owner exits", "SIGTERM"] as const) {
    const owner = start(["sleep", "60"]);
    const s = serverOf(start([BIN, "--serve", "--owner", String(owner.pid)], { stdin: "pipe", stdout: "pipe" }));
    s.send(`1 acquire -d ${d} kept`);
    expect(await s.answer("1")).toBe("0 0");
    expect((await listJson(d))[0]).toMatchObject({ pid: s.p.pid, owner: owner.pid });
    s.end();
    // Nothing to wait for but time: the end of input must not release while the owner lives.
    const until = performance.now() + 500;
    while (performance.now() < until) expect(await held(d, "kept")).toBe(true);
    if (ending === "owner exits") owner.kill("SIGKILL");
    else s.p.kill("SIGTERM");
    await waitFor(`the release (${ending})`, async () => !(await held(d, "kept")), 3000);
    await s.p.exited;
    owner.kill("SIGKILL");
  }
  expect((await run([BIN, "--serve", "--owner", "1"])).code).toBe(3);
});

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
  const runShell = (body: string, d: string, deadlineMs = 20_000, env: Record<string, string> = {}) =>
    run([path ?? shell, "-c", script(body)], { env: { WL: BIN, D: d, ...env }, deadlineMs });
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

  shellTest(`${shell}: a script that ignores ^C (trap '' INT) keeps waiting through a SIGINT, as flock(1) would`, async () => {
      const d = lockDir();
      const holder = start([BIN, "-d", d, "ign", "--exec", "sleep", "30"]);
      await waitFor("holder", () => held(d, "ign"));
      // (A shell that finds SIGINT ignored on entry, as bun test leaves it, cannot trap it at all.)
      const argv = ["env", "--default-signal=INT", path ?? shell, "-c", script(`trap '' INT; echo waiting; waitlock_acquire ign; echo "rc=$?"`)];
      const sh = start(argv, { env: { WL: BIN, D: d }, stdout: "pipe" });
      let out = "";
      (async () => {
        for await (const c of sh.stdout as ReadableStream<Uint8Array>) out += new TextDecoder().decode(c);
      })();
      await waitFor("the script to wait", () => out.includes("waiting"));
      await waitFor("its acquire to queue", async () => (await run([BIN, "-d", d, "--list", "-f", "csv", "ign"])).stdout.includes(",waiting,"));
      // Were the acquire withdrawn, the script would end at once (130, set -e): it must still
      // be waiting after a second of ^Cs (repeated: the functions' own trap goes in only once
      // an answer is 0.05 s late).
      const interrupts = setInterval(() => sh.kill("SIGINT"), 100);
      const ended = await waitFor("the script to end", () => sh.exitCode !== null, 1000).then(() => true, () => false);
      clearInterval(interrupts);
      expect(ended).toBe(false);
      holder.kill("SIGTERM");
      expect(await sh.exited).toBe(0);
      expect(out).toBe("waiting\nrc=0\n");
    });

  shellTest(`${shell}: under allexport WAITLOCK_SLOT still names the slot taken; WAITLOCK_DIR is read when asked, not when the coprocess started; --backend is refused`, async () => {
    const d = lockDir();
    const other = lockDir();
    const r = await runShell(
      `${shell === "bash" ? "set -a" : "setopt allexport"}
      waitlock_acquire -m 4 sa; waitlock_release sa
      "$WL" -m 4 sa --exec sleep 3 & sleep 0.5
      waitlock_acquire -m 4 sa; echo "slot=$WAITLOCK_SLOT"; waitlock_release sa
      export WAITLOCK_DIR="$OTHER"; waitlock_acquire moved; ls "$OTHER" | grep -c '^moved.slot0.lock$'
      rc=0; waitlock_acquire --backend postgres://u:p@127.0.0.1:1/db remote || rc=$?; echo "backend=$rc"
      kill $! 2>/dev/null || true`,
      d,
      20_000,
      { OTHER: other },
    );
    expect(r.stdout).toBe("slot=1\n1\nbackend=3\n");
    expect(r.stderr).toContain("--backend: not through the coprocess");
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

  shellTest(`${shell}: the caller's IFS changes nothing (one holding the answer's first character, or none)`, async () => {
    const d = lockDir();
    const r = await runShell(
      `IFS=w; waitlock_acquire a; waitlock_release a; echo "w=$WAITLOCK_SLOT"
      IFS=; waitlock_acquire -m 2 b; waitlock_release b; echo "empty=$WAITLOCK_SLOT"`,
      d,
      10_000,
    );
    expect(r.stdout).toBe("w=0\nempty=0\n");
    expect(r.code).toBe(0);
  });

  shellTest(`${shell}: -E N as on the command line; an exported WAITLOCK_BACKEND is refused (3), never served from the lock directory; the caller's options (ksharrays, noclobber, shwordsplit) change nothing`, async () => {
    const d = lockDir();
    const holder = start([BIN, "-d", d, "busy", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "busy"));
    const options = shell === "zsh" ? "setopt ksharrays noclobber shwordsplit warncreateglobal; IFS=0" : "shopt -s nullglob failglob";
    const r = await runShell(
      `${options}
      rc=0; waitlock_acquire -E 9 -t 0 busy || rc=$?; echo "busy=$rc"
      rc=0; waitlock_acquire -E 9 -t 0.1 busy 2>/dev/null || rc=$?; echo "timeout=$rc"
      rc=0; WAITLOCK_BACKEND=redis://127.0.0.1:1/0 waitlock_acquire free || rc=$?; echo "backend=$rc"
      "$WL" --check free && echo "free still free"
      waitlock_acquire free; echo "slot=$WAITLOCK_SLOT"; waitlock_release free; echo released`,
      d,
      20_000,
    );
    holder.kill("SIGTERM");
    expect(r.stdout).toBe("busy=9\ntimeout=9\nbackend=3\nfree still free\nslot=0\nreleased\n");
    expect(r.stderr).toContain("not through the coprocess");
  });

  shellTest(`${shell}: a trap that calls the functions while an acquire waits leaves that acquire its own answer (it waited for ever)`, async () => {
    const d = lockDir();
    const holder = start([BIN, "-d", d, "taken", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "taken"));
    const body = `trap 'waitlock_release mine; echo "trap: released=$?"' USR1
      waitlock_acquire mine
      touch "$D/waiting"
      rc=0; waitlock_acquire -t 20 taken || rc=$?; echo "taken=$rc"`;
    const sh = start([path ?? shell, "-c", script(body)], { env: { WL: BIN, D: d }, stdout: "pipe" });
    const out: string[] = [];
    (async () => {
      for await (const c of sh.stdout as ReadableStream<Uint8Array>) out.push(new TextDecoder().decode(c));
    })();
    await waitFor("the script to wait", () => existsSync(`${d}/waiting`));
    await waitFor("its acquire to queue", async () => (await run([BIN, "-d", d, "--list", "-f", "csv", "taken"])).stdout.includes(",waiting,"));
    sh.kill("SIGUSR1");
    await waitFor("the trap to run", () => out.join("").includes("trap: released=0"));
    holder.kill("SIGTERM");
    await waitFor("the acquire to return", () => out.join("").includes("taken="), 5_000);
    expect(out.join("")).toBe("trap: released=0\ntaken=0\n");
  });

  shellTest(`${shell}: an exported WAITLOCK_SLOT is the caller's preference, also when it equals the slot an acquire set before`, async () => {
    const d = lockDir();
    const first = start([BIN, "-d", d, "-m", "4", "pool", "--exec", "sleep", "30"]);
    await waitFor("slot 0", () => held(d, "pool", 1));
    const second = start([BIN, "-d", d, "-m", "4", "pool", "--exec", "sleep", "30"]);
    await waitFor("slot 1", () => held(d, "pool", 2));
    const r = await runShell(
      `waitlock_acquire -m 4 pool; echo "taken=$WAITLOCK_SLOT"
      unset WAITLOCK_SLOT; export WAITLOCK_SLOT=2
      waitlock_acquire -m 4 other; echo "preferred=$WAITLOCK_SLOT"
      "$WL" -d "$D" --list other | grep -c ' 2/4 '`,
      d,
    );
    first.kill("SIGTERM");
    second.kill("SIGTERM");
    expect(r.stdout).toBe("taken=2\npreferred=2\n1\n");
  });

  shellTest(`${shell}: a subshell has a coprocess of its own, whose locks go when the subshell ends`, async () => {
    const d = lockDir();
    const r = await runShell(
      `waitlock_acquire outer
      ( waitlock_acquire inner; "$WL" --check inner || echo "inner held=$?"; rc=0; waitlock_release outer || rc=$?; echo "outer from subshell=$rc" )
      # The subshell's coprocess lets go once it has seen the end of its input: soon, not at once.
      for i in $(seq 100); do if "$WL" --check inner; then echo "inner free after the subshell"; break; fi; sleep 0.05; done
      "$WL" --check outer || echo "outer still held=$?"
      # A command substitution is a subshell too; its coprocess starts without a word from bash.
      echo "substituted=$(waitlock_acquire -m 2 pair; echo "$WAITLOCK_SLOT")"`,
      d,
    );
    expect(r.stdout).toBe("inner held=1\nouter from subshell=1\ninner free after the subshell\nouter still held=1\nsubstituted=0\n");
    // (bash once warned here that the parent's coprocess "still exists")
    expect(r.stderr).toBe("waitlock: outer: not held through this coprocess\n");
    expect(r.code).toBe(0);
  });

  shellTest(`${shell}: the locks stay held while the shell's process lives, also after it exec'd its last command; released when that exits`, async () => {
    const d = lockDir();
    const sh = startShell(`waitlock_acquire job; touch "$D/locked"; exec sleep 30`, d);
    await waitFor("the shell to exec sleep", () => existsSync(`${d}/locked`) && readFileSync(`/proc/${sh.pid}/cmdline`, "utf8").startsWith("sleep"));
    const coprocess = (await listJson(d))[0]!.pid!;
    // Nothing to wait for but time: the old coprocess let go as soon as the pipe closed.
    const until = performance.now() + 700;
    while (performance.now() < until) expect(await held(d, "job")).toBe(true);
    expect(alive(coprocess)).toBe(true);
    process.kill(sh.pid, "SIGKILL");
    await waitFor("release after the exec'd command's death", async () => !(await held(d, "job")), 5000);
    await waitFor("the coprocess to exit", () => !alive(coprocess), 5000);
  });

  shellTest(`${shell}: the locks go when the shell exits, even if a command it left in the background keeps the coprocess's pipe open`, async () => {
    const d = lockDir();
    const r = await runShell(`waitlock_acquire bg; sleep 30 >/dev/null 2>&1 & echo $! > "$D/bg.pid"`, d);
    expect(r.code).toBe(0);
    const bg = Number(readFileSync(`${d}/bg.pid`, "utf8"));
    try {
      await waitFor("the release after the shell's exit", async () => !(await held(d, "bg")), 5000);
    } finally {
      process.kill(bg, "SIGKILL");
    }
  });

  shellTest(`${shell}: a bare 'wait' returns: the coprocess is not a job of the shell`, async () => {
    const d = lockDir();
    const r = await runShell(`waitlock_acquire a; sleep 0.1 & wait; echo waited; waitlock_release a; echo released`, d, 10_000);
    expect(r.stdout).toBe("waited\nreleased\n");
    expect(r.code).toBe(0);
  });

  shellTest(`${shell}: ^C withdraws a waiting acquire (nothing left queued), keeps the shell's other locks, and reaches the shell's own trap`, async () => {
    const d = lockDir();
    const other = startSh(`exec "$WL" -d "$D" busy --exec sh -c 'touch "$D/held"; read -r _'`, d);
    await waitFor("the other holder", () => existsSync(`${d}/held`));
    const sh = startShell(
      `trap 'echo trapped >> "$D/traps"' INT
      waitlock_acquire mine
      rc=0; waitlock_acquire busy || rc=$?
      echo "rc=$rc" > "$D/done"
      read -r _
      "$WL" --check mine || echo "mine still held"
      "$WL" --check busy || echo "busy held"`,
      d,
    );
    await waitFor("mine to be taken", () => held(d, "mine"));
    const coprocess = (await listJson(d)).find((r) => r.descriptor === "mine")!.pid!;
    await waitFor("the wait in the kernel's queue", () => queuedInKernel(coprocess));
    // As a terminal's ^C: SIGINT to the shell's whole process group, again until the acquire
    // returns (the bash functions catch it once the answer is late, 0.05 s).
    // (The shell makes the file, then writes it: done once the line is whole.)
    const done = () => existsSync(`${d}/done`) && readFileSync(`${d}/done`, "utf8").endsWith("\n");
    const deadline = performance.now() + 10_000;
    while (!done()) {
      expect(performance.now()).toBeLessThan(deadline);
      process.kill(-sh.pid, "SIGINT");
      await waitFor("the acquire to return", done, 300).catch(() => {});
    }
    expect(readFileSync(`${d}/done`, "utf8")).toBe("rc=130\n");
    expect(readFileSync(`${d}/traps`, "utf8")).toMatch(/^(trapped\n)+$/);
    await waitFor("the wait to leave the queue", () => !queuedInKernel(coprocess));
    (other.stdin as { end(): unknown }).end();
    await waitFor("the other holder to go", async () => !(await held(d, "busy")));
    const stdin = sh.stdin as { write(s: string): unknown; end(): unknown };
    stdin.write("\n");
    stdin.end();
    expect(await sh.exited).toBe(0);
    expect(await new Response(sh.stderr as ReadableStream).text()).toBe("");
  });

  shellTest(`${shell}: ^C in a script without a trap ends it, as it would end flock(1), and leaves nothing queued or held`, async () => {
    const d = lockDir();
    const other = startSh(`exec "$WL" -d "$D" busy --exec sh -c 'touch "$D/held"; read -r _'`, d);
    await waitFor("the other holder", () => existsSync(`${d}/held`));
    const sh = startShell(`waitlock_acquire mine; waitlock_acquire busy; echo not reached`, d);
    await waitFor("mine to be taken", () => held(d, "mine"));
    const coprocess = (await listJson(d)).find((r) => r.descriptor === "mine")!.pid!;
    await waitFor("the wait in the kernel's queue", () => queuedInKernel(coprocess));
    process.kill(-sh.pid, "SIGINT");
    await sh.exited;
    expect(sh.signalCode ?? sh.exitCode).toBeOneOf(["SIGINT", 130]);
    await waitFor("the coprocess to exit", () => !alive(coprocess), 5000);
    expect(await held(d, "mine")).toBe(false);
    (other.stdin as { end(): unknown }).end();
  });

  shellTest(`${shell}: an exported WAITLOCK_SLOT (a preference) is left as it is; otherwise WAITLOCK_SLOT is set, not exported`, async () => {
    const d = lockDir();
    const other = startSh(`WAITLOCK_SLOT=1 exec "$WL" -d "$D" -m 4 pool --exec sh -c 'touch "$D/held"; read -r _'`, d);
    await waitFor("the other holder of slot 1", () => existsSync(`${d}/held`));
    const r = await runShell(
      `export WAITLOCK_SLOT=1
      waitlock_acquire -m 4 pool; echo "exported=$WAITLOCK_SLOT"; sh -c 'echo "child=$WAITLOCK_SLOT"'
      waitlock_acquire -m 2 pair; echo "again=$WAITLOCK_SLOT"
      unset WAITLOCK_SLOT
      waitlock_acquire -m 4 other; echo "set=$WAITLOCK_SLOT"; sh -c 'echo "child=\${WAITLOCK_SLOT-unset}"'`,
      d,
    );
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("exported=1\nchild=1\nagain=1\nset=0\nchild=unset\n");
    (other.stdin as { end(): unknown }).end();
  });

  shellTest(`${shell}: a semaphore slot the shell already holds answers with that slot, taking no second one; an exported WAITLOCK_SLOT stays as it is`, async () => {
    const d = lockDir();
    const r = await runShell(
      `WAITLOCK_SLOT=2 "$WL" -m 4 pool
      waitlock_acquire -m 4 pool; echo "held=$WAITLOCK_SLOT"
      export WAITLOCK_SLOT=1; waitlock_acquire -m 4 pool; echo "exported=$WAITLOCK_SLOT"
      "$WL" --list -f csv | cut -d, -f1,3 | grep '^pool,'`,
      d,
    );
    expect(r).toMatchObject({ code: 0, stdout: "held=2\nexported=1\npool,2\n", stderr: "" });
  });

  shellTest(`${shell}: waitlock --done on a lock held through the coprocess stops the owner shell, as for a plain acquire; a script asking for its own is spared`, async () => {
    const d = lockDir();
    const sh = startShell(`waitlock_acquire job; touch "$D/locked"; while :; do read -r _ || break; done; echo survived`, d);
    await waitFor("the shell to take its lock", () => existsSync(`${d}/locked`));
    const done = await run([BIN, "-d", d, "--done", "job"]);
    expect(done.code).toBe(0);
    await sh.exited;
    expect(sh.signalCode).toBe("SIGTERM");
    expect(await held(d, "job")).toBe(false);

    const own = await runShell(`waitlock_acquire own; "$WL" --done own; echo "done=$?"; "$WL" --check own && echo free`, d);
    expect(own.stdout).toBe("done=0\nfree\n");
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
