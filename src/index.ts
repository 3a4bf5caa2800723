// waitlock as a library, for Bun programs: the same locks as the CLI (same directory, same
// files, same records), held by the calling process until release() or its exit.
//
//   import { acquire, acquireAsync } from "waitlock";
//   using lock = acquire("nightly", { timeout: 0 });       // throws BusyError when held
//   await using job = await acquireAsync("db", { timeout: 5, signal });
//   using reader = acquire("config", { shared: true });     // one of any number of readers
//
// acquire() waits in the kernel on the JavaScript thread (as the CLI does): nothing else in
// the program runs meanwhile. acquireAsync() waits in a thread of its own (offthread.ts),
// so that timers, I/O and other tasks go on; an AbortSignal gives the wait up.
import { acquire as take, release, slotPath, type Held, type Outcome, type SlotRequest } from "./engine";
import { AlreadyHeldError, BusyError, CancelledError, UsageError, type LockLostError } from "./errors";
import { MAX_SLOTS } from "./limits";
import { resolveLockDir, type LockDir } from "./lockdir";
import { claimSharedSlot, type Claim } from "./claims";
import { describeHolder, storeRecord } from "./holderrecord";
import { noEvents } from "./events";
import { validateName } from "./names";
import { waitOffThread } from "./offthread";

export { AlreadyHeldError, BusyError, CancelledError, EXIT, TimeoutError, UsageError, WaitlockError } from "./errors";

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
  /** a shared (reader) lock: any number of shared holders, or one exclusive (slots must be 1; acquire only) */
  shared?: boolean;
  /**
   * a network engine's URL (postgres://...; default WAITLOCK_BACKEND unless `lockDir` is
   * given): acquireAsync only
   */
  backend?: string;
}

export interface AsyncAcquireOptions extends AcquireOptions {
  /** gives the wait up: the promise rejects with CancelledError */
  signal?: AbortSignal;
}

