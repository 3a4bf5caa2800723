// waitlock --check NAME (or --file PATH): is a slot free? Takes nothing; 2 when it cannot tell.
import { close, fstat, LOCK, flock } from "../../ffi/libc";
import { inspect, lockOp, slotPath } from "../engine";
import { tryLock } from "../lockfiles";
import { EXIT, WaitlockError } from "../errors";
import { openFileToLock } from "../filelock";
import { fileKey, grantedLocks, type LockMode } from "../holders";
import { debug } from "../log";
import { sysError } from "../syserror";

/** Can a lock of `wanted` join one held in `held` (undefined: free)? */
const serves = (held: LockMode | undefined, wanted: LockMode) => held === undefined || (held === "shared" && wanted === "shared");

/**
 * Errors other than usage mean "cannot tell" (2); out of descriptors stays 75 in every
 * mode: retrying can succeed, and it is no answer.
 */
function orCannotTell(e: unknown): never {
  if (e instanceof WaitlockError && e.exitCode !== EXIT.USAGE && e.exitCode !== EXIT.TEMPFAIL) throw new WaitlockError(EXIT.TIMEOUT, e.context, e.message);
  throw e;
}

/**
 * 0 when a slot of the NAME could be taken now with `mode` (a shared request: also when
 * the slot is held shared), 1 when not. Waiters queued for it are not counted.
 */
export function checkSlots(lookup: () => { dir: string | undefined; name: string; slots: number; mode: LockMode }): number {
  try {
    const { dir, name, slots, mode } = lookup();
    // The kernel's list of locks, where there is one: looking takes no lock that could make
    // an acquirer's single try (-t 0) fail.
    const locks = grantedLocks();
    for (let k = 0; k < slots; k++) {
      const seen = dir === undefined ? { state: "absent" as const } : inspect(slotPath(dir, name, k), false, locks);
      if (seen.state !== "held" || serves(seen.mode, mode)) {
        debug(`'${name}' slot ${k} is ${seen.state === "absent" ? "free (no file)" : seen.state === "held" ? "held shared" : "free"}`);
        return EXIT.OK;
      }
    }
    debug(`all ${slots} slot(s) of '${name}' are held`);
    return EXIT.BUSY;
  } catch (e) {
    return orCannotTell(e);
  }
}

/**
 * 0 when the existing file `path` could be locked now with `mode` (--check --file), 1 when
 * not. On Linux the kernel's list of locks answers; elsewhere a non-blocking try of the
 * lock asked for, which holds it for a moment.
 */
export function checkFile(path: string, mode: LockMode): number {
  let fd: number | undefined;
  try {
    fd = openFileToLock(path);
    const st = fstat(fd);
    if (typeof st === "number") throw sysError(path, st, "cannot stat");
    const locks = grantedLocks();
    let held: LockMode | undefined;
    if (locks) held = locks.get(fileKey(st.dev, st.ino))?.mode;
    else if (tryLock(fd, path, lockOp(mode))) flock(fd, LOCK.UN);
    else held = "exclusive";
    debug(`${path} is ${held ? `held ${held}` : "free"}`);
    return serves(held, mode) ? EXIT.OK : EXIT.BUSY;
  } catch (e) {
    return orCannotTell(e);
  } finally {
    if (fd !== undefined) close(fd);
  }
}
