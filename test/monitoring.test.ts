// Monitoring: waiters in --list (every format), -f prometheus read by real parsers, -o FILE
// replaced atomically, and --list --watch on a real terminal and off one. Real holders and
// waiters of the compiled binary; the kernel's queue decides who waits where.
import { describe, expect, test } from "bun:test";
import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { BIN, inotifyWatches, lockDir, queuedInKernel, run, start, startSh, waitFor, wl, type ListedRow } from "./helpers";
import { needs as needsTool, tool } from "./needs";
import { hasTmux, needs, tmuxSession } from "./terminal";

const ROOT = join(import.meta.dir, "..");
const uid = process.getuid!();

/** A holder of `name` (its waitlock's PID is `pid`) until its stdin is closed. */
async function holder(d: string, name: string, extra: string[] = [], marker = name) {
  const p = startSh(`exec "$WL" -d "$D" ${extra.join(" ")} ${name} --exec sh -c 'touch "$D/held-${marker}"; read -r _'`, d);
  await waitFor(`the holder of ${name}`, () => existsSync(`${d}/held-${marker}`));
  return p;
}

/**
 * `count` waiters for `name` (of `slots` slots), started one after another, each once it
 * waits: in the kernel's queue for the turnstile, or, at the head of a semaphore's queue,
 * on inotify watches of its slot files (a mutex's head is queued for the slot file).
 */
async function queue(d: string, name: string, count: number, slots = 1) {
  const waiters = [];
  for (let i = 0; i < count; i++) {
    const p = start([BIN, "-d", d, "-m", String(slots), name, "--exec", "true", `waiter-${i}`]);
    const head = i === 0 && slots > 1;
    await waitFor(`waiter ${i} waiting`, () => (head ? inotifyWatches(p.pid) >= slots : queuedInKernel(p.pid)));
    waiters.push(p);
  }
  return waiters;
}

const waitingRows = async (d: string, name?: string) => {
  const r = await wl(["-d", d, "--list", "-f", "json", ...(name ? [name] : [])]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as ListedRow[]).filter((row) => row.status === "waiting");
};

/** The waiting PIDs of `name` by position; the positions must run 1, 2, 3, ... */
async function waitingPids(d: string, name: string): Promise<number[]> {
  const rows = await waitingRows(d, name);
  expect(rows.map((r) => r.position)).toEqual(rows.map((_, i) => i + 1));
  return rows.map((r) => r.pid!);
}

