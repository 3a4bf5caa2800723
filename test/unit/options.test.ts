import { describe, expect, test } from "bun:test";
import { UsageError } from "../../src/errors";
import { parseOptions, seconds, tokenize } from "../../src/options";

function contextOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as UsageError).context;
  }
}

function messageOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as UsageError).message;
  }
}

const parse = (argv: string[], env: Record<string, string> = {}) => parseOptions(argv, env);

describe("tokenize", () => {
  test("everything after --exec is the command, options included", () => {
    expect(tokenize(["-t", "5", "n", "--exec", "cmd", "-t", "3", "--exec"])).toEqual({
      values: { timeout: "5" },
      spelled: { timeout: "-t", exec: "--exec" },
      positionals: ["n"],
      command: ["cmd", "-t", "3", "--exec"],
    });
    expect(tokenize(["n", "-e", "ls"]).command).toEqual(["ls"]);
    expect(tokenize(["n", "--exec=ls", "-l"]).command).toEqual(["ls", "-l"]);
  });
  test("-- ends options, so a NAME may start with a dash", () => {
    expect(tokenize(["-q", "--", "-name"])).toEqual({ values: { quiet: true }, spelled: { quiet: "-q" }, positionals: ["-name"] });
  });
  test("short clusters and attached values", () => {
    expect(tokenize(["-qvm3", "-t0.5"]).values).toEqual({ quiet: true, verbose: true, allowMultiple: "3", timeout: "0.5" });
    expect(tokenize(["-t=2", "-m=3"]).values).toEqual({ timeout: "2", allowMultiple: "3" });
  });
  test("unknown options and missing values are usage errors naming the option", () => {
    expect(() => tokenize(["--nope"])).toThrow(UsageError);
    expect(() => tokenize(["-t"])).toThrow("needs a value");
    expect(() => tokenize(["--list=yes"])).toThrow("takes no value");
  });
});

const WATCH_SPELT = { list: "--list", watch: "--watch" };

describe("--watch [SECONDS]", () => {
  test("takes the next word only when it is a number; =SECONDS always; a NAME of digits goes before it or after --", () => {
    expect(tokenize(["--list", "--watch", "5", "job"])).toEqual({ values: { list: true, watch: "5" }, spelled: WATCH_SPELT, positionals: ["job"] });
    expect(tokenize(["--list", "--watch", "job"])).toEqual({ values: { list: true, watch: true }, spelled: WATCH_SPELT, positionals: ["job"] });
    expect(tokenize(["--list", "--watch", "-f", "human"]).values).toEqual({ list: true, watch: true, format: "human" });
    expect(tokenize(["--list", "--watch=0.5", "42"])).toEqual({ values: { list: true, watch: "0.5" }, spelled: WATCH_SPELT, positionals: ["42"] });
    expect(tokenize(["--list", "42", "--watch"])).toEqual({ values: { list: true, watch: true }, spelled: WATCH_SPELT, positionals: ["42"] });
    expect(tokenize(["--list", "--watch", "--", "42"])).toEqual({ values: { list: true, watch: true }, spelled: WATCH_SPELT, positionals: ["42"] });
  });
  test("default 2 seconds, at least 0.1; only with --list; machine formats only into -o FILE", () => {
    expect(parse(["--list", "--watch"]).watch).toBe(2);
    expect(parse(["--list", "--watch", "0.5"]).watch).toBe(0.5);
    expect(parse(["--list"]).watch).toBeUndefined();
    expect(contextOf(() => parse(["--list", "--watch=0.05"]))).toBe("--watch");
    // The message gives the real lower bound, whatever is wrong with the value.
    expect(messageOf(() => parse(["--list", "--watch=0.05"]))).toContain("'0.05' is too short: at least 0.1 seconds");
    expect(messageOf(() => parse(["--list", "--watch="]))).toContain("is empty; expected a number of seconds, at least 0.1");
    expect(contextOf(() => parse(["--list", "--watch=soon"]))).toBe("--watch");
    expect(contextOf(() => parse(["--watch", "n"]))).toBe("--watch");
    expect(contextOf(() => parse(["--list", "--watch", "-f", "prometheus"]))).toBe("--watch");
    expect(parse(["--list", "--watch", "-f", "prometheus", "-o", "/x/w.prom"])).toMatchObject({ watch: 2, format: "prometheus", output: "/x/w.prom" });
    expect(contextOf(() => parse(["-o", "f", "n"]))).toBe("-o");
    expect(contextOf(() => parse(["--output", "f", "n"]))).toBe("--output");
    expect(contextOf(() => parse(["--list", "-f", "prometheus", "--stale-only"]))).toBe("--stale-only");
  });
});

