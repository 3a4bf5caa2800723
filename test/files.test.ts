// Locking what flock(1) users lock: an existing file or directory (--file PATH), and the
// caller's own descriptor (--fd N, the `exec 9>FILE; flock 9` idiom).
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { BIN, alive, listJson, lockDir, queuedInKernel, run, start, startSh, waitFor, wl } from "./helpers";
import { needs, tool } from "./needs";

const isRoot = process.getuid?.() === 0;
/** As root, run as nobody, who may only read the files under test; otherwise as ourselves. */
const unprivileged = isRoot ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];

/** A lock directory every user can use, and a directory with a read-only file in it. */
function setUp() {
  const d = lockDir();
  chmodSync(d, 0o1777);
  const home = lockDir();
  chmodSync(home, 0o755);
  const file = `${home}/data`;
  writeFileSync(file, "precious\n");
  chmodSync(file, 0o444);
  utimesSync(file, new Date("2020-01-02T03:04:05Z"), new Date("2020-01-02T03:04:05Z"));
  return { d, home, file };
}

/** What must not change: the file's bytes and times, and what its directory holds. */
function fingerprint(path: string, dir: string) {
  const st = statSync(path);
  return { mtime: st.mtimeMs, ctime: st.ctimeMs, size: st.size, mode: st.mode, bytes: st.isDirectory() ? null : readFileSync(path, "utf8"), entries: readdirSync(dir).sort() };
}

/** Is `path` locked? Asked of flock(1) (exit 1 when its non-blocking try fails). */
async function lockedForFlock(path: string, shared = false): Promise<boolean> {
  const r = await run(["flock", ...(shared ? ["-s"] : []), "-n", path, "true"]);
  if (r.code !== 0 && r.code !== 1) throw new Error(`flock failed: ${r.stderr}`);
  return r.code === 1;
}

const wlAs = (args: string[]) => run([...unprivileged, BIN, ...args]);

