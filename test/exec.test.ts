// --exec: the command runs under the lock, gets its signals, and the lock is released on
// every path (invariant 5).
import { expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { BIN, alive, expectWokenByRelease, held, listJson, lockDir, sh, start, startSh, waitFor, wl } from "./helpers";

const lockFiles = (d: string) => readdirSync(d).filter((f) => f.endsWith(".lock"));

test("the command's exit status is waitlock's, and nothing is left behind", async () => {
  const d = lockDir();
  expect((await wl(["-d", d, "x", "--exec", "sh", "-c", "exit 42"])).code).toBe(42);
  expect((await wl(["-d", d, "x", "--exec", "true"])).code).toBe(0);
  expect(lockFiles(d)).toEqual([]);
});

test("argv runs without a shell; one argument with spaces runs through /bin/sh -c", async () => {
  const d = lockDir();
  const argv = await wl(["-d", d, "x", "--exec", "printf", "%s|", "a b", "$HOME", ";"]);
  expect(argv.stdout).toBe("a b|$HOME|;|");
  const line = await wl(["-d", d, "x", "--exec", "echo one; echo two"]);
  expect(line.stdout).toBe("one\ntwo\n");
  const short = await wl(["-d", d, "x", "-e", "echo", "short"]);
  expect(short.stdout).toBe("short\n");
});

test("stdin, stdout and stderr are the command's; WAITLOCK_SLOT and WAITLOCK_DESCRIPTOR are set", async () => {
  const d = lockDir();
  const r = await wl(["-d", d, "-m", "2", "envtest", "--exec", "sh", "-c", 'cat; echo "$WAITLOCK_SLOT $WAITLOCK_DESCRIPTOR" >&2'], { stdin: "piped in\n" });
  expect(r).toMatchObject({ code: 0, stdout: "piped in\n", stderr: "0 envtest\n" });
});

test("the command gets the caller's environment byte for byte, with waitlock's own variables in place of the caller's", async () => {
  const d = lockDir();
  // RAW is not UTF-8 (process.env would hand it on as U+FFFD); the caller's WAITLOCK_* are
  // those a command run by another waitlock has.
  const r = await sh(
    `env "$(printf 'RAW=a\\377b')" WAITLOCK_FD=99 WAITLOCK_TOKEN=t WAITLOCK_DESCRIPTOR=outer WAITLOCK_SLOT= "$WL" -d "$D" x --exec sh -c 'printf %s "$RAW" | od -An -tx1; env | grep "^WAITLOCK_" | sort'`,
    d,
  );
  expect(r).toMatchObject({ code: 0, stderr: "" });
  expect(r.stdout).toMatch(/^ 61 ff 62\nWAITLOCK_DESCRIPTOR=x\nWAITLOCK_FD=\d+\nWAITLOCK_SLOT=0\n$/);
});

test("the command is not found: 127; cannot be executed: 126; the lock is free afterwards", async () => {
  const d = lockDir();
  const missing = await wl(["-d", d, "x", "--exec", "no-such-command-here"]);
  expect(missing.code).toBe(127);
  expect(missing.stderr).toBe("waitlock: no-such-command-here: command not found\n");
  writeFileSync(`${d}/script`, "#!/bin/sh\necho hi\n");
  chmodSync(`${d}/script`, 0o644);
  const noexec = await wl(["-d", d, "x", "--exec", `${d}/script`]);
  expect(noexec.code).toBe(126);
  expect(noexec.stderr).toMatch(/^waitlock: .*script: cannot execute: Permission denied\n$/);
  expect(lockFiles(d)).toEqual([]);
  expect(await held(d, "x")).toBe(false);
});

test("a command killed by a signal gives 128+N and releases the lock", async () => {
  const d = lockDir();
  const r = await wl(["-d", d, "x", "--exec", "sh", "-c", "kill -KILL $$"]);
  expect(r.code).toBe(128 + 9);
  expect(lockFiles(d)).toEqual([]);
});

for (const [signal, number] of [["SIGTERM", 15], ["SIGINT", 2], ["SIGHUP", 1], ["SIGQUIT", 3], ["SIGUSR1", 10], ["SIGUSR2", 12]] as const) {
  test(`${signal} sent to waitlock reaches the command, and the slot is free afterwards`, async () => {
    const d = lockDir();
    const name = signal.slice(3);
    const p = start([BIN, "-d", d, "sig", "--exec", "sh", "-c", `trap 'echo got ${name} > "$0/got"; exit 7' ${name}; touch "$0/ready"; while :; do sleep 0.02; done`, d]);
    await waitFor("command to be ready", () => existsSync(`${d}/ready`));
    process.kill(p.pid, signal);
    expect(await p.exited).toBe(7);
    expect(readFileSync(`${d}/got`, "utf8")).toBe(`got ${name}\n`);
    expect(await held(d, "sig")).toBe(false);
    expect(lockFiles(d)).toEqual([]);
    expect(number).toBeGreaterThan(0);
  });
}

test("a command that does not catch SIGTERM dies of it: exit 143", async () => {
  const d = lockDir();
  const p = start([BIN, "-d", d, "x", "--exec", "sleep", "30"]);
  await waitFor("lock", () => held(d, "x"));
  process.kill(p.pid, "SIGTERM");
  expect(await p.exited).toBe(143);
  expect(await held(d, "x")).toBe(false);
});

test("SIGKILL of waitlock leaves the slot held while the command runs, and free once it ends", async () => {
  const d = lockDir();
  const p = start([BIN, "-d", d, "crit", "--exec", "sh", "-c", 'echo $$ > "$0/pid"; while [ ! -e "$0/stop" ]; do sleep 0.02; done', d]);
  await waitFor("command", () => existsSync(`${d}/pid`) && readFileSync(`${d}/pid`, "utf8").endsWith("\n"));
  const command = Number(readFileSync(`${d}/pid`, "utf8"));
  process.kill(p.pid, "SIGKILL");
  await p.exited;
  expect(alive(command)).toBe(true);
  expect(await held(d, "crit")).toBe(true);
  expect((await wl(["-d", d, "-t", "0", "crit", "--exec", "true"])).code).toBe(1);
  writeFileSync(`${d}/stop`, "");
  await waitFor("release after the command ends", async () => !(await held(d, "crit")), 5000);
});

test("the record names waitlock as holder and the command as owner", async () => {
  const d = lockDir();
  const p = start([BIN, "-d", d, "-m", "2", "rec", "--exec", "sleep", "30"]);
  await waitFor("record", async () => (await listJson(d)).length === 1);
  const [row] = await listJson(d);
  expect(row).toMatchObject({ descriptor: "rec", slot: 0, pid: p.pid, command: "sleep 30", maxHolders: 2, type: "semaphore", status: "active" });
  expect(alive(row!.owner!)).toBe(true);
  expect(readFileSync(`/proc/${row!.owner}/cmdline`, "utf8")).toBe("sleep\x0030\x00");
});

test("a waiter gets the lock when the holder's command ends, woken by the kernel", async () => {
  const d = lockDir();
  const first = startSh(`exec "$WL" -d "$D" hand --exec sh -c 'touch "$D/first"; read -r _'`, d);
  await waitFor("first holder", () => existsSync(`${d}/first`));
  await expectWokenByRelease(["-d", d, "hand", "--exec", "true"], first);
});

test("the command sees its own name as argv[0], not the path it was found at", async () => {
  const d = lockDir();
  const r = await wl(["-d", d, "x", "--exec", "sh", "-c", 'echo "$0"']);
  expect(r.stdout).toBe("sh\n");
});
