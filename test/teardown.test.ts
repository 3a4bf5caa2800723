// The suite cleans up after every test, in every file: what one test starts does not outlive
// it (test/cleanup.ts, preloaded by bunfig.toml).
import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { alive, lockDir, start, waitFor } from "./helpers";

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
