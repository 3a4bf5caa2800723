// What waitlock says, to a person on a terminal and to a script: --print-slot, --done's
import { writeFileSync } from "node:fs";
import { join } from "node:path";
// answers, busy, an empty --list, and the commands --exec cannot run.
import { describe, expect, test } from "bun:test";
import { BIN, held, lockDir, sh, start, waitFor, wl } from "./helpers";
import { hasScript, needs, onTerminal } from "./terminal";

const terminal = needs("script", hasScript);

describe("--print-slot", () => {
  test("plain acquire prints the slot taken on stdout, and the slot already held when asked again", async () => {
    const d = lockDir();
    const r = await sh(`"$WL" -d "$D" --print-slot -m 3 gpu; WAITLOCK_SLOT=2 "$WL" -d "$D" --print-slot -m 3 gpu2; "$WL" -d "$D" --print-slot -m 3 gpu`, d);
    expect(r).toMatchObject({ code: 0, stdout: "0\n2\n0\n", stderr: "" });
  });

  test("a slot taken in a command substitution is the script's: slot=$(waitlock --print-slot ...)", async () => {
    const d = lockDir();
    const r = await sh(`slot=$("$WL" -d "$D" --print-slot -m 2 pool) && "$WL" -d "$D" --list -f csv | cut -d, -f3 | tail -n +2 && echo "got $slot"`, d);
    expect(r).toMatchObject({ code: 0, stdout: "0\ngot 0\n" });
  });

  test("with --exec, the slot comes first on stdout, before the command's output", async () => {
    const d = lockDir();
    start([BIN, "-d", d, "-m", "2", "pool", "--exec", "sleep", "30"]);
    await waitFor("slot 0 held", async () => (await wl(["-d", d, "--list", "-f", "csv"])).stdout.includes("pool,"));
    const r = await wl(["-d", d, "--print-slot", "-m", "2", "pool", "--exec", "sh", "-c", 'echo "command in $WAITLOCK_SLOT"']);
    expect(r).toMatchObject({ code: 0, stdout: "1\ncommand in 1\n" });
  });

  test("nothing is printed when the lock is not taken; it is a usage error outside acquiring", async () => {
    const d = lockDir();
    start([BIN, "-d", d, "busy", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "busy"));
    expect(await wl(["-d", d, "--print-slot", "-t", "0", "busy", "--exec", "true"])).toMatchObject({ code: 1, stdout: "" });
    const misplaced = await wl(["-d", d, "--print-slot", "--list"]);
    expect(misplaced).toMatchObject({ code: 3, stderr: "waitlock: --print-slot: only makes sense when acquiring\n" });
  });
});