describe("--list shows waiters", () => {
  test("in arrival order, position 1 first, with PID, user, command and since when, in every format", async () => {
    const d = lockDir();
    const t0 = Math.floor(Date.now() / 1000);
    const h = await holder(d, "job");
    const pids = (await queue(d, "job", 4)).map((p) => p.pid);
    const t1 = Date.now() / 1000;

    const json = JSON.parse((await wl(["-d", d, "--list", "-f", "json"])).stdout) as ListedRow[];
    expect(json.map((r) => [r.status, r.pid, r.status === "waiting" ? r.position : r.slot])).toEqual([
      ["active", h.pid, 0],
      ...pids.map((pid, i) => ["waiting", pid, i + 1]),
    ]);
    for (const [i, w] of json.slice(1).entries()) {
      expect(Object.keys(w).sort()).toEqual(["command", "descriptor", "file", "hostname", "pid", "position", "status", "uid", "user", "waitingSince"]);
      expect(w).toMatchObject({ descriptor: "job", uid, command: `${BIN} -d ${d} -m 1 job --exec true waiter-${i}` });
      // Each waiter's node in the queue (src/turnstile.ts), named in ticket order.
      expect(w.file).toMatch(new RegExp(`^${d}/job\\.q[0-9a-z]{8}\\.lock$`));
      // When it joined the queue (its node's modification time).
      expect(w.waitingSince!).toBeGreaterThanOrEqual(t0 - 1);
      expect(w.waitingSince!).toBeLessThanOrEqual(t1 + 1);
    }

    const csv = (await wl(["-d", d, "--list", "-f", "csv"])).stdout.trimEnd().split("\n");
    expect(csv[0]).toBe("descriptor,pid,slot,user,acquired,status,command");
    expect(csv[1]).toMatch(new RegExp(`^job,${h.pid},0,[^,]+,\\d+,active,`));
    for (const [i, pid] of pids.entries()) expect(csv[i + 2]).toMatch(new RegExp(`^job,${pid},${i + 1},[^,]+,\\d{10},waiting,.* waiter-${i}$`));

    const fields = (await wl(["-d", d, "--list", "-f", "null"])).stdout.split("\0");
    expect(fields.pop()).toBe("");
    expect(fields).toHaveLength(5 * 7);
    for (const [i, pid] of pids.entries()) {
      const row = fields.slice((i + 1) * 7, (i + 2) * 7);
      expect(row).toEqual(["job", String(pid), String(i + 1), expect.any(String), expect.stringMatching(/^\d{10}$/), "waiting", expect.stringMatching(new RegExp(`waiter-${i}$`))]);
    }

    const human = (await wl(["-d", d, "--list"])).stdout.trimEnd().split("\n");
    expect(human[0]).toMatch(/^DESCRIPTOR\s+SLOT\s+MODE\s+PID\s+OWNER\s+USER\s+ACQUIRED\s+COMMAND$/);
    expect(human[1]).toMatch(new RegExp(`^job\\s+0/1\\s+exclusive\\s+${h.pid}\\s`));
    expect(human[2]).toBe("");
    expect(human[3]).toMatch(/^DESCRIPTOR\s+POSITION\s+PID\s+USER\s+WAITING SINCE\s+COMMAND$/);
    for (const [i, pid] of pids.entries())
      expect(human[4 + i]).toMatch(new RegExp(`^job\\s+${i + 1}\\s+${pid}\\s+\\S+\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+.*waiter-${i}$`));
    expect(human).toHaveLength(8);
  }, 30_000);

  test("a killed waiter is gone from the list at once; the others keep their order, and are served in it", async () => {
    const d = lockDir();
    const h = await holder(d, "job");
    const waiters = await queue(d, "job", 4);
    const pids = waiters.map((p) => p.pid);
    expect(await waitingPids(d, "job")).toEqual(pids);

    // One from the middle of the queue: its request dies with it. The ones behind it are
    // woken by the kernel to queue again (in their order) and may be missing for a moment.
    process.kill(pids[1]!, "SIGKILL");
    await waiters[1]!.exited;
    const now = await waitingPids(d, "job");
    expect(now).not.toContain(pids[1]);
    expect(now).toEqual([pids[0]!, pids[2]!, pids[3]!].filter((p) => now.includes(p)));
    await waitFor("the rest, in order", async () => Bun.deepEquals(await waitingPids(d, "job"), [pids[0], pids[2], pids[3]]));

    // The head (it holds the turnstile, waiting for the slot): the next one moves up.
    process.kill(pids[0]!, "SIGKILL");
    await waiters[0]!.exited;
    expect(await waitingPids(d, "job")).not.toContain(pids[0]);
    await waitFor("the next one at the head", async () => Bun.deepEquals(await waitingPids(d, "job"), [pids[2], pids[3]]));

    (h.stdin as { end(): unknown }).end();
    await h.exited;
    expect([await waiters[2]!.exited, await waiters[3]!.exited]).toEqual([0, 0]);
    expect(await wl(["-d", d, "--list", "-f", "csv"])).toMatchObject({ code: 0, stdout: "descriptor,pid,slot,user,acquired,status,command\n" });
  }, 30_000);

  test("of a semaphore, of one NAME only; with --all, not with --stale-only", async () => {
    const d = lockDir();
    await holder(d, "sem", ["-m", "2"], "a");
    await holder(d, "sem", ["-m", "2"], "b");
    await holder(d, "other");
    const semWaiters = (await queue(d, "sem", 2, 2)).map((p) => p.pid);
    const otherWaiter = (await queue(d, "other", 1))[0]!.pid;

    expect((await waitingRows(d)).map((r) => [r.descriptor, r.position, r.pid])).toEqual([
      ["other", 1, otherWaiter],
      ["sem", 1, semWaiters[0]],
      ["sem", 2, semWaiters[1]],
    ]);
    expect(await waitingPids(d, "sem")).toEqual(semWaiters);
    const all = await wl(["-d", d, "--list", "--all", "-f", "csv"]);
    expect(all.stdout.split("\n").filter((l) => l.includes(",waiting,"))).toHaveLength(3);
    expect((await wl(["-d", d, "--list", "--stale-only", "-f", "csv"])).stdout).toBe("descriptor,pid,slot,user,acquired,status,command\n");
    // The human form of a NAME with waiters: each holder's row, then the queue.
    const human = (await wl(["-d", d, "--list", "sem"])).stdout;
    expect(human.split("\n\n")).toHaveLength(2);
    expect(human.split("\n\n")[1]!.trimEnd().split("\n").slice(1).map((l) => Number(l.split(/\s+/)[2]))).toEqual(semWaiters);
  }, 30_000);
});

