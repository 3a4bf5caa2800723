// --help and the messages about the command line, as a person on a terminal meets them.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { args, kebab } from "../src/options";
import { wl } from "./helpers";
import { hasScript, needs, onTerminal } from "./terminal";
import { BIN } from "./helpers";

const ESC = "\x1b[";
const terminal = needs("script", hasScript);

describe("--help", () => {
  test("fits the terminal: at COLUMNS=80 no line reaches 80 columns, nor at other widths", async () => {
    for (const columns of [80, 70, 100, 200]) {
      const r = await wl(["--help"], { env: { COLUMNS: String(columns) } });
      expect(r.code).toBe(0);
      const width = Math.min(columns, 100);
      const long = r.stdout.split("\n").filter((l) => l.length >= width);
      expect({ columns, long }).toEqual({ columns, long: [] });
    }
    // Without COLUMNS and off a terminal: 80.
    const plain = await wl(["--help"], { env: { COLUMNS: undefined } });
    expect(plain.stdout).toBe((await wl(["--help"], { env: { COLUMNS: "80" } })).stdout);
  });

  test("shows every option of the table by its kebab-case name, with its value as a word, not `=<...>`", async () => {
    const help = (await wl(["--help"], { env: { COLUMNS: "80" } })).stdout;
    for (const key of Object.keys(args)) {
      if (key === "name") continue;
      expect(help).toContain(`--${kebab(key)}`);
    }
    expect(help).toContain("-m, --allow-multiple N ");
    expect(help).toContain("-e, --exec CMD [ARG...] ");
    expect(help).toContain("--one-per-cpu");
    expect(help).not.toContain("=<");
    expect(help).not.toContain("NAME=");
    expect(help).not.toContain("--onePerCPU");
    // The descriptions start in one column, left-aligned names before them.
    const starts = help.split("\n").filter((l) => /^  (-\w, |    )--/.test(l)).map((l) => l.search(/ {2}[A-Z]/));
    expect(new Set(starts.filter((s) => s > 0)).size).toBe(1);
  });

  test("the camelCase spellings still work", async () => {
    for (const spelled of ["--allowMultiple", "--allow-multiple"]) {
      const r = await wl([spelled, "2", "--check", "x", "-d", "/tmp/waitlock-help-test-never-made"]);
      expect(r.stderr).not.toContain("unknown option");
    }
  });

  test("lists every environment variable the program reads or sets", async () => {
    const help = (await wl(["--help"])).stdout;
    const environment = help.slice(help.indexOf("Environment:"));
    const src = join(import.meta.dir, "../src");
    const files = readdirSync(src, { recursive: true }).filter((f) => String(f).endsWith(".ts"));
    const used = new Set(files.flatMap((f) => readFileSync(join(src, String(f)), "utf8").match(/\bWAITLOCK_[A-Z_]*[A-Z]/g) ?? []));
    expect(used.has("WAITLOCK_DESCRIPTOR")).toBe(true);
    for (const v of used) expect({ v, listed: environment.includes(`  ${v} `) }).toEqual({ v, listed: true });
    expect(environment).toContain("NO_COLOR");
  });

  test("is plain off a terminal", async () => {
    expect((await wl(["--help"])).stdout).not.toContain(ESC);
  });

  test.skipIf(!terminal)("is coloured on a terminal, but not with NO_COLOR or TERM=dumb", async () => {
    expect((await onTerminal([BIN, "--help"], { env: { TERM: "xterm" } })).stdout).toContain(`${ESC}1mUsage:`);
    for (const env of [{ NO_COLOR: "1", TERM: "xterm" }, { TERM: "dumb" }]) {
      const r = await onTerminal([BIN, "--help"], { env });
      expect(r.stdout).toContain("Usage:");
      expect({ env, coloured: r.stdout.includes(ESC) }).toEqual({ env, coloured: false });
    }
  });
});

describe("unknown options", () => {
  const cases: [string, string | undefined][] = [
    ["--timout", "--timeout"],
    ["--verbsoe", "--verbose"],
    ["--lsit", "--list"],
    ["--allowmultiple", "--allow-multiple"],
    ["--lock_dir", "--lock-dir"],
    ["--exclude", "--exclude-cpus"],
    ["--stale", "--stale-only"],
    ["--bogus", undefined],
    ["-z", undefined],
  ];
  for (const [flag, near] of cases) {
    test(`${flag}: ${near ? `did you mean ${near}?` : "no guess"}`, async () => {
      const r = await wl([flag, "x"]);
      expect(r.code).toBe(3);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(near ? `waitlock: ${flag}: unknown option; did you mean ${near}?\n` : `waitlock: ${flag}: unknown option (see --help)\n`);
    });
  }
});

describe.skipIf(!terminal)("errors on a terminal", () => {
  test("are red on a terminal, plain with NO_COLOR, TERM=dumb or off a terminal", async () => {
    const line = "waitlock: /proc/version: lock directory is not a directory";
    const coloured = await onTerminal([BIN, "-d", "/proc/version", "x"], { env: { TERM: "xterm" } });
    expect(coloured.code).toBe(6);
    expect(coloured.stdout).toBe(`${ESC}31m${line}${ESC}0m\r\n`);
    for (const env of [{ NO_COLOR: "1", TERM: "xterm" }, { TERM: "dumb" }]) {
      const r = await onTerminal([BIN, "-d", "/proc/version", "x"], { env });
      expect({ env, out: r.stdout }).toEqual({ env, out: `${line}\r\n` });
    }
    const usage = await onTerminal([BIN, "--bogus"], { env: { TERM: "dumb" } });
    expect(usage.stdout).toBe("waitlock: --bogus: unknown option (see --help)\r\n");
    expect((await wl(["-d", "/proc/version", "x"])).stderr).toBe(`${line}\n`);
  });
});
