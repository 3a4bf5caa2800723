// Taking a NAME's slot with the wait reported (acquireReporting: lock events, the status
// line, the holders named when it gives up), for every kind of slot; and an exclusive slot
// as a Claim whose record lives in the slot file (claimSlot). Shared slots and files:
// claims.ts.
import { acquire, inspect, leaveQueue, readRecordBytes, release, slotPath, type AcquireHooks, type Outcome, type SlotRequest } from "./engine";
import { BusyError, TimeoutError } from "./errors";
import { heldBy, holderPhrase, type Holder } from "./holdertext";
import { describeHolder, recordFrom, storeRecord } from "./holderrecord";
import { debug, statusLineWanted, toPerson } from "./log";
import { startWaitStatus, type WaitStatus } from "./waitstatus";
import type { RecordForm } from "./options";
import type { Claimed } from "./claims";
import type { Events } from "./events";

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
 * Who holds a slot, for messages to people, from the bytes of its file: for now the
 * process its record names and the command it runs. The one place to ask the kernel
 * instead (/proc/locks) once that is how "who holds" is decided.
 */
function holderIn(bytes: Uint8Array, path: string): Holder | null {
  const record = recordFrom(path, bytes);
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
