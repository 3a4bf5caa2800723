// What a holder writes about itself, and how waiting is reported.
import { getuid, hostname } from "../../ffi/libc";
import { acquire, readRecordBytes, type AcquireHooks, type Held, type Outcome, type SlotRequest } from "../engine";
import { TimeoutError } from "../errors";
import { debug } from "../log";
import { decodeRecord, encodeRecord, type LockRecord } from "../record";
import type { Events } from "./events";

export function describeHolder(req: SlotRequest, held: Held, pid: number, owner: number, command: string): Uint8Array {
  return encodeRecord({
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
  });
}

export function recordIn(fd: number): LockRecord | null {
  return decodeRecord(readRecordBytes(fd));
}

/** The first time a waiter finds every slot busy: say who holds it. */
export function reportWait(name: string, onWait?: (holderPid: number | undefined) => void) {
  return (fd: number, slot: number) => {
    const holder = recordIn(fd);
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
