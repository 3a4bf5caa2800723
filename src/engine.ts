// The lock engine. A slot is the file DIR/NAME.slotK.lock; a slot is held iff some process
// holds flock(LOCK_EX) on that file (invariant 1). Holders delete their file on release
// while they still hold it, and acquirers check that the path still names the inode they
// locked (invariant 2).
import {
  E,
  LOCK,
  O,
  close,
  fchmod,
  flock,
  fstat,
  ftruncate,
  getuid,
  lstat,
  open,
  pread,
  pwrite,
  strerror,
  unlink,
  type Stat,
} from "../ffi/libc";
import { S_IFMT, S_IFREG } from "../ffi/platform";
import { BusyError, EXIT, TimeoutError, WaitlockError } from "./errors";
import { debug } from "./log";
import { MAX_RECORD_BYTES } from "./record";
import { sysError } from "./syserror";
import { createWaker, type Waker } from "./waker";

export interface SlotRequest {
  dir: string;
  /** world-writable directory: lock files are made writable for every user */
  shared: boolean;
  name: string;
  slots: number;
  preferred?: number;
}

export interface Held {
  fd: number;
  slot: number;
  path: string;
  /** bytes in the file now (a shorter record must truncate it) */
  size: number;
  /** the inode locked: an open descriptor's never changes, so release need not ask again */
  dev: number;
  ino: number;
}

export type Outcome = { held: Held } | { alreadyHeld: number };

export interface AcquireHooks {
  /** Asked about a slot some process holds: is it already held for us? */
  isOurs?(fd: number, path: string): boolean;
  /** Called once, when the first attempt finds every slot busy and we are going to wait. */
  onWait?(fd: number, slot: number, path: string): void;
}

export const slotPath = (dir: string, name: string, slot: number) => `${dir}/${name}.slot${slot}.lock`;

/** The preferred slot first, then the rest in order. */
function slotOrder(slots: number, preferred?: number): number[] {
  const order = preferred === undefined ? [] : [preferred];
  for (let k = 0; k < slots; k++) if (k !== preferred) order.push(k);
  return order;
}

const symlinkRefused = (path: string) =>
  new WaitlockError(EXIT.SYSTEM, path, "lock file is a symbolic link; refusing to follow it");

/**
 * Opens a slot file read-write (so that a holder's death shows up as IN_CLOSE_WRITE),
 * read-only when another user's file allows no more. Returns null when it does not exist
 * and `create` is false.
 */
function openSlotFile(path: string, create: boolean, shared: boolean): number | null {
  // O_NONBLOCK: a FIFO planted under a slot's name must not hang us in open().
  const base = O.NOFOLLOW | O.CLOEXEC | O.NONBLOCK | (create ? O.CREAT : 0);
  let fd = open(path, base | O.RDWR, 0o666);
  if (fd === -E.EACCES) fd = open(path, (base & ~O.CREAT) | O.RDONLY);
  if (fd === -E.ENOENT && !create) return null;
  if (fd === -E.ELOOP) throw symlinkRefused(path);
  if (fd < 0) throw sysError(path, fd, "cannot open lock file");
  if (shared) {
    // In a shared directory every user must be able to write a record into the file.
    const st = fstat(fd);
    if (typeof st !== "number" && st.uid === getuid() && (st.mode & 0o777) !== 0o666) fchmod(fd, 0o666);
  }
  return fd;
}

/**
 * Does `path` still name the file open at `fd`, with links left (invariant 2)? Its stat
 * when it does, else null.
 */
function stillNamed(path: string, fd: number): Stat | null {
  const now = fstat(fd);
  const named = lstat(path);
  if (typeof now === "number" || typeof named === "number") return null;
  return now.nlink > 0 && named.dev === now.dev && named.ino === now.ino ? now : null;
}

function tryLock(fd: number, path: string, op: number): boolean {
  const r = flock(fd, op | LOCK.NB);
  if (r === 0) return true;
  if (r === -E.EAGAIN) return false;
  throw sysError(path, r, "cannot lock");
}

/**
 * Takes a free slot of `req`, waiting up to `timeout` seconds (null: forever; 0: try once).
 */
