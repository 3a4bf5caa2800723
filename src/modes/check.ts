// waitlock --check NAME (or --file PATH): is a slot free? Takes nothing. A failure is 2,
// "cannot tell": the CLI and the coprocess decide that (errors.ts unansweredStatus).
import { close, fstat } from "../../ffi/libc";
import { heldMode, inspect, lockOp, slotPath } from "../engine";
import { EXIT } from "../errors";
import { openFileToLock } from "../filelock";
import { grantedLocks, type LockMode } from "../holders";
import { debug } from "../log";
import { sysError } from "../syserror";

/** Can a lock of `wanted` join one held in `held` (undefined: free)? */
const serves = (held: LockMode | undefined, wanted: LockMode) => held === undefined || (held === "shared" && wanted === "shared");

/**
 * 0 when one of the `slots` of the NAME in the lock directory `dir` (undefined: it does not
 * exist) could be taken now with `mode` (a shared request: also when the slot is held
 * shared), 1 when not. Waiters queued for it are not counted. Throws WaitlockError when a
 * slot file cannot be opened or looked at.
 */
export function checkSlots(dir: string | undefined, name: string, slots: number, mode: LockMode): number {
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
}

/**
 * 0 when the existing file `path` could be locked now with `mode` (--check --file), 1 when
 * not. On Linux the kernel's list of locks answers; elsewhere, and where that list may be
 * incomplete (holders.ts locksListedInFull), a non-blocking try of the lock asked for,
 * which holds it for a moment. Throws WaitlockError when the file cannot be
 * opened or looked at.
 */
export function checkFile(path: string, mode: LockMode): number {
  const fd = openFileToLock(path);
  try {
    const st = fstat(fd);
    if (typeof st === "number") throw sysError(path, st, "cannot stat");
    const held = heldMode(fd, path, st, grantedLocks(), lockOp(mode));
    debug(`${path} is ${held ? `held ${held}` : "free"}`);
    return serves(held, mode) ? EXIT.OK : EXIT.BUSY;
  } finally {
    close(fd);
  }
}
