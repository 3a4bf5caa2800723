// The backend contract (ARCHITECTURE invariant 7): the same cases, through the compiled
// binary, against every place locks can live: the lock directory, and each network engine
// on a throwaway server of its own (test/servers/). A case says what a user sees; where an
// engine must differ (a fencing token), the difference is asserted, not skipped.
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { BIN, lockDir, run, start, stderrOf, waitFor, wl } from "./helpers";
import { linux, needs as needing, root, tool } from "./needs";
import { postgresMissing, startPostgres } from "./servers/postgres";
import { redisMissing, startRedis } from "./servers/redis";
import { skipping } from "./servers/skip";
import { hasScript, hasTmux, needs, onTerminal, tmuxSession } from "./terminal";

/** Where one test's locks live: the arguments that select it, and whether holders carry a fencing token. */
interface Place {
  args: string[];
  tokens: boolean;
}

interface Backend {
  name: string;
  missing: () => string | undefined;
  place: () => Promise<Place>;
}

const BACKENDS: Backend[] = [
  { name: "lock directory (flock)", missing: () => undefined, place: async () => ({ args: ["-d", lockDir()], tokens: false }) },
  {
    name: "PostgreSQL",
    missing: postgresMissing,
    place: async () => ({ args: ["--backend", (await startPostgres()).url()], tokens: true }),
  },
  {
    name: "Redis",
    missing: redisMissing,
    place: async () => ({ args: ["--backend", (await startRedis()).url()], tokens: true }),
  },
];

const T = 30_000;

/** Reads a started process's stdout line by line. */
function lines(p: { stdout: ReadableStream<Uint8Array> | number | undefined | null }) {
  const seen: string[] = [];
  let buf = "";
  (async () => {
    for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      const parts = buf.split("\n");
      buf = parts.pop()!;
      seen.push(...parts);
    }
  })();
  return seen;
}

/** A holder of NAME running `--exec sh -c SCRIPT` in the background, once it holds the lock (its script printed "in"). */
async function holding(at: Place, extra: string[], script = "echo in; exec sleep 60") {
  const p = start([BIN, ...at.args, ...extra, "--exec", "sh", "-c", script], { stdout: "pipe" });
  const out = lines(p);
  const err = stderrOf(p);
  await waitFor(`the holder to start (stderr: ${err.text})`, () => out.includes("in"), 15_000);
  return { p, out, err };
}

interface Listed {
  descriptor: string;
  status: string;
  position?: number;
  pid: number;
  hostname: string | null;
  command: string | null;
  waitingSince?: number;
}