describe("--list shows the waiters of --file and --fd locks", () => {
  const withFlock = needsTool(tool("flock"));

  withFlock("a flock(1) holder and waitlock waiters in FIFO order under the file's path, in every format; a killed waiter is gone at once", async () => {
    const d = lockDir();
    const file = join(d, "data");
    await Bun.write(file, "");
    // -o: the lock is flock(1)'s alone (its command does not inherit it), so killing flock(1) frees it.
    const flock = start(["flock", "-o", file, "sleep", "60"]);
    await waitFor("flock(1) to hold the file", () => readFileSync("/proc/locks", "utf8").includes(` ${flock.pid} `));
    // Three waitlocks, one after another, each naming the file its own way: the path, a
    // relative path, a descriptor.
    const commands = [
      () => start([BIN, "-d", d, "--file", file, "--exec", "true"]),
      () => start([BIN, "-d", d, "--file", "./data", "--exec", "true"], { cwd: d }),
      () => start(["sh", "-c", `exec 7<"$1"; exec "$2" -d "$3" --fd 7`, "sh", file, BIN, d]),
    ];
    const waiters = [];
    for (const command of commands) {
      waiters.push(command());
      await waitFor(`waiter ${waiters.length} queued`, async () => (await waitingRows(d)).length === waiters.length);
    }
    const pids = waiters.map((w) => w.pid);

    for (const extra of [[], ["--file", file]]) {
      const json = JSON.parse((await wl(["-d", d, "--list", "-f", "json", ...extra])).stdout) as ListedRow[];
      expect(json.map((r) => [r.descriptor, r.status, r.pid, r.status === "waiting" ? r.position : r.slot])).toEqual([
        [file, "active", flock.pid, 0],
        ...pids.map((pid, i) => [file, "waiting", pid, i + 1]),
      ]);
      // The kernel does not say when flock(1) took the lock: unknown, not the process's start.
      expect(json[0]).toMatchObject({ maxHolders: 1, acquired: null, command: `flock -o ${file} sleep 60` });
      // No record stored: no fingerprint (not the SHA-256 of nothing).
      expect({ format: (json[0] as { format?: unknown }).format, sha256: (json[0] as { sha256?: unknown }).sha256 }).toEqual({ format: null, sha256: null });
    }
    const human = (await wl(["-d", d, "--list"])).stdout.trimEnd().split("\n");
    expect(human[1]).toMatch(new RegExp(`^${file}\\s+0/1\\s+exclusive\\s+${flock.pid}\\s+-\\s+\\S+\\s+-\\s+flock `));
    expect(human.slice(4).map((l) => Number(l.split(/\s+/)[2]))).toEqual(pids);
    const csv = (await wl(["-d", d, "--list", "-f", "csv"])).stdout.trimEnd().split("\n");
    expect(csv.slice(1).map((l) => l.split(",").slice(0, 3).join(","))).toEqual([`${file},${flock.pid},0`, ...pids.map((pid, i) => `${file},${pid},${i + 1}`)]);
    expect(csv[1]!.split(",")[4]).toBe("");
    const prometheus = (await wl(["-d", d, "--list", "-f", "prometheus"])).stdout;
    expect(prometheus).toContain(`waitlock_waiters{lock_dir="${d}",lock="${file}"} 3\n`);
    expect(prometheus).toContain(`waitlock_holders{lock_dir="${d}",lock="${file}"} 1\n`);
    expect(prometheus).not.toContain(`waitlock_oldest_holder_age_seconds{lock_dir="${d}",lock="${file}"}`);

    process.kill(pids[1]!, "SIGKILL");
    await waiters[1]!.exited;
    expect((await waitingRows(d)).map((r) => r.pid)).not.toContain(pids[1]);
    flock.kill();
    expect([await waiters[0]!.exited, await waiters[2]!.exited]).toEqual([0, 0]);
  }, 30_000);

  withFlock("a file no record or open descriptor names is shown by its identity, file@DEV-INO", async () => {
    const d = lockDir();
    const file = join(d, "gone");
    await Bun.write(file, "");
    const { dev, ino } = statSync(file);
    // -o: the lock is flock(1)'s alone (its command does not inherit it), so killing flock(1) frees it.
    const flock = start(["flock", "-o", file, "sleep", "60"]);
    await waitFor("flock(1) to hold the file", () => readFileSync("/proc/locks", "utf8").includes(` ${flock.pid} `));
    const w = start([BIN, "-d", d, "--file", file, "--exec", "true"]);
    await waitFor("the waiter queued", async () => (await waitingRows(d)).length === 1);
    // Removed: every link to it is " (deleted)" now.
    (await import("node:fs")).unlinkSync(file);
    const rows = JSON.parse((await wl(["-d", d, "--list", "-f", "json"])).stdout) as ListedRow[];
    expect(rows.map((r) => [r.descriptor, r.status, r.pid])).toEqual([
      [`file@${dev}-${ino}`, "active", flock.pid],
      [`file@${dev}-${ino}`, "waiting", w.pid],
    ]);
    flock.kill();
    expect(await w.exited).toBe(0);
  }, 30_000);

  test("waiting since is when the waiter joined the queue, not when its process started", async () => {
    const d = lockDir();
    await holder(d, "job");
    const t0 = Date.now() / 1000;
    // exec keeps the process (and its start time): it starts waiting 1.5 s after it started.
    const w = startSh(`sleep 1.5; exec "$WL" -d "$D" job --exec true`, d);
    await waitFor("the waiter queued", async () => (await waitingRows(d)).length === 1);
    const [row] = await waitingRows(d);
    expect(row!.pid).toBe(w.pid);
    expect(row!.waitingSince!).toBeGreaterThanOrEqual(t0 + 1.4);
  }, 30_000);
});

