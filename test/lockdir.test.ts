// The lock directory: discovery, creation and the safety rules.
import { expect, test } from "bun:test";
import { chmodSync, linkSync, mkdirSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { BIN, inDefaultDirs, lockDir, mountNamespace, needs, run, unprivileged, unprivilegedNeeds, wl } from "./helpers";

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

needs(unprivilegedNeeds())("permission denied on the lock directory or a lock file: exit 5", async () => {
  const d = lockDir();
  chmodSync(d, 0o755);
  mkdirSync(`${d}/mine`, 0o755);
  chmodSync(`${d}/mine`, 0o555);
  const dir = await unprivileged(["-d", `${d}/mine`, "x", "--exec", "true"]);
  expect(dir.code).toBe(5);
  expect(dir.stderr).toMatch(ONE_LINE);
  expect(dir.stderr).toContain("Permission denied");
  const sub = await unprivileged(["-d", `${d}/mine/sub`, "x", "--exec", "true"]);
  expect(sub.code).toBe(5);
  chmodSync(`${d}/mine`, 0o755);
});

needs(unprivilegedNeeds())("with no directory given, every user resolves the same system default", async () => {
  await inDefaultDirs(async () => {
    const r = await wl(["-v", "--list"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/DEBUG: lock directory \/(run\/lock|var\/lock|tmp)(\/waitlock)?\n/);
    const r2 = await unprivileged(["-v", "--list"]);
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

needs(mountNamespace())("a read-only file system is named as such (exit 6), never 'permission denied'", async () => {
  const d = lockDir();
  mkdirSync(`${d}/ro`);
  // In a mount namespace of its own: the mount vanishes with the shell.
  const r = await run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o ro tmpfs "$0/ro" || exit 99; "$1" -d "$0/ro" x --exec true; echo "dir $?"; "$1" -d "$0/ro/sub" x --exec true; echo "sub $?"', d, BIN]);
  expect(r.stdout).toBe("dir 6\nsub 6\n");
  const [dir, sub] = r.stderr.trimEnd().split("\n");
  expect(dir).toBe(`waitlock: ${d}/ro: lock directory is on a read-only file system`);
  expect(sub).toBe(`waitlock: ${d}/ro/sub: cannot create lock directory: Read-only file system`);
});
