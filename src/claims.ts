// The locks a mode can hold (Claim): besides an exclusive slot (slotclaim.ts claimSlot),
// those whose records live in holder files (holderfiles.ts): a shared slot of a NAME, and
// an existing file (--file). How a holder process lets go of each kind.
import { close } from "../ffi/libc";
import { release, type AcquireHooks, type SlotRequest } from "./engine";
import { TimeoutError } from "./errors";
import { acquireFile, openFileToLock, releaseFile, type FileHooks } from "./filelock";
import { holderRecords, newHolderFile, removeHolderFile, slotBase, storeInHolderFile, sweepHolderFiles } from "./holderfiles";
import { describeHolder } from "./holderrecord";
import type { LockMode } from "./holders";
import type { LockDir } from "./lockdir";
import { debug } from "./log";
import type { RecordForm } from "./options";
import { acquireReporting } from "./slotclaim";
import type { Events } from "./events";

/**
 * A lock this process holds, of whatever kind: an exclusive slot (slotclaim.ts claimSlot),
 * a shared slot or a file (below).
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
  /** How a holder process given only the descriptor lets go of it (letGo below). */
  handOver(): string[];
  /** Leaves the queue, where the lock kept its place in it (SlotRequest.keepPlace). */
  leaveQueue?(): void;
}

/** A lock taken, or the 0-based slot found already held for the owner (the same-owner check). */
export type Claimed = { claim: Claim } | { alreadyHeld: number };

/**
 * Takes `req`'s slot shared (a reader's lock on a mutex), waiting as `timeout` allows
 * behind everyone queued before (writers included). Its record is a holder file beside the
 * slot file; the last reader to let go removes the stale ones of readers that were killed.
 */
export function claimSharedSlot(req: SlotRequest, timeout: number | null, form: RecordForm, events: Events, isOurs?: AcquireHooks["isOurs"]): Claimed {
  const outcome = acquireReporting({ ...req, mode: "shared" }, timeout, events, isOurs);
  if ("alreadyHeld" in outcome) return outcome;
  const held = outcome.held;
  const record = newHolderFile(slotBase(req.dir, req.name, held.slot));
  let recorded = false;
  return {
    claim: {
      fd: held.fd,
      slot: held.slot,
      describe: (pid, owner, command) => {
        recorded = storeInHolderFile(record, describeHolder(req.name, 1, held.slot, pid, owner, command), form);
      },
      release: () => {
        if (recorded) removeHolderFile(record);
        release(held, () => sweepHolderFiles(slotBase(req.dir, req.name, held.slot)));
      },
      handOver: () => ["shared", held.path, record],
    },
  };
}

/** The absolute path a record names a locked file by (the path as given, made absolute). */
export const fileDescriptor = (path: string) => (require("node:path") as typeof import("node:path")).resolve(path);

/**
 * Locks the existing file or directory `path` itself (--file) with `mode`, waiting as
 * `timeout` allows behind the waitlocks queued for it before. Its record is a holder file
 * in the lock directory `dir`. Throws what filelock.ts acquireFile throws, and
 * WaitlockError 4 or 5 when the file cannot be opened.
 */
export function claimFile(dir: LockDir, path: string, mode: LockMode, timeout: number | null, form: RecordForm, events: Events, isOurs?: FileHooks["isOurs"]): Claimed {
  const fd = openFileToLock(path);
  let held;
  try {
    held = acquireFile({ dir: dir.path, shared: dir.shared, path, fd, mode }, timeout, { isOurs, onWait: (base) => reportFileWait(path, base, events) });
  } catch (e) {
    close(fd);
    if (e instanceof TimeoutError) events.timedOut(timeout!);
    throw e;
  }
  if (held === "alreadyHeld") {
    close(fd);
    return { alreadyHeld: 0 };
  }
  const { base } = held;
  const record = newHolderFile(base);
  let recorded = false;
  return {
    claim: {
      fd,
      slot: 0,
      describe: (pid, owner, command) => {
        recorded = storeInHolderFile(record, describeHolder(fileDescriptor(path), 1, 0, pid, owner, command), form);
      },
      release: () => {
        if (recorded) removeHolderFile(record);
        releaseFile(fd, base);
      },
      handOver: () => ["file", base, record],
    },
  };
}

/** The first time a waiter finds the file busy: say who holds it, if a waitlock does. */
function reportFileWait(path: string, base: string, events: Events): void {
  const holder = holderRecords(base)[0]?.record;
  debug(`${path} is held by ${holder ? `PID ${holder.pid} (${holder.command || "unknown command"})` : "a process with no waitlock record"}`);
  events.waiting(holder?.pid);
}

/**
 * Lets go of a lock handed over as descriptor `fd` with Claim.handOver()'s words: the kind
 * ("slot", "shared" or "file"), the slot file or file lock's base, the holder file.
 */
export function letGo(fd: number, how: string[]): void {
  const [kind, path = "", record = ""] = how;
  if (record) removeHolderFile(record);
  if (kind === "file") releaseFile(fd, path);
  else release({ fd, path }, kind === "shared" ? () => sweepHolderFiles(path.slice(0, -".lock".length)) : undefined);
}