describe("--file PATH", () => {
  needs(tool("flock"))("waitlock and flock(1) exclude each other on a read-only file, both ways, and the file is never written", async () => {
    const { d, home, file } = setUp();
    const before = fingerprint(file, home);

    // -o: flock(1) alone holds the lock, not the command it runs, so that killing it frees the file.
    const outsider = start(["flock", "-o", file, "sleep", "30"]);
    await waitFor("flock(1) to hold the file", () => lockedForFlock(file));
    expect((await wlAs(["-d", d, "-t", "0", "--file", file, "--exec", "true"])).code).toBe(1);
    expect((await wlAs(["-d", d, "--check", "--file", file])).code).toBe(1);
    const late = await wlAs(["-d", d, "-t", "0.2", "--file", file, "--exec", "true"]);
    expect(late).toMatchObject({ code: 2, stderr: `waitlock: ${file}: timed out after 0.2 seconds\n` });
    // A waiter sleeps in the kernel's queue for the file, with flock(1)'s, and is let in when it lets go.
    const waiter = start([...unprivileged, BIN, "-d", d, "--file", file, "--exec", "sh", "-c", "echo ran > /dev/null"]);
    await waitFor("the waiter in the kernel's queue", () => queuedInKernel(waiter.pid));
    outsider.kill("SIGKILL");
    expect(await waiter.exited).toBe(0);

    const inside = start([...unprivileged, BIN, "-d", d, "--file", file, "--exec", "sleep", "30"]);
    await waitFor("waitlock to hold the file", () => lockedForFlock(file));
    expect(await lockedForFlock(file, true)).toBe(true);
    const python = await run(["python3", "-c", "import fcntl, sys\nf = open(sys.argv[1])\ntry:\n  fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n  sys.exit(1)", file]);
    expect(python.code).toBe(1);
    inside.kill("SIGTERM");
    await inside.exited;
    expect(await lockedForFlock(file)).toBe(false);

    expect(fingerprint(file, home)).toEqual(before);
  });

  needs(tool("flock"))("a directory is locked as flock(1) locks it, and left as it was", async () => {
    const { d } = setUp();
    const parent = lockDir();
    chmodSync(parent, 0o755);
    const target = `${parent}/tree`;
    mkdirSync(target);
    writeFileSync(`${target}/inside`, "x");
    utimesSync(target, new Date("2021-01-01T00:00:00Z"), new Date("2021-01-01T00:00:00Z"));
    const before = fingerprint(target, target);
    const outsider = start(["flock", "-o", target, "sleep", "30"]);
    await waitFor("flock(1) to hold the directory", () => lockedForFlock(target));
    expect((await wlAs(["-d", d, "-t", "0", "--file", target, "--exec", "true"])).code).toBe(1);
    outsider.kill("SIGKILL");
    await outsider.exited;
    const inside = start([...unprivileged, BIN, "-d", d, "--file", target, "--exec", "sleep", "30"]);
    await waitFor("waitlock to hold the directory", () => lockedForFlock(target));
    expect((await wl(["-d", d, "--list", "-f", "json"])).stdout).toContain(`"descriptor": "${target}"`);
    inside.kill("SIGTERM");
    await inside.exited;
    expect(await lockedForFlock(target)).toBe(false);
    expect(fingerprint(target, target)).toEqual(before);
  });

  needs(tool("flock"))("-s: waitlock readers and flock -s share the file; flock(1) and waitlock writers are kept out", async () => {
    const { d, file } = setUp();
    const reader = startSh(`exec "$WL" -d "$D" -s --file "$F" --exec sh -c 'touch "$D/r"; read -r _'`, d, { F: file });
    await waitFor("the waitlock reader", () => existsSync(`${d}/r`));
    expect(await lockedForFlock(file, true)).toBe(false);
    expect(await lockedForFlock(file)).toBe(true);
    const outsiderReader = start(["flock", "-o", "-s", file, "sleep", "30"]);
    expect((await wl(["-d", d, "-s", "-t", "0", "--file", file, "--exec", "true"])).code).toBe(0);
    expect((await wl(["-d", d, "-t", "0", "--file", file, "--exec", "true"])).code).toBe(1);
    expect((await wl(["-d", d, "--check", "-s", "--file", file])).code).toBe(0);
    expect((await wl(["-d", d, "--check", "--file", file])).code).toBe(1);
    await waitFor("flock -s to hold too", async () => (await listJson(d, ["--file", file])).length === 2);
    const rows = await listJson(d, ["--file", file]);
    expect(rows.map((r) => [r.descriptor, r.mode]).sort()).toEqual([[file, "shared"], [file, "shared"]]);
    expect(rows.map((r) => r.pid)).toContain(outsiderReader.pid);
    reader.stdin!.end();
    outsiderReader.kill("SIGKILL");
    await Promise.all([reader.exited, outsiderReader.exited]);
    expect((await wl(["-d", d, "-t", "0", "--file", file, "--exec", "true"])).code).toBe(0);
  });

  test("nothing is created: a missing file is an error and stays missing; a NAME or -m with --file is a usage error", async () => {
    const { d, home } = setUp();
    const r = await wl(["-d", d, "--file", `${home}/missing`, "--exec", "true"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`waitlock: ${home}/missing: cannot open the file to lock`);
    expect(existsSync(`${home}/missing`)).toBe(false);
    expect((await wl(["-d", d, "--check", "--file", `${home}/missing`])).code).toBe(2);
    for (const args of [["--file", `${home}/data`, "name"], ["-m", "2", "--file", `${home}/data`], ["--file", `${home}/data`, "--fd", "0"], ["--file", ""]])
      expect({ args, code: (await wl(["-d", d, ...args])).code }).toEqual({ args, code: 3 });
  });

  needs(tool("flock"))("plain acquire: the script holds the file until it exits; asking again gets 0 at once; --list names it by path; --done releases", async () => {
    const { d, file } = setUp();
    const script = startSh(`"$WL" -d "$D" --file "$F" || exit 9; "$WL" -d "$D" -t 0 --file "$F" || exit 8; "$WL" -d "$D" -s -t 0 --file "$F" || exit 7; touch "$D/in"; read -r _`, d, { F: file });
    await waitFor("the script to hold the file", () => existsSync(`${d}/in`));
    expect(await lockedForFlock(file)).toBe(true);
    const rows = await listJson(d);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ descriptor: file, file, slot: 0, mode: "exclusive", owner: script.pid, status: "active" });
    expect(alive(rows[0]!.pid!)).toBe(true);
    // --done stops the script (the owner) and its holder, as for a NAME.
    expect((await wl(["-d", d, "--done", "--file", file])).code).toBe(0);
    expect(await script.exited).toBe(143);
    expect(await lockedForFlock(file)).toBe(false);
    await waitFor("the record and turnstile to go", () => readdirSync(d).every((f) => !f.startsWith("file@")));
  });

  needs(tool("flock"))("--list --file and --done --file see holders no waitlock recorded (flock(1))", async () => {
    const { d, file } = setUp();
    const outsider = start(["flock", "-o", file, "sleep", "30"]);
    await waitFor("flock(1) to hold the file", () => lockedForFlock(file));
    expect(await listJson(d)).toEqual([]);
    const rows = await listJson(d, ["--file", file]);
    expect(rows.map((r) => [r.descriptor, r.mode, r.status])).toContainEqual([file, "exclusive", "active"]);
    expect(rows.map((r) => r.pid)).toContain(outsider.pid);
    expect((await wl(["-d", d, "--done", "--file", file])).code).toBe(0);
    expect(await outsider.exited).not.toBe(0);
    expect((await wl(["-d", d, "--done", "--file", file])).code).toBe(1);
  });

  test("waitlocks waiting for one file are served in arrival order, whatever path each named it by", async () => {
    const { d, home, file } = setUp();
    symlinkSync(file, `${home}/link`);
    const paths = [file, `${home}/link`, `${home}/../${home.split("/").pop()}/data`, `${home}/link`];
    const first = startSh(`exec "$WL" -d "$D" --file "$F" --exec sh -c 'touch "$D/h"; read -r _'`, d, { F: file });
    await waitFor("the holder", () => existsSync(`${d}/h`));
    const waiters = [];
    for (const [i, path] of paths.entries()) {
      const w = start([BIN, "-d", d, "--file", path, "--exec", "sh", "-c", `echo ${i} >> "$0/order"`, d]);
      await waitFor(`waiter ${i} asleep`, () => queuedInKernel(w.pid));
      waiters.push(w);
    }
    // They share one turnstile in the lock directory, named for the file's identity.
    expect(readdirSync(d).filter((f) => f.endsWith(".queue.lock"))).toHaveLength(1);
    first.stdin!.end();
    for (const w of waiters) expect(await w.exited).toBe(0);
    expect(readFileSync(`${d}/order`, "utf8")).toBe("0\n1\n2\n3\n");
  });
});

