// The queue in front of a lock (invariant 3: first come, first served). A blocking flock(2)
// alone does not keep arrival order: when a lock is let go the kernel wakes its waiters and
// lets them try again, and a newcomer that asks in that instant gets it first. So an
// acquirer that finds a queue, or every slot busy, takes a ticket, and each waits for the
// one before it, as in a CLH queue lock:
//
//   BASE.entry.lock   held shared by everyone in the queue, from before taking a ticket
//                     until leaving; whoever takes it exclusively knows that nobody is
//                     queued, and may remove the queue's files (tidy).
//   BASE.queue.lock   held exclusively for a moment while a ticket is taken and its node made.
//                     The next ticket is one past the highest node in the directory: the
//                     newest waiter's node stays until a later head passes it or the queue
//                     is tidied away, so tickets only grow while anyone is queued. No counter
//                     is written, so neither a full disk nor RLIMIT_FSIZE (ulimit -f) stops
//                     it, and nothing in a sticky directory must be replaced.
//   BASE.qTTTTTTTT.lock  the node of ticket T (8 base-36 digits, so that names sort in
//                     ticket order): an empty file, made and locked exclusively by its
//                     waiter until it leaves the queue.
//
// A waiter waits for the node before its own to be let go, then for the one before that,
// and so on down to a ticket whose node is gone: then it is the head, and removes the nodes
// it passed. A node is let go when its waiter leaves the queue: served (it was the head,
// and had removed every node before its own) or giving up or dying while queued (those
// before it still count). Nobody can overtake: each waiter waits for exactly those queued
// before it, and the kernel drops the node lock of a waiter that dies.
import { E, LOCK, O, close, directoryNames, flock, flockWait, fstat, lstat, open, strerror, unlink } from "../ffi/libc";
import { debug, warn } from "./log";
import { OPEN, lockBy, opened, openOrCreate, shareWithAll, tryLock } from "./lockfiles";
import { runtimeError, sysError } from "./syserror";

export const entryPath = (base: string) => `${base}.entry.lock`;
export const queuePath = (base: string) => `${base}.queue.lock`;
/** The node of `ticket`: its number in base 36, eight digits, so that names sort by ticket. */
export const nodePath = (base: string, ticket: number) => `${base}.q${ticket.toString(36).padStart(8, "0")}.lock`;
/** The ticket of a node file's name, or undefined for any other name. */
export function ticketOf(fileName: string): number | undefined {
  const m = /\.q([0-9a-z]{8})\.lock$/.exec(fileName);
  return m ? parseInt(m[1]!, 36) : undefined;
}

/** False when nobody is queued for BASE or entering its queue: its entry file is absent. */
export function mayBeQueued(base: string): boolean {
  return lstat(entryPath(base)) !== -E.ENOENT;
}

/** One acquirer's place in the queue of BASE: the entry held shared, its node held exclusively. */
export interface Turnstile {
  base: string;
  entry: number;
  ticket: number;
  node: number;
  /** nodes of waiters that left before us, passed over on the way to the head */
  passed: number[];
  head: boolean;
}

/**
 * Joins the queue of BASE (`base`, e.g. DIR/NAME): takes the entry, a ticket and its node.
 * `shared`: a world-writable directory, whose files every user must be able to open.
 * Returns `noRoom` when the directory has no room for the queue's files (ENOSPC, EDQUOT: no
 * blocks or inodes left), where flock(2) on a slot file that exists still works.
 * Throws WaitlockError (4, 5, 75) when the files cannot be used otherwise.
 */
export function enterTurnstile(base: string, shared: boolean): Turnstile | typeof noRoom {
  let entry: number;
  try {
    entry = enter(base, shared);
  } catch (e) {
    if (e instanceof NoRoom) return noRoom;
    throw e;
  }
  try {
    const queue = made(queuePath(base), openOrCreate(queuePath(base), O.RDONLY, 0o644));
    try {
      if (shared) shareWithAll(queue, 0o644);
      // Held only while a ticket is taken and its node made: nobody waits on it for long.
      const r = flockWait(queue, LOCK.EX, Infinity);
      if (r < 0) throw sysError(queuePath(base), r, "cannot lock");
      const ticket = Math.max(-1, ...ticketsLeft(base)) + 1;
      const node = makeNode(base, ticket, shared);
      debug(`queued for '${base}' with ticket ${ticket}`);
      return { base, entry, ticket, node, passed: [], head: false };
    } finally {
      close(queue);
    }
  } catch (e) {
    close(entry);
    if (e instanceof NoRoom) {
      tidyTurnstile(base);
      return noRoom;
    }
    throw e;
  }
}

/** What enterTurnstile() returns when the directory has no room for the queue's files. */
export const noRoom = Symbol("no room for the queue");

/** Says once, on stderr, that a waiter for BASE waits without the queue. */
export function warnNoRoom(base: string): void {
  warn(base, "no room in the lock directory for the queue's files: waiting without the queue, so arrival order is not kept");
}

