// waitlock as a library, for Bun programs: the same locks as the CLI (same directory, same
// files, same records), held by the calling process until release() or its exit.
//
//   import { acquire } from "waitlock";
//   using lock = acquire("nightly", { timeout: 0 });   // throws BusyError when held
//   ...                                                 // released at the end of the scope
//
// Waiting blocks the JS thread in the kernel (as the CLI does); pass timeout 0 and retry
// from a timer when the event loop must keep running.
import { acquire as take, release, type Held } from "./engine";
import { BusyError, UsageError } from "./errors";
import { MAX_SLOTS } from "./limits";
import { resolveLockDir, type LockDir } from "./lockdir";
import { describeHolder, storeRecord } from "./modes/describe";
import { validateName } from "./names";

export { BusyError, EXIT, TimeoutError, UsageError, WaitlockError } from "./errors";

export interface AcquireOptions {
  /** slots of the semaphore; 1 (the default) is a mutex */
  slots?: number;
  /** seconds to wait; 0 tries once; null or absent waits as long as it takes */
  timeout?: number | null;
  /** lock directory; default WAITLOCK_DIR, then the CLI's defaults */
  lockDir?: string;
  /** the slot to try first */
  preferredSlot?: number;
  /** what `waitlock --list` shows as COMMAND; default this process's argv */
  command?: string;
  /** write a record for `waitlock --list` (default true) */
  record?: boolean;
}

export interface Lock extends Disposable {
  readonly name: string;
  readonly slot: number;
  readonly path: string;
  readonly released: boolean;
  /** Lets go of the slot; calling it again does nothing. */
  release(): void;
}

// Resolving a directory costs a few system calls; a program that locks in a loop asks once.
const dirs = new Map<string, LockDir>();

function lockDirFor(path: string | undefined): LockDir {
  const key = path ?? process.env.WAITLOCK_DIR ?? "";
  let dir = dirs.get(key);
  if (!dir) dirs.set(key, (dir = resolveLockDir(path, process.env)));
  return dir;
}

function count(value: number | undefined, what: string, min: number): number | undefined {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) throw new UsageError(what, `${value} is not a whole number >= ${min}`);
  return value;
}

/** Takes a slot of `name`, waiting as `opts.timeout` allows; throws BusyError or TimeoutError. */
export function acquire(name: string, opts: AcquireOptions = {}): Lock {
  validateName(name);
  const slots = count(opts.slots, "slots", 1) ?? 1;
  if (slots > MAX_SLOTS) throw new UsageError("slots", `${slots} is more than the maximum, ${MAX_SLOTS}`);
  const preferred = count(opts.preferredSlot, "preferredSlot", 0);
  if (preferred !== undefined && preferred >= slots) throw new UsageError("preferredSlot", `slot ${preferred} does not exist (0..${slots - 1})`);
  if (opts.timeout != null && !(opts.timeout >= 0)) throw new UsageError("timeout", `${opts.timeout} is not a number of seconds >= 0`);
  const dir = lockDirFor(opts.lockDir);
  const req = { dir: dir.path, shared: dir.shared, name, slots, preferred };
  const outcome = take(req, opts.timeout ?? null);
  const held = (outcome as { held: Held }).held;
  if (opts.record !== false)
    storeRecord(held, describeHolder(req, held, process.pid, process.pid, opts.command ?? process.argv.join(" ")), "binary");
  let released = false;
  const lock: Lock = {
    name,
    slot: held.slot,
    path: held.path,
    get released() {
      return released;
    },
    release() {
      if (released) return;
      released = true;
      release(held);
    },
    [Symbol.dispose]() {
      lock.release();
    },
  };
  return lock;
}

/** acquire() that tries once and returns null when every slot is held. */
export function tryAcquire(name: string, opts: Omit<AcquireOptions, "timeout"> = {}): Lock | null {
  try {
    return acquire(name, { ...opts, timeout: 0 });
  } catch (e) {
    if (e instanceof BusyError) return null;
    throw e;
  }
}
