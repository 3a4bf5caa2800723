// Whatever is in the lock directory, it never blocks and never crashes.
import { expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { BIN, held, lockDir, start, waitFor, wl } from "./helpers";
import { RECORD_SIZE } from "../src/record";

test("garbage, empty and truncated lock files and unrelated files never block or crash", async () => {
  const d = lockDir();
  writeFileSync(`${d}/junk.slot0.lock`, "this is not a record\n");
  writeFileSync(`${d}/empty.slot0.lock`, "");
  writeFileSync(`${d}/huge.slot0.lock`, Buffer.alloc(RECORD_SIZE * 3, 0xff));
  writeFileSync(`${d}/README`, "hello");
  writeFileSync(`${d}/other.lock`, "x");
  writeFileSync(`${d}/bad name.slot0.lock`, "x");
  writeFileSync(`${d}/x.slotQ.lock`, "x");
  mkdirSync(`${d}/dir.slot0.lock`);
  for (const name of ["junk", "empty", "huge"]) {
    expect((await wl(["-d", d, "-t", "2", name, "--exec", "true"])).code).toBe(0);
    expect((await wl(["-d", d, "--check", name])).code).toBe(0);
  }
  const list = await wl(["-d", d, "--list", "--all"]);
  expect(list.code).toBe(0);
  expect((await wl(["-d", d, "--list", "-f", "json", "--all"])).code).toBe(0);
  expect(readFileSync(`${d}/README`, "utf8")).toBe("hello");
});

test("a corrupt record is shown as corrupt by --list --all and overwritten by the next holder", async () => {
  const d = lockDir();
  writeFileSync(`${d}/bad.slot0.lock`, Buffer.alloc(RECORD_SIZE, 7));
  const all = await wl(["-d", d, "--list", "--all", "-f", "csv"]);
  expect(all.stdout).toBe("descriptor,pid,slot,user,acquired,status,command\nbad,,0,,,corrupt,\n");
  expect((await wl(["-d", d, "--list", "-f", "csv"])).stdout).toBe("descriptor,pid,slot,user,acquired,status,command\n");
  const p = start([BIN, "-d", d, "bad", "--exec", "sleep", "30"]);
  await waitFor("holder", () => held(d, "bad"));
  await waitFor("record", async () => (await wl(["-d", d, "--list", "-f", "csv"])).stdout.includes(",active,"));
  p.kill("SIGTERM");
});
