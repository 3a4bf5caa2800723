// waitlock --fd N [--unlock]: lock the caller's open descriptor N (the `exec 9>FILE;
// flock 9` idiom) and return. waitlock inherits N, which shares the caller's open file
// description, and flock(2) locks live on that: the lock lasts until the caller, and every
// process that inherited N from it, has closed N, or until `--fd N --unlock`. No waitlock
// process stays behind. The record names the caller, in a holder file; once N is closed it
// is stale, until --unlock or the next exclusive waitlock of that file removes it.
import { getppid } from "../../ffi/libc";
import { lockOp } from "../engine";
import { lockBy, tryLock } from "../lockfiles";
import { tidyTurnstile } from "../turnstile";
import { BusyError, EXIT, TimeoutError } from "../errors";
import { acquireFile, identityOf, releaseFile } from "../filelock";
import { fileBase, holderRecords, newHolderFile, removeHolderFile, storeInHolderFile } from "../holderfiles";
import { lockHeldThrough, type LockMode } from "../holders";
import type { LockDir } from "../lockdir";
import { debug } from "../log";
import type { RecordForm } from "../options";
import { commandLine } from "../procinfo";
import { describeHolder } from "../holderrecord";
import type { Events } from "../events";

/** What a record calls the file open at `fd`: its path where the system says (Linux), else /dev/fd/N. */
function pathOf(fd: number): string {
  const { readlinkSync } = require("node:fs") as typeof import("node:fs");
  try {
    const target = readlinkSync(`/proc/self/fd/${fd}`);
    if (target.startsWith("/")) return target;
  } catch {
    // no /proc: the descriptor's own name below
  }
  return `/dev/fd/${fd}`;
}

/**
 * Changes the lock that `fd` already holds to `mode` in place, as flock(1) does, without
 * queueing: a waiter ahead of us may be waiting for this very lock.
 */
function convert(fd: number, context: string, mode: LockMode, timeout: number | null): void {
  const op = lockOp(mode);
  if (tryLock(fd, context, op)) return;
  if (timeout === 0) throw new BusyError(context);
  if (!lockBy(fd, context, op, timeout === null ? Infinity : performance.now() + timeout * 1000)) throw new TimeoutError(context, timeout!);
}

/**
 * Locks the caller's descriptor `fd` with `mode`, waiting as `timeout` allows behind the
 * waitlocks queued for its file, and records the caller (the parent) as its holder in
 * `dir`. Returns 0; throws UsageError 3 when `fd` is not open, BusyError (1), TimeoutError
 * (2), WaitlockError (4, 5, 75).
 */
export function lockDescriptor(dir: LockDir, fd: number, mode: LockMode, timeout: number | null, form: RecordForm, events: Events): number {
  const context = `fd ${fd}`;
  const { dev, ino } = identityOf(fd, "--fd");
  const owner = getppid();
  const already = lockHeldThrough(fd, dev, ino);
  if (already) {
    debug(`${context} already holds a ${already} lock on its file${already === mode ? "" : `; making it ${mode}`}`);
    if (already !== mode) convert(fd, context, mode, timeout);
    return EXIT.OK;
  }
  let held;
  try {
    held = acquireFile({ dir: dir.path, shared: dir.shared, path: context, fd, mode }, timeout, { onWait: () => events.waiting(undefined) });
  } catch (e) {
    if (e instanceof TimeoutError) events.timedOut(timeout!);
    throw e;
  }
  if (held === "alreadyHeld") return EXIT.OK;
  // No waitlock lets go of this lock later: the turnstile is tidied now.
  tidyTurnstile(held.base);
  const command = commandLine(owner);
  storeInHolderFile(newHolderFile(held.base), describeHolder(pathOf(fd), 1, 0, owner, owner, command), form);
  events.acquired(0, command);
  return EXIT.OK;
}

/**
 * Releases the lock of the caller's descriptor `fd` (LOCK_UN: for every process sharing
 * its open file description, as `flock -u` does) and removes the caller's records of it
 * in `dir` (undefined: the directory does not exist). Returns 0; UsageError 3 when `fd` is
 * not open.
 */
export function unlockDescriptor(dir: string | undefined, fd: number): number {
  const { dev, ino } = identityOf(fd, "--fd");
  const owner = getppid();
  const base = dir === undefined ? undefined : fileBase(dir, dev, ino);
  if (base) for (const { path, record } of holderRecords(base)) if (record.pid === owner) removeHolderFile(path);
  releaseFile(fd, base, true);
  debug(`unlocked fd ${fd}`);
  return EXIT.OK;
}