describe("parseOptions", () => {
  test("defaults: a mutex, wait forever, human format", () => {
    expect(parse(["n"])).toMatchObject({ mode: "acquire", name: "n", slots: 1, timeout: null, format: "human", facility: "daemon" });
  });
  test("modes", () => {
    expect(parse(["--check", "n"]).mode).toBe("check");
    expect(parse(["--done", "n"]).mode).toBe("done");
    expect(parse(["--list"]).mode).toBe("list");
    expect(parse(["n", "--exec", "x"]).mode).toBe("exec");
    expect(parse(["--help", "-m", "0", "n"]).mode).toBe("help");
  });
  test("environment fills in, options win", () => {
    expect(parse(["n"], { WAITLOCK_TIMEOUT: "2.5", WAITLOCK_DIR: "/x", WAITLOCK_DEBUG: "yes" })).toMatchObject({ timeout: 2.5, lockDir: "/x", verbose: true });
    expect(parse(["-t", "1", "-d", "/y", "n"], { WAITLOCK_TIMEOUT: "2.5", WAITLOCK_DIR: "/x" })).toMatchObject({ timeout: 1, lockDir: "/y" });
    expect(parse(["-m", "4", "n"], { WAITLOCK_SLOT: "3" }).preferredSlot).toBe(3);
    // Blanks around a number count for nothing, in whole numbers as in seconds.
    expect(parse(["-m", " 4 ", "-t", " 1", "n"])).toMatchObject({ slots: 4, timeout: 1 });
    expect(contextOf(() => parse(["-m", "4", "n"], { WAITLOCK_SLOT: "4" }))).toBe("WAITLOCK_SLOT");
  });
  test("the name is optional (stdin) and validated when given", () => {
    expect(parse([]).name).toBeUndefined();
    expect(() => parse(["a/b"])).toThrow(UsageError);
  });
  test("-s, --file and --fd: what they combine with", () => {
    expect(parse(["-s", "n"])).toMatchObject({ mode: "acquire", shared: true, name: "n" });
    expect(parse(["--file", "/etc/hosts", "--exec", "true"])).toMatchObject({ mode: "exec", file: "/etc/hosts", name: undefined });
    expect(parse(["--check", "-s", "--file=/x"])).toMatchObject({ mode: "check", shared: true, file: "/x" });
    expect(parse(["--list", "--file", "/x"])).toMatchObject({ mode: "list", file: "/x" });
    expect(parse(["-s", "-t", "1", "--fd", "9"])).toMatchObject({ mode: "fd", fd: 9, shared: true, timeout: 1 });
    expect(parse(["--fd", "9", "--unlock"])).toMatchObject({ mode: "unlock", fd: 9 });
    expect(parse(["--fd", "9"], { WAITLOCK_TIMEOUT: "3" }).timeout).toBe(3);
    // A semaphore's WAITLOCK_SLOT, inherited by a command, does not concern a file.
    expect(parse(["--file", "/x"], { WAITLOCK_SLOT: "3" }).preferredSlot).toBeUndefined();
    const refused: [string[], string][] = [
      [["-s", "-m", "2", "n"], "-s"],
      [["--shared", "-c", "n"], "--shared"],
      [["-s", "--list"], "-s"],
      [["--unlock"], "--unlock"],
      [["--fd", "9", "--unlock", "-t", "1"], "-t"],
      [["--fd", "9", "n"], "n"],
      [["--file", "/x", "n"], "n"],
      [["--file", "/x", "-m", "3"], "-m"],
      [["--file", "/x", "--allowMultiple", "3"], "--allow-multiple"],
      [["--file", "/x", "--fd", "3"], "--file and --fd"],
      [["--fd", "3", "--exec", "true"], "--exec and --fd"],
      [["--fd", "-1"], "--fd"],
      [["--file", ""], "--file"],
    ];
    for (const [argv, context] of refused) expect({ argv, context: contextOf(() => parse(argv)) }).toEqual({ argv, context });
  });
  test("seconds", () => {
    expect(seconds("0", "t")).toBe(0);
    expect(seconds(".5", "t")).toBe(0.5);
    expect(seconds("10.", "t")).toBe(10);
    expect(seconds(" 2.25 ", "t")).toBe(2.25);
    for (const bad of ["", " ", ".", "-1", "+1", "1e3", "0x10", "NaN", "Infinity", "1,5", "1.2.3", "1 2"]) expect(() => seconds(bad, "t")).toThrow(UsageError);
  });
});