// ------------------------------------------------------------------ -f prometheus

/** Debian's python3-prometheus-client is installed for /usr/bin/python3 (a python3 earlier in PATH may lack it). */
const PYTHON = "/usr/bin/python3";
const hasClient = existsSync(PYTHON) && Bun.spawnSync([PYTHON, "-c", "import prometheus_client.parser"]).exitCode === 0;
const hasPromtool = Bun.which("promtool") !== null;
const client = needs("python3-prometheus-client", hasClient, "-f prometheus read by the official client library's parser");
const promtool = needs("promtool", hasPromtool, "-f prometheus checked by promtool check metrics");
const hasNodeExporter = Bun.which("prometheus-node-exporter") !== null;
const nodeExporter = needs("prometheus-node-exporter", hasNodeExporter, "-o FILE read by node_exporter's textfile collector");

interface Family {
  type: string;
  samples: [Record<string, string>, number][];
}

/** The metric families that prometheus_client.parser finds in `text`; throws what it throws. */
async function parsePrometheus(text: string): Promise<Record<string, Family>> {
  const script = `import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {f.name: {"type": f.type, "samples": [[s.labels, s.value] for s in f.samples]} for f in text_string_to_metric_families(sys.stdin.read())}
print(json.dumps(out))`;
  const r = await run([PYTHON, "-c", script], { stdin: text });
  if (r.code !== 0) throw new Error(`prometheus_client rejects the text: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The value of `family` for lock `name`, or undefined when it has no sample for it. */
const sample = (families: Record<string, Family>, family: string, name: string) =>
  families[family]!.samples.find(([labels]) => labels.lock === name)?.[1];

const FAMILIES = [
  "waitlock_slots",
  "waitlock_held_slots",
  "waitlock_holders",
  "waitlock_waiters",
  "waitlock_oldest_holder_age_seconds",
  "waitlock_oldest_waiter_age_seconds",
  "waitlock_stale_records",
  "waitlock_corrupt_records",
];

describe("-f prometheus", () => {
  test.skipIf(!client)("is read by prometheus_client's parser: holders, waiters, slots, ages and stale records per lock; label values escaped", async () => {
    const base = lockDir();
    // A lock directory whose path needs every escape the format has.
    const d = join(base, 'quote"back\\slash\nnewline');
    mkdirSync(d);
    await holder(d, "sem", ["-m", "3"], "a");
    await holder(d, "sem", ["-m", "3"], "b");
    await holder(d, "mutex");
    await queue(d, "mutex", 2);
    // A stale record: the holder and its command killed before they could clean up.
    const gone = start([BIN, "-d", d, "gone", "--exec", "sh", "-c", 'touch "$0/held-gone"; exec sleep 60', d]);
    await waitFor("the holder of gone", () => existsSync(`${d}/held-gone`));
    const command = (JSON.parse((await wl(["-d", d, "--list", "-f", "json", "gone"])).stdout) as ListedRow[])[0]!.owner!;
    process.kill(gone.pid, "SIGKILL");
    process.kill(command, "SIGKILL");
    await gone.exited;
    await waitFor("the stale record", async () => (await wl(["-d", d, "--list", "--stale-only", "-f", "csv"])).stdout.includes(",stale,"));

    const r = await wl(["-d", d, "--list", "-f", "prometheus"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    const families = await parsePrometheus(r.stdout);
    expect(Object.keys(families)).toEqual(FAMILIES);
    for (const f of Object.values(families)) {
      expect(f.type).toBe("gauge");
      for (const [labels] of f.samples) expect(labels.lock_dir).toBe(d);
    }
    const counts = ["waitlock_slots", "waitlock_held_slots", "waitlock_holders", "waitlock_waiters", "waitlock_stale_records", "waitlock_corrupt_records"];
    expect(counts.map((f) => [f, sample(families, f, "sem")])).toEqual(counts.map((f, i) => [f, [3, 2, 2, 0, 0, 0][i]]));
    // Nobody waits for it: no sample rather than an age of 0.
    expect(sample(families, "waitlock_oldest_waiter_age_seconds", "sem")).toBeUndefined();
    expect(sample(families, "waitlock_slots", "mutex")).toBe(1);
    expect(sample(families, "waitlock_waiters", "mutex")).toBe(2);
    for (const f of ["waitlock_oldest_holder_age_seconds", "waitlock_oldest_waiter_age_seconds"]) {
      expect(sample(families, f, "mutex")).toBeGreaterThanOrEqual(0);
      expect(sample(families, f, "mutex")).toBeLessThan(60);
    }
    expect([sample(families, "waitlock_stale_records", "gone"), sample(families, "waitlock_held_slots", "gone"), sample(families, "waitlock_slots", "gone")]).toEqual([1, 0, undefined]);
  }, 30_000);

  test.skipIf(!client)("the parser check can fail: an unescaped quote in a label value is refused", async () => {
    await expect(parsePrometheus('# TYPE waitlock_waiters gauge\nwaitlock_waiters{lock="a"b"} 1\n')).rejects.toThrow("rejects");
  }, 30_000);

  test.skipIf(!promtool)("passes promtool check metrics (syntax and naming conventions), and promtool can fail", async () => {
    const d = lockDir();
    await holder(d, "job");
    await queue(d, "job", 1);
    const text = (await wl(["-d", d, "--list", "-f", "prometheus"])).stdout;
    expect(await run(["promtool", "check", "metrics"], { stdin: text })).toMatchObject({ code: 0, stdout: "", stderr: "" });
    // An empty directory: HELP and TYPE without samples.
    const empty = (await wl(["-d", lockDir(), "--list", "-f", "prometheus"])).stdout;
    expect(await run(["promtool", "check", "metrics"], { stdin: empty })).toMatchObject({ code: 0, stdout: "", stderr: "" });
    // The same lint on a name against the conventions.
    const bad = await run(["promtool", "check", "metrics"], { stdin: "# HELP waitlock_age_ms Age.\n# TYPE waitlock_age_ms gauge\nwaitlock_age_ms 1\n" });
    expect(bad.code).not.toBe(0);
  }, 30_000);

  test.skipIf(!nodeExporter)("--watch -o FILE feeds node_exporter's textfile collector, which serves the metrics as they change", async () => {
    const d = lockDir();
    const textfiles = join(d, "textfile");
    mkdirSync(textfiles);
    const h = await holder(d, "job");
    await queue(d, "job", 1);
    start([BIN, "-d", d, "--list", "-f", "prometheus", "--watch", "0.2", "-o", join(textfiles, "waitlock.prom")]);
    // A port nobody listens on, on the loopback only.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    start(["prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile", `--collector.textfile.directory=${textfiles}`, `--web.listen-address=127.0.0.1:${port}`]);
    const scrape = async () => {
      try {
        return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      } catch {
        return "";
      }
    };
    // node_exporter writes labels in name order.
    const series = (family: string, value: number) => `${family}{lock="job",lock_dir="${d}"} ${value}\n`;
    await waitFor("the waiter in node_exporter's metrics", async () => (await scrape()).includes(series("waitlock_waiters", 1)));
    const metrics = await scrape();
    expect(metrics).toContain(series("waitlock_held_slots", 1));
    expect(metrics).toContain("node_textfile_scrape_error 0\n");
    expect(metrics).toContain("# TYPE waitlock_oldest_waiter_age_seconds gauge\n");
    (h.stdin as { end(): unknown }).end();
    await waitFor("the lock free in node_exporter's metrics", async () => {
      const now = await scrape();
      return now.includes(series("waitlock_held_slots", 0)) || !now.includes('lock="job"');
    });
  }, 30_000);

  test("--all and --stale-only do not apply (stale records are counted anyway)", async () => {
    const r = await wl(["-d", lockDir(), "--list", "-f", "prometheus", "--all"]);
    expect(r).toMatchObject({ code: 3, stderr: expect.stringContaining("--all") });
  }, 30_000);
});

// ------------------------------------------------------------------ -o FILE

describe("-o FILE", () => {
  test("replaces FILE by rename: the listing as stdout has it, a new inode, no temporary file left", async () => {
    const d = lockDir();
    await holder(d, "job");
    const out = join(d, "out", "waitlock.prom");
    mkdirSync(join(d, "out"));
    expect(await wl(["-d", d, "--list", "-f", "csv", "-o", out])).toMatchObject({ code: 0, stdout: "", stderr: "" });
    const before = statSync(out);
    // A second name for the first file: a rename leaves it as it was, a write in place would not.
    linkSync(out, join(d, "out", "old"));
    const first = readFileSync(out, "utf8");
    expect(first).toBe((await wl(["-d", d, "--list", "-f", "csv"])).stdout);
    expect(await wl(["-d", d, "--list", "-f", "prometheus", "-o", out])).toMatchObject({ code: 0, stdout: "" });
    expect(statSync(out).ino).not.toBe(before.ino);
    expect(readFileSync(join(d, "out", "old"), "utf8")).toBe(first);
    expect(readFileSync(out, "utf8")).toStartWith("# HELP waitlock_slots ");
    expect(readdirSync(join(d, "out")).sort()).toEqual(["old", "waitlock.prom"]);
  }, 30_000);

  test("a FILE that cannot be written is exit 1 naming it, and leaves nothing behind", async () => {
    const d = lockDir();
    const r = await wl(["-d", d, "--list", "-o", join(d, "missing", "out.txt")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`waitlock: ${join(d, "missing", "out.txt")}: cannot write`);
    // Not root: a directory without write permission. As root that is no obstacle; a
    // directory in place of the file is.
    mkdirSync(join(d, "dir"));
    mkdirSync(join(d, "dir", "out.txt"));
    const r2 = await wl(["-d", d, "--list", "-o", join(d, "dir", "out.txt")]);
    expect(r2.code).toBe(1);
    expect(readdirSync(join(d, "dir"))).toEqual(["out.txt"]);
  }, 30_000);

  test("with --watch, FILE is replaced at every listing and a reader never sees part of one", async () => {
    const d = lockDir();
    // Many slots make a long listing (json: about half a kilobyte each).
    const many = start([process.execPath, join(ROOT, "bench/hold-many.ts"), d, "many", "300"], { stdin: "pipe", stdout: "pipe" });
    const reader = (many.stdout as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toStartWith("ready");
    const out = join(d, "many.json");
    const complete = (text: string) => {
      try {
        return (JSON.parse(text) as unknown[]).length === 300;
      } catch {
        return false;
      }
    };
    const watcher = start([BIN, "-d", d, "--list", "-f", "json", "--watch", "0.1", "-o", out]);
    await waitFor("the first listing", () => existsSync(out));
    const full = readFileSync(out, "utf8");
    // The check can fail: half a listing is not one.
    expect(complete(full.slice(0, full.length / 2))).toBe(false);
    const inodes = new Set<number>();
    let reads = 0;
    await waitFor("five replacements", async () => {
      const text = readFileSync(out, "utf8");
      reads++;
      expect({ reads, complete: complete(text) }).toEqual({ reads, complete: true });
      inodes.add(statSync(out).ino);
      return inodes.size >= 5;
      // (each listing of 300 records, hashed, may take a second or more on a loaded machine)
    }, 25_000);
    process.kill(watcher.pid, "SIGTERM");
    expect(await watcher.exited).toBe(0);
    expect(readdirSync(d).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    (many.stdin as { end(): unknown }).end();
    expect(await many.exited).toBe(0);
  }, 30_000);
});

// ------------------------------------------------------------------ --watch

describe("--list --watch", () => {
  test("off a terminal: one listing after another, each under a line with the time; SIGTERM and SIGINT end it with 0", async () => {
    const d = lockDir();
    const h = await holder(d, "job");
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const p = start([BIN, "-d", d, "--list", "--watch", "0.2"], { stdout: "pipe" });
      let text = "";
      const decoder = new TextDecoder();
      const reading = (async () => {
        for await (const chunk of p.stdout as ReadableStream<Uint8Array>) text += decoder.decode(chunk, { stream: true });
      })();
      const header = new RegExp(`^Every 0\\.2s: waitlock --list in ${d}\\s+1 held, 0 waiting\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`, "gm");
      await waitFor("three listings", () => (text.match(header) ?? []).length >= 3);
      process.kill(p.pid, signal);
      expect(await p.exited).toBe(0);
      await reading;
      const listings = text.trimEnd().split(/\n\n(?=Every )/);
      expect(listings.length).toBeGreaterThanOrEqual(3);
      for (const listing of listings) {
        const lines = listing.split("\n");
        expect(lines[0]).toMatch(header);
        header.lastIndex = 0;
        expect(lines[2]).toMatch(/^DESCRIPTOR\s+SLOT\s+MODE\s+PID\s+OWNER\s+USER\s+ACQUIRED\s+HELD\s+COMMAND$/);
        expect(lines[3]).toMatch(new RegExp(`^job\\s+0/1\\s+exclusive\\s+${h.pid}\\s.*\\s\\d+s\\s+sh -c`));
      }
    }
  }, 30_000);

  needsTool(tool("bash"))("a reader that goes away ends it quietly with 0, as `| head` expects", async () => {
    const d = lockDir();
    const r = await run(["bash", "-c", `set -o pipefail; "$WL" -d "$D" --list --watch 0.1 | head -n 1`], { env: { WL: BIN, D: d } });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toStartWith("Every 0.1s: waitlock --list in ");
  }, 30_000);

  test("a machine format needs -o FILE; SECONDS is the next word only when it is a number", async () => {
    const d = lockDir();
    expect(await wl(["-d", d, "--list", "--watch", "-f", "json"])).toMatchObject({ code: 3, stderr: expect.stringContaining("-o FILE") });
    expect(await wl(["-d", d, "--list", "--watch", "0.01"])).toMatchObject({ code: 3, stderr: expect.stringContaining("at least 0.1 seconds") });
  }, 30_000);

  const tmux = needs("tmux", hasTmux);
  test.skipIf(!tmux)("on a terminal: redrawn in place, a holder and its waiter appear and disappear; Ctrl-C and SIGTERM give the screen back, exit 0", async () => {
    const d = lockDir();
    const term = tmuxSession(d, 120);
    await term.start(`"${BIN}" -d "${d}" --list --watch 0.2`);
    await waitFor("the empty view", async () => (await term.screen()).some((l) => l.startsWith("no locks held")));
    expect(await term.info("#{alternate_on} #{cursor_flag}")).toBe("1 0");

    const h = await holder(d, "shown");
    const [w] = await queue(d, "shown", 1);
    const holderRow = new RegExp(`^shown\\s+0/1\\s+exclusive\\s+${h.pid}\\s.*\\s\\d+s\\s+sh -c`);
    const waiterRow = new RegExp(`^shown\\s+1\\s+${w!.pid}\\s.*\\s\\d+s\\s+${BIN}`);
    await waitFor("the holder and the waiter on screen", async () => {
      const screen = await term.screen();
      return screen.some((l) => holderRow.test(l)) && screen.some((l) => waiterRow.test(l));
    });
    const screen = await term.screen();
    // Drawn in place: one view, its title on the first line, nothing scrolled off.
    expect(screen[0]).toMatch(/^Every 0\.2s: waitlock --list in .*1 held, 1 waiting/);
    expect((await term.screen(true)).filter((l) => l.startsWith("Every "))).toHaveLength(1);

    (h.stdin as { end(): unknown }).end();
    expect(await w!.exited).toBe(0);
    await waitFor("both gone", async () => (await term.screen()).some((l) => l.startsWith("no locks held")));

    await term.press("C-c");
    await waitFor("exit 0", async () => (await term.screen()).includes("[exit 0]"));
    // The shell's screen again, with its cursor: nothing of the view left on it.
    expect(await term.info("#{alternate_on} #{cursor_flag}")).toBe("0 1");
    expect((await term.screen()).filter((l) => l.startsWith("Every "))).toEqual([]);
    await term.kill();

    const term2 = tmuxSession(d, 120);
    await term2.start(`"${BIN}" -d "${d}" --list --watch 0.2`);
    await waitFor("the view", async () => (await term2.screen()).some((l) => l.startsWith("Every ")));
    const shell = await term2.panePid();
    const watcher = Number(readFileSync(`/proc/${shell}/task/${shell}/children`, "utf8").trim().split(" ")[0]);
    process.kill(watcher, "SIGTERM");
    await waitFor("exit 0", async () => (await term2.screen()).includes("[exit 0]"));
    expect(await term2.info("#{alternate_on} #{cursor_flag}")).toBe("0 1");
    await term2.kill();
  }, 30_000);
});