class NoRoom extends Error {}

/** `opened()`, but a file that cannot be made for want of space or inodes is NoRoom. */
function made(path: string, fd: number): number {
  if (fd === -E.ENOSPC || fd === -E.EDQUOT) throw new NoRoom(path);
  return opened(path, fd);
}

/** The entry file, held shared; made anew when a tidying releaser removed it under us. */
function enter(base: string, shared: boolean): number {
  for (;;) {
    const entry = made(entryPath(base), openOrCreate(entryPath(base), O.RDONLY, 0o644));
    if (shared) shareWithAll(entry, 0o644);
    // Only a releaser tidying up holds it exclusively, and only for a moment.
    const r = flockWait(entry, LOCK.SH, Infinity);
    if (r < 0) {
      close(entry);
      throw sysError(entryPath(base), r, "cannot lock");
    }
    const st = fstat(entry);
    if (typeof st !== "number" && st.nlink > 0) return entry;
    close(entry);
  }
}

/** The tickets of the nodes of BASE in its directory, in no order. Throws WaitlockError (4, 5). */
function ticketsLeft(base: string): number[] {
  const slash = base.lastIndexOf("/");
  const prefix = `${base.slice(slash + 1)}.q`;
  const tickets: number[] = [];
  for (const name of namesIn(base.slice(0, slash), prefix)) {
    if (!name.startsWith(prefix) || name.length !== prefix.length + 13) continue;
    const ticket = ticketOf(name);
    if (ticket !== undefined) tickets.push(ticket);
  }
  return tickets;
}

/** The names in `dir`, at least those that start with `prefix`. Throws WaitlockError (4, 5). */
function namesIn(dir: string, prefix: string): string[] {
  const names = directoryNames(dir, prefix);
  if (typeof names !== "number") return names;
  if (names !== -E.ENOSYS) throw sysError(dir, names, "cannot read");
  const { readdirSync } = require("node:fs") as typeof import("node:fs");
  try {
    return readdirSync(dir);
  } catch (e) {
    throw runtimeError(dir, e, "cannot read") ?? e;
  }
}

/** Makes and locks the node of `ticket`, one past every node there is. Throws WaitlockError (4, 5, 75). */
function makeNode(base: string, ticket: number, shared: boolean): number {
  const path = nodePath(base, ticket);
  const fd = made(path, open(path, OPEN | O.RDONLY | O.CREAT | O.EXCL, 0o644));
  if (shared) shareWithAll(fd, 0o644);
  flock(fd, LOCK.EX);
  return fd;
}

/**
 * Are we the head of the queue? With `deadline` (performance.now() milliseconds; Infinity:
 * none), waits until we are; without, only looks. False when the deadline passed first.
 * `interrupted` runs when a signal ends a wait early, and may throw.
 */
export function awaitTurn(t: Turnstile, deadline?: number, interrupted?: () => void): boolean {
  if (t.head) return true;
  for (let ticket = t.ticket - 1; ticket >= 0; ticket--) {
    const path = nodePath(t.base, ticket);
    const fd = open(path, OPEN | O.RDONLY);
    if (fd === -E.ENOENT) break;
    opened(path, fd);
    try {
      const free = deadline === undefined ? tryLock(fd, path, LOCK.EX) : lockBy(fd, path, LOCK.EX, deadline, interrupted);
      if (!free) return false;
    } finally {
      close(fd);
    }
    // Its waiter has left the queue; if it left before its turn, those before it still count.
    if (!t.passed.includes(ticket)) t.passed.push(ticket);
  }
  t.head = true;
  for (const ticket of t.passed) unlink(nodePath(t.base, ticket));
  t.passed = [];
  return true;
}

/** Leaves the queue: the next waiter looks past our node. */
export function leaveTurnstile(t: Turnstile): void {
  close(t.node);
  close(t.entry);
}

/**
 * Removes the queue files of BASE when nobody is queued or entering: a process that holds
 * the entry file exclusively is provably alone. The nodes left are the last head's and
 * those of waiters that left after it. True when someone is queued or entering (the
 * files stay), false when nobody is.
 */
export function tidyTurnstile(base: string): boolean {
  const fd = open(entryPath(base), OPEN | O.RDONLY);
  if (fd < 0) return false;
  try {
    if (flock(fd, LOCK.EX | LOCK.NB) !== 0) return true;
    const st = fstat(fd);
    if (typeof st === "number" || st.nlink === 0) return false;
    for (const ticket of ticketsLeft(base)) unlink(nodePath(base, ticket));
    unlink(queuePath(base));
    const r = unlink(entryPath(base));
    if (r < 0) debug(`cannot remove ${entryPath(base)} (${strerror(r)}); leaving it`);
    else debug(`removed the queue files of ${base}`);
    return false;
  } finally {
    close(fd);
  }
}
