// The suite cleans up after every test, in every file: what one test starts does not outlive
// it (test/cleanup.ts, preloaded by bunfig.toml).
import { expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { lockDir, start, waitFor } from "./helpers";

let pid = 0;
let dir = "";

/** Gone, or a zombie nobody has reaped yet: either way it runs no more. */
function running(p: number): boolean {
  try {
    return !readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return false;
  }
}

test("a test starts a process and makes a lock directory", () => {
  dir = lockDir();
  pid = start(["sleep", "60"]).pid;
  expect(running(pid)).toBe(true);
  expect(existsSync(dir)).toBe(true);
});

test("after it, the process is killed and the directory removed", async () => {
  expect(pid).toBeGreaterThan(0);
  await waitFor("the previous test's sleep to be killed", () => !running(pid));
  expect(existsSync(dir)).toBe(false);
});