export interface Lock extends Disposable, AsyncDisposable {
  readonly name: string;
  readonly slot: number;
  readonly path: string;
  readonly shared: boolean;
  readonly released: boolean;
  /** Lets go of the slot; calling it again does nothing. */
  release(): void;
  /** on a network backend: the fencing token (a decimal integer, larger for every later holder of the name) */
  readonly token?: string;
  /** on a network backend: resolves with the error (exit 7) once the lease is lost; never after release() */
  readonly lost?: Promise<LockLostError>;
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

/** Slots this process holds through the library, by "DIR/NAME". */
const holding = new Map<string, Set<number>>();

/** The request for `name`, checked; throws UsageError (3), or AlreadyHeldError (1) for a wait on ourselves. */
function request(name: string, opts: AcquireOptions): SlotRequest {
  validateName(name);
  const slots = count(opts.slots, "slots", 1) ?? 1;
  if (slots > MAX_SLOTS) throw new UsageError("slots", `${slots} is more than the maximum, ${MAX_SLOTS}`);
  const preferred = count(opts.preferredSlot, "preferredSlot", 0);
  if (preferred !== undefined && preferred >= slots) throw new UsageError("preferredSlot", `slot ${preferred} does not exist (0..${slots - 1})`);
  if (opts.timeout != null && !(opts.timeout >= 0)) throw new UsageError("timeout", `${opts.timeout} is not a number of seconds >= 0`);
  if (opts.shared && slots > 1) throw new UsageError("shared", "a shared lock has one slot: it cannot be used with slots > 1");
  const dir = lockDirFor(opts.lockDir);
  const mine = holding.get(`${dir.path}/${name}`);
  // Every slot this request can see is ours: only our own release could end a wait (a
  // single try, timeout 0, is only busy).
  let seen = opts.timeout === 0 ? -1 : 0;
  for (const k of mine ?? []) if (k < slots) seen++;
  if (seen === slots) throw new AlreadyHeldError(name, [...mine!].sort((a, b) => a - b));
  return { dir: dir.path, shared: dir.shared, name, slots, preferred };
}

/** The Lock for a slot just taken: its record written, and known to this process. */
function lockFor(req: SlotRequest, outcome: Outcome, opts: AcquireOptions): Lock {
  const held = (outcome as { held: Held }).held;
  if (opts.record !== false)
    storeRecord(held, describeHolder(req.name, req.slots, held.slot, process.pid, process.pid, opts.command ?? process.argv.join(" ")), "binary");
  const key = `${req.dir}/${req.name}`;
  const mine = holding.get(key) ?? new Set<number>();
  holding.set(key, mine.add(held.slot));
  return lockHandle(req.name, held.slot, held.path, false, () => {
    mine.delete(held.slot);
    if (mine.size === 0) holding.delete(key);
    release(held);
  });
}

/** A Lock whose release() (also by `using` and `await using`) runs `letGo` once. */
function lockHandle(name: string, slot: number, path: string, shared: boolean, letGo: () => void): Lock {
  let released = false;
  const lock: Lock = {
    name,
    slot,
    path,
    shared,
    get released() {
      return released;
    },
    release() {
      if (released) return;
      released = true;
      letGo();
    },
    [Symbol.dispose]() {
      lock.release();
    },
    async [Symbol.asyncDispose]() {
      lock.release();
    },
  };
  return lock;
}

/**
 * Takes a slot of `name`, waiting as `opts.timeout` allows (seconds; null: forever), on
 * this thread. Throws BusyError (exit 1) when `timeout` is 0 and every slot is held,
 * TimeoutError (2), AlreadyHeldError (1) when it would wait and this process holds every
 * slot it could take,
 * UsageError (3) for bad options, WaitlockError (4, 5, 6, 75) when the lock files cannot
 * be used. Every error names the lock (its `context`).
 */
export function acquire(name: string, opts: AcquireOptions = {}): Lock {
  if (backendOf(opts) !== undefined) throw new UsageError("backend", "a network backend answers asynchronously: use acquireAsync");
  const req = request(name, opts);
  if (opts.shared) return sharedLock(req, opts);
  return lockFor(req, take(req, opts.timeout ?? null), opts);
}

/** A shared (reader) hold of `req`'s one slot, its record in a holder file of its own (claims.ts). */
function sharedLock(req: SlotRequest, opts: AcquireOptions): Lock {
  const claimed = claimSharedSlot(req, opts.timeout ?? null, "binary", noEvents);
  const held = (claimed as { claim: Claim }).claim;
  if (opts.record !== false) held.describe(process.pid, process.pid, opts.command ?? process.argv.join(" "));
  return lockHandle(req.name, held.slot, slotPath(req.dir, req.name, held.slot), true, () => held.release());
}

/**
 * acquire() that never blocks the event loop: a slot that is free is taken at once, and a
 * wait happens in a thread of its own (Linux; elsewhere only `timeout: 0` is possible).
 * Rejects as acquire() throws, and with CancelledError (exit 2) when `opts.signal` aborts;
 * a slot granted as the wait was given up is released at once. `await using` releases it.
 */
export async function acquireAsync(name: string, opts: AsyncAcquireOptions = {}): Promise<Lock> {
  const url = backendOf(opts);
  if (url !== undefined) return leaseLock(url, name, opts);
  if (opts.shared) throw new UsageError("shared", "acquireAsync takes exclusive locks only; use acquire for a shared one");
  const req = request(name, opts);
  if (opts.signal?.aborted) throw new CancelledError(name);
  const timeout = opts.timeout ?? null;
  let outcome: Outcome;
  try {
    outcome = take(req, 0);
  } catch (e) {
    if (!(e instanceof BusyError) || timeout === 0) throw e;
    outcome = await waitOffThread(req, { timeout, signal: opts.signal });
  }
  return lockFor(req, outcome, opts);
}

/** The engine `opts` asks for: `backend`, else WAITLOCK_BACKEND unless a lock directory is given. */
const backendOf = (opts: AcquireOptions): string | undefined => opts.backend ?? (opts.lockDir === undefined ? process.env.WAITLOCK_BACKEND || undefined : undefined);

/** A slot of `name` on the engine at `url`, held by this process until release() or its exit. */
async function leaseLock(url: string, name: string, opts: AsyncAcquireOptions): Promise<Lock> {
  if (opts.lockDir !== undefined && opts.backend !== undefined) throw new UsageError("backend", "cannot be used with lockDir");
  validateName(name);
  const { connectBackend } = await import("./backends");
  const { holderDescription } = await import("./modes/remote");
  const backend = await connectBackend(url);
  const holder = holderDescription(process.pid, process.pid, opts.command ?? process.argv.join(" "));
  const timeout = opts.timeout ?? undefined;
  const lease = await backend.acquire(name, { slots: opts.slots, preferred: opts.preferredSlot, shared: opts.shared, timeout, holder, signal: opts.signal });
  const lock = lockHandle(name, lease.slot, backend.url, lease.shared, () => void lease.release());
  return Object.assign(lock, {
    token: lease.token,
    lost: lease.lost,
    async [Symbol.asyncDispose]() {
      if (!lock.released) lock.release();
      await lease.release();
    },
  });
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
