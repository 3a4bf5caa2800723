// A start-up cost no code review sees: JavaScriptCore compiles each of its builtins written
// in JavaScript (Array.prototype.map, every, forEach, Array.from, ...) from source on its
// first call, ~85 µs apiece on this machine (bench/TUNING.md). None may run on the paths
// that take a lock. JSC's bytecode dump (honoured by the compiled binary) names every
// function compiled in a run.
import { expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, readdirSync } from "node:fs";
import { BIN, inDefaultDirs, inotifyWatches, lockDir, queuedInKernel, run, sh, start, startSh, voluntarySwitches, waitFor } from "./helpers";

const DUMP = { BUN_JSC_dumpGeneratedBytecodes: "1" };

const BUILTINS = new Set([
  "every", "some", "map", "filter", "forEach", "reduce", "reduceRight", "find", "findIndex", "findLast",
  "findLastIndex", "from", "of", "fill", "flat", "flatMap", "sort", "toSorted", "padStart", "padEnd",
  "fromEntries", "matchAll", "all", "allSettled", "race", "any",
]);

/** Every code block compiled in a run, from the dump on its stderr. */
const blocksIn = (stderr: string) =>
  [...stderr.matchAll(/^(\S*?)#[A-Za-z0-9]{6}:\[([^\]]*)\]/gm)].map((m) => ({
    name: m[1]!,
    strict: m[2]!.includes("StrictMode"),
    module: m[2]!.includes("Module,"),
  }));

/** The program's modules (bundle chunks) that a run evaluated, without their hash suffix. */
const modulesIn = (stderr: string) =>
  blocksIn(stderr)
    .filter((b) => b.module && b.name.startsWith("/$bunfs/root/"))
    .map((b) => b.name.slice("/$bunfs/root/".length).replace(/-\w+\.js$/, ""));

/** The builtins compiled in a run. */
function builtinsIn(stderr: string): string[] {
  // The program's own module code is always there: without it the dump has stopped working.
  expect(modulesIn(stderr).length).toBeGreaterThan(0);
  return blocksIn(stderr).filter((b) => b.strict && BUILTINS.has(b.name)).map((b) => b.name);
}

// Every top-level function of an evaluated module costs start-up (~1.1 K instructions each,
// bench/TUNING.md); the modes --exec does not use are chunks loaded by import() on demand.
test("--exec evaluates the entry and the core chunk only; --list and --help load their own", async () => {
  const d = lockDir();
  const exec = await run([BIN, "-d", d, "n", "--exec", "true"], { env: DUMP });
  expect(exec.code).toBe(0);
  expect(modulesIn(exec.stderr).sort()).toEqual(["main", "waitlock"]);
  const list = await run([BIN, "-d", d, "--list"], { env: DUMP });
  expect(modulesIn(list.stderr)).toContain("list");
  const help = await run([BIN, "--help"], { env: DUMP });
  expect(modulesIn(help.stderr).length).toBeGreaterThan(2);
});

test("--exec, plain and as a semaphore with a timeout, compiles no JavaScript builtin", async () => {
  const d = lockDir();
  for (const args of [["n", "--exec", "true"], ["-m", "2", "-t", "0.5", "n", "--exec", "true"]]) {
    const r = await run([BIN, "-d", d, ...args], { env: DUMP });
    expect(r.code).toBe(0);
    expect({ args, builtins: builtinsIn(r.stderr) }).toEqual({ args, builtins: [] });
  }
});

test("--exec in the default lock directory compiles no JavaScript builtin", async () => {
  // No -d (and the helpers pass no WAITLOCK_DIR): the defaults are searched. The slot file
  // of this unique name is gone again when the run ends.
  const r = await inDefaultDirs(() => run([BIN, `startup-default-${process.pid}`, "--exec", "true"], { env: DUMP }));
  expect(r.code).toBe(0);
  expect(builtinsIn(r.stderr)).toEqual([]);
});