export function acquire(req: SlotRequest, timeout: number | null, hooks: AcquireHooks = {}): Outcome {
  // Plain loops on this path, no map/forEach/Array.from: JavaScriptCore compiles each of
  // those array builtins from source on its first call, ~85 µs of start-up apiece.
  const order = slotOrder(req.slots, req.preferred);
  const paths: string[] = [];
  for (const k of order) paths.push(slotPath(req.dir, req.name, k));
  const slots: (number | undefined)[] = [];
  const deadline = timeout === null ? Infinity : performance.now() + timeout * 1000;
  let waker: Waker | undefined;

  const drop = (i: number) => {
    waker?.unwatch(i);
    close(slots[i]!);
    slots[i] = undefined;
  };

  /** One attempt at every slot (or at `which`): an outcome, "retry" at once, or "busy". */
  const attempt = (which?: ReadonlySet<number>): Outcome | "retry" | "busy" => {
    for (let i = 0; i < order.length; i++) {
      if (which && !which.has(i)) continue;
      const path = paths[i]!;
      let fd = slots[i];
      if (fd !== undefined && !stillNamed(path, fd)) {
        drop(i);
        fd = undefined;
      }
      const fresh = fd === undefined;
      if (fd === undefined) fd = slots[i] = openSlotFile(path, true, req.shared)!;
      let locked = tryLock(fd, path, LOCK.EX);
      if (!locked && fresh && waker) {
        // Watched only once it is known to be busy (the winner of a handoff never needs the
        // watch), then tried again: a release before the watch existed would go unseen.
        waker.watch(i, fd, path);
        locked = tryLock(fd, path, LOCK.EX);
      }
      if (locked) {
        const st = stillNamed(path, fd);
        if (!st) {
          debug(`${path} was released and removed while we locked it; trying again`);
          drop(i);
          return "retry";
        }
        waker?.unwatch(i);
        slots[i] = undefined;
        if ((st.mode & S_IFMT) !== S_IFREG || st.nlink !== 1) {
          // A hard link to another file (or a device, a FIFO) planted in a shared directory:
          // writing a record into it would overwrite whatever it really is.
          close(fd);
          throw new WaitlockError(EXIT.SYSTEM, path, "lock file is not a plain file with a single link; refusing to use it");
        }
        debug(`locked ${path}`);
        return { held: { fd, slot: order[i]!, path, size: st.size, dev: st.dev, ino: st.ino } };
      }
      if (hooks.isOurs?.(fd, path)) return { alreadyHeld: order[i]! };
    }
    return "busy";
  };

  try {
    // After a wake-up, only the slots whose files had events: the others are still held.
    let which: ReadonlySet<number> | undefined;
    for (;;) {
      const r = attempt(which);
      which = undefined;
      if (r === "retry") continue;
      if (r !== "busy") return r;
      if (timeout === 0) {
        debug(`all ${req.slots} slot(s) of '${req.name}' are busy`);
        throw new BusyError(req.name);
      }
      if (!waker) {
        hooks.onWait?.(slots[0]!, order[0]!, paths[0]!);
        waker = createWaker();
        for (let i = 0; i < slots.length; i++) if (slots[i] !== undefined) waker.watch(i, slots[i]!, paths[i]!);
        debug(`all ${req.slots} slot(s) of '${req.name}' are busy; waiting${timeout === null ? "" : ` up to ${timeout} s`}`);
        // A release between the attempt and the watches would go unseen: look once more.
        continue;
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        debug(`gave up on '${req.name}' after ${timeout} s`);
        throw new TimeoutError(req.name, timeout!);
      }
      which = waker.sleep(remaining);
    }
  } finally {
    for (let i = 0; i < slots.length; i++) if (slots[i] !== undefined) drop(i);
    waker?.close();
  }
}

/**
 * Releases a slot: remove its file while still holding it (if the path still names the
 * inode locked), then let go. A holder handed only the descriptor asks for its inode.
 */
export function release(held: Pick<Held, "fd" | "path"> & Partial<Pick<Held, "dev" | "ino">>): void {
  const st = held.ino === undefined ? fstat(held.fd) : held;
  const named = lstat(held.path);
  if (typeof st !== "number" && typeof named !== "number" && st.ino === named.ino && st.dev === named.dev) {
    const r = unlink(held.path);
    if (r < 0) debug(`cannot remove ${held.path} (errno ${-r}); leaving it`);
    else debug(`removed ${held.path}`);
  }
  close(held.fd);
}

/**
 * Replaces the record in the slot file we hold, in place (a new inode would be a new lock).
 * null when written, else why not (strerror's words, or a short write).
 */
export function writeRecord(held: Held, bytes: Uint8Array): string | null {
  const w = pwrite(held.fd, bytes, 0);
  if (w !== bytes.byteLength) {
    const why = w < 0 ? strerror(w) : `only ${w} of ${bytes.byteLength} bytes written`;
    debug(`cannot write ${bytes.byteLength} bytes of record into ${held.path} (${why})`);
    return why;
  }
  if (held.size > bytes.byteLength) {
    const t = ftruncate(held.fd, bytes.byteLength);
    if (t !== 0) return strerror(t);
  }
  held.size = bytes.byteLength;
  return null;
}

/** The record bytes in an open slot file (one byte more than any record, to see junk). */
export function readRecordBytes(fd: number): Uint8Array {
  const buf = new Uint8Array(MAX_RECORD_BYTES + 1);
  const n = pread(fd, buf, 0);
  return buf.subarray(0, Math.max(0, n));
}

export type SlotState = "absent" | "free" | "held";

export interface Inspection {
  state: SlotState;
  /** record bytes, when asked for and the file exists */
  bytes?: Uint8Array;
  dev?: number;
  ino?: number;
}

/**
 * Looks at a slot without taking it: a shared lock that fails means an exclusive holder.
 * Opened read-write, so that closing it wakes any waiter that tried during our look.
 */
export function inspect(path: string, withRecord = false): Inspection {
  const fd = openSlotFile(path, false, false);
  if (fd === null) return { state: "absent" };
  try {
    const free = tryLock(fd, path, LOCK.SH);
    if (free) flock(fd, LOCK.UN);
    const st = fstat(fd);
    const id = typeof st === "number" ? {} : { dev: st.dev, ino: st.ino };
    return { state: free ? "free" : "held", ...id, bytes: withRecord ? readRecordBytes(fd) : undefined };
  } finally {
    close(fd);
  }
}

/** Is the slot that was `ino` at `path` released (gone, replaced or unlocked)? */
export function releasedSince(path: string, ino: number): boolean {
  const st = inspect(path);
  return st.state !== "held" || st.ino !== ino;
}
