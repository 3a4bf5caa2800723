// Out of file descriptors (`ulimit -n N`, every N from the smallest up): waitlock answers 75,
// "temporary failure, try again", wherever its own work runs out — never 1 (busy: a
// `waitlock -t 0 NAME || exit` cron job would skip silently) and never 126 (the command's
// fault). Below a few descriptors the runtime itself cannot start, before any of waitlock's
// code runs: that refusal is recognized and must stop at a small N.
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { BIN, held, lockDir, sh, start, startSh, waitFor } from "./helpers";

const LIMITS = Array.from({ length: 30 }, (_, i) => i + 3);

/** The runtime (or the dynamic loader before it) refusing to start: no code of waitlock's ran. */
const runtimeRefused = (stderr: string) => stderr.includes("bun ran out of file descriptors") || stderr.includes("error while loading shared libraries");

interface Outcome {
  limit: number;
  code: number;
  stderr: string;
}

/** Runs `script` (a shell snippet using $WL and $D) under `ulimit -n N` for every N. */
async function sweep(d: string, script: (n: number) => string): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const limit of LIMITS) {
    const r = await sh(`ulimit -n ${limit} || exit 99; ${script(limit)}`, d);
    out.push({ limit, code: r.code, stderr: r.stderr });
  }
  return out;
}

/** What waitlock's own code answered, once the runtime started; checks that the runtime's refusals stop at a small N. */
function answered(outcomes: Outcome[]): Outcome[] {
  const ran = outcomes.filter((o) => !runtimeRefused(o.stderr));
  const floor = ran[0]?.limit ?? Infinity;
  expect({ floor: floor <= 8 }).toEqual({ floor: true });
  expect(outcomes.filter((o) => o.limit >= floor && runtimeRefused(o.stderr))).toEqual([]);
  for (const o of ran) if (o.code === 75) expect({ limit: o.limit, stderr: o.stderr }).toEqual({ limit: o.limit, stderr: expect.stringMatching(/^waitlock: .*(Too many open files|too many open files).*\(try again\)\n$/) });
  return ran;
}

const codes = (outcomes: Outcome[]) => [...new Set(outcomes.map((o) => o.code))].sort((a, b) => a - b);

test("--exec true on a free lock: 0 or 75, never 1 or 126", async () => {
  const d = lockDir();
  const ran = answered(await sweep(d, () => `exec "$WL" -d "$D" x --exec true`));
  expect(codes(ran).filter((c) => c !== 0 && c !== 75)).toEqual([]);
  // Both happen: the sweep reaches waitlock's own exhaustion, and gets past it.
  expect(codes(ran)).toEqual([0, 75]);
});

test("a semaphore whose free slot is the last one opened: 0 or 75, never 1", async () => {
  const d = lockDir();
  for (const slot of ["0", "1"]) start([BIN, "-d", d, "-m", "3", "s", "--exec", "sleep", "60"], { env: { WAITLOCK_SLOT: slot } });
  await waitFor("two holders", () => existsSync(`${d}/s.slot0.lock`) && existsSync(`${d}/s.slot1.lock`));
  await waitFor("both slots held", async () => !(await sh(`"$WL" -d "$D" -t 0 -m 2 s; echo $?`, d)).stdout.startsWith("0"));
  const ran = answered(await sweep(d, () => `exec "$WL" -d "$D" -m 3 -t 0 s --exec true`));
  expect(codes(ran)).toEqual([0, 75]);
});

test("waiting for a busy lock: 2 (timed out) or 75, never 1", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "busy", "--exec", "sleep", "60"]);
  await waitFor("the holder", () => held(d, "busy"));
  const ran = answered(await sweep(d, () => `exec "$WL" -d "$D" -t 0.05 busy --exec true`));
  expect(codes(ran).filter((c) => c !== 2 && c !== 75)).toEqual([]);
  expect(codes(ran)).toContain(2);
});

test("--check and --list: their answers or 75, never 1 for --check", async () => {
  const d = lockDir();
  const check = answered(await sweep(d, () => `exec "$WL" -d "$D" --check free`));
  expect(codes(check).filter((c) => c !== 0 && c !== 75)).toEqual([]);
  const list = answered(await sweep(d, () => `exec "$WL" -d "$D" --list`));
  expect(codes(list).filter((c) => c !== 0 && c !== 75)).toEqual([]);
});

test("a plain acquire: 0 with the lock really held for the script, or 75 with nothing held", async () => {
  const d = lockDir();
  for (const limit of LIMITS) {
    const name = `h${limit}`;
    // The limit is the subshell's, which becomes waitlock: the script that owns the lock keeps its descriptors.
    const script = startSh(`(ulimit -n ${limit} && exec "$WL" -d "$D" ${name}) 2>"$D/${name}.err"; echo $? > "$D/${name}.rc"; read -r _`, d);
    await waitFor("the acquire", () => existsSync(`${d}/${name}.rc`) && readFileSync(`${d}/${name}.rc`, "utf8").endsWith("\n"));
    const code = Number(readFileSync(`${d}/${name}.rc`, "utf8"));
    const stderr = readFileSync(`${d}/${name}.err`, "utf8");
    if (!runtimeRefused(stderr)) {
      expect({ limit, code: [0, 75].includes(code) }).toEqual({ limit, code: true });
      // Exit 0 means held: its holder process started and keeps it while the script lives.
      expect({ limit, held: await held(d, name) }).toEqual({ limit, held: code === 0 });
    }
    (script.stdin as { end(): unknown }).end();
    await script.exited;
  }
});
