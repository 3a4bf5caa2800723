// The lock directory: discovery, creation and the safety rules.
import { expect, test } from "bun:test";
import { chmodSync, linkSync, mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { BIN, inDefaultDirs, lockDir, run, wl } from "./helpers";

const ONE_LINE = /^waitlock: [^\n]+: [^\n]+\n$/;

test("a lock directory that is a symlink is refused: exit 6", async () => {
  const d = lockDir();
  mkdirSync(`${d}/real`);
  symlinkSync(`${d}/real`, `${d}/link`);
  const r = await wl(["-d", `${d}/link`, "x", "--exec", "true"]);
  expect(r.code).toBe(6);
  expect(r.stderr).toMatch(ONE_LINE);
  expect(r.stderr).toContain("symbolic link");
});

test("a world-writable directory without the sticky bit is refused: exit 6", async () => {
  const d = lockDir();
  mkdirSync(`${d}/open`);
  chmodSync(`${d}/open`, 0o777);
  const r = await wl(["-d", `${d}/open`, "x", "--exec", "true"]);
  expect(r.code).toBe(6);
  expect(r.stderr).toContain("sticky");
  chmodSync(`${d}/open`, 0o1777);
  expect((await wl(["-d", `${d}/open`, "x", "--exec", "true"])).code).toBe(0);
});

test("a lock directory that is a file, or cannot be created, is unusable: exit 6", async () => {
  const d = lockDir();
  writeFileSync(`${d}/file`, "");
  expect((await wl(["-d", `${d}/file`, "x", "--exec", "true"])).code).toBe(6);
  expect((await wl(["-d", `${d}/file/sub`, "x", "--exec", "true"])).code).toBe(6);
});

test("directories created inside a world-writable one are 01777, elsewhere 0755", async () => {
  const d = lockDir();
  mkdirSync(`${d}/tmpish`);
  chmodSync(`${d}/tmpish`, 0o1777);
  expect((await wl(["-d", `${d}/tmpish/shared`, "x", "--exec", "true"])).code).toBe(0);
  expect(statSync(`${d}/tmpish/shared`).mode & 0o7777).toBe(0o1777);
  expect((await wl(["-d", `${d}/private/locks`, "x", "--exec", "true"])).code).toBe(0);
  expect(statSync(`${d}/private/locks`).mode & 0o7777).toBe(0o755);
});

test("a lock file that is a symlink is never followed", async () => {
  const d = lockDir();
  writeFileSync(`${d}/victim`, "precious\n");
  symlinkSync(`${d}/victim`, `${d}/evil.slot0.lock`);
  const r = await wl(["-d", d, "evil", "--exec", "true"]);
  expect(r.code).toBe(4);
  expect(r.stderr).toContain("symbolic link");
  expect(await Bun.file(`${d}/victim`).text()).toBe("precious\n");
});

const asNobody = (args: string[]) => run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", BIN, ...args]);

test("permission denied on the lock directory or a lock file: exit 5", async () => {
  const d = lockDir();
  chmodSync(d, 0o755);
  mkdirSync(`${d}/mine`, 0o755);
  const dir = await asNobody(["-d", `${d}/mine`, "x", "--exec", "true"]);
  expect(dir.code).toBe(5);
  expect(dir.stderr).toMatch(ONE_LINE);
  const sub = await asNobody(["-d", `${d}/mine/sub`, "x", "--exec", "true"]);
  expect(sub.code).toBe(5);
});

test("with no directory given, every user resolves the same system default", async () => {
  await inDefaultDirs(async () => {
    const r = await wl(["-v", "--list"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/DEBUG: lock directory \/(run\/lock|var\/lock|tmp)(\/waitlock)?\n/);
    const r2 = await asNobody(["-v", "--list"]);
    expect(r2.code).toBe(0);
    expect(r2.stderr.match(/DEBUG: lock directory (\S+)\n/)?.[1]).toBe(r.stderr.match(/DEBUG: lock directory (\S+)\n/)?.[1]);
  });
});

test("a FIFO or a hard link planted under a slot's name is refused, never hung on or written into", async () => {
  const d = lockDir();
  expect((await run(["mkfifo", `${d}/fifo.slot0.lock`])).code).toBe(0);
  const fifo = await wl(["-d", d, "-t", "1", "fifo", "--exec", "true"], { deadlineMs: 5000 });
  expect(fifo.code).toBe(4);
  expect(fifo.stderr).toContain("not a plain file with a single link");
  writeFileSync(`${d}/precious`, "precious\n");
  linkSync(`${d}/precious`, `${d}/linked.slot0.lock`);
  const linked = await wl(["-d", d, "linked", "--exec", "true"]);
  expect(linked.code).toBe(4);
  expect(await Bun.file(`${d}/precious`).text()).toBe("precious\n");
  expect((await wl(["-d", d, "--list", "--all"])).code).toBe(0);
});