/** The processes running the waitlock binary under test. */
function waitlockProcesses(): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      if (readlinkSync(`/proc/${pid}/exe`) === BIN) pids.push(Number(pid));
    } catch {
      // gone, or not ours to look at
    }
  }
  return pids;
}

describe("--fd N", () => {
  for (const shell of ["bash", "zsh"]) {
    needs(tool(shell))(`${shell}: exec 9>FILE; waitlock --fd 9 holds across commands with no waitlock process alive, until exec 9>&-`, async () => {
      const { d, file } = setUp();
      chmodSync(file, 0o644);
      const script = `
        exec 9>>"$F"
        "$WL" -d "$D" --fd 9 || exit 9
        true; ls "$D" >/dev/null
        "$WL" -d "$D" -t 0 --file "$F" --exec true; echo "other=$?" > "$D/state"
        read -r _
        exec 9>&-
        touch "$D/closed"
        read -r _
        exit 0`;
      const p = start([shell, ...(shell === "zsh" ? ["-f"] : []), "-c", script], { env: { WL: BIN, D: d, F: file }, stdin: "pipe" });
      await waitFor("the shell to have locked fd 9", () => existsSync(`${d}/state`));
      expect(readFileSync(`${d}/state`, "utf8")).toBe("other=1\n");
      expect(await lockedForFlock(file)).toBe(true);
      expect(waitlockProcesses()).toEqual([]);
      const rows = await listJson(d);
      expect(rows.map((r) => [r.descriptor, r.pid, r.owner, r.mode])).toEqual([[file, p.pid, p.pid, "exclusive"]]);

      p.stdin!.write("next\n");
      p.stdin!.flush();
      await waitFor("the shell to close fd 9", () => existsSync(`${d}/closed`));
      expect(await lockedForFlock(file)).toBe(false);
      expect(await listJson(d)).toEqual([]);
      expect((await listJson(d, ["--all"])).map((r) => r.status)).toEqual(["stale"]);
      p.stdin!.end();
      expect(await p.exited).toBe(0);
    });
  }

  needs(tool("bash"))("-s and -t: two shells share a file through their descriptors; a writer's --fd times out or is busy", async () => {
    const { d, file } = setUp();
    chmodSync(file, 0o644);
    const reader = (tag: string) => startSh(`exec 9<"$F"; "$WL" -d "$D" -s --fd 9 || exit 9; touch "$D/${tag}"; read -r _`, d, { F: file });
    const [a, b] = [reader("a"), reader("b")];
    await waitFor("both readers", () => existsSync(`${d}/a`) && existsSync(`${d}/b`));
    expect(await lockedForFlock(file, true)).toBe(false);
    expect(await lockedForFlock(file)).toBe(true);
    const t0 = performance.now();
    const timedOut = await run(["bash", "-c", `exec 9>>"$F"; "$WL" -d "$D" -t 0.3 --fd 9; echo "rc=$?"; "$WL" -d "$D" -t 0 --fd 9; echo "rc=$?"`], { env: { WL: BIN, D: d, F: file } });
    expect(timedOut.stdout).toBe("rc=2\nrc=1\n");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
    expect((await listJson(d)).map((r) => r.mode)).toEqual(["shared", "shared"]);
    a.stdin!.end();
    b.stdin!.end();
    await Promise.all([a.exited, b.exited]);
    expect(await lockedForFlock(file)).toBe(false);
  });

  needs(tool("bash"), tool("flock"))("--fd N --unlock releases while N stays open; a second --fd from the same descriptor changes the mode in place", async () => {
    const { d, file } = setUp();
    chmodSync(file, 0o644);
    const r = await run(["bash", "-c", `
      exec 9>>"$F"
      "$WL" -d "$D" --fd 9 || exit 9
      flock -s -n "$F" true; echo "shared while exclusive: $?"
      "$WL" -d "$D" -s -t 0 --fd 9 || exit 8
      flock -s -n "$F" true; echo "shared while shared: $?"
      flock -n "$F" true; echo "exclusive while shared: $?"
      "$WL" -d "$D" --fd 9 --unlock || exit 7
      flock -n "$F" true; echo "after unlock: $?"
      ls "$D" | wc -l`], { env: { WL: BIN, D: d, F: file } });
    expect(r).toMatchObject({ code: 0, stdout: "shared while exclusive: 1\nshared while shared: 0\nexclusive while shared: 1\nafter unlock: 0\n0\n" });
  });

  test("a descriptor that is not open, and --unlock or -s out of place, are usage errors", async () => {
    const d = lockDir();
    const r = await wl(["-d", d, "--fd", "57"]);
    expect(r).toMatchObject({ code: 3, stderr: "waitlock: --fd: 57 is not an open file descriptor\n" });
    for (const args of [["--unlock"], ["--fd", "0", "--unlock", "-s"], ["--fd", "0", "name"], ["--fd", "0", "--exec", "true"], ["--fd", "x"], ["--fd", "0", "-m", "2"]])
      expect({ args, code: (await wl(["-d", d, ...args])).code }).toEqual({ args, code: 3 });
  });
});