/** --list -f json of NAME. */
async function listed(at: Place, name: string): Promise<Listed[]> {
  const r = await wl([...at.args, "--list", "-f", "json", name]);
  if (r.code !== 0) throw new Error(`--list failed: ${r.code} ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * Starts a script that runs a plain `waitlock NAME` (with `at`'s arguments) and prints its
 * status; resolves once that waitlock is up (and waiting, NAME being held), with the
 * script, its output lines and the waitlock's PID.
 */
async function scriptWaiting(at: Place, name: string) {
  const args = at.args.map((a) => `'${a}'`).join(" ");
  const script = start(["/bin/sh", "-c", `echo waiting; $WL ${args} ${name}; echo "rc=$?"; exec sleep 60`], { env: { WL: BIN }, stdout: "pipe" });
  const out = lines(script);
  await waitFor("the script to wait", () => out.includes("waiting"));
  let waiter = 0;
  await waitFor("the waitlock to wait", () => {
    const children = readFileSync(`/proc/${script.pid}/task/${script.pid}/children`, "utf8").trim();
    waiter = Number(children.split(" ")[0] || 0);
    // (a forked shell not yet replaced by waitlock has the script's command line)
    return waiter > 0 && readFileSync(`/proc/${waiter}/cmdline`, "utf8").split("\0")[0] === BIN;
  });
  return { script, out, waiter };
}

const waitingOf = async (at: Place, name: string) => (await listed(at, name)).filter((r) => r.status === "waiting");

const tmux = needs("tmux", hasTmux, "--list --watch on a terminal, on every backend");

for (const backend of BACKENDS) {
  const skip = skipping(`the backend contract on ${backend.name}`, backend.missing());
  describe.skipIf(skip)(`backend contract: ${backend.name}`, () => {
    test("--exec runs the command holding the lock, with WAITLOCK_SLOT (and WAITLOCK_TOKEN on an engine), and exits with its status", async () => {
      const at = await backend.place();
      const r = await wl([...at.args, "job", "--exec", "sh", "-c", 'echo "slot=$WAITLOCK_SLOT token=${WAITLOCK_TOKEN-none}"; exit 3']);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(3);
      expect(r.stdout).toMatch(at.tokens ? /^slot=0 token=\d+\n$/ : /^slot=0 token=none\n$/);
    }, T);

    test("while held: -t 0 is busy (1, or -E N), -t 0.3 times out (2) within 0.1 s, --check says 1; once released --check says 0", async () => {
      const at = await backend.place();
      expect((await wl([...at.args, "--check", "job"])).code).toBe(0);
      const h = await holding(at, ["job"]);
      expect((await wl([...at.args, "--check", "job"])).code).toBe(1);
      expect((await wl([...at.args, "-t", "0", "job", "--exec", "true"])).code).toBe(1);
      expect((await wl([...at.args, "-t", "0", "-E", "9", "job", "--exec", "true"])).code).toBe(9);
      const timed = await wl([...at.args, "-t", "0.3", "job", "--exec", "true"]);
      expect(timed.code).toBe(2);
      expect(timed.stderr).toContain(`timed out after 0.3 seconds; held by PID ${h.p.pid}`);
      // 0.3 s, its 0.1 s, and the start of a process on a busy machine.
      expect(timed.ms).toBeGreaterThanOrEqual(300);
      expect(timed.ms).toBeLessThan(600);
      process.kill(-h.p.pid, "SIGTERM");
      await h.p.exited;
      await waitFor("the lock to be free", async () => (await wl([...at.args, "--check", "job"])).code === 0);
      // The timed-out request was withdrawn: nobody holds the lock now.
      expect((await wl([...at.args, "-t", "0", "job", "--exec", "true"])).code).toBe(0);
    }, T);

    test.skipIf(!needs("script", hasScript))("on a terminal, -t 0 names the holder, and a wait says within about a second whom it waits for", async () => {
      const at = await backend.place();
      const h = await holding(at, ["term"]);
      const busy = await onTerminal([BIN, ...at.args, "-t", "0", "term", "--exec", "true"]);
      expect(busy.code).toBe(1);
      expect(busy.stdout).toContain(`lock is busy; held by PID ${h.p.pid}`);
      const waited = await onTerminal([BIN, ...at.args, "-t", "2.5", "term", "--exec", "true"]);
      expect(waited.code).toBe(2);
      expect(waited.stdout).toContain(`PID ${h.p.pid}`);
      // The lock directory draws its status line; an engine prints one line that it waits.
      if (at.tokens) expect(waited.stdout).toMatch(/waitlock: term: waiting on [^ ]+:\d+; held by PID \d+ on /);
    }, T);

    test("-m 2: two holders get slots 0 and 1, a third is busy; WAITLOCK_SLOT picks the slot tried first", async () => {
      const at = await backend.place();
      const first = await holding(at, ["-m", "2", "sem"], 'echo "in"; echo "slot $WAITLOCK_SLOT"; exec sleep 60');
      const second = await holding(at, ["-m", "2", "sem"], 'echo "in"; echo "slot $WAITLOCK_SLOT"; exec sleep 60');
      await waitFor("both slots", () => first.out.length === 2 && second.out.length === 2);
      expect([first.out[1], second.out[1]].sort()).toEqual(["slot 0", "slot 1"]);
      expect((await wl([...at.args, "-m", "2", "-t", "0", "sem", "--exec", "true"])).code).toBe(1);
      expect((await wl([...at.args, "-m", "2", "--check", "sem"])).code).toBe(1);
      process.kill(-first.p.pid, "SIGTERM");
      await first.p.exited;
      const again = await run([BIN, ...at.args, "-m", "3", "-t", "5", "pref", "--exec", "sh", "-c", "echo $WAITLOCK_SLOT"], { env: { WAITLOCK_SLOT: "2" } });
      expect(again.stdout).toBe("2\n");
    }, T);

    test("a plain acquire holds the lock for the calling script until it exits; asking again from the same script answers 0 at once", async () => {
      const at = await backend.place();
      const args = at.args.map((a) => `'${a}'`).join(" ");
      const script = start(["/bin/sh", "-c", `$WL ${args} plain && $WL ${args} -t 0 plain && echo held; read _`], { env: { WL: BIN }, stdin: "pipe", stdout: "pipe" });
      const out = lines(script);
      const err = stderrOf(script);
      await waitFor(`the script to hold the lock (stderr: ${err.text})`, () => out.includes("held"), 15_000);
      expect((await wl([...at.args, "-t", "0", "plain", "--exec", "true"])).code).toBe(1);
      script.stdin!.end();
      await script.exited;
      await waitFor("the lock to be free after its owner exited", async () => (await wl([...at.args, "--check", "plain"])).code === 0, 5_000);
    }, T);

    test("asked again, the same script gets the semaphore slot it holds, whichever slots are free or preferred, with -t 0 too", async () => {
      const at = await backend.place();
      const args = at.args.map((a) => `'${a}'`).join(" ");
      // One line: the script is the holder's command, which --list shows.
      const r = await run(["/bin/sh", "-c", `WAITLOCK_SLOT=2 $WL ${args} -m 4 --print-slot sem || exit 9; $WL ${args} -m 4 --print-slot sem; $WL ${args} -m 4 -t 0 --print-slot sem; WAITLOCK_SLOT=1 $WL ${args} -m 4 -t 0 --print-slot sem; $WL ${args} --list -f csv sem | cut -d, -f1,3`], { env: { WL: BIN }, deadlineMs: 20_000 });
      expect(r).toMatchObject({ code: 0, stdout: "2\n2\n2\n2\ndescriptor,slot\nsem,2\n" });
    }, T);

    test("asked again, the same script's reader hold is the one it has, with -t 0 too", async () => {
      const at = await backend.place();
      const args = at.args.map((a) => `'${a}'`).join(" ");
      const r = await run(["/bin/sh", "-c", `$WL ${args} -s rd || exit 9; $WL ${args} -s rd; $WL ${args} -s -t 0 rd; echo "rc=$?"; $WL ${args} --list -f csv rd | cut -d, -f1,3`], { env: { WL: BIN }, deadlineMs: 20_000 });
      expect(r).toMatchObject({ code: 0, stdout: "rc=0\ndescriptor,slot\nrd,0\n" });
    }, T);

    // The owner of a plain acquire is killed while its holder is stopped (so that it cannot
    // notice), and its PID goes at once to a new process that asks for the lock: clone3's
    // set_tid, not a PID namespace of its own, where /proc/locks leaves out a lock whose
    // taker (the plain acquire's waitlock) has exited.
    needing(linux(), root(), tool("cc"))("the same-owner shortcut is not fooled by a reused PID while the holder has not yet seen its owner exit", async () => {
      const at = await backend.place();
      const d = lockDir();
      const settid = join(d, "settid");
      expect((await run(["cc", "-o", settid, join(import.meta.dir, "fixtures/settid.c")])).stderr).toBe("");
      const args = at.args.map((a) => `'${a}'`).join(" ");
      const r = await run(["sh", "-c", `
        trap 'kill -CONT $h 2>/dev/null; kill -9 $owner 2>/dev/null' EXIT
        sh -c "$WL ${args} m || exit 9; touch '$D/held'; exec sleep 1000" & owner=$!
        i=0; until [ -e "$D/held" ]; do i=$((i+1)); [ $i -gt 1500 ] && exit 6; sleep 0.01; done
        h=$($WL ${args} --list -f json m | sed -n 's/.*"pid": \\([0-9]*\\).*/\\1/p'); [ -n "$h" ] || exit 5
        kill -STOP $h
        kill -9 $owner; wait $owner
        "$SETTID" $owner sh -c "$WL ${args} -t 0 m; echo \\$\\$ \\$? > '$D/again'"
        read -r again status < "$D/again"
        [ "$again" = "$owner" ] || { echo "PID $owner was not reused ($again)"; exit 7; }
        echo "asked under the owner's PID: $status"
        kill -CONT $h
        $WL ${args} -t 5 m --exec echo released`], { env: { WL: BIN, D: d, SETTID: settid }, deadlineMs: 20_000 });
      expect(r).toMatchObject({ code: 0, stdout: "asked under the owner's PID: 1\nreleased\n" });
    }, T);

    test("--done on a plain acquire stops the owner script (SIGTERM) and frees the lock", async () => {
      const at = await backend.place();
      const args = at.args.map((a) => `'${a}'`).join(" ");
      const script = start(["/bin/sh", "-c", `$WL ${args} owned && echo held && exec sleep 60`], { env: { WL: BIN }, stdout: "pipe" });
      const out = lines(script);
      await waitFor("the script to hold the lock", () => out.includes("held"), 15_000);
      expect((await wl([...at.args, "--done", "owned"])).code).toBe(0);
      expect(await script.exited).toBe(143);
      expect((await wl([...at.args, "--check", "owned"])).code).toBe(0);
    }, T);

    for (const signal of ["SIGINT", "SIGTERM"] as const)
      test(`a plain acquire interrupted by ${signal} while it waits never takes the lock afterwards`, async () => {
        const at = await backend.place();
        const h = await holding(at, ["ghost"]);
        // The waitlock the script ran, once it is up and waiting (its holder started on a network engine).
        const { out, waiter } = await scriptWaiting(at, "ghost");
        // On an engine, once its detached holder (which waits for it) has started.
        const children = () => readFileSync(`/proc/${waiter}/task/${waiter}/children`, "utf8").trim();
        if (at.tokens) await waitFor("the detached holder to start", () => children() !== "");
        await waitFor("the request to be queued", async () => (await listed(at, "ghost")).some((r) => r.status === "waiting"), 15_000);
        process.kill(waiter, signal);
        await waitFor("the waitlock to give up", () => out.some((l) => l.startsWith("rc=")));
        expect(out.find((l) => l.startsWith("rc="))).toBe(`rc=${signal === "SIGINT" ? 130 : 143}`);
        process.kill(-h.p.pid, "SIGTERM");
        await h.p.exited;
        // Nobody else waits, and the interrupted request left the queue before its waitlock
        // exited: the lock is free at once (a request still queued would hold it now, for the living script).
        expect((await wl([...at.args, "-t", "0", "ghost", "--exec", "true"])).code).toBe(0);
      }, T);

    test("a plain acquire killed after its lock was won but before it could exit 0 leaves no lock behind", async () => {
      const at = await backend.place();
      const h = await holding(at, ["won"]);
      const { out, waiter } = await scriptWaiting(at, "won");
      await waitFor("the request to be queued", async () => (await listed(at, "won")).some((r) => r.status === "waiting"), 15_000);
      // Stopped, it cannot read the answer its holder process (on an engine) is given.
      process.kill(waiter, "SIGSTOP");
      process.kill(-h.p.pid, "SIGTERM");
      await h.p.exited;
      if (at.tokens) await waitFor("the stopped waiter's holder to win", async () => (await listed(at, "won")).some((r) => r.status === "active"), 15_000);
      process.kill(waiter, "SIGKILL");
      await waitFor("the script to learn of the failure", () => out.includes("rc=137"));
      // The script was told it holds nothing: nobody may hold the lock for it.
      await waitFor("the lock to be free", async () => (await wl([...at.args, "-t", "0", "won", "--exec", "true"])).code === 0, 15_000);
    }, T);

    for (const kind of ["an --exec waiter", "a plain acquire"] as const)
      test(`${kind} stopped by SIGTERM while it waits dies of it (a script stops there too) and never takes the lock afterwards`, async () => {
        const at = await backend.place();
        const name = kind === "a plain acquire" ? "stopped-plain" : "stopped-exec";
        const h = await holding(at, [name]);
        const owner = start(["sleep", "60"]);
        const w = start(kind === "a plain acquire" ? [BIN, ...at.args, "--owner", String(owner.pid), name] : [BIN, ...at.args, name, "--exec", "sh", "-c", "echo ran"], { stdout: "pipe" });
        const out = lines(w);
        await waitFor("the waiter to queue", async () => (await listed(at, name)).some((r) => r.status === "waiting"), 15_000);
        w.kill("SIGTERM");
        await w.exited;
        // Killed by the signal, not an exit with 143: after that, bash would run the script's next line.
        expect(w.signalCode).toBe("SIGTERM");
        process.kill(-h.p.pid, "SIGTERM");
        await h.p.exited;
        // The stopped waiter left the queue before it exited: free at once.
        expect((await wl([...at.args, "-t", "0", name, "--exec", "true"])).code).toBe(0);
        expect(out).toEqual([]);
      }, T);

    test("a waiter whose caller ignores ^C (trap '' INT) keeps waiting through SIGINT, as flock(1) would, and runs its command once served", async () => {
      const at = await backend.place();
      const h = await holding(at, ["ignoring"]);
      const args = at.args.map((a) => `'${a}'`).join(" ");
      // (bun test starts processes with SIGINT ignored: the shell gets it back, then ignores it itself.)
      const w = start(["env", "--default-signal=INT", "/bin/sh", "-c", `trap '' INT; exec "$WL" ${args} ignoring --exec echo ran`], { env: { WL: BIN }, stdout: "pipe" });
      const out = lines(w);
      await waitFor("the waiter to queue", async () => (await listed(at, "ignoring")).some((r) => r.status === "waiting"), 15_000);
      w.kill("SIGINT");
      const ended = await waitFor("the waiter to end", () => w.exitCode !== null, 1_000).then(
        () => true,
        () => false,
      );
      expect(ended).toBe(false);
      process.kill(-h.p.pid, "SIGTERM");
      expect(await w.exited).toBe(0);
      expect(out).toEqual(["ran"]);
    }, T);

    test("a plain acquire whose script is killed (SIGKILL) while it waits is never served for the dead script", async () => {
      const at = await backend.place();
      const h = await holding(at, ["orphaned"]);
      const args = at.args.map((a) => `'${a}'`).join(" ");
      const script = start(["/bin/sh", "-c", `"$WL" ${args} orphaned; echo "rc=$?"; exec sleep 60`], { env: { WL: BIN } });
      await waitFor("the request to be queued", async () => (await listed(at, "orphaned")).some((r) => r.status === "waiting"), 15_000);
      script.kill("SIGKILL");
      // An engine's holder process, waiting for the script, sees it gone and withdraws the
      // request; waitlock itself on the lock directory waits in the kernel's queue, is
      // served, and lets go at once for the dead owner.
      if (at.tokens) await waitFor("the request to be withdrawn", async () => (await listed(at, "orphaned")).length === 1, 2_000);
      process.kill(-h.p.pid, "SIGTERM");
      await h.p.exited;
      await waitFor("the lock to be free", async () => (await wl([...at.args, "-t", "0", "orphaned", "--exec", "true"])).code === 0, 2_000);
      if (at.tokens) expect((await listed(at, "orphaned")).length).toBe(0);
    }, T);

    test("--done stops an --exec holder and returns 0 once the lock is free; with nobody holding it, 1", async () => {
      const at = await backend.place();
      expect((await wl([...at.args, "--done", "job"])).code).toBe(1);
      const h = await holding(at, ["job"]);
      const done = await wl([...at.args, "--done", "job"]);
      expect(done.code).toBe(0);
      expect(await h.p.exited).toBe(143);
      expect((await wl([...at.args, "--check", "job"])).code).toBe(0);
    }, T);

    test("--list -f json names the holder: NAME, slot, PID, command (and on an engine host and token, passwords in command lines masked)", async () => {
      const at = await backend.place();
      // One csv header per backend, rows or none (a consumer, or --watch -o, sees fixed columns).
      const empty = (await wl([...at.args, "--list", "-f", "csv"])).stdout;
      expect(empty).toBe(`descriptor,pid,slot,user,acquired,status,command${at.tokens ? ",host,token" : ""}\n`);
      const h = await holding(at, ["listed"], "echo in; exec sleep 60 # postgres://u:hunter2@x/db");
      const r = await wl([...at.args, "--list", "-f", "json"]);
      expect(r.code).toBe(0);
      const rows = JSON.parse(r.stdout);
      const token = rows[0]?.token;
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ descriptor: "listed", slot: 0, status: "active", pid: h.p.pid });
      expect(rows[0].command).toContain("sleep 60");
      if (at.tokens) expect(rows[0].command).toContain("postgres://u:***@x/db");
      if (at.tokens) expect(rows[0]).toMatchObject({ hostname: expect.any(String), token: expect.stringMatching(/^\d+$/) });
      const human = await wl([...at.args, "--list"]);
      expect(human.stdout).toContain("listed");
      // A command line may carry escape sequences; a terminal reading --list must not get them.
      const planted = await holding(at, ["planted"], "echo in; exec sleep 60 # \u001b]0;pwned\u0007 \u001b[2J \u202eRTL\u200b");
      const shown = (await wl([...at.args, "--list", "planted"])).stdout;
      expect(shown).toContain("#  ]0;pwned   [2J  RTL");
      expect(/[\u0000-\u0008\u000b-\u001f\u007f\u202e\u200b]/.test(shown)).toBe(false);
      process.kill(-planted.p.pid, "SIGTERM");
      expect(human.stdout.split("\n")[0]).toMatch(at.tokens ? /HOST.*TOKEN/ : /^DESCRIPTOR +SLOT +MODE +PID/);
      const csv = (await wl([...at.args, "--list", "-f", "csv"])).stdout.split("\n");
      expect(csv[0]).toBe(`descriptor,pid,slot,user,acquired,status,command${at.tokens ? ",host,token" : ""}`);
      expect(csv[1]).toMatch(at.tokens ? new RegExp(`^listed,${h.p.pid},0,[^,]+,\\d+,active,.*sleep 60[^,]*,[^,]+,${token}$`) : new RegExp(`^listed,${h.p.pid},0,[^,]+,\\d+,active,`));
    }, T);

    test("--list shows three waiters in queue order (position, host, PID, command, waiting since) in every format; a SIGKILLed waiter is gone (on an engine within about a second), a served one is a holder", async () => {
      const at = await backend.place();
      const h = await holding(at, ["fifo"]);
      const waiters: { p: ReturnType<typeof start>; out: string[] }[] = [];
      for (const i of [0, 1, 2]) {
        const p = start([BIN, ...at.args, "fifo", "--exec", "sh", "-c", `echo in; exec sleep 60 # w${i}`], { stdout: "pipe" });
        waiters.push({ p, out: lines(p) });
        await waitFor(`waiter ${i + 1} to be listed`, async () => (await waitingOf(at, "fifo")).length === i + 1, 15_000);
      }
      const rows = await waitingOf(at, "fifo");
      expect(rows.map((r) => [r.position, r.pid])).toEqual(waiters.map((w, i) => [i + 1, w.p.pid]));
      rows.forEach((r, i) => {
        expect([r.descriptor, r.hostname, typeof r.waitingSince]).toEqual(["fifo", hostname(), "number"]);
        expect(r.command).toContain(`# w${i}`);
      });
      expect(rows[0]!.waitingSince!).toBeLessThanOrEqual(rows[1]!.waitingSince!);
      expect(rows[1]!.waitingSince!).toBeLessThanOrEqual(rows[2]!.waitingSince!);
      expect(Math.abs(rows[0]!.waitingSince! - Date.now() / 1000)).toBeLessThan(60);
      const csv = (await wl([...at.args, "--list", "-f", "csv", "fifo"])).stdout.trimEnd().split("\n");
      expect(csv.slice(2).map((l) => l.split(",").slice(0, 3).join(",") + "," + l.split(",")[5])).toEqual(waiters.map((w, i) => `fifo,${w.p.pid},${i + 1},waiting`));
      if (at.tokens) expect(csv[2]).toMatch(new RegExp(`,${hostname()},$`));
      const nul = (await wl([...at.args, "--list", "-f", "null", "fifo"])).stdout.split("\0");
      expect(nul.filter((f) => f === "waiting")).toHaveLength(3);
      const human = (await wl([...at.args, "--list", "fifo"])).stdout.split("\n");
      const table = human.slice(human.findIndex((l) => l.startsWith("DESCRIPTOR  POSITION")));
      expect(table[0]).toMatch(at.tokens ? /^DESCRIPTOR +POSITION +HOST +PID/ : /^DESCRIPTOR +POSITION +PID/);
      expect(table.slice(1, 4).map((l) => l.split(/ +/).slice(0, 2).join(" "))).toEqual(["fifo 1", "fifo 2", "fifo 3"]);
      const metrics = (await wl([...at.args, "--list", "-f", "prometheus"])).stdout;
      expect(metrics).toMatch(/^waitlock_waiters\{[^}]*lock="fifo"\} 3$/m);

      waiters[1]!.p.kill("SIGKILL");
      await waiters[1]!.p.exited;
      const killed = performance.now();
      // Locally the kernel drops the queue node's lock with the process; an engine learns
      // of it from the ended session (PostgreSQL) or the expired sign of life (Redis).
      const bound = at.tokens ? 2_500 : 0;
      await waitFor("the killed waiter to be gone from the list", async () => (await waitingOf(at, "fifo")).length === 2, bound + 5_000);
      if (at.tokens) expect(performance.now() - killed).toBeLessThan(bound);
      else expect(performance.now() - killed).toBeLessThan(1_000);
      expect((await waitingOf(at, "fifo")).map((r) => [r.position, r.pid])).toEqual([
        [1, waiters[0]!.p.pid],
        [2, waiters[2]!.p.pid],
      ]);

      process.kill(-h.p.pid, "SIGTERM");
      await waitFor("the first waiter to hold the lock", () => waiters[0]!.out.includes("in"), 15_000);
      const now = await listed(at, "fifo");
      expect(now.map((r) => [r.status, r.position ?? null, r.pid])).toEqual([
        ["active", null, waiters[0]!.p.pid],
        ["waiting", 1, waiters[2]!.p.pid],
      ]);
      // The waiter first: killed after the holder, it might be stopped just as it wins the lock.
      for (const w of [waiters[2]!, waiters[0]!]) {
        process.kill(-w.p.pid, "SIGTERM");
        await w.p.exited;
      }
      // (an engine forgets the killed waiter within its bound, as above)
      await waitFor("nothing listed", async () => (await listed(at, "fifo")).length === 0, 5_000);
    }, 60_000);

    test("-m 2 and -s: the waiters of a full semaphore and of a shared lock are listed in queue order, each until it is served", async () => {
      const at = await backend.place();
      const holders = [await holding(at, ["-m", "2", "pool"]), await holding(at, ["-m", "2", "pool"])];
      const waiters: ReturnType<typeof start>[] = [];
      for (const i of [1, 2]) {
        waiters.push(start([BIN, ...at.args, "-m", "2", "pool", "--exec", "sleep", "60"]));
        await waitFor(`semaphore waiter ${i} to be listed`, async () => (await waitingOf(at, "pool")).length === i, 15_000);
      }
      expect((await waitingOf(at, "pool")).map((r) => [r.position, r.pid])).toEqual(waiters.map((w, i) => [i + 1, w.pid]));
      process.kill(-holders[0]!.p.pid, "SIGTERM");
      await waitFor("the first waiter to be served", async () => (await waitingOf(at, "pool")).length === 1, 15_000);
      expect((await waitingOf(at, "pool")).map((r) => [r.position, r.pid])).toEqual([[1, waiters[1]!.pid]]);
      expect((await listed(at, "pool")).filter((r) => r.status === "active").map((r) => r.pid).sort()).toEqual([holders[1]!.p.pid, waiters[0]!.pid].sort());

      const reader = await holding(at, ["-s", "rw"]);
      const writer = start([BIN, ...at.args, "rw", "--exec", "true"]);
      await waitFor("the writer to be listed", async () => (await waitingOf(at, "rw")).length === 1, 15_000);
      const sharedWaiter = start([BIN, ...at.args, "-s", "rw", "--exec", "true"]);
      await waitFor("the reader behind it to be listed", async () => (await waitingOf(at, "rw")).length === 2, 15_000);
      expect((await waitingOf(at, "rw")).map((r) => [r.position, r.pid])).toEqual([
        [1, writer.pid],
        [2, sharedWaiter.pid],
      ]);
      process.kill(-reader.p.pid, "SIGTERM");
      expect([await writer.exited, await sharedWaiter.exited]).toEqual([0, 0]);
      for (const p of [holders[1]!.p, ...waiters]) process.kill(-p.pid, "SIGTERM");
    }, 60_000);

    test.skipIf(!tmux)("--list --watch on a terminal: a holder and its waiter (of every host on an engine) appear and disappear; Ctrl-C exits 0", async () => {
      const at = await backend.place();
      const term = tmuxSession(lockDir(), 160);
      await term.start(`"${BIN}" ${at.args.map((a) => `"${a}"`).join(" ")} --list --watch 0.2`);
      await waitFor("the empty view", async () => (await term.screen()).some((l) => l.startsWith("no locks held")));
      expect((await term.screen())[0]).toMatch(at.tokens ? /^Every 0\.2s: waitlock --list on 127\.0\.0\.1:\d+ .*0 held, 0 waiting/ : /^Every 0\.2s: waitlock --list in /);
      const h = await holding(at, ["shown"]);
      const w = start([BIN, ...at.args, "shown", "--exec", "true"]);
      const holderRow = new RegExp(`^shown\\s+0/1\\s+exclusive\\s+${at.tokens ? `${hostname()}\\s+` : ""}${h.p.pid}\\s.*\\s\\d+s\\s`);
      const waiterRow = new RegExp(`^shown\\s+1\\s+${at.tokens ? `${hostname()}\\s+` : ""}${w.pid}\\s.*\\s\\d+s\\s`);
      await waitFor("the holder and the waiter on screen", async () => {
        const screen = await term.screen();
        return screen.some((l) => holderRow.test(l)) && screen.some((l) => waiterRow.test(l));
      }, 15_000);
      expect((await term.screen())[0]).toMatch(/1 held, 1 waiting/);
      process.kill(-h.p.pid, "SIGTERM");
      expect(await w.exited).toBe(0);
      await waitFor("both gone", async () => (await term.screen()).some((l) => l.startsWith("no locks held")), 15_000);
      await term.press("C-c");
      await waitFor("exit 0", async () => (await term.screen()).includes("[exit 0]"));
      await term.kill();
    }, 60_000);

    test("shared (-s) holders share the lock; an exclusive request waits for them; --check -s says 0, --check 1", async () => {
      const at = await backend.place();
      const a = await holding(at, ["-s", "rw"]);
      const b = await holding(at, ["-s", "rw"]);
      expect((await wl([...at.args, "-t", "0", "rw", "--exec", "true"])).code).toBe(1);
      expect((await wl([...at.args, "--check", "-s", "rw"])).code).toBe(0);
      expect((await wl([...at.args, "--check", "rw"])).code).toBe(1);
      for (const h of [a, b]) {
        process.kill(-h.p.pid, "SIGTERM");
        await h.p.exited;
      }
      expect((await wl([...at.args, "-t", "5", "rw", "--exec", "true"])).code).toBe(0);
    }, T);

    test("4 processes x 10 increments of a file under the lock lose no update", async () => {
      const at = await backend.place();
      const file = join(lockDir(), "counter");
      writeFileSync(file, "0\n");
      const args = at.args.map((a) => `'${a}'`).join(" ");
      const worker = `for i in 1 2 3 4 5 6 7 8 9 10; do $WL ${args} counter --exec sh -c 'n=$(cat "$F"); echo $((n + 1)) > "$F"' || exit 1; done`;
      const codes = await Promise.all([0, 1, 2, 3].map(() => run(["/bin/sh", "-c", worker], { env: { WL: BIN, F: file }, deadlineMs: 60_000 })));
      expect(codes.map((c) => c.code)).toEqual([0, 0, 0, 0]);
      expect(readFileSync(file, "utf8")).toBe("40\n");
    }, 90_000);
  });
}

