// Locks on a file that is not waitlock's: `--file PATH`, an existing file or directory
// opened read-only (never created, written, truncated or removed), and `--fd N`, the
// caller's own open file description. flock(2) on it excludes, and is excluded by, every
// other flock(2) user of that file: flock(1), Python's fcntl.flock, other waitlocks.
//
// waitlock's waiters for a file first queue on a turnstile in the lock directory named for
// the file's identity, DIR/file@DEV-INO (turnstile.ts), so that among themselves they are
// served in arrival order however each named the file (a symlink, a relative path, a bind
// mount, a descriptor). Other programs go straight to the kernel's queue for the file, in
// which only the head of the turnstile waits: they may be served before waitlocks queued
// behind that head, and a shared lock they ask for is granted while a waitlock writer waits.
// The records of its holders are files beside the turnstile (holderfiles.ts).
import { E, LOCK, O, close, flock, fstat, open } from "../ffi/libc";
import { BusyError, TimeoutError, UsageError } from "./errors";
import { lockOp } from "./engine";
import { deadlineAfter, lockBy, tryLock } from "./lockfiles";
import { awaitTurn, enterTurnstile, leaveTurnstile, noRoom, tidyTurnstile, warnNoRoom } from "./turnstile";
import { fileBase, sweepHolderFiles } from "./holderfiles";
import type { LockMode } from "./holders";
import { debug } from "./log";
import { sysError } from "./syserror";

export interface FileRequest {
  /** the lock directory, for the turnstile and the records */
  dir: string;
  /** that directory is world-writable */
  shared: boolean;
  /** the file as the user named it (--file), or "fd N" */
  path: string;
  /** the open file to lock: one we opened (--file), or the caller's (--fd) */
  fd: number;
  mode: LockMode;
}

export interface HeldFile {
  fd: number;
  path: string;
  dev: number;
  ino: number;
  mode: LockMode;
  /** DIR/file@DEV-INO: its turnstile's and holder files' base */
  base: string;
}

export interface FileHooks {
  /** Is the busy file, open at `fd`, already held for us? */
  isOurs?(fd: number, dev: number, ino: number): boolean;
  /** Called once, when the file is busy (or others are queued) and we are going to wait. */
  onWait?(base: string): void;
}

/**
 * Opens an existing file or directory to lock it: read-only (flock(2) needs no more, and
 * a read-only file works), following symbolic links as flock(1) does, non-blocking so that
 * a FIFO cannot hang us. Throws WaitlockError 4 (no such file...) or 5 (permission).
 */
export function openFileToLock(path: string): number {
  const fd = open(path, O.RDONLY | O.CLOEXEC | O.NONBLOCK);
  if (fd === -E.ENOENT) throw sysError(path, fd, "cannot open the file to lock (--file never creates one)");
  if (fd < 0) throw sysError(path, fd, "cannot open the file to lock");
  return fd;
}

/** The identity of the file open at `fd` (--fd: the caller's); UsageError 3 when `fd` is not open. */
export function identityOf(fd: number, context: string): { dev: number; ino: number } {
  const st = fstat(fd);
  if (st === -E.EBADF) throw new UsageError(context, `${fd} is not an open file descriptor`);
  if (typeof st === "number") throw sysError(context, st, "cannot stat");
  return { dev: st.dev, ino: st.ino };
}

/**
 * Locks the file open at `req.fd` with `req.mode`, waiting up to `timeout` seconds (null:
 * forever; 0: try once) behind the waitlocks already waiting for that file. An exclusive
 * holder is alone: it removes the holder files of those that went before (stale). Returns
 * "alreadyHeld" when `hooks.isOurs` says so. Throws BusyError (1), TimeoutError (2),
 * WaitlockError (4, 5, 75).
 */
export function acquireFile(req: FileRequest, timeout: number | null, hooks: FileHooks = {}): HeldFile | "alreadyHeld" {
  const { dev, ino } = identityOf(req.fd, req.path);
  const base = fileBase(req.dir, dev, ino);
  const deadline = timeout === null ? Infinity : deadlineAfter(timeout);
  const op = lockOp(req.mode);
  const turnstile = enterTurnstile(base, req.shared);
  if (turnstile === noRoom) warnNoRoom(base);
  let won = false;
  let waitReported = false;
  const wait = () => {
    if (hooks.isOurs?.(req.fd, dev, ino)) return "ours";
    if (timeout === 0) {
      debug(`${req.path} is locked`);
      throw new BusyError(req.path);
    }
    if (!waitReported) {
      waitReported = true;
      debug(`${req.path} is locked; waiting${timeout === null ? "" : ` up to ${timeout} s`}`);
      hooks.onWait?.(base);
    }
    return "wait";
  };
  const timedOut = () => {
    debug(`gave up on ${req.path} after ${timeout} s`);
    return new TimeoutError(req.path, timeout!);
  };
  try {
    if (turnstile !== noRoom && !awaitTurn(turnstile)) {
      if (wait() === "ours") return "alreadyHeld";
      if (!awaitTurn(turnstile, deadline)) throw timedOut();
    }
    // A shared lock would be granted to its holder again: ask first.
    if (req.mode === "shared" && hooks.isOurs?.(req.fd, dev, ino)) return "alreadyHeld";
    if (!tryLock(req.fd, req.path, op)) {
      if (wait() === "ours") return "alreadyHeld";
      if (!lockBy(req.fd, req.path, op, deadline)) throw timedOut();
    }
    won = true;
    debug(`locked ${req.path} (${req.mode})`);
    if (req.mode === "exclusive") sweepHolderFiles(base);
    return { fd: req.fd, path: req.path, dev, ino, mode: req.mode, base };
  } finally {
    if (turnstile !== noRoom) {
      leaveTurnstile(turnstile);
      if (!won) tidyTurnstile(base);
    }
  }
}

/**
 * Lets go of a file lock this process holds through `fd` (closing it: the file itself is
 * never touched), then removes the turnstile at `base` (if known) when nobody is queued.
 * With `unlock` (--fd N --unlock) the descriptor is the caller's: unlocked (LOCK_UN, for
 * every process sharing its open file description, as flock -u does) and left open.
 */
export function releaseFile(fd: number, base: string | undefined, unlock = false): void {
  if (unlock) {
    const r = flock(fd, LOCK.UN);
    if (r < 0) throw sysError(`fd ${fd}`, r, "cannot unlock");
  } else close(fd);
  if (base !== undefined) tidyTurnstile(base);
}
