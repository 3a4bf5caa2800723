// --exec hands the command the caller's process state (descriptors, limits, signal
// dispositions, umask, directory), and each signal meant for it reaches it exactly once,
// however it was sent: to waitlock, to waitlock's process group, or by the terminal.
import { expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { BIN, alive, held, lockDir, needs, queuedInKernel, run, sh, start, startSh, tool, waitFor } from "./helpers";

/** Signals as /proc/PID/status shows them: bit (n - 1) of a hex mask. */
const signalsIn = (mask: string) => {
  const bits = BigInt(`0x${mask}`);
  const out: number[] = [];
  for (let n = 1; n <= 64; n++) if ((bits >> BigInt(n - 1)) & 1n) out.push(n);
  return out;
};

/** Field `i` (0-based, after the command name) of /proc/PID/stat: 0 state, 1 parent, 2 process group, 5 the terminal's foreground group. */
const statField = (pid: number, i: number) => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[i]!;

test("every descriptor the caller passed reaches the command, and the locked one as WAITLOCK_FD", async () => {
  const d = lockDir();
  writeFileSync(`${d}/in`, "from fd 7\n");
  const r = await sh(
    `exec 5>"$D/log" 7<"$D/in"; "$WL" -d "$D" x --exec sh -c 'echo hi >&5; cat <&7; readlink "/proc/$$/fd/$WAITLOCK_FD"; ls -l "/proc/$$/fd" | grep -c anon_inode; true'; exit $?`,
    d,
  );
  expect(r).toMatchObject({ code: 0, stderr: "" });
  expect(readFileSync(`${d}/log`, "utf8")).toBe("hi\n");
  // The runtime's own event loop (an epoll instance, an eventfd) stays behind.
  expect(r.stdout).toBe(`from fd 7\n${d}/x.slot0.lock\n0\n`);
});

test("the command has the caller's soft limit on descriptors, not the one the runtime raised its own to", async () => {
  const d = lockDir();
  const hard = Number(/^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"))?.[1] ?? "Infinity");
  const soft = Math.min(512, hard - 1);
  const r = await sh(`ulimit -Sn ${soft}; "$WL" -d "$D" x --exec sh -c 'ulimit -Sn; ulimit -Hn'; exit $?`, d);
  expect(r).toMatchObject({ code: 0, stdout: `${soft}\n${Number.isFinite(hard) ? hard : "unlimited"}\n` });
});

test("signals the caller ignores stay ignored; every other one, the runtime's SIGPIPE included, is at its default", async () => {
  const d = lockDir();
  const mask = async (setup: string) => {
    const r = await sh(`${setup} "$WL" -d "$D" x --exec sh -c 'grep SigIgn /proc/$$/status'; exit $?`, d);
    expect(r.code).toBe(0);
    return signalsIn(r.stdout.trim().split(/\s+/)[1]!);
  };
  expect(await mask("")).toEqual([]);
  expect(await mask("trap '' HUP INT USR2;")).toEqual([1, 2, 12]);
  // An ignored SIGTERM is not forwarded either: waitlock ignores it as the command does.
  const p = start(["/bin/sh", "-c", `trap '' TERM; exec "$0" -d "$1" y --exec sh -c 'touch "$0/ready"; while :; do sleep 0.02; done' "$1"`, BIN, d]);
  await waitFor("the command", () => existsSync(`${d}/ready`));
  process.kill(p.pid, "SIGTERM");
  process.kill(p.pid, "SIGUSR1");
  expect(await p.exited).toBe(128 + 10);
});

needs(tool("python3"))("the command has the caller's signal mask (which the runtime clears for itself)", async () => {
  const d = lockDir();
  const block = `import os, signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGWINCH}); os.execv(sys.argv[1], sys.argv[1:])`;
  const r = await run(["python3", "-c", block, BIN, "-d", d, "x", "--exec", "grep", "SigBlk", "/proc/self/status"]);
  expect(r.code).toBe(0);
  expect(signalsIn(r.stdout.trim().split(/\s+/)[1]!)).toEqual([10, 28]);
});

test("umask and working directory are the caller's", async () => {
  const d = lockDir();
  const r = await sh(`umask 027; cd "$D"; "$WL" -d "$D" x --exec sh -c 'umask; pwd'; exit $?`, d);
  expect(r).toMatchObject({ code: 0, stdout: `0027\n${d}\n` });
});

/**
 * Starts `waitlock --exec` with a command that logs, one line each, every SIGINT and SIGTERM it
 * gets, and SIGUSR1 when it exits on it. A line is written for each delivery: the command
 * waits in `wait`, which each signal interrupts.
 */
async function counting(d: string) {
  const script = `trap 'echo INT >> "$0/log"' INT; trap 'echo TERM >> "$0/log"' TERM; trap 'echo USR1 >> "$0/log"; exit 0' USR1
    echo $$ > "$0/pid"; while :; do sleep 1 & wait $!; done`;
  const p = start([BIN, "-d", d, "x", "--exec", "sh", "-c", script, d]);
  await waitFor("the command", () => existsSync(`${d}/pid`) && readFileSync(`${d}/pid`, "utf8").endsWith("\n"));
  const lines = () => (existsSync(`${d}/log`) ? readFileSync(`${d}/log`, "utf8").trim().split("\n") : []);
  return {
    waitlock: p,
    command: Number(readFileSync(`${d}/pid`, "utf8")),
    lines,
    /** Sends a signal, then waits until the command has logged one line more. */
    async send(to: number, signal: NodeJS.Signals) {
      const before = lines().length;
      process.kill(to, signal);
      await waitFor(`${signal} to be logged`, () => lines().length > before);
    },
  };
}

test("a signal sent to waitlock's process group, or to waitlock, reaches the command exactly once", async () => {
  const d = lockDir();
  const c = await counting(d);
  // The command leads a group of its own: the group's signals reach waitlock alone.
  expect(Number(statField(c.command, 2))).toBe(c.command);
  expect(Number(statField(c.waitlock.pid, 2))).toBe(c.waitlock.pid);
  await c.send(-c.waitlock.pid, "SIGINT");
  await c.send(-c.waitlock.pid, "SIGTERM");
  await c.send(c.waitlock.pid, "SIGINT");
  await c.send(c.waitlock.pid, "SIGTERM");
  // SIGUSR1 comes last and is forwarded after anything sent before it: a duplicate would be
  // logged by now.
  await c.send(c.waitlock.pid, "SIGUSR1");
  expect(await c.waitlock.exited).toBe(0);
  expect(c.lines()).toEqual(["INT", "TERM", "INT", "TERM", "USR1"]);
});

// --exec makes its command ready before it waits (src/child.ts prepareCommand), but handles
// the signals it forwards only from the moment the command starts.
test("a waiting --exec ends by each signal it would forward as it would without waitlock; SIGCHLD and SIGCONT leave it waiting", async () => {
  const d = lockDir();
  const holder = startSh(`exec "$WL" -d "$D" k --exec sh -c 'read -r _'`, d);
  await waitFor("the holder", () => held(d, "k"));
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const) {
    const waiter = start([BIN, "-d", d, "k", "--exec", "true"]);
    await waitFor(`the waiter for ${signal} queued`, () => queuedInKernel(waiter.pid));
    waiter.kill(signal);
    await waiter.exited;
    expect([signal, waiter.signalCode]).toEqual([signal, signal]);
  }
  const waiter = start([BIN, "-d", d, "k", "--exec", "true"]);
  await waitFor("the last waiter queued", () => queuedInKernel(waiter.pid));
  waiter.kill("SIGCHLD");
  waiter.kill("SIGCONT");
  holder.stdin!.end();
  expect(await waiter.exited).toBe(0);
});

test("negative control: the counting command logs every delivery, two signals in a row as two lines", async () => {
  const d = lockDir();
  const c = await counting(d);
  await c.send(c.command, "SIGINT");
  await c.send(c.command, "SIGINT");
  await c.send(c.waitlock.pid, "SIGUSR1");
  expect(await c.waitlock.exited).toBe(0);
  expect(c.lines()).toEqual(["INT", "INT", "USR1"]);
});

/**
 * An interactive bash with job control on a pseudo-terminal (test/fixtures/terminal.py);
 * `type` writes to the terminal as a keyboard would, `until` waits for what it shows.
 */
function terminal(d: string) {
  const p = start(["python3", `${import.meta.dir}/fixtures/terminal.py`, "bash", "--norc", "--noprofile", "-i"], {
    stdin: "pipe",
    stdout: "pipe",
    env: { WL: BIN, D: d, PS1: "$ ", TERM: "dumb" },
  });
  let shown = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of p.stdout as ReadableStream<Uint8Array>) shown += decoder.decode(chunk, { stream: true });
  })();
  return {
    p,
    get shown() {
      return shown;
    },
    type: (keys: string) => (p.stdin as { write(s: string): void; flush(): void }).write(keys),
    until: (text: string) => waitFor(`the terminal to show ${JSON.stringify(text)}`, () => shown.includes(text)),
    reading,
  };
}

