// Options, names, environment and messages, as a user meets them.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { held, listJson, lockDir, queuedInKernel, start, BIN, waitFor, wl } from "./helpers";

const ONE_LINE = /^waitlock: [^\n]+: [^\n]+\n$/;

describe("usage errors: exit 3 and one line naming the offender", () => {
  const cases: [string[], string][] = [
    [["--bogus", "x"], "--bogus"],
    [["-z", "x"], "-z"],
    [["-m", "0", "x"], "-m: '0' is too small: at least 1"],
    [["-m", "two", "x"], "'two'"],
    [["-m", "1.5", "x"], "'1.5'"],
    [["-m"], "-m"],
    [["--timeout", "-1", "x"], "'-1'"],
    [["-t", "soon", "x"], "'soon'"],
    [["-t", "inf", "x"], "'inf'"],
    [["-c", "-x", "-2", "x"], "'-2'"],
    [["-x", "1", "x"], "-x: only makes sense with -c"],
    [["-m", "2", "-c", "x"], "-m and -c: cannot be used together"],
    [["--list", "-f", "xml"], "'xml'"],
    [["--format", "csv", "x"], "--format"],
    [["--all", "x"], "--all"],
    [["--list", "--all", "--stale-only"], "--all and --stale-only"],
    [["--syslog-facility", "bogus", "x"], "'bogus'"],
    [["--check", "--done", "x"], "--check and --done"],
    [["--list", "x", "--exec", "true"], "--list and --exec"],
    [["--owner", "abc", "x"], "'abc'"],
    [["--owner", "1", "x", "--exec", "true"], "--owner"],
    [["x", "--exec"], "--exec"],
    [["x", "y"], "y: unexpected argument"],
    [["bad/name"], "'bad/name'"],
    [["bad name"], "'bad name'"],
    [[".."], "'..'"],
    [["a".repeat(241)], "longer than 240"],
    [["-m", "4097", "x"], "'4097' is too large: at most 4096 (the most slots a lock can have)"],
    [["--check", "-m", "100000000", "x"], "at most 4096"],
    [["--check=yes", "x"], "--check"],
    [["--verbose", "--timeout"], "--timeout"],
    [["-E", "0", "x"], "'0'"],
    [["-E", "256", "x"], "'256'"],
    [["--conflict-exit-code", "2x", "x"], "'2x'"],
    [["--check", "-E", "5", "x"], "-E: only makes sense"],
    [["--check", "--conflict-exit-code", "5", "x"], "--conflict-exit-code: only makes sense"],
  ];
  for (const [args, named] of cases) {
    test(args.join(" ").slice(0, 60), async () => {
      const r = await wl(["-d", lockDir(), ...args]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(ONE_LINE);
      expect(r.stderr).toContain(named);
      expect(r.stdout).toBe("");
    });
  }

  // A long option is named in kebab case however it was spelt, a short one as given.
  const spelt: [string[], string][] = [
    [["--allowMultiple", "0", "x"], "--allow-multiple: '0' is too small"],
    [["--allowMultiple=2", "-c", "x"], "--allow-multiple and -c: cannot be used together"],
    [["--allowMultiple", "2", "--onePerCPU", "x"], "--allow-multiple and --one-per-cpu: cannot be used together"],
    [["--excludeCPUs", "1", "x"], "--exclude-cpus: only makes sense with -c"],
    [["--onePerCPU=yes", "x"], "--one-per-cpu: takes no value"],
    [["--file", "/", "--allowMultiple", "2"], "--allow-multiple: a file is one lock"],
    [["-l", "--check", "x"], "--check and -l: cannot be used together"],
    [["-s", "-c", "x"], "-s: a shared lock has one slot"],
    [["-l", "-fxml"], "-f: 'xml' is not one of"],
  ];
  // Each kind of bad number says what is wrong with it, and the limit when it is too large.
  const numbers: [string[], string][] = [
    [["-m", "99999999999999999999", "x"], "-m: '99999999999999999999' is too large: at most 4096"],
    [["-m", "-3", "x"], "'-3' is negative"],
    [["-m", "0x10", "x"], "'0x10' is hexadecimal"],
    [["-m", "", "x"], "'' is empty"],
    [["-m", "nan", "x"], "'nan' is not a number"],
    [["-m", "1e3", "x"], "'1e3' is in exponent notation"],
    [["-t", "99999999999999999999999", "x"], "-t: '99999999999999999999999' is too large: at most 9007199254740991 seconds"],
    [["-t", "-1", "x"], "'-1' is negative"],
    [["-t", "0x10", "x"], "'0x10' is hexadecimal"],
    [["-t", "NaN", "x"], "'NaN' is not a number"],
    [["-t", "", "x"], "'' is empty"],
    [["-E", "99999999999999999999", "x"], "-E: '99999999999999999999' is too large: at most 255"],
    [["-E", "-1", "x"], "'-1' is negative"],
    [["--fd", "99999999999999999999"], "--fd: '99999999999999999999' is too large: at most 2147483647"],
    [["--fd", "-1"], "'-1' is negative"],
    [["--fd", "0x3"], "'0x3' is hexadecimal"],
    [["--owner", "99999999999999999999", "x"], "--owner: '99999999999999999999' is too large: at most 2147483647"],
    [["-c", "-x", "99999999999999999999", "x"], "-x: '99999999999999999999' is too large: at most 2147483647"],
    [["--list", "--watch", "99999999999999999999"], "--watch: '99999999999999999999' is too large: at most 2147483 seconds"],
    [["--list", "--watch=-2"], "'-2' is negative"],
    [["--list", "--watch="], "'' is empty"],
  ];
  for (const [args, message] of [...spelt, ...numbers]) {
    test(`${args.join(" ").slice(0, 50)}: ${message}`, async () => {
      const r = await wl(["-d", lockDir(), ...args]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(ONE_LINE);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toMatch(/--[a-z]+[A-Z]/);
    });
  }

  test("bad environment values are named too", async () => {
    const d = lockDir();
    const cases = [
      [{ WAITLOCK_TIMEOUT: "later" }, "WAITLOCK_TIMEOUT: 'later' is not a number"],
      [{ WAITLOCK_TIMEOUT: "-5" }, "WAITLOCK_TIMEOUT: '-5' is negative"],
      [{ WAITLOCK_SLOT: "x" }, "WAITLOCK_SLOT: 'x' is not a number"],
      [{ WAITLOCK_SLOT: "3" }, "WAITLOCK_SLOT: slot 3 does not exist: lock has 3 slots (0..2)"],
      [{ WAITLOCK_SLOT: "99999999999999999999" }, "WAITLOCK_SLOT: slot 99999999999999999999 does not exist: lock has 3 slots (0..2)"],
      [{ WAITLOCK_SLOT: "-1" }, "WAITLOCK_SLOT: '-1' is negative"],
      [{ WAITLOCK_SLOT: "0x1" }, "WAITLOCK_SLOT: '0x1' is hexadecimal"],
    ] as const;
    for (const [env, named] of cases) {
      const r = await wl(["-d", d, "-m", "3", "x", "--exec", "true"], { env });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(ONE_LINE);
      expect(r.stderr).toContain(named);
    }
  });

  test("usage errors are printed even with --quiet", async () => {
    const r = await wl(["-q", "-m", "0", "x"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(ONE_LINE);
  });
});

test("--help lists every option and exits 0; --version prints the version", async () => {
  const help = await wl(["--help"]);
  expect(help.code).toBe(0);
  for (const opt of ["--allow-multiple", "--one-per-cpu", "--exclude-cpus", "--timeout", "--check", "--done", "--exec", "--list", "--all", "--stale-only", "--format", "--lock-dir", "--owner", "--quiet", "--verbose", "--syslog", "--syslog-facility", "--help", "--version"])
    expect(help.stdout).toContain(opt);
  expect(help.stdout).not.toContain("\x1b[");
  expect((await wl(["-h"])).stdout).toBe(help.stdout);
  const version = await wl(["--version"]);
  expect(version.code).toBe(0);
  expect(version.stdout).toMatch(/^waitlock \d+\.\d+\.\d+\n$/);
  expect((await wl(["-V"])).stdout).toBe(version.stdout);
});

test("--opt=value and --opt value, short clusters and kebab-case spellings all work", async () => {
  const d = lockDir();
  for (const args of [["--allowMultiple=2"], ["--allowMultiple", "2"], ["--allow-multiple", "2"], ["-m2"], ["-qm", "2"]]) {
    const r = await wl([`--lock-dir=${d}`, ...args, "forms", "--exec", "sh", "-c", 'echo "$WAITLOCK_SLOT"']);
    expect(r).toMatchObject({ code: 0, stdout: "0\n" });
  }
});

test("the longest name and the highest slot of the largest semaphore are stored, not refused later", async () => {
  const d = lockDir();
  const name = "n".repeat(240);
  const r = await wl(["-d", d, "-m", "4096", name, "--exec", "sh", "-c", 'echo "$WAITLOCK_SLOT"; ls "$0" | grep "[.]slot"', d], { env: { WAITLOCK_SLOT: "4095" } });
  expect(r).toMatchObject({ code: 0, stderr: "" });
  expect(r.stdout).toBe(`4095\n${name}.slot4095.lock\n`);
});

describe("names from stdin", () => {
  test("the first line, trimmed", async () => {
    const d = lockDir();
    const r = await wl(["-d", d, "--exec", "sh", "-c", 'echo "$WAITLOCK_DESCRIPTOR"; cat'], { stdin: "  piped.name \nrest of input\n" });
    expect(r).toMatchObject({ code: 0, stdout: "piped.name\nrest of input\n" });
  });
  test("a bad, empty or overlong first line is a usage error", async () => {
    const d = lockDir();
    for (const stdin of ["bad name\n", "\n", "", "x".repeat(300)]) {
      const r = await wl(["-d", d, "--exec", "true"], { stdin });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(ONE_LINE);
    }
  });
  test("works with --check and --done", async () => {
    const d = lockDir();
    expect((await wl(["-d", d, "--check"], { stdin: "free\n" })).code).toBe(0);
    expect((await wl(["-d", d, "--done"], { stdin: "free\n" })).code).toBe(1);
  });
});

describe("timeouts", () => {
  test("-t 0 tries once: exit 1, silently", async () => {
    const d = lockDir();
    start([BIN, "-d", d, "busy", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "busy"));
    const r = await wl(["-d", d, "-t", "0", "busy", "--exec", "true"]);
    expect(r).toMatchObject({ code: 1, stdout: "", stderr: "" });
    expect((await wl(["-d", d, "busy", "--exec", "true"], { env: { WAITLOCK_TIMEOUT: "0" } })).code).toBe(1);
  });

  test("a timeout fires within 0.1 s of its deadline: exit 2 and one line", async () => {
    const d = lockDir();
    const holder = start([BIN, "-d", d, "busy", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "busy"));
    // What a run costs besides waiting: start-up, one attempt, exit.
    const base = (await wl(["-d", d, "-t", "0", "busy", "--exec", "true"])).ms;
    for (const t of [0.3, 0.75]) {
      const r = await wl(["-d", d, "-t", String(t), "busy", "--exec", "true"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`waitlock: busy: timed out after ${t} seconds; held by PID ${holder.pid} (sleep 30)\n`);
      const late = r.ms - base - t * 1000;
      expect(r.ms).toBeGreaterThanOrEqual(t * 1000);
      expect(late).toBeLessThan(100);
    }
    const env = await wl(["-d", d, "busy", "--exec", "true"], { env: { WAITLOCK_TIMEOUT: "0.2" } });
    expect(env.code).toBe(2);
    // The option beats the environment.
    expect((await wl(["-d", d, "-t", "0", "busy", "--exec", "true"], { env: { WAITLOCK_TIMEOUT: "5" } })).code).toBe(1);
  });

  test("no timeout waits as long as it takes", async () => {
    const d = lockDir();
    const holder = start([BIN, "-d", d, "long", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "long"));
    const waiter = start([BIN, "-d", d, "long", "--exec", "true"]);
    await waitFor("the waiter in the kernel's queue", () => queuedInKernel(waiter.pid));
    // Still waiting well past any default a user could mistake for "forever".
    await Bun.sleep(1500);
    expect(existsSync(`/proc/${waiter.pid}`)).toBe(true);
    holder.kill("SIGTERM");
    expect(await waiter.exited).toBe(0);
  });
});

describe("-E, --conflict-exit-code (as flock(1) -E)", () => {
  test("N replaces 1 (busy) and 2 (timed out); the command's own 1 and 2 stay", async () => {
    const d = lockDir();
    expect((await wl(["-d", d, "-E", "200", "x", "--exec", "sh", "-c", "exit 1"])).code).toBe(1);
    expect((await wl(["-d", d, "-E", "200", "x", "--exec", "sh", "-c", "exit 2"])).code).toBe(2);
    start([BIN, "-d", d, "x", "--exec", "sleep", "30"]);
    await waitFor("holder", () => held(d, "x"));
    expect(await wl(["-d", d, "-E", "200", "-t", "0", "x", "--exec", "true"])).toMatchObject({ code: 200, stderr: "" });
    const late = await wl(["-d", d, "-E", "200", "-t", "0.2", "x", "--exec", "true"]);
    expect(late.code).toBe(200);
    expect(late.stderr).toStartWith("waitlock: x: timed out after 0.2 seconds; held by PID ");
    expect((await wl(["-d", d, "--conflict-exit-code=201", "-t", "0", "x"])).code).toBe(201);
    expect((await wl(["-d", d, "-E", "200", "x", "--exec", "true"], { env: { WAITLOCK_TIMEOUT: "0" } })).code).toBe(200);
    // Negative control: without -E the same conflicts are 1 and 2.
    expect((await wl(["-d", d, "-t", "0", "x", "--exec", "true"])).code).toBe(1);
    expect((await wl(["-d", d, "-t", "0.1", "x", "--exec", "true"])).code).toBe(2);
  });

  test("other failures keep their own status", async () => {
    const d = lockDir();
    expect((await wl(["-d", "/proc/version", "-E", "200", "x", "--exec", "true"])).code).toBe(6);
    expect((await wl(["-d", d, "-E", "200", "x", "--exec", "no-such-command-here"])).code).toBe(127);
  });
});

describe("slots: -m, -c, -x and WAITLOCK_SLOT", () => {
  test("-c gives one slot per CPU; -x leaves some out but never all", async () => {
    const d = lockDir();
    const n = cpus().length;
    const slots = async (args: string[]) => {
      const p = start([BIN, "-d", d, ...args, "cpu", "--exec", "sleep", "30"]);
      await waitFor("holder", async () => (await listJson(d)).length === 1);
      const [row] = await listJson(d);
      p.kill("SIGTERM");
      await p.exited;
      return row!.maxHolders;
    };
    expect(await slots(["-c"])).toBe(n);
    expect(await slots(["-c", "-x", "1"])).toBe(Math.max(1, n - 1));
    expect(await slots(["--onePerCPU", "--excludeCPUs", "1000"])).toBe(1);
  });

  test("WAITLOCK_SLOT asks for a slot first, then any free one", async () => {
    const d = lockDir();
    const slot = (env: Record<string, string>) => wl(["-d", d, "-m", "3", "pool", "--exec", "sh", "-c", 'echo "$WAITLOCK_SLOT"'], { env });
    expect((await slot({ WAITLOCK_SLOT: "2" })).stdout).toBe("2\n");
    start([BIN, "-d", d, "-m", "3", "pool", "--exec", "sleep", "30"], { env: { WAITLOCK_SLOT: "2" } });
    await waitFor("slot 2 held", async () => (await listJson(d)).some((r) => r.slot === 2));
    expect((await slot({ WAITLOCK_SLOT: "2" })).stdout).toBe("0\n");
  });
});

describe("environment", () => {
  test("WAITLOCK_DIR chooses the directory, --lock-dir beats it; missing directories are created", async () => {
    const a = `${lockDir()}/deep/er`;
    const b = lockDir();
    expect((await wl(["envdir", "--exec", "true"], { env: { WAITLOCK_DIR: a } })).code).toBe(0);
    expect(existsSync(a)).toBe(true);
    const p = start([BIN, "-d", b, "envdir", "--exec", "sleep", "30"], { env: { WAITLOCK_DIR: a } });
    await waitFor("lock in the --lock-dir", () => existsSync(`${b}/envdir.slot0.lock`));
    expect(readdirSync(a)).toEqual([]);
    p.kill("SIGTERM");
  });

  test("WAITLOCK_DEBUG=1|true|yes and --verbose print debug lines; --quiet silences errors", async () => {
    const d = lockDir();
    for (const v of ["1", "true", "yes"]) {
      const r = await wl(["-d", d, "dbg", "--exec", "true"], { env: { WAITLOCK_DEBUG: v } });
      expect(r.stderr).toMatch(new RegExp(`^waitlock\\[\\d+\\]: DEBUG: lock directory ${d}`));
    }
    expect((await wl(["-d", d, "dbg", "--exec", "true"], { env: { WAITLOCK_DEBUG: "0" } })).stderr).toBe("");
    const v = await wl(["-d", d, "-v", "dbg", "--exec", "true"]);
    expect(v.stderr.trim().split("\n").every((l) => /^waitlock\[\d+\]: DEBUG: /.test(l))).toBe(true);
    expect(v.stderr).toContain("locked");
    expect(v.stderr).toContain("removed");
    const loud = await wl(["-d", "/proc/version", "x", "--exec", "true"]);
    expect(loud.code).toBe(6);
    expect(loud.stderr).toMatch(ONE_LINE);
    const quiet = await wl(["-q", "-d", "/proc/version", "x", "--exec", "true"]);
    expect(quiet).toMatchObject({ code: 6, stderr: "" });
  });

  test("a .env or bunfig.toml in the working directory is not read: same directory, same environment", async () => {
    const project = lockDir();
    const elsewhere = lockDir();
    const d = lockDir();
    writeFileSync(`${project}/.env`, `WAITLOCK_DIR=${elsewhere}\nFROM_DOTENV=leaked\n`);
    writeFileSync(`${project}/bunfig.toml`, "this is [not toml\n");
    const r = await wl(["dotenv", "--exec", "sh", "-c", 'echo "${FROM_DOTENV:-unset} $WAITLOCK_DIR"'], { cwd: project, env: { WAITLOCK_DIR: d } });
    expect(r).toMatchObject({ code: 0, stdout: `unset ${d}\n`, stderr: "" });
    const p = start([BIN, "dotenv", "--exec", "sleep", "30"], { env: { WAITLOCK_DIR: d }, cwd: project });
    await waitFor("the lock in WAITLOCK_DIR", () => existsSync(`${d}/dotenv.slot0.lock`));
    expect(readdirSync(elsewhere)).toEqual([]);
    p.kill("SIGTERM");
  });
});