describe("--done says what happened", () => {
  test.skipIf(!terminal)("on a terminal: who was released, or that nobody held the lock; nothing for a script", async () => {
    const d = lockDir();
    const holder = start([BIN, "-d", d, "job", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "job"));
    const done = await onTerminal([BIN, "-d", d, "--done", "job"]);
    expect(done).toMatchObject({ code: 0, stdout: `waitlock: job: released by PID ${holder.pid} (sleep 30) after SIGTERM\r\n` });
    const nobody = await onTerminal([BIN, "-d", d, "--done", "job"]);
    expect(nobody).toMatchObject({ code: 1, stdout: "waitlock: job: nobody holds this lock\r\n" });
    expect(await onTerminal([BIN, "-q", "-d", d, "--done", "job"])).toMatchObject({ code: 1, stdout: "" });
    expect(await wl(["-d", d, "--done", "job"])).toMatchObject({ code: 1, stdout: "", stderr: "" });
  });

  test("-v says it off a terminal too; success stays silent for a script", async () => {
    const d = lockDir();
    const holder = start([BIN, "-d", d, "job", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "job"));
    const verbose = await wl(["-v", "-d", d, "--done", "job"]);
    expect(verbose.code).toBe(0);
    expect(verbose.stderr).toContain(`\nwaitlock: job: released by PID ${holder.pid} (sleep 30) after SIGTERM\n`);
    const again = start([BIN, "-d", d, "job", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "job"));
    expect(await wl(["-d", d, "--done", "job"])).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(await again.exited).toBe(128 + 15);
  });

  test("holders that do not let go are named by PID", async () => {
    const d = lockDir();
    const stubborn = start([BIN, "-d", d, "job", "--exec", "sh", "-c", `trap '' TERM; touch "${d}/ready"; while :; do sleep 1; done`]);
    await waitFor("holder", async () => (await held(d, "job")) && (await Bun.file(`${d}/ready`).exists()));
    const r = await wl(["-d", d, "--done", "-t", "0.3", "job"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^waitlock: job: PID ${stubborn.pid} \\(sh -c .*\\) still holds the lock 0\\.3 seconds after SIGTERM\\n$`));
  });
});

describe("busy", () => {
  test.skipIf(!terminal)("-t 0 names the holder on a terminal or with -v, and stays silent for a script", async () => {
    const d = lockDir();
    const holder = start([BIN, "-d", d, "busy", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "busy"));
    const line = `waitlock: busy: lock is busy; held by PID ${holder.pid} (sleep 30)`;
    expect(await onTerminal([BIN, "-d", d, "-t", "0", "busy", "--exec", "true"])).toMatchObject({ code: 1, stdout: `${line}\r\n` });
    expect(await onTerminal([BIN, "-q", "-d", d, "-t", "0", "busy", "--exec", "true"])).toMatchObject({ code: 1, stdout: "" });
    const verbose = await wl(["-v", "-d", d, "-t", "0", "busy", "--exec", "true"]);
    expect(verbose.stderr.endsWith(`\n${line}\n`)).toBe(true);
    expect(await wl(["-d", d, "-t", "0", "busy", "--exec", "true"])).toMatchObject({ code: 1, stdout: "", stderr: "" });
  });
});

describe("--list with nothing to list", () => {
  test("the human format says so; csv, null and json stay bare", async () => {
    const d = lockDir();
    expect((await wl(["-d", d, "--list"])).stdout).toBe(`no locks held in ${d}\n`);
    expect((await wl(["-d", d, "--list", "db"])).stdout).toBe(`'db' is not held in ${d}\n`);
    // A --file lock is where its file is: the lock directory is not named.
    const file = join(d, "plain.file");
    writeFileSync(file, "");
    expect((await wl(["-d", d, "--list", "--file", file])).stdout).toBe(`${file} is not held\n`);
    expect((await wl(["-d", d, "--list", "--all"])).stdout).toBe(`no locks or records in ${d}\n`);
    expect((await wl(["-d", d, "--list", "--stale-only"])).stdout).toBe(`no stale or corrupt records in ${d}\n`);
    expect((await wl(["-d", d, "--list", "-f", "csv"])).stdout).toBe("descriptor,pid,slot,user,acquired,status,command\n");
    expect((await wl(["-d", d, "--list", "-f", "json"])).stdout).toBe("[]\n");
    expect((await wl(["-d", d, "--list", "-f", "null"])).stdout).toBe("");
  });
});

describe("commands --exec cannot run", () => {
  test("a directory: 126, 'is a directory'", async () => {
    const r = await wl(["-d", lockDir(), "x", "--exec", "/etc"]);
    expect(r).toMatchObject({ code: 126, stderr: "waitlock: /etc: cannot execute: is a directory\n" });
  });

  test("VAR=value cmd: 127, with the way to set a variable", async () => {
    const r = await wl(["-d", lockDir(), "x", "--exec", "VAR=1", "env"]);
    expect(r).toMatchObject({ code: 127, stderr: "waitlock: VAR=1: command not found (to set a variable for the command, use: --exec env VAR=1 ...)\n" });
    const fixed = await wl(["-d", lockDir(), "x", "--exec", "env", "VAR=1", "sh", "-c", 'echo "$VAR"']);
    expect(fixed).toMatchObject({ code: 0, stdout: "1\n" });
  });
});

test("--owner 1 is refused: init never exits, the lock would never be released", async () => {
  const d = lockDir();
  const r = await wl(["-d", d, "--owner", "1", "x"]);
  expect(r).toMatchObject({ code: 3, stderr: "waitlock: --owner: PID 1 (init) never exits: the lock would stay held until 'waitlock --done NAME'\n" });
  expect(await held(d, "x")).toBe(false);
});
