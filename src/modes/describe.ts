// What a holder writes about itself, and how waiting is reported.
import { getuid, hostname } from "../../ffi/libc";
import { acquire, readRecordBytes, writeRecord, type AcquireHooks, type Held, type Outcome, type SlotRequest } from "../engine";
import { TimeoutError } from "../errors";
import { debug, warn } from "../log";
import { encodeRecord, encodeTextRecord, inspectRecord, type LockRecord } from "../record";
import type { RecordForm } from "../options";
import type { Events } from "./events";

export function describeHolder(req: SlotRequest, held: Held, pid: number, owner: number, command: string): LockRecord {
  return {
    pid,
    owner,
    uid: getuid(),
    acquiredAt: Math.floor(Date.now() / 1000),
    type: req.slots > 1 ? "semaphore" : "mutex",
    maxHolders: req.slots,
    slot: held.slot,
    hostname: hostname(),
    descriptor: req.name,
    command,
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
  const bytes = readRecordBytes(fd);
  const d = inspectRecord(bytes);
  if ("record" in d) return d.record;
  debug(`${path}: record is corrupt (${d.corrupt}); ignoring it`);
  return null;
}

/** The first time a waiter finds every slot busy: say who holds it. */
function reportWait(name: string, onWait?: (holderPid: number | undefined) => void) {
  return (fd: number, slot: number, path: string) => {
    const holder = recordIn(fd, path);
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
