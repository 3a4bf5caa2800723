// Drives the compiled binary the way a user would: real processes in a temporary lock
// directory. Every process started here leads its own session, and whatever is still in it
// after each test is killed (commands run by --exec included; test/cleanup.ts).
import { expect } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { SUBDIR, SYSTEM_BASES } from "../src/lockdir";
import { dirs, started } from "./cleanup";
import { isRoot, tool } from "./needs";

export { STRICT, isRoot, linux, mountNamespace, needs, root, tool } from "./needs";

export const BIN = resolve(import.meta.dir, "../dist/waitlock");
if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run 'npm run build' (npm test does it for you)`);

/**
 * Why `unprivileged` cannot run here, or undefined: as root it needs setpriv(1).
 */
export const unprivilegedNeeds = (): string | undefined => (isRoot() ? tool("setpriv") : undefined);

/**
 * Runs waitlock as a user without privileges over the test's files: nobody (through
 * setpriv) when the suite runs as root, else the suite's own user. Permission bits taken
 * from a directory the test made (chmod 0o555, 0o000) then deny this user.
 */
export const unprivileged = (args: string[], opts?: RunOptions) =>
  run(isRoot() ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN, ...args] : [BIN, ...args], opts);

/** The name of the user the suite runs as (what --list shows in its USER column), from id(1). */
export const userName = (): string => Bun.spawnSync(["id", "-un"]).stdout.toString().trim() || String(process.getuid?.());

/** A fresh lock directory (removed after the test). */
export function lockDir(): string {
  const d = mkdtempSync(join(tmpdir(), "waitlock-test-"));
  dirs.push(d);
  return d;
}

/**
 * Runs `fn` against the default lock directory (no -d). waitlock never creates a directory
 * there (only `make install` does): none may appear.
 */
export async function inDefaultDirs<T>(fn: () => Promise<T>): Promise<T> {
  const subdirs = () => SYSTEM_BASES.map((base) => existsSync(`${base}/${SUBDIR}`));
  const before = subdirs();
  try {
    return await fn();
  } finally {
    expect(subdirs()).toEqual(before);
  }
}

/** Kill this PID after the test if it is still there (for processes we did not spawn). */
export function track(pid: number): void {
  started.add(pid);
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

type Env = Record<string, string | undefined>;

/** The environment tests start from: none of waitlock's own variables leak in. */
export function cleanEnv(extra: Env = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("WAITLOCK_")) env[k] = v;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  else delete env[k];
  return env;
}

export interface RunOptions {
  env?: Env;
  stdin?: string;
  cwd?: string;
  /** kill the process and fail after this long */
  deadlineMs?: number;
}

/** Runs a command to completion. */
export async function run(cmd: string[], opts: RunOptions = {}): Promise<Result> {
  const t0 = performance.now();
  const p = Bun.spawn(cmd, {
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: cleanEnv(opts.env),
    cwd: opts.cwd,
    detached: true,
  });
  started.add(p.pid);
  const deadline = opts.deadlineMs ?? 20_000;
  const timer = setTimeout(() => process.kill(-p.pid, "SIGKILL"), deadline);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  const ms = performance.now() - t0;
  if (ms >= deadline) throw new Error(`${cmd.join(" ")} did not finish within ${deadline} ms`);
  return { code, stdout, stderr, ms };
}

/** Runs waitlock with `args`. */
export const wl = (args: string[], opts?: RunOptions) => run([BIN, ...args], opts);

/** Runs a shell snippet; $WL is the binary, $D the lock directory. */
export const sh = (script: string, dir: string, opts: RunOptions = {}) =>
  run(["/bin/sh", "-c", script], { ...opts, env: { WL: BIN, D: dir, ...opts.env } });

/** Starts a process in the background; it is killed after the test. */
export function start(cmd: string[], opts: { env?: Env; stdout?: "pipe" | "ignore"; stdin?: "pipe" | "ignore"; cwd?: string } = {}) {
  const p = Bun.spawn(cmd, {
    cwd: opts.cwd,
    stdin: opts.stdin ?? "ignore",
    stdout: opts.stdout ?? "ignore",
    stderr: "pipe",
    env: cleanEnv(opts.env),
    detached: true,
  });
  started.add(p.pid);
  return p;
}

/** Starts a shell snippet in the background; its stdin is a pipe that stays open, so `read` blocks. */
export const startSh = (script: string, dir: string, env: Env = {}) =>
  start(["/bin/sh", "-c", script], { env: { WL: BIN, D: dir, ...env }, stdin: "pipe" });

/** Waits until `cond` holds, polling; fails after `ms`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  for (let step = 2; ; step = Math.min(step * 2, 50)) {
    if (await cond()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await Bun.sleep(step);
  }
}

/** Is the slot held? Asked of waitlock itself (--check exits 1 when every slot is held). */
export async function held(dir: string, name: string, slots = 1): Promise<boolean> {
  const r = await wl(["-d", dir, "--check", "-m", String(slots), name]);
  if (r.code !== 0 && r.code !== 1) throw new Error(`--check failed: ${r.code} ${r.stderr}`);
  return r.code === 1;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie still answers kill(0); it has exited all the same.
  try {
    return !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return false;
  }
}

export interface ListedRow {
  descriptor: string;
  slot: number;
  status: string;
  mode: string | null;
  /** waiting rows: place in the queue, 1 = next */
  position?: number;
  waitingSince?: number | null;
  pid: number | null;
  owner: number | null;
  command: string | null;
  maxHolders: number | null;
  type: string | null;
  file: string;
}

export async function listJson(dir: string, extra: string[] = []): Promise<ListedRow[]> {
  const r = await wl(["-d", dir, "--list", "-f", "json", ...extra]);
  if (r.code !== 0) throw new Error(`--list failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Collects a process's stderr as it comes, so that a test can wait for a line. */