describe("--backend on the command line", () => {
  test("usage errors (3), never echoing the URL: unknown scheme, with -d, --file, --fd, --serve; an explicit -d beats WAITLOCK_BACKEND", async () => {
    const url = "postgres://u:hunter2@127.0.0.1:1/db";
    const dir = lockDir();
    for (const args of [
      ["--backend", "mysql://u:hunter2@h/db", "x"],
      ["--backend", url, "-d", dir, "x"],
      ["--backend", url, "--file", dir],
      ["--backend", url, "--fd", "0"],
      ["--backend", url, "--serve"],
      ["--backend", `${url}?grace=7`, "x", "--exec", "true"],
    ]) {
      const r = await wl(args);
      expect({ args, code: r.code }).toEqual({ args, code: 3 });
      expect(r.stderr).not.toContain("hunter2");
    }
    const local = await run([BIN, "-d", dir, "x", "--exec", "true"], { env: { WAITLOCK_BACKEND: url } });
    expect({ code: local.code, stderr: local.stderr }).toEqual({ code: 0, stderr: "" });
    // Debug lines name the command run, with any password in it masked.
    const verbose = await wl(["-v", "-d", dir, "x", "--exec", "sh", "-c", `: ${url}`]);
    expect(verbose.stderr).toContain("running 'sh -c : postgres://u:***@127.0.0.1:1/db'");
    // A file is this machine's; the coprocess would take NAMEs elsewhere than asked.
    const file = await run([BIN, "--file", dir, "--exec", "true"], { env: { WAITLOCK_BACKEND: url } });
    expect({ code: file.code, stderr: file.stderr }).toEqual({ code: 0, stderr: "" });
    for (const mode of ["--serve", "--shell-init=bash"]) {
      const r = await run([BIN, mode], { env: { WAITLOCK_BACKEND: url } });
      expect({ mode, code: r.code }).toEqual({ mode, code: 3 });
      expect(r.stderr).toContain("WAITLOCK_BACKEND");
    }
    const unreachable = await run([BIN, "-v", "-t", "0", "x", "--exec", "sh", "-c", `echo ${url}`], { env: { WAITLOCK_BACKEND: url } });
    expect(unreachable.code).toBe(75);
    expect(unreachable.stderr).toContain("127.0.0.1:1");
    expect(unreachable.stderr).not.toContain("hunter2");
  });
});
