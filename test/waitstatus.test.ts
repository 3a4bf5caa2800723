// The status line of a waiter on a terminal, read off a real terminal's screen (tmux).
import { afterEach, expect, test } from "bun:test";
import { BIN, held, lockDir, start, waitFor, wl } from "./helpers";
import { hasTmux, needs, tmuxSession } from "./terminal";

const tmux = needs("tmux", hasTmux);
const sessions: ReturnType<typeof tmuxSession>[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.kill();
});

/** A terminal 100 columns wide running `cmd`, and a way to wait for its screen. */
async function terminal(dir: string, cmd: string) {
  const t = tmuxSession(dir);
  sessions.push(t);
  await t.start(cmd);
  const until = async (what: string, ok: (lines: string[]) => boolean, ms = 10_000) => {
    let lines: string[] = [];
    await waitFor(what, async () => ok((lines = await t.screen())), ms).catch((e) => {
      throw new Error(`${(e as Error).message}\nscreen:\n${lines.join("\n")}`);
    });
    return lines;
  };
  return { until, history: () => t.screen(true) };
}

const STATUS = /^waitlock: waiting (\d+)s for '(\S+)' slot (\d+)\/(\d+), held (\d+)s by PID (\d+) \((.*)\)$/;

test.skipIf(!tmux)("a waiter on a terminal shows who holds the lock, updates the line, and clears it when it gets the lock", async () => {
  const d = lockDir();
  const holder = start([BIN, "-d", d, "db", "--exec", "sleep", "30"]);
  await waitFor("the holder", () => held(d, "db"));
  const screen = await terminal(d, `'${BIN}' -d '${d}' db --exec echo got-it`);
  const first = await screen.until("the status line", (l) => STATUS.test(l[0]!));
  const [, waited, name, slot, slots, , pid, command] = STATUS.exec(first[0]!)!;
  expect({ name, slot, slots, pid: Number(pid), command }).toEqual({ name: "db", slot: "0", slots: "1", pid: holder.pid, command: "sleep 30" });
  // Updated in place: the same line, a later time, nothing below it.
  await screen.until("the line to count on", (l) => Number(STATUS.exec(l[0]!)?.[1]) > Number(waited));
  expect((await screen.until("one line only", () => true)).slice(1).join("")).toBe("");

  holder.kill("SIGTERM");
  const after = await screen.until("the command to run", (l) => l.includes("[exit 0]"));
  // The command's output starts at the left of the cleared line: nothing of the status is left.
  expect(after.slice(0, 2)).toEqual(["got-it", "[exit 0]"]);
});

test.skipIf(!tmux)("a semaphore's line names the slot of N; a timeout clears the line and names the holder", async () => {
  const d = lockDir();
  const holders = [0, 1].map(() => start([BIN, "-d", d, "-m", "2", "gpu", "--exec", "sleep", "30"]));
  await waitFor("both holders", () => held(d, "gpu", 2));
  const screen = await terminal(d, `'${BIN}' -d '${d}' -m 2 -t 2.5 gpu --exec true`);
  const first = await screen.until("the status line", (l) => STATUS.test(l[0]!));
  const [, , , slot, slots, , pid] = STATUS.exec(first[0]!)!;
  expect({ slot, slots }).toEqual({ slot: "0", slots: "2" });
  expect(holders.map((h) => h.pid)).toContain(Number(pid));
  const after = await screen.until("the timeout", (l) => l.includes("[exit 2]"));
  const pids = holders.map((h) => h.pid).sort((a, b) => a - b);
  const named = /^waitlock: gpu: timed out after 2\.5 seconds; held by PID (\d+) \(sleep 30\) and PID (\d+) \(sleep 30\)$/.exec(after[0]!);
  expect(named && [Number(named[1]), Number(named[2])].sort((a, b) => a - b)).toEqual(pids);
  expect(after[1]).toBe("[exit 2]");
});

test.skipIf(!tmux)("no status line with -q or -v, nor when stderr is not a terminal", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "db", "--exec", "sleep", "30"]);
  await waitFor("the holder", () => held(d, "db"));
  const quiet = await terminal(d, `'${BIN}' -q -d '${d}' -t 1.6 db --exec true`);
  const q = await quiet.until("the quiet waiter to give up", (l) => l.includes("[exit 2]"));
  expect(q.filter((l) => l !== "")).toEqual(["[exit 2]"]);
  const verbose = await terminal(d, `'${BIN}' -v -d '${d}' -t 1.6 db --exec true`);
  await verbose.until("the verbose waiter to give up", (l) => l.includes("[exit 2]"));
  const lines = await verbose.history();
  expect(lines.some((l) => l.includes("DEBUG: "))).toBe(true);
  expect(lines.filter((l) => l.includes("waitlock: waiting"))).toEqual([]);
  const piped = await wl(["-d", d, "-t", "1.6", "db", "--exec", "true"]);
  expect(piped.code).toBe(2);
  expect(piped.stderr).toMatch(/^waitlock: db: timed out after 1\.6 seconds; held by PID \d+ \(sleep 30\)\n$/);
});
