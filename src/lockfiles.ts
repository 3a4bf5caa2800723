// Opening and locking lock files: the pieces the engine (slots), the turnstile (queue) and
// the file locks share.
import { E, LOCK, O, fchmod, flock, flockWait, fstat, getuid, open } from "../ffi/libc";
import { EXIT, WaitlockError } from "./errors";
import { sysError } from "./syserror";

export const symlinkRefused = (path: string) =>
  new WaitlockError(EXIT.SYSTEM, path, "lock file is a symbolic link; refusing to follow it");

// O_NONBLOCK: a FIFO planted under a lock file's name must not hang us in open().
export const OPEN = O.NOFOLLOW | O.CLOEXEC | O.NONBLOCK;

/**
 * Opens `path` with `access`, creating it (with `mode`) if it does not exist. Never with
 * O_CREAT on a file that exists: in a sticky directory Linux refuses that for another
 * user's file (fs.protected_regular), which is the normal case in a shared lock directory.
 */
export function openOrCreate(path: string, access: number, mode: number): number {
  for (;;) {
    const fd = open(path, OPEN | access);
    if (fd !== -E.ENOENT) return fd;
    const made = open(path, OPEN | access | O.CREAT | O.EXCL, mode);
    if (made !== -E.EEXIST) return made;
  }
}

/** The descriptor `fd` of `path`, or the error a failed open() of it means. */
export function opened(path: string, fd: number): number {
  if (fd === -E.ELOOP) throw symlinkRefused(path);
  if (fd < 0) throw sysError(path, fd, "cannot open lock file");
  return fd;
}

/**
 * In a shared (world-writable) directory, gives a file we own the `mode` every user needs:
 * the umask may have taken bits away.
 */
export function shareWithAll(fd: number, mode: number): void {
  const st = fstat(fd);
  if (typeof st !== "number" && st.uid === getuid() && (st.mode & 0o777) !== mode) fchmod(fd, mode);
}

/** One non-blocking flock(2) `op` on `fd`: false when another holder is in the way. */
export function tryLock(fd: number, path: string, op: number): boolean {
  const r = flock(fd, op | LOCK.NB);
  if (r === 0) return true;
  if (r === -E.EAGAIN) return false;
  throw sysError(path, r, "cannot lock");
}

/**
 * The performance.now() time `seconds` from now. A function of its own: JavaScriptCore sets
 * up a global such as `performance` when it first links a function that names it, run or
 * not (bench/TUNING.md, twelfth round), and an acquire without a timeout needs no deadline.
 */
export const deadlineAfter = (seconds: number) => performance.now() + seconds * 1000;

/** Milliseconds left until `deadline` (a performance.now() time; Infinity: no deadline). */
export const msLeft = (deadline: number) => (deadline === Infinity ? Infinity : deadline - performance.now());

/**
 * Blocks in the kernel's queue for `fd` until it is locked with `op`; false when the
 * deadline passed first. A stray signal costs the place in the queue (the kernel drops an
 * interrupted request), so it is only ever taken again after one; `interrupted` may throw
 * instead.
 */
export function lockBy(fd: number, path: string, op: number, deadline: number, interrupted?: () => void): boolean {
  for (;;) {
    const left = msLeft(deadline);
    if (left <= 0) return tryLock(fd, path, op);
    const r = flockWait(fd, op, left);
    if (r === 0) return true;
    if (r !== -E.EINTR) throw sysError(path, r, "cannot lock");
    interrupted?.();
  }
}