export function stderrOf(p: { stderr: ReadableStream<Uint8Array> | number | undefined | null }) {
  const seen = { text: "" };
  const stream = p.stderr as ReadableStream<Uint8Array>;
  const done = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) seen.text += decoder.decode(chunk, { stream: true });
  })();
  return {
    get text() {
      return seen.text;
    },
    until: (pattern: RegExp, ms = 10_000) => waitFor(`stderr to match ${pattern}`, () => pattern.test(seen.text), ms),
    done,
  };
}

/** Is `pid` blocked in the kernel's queue for a flock(2) lock (a "->" line of /proc/locks)? */
export function queuedInKernel(pid: number): boolean {
  return readFileSync("/proc/locks", "utf8").split("\n").some((line) => / -> FLOCK /.test(line) && line.split(/\s+/)[5] === String(pid));
}

/** How many inotify watches `pid` has set (the "inotify wd:" lines of its descriptors' fdinfo). */
export function inotifyWatches(pid: number): number {
  let watches = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      watches += readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8").split("inotify wd:").length - 1;
    } catch {
      // closed meanwhile
    }
  }
  return watches;
}

/** Is process `pid` asleep in poll(2) or ppoll(2) (its main thread, as /proc/PID/wchan says)? */
export const asleepInPoll = (pid: number): boolean => /poll/.test(readFileSync(`/proc/${pid}/wchan`, "utf8"));

/** The voluntary context switches of process `pid`'s main thread so far: one at least each time it sleeps. */
export const voluntarySwitches = (pid: number): number =>
  Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

/**
 * Traces the poll(2) and ppoll(2) calls of process `pid` with strace(1) until it exits, for
 * the kernel's word on what ended each sleep. Resolves once strace is attached; `calls()`
 * waits for the process to exit and returns strace's lines.
 */
export async function tracePolls(pid: number): Promise<{ calls(): Promise<string[]> }> {
  const out = join(lockDir(), "polls");
  const tracer = start(["strace", "-qq", "-e", "trace=poll,ppoll", "-o", out, "-p", String(pid)]);
  await waitFor("strace to attach", () => /^TracerPid:\s+[1-9]/m.test(readFileSync(`/proc/${pid}/status`, "utf8")));
  return {
    async calls() {
      await tracer.exited;
      return readFileSync(out, "utf8").split("\n");
    },
  };
}

/**
 * Starts a `waitlock ARGS` that must wait, ends `holder` (a startSh process blocked in
 * `read`) once the waiter sleeps in the kernel, and checks that the waiter then ran its
 * command. A mutex waiter sleeps in the kernel's queue for the slot file, and the kernel
 * hands it the lock; a semaphore's waiter sleeps on inotify watches of its `slots` files,
 * and must be woken by an event (not the periodic recheck): a poll that the kernel ended
 * with its inotify descriptor readable. Semaphores need strace(1).
 */
export async function expectWokenByRelease(args: string[], holder: { stdin: { end(): unknown } | number | undefined | null }, slots = 1): Promise<void> {
  const waiter = start([BIN, ...args]);
  if (slots === 1) await waitFor("the waiter in the kernel's queue", () => queuedInKernel(waiter.pid));
  else await waitFor(`the waiter watching ${slots} slot files`, () => inotifyWatches(waiter.pid) >= slots);
  const polls = slots === 1 ? undefined : await tracePolls(waiter.pid);
  // Asleep (strace's attach interrupted the poll, which then starts again): an event that came
  // while the waiter looked would be read without a poll.
  if (polls) await waitFor("the waiter asleep in poll(2)", () => asleepInPoll(waiter.pid));
  (holder.stdin as { end(): unknown }).end();
  expect(await waiter.exited).toBe(0);
  // Woken by an event (the holder's close, or the removal of its file), not the recheck.
  if (polls) expect((await polls.calls()).filter((call) => /revents=POLLIN/.test(call)).length).toBeGreaterThan(0);
}

/**
 * `workers` shell loops, each adding 1 to a counter file `iterations` times under the lock
 * (read, pause, write: overlapping workers would lose increments). Returns the final count.
 */
export async function countUnderLock(dir: string, workers: number, iterations: number, env: Env = {}, lock = true): Promise<number> {
  writeFileSync(`${dir}/counter`, "0\n");
  const section = `n=$(cat "$D/counter"); sleep 0.001; echo $((n + 1)) > "$D/counter"`;
  const step = lock ? `"$WL" -d "$D" counter --exec sh -c '${section}' || exit 9` : section;
  const worker = `i=0; while [ $i -lt ${iterations} ]; do ${step}; i=$((i + 1)); done`;
  const codes = await Promise.all(Array.from({ length: workers }, () => startSh(worker, dir, env).exited));
  if (codes.some((c) => c !== 0)) throw new Error(`a worker failed: ${codes}`);
  return Number(readFileSync(`${dir}/counter`, "utf8").trim() || "0");
}