test("a waiter that sleeps, wakes and wins compiles no JavaScript builtin", async () => {
  const d = lockDir();
  const holder = startSh(`exec "$WL" -d "$D" w --exec sh -c 'touch "$D/held"; read -r _'`, d);
  await waitFor("the holder", () => existsSync(`${d}/held`));
  const waiter = start([BIN, "-d", d, "w", "--exec", "true"], { env: DUMP });
  const stderr = new Response(waiter.stderr).text();
  await waitFor("the waiter in the kernel's queue", () => queuedInKernel(waiter.pid));
  (holder.stdin as { end(): unknown }).end();
  expect(await waiter.exited).toBe(0);
  expect(builtinsIn(await stderr)).toEqual([]);
});

/**
 * The globals that the code blocks of a run look up (resolve_scope on the global object, as
 * the dump lists each block's bytecode and identifiers). JavaScriptCore sets up a global
 * such as Math or performance when it links a function that names it, whether that code
 * runs or not (bench/TUNING.md, twelfth round).
 */
function globalsNamed(stderr: string): Set<string> {
  const names = new Set<string>();
  for (const block of stderr.split(/^(?=\S*#[A-Za-z0-9]{6}:\[)/m)) {
    const ids = new Map([...block.matchAll(/^ {2}id(\d+) = (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    for (const m of block.matchAll(/resolve_scope .*?var:(\d+), resolveType:Global/g)) names.add(ids.get(m[1]!) ?? `?${m[1]}`);
  }
  return names;
}

test("--exec names neither Math nor, without a timeout, performance", async () => {
  const d = lockDir();
  const plain = await run([BIN, "-d", d, "n", "--exec", "true"], { env: DUMP });
  expect(plain.code).toBe(0);
  const named = globalsNamed(plain.stderr);
  // The dump still lists lookups: the run names process, the FFI's Bun and more.
  expect(named.has("process")).toBe(true);
  expect(["Math", "performance"].filter((g) => named.has(g))).toEqual([]);
  const timed = await run([BIN, "-d", d, "-m", "2", "-t", "0.5", "n", "--exec", "true"], { env: DUMP });
  expect(timed.code).toBe(0);
  expect(globalsNamed(timed.stderr).has("Math")).toBe(false);
});

test("acquiring for the caller compiles no JavaScript builtin", async () => {
  const d = lockDir();
  const r = await sh(`"$WL" -d "$D" h`, d, { env: DUMP });
  expect(r.code).toBe(0);
  expect(builtinsIn(r.stderr)).toEqual([]);
});

test("a waiter woken hundreds of times starts no JIT compiler thread (package.json: --compile-jit-policy)", async () => {
  const d = lockDir();
  // A semaphore's waiter is the one that wakes up (a mutex's sleeps in the kernel's queue).
  const holders = [0, 1].map((k) => startSh(`exec "$WL" -d "$D" -m 2 j --exec sh -c 'touch "$D/held${k}"; read -r _'`, d));
  await waitFor("the holders", () => existsSync(`${d}/held0`) && existsSync(`${d}/held1`));
  const waiter = start([BIN, "-d", d, "-m", "2", "j", "--exec", "true"]);
  await waitFor("the waiter to watch both slot files", () => inotifyWatches(waiter.pid) >= 2);
  // Each change of the slot file's attributes wakes the waiter for another look: it sleeps
  // again after it (a voluntary context switch).
  for (let i = 0; i < 300; i++) {
    const seen = voluntarySwitches(waiter.pid);
    chmodSync(`${d}/j.slot0.lock`, i % 2 ? 0o666 : 0o644);
    await waitFor("the waiter to wake up", () => voluntarySwitches(waiter.pid) > seen);
  }
  const threads = readdirSync(`/proc/${waiter.pid}/task`).map((t) => readFileSync(`/proc/${waiter.pid}/task/${t}/comm`, "utf8").trim());
  (holders[0]!.stdin as { end(): unknown }).end();
  expect(await waiter.exited).toBe(0);
  expect(threads.filter((t) => t.startsWith("JIT"))).toEqual([]);
});
