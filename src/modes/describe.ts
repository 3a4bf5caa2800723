// What a holder writes about itself, how waiting is reported, and the lock a mode holds.
import { getuid, hostname } from "../../ffi/libc";
import { acquire, inspect, readRecordBytes, release, writeRecord, type AcquireHooks, type Held, type Outcome, type SlotRequest } from "../engine";
import { TimeoutError } from "../errors";
import { debug } from "../log";
import { encodeRecord, encodeTextRecord, inspectRecord, type LockRecord } from "../record";
import type { RecordForm } from "../options";
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
}

export type Claimed = { claim: Claim } | { alreadyHeld: number };

/** A record of holder `pid`; `descriptor` is the NAME, or a locked file's absolute path. */
export function describeHolder(descriptor: string, slots: number, slot: number, pid: number, owner: number, command: string): LockRecord {
  return {
    pid,
    owner,
    uid: getuid(),
    acquiredAt: Math.floor(Date.now() / 1000),
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
    },
  };
}

/** Binary first; the text form when that cannot be written, or when asked for. */
export function storeRecord(held: Held, record: LockRecord, form: RecordForm): void {
  if (form === "binary") {
    if (writeRecord(held, encodeRecord(record))) return;
    debug(`writing the text form of the record instead`);
  }
  if (!writeRecord(held, encodeTextRecord(record))) debug(`${held.path} holds no record of this holder`);
}

/** The record in an open slot file, or null (with a debug line saying why). */
export function recordIn(fd: number, path: string): LockRecord | null {
  const bytes = readRecordBytes(fd);
  const d = inspectRecord(bytes);
  if ("record" in d) return d.record;
  debug(`${path}: record is corrupt (${d.corrupt}); ignoring it`);
  return null;
}

/** The record in the slot file at `path`, if there is one that decodes. */
function recordAt(path: string): LockRecord | null {
  const seen = inspect(path, true);
  if (seen.state === "absent") return null;
  const d = inspectRecord(seen.bytes!);
  return "record" in d ? d.record : null;
}

/** The first time a waiter finds every slot busy: say who holds it. */
function reportWait(name: string, onWait?: (holderPid: number | undefined) => void) {
  return (fd: number | undefined, slot: number, path: string) => {
    const holder = fd === undefined ? recordAt(path) : recordIn(fd, path);
    debug(`lock '${name}' slot ${slot} is held by ${holder ? `PID ${holder.pid} (${holder.command || "unknown command"})` : "a process with no readable record"}`);
    onWait?.(holder?.pid);
  };
}

/** acquire(), with the wait and a timeout reported as lock events. */
export function acquireReporting(req: SlotRequest, timeout: number | null, events: Events, isOurs?: AcquireHooks["isOurs"]): Outcome {
  try {
    return acquire(req, timeout, { isOurs, onWait: reportWait(req.name, (pid) => events.waiting(pid)) });
  } catch (e) {
    if (e instanceof TimeoutError) events.timedOut(timeout!);
    throw e;
  }
}
