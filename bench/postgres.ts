// The PostgreSQL backend's latencies against a throwaway server started from the installed
// binaries (test/servers/postgres.ts): in-process on loopback, and 4 × 10 × 20 ms mutex
// handoffs between processes, on loopback and (as root) across two simulated hosts.
// `bun bench/postgres.ts`; figures are recorded in bench/TUNING.md.
import { join } from "node:path";
import { connectPostgres } from "../src/backends/postgres";
import { cleanUp, cleanUpRun } from "../test/cleanup";
import { createHosts, netnsMissing, type Host } from "../test/hosts";
import { postgresMissing, startPostgres } from "../test/servers/postgres";

const FIXTURE = join(import.meta.dir, "../test/fixtures/backend-lock.ts");
const holder = { host: "bench", pid: process.pid, owner: process.ppid, uid: 0, user: "bench", command: "bench" };

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;
const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(2)} ms, p90 ${quantile(xs, 0.9).toFixed(2)} ms (n=${xs.length})`;

async function timed(n: number, f: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await f();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Wall time of `workers` processes taking NAME `rounds` times each for `holdMs`, from the first grant to the last release. */
async function handoffs(url: string, hosts: (Host | undefined)[], rounds: number, holdMs: number): Promise<number> {
  const procs = hosts.map((host) => {
    const argv = [process.execPath, FIXTURE, "count", JSON.stringify({ url, name: "handoff", rounds, holdMs })];
    return Bun.spawn(host ? host.run(argv) : argv, { stdout: "pipe", stderr: "inherit" });
  });
  const outs = await Promise.all(procs.map(async (p) => ({ code: await p.exited, text: await new Response(p.stdout).text() })));
  const events = outs.map((o) => {
    if (o.code !== 0) throw new Error(`a worker failed (${o.code})`);
    return JSON.parse(o.text.trim().split("\n").at(-1)!) as { first: number; at: number };
  });
  return Math.max(...events.map((e) => e.at)) - Math.min(...events.map((e) => e.first));
}

async function main() {
  const missing = postgresMissing();
  if (missing) throw new Error(missing);
  const s = await startPostgres();
  const b = connectPostgres(s.url());
  await (await b.acquire("warm", { holder })).release();
  console.log(`acquire + release, mutex:       ${fmt(await timed(200, async () => (await b.acquire("m", { holder })).release()))}`);
  console.log(`acquire + release, -t 0:        ${fmt(await timed(200, async () => (await b.acquire("m", { holder, timeout: 0 })).release()))}`);
  console.log(`acquire + release, -m 4:        ${fmt(await timed(200, async () => (await b.acquire("s", { holder, slots: 4 })).release()))}`);
  const busy = await b.acquire("busy", { holder });
  console.log(`-t 0 on a held lock (busy):     ${fmt(await timed(100, () => b.acquire("busy", { holder, timeout: 0 }).catch(() => {})))}`);
  const late = await timed(10, () => b.acquire("busy", { holder, timeout: 0.3 }).catch(() => {}));
  console.log(`-t 0.3 on a held lock, overshoot: ${fmt(late.map((ms) => ms - 300))}`);
  await busy.release();
  const handoff: number[] = [];
  for (let i = 0; i < 50; i++) {
    const first = await b.acquire("h", { holder });
    const waiter = b.acquire("h", { holder });
    await Bun.sleep(5);
    const t0 = performance.now();
    await first.release();
    const second = await waiter;
    handoff.push(performance.now() - t0);
    await second.release();
  }
  console.log(`handoff (release to the waiter's grant, in-process): ${fmt(handoff)}`);
  await b.close();
  const loop = await handoffs(s.url(), [undefined, undefined, undefined, undefined], 10, 20);
  console.log(`4 processes × 10 × 20 ms on loopback: ${loop} ms against the ideal 800 ms (${(loop / 800).toFixed(3)} ×)`);
  await cleanUp();
  if (netnsMissing()) {
    console.log(`across hosts: skipped (${netnsMissing()})`);
    return;
  }
  const hosts = createHosts(["db", "a", "b"]);
  const remote = await startPostgres({ netns: hosts.db!.netns, host: hosts.db!.address });
  const across = await handoffs(remote.url(), [hosts.a, hosts.b, hosts.a, hosts.b], 10, 20);
  console.log(`4 processes × 10 × 20 ms on 2 hosts: ${across} ms against the ideal 800 ms (${(across / 800).toFixed(3)} ×)`);
}

try {
  await main();
} finally {
  await cleanUp();
  cleanUpRun();
}
