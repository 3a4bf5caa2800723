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
  return { until, history: () => t.screen(true), type: t.type, resize: t.resize };
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
}, 20_000);

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
}, 20_000);

test.skipIf(!tmux)("no status line with -q or -v, nor when stderr is not a terminal", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "db", "--exec", "sleep", "30"]);
  await waitFor("the holder", () => held(d, "db"));
  // All three at once: each must wait past the first second in which the line would show.
  const [quiet, verbose, piped] = await Promise.all([
    terminal(d, `'${BIN}' -q -d '${d}' -t 1.5 db --exec true`).then((t) => t.until("the quiet waiter to give up", (l) => l.includes("[exit 2]"))),
    terminal(d, `'${BIN}' -v -d '${d}' -t 1.5 db --exec true`).then(async (t) => {
      await t.until("the verbose waiter to give up", (l) => l.includes("[exit 2]"));
      return t.history();
    }),
    wl(["-d", d, "-t", "1.5", "db", "--exec", "true"]),
  ]);
  expect(quiet.filter((l) => l !== "")).toEqual(["[exit 2]"]);
  expect(verbose.some((l) => l.includes("DEBUG: "))).toBe(true);
  expect(verbose.filter((l) => l.includes("waitlock: waiting"))).toEqual([]);
  expect(piped.code).toBe(2);
  expect(piped.stderr).toMatch(/^waitlock: db: timed out after 1\.5 seconds; held by PID \d+ \(sleep 30\)\n$/);
}, 20_000);

test.skipIf(!tmux)("a waiter in the background draws nothing over the shell; brought to the foreground, it shows the line", async () => {
  const d = lockDir();
  const holder = start([BIN, "-d", d, "db", "--exec", "sleep", "30"]);
  await waitFor("the holder", () => held(d, "db"));
  // An interactive shell, so that `&` and `fg` move the waiter between process groups.
  const screen = await terminal(d, "PS1='$ ' bash --norc --noprofile -i");
  await screen.until("the prompt", (l) => l[0] === "$");
  await screen.type(`'${BIN}' -d '${d}' db --exec echo got-it &`);
  // A quiet waiter that started later and gives up after 2 s: the one in the background
  // has waited longer than the status line's first second by then.
  await screen.type(`'${BIN}' -q -d '${d}' -t 2 db --exec true; echo "[exit $?]"`);
  const quiet = await screen.until("the quiet waiter to give up", (l) => l.includes("[exit 2]"));
  expect(quiet.filter((l) => l.includes("waitlock:"))).toEqual([]);
  await screen.type("fg");
  const line = await screen.until("the line, once in the foreground", (l) => l.some((x) => STATUS.test(x)));
  expect(STATUS.exec(line.find((x) => STATUS.test(x))!)![6]).toBe(String(holder.pid));
  holder.kill("SIGTERM");
  const after = await screen.until("the waiter's command", (l) => l.includes("got-it"));
  expect(after.filter((l) => l.includes("waitlock:"))).toEqual([]);
}, 20_000);

test.skipIf(!tmux)("a resized terminal gets the line redrawn to its new width at once, with nothing of the old one left wrapped", async () => {
  const d = lockDir();
  const holder = start([BIN, "-d", d, "db", "--exec", "sleep", "30"]);
  await waitFor("the holder", () => held(d, "db"));
  // Output before the wait fills the 10-row window: the line sits on its last row, as after
  // any work in a terminal. (Near the top of an empty screen, tmux moves the rows it rewraps
  // the line onto into its history, out of reach; README "Notes".)
  const screen = await terminal(d, `seq 1 20; '${BIN}' -d '${d}' db --exec echo got-it`);
  await screen.until("the status line", (l) => l.some((x) => STATUS.test(x)));
  const before = Array.from({ length: 20 }, (_, i) => String(i + 1));
  // Everything the terminal holds, scrolled off or not, but for blank lines.
  const everything = async () => (await screen.history()).filter((l) => l !== "");
  const statusOnly = (lines: string[], ok: (status: string) => boolean) =>
    lines.length === 21 && Bun.deepEquals(lines.slice(0, 20), before) && lines[20]!.startsWith("waitlock: waiting ") && ok(lines[20]!);

  // Narrower than the line: it is cut to the new width (and ends in "..."), and the rows the
  // terminal rewrapped the old one onto are gone, well before the next second's redraw.
  await screen.resize(50);
  await waitFor("the line cut to 50 columns, alone", async () => statusOnly(await everything(), (l) => l.length === 49 && l.endsWith("...")), 900).catch(async (e) => {
    throw new Error(`${(e as Error).message}\n${(await everything()).join("\n")}`);
  });
  await screen.resize(30);
  await waitFor("the line cut to 30 columns, alone", async () => statusOnly(await everything(), (l) => l.length === 29), 900);
  // Wider again: the whole line, once.
  await screen.resize(120);
  await waitFor("the whole line again", async () => statusOnly(await everything(), (l) => STATUS.test(l)), 900);

  holder.kill("SIGTERM");
  await screen.until("the command to run", (l) => l.includes("[exit 0]"));
  expect(await everything()).toEqual([...before, "got-it", "[exit 0]"]);
}, 20_000);
