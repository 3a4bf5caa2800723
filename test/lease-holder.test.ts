// The holder process of a plain acquire on a network engine (src/modes/lease-holder.ts),
// traced with strace: it must learn that its owner script exited, or while it waits that
// the waitlock it answers is gone, without looking at them again and again (the owner's
// pidfd, watched by a thread of its own; its stdin, a pipe from that waitlock), and still
// let go or withdraw at once. WAITLOCK_POLL=1 is the other side: the holder polls, and the
// trace sees it do so.
import { describe, expect } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dirs } from "./cleanup";
import { BIN, needs, start, stderrOf, tool, waitFor, wl } from "./helpers";
import { postgresMissing, startPostgres } from "./servers/postgres";
import { redisMissing, startRedis } from "./servers/redis";
import { skipping } from "./servers/skip";

/** Why strace cannot trace other processes here, or undefined. */
function straceMissing(): string | undefined {
  const missing = tool("strace");
  if (missing) return missing;
  return Bun.spawnSync(["strace", "-o", "/dev/null", "true"]).exitCode === 0 ? undefined : "strace cannot trace here (ptrace is not permitted)";
}

const ENGINES = [
  { name: "PostgreSQL", missing: postgresMissing, url: async () => (await startPostgres()).url() },
  { name: "Redis", missing: redisMissing, url: async () => (await startRedis()).url() },
];

const T = 30_000;

/** How long a holder that polled would surely have looked (it looked every 0.1 s). */
const QUIET_MS = 1_000;

/**
 * strace attached to every thread of `pid`, writing the calls by which a process can look at
 * another (paths, kill, getppid) and the polls to a file; resolves once it is attached.
 */
async function traced(pid: number) {
  const dir = mkdtempSync(join(tmpdir(), "waitlock-strace-"));
  dirs.push(dir);
  const file = join(dir, "trace");
  const p = start(["strace", "-f", "-e", "trace=%file,getppid,kill,poll,ppoll", "-o", file, "-p", String(pid)]);
  await stderrOf(p).until(/attached/);
  const text = () => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return "";
    }
  };
  return {
    text,
    /** The lines where the holder looked at `owner` (its /proc entry, kill(owner, 0)) or at its parent (getppid). */
    looks: (owner: number) => text().split("\n").filter((l) => l.includes(`"/proc/${owner}/`) || l.includes(`kill(${owner}, 0)`) || l.includes("getppid(")),
    exited: p.exited,
  };
}

/** Does the holder look at anything within QUIET_MS (a poller would have, ten times)? */
const looksWithin = (trace: Awaited<ReturnType<typeof traced>>, owner: number) =>
  waitFor("the holder to look at its owner or its parent", () => trace.looks(owner).length > 0, QUIET_MS).then(
    () => true,
    () => false,
  );

interface Row {
  status: string;
  pid: number;
}

const rows = async (url: string, name: string): Promise<Row[]> => JSON.parse((await wl(["--backend", url, "--list", "-f", "json", name])).stdout);

/** A holder of NAME by `--exec`, until the test ends. */
async function holding(url: string, name: string) {
  start([BIN, "--backend", url, name, "--exec", "sleep", "60"]);
  await waitFor("the --exec holder", async () => (await rows(url, name)).some((r) => r.status === "active"), 15_000);
}

/**
 * A script whose plain acquire of NAME waits behind an `--exec` holder (it reports the
 * waitlock's status on stderr, then sleeps), and the waiting holder process, traced once it
 * has shown that it does not look at the script or at its parent.
 */
async function waitingTraced(url: string, name: string) {
  await holding(url, name);
  const script = start(["/bin/sh", "-c", '"$WL" --backend "$URL" "$NAME"; echo "rc=$?" >&2; exec sleep 60'], { env: { WL: BIN, URL: url, NAME: name } });
  const said = stderrOf(script);
  await waitFor("the request to be queued", async () => (await rows(url, name)).some((r) => r.status === "waiting"), 15_000);
  const waiter = (await rows(url, name)).find((r) => r.status === "waiting")!.pid;
  const trace = await traced(waiter);
  expect(await looksWithin(trace, script.pid)).toBe(false);
  return { script, said, waiter, trace };
}

const strace = needs(straceMissing());

for (const engine of ENGINES) {
  const skip = skipping(`the plain acquire's holder on ${engine.name}`, engine.missing());
  describe.skipIf(skip)(`a plain acquire's holder on ${engine.name}`, () => {
    strace("learns of its script's exit from the pidfd without ever looking at the script, and lets go at once", async () => {
      const url = await engine.url();
      const script = start(["/bin/sh", "-c", '"$WL" --backend "$URL" tied && echo held >&2; read _'], { env: { WL: BIN, URL: url }, stdin: "pipe" });
      // Told of the lock: the holder has made its last check of the waitlock it answered.
      await stderrOf(script).until(/held/, 15_000);
      const holder = (await rows(url, "tied"))[0]!.pid;
      const trace = await traced(holder);
      expect(await looksWithin(trace, script.pid)).toBe(false);
      script.stdin!.end();
      await waitFor("the lock to be free once the script exited", async () => (await wl(["--backend", url, "--check", "tied"])).code === 0, 5_000);
      await trace.exited;
      expect(trace.looks(script.pid)).toEqual([]);
      // Woken by the owner's pidfd (fd 3) becoming readable.
      expect(trace.text()).toMatch(/fd=3, revents=POLLIN/);
    }, T);

    strace("while it waits: the script killed (SIGKILL) is learnt from the pidfd without looking, and the request withdrawn", async () => {
      const url = await engine.url();
      const { script, trace } = await waitingTraced(url, "queued");
      script.kill("SIGKILL");
      await waitFor("the request to be withdrawn", async () => (await rows(url, "queued")).length === 1, 5_000);
      await trace.exited;
      expect(trace.looks(script.pid)).toEqual([]);
      expect(trace.text()).toMatch(/fd=3, revents=POLLIN/);
    }, T);

    strace("while it waits: the waitlock it answers killed (SIGKILL) is learnt from its stdin without looking, and the request withdrawn", async () => {
      const url = await engine.url();
      const { script, said, waiter, trace } = await waitingTraced(url, "asker");
      // The waitlock the script ran: the holder's parent.
      const asker = Number(readFileSync(`/proc/${waiter}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      process.kill(asker, "SIGKILL");
      await waitFor("the request to be withdrawn", async () => (await rows(url, "asker")).length === 1, 5_000);
      await trace.exited;
      expect(trace.looks(script.pid)).toEqual([]);
      await said.until(/rc=/);
      expect(said.text).toEndWith("rc=137\n");
    }, T);

    strace("WAITLOCK_POLL=1: it polls its script instead (the trace sees it look), and still lets go once the script exits", async () => {
      const url = await engine.url();
      const script = start(["/bin/sh", "-c", '"$WL" --backend "$URL" polled && echo held; read _'], { env: { WL: BIN, URL: url, WAITLOCK_POLL: "1" }, stdin: "pipe" });
      await waitFor("the script to hold the lock", async () => (await rows(url, "polled")).some((r) => r.status === "active"), 15_000);
      const trace = await traced((await rows(url, "polled"))[0]!.pid);
      expect(await looksWithin(trace, script.pid)).toBe(true);
      script.stdin!.end();
      await waitFor("the lock to be free once the script exited", async () => (await wl(["--backend", url, "--check", "polled"])).code === 0, 5_000);
      await trace.exited;
      expect(trace.text()).not.toMatch(/revents=POLLIN/);
    }, T);
  });
}
