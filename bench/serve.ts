// The coprocess (`waitlock --serve` through the --shell-init functions) in a bash loop,
// against flock(1) and `waitlock --exec` in the same run, and its memory against plain
// holders. Part of `npm run bench` (bench/run.ts); `bun bench/serve.ts WAITLOCK DIR` runs it
// alone and prints its Markdown.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

interface Memory {
  rss: number;
  pss: number;
}

function memoryOf(pid: number): Memory {
  const kb = (key: string, text: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN);
  return { rss: kb("VmRSS", readFileSync(`/proc/${pid}/status`, "utf8")), pss: kb("Pss", readFileSync(`/proc/${pid}/smaps_rollup`, "utf8")) };
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function bash(script: string, env: Record<string, string> = {}): string {
  const r = Bun.spawnSync(["bash", "-c", script], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`bash failed (${r.exitCode}): ${r.stderr.toString()}`);
  return r.stdout.toString();
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

const ROUNDS = 10;

/** The section's Markdown lines. `wl` is the executable, `dir` a lock directory of its own. */
export async function serveBench(wl: string, dir: string): Promise<string[]> {
  const out: string[] = [];
  out.push("## One process, many locks: the `--serve` coprocess in a bash loop");
  out.push("");
  // Each round times a loop of each kind inside one bash, in alternating order, with bash's
  // own microsecond clock: µs per acquire+release cycle.
  const script = `set -euo pipefail
eval "$("$WL" --shell-init bash)"
export WAITLOCK_DIR="$D"
waitlock_acquire warm; waitlock_release warm
exec 9>"$D/flock.lock"
us() { local t=\${EPOCHREALTIME/./}; echo "$t"; }
coproc_loop() { local t0 t1 i; t0=$(us); for ((i = 0; i < 500; i++)); do waitlock_acquire cycle; waitlock_release cycle; done; t1=$(us); echo "coproc $(( (t1 - t0) / 500 ))"; }
flock_loop() { local t0 t1 i; t0=$(us); for ((i = 0; i < 100; i++)); do flock 9; flock -u 9; done; t1=$(us); echo "flock $(( (t1 - t0) / 100 ))"; }
exec_loop() { local t0 t1 i; t0=$(us); for ((i = 0; i < 40; i++)); do "$WL" cycle-exec --exec true; done; t1=$(us); echo "exec $(( (t1 - t0) / 40 ))"; }
for ((r = 0; r < ${ROUNDS}; r++)); do
  if (( r % 2 )); then exec_loop; flock_loop; coproc_loop; else coproc_loop; flock_loop; exec_loop; fi
done`;
  const per: Record<string, number[]> = { coproc: [], flock: [], exec: [] };
  for (const line of bash(script, { WL: wl, D: dir }).trim().split("\n")) {
    const [kind, us] = line.split(" ");
    per[kind!]!.push(Number(us));
  }
  const coproc = median(per.coproc!);
  const flock = median(per.flock!);
  const exec = median(per.exec!);
  const range = (v: number[]) => `${Math.min(...v)} – ${Math.max(...v)} µs`;
  out.push(`Per acquire+release cycle, µs, median of ${ROUNDS} rounds (bash's \`$EPOCHREALTIME\`; rounds alternate the order):`);
  out.push("");
  out.push("| in a bash loop | per cycle | rounds' range | cycles per round |");
  out.push("|---|---|---|---|");
  out.push(`| \`waitlock_acquire NAME; waitlock_release NAME\` (coprocess) | ${coproc} µs | ${range(per.coproc!)} | 500 |`);
  out.push(`| \`flock 9; flock -u 9\` (flock(1), two processes a cycle) | ${flock} µs | ${range(per.flock!)} | 100 |`);
  out.push(`| \`waitlock NAME --exec true\` | ${exec} µs | ${range(per.exec!)} | 40 |`);
  out.push("");
  const vsFlock = flock / coproc;
  const vsExec = exec / coproc;
  out.push(`**Target: the coprocess ≥ 10 × faster than flock(1)'s cycle** — ${vsFlock.toFixed(1)} ×: ${vsFlock >= 10 ? "met" : "NOT met"}.`);
  out.push(`**Target: ≥ 30 × faster than \`--exec true\`** — ${vsExec.toFixed(1)} ×: ${vsExec >= 30 ? "met" : "NOT met"}.`);
  out.push("");

  // ---- memory: one coprocess holding 100 locks, against 100 plain holders
  const N = 100;
  const ready = join(dir, "mem.ready");
  const holdMany = (body: string) =>
    Bun.spawn(["bash", "-c", `set -euo pipefail\neval "$("$WL" --shell-init bash)"\nexport WAITLOCK_DIR="$D"\n${body}\ntouch "${ready}"; read -r _`], {
      env: { ...process.env, WL: wl, D: dir },
      stdin: "pipe",
      stdout: "ignore",
      stderr: "inherit",
    });
  const listed = () => JSON.parse(Bun.spawnSync([wl, "-d", dir, "--list", "-f", "json"]).stdout.toString()) as { descriptor: string; pid: number }[];
  const co = holdMany(`for ((i = 0; i < ${N}; i++)); do waitlock_acquire "co$i"; done`);
  await until("the coprocess's locks", () => existsSync(ready) && listed().filter((r) => r.descriptor.startsWith("co")).length === N);
  const coPid = listed().find((r) => r.descriptor.startsWith("co"))!.pid;
  await Bun.sleep(300);
  const coMem = memoryOf(coPid);
  const threads = Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${coPid}/status`, "utf8"))?.[1]);
  co.stdin.end();
  await co.exited;
  await until("the coprocess's release", () => listed().length === 0);
  rmSync(ready);
  const plain = holdMany(`for ((i = 0; i < ${N}; i++)); do "$WL" "plain$i"; done`);
  await until("the plain holders", () => listed().filter((r) => r.descriptor.startsWith("plain")).length === N);
  await Bun.sleep(300);
  const holders = [...new Set(listed().map((r) => r.pid))];
  const mems = holders.map(memoryOf);
  const sum = (k: keyof Memory) => mems.reduce((a, m) => a + m[k], 0);
  plain.stdin.end();
  await plain.exited;
  const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
  out.push(`### Memory: ${N} locks held for one bash script`);
  out.push("");
  out.push("| held by | processes | RSS in all | PSS in all |");
  out.push("|---|---|---|---|");
  out.push(`| one coprocess (\`waitlock_acquire\` × ${N}) | 1 (${threads} threads) | ${mb(coMem.rss)} | ${mb(coMem.pss)} |`);
  out.push(`| plain \`waitlock NAME\` × ${N} (a holder process each) | ${holders.length} | ${mb(sum("rss"))} | ${mb(sum("pss"))} |`);
  out.push("");

  // ---- what a wait off the main thread costs: a Worker per pending acquire
  const gate = Bun.spawn([wl, "-d", dir, "gate", "--exec", "sleep", "600"], { stdio: ["ignore", "ignore", "inherit"] });
  await until("the gate", () => listed().some((r) => r.descriptor === "gate"));
  const K = 20;
  const serve = Bun.spawn([wl, "--serve"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = serve.stdout.getReader();
  const decoder = new TextDecoder();
  let answers = "";
  const answered = async (n: number) => {
    while (answers.split("\n").length - 1 < n) answers += decoder.decode((await reader.read()).value, { stream: true });
  };
  serve.stdin.write(`0 acquire -d ${dir} warm\n`);
  serve.stdin.flush();
  await answered(1);
  await Bun.sleep(200);
  const idle = memoryOf(serve.pid);
  // Timed-out waits, one after the other: each starts a thread, waits 50 ms, is interrupted.
  const t0 = performance.now();
  for (let i = 1; i <= K; i++) {
    serve.stdin.write(`${i} acquire -d ${dir} -t 0.05 gate\n`);
    serve.stdin.flush();
    await answered(1 + i);
  }
  const perWait = (performance.now() - t0) / K - 50;
  for (let i = 0; i < K; i++) serve.stdin.write(`p${i} acquire -d ${dir} gate\n`);
  serve.stdin.flush();
  await until(`${K} threads`, () => Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${serve.pid}/status`, "utf8"))?.[1]) >= threads + K);
  await Bun.sleep(300);
  const waiting = memoryOf(serve.pid);
  serve.stdin.end();
  await serve.exited;
  gate.kill();
  await gate.exited;
  out.push(`### A wait off the main thread (a Worker per pending acquire)`);
  out.push("");
  out.push(`- ${K} pending waits add ${mb(waiting.rss - idle.rss)} RSS to the coprocess (${((waiting.rss - idle.rss) / K / 1024).toFixed(2)} MiB each; idle: ${mb(idle.rss)} RSS, ${mb(idle.pss)} PSS).`);
  out.push(`- A timed-out \`-t 0.05\` wait takes ${perWait.toFixed(1)} ms beyond its 50 ms (thread start, the interrupt at the deadline, the answer; mean of ${K}).`);
  out.push("");
  return out;
}

if (import.meta.main) {
  const [wl, dir] = process.argv.slice(2);
  if (!wl || !dir) throw new Error("usage: bun bench/serve.ts WAITLOCK DIR");
  console.log((await serveBench(wl, dir)).join("\n"));
}
