// The lock engine. A slot is the file DIR/NAME.slotK.lock; a slot is held iff some process
// holds a flock(2) lock on that file (invariant 1): LOCK_EX, or LOCK_SH for readers.
//
// Waiters are served in arrival order (invariant 3): every acquirer of NAME first joins its
// queue (src/turnstile.ts: a ticket, and a wait for the waiter before it), and only the
// head of the queue ever waits for a slot: for a mutex in a blocking flock(2) on the slot
// file, for a semaphore woken by inotify on its slot files. It leaves the queue once it
// holds a slot, and the next waiter is the head.
//
// Files are removed only by a process that provably holds them alone (invariant 2): a slot
// file's releaser closes its descriptor, opens the file anew and takes it with
// LOCK_EX|LOCK_NB; that fails while any other process holds it (a descendant that
// inherited the locked descriptor, or the next holder).
//
// A shared (reader) lock is a mutex slot taken with LOCK_SH: any number of readers, or one
// writer. Readers queue like everyone else and leave the queue once they hold the slot, so
// a writer queued before later readers is served before them: the kernel alone would grant
// a new reader at once while a writer waits.
import {
  E,
  LOCK,
  O,
  close,
  fchmod,
  flock,
  flockWait,
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
import { BusyError, CancelledError, EXIT, TimeoutError, WaitlockError } from "./errors";
import { fileKey, locksListedInFull, type Granted, type LockMode } from "./holders";
import { debug } from "./log";
import { MAX_RECORD_BYTES } from "./record";
import { OPEN, deadlineAfter, lockBy, msLeft, opened, openOrCreate, shareWithAll, symlinkRefused, tryLock } from "./lockfiles";
import { sysError } from "./syserror";
import { awaitTurn, enterTurnstile, leaveTurnstile, mayBeQueued, noRoom, tidyTurnstile, warnNoRoom, type Turnstile } from "./turnstile";
import { createWaker, type Waker } from "./waker";

export interface SlotRequest {
  dir: string;
  /** world-writable directory: lock files are made usable by every user */
  shared: boolean;
  name: string;
  /** number of slots, N >= 1 (1: a mutex) */
  slots: number;
  /** the 0-based slot to try first */
  preferred?: number;
  /** "shared": a reader's lock on a mutex (slots 1); default "exclusive" */
  mode?: LockMode;
  /**
   * Stay in the queue once a slot is won, until leaveQueue() (or release()): the next
   * waiter, woken when we leave, then does its work after ours instead of beside it.
   */
  keepPlace?: boolean;
}

export interface Held {
  fd: number;
  /** 0-based slot number */
  slot: number;
  path: string;
  /** bytes in the file now (a shorter record must truncate it) */
  size: number;
  /** the inode locked: an open descriptor's never changes, so release need not ask again */
  dev: number;
  ino: number;
  mode: LockMode;
  /** our place in the queue, kept at the request's asking (SlotRequest.keepPlace) */
  place?: Turnstile;
}

export type Outcome = { held: Held } | { alreadyHeld: number };

export interface AcquireHooks {
  /** Is the slot file open at `fd`, which some process holds, already held for us? */
  isOurs?(fd: number, path: string): boolean;
  /** Called once, when every slot is busy (or others are queued) and we are going to wait. */
  onWait?(fd: number | undefined, slot: number, path: string): void;
  /**
   * Asked whenever a wait is interrupted or wakes up: true gives up (CancelledError). For a
   * waiter whose caller stops it from another thread (offthread.ts).
   */
  stopped?(): boolean;
}

export const slotPath = (dir: string, name: string, slot: number) => `${dir}/${name}.slot${slot}.lock`;
/** DIR/NAME of a slot file's path (every slot path ends in ".slotK.lock"). */
const baseOf = (slotFile: string) => slotFile.slice(0, slotFile.lastIndexOf(".slot"));

/** The i-th slot to try: the preferred one first, then the others in order. */
function slotAt(i: number, preferred: number | undefined): number {
  if (preferred === undefined) return i;
  return i === 0 ? preferred : i <= preferred ? i - 1 : i;
}

/** The flock(2) operation that takes a lock of `mode`. */
export const lockOp = (mode: LockMode | undefined) => (mode === "shared" ? LOCK.SH : LOCK.EX);

/**
 * Opens a slot file read-write (so that a holder's death shows up as IN_CLOSE_WRITE and it
 * can write its record), read-only when another user's file allows no more. Returns null
 * when it does not exist and `create` is false.
 */
function openSlotFile(path: string, create: boolean, shared: boolean): number | null {
  let fd = create ? openOrCreate(path, O.RDWR, 0o666) : open(path, OPEN | O.RDWR);
  if (fd === -E.EACCES) fd = open(path, OPEN | O.RDONLY);
  if (fd === -E.ENOENT && !create) return null;
  // Every user must be able to write a record into it.
  if (shared) shareWithAll(opened(path, fd), 0o666);
  return opened(path, fd);
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

/** The slot files one acquirer has open: only those it found busy, and the one it takes. */
class SlotFiles {
  private readonly fds = new Map<number, number>();
  private waker: Waker | undefined;
  private readonly op: number;

  constructor(private readonly req: SlotRequest) {
    this.op = lockOp(req.mode);
  }

  path(i: number): string {
    return slotPath(this.req.dir, this.req.name, slotAt(i, this.req.preferred));
  }

  /** The open file of the i-th slot to try, opened anew if its path moved on. */
  open(i: number): number {
    const path = this.path(i);
    let fd = this.fds.get(i);
    if (fd !== undefined && !stillNamed(path, fd)) {
      this.drop(i);
      fd = undefined;
    }
    if (fd === undefined) {
      fd = openSlotFile(path, true, this.req.shared)!;
      this.fds.set(i, fd);
      this.waker?.watch(i, fd, path);
    }
    return fd;
  }

  drop(i: number): void {
    const fd = this.fds.get(i);
    if (fd === undefined) return;
    this.waker?.unwatch(i);
    close(fd);
    this.fds.delete(i);
  }

  /** The i-th slot, now locked by us, if the path still names what we locked. */
  claim(i: number, fd: number): Held | undefined {
    const path = this.path(i);
    const st = stillNamed(path, fd);
    if (!st) {
      debug(`${path} was released and removed while we locked it; trying again`);
      this.drop(i);
      return undefined;
    }
    this.waker?.unwatch(i);
    this.fds.delete(i);
    if ((st.mode & S_IFMT) !== S_IFREG || st.nlink !== 1) {
      // A hard link to another file (or a device, a FIFO) planted in a shared directory:
      // writing a record into it would overwrite whatever it really is.
      close(fd);
      throw new WaitlockError(EXIT.SYSTEM, path, "lock file is not a plain file with a single link; refusing to use it");
    }
    debug(`locked ${path}`);
    return { fd, slot: slotAt(i, this.req.preferred), path, size: st.size, dev: st.dev, ino: st.ino, mode: this.req.mode ?? "exclusive" };
  }

  /**
   * One non-blocking try at the slots in `which` (default: all, in order); a busy one that
   * `isOurs` claims ends the search (only if met before a free one: acquire asks about a
   * semaphore's slots first).
   */
  tryEach(which?: ReadonlySet<number>, isOurs?: AcquireHooks["isOurs"]): Outcome | "busy" {
    // A plain loop: the uncontended path stops at the first free slot, whatever N is.
    for (let i = 0; i < this.req.slots; i++) {
      if (which && !which.has(i)) continue;
      const fd = this.open(i);
      // A shared lock would be granted to its holder again: ask first.
      if (this.op === LOCK.SH && isOurs?.(fd, this.path(i))) return { alreadyHeld: slotAt(i, this.req.preferred) };
      if (!tryLock(fd, this.path(i), this.op)) {
        if (isOurs?.(fd, this.path(i))) return { alreadyHeld: slotAt(i, this.req.preferred) };
        continue;
      }
      const held = this.claim(i, fd);
      if (held) return { held };
      // Removed under us: the same slot again, under its new file.
      const again = this.open(i);
      if (tryLock(again, this.path(i), this.op)) {
        const retaken = this.claim(i, again);
        if (retaken) return { held: retaken };
      }
    }
    return "busy";
  }

  /** Opens every slot file that exists, taking nothing, so that busy() can be asked about them. */
  peekAll(): void {
    for (let i = 0; i < this.req.slots; i++) {
      if (this.fds.has(i)) continue;
      const fd = openSlotFile(this.path(i), false, this.req.shared);
      if (fd !== null) this.fds.set(i, fd);
    }
  }

  /**
   * Removes every slot file that nobody holds, by release's rule (removeIfUnheld: only a
   * provably sole holder removes a file, and only the inode it found under the name).
   */
  removeUnheld(): void {
    this.peekAll();
    for (const [i, fd] of this.fds) {
      const st = fstat(fd);
      if (typeof st !== "number") removeIfUnheld(this.path(i), st.dev, st.ino);
    }
  }

  /** The slot files we have open (found busy, or peeked at): descriptor, path, slot number. */
  busy(): [fd: number, path: string, slot: number][] {
    const open: [number, string, number][] = [];
    for (const [i, fd] of this.fds) open.push([fd, this.path(i), slotAt(i, this.req.preferred)]);
    return open;
  }

  /**
   * The head of the queue waits for a slot until `deadline`: a mutex in the kernel's queue
   * for its file, a semaphore until inotify reports a change on one of its files.
   */
  waitForOne(deadline: number, interrupted?: () => void): Outcome | "timeout" {
    for (;;) {
      interrupted?.();
      if (this.req.slots === 1) {
        const fd = this.open(0);
        if (!lockBy(fd, this.path(0), this.op, deadline, interrupted)) return "timeout";
        const held = this.claim(0, fd);
        if (held) return { held };
        continue;
      }
      if (!this.waker) {
        this.waker = createWaker();
        for (const [i, fd] of this.fds) this.waker.watch(i, fd, this.path(i));
        // A release between the last try and the watches would go unseen: look once more.
        const r = this.tryEach();
        if (r !== "busy") return r;
      }
      const left = msLeft(deadline);
      if (left <= 0) return "timeout";
      const r = this.tryEach(this.waker.sleep(left));
      if (r !== "busy") return r;
    }
  }

  close(): void {
    // Spreading a Map's keys compiles JavaScriptCore's iteration builtin from source (once per
    // process): the uncontended path, which has nothing open here by now, skips it.
    if (this.fds.size > 0) for (const i of [...this.fds.keys()]) this.drop(i);
    this.waker?.close();
  }
}

/**
 * Takes a free slot of `req` (with `req.mode` "shared": the slot, beside its other readers),
 * waiting up to `timeout` seconds (null: forever; 0: try once), in arrival order behind
 * everyone already waiting for the same NAME.
 * Throws BusyError (exit 1) when `timeout` is 0 and nothing is free, TimeoutError (exit 2)
 * when the time runs out, CancelledError (2) when `hooks.stopped` says so, WaitlockError
 * (4, 5, 75) when a lock file cannot be used.
 */
export function acquire(req: SlotRequest, timeout: number | null, hooks: AcquireHooks = {}): Outcome {
  const deadline = timeout === null ? Infinity : deadlineAfter(timeout);
  const interrupted = hooks.stopped && (() => {
    if (hooks.stopped!()) throw new CancelledError(req.name);
  });
  const base = `${req.dir}/${req.name}`;
  const slots = new SlotFiles(req);
  let waitReported = false;
  const reportWait = (fd: number | undefined) => {
    if (waitReported) return;
    waitReported = true;
    debug(`'${req.name}' is busy; waiting${timeout === null ? "" : ` up to ${timeout} s`}`);
    hooks.onWait?.(fd, slotAt(0, req.preferred), slots.path(0));
  };
  // The slot already held for us, whichever it is: asked of every busy slot before any is
  // taken, as tryEach, in its order, would take a free slot met before ours.
  const ours = (): Outcome | undefined => {
    if (!hooks.isOurs) return undefined;
    slots.peekAll();
    for (const [fd, path, slot] of slots.busy()) if (hooks.isOurs(fd, path)) return { alreadyHeld: slot };
    return undefined;
  };
  // One try of every slot: with `timeout` 0, busy is final. A mutex has one slot, which
  // tryEach asks about when it is busy.
  const tryNow = (): Outcome | "busy" => {
    const mine = req.slots > 1 ? ours() : undefined;
    if (mine) return mine;
    const first = slots.tryEach(undefined, hooks.isOurs);
    if (first === "busy" && timeout === 0) throw busy(req);
    return first;
  };
  // At the head of the queue, or without one: try the slots, then wait for one to be let go.
  const asHead = (): Outcome => {
    const first = tryNow();
    if (first !== "busy") return first;
    reportWait(slots.busy()[0]?.[0]);
    const got = slots.waitForOne(deadline, interrupted);
    if (got === "timeout") throw timedOut(req, timeout!);
    return got;
  };
  try {
    // Nobody is queued while the queue's entry file is absent (everyone queued holds it,
    // and it is removed only when nobody does): a free slot is then taken without joining.
    if (!mayBeQueued(base)) {
      const first = tryNow();
      if (first !== "busy") return first;
      // While we queue, a releaser may remove these files and another acquirer make them anew.
      slots.close();
    }
    const turnstile = enterTurnstile(base, req.shared);
    if (turnstile !== noRoom) return inQueue(turnstile);
    warnNoRoom(base);
    return asHead();
  } finally {
    slots.close();
  }

  function inQueue(turnstile: Turnstile): Outcome {
    let outcome: Outcome | undefined;
    try {
      if (!awaitTurn(turnstile)) {
        // Others are queued ahead. Holding a slot already, we would wait behind a head that
        // waits for us: look before waiting.
        const mine = ours();
        if (mine) return (outcome = mine);
        if (timeout === 0) throw busy(req);
        reportWait(undefined);
        if (!awaitTurn(turnstile, deadline, interrupted)) throw timedOut(req, timeout!);
      }
      return (outcome = asHead());
    } finally {
      if (outcome && "held" in outcome && req.keepPlace) outcome.held.place = turnstile;
      else {
        leaveTurnstile(turnstile);
        if (!outcome) {
          // A holder that let go while we were queued left its slot file for us (release):
          // if we give up last, nobody else would remove it.
          if (!tidyTurnstile(turnstile.base)) slots.removeUnheld();
        } else if (!("held" in outcome)) tidyTurnstile(turnstile.base);
      }
    }
  }
}

function busy(req: SlotRequest): BusyError {
  debug(`all ${req.slots} slot(s) of '${req.name}' are busy`);
  return new BusyError(req.name);
}

function timedOut(req: SlotRequest, timeout: number): TimeoutError {
  debug(`gave up on '${req.name}' after ${timeout} s`);
  return new TimeoutError(req.name, timeout);
}

/**
 * Releases a slot: leaves the queue if it kept its place there (SlotRequest.keepPlace),
 * closes our descriptor; then, when nobody is queued for NAME, removes its
 * turnstile files and the slot file if nobody holds it any more (invariant 2: a descendant
 * that shares the locked open file description keeps it, and its file, as do other shared
 * holders). While others are queued the slot file stays: the head waits in the kernel's
 * queue for this very file, and removing it would only make the head find its new lock on
 * a removed file and start over on a new one. A holder handed only the descriptor asks
 * for its inode. `whileAlone` runs when the file is provably ours alone, just before it is
 * removed (the last reader clears the stale records of readers beside it then).
 */
export function release(held: Pick<Held, "fd" | "path"> & Partial<Pick<Held, "dev" | "ino" | "place">>, whileAlone?: () => void): void {
  leaveQueue(held);
  const id = held.ino === undefined ? fstat(held.fd) : { dev: held.dev!, ino: held.ino };
  close(held.fd);
  if (tidyTurnstile(baseOf(held.path))) return;
  if (typeof id !== "number") removeIfUnheld(held.path, id.dev, id.ino, whileAlone);
}

/** Leaves the queue a held slot kept its place in (SlotRequest.keepPlace), if it still is in it. */
export function leaveQueue(held: Partial<Pick<Held, "place">>): void {
  if (!held.place) return;
  leaveTurnstile(held.place);
  held.place = undefined;
}

/**
 * Removes the slot file `path` if it is still the inode `dev`/`ino` and nobody holds it,
 * running `whileAlone` while it provably holds it alone. Where it may not be removed
 * (another user's file in a sticky directory), its record is cleared instead, so that no
 * stale record of ours stays behind.
 */
function removeIfUnheld(path: string, dev: number, ino: number, whileAlone?: () => void): void {
  let fd = open(path, OPEN | O.RDWR);
  if (fd === -E.EACCES) fd = open(path, OPEN | O.RDONLY);
  if (fd < 0) return;
  try {
    const st = fstat(fd);
    if (typeof st === "number" || st.dev !== dev || st.ino !== ino) return;
    if (flock(fd, LOCK.EX | LOCK.NB) !== 0) {
      debug(`${path} is still held (by a process that inherited it, or the next holder); leaving it`);
      return;
    }
    if (!stillNamed(path, fd)) return;
    whileAlone?.();
    const r = unlink(path);
    if (r === 0) debug(`removed ${path}`);
    else if (ftruncate(fd, 0) === 0) debug(`cannot remove ${path} (${strerror(r)}); cleared its record`);
    else debug(`cannot remove ${path} (${strerror(r)}); leaving it`);
  } finally {
    close(fd);
  }
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
  /** how it is held, where that can be told (without the kernel's list: a failed shared try is exclusive) */
  mode?: LockMode;
  /** record bytes, when asked for and the file exists */
  bytes?: Uint8Array;
  dev?: number;
  ino?: number;
}

/**
 * Looks at a slot without taking it. Where the kernel lists its locks (`locks`, from
 * holders.ts grantedLocks()), that answers, and nothing is locked or opened but to read the
 * record; elsewhere, and where that list may be incomplete, a shared lock that fails means
 * an exclusive holder. Needs read permission only.
 */
export function inspect(path: string, withRecord = false, locks?: ReadonlyMap<string, Granted>): Inspection {
  const fd = open(path, OPEN | O.RDONLY);
  if (fd === -E.ENOENT) return { state: "absent" };
  if (fd === -E.ELOOP) throw symlinkRefused(path);
  if (fd < 0) throw sysError(path, fd, "cannot open lock file");
  try {
    const st = fstat(fd);
    if (typeof st === "number") throw sysError(path, st, "cannot stat lock file");
    const mode = heldMode(fd, path, st, locks, LOCK.SH);
    return { state: mode ? "held" : "free", mode, dev: st.dev, ino: st.ino, bytes: withRecord ? readRecordBytes(fd) : undefined };
  } finally {
    close(fd);
  }
}

/**
 * How the file open at `fd` (`path`, `st` its identity) is held, without holding it: as
 * `locks` (holders.ts grantedLocks()) shows it; where there is no such list, or it may
 * leave a lock out (locksListedInFull), and it shows none, by a non-blocking try of `op`,
 * let go at once (one that fails means an exclusive holder). undefined: free.
 */
export function heldMode(fd: number, path: string, st: { dev: number; ino: number }, locks: ReadonlyMap<string, Granted> | undefined, op: number): LockMode | undefined {
  const listed = locks?.get(fileKey(st.dev, st.ino))?.mode;
  if (listed || (locks && locksListedInFull())) return listed;
  if (!tryLock(fd, path, op)) return "exclusive";
  flock(fd, LOCK.UN);
  return undefined;
}

/** Is the slot that was `ino` at `path` released (gone, replaced or unlocked)? */
export function releasedSince(path: string, ino: number): boolean {
  const st = inspect(path);
  return st.state !== "held" || st.ino !== ino;
}
