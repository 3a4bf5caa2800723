// waitlock NAME: the lock lives as long as the calling process (invariant 4).
import { expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { encodeRecord } from "../src/record";
import { BIN, alive, held, listJson, lockDir, needs, queuedInKernel, run, sh, start, startSh, stderrOf, tool, waitFor, wl } from "./helpers";
import { pidNamespace, root } from "./needs";

test("a script that took the lock holds it until it exits, then it is free", async () => {
  const d = lockDir();
  const script = startSh(`"$WL" -d "$D" job || exit 9; touch "$D/locked"; read -r _`, d);
  await waitFor("script to take the lock", () => existsSync(`${d}/locked`));
  expect(await held(d, "job")).toBe(true);
  expect((await wl(["-d", d, "-t", "0", "job", "--exec", "true"])).code).toBe(1);
  script.kill("SIGTERM");
  await script.exited;
  await waitFor("lock to be released after the script exits", async () => !(await held(d, "job")));
  expect(readdirSync(d).filter((f) => f.endsWith(".lock"))).toEqual([]);
});

test("the lock is released when the script is killed with SIGKILL", async () => {
  const d = lockDir();
  const script = startSh(`"$WL" -d "$D" job || exit 9; touch "$D/locked"; exec sleep 60`, d);
  await waitFor("script to take the lock", () => existsSync(`${d}/locked`));
  expect(await held(d, "job")).toBe(true);
  process.kill(script.pid, "SIGKILL");
  await waitFor("lock to be released", async () => !(await held(d, "job")), 5000);
});

test("x=$(waitlock NAME) returns, and the lock stays with the script", async () => {
  const d = lockDir();
  const r = await sh(`x=$("$WL" -d "$D" subst); echo "rc=$? out=[$x]"; "$WL" -d "$D" --check subst; echo "check=$?"`, d, { deadlineMs: 5000 });
  expect(r.stdout).toBe("rc=0 out=[]\ncheck=1\n");
  await waitFor("release after the script ended", async () => !(await held(d, "subst")));
});

test("the same owner asking again for a lock it holds gets 0 at once", async () => {
  const d = lockDir();
  const r = await sh(`"$WL" -d "$D" again && "$WL" -d "$D" -t 0 again && "$WL" -d "$D" again && echo ok`, d, { deadlineMs: 5000 });
  expect(r).toMatchObject({ code: 0, stdout: "ok\n" });
  // ...and holds only one slot of a semaphore.
  const s = await sh(`"$WL" -d "$D" -m 3 sem && "$WL" -d "$D" -m 3 sem && "$WL" -d "$D" --list -f csv`, d);
  expect(s.stdout.trim().split("\n").filter((l) => l.startsWith("sem,"))).toHaveLength(1);
});

test("asked again, the same owner gets the semaphore slot it holds, whichever slots are tried first", async () => {
  const d = lockDir();
  const slots = (name: string) => `"$WL" -d "$D" --list -f csv | grep '^${name},' | cut -d, -f3 | tr '\\n' ' '`;
  // A preferred free slot tried first; free slots tried before the one held.
  const r = await sh(
    `"$WL" -d "$D" -m 4 --print-slot a; WAITLOCK_SLOT=2 "$WL" -d "$D" -m 4 --print-slot a; echo "a: $(${slots("a")})"
    WAITLOCK_SLOT=2 "$WL" -d "$D" -m 4 --print-slot b; "$WL" -d "$D" -m 4 --print-slot b; echo "b: $(${slots("b")})"`,
    d,
  );
  expect(r).toMatchObject({ code: 0, stdout: "0\n0\na: 0 \n2\n2\nb: 2 \n", stderr: "" });
});

/** The parent of `pid` (from /proc/PID/stat), or undefined once it is gone. */
function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/** Why an orphan here is not adopted by init (a subreaper above this process, not the initial PID namespace), or undefined. */
function orphansGoElsewhere(): string | undefined {
  if (!/^NSpid:\s*\d+\s*$/m.test(readFileSync("/proc/self/status", "utf8"))) return "not in the initial PID namespace";
  const r = Bun.spawnSync(["sh", "-c", "sleep 5 & echo $!"], { stdout: "pipe" });
  const orphan = Number(r.stdout.toString());
  const parent = parentPid(orphan);
  process.kill(orphan, "SIGKILL");
  return parent === 1 ? undefined : `an orphan here is adopted by PID ${parent}, a subreaper, not init`;
}

needs(orphansGoElsewhere())("a plain acquire whose caller exited before it started takes nothing (exit 4), not a lock for init", async () => {
  const d = lockDir();
  // The subshell stops itself and its parent exits: init has adopted it when it goes on to
  // start waitlock.
  await sh(`bash -c '( kill -STOP $BASHPID; exec "$WL" -d "$D" job 2> "$D/err" ) < /dev/null > /dev/null 2>&1 & echo $! > "$D/pid"'`, d);
  const orphan = Number(readFileSync(`${d}/pid`, "utf8"));
  try {
    await waitFor("the stopped subshell to be init's", () => parentPid(orphan) === 1);
    process.kill(orphan, "SIGCONT");
    await waitFor("waitlock to end", () => parentPid(orphan) === undefined);
    expect(readFileSync(`${d}/err`, "utf8")).toContain("the calling process has already exited");
    expect((await wl(["-d", d, "-t", "0", "job", "--exec", "true"])).code).toBe(0);
  } finally {
    if (parentPid(orphan) !== undefined) process.kill(orphan, "SIGKILL");
  }
});

needs(pidNamespace())("a script that is PID 1 of a PID namespace (a container's entry point) holds a plain acquire", async () => {
  const d = lockDir();
  const r = await run(["unshare", "-p", "-f", "--mount-proc", "bash", "-c", '"$WL" -d "$D" x; echo "rc=$?"; "$WL" -d "$D" --check x; echo "check=$?"'], { env: { WL: BIN, D: d } });
  expect(r.stdout).toBe("rc=0\ncheck=1\n");
  expect(await held(d, "x")).toBe(false);
});

// The owner of a plain acquire is killed while its holder is stopped (so that it cannot
// notice), and its PID goes at once to a new process (clone3's set_tid).
needs(root(), tool("cc"))("--done does not stop a new process given the PID of an owner that has exited", async () => {
  const d = lockDir();
  const settid = `${d}/settid`;
  expect((await run(["cc", "-o", settid, `${import.meta.dir}/fixtures/settid.c`])).stderr).toBe("");
  const r = await sh(String.raw`
    trap 'kill -CONT $h 2>/dev/null; kill -9 $owner $b 2>/dev/null' EXIT
    sh -c '"$WL" -d "$D" m || exit 9; touch "$D/held"; exec sleep 1000' > /dev/null 2>&1 & owner=$!
    i=0; until [ -e "$D/held" ]; do i=$((i+1)); [ $i -gt 1500 ] && exit 6; sleep 0.01; done
    h=$("$WL" -d "$D" --list -f json m | sed -n 's/.*"pid": \([0-9]*\).*/\1/p'); [ -n "$h" ] || exit 5
    kill -STOP $h
    kill -9 $owner; wait $owner
    "$SETTID" $owner sh -c 'trap "touch \"$D/terminated\"; exit" TERM; echo $$ > "$D/b.tmp"; mv "$D/b.tmp" "$D/b"; sleep 30 & wait' > /dev/null 2>&1 &
    i=0; until [ -e "$D/b" ]; do i=$((i+1)); [ $i -gt 1500 ] && exit 7; sleep 0.01; done
    b=$(cat "$D/b")
    [ "$b" = "$owner" ] || { echo "PID $owner was not reused ($b)"; exit 8; }
    "$WL" -d "$D" --done -t 0.3 m 2>/dev/null; echo "done: $?"
    kill -0 $b && echo "the new process runs"`, d, { env: { SETTID: settid } });
  expect(r).toMatchObject({ code: 0, stdout: "done: 2\nthe new process runs\n" });
  expect(existsSync(`${d}/terminated`)).toBe(false);
});

test("the single-instance pattern: a second copy is told the lock is busy", async () => {
  const d = lockDir();
  const first = startSh(`"$WL" -d "$D" -t 0 nightly || exit 1; touch "$D/running"; read -r _`, d);
  await waitFor("first instance", () => existsSync(`${d}/running`));
  const second = await sh(`"$WL" -d "$D" -t 0 nightly || { echo "already running"; exit 1; }`, d);
  expect(second).toMatchObject({ code: 1, stdout: "already running\n", stderr: "" });
  first.kill("SIGKILL");
});

test("waitlock NAME & followed by waitlock --done NAME", async () => {
  const d = lockDir();
  const r = await sh(
    `"$WL" -d "$D" bg & wait $!; "$WL" -d "$D" --check bg; echo "held=$?"; "$WL" -d "$D" --done bg; echo "done=$?"; "$WL" -d "$D" --check bg; echo "after=$?"`,
    d,
    { deadlineMs: 10_000 },
  );
  expect(r.stdout).toBe("held=1\ndone=0\nafter=0\n");
});

test("--owner PID ties the lock to another process", async () => {
  const d = lockDir();
  const owner = start(["sleep", "60"]);
  const r = await wl(["-d", d, "--owner", String(owner.pid), "owned"]);
  expect(r.code).toBe(0);
  const [row] = await listJson(d);
  expect(row).toMatchObject({ descriptor: "owned", owner: owner.pid, command: "sleep 60", status: "active" });
  owner.kill("SIGKILL");
  await waitFor("release when the owner dies", async () => !(await held(d, "owned")), 5000);
  expect((await wl(["-d", d, "--owner", "999999999", "owned"])).code).toBe(3);
});

test("the holder is detached: own session, stdio on /dev/null, no inherited descriptors, cwd /", async () => {
  const d = lockDir();
  const script = startSh(`exec 7>"$D/secret"; "$WL" -d "$D" det || exit 9; touch "$D/locked"; read -r _`, d);
  await waitFor("lock", () => existsSync(`${d}/locked`));
  const [row] = await listJson(d);
  const pid = row!.pid!;
  expect(row!.owner).toBe(script.pid);
  expect(pid).not.toBe(script.pid);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  expect(Number(stat[3])).toBe(pid); // session id (field 6) equals its PID
  const fds = Object.fromEntries(readdirSync(`/proc/${pid}/fd`).map((fd) => [fd, readlinkSync(`/proc/${pid}/fd/${fd}`)]));
  expect([fds["0"], fds["1"], fds["2"]]).toEqual(["/dev/null", "/dev/null", "/dev/null"]);
  expect(fds["3"]).toBe(`${d}/det.slot0.lock`);
  expect(Object.values(fds).filter((t) => t.startsWith(d))).toEqual([`${d}/det.slot0.lock`]);
  expect(readlinkSync(`/proc/${pid}/cwd`)).toBe("/");
  script.kill("SIGKILL");
  await waitFor("holder to exit with its owner", () => !alive(pid), 5000);
});

test("SIGKILL of the holder process frees the slot at once, and a waiter gets it", async () => {
  const d = lockDir();
  const script = startSh(`"$WL" -d "$D" victim || exit 9; touch "$D/locked"; read -r _`, d);
  await waitFor("lock", () => existsSync(`${d}/locked`));
  const [row] = await listJson(d);
  const waiter = start([BIN, "-d", d, "-t", "10", "victim", "--exec", "true"]);
  // Asleep in the kernel's queue for the file: its holder's death hands it the lock.
  await waitFor("the waiter in the kernel's queue", () => queuedInKernel(waiter.pid));
  process.kill(row!.pid!, "SIGKILL");
  expect(await waiter.exited).toBe(0);
  expect((await wl(["-d", d, "-t", "0", "victim", "--exec", "true"])).code).toBe(0);
  script.kill("SIGKILL");
});

needs(tool("flock"))("a record claiming the caller as owner does not count unless its holder has the file open", async () => {
  const d = lockDir();
  const script = startSh(`echo $$ > "$D/pid"; read -r _; "$WL" -d "$D" -t 0 claimed; echo "rc=$?" > "$D/rc"`, d);
  await waitFor("script pid", () => existsSync(`${d}/pid`) && readFileSync(`${d}/pid`, "utf8").endsWith("\n"));
  const owner = Number(readFileSync(`${d}/pid`, "utf8"));
  const stranger = start(["sleep", "60"]);
  writeFileSync(`${d}/claimed.slot0.lock`, encodeRecord({
    pid: stranger.pid, owner, uid: 0, acquiredAt: Date.now() / 1000, type: "mutex", maxHolders: 1, slot: 0,
    hostname: "h", descriptor: "claimed", command: "stale",
  }));
  start(["flock", `${d}/claimed.slot0.lock`, "sleep", "60"]);
  await waitFor("flock(1) holds it", () => held(d, "claimed"));
  script.stdin!.write("go\n");
  script.stdin!.end();
  await waitFor("script done", () => existsSync(`${d}/rc`));
  expect(readFileSync(`${d}/rc`, "utf8")).toBe("rc=1\n");
});
