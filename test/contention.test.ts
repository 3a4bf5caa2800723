// Mutual exclusion under real contention: many processes, one counter, one semaphore.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { countUnderLock, held, lockDir, sh, startSh, waitFor } from "./helpers";

test("8 processes x 25 increments under the mutex lose no update", async () => {
  expect(await countUnderLock(lockDir(), 8, 25)).toBe(200);
}, 120_000);

test("the same counter without the lock does lose updates (the test above can fail)", async () => {
  expect(await countUnderLock(lockDir(), 8, 25, {}, false)).toBeLessThan(200);
}, 60_000);

/** Replays "+slot"/"-slot" lines and returns the most holders seen at once. */
function peakHolders(log: string): { peak: number; slots: Set<string> } {
  let now = 0;
  let peak = 0;
  const busy = new Set<string>();
  const slots = new Set<string>();
  for (const line of log.trim().split("\n")) {
    const slot = line.slice(1);
    if (line.startsWith("+")) {
      if (busy.has(slot)) throw new Error(`slot ${slot} handed out twice at once`);
      busy.add(slot);
      slots.add(slot);
      peak = Math.max(peak, ++now);
    } else {
      busy.delete(slot);
      now--;
    }
  }
  return { peak, slots };
}

test("a 3-slot semaphore never has a 4th holder, and each holder has its own slot", async () => {
  const d = lockDir();
  // Lines of up to PIPE_BUF bytes appended with O_APPEND never interleave.
  const worker = `i=0; while [ $i -lt 6 ]; do
      "$WL" -d "$D" -m 3 pool --exec sh -c 'echo "+$WAITLOCK_SLOT" >> "$D/log"; sleep 0.03; echo "-$WAITLOCK_SLOT" >> "$D/log"' || exit 9
      i=$((i + 1)); done`;
  const codes = await Promise.all(Array.from({ length: 8 }, () => startSh(worker, d).exited));
  expect(codes).toEqual(Array(8).fill(0));
  const log = readFileSync(`${d}/log`, "utf8");
  expect(log.trim().split("\n")).toHaveLength(8 * 6 * 2);
  const { peak, slots } = peakHolders(log);
  expect(peak).toBe(3);
  expect([...slots].sort()).toEqual(["0", "1", "2"]);
}, 120_000);

test("holders that disagree on N share the slots both can see", async () => {
  const d = lockDir();
  // A -m 2 holder takes slot 0; a -m 1 process sees only slot 0 and is busy.
  startSh(`exec "$WL" -d "$D" -m 2 shared --exec sleep 30`, d);
  await waitFor("slot 0 held", () => held(d, "shared", 1));
  expect((await sh(`"$WL" -d "$D" -t 0 shared --exec true`, d)).code).toBe(1);
  expect((await sh(`"$WL" -d "$D" -t 0 -m 2 shared --exec true`, d)).code).toBe(0);
});
