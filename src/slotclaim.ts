// What a holder writes about itself, how waiting is reported, and the lock a mode holds.
import { getuid, hostname } from "../ffi/libc";
import { acquire, inspect, leaveQueue, readRecordBytes, release, slotPath, writeRecord, type AcquireHooks, type Held, type Outcome, type SlotRequest } from "./engine";
import { BusyError, TimeoutError } from "./errors";
import { heldBy, holderPhrase, type Holder } from "./holdertext";
import { debug, statusLineWanted, toPerson, warn } from "./log";
import { startWaitStatus, type WaitStatus } from "./waitstatus";
import { encodeRecord, encodeTextRecord, inspectRecord, type LockRecord } from "./record";
import type { RecordForm } from "./options";
import type { Events } from "./events";

/**
 * A lock this process holds, of whatever kind: an exclusive slot (claimSlot below), a
 * shared slot or a file (claims.ts).
 */
export interface Claim {
  /** the locked descriptor */
  fd: number;
  /** 0-based slot number (0 for a file) */
  slot: number;
  /** Writes the record: process `pid` holds the lock for `owner`, running `command`. */
  describe(pid: number, owner: number, command: string): void;
  /** Lets go: the record, the descriptor, and whatever files only the lock needed. */
  release(): void;
  /** How a holder process given only the descriptor lets go of it (holder.ts letGo). */
  handOver(): string[];
  /** Leaves the queue, where the lock kept its place in it (SlotRequest.keepPlace). */
  leaveQueue?(): void;
}

export type Claimed = { claim: Claim } | { alreadyHeld: number };

/**
 * Whole seconds since the epoch. Date.now() counts whole milliseconds, so the division is
 * exact: no `Math.floor`, as --exec names `Math` nowhere (bench/TUNING.md, twelfth round).
 */
function unixSeconds(): number {
  const ms = Date.now();
  return (ms - (ms % 1000)) / 1000;
}

/** A record of holder `pid`; `descriptor` is the NAME, or a locked file's absolute path. */
export function describeHolder(descriptor: string, slots: number, slot: number, pid: number, owner: number, command: string): LockRecord {
  return {
    pid,
    owner,
    uid: getuid(),
    acquiredAt: unixSeconds(),
    type: slots > 1 ? "semaphore" : "mutex",
    maxHolders: slots,
    slot,
    hostname: hostname(),
    descriptor,
    command,
  };
}

/** Takes an exclusive slot of `req`, its record kept in the slot file (see acquireReporting). */
export function claimSlot(req: SlotRequest, timeout: number | null, form: RecordForm, events: Events, isOurs?: AcquireHooks["isOurs"]): Claimed {
  const outcome = acquireReporting(req, timeout, events, isOurs);
  if ("alreadyHeld" in outcome) return outcome;
  const held = outcome.held;
  return {
    claim: {
      fd: held.fd,
      slot: held.slot,
      describe: (pid, owner, command) => storeRecord(held, describeHolder(req.name, req.slots, held.slot, pid, owner, command), form),
      release: () => release(held),
      handOver: () => ["slot", held.path],
      leaveQueue: () => leaveQueue(held),
    },
  };
}

/**
 * Binary first; the text form when that cannot be written, or when asked for. When neither
 * can be written (a full disk), one warning: the lock is held all the same, but --list and
 * --done cannot name its holder.
 */
export function storeRecord(held: Held, record: LockRecord, form: RecordForm): void {
  if (form === "binary") {
    if (writeRecord(held, encodeRecord(record)) === null) return;
    debug(`writing the text form of the record instead`);
  }
  const why = writeRecord(held, encodeTextRecord(record));
  if (why !== null) warn(held.path, `lock held, but its record cannot be written (${why}): --list and --done cannot name the holder`);
}

/** The record in an open slot file, or null (with a debug line saying why). */
export function recordIn(fd: number, path: string): LockRecord | null {
  return recordFrom(readRecordBytes(fd), path);
}

function recordFrom(bytes: Uint8Array, path: string): LockRecord | null {
  const d = inspectRecord(bytes);
  if ("record" in d) return d.record;
  debug(`${path}: record is corrupt (${d.corrupt}); ignoring it`);
  return null;
}

/**
 * Who holds a slot, for messages to people, from the bytes of its file: for now the
 * process its record names and the command it runs. The one place to ask the kernel
 * instead (/proc/locks) once that is how "who holds" is decided.
 */
function holderIn(bytes: Uint8Array, path: string): Holder | null {
  const record = recordFrom(bytes, path);
  return record && { pid: record.pid, command: record.command, since: record.acquiredAt };
}

/** The holders named in a busy or timeout message, and the slots looked at to find them. */
const NAMED_HOLDERS = 3;
const SLOTS_LOOKED_AT = 64;

/**
 * `held by PID ...` for the slots of `req` held now (up to three of them, the rest as
 * "and others"); "" when none can be named. Looks at no more than 64 slots: a message
 * must not cost in proportion to -m.
 */
function heldNow(req: SlotRequest): string {
  const holders: Holder[] = [];
  const last = Math.min(req.slots, SLOTS_LOOKED_AT);
  let k = 0;
  for (; k < last && holders.length < NAMED_HOLDERS; k++) {
    const path = slotPath(req.dir, req.name, k);
    const seen = inspect(path, true);
    const holder = seen.state === "held" ? holderIn(seen.bytes!, path) : null;
    if (holder) holders.push(holder);
  }
  return heldBy(holders, k < req.slots);
}

/**
 * acquire(), with the wait and a timeout reported as lock events, a status line on a
 * terminal while it waits (src/waitstatus.ts), and the holders named when it gives up.
 * Tells `events` the slot taken. Throws what acquire() throws: BusyError (exit 1),
 * TimeoutError (exit 2), others; and what `events.taken` throws (the slot released).
 */
export function acquireReporting(req: SlotRequest, timeout: number | null, events: Events, isOurs?: AcquireHooks["isOurs"]): Outcome {
  let status: WaitStatus | undefined;
  /** The first time a waiter finds every slot busy: say who holds it. */
  const onWait = (fd: number | undefined, slot: number, path: string) => {
    // Queued behind other waiters, we have no slot file open yet: look at the first.
    const holder = holderIn(fd === undefined ? (inspect(path, true).bytes ?? new Uint8Array(0)) : readRecordBytes(fd), path);
    debug(`lock '${req.name}' slot ${slot} is held by ${holder ? holderPhrase(holder) : "a process with no readable record"}`);
    events.waiting(holder?.pid);
    if (statusLineWanted())
      status = startWaitStatus({ name: req.name, slot, slots: req.slots, holder: holder && holderPhrase(holder), heldSince: holder?.since, since: Date.now() });
  };
  let outcome: Outcome;
  try {
    outcome = acquire(req, timeout, { isOurs, onWait });
  } catch (e) {
    if (e instanceof TimeoutError) {
      events.timedOut(timeout!);
      throw new TimeoutError(req.name, timeout!, heldNow(req));
    }
    // Busy is told only to a person (cli.ts): a script's `-t 0` pays nothing for it.
    if (e instanceof BusyError && toPerson()) throw new BusyError(req.name, heldNow(req));
    throw e;
  } finally {
    status?.stop();
  }
  try {
    events.taken?.("held" in outcome ? outcome.held.slot : outcome.alreadyHeld);
  } catch (e) {
    if ("held" in outcome) release(outcome.held);
    throw e;
  }
  return outcome;
}
