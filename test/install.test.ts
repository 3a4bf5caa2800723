// The man page, the completions and `make install`, checked against the option table.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FILES, options } from "../src/completions";
import { lockDir, needs, run, tool, wl } from "./helpers";

const ROOT = join(import.meta.dir, "..");
const MAN = join(ROOT, "man/waitlock.1");
const COMPLETIONS = join(ROOT, "dist/completions");
const allSpellings = () => options().flatMap((o) => [...o.long.map((l) => `--${l}`), ...(o.short ? [`-${o.short}`] : [])]);

describe("man page", () => {
  test("every option printed by --help appears in man/waitlock.1", async () => {
    const help = (await wl(["--help"])).stdout;
    const printed = [...new Set(help.match(/--[a-zA-Z][a-zA-Z-]*/g))];
    expect(printed.length).toBeGreaterThanOrEqual(19);
    // In roff a dash is written \-.
    const man = readFileSync(MAN, "utf8").replaceAll("\\-", "-");
    for (const opt of printed) expect({ opt, documented: man.includes(opt) }).toEqual({ opt, documented: true });
    expect(man).toContain(`"waitlock ${(await import("../package.json")).version}"`);
    for (const section of ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES", "SIGNALS", "EXAMPLES", "SEE ALSO"])
      expect(man).toContain(`.SH ${section}`);
  });

  test("every variable printed by --help appears in the man page's ENVIRONMENT and in README.md", async () => {
    const help = (await wl(["--help"])).stdout;
    const variables = [...new Set(help.match(/WAITLOCK_[A-Z]+/g))];
    expect(variables.length).toBeGreaterThanOrEqual(6);
    const man = readFileSync(MAN, "utf8");
    const environment = man.slice(man.indexOf(".SH ENVIRONMENT"), man.indexOf(".SH FILES"));
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    for (const v of variables) expect({ v, man: environment.includes(v), readme: readme.includes(`\`${v}\``) }).toEqual({ v, man: true, readme: true });
  });

  needs(tool("groff"))("no warnings from groff -man -ww", async () => {
    const groff = await run(["groff", "-man", "-ww", "-z", MAN]);
    expect({ code: groff.code, stderr: groff.stderr }).toEqual({ code: 0, stderr: "" });
  });

  needs(tool("mandoc"))("no warnings from mandoc -Tlint", async () => {
    const mandoc = await run(["mandoc", "-Tlint", MAN]);
    expect({ code: mandoc.code, out: mandoc.stdout + mandoc.stderr }).toEqual({ code: 0, out: "" });
  });
});

describe("completions", () => {
  test("are generated for bash, zsh and fish by the build", () => {
    for (const file of Object.keys(FILES)) expect(existsSync(join(COMPLETIONS, file))).toBe(true);
  });

  needs(tool("bash"))("bash completes every option, option values and the command after --exec", async () => {
    const complete = async (line: string) => {
      const words = line.split(" ");
      const script = `source ${COMPLETIONS}/waitlock.bash
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _waitlock; printf '%s\\n' "\${COMPREPLY[@]}"`;
      return (await run(["bash", "-c", script])).stdout.trim().split("\n").sort();
    };
    expect(await complete("waitlock -")).toEqual(allSpellings().sort());
    expect(await complete("waitlock --al")).toEqual(["--all", "--allow-multiple", "--allowMultiple"]);
    expect(await complete("waitlock --list -f ")).toEqual(["csv", "human", "json", "null", "prometheus"]);
    expect(await complete("waitlock --syslog-facility loc")).toEqual(Array.from({ length: 8 }, (_, i) => `local${i}`));
    expect(await complete("waitlock x --exec tru")).toContain("true");
    expect(await complete("waitlock --file /etc/host")).toContain("/etc/hosts");
  });

  needs(tool("fish"))("fish completes every option and the values of --format", async () => {
    const complete = async (line: string) =>
      (await run(["fish", "-c", `source ${COMPLETIONS}/waitlock.fish; complete -C '${line}'`])).stdout.trim().split("\n").map((l) => l.split("\t")[0]);
    const all = await complete("waitlock -");
    for (const s of allSpellings().filter((s) => s.startsWith("--"))) expect(all).toContain(s);
    expect((await complete("waitlock --format ")).sort()).toEqual(["csv", "human", "json", "null", "prometheus"]);
  });

  needs(tool("zsh"))("zsh's _arguments spec names every option", async () => {
    const stub = `_arguments() { printf '%s\\n' "$@"; }; _pids() { :; }; _files() { :; }; _normal() { :; }
source ${COMPLETIONS}/_waitlock`;
    const r = await run(["zsh", "-f", "-c", stub]);
    expect(r.stderr).toBe("");
    for (const s of allSpellings()) expect({ s, found: r.stdout.split("\n").some((l) => l.startsWith(`${s}[`) || l.startsWith(`${s}=[`)) }).toEqual({ s, found: true });
  });
});

needs(tool("make"), tool("install"))("make install puts the binary, the man page and the completions under DESTDIR/PREFIX; make uninstall removes them", async () => {
  const dest = lockDir();
  const install = await run(["make", "-C", ROOT, "install", `DESTDIR=${dest}`, "PREFIX=/usr"], { deadlineMs: 180_000 });
  expect(install.code).toBe(0);
  const files: [string, number][] = [
    ["usr/bin/waitlock", 0o755],
    ["usr/share/man/man1/waitlock.1", 0o644],
    ["usr/share/bash-completion/completions/waitlock", 0o644],
    ["usr/share/zsh/site-functions/_waitlock", 0o644],
    ["usr/share/fish/vendor_completions.d/waitlock.fish", 0o644],
    ["usr/lib/tmpfiles.d/waitlock.conf", 0o644],
  ];
  for (const [file, mode] of files) expect({ file, mode: statSync(join(dest, file)).mode & 0o777 }).toEqual({ file, mode });
  // The shared default lock directory: made now, and by systemd-tmpfiles at every boot.
  const lockDirLine = readFileSync(join(dest, "usr/lib/tmpfiles.d/waitlock.conf"), "utf8");
  expect(lockDirLine).toMatch(/^d \/(run\/lock|var\/lock|tmp)\/waitlock 1777 root root -\n$/);
  expect(statSync(join(dest, lockDirLine.split(" ")[1]!)).mode & 0o7777).toBe(0o1777);
  expect((await run([join(dest, "usr/bin/waitlock"), "--version"])).stdout).toMatch(/^waitlock \d/);
  const uninstall = await run(["make", "-C", ROOT, "uninstall", `DESTDIR=${dest}`, "PREFIX=/usr"]);
  expect(uninstall.code).toBe(0);
  for (const [file] of files) expect(existsSync(join(dest, file))).toBe(false);
  expect(existsSync(join(dest, lockDirLine.split(" ")[1]!))).toBe(false);
}, 200_000);
