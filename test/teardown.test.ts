// The suite cleans up after every test, in every file: what one test starts does not outlive
// it (test/cleanup.ts, preloaded by bunfig.toml).
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { BIN, alive, lockDir, start, waitFor } from "./helpers";

let pid = 0;
let dir = "";

test("a test starts a process and makes a lock directory", () => {
  dir = lockDir();
  pid = start(["sleep", "60"]).pid;
  expect(alive(pid)).toBe(true);
  expect(existsSync(dir)).toBe(true);
});

test("after it, the process is killed and the directory removed", async () => {
  expect(pid).toBeGreaterThan(0);
  await waitFor("the previous test's sleep to be killed", () => !alive(pid));
  expect(existsSync(dir)).toBe(false);
});

let command = 0;

test("a test starts waitlock --exec, whose command has a process group of its own", async () => {
  const d = lockDir();
  start([BIN, "-d", d, "x", "--exec", "sh", "-c", 'echo $$ > "$0/pid"; exec sleep 60', d]);
  await waitFor("the command", () => existsSync(`${d}/pid`) && readFileSync(`${d}/pid`, "utf8").endsWith("\n"));
  command = Number(readFileSync(`${d}/pid`, "utf8"));
  expect(alive(command)).toBe(true);
});

test("after it, the command is killed too", async () => {
  expect(command).toBeGreaterThan(0);
  await waitFor("the previous test's command to be killed", () => !alive(command));
});
