// The inotify waker in-process: which slots a wake-up names, and that events of files it no
// longer watches do not wake it (every waiter would otherwise look at every slot again).
import { afterAll, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { createWaker } from "../../src/waker";
import { linux, needs } from "../needs";

const dir = mkdtempSync("/dev/shm/waitlock-waker-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Slot files 0..n-1, open read-write as a waiter has them, and watched. */
function watched(name: string, n: number) {
  const waker = createWaker("inotify");
  const paths = Array.from({ length: n }, (_, k) => join(dir, `${name}.slot${k}.lock`));
  const fds = paths.map((p, k) => {
    const fd = openSync(p, "w+");
    waker.watch(k, fd, p);
    return fd;
  });
  return { waker, paths, fds };
}

needs(linux())("a release wakes the waiter with the slot it released, and only that one", () => {
  const { waker, paths, fds } = watched("rel", 3);
  unlinkSync(paths[1]!);
  expect(waker.sleep(5000)).toEqual(new Set([1]));
  closeSync(fds[2]!);
  expect(waker.sleep(5000)).toEqual(new Set([2]));
  waker.close();
  for (const fd of [fds[0]!, fds[1]!]) closeSync(fd);
});

needs(linux())("events of slots no longer watched do not end the sleep", () => {
  const { waker, paths, fds } = watched("stale", 2);
  // Unwatching queues IN_IGNORED; the file's removal and close come after the watch is gone.
  waker.unwatch(0);
  unlinkSync(paths[0]!);
  closeSync(fds[0]!);
  const t0 = performance.now();
  // Time runs out (undefined: look at every slot) instead of a wake-up naming no slot.
  expect(waker.sleep(100)).toBeUndefined();
  expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
  // The slot still watched still wakes it.
  unlinkSync(paths[1]!);
  expect(waker.sleep(5000)).toEqual(new Set([1]));
  waker.close();
  closeSync(fds[1]!);
});