needs(tool("python3"), tool("bash"))("^C at the terminal reaches the command once; ^Z, bg, kill -TSTP %1 and fg work on the job, and the shell keeps its terminal", async () => {
  const d = lockDir();
  writeFileSync(
    `${d}/cmd`,
    `trap 'echo INT >> "$D/log"' INT; trap 'echo USR1 >> "$D/log"; exit 0' USR1
     echo $$ > "$D/pid"; while :; do sleep 1 & wait $!; done\n`,
  );
  const t = terminal(d);
  const lines = () => (existsSync(`${d}/log`) ? readFileSync(`${d}/log`, "utf8").trim().split("\n") : []);
  t.type(`"$WL" -d "$D" x --exec sh "$D/cmd"\n`);
  await waitFor("the command", () => existsSync(`${d}/pid`) && readFileSync(`${d}/pid`, "utf8").endsWith("\n"));
  const command = Number(readFileSync(`${d}/pid`, "utf8"));
  const waitlock = Number(statField(command, 1));
  // The terminal's foreground group is the command's, not waitlock's: ^C cannot reach
  // waitlock, so nothing is forwarded on top of what the terminal sends.
  await waitFor("the command to have the terminal", () => Number(statField(command, 5)) === command);
  expect(Number(statField(waitlock, 2))).not.toBe(command);
  t.type("\x03");
  await waitFor("SIGINT to be logged", () => lines().length === 1);

  t.type("\x1a");
  await t.until("Stopped");
  await waitFor("the command to be stopped", () => statField(command, 0) === "T");
  expect(statField(waitlock, 0)).toBe("T");
  t.type("echo prompt-$((6 * 7))\n");
  await t.until("prompt-42");
  // bg: both run again, the shell keeps the terminal; a stop sent to the job stops both.
  t.type("bg\n");
  await waitFor("the job to run in the background", () => statField(command, 0) !== "T" && statField(waitlock, 0) !== "T");
  t.type("kill -TSTP %1\n");
  await waitFor("the job to be stopped", () => statField(command, 0) === "T" && statField(waitlock, 0) === "T");
  t.type("fg\n");
  await waitFor("the job to run again", () => statField(command, 0) !== "T" && statField(waitlock, 0) !== "T");

  await waitFor("the command to have the terminal again", () => Number(statField(command, 5)) === command);
  process.kill(waitlock, "SIGUSR1");
  await waitFor("SIGUSR1 to be logged", () => lines().includes("USR1"));
  t.type("echo status-$?\n");
  await t.until("status-0");
  expect(lines()).toEqual(["INT", "USR1"]);
  t.type("exit\n");
  expect(await t.p.exited).toBe(0);
  await t.reading;
  expect(alive(command)).toBe(false);
});

needs(tool("python3"), tool("bash"))("the command has the terminal: it reads what is typed and may change its modes at once", async () => {
  const d = lockDir();
  const t = terminal(d);
  for (let i = 0; i < 3; i++) {
    // stty at start-up races waitlock's hand-over of the terminal; it must not stop the command.
    t.type(`"$WL" -d "$D" x --exec sh -c 'stty -echo; echo "ready-$((${i} + 100))"; read line; stty echo; echo "got:$line"'\n`);
    await t.until(`ready-${i + 100}`);
    t.type(`secret${i}\n`);
    await t.until(`got:secret${i}`);
  }
  t.type("exit\n");
  expect(await t.p.exited).toBe(0);
  await t.reading;
  // Echo was off while the command read: what was typed is not shown before the command's answer.
  for (let i = 0; i < 3; i++) expect(t.shown).toContain(`ready-${i + 100}\r\ngot:secret${i}\r\n`);
});
