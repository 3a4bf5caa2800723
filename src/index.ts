// waitlock as a library, for Bun programs: the same locks as the CLI (same directory, same
// files, same records), held by the calling process until release() or its exit.
//
//   import { acquire } from "waitlock";
//   using lock = acquire("nightly", { timeout: 0 });   // throws BusyError when held
//   ...                                                 // released at the end of the scope
//   using reader = acquire("config", { shared: true }); // one of any number of readers
//
// Waiting blocks the JS thread in the kernel (as the CLI does); pass timeout 0 and retry
// from a timer when the event loop must keep running.
import { slotPath } from "./engine";
import { BusyError, UsageError } from "./errors";
import { resolveLockDir, type LockDir } from "./lockdir";
import { claimSharedSlot } from "./modes/claims";
import { claimSlot, type Claim } from "./modes/describe";
import { noEvents } from "./modes/events";
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
  /** a shared (reader) lock: any number of shared holders, or one exclusive (slots must be 1) */
  shared?: boolean;
}

export interface Lock extends Disposable {
  readonly name: string;
  readonly slot: number;
  readonly path: string;
  readonly shared: boolean;
  readonly released: boolean;
  /** Lets go of the slot; calling it again does nothing. */
  release(): void;
}

// Resolving a directory costs a few system calls; a program that locks in a loop asks once.
const dirs = new Map<string, LockDir>();

function lockDirFor(path: string | undefined): LockDir {
  const key = path ?? process.env.WAITLOCK_DIR ?? "";
  let dir = dirs.get(key);
  if (!dir) dirs.set(key, (dir = resolveLockDir(path, process.env)!));
  return dir;
}

function count(value: number | undefined, what: string, min: number): number | undefined {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) throw new UsageError(what, `${value} is not a whole number >= ${min}`);
  return value;
}

/**
 * Takes a slot of `name` (shared with other readers when `opts.shared`), waiting as
 * `opts.timeout` allows behind those already waiting; throws BusyError or TimeoutError,
 * UsageError for bad options.
 */
export function acquire(name: string, opts: AcquireOptions = {}): Lock {
  validateName(name);
  const slots = count(opts.slots, "slots", 1) ?? 1;
  const preferred = count(opts.preferredSlot, "preferredSlot", 0);
  if (preferred !== undefined && preferred >= slots) throw new UsageError("preferredSlot", `slot ${preferred} does not exist (0..${slots - 1})`);
  if (opts.timeout != null && !(opts.timeout >= 0)) throw new UsageError("timeout", `${opts.timeout} is not a number of seconds >= 0`);
  const shared = opts.shared === true;
  if (shared && slots > 1) throw new UsageError("shared", "a shared lock has one slot: it cannot be used with slots > 1");
  const dir = lockDirFor(opts.lockDir);
  const req = { dir: dir.path, shared: dir.shared, name, slots, preferred };
  const claimed = (shared ? claimSharedSlot : claimSlot)(req, opts.timeout ?? null, "binary", noEvents);
  const held = (claimed as { claim: Claim }).claim;
  if (opts.record !== false) held.describe(process.pid, process.pid, opts.command ?? process.argv.join(" "));
  let released = false;
  const lock: Lock = {
    name,
    slot: held.slot,
    path: slotPath(dir.path, name, held.slot),
    shared,
    get released() {
      return released;
    },
    release() {
      if (released) return;
      released = true;
      held.release();
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
