// The network backends (PostgreSQL, Redis) through the compiled CLI, against throwaway
// servers started from the installed binaries (test/servers/): uncontended `--exec true`
// next to the lock directory's, 4 × 10 × 20 ms mutex handoffs between shell loops on
// loopback and (as root) across two simulated hosts, against the 0.8 s of the sleeps alone,
// and 2 × 10 × 20 ms handoffs of a plain acquire (its holder lets go when the subshell that
// took the lock exits) next to the lock directory's, against the 0.4 s of the sleeps. bench/run.ts
// calls networkSection() in its run; `bun bench/network.ts` prints the section alone.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanUp, cleanUpRun } from "../test/cleanup";
import { createHosts, netnsMissing, type Host } from "../test/hosts";
import { postgresMissing, startPostgres } from "../test/servers/postgres";
import { redisMissing, startRedis } from "../test/servers/redis";

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;
const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(2)} ms (p10 ${quantile(xs, 0.1).toFixed(2)}, p90 ${quantile(xs, 0.9).toFixed(2)}, n=${xs.length})`;

/** Wall milliseconds of each of `n` runs of `argv`, which must exit 0. */
async function timedRuns(argv: string[], n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const p = Bun.spawn(argv, { stdout: "ignore", stderr: "inherit" });
    if ((await p.exited) !== 0) throw new Error(`${argv.join(" ")} failed`);
    out.push(performance.now() - t0);
  }
  return out;
}

/** One round of a handoff loop: `waitlock ARGS handoff --exec sleep 0.02`. */
const EXEC_ROUND = '"$WL" "$@" handoff --exec sleep 0.02 || exit 9';

/**
 * One round of a plain acquire's handoff loop: a subshell takes the lock, sleeps 0.02 s
 * and exits, which is what lets go (the holder watches the subshell).
 */
const PLAIN_ROUND = '( "$WL" "$@" handoff || exit 9; sleep 0.02 ) || exit 9';

/** Wall milliseconds of shell loops (one on each of `hosts`) each running `rounds` × `round` (with `waitlock ARGS` as `"$WL" "$@"`). */
async function handoffs(wl: string, args: string[], hosts: (Host | undefined)[], rounds: number, round = EXEC_ROUND): Promise<number> {
  const loop = `i=0; while [ $i -lt ${rounds} ]; do ${round}; i=$((i+1)); done`;
  const t0 = performance.now();
  const procs = hosts.map((host) => {
    const argv = ["sh", "-c", loop, "sh", ...args];
    return Bun.spawn(host ? host.run(argv) : argv, { env: { ...process.env, WL: wl }, stdout: "ignore", stderr: "inherit" });
  });
  const codes = await Promise.all(procs.map((p) => p.exited));
  if (codes.some((c) => c !== 0)) throw new Error(`a handoff loop failed (${codes})`);
  return performance.now() - t0;
}

const HANDOFF_ROUNDS = 5;

/** `round()` run HANDOFF_ROUNDS times, one after the other: milliseconds each. */
async function repeated(round: () => Promise<number>): Promise<number[]> {
  const all: number[] = [];
  for (let i = 0; i < HANDOFF_ROUNDS; i++) all.push(await round());
  return all;
}

/** "median ms = ratio × (every round)" against `ideal` milliseconds. */
function loopsText(loops: number[], ideal: number): string {
  const median = quantile(loops, 0.5);
  return `${median.toFixed(0)} ms = ${(median / ideal).toFixed(3)} × (${loops.map((l) => l.toFixed(0)).join(", ")} ms)`;
}

/** A network engine the section measures: a throwaway server on loopback, or in a namespace at an address. */
interface Engine {
  name: string;
  missing: () => string | undefined;
  start: (at?: { netns: string; host: string }) => Promise<{ url: (params?: Record<string, string>) => string }>;
  /** what one uncontended run does on the server */
  work: string;
  /** URL parameters of every run, and why */
  params?: Record<string, string>;
  why?: string;
}

const ENGINES: Engine[] = [
  {
    name: "PostgreSQL",
    missing: postgresMissing,
    start: startPostgres,
    work: "connecting, the lock, the holder's description and its fencing token, the unlock",
    params: { sslmode: "disable" },
    why: "the throwaway server has no TLS; with the default `prefer`, Bun would also parse the CA bundles that this machine's NODE_EXTRA_CA_CERTS and SSL_CERT_FILE name, for every connection (README, PostgreSQL \"Costs\")",
  },
  { name: "Redis", missing: redisMissing, start: startRedis, work: "connecting, one script that takes the slot, describes the holder and draws the token, one that releases" },
];

/** The markdown lines of the network section, measured now with the binary `wl` (the lock directory's figures in `dir`). */
export async function networkSection(wl: string, dir: string): Promise<string[]> {
  const lines = [`## Network backends (${ENGINES.map((e) => e.name).join(", ")})`, ""];
  try {
    const local = await timedRuns([wl, "-d", dir, "uncontended", "--exec", "true"], 40);
    lines.push("Uncontended `waitlock NAME --exec true`, wall time per run (process start to exit):", "", `- lock directory: ${fmt(local)}`);
    const running: { engine: Engine; args: string[] }[] = [];
    for (const engine of ENGINES) {
      const missing = engine.missing();
      if (missing) {
        lines.push(`- ${engine.name}: skipped (${missing})`);
        continue;
      }
      const args = ["--backend", (await engine.start()).url(engine.params)];
      await timedRuns([wl, ...args, "warm", "--exec", "true"], 3);
      const remote = await timedRuns([wl, ...args, "uncontended", "--exec", "true"], 40);
      lines.push(`- ${engine.name} on loopback: ${fmt(remote)} (${(quantile(remote, 0.5) / quantile(local, 0.5)).toFixed(2)} × the lock directory: ${engine.work})`);
      if (engine.params) lines.push(`  (URL parameters ${new URLSearchParams(engine.params)}: ${engine.why})`);
      running.push({ engine, args });
    }
    const ideal = 800;
    lines.push("", `Mutex handoff: 4 shell loops × 10 × \`--exec sleep 0.02\`, wall time against the 800 ms of the sleeps alone (target ≤ 1.25 ×), median of ${HANDOFF_ROUNDS} rounds (all rounds in brackets):`, "");
    for (const { engine, args } of running) {
      const loops = await repeated(() => handoffs(wl, args, [undefined, undefined, undefined, undefined], 10));
      lines.push(`- ${engine.name}, loopback: ${loopsText(loops, ideal)}`);
    }
    lines.push("", `Plain acquire handoff (\`waitlock NAME\` in a subshell that sleeps 0.02 s and exits, which lets go): 2 shell loops × 10 rounds, wall time against the 400 ms of the sleeps alone, median of ${HANDOFF_ROUNDS} rounds (all rounds in brackets):`, "");
    const plain = (args: string[]) => repeated(() => handoffs(wl, args, [undefined, undefined], 10, PLAIN_ROUND));
    lines.push(`- lock directory: ${loopsText(await plain(["-d", dir]), 400)}`);
    for (const { engine, args } of running) lines.push(`- ${engine.name}, loopback: ${loopsText(await plain(args), 400)}`);
    await cleanUp();
    const why = netnsMissing();
    for (const { engine } of running) {
      if (why) {
        lines.push(`- ${engine.name}, across 2 simulated hosts: skipped (${why})`);
        continue;
      }
      const hosts = createHosts(["db", "a", "b"]);
      const far = await engine.start({ netns: hosts.db!.netns, host: hosts.db!.address });
      const across = await repeated(() => handoffs(wl, ["--backend", far.url(engine.params)], [hosts.a, hosts.b, hosts.a, hosts.b], 10));
      lines.push(`- ${engine.name}, across 2 simulated hosts (network namespaces; the server on a third): ${loopsText(across, ideal)}`);
      await cleanUp();
    }
    lines.push("");
    return lines;
  } finally {
    await cleanUp();
  }
}

if (import.meta.main) {
  const dir = mkdtempSync(join(tmpdir(), "waitlock-bench-"));
  try {
    console.log((await networkSection(join(import.meta.dir, "../dist/waitlock"), dir)).join("\n"));
  } finally {
    await cleanUp();
    cleanUpRun();
    rmSync(dir, { recursive: true, force: true });
  }
}
